//! ssconf: the small set of cluster facts every node keeps on disk, in Ganeti's format.
//!
//! Each key lives in a file `ssconf_<key>` in the state directory, one item per line, with
//! Ganeti's key names and encodings (`primary_ip_family` is `2` or `10`; `node_primary_ips`
//! lines are `name address` with bare IPv6), so Ganeti's own reader and an operator's `cat`
//! understand it.
//!
//! - [`SsconfKey`]: the 34 keys Ganeti knows; no other key can be written or read.
//! - [`SsconfSet`]: a complete set of values, with typed reads (cluster name, policy,
//!   master, node lists and addresses) and a typed constructor ([`ClusterFacts`]).
//! - [`SsconfStore`]: the on-disk store. Ganeti writes file by file, so a reader can see
//!   keys of two versions; here a whole set is replaced atomically (see the store's docs),
//!   while every `ssconf_<key>` path stays readable by Ganeti's reader.
//! - [`Published`]: a set with the configuration version (master epoch, serial) it was built from, which the store
//!   keeps in the generation's manifest (never as a 35th key), so a node knows, and tells
//!   the master, how current its set is.
//!
//! Limits as in Ganeti: a value (with its trailing newline) is at most 131072 bytes; a file
//! larger than that is an error naming it, not silently truncated (Ganeti's Haskell reader
//! truncates).

mod build;
mod key;
mod manifest;
mod order;
mod published;
mod set;
mod store;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use build::{CandidateFacts, ClusterFacts, NodeFacts};
pub use key::{FILE_PREFIX, SsconfKey};
pub use order::nice_cmp;
pub use published::{Published, SsconfVersion};
pub use set::SsconfSet;
pub use store::SsconfStore;

use crate::error::{Classify, ErrorKind};
use crate::fs_atomic::FsError;

/// Largest value, trailing newline included (Ganeti's `_MAX_SIZE`).
pub const MAX_VALUE_BYTES: usize = 128 * 1024;

/// Where a value came from, for error messages: a file on disk, or a key of a set received
/// or built in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file of a store.
    File(PathBuf),
    /// A key of an in-memory set.
    Key(SsconfKey),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "ssconf file {}", path.display()),
            Self::Key(key) => write!(f, "ssconf key '{key}'"),
        }
    }
}

impl Location {
    /// Problems in a file on disk are the host's; problems in a set are the caller's input.
    fn kind(&self) -> ErrorKind {
        match self {
            Self::File(_) => ErrorKind::Environment,
            Self::Key(_) => ErrorKind::WrongInput,
        }
    }
}

/// What can go wrong with ssconf.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SsconfError {
    /// A key that is not one of Ganeti's.
    #[error("unknown ssconf key '{0}'")]
    UnknownKey(String),
    /// A file named like ssconf whose key is not one of Ganeti's.
    #[error("unknown ssconf file {}: '{key}' is not an ssconf key", path.display())]
    UnknownFile {
        /// The file.
        path: PathBuf,
        /// The key its name spells.
        key: String,
    },
    /// A value or file over [`MAX_VALUE_BYTES`].
    #[error("{location} holds {size} bytes; ssconf allows at most {MAX_VALUE_BYTES}")]
    TooLarge {
        /// The value.
        location: Location,
        /// Its size in bytes.
        size: u64,
    },
    /// A value that does not parse.
    #[error("{location}, line {line}: {reason}")]
    Malformed {
        /// The value.
        location: Location,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A value that is required and absent.
    #[error("{location} is missing")]
    Missing {
        /// The absent value.
        location: Location,
    },
    /// A file-system operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// Another writer holds the lock for longer than the timeout.
    #[error("another process holds the ssconf lock {} (waited {waited:?}); retry, or find the stuck writer", path.display())]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long this writer waited.
        waited: Duration,
    },
    /// The set belongs to a different cluster than the node.
    #[error("this node belongs to cluster '{current}', not to '{offered}'")]
    ClusterMismatch {
        /// The node's cluster.
        current: String,
        /// The cluster the refused set names.
        offered: String,
    },
    /// The set is older than the node's: a master must never roll a node back.
    #[error(
        "this node's ssconf is at configuration serial {}, newer than the offered {}; is the master's configuration an older copy?",
        current.serial, offered.serial
    )]
    OlderSerial {
        /// The version of the node's set.
        current: SsconfVersion,
        /// The version of the refused set.
        offered: SsconfVersion,
    },
    /// The set comes from a master of an older epoch: a failover replaced that master.
    #[error(
        "this node's ssconf is of master epoch {}, newer than the offered {}: another master took over; this one must not act",
        current.epoch, offered.epoch
    )]
    OlderEpoch {
        /// The version of the node's set.
        current: SsconfVersion,
        /// The version of the refused set.
        offered: SsconfVersion,
    },
    /// The set names another master than the node's set of the same epoch: two
    /// failovers chose the same epoch, and the first to reach the node keeps it.
    #[error(
        "this node's ssconf of master epoch {epoch} names {current} as master, not {offered}: two master-failovers chose the same epoch; stop gnt-masterd on both and run 'gnt cluster master-failover --no-voting' on the one to keep (it takes a newer epoch)"
    )]
    EpochTaken {
        /// The epoch both sets are of.
        epoch: u64,
        /// The master of the node's set.
        current: String,
        /// The master of the refused set.
        offered: String,
    },
}

impl Classify for SsconfError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownKey(_) => ErrorKind::WrongInput,
            Self::TooLarge { location, .. }
            | Self::Malformed { location, .. }
            | Self::Missing { location } => location.kind(),
            Self::UnknownFile { .. } | Self::Fs(_) => ErrorKind::Environment,
            Self::LockTimeout { .. } => ErrorKind::Unavailable,
            Self::ClusterMismatch { .. }
            | Self::OlderSerial { .. }
            | Self::OlderEpoch { .. }
            | Self::EpochTaken { .. } => ErrorKind::WrongState,
        }
    }
}
