//! The fleet simulator: thousands of real node agents (`gnt_node_agent::run`, the code of
//! `gnt-noded`) in one process, each with its own state directory, key, join token and
//! listener on its own address. They start in bootstrap mode and become members through
//! the real Join, after which each serves the member API over mutual TLS.
//!
//! The harness starts the fleet as child processes (`gnt-bench internal fleet SPEC`) so
//! that the nodes and the master do not share a runtime, as in a real cluster. Each child
//! prints `ready <n>` once every agent of its spec listens, and stops its agents when its
//! standard input closes (the harness exiting, for whatever reason, closes it).
//!
//! An agent needs three descriptors at its busiest (its listener, the master's connection,
//! and during Join both listeners' connections for a moment), so a process holds as many
//! agents as a third of its open-file limit allows, less a reserve. The harness raises the
//! soft limit to the hard one; raising the hard limit needs `CAP_SYS_RESOURCE`, which some
//! containers withhold (with a hard limit of 20,000, a 10,000-node fleet takes two
//! processes).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use gnt_node_agent::{AgentConfig, AgentStatus};
use gnt_transports::join::TokenSource;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::BenchError;

/// How long the fleet may take to start every agent.
const START_PATIENCE: Duration = Duration::from_secs(600);

/// What the fleet process runs. It holds the join tokens: the file is 0600.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetSpec {
    /// The agents' port.
    pub port: u16,
    /// The agents.
    pub nodes: Vec<FleetNode>,
}

/// One simulated node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetNode {
    /// Its name.
    pub name: String,
    /// Its state directory.
    pub state_dir: PathBuf,
    /// The address it listens on, in both modes.
    pub address: IpAddr,
    /// Its join token.
    pub token: String,
}

impl FleetSpec {
    /// Writes the spec to `path`, readable by its owner only.
    pub fn write(&self, path: &Path) -> Result<(), BenchError> {
        let text =
            serde_json::to_vec(self).map_err(|e| BenchError::failed("encode the fleet spec", e))?;
        gnt_core::fs_atomic::write_atomic(path, &text, 0o600)
            .map_err(|e| BenchError::failed("write the fleet spec", e))
    }

    fn read(path: &Path) -> Result<Self, BenchError> {
        let text = std::fs::read(path).map_err(BenchError::io(format!(
            "read the fleet spec {}",
            path.display()
        )))?;
        serde_json::from_slice(&text).map_err(|e| BenchError::failed("decode the fleet spec", e))
    }
}

/// The fleet process's side: runs every agent of the spec at `path` until standard input
/// closes, then stops them.
pub fn serve(path: &Path) -> Result<(), BenchError> {
    super::raise_fd_limit()?;
    let spec = FleetSpec::read(path)?;
    let runtime = tokio::runtime::Runtime::new().map_err(BenchError::io("start a runtime"))?;
    runtime.block_on(serve_agents(spec))
}

async fn serve_agents(spec: FleetSpec) -> Result<(), BenchError> {
    let shutdown = CancellationToken::new();
    let mut agents = JoinSet::new();
    let mut statuses = Vec::with_capacity(spec.nodes.len());
    for node in &spec.nodes {
        let token = node
            .token
            .parse()
            .map_err(|e| BenchError::failed(format!("the token of {}", node.name), e))?;
        let mut config = AgentConfig::new(&node.state_dir);
        config.bind = Some(node.address);
        config.bootstrap_listen = Some(SocketAddr::new(node.address, spec.port));
        config.join_token = TokenSource::Value(token);
        config.shutdown_grace = Duration::from_secs(1);
        let (status, watcher) = watch::channel(AgentStatus::Starting);
        statuses.push(watcher);
        let name = node.name.clone();
        let stop = shutdown.clone();
        agents.spawn(async move {
            gnt_node_agent::run(config, stop, status)
                .await
                .map_err(|e| {
                    BenchError::failed(format!("agent {name}"), gnt_core::error::Chain(&e))
                })
        });
    }

    let all_listening = async {
        for watcher in &mut statuses {
            let _ = watcher
                .wait_for(|s| !matches!(s, AgentStatus::Starting))
                .await;
        }
    };
    tokio::select! {
        () = all_listening => {}
        Some(ended) = agents.join_next() => return Err(agent_ended(ended)),
    }
    println!("ready {}", spec.nodes.len());

    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    let outcome = loop {
        tokio::select! {
            read = stdin.read(&mut sink) => match read {
                Ok(0) | Err(_) => break Ok(()),
                Ok(_) => {}
            },
            Some(ended) = agents.join_next() => break Err(agent_ended(ended)),
        }
    };
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while agents.join_next().await.is_some() {}
    })
    .await;
    outcome
}

