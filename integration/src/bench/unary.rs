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
use super::measure::{Latency, cpu_time, median, micros, pin_this_thread, write_calls};

mod table;

pub use table::rows;

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
    /// The server's write system calls per call, when its process is known.
    pub server_writes_per_call: Option<f64>,
}

/// Callers, and the connections they are spread over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shape {
    /// Concurrent callers.
    pub callers: usize,
    /// Connections (HTTP/2 channels); caller `i` uses connection `i % connections`.
    pub connections: usize,
}

impl Shape {
    /// Every pairing of `callers` with `connections` that has a caller per connection at
    /// least, in the order given.
    pub fn all(callers: &[usize], connections: &[usize]) -> Vec<Self> {
        callers
            .iter()
            .flat_map(|&c| {
                connections
                    .iter()
                    .filter(move |&&k| k >= 1 && k <= c)
                    .map(move |&k| Self {
                        callers: c,
                        connections: k,
                    })
            })
            .collect()
    }
}

/// One target's rounds at one shape.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Median requests per second over the rounds.
    pub requests_per_second: f64,
    /// Latency over every call of every round.
    pub latency: Option<Latency>,
    /// Median over the rounds of the server's CPU time per call.
    pub server_cpu_us_per_call: Option<f64>,
    /// Median over the rounds of the server's write system calls per call.
    pub server_writes_per_call: Option<f64>,
    /// Each round.
    pub rounds: Vec<Load>,
}

/// The targets at one shape.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Concurrent callers.
    pub concurrency: usize,
    /// Connections they are spread over.
    pub connections: usize,
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
    /// One per shape.
    pub comparisons: Vec<Comparison>,
    /// The CPU the load generator was pinned to, if it was (the servers then were pinned
    /// to another).
    pub client_cpu: Option<usize>,
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
    on_own_runtime(None, move || async move {
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

/// Runs `make()`'s future to completion on a new thread with a single-threaded runtime,
/// pinned to CPU `cpu` if given.
async fn on_own_runtime<T, F, Fut>(cpu: Option<usize>, make: F) -> Result<T, BenchError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, BenchError>>,
{
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-client".to_owned())
        .spawn(move || {
            let outcome = cpu
                .map_or(Ok(()), pin_this_thread)
                .and_then(|()| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(BenchError::io("start the client's runtime"))
                })
                .and_then(|runtime| runtime.block_on(make()));
            let _ = done.send(outcome);
        })
        .map_err(BenchError::io("start the client's thread"))?;
    result
        .await
        .map_err(|_| BenchError::failed("a client round", "the client's thread died"))?
}

/// C callers, D seconds, spread over `channels` (one connection each). Every call must
/// succeed.
pub async fn load(
    channels: &[Channel],
    concurrency: usize,
    duration: Duration,
) -> Result<(Load, Vec<Duration>), BenchError> {
    let barrier = Arc::new(Barrier::new(concurrency + 1));
    let mut callers: tokio::task::JoinSet<Result<Vec<Duration>, BenchError>> =
        tokio::task::JoinSet::new();
    for (_, channel) in (0..concurrency).zip(channels.iter().cycle()) {
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
            server_writes_per_call: None,
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
    shape: Shape,
    duration: Duration,
    client_cpu: Option<usize>,
) -> Result<(Load, Vec<Duration>), BenchError> {
    let server = server.clone();
    on_own_runtime(client_cpu, move || async move {
        client_round(&server, shape, duration).await
    })
    .await
}

async fn client_round(
    server: &Server,
    shape: Shape,
    duration: Duration,
) -> Result<(Load, Vec<Duration>), BenchError> {
    let connector = &server.connector;
    let mut channels = Vec::with_capacity(shape.connections);
    for _ in 0..shape.connections {
        channels.push(
            connector
                .channel()
                .await
                .map_err(|e| BenchError::failed(format!("connect to {}", connector.target()), e))?,
        );
    }
    load(&channels, shape.callers, WARM_UP).await?;
    let before = server
        .pid
        .map(|pid| Ok::<_, BenchError>((cpu_time(pid)?, write_calls(pid)?)))
        .transpose()?;
    let (mut measured, samples) = load(&channels, shape.callers, duration).await?;
    if let (Some(pid), Some((cpu_before, calls_before))) = (server.pid, before) {
        let calls = measured.requests.max(1) as f64;
        let used = cpu_time(pid)? - cpu_before;
        let writes = write_calls(pid)?.saturating_sub(calls_before);
        measured.server_cpu_us_per_call = Some(micros(used) / calls);
        measured.server_writes_per_call = Some(writes as f64 / calls);
    }
    Ok((measured, samples))
}

fn series(rounds: Vec<(Load, Vec<Duration>)>) -> Series {
    let rps: Vec<f64> = rounds.iter().map(|(l, _)| l.requests_per_second).collect();
    let median_of = |figure: fn(&Load) -> Option<f64>| {
        let values: Vec<f64> = rounds.iter().filter_map(|(l, _)| figure(l)).collect();
        (!values.is_empty()).then(|| median(&values))
    };
    let mut pooled: Vec<Duration> = rounds.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    Series {
        requests_per_second: median(&rps),
        latency: Latency::of(&mut pooled),
        server_cpu_us_per_call: median_of(|l| l.server_cpu_us_per_call),
        server_writes_per_call: median_of(|l| l.server_writes_per_call),
        rounds: rounds.into_iter().map(|(l, _)| l).collect(),
    }
}

/// How to load: the shapes, each round's length, the rounds per target, and the CPU the
/// load generator is pinned to (if any).
#[derive(Debug, Clone)]
pub struct Plan {
    /// Callers and connections.
    pub shapes: Vec<Shape>,
    /// Each round's length.
    pub duration: Duration,
    /// Rounds per target and shape.
    pub rounds: usize,
    /// The load generator's CPU.
    pub client_cpu: Option<usize>,
}

/// Loads `target`, and `baseline` in turns if given, at each shape of `plan`.
pub async fn compare(
    target: &Server,
    baseline: Option<&Server>,
    plan: &Plan,
) -> Result<UnaryResult, BenchError> {
    let mut comparisons = Vec::new();
    let (duration, cpu) = (plan.duration, plan.client_cpu);
    for &shape in &plan.shapes {
        let mut target_rounds = Vec::new();
        let mut baseline_rounds = Vec::new();
        for r in 0..plan.rounds {
            let baseline_first = r % 2 == 1;
            if let (true, Some(b)) = (baseline_first, baseline) {
                baseline_rounds.push(round(b, shape, duration, cpu).await?);
            }
            target_rounds.push(round(target, shape, duration, cpu).await?);
            if let (false, Some(b)) = (baseline_first, baseline) {
                baseline_rounds.push(round(b, shape, duration, cpu).await?);
            }
        }
        let pair_ratios: Vec<f64> = target_rounds
            .iter()
            .zip(&baseline_rounds)
            .map(|((t, _), (b, _))| t.requests_per_second / b.requests_per_second)
            .collect();
        let (ratio, ratio_standard_error) = mean_and_standard_error(&pair_ratios);
        comparisons.push(Comparison {
            concurrency: shape.callers,
            connections: shape.connections,
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
        client_cpu: plan.client_cpu,
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
