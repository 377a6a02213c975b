//! `unary`: `Version` over mutual TLS on one HTTP/2 connection, C callers each calling in a
//! loop for D seconds: requests per second and latency percentiles. The real `gnt-noded`
//! and the bare tonic server take turns, round after round (which goes first alternates),
//! through the same client; figures are medians over rounds, latencies pooled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gnt_proto::node::v1::VersionRequest;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_transports::Connector;
use serde::Serialize;
use tokio::sync::Barrier;
use tonic::transport::Channel;

use super::BenchError;
use super::measure::{Latency, median};
use super::report::{Row, Target};

/// The overhead allowed over bare tonic at C=16, as a ratio of requests per second.
const RATIO_TARGET: f64 = 0.95;
/// The median latency allowed at C=1.
const P50_TARGET_US: f64 = 100.0;
/// Load before each measured round, to settle the connection and the allocator.
const WARM_UP: Duration = Duration::from_millis(300);

/// One round of load on one target.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    /// Calls that succeeded.
    pub requests: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Calls per second.
    pub requests_per_second: f64,
    /// Latency of the calls.
    pub latency: Option<Latency>,
}

/// One target's rounds at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Median requests per second over the rounds.
    pub requests_per_second: f64,
    /// Latency over every call of every round.
    pub latency: Option<Latency>,
    /// Each round.
    pub rounds: Vec<Load>,
}

/// The targets at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Concurrent callers.
    pub concurrency: usize,
    /// The real `gnt-noded` (or the external target).
    pub target: Series,
    /// The bare tonic server, when compared.
    pub baseline: Option<Series>,
    /// Target over baseline requests per second.
    pub ratio: Option<f64>,
}

/// The scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct UnaryResult {
    /// What was loaded.
    pub target: String,
    /// What it was compared with.
    pub baseline: Option<String>,
    /// Seconds of each round.
    pub round_seconds: f64,
    /// One per concurrency.
    pub comparisons: Vec<Comparison>,
}

/// C callers, D seconds, on `channel` (one connection). Every call must succeed.
pub async fn load(
    channel: &Channel,
    concurrency: usize,
    duration: Duration,
) -> Result<(Load, Vec<Duration>), BenchError> {
    let barrier = Arc::new(Barrier::new(concurrency + 1));
    let mut callers: tokio::task::JoinSet<Result<Vec<Duration>, BenchError>> =
        tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let mut client = NodeAgentClient::new(channel.clone());
        let barrier = barrier.clone();
        callers.spawn(async move {
            let mut samples = Vec::with_capacity(1 << 16);
            barrier.wait().await;
            let deadline = Instant::now() + duration;
            loop {
                let started = Instant::now();
                if started >= deadline {
                    return Ok(samples);
                }
                client
                    .version(VersionRequest {})
                    .await
                    .map_err(|status| BenchError::failed("Version", status.message()))?;
                samples.push(started.elapsed());
            }
        });
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut samples = Vec::new();
    while let Some(ended) = callers.join_next().await {
        let mine = ended.map_err(|e| BenchError::failed("a caller", e))??;
        samples.extend(mine);
    }
    let seconds = started.elapsed().as_secs_f64();
    let requests = samples.len() as u64;
    Ok((
        Load {
            requests,
            seconds,
            requests_per_second: requests as f64 / seconds,
            latency: Latency::of(&mut samples.clone()),
        },
        samples,
    ))
}

/// One measured round on a fresh connection, after a warm-up on it.
async fn round(
    connector: &Connector,
    concurrency: usize,
    duration: Duration,
) -> Result<(Load, Vec<Duration>), BenchError> {
    let channel = connector
        .channel()
        .await
        .map_err(|e| BenchError::failed(format!("connect to {}", connector.target()), e))?;
    load(&channel, concurrency, WARM_UP).await?;
    load(&channel, concurrency, duration).await
}

fn series(rounds: Vec<(Load, Vec<Duration>)>) -> Series {
    let rps: Vec<f64> = rounds.iter().map(|(l, _)| l.requests_per_second).collect();
    let mut pooled: Vec<Duration> = rounds.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    Series {
        requests_per_second: median(&rps),
        latency: Latency::of(&mut pooled),
        rounds: rounds.into_iter().map(|(l, _)| l).collect(),
    }
}

/// Loads `target`, and `baseline` in turns if given, at each concurrency.
pub async fn compare(
    target: &Connector,
    baseline: Option<&Connector>,
    concurrencies: &[usize],
    duration: Duration,
    rounds: usize,
) -> Result<UnaryResult, BenchError> {
    let mut comparisons = Vec::new();
    for &concurrency in concurrencies {
        let mut target_rounds = Vec::new();
        let mut baseline_rounds = Vec::new();
        for r in 0..rounds {
            let baseline_first = r % 2 == 1;
            if let (true, Some(b)) = (baseline_first, baseline) {
                baseline_rounds.push(round(b, concurrency, duration).await?);
            }
            target_rounds.push(round(target, concurrency, duration).await?);
            if let (false, Some(b)) = (baseline_first, baseline) {
                baseline_rounds.push(round(b, concurrency, duration).await?);
            }
        }
        let target = series(target_rounds);
        let baseline = baseline.map(|_| series(baseline_rounds));
        let ratio = baseline
            .as_ref()
            .map(|b| target.requests_per_second / b.requests_per_second);
        comparisons.push(Comparison {
            concurrency,
            target,
            baseline,
            ratio,
        });
    }
    Ok(UnaryResult {
        target: target.target(),
        baseline: baseline.map(Connector::target),
        round_seconds: duration.as_secs_f64(),
        comparisons,
    })
}

/// The table's figures.
pub fn rows(result: &UnaryResult) -> Vec<Row> {
    let mut rows = Vec::new();
    for c in &result.comparisons {
        let n = c.concurrency;
        let mut rps = Row::new(
            "unary",
            format!("C={n} requests/s"),
            format!("{:.0}", c.target.requests_per_second),
        );
        if let (Some(baseline), Some(ratio)) = (&c.baseline, c.ratio) {
            rps = rps.baseline(format!("{:.0}", baseline.requests_per_second), ratio);
            if n == 16 {
                rps = rps.target(Target::at_least(ratio, RATIO_TARGET, "× bare"));
            }
        }
        rows.push(rps);
        if let Some(latency) = c.target.latency {
            let mut p50 = Row::new("unary", format!("C={n} p50 latency"), us(latency.p50_us));
            if let Some(base) = c.baseline.as_ref().and_then(|b| b.latency) {
                p50 = p50.baseline(us(base.p50_us), latency.p50_us / base.p50_us);
            }
            if n == 1 {
                p50 = p50.target(Target::at_most(latency.p50_us, P50_TARGET_US, "µs"));
            }
            rows.push(p50);
            let mut p99 = Row::new("unary", format!("C={n} p99 latency"), us(latency.p99_us));
            if let Some(base) = c.baseline.as_ref().and_then(|b| b.latency) {
                p99 = p99.baseline(us(base.p99_us), latency.p99_us / base.p99_us);
            }
            rows.push(p99);
        }
    }
    rows
}

fn us(value: f64) -> String {
    format!("{value:.0} µs")
}
