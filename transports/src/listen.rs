//! Listeners: where a gRPC server accepts connections. One type, three kinds:
//!
//! - **TCP** ([`Listener::tcp`], [`Listener::tcp_for_policy`]). Sockets are made with
//!   socket2 and every option is set explicitly: an IPv6 socket bound to `::` always has
//!   `IPV6_V6ONLY` off (dual-stack, whatever `net.ipv6.bindv6only` says), any other IPv6
//!   socket has it on. The IPv4 policy binds `0.0.0.0`, the hybrid policy `[::]`. Port 0
//!   picks a free port. Accepted sockets get `TCP_NODELAY` and TCP keepalive, and IPv4
//!   peers of a dual-stack socket are reported as plain IPv4.
//! - **Unix domain socket** ([`Listener::unix`]). The path's length and directory are
//!   checked first (it must exist, be writable, and not be writable by everyone unless
//!   sticky); a stale socket file is replaced only if nothing answers on it; the socket gets
//!   its mode before it appears under its name; it is removed when the listener stops.
//!   Peers are identified by their process credentials.
//! - **In memory** ([`Listener::memory`]): an in-process pipe, for tests and embedding,
//!   with a [`MemoryConnector`] that any number of clients can dial.
//!
//! Any kind can carry TLS ([`Listener::with_tls`]). Handshakes run in their own tasks with
//! a timeout, so a slow or silent client never holds up accepting others.
//!
//! A listener holds a bounded number of connections, of connections still in their
//! handshake, and of connections of one peer ([`ConnectionLimits`]); when full it drops a
//! connection of the peer holding the most for a new one, never one the daemon protects
//! ([`Protected`]: the master's, on a member node), and it may close those that carry no
//! calls (`admission` says why). Running out of descriptors does not stall it either:
//! `accept` failing with `EMFILE` drops a connection the same way and accepts again as
//! soon as its socket is closed, or pauses briefly when there is none. Such events are
//! logged once per burst with a count (`burst`).

mod admission;
mod burst;
mod established;
mod source;
mod tcp;
mod unix;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use gnt_core::policy::IpPolicy;
use nix::errno::Errno;
use tokio::sync::mpsc;

use crate::error::ListenError;
use crate::io::{Coalescing, Connection, PlainIo};
use crate::peer::{ListenAddr, PeerAddr, PeerInfo};
use crate::tls::{DEFAULT_HANDSHAKE_TIMEOUT, ServerTls};
use admission::{Admission, Admit, Dropped, Finished, IDLE_CHECKS, Origin};
use burst::Bursts;
use source::{Source, is_per_connection};

pub use admission::ConnectionLimits;
pub use established::Protected;
pub(crate) use established::{Slot, Tracking};
pub use source::MemoryConnector;
pub(crate) use tcp::tune as tune_outgoing;
pub(crate) use unix::UnixSocketFile;

/// How long to pause accepting when the process is out of descriptors or memory and no
/// pending connection could be dropped to free one (or the one dropped is slow to close): long enough not to spin, short enough that a master waiting in the queue is
/// still served within a second.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A bound listener, not yet serving.
#[derive(Debug)]
pub struct Listener {
    source: Source,
    local: ListenAddr,
    tls: Option<ServerTls>,
    unix_file: Option<UnixSocketFile>,
}

impl Listener {
    /// Listens on `addr`. `[::]` is dual-stack; use [`tcp_for_policy`](Self::tcp_for_policy)
    /// to follow a cluster policy. Must be called within a Tokio runtime.
    pub fn tcp(addr: SocketAddr) -> Result<Self, ListenError> {
        Self::bind_tcp(addr).map_err(ListenError::naming_port_holder)
    }

    /// [`tcp`](Self::tcp), or `None` while the port is in use: for a caller that waits for
    /// it to be free, without looking up who holds it on every try.
    pub fn tcp_if_free(addr: SocketAddr) -> Result<Option<Self>, ListenError> {
        match Self::bind_tcp(addr) {
            Err(ListenError::AddressInUse { .. }) => Ok(None),
            bound => bound.map(Some),
        }
    }

