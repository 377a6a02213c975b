//! Crash tests of `gnt cluster renew-crypto` (issue 13): every defence of a renewal against
//! a crash has its attack here.
//!
//! - **gnt-masterd** killed (SIGKILL) at a random moment of a renewal of each kind in turn
//!   (`--new-master-certificate`, `--new-node-certificates`, `--new-cluster-certificate`, and
//!   the CA with node keys at once), then started again. The renewal must go on by itself
//!   (recovery, then the converger) or, when the kill came before its commit, have changed
//!   nothing (its job fails saying so, and the same renewal run again succeeds).
//! - **a node agent** killed at a random moment of `--new-node-certificates`, then started
//!   again: the renewal either finished before, or waits for that node and finishes once it
//!   answers.
//!
//! Once the renewal is over (no job queued or running, `master-retiring.key` gone), every
//! node answers `Version` through the master, presents a certificate of the master's
//! current CA to grpcurl and trusts that CA alone; the master's certificate is the one its
//! record lists; no `*.new` file is left in any state directory; `gnt cluster verify`
//! passes.
//!
//! Delays are drawn from `[0, T]`, `T` being how long the same renewal took in this lab
//! undisturbed (measured first), from a seeded generator shared with the other crash tests:
//! the seed is printed, and `GNT_CRASH_SEED` sets it (timing still varies from run to run).
//! Five rounds each by default, 50 with `GNT_LONG_TESTS=1`. No timing is asserted; every
//! wait is bounded.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use gnt_core::policy::IpPolicy;
use gnt_integration::binaries::locate;
use gnt_integration::cluster_lab::{ClusterLab, CommandOutput};
use gnt_master::config::{ClusterConfig, ConfigStore};
use gnt_master::jobs::JobRecord;
use gnt_master::pki::fingerprint_of_pem;
use gnt_transports::Identity;

use crate::crash::{Rng, rounds, seed};
use crate::renewal::grpcurl_with_ca;
use crate::support::{Running, files_under, gnt_ok, running};

/// The renewals gnt-masterd is killed in, in turn.
const KINDS: [&[&str]; 4] = [
    &["--new-master-certificate"],
    &["--new-node-certificates"],
    &["--new-cluster-certificate"],
    &["--new-cluster-certificate", "--new-node-certificates"],
];

/// How long a renewal may take to be over after a round: recovery, then the converger's
/// retries of a node that was down (at most 8 s apart), each call well under this.
const RENEWAL_PATIENCE: Duration = Duration::from_secs(60);

/// What recovery says of a renewal killed before its commit.
const CHANGED_NOTHING: &str = "changed nothing";

#[test]
fn killing_masterd_at_random_points_of_a_renewal_leaves_it_finished_or_undone() {
    let lab = RenewalLab::new(IpPolicy::HybridIpv6);
    let seed = seed();
    let mut rng = Rng(seed ^ 0x5eed_0013_0001);
    // The first renewal of a lab is slower than the others: one to warm up.
    lab.renew(KINDS[0]);
    let windows: Vec<Duration> = KINDS.iter().map(|kind| lab.renew(kind)).collect();
    eprintln!(
        "gnt-masterd (kill -9) during renew-crypto: seed {seed} (GNT_CRASH_SEED={seed} draws the same delays), undisturbed: {}",
        describe_windows(&windows)
    );
    for round in 1..=rounds() {
        let index = (round - 1) % KINDS.len();
        let kind = KINDS[index];
        let delay = rng.upto(windows[index]);
        let before = lab.last_job_id();
        let mut child = lab.spawn_renewal(kind);
        std::thread::sleep(delay);
        lab.cluster().stop_masterd_on("master", false).unwrap();
        // The client notices and exits; only then does a new master start, so that a
        // client still connecting cannot submit to it.
        wait_client(&mut child, Duration::from_secs(30));
        let stage = lab.stage(before);
        lab.cluster().start_masterd().unwrap();
        let job = lab.wait_renewal_over(before);
        let outcome = outcome_of(job.as_ref());
        eprintln!(
            "round {round}: {} killed after {delay:?} at stage '{stage}': {outcome}",
            kind.join(" ")
        );
        match &job {
            Some(job) if job["status"] == "success" => {}
            // Killed before the job was submitted, or before its commit: nothing happened,
            // and the same renewal must work now.
            None => {
                lab.renew(kind);
            }
            Some(job)
                if job["error"]
                    .as_str()
                    .is_some_and(|e| e.contains(CHANGED_NOTHING)) =>
            {
                lab.renew(kind);
            }
            Some(job) => panic!(
                "round {round} (seed {seed}): the renewal killed at stage '{stage}' ended as {outcome}\n{}",
                lab.job_info(job)
            ),
        }
        lab.check_all(&format!("round {round} (seed {seed}, {outcome})"));
    }
}

