//! Connection floods against both daemons, each run with systemd's default open-file limit
//! (1,024) as its hard limit too, so that it cannot raise it: thousands of idle TCP
//! connections and half-sent TLS ClientHellos against a node agent from another lab host,
//! idle connections against the master's socket, and (`handshakes`) hundreds of finished
//! TLS handshakes, without a certificate against a node in bootstrap mode and with a
//! node's valid one against a member. The master (or `gnt`) must still get through, while
//! the flood connects and once it is open, every time within a second. Each flood is
//! bounded in count and time and closed at the end. A short run by default (5,000
//! connections, 10 calls); `GNT_LONG_TESTS=1` floods with 10,000 five times over and calls
//! 60 times during each.

mod handshakes;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gnt_core::DEFAULT_NODE_PORT;
use gnt_core::error::Chain;
use gnt_core::policy::IpPolicy;
use gnt_integration::binaries::locate;
use gnt_integration::cluster_lab::ClusterLab;
use gnt_integration::lab::{HostTask, LabHost};
use gnt_master::master::node_client_tls;
use gnt_master::paths::MasterPaths;
use gnt_proto::master::v1::{ClusterInfoRequest, master_client::MasterClient};
use gnt_proto::node::v1::{VersionRequest, node_agent_client::NodeAgentClient};
use gnt_transports::{Connector, DialOptions};
use tokio::io::AsyncWriteExt;
use tonic::transport::Channel;

use crate::support::{Running, empty_under_fd_limit};

/// systemd's default soft limit, which the units raise; here it is the hard limit too.
const FD_LIMIT: u64 = 1024;
/// How long the master may take for a fresh connection and one call during a flood.
const WITHIN: Duration = Duration::from_secs(1);
/// How long one flood connection may take to connect before it counts as failed.
const FLOOD_CONNECT: Duration = Duration::from_secs(1);
/// Flood connections being opened at once.
const FLOOD_PARALLEL: usize = 256;
/// Every this many flood connections, one sends the start of a TLS ClientHello and stops.
const HALF_HELLO_EVERY: usize = 4;
/// A TLS record announcing a 512-byte ClientHello, and its first bytes: the server waits
/// for the rest, which never comes.
const HALF_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x02, 0x00, // handshake record, 512 bytes
    0x01, 0x00, 0x01, 0xfc, // ClientHello, 508 bytes
    0x03, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // version, start of random
];

/// How hard to flood.
#[derive(Debug, Clone, Copy)]
struct Scale {
    /// Connections per flood.
    connections: usize,
    /// Floods, one after the other.
    rounds: usize,
    /// Calls while each flood connects, and as many again once it is open.
    calls: usize,
}

fn scale() -> Scale {
    let long = std::env::var_os("GNT_LONG_TESTS").is_some_and(|v| v == "1");
    Scale {
        connections: if long { 10_000 } else { 5_000 },
        rounds: if long { 5 } else { 1 },
        calls: if long { 30 } else { 5 },
    }
}

#[test]
fn a_flood_of_idle_connections_and_half_hellos_does_not_lock_the_master_out() {
    let _alone = one_flood_at_a_time();
    let cluster = node_under_limit();
    let targets = agent_addresses(&cluster, "node1");
    for round in 1..=scale().rounds {
        flood_node1(&cluster, &targets, &format!("round {round}: node1"));
    }
}

/// Every address of `host`'s agent (its primary ones, IPv6 first).
fn agent_addresses(cluster: &ClusterLab, host: &str) -> Vec<SocketAddr> {
    let host = cluster.host(host).unwrap();
    let addresses = host.addresses().into_iter();
    addresses
        .map(|ip| SocketAddr::new(ip, DEFAULT_NODE_PORT))
        .collect()
}

