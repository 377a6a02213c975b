//! `unary`: `Version` over mutual TLS on one HTTP/2 connection, C callers each calling in a
//! loop for D seconds: requests per second and latency percentiles. The real `gnt-noded`
//! and the bare tonic server take turns, round after round (which goes first alternates),
//! through the same client; figures are medians over rounds, latencies pooled.
//!
//! The ratio of requests per second is the mean of the ratios of round pairs (each round of
//! the target against the baseline round next to it in time), with its standard error. On
//! two shared CPUs one round's throughput wanders by ±5 % from the next; a pair shares its
//! moment, so most of that wander cancels in its ratio, and the spread of the pairs says how
//! far the mean can be trusted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gnt_proto::node::v1::VersionRequest;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_transports::Connector;
use serde::Serialize;
use tokio::sync::Barrier;
use tonic::transport::Channel;

use super::BenchError;
use super::measure::{Latency, cpu_time, median, micros};
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
    /// The server's CPU time per call (user and system, all threads), when its process
    /// is known.
    pub server_cpu_us_per_call: Option<f64>,
}

/// One target's rounds at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Median requests per second over the rounds.
    pub requests_per_second: f64,
    /// Latency over every call of every round.
    pub latency: Option<Latency>,
    /// Median over the rounds of the server's CPU time per call.
    pub server_cpu_us_per_call: Option<f64>,
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
    /// Target over baseline requests per second: the mean of `pair_ratios`.
    pub ratio: Option<f64>,
    /// The standard error of `ratio` (needs two pairs or more).
    pub ratio_standard_error: Option<f64>,
    /// Each round's target over the baseline round beside it, requests per second.
    pub pair_ratios: Vec<f64>,
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
    /// One caller's plain TCP round trips (64 bytes each way) on the same path: what the
    /// wire and the two processes' wake-ups cost without TLS, HTTP/2 or gRPC.
    pub wire_round_trip: Option<Latency>,
}

impl UnaryResult {
    /// With the wire's round trip.
    pub fn with_wire(mut self, latency: Option<Latency>) -> Self {
        self.wire_round_trip = latency;
        self
    }
}

/// One caller's plain TCP round trips to the echo at `echo` for `duration`, on a
/// single-threaded runtime of its own like the gRPC client.
pub async fn wire_round_trip(
    echo: std::net::SocketAddr,
    duration: Duration,
) -> Result<Option<Latency>, BenchError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    on_own_runtime(move || async move {
        let mut stream = tokio::net::TcpStream::connect(echo)
            .await
            .map_err(BenchError::io(format!("connect to {echo}")))?;
        stream
            .set_nodelay(true)
            .map_err(BenchError::io("set TCP_NODELAY"))?;
        let mut message = [7u8; super::bare::ECHO_BYTES];
        let mut samples = Vec::new();
        let deadline = Instant::now() + WARM_UP + duration;
        let measure_from = Instant::now() + WARM_UP;
        let echo_failed = BenchError::io("echo");
        let outcome: std::io::Result<()> = async {
            while Instant::now() < deadline {
                let started = Instant::now();
                stream.write_all(&message).await?;
                stream.read_exact(&mut message).await?;
                if started >= measure_from {
                    samples.push(started.elapsed());
                }
            }
            Ok(())
        }
        .await;
        outcome.map_err(echo_failed)?;
        Ok(Latency::of(&mut samples))
    })
    .await
}

/// Runs `make()`'s future to completion on a new thread with a single-threaded runtime.
async fn on_own_runtime<T, F, Fut>(make: F) -> Result<T, BenchError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, BenchError>>,
{
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-client".to_owned())
        .spawn(move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(BenchError::io("start the client's runtime"))
                .and_then(|runtime| runtime.block_on(make()));
            let _ = done.send(outcome);
        })
        .map_err(BenchError::io("start the client's thread"))?;
    result
        .await
        .map_err(|_| BenchError::failed("a client round", "the client's thread died"))?
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
                    .version(VersionRequest::default())
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
            server_cpu_us_per_call: None,
        },
        samples,
    ))
}

/// A server to load: how to reach it, and its process if it is local.
#[derive(Debug, Clone)]
pub struct Server {
    /// How to reach it.
    pub connector: Connector,
    /// Its process, for its CPU time.
    pub pid: Option<u32>,
}

/// One measured round on a fresh connection, after a warm-up on it. The client runs on a
/// thread and runtime of its own (single-threaded, as load generators do), so its tasks
/// hand work to each other without waking other threads: what is measured is the server
/// and the wire, not the client's scheduler.
async fn round(
    server: &Server,
    concurrency: usize,
    duration: Duration,
) -> Result<(Load, Vec<Duration>), BenchError> {
    let server = server.clone();
    on_own_runtime(move || async move { client_round(&server, concurrency, duration).await }).await
}

