//! The topology, an agent running inside a lab host, and state snapshots.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gnt_core::join::JoinToken;
use gnt_core::node::Node;
use gnt_core::policy::IpPolicy;
use gnt_integration::cluster::{TestMaster, node};
use gnt_integration::lab::{HostSpec, HostTask, Lab, LabHost};
use gnt_node_agent::{AgentConfig, AgentError, AgentStatus, run};
use gnt_transports::join::TokenSource;
use gnt_transports::join::{JoinError, JoinPlan, Joined, join};
use gnt_transports::{Connector, DialOptions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub(crate) const CLUSTER: &str = "cluster.lab.test";
pub(crate) const TOKEN: &str = "abcdef.0123456789abcdef";

/// A master and two nodes, each on the primary network (IPv6 and IPv4) and on the
/// secondary network (IPv4).
pub(crate) struct Topology {
    pub(crate) lab: Lab,
    pub(crate) master: Arc<TestMaster>,
    pub(crate) dir: tempfile::TempDir,
}

impl Topology {
    pub(crate) fn new() -> Self {
        let host = |name: &str, n: u8| {
            HostSpec::new(name)
                .ipv6(format!("fd00:77::{n}").parse().unwrap())
                .ipv4(format!("10.77.0.{n}").parse().unwrap())
                .secondary(format!("10.78.0.{n}").parse().unwrap())
        };
        let lab = Lab::builder()
            .host(host("master", 10))
            .host(host("node1", 11))
            .host(host("node2", 12))
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let master = Arc::new(TestMaster::new(dir.path(), "master.lab.test").unwrap());
        Self { lab, master, dir }
    }

    pub(crate) fn host(&self, name: &str) -> &LabHost {
        self.lab.host(name).unwrap()
    }

    /// How the cluster knows `name` under `policy`: IPv6 primary and IPv4 secondary in a
    /// hybrid cluster; the IPv4 primary as both in an IPv4 one.
    pub(crate) fn spec(&self, name: &str, policy: IpPolicy) -> Node {
        let host = self.host(name);
        let (primary, secondary) = match policy {
            IpPolicy::HybridIpv6 => (
                IpAddr::V6(host.ipv6().unwrap()),
                IpAddr::V4(host.secondary().unwrap()),
            ),
            IpPolicy::Ipv4 => (
                IpAddr::V4(host.ipv4().unwrap()),
                IpAddr::V4(host.ipv4().unwrap()),
            ),
        };
        node(&format!("{name}.lab.test"), policy, primary, secondary)
    }

    pub(crate) fn state_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}-state"))
    }

    /// Joins `node` to a hybrid cluster, listening dual-stack on port 1811.
    pub(crate) fn join_hybrid(&self, node: &str) -> Joined {
        let any = SocketAddr::new("::".parse().unwrap(), 1811);
        self.join(node, IpPolicy::HybridIpv6, any, |_| {}).unwrap()
    }

    /// Runs the Join of `node` (planned by `edit`) from the master host.
    pub(crate) fn join(
        &self,
        node: &str,
        policy: IpPolicy,
        bind: SocketAddr,
        edit: impl FnOnce(&mut JoinPlan),
    ) -> Result<Joined, JoinError> {
        self.join_from(&self.master, node, policy, bind, edit)
    }

    /// Runs the Join of `node` (planned by `edit`) from the master host, as `master`.
    pub(crate) fn join_from(
        &self,
        master: &Arc<TestMaster>,
        node: &str,
        policy: IpPolicy,
        bind: SocketAddr,
        edit: impl FnOnce(&mut JoinPlan),
    ) -> Result<Joined, JoinError> {
        self.join_via("master", master, node, policy, bind, edit)
    }

    /// Runs the Join of `node` (planned by `edit`) from lab host `from`, as `master`.
    pub(crate) fn join_via(
        &self,
        from: &str,
        master: &Arc<TestMaster>,
        node: &str,
        policy: IpPolicy,
        bind: SocketAddr,
        edit: impl FnOnce(&mut JoinPlan),
    ) -> Result<Joined, JoinError> {
        let token: JoinToken = TOKEN.parse().unwrap();
        let master_spec = self.spec("master", policy);
        let node_spec = self.spec(node, policy);
        let mut plan = master.join_plan(&token, CLUSTER, policy, &master_spec, &node_spec, bind);
        edit(&mut plan);
        let target = SocketAddr::new(node_spec.addrs.primary, 1811);
        let master = master.clone();
        self.host(from)
            .block_on(async move {
                let connector = Connector::tcp_addr(target, DialOptions::new(policy));
                join(connector, plan, &master.ca).await
            })
            .unwrap()
    }
}

