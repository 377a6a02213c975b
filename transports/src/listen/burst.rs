//! Rate-limited logging of something a listener does again and again under attack or
//! pressure (running out of descriptors, dropping, refusing or capping connections): one line when a
//! burst begins, one with the count every 10 s while it lasts, and one with the total once
//! it is over (a second without the event), instead of a line per event. A flood of 5,000
//! connections would otherwise write 5,000 lines, and a log that floods is a second attack.
//!
//! The end of a burst is noticed by a timer that runs only while a burst does
//! ([`Bursts::poll_settle`]), or when the listener closes.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::{Duration, Instant};

use tokio::time::Sleep;

use crate::peer::ListenAddr;

/// How long without the event ends a burst.
const QUIET: Duration = Duration::from_secs(1);
/// How often a burst that goes on is counted in the log.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The bursts a listener logs, and the timer that notices their end.
#[derive(Debug)]
pub(super) struct Bursts {
    /// `accept` failing for want of descriptors or memory.
    pub(super) failed_accepts: Burst,
    /// Connections dropped for new ones.
    pub(super) dropped: Burst,
    /// New connections refused.
    pub(super) refused: Burst,
    /// Connections closed because their peer holds its share.
    pub(super) over_share: Burst,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Bursts {
    pub(super) fn new() -> Self {
        Self {
            failed_accepts: Burst::new(
                "cannot accept a connection; dropping a connection as when full (unauthenticated \
                 or idle first) to free descriptors, else pausing",
            ),
            dropped: Burst::new(
                "connection bounds reached; dropping a connection of the peer holding the \
                 most (unauthenticated or idle first) for each new one",
            ),
            refused: Burst::new(
                "every connection place holds a protected connection; refusing new ones",
            ),
            over_share: Burst::new(
                "a peer holds its share of connections; closing its oldest idle one for each \
                 new one (the new one when all carry calls)",
            ),
            timer: None,
        }
    }

    fn all(&mut self) -> [&mut Burst; 4] {
        [
            &mut self.failed_accepts,
            &mut self.dropped,
            &mut self.refused,
            &mut self.over_share,
        ]
    }

    /// While a burst goes on, wakes the listener every [`QUIET`] to end those that are
    /// over. Call at the end of every poll of the listener.
    pub(super) fn poll_settle(&mut self, addr: &ListenAddr, cx: &mut Context<'_>) {
        loop {
            if self.all().iter().all(|burst| burst.current.is_none()) {
                self.timer = None;
                return;
            }
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(QUIET)));
            if timer.as_mut().poll(cx).is_pending() {
                return;
            }
            self.timer = None;
            for burst in self.all() {
                burst.settle(addr);
            }
        }
    }

    /// Ends every burst (the listener is closing).
    pub(super) fn end(&mut self, addr: &ListenAddr) {
        for burst in self.all() {
            burst.end(addr);
        }
    }
}

/// One kind of repeated event of one listener.
#[derive(Debug)]
pub(super) struct Burst {
    /// What happens, for the log.
    what: &'static str,
    /// The burst going on, if any.
    current: Option<Current>,
}

#[derive(Debug)]
struct Current {
    began: Instant,
    last_event: Instant,
    last_line: Instant,
    /// Events since it began.
    total: u64,
    /// Events since its last line.
    unreported: u64,
}

impl Burst {
    pub(super) fn new(what: &'static str) -> Self {
        Self {
            what,
            current: None,
        }
    }

    /// Counts one event, logging it (with `detail`) if it begins a burst, or the count if
    /// the burst's last line is [`REPORT_EVERY`] old.
    pub(super) fn event(&mut self, addr: &ListenAddr, detail: impl Display) {
        let now = Instant::now();
        self.settle_at(addr, now);
        let Some(current) = &mut self.current else {
            self.current = Some(Current {
                began: now,
                last_event: now,
                last_line: now,
                total: 1,
                unreported: 0,
            });
            tracing::warn!(%addr, %detail, "{}; counting until it stops", self.what);
            return;
        };
        current.last_event = now;
        current.total += 1;
        current.unreported += 1;
        if now.duration_since(current.last_line) >= REPORT_EVERY {
            current.last_line = now;
            let count = std::mem::take(&mut current.unreported);
            let seconds = now.duration_since(current.began).as_secs();
            tracing::warn!(
                %addr,
                count,
                seconds,
                "{}: {count} more times ({seconds} s into the burst)",
                self.what
            );
        }
    }

    /// Ends the burst if it has been quiet for [`QUIET`].
    pub(super) fn settle(&mut self, addr: &ListenAddr) {
        if self.current.is_some() {
            self.settle_at(addr, Instant::now());
        }
    }

    fn settle_at(&mut self, addr: &ListenAddr, now: Instant) {
        if self
            .current
            .as_ref()
            .is_some_and(|c| now.duration_since(c.last_event) >= QUIET)
        {
            self.end(addr);
        }
    }

    /// Ends the burst, if one is going on, logging its total when there was more than the
    /// event already logged.
    pub(super) fn end(&mut self, addr: &ListenAddr) {
        let Some(current) = self.current.take() else {
            return;
        };
        if current.total > 1 {
            let total = current.total;
            let millis = current.last_event.duration_since(current.began).as_millis();
            tracing::warn!(
                %addr,
                total,
                millis,
                "{}: {total} times in {millis} ms, now over",
                self.what
            );
        }
    }
}
