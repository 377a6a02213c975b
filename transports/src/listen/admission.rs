//! Admission: how many connections a listener holds, and which one goes when it is full.
//!
//! Every accepted connection costs a file descriptor from the moment it is accepted. A
//! listener that takes all comers runs out of them: with systemd's default limit of 1,024,
//! a thousand idle connections (or half-sent TLS ClientHellos) made `accept` fail with
//! `EMFILE`, and the master's connection waited in the kernel's queue, behind the rest of
//! the flood, until handshake timeouts freed descriptors ten seconds later (issue 10).
//! So a listener holds two kinds of connection, each bounded ([`ConnectionLimits`]):
//!
//! - *pending*: still in its TLS handshake or, on a plain listener, not having sent a byte
//!   yet (a gRPC client sends its HTTP/2 preface at once). These are the unauthenticated
//!   ones; their tasks are ours, so one can be dropped at any moment.
//! - *established*: handed to the gRPC server, TLS done (on a member listener that means a
//!   client certificate of the cluster was verified). Each carries a [`Slot`] that gives
//!   its place back when the connection ends.
//!
//! When a connection arrives and either bound is reached, **a pending connection is
//! dropped**: the oldest one of the peer holding the most (a host by its address, a local
//! process by its pid; among equals, the oldest of all). The newcomer then takes its place:
//!
//! - The oldest has had the longest to finish its handshake, which a peer of ours does in
//!   milliseconds and a flood never does. Dropping the oldest of all alone would not do: a
//!   flood that keeps connecting (thousands a second from one host) pushes every newcomer
//!   out again after `max_handshakes` arrivals, a few milliseconds, before a master on the
//!   other side of a network has finished its handshake. Measured in the lab with the
//!   oldest of all: 1 to 3 of the 5 master connections made during the first 300 ms of a
//!   5,000-connection flood were dropped. Counting by peer leaves a master's one
//!   connection alone as long as some peer holds more; a flood from many hosts at once,
//!   each holding as few as the master, is back to the oldest of all.
//! - The newcomer is always admitted, so a master connecting during a flood gets a place
//!   at once.
//!
//! **Established connections are never dropped to make room**: when every place holds
//! one, the newcomer is refused (closed at once, so its client learns it at once rather
//! than waiting in the queue). They are authenticated peers, possibly in the middle of a
//! call that dropping would break, and the bound is far above what a cluster uses (a master
//! keeps one connection per node).
//!
//! The defaults follow the process's open-file limit (`RLIMIT_NOFILE`, soft): half of what
//! is left after a reserve goes to connections, the other half to everything else a daemon
//! opens (state and upload files, the master's connections to its nodes, other listeners).
//! The bounds are per listener.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::task::{AbortHandle, JoinSet};

use crate::io::Connection;
use crate::peer::PeerAddr;

/// Descriptors kept out of the connection budget: standard streams, the runtime's own,
/// listeners, logs, the state files read at every call.
const RESERVED_FDS: u64 = 64;
/// Fewest connections a listener takes, however low the limit.
const MIN_CONNECTIONS: usize = 8;
/// Most connections a listener takes by default, however high the limit: far more than a
/// cluster uses, and each established connection keeps TLS and HTTP/2 buffers (tens of
/// KiB), so a high limit does not turn into gigabytes.
const MAX_CONNECTIONS: usize = 4096;
/// Most handshakes in progress by default. A TLS 1.3 handshake costs the server well under
/// a millisecond of CPU and a peer of ours finishes it within a round trip or two; 128 is
/// far more than honest peers have in progress at once on one listener, and it is how many
/// newer connections a master's connection outlives during a flood.
const MAX_HANDSHAKES: usize = 128;

/// How many connections a listener holds at once. The defaults follow the open-file limit
/// ([`for_this_process`](Self::for_this_process)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections held at once, pending and established.
    pub max_connections: usize,
    /// Connections still in their handshake (on a plain listener: not having sent a byte),
    /// at most `max_connections`.
    pub max_handshakes: usize,
}

impl ConnectionLimits {
    /// The limits for a process that may open `fd_limit` descriptors: half of what is left
    /// after a reserve of 64 for connections (at least 8, at most 4,096), and half of those
    /// (at most 128) for handshakes. 1,024 descriptors give 480 connections and 128
    /// handshakes.
    pub fn for_fd_limit(fd_limit: u64) -> Self {
        let budget = fd_limit.saturating_sub(RESERVED_FDS) / 2;
        let max_connections = usize::try_from(budget)
            .unwrap_or(usize::MAX)
            .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS);
        Self {
            max_connections,
            max_handshakes: (max_connections / 2).min(MAX_HANDSHAKES),
        }
    }

    /// The limits for this process's open-file limit (soft) as it is now; raise the limit
    /// first ([`raise_fd_limit`](crate::daemon::raise_fd_limit)).
    pub fn for_this_process() -> Self {
        Self::for_fd_limit(crate::daemon::fd_limit())
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::for_this_process()
    }
}

