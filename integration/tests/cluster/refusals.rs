//! In a hybrid cluster, every refused node add says why and changes nothing: not the
//! configuration, not the node's state, not the token.

use std::net::IpAddr;

use gnt_core::policy::IpPolicy;

use crate::support::{empty, gnt_ok, node_names, serial};

#[test]
fn refused_node_adds_say_why_and_change_nothing() {
    let v4_only: [IpAddr; 1] = ["10.77.0.50".parse().unwrap()];
    let cluster = empty(IpPolicy::HybridIpv6, 2, &[("v4only.lab.test", &v4_only)]);
    // The master and node1; node2 waits with a valid token for all the refused attempts.
    cluster.init().unwrap();
    cluster.start_noded("master", None).unwrap();
    cluster.start_masterd().unwrap();
    let node1 = cluster.add_node("node1", Some("10.78.0.11")).unwrap();
    assert!(node1.success(), "{node1}");
    let token = cluster.token().unwrap();
    cluster.start_noded("node2", Some(&token)).unwrap();

    let serial_before = serial(&cluster);
    let nodes_before = node_names(&cluster);
    let node2_state = cluster.state_dir("node2");
    let node2_files_before = files(&node2_state);

    let add = |token: &str, secondary: Option<&str>, name: &str| {
        let mut args = vec!["node", "add", "--join-token", token];
        if let Some(secondary) = secondary {
            args.extend(["-s", secondary]);
        }
        args.push(name);
        cluster.gnt(&args).unwrap()
    };
    let bad_secret = format!("{}.ffffffffffffffff", &token[..6]);
    let cases: Vec<(&str, gnt_integration::cluster_lab::CommandOutput, i32, &str)> = vec![
        (
            "a host with only IPv4",
            add(&token, Some("10.78.0.50"), "v4only.lab.test"),
            68,
            "The given name (v4only.lab.test) does not resolve: the name 'v4only.lab.test' has no IPv6 address; it resolves to IPv4 only: 10.77.0.50",
        ),
        (
            "a node without -s",
            add(&token, None, "node2.lab.test"),
            64,
            "When using a IPv6 primary address, a valid IPv4 address must be given as secondary",
        ),
        (
            "an IPv6 secondary",
            add(&token, Some("fd00:77::12"), "node2.lab.test"),
            64,
            "Secondary IP (fd00:77::12) needs to be a valid IPv4 address",
        ),
        (
            "a duplicate address",
            add(&token, Some("10.78.0.11"), "node2.lab.test"),
            65,
            "New node ip address(es) conflict with existing node node1.lab.test (10.78.0.11 is already its address)",
        ),
        (
            "an unreachable secondary",
            add(&token, Some("10.78.0.99"), "node2.lab.test"),
            71,
            "Node secondary ip not reachable by TCP based ping to node daemon port: 10.78.0.99 port 1811 from 10.78.0.10",
        ),
        (
            "a bad token",
            add(&bad_secret, Some("10.78.0.12"), "node2.lab.test"),
            78,
            "does not match the stored one",
        ),
        (
            "an unknown token",
            add(
                "zzzzzz.0123456789abcdef",
                Some("10.78.0.12"),
                "node2.lab.test",
            ),
            78,
            "unknown join token 'zzzzzz'",
        ),
        (
            "a malformed token",
            add("not-a-token", Some("10.78.0.12"), "node2.lab.test"),
            64,
            "invalid join token",
        ),
        (
            "a node already in the cluster",
            add(&token, Some("10.78.0.11"), "node1.lab.test"),
            66,
            "Node node1.lab.test is already in the configuration",
        ),
    ];
    for (what, out, code, message) in cases {
        assert_eq!(out.code, code, "{what}: {out}");
        assert!(out.stderr.contains(message), "{what}: {out}");
        assert_eq!(out.stderr.lines().count(), 1, "{what}: one line: {out}");
        assert_eq!(
            serial(&cluster),
            serial_before,
            "{what}: the configuration changed"
        );
        assert_eq!(node_names(&cluster), nodes_before, "{what}");
        assert_eq!(
            files(&node2_state),
            node2_files_before,
            "{what}: node2's state changed"
        );
    }

    // After all that, the valid token still adds node2.
    let added = add(&token, Some("10.78.0.12"), "node2.lab.test");
    assert!(added.success(), "{added}");
    let reused = add(&token, Some("10.78.0.12"), "node2.lab.test");
    assert_eq!(reused.code, 66, "{reused}");
    // Spent tokens are refused as such (the node is gone, the token stays spent).
    gnt_ok(&cluster, &["node", "remove", "node2.lab.test"]);
    let again = add(&token, Some("10.78.0.12"), "node2.lab.test");
    assert_eq!(again.code, 78, "{again}");
    assert!(
        again
            .stderr
            .contains("was already used to add node2.lab.test; tokens are single-use"),
        "{again}"
    );
}

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