    fn bind_tcp(addr: SocketAddr) -> Result<Self, ListenError> {
        let std_listener = tcp::bind(addr)?;
        let local = std_listener
            .local_addr()
            .map_err(|source| io_error("read the address of", ListenAddr::Tcp(addr), source))?;
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .map_err(|source| io_error("register", ListenAddr::Tcp(addr), source))?;
        tracing::debug!(addr = %ListenAddr::Tcp(local), "listening");
        Ok(Self {
            source: Source::Tcp(listener),
            local: ListenAddr::Tcp(local),
            tls: None,
            unix_file: None,
        })
    }

    /// Listens on the policy's wildcard: `0.0.0.0` (IPv4 only) or `[::]` (dual-stack).
    pub fn tcp_for_policy(policy: IpPolicy, port: u16) -> Result<Self, ListenError> {
        Self::tcp(SocketAddr::new(policy.bind_wildcard(), port))
    }

    /// Listens on `addr` if the policy allows it (an IPv4 cluster never listens on IPv6, and
    /// a hybrid one never on `0.0.0.0` alone).
    pub fn tcp_in_policy(policy: IpPolicy, addr: SocketAddr) -> Result<Self, ListenError> {
        if !policy.allows_bind_address(addr.ip()) {
            return Err(ListenError::PolicyForbids { addr, policy });
        }
        Self::tcp(addr)
    }

    /// Listens on a Unix socket at `path` with permission bits `mode` (for example 0o600).
    /// Must be called within a Tokio runtime.
    pub fn unix(path: &Path, mode: u32) -> Result<Self, ListenError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io_error(
                "listen outside a Tokio runtime on",
                ListenAddr::Unix(path.to_owned()),
                io::Error::other("no Tokio runtime"),
            ));
        }
        let (std_listener, file) = unix::bind(path, mode)?;
        let listener = tokio::net::UnixListener::from_std(std_listener)
            .map_err(|source| io_error("register", ListenAddr::Unix(path.to_owned()), source))?;
        tracing::debug!(path = %path.display(), "listening");
        Ok(Self {
            source: Source::Unix(listener),
            local: ListenAddr::Unix(path.to_owned()),
            tls: None,
            unix_file: Some(file),
        })
    }

    /// An in-process listener and the connector that reaches it.
    pub fn memory() -> (Self, MemoryConnector) {
        let (tx, rx) = mpsc::channel(64);
        let listener = Self {
            source: Source::Memory(rx),
            local: ListenAddr::Memory,
            tls: None,
            unix_file: None,
        };
        (listener, MemoryConnector { tx })
    }

    /// Negotiates TLS on every accepted connection.
    pub fn with_tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Where it listens (for TCP with port 0: the port the kernel chose).
    pub fn local_addr(&self) -> &ListenAddr {
        &self.local
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The stream of accepted connections, for tonic's `serve_with_incoming*`, holding at
    /// most what `limits` allow; nothing is protected until
    /// [`protecting`](Incoming::protecting) says otherwise.
    pub fn into_incoming(self, limits: ConnectionLimits) -> Incoming {
        let idle_checks = limits.idle_timeout.map(|timeout| {
            let every = (timeout / IDLE_CHECKS).max(Duration::from_millis(1));
            IdleChecks {
                every,
                timer: Box::pin(tokio::time::sleep(every)),
            }
        });
        Incoming {
            source: self.source,
            local: self.local,
            tls: self.tls,
            admission: Admission::new(limits),
            backoff: None,
            bursts: Bursts::new(),
            idle_checks,
            _unix_file: self.unix_file,
        }
    }
}

fn io_error(action: &'static str, addr: ListenAddr, source: io::Error) -> ListenError {
    ListenError::Io {
        action,
        addr,
        source,
    }
}

/// Accepted connections, TLS negotiated. Dropping it closes the listening socket (and
/// removes a Unix socket file) and abandons handshakes in progress.
pub struct Incoming {
    source: Source,
    local: ListenAddr,
    tls: Option<ServerTls>,
    admission: Admission,
    backoff: Option<Backoff>,
    bursts: Bursts,
    idle_checks: Option<IdleChecks>,
    _unix_file: Option<UnixSocketFile>,
}

