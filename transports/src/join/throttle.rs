//! Throttling Join attempts, and the log lines they cause.
//!
//! A token has about 82 bits of secret, so guessing is hopeless; what a guessing loop can
//! still do is burn the node's CPU and memory and fill its disk with log lines. So:
//!
//! - an attempt is *reserved* when its stream opens and counts against its source until it
//!   ends: a source may have at most [`IN_FLIGHT_PER_SOURCE`] attempts at once, and its
//!   attempts in flight and failures of the last [`WINDOW`] together at most [`PER_SOURCE`]
//!   (so opening many streams before sending anything gets no more tries than sending them
//!   one by one);
//! - failures of all sources together are bounded by [`TOTAL`], but that bound only refuses
//!   sources that have failed themselves: a source with a clean record (the real master,
//!   usually) is never locked out by others' failures;
//! - sources are whole addresses, not IPv6 /64s: a master usually shares its /64 with the
//!   nodes (and so with a guesser on their network). A guesser rotating addresses gets one
//!   clean try per address; at 82 bits that buys nothing.
//!
//! Memory stays bounded: attempts in flight are at most [`IN_FLIGHT_PER_SOURCE`] per source,
//! sources are bounded by the listener's connection bound, and at most [`TOTAL`] failures are
//! remembered. Log lines are limited the same way: the first of a burst is logged, the rest
//! counted and written in the next line, or by [`LogBurst::flush`] once the burst is over.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Attempts in flight plus failures a source may have in one window.
pub(crate) const PER_SOURCE: usize = 5;
/// Attempts a source may have in flight at once.
pub(crate) const IN_FLIGHT_PER_SOURCE: usize = 2;
/// Failures all sources together may have in one window, past which sources with failures
/// of their own are refused.
pub(crate) const TOTAL: usize = 30;
/// The window.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// What a refusal for attempts in flight tells the caller to wait.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// The attempts in flight and the failures of the last window.
#[derive(Debug)]
pub(crate) struct Throttle {
    per_source: usize,
    total: usize,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures: VecDeque<(Instant, IpAddr)>,
    in_flight: HashMap<IpAddr, usize>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(PER_SOURCE, TOTAL, WINDOW)
    }
}

/// A source over a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Throttled {
    /// When it may try again.
    pub(crate) retry_after: Duration,
}

/// A reserved attempt: counts against its source until dropped.
#[derive(Debug)]
pub(crate) struct Attempt {
    throttle: Arc<Throttle>,
    source: IpAddr,
}

impl Attempt {
    /// Counts the attempt as failed (it is released all the same when dropped).
    pub(crate) fn failed(&self, now: Instant) {
        self.throttle.record_failure(self.source, now);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        let mut state = self.throttle.lock();
        if let Some(count) = state.in_flight.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.in_flight.remove(&self.source);
            }
        }
    }
}

