//! The lab: real multi-host topologies for tests, built from Linux network namespaces.
//!
//! Each host is a network namespace with its own loopback and an interface `eth0` on the
//! primary network; hosts given a secondary address also get `eth1` on a separate secondary
//! network (Ganeti's replication network). Each interface is the end of a veth pair whose
//! other end is a port of that network's bridge. The bridges live in a namespace of their
//! own, so the machine's own network is never touched and nothing in the lab has a route
//! out of it: the only addresses a test can reach are the lab's.
//!
//! Each host gets the IPv4 and/or IPv6 address asked for (IPv6 without duplicate address
//! detection, so it is usable at once), its own `/etc/hosts` naming every lab host
//! (`name.lab.test`), a `resolv.conf` pointing at its own loopback, and any sysctls asked
//! for. `ip netns exec` shows these files as `/etc/hosts` and `/etc/resolv.conf` to the
//! processes it starts ([`LabHost::command`]); code in the test process itself runs inside
//! a host through [`LabHost::block_on`] and [`LabHost::spawn`], on a thread that has joined
//! the host's namespace, and resolves through [`LabHost::resolver`].
//!
//! Faults: [`Lab::cut_link`] unplugs one of a host's interfaces from its bridge; [`Lab::blackhole`] makes one
//! address unreachable from one host without any answer (a neighbour entry pointing at a
//! MAC address no host has), which is what a broken IPv6 path looks like.
//!
//! Names are unique per run (`gntlab-<pid>-<n>-<host>`); everything is removed when the
//! [`Lab`] is dropped, also on panic, and a new lab first sweeps namespaces left by test
//! processes that no longer exist. Building a lab needs root.

use std::io;
use std::net::IpAddr;

mod build;
mod cleanup;
mod command;
mod faults;
mod host;
mod inside;

pub use build::{HostSpec, LabBuilder};
pub use cleanup::{remove_labs_of, sweep_leftovers};
pub use host::LabHost;
pub use inside::{HostTask, LabProcess};

/// Prefix of every lab namespace.
const PREFIX: &str = "gntlab";
/// The domain of lab host names.
pub const DOMAIN: &str = "lab.test";

/// A lab that cannot be built or changed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Namespaces need privileges.
    #[error("the lab needs root (network namespaces, veth pairs, bridges); run the tests as root")]
    NotRoot,
    /// A command failed.
    #[error("lab command `{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on standard error.
        stderr: String,
    },
    /// A file or system call failed.
    #[error("lab: cannot {action}")]
    Io {
        /// What was being done.
        action: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No such host.
    #[error("the lab has no host '{0}'")]
    UnknownHost(String),
}

/// One of the two lab networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// `eth0` on bridge `br0`: the primary network.
    Primary,
    /// `eth1` on bridge `br1`: the secondary (IPv4) network.
    Secondary,
}

impl Network {
    fn bridge(self) -> &'static str {
        match self {
            Self::Primary => "br0",
            Self::Secondary => "br1",
        }
    }

    fn interface(self) -> &'static str {
        match self {
            Self::Primary => "eth0",
            Self::Secondary => "eth1",
        }
    }

    fn port_prefix(self) -> &'static str {
        match self {
            Self::Primary => "p",
            Self::Secondary => "s",
        }
    }
}

/// A running lab; dropping it removes it.
#[derive(Debug)]
pub struct Lab {
    id: String,
    switch: String,
    hosts: Vec<LabHost>,
    aliases: Vec<(String, Vec<IpAddr>)>,
}

impl Lab {
    /// Starts describing a lab.
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<&LabHost, LabError> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| LabError::UnknownHost(name.to_owned()))
    }

    /// Every host.
    pub fn hosts(&self) -> &[LabHost] {
        &self.hosts
    }

    /// The lab's unique id (the prefix of its namespace names).
    pub fn id(&self) -> &str {
        &self.id
    }
}