#[test]
fn an_agent_out_of_descriptors_keeps_accepting() {
    let _alone = one_flood_at_a_time();
    let cluster = node_under_limit();
    // Descriptors run out before any bound is reached, as if something else (uploads,
    // outgoing pings) held the rest: the limit of the running agent is lowered to what it
    // has open plus a few dozen, fewer than the handshakes it would hold.
    let pid = cluster.pid("node1/gnt-noded").unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(
        comm.trim(),
        "gnt-noded",
        "prlimit runs the agent in its own process"
    );
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = open + 48;
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .unwrap();
    assert!(status.success());

    let targets = [SocketAddr::new(cluster.primary("node1"), DEFAULT_NODE_PORT)];
    for round in 1..=scale().rounds {
        let what = format!("round {round}: node1 with {limit} descriptors");
        flood_node1(&cluster, &targets, &what);
    }
    // Running out is logged once per burst, and its count once the burst is over (a
    // second later), not once per failed accept.
    let log = cluster.log("node1", "gnt-noded");
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("now over") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    assert!(
        warnings.iter().any(|l| l.contains("Too many open files")),
        "{log}"
    );
    assert!(warnings.iter().any(|l| l.contains("now over")), "{log}");
    assert!(warnings.len() <= 4 * scale().rounds, "{log}");
}

#[test]
fn a_flood_of_idle_connections_does_not_lock_gnt_out_of_the_master_socket() {
    let _alone = one_flood_at_a_time();
    raise_own_fd_limit();
    let cluster = empty_under_fd_limit(IpPolicy::HybridIpv6, 0, FD_LIMIT);
    let init = cluster.init().unwrap();
    assert!(init.success(), "{init}");
    cluster.start_masterd().unwrap();
    let state = cluster.state_dir("master");
    let socket = MasterPaths::new(&state).socket;
    let master = cluster.host("master").unwrap();
    let gnt = locate("gnt").unwrap();
    for round in 1..=scale().rounds {
        let flood = flood_unix(master, socket.clone());
        // While the flood connects: `gnt` itself, a process of its own as it always is
        // (the flood is the test process's, and a process is one peer).
        let mut calls: Vec<_> = (0..scale().calls)
            .map(|_| gnt_cluster_info(master, &gnt, &state))
            .collect();
        let flooded = flood.wait_open();
        // Once it is open: the call alone, timed from the test process.
        calls.extend(timed_calls(
            master,
            Connector::unix(&socket),
            |channel| async move {
                let mut master = MasterClient::new(channel);
                master.cluster_info(ClusterInfoRequest {}).await.map(drop)
            },
        ));
        flood.close();
        let what = format!("round {round}: master socket");
        check(
            &what,
            &cluster.log("master", "gnt-masterd"),
            &flooded,
            &calls,
        );
    }
}

/// `gnt cluster info` on `host`: how long it took if it succeeded within [`WITHIN`]
/// (process start included), else why not. `timeout` ends it if it hangs.
fn gnt_cluster_info(host: &LabHost, gnt: &Path, state: &Path) -> Result<Duration, String> {
    let started = Instant::now();
    let output = host
        .command("timeout")
        .arg("5")
        .arg(gnt)
        .arg("--state-dir")
        .arg(state)
        .args(["cluster", "info"])
        .output()
        .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("gnt: {} after {took:?}: {stderr}", output.status));
    }
    if took > WITHIN {
        return Err(format!("gnt answered after {took:?}"));
    }
    Ok(took)
}

/// One flood of node1 from node2, with `Version` calls by the master while it connects and
/// once its connections are open.
fn flood_node1(cluster: &ClusterLab, targets: &[SocketAddr], what: &str) {
    let flood = flood_tcp(cluster.host("node2").unwrap(), targets.to_vec());
    let mut calls = version_as_master(cluster, "node1");
    let flooded = flood.wait_open();
    calls.extend(version_as_master(cluster, "node1"));
    flood.close();
    check(what, &cluster.log("node1", "gnt-noded"), &flooded, &calls);
}