/// The timer of the idle checks, when connections without calls are closed.
struct IdleChecks {
    every: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

/// A pause in accepting, after `accept` failed for want of descriptors or memory.
struct Backoff {
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Whether a pending connection was dropped to free a descriptor: accepting resumes as
    /// soon as one is closed, without waiting for the sleep.
    until_freed: bool,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("local", &self.local)
            .field("limits", &self.admission.limits())
            .field("pending", &self.admission.pending())
            .field("established", &self.admission.established())
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// Never drops the established connections `protected` covers, neither to make room
    /// nor for carrying no calls; it is asked whenever the listener chooses.
    pub fn protecting(mut self, protected: Protected) -> Self {
        self.admission.protect(protected);
        self
    }

    /// Takes a connection just accepted: passes it on at once if it needs no handshake,
    /// else starts its handshake as a pending connection.
    fn take(&mut self, io: PlainIo, remote: PeerAddr) -> Option<Connection> {
        let local = self.local.clone();
        let origin = Origin::from(&remote);
        match (&self.tls, io) {
            (Some(tls), io) => {
                let handshake = tls_handshake(tls.clone(), io, remote, local);
                self.admission.start(origin, handshake);
                None
            }
            // In-process pipes cost no descriptor and come from this process.
            (None, PlainIo::Memory(pipe)) => {
                let connection =
                    Connection::plain(PlainIo::Memory(pipe), PeerInfo::new(remote, local));
                let finished = self.admission.enter(connection);
                self.established(finished)
            }
            (None, io) => {
                self.admission.start(origin, first_bytes(io, remote, local));
                None
            }
        }
    }

    /// `accept` failed: an error of that one connection is ignored; running out of
    /// descriptors drops a connection to free one, as when the listener is full; either
    /// way, and for want of memory, accepting pauses (until a pending connection dropped
    /// is closed, at most [`ACCEPT_BACKOFF`]) rather than spinning on an error that will
    /// repeat.
    fn accept_failed(&mut self, error: &io::Error) {
        if is_per_connection(error) {
            return;
        }
        self.bursts.failed_accepts.event(&self.local, error);
        let out_of_descriptors = matches!(
            error.raw_os_error(),
            Some(code) if code == Errno::EMFILE as i32 || code == Errno::ENFILE as i32
        );
        let until_freed =
            out_of_descriptors && self.admission.make_room() == Some(Dropped::Pending);
        self.backoff = Some(Backoff {
            sleep: Box::pin(tokio::time::sleep(ACCEPT_BACKOFF)),
            until_freed,
        });
    }

    /// The next connection: a pending one that finished its handshake, or one accepted
    /// that needs none.
    fn poll_accepted(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Connection>>> {
        loop {
            match self.admission.poll_finished(cx) {
                Poll::Ready(finished @ (Finished::Established { .. } | Finished::OverShare)) => {
                    match self.established(finished) {
                        Some(connection) => return Poll::Ready(Some(Ok(connection))),
                        None => continue,
                    }
                }
                Poll::Ready(Finished::Closed) => {
                    if self.backoff.as_ref().is_some_and(|b| b.until_freed) {
                        self.backoff = None;
                    }
                    continue;
                }
                Poll::Pending => {}
            }
            if let Some(backoff) = &mut self.backoff {
                if backoff.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.backoff = None;
            }
            let (io, remote) = match self.source.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Ok(accepted))) => accepted,
                Poll::Ready(Some(Err(error))) => {
                    self.accept_failed(&error);
                    continue;
                }
            };
            self.bursts.failed_accepts.settle(&self.local);
            if !self.admit() {
                // Closed at once: its client learns it now rather than after a timeout.
                drop(io);
                continue;
            }
            if let Some(connection) = self.take(io, remote) {
                return Poll::Ready(Some(Ok(connection)));
            }
        }
    }

    /// A connection that finished its handshake (or needed none): the connection, unless
    /// its peer holds its share already, all of it carrying calls.
    fn established(&mut self, finished: Finished) -> Option<Connection> {
        let share = self.admission.limits().max_per_peer;
        match finished {
            Finished::Established {
                connection,
                displaced,
            } => {
                if displaced {
                    self.bursts.over_share.event(
                        &self.local,
                        format_args!(
                            "at most {share} connections per peer; peer {}",
                            connection.peer()
                        ),
                    );
                }
                Some(connection)
            }
            Finished::OverShare => {
                self.bursts.over_share.event(
                    &self.local,
                    format_args!("at most {share} connections per peer, all carrying calls"),
                );
                None
            }
            Finished::Closed => None,
        }
    }

    /// Closes connections without calls when their time has come (see
    /// [`ConnectionLimits::idle_timeout`]).
    fn poll_idle_checks(&mut self, cx: &mut Context<'_>) {
        let Some(checks) = &mut self.idle_checks else {
            return;
        };
        while checks.timer.as_mut().poll(cx).is_ready() {
            checks
                .timer
                .as_mut()
                .reset(tokio::time::Instant::now() + checks.every);
            let closed = self.admission.close_idle();
            if closed > 0 {
                tracing::debug!(addr = %self.local, closed, "closed connections without calls");
            }
        }
    }

    /// Makes room for a connection just accepted; false if it must be refused.
    fn admit(&mut self) -> bool {
        let limits = self.admission.limits();
        match self.admission.admit() {
            Admit::Yes => {
                self.bursts.dropped.settle(&self.local);
                self.bursts.refused.settle(&self.local);
                true
            }
            Admit::Evicted => {
                self.bursts.refused.settle(&self.local);
                self.bursts.dropped.event(
                    &self.local,
                    format_args!(
                        "at most {} handshakes and {} connections",
                        limits.max_handshakes, limits.max_connections
                    ),
                );
                true
            }
            Admit::Refused => {
                self.bursts.refused.event(
                    &self.local,
                    format_args!("at most {} connections", limits.max_connections),
                );
                false
            }
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<Connection>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let next = this.poll_accepted(cx);
        this.poll_idle_checks(cx);
        this.bursts.poll_settle(&this.local, cx);
        next
    }
}

