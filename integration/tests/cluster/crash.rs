//! Crash tests (issue 11): `gnt-masterd` killed (SIGKILL) at random moments of `gnt node
//! add` and of `gnt node remove`, then restarted; or only the `gnt` client killed, the
//! master alive. After each round, once no job is queued or running, the configuration,
//! every node's ssconf and every node's own state must agree:
//!
//! - **half-added**: the node's state says it is a member (ssconf names a cluster) but the
//!   configuration does not list it, or the other way round;
//! - **stale**: an online node of the configuration whose ssconf is not the configuration's
//!   ([`ssconf_agrees`]);
//! - **token wrong**: the add's join token is not marked used exactly when the node is in
//!   the configuration;
//! - **record wrong**: the round's job says it succeeded while the configuration says it
//!   did not happen, or the other way round.
//!
//! Then the operation is tried again where it did not happen (an add with the same token,
//! a remove), which must work, and the cluster is reset for the next round. Each delay is
//! drawn from `[0, T]`, `T` being how long the same operation took in this lab without a
//! crash (measured first), from a seeded generator: the seed is printed, and
//! `GNT_CRASH_SEED` sets it (timing still varies from run to run). Five rounds each by
//! default, 50 with `GNT_LONG_TESTS=1`. No timing is asserted.

mod lab;
mod readd;
mod tally;

use std::time::Duration;

use lab::{CrashLab, ssconf_agrees, wait_or_kill};
use tally::{Tally, report, table};

/// The node added and removed, round after round.
const SUBJECT: &str = "node1";
/// A node that stays in the cluster: it must get every new ssconf.
const BYSTANDER: &str = "node2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Masterd,
    Client,
}

#[test]
fn killing_masterd_at_random_points_of_node_add_leaves_no_half_added_node() {
    let lab = CrashLab::new();
    let tally = lab.crash_rounds(Victim::Masterd, Op::Add);
    report(&[tally]);
}

#[test]
fn killing_masterd_at_random_points_of_node_remove_leaves_no_half_removed_node() {
    let lab = CrashLab::new();
    let tally = lab.crash_rounds(Victim::Masterd, Op::Remove);
    report(&[tally]);
}

#[test]
fn killing_only_the_client_of_node_add_and_remove_lets_the_jobs_finish() {
    let lab = CrashLab::new();
    let add = lab.crash_rounds(Victim::Client, Op::Add);
    let remove = lab.crash_rounds(Victim::Client, Op::Remove);
    report(&[add, remove]);
}

/// Rounds per test and operation.
pub(crate) fn rounds() -> usize {
    if std::env::var_os("GNT_LONG_TESTS").is_some_and(|v| v == "1") {
        50
    } else {
        5
    }
}

/// The seed of the whole run: `GNT_CRASH_SEED`, else drawn from the clock once.
pub(crate) fn seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        if let Some(seed) = std::env::var("GNT_CRASH_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return seed;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        (nanos as u64) ^ u64::from(std::process::id())
    })
}

/// SplitMix64: enough to spread delays, and no dependency for it.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A duration drawn uniformly from `[0, max]`, to the microsecond.
    pub(crate) fn upto(&mut self, max: Duration) -> Duration {
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.next() % micros.saturating_add(1))
    }
}

/// What one round left.
#[derive(Debug)]
struct Found {
    in_config: bool,
    member: bool,
    stale: Vec<String>,
    token_wrong: bool,
    record_wrong: bool,
    job: Option<serde_json::Value>,
    /// How far the job had got when its victim was killed.
    stage: &'static str,
}

impl Found {
    fn clean(&self) -> bool {
        self.in_config == self.member
            && self.stale.is_empty()
            && !self.token_wrong
            && !self.record_wrong
    }
}

