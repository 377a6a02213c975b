//! The cluster's IP-version policy: pure IPv4, or hybrid IPv6/IPv4 (Ganeti 2.3's design).
//!
//! The policy is chosen once, at `cluster init --primary-ip-version 4|6`, and decides:
//!
//! - the family of every node's primary address (IPv4, or IPv6 in hybrid mode); secondary
//!   addresses are always IPv4, and mandatory in hybrid mode;
//! - the wildcard a daemon binds by default: `0.0.0.0` (IPv4 only) or `::` with
//!   `IPV6_V6ONLY` explicitly off, so that a hybrid daemon also accepts IPv4 whatever the
//!   host's `net.ipv6.bindv6only` says;
//! - the family in which node names and the cluster name are resolved;
//! - the bounds of the master netmask (1-32 or 1-128; the default is the full length).
//!
//! Ganeti identifies the policy by a version number on the command line (4 or 6) and by a
//! socket address-family number in ssconf (`AF_INET` = 2, `AF_INET6` = 10 on Linux). Both
//! mappings are here, and anything else is refused with an error naming the value; pure IPv6
//! clusters do not exist (Ganeti refuses them too: migration and VNC needed IPv4).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::error::{Classify, ErrorKind};

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// Linux `AF_INET`: Ganeti's ssconf encoding of IPv4.
pub const AF_INET: u32 = 2;
/// Linux `AF_INET6`: Ganeti's ssconf encoding of IPv6.
pub const AF_INET6: u32 = 10;

impl IpFamily {
    /// The IP version number: 4 or 6.
    pub const fn version(self) -> u8 {
        match self {
            Self::V4 => 4,
            Self::V6 => 6,
        }
    }

    /// The family of version `version` (4 or 6).
    pub fn from_version(version: u32) -> Result<Self, PolicyError> {
        match version {
            4 => Ok(Self::V4),
            6 => Ok(Self::V6),
            other => Err(PolicyError::InvalidVersion(other.to_string())),
        }
    }

    /// The Linux address-family number (2 or 10), Ganeti's encoding in ssconf.
    pub const fn af_number(self) -> u32 {
        match self {
            Self::V4 => AF_INET,
            Self::V6 => AF_INET6,
        }
    }

    /// The family with Linux address-family number `number` (2 or 10).
    pub fn from_af_number(number: u32) -> Result<Self, PolicyError> {
        match number {
            AF_INET => Ok(Self::V4),
            AF_INET6 => Ok(Self::V6),
            other => Err(PolicyError::InvalidFamily(other)),
        }
    }

    /// The family of an address. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is IPv6:
    /// canonicalise first where a mapped peer should count as IPv4.
    pub const fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The other family.
    pub const fn other(self) -> Self {
        match self {
            Self::V4 => Self::V6,
            Self::V6 => Self::V4,
        }
    }

