//! A real cluster in the lab: a master host and N node hosts, each with an IPv6 and an IPv4
//! address on the primary network and an IPv4 address on the secondary network, running the
//! real `gnt-noded`, `gnt-masterd` and `gnt`. Used by the master's end-to-end tests and by
//! the demo.
//!
//! Host `master` has number 10, `nodeK` 10+K: addresses `fd00:77::N`, `10.77.0.N` and
//! (secondary) `10.78.0.N`. The cluster name `cluster.lab.test` resolves to `fd00:77::100` and
//! `10.77.0.100`, which no host has. Daemons log to `<dir>/<host>/*.log`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gnt_core::policy::IpPolicy;

use crate::binaries::{MissingBinary, locate};
use crate::lab::{HostSpec, Lab, LabError, LabHost, LabProcess};

mod master_ip;
mod master_role;
mod output;

pub use output::CommandOutput;

/// The cluster's name.
pub const CLUSTER_NAME: &str = "cluster.lab.test";

/// What went wrong building or driving the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterLabError {
    /// The lab failed.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// A binary is missing.
    #[error(transparent)]
    Binary(#[from] MissingBinary),
    /// A file or process failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// Why.
        source: std::io::Error,
    },
    /// A step failed.
    #[error("{0}")]
    Step(String),
}

/// The cluster.
pub struct ClusterLab {
    lab: Lab,
    dir: PathBuf,
    policy: IpPolicy,
    gnt: PathBuf,
    masterd: PathBuf,
    noded: PathBuf,
    fd_limit: Option<u64>,
    masterd_args: Vec<String>,
    processes: Mutex<BTreeMap<String, LabProcess>>,
    /// Where `gnt` and gnt-masterd run (see `master_role`).
    master_host: Mutex<String>,
}

impl fmt::Debug for ClusterLab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterLab")
            .field("lab", &self.lab.id())
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The IPv6 group that reads like `n` in decimal: host 11 is `fd00:77::11`, as it is
/// `10.77.0.11`.
fn v6_group(n: u8) -> u16 {
    u16::from_str_radix(&n.to_string(), 16).unwrap_or(u16::from(n))
}

fn number(host: &str) -> u8 {
    match host.strip_prefix("node").and_then(|n| n.parse::<u8>().ok()) {
        Some(n) => 10 + n,
        None => 10,
    }
}

impl ClusterLab {
    /// A lab with a master and `nodes` nodes, files under `dir` (which must exist). Nothing
    /// runs yet.
    pub fn new(dir: &Path, policy: IpPolicy, nodes: u8) -> Result<Self, ClusterLabError> {
        Self::with_aliases(dir, policy, nodes, &[])
    }

