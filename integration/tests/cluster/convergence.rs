//! Convergence: a node that missed a redistribution catches up by itself once it answers
//! again; `gnt cluster verify` names a node whose ssconf lags (ENODESSCONF); `gnt cluster
//! redist-conf` sends the set now.

use std::time::{Duration, Instant};

use gnt_core::policy::IpPolicy;
use gnt_core::ssconf::SsconfKey;
use gnt_integration::cluster_lab::ClusterLab;

use crate::support::{empty_with_masterd_args, gnt_ok, running, serial, ssconf_published};

/// Lines of the master daemon's log that mention `node` and `text`.
fn masterd_log_lines(cluster: &ClusterLab, node: &str, text: &str) -> usize {
    let log = std::fs::read_to_string(cluster.log("master", "gnt-masterd")).unwrap();
    log.lines()
        .filter(|l| l.contains(&format!("node={node}")) && l.contains(text))
        .count()
}

#[test]
fn a_node_that_missed_a_redistribution_is_current_within_seconds_of_coming_back() {
    let cluster = running(IpPolicy::HybridIpv6, 2);
    let before = ssconf_published(&cluster, "node2");
    assert_eq!(before.serial, serial(&cluster), "current after the adds");

    // node2's agent is down while a change is redistributed: node1 goes offline, which
    // takes it out of every node's `online_nodes`.
    cluster.stop_noded("node2", true).unwrap();
    gnt_ok(
        &cluster,
        &["node", "modify", "--offline", "yes", "node1.lab.test"],
    );
    let target = serial(&cluster);
    let stale = ssconf_published(&cluster, "node2");
    assert_eq!(stale.serial, before.serial, "node2 missed the change");
    let online = stale.set.get(SsconfKey::OnlineNodes).unwrap_or_default();
    assert!(online.contains("node1.lab.test"), "{online}");

    // Down long enough for the converger's retries of node2 to reach their bound.
    std::thread::sleep(Duration::from_secs(12));
    cluster.start_noded("node2", None).unwrap();
    let back = Instant::now();
    loop {
        if ssconf_published(&cluster, "node2").serial == target {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "node2 is still behind {:?} after coming back",
            back.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "node2 held the current ssconf {:?} after its agent came back",
        back.elapsed()
    );
    let current = ssconf_published(&cluster, "node2");
    assert_eq!(current, ssconf_published(&cluster, "master"));
    let online = current.set.get(SsconfKey::OnlineNodes).unwrap_or_default();
    assert!(!online.contains("node1.lab.test"), "{online}");

    // Logged per state change, not per retry: once when it was found behind, once when it
    // was brought up to date (logged once the node's answer is in, so just after its files
    // change), however many retries in between.
    let logged = Instant::now();
    while masterd_log_lines(&cluster, "node2.lab.test", "brought up to date") == 0
        && logged.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        masterd_log_lines(&cluster, "node2.lab.test", "brought up to date"),
        1
    );
    assert_eq!(
        masterd_log_lines(&cluster, "node2.lab.test", "is not current"),
        1
    );
    gnt_ok(&cluster, &["cluster", "verify"]);
}

