//! The one place where domain types and their wire forms (the `gnt-proto` messages) meet.
//!
//! A value crossing a gRPC boundary is converted here once on the way in (`TryFrom`,
//! refusing what the domain type cannot hold, with the field named) and once on the way out
//! (`From`). No other file builds a domain value from a message field, or a message field
//! from a domain value, by hand: the policy travels as `PrimaryIpVersion` (4 or 6, as
//! operators type it) and is an [`IpPolicy`] everywhere else; addresses travel as bare
//! literals and are [`IpAddr`]s everywhere else.
//!
//! | domain | wire | here |
//! |---|---|---|
//! | [`IpPolicy`] | `gnt.cluster.v1.PrimaryIpVersion` | both ways |
//! | [`Node`], [`Peer`] | `gnt.cluster.v1.NodeAddresses` | both ways (a node: with the policy's rule; a peer to test: as given) |
//! | [`SsconfSet`] | `gnt.cluster.v1.SsconfSet` | both ways |
//! | [`Published`] (a set and its serial) | `gnt.node.v1.WriteSsconfRequest` | both ways |
//! | [`Network`] | `gnt.node.v1.Network`, `gnt.master.v1.NetworkKind` | both ways, out |
//! | [`PingOptions`] and a target, [`PingOutcome`] | `gnt.node.v1.TcpPingRequest`, `TcpPingResponse` | in, out |
//! | [`TimeoutClass`], [`CallFailure`] | `gnt.master.v1.TimeoutClass`, `CallStatus` | both ways, out |
//! | [`JoinOffer`](crate::join::JoinOffer), [`JoinAccepted`](crate::join::JoinAccepted) | `gnt.bootstrap.v1.JoinRequest`, `JoinResult` | both ways |
//!
//! Conversions between a message and a standard type (a `SocketAddr`, say) cannot be trait
//! impls here (neither type is this crate's), so those are domain types of their own
//! ([`JoinAccepted`](crate::join::JoinAccepted)) or plain functions.

mod join;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use gnt_proto::cluster::v1::{NodeAddresses, PrimaryIpVersion, SsconfSet as WireSsconfSet};
use gnt_proto::master::v1::{CallStatus, NetworkKind, TimeoutClass as WireTimeoutClass};
use gnt_proto::node::v1::{
    Network as WireNetwork, PingOutcome as WirePingOutcome, TcpPingRequest, TcpPingResponse,
    WriteSsconfRequest,
};

use crate::error::{Classify, ErrorKind};
use crate::netutils::{Hostname, NameError, PingOptions, PingOutcome, parse_ip, parse_name};
use crate::node::{Network, Node, NodeAddrs, NodeAddrsError, Peer};
use crate::policy::IpPolicy;
use crate::runner::{CallFailure, TimeoutClass};
use crate::ssconf::{Published, SsconfError, SsconfSet, SsconfVersion};

