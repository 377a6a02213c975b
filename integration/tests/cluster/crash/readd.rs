//! `gnt-masterd` killed (SIGKILL) at random moments of `gnt node add --readd` of a
//! reinstalled node (its state wiped, its agent waiting with a new token), then restarted.
//! Once no job is queued or running:
//!
//! - the node is a member exactly when the re-add's job succeeded;
//! - a member presents the certificate the configuration lists for it (else the master
//!   would keep a record `verify` calls wrong, and a candidate a master certificate for a
//!   key the node no longer has);
//! - every member's ssconf is the configuration's.
//!
//! Where the re-add did not happen, running it again with the same token must work; then
//! `gnt cluster verify` must pass. Delays, rounds and the seed as in the other crash tests.

use std::time::{Duration, Instant};

use super::lab::{CrashLab, ssconf_agrees, wait_or_kill};
use super::{Rng, SUBJECT, rounds};
use crate::support::{gnt_ok, held_certificate};

#[test]
fn killing_masterd_at_random_points_of_node_readd_leaves_node_and_record_agreeing() {
    let lab = CrashLab::new();
    let token = lab.fresh_token();
    lab.run(super::Op::Add, &token);
    let mut took: Vec<Duration> = (0..3)
        .map(|_| {
            let token = lab.reinstall();
            let started = Instant::now();
            gnt_ok(lab.cluster(), &CrashLab::readd_args(&token));
            started.elapsed()
        })
        .collect();
    took.sort();
    let window = took[1];
    let mut rng = Rng(lab.seed ^ 0x5eed_f4ea);
    eprintln!(
        "readd: seed {} (GNT_CRASH_SEED draws the same delays), delays in [0, {window:?}]",
        lab.seed
    );
    let mut stages = Vec::new();
    for round in 1..=rounds() {
        let token = lab.reinstall();
        let delay = rng.upto(window);
        let before = lab.last_job_id();
        let mut child = lab
            .cluster()
            .host("master")
            .unwrap()
            .command(lab.gnt_path())
            .arg("--state-dir")
            .arg(lab.cluster().state_dir("master"))
            .args(CrashLab::readd_args(&token))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        lab.cluster()
            .stop_process("master/gnt-masterd", false)
            .unwrap();
        wait_or_kill(&mut child, Duration::from_secs(30));
        let stage = lab.stage(before);
        lab.cluster().start_masterd().unwrap();
        lab.wait_idle();
        stages.push(stage);

        let job = lab
            .jobs()
            .into_iter()
            .find(|j| j["id"].as_u64().is_some_and(|id| id > before));
        let succeeded = job.as_ref().is_some_and(|j| j["status"] == "success");
        let member = lab.member(SUBJECT);
        let config = lab.config();
        let record = config
            .nodes
            .iter()
            .find(|(name, _)| name.as_str() == CrashLab::name())
            .map(|(_, record)| record.clone())
            .expect("a re-add never takes the node out of the configuration");
        let context = || {
            format!(
                "round {round}, killed after {delay:?} at stage {stage}:\n{}",
                lab.job_info(job.as_ref())
            )
        };
        if job.is_some() {
            assert_eq!(member, succeeded, "member vs job: {}", context());
        }
        let stale: Vec<String> = ssconf_agrees(lab.cluster(), &config)
            .into_iter()
            .filter(|line| member || !line.starts_with(&format!("{SUBJECT}:")))
            .collect();
        assert!(stale.is_empty(), "stale ssconf {stale:?}: {}", context());
        if member {
            assert_eq!(
                record.certificate_sha256,
                held_certificate(lab.cluster(), SUBJECT),
                "the record lists another certificate than the node's: {}",
                context()
            );
        } else {
            gnt_ok(lab.cluster(), &CrashLab::readd_args(&token));
        }
        gnt_ok(lab.cluster(), &["cluster", "verify"]);
    }
    eprintln!("readd rounds killed at stages: {stages:?}");
}

impl CrashLab {
    /// The subject reinstalled: its agent killed, its state gone, the agent started again
    /// waiting for a Join with a new token (returned).
    fn reinstall(&self) -> String {
        let cluster = self.cluster();
        cluster.stop_noded(SUBJECT, false).unwrap();
        std::fs::remove_dir_all(cluster.state_dir(SUBJECT)).unwrap();
        let token = self.fresh_token();
        let token_file = cluster.state_dir(SUBJECT).with_file_name("join-token");
        let token_file = token_file.to_str().unwrap().to_owned();
        cluster
            .start_noded_with(SUBJECT, None, &["--join-token-file", &token_file])
            .unwrap();
        token
    }

    fn readd_args(token: &str) -> [&str; 6] {
        ["node", "add", "--readd", "--join-token", token, SUBJECT]
    }
}
