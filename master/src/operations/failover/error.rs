//! Why a `gnt cluster master-failover` was refused or failed: one line each, saying what
//! to do (Ganeti's words where Ganeti has them).

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::fs_atomic::FsError;
use gnt_core::netutils::Hostname;
use gnt_transports::TlsConfigError;
use gnt_transports::join::{MasterCopyError, StateError};

use crate::config::ConfigError;
use crate::error::MasterError;

/// Why a failover was refused or failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    /// This host is not a member of a cluster.
    #[error("this host is not a member of a cluster (its gnt-noded waits for a Join)")]
    NotMember,
    /// This node is the master already, and every node that answered agrees (Ganeti's
    /// words).
    #[error(
        "This commands must be run on the node where you want the new master to be. {0} is already the master"
    )]
    AlreadyMaster(Hostname),
    /// This node holds no master copy.
    #[error(
        "this node is not a master candidate (it holds no master copy); only candidates can become master: {candidates}"
    )]
    NotCandidate {
        /// The candidates ssconf lists.
        candidates: String,
    },
    /// Not enough nodes answered.
    #[error(
        "master-failover with voting needs a majority of the online nodes to answer, and {answered} of {total} did (silent: {silent}); if the master is gone for good and cannot come back, use --no-voting"
    )]
    NoMajority {
        /// Nodes that answered.
        answered: usize,
        /// Online nodes.
        total: usize,
        /// The nodes that did not answer.
        silent: String,
    },
    /// The nodes name another master than this node believes in (Ganeti's words).
    #[error(
        "I have a wrong configuration, I believe the master is {mine} but the other nodes voted {voted}. Please resync the configuration of this node."
    )]
    WrongConfiguration {
        /// What this node's ssconf says.
        mine: Hostname,
        /// What most nodes said.
        voted: String,
    },
    /// The master still acts.
    #[error(
        "the master {0} is alive and its gnt-masterd runs: a failover would leave two masters; stop gnt-masterd on {0} first (or run the failover there to keep it), then run this again"
    )]
    MasterAlive(Hostname),
    /// A newer master exists already.
    #[error(
        "{node} holds the ssconf of master epoch {epoch}, newer than this node's copy (epoch {mine}): another failover happened; this node's copy is out of date"
    )]
    NewerEpoch {
        /// The node that showed it.
        node: Hostname,
        /// Its epoch.
        epoch: u64,
        /// This node's copy's.
        mine: u64,
    },
    /// A failover to this very node was cut short after it reached some nodes.
    #[error(
        "{node} holds the ssconf of master epoch {epoch} naming this node as master: a failover to this node was interrupted after it reached some nodes; start gnt-masterd here (it brings the other nodes up to date), or run this again with --no-voting"
    )]
    InterruptedHere {
        /// The node that showed it.
        node: Hostname,
        /// Its epoch.
        epoch: u64,
    },
    /// A copy holds no usable configuration.
    #[error("the master copy of {node} holds no usable configuration")]
    BadCopy {
        /// The node.
        node: Hostname,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// This node's state.
    #[error(transparent)]
    State(#[from] StateError),
    /// This node's copy.
    #[error(transparent)]
    Copy(#[from] MasterCopyError),
    /// TLS material.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// A file.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The master's operations.
    #[error(transparent)]
    Master(#[from] MasterError),
}

impl Classify for FailoverError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotMember
            | Self::AlreadyMaster(_)
            | Self::NotCandidate { .. }
            | Self::WrongConfiguration { .. }
            | Self::MasterAlive(_)
            | Self::NewerEpoch { .. }
            | Self::InterruptedHere { .. } => ErrorKind::WrongState,
            Self::NoMajority { .. } => ErrorKind::Unavailable,
            Self::BadCopy { .. } => ErrorKind::Environment,
            Self::State(e) => e.kind(),
            Self::Copy(e) => e.kind(),
            Self::Tls(e) => e.kind(),
            Self::Fs(e) => e.kind(),
            Self::Config(e) => e.kind(),
            Self::Master(e) => e.kind(),
        }
    }
}