/// The agent, running inside a lab host.
pub(crate) struct Agent {
    shutdown: CancellationToken,
    status: watch::Receiver<AgentStatus>,
    task: Option<HostTask<Result<(), AgentError>>>,
}

impl Agent {
    pub(crate) fn start(host: &LabHost, state_dir: &Path) -> Self {
        Self::start_with(host, state_dir, TokenSource::Value(TOKEN.parse().unwrap()))
    }

    /// An agent whose token comes from `tokens`.
    pub(crate) fn start_with(host: &LabHost, state_dir: &Path, tokens: TokenSource) -> Self {
        let mut config = AgentConfig::new(state_dir);
        config.join_token = tokens;
        config.shutdown_grace = Duration::from_secs(2);
        let shutdown = CancellationToken::new();
        let (tx, status) = watch::channel(AgentStatus::Starting);
        let task = host.spawn(run(config, shutdown.clone(), tx)).unwrap();
        let agent = Self {
            shutdown,
            status,
            task: Some(task),
        };
        agent.wait(|s| matches!(s, AgentStatus::Bootstrap(_) | AgentStatus::Member { .. }));
        agent
    }

    /// Waits (at most 15 s) until the status satisfies `done`, and returns it.
    pub(crate) fn wait(&self, done: impl Fn(&AgentStatus) -> bool) -> AgentStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let status = self.status.borrow().clone();
            if done(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "the agent stayed {status:?}");
            assert!(status != AgentStatus::Stopped, "the agent stopped");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn status(&self) -> AgentStatus {
        self.status.borrow().clone()
    }

    pub(crate) fn wait_member(&self) -> Vec<String> {
        match self.wait(|s| matches!(s, AgentStatus::Member { .. })) {
            AgentStatus::Member { listening, .. } => {
                listening.iter().map(ToString::to_string).collect()
            }
            other => unreachable!("{other:?}"),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let result = task.join().unwrap();
            if !std::thread::panicking() {
                result.unwrap();
            }
        }
    }
}

/// Every file under `dir` with its content and mode.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                files.insert(
                    path.clone(),
                    (
                        std::fs::read_link(&path)
                            .unwrap()
                            .into_os_string()
                            .into_encoded_bytes(),
                        0,
                    ),
                );
            } else {
                files.insert(path.clone(), (std::fs::read(&path).unwrap(), meta.mode()));
            }
        }
    }
    files
}

/// The listening sockets of `host` on `port`, as `ss -ltn` shows them.
pub(crate) fn listening(host: &LabHost, port: u16) -> Vec<String> {
    let out = host.run("ss", &["-ltnH"]).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3).map(str::to_owned))
        .filter(|local| local.ends_with(&format!(":{port}")))
        .collect()
}

/// The wildcard of a hybrid cluster, on `port`.
pub(crate) fn any(port: u16) -> SocketAddr {
    SocketAddr::new("::".parse().unwrap(), port)
}

/// The gRPC code and message of a refused join.
pub(crate) fn refusal(result: Result<Joined, JoinError>) -> (tonic::Code, String) {
    match result {
        Err(JoinError::Refused { status }) => (status.code(), status.message().to_owned()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
