use std::cmp::Ordering;

use proptest::prelude::*;

use super::*;
use crate::ssconf::{ClusterFacts, NodeFacts, nice_cmp};

fn host(name: &str) -> Hostname {
    Hostname::parse(name).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn hybrid_nodes() -> Vec<NodeFacts> {
    ["node10", "node2", "master"]
        .iter()
        .enumerate()
        .map(|(i, name)| NodeFacts {
            name: host(&format!("{name}.example.com")),
            addresses: NodeAddrs {
                primary: ip(&format!("2001:db8::{}", i + 1)),
                secondary: ip(&format!("192.0.2.{}", i + 1)),
            },
            offline: *name == "node10",
        })
        .collect()
}

fn hybrid_set() -> SsconfSet {
    let nodes = hybrid_nodes();
    SsconfSet::from_cluster(&ClusterFacts {
        cluster_name: &host("cluster.example.com"),
        policy: IpPolicy::HybridIpv6,
        master: &host("master.example.com"),
        master_ip: ip("2001:db8::100"),
        master_netmask: 64,
        nodes: &nodes,
        release_version: "0.1.0",
        master_certificate_sha256: Some("ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab"),
        candidates: &[],
    })
    .unwrap()
}

#[test]
fn a_cluster_set_uses_ganetis_keys_and_encodings() {
    let set = hybrid_set();
    assert_eq!(set.get(SsconfKey::PrimaryIpFamily), Some("10"));
    assert_eq!(set.get(SsconfKey::ClusterName), Some("cluster.example.com"));
    assert_eq!(
        set.get(SsconfKey::NodePrimaryIps),
        Some(
            "master.example.com 2001:db8::3\nnode2.example.com 2001:db8::2\nnode10.example.com 2001:db8::1"
        )
    );
    assert_eq!(
        set.get(SsconfKey::NodeSecondaryIps),
        Some(
            "master.example.com 192.0.2.3\nnode2.example.com 192.0.2.2\nnode10.example.com 192.0.2.1"
        )
    );
    assert_eq!(set.get(SsconfKey::OfflineNodes), Some("node10.example.com"));
    assert_eq!(
        set.get(SsconfKey::OnlineNodes),
        Some("master.example.com\nnode2.example.com")
    );
    assert_eq!(set.get(SsconfKey::MasterCandidatesIps), Some("2001:db8::3"));
    assert_eq!(
        set.file_contents(SsconfKey::MasterNetmask).unwrap(),
        b"64\n"
    );
}

#[test]
fn typed_reads_return_what_was_built() {
    let set = hybrid_set();
    assert_eq!(set.cluster_name().unwrap(), host("cluster.example.com"));
    assert_eq!(set.ip_policy().unwrap(), IpPolicy::HybridIpv6);
    assert_eq!(set.master_node().unwrap(), host("master.example.com"));
    assert_eq!(set.master_ip().unwrap(), ip("2001:db8::100"));
    assert_eq!(set.master_netmask().unwrap(), 64);
    assert_eq!(set.node_list().unwrap().len(), 3);
    assert_eq!(set.offline_nodes().unwrap(), [host("node10.example.com")]);
    assert_eq!(
        set.node_addresses(&host("node2.example.com")).unwrap(),
        Some(NodeAddrs {
            primary: ip("2001:db8::2"),
            secondary: ip("192.0.2.2")
        })
    );
    assert_eq!(set.node_addresses(&host("nosuch")).unwrap(), None);
    assert_eq!(set.release_version(), Some("0.1.0"));
    assert_eq!(
        set.master_certificates().unwrap(),
        [("master.example.com".to_owned(), "AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB".to_owned())]
    );
}

#[test]
fn master_certificate_lines_are_name_equals_fingerprint() {
    let mut set = SsconfSet::new();
    assert!(set.master_certificates().unwrap().is_empty());
    let one = "aa".repeat(32);
    let two = ":"
        .repeat(31)
        .split(':')
        .map(|_| "CD")
        .collect::<Vec<_>>()
        .join(":");
    set.insert(
        SsconfKey::MasterCandidatesCerts,
        format!("m1={one}\nm2={two}"),
    )
    .unwrap();
    assert_eq!(set.master_certificates().unwrap().len(), 2);
    assert_eq!(set.master_certificate_digests().unwrap()[0], [0xaa; 32]);
    // Not a SHA-256 fingerprint: refused, never an entry that matches nothing.
    let short = "m1=AA:BB".to_owned();
    let signed = format!("m1=+{}", &one[1..]);
    for bad in [
        "m1",
        "=AA",
        "m1=",
        "m1=AA=BB",
        short.as_str(),
        signed.as_str(),
    ] {
        set.insert(SsconfKey::MasterCandidatesCerts, bad).unwrap();
        assert!(set.master_certificates().is_err(), "{bad:?}");
    }
}

#[test]
fn a_missing_family_means_ipv4_and_only_2_or_10_are_accepted() {
    let mut set = SsconfSet::new();
    assert_eq!(set.ip_policy().unwrap(), IpPolicy::Ipv4);
    assert_eq!(set.master_netmask().unwrap(), 32);
    for (text, policy) in [
        ("2", IpPolicy::Ipv4),
        ("10", IpPolicy::HybridIpv6),
        (" 2 \n\n", IpPolicy::Ipv4),
    ] {
        set.insert(SsconfKey::PrimaryIpFamily, text).unwrap();
        assert_eq!(set.ip_policy().unwrap(), policy, "{text:?}");
    }
    // As read from a file (a set built in memory refuses a second line at once).
    for bad in ["7", "4", "6", "", "ten", "2\n10"] {
        set.insert_read(SsconfKey::PrimaryIpFamily, bad.to_owned());
        let err = set.ip_policy().unwrap_err();
        assert!(
            matches!(err, SsconfError::Malformed { .. }),
            "{bad:?}: {err}"
        );
    }
    set.insert(SsconfKey::PrimaryIpFamily, "7").unwrap();
    assert_eq!(
        set.ip_policy().unwrap_err().to_string(),
        "ssconf key 'primary_ip_family', line 1: invalid IP address family 7: expected 2 (IPv4) or 10 (IPv6)"
    );
}

#[test]
fn values_lose_trailing_newlines_and_empty_values_have_empty_files() {
    let mut set = SsconfSet::new();
    set.insert(SsconfKey::ClusterTags, "value\nwith\nnewlines\n")
        .unwrap();
    set.insert(SsconfKey::InstanceList, "").unwrap();
    set.insert(SsconfKey::ClusterName, "cluster.example.com")
        .unwrap();
    assert_eq!(
        set.get(SsconfKey::ClusterTags),
        Some("value\nwith\nnewlines")
    );
    assert_eq!(
        set.file_contents(SsconfKey::ClusterTags).unwrap(),
        b"value\nwith\nnewlines\n"
    );
    assert_eq!(set.file_contents(SsconfKey::InstanceList).unwrap(), b"");
    assert_eq!(
        set.file_contents(SsconfKey::ClusterName).unwrap(),
        b"cluster.example.com\n"
    );
}

#[test]
fn the_size_limit_counts_the_trailing_newline_like_ganeti() {
    let mut set = SsconfSet::new();
    set.insert(SsconfKey::InstanceList, "A".repeat(MAX_VALUE_BYTES - 1))
        .unwrap();
    let err = set
        .insert(SsconfKey::InstanceList, "A".repeat(MAX_VALUE_BYTES))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ssconf key 'instance_list' holds 131073 bytes; ssconf allows at most 131072"
    );
    assert_eq!(
        set.get(SsconfKey::InstanceList).unwrap().len(),
        MAX_VALUE_BYTES - 1
    );
}

