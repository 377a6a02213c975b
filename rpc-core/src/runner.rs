//! The fan-out runner: one procedure on many nodes at once, one result per node.
//!
//! Ganeti's semantics, done with async calls instead of curl-multi:
//!
//! - every call gets the timeout of its class ([`TimeoutClass`]: 60 s, 5 min, 15 min, 1 h,
//!   4 h, 1 day), enforced here whatever the transport does;
//! - offline nodes get no traffic at all and are reported [`CallFailure::Offline`];
//! - calls run concurrently, at most `max_concurrency` at a time (Ganeti 3 caps curl at 30
//!   connections; we are not bound to one connection per call, so the cap is higher);
//! - there are no retries: a caller that wants them decides (Ganeti's callers do the same);
//! - each result is the payload or a [`CallFailure`] that says what happened.
//!
//! The runner knows nothing of channels or TLS: the caller passes the call itself, and turns
//! its transport's errors into [`CallFailure`]s (gnt-transports has the classifier).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::Semaphore;

use crate::error::{Classify, ErrorKind};

/// How long a call may take: Ganeti's RPC timeout classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimeoutClass {
    /// 60 seconds (the default).
    #[default]
    Urgent,
    /// 5 minutes.
    Fast,
    /// 15 minutes.
    Normal,
    /// 1 hour.
    Slow,
    /// 4 hours.
    FourHours,
    /// 1 day.
    OneDay,
}

impl TimeoutClass {
    /// Every class, shortest first.
    pub const ALL: [Self; 6] = [
        Self::Urgent,
        Self::Fast,
        Self::Normal,
        Self::Slow,
        Self::FourHours,
        Self::OneDay,
    ];

    /// The timeout.
    pub const fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Self::Urgent => 60,
            Self::Fast => 300,
            Self::Normal => 900,
            Self::Slow => 3600,
            Self::FourHours => 14400,
            Self::OneDay => 86400,
        })
    }

    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Urgent => "urgent",
            Self::Fast => "fast",
            Self::Normal => "normal",
            Self::Slow => "slow",
            Self::FourHours => "4hrs",
            Self::OneDay => "1day",
        }
    }
}

impl std::str::FromStr for TimeoutClass {
    type Err = UnknownTimeoutClass;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == text)
            .ok_or_else(|| UnknownTimeoutClass(text.to_owned()))
    }
}

/// A timeout class name that is not one of [`TimeoutClass::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown timeout class '{0}': use one of urgent, fast, normal, slow, 4hrs, 1day")]
pub struct UnknownTimeoutClass(pub String);

impl Classify for UnknownTimeoutClass {
    fn kind(&self) -> ErrorKind {
        ErrorKind::WrongInput
    }
}

/// Why a call to one node did not return a payload.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// The node is marked offline; nothing was sent.
    Offline,
    /// The connection was refused: the host is up, no agent listens.
    Refused(String),
    /// No answer within the timeout class, the connect timeout, or the keepalive's window
    /// (a frozen node). Shown as "no answer within 60s", as every timeout is worded.
    TimedOut(Duration),
    /// The TLS handshake failed: a certificate was not trusted, or ours was refused.
    TlsRejected(String),
    /// The node could not be reached otherwise (no route, reset, ...).
    Unreachable(String),
    /// The node answered with an error status.
    Remote {
        /// The gRPC status code, as its name (`PERMISSION_DENIED`, ...).
        code: String,
        /// The node's message.
        message: String,
    },
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Offline => f.write_str("node is marked offline"),
            Self::Refused(detail) => write!(f, "connection refused ({detail})"),
            Self::TimedOut(after) => write!(f, "no answer within {after:?}"),
            Self::TlsRejected(detail) => write!(f, "TLS rejected: {detail}"),
            Self::Unreachable(detail) => write!(f, "unreachable: {detail}"),
            Self::Remote { code, message } => write!(f, "remote error {code}: {message}"),
        }
    }
}

impl std::error::Error for CallFailure {}

impl Classify for CallFailure {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Offline => ErrorKind::WrongState,
            Self::Refused(_) | Self::Unreachable(_) => ErrorKind::Unavailable,
            Self::TimedOut(_) => ErrorKind::Timeout,
            Self::TlsRejected(_) => ErrorKind::Unauthenticated,
            Self::Remote { .. } => ErrorKind::Internal,
        }
    }
}

/// A node to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<K> {
    /// How the caller names it (the node name); results are keyed by it.
    pub key: K,
    /// Whether the node is offline: it gets no traffic.
    pub offline: bool,
}

/// The result of one node's call.
#[derive(Debug, Clone)]
pub struct NodeResult<K, T> {
    /// The node, as the caller named it.
    pub key: K,
    /// The payload, or why there is none.
    pub outcome: Result<T, CallFailure>,
    /// How long the call took (zero for offline nodes).
    pub elapsed: Duration,
}

/// Options of a fan-out.
#[derive(Debug, Clone, Copy)]
pub struct FanOut {
    /// The timeout class of every call.
    pub class: TimeoutClass,
    /// Calls in flight at once. Defaults to 1024.
    pub max_concurrency: usize,
}

