//! The converger: brings every online node's ssconf up to the configuration's serial, with
//! no operator action, whatever made it lag (its agent was down during a redistribution,
//! the master crashed between a commit and its redistribution, a network cut).
//!
//! `gnt-masterd` runs one for its whole life ([`Converger::run`]). A round asks online nodes
//! their ssconf serial (`Version`, which every node answers cheaply) and sends the current
//! set to each node whose serial lags (`WriteSsconf`). Rounds run:
//!
//! - when the daemon starts (a crash may have left nodes behind);
//! - when woken ([`Wakeup::wake`]): after any redistribution that a node did not take;
//! - every `interval` (30 s by default), for anything else.
//!
//! A node that does not answer, or does not take the set, is retried on its own schedule:
//! 1 s after the first failure, doubling up to 8 s, for as long as it stays online in the
//! configuration. The bound keeps the wait of a node that comes back short (it is current
//! within about 8 s of answering), and costs one refused connection per node every 8 s
//! while it is down. Woken and periodic rounds leave a node alone until its retry is due.
//!
//! The converger never holds the configuration while it talks to nodes: a round works on a
//! snapshot, so read-only calls and changes proceed meanwhile. A set it sends may be
//! overtaken by a newer change's redistribution; the node then refuses the older serial,
//! and the retry finds it current.
//!
//! A certificate renewal that waits for nodes (`renew_crypto`) goes on in the round in
//! which one of them answers: it is renewed, and the renewal finished once none is left.
//!
//! Logging follows node states, not attempts: a node is reported once when it turns
//! troubled (after two failures in a row, so that a push overtaken by a newer one is not
//! reported), again only if the trouble changes, and once when it is current again.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use gnt_core::netutils::Hostname;
use gnt_core::runner::{CallFailure, NodeResult};
use gnt_core::ssconf::SsconfVersion;
use gnt_core::wire::MASTER_EPOCH_METADATA;
use gnt_proto::node::v1::VersionRequest;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod report;

pub use report::{NodeReport, ReportedCertificate, ask_reports};

use crate::config::ClusterConfig;
use crate::master::Master;

/// How often every online node is checked when nothing else wakes the converger.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// The wait before the first retry of a node; it doubles with every failure.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts on one node.
const MAX_RETRY: Duration = Duration::from_secs(8);
/// How long a node may take to tell its serial.
const SERIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Failures in a row before a node is reported.
const REPORT_AFTER: u32 = 2;

/// Asks the converger to look at every node now (after a redistribution some node did not
/// take). Wakes that arrive while a round runs start one more round after it.
#[derive(Debug, Default)]
pub struct Wakeup(Notify);

impl Wakeup {
    /// Wakes the converger (a no-op when the daemon runs none).
    pub fn wake(&self) {
        self.0.notify_one();
    }

    async fn woken(&self) {
        self.0.notified().await;
    }
}

/// A node's ssconf serial against the configuration's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialCheck {
    /// The node holds the configuration's set.
    Current,
    /// The node holds an older set.
    Lags {
        /// The node's serial.
        node: u64,
    },
    /// The node holds a set newer than the configuration: the configuration is an older
    /// copy (restored by hand, say). Nodes refuse to go back, so only a newer configuration
    /// can bring them in line.
    Ahead {
        /// The node's serial.
        node: u64,
    },
}

impl SerialCheck {
    /// Version `node` against the configuration's `config` (epoch first).
    pub fn of_version(node: SsconfVersion, config: SsconfVersion) -> Self {
        match node.cmp(&config) {
            std::cmp::Ordering::Equal => Self::Current,
            std::cmp::Ordering::Less => Self::Lags { node: node.serial },
            std::cmp::Ordering::Greater => Self::Ahead { node: node.serial },
        }
    }

    /// Serial `node` against the configuration's `config`.
    pub fn of(node: u64, config: u64) -> Self {
        match node.cmp(&config) {
            std::cmp::Ordering::Equal => Self::Current,
            std::cmp::Ordering::Less => Self::Lags { node },
            std::cmp::Ordering::Greater => Self::Ahead { node },
        }
    }
}

impl Master {
    /// What each online node among `names` (every node when `None`) reports about the
    /// master role.
    pub async fn node_reports(
        &self,
        config: &ClusterConfig,
        names: Option<&[Hostname]>,
    ) -> Vec<NodeResult<Hostname, NodeReport>> {
        self.node_reports_asking(config, names, VersionRequest::default())
            .await
    }

    /// Like [`node_reports`](Self::node_reports), with `request` saying what more to tell
    /// (`cluster verify` asks for the nodes' certificates).
    pub async fn node_reports_asking(
        &self,
        config: &ClusterConfig,
        names: Option<&[Hostname]>,
        request: VersionRequest,
    ) -> Vec<NodeResult<Hostname, NodeReport>> {
        let ours = config.master_epoch;
        ask_reports(
            &self.channels,
            config,
            names,
            request,
            SERIAL_TIMEOUT,
            |name, status| {
                // A node that no longer lists this master's certificate (the successor
                // demoted it) refuses even Version, with its epoch.
                if let Some(epoch) = newer_epoch(status, ours) {
                    self.stand_down.signal(format!(
                        "{name} refuses this master's calls: its ssconf is of master epoch {epoch}, this master's is {ours} ({})",
                        status.message()
                    ));
                }
            },
        )
        .await
    }
}

