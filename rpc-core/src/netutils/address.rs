//! IP address literals: strict parsing, family detection, loopback and network membership.
//!
//! Validity is exactly glibc's `inet_pton`, which Ganeti uses: IPv4 only as a dotted quad
//! of decimal octets without leading zeros; IPv6 in any RFC 4291 text form, upper or lower
//! case, with an embedded IPv4 tail (`::ffff:192.0.2.1`), but without a zone id (`%eth0`) or
//! brackets. The tests compare this module with the C library itself.
//!
//! Family detection tries IPv4 first, then IPv6, as Ganeti's `GetAddressFamily`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::{Classify, ErrorKind};
use crate::policy::IpFamily;

/// A text that is not an address, or not one of the required family or shape.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not a valid IPv4 or IPv6 literal.
    #[error("invalid IP address '{0}'")]
    Invalid(String),
    /// A valid address of the other family.
    #[error("'{text}' is not an {expected} address")]
    WrongFamily {
        /// The address as given.
        text: String,
        /// The family that was required.
        expected: IpFamily,
    },
    /// A CIDR that is not `address/prefix` with a valid prefix for the address's family.
    #[error("invalid network '{text}': {reason}")]
    InvalidNetwork {
        /// The network as given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A port that is not a number from 1 to 65535.
    #[error("invalid port '{0}': use a number from 1 to 65535")]
    InvalidPort(String),
    /// A `host:port` text that cannot be split into a host and a port.
    #[error("invalid address '{text}': {reason}")]
    InvalidHostPort {
        /// The text as given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Classify for AddressError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::WrongInput
    }
}

/// Parses an IP address literal of either family, IPv4 first.
pub fn parse_ip(text: &str) -> Result<IpAddr, AddressError> {
    if let Ok(v4) = Ipv4Addr::from_str(text) {
        return Ok(IpAddr::V4(v4));
    }
    Ipv6Addr::from_str(text)
        .map(IpAddr::V6)
        .map_err(|_| AddressError::Invalid(text.to_owned()))
}

/// Parses an IP address literal that must be of `family`.
pub fn parse_ip_in(text: &str, family: IpFamily) -> Result<IpAddr, AddressError> {
    let addr = parse_ip(text)?;
    if IpFamily::of(&addr) == family {
        Ok(addr)
    } else {
        Err(AddressError::WrongFamily {
            text: text.to_owned(),
            expected: family,
        })
    }
}

/// The family of an address literal.
pub fn family_of(text: &str) -> Result<IpFamily, AddressError> {
    parse_ip(text).map(|addr| IpFamily::of(&addr))
}

/// Whether `text` is a valid address literal, of `family` when one is given.
pub fn is_valid_ip(text: &str, family: Option<IpFamily>) -> bool {
    match family {
        None => parse_ip(text).is_ok(),
        Some(family) => parse_ip_in(text, family).is_ok(),
    }
}

/// Whether `addr` is a loopback address: `127.0.0.0/8`, or exactly `::1`. An IPv4-mapped
/// `::ffff:127.0.0.1` is not IPv6 loopback (as in Ganeti).
pub fn is_loopback(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4.octets()[0] == 127,
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    }
}

/// An IP network in CIDR notation, `a.b.c.d/n` or `v6/n`.
///
/// As in Ganeti, the base address may have host bits set (`10.0.0.5/8` is `10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// A network from a base address and a prefix length (`0..=32` or `0..=128`).
    pub fn new(base: IpAddr, prefix: u8) -> Result<Self, AddressError> {
        let family = IpFamily::of(&base);
        if prefix > family.bits() {
            return Err(AddressError::InvalidNetwork {
                text: format!("{base}/{prefix}"),
                reason: "prefix longer than the address",
            });
        }
        Ok(Self {
            network: mask(base, prefix),
            prefix,
        })
    }

    /// The network's address, host bits cleared.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The network's family.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.network)
    }

    /// Whether `addr` lies in the network. An address of the other family never does.
    pub fn contains(&self, addr: IpAddr) -> bool {
        IpFamily::of(&addr) == self.family() && mask(addr, self.prefix) == self.network
    }
}