fn agent_ended(ended: Result<Result<(), BenchError>, tokio::task::JoinError>) -> BenchError {
    match ended {
        Ok(Err(error)) => error,
        Ok(Ok(())) => BenchError::failed("an agent", "stopped on its own"),
        Err(panic) => BenchError::failed("an agent", panic),
    }
}

/// Descriptors a fleet process keeps for itself (runtime, logs, state files being written).
const RESERVED_DESCRIPTORS: u64 = 512;
/// Descriptors an agent may hold at once.
const DESCRIPTORS_PER_AGENT: u64 = 3;

/// How many agents one process can hold with `open_files` descriptors.
pub fn agents_per_process(open_files: u64) -> usize {
    usize::try_from(open_files.saturating_sub(RESERVED_DESCRIPTORS) / DESCRIPTORS_PER_AGENT)
        .unwrap_or(usize::MAX)
        .max(1)
}

/// The running fleet: one or a few processes.
#[derive(Debug)]
pub struct Fleet {
    processes: Vec<FleetProcess>,
}

impl Fleet {
    /// Starts `nodes` listening on `port`, at most `per_process` to a process, each process
    /// from `command(spec_path)` (the fleet role of this harness, inside the site), with
    /// specs and logs in `dir`; waits until every agent listens.
    pub async fn start(
        command: impl Fn(&Path) -> Command,
        nodes: Vec<FleetNode>,
        port: u16,
        per_process: usize,
        dir: &Path,
    ) -> Result<Self, BenchError> {
        let mut starting = Vec::new();
        for (k, slice) in nodes.chunks(per_process.max(1)).enumerate() {
            let spec = FleetSpec {
                port,
                nodes: slice.to_vec(),
            };
            let spec_path = dir.join(format!("fleet-{k}.json"));
            spec.write(&spec_path)?;
            let log = dir.join(format!("fleet-{k}.log"));
            starting.push(FleetProcess::start(command(&spec_path), slice.len(), log));
        }
        let processes = futures_util::future::join_all(starting)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { processes })
    }

    /// The processes' ids.
    pub fn pids(&self) -> Vec<u32> {
        self.processes.iter().filter_map(|p| p.child.id()).collect()
    }

    /// How many agents it runs.
    pub fn size(&self) -> usize {
        self.processes.iter().map(|p| p.size).sum()
    }

    /// Stops every agent and waits for the processes.
    pub async fn stop(self) {
        futures_util::future::join_all(self.processes.into_iter().map(FleetProcess::stop)).await;
    }
}

/// One fleet process.
#[derive(Debug)]
struct FleetProcess {
    child: Child,
    _stdout: ChildStdout,
    size: usize,
}

impl FleetProcess {
    /// Starts `command` and waits until its `size` agents listen. Its log goes to `log`.
    async fn start(mut command: Command, size: usize, log: PathBuf) -> Result<Self, BenchError> {
        let log = log.as_path();
        let log_file = std::fs::File::create(log)
            .map_err(BenchError::io(format!("create {}", log.display())))?;
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(BenchError::io("start the fleet"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::failed("start the fleet", "no standard output"))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_PATIENCE, lines.next_line()).await;
        let failed = |detail: String| {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            let last: Vec<&str> = log_text.lines().rev().take(5).collect();
            BenchError::failed(
                format!("start {size} agents"),
                format!("{detail}; the fleet log ends with: {}", last.join(" | ")),
            )
        };
        match ready {
            Ok(Ok(Some(line))) if line == format!("ready {size}") => {}
            Ok(Ok(other)) => return Err(failed(format!("the fleet said {other:?}"))),
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => return Err(failed(format!("not ready within {START_PATIENCE:?}"))),
        }
        Ok(Self {
            child,
            _stdout: lines.into_inner().into_inner(),
            size,
        })
    }

    /// Stops the agents (by closing standard input) and waits for the process.
    async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
