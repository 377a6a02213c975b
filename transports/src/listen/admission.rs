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
//! - *established*: handed to the gRPC server, TLS done. On a member listener that means a
//!   client certificate of the cluster was verified, which any node of the cluster has; in
//!   bootstrap mode no certificate is asked for, so it means nothing. Each is registered
//!   (`established`) and can be closed by the listener.
//!
//! Some established connections are **protected** ([`Protected`], the daemon's decision:
//! the node agent's member listener protects those with an allowed master certificate):
//! they are never dropped, neither to make room nor for having no calls. Every other
//! connection can be.
//!
//! When a connection arrives and a bound is reached, **one connection is dropped** for it:
//!
//! - Too many handshakes: the oldest pending connection of the peer (a host by its address,
//!   a local process by its pid) holding the most pending ones (among equals, the oldest
//!   of all). The oldest has had the longest to finish its handshake, which a peer of ours
//!   does in milliseconds and a flood never does. Dropping the oldest of all alone would
//!   not do: a flood that keeps connecting (thousands a second from one host) pushes every
//!   newcomer out again after `max_handshakes` arrivals, a few milliseconds, before a
//!   master on the other side of a network has finished its handshake. Measured in the lab
//!   with the oldest of all: 1 to 3 of the 5 master connections made during the first
//!   300 ms of a 5,000-connection flood were dropped.
//! - Too many connections: a connection of the peer holding the most unprotected ones,
//!   pending and established together; among its connections (and those of peers holding
//!   as many) first one that never carried a call (pending, or established and silent),
//!   then one that carries none now, then one that does, each time the oldest. A flood that completed its handshakes (with
//!   a node's valid certificate, or with none in bootstrap mode) so loses its own
//!   connections to a newcomer, and a master's Join in progress outlives idle connections.
//!
//! The newcomer is always admitted, so a master connecting during a flood gets a place at
//! once. Only when every place holds a protected connection is it refused (closed at once,
//! so that its client learns it now rather than waiting in the queue).
//!
//! Besides, **a peer holds at most `max_per_peer` unprotected established connections**:
//! when its handshake finishes, a connection beyond that share takes the place of the
//! peer's oldest one without calls (one never used first; if all of them carry calls, the
//! newcomer is closed instead). So one host cannot hold most of the bound, whatever
//! certificate it has, and fills at most its share with connections it then leaves idle.
//! And with an `idle_timeout`, an unprotected connection that carries no call for that long
//! is closed.
//!
//! When the listener closes (the server's shutdown begins), the unprotected connections
//! with nothing to drain are closed at once: those that never carried a call, and those
//! without one since before the last idle check (a call that has just ended may still have
//! its last bytes queued, so such a connection is left to the graceful shutdown, like the
//! protected ones). Otherwise a client that finished its TLS handshake but never speaks
//! HTTP/2 holds the shutdown for its whole grace period (hyper waits for its preface):
//! that is how a flood of finished handshakes held a node's bootstrap listener open for the
//! full grace after its Join (10 s by default, as long as the master waits for the node's
//! member listener).
//!
//! The defaults follow the process's open-file limit (`RLIMIT_NOFILE`, soft): half of what
//! is left after a reserve goes to connections, the other half to everything else a daemon
//! opens (state and upload files, the master's connections to its nodes, other listeners).
//! The bounds are per listener.

use std::cmp::Reverse;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::{AbortHandle, JoinSet};

use super::established::{self, Protected, Registry};
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
/// Most unprotected established connections of one peer by default. A host of ours holds
/// one connection to a listener (the master's channel to a node; `gnt`'s to the master
/// socket, one per process) and briefly one more per operation in progress (a Join, a
/// fresh connection to wait for a node); 32 leaves room for a host running tools and
/// monitoring besides, and at systemd's 1,024 descriptors (480 places) it takes 15 hosts,
/// or addresses, to fill a listener.
const MAX_PER_PEER: usize = 32;
/// How many idle checks an idle timeout is divided into: a connection is closed after
/// between 4 and 5 quarters of the timeout without a call.
pub(super) const IDLE_CHECKS: u32 = 4;

/// How many connections a listener holds at once, and how long it keeps those without
/// calls. The defaults follow the open-file limit
/// ([`for_this_process`](Self::for_this_process)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections held at once, pending and established.
    pub max_connections: usize,
    /// Connections still in their handshake (on a plain listener: not having sent a byte),
    /// at most `max_connections`.
    pub max_handshakes: usize,
    /// Established connections one peer (a host by its address, a local process by its
    /// pid) holds at once, protected ones aside.
    pub max_per_peer: usize,
    /// How long an unprotected established connection may carry no call before it is
    /// closed (checked every quarter of it); `None`, the default: as long as it likes.
    pub idle_timeout: Option<Duration>,
}

