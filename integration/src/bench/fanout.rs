//! `fanout`: the master's runner (the fan-out behind `gnt rpc call` and `cluster verify`)
//! calling `Version` on every node of the configuration. Cold rounds start from a new TLS
//! client configuration and new channels, so every call includes the TCP connect and a
//! full mutual-TLS handshake (no session resumption); warm rounds reuse the channels of
//! the last cold round. Each figure is the wall time of a whole round.

use std::time::{Duration, Instant};

use gnt_core::netutils::Hostname;
use gnt_core::runner::{CallFailure, TimeoutClass};
use gnt_master::channels::NodeChannels;
use gnt_master::config::ClusterConfig;
use gnt_master::master::node_client_tls;
use gnt_master::operations::rpc_call::{failed, fan_out_on, timed};
use gnt_master::paths::MasterPaths;
use gnt_proto::node::v1::VersionRequest;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use serde::Serialize;

use super::BenchError;
use super::measure::{median, millis, worst};
use super::report::{Row, Target};

/// Pause after dropping a cold round's channels, so the nodes have closed them.
const SETTLE: Duration = Duration::from_millis(500);

/// Rounds of one kind.
#[derive(Debug, Clone, Serialize)]
pub struct Rounds {
    /// Each round's wall time, milliseconds.
    pub round_ms: Vec<f64>,
    /// Their median.
    pub median_ms: f64,
    /// The slowest.
    pub worst_ms: f64,
}

impl Rounds {
    fn of(round_ms: Vec<f64>) -> Self {
        Self {
            median_ms: median(&round_ms),
            worst_ms: worst(&round_ms),
            round_ms,
        }
    }
}

/// The scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutResult {
    /// Nodes called per round (the whole configuration).
    pub nodes: usize,
    /// Rounds on new channels.
    pub cold: Rounds,
    /// Rounds on live channels.
    pub warm: Rounds,
}

/// One round: `Version` on every node through `channels`; every call must succeed.
pub async fn round(
    channels: &NodeChannels,
    config: &ClusterConfig,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let results = fan_out_on(
        channels,
        config,
        None,
        TimeoutClass::Urgent,
        |channel, timeout| async move {
            NodeAgentClient::new(channel)
                .version(timed(VersionRequest::default(), timeout))
                .await
                .map(drop)
                .map_err(failed(timeout))
        },
        |_| {},
    )
    .await;
    let elapsed = started.elapsed();
    let failures: Vec<(Hostname, CallFailure)> = results
        .into_iter()
        .filter_map(|r| r.outcome.err().map(|f| (r.key, f)))
        .collect();
    if let Some((node, failure)) = failures.first() {
        return Err(BenchError::failed(
            "fan-out",
            format!(
                "{} of {} nodes failed; {node}: {failure}",
                failures.len(),
                config.nodes.len()
            ),
        ));
    }
    Ok(elapsed)
}

/// `cold` rounds on new channels, then `warm` rounds on the last ones.
pub async fn measure(
    paths: &MasterPaths,
    config: &ClusterConfig,
    cold: usize,
    warm: usize,
) -> Result<FanoutResult, BenchError> {
    let new_channels = || {
        node_client_tls(paths)
            .map(|tls| NodeChannels::new(tls, config.policy, config.node_port, config.master_epoch))
            .map_err(|e| BenchError::failed("load the master's TLS identity", e))
    };
    let mut cold_ms = Vec::new();
    let mut channels = new_channels()?;
    for r in 0..cold.max(1) {
        if r > 0 {
            drop(channels);
            tokio::time::sleep(SETTLE).await;
            channels = new_channels()?;
        }
        cold_ms.push(millis(round(&channels, config).await?));
    }
    let mut warm_ms = Vec::new();
    for _ in 0..warm {
        warm_ms.push(millis(round(&channels, config).await?));
    }
    Ok(FanoutResult {
        nodes: config.nodes.len(),
        cold: Rounds::of(cold_ms),
        warm: Rounds::of(warm_ms),
    })
}

/// The table's figures; the targets apply to fleets of 1,000 and 10,000 nodes.
pub fn rows(result: &FanoutResult, fleet: usize) -> Vec<Row> {
    let n = result.nodes;
    let mut cold = Row::new(
        "fanout",
        format!("cold, {n} nodes, median of {}", result.cold.round_ms.len()),
        format!("{:.0} ms", result.cold.median_ms),
    );
    let mut warm = Row::new(
        "fanout",
        format!("warm, {n} nodes, median of {}", result.warm.round_ms.len()),
        format!("{:.1} ms", result.warm.median_ms),
    );
    match fleet {
        1000 => {
            cold = cold.target(Target::at_most(result.cold.median_ms, 1500.0, "ms"));
            warm = warm.target(Target::at_most(result.warm.median_ms, 100.0, "ms"));
        }
        10_000 => warm = warm.target(Target::at_most(result.warm.median_ms, 1000.0, "ms")),
        _ => {}
    }
    vec![
        cold,
        Row::new(
            "fanout",
            format!("cold, {n} nodes, worst"),
            format!("{:.0} ms", result.cold.worst_ms),
        ),
        warm,
        Row::new(
            "fanout",
            format!("warm, {n} nodes, worst"),
            format!("{:.1} ms", result.warm.worst_ms),
        ),
    ]
}