    /// The wildcard ("any") address of the family.
    pub const fn wildcard(self) -> IpAddr {
        match self {
            Self::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Self::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }

    /// The loopback address of the family (`127.0.0.1` or `::1`).
    pub const fn localhost(self) -> IpAddr {
        match self {
            Self::V4 => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Self::V6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
        }
    }

    /// Address length in bits: 32 or 128. Also the longest valid netmask.
    pub const fn bits(self) -> u8 {
        match self {
            Self::V4 => 32,
            Self::V6 => 128,
        }
    }

    /// Checks a netmask length (CIDR prefix) for this family: `1..=32` or `1..=128`, as
    /// Ganeti's `ValidateNetmask`.
    pub fn validate_netmask(self, prefix: u32) -> Result<u8, PolicyError> {
        match u8::try_from(prefix) {
            Ok(p) if (1..=self.bits()).contains(&p) => Ok(p),
            _ => Err(PolicyError::InvalidNetmask {
                family: self,
                prefix,
            }),
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

/// The cluster's IP-version policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpPolicy {
    /// Pure IPv4: every address is IPv4; daemons bind `0.0.0.0`. A secondary address is
    /// optional (single-homed nodes use their primary as secondary).
    Ipv4,
    /// Hybrid IPv6/IPv4: IPv6 primary addresses and a mandatory IPv4 secondary address on
    /// every node; daemons bind `::` dual-stack.
    HybridIpv6,
}

impl IpPolicy {
    /// The policy for `--primary-ip-version` `version` (4 or 6).
    pub fn from_version(version: u32) -> Result<Self, PolicyError> {
        IpFamily::from_version(version).map(Self::from_primary_family)
    }

    /// The policy for ssconf `primary_ip_family` `number` (2 or 10).
    pub fn from_af_number(number: u32) -> Result<Self, PolicyError> {
        IpFamily::from_af_number(number).map(Self::from_primary_family)
    }

    /// The policy whose primary addresses are of `family`.
    pub const fn from_primary_family(family: IpFamily) -> Self {
        match family {
            IpFamily::V4 => Self::Ipv4,
            IpFamily::V6 => Self::HybridIpv6,
        }
    }

    /// The primary IP version, 4 or 6, as `--primary-ip-version` takes it.
    pub const fn version(self) -> u8 {
        self.primary_family().version()
    }

    /// The ssconf `primary_ip_family` value, 2 or 10.
    pub const fn af_number(self) -> u32 {
        self.primary_family().af_number()
    }

    /// The family of primary addresses. Node names and the cluster name resolve in this
    /// family only (Ganeti: `--primary-ip-version` "is used when resolving node names and
    /// the cluster name").
    pub const fn primary_family(self) -> IpFamily {
        match self {
            Self::Ipv4 => IpFamily::V4,
            Self::HybridIpv6 => IpFamily::V6,
        }
    }

    /// The family of secondary addresses: IPv4 under both policies.
    pub const fn secondary_family(self) -> IpFamily {
        IpFamily::V4
    }

    /// Whether every node must have a secondary address distinct from its primary.
    pub const fn requires_secondary(self) -> bool {
        matches!(self, Self::HybridIpv6)
    }

    /// The address a daemon binds when not told otherwise: `0.0.0.0` or `::`.
    pub const fn bind_wildcard(self) -> IpAddr {
        self.primary_family().wildcard()
    }

    /// Where a member node agent listens unless told otherwise: the wildcard, on `port`.
    /// `gnt cluster init`, the master's Join offer and an agent restarted without
    /// `member.conf` all take it from here.
    pub const fn default_listen(self, port: u16) -> SocketAddr {
        SocketAddr::new(self.bind_wildcard(), port)
    }

    /// Whether listeners on [`bind_wildcard`](Self::bind_wildcard) accept both families;
    /// such a socket must be created with `IPV6_V6ONLY` off.
    pub const fn dual_stack(self) -> bool {
        matches!(self, Self::HybridIpv6)
    }

    /// Whether a listener of this policy may bind `addr`: the wildcard of the policy, or a
    /// concrete address of a family the policy uses (an IPv6 address needs a hybrid cluster).
    pub fn allows_bind_address(self, addr: IpAddr) -> bool {
        if addr.is_unspecified() {
            return addr == self.bind_wildcard();
        }
        match self {
            Self::Ipv4 => addr.is_ipv4(),
            Self::HybridIpv6 => true,
        }
    }

    /// The families a client dials for a peer known by name, in order of preference: IPv4
    /// only, or IPv6 first with IPv4 as fallback (Happy Eyeballs, RFC 8305).
    pub const fn dial_families(self) -> &'static [IpFamily] {
        match self {
            Self::Ipv4 => &[IpFamily::V4],
            Self::HybridIpv6 => &[IpFamily::V6, IpFamily::V4],
        }
    }

    /// The default master netmask: the full address length (32 or 128).
    pub const fn default_master_netmask(self) -> u8 {
        self.primary_family().bits()
    }

    /// Checks a master netmask against the primary family's bounds.
    pub fn validate_master_netmask(self, prefix: u32) -> Result<u8, PolicyError> {
        self.primary_family().validate_netmask(prefix)
    }
}

impl FromStr for IpPolicy {
    type Err = PolicyError;

    /// Parses `--primary-ip-version`: exactly `4` or `6`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "4" => Ok(Self::Ipv4),
            "6" => Ok(Self::HybridIpv6),
            other => Err(PolicyError::InvalidVersion(other.to_owned())),
        }
    }
}

impl fmt::Display for IpPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipv4 => "IPv4",
            Self::HybridIpv6 => "hybrid IPv6/IPv4",
        })
    }
}

/// A value that is not a valid IP version, family number or netmask.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not 4 or 6.
    #[error("invalid primary IP version '{0}': use 4 (IPv4) or 6 (hybrid IPv6/IPv4)")]
    InvalidVersion(String),
    /// Not 2 (`AF_INET`) or 10 (`AF_INET6`).
    #[error("invalid IP address family {0}: expected 2 (IPv4) or 10 (IPv6)")]
    InvalidFamily(u32),
    /// Outside `1..=32` or `1..=128`.
    #[error("invalid {family} netmask /{prefix}: use 1 to {}", family.bits())]
    InvalidNetmask {
        /// The family the netmask was checked against.
        family: IpFamily,
        /// The refused prefix length.
        prefix: u32,
    },
}

impl Classify for PolicyError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::WrongInput
    }
}

