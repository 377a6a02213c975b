//! Operations as jobs, seen by the operator: `--submit` and `gnt job list|info|watch`, a
//! failed job, reads that do not wait behind a running job, a frozen node that holds a job
//! only as long as the Join's time limit, a node that joined this cluster already taken
//! in again by `gnt node add` without wiping it, and a redistribution cut short by
//! `kill -9` of gnt-masterd sent again when it restarts.

use std::time::{Duration, Instant};

use gnt_core::policy::IpPolicy;
use gnt_integration::cluster_lab::ClusterLab;

use crate::support::{
    Running, empty, empty_with_masterd_args, gnt_ok, held_certificate, node_names, running, serial,
    ssconf_published,
};

/// A cluster of the master alone, in a lab with one more host (node1) not added.
fn master_and_a_spare_host(policy: IpPolicy) -> Running {
    let cluster = empty(policy, 1, &[]);
    assert!(cluster.init().unwrap().success());
    cluster.start_noded("master", None).unwrap();
    cluster.start_masterd().unwrap();
    cluster
}

/// The job id `gnt ... --submit` printed.
fn job_id(stdout: &str) -> String {
    stdout
        .trim()
        .strip_prefix("JobID: ")
        .unwrap_or_else(|| panic!("no job id in {stdout:?}"))
        .to_owned()
}