impl FromStr for Cidr {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| AddressError::InvalidNetwork {
            text: text.to_owned(),
            reason,
        };
        let (base, prefix) = text
            .split_once('/')
            .ok_or_else(|| invalid("expected address/prefix"))?;
        let base = parse_ip(base).map_err(|_| invalid("the base is not an IP address"))?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3 {
            return Err(invalid("the prefix is not a number"));
        }
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| invalid("the prefix is not a number"))?;
        Self::new(base, prefix).map_err(|_| invalid("prefix longer than the address"))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;

    use proptest::prelude::*;

    use super::*;

    #[allow(unsafe_code)]
    mod c_library {
        use std::ffi::{c_char, c_int, c_void};

        // SAFETY: the declaration matches POSIX `inet_pton` as glibc exports it.
        unsafe extern "C" {
            pub(super) fn inet_pton(af: c_int, src: *const c_char, dst: *mut c_void) -> c_int;
        }
    }

    /// The C library's verdict on `text` for `family`.
    fn libc_inet_pton(family: IpFamily, text: &str) -> bool {
        let Ok(c_text) = CString::new(text) else {
            return false; // inet_pton cannot even be asked about an embedded NUL
        };
        let af = i32::try_from(family.af_number()).unwrap();
        let mut buf = [0u8; 16];
        // SAFETY: `c_text` is a NUL-terminated string that outlives the call, and `buf` has
        // room for the 16 bytes an AF_INET6 address needs (AF_INET writes 4).
        #[allow(unsafe_code)]
        let rc = unsafe { c_library::inet_pton(af, c_text.as_ptr(), buf.as_mut_ptr().cast()) };
        rc == 1
    }

    #[test]
    fn valid_ipv4_is_a_strict_dotted_quad() {
        for ok in [
            "0.0.0.0",
            "127.0.0.1",
            "192.0.2.1",
            "255.255.255.255",
            "10.0.0.10",
        ] {
            assert_eq!(parse_ip(ok).unwrap(), ok.parse::<IpAddr>().unwrap());
            assert_eq!(family_of(ok).unwrap(), IpFamily::V4);
        }
        for bad in [
            "",
            "1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "0x1.2.3.4",
            "256.1.1.1",
            "1.2.3.4 ",
            " 1.2.3.4",
            "+1.2.3.4",
            "1.2.3.4.",
            "1..2.3",
            "1.2.3.4/32",
            "1.2.3.4:80",
        ] {
            assert!(parse_ip(bad).is_err(), "{bad:?} accepted");
            assert!(!is_valid_ip(bad, None));
        }
    }

    #[test]
    fn valid_ipv6_accepts_embedded_ipv4_and_upper_case_but_not_zones_or_brackets() {
        for ok in [
            "::",
            "::1",
            "2001:db8::1",
            "2001:DB8::A",
            "::ffff:192.0.2.1",
            "::FFFF:1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7::",
            "::1:2:3:4:5:6:7",
            "fe80::1",
            "::0001",
        ] {
            assert_eq!(family_of(ok).unwrap(), IpFamily::V6, "{ok}");
        }
        for bad in [
            "::1%eth0",
            "fe80::1%2",
            "[::1]",
            "[::1]:80",
            "1::2::3",
            ":::",
            ":1::",
            "12345::",
            "::00001",
            "1:2:3:4:5:6:7:8::",
            "1:2:3:4:5:6:7:1.2.3.4",
            "::ffff:1.2.3.04",
            "g::1",
        ] {
            assert!(parse_ip(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn wrong_family_is_an_error_naming_the_address_and_the_family() {
        let err = parse_ip_in("192.0.2.1", IpFamily::V6).unwrap_err();
        assert_eq!(err.to_string(), "'192.0.2.1' is not an IPv6 address");
        let err = parse_ip_in("2001:db8::1", IpFamily::V4).unwrap_err();
        assert_eq!(err.to_string(), "'2001:db8::1' is not an IPv4 address");
        assert!(is_valid_ip("2001:db8::1", Some(IpFamily::V6)));
        assert!(!is_valid_ip("2001:db8::1", Some(IpFamily::V4)));
        assert!(!is_valid_ip("nonsense", Some(IpFamily::V4)));
        let err = parse_ip("nonsense").unwrap_err();
        assert_eq!(err.to_string(), "invalid IP address 'nonsense'");
    }

    #[test]
    fn loopback_is_127_slash_8_and_exactly_ipv6_one() {
        for yes in ["127.0.0.1", "127.255.255.254", "127.0.0.0", "::1"] {
            assert!(is_loopback(parse_ip(yes).unwrap()), "{yes}");
        }
        for no in [
            "128.0.0.1",
            "126.255.255.255",
            "::",
            "::2",
            "::ffff:127.0.0.1",
            "1::1",
        ] {
            assert!(!is_loopback(parse_ip(no).unwrap()), "{no}");
        }
    }

    #[test]
    fn network_membership_masks_the_base_like_ganeti() {
        let net: Cidr = "10.0.0.5/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(parse_ip("10.1.2.3").unwrap()));
        assert!(!net.contains(parse_ip("11.0.0.0").unwrap()));
        let host: Cidr = "192.0.2.7/32".parse().unwrap();
        assert!(host.contains(parse_ip("192.0.2.7").unwrap()));
        assert!(!host.contains(parse_ip("192.0.2.8").unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(parse_ip("203.0.113.9").unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(parse_ip("2001:db8:ffff::1").unwrap()));
        assert!(!v6.contains(parse_ip("2001:db9::1").unwrap()));
        let v6all: Cidr = "::/0".parse().unwrap();
        assert!(v6all.contains(parse_ip("::1").unwrap()));
        let v6host: Cidr = "::1/128".parse().unwrap();
        assert!(v6host.contains(parse_ip("::1").unwrap()));
        assert!(!v6host.contains(parse_ip("::2").unwrap()));
    }

    #[test]
    fn network_membership_of_the_other_family_is_false_not_a_panic() {
        let v4: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(!v4.contains(parse_ip("::ffff:1.2.3.4").unwrap()));
        let v6: Cidr = "::/0".parse().unwrap();
        assert!(!v6.contains(parse_ip("1.2.3.4").unwrap()));
    }

    #[test]
    fn malformed_networks_are_refused_with_a_reason() {
        for (bad, reason) in [
            ("10.0.0.0", "expected address/prefix"),
            ("10.0.0.0/", "the prefix is not a number"),
            ("10.0.0.0/x", "the prefix is not a number"),
            ("10.0.0.0/+8", "the prefix is not a number"),
            ("10.0.0.0/33", "prefix longer than the address"),
            ("::/129", "prefix longer than the address"),
            ("10.0.0/8", "the base is not an IP address"),
            ("10.0.0.0/8/8", "the prefix is not a number"),
            ("10.0.0.0/0008", "the prefix is not a number"),
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert_eq!(
                err,
                AddressError::InvalidNetwork {
                    text: bad.to_owned(),
                    reason
                },
                "{bad}"
            );
        }
    }

    #[test]
    fn agrees_with_glibc_on_hand_picked_edge_cases() {
        for text in [
            "1.2.3.4",
            "01.2.3.4",
            "::",
            ":::",
            "::ffff:1.2.3.4",
            "1:2:3:4:5:6:7::",
            "1:2:3:4:5:6:7:8::",
            "::1%lo",
            "0.0.0.0",
            "255.255.255.256",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "::1.2.3.4",
            "1::1.2.3.4",
            "1.2.3.4::",
            "ABCD::EF",
        ] {
            let ours_v4 = parse_ip_in(text, IpFamily::V4).is_ok();
            let ours_v6 = parse_ip_in(text, IpFamily::V6).is_ok();
            assert_eq!(ours_v4, libc_inet_pton(IpFamily::V4, text), "v4 {text:?}");
            assert_eq!(ours_v6, libc_inet_pton(IpFamily::V6, text), "v6 {text:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn agrees_with_glibc_inet_pton_on_address_like_strings(
            text in "[0-9a-fA-F:.%\\[\\] ]{0,45}"
        ) {
            prop_assert_eq!(
                parse_ip_in(&text, IpFamily::V4).is_ok(),
                libc_inet_pton(IpFamily::V4, &text),
                "IPv4 verdict differs for {:?}", text
            );
            prop_assert_eq!(
                parse_ip_in(&text, IpFamily::V6).is_ok(),
                libc_inet_pton(IpFamily::V6, &text),
                "IPv6 verdict differs for {:?}", text
            );
        }

        #[test]
        fn agrees_with_glibc_on_mutated_real_addresses(
            addr in any::<IpAddr>(),
            cut in 0usize..8,
            junk in "[0-9a-f:.]{0,3}",
        ) {
            // Start from a valid text and damage it a little: the interesting cases are near
            // the valid ones, where random strings seldom land.
            let mut text = addr.to_string();
            let keep = text.len().saturating_sub(cut);
            text.truncate(keep);
            text.push_str(&junk);
            for family in [IpFamily::V4, IpFamily::V6] {
                prop_assert_eq!(
                    parse_ip_in(&text, family).is_ok(),
                    libc_inet_pton(family, &text),
                    "{} verdict differs for {:?}", family, text
                );
            }
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,64}") {
            let _ = parse_ip(&text);
            let _ = text.parse::<Cidr>();
        }

        #[test]
        fn every_address_parses_back_from_its_text(addr in any::<IpAddr>()) {
            prop_assert_eq!(parse_ip(&addr.to_string()).unwrap(), addr);
        }

        #[test]
        fn a_network_contains_its_own_base(addr in any::<IpAddr>(), prefix in 0u8..=128) {
            let prefix = prefix.min(IpFamily::of(&addr).bits());
            let net = Cidr::new(addr, prefix).unwrap();
            prop_assert!(net.contains(addr));
        }
    }
}
