//! The crash tests' cluster: the master, a bystander node that stays, and the subject
//! node added and removed round after round, and what the tests read from them.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use gnt_core::policy::IpPolicy;
use gnt_core::ssconf::SsconfStore;
use gnt_integration::binaries::locate;
use gnt_integration::cluster_lab::ClusterLab;
use gnt_master::config::{ClusterConfig, ConfigStore};
use gnt_master::jobs::JobRecord;

use super::{BYSTANDER, Op, SUBJECT, seed};
use crate::support::{Running, empty, gnt_ok};

/// How long jobs may take to end after a round (recovery asks an unreachable node for up
/// to 10 s; a redistribution call may take its timeout class).
const IDLE_PATIENCE: Duration = Duration::from_secs(120);

/// A cluster of the master, the bystander (added), and the subject's agent in bootstrap
/// mode, reading its token from a file at every Join.
pub(super) struct CrashLab {
    running: Running,
    gnt: PathBuf,
    token_file: PathBuf,
    pub(super) seed: u64,
}

impl CrashLab {
    pub(super) fn new() -> Self {
        let running = empty(IpPolicy::HybridIpv6, 2, &[]);
        let cluster = &running.cluster;
        let init = cluster.init().unwrap();
        assert!(init.success(), "{init}");
        cluster.start_noded("master", None).unwrap();
        cluster.start_masterd().unwrap();
        let secondary = cluster.default_secondary(BYSTANDER);
        let added = cluster.add_node(BYSTANDER, secondary.as_deref()).unwrap();
        assert!(added.success(), "{added}");
        let token_file = cluster.state_dir(SUBJECT).with_file_name("join-token");
        let token_arg = token_file.to_str().unwrap().to_owned();
        cluster
            .start_noded_with(SUBJECT, None, &["--join-token-file", &token_arg])
            .unwrap();
        Self {
            running,
            gnt: locate("gnt").unwrap(),
            token_file,
            seed: seed(),
        }
    }

    /// The `gnt` binary.
    pub(super) fn gnt_path(&self) -> &std::path::Path {
        &self.gnt
    }

    pub(super) fn cluster(&self) -> &ClusterLab {
        &self.running.cluster
    }

    pub(super) fn name() -> String {
        ClusterLab::fqdn(SUBJECT)
    }

