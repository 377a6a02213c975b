//! Floods of finished TLS handshakes, which leave the flooding host with connections as
//! established as the master's: without a certificate against a node in bootstrap mode
//! (none is asked there), and with a node's own valid certificate against a member node.
//! Either used to fill the agent's listener (480 places at 1,024 descriptors), after which
//! every new connection was refused: `gnt node add` failed, and so did every fresh
//! connection of the master.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gnt_core::DEFAULT_NODE_PORT;
use gnt_integration::cluster_lab::ClusterLab;
use gnt_integration::lab::{HostTask, LabHost};
use gnt_proto::node::v1::{VersionRequest, node_agent_client::NodeAgentClient};
use gnt_transports::{ClientTls, Identity, Pem};
use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};

use super::{
    FLOOD_CONNECT, Flood, Flooded, WITHIN, agent_addresses, check, log_tail, master_connector,
    master_under_limit, node_under_limit, one_flood_at_a_time, version_as_master,
};

/// Handshakes the flood runs at once: fewer than the listener lets run (128), so that they
/// all finish.
const HANDSHAKES_PARALLEL: usize = 64;
/// How long one flood connection may take for its TLS handshake.
const FLOOD_HANDSHAKE: Duration = Duration::from_secs(5);
/// Addresses the rogue node floods from, besides its own: 24 hosts' worth, more than it
/// takes to fill a listener with each address within its share.
const ROGUE_ADDRESSES: u16 = 24;

/// Connections per flood: more than the agent's listener holds (480).
fn connections() -> usize {
    if super::scale().rounds > 1 {
        2_000
    } else {
        600
    }
}

#[test]
fn a_node_in_bootstrap_mode_flooded_with_finished_handshakes_still_joins() {
    let _alone = one_flood_at_a_time();
    let cluster = master_under_limit(2);
    let token = cluster.token().unwrap();
    cluster.start_noded("node1", Some(&token)).unwrap();

    // From node2, to both of node1's addresses (so from both of its own): no client
    // certificate, the bootstrap certificate taken as it comes, as the master's Join does.
    let targets = agent_addresses(&cluster, "node1");
    let tls = ClientTls::danger_unverified_server(None).unwrap();
    let node2 = cluster.host("node2").unwrap();
    let flood = flood_tls(node2, targets, Vec::new(), tls.config().clone());
    let flooded = flood.wait_open();
    let held = established(&cluster, "node1");

    let secondary = cluster.default_secondary("node1");
    let started = Instant::now();
    let added = cluster
        .node_add("node1", &token, secondary.as_deref())
        .unwrap();
    let took = started.elapsed();
    flood.close();
    eprintln!(
        "bootstrap node1: {flooded}; it held {held} established connections; node add {} \
         after {took:?}",
        if added.success() {
            "succeeded"
        } else {
            "failed"
        }
    );
    assert!(
        added.success(),
        "{flooded}: {added}\n{}",
        log_tail(&cluster.log("node1", "gnt-noded"))
    );
    assert_real(&flooded);
}

#[test]
fn a_rogue_node_holding_established_connections_does_not_lock_the_master_out() {
    let _alone = one_flood_at_a_time();
    let cluster = node_under_limit();
    let secondary = cluster.default_secondary("node2");
    let added = cluster.add_node("node2", secondary.as_deref()).unwrap();
    assert!(added.success(), "{added}");
    // The rogue: node2's own certificate, valid in the cluster, from many addresses of its
    // own (so that each stays within its share) to node1's primary address.
    let state = cluster.state_dir("node2");
    let ca = Pem::read("CA certificate", &state.join("ca.pem")).unwrap();
    let identity = Identity::from_files(&state.join("node.pem"), &state.join("node.key")).unwrap();
    let tls = ClientTls::new(&ca, Some(&identity)).unwrap();
    let node2 = cluster.host("node2").unwrap();
    let sources = rogue_addresses(node2);
    let target = SocketAddr::new(cluster.primary("node1"), DEFAULT_NODE_PORT);
    // The master's channel, open before the flood, as gnt-masterd keeps one per node.
    let existing = ExistingChannel::open(&cluster, "node1");

    let flood = flood_tls(node2, vec![target], sources, tls.config().clone());
    let mut calls = version_as_master(&cluster, "node1");
    let flooded = flood.wait_open();
    let held = established(&cluster, "node1");
    calls.extend(version_as_master(&cluster, "node1"));
    let again = existing.call();
    flood.close();
    eprintln!("member node1: it held {held} established connections; existing channel: {again:?}");
    check(
        "member node1, rogue node2",
        &cluster.log("node1", "gnt-noded"),
        &flooded,
        &calls,
    );
    assert!(again.is_ok(), "the master's existing channel: {again:?}");
}

