//! A configuration for tests: an IPv4 cluster of the nodes given, whose master is
//! `master.example.com`.

use std::collections::BTreeMap;

use gnt_core::netutils::Hostname;

use super::{ClusterConfig, NodeConfig};

/// The cluster of `nodes`, at serial 3.
pub(crate) fn cluster(nodes: BTreeMap<Hostname, NodeConfig>) -> ClusterConfig {
    let name = |text| Hostname::parse(text).expect("a valid name");
    ClusterConfig {
        serial: 3,
        cluster_name: name("cluster.example.com"),
        policy: gnt_core::policy::IpPolicy::Ipv4,
        master_node: name("master.example.com"),
        master_ip: std::net::IpAddr::from([192, 0, 2, 100]),
        master_netmask: 32,
        master_netdev: String::new(),
        node_port: 1811,
        master_epoch: 1,
        candidate_pool_size: 10,
        certificate_validity_secs: 86_400,
        ca_validity_secs: 10 * 86_400,
        nodes,
        join_tokens: Vec::new(),
        rollover: None,
        created_at: 0,
        modified_at: 0,
    }
}
