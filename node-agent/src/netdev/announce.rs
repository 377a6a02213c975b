//! Announcing an address just added, so that neighbours holding an old entry for it (the
//! previous master's MAC address) replace it at once instead of after their cache times
//! out: IPv4 by gratuitous ARP on an `AF_PACKET` socket bound to the device, IPv6 by
//! unsolicited neighbour advertisements on an ICMPv6 raw socket (hop limit 255, to all
//! nodes, override flag set). [`ANNOUNCEMENTS`] packets, a little apart, as `arping -U -c 3`
//! and `ndisc6` send them: one lost packet does not leave a neighbour stale.
//!
//! Linux updates an existing neighbour entry on either packet; it creates none (unless its
//! `arp_accept`/`accept_untracked_na` says so), which is what an announcement is for.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::thread;
use std::time::Duration;

use pnet_datalink::{Channel, Config, NetworkInterface};
use socket2::{Domain, Protocol, Socket, Type};

use super::packets::{ALL_NODES, gratuitous_arp, neighbour_advertisement};
use super::{AnnounceError, Link};

/// How many packets announce an address.
const ANNOUNCEMENTS: usize = 3;
/// The pause between two of them.
const PAUSE: Duration = Duration::from_millis(250);
/// The hop limit every neighbour discovery message carries; receivers drop others (RFC
/// 4861, 7.1.2), since only a packet from the link itself can have it.
const ND_HOP_LIMIT: u32 = 255;

/// Announces `ip`, just added to `link`, on the link. Blocks for the pauses between the
/// packets (about half a second).
pub(crate) fn announce(link: &Link, ip: IpAddr) -> Result<(), AnnounceError> {
    let mac = link
        .mac
        .ok_or_else(|| AnnounceError::NotEthernet(link.name.clone()))?;
    match ip {
        IpAddr::V4(v4) => gratuitous_arps(link, mac, v4),
        IpAddr::V6(v6) => advertisements(link, mac, v6),
    }
}

fn gratuitous_arps(link: &Link, mac: [u8; 6], ip: Ipv4Addr) -> Result<(), AnnounceError> {
    let failed = |source: io::Error| AnnounceError::Send {
        what: "gratuitous ARP",
        link: link.name.clone(),
        source,
    };
    let interface = NetworkInterface {
        name: link.name.clone(),
        description: String::new(),
        index: link.index,
        mac: None,
        ips: Vec::new(),
        flags: 0,
    };
    let config = Config {
        // Only sending: nothing to capture, and other traffic stays out of this socket.
        promiscuous: false,
        read_timeout: Some(Duration::from_millis(1)),
        ..Config::default()
    };
    let Channel::Ethernet(mut sender, _receiver) =
        pnet_datalink::channel(&interface, config).map_err(failed)?
    else {
        return Err(failed(io::Error::other("not an Ethernet channel")));
    };
    let frame = gratuitous_arp(mac, ip);
    for n in 0..ANNOUNCEMENTS {
        if n > 0 {
            thread::sleep(PAUSE);
        }
        sender
            .send_to(&frame, None)
            .unwrap_or_else(|| Err(io::Error::other("the channel sent nothing")))
            .map_err(failed)?;
    }
    Ok(())
}

fn advertisements(link: &Link, mac: [u8; 6], ip: Ipv6Addr) -> Result<(), AnnounceError> {
    let failed = |source: io::Error| AnnounceError::Send {
        what: "neighbour advertisement",
        link: link.name.clone(),
        source,
    };
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).map_err(failed)?;
    socket.set_multicast_hops_v6(ND_HOP_LIMIT).map_err(failed)?;
    socket.set_unicast_hops_v6(ND_HOP_LIMIT).map_err(failed)?;
    socket.set_multicast_if_v6(link.index).map_err(failed)?;
    // Our own advertisement is of no use to us.
    socket.set_multicast_loop_v6(false).map_err(failed)?;
    // From the announced address itself: added without duplicate address detection, it is
    // usable as a source at once.
    socket
        .bind(&SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, 0)).into())
        .map_err(failed)?;
    let message = neighbour_advertisement(mac, ip, ip);
    let all_nodes = SocketAddr::V6(SocketAddrV6::new(ALL_NODES, 0, 0, link.index));
    for n in 0..ANNOUNCEMENTS {
        if n > 0 {
            thread::sleep(PAUSE);
        }
        socket
            .send_to(&message, &all_nodes.into())
            .map_err(failed)?;
    }
    Ok(())
}