impl ConnectionLimits {
    /// The limits for a process that may open `fd_limit` descriptors: half of what is left
    /// after a reserve of 64 for connections (at least 8, at most 4,096), half of those (at
    /// most 128) for handshakes, a quarter (at most 32) for one peer; no idle timeout.
    /// 1,024 descriptors give 480 connections, 128 handshakes and 32 per peer.
    pub fn for_fd_limit(fd_limit: u64) -> Self {
        let budget = fd_limit.saturating_sub(RESERVED_FDS) / 2;
        let max_connections = usize::try_from(budget)
            .unwrap_or(usize::MAX)
            .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS);
        Self {
            max_connections,
            max_handshakes: (max_connections / 2).min(MAX_HANDSHAKES),
            max_per_peer: (max_connections / 4).min(MAX_PER_PEER),
            idle_timeout: None,
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
    /// There is room now that another connection was dropped.
    Evicted,
    /// Every place holds a protected connection: close the new one.
    Refused,
}

/// Where a connection comes from, for counting by peer.
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

/// A connection that may be dropped to make room.
#[derive(Debug, Clone, Copy)]
enum Victim {
    /// Pending, at this place in the order.
    Pending(usize),
    /// Established, by its arrival number.
    Established(u64),
}

/// The connections of one listener: the pending ones, oldest first and counted by peer,
/// and the registry of the established ones.
#[derive(Debug)]
pub(super) struct Admission {
    limits: ConnectionLimits,
    protected: Protected,
    pending: JoinSet<Option<Connection>>,
    /// Pending connections not yet dropped, oldest first: arrival number, peer, task.
    order: VecDeque<(u64, Origin, AbortHandle)>,
    /// How many of them each peer holds.
    by_origin: HashMap<Origin, usize>,
    established: Registry,
    /// The next arrival number.
    arrivals: u64,
}

impl Admission {
    pub(super) fn new(limits: ConnectionLimits) -> Self {
        let max_connections = limits.max_connections.max(1);
        Self {
            limits: ConnectionLimits {
                max_connections,
                max_handshakes: limits.max_handshakes.clamp(1, max_connections),
                max_per_peer: limits.max_per_peer.max(1),
                idle_timeout: limits.idle_timeout,
            },
            protected: Protected::none(),
            pending: JoinSet::new(),
            order: VecDeque::new(),
            by_origin: HashMap::new(),
            established: Arc::default(),
            arrivals: 0,
        }
    }

    /// Never drops the connections `protected` covers.
    pub(super) fn protect(&mut self, protected: Protected) {
        self.protected = protected;
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
        established::lock(&self.established).len()
    }

    /// Makes room for a connection just accepted, dropping another if a bound is reached.
    pub(super) fn admit(&mut self) -> Admit {
        let pending = self.pending();
        let full = if pending >= self.limits.max_handshakes {
            !self.drop_pending()
        } else if pending + self.established() >= self.limits.max_connections {
            self.make_room().is_none()
        } else {
            return Admit::Yes;
        };
        if full { Admit::Refused } else { Admit::Evicted }
    }

    /// Drops a pending connection: the oldest of the peer holding the most (among equals,
    /// the oldest of all); false if there is none. Its socket is closed when its task has
    /// stopped, which [`poll_finished`](Self::poll_finished) reports.
    pub(super) fn drop_pending(&mut self) -> bool {
        let Some(most) = self.by_origin.values().copied().max() else {
            return false;
        };
        let Some(at) = self
            .order
            .iter()
            .position(|(_, origin, _)| self.by_origin.get(origin) == Some(&most))
        else {
            return false;
        };
        self.drop_pending_at(at);
        true
    }

    /// Drops one unprotected connection, pending or established: of the peer holding the
    /// most of them, one without calls first, then the oldest. Says which kind it dropped;
    /// `None` when every connection is protected.
    pub(super) fn make_room(&mut self) -> Option<Dropped> {
        let mut established = established::lock(&self.established);
        let mut held = self.by_origin.clone();
        let mut candidates: Vec<(Origin, u8, u64, Victim)> = self
            .order
            .iter()
            .enumerate()
            .map(|(at, (seq, origin, _))| (*origin, 0, *seq, Victim::Pending(at)))
            .collect();
        for (seq, entry) in established.iter() {
            if !self.protected.covers(&entry.peer) {
                *held.entry(entry.origin).or_default() += 1;
                let rank = entry.tracking.use_rank();
                candidates.push((entry.origin, rank, seq, Victim::Established(seq)));
            }
        }
        let (_, _, _, victim) = candidates
            .into_iter()
            .min_by_key(|(origin, rank, seq, _)| {
                let count = held.get(origin).copied().unwrap_or(0);
                (Reverse(count), *rank, *seq)
            })?;
        Some(match victim {
            Victim::Pending(at) => {
                drop(established);
                self.drop_pending_at(at);
                Dropped::Pending
            }
            Victim::Established(seq) => {
                established.drop_connection(seq);
                Dropped::Established
            }
        })
    }