impl Default for FanOut {
    fn default() -> Self {
        Self {
            class: TimeoutClass::default(),
            max_concurrency: 1024,
        }
    }
}

/// Calls `call(key, timeout)` on every online target, concurrently, and returns the results
/// as they complete (offline targets first). `on_result` sees each result as it arrives, for
/// progress displays.
pub async fn fan_out<K, T, F, Fut>(
    targets: Vec<Target<K>>,
    options: FanOut,
    call: F,
    mut on_result: impl FnMut(&NodeResult<K, T>),
) -> Vec<NodeResult<K, T>>
where
    K: Clone,
    F: Fn(K, Duration) -> Fut,
    Fut: Future<Output = Result<T, CallFailure>>,
{
    let timeout = options.class.duration();
    let permits = Arc::new(Semaphore::new(options.max_concurrency.max(1)));
    let mut results = Vec::with_capacity(targets.len());
    let mut pending = FuturesUnordered::new();
    for target in targets {
        if target.offline {
            let result = NodeResult {
                key: target.key,
                outcome: Err(CallFailure::Offline),
                elapsed: Duration::ZERO,
            };
            on_result(&result);
            results.push(result);
            continue;
        }
        let permits = permits.clone();
        let future = call(target.key.clone(), timeout);
        pending.push(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await;
            let started = Instant::now();
            let outcome = match tokio::time::timeout(timeout, future).await {
                Ok(outcome) => outcome,
                Err(_) => Err(CallFailure::TimedOut(timeout)),
            };
            NodeResult {
                key: target.key,
                outcome,
                elapsed: started.elapsed(),
            }
        });
    }
    while let Some(result) = pending.next().await {
        on_result(&result);
        results.push(result);
    }
    results
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn targets(n: usize, offline: &[usize]) -> Vec<Target<String>> {
        (0..n)
            .map(|i| Target {
                key: format!("node{i}"),
                offline: offline.contains(&i),
            })
            .collect()
    }

    #[test]
    fn timeout_classes_are_ganetis() {
        let secs: Vec<u64> = TimeoutClass::ALL
            .iter()
            .map(|c| c.duration().as_secs())
            .collect();
        assert_eq!(secs, [60, 300, 900, 3600, 14400, 86400]);
        assert_eq!(
            "4hrs".parse::<TimeoutClass>().unwrap(),
            TimeoutClass::FourHours
        );
        let refused = "forever".parse::<TimeoutClass>().unwrap_err().to_string();
        let names: Vec<&str> = TimeoutClass::ALL.iter().map(|c| c.name()).collect();
        assert!(refused.ends_with(&names.join(", ")), "{refused}");
    }

    #[tokio::test]
    async fn offline_nodes_get_no_call_and_are_reported_offline() {
        let calls = AtomicUsize::new(0);
        let results = fan_out(
            targets(4, &[1, 3]),
            FanOut::default(),
            |key: String, _| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, CallFailure>(key.len()) }
            },
            |_| {},
        )
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(results.len(), 4);
        let offline: Vec<_> = results
            .iter()
            .filter(|r| r.outcome == Err(CallFailure::Offline))
            .map(|r| r.key.as_str())
            .collect();
        assert_eq!(offline, ["node1", "node3"]);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_run_concurrently_and_each_gets_the_class_timeout() {
        let options = FanOut {
            class: TimeoutClass::Urgent,
            max_concurrency: 16,
        };
        let started = tokio::time::Instant::now();
        let results = fan_out(
            targets(10, &[]),
            options,
            |key: String, _| async move {
                if key == "node7" {
                    std::future::pending::<()>().await; // never answers
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, CallFailure>(())
            },
            |_| {},
        )
        .await;
        // All ten ran at once: the whole fan-out takes the 60 s timeout, not 9 x 10 s + 60 s.
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        let failed: Vec<_> = results.iter().filter(|r| r.outcome.is_err()).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].key, "node7");
        assert_eq!(
            failed[0].outcome,
            Err(CallFailure::TimedOut(Duration::from_secs(60)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_capped() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let options = FanOut {
            class: TimeoutClass::Urgent,
            max_concurrency: 3,
        };
        fan_out(
            targets(12, &[]),
            options,
            |_, _| {
                let (in_flight, peak) = (in_flight.clone(), peak.clone());
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, CallFailure>(())
                }
            },
            |_| {},
        )
        .await;
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn each_result_is_reported_as_it_arrives() {
        let mut seen = Vec::new();
        let results = fan_out(
            targets(3, &[0]),
            FanOut::default(),
            |_, _| async { Ok::<_, CallFailure>(1) },
            |r| seen.push(r.key.clone()),
        )
        .await;
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0], "node0", "offline results come first");
        assert_eq!(results.len(), 3);
    }

    #[test]
    fn failures_say_what_happened() {
        assert_eq!(CallFailure::Offline.to_string(), "node is marked offline");
        assert_eq!(
            CallFailure::TimedOut(Duration::from_secs(60)).to_string(),
            "no answer within 60s"
        );
        let remote = CallFailure::Remote {
            code: "PERMISSION_DENIED".to_owned(),
            message: "only the master may".to_owned(),
        };
        assert_eq!(
            remote.to_string(),
            "remote error PERMISSION_DENIED: only the master may"
        );
    }
}