    /// A new token, written where the subject's agent reads it.
    pub(super) fn fresh_token(&self) -> String {
        use std::os::unix::fs::PermissionsExt;
        let token = self.cluster().token().unwrap();
        std::fs::write(&self.token_file, format!("{token}\n")).unwrap();
        std::fs::set_permissions(&self.token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        token
    }

    pub(super) fn op_args(&self, op: Op, token: &str) -> Vec<String> {
        let mut args: Vec<String> = match op {
            Op::Add => ["node", "add", "--join-token", token]
                .map(String::from)
                .into(),
            Op::Remove => vec!["node".into(), "remove".into()],
        };
        if op == Op::Add
            && let Some(secondary) = self.cluster().default_secondary(SUBJECT)
        {
            args.extend(["-s".to_owned(), secondary]);
        }
        args.push(Self::name());
        args
    }

    /// Runs the operation to its end, uninterrupted; it must succeed.
    pub(super) fn run(&self, op: Op, token: &str) -> Duration {
        let args = self.op_args(op, token);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let out = self.cluster().gnt(&args).unwrap();
        let took = started.elapsed();
        assert!(out.success(), "{out}");
        took
    }

    /// Starts the operation as a child process, `gnt` itself (`ip netns exec` execs it).
    pub(super) fn spawn(&self, op: Op, token: &str) -> Child {
        self.cluster()
            .host("master")
            .unwrap()
            .command(&self.gnt)
            .arg("--state-dir")
            .arg(self.cluster().state_dir("master"))
            .args(self.op_args(op, token))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    pub(super) fn config(&self) -> ClusterConfig {
        ConfigStore::new(&self.cluster().state_dir("master").join("master"))
            .load()
            .unwrap()
    }

    /// Whether `host`'s own state makes it a member (the agent's rule: ssconf names a
    /// cluster).
    pub(super) fn member(&self, host: &str) -> bool {
        let set = SsconfStore::new(self.cluster().state_dir(host))
            .read()
            .unwrap_or_else(|e| panic!("{host}'s ssconf: {e}"));
        !set.is_empty()
    }

    pub(super) fn jobs(&self) -> Vec<serde_json::Value> {
        let out = gnt_ok(self.cluster(), &["job", "list", "-o", "json"]);
        let list: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
        list.as_array().unwrap().clone()
    }

    pub(super) fn last_job_id(&self) -> u64 {
        self.jobs()
            .iter()
            .filter_map(|j| j["id"].as_u64())
            .max()
            .unwrap_or(0)
    }

    /// Waits until no job is queued or running, twice in a row (a submission from a client
    /// killed at that moment may still be arriving).
    pub(super) fn wait_idle(&self) {
        let deadline = Instant::now() + IDLE_PATIENCE;
        let mut idle_polls = 0;
        while idle_polls < 2 {
            let busy: Vec<_> = self
                .jobs()
                .into_iter()
                .filter(|j| matches!(j["status"].as_str(), Some("queued" | "running")))
                .collect();
            idle_polls = if busy.is_empty() { idle_polls + 1 } else { 0 };
            assert!(Instant::now() < deadline, "jobs never ended: {busy:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How long the operation takes in this lab: the median of three uninterrupted runs
    /// (the first run of a lab is slower than the others).
    pub(super) fn measure(&self, op: Op) -> Duration {
        let mut took: Vec<Duration> = (0..3)
            .map(|_| {
                let token = self.fresh_token();
                let add = self.run(Op::Add, &token);
                let remove = self.run(Op::Remove, "");
                if op == Op::Add { add } else { remove }
            })
            .collect();
        took.sort();
        took[1]
    }

    /// How far the job submitted after job `before` had got, as its file says: its last
    /// step, or where it was without one. The files are only read: `JobStore::load_all`
    /// removes the temporary files of writes it takes for a killed master's, and a master
    /// still running (when only the client was killed) then failed to rename its own.
    pub(super) fn stage(&self, before: u64) -> &'static str {
        let dir = self.cluster().state_dir("master").join("master/jobs");
        let jobs: Vec<JobRecord> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let name = path.file_name()?.to_str()?;
                if name.starts_with('.') || !name.ends_with(".json") {
                    return None;
                }
                serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
            })
            .collect();
        match jobs
            .iter()
            .filter(|job| job.id > before)
            .min_by_key(|job| job.id)
        {
            None => "no job",
            Some(job) if job.state.ended() => "ended",
            Some(job) => job.steps.last().map_or("submitted", |s| s.step.name()),
        }
    }

    pub(super) fn job_info(&self, job: Option<&serde_json::Value>) -> String {
        match job.and_then(|j| j["id"].as_u64()) {
            Some(id) => self
                .cluster()
                .gnt(&["job", "info", &id.to_string()])
                .map_or_else(|e| e.to_string(), |out| out.to_string()),
            None => "(no job was submitted)".to_owned(),
        }
    }
}

/// Waits for `child` to exit, killing it after `patience`.
pub(super) fn wait_or_kill(child: &mut Child, patience: Duration) {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Every online node of `config` whose ssconf, in its state directory, is not
/// `config`'s: each as "host: why". The serial is what the master and `verify` go by; the
/// set is compared too, so a set sent under the right serial but built from another
/// configuration would be caught.
pub(super) fn ssconf_agrees(cluster: &ClusterLab, config: &ClusterConfig) -> Vec<String> {
    let wanted = config.ssconf().unwrap();
    let mut stale = Vec::new();
    for (name, node) in &config.nodes {
        if node.offline {
            continue;
        }
        let host = name.as_str().split('.').next().unwrap_or_default();
        let published = match SsconfStore::new(cluster.state_dir(host)).read_published() {
            Ok(published) => published,
            Err(error) => {
                stale.push(format!("{host}: unreadable ssconf: {error}"));
                continue;
            }
        };
        if published.serial != config.serial {
            stale.push(format!(
                "{host}: ssconf serial {}, the configuration's is {}",
                published.serial, config.serial
            ));
            continue;
        }
        let have = published.set;
        if have == wanted {
            continue;
        }
        let differing: Vec<&str> = wanted
            .iter()
            .filter(|(key, value)| have.get(*key) != Some(*value))
            .map(|(key, _)| key.as_str())
            .chain(
                have.iter()
                    .filter(|(key, _)| wanted.get(*key).is_none())
                    .map(|(key, _)| key.as_str()),
            )
            .collect();
        stale.push(format!("{host}: differs in {}", differing.join(", ")));
    }
    stale
}