impl Throttle {
    pub(crate) fn new(per_source: usize, total: usize, window: Duration) -> Self {
        Self {
            per_source,
            total,
            window,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves an attempt for `source`, or says when it may try again.
    pub(crate) fn begin(
        self: &Arc<Self>,
        source: IpAddr,
        now: Instant,
    ) -> Result<Attempt, Throttled> {
        let mut state = self.lock();
        self.expire(&mut state.failures, now);
        let in_flight = state.in_flight.get(&source).copied().unwrap_or(0);
        let mut mine = state.failures.iter().filter(|(_, s)| *s == source);
        let oldest_mine = mine.next().map(|(at, _)| *at);
        let failed = oldest_mine.map_or(0, |_| 1 + mine.count());
        let retry = |since: Instant| Throttled {
            retry_after: (since + self.window).saturating_duration_since(now),
        };
        if let Some(since) = oldest_mine {
            if failed + in_flight >= self.per_source {
                return Err(retry(since));
            }
            if state.failures.len() >= self.total
                && let Some((oldest, _)) = state.failures.front()
            {
                return Err(retry(*oldest));
            }
        }
        if in_flight >= IN_FLIGHT_PER_SOURCE.min(self.per_source) {
            return Err(Throttled {
                retry_after: BUSY_RETRY,
            });
        }
        *state.in_flight.entry(source).or_insert(0) += 1;
        Ok(Attempt {
            throttle: Arc::clone(self),
            source,
        })
    }

    fn record_failure(&self, source: IpAddr, now: Instant) {
        let mut state = self.lock();
        self.expire(&mut state.failures, now);
        // Bounded: at most `total` failures are kept, the oldest dropped first.
        if state.failures.len() >= self.total {
            state.failures.pop_front();
        }
        state.failures.push_back((now, source));
    }

    fn expire(&self, failures: &mut VecDeque<(Instant, IpAddr)>, now: Instant) {
        while failures
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= self.window)
        {
            failures.pop_front();
        }
    }
}

/// One log line per burst: the first event of a window is logged, the others counted and
/// reported by the next line or by [`flush`](Self::flush).
#[derive(Debug)]
pub(crate) struct LogBurst {
    window: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogBurst {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(n)` when this event is to be logged, `n` being the events suppressed since
    /// the last line; `None` when it is only counted.
    pub(crate) fn event(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, suppressed) = &mut *state;
        match last {
            Some(at) if now.saturating_duration_since(*at) < self.window => {
                *suppressed += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(suppressed))
            }
        }
    }

    /// The events suppressed in a burst that is over, to be reported now; `None` when there
    /// are none or the burst goes on.
    pub(crate) fn flush(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, suppressed) = &mut *state;
        match last {
            Some(at) if *suppressed > 0 && now.saturating_duration_since(*at) >= self.window => {
                *last = None;
                Some(std::mem::take(suppressed))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn throttle(per_source: usize, total: usize) -> Arc<Throttle> {
        Arc::new(Throttle::new(per_source, total, Duration::from_secs(60)))
    }

    #[test]
    fn a_source_past_its_bound_waits_for_the_window_and_others_do_not() {
        let throttle = throttle(3, 10);
        let start = Instant::now();
        let guesser = ip("192.0.2.66");
        for i in 0..3 {
            let attempt = throttle
                .begin(guesser, start)
                .unwrap_or_else(|_| panic!("{i}"));
            attempt.failed(start);
        }
        let refused = throttle.begin(guesser, start).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(60));
        assert!(throttle.begin(ip("192.0.2.10"), start).is_ok());
        assert!(
            throttle
                .begin(guesser, start + Duration::from_secs(60))
                .is_ok(),
            "failures age out"
        );
    }

    #[test]
    fn streams_opened_at_once_get_no_more_tries_than_streams_opened_one_by_one() {
        let throttle = throttle(5, 30);
        let now = Instant::now();
        let guesser = ip("192.0.2.66");
        let held: Vec<Attempt> = (0..60)
            .filter_map(|_| throttle.begin(guesser, now).ok())
            .collect();
        assert_eq!(held.len(), IN_FLIGHT_PER_SOURCE);
        for attempt in &held {
            attempt.failed(now);
        }
        drop(held);
        let more: Vec<Attempt> = (0..60)
            .filter_map(|_| throttle.begin(guesser, now).ok())
            .collect();
        assert_eq!(more.len(), IN_FLIGHT_PER_SOURCE);
        for attempt in &more {
            attempt.failed(now);
        }
        drop(more);
        // 4 failures: one more try, then none until the window has passed.
        let last = throttle.begin(guesser, now).unwrap();
        last.failed(now);
        drop(last);
        assert!(throttle.begin(guesser, now).is_err());
    }

    #[test]
    fn others_failures_never_lock_out_a_source_with_a_clean_record() {
        let throttle = throttle(5, 4);
        let now = Instant::now();
        for host in 1..=4 {
            let attempt = throttle
                .begin(ip(&format!("2001:db8::{host}")), now)
                .unwrap();
            attempt.failed(now);
        }
        assert!(
            throttle.begin(ip("2001:db8::1"), now).is_err(),
            "a failing source is refused once the total is reached"
        );
        assert!(
            throttle.begin(ip("2001:db8::10"), now).is_ok(),
            "the master, on the same /64 and with no failures, gets through"
        );
    }

    #[test]
    fn a_burst_of_events_makes_one_line_and_its_count_is_flushed_when_it_ends() {
        let burst = LogBurst::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(burst.event(start), Some(0));
        for _ in 0..1000 {
            assert_eq!(burst.event(start + Duration::from_secs(1)), None);
        }
        assert_eq!(
            burst.flush(start + Duration::from_secs(5)),
            None,
            "still going"
        );
        assert_eq!(burst.flush(start + Duration::from_secs(10)), Some(1000));
        assert_eq!(burst.flush(start + Duration::from_secs(20)), None);
        assert_eq!(burst.event(start + Duration::from_secs(21)), Some(0));
    }
}