#[test]
fn killing_a_node_agent_at_random_points_of_its_renewal_delays_it_until_the_node_is_back() {
    let lab = RenewalLab::new(IpPolicy::Ipv4);
    let seed = seed();
    let mut rng = Rng(seed ^ 0x5eed_0013_0002);
    let kind: &[&str] = &["--new-node-certificates"];
    lab.renew(kind);
    let window = lab.renew(kind);
    eprintln!(
        "gnt-noded (kill -9) during renew-crypto --new-node-certificates: seed {seed} (GNT_CRASH_SEED={seed} draws the same delays), delays in [0, {window:?}]"
    );
    for round in 1..=rounds() {
        // The master's own agent too: its key is the one the master certificate is for.
        let victim = ["node1", "node2", "master"][(round - 1) % 3];
        let delay = rng.upto(window);
        let before = lab.last_job_id();
        let mut child = lab.spawn_renewal(kind);
        std::thread::sleep(delay);
        lab.cluster().stop_noded(victim, false).unwrap();
        let client = wait_client(&mut child, Duration::from_secs(60));
        let stage = lab.stage(before);
        if let Err(error) = lab.cluster().start_noded(victim, None) {
            panic!(
                "round {round} (seed {seed}): {victim}'s agent, killed after {delay:?}, does not start again: {error}\n{}",
                lab.log_tail(victim, "gnt-noded")
            );
        }
        let job = lab.wait_renewal_over(before);
        let outcome = outcome_of(job.as_ref());
        eprintln!(
            "round {round}: {victim} killed after {delay:?} at stage '{stage}', client exit {client:?}: {outcome}"
        );
        match &job {
            // Succeeded: finished before the kill, or waited for the node and the converger
            // finished it (the job says it waits; the configuration says it is over).
            Some(job) if job["status"] == "success" => {}
            // The master's agent killed while it made the master's new key, before the
            // commit: nothing happened.
            Some(job) if victim == "master" && job["status"] == "error" => {
                assert!(
                    lab.config().rollover.is_none(),
                    "round {round} (seed {seed}): the failed renewal left a rollover: {outcome}"
                );
                lab.renew(kind);
            }
            _ => panic!(
                "round {round} (seed {seed}): the renewal, {victim} killed at stage '{stage}', ended as {outcome}\n{}",
                job.as_ref().map(|j| lab.job_info(j)).unwrap_or_default()
            ),
        }
        let context = format!("round {round} (seed {seed}, {victim}, {outcome})");
        lab.check_node(victim, &context);
        lab.check_all(&context);
    }
}