/// A TLS connection's handshake, within the TLS configuration's timeout.
async fn tls_handshake(
    tls: ServerTls,
    io: PlainIo,
    remote: PeerAddr,
    local: ListenAddr,
) -> Option<Connection> {
    match tls.accept(Coalescing::new(io)).await {
        Ok((stream, session)) => Some(Connection::tls(
            stream,
            PeerInfo::with_tls(remote, local, Some(session)),
        )),
        Err(error) => {
            if let Some(refused) = refused_certificate(&error)
                && untrusted_log_due()
            {
                // A scanner presents no certificate; one of a CA this node does not trust
                // is an operator's mistake worth a line (a master of another cluster, or
                // of this one from before a CA renewal), at most one a second.
                tracing::warn!(peer = %remote, addr = %local, reason = %refused, "refused a client certificate this node does not trust: a master of another cluster, or of this cluster from before its CA was renewed?");
            } else {
                tracing::debug!(peer = %remote, addr = %local, %error, "TLS handshake failed");
            }
            None
        }
    }
}

/// The certificate error of a failed handshake, if the client's certificate was refused.
fn refused_certificate(error: &std::io::Error) -> Option<&rustls::Error> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .filter(|e| matches!(e, rustls::Error::InvalidCertificate(_)))
}

/// Whether a refused certificate may be logged now: at most once a second in a process,
/// so that a client trying bogus certificates in a loop cannot flood the log.
fn untrusted_log_due() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    LAST.swap(now, Ordering::Relaxed) != now
}

/// A plain connection's handshake: its first bytes (a gRPC client sends the HTTP/2 preface
/// at once), within the TLS handshake's default timeout.
async fn first_bytes(io: PlainIo, remote: PeerAddr, local: ListenAddr) -> Option<Connection> {
    match tokio::time::timeout(DEFAULT_HANDSHAKE_TIMEOUT, io.sent_something()).await {
        Ok(Ok(())) => Some(Connection::plain(io, PeerInfo::new(remote, local))),
        _ => {
            tracing::debug!(peer = %remote, addr = %local, "closed or silent for too long");
            None
        }
    }
}

/// Closing: connections with nothing to drain go at once, pending ones with their tasks
/// (see `admission`).
impl Drop for Incoming {
    fn drop(&mut self) {
        self.bursts.end(&self.local);
        let closed = self.admission.close_undrained();
        if closed > 0 {
            tracing::debug!(addr = %self.local, closed, "closed connections with nothing to drain");
        }
    }
}

#[cfg(test)]
mod tests;
