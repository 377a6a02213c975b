//! Established connections: the ones a listener has handed to the gRPC server, each with
//! its place ([`Slot`]) and a shared [`Tracking`] through which the listener can close it
//! (its reads and writes fail from then on, and hyper closes it) and learns whether it
//! carries calls. The registry lists them oldest first, with their peer, so that a listener
//! can choose which one to drop (`admission`) and close those that stay without calls.
//!
//! Which connections are never dropped is the daemon's decision ([`Protected`]): the node
//! agent's member listener protects the master's certificate, nothing else does.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use futures_util::task::AtomicWaker;

use super::admission::Origin;
use crate::peer::{PeerAddr, PeerInfo};

/// Which established connections a listener never drops, neither to make room nor for
/// having no calls: a predicate on the connection's peer, asked whenever the listener
/// decides (so it follows a list that changes, such as the node agent's allowed masters).
/// Connections from this process (in memory) are always protected; by default nothing
/// else is.
#[derive(Clone, Default)]
pub struct Protected(Option<Arc<ProtectedFn>>);

type ProtectedFn = dyn Fn(&PeerInfo) -> bool + Send + Sync;

impl Protected {
    /// Nothing is protected (but connections from this process).
    pub fn none() -> Self {
        Self(None)
    }

    /// The connections whose peer `predicate` accepts are protected. It runs on the
    /// listener's task while it chooses, for each established connection: keep it cheap
    /// and never blocking.
    pub fn when(predicate: impl Fn(&PeerInfo) -> bool + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(predicate)))
    }

    /// Whether the connection with `peer` is protected.
    pub fn covers(&self, peer: &PeerInfo) -> bool {
        matches!(peer.remote(), PeerAddr::Memory) || self.0.as_ref().is_some_and(|p| p(peer))
    }
}

impl fmt::Debug for Protected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Some(_) => "Protected(predicate)",
            None => "Protected(none)",
        })
    }
}

/// What an established connection shares with its listener and with the calls on it.
#[derive(Debug)]
pub(crate) struct Tracking {
    /// Set once the listener has dropped the connection.
    dropped: AtomicBool,
    /// The connection task, woken when the listener drops it.
    waker: AtomicWaker,
    /// Calls in progress on the connection (`crate::calls`).
    calls: AtomicUsize,
    /// Whether it has ever carried a call.
    carried: AtomicBool,
    /// Whether a call began or ended since the listener last looked.
    touched: AtomicBool,
}

impl Tracking {
    fn new() -> Self {
        Self {
            dropped: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            calls: AtomicUsize::new(0),
            carried: AtomicBool::new(false),
            touched: AtomicBool::new(true),
        }
    }

    /// Whether the listener has dropped the connection.
    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// Wakes `waker` when the listener drops the connection.
    pub(crate) fn wake_when_dropped(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// A call began on the connection.
    pub(crate) fn call_started(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.carried.store(true, Ordering::Relaxed);
        self.touched.store(true, Ordering::Relaxed);
    }

    /// A call on the connection ended.
    pub(crate) fn call_ended(&self) {
        self.calls.fetch_sub(1, Ordering::Relaxed);
        self.touched.store(true, Ordering::Relaxed);
    }

    /// Whether a call is in progress.
    pub(super) fn busy(&self) -> bool {
        self.calls.load(Ordering::Relaxed) > 0
    }

    /// How much dropping it costs: nothing when it never carried a call (0), a connection
    /// to make again when it carries none now (1), calls cut when it does (2).
    pub(super) fn use_rank(&self) -> u8 {
        if self.busy() {
            2
        } else {
            u8::from(self.carried.load(Ordering::Relaxed))
        }
    }

    fn drop_connection(&self) {
        self.dropped.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// One established connection, as its listener sees it.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) origin: Origin,
    pub(super) peer: PeerInfo,
    pub(super) tracking: Arc<Tracking>,
    /// Idle checks in a row that found it without calls.
    quiet: u32,
}

/// The established connections of one listener, by arrival (oldest first).
#[derive(Debug, Default)]
pub(super) struct Established {
    entries: BTreeMap<u64, Entry>,
    /// How many each peer holds, protected or not.
    by_origin: HashMap<Origin, usize>,
}

/// The registry, shared by the listener and every [`Slot`].
pub(super) type Registry = Arc<Mutex<Established>>;

pub(super) fn lock(registry: &Registry) -> MutexGuard<'_, Established> {
    registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Established {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// How many connections `origin` holds, protected or not.
    pub(super) fn held_by(&self, origin: &Origin) -> usize {
        self.by_origin.get(origin).copied().unwrap_or(0)
    }

    /// The connections, oldest first, by arrival number.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &Entry)> {
        self.entries.iter().map(|(seq, entry)| (*seq, entry))
    }

    /// Registers `connection` (arrival number `seq`) and gives it its place.
    pub(super) fn insert(
        &mut self,
        registry: &Registry,
        seq: u64,
        origin: Origin,
        peer: &PeerInfo,
    ) -> Slot {
        let tracking = Arc::new(Tracking::new());
        self.entries.insert(
            seq,
            Entry {
                origin,
                peer: peer.clone(),
                tracking: tracking.clone(),
                quiet: 0,
            },
        );
        *self.by_origin.entry(origin).or_default() += 1;
        Slot {
            registry: registry.clone(),
            seq,
            tracking,
        }
    }

    /// Closes connection `seq` and frees its place at once (its socket closes as soon as
    /// its task notices, a moment later).
    pub(super) fn drop_connection(&mut self, seq: u64) {
        if let Some(entry) = self.remove(seq) {
            entry.tracking.drop_connection();
        }
    }

    fn remove(&mut self, seq: u64) -> Option<Entry> {
        let entry = self.entries.remove(&seq)?;
        if let Some(count) = self.by_origin.get_mut(&entry.origin) {
            *count -= 1;
            if *count == 0 {
                self.by_origin.remove(&entry.origin);
            }
        }
        Some(entry)
    }

    /// One idle check: closes the unprotected connections found without calls, and with
    /// none begun or ended, at `checks` checks in a row; returns how many it closed.
    pub(super) fn close_idle(&mut self, protected: &Protected, checks: u32) -> usize {
        let mut idle = Vec::new();
        for (seq, entry) in &mut self.entries {
            let touched = entry.tracking.touched.swap(false, Ordering::Relaxed);
            if touched || entry.tracking.busy() || protected.covers(&entry.peer) {
                entry.quiet = 0;
                continue;
            }
            entry.quiet += 1;
            if entry.quiet >= checks {
                idle.push(*seq);
            }
        }
        for seq in &idle {
            self.drop_connection(*seq);
        }
        idle.len()
    }

    /// Closes every unprotected connection that has nothing to drain: that never carried a
    /// call, or carries none and has carried none since before the last idle check (a call
    /// that just ended may still have its last bytes queued). How many.
    pub(super) fn close_undrained(&mut self, protected: &Protected) -> usize {
        let idle: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                let nothing_left = match e.tracking.use_rank() {
                    0 => true,
                    1 => e.quiet > 0,
                    _ => false,
                };
                nothing_left && !protected.covers(&e.peer)
            })
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &idle {
            self.drop_connection(*seq);
        }
        idle.len()
    }
}

/// An established connection's place; given back when the connection is dropped. Through
/// it the connection learns that its listener dropped it.
#[derive(Debug)]
pub(crate) struct Slot {
    registry: Registry,
    seq: u64,
    tracking: Arc<Tracking>,
}

impl Slot {
    pub(crate) fn tracking(&self) -> &Arc<Tracking> {
        &self.tracking
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.registry).remove(self.seq);
    }
}
