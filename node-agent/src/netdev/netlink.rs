//! Links and addresses through a `NETLINK_ROUTE` socket: dumps of the links and of the
//! addresses (`RTM_GETLINK`, `RTM_GETADDR`), and adding or deleting one address
//! (`RTM_NEWADDR`, `RTM_DELADDR`), each change acknowledged by the kernel or failed with
//! its errno. One request at a time, blocking; the socket lives in the calling thread's
//! network namespace, like the agent's listener.

use std::io;
use std::net::IpAddr;

use gnt_core::error::{Classify, ErrorKind};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope, CacheInfo,
};
use netlink_packet_route::link::{LinkAttribute, LinkLayerType, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

use super::{Assigned, Link};

/// An address lifetime that never ends (`INFINITY_LIFE_TIME`).
const FOREVER: u32 = u32::MAX;

/// Room for one datagram of a dump: the kernel fills at most 32 KiB per datagram.
const RECEIVE_BUFFER: usize = 64 * 1024;

/// A netlink request that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NetlinkError {
    /// The socket could not be opened, or a request could not be sent or answered.
    #[error("rtnetlink: cannot {action}")]
    Socket {
        /// What was being done.
        action: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The kernel refused a request (its errno).
    #[error("rtnetlink: the kernel refused the request")]
    Kernel(#[source] io::Error),
    /// The kernel refused a change.
    #[error("cannot {action} {ip}/{prefix} on {link}")]
    Refused {
        /// `add` or `delete`.
        action: &'static str,
        /// The address.
        ip: IpAddr,
        /// Its prefix length.
        prefix: u8,
        /// The device.
        link: String,
        /// The kernel's errno.
        #[source]
        source: io::Error,
    },
    /// The kernel answered with something that does not parse.
    #[error("rtnetlink: unreadable answer from the kernel: {0}")]
    Decode(String),
}

impl Classify for NetlinkError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Kernel(source) | Self::Refused { source, .. }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                ErrorKind::PermissionDenied
            }
            _ => ErrorKind::Environment,
        }
    }
}

/// An open `NETLINK_ROUTE` socket.
pub(crate) struct Netlink {
    socket: Socket,
    sequence: u32,
}

impl Netlink {
    /// Opens a socket to the kernel.
    pub(crate) fn open() -> Result<Self, NetlinkError> {
        let socket_error = |action| move |source| NetlinkError::Socket { action, source };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(socket_error("open a socket"))?;
        socket
            .bind_auto()
            .map_err(socket_error("bind its socket"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(socket_error("connect to the kernel"))?;
        Ok(Self {
            socket,
            sequence: 0,
        })
    }

    /// Every network device.
    pub(crate) fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        self.dump(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            |answer| match answer {
                RouteNetlinkMessage::NewLink(link) => Some(link_of(link)),
                _ => None,
            },
        )
    }

    /// Every address of every device, both families.
    pub(crate) fn addresses(&mut self) -> Result<Vec<Assigned>, NetlinkError> {
        let request = RouteNetlinkMessage::GetAddress(AddressMessage::default());
        self.dump(request, |answer| match answer {
            RouteNetlinkMessage::NewAddress(address) => assigned_of(&address),
            _ => None,
        })
    }

    /// The entries of the dump `request` asks for, as `pick` reads them.
    fn dump<T>(
        &mut self,
        request: RouteNetlinkMessage,
        pick: impl FnMut(RouteNetlinkMessage) -> Option<T>,
    ) -> Result<Vec<T>, NetlinkError> {
        Ok(self
            .request(request, NLM_F_DUMP)?
            .into_iter()
            .filter_map(pick)
            .collect())
    }

    /// Adds `ip/prefix` to `link`; refused if the device has it already. An IPv6 address
    /// is added without duplicate address detection (`IFA_F_NODAD`), so it is usable at
    /// once: the caller has checked that nothing answers at it, and DAD would keep it
    /// tentative (not bindable, unannounced) for a second or more. It is also added
    /// deprecated (valid for ever, preferred for no time): it takes connections and can be
    /// bound, but the kernel never picks it as the source of a connection of its own.
    /// Otherwise it would: Linux caps the longest-matching-prefix rule of source selection
    /// at an address's prefix length, so a /128 beats the host's own /64 towards every
    /// neighbour, and the master's connections to its nodes, started from the cluster IP,
    /// hung when the address moved away (the lab test caught it: a `verify` right after
    /// `deactivate-master-ip` found a node silent for 20 s).
    pub(crate) fn add(&mut self, link: &Link, ip: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
        let message = address_message(link, ip, prefix, true);
        self.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
        .map_err(|error| refused(error, "add", link, ip, prefix))
    }

    /// Deletes `ip/prefix` from `link`.
    pub(crate) fn delete(
        &mut self,
        link: &Link,
        ip: IpAddr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let message = address_message(link, ip, prefix, false);
        self.request(RouteNetlinkMessage::DelAddress(message), NLM_F_ACK)
            .map(drop)
            .map_err(|error| refused(error, "delete", link, ip, prefix))
    }

    /// Sends `message` with `flags` and collects the kernel's answers: the messages of a
    /// dump until its end, or nothing until the acknowledgement of a change.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let mut packet =
            NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(message));
        packet.header.flags = NLM_F_REQUEST | flags;
        packet.header.sequence_number = sequence;
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket
            .send(&bytes, 0)
            .map_err(|source| NetlinkError::Socket {
                action: "send a request",
                source,
            })?;

