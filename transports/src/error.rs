//! Errors of listeners, connectors and TLS configuration, each naming the address, path or
//! file it is about and, where an operator can act, what to do.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::netutils::ResolveError;
use gnt_core::policy::IpPolicy;

use crate::ListenAddr;

/// A listener that cannot be set up.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Another socket holds the address and port.
    #[error(
        "cannot listen on {addr}: port {} is in use by {}", addr.port(),
        holder.as_ref().map_or_else(|| "another program (`ss -ltnp` names it)".to_owned(), |h| format!("{h}; stop it, or give this daemon another port"))
    )]
    AddressInUse {
        /// The address asked for.
        addr: SocketAddr,
        /// The process listening on the port, when this host says.
        holder: Option<gnt_core::netutils::PortHolder>,
    },
    /// The address is not configured on this host.
    #[error("cannot listen on {addr}: this host does not have the address {}", addr.ip())]
    AddressNotOwned {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// IPv6 is disabled or unsupported on this host.
    #[error(
        "cannot listen on {addr}: IPv6 is not available on this host (disabled, or not supported by the kernel); a hybrid IPv6/IPv4 cluster needs it"
    )]
    Ipv6Unavailable {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address does not fit the cluster's policy.
    #[error("cannot listen on {addr}: the cluster is {policy}; bind {} or one of this host's {} addresses", policy.bind_wildcard(), policy.primary_family())]
    PolicyForbids {
        /// The address asked for.
        addr: SocketAddr,
        /// The cluster's policy.
        policy: IpPolicy,
    },
    /// A Unix socket path longer than the kernel allows.
    #[error("Unix socket path {} is {len} bytes long; the kernel allows at most {max}", path.display())]
    UnixPathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The directory of a Unix socket is missing, not a directory, or not writable.
    #[error("cannot create Unix socket {}: its directory {} {reason}", path.display(), dir.display())]
    UnixDirectory {
        /// The socket path.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
        /// What is wrong with the directory.
        reason: &'static str,
    },
    /// A live process already listens on the Unix socket path.
    #[error("another process is listening on {}; stop it first", path.display())]
    UnixInUse {
        /// The path.
        path: PathBuf,
    },
    /// The Unix socket path is taken by something that is not a socket.
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    UnixNotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Any other failure, with the operation and the address.
    #[error("cannot {action} {addr}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        addr: ListenAddr,
        /// The system's error.
        #[source]
        source: io::Error,
    },
}

impl ListenError {
    /// This error, a port in use naming the process that holds it (read from `/proc`, as
    /// `ss -p` does). The lookup reads every process's descriptors, so it is made once the
    /// error is to be reported, not on every try of a caller waiting for the port.
    pub(crate) fn naming_port_holder(self) -> Self {
        match self {
            Self::AddressInUse { addr, holder: None } => Self::AddressInUse {
                addr,
                holder: gnt_core::netutils::port_holder(addr.port()),
            },
            other => other,
        }
    }
}

impl Classify for ListenError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::PolicyForbids { .. } | Self::UnixPathTooLong { .. } => ErrorKind::WrongInput,
            Self::AddressInUse { .. } | Self::UnixInUse { .. } => ErrorKind::NotUnique,
            Self::AddressNotOwned { .. }
            | Self::Ipv6Unavailable { .. }
            | Self::UnixDirectory { .. }
            | Self::UnixNotASocket { .. }
            | Self::Io { .. } => ErrorKind::Environment,
        }
    }
}

/// Why one connection attempt failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptFailure {
    /// The peer answered with a reset: nothing listens there.
    Refused,
    /// No answer in time.
    TimedOut,
    /// Any other error (no route, network unreachable, ...), as the system words it.
    Other(String),
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused => f.write_str("connection refused"),
            Self::TimedOut => f.write_str("timed out"),
            Self::Other(text) => f.write_str(text),
        }
    }
}

impl From<&io::Error> for AttemptFailure {
    fn from(err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => Self::Refused,
            io::ErrorKind::TimedOut => Self::TimedOut,
            _ => Self::Other(err.to_string()),
        }
    }
}

