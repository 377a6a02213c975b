//! A cluster node as every daemon knows it, its name and its two addresses, and the one
//! rule the IP-version policy sets for those addresses.
//!
//! The rule (Ganeti 2.3's design): the primary address is of the policy's primary family;
//! the secondary address is IPv4, mandatory in a hybrid IPv6/IPv4 cluster, and the primary
//! itself on a single-homed node of an IPv4 cluster. `gnt cluster init`, `gnt node add`, a
//! node answering Join and the ssconf builder all apply it through
//! [`IpPolicy::node_addrs`] (and, for an operator's argument checked before anything
//! else, [`IpPolicy::parse_secondary`]); nothing else decides it.
//!
//! Ganeti words the refusal differently at init and at node add; the callers keep those
//! words (see [`NodeAddrsError`]) but not the rule.

use std::net::IpAddr;

use crate::error::{Classify, ErrorKind};
use crate::netutils::{Hostname, parse_ip};
use crate::policy::{IpFamily, IpPolicy};

/// A node's primary and secondary addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeAddrs {
    /// Primary address, of the cluster's primary family: cluster RPC goes here.
    pub primary: IpAddr,
    /// Secondary address, IPv4; the primary itself on a single-homed IPv4 node.
    pub secondary: IpAddr,
}

impl NodeAddrs {
    /// Whether the node has one network only (its secondary is its primary).
    pub fn single_homed(&self) -> bool {
        self.primary == self.secondary
    }
}

/// A node: its normalised name and its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The name, normalised.
    pub name: Hostname,
    /// Its addresses.
    pub addrs: NodeAddrs,
}

/// A node as another node's network test is told of it: a name to report it by, and its
/// addresses as given. No rule is applied: a test reports what it finds, even for a node
/// the master describes wrongly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The name the master gave, echoed in the verdicts.
    pub name: String,
    /// Its addresses (the secondary is the primary when none was given).
    pub addrs: NodeAddrs,
}

/// One of the two networks of a cluster: the primary (cluster RPC) and the secondary
/// (replication; the same network on single-homed nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// The primary network.
    Primary,
    /// The secondary network.
    Secondary,
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
        })
    }
}

/// Addresses that break the policy's rule.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeAddrsError {
    /// The primary address is not of the policy's primary family.
    #[error("primary address {addr} is not {}, as the cluster's {policy} policy requires", policy.primary_family())]
    PrimaryFamily {
        /// The address.
        addr: IpAddr,
        /// The policy.
        policy: IpPolicy,
    },
    /// A hybrid cluster and no secondary address.
    #[error(
        "no secondary address given: a {policy} cluster requires one, and it must be an IPv4 address"
    )]
    SecondaryRequired {
        /// The policy.
        policy: IpPolicy,
    },
    /// The secondary address is not an IPv4 address (as given).
    #[error("secondary address '{0}' must be an IPv4 address")]
    SecondaryNotIpv4(String),
}

impl Classify for NodeAddrsError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::WrongInput
    }
}

impl IpPolicy {
    /// Checks a secondary address as an operator or a peer gives it (`None`: not given): it
    /// must be an IPv4 address, and given when the policy requires one. For checking an
    /// argument before any name is resolved; [`node_addrs`](Self::node_addrs) applies the
    /// whole rule once the primary is known. A refusal quotes the text as given.
    pub fn parse_secondary(self, text: Option<&str>) -> Result<Option<IpAddr>, NodeAddrsError> {
        let Some(text) = text else {
            return self.secondary(None);
        };
        let not_ipv4 = || NodeAddrsError::SecondaryNotIpv4(text.to_owned());
        let ip = parse_ip(text).map_err(|_| not_ipv4())?;
        self.secondary(Some(ip)).map_err(|_| not_ipv4())
    }

    /// A node's addresses under this policy: `primary` of the primary family, `secondary`
    /// IPv4 (required in a hybrid cluster; the primary when absent in an IPv4 one).
    pub fn node_addrs(
        self,
        primary: IpAddr,
        secondary: Option<IpAddr>,
    ) -> Result<NodeAddrs, NodeAddrsError> {
        if IpFamily::of(&primary) != self.primary_family() {
            return Err(NodeAddrsError::PrimaryFamily {
                addr: primary,
                policy: self,
            });
        }
        let secondary = self.secondary(secondary)?.unwrap_or(primary);
        Ok(NodeAddrs { primary, secondary })
    }

    /// The rule for the secondary alone.
    fn secondary(self, secondary: Option<IpAddr>) -> Result<Option<IpAddr>, NodeAddrsError> {
        match secondary {
            Some(ip @ IpAddr::V4(_)) => Ok(Some(ip)),
            Some(other) => Err(NodeAddrsError::SecondaryNotIpv4(other.to_string())),
            None if self.requires_secondary() => {
                Err(NodeAddrsError::SecondaryRequired { policy: self })
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_hybrid_node_has_an_ipv6_primary_and_a_mandatory_ipv4_secondary() {
        let policy = IpPolicy::HybridIpv6;
        let addrs = policy
            .node_addrs(ip("2001:db8::1"), Some(ip("192.0.2.1")))
            .unwrap();
        assert!(!addrs.single_homed());
        assert_eq!(
            policy.node_addrs(ip("2001:db8::1"), None),
            Err(NodeAddrsError::SecondaryRequired { policy })
        );
        assert_eq!(
            policy
                .node_addrs(ip("2001:db8::1"), Some(ip("2001:db8::2")))
                .unwrap_err()
                .to_string(),
            "secondary address '2001:db8::2' must be an IPv4 address"
        );
        assert_eq!(
            policy
                .node_addrs(ip("192.0.2.1"), Some(ip("192.0.2.2")))
                .unwrap_err()
                .to_string(),
            "primary address 192.0.2.1 is not IPv6, as the cluster's hybrid IPv6/IPv4 policy requires"
        );
    }

    #[test]
    fn an_ipv4_node_without_a_secondary_is_single_homed() {
        let policy = IpPolicy::Ipv4;
        let addrs = policy.node_addrs(ip("192.0.2.1"), None).unwrap();
        assert!(addrs.single_homed());
        assert_eq!(addrs.secondary, ip("192.0.2.1"));
        assert!(policy.node_addrs(ip("2001:db8::1"), None).is_err());
    }

    #[test]
    fn a_secondary_argument_is_checked_before_anything_resolves() {
        assert_eq!(IpPolicy::Ipv4.parse_secondary(None), Ok(None));
        assert_eq!(
            IpPolicy::HybridIpv6.parse_secondary(None),
            Err(NodeAddrsError::SecondaryRequired {
                policy: IpPolicy::HybridIpv6
            })
        );
        assert_eq!(
            IpPolicy::HybridIpv6.parse_secondary(Some("192.0.2.1")),
            Ok(Some(ip("192.0.2.1")))
        );
        for bad in ["fd00::1", "not-an-address", "", "192.0.2.1 "] {
            assert_eq!(
                IpPolicy::Ipv4.parse_secondary(Some(bad)),
                Err(NodeAddrsError::SecondaryNotIpv4(bad.to_owned())),
                "{bad:?}"
            );
        }
    }
}