/// The epoch a node's refusal states, when it is newer than `ours`.
fn newer_epoch(status: &tonic::Status, ours: u64) -> Option<u64> {
    status
        .metadata()
        .get(MASTER_EPOCH_METADATA)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|epoch| *epoch > ours)
}

/// Why a node is not current yet.
#[derive(Debug, Clone)]
enum Trouble {
    /// It did not tell its serial.
    Silent(CallFailure),
    /// It lags, and did not take the current set.
    NotTaken { node: u64, failure: CallFailure },
    /// It is ahead of the configuration.
    Ahead { node: u64 },
    /// A master candidate that did not take its master copy.
    CopyNotTaken(CallFailure),
}

impl Trouble {
    fn same_kind(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

impl fmt::Display for Trouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Silent(failure) => write!(f, "it did not tell its ssconf serial: {failure}"),
            Self::NotTaken { node, failure } => write!(
                f,
                "its ssconf lags (serial {node}) and it did not take the current set: {failure}"
            ),
            Self::Ahead { node } => write!(
                f,
                "its ssconf serial {node} is newer than the configuration's; is the configuration an older copy?"
            ),
            Self::CopyNotTaken(failure) => {
                write!(f, "it did not take its master copy: {failure}")
            }
        }
    }
}

/// A node that is not current, and when to try it again.
#[derive(Debug)]
struct Track {
    /// Failed attempts in a row.
    failures: u32,
    /// When the next attempt is due.
    next: Instant,
    /// When it was first found not current.
    since: Instant,
    /// The trouble last logged, if any.
    reported: Option<Trouble>,
}

/// The wait after `failures` failures in a row: 1 s, 2 s, 4 s, then 8 s.
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

/// The converger of one master.
#[derive(Debug)]
pub struct Converger {
    master: Arc<Master>,
    interval: Duration,
    tracks: HashMap<Hostname, Track>,
}

impl Converger {
    /// A converger for `master` that checks every online node every `interval`.
    pub fn new(master: Arc<Master>, interval: Duration) -> Self {
        Self {
            master,
            interval,
            tracks: HashMap::new(),
        }
    }

