use std::net::SocketAddr;
use std::time::Duration;

use gnt_proto::bootstrap::v1::{JoinRequest, JoinResult};
use gnt_proto::cluster::v1::{NodeAddresses, PrimaryIpVersion};
use gnt_proto::master::v1::{CallStatus, TimeoutClass as WireTimeoutClass};

use super::*;
use crate::join::{JoinAccepted, JoinOffer};
use crate::node::NodeAddrs;
use crate::ssconf::{ClusterFacts, NodeFacts, SsconfVersion};

fn node(name: &str, primary: &str, secondary: &str) -> Node {
    Node {
        name: Hostname::parse(name).unwrap(),
        addrs: NodeAddrs {
            primary: primary.parse().unwrap(),
            secondary: secondary.parse().unwrap(),
        },
    }
}

fn offer() -> JoinOffer {
    let master = node("master.example.com", "2001:db8::10", "192.0.2.10");
    let new = node("node1.example.com", "2001:db8::11", "192.0.2.11");
    let cluster = Hostname::parse("cluster.example.com").unwrap();
    let facts: Vec<NodeFacts> = [&master, &new]
        .iter()
        .map(|n| NodeFacts {
            name: n.name.clone(),
            addresses: n.addrs,
            offline: false,
        })
        .collect();
    let ssconf = SsconfSet::from_cluster(&ClusterFacts {
        cluster_name: &cluster,
        policy: IpPolicy::HybridIpv6,
        master: &master.name,
        master_ip: "2001:db8::100".parse().unwrap(),
        master_netmask: 128,
        nodes: &facts,
        release_version: "0.1.0",
        master_certificate_sha256: Some("AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB"),
        candidates: &[],
    })
    .unwrap();
    JoinOffer {
        cluster,
        policy: IpPolicy::HybridIpv6,
        listen: IpPolicy::HybridIpv6.default_listen(1811),
        node: new,
        master,
        ca_certificate_pem: "CA".to_owned(),
        node_certificate_pem: String::new(),
        ssconf,
        ssconf_version: SsconfVersion::new(2, 7),
    }
}

fn refusal(edit: impl FnOnce(&mut JoinRequest)) -> String {
    let mut request = JoinRequest::from(&offer());
    edit(&mut request);
    JoinOffer::try_from(&request).unwrap_err().to_string()
}

#[test]
fn the_policy_travels_as_the_version_operators_type_and_unspecified_is_refused() {
    for policy in [IpPolicy::Ipv4, IpPolicy::HybridIpv6] {
        let wire = PrimaryIpVersion::from(policy);
        assert_eq!(wire as i32, i32::from(policy.version()));
        assert_eq!(IpPolicy::try_from(wire).unwrap(), policy);
    }
    let err = IpPolicy::try_from(PrimaryIpVersion::Unspecified).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid primary IP version 'unspecified': use 4 or 6"
    );
}

#[test]
fn a_join_offer_survives_the_wire_unchanged() {
    let offer = offer();
    let request = JoinRequest::from(&offer);
    assert_eq!(request.bind_address, "::");
    assert_eq!(request.port, 1811);
    assert_eq!(request.ssconf_serial, 7);
    assert_eq!(request.ssconf_epoch, 2);
    assert_eq!(JoinOffer::try_from(&request).unwrap(), offer);
}

