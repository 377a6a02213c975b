//! Throttling failed Joins, and the log lines they cause.
//!
//! A token has about 82 bits of secret, so guessing is hopeless; what a guessing loop can
//! still do is burn the node's CPU and fill its disk with log lines. So failures are
//! counted in a sliding window, per source address and in total; past either bound a Join
//! is refused before its proof is checked, until failures age out of the window. Sources
//! are whole addresses, not IPv6 /64s: a master usually shares its /64 with the nodes (and
//! so with a guesser on their network), and a guesser rotating through its /64 still meets
//! the total bound. That bound means a flood from many sources can delay a real Join by one
//! window at most; it never lets a guess through.
//! Log lines for refusals are limited the same way: the first of a burst is logged, the rest
//! are counted and summarised in the next line.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures a source may have in one window.
pub(crate) const PER_SOURCE: usize = 5;
/// Failures all sources together may have in one window.
pub(crate) const TOTAL: usize = 30;
/// The window.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// The failures of the last window.
#[derive(Debug)]
pub(crate) struct Throttle {
    per_source: usize,
    total: usize,
    window: Duration,
    failures: Mutex<VecDeque<(Instant, IpAddr)>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(PER_SOURCE, TOTAL, WINDOW)
    }
}

/// A source whose failures, or everyone's, are over the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Throttled {
    /// When the oldest counted failure leaves the window.
    pub(crate) retry_after: Duration,
}

impl Throttle {
    pub(crate) fn new(per_source: usize, total: usize, window: Duration) -> Self {
        Self {
            per_source,
            total,
            window,
            failures: Mutex::new(VecDeque::with_capacity(total)),
        }
    }

    /// Whether `source` may try a Join now.
    pub(crate) fn check(&self, source: IpAddr, now: Instant) -> Result<(), Throttled> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        self.expire(&mut failures, now);
        let mine = failures.iter().filter(|(_, s)| *s == source);
        let oldest_mine = mine.clone().next().map(|(at, _)| *at);
        let retry = |since: Instant| Throttled {
            retry_after: (since + self.window).saturating_duration_since(now),
        };
        if mine.count() >= self.per_source
            && let Some(since) = oldest_mine
        {
            return Err(retry(since));
        }
        if failures.len() >= self.total
            && let Some((since, _)) = failures.front()
        {
            return Err(retry(*since));
        }
        Ok(())
    }

    /// Counts a failed Join from `source`.
    pub(crate) fn failed(&self, source: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        self.expire(&mut failures, now);
        // Bounded: at most `total` failures are kept, the oldest dropped first.
        if failures.len() >= self.total {
            failures.pop_front();
        }
        failures.push_back((now, source));
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

/// One log line per burst: the first event of a window is logged, the others counted.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_source_past_its_bound_waits_for_the_window_and_others_do_not() {
        let throttle = Throttle::new(3, 10, Duration::from_secs(60));
        let start = Instant::now();
        let guesser = ip("192.0.2.66");
        for i in 0..3 {
            assert!(throttle.check(guesser, start).is_ok(), "attempt {i}");
            throttle.failed(guesser, start);
        }
        let refused = throttle.check(guesser, start).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(60));
        assert!(throttle.check(ip("192.0.2.10"), start).is_ok());
        assert!(
            throttle
                .check(guesser, start + Duration::from_secs(60))
                .is_ok(),
            "failures age out"
        );
    }

    #[test]
    fn many_sources_share_one_total_bound_and_neighbours_are_not_held_up() {
        let throttle = Throttle::new(100, 4, Duration::from_secs(60));
        let now = Instant::now();
        for host in 1..=4 {
            throttle.failed(ip(&format!("2001:db8::{host}")), now);
        }
        assert!(
            throttle.check(ip("192.0.2.10"), now).is_err(),
            "total reached"
        );
        let per_source = Throttle::new(2, 100, Duration::from_secs(60));
        per_source.failed(ip("2001:db8::66"), now);
        per_source.failed(ip("2001:db8::66"), now);
        assert!(per_source.check(ip("2001:db8::66"), now).is_err());
        assert!(
            per_source.check(ip("2001:db8::10"), now).is_ok(),
            "a neighbour on the same /64 (the master, often) gets through"
        );
    }

    #[test]
    fn a_burst_of_events_makes_one_line_and_the_next_one_counts_them() {
        let burst = LogBurst::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(burst.event(start), Some(0));
        for _ in 0..1000 {
            assert_eq!(burst.event(start + Duration::from_secs(1)), None);
        }
        assert_eq!(burst.event(start + Duration::from_secs(10)), Some(1000));
    }
}
