//! A set together with the version of the master's configuration it was built from: what
//! the master sends in WriteSsconf and Join, and what a node's store holds and reports.
//!
//! The version lives beside the set, not in it: ssconf files keep Ganeti's 34 keys only
//! ([`SsconfKey`](super::SsconfKey) refuses others), so the store keeps it in the
//! generation's manifest, published with the set by the same rename.

use std::fmt;

use super::SsconfSet;

/// Which configuration a set was built from: the master's term (`epoch`, raised by every
/// master failover) and the configuration serial within it. Versions order by epoch first,
/// so a set of a newer master replaces any set of an older one, whatever their serials
/// (an old master may have distributed a serial its successor never saw).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SsconfVersion {
    /// The master epoch; 0 for a set that carries none (written before epochs existed).
    pub epoch: u64,
    /// The configuration serial; 0 for a set that carries none (or that Ganeti wrote).
    pub serial: u64,
}

impl SsconfVersion {
    /// Serial `serial` of master epoch `epoch`.
    pub fn new(epoch: u64, serial: u64) -> Self {
        Self { epoch, serial }
    }
}

impl fmt::Display for SsconfVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "serial {} of master epoch {}", self.serial, self.epoch)
    }
}

/// An ssconf set and the version of the configuration it was built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// The set.
    pub set: SsconfSet,
    /// The serial of the master's configuration the set was built from; 0 for a set that
    /// carries none (written before serials existed, or by Ganeti).
    pub serial: u64,
    /// The master epoch of that configuration; 0 for a set that carries none.
    pub epoch: u64,
}

impl Published {
    /// `set`, built from the configuration of version `version`.
    pub fn new(set: SsconfSet, version: SsconfVersion) -> Self {
        Self {
            set,
            serial: version.serial,
            epoch: version.epoch,
        }
    }

    /// The version of the configuration the set was built from.
    pub fn version(&self) -> SsconfVersion {
        SsconfVersion::new(self.epoch, self.serial)
    }
}