/// A message that does not make a valid domain value.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A field does not parse.
    #[error("invalid {field} '{value}': {reason}")]
    Invalid {
        /// The field, as an operator would name it.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A field parses but is refused (out of bounds, not allowed here).
    #[error("invalid {field}: {reason}")]
    Refused {
        /// The field, as an operator would name it.
        field: &'static str,
        /// Why, with the value.
        reason: String,
    },
    /// A host name that is not valid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A required field is absent.
    #[error("the {0} is missing")]
    Missing(&'static str),
    /// Node addresses that break the policy's rule.
    #[error(transparent)]
    NodeAddrs(#[from] NodeAddrsError),
    /// A listen address that does not fit the policy.
    #[error("bind address {addr} does not fit a {policy} cluster; use {} or an address of this node", policy.bind_wildcard())]
    BindFamily {
        /// The address.
        addr: IpAddr,
        /// The policy.
        policy: IpPolicy,
    },
    /// An ssconf set that does not parse.
    #[error("the ssconf set is unacceptable")]
    Ssconf(#[source] SsconfError),
    /// An ssconf set that says something else than the message it came with.
    #[error("the ssconf set is unacceptable: its {0} contradicts the request")]
    SsconfContradicts(&'static str),
}

impl Classify for WireError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::WrongInput
    }
}

fn invalid(field: &'static str, value: &str, reason: impl ToString) -> WireError {
    WireError::Invalid {
        field,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

/// The request metadata that carries the caller's master epoch on every node procedure
/// but `Version` (fencing: see `gnt.node.v1.NodeAgent`); a node's refusal of an older
/// epoch carries the node's own epoch back under the same key.
pub const MASTER_EPOCH_METADATA: &str = "gnt-master-epoch";

/// Refuses message field `field` for `reason`.
pub fn refused(field: &'static str, reason: impl ToString) -> WireError {
    WireError::Refused {
        field,
        reason: reason.to_string(),
    }
}

/// `value` of message field `field` as a host name.
pub fn hostname(field: &'static str, value: &str) -> Result<Hostname, WireError> {
    Ok(parse_name(field, value)?)
}

/// `value` of message field `field` as an address literal.
pub fn address(field: &'static str, value: &str) -> Result<IpAddr, WireError> {
    parse_ip(value).map_err(|e| invalid(field, value, e))
}

/// `value` of message field `field` (a `uint32` on the wire) as a TCP port, 1 to 65535.
pub fn port(field: &'static str, value: u32) -> Result<u16, WireError> {
    u16::try_from(value)
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| invalid(field, &value.to_string(), "use 1 to 65535"))
}

/// Message field `field` as a positive duration of at most `max`; `None` when unset.
pub fn duration(
    field: &'static str,
    value: Option<prost_types::Duration>,
    max: Duration,
) -> Result<Option<Duration>, WireError> {
    let Some(value) = value else { return Ok(None) };
    let duration = Duration::try_from(value).map_err(|_| refused(field, "must be positive"))?;
    if duration > max {
        return Err(refused(field, format!("at most {}s", max.as_secs())));
    }
    Ok(Some(duration))
}

// === policy ===

impl From<IpPolicy> for PrimaryIpVersion {
    fn from(policy: IpPolicy) -> Self {
        match policy {
            IpPolicy::Ipv4 => Self::PrimaryIpVersion4,
            IpPolicy::HybridIpv6 => Self::PrimaryIpVersion6,
        }
    }
}

impl TryFrom<PrimaryIpVersion> for IpPolicy {
    type Error = WireError;

    fn try_from(version: PrimaryIpVersion) -> Result<Self, WireError> {
        match version {
            PrimaryIpVersion::PrimaryIpVersion4 => Ok(Self::Ipv4),
            PrimaryIpVersion::PrimaryIpVersion6 => Ok(Self::HybridIpv6),
            PrimaryIpVersion::Unspecified => {
                Err(invalid("primary IP version", "unspecified", "use 4 or 6"))
            }
        }
    }
}

// === nodes ===

impl From<&Node> for NodeAddresses {
    fn from(node: &Node) -> Self {
        Self {
            name: node.name.to_string(),
            primary_ip: node.addrs.primary.to_string(),
            secondary_ip: node.addrs.secondary.to_string(),
        }
    }
}

/// A node as a message describes it, under the cluster's policy: an empty secondary is
/// an absent one (the primary, on a single-homed node of an IPv4 cluster).
impl TryFrom<(&NodeAddresses, IpPolicy)> for Node {
    type Error = WireError;

    fn try_from((wire, policy): (&NodeAddresses, IpPolicy)) -> Result<Self, WireError> {
        let name = hostname("node name", &wire.name)?;
        let primary = address("primary address", &wire.primary_ip)?;
        let secondary =
            policy.parse_secondary(Some(wire.secondary_ip.as_str()).filter(|s| !s.is_empty()));
        let addrs = policy.node_addrs(primary, secondary?)?;
        Ok(Self { name, addrs })
    }
}

/// A peer to test: the addresses must parse; the name is taken as given.
impl TryFrom<&NodeAddresses> for Peer {
    type Error = WireError;

    fn try_from(wire: &NodeAddresses) -> Result<Self, WireError> {
        let primary = address("primary address", &wire.primary_ip)?;
        let secondary = match wire.secondary_ip.as_str() {
            "" => primary,
            text => address("secondary address", text)?,
        };
        Ok(Self {
            name: wire.name.clone(),
            addrs: NodeAddrs { primary, secondary },
        })
    }
}

// === ssconf ===

impl From<&SsconfSet> for WireSsconfSet {
    fn from(set: &SsconfSet) -> Self {
        Self {
            values: set.to_wire(),
        }
    }
}

impl TryFrom<WireSsconfSet> for SsconfSet {
    type Error = SsconfError;

    fn try_from(wire: WireSsconfSet) -> Result<Self, SsconfError> {
        Self::from_wire(wire.values)
    }
}

impl From<&Published> for WriteSsconfRequest {
    fn from(published: &Published) -> Self {
        Self {
            ssconf: Some(WireSsconfSet::from(&published.set)),
            serial: published.serial,
            epoch: published.epoch,
        }
    }
}

/// The set and serial a WriteSsconf carries; an absent set is an empty one (which a member
/// then refuses as incomplete).
impl TryFrom<WriteSsconfRequest> for Published {
    type Error = SsconfError;

    fn try_from(request: WriteSsconfRequest) -> Result<Self, SsconfError> {
        let set = SsconfSet::try_from(request.ssconf.unwrap_or_default())?;
        Ok(Self::new(
            set,
            SsconfVersion::new(request.epoch, request.serial),
        ))
    }
}

// === networks and pings ===

impl From<Network> for WireNetwork {
    fn from(network: Network) -> Self {
        match network {
            Network::Primary => Self::Primary,
            Network::Secondary => Self::Secondary,
        }
    }
}

impl TryFrom<WireNetwork> for Network {
    type Error = WireError;

    fn try_from(network: WireNetwork) -> Result<Self, WireError> {
        match network {
            WireNetwork::Primary => Ok(Self::Primary),
            WireNetwork::Secondary => Ok(Self::Secondary),
            WireNetwork::Unspecified => Err(WireError::Missing("network")),
        }
    }
}

impl From<Network> for NetworkKind {
    fn from(network: Network) -> Self {
        match network {
            Network::Primary => Self::Primary,
            Network::Secondary => Self::Secondary,
        }
    }
}

/// What a `TcpPing` request asks: the target and how to ping it, a timeout of at most
/// `max_timeout`.
pub fn ping_request(
    request: &TcpPingRequest,
    max_timeout: Duration,
) -> Result<(SocketAddr, PingOptions), WireError> {
    let target = address("target", &request.target)?;
    let port = port("port", request.port)?;
    let source = match request.source.as_str() {
        "" => None,
        text => Some(address("source", text)?),
    };
    let mut options = PingOptions {
        source,
        live_port_needed: request.live_port_needed,
        ..PingOptions::default()
    };
    if let Some(timeout) = duration("timeout", request.timeout, max_timeout)? {
        options.timeout = timeout;
    }
    Ok((SocketAddr::new(target, port), options))
}

/// The answer to `TcpPing` for `outcome` (alive as the caller asked: refused counts
/// unless `live_port_needed`).
pub fn ping_response(outcome: &PingOutcome, live_port_needed: bool) -> TcpPingResponse {
    let (wire, detail) = match outcome {
        PingOutcome::Connected => (WirePingOutcome::Connected, String::new()),
        PingOutcome::Refused => (WirePingOutcome::Refused, String::new()),
        PingOutcome::TimedOut => (WirePingOutcome::TimedOut, String::new()),
        PingOutcome::Unreachable(text) => (WirePingOutcome::Unreachable, text.clone()),
    };
    TcpPingResponse {
        alive: outcome.is_alive(live_port_needed),
        outcome: wire.into(),
        detail,
    }
}

// === fan-out calls ===

impl From<TimeoutClass> for WireTimeoutClass {
    fn from(class: TimeoutClass) -> Self {
        match class {
            TimeoutClass::Urgent => Self::Urgent,
            TimeoutClass::Fast => Self::Fast,
            TimeoutClass::Normal => Self::Normal,
            TimeoutClass::Slow => Self::Slow,
            TimeoutClass::FourHours => Self::FourHours,
            TimeoutClass::OneDay => Self::OneDay,
        }
    }
}

/// An unspecified class is the default one, as the field's documentation says.
impl From<WireTimeoutClass> for TimeoutClass {
    fn from(class: WireTimeoutClass) -> Self {
        match class {
            WireTimeoutClass::Unspecified | WireTimeoutClass::Urgent => Self::Urgent,
            WireTimeoutClass::Fast => Self::Fast,
            WireTimeoutClass::Normal => Self::Normal,
            WireTimeoutClass::Slow => Self::Slow,
            WireTimeoutClass::FourHours => Self::FourHours,
            WireTimeoutClass::OneDay => Self::OneDay,
        }
    }
}

impl From<&CallFailure> for CallStatus {
    fn from(failure: &CallFailure) -> Self {
        match failure {
            CallFailure::Offline => Self::Offline,
            CallFailure::Refused(_) => Self::Refused,
            CallFailure::TimedOut(_) => Self::TimedOut,
            CallFailure::TlsRejected(_) => Self::TlsRejected,
            CallFailure::Remote { .. } => Self::RemoteError,
            CallFailure::Unreachable(_) => Self::Unreachable,
        }
    }
}

#[cfg(test)]
mod tests;
