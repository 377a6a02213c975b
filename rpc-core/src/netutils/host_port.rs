//! `host:port` text: IPv6 hosts in brackets (`[2001:db8::1]:1811`), IPv4 hosts and names
//! bare (`192.0.2.1:1811`, `node1.example.com:1811`), and the port optional.
//!
//! Ganeti's `FormatAddress` chooses brackets from a family argument that can disagree with
//! the address (`("::1", 1234)` with `AF_INET` gives `::1:1234`); here the host is typed, so
//! the brackets always follow the address. A bare IPv6 literal without brackets is accepted
//! as a host without a port, because every colon in it belongs to the address.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::address::{AddressError, parse_ip};
use super::hostname::Hostname;

/// The host part: an address literal or a normalised name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A host name, to be resolved.
    Name(Hostname),
}

impl Host {
    /// Parses a bare host: an address literal (IPv4 first, as everywhere) or a host name.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if let Ok(ip) = parse_ip(text) {
            return Ok(Self::Ip(ip));
        }
        Hostname::parse(text)
            .map(Self::Name)
            .map_err(|err| AddressError::InvalidHostPort {
                text: text.to_owned(),
                reason: err.reason,
            })
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Self::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Self::Name(name) => write!(f, "{name}"),
        }
    }
}

/// A host with an optional port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host.
    pub host: Host,
    /// The port, 1 to 65535, when one was given.
    pub port: Option<u16>,
}

impl HostPort {
    /// Parses `[v6]:port`, `[v6]`, `v6`, `v4:port`, `v4`, `name:port` or `name`.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let fail = |reason| AddressError::InvalidHostPort {
            text: text.to_owned(),
            reason,
        };
        if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(|| fail("missing ']'"))?;
            let Ok(ip @ IpAddr::V6(_)) = parse_ip(inside) else {
                return Err(fail("only an IPv6 address may stand in brackets"));
            };
            let port = match after {
                "" => None,
                _ => Some(parse_port(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| fail("expected ':' after ']'"))?,
                )?),
            };
            return Ok(Self {
                host: Host::Ip(ip),
                port,
            });
        }
        if let Ok(ip @ IpAddr::V6(_)) = parse_ip(text) {
            return Ok(Self {
                host: Host::Ip(ip),
                port: None,
            });
        }
        match text.split_once(':') {
            None => Ok(Self {
                host: Host::parse(text)?,
                port: None,
            }),
            Some((host, port)) => {
                if port.contains(':') {
                    return Err(fail(
                        "an IPv6 address with a port needs brackets: [address]:port",
                    ));
                }
                Ok(Self {
                    host: Host::parse(host)?,
                    port: Some(parse_port(port)?),
                })
            }
        }
    }

    /// The socket address, when the host is an address and a port was given.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match (&self.host, self.port) {
            (Host::Ip(ip), Some(port)) => Some(SocketAddr::new(*ip, port)),
            _ => None,
        }
    }
}

