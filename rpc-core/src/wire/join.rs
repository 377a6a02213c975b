//! The Join messages: the master's offer and the node's answer.

use std::net::SocketAddr;

use gnt_proto::bootstrap::v1::{JoinRequest, JoinResult};
use gnt_proto::cluster::v1::SsconfSet as WireSsconfSet;

use super::{WireError, address, hostname, invalid, port};
use crate::join::{JoinAccepted, JoinOffer};
use crate::netutils::{HostPort, format_host_port};
use crate::node::Node;
use crate::policy::IpPolicy;
use crate::ssconf::{SsconfError, SsconfSet, SsconfVersion};

impl From<&JoinOffer> for JoinRequest {
    fn from(offer: &JoinOffer) -> Self {
        Self {
            cluster_name: offer.cluster.to_string(),
            primary_ip_version: gnt_proto::cluster::v1::PrimaryIpVersion::from(offer.policy).into(),
            bind_address: offer.listen.ip().to_string(),
            port: u32::from(offer.listen.port()),
            node: Some((&offer.node).into()),
            master: Some((&offer.master).into()),
            ca_certificate_pem: offer.ca_certificate_pem.clone(),
            node_certificate_pem: offer.node_certificate_pem.clone(),
            ssconf: Some(WireSsconfSet::from(&offer.ssconf)),
            ssconf_serial: offer.ssconf_version.serial,
            ssconf_epoch: offer.ssconf_version.epoch,
        }
    }
}

/// The offer a request makes, if it holds together: the policy (given once as a version,
/// and again implied by the bind address and stated by the ssconf set) must be the same
/// everywhere, the node's addresses must follow the policy's rule, and the ssconf set must
/// describe the same cluster and the same node.
impl TryFrom<&JoinRequest> for JoinOffer {
    type Error = WireError;

    fn try_from(request: &JoinRequest) -> Result<Self, WireError> {
        let cluster = hostname("cluster name", &request.cluster_name)?;
        let policy = IpPolicy::try_from(request.primary_ip_version())?;
        let node = request
            .node
            .as_ref()
            .ok_or(WireError::Missing("node"))
            .and_then(|node| Node::try_from((node, policy)))?;
        let bind = address("bind address", &request.bind_address)?;
        if !policy.allows_bind_address(bind) {
            return Err(WireError::BindFamily { addr: bind, policy });
        }
        let port = port("port", request.port)?;
        let master = request
            .master
            .as_ref()
            .ok_or(WireError::Missing("master"))
            .and_then(|master| Node::try_from((master, policy)))?;
        let ssconf = SsconfSet::try_from(request.ssconf.clone().unwrap_or_default())
            .and_then(|set| set.check_member().map(|()| set))
            .map_err(WireError::Ssconf)?;
        let agrees = |what, result: Result<bool, SsconfError>| match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(WireError::SsconfContradicts(what)),
            Err(e) => Err(WireError::Ssconf(e)),
        };
        agrees("cluster name", ssconf.cluster_name().map(|c| c == cluster))?;
        agrees("policy", ssconf.ip_policy().map(|p| p == policy))?;
        agrees(
            "addresses of this node",
            ssconf
                .node_addresses(&node.name)
                .map(|addrs| addrs == Some(node.addrs)),
        )?;
        Ok(Self {
            cluster,
            policy,
            listen: SocketAddr::new(bind, port),
            node,
            master,
            ca_certificate_pem: request.ca_certificate_pem.clone(),
            node_certificate_pem: request.node_certificate_pem.clone(),
            ssconf,
            ssconf_version: SsconfVersion::new(request.ssconf_epoch, request.ssconf_serial),
        })
    }
}

impl From<&JoinAccepted> for JoinResult {
    fn from(accepted: &JoinAccepted) -> Self {
        Self {
            listen_address: format_host_port(accepted.listen.ip(), accepted.listen.port()),
        }
    }
}

impl TryFrom<&JoinResult> for JoinAccepted {
    type Error = WireError;

    fn try_from(result: &JoinResult) -> Result<Self, WireError> {
        let text = &result.listen_address;
        let parsed = HostPort::parse(text).map_err(|e| invalid("listen address", text, e))?;
        let listen = parsed
            .socket_addr()
            .ok_or_else(|| invalid("listen address", text, "expected an address and a port"))?;
        Ok(Self { listen })
    }
}
