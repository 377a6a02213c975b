//! What the master offers a node in Join (everything the node needs to run as a member
//! before it has any ssconf of its own), and what the node answers.

use std::net::SocketAddr;

use crate::netutils::Hostname;
use crate::node::Node;
use crate::policy::IpPolicy;
use crate::ssconf::{SsconfSet, SsconfVersion};

/// The master's offer. Converted from its wire form (`gnt.bootstrap.v1.JoinRequest`) only
/// by [`wire`](crate::wire), which refuses an offer that contradicts itself: a listen
/// address outside the policy, node addresses that break the policy's rule, or an ssconf
/// set naming another cluster, policy or addresses. The policy is held once here, however
/// often the wire form repeats it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOffer {
    /// The cluster to join.
    pub cluster: Hostname,
    /// Its IP-version policy.
    pub policy: IpPolicy,
    /// Where the member API is to listen: the policy's wildcard
    /// ([`IpPolicy::default_listen`]) or one of the node's own addresses.
    pub listen: SocketAddr,
    /// The node, as the master verified it.
    pub node: Node,
    /// The master node.
    pub master: Node,
    /// The cluster CA certificate, PEM: the only CA the node trusts afterwards.
    pub ca_certificate_pem: String,
    /// The node's certificate, PEM, for the key the node presented in the Join handshake.
    /// Empty until the master's half of Join has checked the node's proof and issued it.
    pub node_certificate_pem: String,
    /// The node's first ssconf set.
    pub ssconf: SsconfSet,
    /// The configuration version of that set: the master's epoch, and the serial the
    /// configuration will have once the node is in it (the node is committed after its
    /// Join).
    pub ssconf_version: SsconfVersion,
}

/// The node's answer to an accepted offer: where its member API now listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinAccepted {
    /// The member listener's address (a wildcard, or one of the node's addresses).
    pub listen: SocketAddr,
}
