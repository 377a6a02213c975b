//! The checks of a new secondary address that need only the configuration.

use std::collections::BTreeMap;

use gnt_core::netutils::Hostname;

use super::*;
use crate::config::NodeConfig;

fn name(text: &str) -> Hostname {
    Hostname::parse(text).unwrap()
}

/// An IPv4 cluster of a master and node1, dual-homed unless `single_homed`.
fn config(single_homed: bool) -> ClusterConfig {
    let record = |primary: &str, secondary: &str| {
        NodeConfig::new(NodeAddrs {
            primary: primary.parse().unwrap(),
            secondary: secondary.parse().unwrap(),
        })
    };
    let mut nodes = BTreeMap::new();
    if single_homed {
        nodes.insert(
            name("master.example.com"),
            record("192.0.2.10", "192.0.2.10"),
        );
        nodes.insert(
            name("node1.example.com"),
            record("192.0.2.11", "192.0.2.11"),
        );
    } else {
        nodes.insert(
            name("master.example.com"),
            record("192.0.2.10", "198.51.100.10"),
        );
        nodes.insert(
            name("node1.example.com"),
            record("192.0.2.11", "198.51.100.11"),
        );
    }
    crate::config::fixture::cluster(nodes)
}

fn node1(secondary: &str) -> Node {
    Node {
        name: name("node1.example.com"),
        addrs: NodeAddrs {
            primary: "192.0.2.11".parse().unwrap(),
            secondary: secondary.parse().unwrap(),
        },
    }
}

fn refusal(config: &ClusterConfig, target: &Node) -> String {
    check_secondary(config, target).unwrap_err().to_string()
}

#[test]
fn a_free_ipv4_address_and_the_nodes_own_are_accepted() {
    let config = config(false);
    assert!(check_secondary(&config, &node1("198.51.100.50")).is_ok());
    // Its own address again: the change runs again (it reissues the certificate).
    assert!(check_secondary(&config, &node1("198.51.100.11")).is_ok());
}

#[test]
fn an_address_of_another_node_is_refused_as_node_add_refuses_it() {
    let config = config(false);
    for taken in ["198.51.100.10", "192.0.2.10"] {
        assert_eq!(
            refusal(&config, &node1(taken)),
            format!(
                "New node ip address(es) conflict with existing node master.example.com ({taken} is already its address)"
            )
        );
    }
}

#[test]
fn homing_stays_the_masters() {
    assert_eq!(
        refusal(&config(true), &node1("198.51.100.50")),
        "The master has no secondary ip: this cluster is single-homed, so every node's secondary ip is its primary ip and cannot be changed"
    );
    assert_eq!(
        refusal(&config(false), &node1("192.0.2.11")),
        "Cannot set the secondary IP to be the same as the primary IP on a multi-homed cluster (192.0.2.11 is the node's primary ip)"
    );
}

#[test]
fn the_secondary_is_ipv4() {
    assert_eq!(
        refusal(&config(false), &node1("2001:db8::5")),
        "Secondary IP (2001:db8::5) needs to be a valid IPv4 address"
    );
}
