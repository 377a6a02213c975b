//! The master's refusals and failures. Node-add messages follow Ganeti's LUNodeAdd, each
//! saying what to fix.

use std::net::IpAddr;

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::join::JoinTokenError;
use gnt_core::netutils::ResolveError;
use gnt_core::ssconf::SsconfError;
use gnt_node_agent::join_client::JoinError;
use gnt_transports::TlsConfigError;

use crate::config::ConfigError;
use crate::pki::PkiError;
use crate::procedure::ProcedureError;

/// Why a join token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    /// Not a token at all.
    #[error(transparent)]
    Malformed(#[from] JoinTokenError),
    /// No token with that id.
    #[error("unknown join token '{0}'; create one with `gnt node token create`")]
    Unknown(String),
    /// The id exists but the secret is wrong.
    #[error("join token '{0}' does not match the stored one")]
    Mismatch(String),
    /// Expired.
    #[error("join token '{id}' expired at {at}; create a new one with `gnt node token create`")]
    Expired {
        /// The id.
        id: String,
        /// When, as UTC text.
        at: String,
    },
    /// Already used.
    #[error("join token '{id}' was already used to add {node}; tokens are single-use")]
    Used {
        /// The id.
        id: String,
        /// The node it added.
        node: String,
    },
}

/// A master operation that was refused or failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// A name is invalid.
    #[error("invalid {what} '{name}': {reason}")]
    InvalidName {
        /// Which name.
        what: &'static str,
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A name does not resolve in the cluster family.
    #[error("The given name ({name}) does not resolve: {source}")]
    Resolve {
        /// The name.
        name: String,
        /// Why.
        source: ResolveError,
    },
    /// The node exists already.
    #[error("Node {0} is already in the configuration")]
    NodeExists(String),
    /// No such node.
    #[error("Node {0} is not in the configuration; `gnt node list` shows the nodes")]
    UnknownNode(String),
    /// A hybrid cluster needs `-s`.
    #[error(
        "When using a IPv6 primary address, a valid IPv4 address must be given as secondary (-s/--secondary-ip)"
    )]
    SecondaryRequired,
    /// The secondary is not IPv4.
    #[error("Secondary IP ({0}) needs to be a valid IPv4 address")]
    SecondaryNotIpv4(String),
    /// An address is already used by another node.
    #[error(
        "New node ip address(es) conflict with existing node {node} ({address} is already its address)"
    )]
    AddressConflict {
        /// The node using it.
        node: String,
        /// The address.
        address: IpAddr,
    },
    /// Single- and dual-homing must match the master.
    #[error("{0}")]
    Homing(&'static str),
    /// The primary does not answer.
    #[error(
        "Node not reachable by ping: nothing answered at {address} port {port}; is gnt-noded running there, and does the name resolve to the right address?"
    )]
    PrimaryUnreachable {
        /// The address.
        address: IpAddr,
        /// The port.
        port: u16,
    },
    /// The secondary does not answer from the master's secondary.
    #[error(
        "Node secondary ip not reachable by TCP based ping to node daemon port: {address} port {port} from {source_addr}: {detail}"
    )]
    SecondaryUnreachable {
        /// The node's secondary.
        address: IpAddr,
        /// The port.
        port: u16,
        /// The master's secondary.
        source_addr: IpAddr,
        /// What happened.
        detail: String,
    },
    /// The join token was refused.
    #[error(transparent)]
    Token(#[from] TokenProblem),
    /// The Join failed.
    #[error("joining {node} failed")]
    Join {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: JoinError,
    },
    /// The node joined but does not answer over mutual TLS.
    #[error(
        "Can't get version information from node {node}: {detail}; it joined but was not added: on {node}, stop gnt-noded and empty its state directory, then retry"
    )]
    NoVersion {
        /// The node.
        node: String,
        /// What happened.
        detail: String,
    },
    /// The node speaks another protocol.
    #[error("Version mismatch master version {master}, node version {node_version} on {node}")]
    VersionMismatch {
        /// The node.
        node: String,
        /// Ours.
        master: u32,
        /// Its.
        node_version: u32,
    },
    /// The master cannot do this to itself.
    #[error("{0}")]
    MasterNode(&'static str),
    /// A timeout-class or duration argument is invalid.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The configuration failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The PKI failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// ssconf could not be built.
    #[error(transparent)]
    Ssconf(#[from] SsconfError),
    /// A procedure call could not be prepared.
    #[error(transparent)]
    Procedure(#[from] ProcedureError),
}

impl Classify for MasterError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidName { .. }
            | Self::SecondaryRequired
            | Self::SecondaryNotIpv4(_)
            | Self::Homing(_)
            | Self::InvalidArgument { .. } => ErrorKind::WrongInput,
            Self::Resolve { .. } => ErrorKind::Resolver,
            Self::NodeExists(_) => ErrorKind::AlreadyExists,
            Self::UnknownNode(_) => ErrorKind::UnknownEntity,
            Self::AddressConflict { .. } => ErrorKind::NotUnique,
            Self::PrimaryUnreachable { .. }
            | Self::SecondaryUnreachable { .. }
            | Self::NoVersion { .. } => ErrorKind::Environment,
            Self::Token(TokenProblem::Malformed(_)) => ErrorKind::WrongInput,
            Self::Token(_) => ErrorKind::Unauthenticated,
            Self::Join { source, .. } => source.kind(),
            Self::VersionMismatch { .. } | Self::MasterNode(_) => ErrorKind::WrongState,
            Self::Config(e) => e.kind(),
            Self::Pki(e) => e.kind(),
            Self::Tls(e) => e.kind(),
            Self::Ssconf(e) => e.kind(),
            Self::Procedure(e) => e.kind(),
        }
    }
}
