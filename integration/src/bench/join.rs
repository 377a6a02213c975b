//! `join`: fleet nodes joined through the real Join path: the master's side
//! (`gnt_transports::join::join`, certificates issued by the cluster CA) against each agent's
//! bootstrap service, then, as `gnt node add` does, a wait until the node answers
//! `Version` over mutual TLS on its member listener. A first batch goes all at once (the
//! "concurrent joins" figure), the rest `concurrency` at a time; then every joined node
//! enters the master's configuration in one commit.
//!
//! What the harness leaves out of `gnt node add` here, and why: the reachability pings
//! (measured by the node-add scenario), the per-node configuration commit and the ssconf
//! redistribution to every node after each add (quadratic in the cluster size; the
//! node-add scenario measures one). Each fleet node gets the ssconf of a cluster made of
//! the master and itself: the full node list of a 10,000-node cluster does not fit in an
//! ssconf file (128 KiB, as Ganeti), which `docs/benchmarks.md` discusses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gnt_core::clock::unix_now;
use gnt_core::join::JoinToken;
use gnt_core::netutils::{Hostname, parse_name};
use gnt_core::node::Node;
use gnt_master::config::{ClusterConfig, ConfigStore, NodeConfig};
use gnt_master::error::MasterError;
use gnt_master::master::Master;
use gnt_master::paths::MasterPaths;
use gnt_transports::fingerprint;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::BenchError;
use super::measure::Latency;
use super::report::{Row, Target};
use super::site::BenchNode;

/// The time a batch of 100 concurrent joins may take.
const BATCH_TARGET_S: f64 = 5.0;

/// A node to join, with the token its agent was started with.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The node.
    pub node: BenchNode,
    /// Its token.
    pub token: JoinToken,
}

/// A joined node, for the configuration.
#[derive(Debug, Clone)]
pub struct JoinedNode {
    /// The node.
    pub node: BenchNode,
    /// Its certificate's fingerprint.
    pub certificate_sha256: String,
}

/// Joins run together.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// Nodes joined.
    pub nodes: usize,
    /// Joins in flight at once.
    pub concurrency: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Per-join latency (Join, then the first answer over mutual TLS).
    pub latency: Option<Latency>,
}

/// The scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct JoinResult {
    /// Nodes joined in all.
    pub nodes: usize,
    /// The first batch, all at once.
    pub batch: Phase,
    /// The rest.
    pub rest: Option<Phase>,
    /// Wall time of both, seconds.
    pub total_seconds: f64,
    /// Joins per second over both.
    pub joins_per_second: f64,
}

/// Joins `candidates`: the first `batch` at once, then the rest `concurrency` at a time.
/// Every join must succeed.
pub async fn join_fleet(
    master: &Arc<Master>,
    candidates: Vec<Candidate>,
    batch: usize,
    concurrency: usize,
) -> Result<(JoinResult, Vec<JoinedNode>), BenchError> {
    let config = master.config.snapshot().await;
    let mut base = config.clone();
    base.nodes.retain(|name, _| *name == config.master_node);
    let base = Arc::new(base);
    let nodes = candidates.len();
    let mut rest = candidates;
    let first: Vec<Candidate> = rest.drain(..batch.min(nodes)).collect();

    let started = Instant::now();
    let (batch_phase, mut joined) = phase(master, &base, first, batch.max(1)).await?;
    let rest_phase = if rest.is_empty() {
        None
    } else {
        let (phase, more) = phase(master, &base, rest, concurrency).await?;
        joined.extend(more);
        Some(phase)
    };
    let total = started.elapsed().as_secs_f64();
    Ok((
        JoinResult {
            nodes,
            batch: batch_phase,
            rest: rest_phase,
            total_seconds: total,
            joins_per_second: nodes as f64 / total,
        },
        joined,
    ))
}