/// The master, node1 (added, its agent under the limit) and node2, which floods.
fn node_under_limit() -> Running {
    let cluster = master_under_limit(2);
    let secondary = cluster.default_secondary("node1");
    let added = cluster.add_node("node1", secondary.as_deref()).unwrap();
    assert!(added.success(), "{added}");
    cluster
}

/// A lab of the master and `nodes` nodes, the master's daemons started under the limit.
fn master_under_limit(nodes: u8) -> Running {
    raise_own_fd_limit();
    let cluster = empty_under_fd_limit(IpPolicy::HybridIpv6, nodes, FD_LIMIT);
    let init = cluster.init().unwrap();
    assert!(init.success(), "{init}");
    cluster.start_noded("master", None).unwrap();
    cluster.start_masterd().unwrap();
    cluster
}

/// Runs the flood tests one after the other: each flood's connections are the test
/// process's, and each takes what CPU there is.
fn one_flood_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static FLOODS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    FLOODS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The flood's connections are the test process's; it needs more than the daemons get.
fn raise_own_fd_limit() {
    let limit = gnt_integration::bench::raise_fd_limit().unwrap();
    let needed = scale().connections as u64 + 1024;
    assert!(
        limit >= needed,
        "the test needs {needed} descriptors; it may open {limit}"
    );
}

/// `Version` on `node`'s agent as the master does it: its certificate, the node's name
/// checked, a new connection each time.
fn version_as_master(cluster: &ClusterLab, node: &str) -> Vec<Result<Duration, String>> {
    timed_calls(
        cluster.host("master").unwrap(),
        master_connector(cluster, node),
        |channel| async move {
            let mut agent = NodeAgentClient::new(channel);
            agent.version(VersionRequest::default()).await.map(drop)
        },
    )
}

/// The master's connector to `node`'s agent: its certificate, the node's name checked.
fn master_connector(cluster: &ClusterLab, node: &str) -> Connector {
    let paths = MasterPaths::new(&cluster.state_dir("master"));
    let tls = node_client_tls(&paths)
        .unwrap()
        .with_server_name(&format!("{node}.lab.test"))
        .unwrap();
    let addr = SocketAddr::new(cluster.primary(node), DEFAULT_NODE_PORT);
    Connector::tcp_addr(addr, DialOptions::new(cluster.policy())).with_tls(tls)
}

/// Runs `call` [`Scale::calls`] times one after the other inside `host`, each on a new
/// channel through `connector` and bounded to [`WITHIN`] with its connection: how long
/// each took, or why it failed.
fn timed_calls<F, Fut>(
    host: &LabHost,
    connector: Connector,
    call: F,
) -> Vec<Result<Duration, String>>
where
    F: Fn(Channel) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    host.block_on(async move {
        let mut results = Vec::new();
        for _ in 0..scale().calls {
            let started = Instant::now();
            let connected_call = async {
                let channel = connector
                    .channel()
                    .await
                    .map_err(|e| Chain(&e).to_string())?;
                call(channel).await.map_err(|status| status.to_string())
            };
            results.push(match tokio::time::timeout(WITHIN, connected_call).await {
                Ok(Ok(())) => Ok(started.elapsed()),
                Ok(Err(error)) => Err(error),
                Err(_) => Err(format!("no answer within {WITHIN:?}")),
            });
        }
        results
    })
    .unwrap()
}

/// Every call succeeded within [`WITHIN`], during a flood that was real; else the end of
/// the daemon's `log` tells why.
fn check(what: &str, log: &Path, flooded: &Flooded, calls: &[Result<Duration, String>]) {
    let fast: Vec<Duration> = calls
        .iter()
        .filter_map(|c| c.as_ref().ok().copied())
        .collect();
    eprintln!(
        "{what}: {flooded}; {} of {} calls within {WITHIN:?}, slowest {:?}",
        fast.len(),
        calls.len(),
        fast.iter().max()
    );
    assert_eq!(
        fast.len(),
        calls.len(),
        "{what}: {flooded}: {calls:?}\n{}",
        log_tail(log)
    );
    assert!(
        flooded.open * 10 >= (flooded.open + flooded.failed) * 8,
        "{what}: the flood itself failed: {flooded}"
    );
}

