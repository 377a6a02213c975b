//! Node adds end to end, part of the `join` scenario: a real `gnt-noded` started in
//! bootstrap mode with a token from `gnt-masterd`, then `AddNode` on the master API (what
//! `gnt node add` sends): name resolution, Ganeti's checks and TCP pings, the Join, the
//! wait for the node's first answer over mutual TLS, the configuration commit and the
//! ssconf redistribution to every node. One add at a time, timed from request to answer.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use gnt_core::policy::IpPolicy;
use gnt_proto::master::v1::master_client::MasterClient;
use gnt_proto::master::v1::{AddNodeRequest, CreateJoinTokenRequest};
use gnt_transports::Connector;
use serde::Serialize;
use tonic::transport::Channel;

use super::BenchError;
use super::measure::{Memory, median, memory_of, millis, worst};
use super::report::{Row, Target};
use super::site::{BenchNode, FLEET_HOST, Site};

/// How long one add may take.
const ADD_TARGET_MS: f64 = 100.0;

/// The node adds' results.
#[derive(Debug, Clone, Serialize)]
pub struct NodeAdds {
    /// Each add's time, milliseconds.
    pub add_ms: Vec<f64>,
    /// Their median.
    pub median_ms: f64,
    /// The slowest.
    pub worst_ms: f64,
    /// Warnings the adds returned (ssconf not taken by some node, ...).
    pub warnings: Vec<String>,
}

/// Adds every node of `site.adds` through the `gnt-masterd` at `socket`, one at a time.
/// Returns the results and the memory of the first agent while it waited in bootstrap mode.
pub async fn add_all(site: &Site, socket: &Path) -> Result<(NodeAdds, Option<Memory>), BenchError> {
    let channel = Connector::unix(socket)
        .channel()
        .await
        .map_err(|e| BenchError::failed(format!("connect to {}", socket.display()), e))?;
    let mut api = MasterClient::new(channel);
    let mut add_ms = Vec::new();
    let mut warnings = Vec::new();
    let mut bootstrap_memory = None;
    for (k, node) in site.adds.iter().enumerate() {
        let token = api
            .create_join_token(CreateJoinTokenRequest::default())
            .await
            .map_err(|s| BenchError::failed("CreateJoinToken", s.message()))?
            .into_inner()
            .token;
        let pid = start_agent(site, k + 1, node, &token).await?;
        if k == 0 {
            // Let it settle after start-up before reading its memory.
            tokio::time::sleep(Duration::from_millis(500)).await;
            bootstrap_memory = Some(memory_of(pid)?);
        }
        let (elapsed, mut more) = add(&mut api, site.policy(), node, &token).await?;
        add_ms.push(millis(elapsed));
        warnings.append(&mut more);
    }
    Ok((
        NodeAdds {
            median_ms: median(&add_ms),
            worst_ms: worst(&add_ms),
            add_ms,
            warnings,
        },
        bootstrap_memory,
    ))
}

async fn start_agent(
    site: &Site,
    k: usize,
    node: &BenchNode,
    token: &str,
) -> Result<u32, BenchError> {
    let state = site.dir().join("adds").join(format!("add{k}"));
    std::fs::create_dir_all(&state)
        .map_err(BenchError::io(format!("create {}", state.display())))?;
    let port = 1811;
    let listen = SocketAddr::new(node.primary, port);
    let key = format!("gnt-noded-add{k}");
    site.cluster.spawn(
        key.clone(),
        FLEET_HOST,
        site.cluster.noded_binary(),
        &[
            "--state-dir",
            &state.display().to_string(),
            "--bind",
            &node.primary.to_string(),
            "--bootstrap-listen",
            &listen.to_string(),
            "--shutdown-grace",
            "2",
        ],
        Some(token),
    )?;
    super::wait_listening(listen, &format!("the agent of {}", node.name)).await?;
    site.cluster
        .pid(&format!("{FLEET_HOST}/{key}"))
        .ok_or_else(|| BenchError::failed(format!("start the agent of {}", node.name), "it exited"))
}

async fn add(
    api: &mut MasterClient<Channel>,
    policy: IpPolicy,
    node: &BenchNode,
    token: &str,
) -> Result<(Duration, Vec<String>), BenchError> {
    let request = AddNodeRequest {
        name: node.name.clone(),
        secondary_ip: match policy {
            IpPolicy::HybridIpv6 => node.secondary.to_string(),
            IpPolicy::Ipv4 => String::new(),
        },
        join_token: token.to_owned(),
        readd: false,
    };
    let started = Instant::now();
    let reply = api
        .add_node(request)
        .await
        .map_err(|s| BenchError::failed(format!("AddNode {}", node.name), s.message()))?
        .into_inner();
    Ok((started.elapsed(), reply.warnings))
}

/// The table's figures.
pub fn rows(result: &NodeAdds) -> Vec<Row> {
    let n = result.add_ms.len();
    vec![
        Row::new(
            "join",
            format!("node add end to end, median of {n}"),
            format!("{:.1} ms", result.median_ms),
        )
        .target(Target::at_most(result.median_ms, ADD_TARGET_MS, "ms")),
        Row::new(
            "join",
            "node add end to end, worst",
            format!("{:.1} ms", result.worst_ms),
        ),
    ]
}
