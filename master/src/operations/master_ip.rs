//! The cluster IP from the master's side: activating it on the master node (when
//! `gnt-masterd` starts, and `gnt cluster activate-master-ip`), deactivating it on a given
//! node (when `gnt-masterd` stops, `gnt cluster deactivate-master-ip`, and, for a failover,
//! on the old master), and `gnt cluster modify --master-netmask` (a job: commit,
//! redistribute, then the change made live on the master). The node does the device work
//! (`ActivateMasterIp`, `DeactivateMasterIp`, `ChangeMasterNetmask`); this module says which
//! node, address, prefix length and device, from the configuration.
//!
//! Activation and deactivation change no configuration, so they are not jobs (Ganeti runs
//! them as opcodes holding the big lock): each is one idempotent call to one node.

use std::net::IpAddr;
use std::time::Duration;

use gnt_core::error::{Classify, ErrorKind, kind_of_status};
use gnt_core::netutils::Hostname;
use gnt_core::node::Node;
use gnt_core::runner::CallFailure;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_proto::node::v1::{MasterIpChange, MasterIpRequest};
use gnt_transports::call_failure;

use super::rpc_call::timed;
use crate::channels::NodeChannel;
use crate::config::ClusterConfig;
use crate::error::MasterError;
use crate::jobs::{Progress, Step};
use crate::master::Master;

/// How long a node may take over a cluster IP call: a probe of a second, the device work,
/// and an announcement of half a second, with room to spare.
const MASTER_IP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the cluster IP is after an activation or a deactivation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterIpDone {
    /// The node asked.
    pub node: Hostname,
    /// The cluster IP.
    pub address: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// The device it is on, or was removed from.
    pub netdev: String,
    /// False when there was nothing to do.
    pub changed: bool,
    /// Problems that did not stop it.
    pub warnings: Vec<String>,
}

/// A cluster IP operation that was refused or failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MasterIpError {
    /// The node did not activate the address (Ganeti's words, then the node's reason).
    #[error("Could not activate the master IP on {node}: {reason}")]
    Activate {
        /// The node.
        node: Hostname,
        /// Why.
        #[source]
        reason: NodeAnswer,
    },
    /// The node did not deactivate the address (Ganeti's words, then the node's reason).
    #[error("Could not deactivate the master IP on {node}: {reason}")]
    Deactivate {
        /// The node.
        node: Hostname,
        /// Why.
        #[source]
        reason: NodeAnswer,
    },
    /// The netmask does not fit the cluster's family (Ganeti's words).
    #[error("CIDR netmask ({netmask}) not valid for IPv{version}: use 1 to {}", if *version == 4 { 32 } else { 128 })]
    Netmask {
        /// The netmask.
        netmask: u32,
        /// The cluster's primary IP version.
        version: u8,
    },
    /// `gnt cluster modify` without anything to change.
    #[error("nothing to change: give --master-netmask N or --candidate-pool-size N")]
    NothingToModify,
}

impl Classify for MasterIpError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Activate { reason, .. } | Self::Deactivate { reason, .. } => reason.kind(),
            Self::Netmask { .. } | Self::NothingToModify => ErrorKind::WrongInput,
        }
    }
}

/// Why a node did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum NodeAnswer {
    /// It refused, saying why in its own one line (with its error kind).
    #[error("{message}")]
    Refused {
        /// The node's error kind.
        kind: ErrorKind,
        /// The node's message.
        message: String,
    },
    /// The call did not get an answer.
    #[error(transparent)]
    Call(CallFailure),
}

impl Classify for NodeAnswer {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Refused { kind, .. } => *kind,
            Self::Call(failure) => failure.kind(),
        }
    }
}

impl NodeAnswer {
    fn of(status: &tonic::Status) -> Self {
        match call_failure(status, MASTER_IP_TIMEOUT) {
            // The node's own refusal: its message alone, and its kind, are what the
            // operator needs (not "remote error FAILED_PRECONDITION: ...").
            CallFailure::Remote { message, .. } => Self::Refused {
                kind: kind_of_status(status),
                message,
            },
            failure => Self::Call(failure),
        }
    }
}

impl Master {
    /// Activates the cluster IP on the master node (`gnt cluster activate-master-ip`, and
    /// `gnt-masterd`'s start). Nothing is done if the master has it already; refused if
    /// anything else answers at it.
    pub async fn activate_master_ip(&self) -> Result<MasterIpDone, MasterError> {
        let master = self.config.snapshot().await.master_node;
        let done = self.master_ip_call(&master, Turn::On).await?;
        tracing::debug!(node = %done.node, ip = %done.address, netdev = %done.netdev, added = done.changed, "cluster IP active");
        Ok(done)
    }

