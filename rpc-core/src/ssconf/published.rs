//! A set together with the configuration serial it was built from: what the master sends
//! in WriteSsconf and Join, and what a node's store holds and reports.
//!
//! The serial lives beside the set, not in it: ssconf files keep Ganeti's 34 keys only
//! ([`SsconfKey`](super::SsconfKey) refuses others), so the store keeps it in the
//! generation's manifest, published with the set by the same rename.

use super::SsconfSet;

/// An ssconf set and its configuration serial.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// The set.
    pub set: SsconfSet,
    /// The serial of the master's configuration the set was built from; 0 for a set that
    /// carries none (written before serials existed, or by Ganeti).
    pub serial: u64,
}

impl Published {
    /// `set`, built from the configuration with serial `serial`.
    pub fn new(set: SsconfSet, serial: u64) -> Self {
        Self { set, serial }
    }
}