impl FromStr for HostPort {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

/// Formats an address and port: `[v6]:port` or `v4:port`. Unlike `SocketAddr`'s `Display`,
/// it never shows an IPv6 scope id, which no other tool would parse back.
pub fn format_host_port(ip: IpAddr, port: u16) -> String {
    HostPort {
        host: Host::Ip(ip),
        port: Some(port),
    }
    .to_string()
}

/// Parses a port: decimal digits only, 1 to 65535 (Ganeti's `ValidatePortNumber`, without
/// its leniency: no sign, no white space, no fraction).
pub fn parse_port(text: &str) -> Result<u16, AddressError> {
    let invalid = || AddressError::InvalidPort(text.to_owned());
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(invalid()),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_gets_brackets_and_ipv4_does_not() {
        assert_eq!(
            format_host_port(ip("2001:db8::1"), 1811),
            "[2001:db8::1]:1811"
        );
        assert_eq!(format_host_port(ip("::"), 1), "[::]:1");
        assert_eq!(format_host_port(ip("192.0.2.1"), 65535), "192.0.2.1:65535");
        assert_eq!(
            format_host_port(ip("::ffff:192.0.2.1"), 80),
            "[::ffff:192.0.2.1]:80"
        );
    }

    #[test]
    fn every_accepted_shape_parses() {
        let cases: [(&str, Host, Option<u16>); 7] = [
            (
                "[2001:db8::1]:1811",
                Host::Ip(ip("2001:db8::1")),
                Some(1811),
            ),
            ("[::1]", Host::Ip(ip("::1")), None),
            ("2001:db8::1", Host::Ip(ip("2001:db8::1")), None),
            ("192.0.2.1:22", Host::Ip(ip("192.0.2.1")), Some(22)),
            ("192.0.2.1", Host::Ip(ip("192.0.2.1")), None),
            (
                "Node1.Example.com:1811",
                Host::Name(Hostname::parse("node1.example.com").unwrap()),
                Some(1811),
            ),
            ("node1", Host::Name(Hostname::parse("node1").unwrap()), None),
        ];
        for (text, host, port) in cases {
            assert_eq!(
                HostPort::parse(text).unwrap(),
                HostPort { host, port },
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_texts_say_what_is_wrong() {
        for (text, reason) in [
            ("[::1", "missing ']'"),
            (
                "[192.0.2.1]:80",
                "only an IPv6 address may stand in brackets",
            ),
            ("[node1]:80", "only an IPv6 address may stand in brackets"),
            ("[::1]80", "expected ':' after ']'"),
            (
                "[::1%eth0]:80",
                "only an IPv6 address may stand in brackets",
            ),
            (
                "2001:db8::1:x",
                "an IPv6 address with a port needs brackets: [address]:port",
            ),
            ("bad name:80", "it contains white space"),
        ] {
            match HostPort::parse(text) {
                Err(AddressError::InvalidHostPort { reason: got, .. }) => {
                    assert_eq!(got, reason, "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn ports_are_strictly_1_to_65535() {
        assert_eq!(parse_port("1").unwrap(), 1);
        assert_eq!(parse_port("65535").unwrap(), 65535);
        assert_eq!(parse_port("01811").unwrap(), 1811);
        for bad in [
            "", "0", "65536", "99999", "-1", "+80", " 80", "80 ", "8o", "1e3", "100000",
        ] {
            assert_eq!(
                parse_port(bad),
                Err(AddressError::InvalidPort(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert!(HostPort::parse("[::1]:0").is_err());
        assert!(HostPort::parse("192.0.2.1:").is_err());
        let err = parse_port("65536").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid port '65536': use a number from 1 to 65535"
        );
    }

    #[test]
    fn socket_addr_needs_an_address_and_a_port() {
        let sa = HostPort::parse("[::1]:1811")
            .unwrap()
            .socket_addr()
            .unwrap();
        assert_eq!(sa, "[::1]:1811".parse().unwrap());
        assert!(HostPort::parse("[::1]").unwrap().socket_addr().is_none());
        assert!(
            HostPort::parse("node1:1811")
                .unwrap()
                .socket_addr()
                .is_none()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn format_then_parse_round_trips_any_address_and_port(addr in any::<IpAddr>(), port in 1u16..) {
            let text = format_host_port(addr, port);
            let parsed = HostPort::parse(&text).unwrap();
            prop_assert_eq!(parsed.socket_addr(), Some(SocketAddr::new(addr, port)));
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn bare_addresses_round_trip_without_a_port(addr in any::<IpAddr>()) {
            let parsed = HostPort::parse(&addr.to_string()).unwrap();
            prop_assert_eq!(parsed.host, Host::Ip(addr));
            prop_assert_eq!(parsed.port, None);
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,64}") {
            let _ = HostPort::parse(&text);
            let _ = parse_port(&text);
        }

        #[test]
        fn parsing_bracket_heavy_text_never_panics(text in "[\\[\\]:0-9a-f.%]{0,40}") {
            let _ = HostPort::parse(&text);
        }
    }
}
