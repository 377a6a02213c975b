//! TCP ping: can this host open a TCP connection to a target, optionally from a given
//! source address?
//!
//! Ganeti's `TcpPing` semantics: an accepted connection is alive; a refused one (the target
//! answered with a reset) is alive too unless `live_port_needed`, because the host is up;
//! a timeout or any other failure is not alive. The target must be an address, never a name:
//! resolve first, in the family the cluster uses.
//!
//! Departure: Ganeti ignores a failed bind to the source address and pings from whatever
//! address the kernel picks, so a test meant for the secondary network may silently run on
//! the primary one. Here a source that cannot be bound, or of the other family than the
//! target, is an error that names it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpSocket;

use crate::error::{Classify, ErrorKind};
use crate::policy::IpFamily;

/// Ganeti's `TCP_PING_TIMEOUT`.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// How to ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingOptions {
    /// How long to wait for the connection. Defaults to 10 seconds.
    pub timeout: Duration,
    /// Address to connect from; the kernel picks one when `None` (the default).
    pub source: Option<IpAddr>,
    /// Whether only an accepted connection counts as alive. Defaults to `false`: a refused
    /// connection also proves the host is up.
    pub live_port_needed: bool,
}

impl Default for PingOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_PING_TIMEOUT,
            source: None,
            live_port_needed: false,
        }
    }
}

/// What happened on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingOutcome {
    /// The connection was accepted.
    Connected,
    /// The target answered with a reset: the host is up, nothing listens on the port.
    Refused,
    /// No answer within the timeout.
    TimedOut,
    /// The connection failed otherwise (no route, network unreachable, ...).
    Unreachable(String),
}

impl std::fmt::Display for PingOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connected => f.write_str("connected"),
            Self::Refused => f.write_str("connection refused"),
            Self::TimedOut => f.write_str("no answer in time"),
            Self::Unreachable(detail) => write!(f, "unreachable: {detail}"),
        }
    }
}

impl PingOutcome {
    /// Whether the target counts as alive: connected, or refused unless `live_port_needed`.
    pub fn is_alive(&self, live_port_needed: bool) -> bool {
        match self {
            Self::Connected => true,
            Self::Refused => !live_port_needed,
            Self::TimedOut | Self::Unreachable(_) => false,
        }
    }
}

/// A ping that could not even be attempted as asked.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    /// The source address is of the other family than the target.
    #[error("cannot ping {target} from {source_addr}: the source is not an {family} address")]
    SourceFamily {
        /// The target.
        target: SocketAddr,
        /// The source that was asked for.
        source_addr: IpAddr,
        /// The target's family.
        family: IpFamily,
    },
    /// The source address cannot be bound (this host does not own it).
    #[error("cannot ping from {source_addr}: this host cannot bind that address")]
    SourceBind {
        /// The source that was asked for.
        source_addr: IpAddr,
        /// Why the bind failed.
        #[source]
        error: io::Error,
    },
    /// No socket could be created (no IPv6 support, descriptor limit, ...).
    #[error("cannot create an {family} TCP socket")]
    Socket {
        /// The socket's family.
        family: IpFamily,
        /// Why it failed.
        #[source]
        error: io::Error,
    },
}

impl Classify for PingError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::SourceFamily { .. } => ErrorKind::WrongInput,
            Self::SourceBind { .. } | Self::Socket { .. } => ErrorKind::Environment,
        }
    }
}

