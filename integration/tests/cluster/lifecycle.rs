//! Whole clusters, hybrid and IPv4: init, add, list, fan-out, verify, removal.

use gnt_core::policy::IpPolicy;
use gnt_integration::cluster_lab::ClusterLab;

use crate::support::{gnt_ok, node_names, rpc_statuses, running, serial, ssconf};

#[test]
fn a_hybrid_cluster_from_init_to_verify_to_node_removal() {
    let cluster = running(IpPolicy::HybridIpv6, 3);
    assert_eq!(
        node_names(&cluster),
        [
            "master.lab.test",
            "node1.lab.test",
            "node2.lab.test",
            "node3.lab.test"
        ]
    );
    // Every node listens dual-stack and carries the hybrid policy in its ssconf.
    for host in ["master", "node1", "node3"] {
        let ss = cluster.host(host).unwrap().run("ss", &["-ltnH"]).unwrap();
        assert!(
            String::from_utf8_lossy(&ss.stdout).contains("*:1811"),
            "{host}: {ss:?}"
        );
        assert_eq!(
            ssconf(&cluster, host, "primary_ip_family").as_deref(),
            Some("10\n")
        );
    }
    let primaries = ssconf(&cluster, "node1", "node_primary_ips").unwrap();
    assert!(
        primaries.contains("node3.lab.test fd00:77::13"),
        "{primaries}"
    );
    let secondaries = ssconf(&cluster, "node1", "node_secondary_ips").unwrap();
    assert!(
        secondaries.contains("node3.lab.test 10.78.0.13"),
        "{secondaries}"
    );

    let (statuses, code) = rpc_statuses(&cluster, "Version", &["--all"]);
    assert_eq!(code, 0);
    assert_eq!(statuses.len(), 4);
    assert!(statuses.iter().all(|(_, s)| s == "ok"), "{statuses:?}");
    let verify = gnt_ok(&cluster, &["cluster", "verify"]);
    assert!(
        verify.stdout.contains("Cluster verify passed: 4 nodes"),
        "{verify}"
    );

    let before = serial(&cluster);
    let removed = gnt_ok(&cluster, &["node", "remove", "node3.lab.test"]);
    assert!(
        removed.stdout.contains("Node node3.lab.test removed"),
        "{removed}"
    );
    assert!(removed.stderr.is_empty(), "no warnings expected: {removed}");
    assert_eq!(serial(&cluster), before + 1);
    assert_eq!(node_names(&cluster).len(), 3);
    // node3 left: its cluster state is gone; the others no longer list it.
    assert_eq!(ssconf(&cluster, "node3", "cluster_name"), None);
    assert!(!cluster.state_dir("node3").join("node.pem").exists());
    let list = ssconf(&cluster, "node1", "node_list").unwrap();
    assert_eq!(list, "master.lab.test\nnode1.lab.test\nnode2.lab.test\n");
    gnt_ok(&cluster, &["cluster", "verify"]);
    let refused = cluster.gnt(&["node", "remove", "master.lab.test"]).unwrap();
    assert_eq!(refused.code, 76, "{refused}");
    assert!(
        refused.stderr.contains("cannot remove the master node"),
        "{refused}"
    );
}

#[test]
fn an_ipv4_cluster_from_init_to_verify_to_node_removal() {
    let cluster = running(IpPolicy::Ipv4, 2);
    assert_eq!(node_names(&cluster).len(), 3);
    for host in ["master", "node2"] {
        let ss = cluster.host(host).unwrap().run("ss", &["-ltnH"]).unwrap();
        assert!(
            String::from_utf8_lossy(&ss.stdout).contains("0.0.0.0:1811"),
            "{host}: {ss:?}"
        );
        assert_eq!(
            ssconf(&cluster, host, "primary_ip_family").as_deref(),
            Some("2\n")
        );
    }
    // Single-homed like its master: the secondary is the primary.
    let secondaries = ssconf(&cluster, "master", "node_secondary_ips").unwrap();
    assert!(
        secondaries.contains("node2.lab.test 10.77.0.12"),
        "{secondaries}"
    );
    let (statuses, code) = rpc_statuses(&cluster, "Version", &[]);
    assert_eq!((statuses.len(), code), (3, 0), "{statuses:?}");
    gnt_ok(&cluster, &["cluster", "verify"]);
    gnt_ok(&cluster, &["node", "remove", "node2.lab.test"]);
    assert_eq!(node_names(&cluster), ["master.lab.test", "node1.lab.test"]);
    gnt_ok(&cluster, &["cluster", "verify"]);
    // A dual-homed node cannot join a single-homed IPv4 cluster (refused before any traffic;
    // node2's agent, back in bootstrap mode since it left, is not even contacted).
    let secondary = ClusterLab::secondary("node2").to_string();
    let token = cluster.token().unwrap();
    let out = cluster
        .gnt(&[
            "node",
            "add",
            "--join-token",
            &token,
            "-s",
            &secondary,
            "node2.lab.test",
        ])
        .unwrap();
    assert_eq!(out.code, 64, "{out}");
    assert!(
        out.stderr
            .contains("The master has no secondary ip but the new node has one"),
        "{out}"
    );
}

#[test]
fn a_master_that_refuses_its_configuration_is_reported_at_once_with_its_reason() {
    let cluster = running(IpPolicy::Ipv4, 0);
    cluster.stop_masterd().unwrap();
    let config = cluster.state_dir("master").join("master/config.json");
    std::fs::write(&config, "{ not a configuration").unwrap();

    let err = cluster.start_masterd().unwrap_err().to_string();
    assert!(err.contains("gnt-masterd on master exited"), "{err}");
    assert!(
        err.contains("config.json"),
        "the reason is not quoted: {err}"
    );
}
