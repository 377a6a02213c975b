//! Why `gnt cluster init` refused or failed, in Ganeti's words where Ganeti has them.

use std::net::IpAddr;
use std::path::PathBuf;

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::fs_atomic::FsError;
use gnt_core::netutils::{InterfaceError, NameError, PingError};
use gnt_core::node::NodeAddrsError;
use gnt_transports::join::{IssueError, StateError};

use crate::config::ConfigError;
use crate::pki::PkiError;

/// Why init refused or failed. Each message says what to fix.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A cluster configuration exists (Ganeti's words).
    #[error("Cluster is already initialised (configuration in {}); `gnt cluster info` shows it", dir.display())]
    AlreadyInitialised {
        /// The master directory.
        dir: PathBuf,
    },
    /// The local node agent is already a member.
    #[error(
        "this host's node agent already belongs to cluster '{0}'; remove it from that cluster first"
    )]
    AlreadyMember(String),
    /// The master directory holds leftovers.
    #[error("{} is not empty; remove its contents (left by an earlier cluster) and retry", dir.display())]
    DirtyDirectory {
        /// The master directory.
        dir: PathBuf,
    },
    /// A name is invalid or does not resolve in the family.
    #[error(transparent)]
    Name(#[from] NameError),
    /// This host's name resolves to loopback (Ganeti's words).
    #[error("This host's IP ({0}) resolves to a loopback address. Please fix DNS or /etc/hosts.")]
    Loopback(IpAddr),
    /// This host does not own the address its name resolves to (Ganeti's words).
    #[error(
        "Inconsistency: this host's name ({name}) resolves to {ip}, but this IP address does not belong to this host; fix DNS or /etc/hosts, or configure the address"
    )]
    NotOwned {
        /// The name.
        name: String,
        /// The address.
        ip: IpAddr,
    },
    /// Something answers on the cluster IP (Ganeti's words).
    #[error(
        "Cluster IP already active: {ip} ({name}) answers on port {port}; the cluster name must resolve to an address nothing uses"
    )]
    ClusterIpActive {
        /// The cluster name.
        name: String,
        /// Its address.
        ip: IpAddr,
        /// The port probed.
        port: u16,
    },
    /// A hybrid cluster needs `-s` (Ganeti's words).
    #[error(
        "When using a IPv6 primary address, a valid IPv4 address must be given as secondary (-s/--secondary-ip)"
    )]
    SecondaryRequired,
    /// The secondary is not IPv4 (Ganeti's words).
    #[error("Secondary IP address ({0}) has to be a valid IPv4 address.")]
    SecondaryNotIpv4(String),
    /// This host does not own the secondary (Ganeti's words).
    #[error("You gave {0} as secondary IP, but it does not belong to this host.")]
    SecondaryNotOwned(IpAddr),
    /// The netmask does not fit the family (Ganeti's words).
    #[error("CIDR netmask ({netmask}) not valid for IPv{version}: use 1 to {}", if *version == 4 { 32 } else { 128 })]
    Netmask {
        /// The netmask.
        netmask: u32,
        /// The IP version.
        version: u8,
    },
    /// `--master-netdev` names no device of this host.
    #[error("invalid --master-netdev: {0}; give a device of this host (`ip link` lists them)")]
    MasterNetdev(#[source] InterfaceError),
    /// This host's interfaces cannot be listed.
    #[error(transparent)]
    Interfaces(InterfaceError),
    /// No device holds the master's primary address, so none is the default.
    #[error(
        "no network device of this host holds its primary address {0}, so there is no default device for the cluster IP; give one with --master-netdev"
    )]
    NoPrimaryDevice(IpAddr),
    /// The cluster IP probe could not run.
    #[error("cannot probe the cluster IP")]
    Ping(#[source] PingError),
    /// The PKI could not be created.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The configuration could not be written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The node state could not be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// Node addresses that break the policy's rule otherwise (a defect: the primary is
    /// resolved in the policy's family).
    #[error(transparent)]
    Addresses(NodeAddrsError),
    /// The master's own node certificate could not be issued.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// A file operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A refusal about this host's name, which the operator did not type: where it came
    /// from, and how to give the right one.
    #[error(
        "{source}; this host's name '{name}' comes from {origin}: give the name it has in DNS or /etc/hosts with --node-name"
    )]
    ImplicitName {
        /// The name.
        name: String,
        /// Where it came from.
        origin: NameOrigin,
        /// The refusal.
        source: Box<InitError>,
    },
}

/// Where `gnt cluster init` took this host's name from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameOrigin {
    /// `--node-name`.
    Flag,
    /// `$GNT_HOSTNAME`.
    Environment,
    /// The system host name.
    System,
}

impl std::fmt::Display for NameOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Flag => "--node-name",
            Self::Environment => "$GNT_HOSTNAME",
            Self::System => "the system host name (`hostname`)",
        })
    }
}

impl Classify for InitError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::AlreadyInitialised { .. }
            | Self::AlreadyMember(_)
            | Self::DirtyDirectory { .. } => ErrorKind::WrongState,
            Self::SecondaryRequired | Self::SecondaryNotIpv4(_) | Self::Netmask { .. } => {
                ErrorKind::WrongInput
            }
            Self::Name(e) => e.kind(),
            Self::Loopback(_)
            | Self::NotOwned { .. }
            | Self::SecondaryNotOwned(_)
            | Self::NoPrimaryDevice(_) => ErrorKind::Environment,
            Self::MasterNetdev(e) | Self::Interfaces(e) => e.kind(),
            Self::ClusterIpActive { .. } => ErrorKind::NotUnique,
            Self::Ping(e) => e.kind(),
            Self::Pki(e) => e.kind(),
            Self::Config(e) => e.kind(),
            Self::State(e) => e.kind(),
            Self::Issue(_) | Self::Addresses(_) => ErrorKind::Internal,
            Self::Fs(e) => e.kind(),
            Self::ImplicitName { source, .. } => source.kind(),
        }
    }
}

/// The policy's address rule, refused in Ganeti's init words.
impl From<NodeAddrsError> for InitError {
    fn from(error: NodeAddrsError) -> Self {
        match error {
            NodeAddrsError::SecondaryRequired { .. } => Self::SecondaryRequired,
            NodeAddrsError::SecondaryNotIpv4(text) => Self::SecondaryNotIpv4(text),
            other => Self::Addresses(other),
        }
    }
}