#[test]
fn an_offer_that_contradicts_itself_is_refused_naming_the_contradiction() {
    assert_eq!(
        refusal(|r| r.bind_address = "0.0.0.0".to_owned()),
        "bind address 0.0.0.0 does not fit a hybrid IPv6/IPv4 cluster; use :: or an address of this node"
    );
    assert_eq!(
        refusal(|r| r.primary_ip_version = PrimaryIpVersion::PrimaryIpVersion4.into()),
        "primary address 2001:db8::11 is not IPv4, as the cluster's IPv4 policy requires"
    );
    assert!(
        refusal(|r| r.node.as_mut().unwrap().secondary_ip = String::new())
            .contains("must be an IPv4 address")
    );
    assert_eq!(
        refusal(|r| r.port = 70000),
        "invalid port '70000': use 1 to 65535"
    );
    assert_eq!(refusal(|r| r.port = 0), "invalid port '0': use 1 to 65535");
    assert_eq!(refusal(|r| r.node = None), "the node is missing");
    assert_eq!(refusal(|r| r.master = None), "the master is missing");
    // An ssconf set a member could not run on (here: no master certificate to trust).
    assert!(
        refusal(|r| {
            r.ssconf
                .as_mut()
                .unwrap()
                .values
                .remove("master_candidates_certs");
        })
        .starts_with("the ssconf set is unacceptable"),
    );
    assert_eq!(
        refusal(|r| r.cluster_name = "other.example.com".to_owned()),
        "the ssconf set is unacceptable: its cluster name contradicts the request"
    );
    assert_eq!(
        refusal(|r| r.node.as_mut().unwrap().primary_ip = "2001:db8::99".to_owned()),
        "the ssconf set is unacceptable: its addresses of this node contradicts the request"
    );
    assert!(
        refusal(|r| {
            r.ssconf
                .as_mut()
                .unwrap()
                .values
                .insert("no_such_key".to_owned(), "x".to_owned());
        })
        .starts_with("the ssconf set is unacceptable"),
    );
}

#[test]
fn nodes_and_join_answers_round_trip() {
    let node = node("node1.example.com", "192.0.2.1", "192.0.2.1");
    let wire = NodeAddresses::from(&node);
    assert_eq!(Node::try_from((&wire, IpPolicy::Ipv4)).unwrap(), node);
    let single = NodeAddresses {
        secondary_ip: String::new(),
        ..wire
    };
    assert_eq!(
        Node::try_from((&single, IpPolicy::Ipv4)).unwrap(),
        node,
        "an empty secondary is the primary in an IPv4 cluster"
    );
    for listen in ["[::]:1811", "10.0.0.1:7000"] {
        let accepted = JoinAccepted {
            listen: listen.parse::<SocketAddr>().unwrap(),
        };
        let wire = JoinResult::from(&accepted);
        assert_eq!(wire.listen_address, listen);
        assert_eq!(JoinAccepted::try_from(&wire).unwrap(), accepted);
    }
    let err = JoinAccepted::try_from(&JoinResult {
        listen_address: "node1:1811".to_owned(),
    })
    .unwrap_err();
    assert!(
        err.to_string().starts_with("invalid listen address"),
        "{err}"
    );
}

#[test]
fn timeout_classes_and_call_failures_map_one_to_one() {
    for class in TimeoutClass::ALL {
        assert_eq!(TimeoutClass::from(WireTimeoutClass::from(class)), class);
    }
    assert_eq!(
        TimeoutClass::from(WireTimeoutClass::Unspecified),
        TimeoutClass::default()
    );
    assert_eq!(
        CallStatus::from(&CallFailure::TimedOut(Duration::from_secs(1))),
        CallStatus::TimedOut
    );
    assert_eq!(CallStatus::from(&CallFailure::Offline), CallStatus::Offline);
}

#[test]
fn a_write_ssconf_request_carries_the_set_and_its_version() {
    let published = Published::new(offer().ssconf, SsconfVersion::new(3, 42));
    let request = WriteSsconfRequest::from(&published);
    assert_eq!((request.epoch, request.serial), (3, 42));
    assert_eq!(Published::try_from(request).unwrap(), published);
    // An absent set is an empty one, of the serial given.
    let empty = Published::try_from(WriteSsconfRequest {
        ssconf: None,
        serial: 3,
        epoch: 1,
    })
    .unwrap();
    assert!(empty.set.is_empty());
    assert_eq!(empty.serial, 3);
}
