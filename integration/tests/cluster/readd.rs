//! `gnt node add --readd` (issue 14): a node the configuration lists is taken back, after a
//! reinstall with a new token and a new certificate, or while still a member without one;
//! and the refusals that change nothing.

use gnt_core::policy::IpPolicy;

use crate::support::{empty_but_join_ledger, gnt_ok, held_certificate, running, serial, ssconf};

/// `node info -o json` of `name`.
fn info(cluster: &gnt_integration::cluster_lab::ClusterLab, name: &str) -> serde_json::Value {
    let out = gnt_ok(cluster, &["node", "info", "-o", "json", name]);
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn a_reinstalled_node_is_taken_back_with_a_new_certificate_and_its_roles() {
    let cluster = running(IpPolicy::HybridIpv6, 2);
    let before = info(&cluster, "node2");
    assert_eq!(before["master_candidate"], true, "{before}");
    gnt_ok(&cluster, &["node", "modify", "--offline", "yes", "node2"]);

    // The reinstall: the agent dies with the host, its state is gone, the new system
    // starts gnt-noded with a token.
    cluster.stop_noded("node2", false).unwrap();
    std::fs::remove_dir_all(cluster.state_dir("node2")).unwrap();
    let token = cluster.token().unwrap();
    cluster.start_noded("node2", Some(&token)).unwrap();
    let serial_before = serial(&cluster);

    let refusals = [
        (
            vec![
                "node",
                "add",
                "--join-token",
                &token,
                "-s",
                "10.78.0.12",
                "node2.lab.test",
            ],
            66,
            "gnt: Node node2.lab.test is already in the configuration; to take it back in (e.g. after a reinstall), use `gnt node add --readd`",
        ),
        (
            vec!["node", "add", "--readd", "--join-token", &token, "master"],
            76,
            "gnt: Cannot readd the master node",
        ),
        (
            vec![
                "node",
                "add",
                "--readd",
                "--join-token",
                &token,
                "-s",
                "10.78.0.99",
                "node2",
            ],
            64,
            "gnt: Readded node doesn't have the same IP address configuration as before: its secondary is 10.78.0.12, not 10.78.0.99; change it with `gnt node modify --secondary-ip` once the node is back",
        ),
        (
            vec!["node", "add", "--readd", "node9"],
            67,
            "gnt: Node node9 is not in the configuration; did you mean node1.lab.test?",
        ),
    ];
    for (args, code, message) in refusals {
        let out = cluster.gnt(&args).unwrap();
        assert_eq!(out.code, code, "{out}");
        assert_eq!(out.stderr.trim(), message, "{out}");
    }
    // Without a token, a reinstalled node cannot prove it is a member: the refusal says
    // what to do.
    let tokenless = cluster.gnt(&["node", "add", "--readd", "node2"]).unwrap();
    assert_eq!(tokenless.code, 76, "{tokenless}");
    assert_eq!(
        tokenless.stderr.trim(),
        "gnt: node2.lab.test does not prove it is a member of this cluster (it presents a self-signed certificate: it has no membership (it left the cluster, or waits for a Join)); if it was reinstalled, start its gnt-noded with a join token (`gnt node token create`) and give that token with --join-token",
        "{tokenless}"
    );
    assert_eq!(
        serial(&cluster),
        serial_before,
        "a refusal changed the configuration"
    );

    let readd = gnt_ok(
        &cluster,
        &["node", "add", "--readd", "--join-token", &token, "node2"],
    );
    assert!(
        readd.stdout.starts_with(
            "Node node2.lab.test re-added (primary fd00:77::12, secondary 10.78.0.12)"
        ),
        "{readd}"
    );
    let after = info(&cluster, "node2");
    assert_eq!(after["offline"], false, "{after}");
    assert_eq!(after["master_candidate"], true, "{after}");
    let presented = held_certificate(&cluster, "node2");
    assert_eq!(after["certificate_sha256"], presented.as_str(), "{after}");
    assert_ne!(after["certificate_sha256"], before["certificate_sha256"]);
    // A candidate again: its master copy is back, and the others list it online.
    assert!(cluster.state_dir("node2").join("master-copy.json").exists());
    let online = ssconf(&cluster, "node1", "online_nodes").unwrap();
    assert!(online.lines().any(|l| l == "node2.lab.test"), "{online}");
    gnt_ok(&cluster, &["rpc", "call", "Version", "--nodes", "node2"]);
    gnt_ok(&cluster, &["cluster", "verify"]);
    // The token is spent on the re-add.
    let tokens = gnt_ok(&cluster, &["node", "token", "list"]);
    assert!(tokens.stdout.contains("node2.lab.test"), "{tokens}");
}

#[test]
fn a_member_that_was_offline_is_taken_back_without_a_token() {
    let cluster = running(IpPolicy::Ipv4, 1);
    let before = info(&cluster, "node1");
    gnt_ok(&cluster, &["node", "modify", "--offline", "yes", "node1"]);
    assert_eq!(info(&cluster, "node1")["master_candidate"], false);

    let readd = gnt_ok(&cluster, &["node", "add", "--readd", "node1"]);
    assert!(
        readd.stdout.starts_with("Node node1.lab.test re-added"),
        "{readd}"
    );
    let after = info(&cluster, "node1");
    assert_eq!(after["offline"], false, "{after}");
    assert_eq!(after["master_candidate"], true, "{after}");
    // It proved its membership with the certificate it had.
    assert_eq!(after["certificate_sha256"], before["certificate_sha256"]);
    let offline = ssconf(&cluster, "master", "offline_nodes").unwrap_or_default();
    assert!(!offline.contains("node1.lab.test"), "{offline}");
    gnt_ok(&cluster, &["rpc", "call", "Version", "--nodes", "node1"]);
    gnt_ok(&cluster, &["cluster", "verify"]);

    // A re-add clears the drained flag too, as Ganeti's does.
    gnt_ok(&cluster, &["node", "modify", "--drained", "yes", "node1"]);
    gnt_ok(&cluster, &["node", "add", "--readd", "node1"]);
    let undrained = info(&cluster, "node1");
    assert_eq!(undrained["drained"], false, "{undrained}");
    assert_eq!(undrained["master_candidate"], true, "{undrained}");
}

#[test]
fn a_node_restored_from_an_old_state_is_not_taken_back_without_a_new_join() {
    let cluster = running(IpPolicy::Ipv4, 1);
    let state = cluster.state_dir("node1");
    let backup = tempfile::tempdir().unwrap();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", from.display()))
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success());
    };
    copy(&state, backup.path());
    // A reinstall and a re-add: a new key and certificate.
    cluster.stop_noded("node1", false).unwrap();
    std::fs::remove_dir_all(&state).unwrap();
    let token = cluster.token().unwrap();
    cluster.start_noded("node1", Some(&token)).unwrap();
    gnt_ok(
        &cluster,
        &["node", "add", "--readd", "--join-token", &token, "node1"],
    );
    let renewed = info(&cluster, "node1");

    // The host comes back from the backup: a key and certificate of our CA, for its
    // name, that the cluster replaced.
    cluster.stop_noded("node1", false).unwrap();
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    copy(backup.path(), &state);
    cluster.start_noded("node1", None).unwrap();
    let serial_before = serial(&cluster);
    let refused = cluster.gnt(&["node", "add", "--readd", "node1"]).unwrap();
    assert_eq!(refused.code, 76, "{refused}");
    assert!(
        refused
            .stderr
            .contains("which is not the one the configuration lists: it runs from an older state"),
        "{refused}"
    );
    assert_eq!(
        serial(&cluster),
        serial_before,
        "the refusal changed the configuration"
    );
    assert_eq!(info(&cluster, "node1"), renewed);

    // The advice: an empty state (but the join ledger), a new token, a re-add with it.
    cluster.stop_noded("node1", false).unwrap();
    empty_but_join_ledger(&state);
    let token = cluster.token().unwrap();
    cluster.start_noded("node1", Some(&token)).unwrap();
    gnt_ok(
        &cluster,
        &["node", "add", "--readd", "--join-token", &token, "node1"],
    );
    gnt_ok(&cluster, &["cluster", "verify"]);
}
