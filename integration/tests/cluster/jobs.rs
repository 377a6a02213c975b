//! Operations as jobs, seen by the operator: `--submit` and `gnt job list|info|watch`, a
//! failed job, reads that do not wait behind a running job, a frozen node that holds a job
//! only as long as the Join's time limit, and a node that joined this cluster already taken
//! in again by `gnt node add` without wiping it.

use std::time::{Duration, Instant};

use gnt_core::policy::IpPolicy;
use gnt_integration::cluster_lab::ClusterLab;

use crate::support::{Running, empty, gnt_ok, node_names, running};

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

#[test]
fn reads_do_not_wait_for_a_job_held_up_by_a_frozen_node_and_the_join_has_a_time_limit() {
    let cluster = master_and_a_spare_host(IpPolicy::Ipv4);
    let token = cluster.token().unwrap();
    cluster.start_noded("node1", Some(&token)).unwrap();
    let pid = cluster.pid("node1/gnt-noded").unwrap().to_string();
    // Frozen, its port still accepts connections (the kernel answers): the add passes the
    // reachability check and then waits for the Join's answer.
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
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
    let deadline = Instant::now() + Duration::from_secs(15);
    while !listed(&cluster, &id).to_string().contains("running") {
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(50));
    }
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
    signal("-CONT");
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
    gnt_ok(
        &cluster,
        &["node", "modify", "--offline", "yes", "node1.lab.test"],
    );
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
    let certificate = std::fs::read(cluster.state_dir("node1").join("node.pem")).unwrap();
    let fingerprint = gnt_transports::fingerprint(
        &gnt_transports::Pem::from_bytes("node1", certificate)
            .leaf_sha256()
            .unwrap(),
    );
    let info = gnt_ok(&cluster, &["node", "info", "node1.lab.test"]);
    assert!(info.stdout.contains(&fingerprint), "{info}\n{fingerprint}");
    let verify = gnt_ok(&cluster, &["cluster", "verify"]);
    assert!(verify.stdout.contains("Cluster verify passed"), "{verify}");
}