/// Waits for the `gnt` client to exit, killing it after `patience`; its exit code.
fn wait_client(child: &mut Child, patience: Duration) -> Option<i32> {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn describe_windows(windows: &[Duration]) -> String {
    KINDS
        .iter()
        .zip(windows)
        .map(|(kind, took)| format!("{} {took:?}", kind.join(" ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A job's end in one line.
fn outcome_of(job: Option<&serde_json::Value>) -> String {
    match job {
        None => "no job was submitted".to_owned(),
        Some(job) => {
            let mut line = job["status"].as_str().unwrap_or("?").to_owned();
            for field in ["error", "recovery"] {
                if let Some(text) = job[field].as_str().filter(|t| !t.is_empty()) {
                    line.push_str(&format!(" ({field}: {text})"));
                }
            }
            line
        }
    }
}

/// A cluster of the master and two nodes, all added.
struct RenewalLab {
    running: Running,
    gnt: PathBuf,
}

impl RenewalLab {
    fn new(policy: IpPolicy) -> Self {
        Self {
            running: running(policy, 2),
            gnt: locate("gnt").unwrap(),
        }
    }

    fn cluster(&self) -> &ClusterLab {
        &self.running.cluster
    }

    fn master_dir(&self) -> PathBuf {
        self.cluster().state_dir("master").join("master")
    }

    /// A renewal of `kind`, undisturbed: it must finish. How long it took.
    fn renew(&self, kind: &[&str]) -> Duration {
        let started = Instant::now();
        let out = self.renewal(kind);
        let took = started.elapsed();
        assert!(out.success(), "{out}");
        assert!(out.stdout.contains("Renewal complete"), "{out}");
        took
    }

    fn renewal(&self, kind: &[&str]) -> CommandOutput {
        let mut args = vec!["cluster", "renew-crypto"];
        args.extend_from_slice(kind);
        self.cluster().gnt(&args).unwrap()
    }

    /// Starts a renewal of `kind` as a child process, `gnt` itself (`ip netns exec` execs
    /// it), so that it can be waited for while its master or a node is killed.
    fn spawn_renewal(&self, kind: &[&str]) -> Child {
        self.cluster()
            .host("master")
            .unwrap()
            .command(&self.gnt)
            .arg("--state-dir")
            .arg(self.cluster().state_dir("master"))
            .args(["cluster", "renew-crypto"])
            .args(kind)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn config(&self) -> ClusterConfig {
        ConfigStore::new(&self.master_dir()).load().unwrap()
    }

    fn jobs(&self) -> Vec<serde_json::Value> {
        let out = gnt_ok(self.cluster(), &["job", "list", "-o", "json"]);
        let list: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
        list.as_array().unwrap().clone()
    }

    fn last_job_id(&self) -> u64 {
        self.jobs()
            .iter()
            .filter_map(|j| j["id"].as_u64())
            .max()
            .unwrap_or(0)
    }

    /// Waits until no job is queued or running and the renewal is over (the master's
    /// previous key is gone); returns the first job submitted after job `before`.
    fn wait_renewal_over(&self, before: u64) -> Option<serde_json::Value> {
        let retiring = self.master_dir().join("master-retiring.key");
        let deadline = Instant::now() + RENEWAL_PATIENCE;
        loop {
            let jobs = self.jobs();
            let busy = jobs
                .iter()
                .any(|j| matches!(j["status"].as_str(), Some("queued" | "running")));
            if !busy && !retiring.exists() {
                return jobs
                    .into_iter()
                    .filter(|j| j["id"].as_u64().is_some_and(|id| id > before))
                    .min_by_key(|j| j["id"].as_u64());
            }
            if Instant::now() > deadline {
                let round: Vec<String> = jobs
                    .iter()
                    .filter(|j| j["id"].as_u64().is_some_and(|id| id > before))
                    .map(|j| self.job_info(j))
                    .collect();
                panic!(
                    "the renewal is not over after {RENEWAL_PATIENCE:?}: {} exists: {}, nodes still pending: {:?}\n{}",
                    retiring.display(),
                    retiring.exists(),
                    self.config().rollover.map(|r| r.pending),
                    round.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// How far the first job after job `before` had got, as its file says (read only: the
    /// master may be starting).
    fn stage(&self, before: u64) -> String {
        let dir = self.master_dir().join("jobs");
        let first = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let name = path.file_name()?.to_str()?;
                if name.starts_with('.') || !name.ends_with(".json") {
                    return None;
                }
                serde_json::from_slice::<JobRecord>(&std::fs::read(&path).ok()?).ok()
            })
            .filter(|job| job.id > before)
            .min_by_key(|job| job.id);
        match first {
            None => "no job".to_owned(),
            Some(job) if job.state.ended() => "ended".to_owned(),
            Some(job) => job
                .steps
                .last()
                .map_or("submitted", |s| s.step.name())
                .to_owned(),
        }
    }

    fn job_info(&self, job: &serde_json::Value) -> String {
        let id = job["id"].as_u64().unwrap_or_default().to_string();
        let info = self
            .cluster()
            .gnt(&["job", "info", &id])
            .map_or_else(|e| e.to_string(), |out| out.to_string());
        format!("{info}\n{}", self.log_tail("master", "gnt-masterd"))
    }

    /// The last lines of `host`'s log of `daemon`.
    fn log_tail(&self, host: &str, daemon: &str) -> String {
        let text = std::fs::read_to_string(self.cluster().log(host, daemon)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("--- {host}/{daemon}.log (end) ---\n{tail}")
    }

    /// `host` is a member presenting a certificate of the master's CA, for the key it
    /// holds, the one the configuration lists, with nothing of a renewal left beside it.
    fn check_node(&self, host: &str, context: &str) {
        let state = self.cluster().state_dir(host);
        let fqdn = ClusterLab::fqdn(host);
        let calls = self
            .cluster()
            .gnt(&["rpc", "call", "Version", "--nodes", &fqdn])
            .unwrap();
        assert!(
            calls.success(),
            "{context}: {host} is not a member: {calls}"
        );
        // The agent runs with it, which already shows that they fit; this says so alone.
        Identity::from_files(&state.join("node.pem"), &state.join("node.key"))
            .unwrap_or_else(|e| panic!("{context}: {host}'s node.key does not fit node.pem: {e}"));
        let presented =
            fingerprint_of_pem(&std::fs::read_to_string(state.join("node.pem")).unwrap()).unwrap();
        let listed = self
            .config()
            .nodes
            .iter()
            .find(|(name, _)| name.as_str() == fqdn)
            .map(|(_, node)| node.certificate_sha256.clone())
            .unwrap_or_default();
        assert!(
            presented.eq_ignore_ascii_case(&listed),
            "{context}: {host}'s node.pem is {presented}, the configuration lists {listed}"
        );
        for leftover in ["node.key.new", "node.pem.new"] {
            assert!(
                !state.join(leftover).exists(),
                "{context}: {host} still has {leftover}"
            );
        }
    }

    /// What every round must leave, once the renewal is over.
    fn check_all(&self, context: &str) {
        let calls = self.cluster().gnt(&["rpc", "call", "Version"]).unwrap();
        assert!(calls.success(), "{context}: {calls}");

        let config = self.config();
        assert!(
            config.rollover.is_none(),
            "{context}: the renewal is over, yet a rollover is recorded: {:?}",
            config.rollover
        );
        let master_dir = self.master_dir();
        let ca = master_dir.join("ca.pem");
        let ca_pem = std::fs::read_to_string(&ca).unwrap();
        for host in ["master", "node1", "node2"] {
            let (verified, text) = grpcurl_with_ca(self.cluster(), host, &ca);
            assert!(
                verified,
                "{context}: {host}'s certificate does not verify against the master's CA: {text}"
            );
            let trusted =
                std::fs::read_to_string(self.cluster().state_dir(host).join("ca.pem")).unwrap();
            assert_eq!(
                trusted.matches("BEGIN CERTIFICATE").count(),
                1,
                "{context}: {host} trusts more than one CA:\n{trusted}"
            );
            assert_eq!(
                trusted.trim(),
                ca_pem.trim(),
                "{context}: {host} trusts another CA than the master's"
            );
        }

        // The master presents the certificate its record lists, for the key beside it.
        let master_pem = std::fs::read_to_string(master_dir.join("master.pem")).unwrap();
        Identity::from_files(
            &master_dir.join("master.pem"),
            &master_dir.join("master.key"),
        )
        .unwrap_or_else(|e| panic!("{context}: master.key does not fit master.pem: {e}"));
        let listed = config
            .master()
            .map(|m| m.master_certificate_sha256.clone())
            .unwrap_or_default();
        let presented = fingerprint_of_pem(&master_pem).unwrap();
        assert!(
            presented.eq_ignore_ascii_case(&listed),
            "{context}: master.pem is {presented}, the master's record lists {listed}"
        );

        for host in ["master", "node1", "node2"] {
            let left = files_under(&self.cluster().state_dir(host), |path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|name| {
                        name.ends_with(".new") || name.starts_with("master-retiring")
                    })
            });
            assert!(
                left.is_empty(),
                "{context}: the renewal left {left:?} behind"
            );
        }
        // A node down when the renewal's last ssconf went out lags until the converger's
        // next try (a few seconds after it is back): that is the converger's business, not
        // the renewal's, so verify is given that long.
        let deadline = Instant::now() + RENEWAL_PATIENCE;
        loop {
            let verify = self.cluster().gnt(&["cluster", "verify"]).unwrap();
            if verify.success() {
                break;
            }
            assert!(Instant::now() < deadline, "{context}: {verify}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