    /// Deactivates the cluster IP on `node` (`gnt cluster deactivate-master-ip` and
    /// `gnt-masterd`'s graceful stop ask it of the master; a failover asks it of the old
    /// master). Nothing is done if the node does not have it.
    pub async fn deactivate_master_ip(&self, node: &Hostname) -> Result<MasterIpDone, MasterError> {
        let done = self.master_ip_call(node, Turn::Off).await?;
        tracing::info!(node = %done.node, ip = %done.address, removed = done.changed, "cluster IP deactivated");
        Ok(done)
    }

    /// Asks node `name` to turn the configuration's cluster IP on or off.
    async fn master_ip_call(
        &self,
        name: &Hostname,
        turn: Turn,
    ) -> Result<MasterIpDone, MasterError> {
        let config = self.config.snapshot().await;
        let node = self.node(name.as_str()).await?.node();
        let request = timed(master_ip_request(&config), MASTER_IP_TIMEOUT);
        let failed = |reason| match turn {
            Turn::On => MasterIpError::Activate {
                node: node.name.clone(),
                reason,
            },
            Turn::Off => MasterIpError::Deactivate {
                node: node.name.clone(),
                reason,
            },
        };
        let mut client = self.client(&node).map_err(failed)?;
        let (change, netdev, prefix, warnings) = match turn {
            Turn::On => client.activate_master_ip(request).await.map(|answer| {
                let answer = answer.into_inner();
                let prefix = u8::try_from(answer.prefix_length).ok();
                (answer.change(), answer.netdev, prefix, answer.warnings)
            }),
            Turn::Off => client.deactivate_master_ip(request).await.map(|answer| {
                let answer = answer.into_inner();
                (answer.change(), answer.netdev, None, Vec::new())
            }),
        }
        .map_err(|status| failed(NodeAnswer::of(&status)))?;
        Ok(MasterIpDone {
            node: node.name,
            address: config.master_ip,
            prefix: prefix.unwrap_or(config.master_netmask),
            netdev,
            changed: change == MasterIpChange::Done,
            warnings,
        })
    }

    /// Makes `config`'s master netmask live on the master, records whether it is, and
    /// returns the warning of a failure (Ganeti's words). Asked again after a restart, it
    /// changes nothing that is right already: the node compares with what it has.
    pub(crate) async fn apply_master_netmask(
        &self,
        config: &ClusterConfig,
        progress: &dyn Progress,
    ) -> Option<String> {
        let result = self.change_master_netmask(config).await;
        progress.step_after_commit(Step::NetmaskLive {
            live: result.is_ok(),
        });
        let reason = result.err()?;
        let warning = format!(
            "Could not change the master IP netmask on {}: {reason}",
            config.master_node
        );
        tracing::warn!(%warning, "netmask not changed live");
        Some(warning)
    }

    async fn change_master_netmask(&self, config: &ClusterConfig) -> Result<(), NodeAnswer> {
        let master = config
            .node(&config.master_node)
            .ok_or_else(|| NodeAnswer::Call(CallFailure::Unreachable("not a node".to_owned())))?;
        let request = master_ip_request(config);
        self.client(&master)?
            .change_master_netmask(timed(request, MASTER_IP_TIMEOUT))
            .await
            .map(drop)
            .map_err(|status| NodeAnswer::of(&status))
    }

    /// A client of `node`'s agent over the master's channel to it.
    fn client(&self, node: &Node) -> Result<NodeAgentClient<NodeChannel>, NodeAnswer> {
        self.channels
            .get(node.name.as_str(), node.addrs.primary)
            .map(NodeAgentClient::new)
            .map_err(|e| NodeAnswer::Call(CallFailure::TlsRejected(e.to_string())))
    }
}

/// Which way a cluster IP call goes.
#[derive(Debug, Clone, Copy)]
enum Turn {
    On,
    Off,
}

/// The cluster IP request of `config`: its address, netmask and device.
fn master_ip_request(config: &ClusterConfig) -> MasterIpRequest {
    MasterIpRequest {
        address: config.master_ip.to_string(),
        prefix_length: u32::from(config.master_netmask),
        netdev: config.master_netdev.clone(),
    }
}
