//! Nodes that fail without going away: a frozen agent (SIGSTOP) keeps its TCP connection
//! open (the kernel still acknowledges), so only the master's HTTP/2 keepalive can tell.

use std::time::{Duration, Instant};

use gnt_core::policy::IpPolicy;
use gnt_core::runner::TimeoutClass;

use crate::support::{rpc_statuses, running};

/// Sends `signal` (`STOP`, `CONT`) to `host`'s gnt-noded.
fn signal_noded(cluster: &gnt_integration::cluster_lab::ClusterLab, host: &str, signal: &str) {
    let pid = cluster.pid(&format!("{host}/gnt-noded")).unwrap();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

#[test]
fn a_frozen_node_fails_its_call_with_no_answer_well_within_the_timeout_class() {
    let cluster = running(IpPolicy::HybridIpv6, 2);
    // The master's channels to every node are open, as on a cluster in use.
    let (statuses, code) = rpc_statuses(&cluster, "Version", &["--all"]);
    assert_eq!(code, 0, "{statuses:?}");

    signal_noded(&cluster, "node1", "STOP");
    let started = Instant::now();
    let out = cluster
        .gnt(&["rpc", "call", "Version", "--all", "-o", "json"])
        .unwrap();
    let took = started.elapsed();
    signal_noded(&cluster, "node1", "CONT");

    assert_eq!(out.code, 1, "{out}");
    let results: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let results = results.as_array().unwrap();
    let frozen = results
        .iter()
        .find(|r| r["node"] == "node1.lab.test")
        .unwrap();
    eprintln!("frozen node reported after {took:?}: {frozen}");
    assert_eq!(frozen["status"], "timed out", "{frozen}");
    let failure = frozen["failure"].as_str().unwrap();
    assert!(failure.starts_with("no answer within "), "{failure}");
    assert!(
        !failure.contains("http2") && !failure.contains("keep-alive"),
        "raw HTTP/2 text: {failure}"
    );
    // Detected by the keepalive, far inside the shortest class (60 s), not by the class.
    let shortest = TimeoutClass::Urgent.duration();
    assert!(took < shortest / 2, "{took:?} for a {shortest:?} class");
    assert!(
        results
            .iter()
            .filter(|r| r["node"] != "node1.lab.test")
            .all(|r| r["status"] == "ok"),
        "{out}"
    );

    // Thawed, it answers again through a new connection.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (statuses, code) = rpc_statuses(&cluster, "Version", &["--nodes", "node1.lab.test"]);
        if code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node1 stayed silent: {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
