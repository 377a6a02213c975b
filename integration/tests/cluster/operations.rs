//! The runner against offline and dead nodes, verify against a cut link, grpcurl on the
//! master socket, and concurrent operator commands.

use std::thread;

use gnt_core::policy::IpPolicy;
use gnt_integration::grpcurl::grpcurl;
use gnt_integration::lab::Network;

use crate::support::{gnt_ok, rpc_statuses, running, serial};

#[test]
fn the_runner_skips_offline_nodes_and_reports_a_dead_agent_while_the_others_answer() {
    let cluster = running(IpPolicy::HybridIpv6, 3);

    // node2 offline, and its agent stopped: if any traffic went there, the call would be
    // "refused", not "offline".
    gnt_ok(
        &cluster,
        &["node", "modify", "--offline", "yes", "node2.lab.test"],
    );
    cluster.stop_noded("node2", true).unwrap();
    let (statuses, code) = rpc_statuses(&cluster, "Version", &["--all"]);
    assert_eq!(code, 0, "offline is not a failure: {statuses:?}");
    assert!(
        statuses.contains(&("node2.lab.test".to_owned(), "offline".to_owned())),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|(_, s)| s == "ok").count(),
        3,
        "{statuses:?}"
    );
    // The offline node is out of every online node's ssconf list.
    let online =
        std::fs::read_to_string(cluster.state_dir("node1").join("ssconf_online_nodes")).unwrap();
    assert!(!online.contains("node2"), "{online}");

    // node3's agent killed: its call fails, the others succeed.
    cluster.stop_noded("node3", false).unwrap();
    let out = cluster.gnt(&["rpc", "call", "Version", "--all"]).unwrap();
    assert_eq!(out.code, 1, "{out}");
    let node3 = out
        .stdout
        .lines()
        .find(|l| l.starts_with("node3.lab.test"))
        .unwrap();
    assert!(node3.contains("refused"), "{node3}");
    assert!(node3.contains("connection refused"), "{node3}");
    assert!(
        out.stdout.lines().filter(|l| l.contains(" ok ")).count() == 2,
        "{out}"
    );

    // Restarted, from its state alone, it answers again.
    cluster.start_noded("node3", None).unwrap();
    let (statuses, code) = rpc_statuses(
        &cluster,
        "Version",
        &["--nodes", "node3.lab.test,node1.lab.test"],
    );
    assert_eq!(code, 0, "{statuses:?}");
    assert_eq!(statuses.len(), 2);

    // Back online; its agent too.
    cluster.start_noded("node2", None).unwrap();
    gnt_ok(
        &cluster,
        &["node", "modify", "--offline", "no", "node2.lab.test"],
    );
    let (statuses, code) = rpc_statuses(&cluster, "Version", &[]);
    assert_eq!(code, 0);
    assert!(statuses.iter().all(|(_, s)| s == "ok"), "{statuses:?}");

    // A procedure call with an invalid request or an unknown procedure is refused clearly.
    let out = cluster.gnt(&["rpc", "call", "Reboot"]).unwrap();
    assert_eq!(out.code, 67, "{out}");
    assert!(
        out.stderr
            .contains("no procedure 'Reboot' in gnt.node.v1.NodeAgent"),
        "{out}"
    );
    let out = cluster
        .gnt(&[
            "rpc",
            "call",
            "TcpPing",
            "-d",
            r#"{"target":"10.78.0.12","port":1811,"source":"10.78.0.10"}"#,
            "--nodes",
            "master.lab.test",
        ])
        .unwrap();
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("\"alive\":true"), "{out}");
}

#[test]
fn cluster_verify_names_a_cut_secondary_link() {
    let cluster = running(IpPolicy::HybridIpv6, 2);
    gnt_ok(&cluster, &["cluster", "verify"]);
    cluster.lab().cut_link("node2", Network::Secondary).unwrap();
    let out = cluster.gnt(&["cluster", "verify"]).unwrap();
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains(
            "ERROR:ENODENET:secondary: node master.lab.test: tcp communication with node 'node2.lab.test' on the secondary network failed"
        ),
        "{out}"
    );
    assert!(
        !out.stdout.contains("ENODENET:primary"),
        "the primary network works: {out}"
    );
    cluster
        .lab()
        .restore_link("node2", Network::Secondary)
        .unwrap();
    gnt_ok(&cluster, &["cluster", "verify"]);
}

#[test]
fn grpcurl_lists_and_calls_the_master_api_over_its_unix_socket() {
    let cluster = running(IpPolicy::HybridIpv6, 1);
    let socket = cluster
        .state_dir("master")
        .join("master")
        .join("master.sock");
    let socket = socket.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = cluster
            .host("master")
            .unwrap()
            .command(grpcurl().unwrap())
            .args(["-plaintext", "-unix", "-authority", "localhost"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let list = run(&[socket, "list"]);
    assert!(list.lines().any(|l| l == "gnt.master.v1.Master"), "{list}");
    let info = run(&["-d", "{}", socket, "gnt.master.v1.Master/ClusterInfo"]);
    assert!(
        info.contains("\"clusterName\": \"cluster.lab.test\""),
        "{info}"
    );
    let nodes = run(&["-d", "{}", socket, "gnt.master.v1.Master/ListNodes"]);
    assert!(nodes.contains("node1.lab.test"), "{nodes}");
    let me = run(&["-d", "{}", socket, "gnt.diag.v1.Diagnostics/WhoAmI"]);
    assert!(me.contains("\"transport\": \"unix\""), "{me}");
}

#[test]
fn concurrent_operator_commands_are_serialised() {
    let cluster = running(IpPolicy::HybridIpv6, 0);
    let before = serial(&cluster);
    let tokens: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = (0..6)
            .map(|_| scope.spawn(|| cluster.token().unwrap()))
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut distinct = tokens.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "{tokens:?}");
    assert_eq!(
        serial(&cluster),
        before + 6,
        "every change got its own serial"
    );
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            cluster
                .state_dir("master")
                .join("master")
                .join("config.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["join_tokens"].as_array().unwrap().len(),
        6,
        "no change was lost"
    );
    let stored = config.to_string();
    for token in &tokens {
        assert!(
            !stored.contains(&token[7..]),
            "a token secret was stored in clear"
        );
    }
}
