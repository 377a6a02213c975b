//! Why a cluster IP procedure was refused or failed; each message names the address and
//! says what to do. Ganeti's words are kept where Ganeti has a message for the refusal.

use std::net::IpAddr;

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::netutils::PingError;
use gnt_core::policy::{IpFamily, PolicyError};

use crate::netdev::NetlinkError;

/// A cluster IP procedure that was refused or failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum MasterIpError {
    /// The address is not of the cluster's primary family.
    #[error(
        "the cluster IP {ip} is not an {family} address, and this node's cluster is {family}: the master sent another cluster's address"
    )]
    WrongFamily {
        /// The address.
        ip: IpAddr,
        /// The cluster's primary family.
        family: IpFamily,
    },
    /// The prefix length does not fit the family.
    #[error("invalid prefix length for the cluster IP")]
    Prefix(#[source] PolicyError),
    /// This node is not in its own ssconf.
    #[error(
        "this node ({0}) is not listed in its ssconf's node_primary_ips, so its primary address is unknown; `gnt cluster redist-conf` on the master sends the current ssconf"
    )]
    NotListed(String),
    /// No device of that name.
    #[error(
        "no network device '{0}' on this node: the cluster's master_netdev must name one of the master's devices (`ip link` lists them)"
    )]
    UnknownDevice(String),
    /// No device holds the primary address, so none is the default.
    #[error(
        "no network device of this node holds its primary address {0}, so there is no default device for the cluster IP: configure the primary address, or name a device in the cluster's master_netdev"
    )]
    NoPrimaryDevice(IpAddr),
    /// Something answers at the cluster IP (Ganeti: "master IP address configured on
    /// another machine").
    #[error(
        "the cluster IP {ip} answers already (on port {port}): it is configured on another machine; remove it there, then run `gnt cluster activate-master-ip` again"
    )]
    AnswersAlready {
        /// The address.
        ip: IpAddr,
        /// The port probed.
        port: u16,
    },
    /// The address is on another device than the one asked for (Ganeti: "master IP address
    /// configured on wrong device, can't shut it down").
    #[error(
        "the cluster IP {ip} is configured on the wrong device: on {found}, not on {netdev}; remove it by hand (`ip address del {ip}/{prefix} dev {found}`)"
    )]
    WrongDevice {
        /// The address.
        ip: IpAddr,
        /// Its prefix length there.
        prefix: u8,
        /// The device it is on.
        found: String,
        /// The device asked for.
        netdev: String,
    },
    /// The address is not on the device (Ganeti's words).
    #[error(
        "The master IP address is not up, not attempting to change its netmask: {ip} is not on {netdev}; `gnt cluster activate-master-ip` configures it with the new netmask"
    )]
    NotUp {
        /// The address.
        ip: IpAddr,
        /// The device asked for.
        netdev: String,
    },
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// The probe could not run.
    #[error("cannot probe the cluster IP {ip}")]
    Ping {
        /// The address.
        ip: IpAddr,
        /// Why.
        #[source]
        source: PingError,
    },
    /// The work on the blocking pool did not finish (the agent is stopping).
    #[error("the cluster IP work was interrupted; the agent is stopping: ask again once it runs")]
    Stopped,
}

impl Classify for MasterIpError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::WrongFamily { .. } | Self::Prefix(_) => ErrorKind::WrongInput,
            Self::UnknownDevice(_) => ErrorKind::UnknownEntity,
            Self::NotListed(_) | Self::NoPrimaryDevice(_) => ErrorKind::Environment,
            Self::AnswersAlready { .. } => ErrorKind::NotUnique,
            Self::WrongDevice { .. } | Self::NotUp { .. } => ErrorKind::WrongState,
            Self::Netlink(e) => e.kind(),
            Self::Ping { source, .. } => source.kind(),
            Self::Stopped => ErrorKind::Unavailable,
        }
    }
}