/// The last lines of a daemon's log.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(30);
    format!("{}:\n{}", log.display(), lines[from..].join("\n"))
}

/// What a flood achieved.
#[derive(Debug, Clone, Copy)]
struct Flooded {
    /// Connections it opened.
    open: usize,
    /// Of those, how many sent half a ClientHello.
    half_hellos: usize,
    /// Connections that did not connect within [`FLOOD_CONNECT`].
    failed: usize,
    /// How long opening them took.
    took: Duration,
}

impl std::fmt::Display for Flooded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections open ({} with half a ClientHello; {} failed) after {:?}",
            self.open, self.half_hellos, self.failed, self.took
        )
    }
}

/// [`Scale::connections`] TCP connections from `host` to `targets` (in turn), every
/// [`HALF_HELLO_EVERY`]th sending half a ClientHello.
fn flood_tcp(host: &LabHost, targets: Vec<SocketAddr>) -> Flood {
    Flood::start(host, scale().connections, FLOOD_PARALLEL, move |i| {
        let target = targets[i % targets.len()];
        async move {
            let connect = tokio::net::TcpStream::connect(target);
            let mut stream = tokio::time::timeout(FLOOD_CONNECT, connect)
                .await
                .ok()?
                .ok()?;
            let half = i % HALF_HELLO_EVERY == 0;
            if half {
                stream.write_all(HALF_HELLO).await.ok()?;
            }
            Some((stream, half))
        }
    })
}

/// [`Scale::connections`] idle connections to the Unix socket at `path`.
fn flood_unix(host: &LabHost, path: std::path::PathBuf) -> Flood {
    Flood::start(host, scale().connections, FLOOD_PARALLEL, move |_| {
        let connect = tokio::net::UnixStream::connect(path.clone());
        async move {
            let stream = tokio::time::timeout(FLOOD_CONNECT, connect)
                .await
                .ok()?
                .ok()?;
            Some((stream, false))
        }
    })
}

/// A flood held open by a thread inside a lab host until [`close`](Self::close)d.
struct Flood {
    open: std::sync::mpsc::Receiver<Flooded>,
    release: tokio::sync::oneshot::Sender<()>,
    task: HostTask<()>,
}

impl Flood {
    /// Opens `count` connections with `connect` (given each one's number, it returns the
    /// connection and whether it sent half a ClientHello), at most `parallel` at a time.
    fn start<S, F, Fut>(host: &LabHost, count: usize, parallel: usize, connect: F) -> Self
    where
        S: Send + 'static,
        F: Fn(usize) -> Fut + Send + 'static,
        Fut: Future<Output = Option<(S, bool)>> + Send,
    {
        let (open_tx, open) = std::sync::mpsc::channel();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let task = host
            .spawn(async move {
                let started = Instant::now();
                let streams: Vec<Option<(S, bool)>> = futures_util::stream::iter(0..count)
                    .map(connect)
                    .buffer_unordered(parallel)
                    .collect()
                    .await;
                let streams: Vec<(S, bool)> = streams.into_iter().flatten().collect();
                let _ = open_tx.send(Flooded {
                    open: streams.len(),
                    half_hellos: streams.iter().filter(|(_, half)| *half).count(),
                    failed: count - streams.len(),
                    took: started.elapsed(),
                });
                // Held until released (or the test ends), then closed.
                let _ = released.await;
                drop(streams);
            })
            .unwrap();
        Self {
            open,
            release,
            task,
        }
    }

    /// Waits until every connection is open (or has failed).
    fn wait_open(&self) -> Flooded {
        self.open.recv().unwrap()
    }

    /// Closes every connection.
    fn close(self) {
        let _ = self.release.send(());
        self.task.join().unwrap();
    }
}