/// Job `id` as `gnt job list -o json` shows it.
fn listed(cluster: &ClusterLab, id: &str) -> serde_json::Value {
    let out = gnt_ok(cluster, &["job", "list", "-o", "json"]);
    let jobs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    jobs.as_array()
        .unwrap()
        .iter()
        .find(|job| job["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
        .unwrap_or_else(|| panic!("job {id} is not listed: {jobs:#}"))
        .clone()
}

/// Waits (at most 60 s) until job `id` has ended; returns its status.
fn wait_ended(cluster: &ClusterLab, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = listed(cluster, id)["status"].as_str().unwrap().to_owned();
        if status != "queued" && status != "running" {
            return status;
        }
        assert!(Instant::now() < deadline, "job {id} is still {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_submitted_job_runs_on_its_own_and_gnt_job_shows_every_step() {
    let cluster = master_and_a_spare_host(IpPolicy::Ipv4);
    let token = cluster.token().unwrap();
    cluster.start_noded("node1", Some(&token)).unwrap();

    let submitted = gnt_ok(
        &cluster,
        &[
            "node",
            "add",
            "--submit",
            "--join-token",
            &token,
            "node1.lab.test",
        ],
    );
    let id = job_id(&submitted.stdout);
    let watched = gnt_ok(&cluster, &["job", "watch", &id]);
    for step in [
        "checked: primary 10.77.0.11, secondary 10.77.0.11",
        "joining",
        "joined: certificate ",
        "version-checked",
        "committed: configuration serial",
        "distributed: every online node has the new ssconf",
    ] {
        assert!(
            watched.stdout.contains(&format!("job {id}: {step}")),
            "{step}: {watched}"
        );
    }
    assert!(
        watched.stdout.contains("Result:    node added"),
        "{watched}"
    );
    assert!(node_names(&cluster).contains(&"node1.lab.test".to_owned()));

    let info = gnt_ok(&cluster, &["job", "info", &id]);
    assert!(
        info.stdout.contains("Operation: add node node1.lab.test"),
        "{info}"
    );
    assert!(info.stdout.contains("Status:    success"), "{info}");
    let job = listed(&cluster, &id);
    assert_eq!(job["summary"], "add node node1.lab.test", "{job}");

    // A job that fails says why, and the CLI fails as the job did.
    let refused = cluster.gnt(&["node", "remove", "nosuch.lab.test"]).unwrap();
    assert_eq!(refused.code, 67, "{refused}");
    assert!(
        refused
            .stderr
            .contains("Node nosuch.lab.test is not in the configuration"),
        "{refused}"
    );
    let out = gnt_ok(&cluster, &["job", "list", "-o", "json"]);
    let jobs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let last = jobs.as_array().unwrap().last().unwrap();
    assert_eq!(last["status"], "error", "{last}");
    assert_eq!(last["summary"], "remove node nosuch.lab.test", "{last}");

    let unknown = cluster.gnt(&["job", "info", "999999"]).unwrap();
    assert_eq!(unknown.code, 67, "{unknown}");
    assert!(
        unknown.stderr.contains("job 999999 does not exist"),
        "{unknown}"
    );
}

/// Sends `signal` (`-STOP`, `-CONT`) to process `key` of the lab.
fn signal(cluster: &ClusterLab, key: &str, signal: &str) {
    let pid = cluster.pid(key).unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {key}");
}

/// Waits (at most 15 s) until job `id` runs.
fn wait_running(cluster: &ClusterLab, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while listed(cluster, id)["status"] != "running" {
        assert!(Instant::now() < deadline, "job {id} never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reads_do_not_wait_for_a_job_held_up_by_a_frozen_node_and_the_join_has_a_time_limit() {
    let cluster = master_and_a_spare_host(IpPolicy::Ipv4);
    let token = cluster.token().unwrap();
    cluster.start_noded("node1", Some(&token)).unwrap();
    // Frozen, its port still accepts connections (the kernel answers): the add passes the
    // reachability check and then waits for the Join's answer.
    signal(&cluster, "node1/gnt-noded", "-STOP");
    let submitted = gnt_ok(
        &cluster,
        &[
            "node",
            "add",
            "--submit",
            "--join-token",
            &token,
            "node1.lab.test",
        ],
    );
    let id = job_id(&submitted.stdout);
    wait_running(&cluster, &id);
    // Each read answers while the job is still running.
    gnt_ok(&cluster, &["node", "list"]);
    gnt_ok(&cluster, &["cluster", "info"]);
    gnt_ok(&cluster, &["node", "token", "create"]);
    assert_eq!(listed(&cluster, &id)["status"], "running");
    // The node never answers: the TLS handshake's time limit (10 s, within the Join's
    // 30 s) ends the job, and the queue moves on.
    assert_eq!(wait_ended(&cluster, &id), "error");
    let info = gnt_ok(&cluster, &["job", "info", &id]);
    assert!(
        info.stdout.contains("joining node1.lab.test failed")
            && info.stdout.contains("TLS handshake timed out"),
        "{info}"
    );
    signal(&cluster, "node1/gnt-noded", "-CONT");
    // The thawed node never saw the Join: the same token adds it.
    let added = gnt_ok(
        &cluster,
        &["node", "add", "--join-token", &token, "node1.lab.test"],
    );
    assert!(
        added.stdout.contains("Node node1.lab.test added"),
        "{added}"
    );
}

#[test]
fn a_node_removed_while_offline_is_taken_in_again_by_node_add() {
    let cluster = running(IpPolicy::HybridIpv6, 1);
    // Short names, as Ganeti expands them; a typo gets a suggestion.
    let typo = cluster.gnt(&["node", "info", "nod1"]).unwrap();
    assert_eq!(typo.code, 67, "{typo}");
    assert!(
        typo.stderr
            .contains("Node nod1 is not in the configuration; did you mean node1.lab.test?"),
        "{typo}"
    );
    gnt_ok(&cluster, &["node", "modify", "--offline", "yes", "node1"]);
    let removed = gnt_ok(&cluster, &["node", "remove", "node1.lab.test"]);
    assert!(
        removed
            .stderr
            .contains("is offline and was not told to leave"),
        "{removed}"
    );
    assert_eq!(node_names(&cluster), vec!["master.lab.test".to_owned()]);

    // node1 still holds its certificate and state: it is a member that the configuration
    // does not list. A new add takes it in as it is, after it proves it over mutual TLS.
    let token = cluster.token().unwrap();
    let added = gnt_ok(
        &cluster,
        &[
            "node",
            "add",
            "--join-token",
            &token,
            "-s",
            "10.78.0.11",
            "node1.lab.test",
        ],
    );
    assert!(
        added.stdout.contains("Node node1.lab.test added"),
        "{added}"
    );
    let fingerprint = held_certificate(&cluster, "node1");
    let info = gnt_ok(&cluster, &["node", "info", "node1.lab.test"]);
    assert!(info.stdout.contains(&fingerprint), "{info}\n{fingerprint}");
    let verify = gnt_ok(&cluster, &["cluster", "verify"]);
    assert!(verify.stdout.contains("Cluster verify passed"), "{verify}");
}

#[test]
fn a_redistribution_cut_short_by_kill_9_of_the_master_is_sent_again_when_it_restarts() {
    // No converger: only the job's recovery can bring node2 up to date.
    let cluster = empty_with_masterd_args(IpPolicy::Ipv4, 2, &["--converge-interval", "0"]);
    assert!(cluster.init().unwrap().success());
    cluster.start_noded("master", None).unwrap();
    cluster.start_masterd().unwrap();
    for node in ["node1", "node2"] {
        let secondary = cluster.default_secondary(node);
        let added = cluster.add_node(node, secondary.as_deref()).unwrap();
        assert!(added.success(), "{added}");
    }
    cluster.stop_noded("node2", true).unwrap();
    gnt_ok(
        &cluster,
        &["node", "modify", "--offline", "yes", "node1.lab.test"],
    );
    cluster.start_noded("node2", None).unwrap();
    let current = serial(&cluster);
    assert!(ssconf_published(&cluster, "node2").serial < current);

    // Frozen, node2 holds the redistribution open while gnt-masterd is killed.
    signal(&cluster, "node2/gnt-noded", "-STOP");
    let submitted = gnt_ok(&cluster, &["cluster", "redist-conf", "--submit"]);
    let id = job_id(&submitted.stdout);
    wait_running(&cluster, &id);
    cluster.stop_process("master/gnt-masterd", false).unwrap();
    signal(&cluster, "node2/gnt-noded", "-CONT");
    assert_eq!(listed_after_restart(&cluster, &id), "running");

    cluster.start_masterd().unwrap();
    assert_eq!(wait_ended(&cluster, &id), "success");
    let info = gnt_ok(&cluster, &["job", "info", &id]);
    assert!(
        info.stdout
            .contains("Recovery:  interrupted: the configuration's ssconf sent again"),
        "{info}"
    );
    assert_eq!(ssconf_published(&cluster, "node2").serial, current);
}

/// Job `id`'s status as its file says, read while no gnt-masterd runs.
fn listed_after_restart(cluster: &ClusterLab, id: &str) -> String {
    let path = cluster
        .state_dir("master")
        .join("master/jobs")
        .join(format!("{:010}.json", id.parse::<u64>().unwrap()));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    record["state"].as_str().unwrap().to_owned()
}