/// What to do with a connection just accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    /// There is room.
    Yes,
    /// There is room now that a pending connection was dropped.
    Evicted,
    /// Every place holds an established connection: close the new one.
    Refused,
}

/// Where a pending connection comes from, for counting by peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Origin {
    /// A host, by its address (its port changes with every connection).
    Host(IpAddr),
    /// A process on this host, by its pid.
    Process(Option<i32>),
    /// This process.
    Memory,
}

impl From<&PeerAddr> for Origin {
    fn from(peer: &PeerAddr) -> Self {
        match peer {
            PeerAddr::Tcp(addr) => Self::Host(addr.ip()),
            PeerAddr::Unix { pid, .. } => Self::Process(*pid),
            PeerAddr::Memory => Self::Memory,
        }
    }
}

/// The connections of one listener: the pending ones, oldest first, counted by peer, and
/// a count of the established ones.
#[derive(Debug)]
pub(super) struct Admission {
    limits: ConnectionLimits,
    pending: JoinSet<Option<Connection>>,
    /// Pending connections not yet dropped, oldest first.
    order: VecDeque<(Origin, AbortHandle)>,
    /// How many of them each peer holds.
    by_origin: HashMap<Origin, usize>,
    established: Arc<AtomicUsize>,
}

impl Admission {
    pub(super) fn new(limits: ConnectionLimits) -> Self {
        let max_connections = limits.max_connections.max(1);
        Self {
            limits: ConnectionLimits {
                max_connections,
                max_handshakes: limits.max_handshakes.clamp(1, max_connections),
            },
            pending: JoinSet::new(),
            order: VecDeque::new(),
            by_origin: HashMap::new(),
            established: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(super) fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Pending connections not yet dropped.
    pub(super) fn pending(&self) -> usize {
        self.order.len()
    }

    /// Established connections still open.
    pub(super) fn established(&self) -> usize {
        self.established.load(Ordering::Relaxed)
    }

    /// Makes room for a connection just accepted, dropping the oldest pending one if a
    /// bound is reached.
    pub(super) fn admit(&mut self) -> Admit {
        let pending = self.pending();
        let full = pending >= self.limits.max_handshakes
            || pending + self.established() >= self.limits.max_connections;
        if !full {
            Admit::Yes
        } else if self.drop_one() {
            Admit::Evicted
        } else {
            Admit::Refused
        }
    }

    /// Drops a pending connection: the oldest of the peer holding the most (among equals,
    /// the oldest of all); false if there is none. Its socket is closed when its task has
    /// stopped, which [`poll_finished`](Self::poll_finished) reports.
    pub(super) fn drop_one(&mut self) -> bool {
        let Some(most) = self.by_origin.values().copied().max() else {
            return false;
        };
        let Some(at) = self
            .order
            .iter()
            .position(|(origin, _)| self.by_origin.get(origin) == Some(&most))
        else {
            return false;
        };
        if let Some((_, task)) = self.forget(at) {
            task.abort();
        }
        true
    }

    /// Removes the pending connection at `at` from the order and its peer's count.
    fn forget(&mut self, at: usize) -> Option<(Origin, AbortHandle)> {
        let (origin, task) = self.order.remove(at)?;
        if let Some(count) = self.by_origin.get_mut(&origin) {
            *count -= 1;
            if *count == 0 {
                self.by_origin.remove(&origin);
            }
        }
        Some((origin, task))
    }

    /// Runs `handshake` as a pending connection from `origin`: it yields the connection
    /// once it is established, or `None` if it failed.
    pub(super) fn start<F>(&mut self, origin: Origin, handshake: F)
    where
        F: Future<Output = Option<Connection>> + Send + 'static,
    {
        let task = self.pending.spawn(handshake);
        self.order.push_back((origin, task));
        *self.by_origin.entry(origin).or_default() += 1;
    }

    /// Takes a place for a connection that needs no handshake.
    pub(super) fn enter(&self, connection: Connection) -> Connection {
        connection.with_slot(Slot::take(&self.established))
    }

    /// The next pending connection to finish: established (with its place now), or
    /// closed (failed, timed out or dropped: its descriptor is free again). `Pending` when
    /// none has finished, including when none is running.
    pub(super) fn poll_finished(&mut self, cx: &mut Context<'_>) -> Poll<Finished> {
        let joined = match self.pending.poll_join_next_with_id(cx) {
            Poll::Pending | Poll::Ready(None) => return Poll::Pending,
            Poll::Ready(Some(joined)) => joined,
        };
        let (id, connection) = match joined {
            Ok((id, connection)) => (id, connection),
            Err(error) => (error.id(), None),
        };
        if let Some(at) = self.order.iter().position(|(_, task)| task.id() == id) {
            self.forget(at);
        }
        Poll::Ready(match connection {
            Some(connection) => Finished::Established(self.enter(connection)),
            None => Finished::Closed,
        })
    }
}

/// How a pending connection finished.
#[derive(Debug)]
pub(super) enum Finished {
    /// Its handshake is done; it holds an established place.
    Established(Connection),
    /// It is closed.
    Closed,
}

/// An established connection's place; given back when the connection is dropped.
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::PlainIo;
    use crate::peer::{ListenAddr, PeerAddr, PeerInfo};

    fn memory(pipe: tokio::io::DuplexStream) -> Connection {
        Connection::plain(
            PlainIo::Memory(pipe),
            PeerInfo::new(PeerAddr::Memory, ListenAddr::Memory),
        )
    }

    #[test]
    fn defaults_follow_the_descriptor_limit() {
        let systemd = ConnectionLimits::for_fd_limit(1024);
        assert_eq!(systemd.max_connections, 480);
        assert_eq!(systemd.max_handshakes, 128);
        let high = ConnectionLimits::for_fd_limit(1 << 20);
        assert_eq!(high.max_connections, MAX_CONNECTIONS);
        assert_eq!(high.max_handshakes, MAX_HANDSHAKES);
        let tiny = ConnectionLimits::for_fd_limit(16);
        assert_eq!(tiny.max_connections, MIN_CONNECTIONS);
        assert_eq!(tiny.max_handshakes, MIN_CONNECTIONS / 2);
    }

    fn from_host(last: u8) -> Origin {
        Origin::from(&PeerAddr::tcp(std::net::SocketAddr::from((
            [10, 0, 0, last],
            4000,
        ))))
    }

    fn admission(max_connections: usize, max_handshakes: usize) -> Admission {
        Admission::new(ConnectionLimits {
            max_connections,
            max_handshakes,
        })
    }

    /// A handshake that never ends.
    fn never() -> impl Future<Output = Option<Connection>> {
        std::future::pending()
    }

    fn ids(admission: &Admission) -> Vec<tokio::task::Id> {
        admission.order.iter().map(|(_, task)| task.id()).collect()
    }

    #[tokio::test]
    async fn the_oldest_pending_connection_goes_first_and_established_ones_never() {
        let mut admission = admission(3, 2);
        assert_eq!(admission.admit(), Admit::Yes);
        admission.start(from_host(1), never());
        assert_eq!(admission.admit(), Admit::Yes);
        admission.start(from_host(2), never());
        let [first, second] = ids(&admission)[..] else {
            panic!("two pending")
        };
        // The handshake bound: the first one goes.
        assert_eq!(admission.admit(), Admit::Evicted);
        admission.start(from_host(3), never());
        assert_eq!(ids(&admission)[0], second);
        assert!(!ids(&admission).contains(&first));
        assert_eq!(admission.pending(), 2);

        // Three established places taken: pending ones go, then newcomers are refused.
        let held: Vec<Connection> = (0..3)
            .map(|_| admission.enter(memory(tokio::io::duplex(1).0)))
            .collect();
        assert_eq!(admission.established(), 3);
        assert_eq!(admission.admit(), Admit::Evicted);
        assert_eq!(admission.admit(), Admit::Evicted);
        assert_eq!(admission.admit(), Admit::Refused);
        drop(held);
        assert_eq!(admission.established(), 0);
        assert_eq!(admission.admit(), Admit::Yes);
    }

    #[tokio::test]
    async fn the_peer_holding_the_most_loses_its_oldest_first() {
        let mut admission = admission(10, 4);
        // The master's connection is the oldest; a flood from one host follows.
        admission.start(from_host(10), never());
        for _ in 0..3 {
            admission.start(from_host(66), never());
        }
        let master = ids(&admission)[0];
        for _ in 0..20 {
            assert_eq!(admission.admit(), Admit::Evicted);
            admission.start(from_host(66), never());
            assert_eq!(ids(&admission)[0], master, "the master's connection stays");
        }
        // Host 66 goes down to one; then both hold as many, and the oldest of all goes.
        assert!(admission.drop_one());
        assert!(admission.drop_one());
        assert_eq!(ids(&admission)[0], master);
        assert!(admission.drop_one());
        assert!(!ids(&admission).contains(&master));
        assert_eq!(admission.pending(), 1);
    }
}