    fn drop_pending_at(&mut self, at: usize) {
        if let Some((_, _, task)) = self.forget(at) {
            task.abort();
        }
    }

    /// Removes the pending connection at `at` from the order and its peer's count.
    fn forget(&mut self, at: usize) -> Option<(u64, Origin, AbortHandle)> {
        let (seq, origin, task) = self.order.remove(at)?;
        if let Some(count) = self.by_origin.get_mut(&origin) {
            *count -= 1;
            if *count == 0 {
                self.by_origin.remove(&origin);
            }
        }
        Some((seq, origin, task))
    }

    /// Runs `handshake` as a pending connection from `origin`: it yields the connection
    /// once it is established, or `None` if it failed.
    pub(super) fn start<F>(&mut self, origin: Origin, handshake: F)
    where
        F: Future<Output = Option<Connection>> + Send + 'static,
    {
        let task = self.pending.spawn(handshake);
        let seq = self.next_arrival();
        self.order.push_back((seq, origin, task));
        *self.by_origin.entry(origin).or_default() += 1;
    }

    fn next_arrival(&mut self) -> u64 {
        self.arrivals += 1;
        self.arrivals
    }

    /// Takes a place for a connection that needs no handshake.
    pub(super) fn enter(&mut self, connection: Connection) -> Finished {
        let seq = self.next_arrival();
        self.establish(seq, connection)
    }

    /// Gives `connection` (arrival `seq`) its established place, within its peer's share:
    /// beyond it, the peer's oldest unprotected connection without calls is closed for it,
    /// or, when all of them carry calls, the newcomer is.
    fn establish(&mut self, seq: u64, connection: Connection) -> Finished {
        let origin = Origin::from(connection.peer().remote());
        let mut established = established::lock(&self.established);
        let mut displaced = false;
        if established.held_by(&origin) >= self.limits.max_per_peer
            && !self.protected.covers(connection.peer())
        {
            let mut theirs: Vec<(u8, u64)> = established
                .iter()
                .filter(|(_, e)| e.origin == origin && !self.protected.covers(&e.peer))
                .map(|(seq, e)| (e.tracking.use_rank(), seq))
                .collect();
            let excess = (theirs.len() + 1).saturating_sub(self.limits.max_per_peer);
            theirs.sort_unstable();
            let idle: Vec<u64> = theirs
                .iter()
                .filter(|(rank, _)| *rank < 2)
                .map(|(_, seq)| *seq)
                .take(excess)
                .collect();
            if idle.len() < excess {
                return Finished::OverShare;
            }
            for seq in idle {
                established.drop_connection(seq);
                displaced = true;
            }
        }
        let slot = established.insert(&self.established, seq, origin, connection.peer());
        Finished::Established {
            connection: connection.with_slot(slot),
            displaced,
        }
    }

    /// Closes the unprotected connections that carried no call through the last
    /// [`IDLE_CHECKS`] checks (this one included); how many.
    pub(super) fn close_idle(&mut self) -> usize {
        established::lock(&self.established).close_idle(&self.protected, IDLE_CHECKS)
    }

    /// Closes every unprotected connection with nothing to drain (the listener is
    /// closing); how many.
    pub(super) fn close_undrained(&mut self) -> usize {
        established::lock(&self.established).close_undrained(&self.protected)
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
        // Not in the order: dropped to make room, just as its handshake finished.
        let seq = self
            .order
            .iter()
            .position(|(_, _, task)| task.id() == id)
            .and_then(|at| self.forget(at))
            .map(|(seq, _, _)| seq);
        Poll::Ready(match (seq, connection) {
            (Some(seq), Some(connection)) => self.establish(seq, connection),
            _ => Finished::Closed,
        })
    }
}

/// Which kind of connection [`Admission::make_room`] dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dropped {
    /// A pending one: its socket closes once its task has stopped.
    Pending,
    /// An established one: its socket closes once its connection task notices.
    Established,
}

/// How a pending connection finished.
#[derive(Debug)]
pub(super) enum Finished {
    /// Its handshake is done; it holds an established place. `displaced`: its peer was at
    /// its share, and its oldest connection without calls was closed for it.
    Established {
        connection: Connection,
        displaced: bool,
    },
    /// Its handshake is done, but its peer holds its share of connections and all of them
    /// carry calls: it is closed.
    OverShare,
    /// It is closed.
    Closed,
}

#[cfg(test)]
mod tests;
