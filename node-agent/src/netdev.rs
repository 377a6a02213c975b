//! This host's network devices: their addresses, read and changed through rtnetlink, and
//! announcing an address on a device's link so that neighbours update their caches.
//!
//! - `netlink`: links and addresses over a `NETLINK_ROUTE` socket (what `ip link` and
//!   `ip address` do), without running `ip` or parsing its output;
//! - `announce`: gratuitous ARP on an `AF_PACKET` socket, unsolicited neighbour
//!   advertisements on an ICMPv6 raw socket;
//! - `packets`: the bytes of both, built and checked without any socket.
//!
//! It lives in the node agent, not in `gnt_core::netutils`, because only the agent changes
//! addresses (the cluster IP procedures, master-only like the others): the master itself only
//! reads which interfaces exist and what they hold, which `netutils::local` answers from
//! `getifaddrs(3)`. So the raw-socket and netlink dependencies stay out of every other
//! crate, and `gnt` and `gnt-masterd` never open such sockets. Everything here is
//! blocking (short system calls, and the announcement's pauses): callers run it on
//! tokio's blocking pool.

mod announce;
mod netlink;
mod packets;

use std::fmt;
use std::io;
use std::net::IpAddr;

use gnt_core::error::{Classify, ErrorKind};

pub(crate) use announce::announce;
pub(crate) use netlink::{Netlink, NetlinkError};

/// A network device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    /// The kernel's interface index.
    pub(crate) index: u32,
    /// Its name, e.g. `eth0`.
    pub(crate) name: String,
    /// Its Ethernet address, if it is an Ethernet device (loopback and tunnels have none:
    /// nothing is announced on them).
    pub(crate) mac: Option<[u8; 6]>,
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// An address configured on a device, as the kernel lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Assigned {
    /// The device's interface index.
    pub(crate) index: u32,
    /// The address.
    pub(crate) ip: IpAddr,
    /// Its prefix length.
    pub(crate) prefix: u8,
}

/// An announcement that could not be sent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AnnounceError {
    /// The device has no Ethernet address to announce.
    #[error("{0} has no Ethernet address: there is no neighbour cache to update on it")]
    NotEthernet(String),
    /// A socket could not be opened or used.
    #[error("cannot send {what} on {link}")]
    Send {
        /// What was being sent.
        what: &'static str,
        /// The device.
        link: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl Classify for AnnounceError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Environment
    }
}