/// At least four in five of the flood's handshakes finished.
fn assert_real(flooded: &Flooded) {
    assert!(
        flooded.open * 10 >= (flooded.open + flooded.failed) * 8,
        "the flood itself failed: {flooded}"
    );
}

/// How many established TCP connections `host`'s agent port has (`ss`), whoever holds them.
fn established(cluster: &ClusterLab, host: &str) -> usize {
    let out = cluster
        .host(host)
        .unwrap()
        .run("ss", &["-Htn", "state", "established", "( sport = :1811 )"])
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Adds [`ROGUE_ADDRESSES`] addresses to `host`'s primary interface, in the lab's prefix.
fn rogue_addresses(host: &LabHost) -> Vec<IpAddr> {
    (1..=ROGUE_ADDRESSES)
        .map(|n| {
            let ip = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 2, n);
            let cidr = format!("{ip}/64");
            host.ip(&["-6", "addr", "add", &cidr, "dev", "eth0", "nodad"])
                .unwrap();
            IpAddr::V6(ip)
        })
        .collect()
}

/// [`connections`] TLS connections from `host` to `targets` (in turn), from `sources` (in
/// turn; the kernel's choice when empty), each finishing its handshake with `tls` and then
/// idle.
fn flood_tls(
    host: &LabHost,
    targets: Vec<SocketAddr>,
    sources: Vec<IpAddr>,
    tls: Arc<rustls::ClientConfig>,
) -> Flood {
    let connector = tokio_rustls::TlsConnector::from(tls);
    let name = ServerName::try_from("node1.lab.test").unwrap();
    Flood::start(host, connections(), HANDSHAKES_PARALLEL, move |i| {
        let target = targets[i % targets.len()];
        let source = (!sources.is_empty()).then(|| sources[i % sources.len()]);
        let (connector, name) = (connector.clone(), name.clone());
        async move {
            let tcp = tokio::time::timeout(FLOOD_CONNECT, connect(source, target))
                .await
                .ok()?
                .ok()?;
            let stream = tokio::time::timeout(FLOOD_HANDSHAKE, connector.connect(name, tcp))
                .await
                .ok()?
                .ok()?;
            Some((stream, false))
        }
    })
}

async fn connect(source: Option<IpAddr>, target: SocketAddr) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(target).await;
    };
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

/// A channel of the master's to a node, open and used once before a flood, used again
/// when asked.
struct ExistingChannel {
    again: tokio::sync::oneshot::Sender<()>,
    task: HostTask<Result<Duration, String>>,
}

impl ExistingChannel {
    fn open(cluster: &ClusterLab, node: &str) -> Self {
        let connector = master_connector(cluster, node);
        let (opened_tx, opened) = std::sync::mpsc::channel();
        let (again, asked) = tokio::sync::oneshot::channel::<()>();
        let task = cluster
            .host("master")
            .unwrap()
            .spawn(async move {
                let channel = connector.channel().await.map_err(|e| e.to_string())?;
                let mut agent = NodeAgentClient::new(channel);
                let _ = opened_tx.send(agent.version(VersionRequest::default()).await.map(drop));
                let _ = asked.await;
                let started = Instant::now();
                match tokio::time::timeout(WITHIN, agent.version(VersionRequest::default())).await {
                    Ok(Ok(_)) => Ok(started.elapsed()),
                    Ok(Err(status)) => Err(status.to_string()),
                    Err(_) => Err(format!("no answer within {WITHIN:?}")),
                }
            })
            .unwrap();
        match opened.recv() {
            Ok(first) => assert!(
                first.is_ok(),
                "the master's channel before the flood: {first:?}"
            ),
            Err(_) => panic!("the master's channel: {:?}", task.join()),
        }
        Self { again, task }
    }

    /// One more call on it.
    fn call(self) -> Result<Duration, String> {
        let _ = self.again.send(());
        self.task.join().unwrap()
    }
}