        let mut answers = Vec::new();
        let mut buffer = Vec::with_capacity(RECEIVE_BUFFER);
        loop {
            buffer.clear();
            let size = self
                .socket
                .recv(&mut buffer, 0)
                .map_err(|source| NetlinkError::Socket {
                    action: "receive an answer",
                    source,
                })?;
            let mut offset = 0;
            while offset < size.min(buffer.len()) {
                let answer: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&buffer[offset..])
                        .map_err(|e| NetlinkError::Decode(e.to_string()))?;
                let length = answer.header.length as usize;
                if length == 0 {
                    break;
                }
                // Messages are padded to 4 bytes within a datagram.
                offset += (length + 3) & !3;
                if answer.header.sequence_number != sequence {
                    continue;
                }
                match answer.payload {
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    NetlinkPayload::Done(_) => return Ok(answers),
                    // An error message without a code is the acknowledgement.
                    NetlinkPayload::Error(error) => match error.code {
                        None => return Ok(answers),
                        Some(_) => return Err(NetlinkError::Kernel(error.to_io())),
                    },
                    _ => {}
                }
            }
        }
    }
}

/// A failed change, named: the kernel's errno as the cause.
fn refused(
    error: NetlinkError,
    action: &'static str,
    link: &Link,
    ip: IpAddr,
    prefix: u8,
) -> NetlinkError {
    match error {
        NetlinkError::Kernel(source) => NetlinkError::Refused {
            action,
            ip,
            prefix,
            link: link.name.clone(),
            source,
        },
        other => other,
    }
}

/// `RTM_NEWADDR`/`RTM_DELADDR`'s message for `ip/prefix` on `link`; `new` sets the flags of
/// an added address.
fn address_message(link: &Link, ip: IpAddr, prefix: u8, new: bool) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message.header.prefix_len = prefix;
    message.header.scope = AddressScope::Universe;
    message.header.index = link.index;
    // As `ip address add` does: the local address, and the same as the (peer) address.
    message.attributes.push(AddressAttribute::Local(ip));
    message.attributes.push(AddressAttribute::Address(ip));
    if new && ip.is_ipv6() {
        message.header.flags = AddressHeaderFlags::Nodad;
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        let mut lifetimes = CacheInfo::default();
        lifetimes.ifa_valid = FOREVER;
        lifetimes.ifa_preferred = 0;
        message
            .attributes
            .push(AddressAttribute::CacheInfo(lifetimes));
    }
    message
}

fn link_of(message: LinkMessage) -> Link {
    let ethernet = message.header.link_layer_type == LinkLayerType::Ether;
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        mac: None,
    };
    for attribute in message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Address(bytes) if ethernet => {
                link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok();
            }
            _ => {}
        }
    }
    link
}

/// The address of a dump entry: `IFA_LOCAL` where there is one (IPv4, where `IFA_ADDRESS`
/// is the peer's on a point-to-point link), else `IFA_ADDRESS` (IPv6).
fn assigned_of(message: &AddressMessage) -> Option<Assigned> {
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    Some(Assigned {
        index: message.header.index,
        ip: local.or(address)?,
        prefix: message.header.prefix_len,
    })
}