async fn phase(
    master: &Arc<Master>,
    base: &Arc<ClusterConfig>,
    candidates: Vec<Candidate>,
    concurrency: usize,
) -> Result<(Phase, Vec<JoinedNode>), BenchError> {
    let nodes = candidates.len();
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut joins = JoinSet::new();
    let started = Instant::now();
    for candidate in candidates {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| BenchError::failed("schedule a join", e))?;
        let master = master.clone();
        let base = base.clone();
        joins.spawn(async move {
            let result = join_one(&master, &base, candidate).await;
            drop(permit);
            result
        });
    }
    let mut latencies = Vec::with_capacity(nodes);
    let mut joined = Vec::with_capacity(nodes);
    while let Some(ended) = joins.join_next().await {
        let (node, elapsed) = ended.map_err(|e| BenchError::failed("a join", e))??;
        latencies.push(elapsed);
        joined.push(node);
    }
    Ok((
        Phase {
            nodes,
            concurrency,
            seconds: started.elapsed().as_secs_f64(),
            latency: Latency::of(&mut latencies),
        },
        joined,
    ))
}

async fn join_one(
    master: &Master,
    base: &ClusterConfig,
    candidate: Candidate,
) -> Result<(JoinedNode, Duration), BenchError> {
    let node = candidate.node;
    let failed = |e: &dyn std::error::Error| {
        BenchError::failed(format!("join {}", node.name), gnt_core::error::Chain(e))
    };
    let member = Node {
        name: Hostname::parse(&node.name).map_err(|e| failed(&e))?,
        addrs: base
            .policy
            .node_addrs(node.primary, Some(node.secondary))
            .map_err(|e| failed(&e))?,
    };
    let started = Instant::now();
    let joined = master
        .join_node(base, &member, candidate.token, unix_now() + 3600)
        .await
        .map_err(|e| failed(&e))?;
    master
        .check_version(&member)
        .await
        .map_err(|e| failed(&e))?;
    let elapsed = started.elapsed();
    // Only the first call needed this connection; the fan-out measures its own.
    master.channels.forget(&node.name);
    Ok((
        JoinedNode {
            certificate_sha256: fingerprint(&joined.certificate_sha256),
            node,
        },
        elapsed,
    ))
}

/// Enters `joined` into the configuration in one change, holding the daemon lock (so no
/// `gnt-masterd` may run meanwhile). Returns the new serial.
pub async fn commit(
    master: &Master,
    paths: &MasterPaths,
    joined: &[JoinedNode],
) -> Result<u64, BenchError> {
    let _lock = ConfigStore::new(&paths.master_dir)
        .lock()
        .map_err(|e| BenchError::failed("lock the configuration", e))?;
    let now = unix_now();
    let ((), committed) = master
        .config
        .lock()
        .await
        .commit(|config| {
            for j in joined {
                let name = parse_name("node name", &j.node.name).map_err(MasterError::from)?;
                let mut record = NodeConfig::new(gnt_core::node::NodeAddrs {
                    primary: j.node.primary,
                    secondary: j.node.secondary,
                });
                record.certificate_sha256 = j.certificate_sha256.clone();
                record.added_at = now;
                config.nodes.insert(name, record);
            }
            Ok::<_, MasterError>(())
        })
        .map_err(|e| BenchError::failed("commit the joined nodes", e))?;
    Ok(committed.serial)
}

/// The table's figures.
pub fn rows(result: &JoinResult) -> Vec<Row> {
    let mut rows = Vec::new();
    let b = &result.batch;
    let mut batch = Row::new(
        "join",
        format!("{} concurrent joins, wall time", b.nodes),
        format!("{:.2} s", b.seconds),
    );
    if b.nodes == 100 {
        batch = batch.target(Target::at_most(b.seconds, BATCH_TARGET_S, "s"));
    }
    rows.push(batch);
    if let Some(l) = b.latency {
        rows.push(Row::new(
            "join",
            format!("{} concurrent joins, per join p50 / p99", b.nodes),
            format!("{:.1} / {:.1} ms", l.p50_us / 1e3, l.p99_us / 1e3),
        ));
    }
    if let Some(rest) = &result.rest {
        rows.push(Row::new(
            "join",
            format!("{} more joins, {} at a time", rest.nodes, rest.concurrency),
            format!("{:.2} s", rest.seconds),
        ));
        if let Some(l) = rest.latency {
            rows.push(Row::new(
                "join",
                format!("{} more joins, per join p50 / p99", rest.nodes),
                format!("{:.1} / {:.1} ms", l.p50_us / 1e3, l.p99_us / 1e3),
            ));
        }
    }
    rows.push(Row::new(
        "join",
        format!("{} joins in all", result.nodes),
        format!(
            "{:.2} s, {:.0} joins/s",
            result.total_seconds, result.joins_per_second
        ),
    ));
    rows
}