#[test]
fn verify_names_a_node_with_a_stale_ssconf_and_redist_conf_fixes_it() {
    // No converger: node2 stays behind until the operator acts.
    let cluster = empty_with_masterd_args(IpPolicy::HybridIpv6, 2, &["--converge-interval", "0"]);
    assert!(cluster.init().unwrap().success());
    assert_eq!(
        ssconf_published(&cluster, "master").serial,
        1,
        "init writes the master's own node with serial 1"
    );
    cluster.start_noded("master", None).unwrap();
    cluster.start_masterd().unwrap();
    for node in ["node1", "node2"] {
        let secondary = cluster.default_secondary(node);
        let added = cluster.add_node(node, secondary.as_deref()).unwrap();
        assert!(added.success(), "{added}");
        // The set Join brought already carried the serial the add committed.
        let log = std::fs::read_to_string(cluster.log(node, "gnt-noded")).unwrap();
        let joined = format!("ssconf=serial {} of master epoch 1", serial(&cluster));
        assert!(
            log.lines()
                .any(|l| l.contains("member of the cluster") && l.contains(&joined)),
            "{node}: {log}"
        );
    }
    gnt_ok(&cluster, &["cluster", "verify"]);

    cluster.stop_noded("node2", true).unwrap();
    gnt_ok(
        &cluster,
        &["node", "modify", "--offline", "yes", "node1.lab.test"],
    );
    cluster.start_noded("node2", None).unwrap();
    let (held, current) = (ssconf_published(&cluster, "node2").serial, serial(&cluster));
    assert!(held < current, "{held} < {current}");

    let out = cluster.gnt(&["cluster", "verify"]).unwrap();
    assert_eq!(out.code, 1, "{out}");
    let expected = format!(
        "  - ERROR:ENODESSCONF: node node2.lab.test: ssconf is out of date: serial {held}, the configuration's is {current}"
    );
    assert!(out.stdout.contains(&expected), "{out}");
    // node2 is a master candidate: its copy is behind too.
    let expected = format!(
        "  - ERROR:ENODEMASTERCOPY: node node2.lab.test: its master copy is serial {held} of master epoch 1, the configuration is serial {current} of master epoch 1"
    );
    assert!(out.stdout.contains(&expected), "{out}");
    assert_eq!(
        out.stdout.matches("ERROR:").count(),
        2,
        "only node2's ssconf and copy: {out}"
    );

    let out = gnt_ok(&cluster, &["cluster", "redist-conf"]);
    assert!(
        out.stdout.contains(&format!(
            "Sending the ssconf of configuration serial {current} to every online node:"
        )),
        "{out}"
    );
    let status = |out: &str, node: &str| {
        out.lines()
            .find(|l| l.starts_with(node))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
    };
    assert_eq!(status(&out.stdout, "node2.lab.test").as_deref(), Some("ok"));
    assert_eq!(
        status(&out.stdout, "node1.lab.test").as_deref(),
        Some("offline")
    );
    assert_eq!(ssconf_published(&cluster, "node2").serial, current);
    let verify = gnt_ok(&cluster, &["cluster", "verify"]);
    assert!(
        verify.stdout.contains(&format!(
            "Cluster verify passed: 2 nodes reach each other on both networks and hold the ssconf of configuration serial {current}."
        )),
        "{verify}"
    );

    // A node that does not take it is named, and the command fails.
    cluster.stop_noded("node2", true).unwrap();
    let out = cluster.gnt(&["cluster", "redist-conf"]).unwrap();
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        status(&out.stdout, "node2.lab.test").as_deref(),
        Some("refused")
    );
    assert!(out.stdout.contains("1 node did not take it"), "{out}");

    // It is a job like every change: --submit returns its id, and the job's record tells
    // the same story.
    let out = gnt_ok(&cluster, &["cluster", "redist-conf", "--submit"]);
    let id = out
        .stdout
        .trim()
        .strip_prefix("JobID: ")
        .unwrap_or_else(|| panic!("no job id: {out}"))
        .to_owned();
    let watched = gnt_ok(&cluster, &["job", "watch", &id]);
    assert!(
        watched
            .stdout
            .contains("distributed: 1 node did not take the new ssconf yet")
            && watched
                .stdout
                .contains("Warning:   node2.lab.test did not take it: connection refused"),
        "{watched}"
    );
    let info = gnt_ok(&cluster, &["job", "info", &id]);
    assert!(
        info.stdout
            .contains("Operation: redistribute the configuration")
            && info.stdout.contains("Status:    success")
            && info.stdout.contains(&format!(
                "Result:    ssconf of configuration serial {current} sent"
            )),
        "{info}"
    );
}