    /// Runs rounds until `shutdown` is cancelled (see the module docs): the first at once.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut next_full = Instant::now();
        loop {
            let due = self.tracks.values().map(|t| t.next).min();
            let wake_at = due.map_or(next_full, |due| due.min(next_full));
            let full = tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.master.converger.woken() => true,
                () = tokio::time::sleep_until(wake_at) => Instant::now() >= next_full,
            };
            if full {
                next_full = Instant::now() + self.interval;
            }
            // A round cut short changes nothing that matters: its calls are idempotent and
            // a node replaces its set atomically.
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.round(full) => {}
            }
        }
    }

    /// Checks the nodes that are due: in a `full` round every online node not waiting for
    /// a retry, otherwise only retries that are due; sends the current set to those that
    /// lag.
    async fn round(&mut self, full: bool) {
        let config = self.master.config.snapshot().await;
        let now = Instant::now();
        let online = |name: &Hostname| config.nodes.get(name).is_some_and(|n| !n.offline);
        // Nodes removed or marked offline are no longer the converger's business.
        self.tracks.retain(|name, _| online(name));
        let names: Vec<Hostname> = config
            .nodes
            .iter()
            .filter(|(_, node)| !node.offline)
            .map(|(name, _)| name)
            .filter(|name| self.tracks.get(*name).map_or(full, |t| t.next <= now))
            .cloned()
            .collect();
        if names.is_empty() {
            return;
        }
        let mut behind = Vec::new();
        let mut copies_behind = Vec::new();
        let mut answered = Vec::new();
        let version = config.version();
        for result in self.master.node_reports(&config, Some(&names)).await {
            if let Ok(report) = &result.outcome {
                answered.push(result.key.clone());
                if let Some(reason) =
                    report.replaced(&result.key, &config.master_node, version.epoch)
                {
                    self.master.stand_down.signal(reason);
                    return;
                }
                let candidate = config.candidates().any(|(name, _)| *name == result.key);
                if candidate && report.copy != version {
                    copies_behind.push(result.key.clone());
                }
            }
            match result
                .outcome
                .map(|report| SerialCheck::of_version(report.ssconf, version))
            {
                Ok(SerialCheck::Current) => self.current(&result.key, config.serial, None),
                Ok(SerialCheck::Lags { node }) => behind.push((result.key, node)),
                Ok(SerialCheck::Ahead { node }) => {
                    self.troubled(result.key, Trouble::Ahead { node })
                }
                Err(failure) => self.troubled(result.key, Trouble::Silent(failure)),
            }
        }
        if let Some(rollover) = &config.rollover
            && (rollover.pending.is_empty()
                || answered.iter().any(|n| rollover.pending.contains(n)))
            && let Some(renewal) = self.master.catch_up_renewal().await
        {
            // The renewal sent the nodes it renewed a newer set already.
            tracing::info!(
                renewed = renewal.renewed.len(),
                pending = renewal.pending.len(),
                finished = renewal.finished,
                "certificate renewal went on"
            );
            // What the finish could not do (a node left trusting the retired CA) is said
            // once, here: no job shows it. A renewal still waiting is in verify instead.
            if renewal.finished {
                for warning in &renewal.warnings {
                    tracing::warn!(%warning, "certificate renewal finished with a problem");
                }
            }
            return;
        }
        self.copies(&config, &copies_behind).await;
        if behind.is_empty() {
            return;
        }
        let names: Vec<Hostname> = behind.iter().map(|(name, _)| name.clone()).collect();
        let results = match self.master.write_ssconf(&config, Some(&names)).await {
            Ok(results) => results,
            Err(error) => {
                // Not expected: a configuration that builds no ssconf is refused at load.
                tracing::error!(%error, serial = config.serial, "cannot build the ssconf to converge nodes to");
                return;
            }
        };
        for result in results {
            let from = behind
                .iter()
                .find(|(name, _)| *name == result.key)
                .map_or(0, |(_, serial)| *serial);
            match result.outcome {
                Ok(()) => self.current(&result.key, config.serial, Some(from)),
                Err(failure) => self.troubled(
                    result.key,
                    Trouble::NotTaken {
                        node: from,
                        failure,
                    },
                ),
            }
        }
    }

    /// Sends their master copies to the candidates among `names`.
    async fn copies(&mut self, config: &ClusterConfig, names: &[Hostname]) {
        if names.is_empty() {
            return;
        }
        let results = match self.master.write_copies(config, Some(names)).await {
            Ok(results) => results,
            Err(error) => {
                tracing::error!(%error, "cannot make the master copies to converge candidates to");
                return;
            }
        };
        for result in results {
            match result.outcome {
                Ok(()) => {
                    tracing::info!(node = %result.key, version = %config.version(), "master copy of a candidate refreshed");
                }
                Err(failure) => self.troubled(result.key, Trouble::CopyNotTaken(failure)),
            }
        }
    }

    /// `name` holds `serial`, the configuration's; `from` is the serial it was brought
    /// from, when this round sent it the set.
    fn current(&mut self, name: &Hostname, serial: u64, from: Option<u64>) {
        let track = self.tracks.remove(name);
        // How long it was behind, as far as the converger knew (zero: found and fixed at once).
        let after = track
            .as_ref()
            .map(|t| t.since.elapsed())
            .unwrap_or_default();
        match (from, track.and_then(|t| t.reported)) {
            (Some(from), _) => {
                tracing::info!(node = %name, from, serial, after = ?after, "ssconf of a lagging node brought up to date");
            }
            (None, Some(_)) => {
                tracing::info!(node = %name, serial, after = ?after, "ssconf of a node is current again");
            }
            (None, None) => {}
        }
    }

    /// `name` is not current because of `trouble`: schedule its retry, and report it if its
    /// state changed.
    fn troubled(&mut self, name: Hostname, trouble: Trouble) {
        let now = Instant::now();
        let track = self.tracks.entry(name.clone()).or_insert(Track {
            failures: 0,
            next: now,
            since: now,
            reported: None,
        });
        track.failures = track.failures.saturating_add(1);
        let delay = retry_delay(track.failures);
        track.next = now + delay;
        let changed = track
            .reported
            .as_ref()
            .is_none_or(|reported| !reported.same_kind(&trouble));
        if track.failures >= REPORT_AFTER && changed {
            tracing::warn!(node = %name, problem = %trouble, retry_in = ?delay, "ssconf of a node is not current; retrying with back-off");
            track.reported = Some(trouble);
        } else {
            tracing::debug!(node = %name, problem = %trouble, failures = track.failures, retry_in = ?delay, "ssconf of a node is not current");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_to_a_bound() {
        let delays: Vec<u64> = (1..=7).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 8, 8, 8]);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY);
    }

    #[test]
    fn a_serial_is_current_behind_or_ahead() {
        assert_eq!(SerialCheck::of(9, 9), SerialCheck::Current);
        assert_eq!(SerialCheck::of(7, 9), SerialCheck::Lags { node: 7 });
        assert_eq!(SerialCheck::of(12, 9), SerialCheck::Ahead { node: 12 });
    }

    #[test]
    fn a_change_of_trouble_is_a_new_state_but_another_failure_of_the_same_kind_is_not() {
        let refused = CallFailure::Refused("connection refused".to_owned());
        let silent = Trouble::Silent(refused.clone());
        assert!(silent.same_kind(&Trouble::Silent(CallFailure::TimedOut(SERIAL_TIMEOUT))));
        assert!(!silent.same_kind(&Trouble::NotTaken {
            node: 3,
            failure: refused
        }));
        assert!(!silent.same_kind(&Trouble::Ahead { node: 3 }));
    }
}
