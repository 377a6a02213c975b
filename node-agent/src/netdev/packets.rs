//! The bytes of an announcement, built without any socket so that tests can check them:
//! a gratuitous ARP request in its Ethernet frame, and an unsolicited neighbour
//! advertisement (the ICMPv6 message; the kernel puts the IPv6 header around it).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Length of a gratuitous ARP frame: Ethernet header (14) and ARP for IPv4 (28).
pub(crate) const ARP_FRAME_LEN: usize = 42;
/// Length of a neighbour advertisement with a target link-layer address option.
pub(crate) const ADVERTISEMENT_LEN: usize = 32;
/// Where unsolicited advertisements go: all nodes on the link.
pub(crate) const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ARP_HARDWARE_ETHERNET: u16 = 1;
const ARP_REQUEST: u16 = 1;
const ICMPV6_NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// The override flag of a neighbour advertisement (RFC 4861, 4.4): receivers replace the
/// link-layer address they hold. Router and solicited stay clear: the cluster IP is no
/// router's, and an unsolicited advertisement to a multicast group must not claim to be
/// solicited (receivers drop it).
const NA_OVERRIDE: u8 = 0x20;
const OPTION_TARGET_LINK_LAYER_ADDRESS: u8 = 2;
const IPPROTO_ICMPV6: u8 = 58;

/// A gratuitous ARP request from `mac` for `ip`, to the Ethernet broadcast address: sender
/// and target protocol address both `ip`, target hardware address zero (RFC 5227's "ARP
/// announcement", as `arping -U` sends it). Linux updates an entry it has for `ip` on
/// receiving it, whatever its `arp_accept`.
pub(crate) fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    let mut frame = [0; ARP_FRAME_LEN];
    // Ethernet: destination, source, type.
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    // ARP: hardware and protocol types and lengths, operation.
    frame[14..16].copy_from_slice(&ARP_HARDWARE_ETHERNET.to_be_bytes());
    frame[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    frame[18] = 6;
    frame[19] = 4;
    frame[20..22].copy_from_slice(&ARP_REQUEST.to_be_bytes());
    // Sender hardware and protocol address; target hardware address (zero), protocol
    // address.
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&ip.octets());
    frame[38..42].copy_from_slice(&ip.octets());
    frame
}

/// An unsolicited neighbour advertisement of `target` at `mac`, sent from `source` to all
/// nodes (`ff02::1`): override flag set, a target link-layer address option, and the
/// ICMPv6 checksum over the pseudo-header of `source` and `ff02::1`. (An ICMPv6 raw socket
/// has the kernel compute the checksum again; it is right here too, so the bytes are a
/// valid message on their own.)
pub(crate) fn neighbour_advertisement(
    mac: [u8; 6],
    source: Ipv6Addr,
    target: Ipv6Addr,
) -> [u8; ADVERTISEMENT_LEN] {
    let mut message = [0; ADVERTISEMENT_LEN];
    message[0] = ICMPV6_NEIGHBOUR_ADVERTISEMENT;
    // Code 0; checksum at 2..4, filled last; flags, then 29 reserved bits.
    message[4] = NA_OVERRIDE;
    message[8..24].copy_from_slice(&target.octets());
    // The option: type, length in units of 8 bytes, the address.
    message[24] = OPTION_TARGET_LINK_LAYER_ADDRESS;
    message[25] = 1;
    message[26..32].copy_from_slice(&mac);
    let checksum = icmpv6_checksum(source, ALL_NODES, &message);
    message[2..4].copy_from_slice(&checksum.to_be_bytes());
    message
}

/// The ICMPv6 checksum (RFC 4443, 2.3) of `message` (its checksum field zero) sent from
/// `source` to `destination`: the one's complement of the one's complement sum of the IPv6
/// pseudo-header (RFC 8200, 8.1) and the message, by 16-bit words.
pub(crate) fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&source.octets());
    pseudo.extend_from_slice(&destination.octets());
    pseudo.extend_from_slice(&length.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_ICMPV6]);
    !fold(ones_complement_sum(&pseudo) + ones_complement_sum(message))
}

/// The sum of `bytes` as big-endian 16-bit words (an odd last byte padded with zero), not
/// yet folded.
fn ones_complement_sum(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|pair| {
            u32::from(u16::from_be_bytes([
                pair[0],
                pair.get(1).copied().unwrap_or(0),
            ]))
        })
        .sum()
}

/// Adds the carries back in until the sum fits 16 bits.
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 16 bits.
    u16::try_from(sum).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x10];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_gratuitous_arp_is_a_broadcast_request_for_the_address_from_itself() {
        let frame = gratuitous_arp(MAC, Ipv4Addr::new(10, 77, 0, 100));
        assert_eq!(
            hex(&frame),
            concat!(
                "ffffffffffff",
                "020000000010",
                "0806", // Ethernet: broadcast, from us, ARP
                "0001",
                "0800",
                "06",
                "04",
                "0001", // Ethernet/IPv4, request
                "020000000010",
                "0a4d0064", // sender: our MAC, the cluster IP
                "000000000000",
                "0a4d0064", // target: unknown MAC, the cluster IP
            )
        );
    }

    #[test]
    fn a_neighbour_advertisement_overrides_and_carries_the_link_layer_address() {
        let ip: Ipv6Addr = "fd00:77::100".parse().unwrap();
        let message = neighbour_advertisement(MAC, ip, ip);
        // The checksum 57a0 was computed independently (RFC 1071 in Python) over the
        // pseudo-header fd00:77::100 -> ff02::1, length 32, next header 58.
        assert_eq!(
            hex(&message),
            concat!(
                "88",
                "00",
                "57a0",                             // type 136, code 0, checksum
                "20000000",                         // override only
                "fd000077000000000000000000000100", // target
                "0201",
                "020000000010", // target link-layer address option
            )
        );
    }

    #[test]
    fn the_icmpv6_checksum_makes_the_whole_sum_all_ones() {
        // Whatever the message, summing it with its checksum and the pseudo-header gives
        // 0xffff: what a receiver checks.
        let source: Ipv6Addr = "fe80::1:2:3:4".parse().unwrap();
        let destination: Ipv6Addr = "2001:db8::99".parse().unwrap();
        for length in [0usize, 1, 7, 32, 33, 1000] {
            let mut message: Vec<u8> = (0..length).map(|i| (i * 37 % 251) as u8).collect();
            if length >= 4 {
                message[2] = 0;
                message[3] = 0;
                let checksum = icmpv6_checksum(source, destination, &message);
                message[2..4].copy_from_slice(&checksum.to_be_bytes());
                let mut pseudo = Vec::new();
                pseudo.extend_from_slice(&source.octets());
                pseudo.extend_from_slice(&destination.octets());
                pseudo.extend_from_slice(&(length as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, 58]);
                let total = ones_complement_sum(&pseudo) + ones_complement_sum(&message);
                assert_eq!(fold(total), 0xffff, "length {length}");
            }
        }
        // The RFC 1071 example's words (0001 f203 f4f5 f6f7) sum to ddf2, folded.
        assert_eq!(
            fold(ones_complement_sum(&[
                0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7
            ])),
            0xddf2
        );
    }
}