/// A connection that could not be made.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The name did not resolve as the policy requires.
    #[error("cannot connect to {target}")]
    Resolve {
        /// What was dialled.
        target: String,
        /// Why the name did not resolve.
        #[source]
        source: ResolveError,
    },
    /// The policy forbids dialling the address.
    #[error("cannot connect to {addr}: the cluster is IPv4-only and never dials IPv6")]
    PolicyForbids {
        /// The address.
        addr: SocketAddr,
    },
    /// Every address was tried and none answered.
    #[error("cannot connect to {target}: {}", describe_attempts(attempts))]
    Failed {
        /// What was dialled.
        target: String,
        /// Each address tried, and how it failed.
        attempts: Vec<(SocketAddr, AttemptFailure)>,
    },
    /// The overall connect timeout expired.
    #[error(
        "cannot connect to {target}: no connection within {timeout:?}{}",
        attempts_suffix(attempts)
    )]
    TimedOut {
        /// What was dialled.
        target: String,
        /// The timeout.
        timeout: Duration,
        /// Attempts that had failed before the timeout.
        attempts: Vec<(SocketAddr, AttemptFailure)>,
    },
    /// A Unix socket could not be reached.
    #[error("cannot connect to Unix socket {}: {}", path.display(), AttemptFailure::from(source))]
    Unix {
        /// The socket path.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The in-memory server is gone.
    #[error("cannot connect in memory: the server has stopped")]
    MemoryClosed,
    /// The TLS handshake failed: the peer's certificate was not trusted, or ours refused.
    #[error("TLS handshake with {target} failed")]
    Tls {
        /// What was dialled.
        target: String,
        /// The handshake error (a rustls error inside).
        #[source]
        source: io::Error,
    },
    /// The TLS configuration cannot be used for this target.
    #[error("cannot connect to {target} with TLS: {reason}")]
    TlsSetup {
        /// What was dialled.
        target: String,
        /// Why.
        reason: String,
    },
}

impl ConnectError {
    /// Whether every failure was a refusal: the host is up, nothing listens.
    pub fn is_refused(&self) -> bool {
        match self {
            Self::Failed { attempts, .. } => {
                !attempts.is_empty() && attempts.iter().all(|(_, f)| *f == AttemptFailure::Refused)
            }
            Self::Unix { source, .. } => source.kind() == io::ErrorKind::ConnectionRefused,
            _ => false,
        }
    }

    /// Whether the node presented a self-signed certificate instead of one of the
    /// cluster's: it is not a member (it left, or waits for a Join).
    pub fn is_not_a_member(&self) -> bool {
        matches!(self, Self::Tls { source, .. } if crate::tls::is_not_a_member(source))
    }
}

impl Classify for ConnectError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Resolve { source, .. } => source.kind(),
            Self::PolicyForbids { .. } | Self::TlsSetup { .. } => ErrorKind::WrongInput,
            Self::TimedOut { .. } => ErrorKind::Timeout,
            Self::Tls { .. } => ErrorKind::Unauthenticated,
            // A socket whose mode keeps this user out: retrying will not help, root will.
            Self::Unix { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                ErrorKind::PermissionDenied
            }
            Self::Failed { .. } | Self::Unix { .. } | Self::MemoryClosed => ErrorKind::Unavailable,
        }
    }
}

fn describe_attempts(attempts: &[(SocketAddr, AttemptFailure)]) -> String {
    match attempts {
        [] => "no address to try".to_owned(),
        [(_, only)] => only.to_string(),
        many => many
            .iter()
            .map(|(addr, failure)| format!("{addr}: {failure}"))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn attempts_suffix(attempts: &[(SocketAddr, AttemptFailure)]) -> String {
    if attempts.is_empty() {
        String::new()
    } else {
        format!(" ({})", describe_attempts(attempts))
    }
}

/// A TLS configuration that cannot be loaded.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A file cannot be read.
    #[error("cannot read the {what} {}", path.display())]
    Read {
        /// What the file should hold: "CA certificate", "certificate", "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// A file holds no usable PEM block of the expected kind.
    #[error("{} holds no {what} in PEM format{}", path.display(), detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    NoPem {
        /// What it should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM parser said, if it said anything.
        detail: Option<String>,
    },
    /// The private key does not belong to the certificate.
    #[error("the private key {} does not belong to the certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused a certificate, key or CA.
    #[error("invalid {what} in {}: {reason}", path.display())]
    Invalid {
        /// What was refused.
        what: &'static str,
        /// The file it came from.
        path: PathBuf,
        /// rustls' reason.
        reason: String,
    },
}

impl Classify for TlsConfigError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Read { .. } => ErrorKind::Environment,
            Self::NoPem { .. } | Self::KeyMismatch { .. } | Self::Invalid { .. } => {
                ErrorKind::WrongInput
            }
        }
    }
}

/// A server that failed while serving.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// tonic's server failed on a listener.
    #[error("the gRPC server on {addr} failed")]
    Server {
        /// The listener.
        addr: ListenAddr,
        /// tonic's error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The reflection service refused a descriptor set (a build defect).
    #[error("cannot set up server reflection: {0}")]
    Reflection(String),
    /// The server task was cancelled or panicked.
    #[error("the gRPC server task ended abnormally")]
    Aborted,
}

impl Classify for ServeError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Server { .. } => ErrorKind::Unavailable,
            Self::Reflection(_) | Self::Aborted => ErrorKind::Internal,
        }
    }
}