    /// Like [`new`](Self::new), with extra names in every hosts file (for names without a
    /// host, or resolving in one family only).
    pub fn with_aliases(
        dir: &Path,
        policy: IpPolicy,
        nodes: u8,
        aliases: &[(&str, &[IpAddr])],
    ) -> Result<Self, ClusterLabError> {
        let mut builder = Lab::builder().alias(
            CLUSTER_NAME,
            &[
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0x100)),
                IpAddr::V4(Ipv4Addr::new(10, 77, 0, 100)),
            ],
        );
        for (name, addresses) in aliases {
            builder = builder.alias(name, addresses);
        }
        for host in
            std::iter::once("master".to_owned()).chain((1..=nodes).map(|k| format!("node{k}")))
        {
            let n = number(&host);
            builder = builder.host(
                HostSpec::new(&host)
                    .ipv6(Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, v6_group(n)))
                    .ipv4(Ipv4Addr::new(10, 77, 0, n))
                    .secondary(Ipv4Addr::new(10, 78, 0, n)),
            );
        }
        let lab = builder.build()?;
        for host in lab.hosts() {
            std::fs::create_dir_all(dir.join(host.name())).map_err(|source| {
                ClusterLabError::Io {
                    action: format!("create {}", dir.join(host.name()).display()),
                    source,
                }
            })?;
        }
        Ok(Self {
            lab,
            dir: dir.to_owned(),
            policy,
            gnt: locate("gnt")?,
            masterd: locate("gnt-masterd")?,
            noded: locate("gnt-noded")?,
            fd_limit: None,
            masterd_args: Vec::new(),
            processes: Mutex::new(BTreeMap::new()),
            master_host: Mutex::new("master".to_owned()),
        })
    }

    /// Starts every daemon with `limit` as its open-file limit, soft and hard (systemd's
    /// default soft limit is 1,024), through `prlimit`, which sets it and then runs the
    /// daemon in its own process.
    pub fn with_fd_limit(mut self, limit: u64) -> Self {
        self.fd_limit = Some(limit);
        self
    }

    /// Starts gnt-masterd with `args` besides its state directory (for example
    /// `--converge-interval 0`).
    pub fn with_masterd_args(mut self, args: &[&str]) -> Self {
        self.masterd_args = args.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// The lab underneath.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// The cluster's policy.
    pub fn policy(&self) -> IpPolicy {
        self.policy
    }

    /// A host.
    pub fn host(&self, name: &str) -> Result<&LabHost, ClusterLabError> {
        Ok(self.lab.host(name)?)
    }

    /// The state directory of `host`'s daemons.
    pub fn state_dir(&self, host: &str) -> PathBuf {
        self.dir.join(host).join("state")
    }

    /// `host`'s log file of daemon `daemon`.
    pub fn log(&self, host: &str, daemon: &str) -> PathBuf {
        self.dir.join(host).join(format!("{daemon}.log"))
    }

    /// `host`'s full name.
    pub fn fqdn(host: &str) -> String {
        format!("{host}.{}", crate::lab::DOMAIN)
    }

    /// `host`'s primary address under the cluster's policy.
    pub fn primary(&self, host: &str) -> IpAddr {
        let n = number(host);
        match self.policy {
            IpPolicy::HybridIpv6 => {
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, v6_group(n)))
            }
            IpPolicy::Ipv4 => IpAddr::V4(Ipv4Addr::new(10, 77, 0, n)),
        }
    }

    /// `host`'s secondary (replication network) address.
    pub fn secondary(host: &str) -> Ipv4Addr {
        Ipv4Addr::new(10, 78, 0, number(host))
    }

    /// Runs `gnt ARGS` on the master host.
    pub fn gnt(&self, args: &[&str]) -> Result<CommandOutput, ClusterLabError> {
        self.gnt_on(&self.master_host(), args)
    }

    /// `gnt cluster init`, as the policy needs it: in a hybrid cluster with the master's
    /// secondary; in an IPv4 cluster single-homed.
    pub fn init(&self) -> Result<CommandOutput, ClusterLabError> {
        self.init_with(&[])
    }

    /// Like [`init`](Self::init), with `extra` options (`--certificate-validity 20d`).
    pub fn init_with(&self, extra: &[&str]) -> Result<CommandOutput, ClusterLabError> {
        let secondary = Self::secondary("master").to_string();
        let name = Self::fqdn("master");
        let mut args = vec!["cluster", "init", "--node-name", name.as_str()];
        args.extend_from_slice(extra);
        match self.policy {
            IpPolicy::HybridIpv6 => {
                args.extend(["--primary-ip-version", "6", "-s", secondary.as_str()])
            }
            IpPolicy::Ipv4 => args.extend(["--primary-ip-version", "4"]),
        }
        args.push(CLUSTER_NAME);
        self.gnt(&args)
    }

    /// Starts `program args...` on `host` as process `key` (its log is `<host>/<key>.log`),
    /// with `GNT_JOIN_TOKEN` set to `token` if given; it is killed when the lab is dropped.
    pub fn spawn(
        &self,
        key: String,
        host: &str,
        program: &Path,
        args: &[&str],
        token: Option<&str>,
    ) -> Result<(), ClusterLabError> {
        let log_path = self.log(host, &key);
        let open = |what: &str| {
            File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|source| ClusterLabError::Io {
                    action: format!("open {what} {}", log_path.display()),
                    source,
                })
        };
        let lab_host = self.host(host)?;
        let mut command = match self.fd_limit {
            Some(limit) => {
                let mut command = lab_host.command("prlimit");
                command
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(program);
                command
            }
            None => lab_host.command(program),
        };
        command
            .args(args)
            .stdout(Stdio::from(open("log")?))
            .stderr(Stdio::from(open("log")?))
            .env_remove("GNT_JOIN_TOKEN");
        if let Some(token) = token {
            command.env("GNT_JOIN_TOKEN", token);
        }
        let child = command.spawn().map_err(|source| ClusterLabError::Io {
            action: format!("start {} on {host}", program.display()),
            source,
        })?;
        let key = format!("{host}/{key}");
        self.processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, LabProcess::from_child(child));
        Ok(())
    }

    /// Starts `gnt-noded` on `host`, with a join token if it has no state yet, and waits
    /// until it listens.
    pub fn start_noded(&self, host: &str, token: Option<&str>) -> Result<(), ClusterLabError> {
        self.start_noded_with(host, token, &[])
    }

    /// Like [`start_noded`](Self::start_noded), with more command-line arguments.
    pub fn start_noded_with(
        &self,
        host: &str,
        token: Option<&str>,
        extra: &[&str],
    ) -> Result<(), ClusterLabError> {
        let state = self.state_dir(host);
        let state = state.to_str().unwrap_or_default();
        let mut args = vec!["--state-dir", state, "--shutdown-grace", "2"];
        args.extend_from_slice(extra);
        self.spawn("gnt-noded".to_owned(), host, &self.noded, &args, token)?;
        self.wait_for_daemon(host, "gnt-noded", "listens", || {
            let out = self.host(host).ok()?.run("ss", &["-ltnH"]).ok()?;
            String::from_utf8_lossy(&out.stdout)
                .contains(":1811 ")
                .then_some(())
        })
    }

    /// Waits until `done` says `daemon` on `host` does what `what` says; fails at once,
    /// with the last line of its log, if it exits first (a daemon that refuses to start
    /// says why there, and waiting out the patience would only hide it).
    pub(crate) fn wait_for_daemon(
        &self,
        host: &str,
        daemon: &str,
        what: &str,
        done: impl Fn() -> Option<()>,
    ) -> Result<(), ClusterLabError> {
        let key = format!("{host}/{daemon}");
        self.wait_until(&format!("{daemon} on {host} {what}"), || {
            if let Some(status) = self.exit_status(&key) {
                return Some(Err(ClusterLabError::Step(format!(
                    "{daemon} on {host} exited ({status}) before it {what}: {}",
                    self.last_log_line(host, daemon)
                ))));
            }
            done().map(Ok)
        })?
    }

    fn exit_status(&self, key: &str) -> Option<std::process::ExitStatus> {
        self.processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(key)
            .and_then(|p| p.child().try_wait().ok().flatten())
    }

    fn last_log_line(&self, host: &str, daemon: &str) -> String {
        std::fs::read_to_string(self.log(host, daemon))
            .ok()
            .and_then(|log| {
                log.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "its log is empty".to_owned())
    }

    /// The process id of process `key` (`<host>/<name>`, for example `master/gnt-noded`).
    pub fn pid(&self, key: &str) -> Option<u32> {
        self.processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(key)
            .map(|p| p.child().id())
    }

    /// The path of the `gnt-noded` binary in use.
    pub fn noded_binary(&self) -> &Path {
        &self.noded
    }

    /// Stops process `key` (`<host>/<name>`): gracefully (SIGTERM, then SIGKILL after 10 s)
    /// or not.
    pub fn stop_process(&self, key: &str, graceful: bool) -> Result<(), ClusterLabError> {
        self.stop(key, graceful)
    }

    /// Stops `host`'s gnt-noded: gracefully (SIGTERM) or not (SIGKILL).
    pub fn stop_noded(&self, host: &str, graceful: bool) -> Result<(), ClusterLabError> {
        self.stop(&format!("{host}/gnt-noded"), graceful)
    }

    /// Starts gnt-masterd on the master host and waits until it answers and has tried to
    /// activate the cluster IP.
    pub fn start_masterd(&self) -> Result<(), ClusterLabError> {
        self.start_masterd_on(&self.master_host())
    }

    /// Stops gnt-masterd.
    pub fn stop_masterd(&self) -> Result<(), ClusterLabError> {
        self.stop_masterd_on(&self.master_host(), true)
    }

    fn stop(&self, key: &str, graceful: bool) -> Result<(), ClusterLabError> {
        let Some(mut process) = self
            .processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
        else {
            return Ok(());
        };
        if graceful {
            let pid = process.child().id().to_string();
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = process.child().try_wait() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        drop(process); // SIGKILL
        Ok(())
    }

    /// A new join token (`gnt node token create`).
    pub fn token(&self) -> Result<String, ClusterLabError> {
        let out = self.gnt(&["node", "token", "create"])?;
        if !out.success() {
            return Err(ClusterLabError::Step(format!(
                "token create failed:\n{out}"
            )));
        }
        out.stdout
            .lines()
            .nth(1)
            .map(|l| l.trim().to_owned())
            .ok_or_else(|| ClusterLabError::Step(format!("no token in:\n{out}")))
    }

    /// Starts `host`'s agent with a fresh token and runs `gnt node add` for it, with
    /// `-s SECONDARY` when `secondary` is given.
    pub fn add_node(
        &self,
        host: &str,
        secondary: Option<&str>,
    ) -> Result<CommandOutput, ClusterLabError> {
        let token = self.token()?;
        self.start_noded(host, Some(&token))?;
        self.node_add(host, &token, secondary)
    }

    /// `gnt node add` for `host`, whose agent waits with `token`, with `-s SECONDARY` when
    /// `secondary` is given.
    pub fn node_add(
        &self,
        host: &str,
        token: &str,
        secondary: Option<&str>,
    ) -> Result<CommandOutput, ClusterLabError> {
        let name = Self::fqdn(host);
        let mut args = vec!["node", "add", "--join-token", token];
        if let Some(secondary) = secondary {
            args.extend(["-s", secondary]);
        }
        args.push(name.as_str());
        self.gnt(&args)
    }

    /// The secondary a node is added with: its own in a hybrid cluster, none in an IPv4 one
    /// (single-homed like the master).
    pub fn default_secondary(&self, host: &str) -> Option<String> {
        match self.policy {
            IpPolicy::HybridIpv6 => Some(Self::secondary(host).to_string()),
            IpPolicy::Ipv4 => None,
        }
    }

    /// Init, the master's daemons, and every node added.
    pub fn bring_up(&self) -> Result<Vec<CommandOutput>, ClusterLabError> {
        let mut transcript = Vec::new();
        let step = |out: CommandOutput| {
            if out.success() {
                Ok(out)
            } else {
                Err(ClusterLabError::Step(format!("step failed:\n{out}")))
            }
        };
        transcript.push(step(self.init()?)?);
        self.start_noded("master", None)?;
        self.start_masterd()?;
        let nodes: Vec<String> = self
            .lab
            .hosts()
            .iter()
            .map(|h| h.name().to_owned())
            .filter(|n| n != "master")
            .collect();
        for node in nodes {
            let secondary = self.default_secondary(&node);
            transcript.push(step(self.add_node(&node, secondary.as_deref())?)?);
        }
        Ok(transcript)
    }

    fn wait_until<T>(
        &self,
        what: &str,
        done: impl Fn() -> Option<T>,
    ) -> Result<T, ClusterLabError> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(outcome) = done() {
                return Ok(outcome);
            }
            if Instant::now() > deadline {
                return Err(ClusterLabError::Step(format!(
                    "gave up waiting until {what}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ClusterLab {
    fn drop(&mut self) {
        // Processes first (SIGKILL via LabProcess), then the lab.
        self.processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
