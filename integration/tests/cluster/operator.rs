//! What an operator sees (issue 14): output formats, refusals of calls that change node
//! state, and results that say what they mean.

use gnt_core::policy::IpPolicy;

use crate::master_ip::eventually;
use crate::support::{gnt_ok, running};

#[test]
fn node_info_in_json_is_the_object_node_list_gives() {
    let cluster = running(IpPolicy::HybridIpv6, 1);
    let list = gnt_ok(&cluster, &["node", "list", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let info = gnt_ok(&cluster, &["node", "info", "-o", "json", "node1.lab.test"]);
    let info: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(info["name"], "node1.lab.test", "{info}");
    assert_eq!(info["secondary_ip"], "10.78.0.11", "{info}");
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "node1.lab.test")
        .unwrap();
    assert_eq!(listed, &info);

    // Ganeti's fields, headers and flags, for scripts written for gnt-node list.
    let fields = gnt_ok(
        &cluster,
        &[
            "node",
            "list",
            "-o",
            "name,sip,master_candidate,role",
            "--no-headers",
            "--separator",
            "|",
        ],
    );
    assert_eq!(
        fields.stdout, "master.lab.test|10.78.0.10|Y|M\nnode1.lab.test|10.78.0.11|Y|C\n",
        "{fields}"
    );
    // Several nodes at once (short names, as anywhere): an array in JSON.
    let both = gnt_ok(&cluster, &["node", "info", "-o", "json", "master", "node1"]);
    let both: serde_json::Value = serde_json::from_str(&both.stdout).unwrap();
    assert_eq!(both.as_array().map(Vec::len), Some(2), "{both}");
    assert_eq!(both[1], info);
    let unknown = cluster.gnt(&["node", "list", "-o", "name,uuid"]).unwrap();
    assert_eq!(unknown.code, 2, "{unknown}");
    assert!(unknown.stderr.contains("unknown field 'uuid'"), "{unknown}");
}

#[test]
fn a_call_that_changes_node_state_needs_force_and_a_node_that_left_is_named_so() {
    let cluster = running(IpPolicy::HybridIpv6, 1);
    // Not on a terminal: refused in one line, nothing sent.
    let refused = cluster.gnt(&["rpc", "call", "LeaveCluster"]).unwrap();
    assert_eq!(refused.code, 64, "{refused}");
    assert_eq!(
        refused.stderr.trim(),
        "gnt: LeaveCluster would wipe the cluster state (ssconf, keys, certificates) and return to bootstrap mode on all 2 online nodes: add --force to call it",
        "{refused}"
    );
    let one = cluster
        .gnt(&["rpc", "call", "WriteTrust", "--nodes", "node1.lab.test"])
        .unwrap();
    assert!(
        one.stderr.contains(
            "WriteTrust would replace the trusted CAs on 1 node (node1.lab.test): add --force"
        ),
        "{one}"
    );
    gnt_ok(
        &cluster,
        &["rpc", "call", "Version", "--nodes", "node1.lab.test"],
    );

    gnt_ok(
        &cluster,
        &[
            "rpc",
            "call",
            "LeaveCluster",
            "--force",
            "--nodes",
            "node1.lab.test",
        ],
    );
    // The agent starts over in bootstrap mode: refused until it listens again.
    let version = || {
        cluster
            .gnt(&["rpc", "call", "Version", "--nodes", "node1.lab.test"])
            .unwrap()
    };
    eventually("node1 listens in bootstrap mode", || {
        !version().stdout.contains("connection refused")
    });
    let left = version();
    assert_eq!(left.code, 1, "{left}");
    assert!(
        left.stdout.contains(
            "TLS rejected: the node is not a member (it left the cluster, or was never joined): remove it with `gnt node remove` and add it again with `gnt node add`"
        ),
        "{left}"
    );
    // And the advice works.
    gnt_ok(&cluster, &["node", "remove", "node1.lab.test"]);
    cluster.stop_noded("node1", true).unwrap();
    let secondary = cluster.default_secondary("node1");
    let added = cluster.add_node("node1", secondary.as_deref()).unwrap();
    assert!(added.success(), "{added}");
    gnt_ok(
        &cluster,
        &["rpc", "call", "Version", "--nodes", "node1.lab.test"],
    );
}

#[test]
fn results_and_refusals_say_what_they_mean() {
    let cluster = running(IpPolicy::HybridIpv6, 1);
    let owned = |address: &str| {
        let request = format!(r#"{{"address":"{address}"}}"#);
        let out = gnt_ok(
            &cluster,
            &[
                "rpc",
                "call",
                "HasIpAddress",
                "--nodes",
                "node1.lab.test",
                "-d",
                &request,
                "-o",
                "json",
            ],
        );
        let answer: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        answer[0]["response"]["owned"].clone()
    };
    assert_eq!(owned("10.78.0.11"), true);
    assert_eq!(
        owned("10.78.0.12"),
        false,
        "not owned is said, not left out"
    );
    let tested = gnt_ok(
        &cluster,
        &["rpc", "call", "NetworkTest", "--nodes", "node1.lab.test"],
    );
    assert!(tested.stdout.contains(r#"{"verdicts":[]}"#), "{tested}");
    // An answer with something to say keeps the mapping's compact form.
    let version = gnt_ok(&cluster, &["rpc", "call", "Version", "--all"]);
    assert!(!version.stdout.contains("certificateSha256"), "{version}");

    let long = cluster
        .gnt(&["node", "token", "create", "--ttl", "45d"])
        .unwrap();
    assert_eq!(
        long.stderr.trim(),
        "gnt: invalid token lifetime: 45d: use 1 minute to 30 days",
        "{long}"
    );
}