impl CrashLab {
    fn crash_rounds(&self, victim: Victim, op: Op) -> Tally {
        let what = format!(
            "{} during `node {}`",
            match victim {
                Victim::Masterd => "`gnt-masterd` (kill -9)",
                Victim::Client => "only the `gnt` client (kill -9)",
            },
            if op == Op::Add { "add" } else { "remove" },
        );
        let salt = (victim == Victim::Client) as u64 * 2 + (op == Op::Remove) as u64;
        let mut rng = Rng(self.seed ^ salt.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let window = self.measure(op);
        eprintln!(
            "{what}: seed {} (GNT_CRASH_SEED={} draws the same delays), delays in [0, {window:?}]",
            self.seed, self.seed
        );
        let mut tally = Tally::new(what, window);
        // A remove needs the node in: it is added before the first round and again after
        // each (which also shows that a node that left takes a Join again).
        let mut token = self.fresh_token();
        if op == Op::Remove {
            self.run(Op::Add, &token);
        }
        for round in 1..=rounds() {
            let delay = rng.upto(window);
            let found = self.crash_round(victim, op, &token, delay);
            tally.count(&found);
            if !found.clean() {
                eprintln!(
                    "{}: round {round}, killed after {delay:?}: NOT CLEAN: {found:?}\n{}",
                    tally.what,
                    self.job_info(found.job.as_ref())
                );
            }
            token = self.reset(op, &found, &token, round, &tally);
        }
        tally
    }

    /// One round: the operation started, its victim killed after `delay`, the master
    /// running again, every job ended; what it left.
    fn crash_round(&self, victim: Victim, op: Op, token: &str, delay: Duration) -> Found {
        let before = self.last_job_id();
        let mut child = self.spawn(op, token);
        std::thread::sleep(delay);
        let stage = match victim {
            Victim::Masterd => {
                self.cluster()
                    .stop_process("master/gnt-masterd", false)
                    .unwrap();
                // The client notices and exits; only then does a new master start, so that
                // a client still connecting cannot submit to it.
                wait_or_kill(&mut child, Duration::from_secs(30));
                let stage = self.stage(before);
                self.cluster().start_masterd().unwrap();
                stage
            }
            Victim::Client => {
                let _ = child.kill();
                let _ = child.wait();
                // Only a glimpse: the job runs on.
                self.stage(before)
            }
        };
        self.wait_idle();
        let job = self
            .jobs()
            .into_iter()
            .find(|j| j["id"].as_u64().is_some_and(|id| id > before));
        let config = self.config();
        let in_config = config
            .nodes
            .keys()
            .any(|n| n.as_str() == Self::name().as_str());
        let token_id = token.split('.').next().unwrap_or_default();
        let used = config.join_tokens.iter().any(|t| {
            t.id == token_id
                && t.used_by
                    .as_ref()
                    .is_some_and(|n| n.as_str() == Self::name())
        });
        let done = match op {
            Op::Add => in_config,
            Op::Remove => !in_config,
        };
        let succeeded = job.as_ref().is_some_and(|j| j["status"] == "success");
        Found {
            in_config,
            member: self.member(SUBJECT),
            stale: ssconf_agrees(self.cluster(), &config),
            // The token that added the node stays used once it is removed.
            token_wrong: if op == Op::Add {
                used != in_config
            } else {
                !used
            },
            record_wrong: succeeded != done,
            job,
            stage,
        }
    }

    /// Takes the round's operation to its end where it did not happen (this must work),
    /// then back to the round's start: for an add the node out (and a new token in its
    /// file), for a remove the node in. Returns the next round's token.
    fn reset(&self, op: Op, found: &Found, token: &str, round: usize, tally: &Tally) -> String {
        let retry = |op: Op, token: &str| {
            let args = self.op_args(op, token);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = self.cluster().gnt(&args).unwrap();
            assert!(
                out.success(),
                "{}: round {round}: retrying failed after {found:?}:\n{out}\n{}\n{}",
                tally.what,
                self.job_info(found.job.as_ref()),
                table(std::slice::from_ref(tally))
            );
        };
        match (op, found.in_config) {
            (Op::Add, false) => retry(Op::Add, token),
            (Op::Remove, true) => retry(Op::Remove, ""),
            _ => {}
        }
        if op == Op::Add {
            retry(Op::Remove, "");
        }
        assert!(
            !self.member(SUBJECT),
            "{SUBJECT} is still a member after its removal"
        );
        let next = self.fresh_token();
        if op == Op::Remove {
            retry(Op::Add, &next);
        }
        next
    }
}