async fn client_round(
    server: &Server,
    concurrency: usize,
    duration: Duration,
) -> Result<(Load, Vec<Duration>), BenchError> {
    let connector = &server.connector;
    let channel = connector
        .channel()
        .await
        .map_err(|e| BenchError::failed(format!("connect to {}", connector.target()), e))?;
    load(&channel, concurrency, WARM_UP).await?;
    let cpu_before = server.pid.map(cpu_time).transpose()?;
    let (mut measured, samples) = load(&channel, concurrency, duration).await?;
    if let (Some(pid), Some(before)) = (server.pid, cpu_before) {
        let used = cpu_time(pid)? - before;
        measured.server_cpu_us_per_call = Some(micros(used) / measured.requests.max(1) as f64);
    }
    Ok((measured, samples))
}

fn series(rounds: Vec<(Load, Vec<Duration>)>) -> Series {
    let rps: Vec<f64> = rounds.iter().map(|(l, _)| l.requests_per_second).collect();
    let cpu: Vec<f64> = rounds
        .iter()
        .filter_map(|(l, _)| l.server_cpu_us_per_call)
        .collect();
    let mut pooled: Vec<Duration> = rounds.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    Series {
        requests_per_second: median(&rps),
        latency: Latency::of(&mut pooled),
        server_cpu_us_per_call: (!cpu.is_empty()).then(|| median(&cpu)),
        rounds: rounds.into_iter().map(|(l, _)| l).collect(),
    }
}

/// Loads `target`, and `baseline` in turns if given, at each concurrency.
pub async fn compare(
    target: &Server,
    baseline: Option<&Server>,
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
        let pair_ratios: Vec<f64> = target_rounds
            .iter()
            .zip(&baseline_rounds)
            .map(|((t, _), (b, _))| t.requests_per_second / b.requests_per_second)
            .collect();
        let (ratio, ratio_standard_error) = mean_and_standard_error(&pair_ratios);
        comparisons.push(Comparison {
            concurrency,
            target: series(target_rounds),
            baseline: baseline.map(|_| series(baseline_rounds)),
            ratio,
            ratio_standard_error,
            pair_ratios,
        });
    }
    Ok(UnaryResult {
        target: target.connector.target(),
        baseline: baseline.map(|b| b.connector.target()),
        round_seconds: duration.as_secs_f64(),
        comparisons,
        wire_round_trip: None,
    })
}

/// The mean of `values`, and its standard error when there are two or more.
fn mean_and_standard_error(values: &[f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let error = (values.len() > 1).then(|| {
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (variance / n).sqrt()
    });
    (Some(mean), error)
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
        if let (Some(ratio), Some(error)) = (c.ratio, c.ratio_standard_error) {
            rows.push(Row::new(
                "unary",
                format!("C={n} ratio, mean of {} round pairs", c.pair_ratios.len()),
                format!("{ratio:.3} ± {error:.3}"),
            ));
        }
        if let Some(latency) = c.target.latency {
            let mut p50 = Row::new("unary", format!("C={n} p50 latency"), us(latency.p50_us));
            if let Some(base) = c.baseline.as_ref().and_then(|b| b.latency) {
                p50 = p50.baseline(us(base.p50_us), latency.p50_us / base.p50_us);
            }
            if n == 1 {
                p50 = p50.target(Target::at_most(latency.p50_us, P50_TARGET_US, "µs"));
            }
            rows.push(p50);
            if let (1, Some(wire)) = (n, result.wire_round_trip) {
                rows.push(Row::new(
                    "unary",
                    "C=1 p50, plain TCP round trip",
                    us(wire.p50_us),
                ));
            }
            let mut p99 = Row::new("unary", format!("C={n} p99 latency"), us(latency.p99_us));
            if let Some(base) = c.baseline.as_ref().and_then(|b| b.latency) {
                p99 = p99.baseline(us(base.p99_us), latency.p99_us / base.p99_us);
            }
            rows.push(p99);
        }
        if let Some(cpu) = c.target.server_cpu_us_per_call {
            let mut row = Row::new("unary", format!("C={n} server CPU per call"), us(cpu));
            if let Some(base) = c.baseline.as_ref().and_then(|b| b.server_cpu_us_per_call) {
                row = row.baseline(us(base), cpu / base);
            }
            rows.push(row);
        }
    }
    rows
}

fn us(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.1} µs")
    } else {
        format!("{value:.0} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::mean_and_standard_error;

    #[test]
    fn the_ratio_estimate_is_the_mean_with_its_standard_error() {
        assert_eq!(mean_and_standard_error(&[]), (None, None));
        assert_eq!(mean_and_standard_error(&[0.97]), (Some(0.97), None));
        let (mean, error) = mean_and_standard_error(&[1.0, 0.9, 0.95, 0.95]);
        assert!((mean.unwrap() - 0.95).abs() < 1e-12);
        // Sample standard deviation sqrt(0.005 / 3), over sqrt(4).
        let expected = (0.005_f64 / 3.0).sqrt() / 2.0;
        assert!((error.unwrap() - expected).abs() < 1e-12, "{error:?}");
    }
}