#[test]
fn node_address_lines_are_checked_line_by_line() {
    let mut set = SsconfSet::new();
    set.insert(SsconfKey::PrimaryIpFamily, "10").unwrap();
    let cases = [
        (
            "node1 2001:db8::1\nnode2",
            2,
            "expected 'name address', found 'node2'",
        ),
        (
            "node1 2001:db8::1 extra",
            1,
            "expected 'name address', found 'node1 2001:db8::1 extra'",
        ),
        ("node1 192.0.2.1", 1, "192.0.2.1 is not an IPv6 address"),
        (
            "node1 [2001:db8::1]",
            1,
            "invalid IP address '[2001:db8::1]'",
        ),
        (
            "node1 2001:db8::1\nnode1 2001:db8::2",
            2,
            "node 'node1' is listed twice",
        ),
        (
            "bad_name! 2001:db8::1",
            1,
            "invalid host name 'bad_name!': only letters, digits, '.', '_' and '-' are allowed",
        ),
    ];
    for (text, line, reason) in cases {
        set.insert(SsconfKey::NodePrimaryIps, text).unwrap();
        match set.node_primary_ips() {
            Err(SsconfError::Malformed {
                line: l, reason: r, ..
            }) => {
                assert_eq!((l, r.as_str()), (line, reason), "{text:?}")
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    set.insert(SsconfKey::NodeSecondaryIps, "node1 2001:db8::9")
        .unwrap();
    assert!(
        set.node_secondary_ips().is_err(),
        "secondaries must be IPv4"
    );
}

#[test]
fn single_homed_nodes_use_their_primary_as_secondary() {
    let mut set = SsconfSet::new();
    set.insert(SsconfKey::NodePrimaryIps, "node1 192.0.2.1")
        .unwrap();
    let addrs = set.node_addresses(&host("node1")).unwrap().unwrap();
    assert_eq!(addrs.secondary, addrs.primary);
}

#[test]
fn required_keys_that_are_missing_are_named() {
    let set = SsconfSet::new();
    assert_eq!(
        set.cluster_name().unwrap_err().to_string(),
        "ssconf key 'cluster_name' is missing"
    );
    let read = SsconfSet::new().read_from(Path::new("/var/lib/gnt-rpc"));
    assert_eq!(
        read.master_node().unwrap_err().to_string(),
        "ssconf file /var/lib/gnt-rpc/ssconf_master_node is missing"
    );
}

#[test]
fn cluster_facts_that_contradict_the_policy_are_refused() {
    let mut nodes = hybrid_nodes();
    nodes[1].addresses.primary = ip("192.0.2.50");
    let facts = ClusterFacts {
        cluster_name: &host("cluster.example.com"),
        policy: IpPolicy::HybridIpv6,
        master: &host("master.example.com"),
        master_ip: ip("2001:db8::100"),
        master_netmask: 64,
        nodes: &nodes,
        release_version: "0.1.0",
        master_certificate_sha256: None,
        candidates: &[],
    };
    let err = SsconfSet::from_cluster(&facts).unwrap_err();
    assert!(err.to_string().contains("is not IPv6"), "{err}");

    let mut nodes = hybrid_nodes();
    nodes[0].addresses.secondary = ip("2001:db8::77");
    let err = SsconfSet::from_cluster(&ClusterFacts {
        nodes: &nodes,
        ..facts.clone()
    })
    .unwrap_err();
    assert!(err.to_string().contains("must be an IPv4 address"), "{err}");

    let nodes = hybrid_nodes();
    let err = SsconfSet::from_cluster(&ClusterFacts {
        nodes: &nodes,
        master: &host("other.example.com"),
        ..facts.clone()
    })
    .unwrap_err();
    assert!(err.to_string().contains("is not a node"), "{err}");

    let err = SsconfSet::from_cluster(&ClusterFacts {
        nodes: &nodes,
        master_netmask: 0,
        ..facts.clone()
    })
    .unwrap_err();
    assert!(err.to_string().contains("netmask"), "{err}");
}

#[test]
fn wire_sets_refuse_unknown_keys_and_round_trip() {
    let set = hybrid_set();
    let wire: BTreeMap<String, String> = set.to_wire();
    assert_eq!(SsconfSet::from_wire(wire).unwrap(), set);
    let err = SsconfSet::from_wire([("cluster_name", "c"), ("bogus", "x")]).unwrap_err();
    assert_eq!(err.to_string(), "unknown ssconf key 'bogus'");
}

#[test]
fn cluster_name_verification_refuses_another_cluster() {
    let set = hybrid_set();
    set.verify_cluster_name(&host("cluster.example.com"))
        .unwrap();
    let err = set
        .verify_cluster_name(&host("other.example.com"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "this node belongs to cluster 'cluster.example.com', not to 'other.example.com'"
    );
    SsconfSet::new().verify_cluster_name(&host("any")).unwrap();
}

#[test]
fn nice_order_compares_digit_runs_as_numbers() {
    let mut names = vec![
        "node10", "node2", "node1", "node01", "a", "node", "node2b", "node2a",
    ];
    names.sort_by(|a, b| nice_cmp(a, b));
    assert_eq!(
        names,
        [
            "a", "node", "node1", "node01", "node2", "node2a", "node2b", "node10"
        ]
    );
}

proptest! {
    #[test]
    fn nice_order_is_a_total_order(a in "[a-c0-2]{0,6}", b in "[a-c0-2]{0,6}", c in "[a-c0-2]{0,6}") {
        prop_assert_eq!(nice_cmp(&a, &b), nice_cmp(&b, &a).reverse());
        prop_assert_eq!(nice_cmp(&a, &b) == Ordering::Equal, a == b);
        if nice_cmp(&a, &b) != Ordering::Greater && nice_cmp(&b, &c) != Ordering::Greater {
            prop_assert_ne!(nice_cmp(&a, &c), Ordering::Greater);
        }
    }

    #[test]
    fn typed_reads_never_panic_on_arbitrary_values(value in "\\PC{0,200}") {
        let mut set = SsconfSet::new();
        for key in SsconfKey::ALL {
            set.insert(*key, value.clone()).unwrap();
        }
        let _ = set.cluster_name();
        let _ = set.ip_policy();
        let _ = set.master_ip();
        let _ = set.master_netmask();
        let _ = set.node_primary_ips();
        let _ = set.node_secondary_ips();
        let _ = set.node_list();
    }
}

#[test]
fn a_member_set_must_hold_every_key_a_node_runs_on() {
    let full = hybrid_set();
    full.check_member().unwrap();
    for key in [
        SsconfKey::ClusterName,
        SsconfKey::PrimaryIpFamily,
        SsconfKey::MasterNode,
        SsconfKey::NodeList,
        SsconfKey::MasterCandidatesCerts,
    ] {
        let mut partial = full.clone();
        partial.remove(key);
        let err = partial.check_member().unwrap_err();
        assert!(
            err.to_string().contains(&format!("'{key}'")),
            "{key}: {err}"
        );
    }
    // The attack: a set naming the cluster and nothing else.
    let mut only_name = SsconfSet::new();
    only_name
        .insert(SsconfKey::ClusterName, "cluster.example.com")
        .unwrap();
    assert!(only_name.check_member().is_err());
    // An empty certificate list is no list: it never means "any master".
    let mut no_certs = full.clone();
    no_certs
        .insert(SsconfKey::MasterCandidatesCerts, "")
        .unwrap();
    assert!(no_certs.check_member().is_err());
    // A master that is not a node.
    let mut stray = full;
    stray
        .insert(SsconfKey::MasterNode, "elsewhere.example.com")
        .unwrap();
    let err = stray.check_member().unwrap_err();
    assert!(err.to_string().contains("is not in node_list"), "{err}");
}

#[test]
fn nul_bytes_and_extra_lines_in_single_line_keys_are_refused() {
    let mut set = SsconfSet::new();
    let err = set
        .insert(SsconfKey::ClusterName, "cluster\0.example.com")
        .unwrap_err();
    assert!(err.to_string().contains("NUL byte"), "{err}");
    let err = set
        .insert(
            SsconfKey::NodeList,
            "node1.example.com\nnode\u{0}2.example.com",
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("line 2: the value contains a NUL byte"),
        "{err}"
    );
    let err = set
        .insert(
            SsconfKey::MasterNode,
            "master.example.com\nother.example.com",
        )
        .unwrap_err();
    assert!(err.to_string().contains("expected a single line"), "{err}");
    // A trailing newline is not a second line; several lines are fine where items are listed.
    set.insert(SsconfKey::MasterNode, "master.example.com\n")
        .unwrap();
    set.insert(SsconfKey::NodeList, "node1.example.com\nnode2.example.com")
        .unwrap();
    assert_eq!(set.len(), 2);
}