/// Stored as the primary IP version (`4` or `6`), as operators type it; any other number
/// is refused when read, never taken for IPv4.
#[cfg(feature = "serde")]
impl serde::Serialize for IpPolicy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.version())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for IpPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_version(u32::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_ganeti_family_numbers() {
        assert_eq!(IpPolicy::from_version(4).unwrap().af_number(), 2);
        assert_eq!(IpPolicy::from_version(6).unwrap().af_number(), 10);
        assert_eq!(IpPolicy::from_af_number(2).unwrap(), IpPolicy::Ipv4);
        assert_eq!(IpPolicy::from_af_number(10).unwrap(), IpPolicy::HybridIpv6);
        assert_eq!(IpFamily::from_af_number(10).unwrap().version(), 6);
        assert_eq!(IpFamily::from_version(4).unwrap().af_number(), 2);
    }

    #[test]
    fn other_versions_and_families_are_refused_with_the_value() {
        for v in [0, 2, 5, 10, 46] {
            let err = IpPolicy::from_version(v).unwrap_err();
            assert!(err.to_string().contains(&format!("'{v}'")), "{err}");
        }
        for f in [0, 4, 6, 7, 23, 28] {
            let err = IpPolicy::from_af_number(f).unwrap_err();
            assert_eq!(err, PolicyError::InvalidFamily(f));
            assert!(err.to_string().contains(&f.to_string()));
        }
    }

    #[test]
    fn command_line_version_is_exactly_4_or_6() {
        assert_eq!("4".parse::<IpPolicy>().unwrap(), IpPolicy::Ipv4);
        assert_eq!("6".parse::<IpPolicy>().unwrap(), IpPolicy::HybridIpv6);
        for bad in ["", " 4", "4 ", "04", "+6", "ipv6", "10", "2"] {
            assert!(bad.parse::<IpPolicy>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn each_policy_binds_its_own_wildcard() {
        assert_eq!(IpPolicy::Ipv4.bind_wildcard().to_string(), "0.0.0.0");
        assert_eq!(IpPolicy::HybridIpv6.bind_wildcard().to_string(), "::");
        assert!(IpPolicy::HybridIpv6.dual_stack());
        assert!(!IpPolicy::Ipv4.dual_stack());
    }

    #[test]
    fn bind_addresses_must_fit_the_policy() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let any4 = IpFamily::V4.wildcard();
        let any6 = IpFamily::V6.wildcard();
        assert!(IpPolicy::Ipv4.allows_bind_address(v4));
        assert!(IpPolicy::Ipv4.allows_bind_address(any4));
        assert!(!IpPolicy::Ipv4.allows_bind_address(v6));
        assert!(!IpPolicy::Ipv4.allows_bind_address(any6));
        assert!(IpPolicy::HybridIpv6.allows_bind_address(v6));
        assert!(IpPolicy::HybridIpv6.allows_bind_address(v4));
        assert!(IpPolicy::HybridIpv6.allows_bind_address(any6));
        // `0.0.0.0` in a hybrid cluster would silently drop IPv6: refuse it.
        assert!(!IpPolicy::HybridIpv6.allows_bind_address(any4));
    }

    #[test]
    fn secondaries_are_ipv4_and_required_only_in_hybrid_mode() {
        assert_eq!(IpPolicy::HybridIpv6.secondary_family(), IpFamily::V4);
        assert_eq!(IpPolicy::Ipv4.secondary_family(), IpFamily::V4);
        assert!(IpPolicy::HybridIpv6.requires_secondary());
        assert!(!IpPolicy::Ipv4.requires_secondary());
    }

    #[test]
    fn netmask_bounds_follow_the_family() {
        assert_eq!(IpPolicy::Ipv4.validate_master_netmask(1).unwrap(), 1);
        assert_eq!(IpPolicy::Ipv4.validate_master_netmask(32).unwrap(), 32);
        assert!(IpPolicy::Ipv4.validate_master_netmask(0).is_err());
        assert!(IpPolicy::Ipv4.validate_master_netmask(33).is_err());
        assert_eq!(
            IpPolicy::HybridIpv6.validate_master_netmask(64).unwrap(),
            64
        );
        assert_eq!(
            IpPolicy::HybridIpv6.validate_master_netmask(128).unwrap(),
            128
        );
        assert!(IpPolicy::HybridIpv6.validate_master_netmask(129).is_err());
        assert!(IpPolicy::HybridIpv6.validate_master_netmask(0).is_err());
        assert!(IpFamily::V4.validate_netmask(u32::MAX).is_err());
        assert_eq!(IpPolicy::Ipv4.default_master_netmask(), 32);
        assert_eq!(IpPolicy::HybridIpv6.default_master_netmask(), 128);
        let err = IpPolicy::Ipv4.validate_master_netmask(33).unwrap_err();
        assert_eq!(err.to_string(), "invalid IPv4 netmask /33: use 1 to 32");
    }

    #[test]
    fn names_resolve_in_the_primary_family_and_dialing_prefers_ipv6_in_hybrid_mode() {
        assert_eq!(IpPolicy::Ipv4.primary_family(), IpFamily::V4);
        assert_eq!(IpPolicy::HybridIpv6.primary_family(), IpFamily::V6);
        assert_eq!(IpPolicy::Ipv4.dial_families(), &[IpFamily::V4]);
        assert_eq!(
            IpPolicy::HybridIpv6.dial_families(),
            &[IpFamily::V6, IpFamily::V4]
        );
    }
}