/// Pings `target` over TCP as `options` say. The socket is always closed afterwards.
pub async fn tcp_ping(target: SocketAddr, options: &PingOptions) -> Result<PingOutcome, PingError> {
    let family = IpFamily::of(&target.ip());
    let socket = match family {
        IpFamily::V4 => TcpSocket::new_v4(),
        IpFamily::V6 => TcpSocket::new_v6(),
    }
    .map_err(|error| PingError::Socket { family, error })?;

    if let Some(source) = options.source {
        if IpFamily::of(&source) != family {
            return Err(PingError::SourceFamily {
                target,
                source_addr: source,
                family,
            });
        }
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|error| PingError::SourceBind {
                source_addr: source,
                error,
            })?;
    }

    let outcome = match tokio::time::timeout(options.timeout, socket.connect(target)).await {
        Err(_elapsed) => PingOutcome::TimedOut,
        Ok(Ok(_stream)) => PingOutcome::Connected,
        Ok(Err(err)) if err.kind() == io::ErrorKind::ConnectionRefused => PingOutcome::Refused,
        Ok(Err(err)) if err.kind() == io::ErrorKind::TimedOut => PingOutcome::TimedOut,
        Ok(Err(err)) => PingOutcome::Unreachable(err.to_string()),
    };
    // Display, not Debug: a log line reads "unreachable: No route to host (os error 113)",
    // not `Unreachable("No route to host (os error 113)")`.
    match options.source {
        Some(source) => tracing::debug!(%target, %source, %outcome, "tcp ping"),
        None => tracing::debug!(%target, %outcome, "tcp ping"),
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn ipv6_loopback() -> bool {
        std::net::UdpSocket::bind("[::1]:0").is_ok()
    }

    /// A port on `ip` on which nothing listens (bound, then released).
    fn closed_port(ip: &str) -> SocketAddr {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        addr
    }

    #[tokio::test]
    async fn a_listening_port_is_connected_and_alive() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let outcome = tcp_ping(listener.local_addr().unwrap(), &PingOptions::default())
            .await
            .unwrap();
        assert_eq!(outcome, PingOutcome::Connected);
        assert!(outcome.is_alive(true));
    }

    #[tokio::test]
    async fn a_refused_port_is_alive_unless_live_port_is_needed() {
        let outcome = tcp_ping(closed_port("127.0.0.1"), &PingOptions::default())
            .await
            .unwrap();
        assert_eq!(outcome, PingOutcome::Refused);
        assert!(outcome.is_alive(false));
        assert!(!outcome.is_alive(true));
    }

    #[tokio::test]
    async fn ipv6_targets_are_pinged_over_ipv6() {
        if !ipv6_loopback() {
            return;
        }
        let listener = TcpListener::bind("[::1]:0").unwrap();
        let options = PingOptions {
            source: Some("::1".parse().unwrap()),
            ..PingOptions::default()
        };
        let outcome = tcp_ping(listener.local_addr().unwrap(), &options)
            .await
            .unwrap();
        assert_eq!(outcome, PingOutcome::Connected);
    }

    #[tokio::test]
    async fn a_source_address_is_used_when_given() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        let options = PingOptions {
            source: Some("127.0.0.77".parse().unwrap()),
            ..PingOptions::default()
        };
        let accept = std::thread::spawn(move || listener.accept().map(|(_, peer)| peer));
        assert_eq!(
            tcp_ping(target, &options).await.unwrap(),
            PingOutcome::Connected
        );
        let peer = accept.join().unwrap().unwrap();
        assert_eq!(peer.ip().to_string(), "127.0.0.77");
    }

    #[tokio::test]
    async fn a_source_this_host_does_not_own_is_an_error_naming_it() {
        let options = PingOptions {
            source: Some("192.0.2.200".parse().unwrap()),
            ..PingOptions::default()
        };
        let err = tcp_ping(closed_port("127.0.0.1"), &options)
            .await
            .unwrap_err();
        assert!(matches!(err, PingError::SourceBind { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "cannot ping from 192.0.2.200: this host cannot bind that address"
        );
        assert_eq!(err.kind(), ErrorKind::Environment);
    }

    #[tokio::test]
    async fn a_source_of_the_other_family_is_an_error_not_ignored() {
        let options = PingOptions {
            source: Some("::1".parse().unwrap()),
            ..PingOptions::default()
        };
        let target = closed_port("127.0.0.1");
        let err = tcp_ping(target, &options).await.unwrap_err();
        assert!(matches!(err, PingError::SourceFamily { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!("cannot ping {target} from ::1: the source is not an IPv4 address")
        );
        assert_eq!(err.kind(), ErrorKind::WrongInput);
    }

    #[tokio::test]
    async fn a_silent_target_times_out_and_is_not_alive() {
        let silent = crate::testing::SilentTarget::new().unwrap();
        let options = PingOptions {
            timeout: Duration::from_millis(300),
            ..PingOptions::default()
        };
        let outcome = tcp_ping(silent.addr(), &options).await.unwrap();
        assert_eq!(outcome, PingOutcome::TimedOut);
        assert!(!outcome.is_alive(false));
    }
}
