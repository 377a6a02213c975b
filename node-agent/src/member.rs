//! Member mode: the node procedures of `gnt.node.v1.NodeAgent`.
//!
//! Every call arrives over mutual TLS with the cluster CA (the listener refuses anyone
//! without a certificate of the cluster). On top of that, the procedures accept only a
//! listed master of a current epoch (`authority`). Health, reflection and diagnostics stay
//! open to any cluster certificate.

mod authority;
mod certificate;
mod copy;
mod master_ip;
mod network_test;
mod renewal;
mod upload;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use gnt_core::error::to_status;
use gnt_core::netutils::{Hostname, all_interface_addresses, owns_address, tcp_ping};
use gnt_core::node::Node;
use gnt_core::ssconf::{Published, SsconfError, SsconfVersion};
use gnt_core::wire::{self, WireError};
use gnt_proto::cluster::v1::{NodeAddresses, PrimaryIpVersion};
use gnt_proto::node::v1::{
    ActivateMasterIpResponse, ChangeMasterNetmaskResponse, DeactivateMasterIpResponse,
    DropMasterCopyRequest, DropMasterCopyResponse, MasterIpRequest, ReadMasterCopyRequest,
    ReadMasterCopyResponse, WriteMasterCopyRequest, WriteMasterCopyResponse,
};
use gnt_proto::node::v1::{
    HasIpAddressRequest, HasIpAddressResponse, InterfaceAddresses, LeaveClusterRequest,
    LeaveClusterResponse, NetworkTestRequest, NetworkTestResponse, NodeInfoRequest,
    NodeInfoResponse, TcpPingRequest, TcpPingResponse, UploadFileRequest, UploadFileResponse,
    VersionRequest, VersionResponse, WriteSsconfRequest, WriteSsconfResponse, node_agent_server,
};
use gnt_transports::PeerInfo;
use gnt_transports::join::{MasterCopyStore, NodeState, TokenSource};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::config::UploadPolicy;

pub(crate) use authority::{Authority, authorize, is_allowed_master};
pub(crate) use copy::stored_version;
pub(crate) use network_test::ping_slots;
pub(crate) use upload::remove_leftovers;

/// Longest timeout a caller may ask a ping to wait.
pub(crate) const MAX_PING_TIMEOUT: Duration = Duration::from_secs(300);

/// What the member procedures work with.
pub(crate) struct MemberContext {
    pub(crate) state: Arc<NodeState>,
    pub(crate) node_name: Hostname,
    pub(crate) cluster: Hostname,
    pub(crate) started: Instant,
    /// The port node agents listen on (NetworkTest's default target port).
    pub(crate) port: u16,
    pub(crate) upload: UploadPolicy,
    /// Where the agent will wait for a new Join after leaving.
    pub(crate) bootstrap_address: String,
    pub(crate) leave: mpsc::Sender<()>,
    /// Who may call procedures, and the version of the set on disk (from ssconf).
    pub(crate) authority: Arc<RwLock<Authority>>,
    /// Held by WriteSsconf from writing the set to updating `authority`, so that the set
    /// on disk and the authority in memory are always the same one, and WriteSsconf
    /// compares with the set it replaces.
    pub(crate) ssconf_writes: tokio::sync::Mutex<()>,
    /// The master copy, if this node is a master candidate.
    pub(crate) master_copy: MasterCopyStore,
    /// Serialises writes of the master copy, and holds the version of the copy on disk
    /// (so `Version` never reads the file).
    pub(crate) copy_writes: tokio::sync::Mutex<()>,
    /// The version of the master copy on disk; changed only under `copy_writes`.
    pub(crate) copy_version: RwLock<gnt_core::ssconf::SsconfVersion>,
    /// Where the join token comes from (spent before leaving, if the ledger lacks it).
    pub(crate) tokens: TokenSource,
    /// NetworkTest's pings in flight (`network_test::MAX_PINGS_IN_FLIGHT`).
    pub(crate) pings: tokio::sync::Semaphore,
    /// The member listener's TLS, which a renewal replaces for the next handshakes.
    pub(crate) tls: gnt_transports::ServerTls,
    /// Serialises the renewal procedures (the node's key, certificate and trust).
    pub(crate) identity_writes: tokio::sync::Mutex<()>,
}

/// What `Version` answers: the node protocol this agent speaks, and its release (the
/// member's handler adds its ssconf serial).
pub fn version() -> VersionResponse {
    VersionResponse {
        protocol_version: gnt_proto::NODE_PROTOCOL_VERSION,
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
        ..VersionResponse::default()
    }
}

/// Who made a call, for the log lines that matter at info level (per-call spans are
/// debug-level; see `gnt_transports::GrpcServer`).
pub(crate) fn caller<T>(request: &Request<T>) -> String {
    shown(PeerInfo::of(request))
}

fn shown(peer: Option<&PeerInfo>) -> String {
    peer.map_or_else(|| "unknown".to_owned(), ToString::to_string)
}

/// Refuses request field `field` for `reason`.
pub(crate) fn bad(field: &'static str, reason: impl ToString) -> Status {
    to_status(&wire::refused(field, reason))
}

/// The status of a request that does not convert.
pub(crate) fn invalid(error: WireError) -> Status {
    to_status(&error)
}

/// Whether a set of version `offered` naming master `offered_master` may replace the
/// node's set of version `current` naming `current_master`: never an older one, and within
/// one epoch never one naming another master (two failovers that chose the same epoch: the
/// first to reach the node keeps it).
fn check_replacement(
    current: SsconfVersion,
    current_master: &Hostname,
    offered: SsconfVersion,
    offered_master: &Hostname,
) -> Result<(), SsconfError> {
    if offered < current {
        return Err(if offered.epoch < current.epoch {
            SsconfError::OlderEpoch { current, offered }
        } else {
            SsconfError::OlderSerial { current, offered }
        });
    }
    if offered.epoch == current.epoch && offered_master != current_master {
        return Err(SsconfError::EpochTaken {
            epoch: current.epoch,
            current: current_master.to_string(),
            offered: offered_master.to_string(),
        });
    }
    Ok(())
}

/// The procedures.
#[derive(Clone)]
pub(crate) struct NodeAgentService {
    ctx: Arc<MemberContext>,
}

impl NodeAgentService {
    pub(crate) fn new(ctx: MemberContext) -> Self {
        Self { ctx: Arc::new(ctx) }
    }
}

#[tonic::async_trait]
impl node_agent_server::NodeAgent for NodeAgentService {
    async fn version(
        &self,
        request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        let (ssconf, master) = {
            let authority = self.ctx.authority.read().unwrap_or_else(|p| p.into_inner());
            (authority.version, authority.master.to_string())
        };
        let copy = *self
            .ctx
            .copy_version
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let asked = request.get_ref();
        // An unreadable certificate is left out rather than failing the call: the master's
        // other checks still get the rest, and verify reports the missing description.
        let certificate = asked
            .certificates
            .then(|| certificate::describe(&self.ctx.state))
            .and_then(|described| {
                described
                    .inspect_err(|e| {
                        tracing::warn!(error = %gnt_core::error::Chain(e), "cannot describe the node certificate");
                    })
                    .ok()
            });
        Ok(Response::new(VersionResponse {
            ssconf_serial: ssconf.serial,
            master_epoch: ssconf.epoch,
            master_node: master,
            master_copy_epoch: copy.epoch,
            master_copy_serial: copy.serial,
            master_daemon_running: asked.master_role && copy::master_daemon_running(&self.ctx),
            certificate_not_after: certificate.as_ref().map_or(0, |c| c.not_after),
            certificate_sha256: certificate.map(|c| c.sha256).unwrap_or_default(),
            ..version()
        }))
    }

    async fn node_info(
        &self,
        _request: Request<NodeInfoRequest>,
    ) -> Result<Response<NodeInfoResponse>, Status> {
        let ctx = &self.ctx;
        let ssconf = ctx.state.ssconf().read().map_err(|e| to_status(&e))?;
        let policy = ssconf.ip_policy().map_err(|e| to_status(&e))?;
        let addresses = ssconf
            .node_addresses(&ctx.node_name)
            .map_err(|e| to_status(&e))?
            .map(|addrs| {
                NodeAddresses::from(&Node {
                    name: ctx.node_name.clone(),
                    addrs,
                })
            });
        let interfaces = all_interface_addresses()
            .map_err(|e| to_status(&e))?
            .into_iter()
            .map(|(name, addrs)| InterfaceAddresses {
                interface: name,
                ipv4: addrs.ipv4.iter().map(ToString::to_string).collect(),
                ipv6: addrs.ipv6.iter().map(ToString::to_string).collect(),
            })
            .collect();
        let uptime = ctx.started.elapsed();
        Ok(Response::new(NodeInfoResponse {
            name: ctx.node_name.to_string(),
            primary_ip_version: PrimaryIpVersion::from(policy).into(),
            addresses,
            interfaces,
            uptime: prost_types::Duration::try_from(uptime).ok(),
        }))
    }

    async fn write_ssconf(
        &self,
        request: Request<WriteSsconfRequest>,
    ) -> Result<Response<WriteSsconfResponse>, Status> {
        let peer = caller(&request);
        let published = Published::try_from(request.into_inner()).map_err(|e| to_status(&e))?;
        let set = &published.set;
        // A partial set would leave this node running on defaults (no allowed master, the
        // IPv4 policy): refused whole, before anything is written.
        set.check_member().map_err(|e| to_status(&e))?;
        let offered = set.cluster_name().map_err(|e| to_status(&e))?;
        if offered != self.ctx.cluster {
            return Err(to_status(&SsconfError::ClusterMismatch {
                current: self.ctx.cluster.to_string(),
                offered: offered.to_string(),
            }));
        }
        let authority = Authority::of(&published).map_err(|e| to_status(&e))?;
        let _writing = self.ctx.ssconf_writes.lock().await;
        // Never back: a master working from an older configuration, or a redistribution
        // overtaken by a later one, must not undo a newer set; nor may a master of an older
        // epoch (one a failover replaced). The same version is written again (`gnt cluster
        // redist-conf`, a retried push whose answer was lost).
        let (current, current_master) = {
            let held = self.ctx.authority.read().unwrap_or_else(|p| p.into_inner());
            (held.version, held.master.clone())
        };
        let offered = published.version();
        if let Err(refused) =
            check_replacement(current, &current_master, offered, &authority.master)
        {
            tracing::warn!(%peer, reason = %refused, "ssconf write refused");
            return Err(to_status(&refused));
        }
        self.ctx
            .state
            .ssconf()
            .replace(set, offered)
            .map_err(|e| to_status(&e))?;
        if offered.epoch > current.epoch {
            tracing::warn!(%peer, master = %authority.master, epoch = offered.epoch, "a new master took over");
        }
        *self
            .ctx
            .authority
            .write()
            .unwrap_or_else(|p| p.into_inner()) = authority;
        tracing::info!(%peer, keys = set.len(), version = %offered, "ssconf replaced");
        Ok(Response::new(WriteSsconfResponse {
            keys_written: u32::try_from(set.len()).unwrap_or(u32::MAX),
        }))
    }

    async fn has_ip_address(
        &self,
        request: Request<HasIpAddressRequest>,
    ) -> Result<Response<HasIpAddressResponse>, Status> {
        let addr = wire::address("address", &request.into_inner().address).map_err(invalid)?;
        Ok(Response::new(HasIpAddressResponse {
            owned: owns_address(addr),
        }))
    }

    async fn tcp_ping(
        &self,
        request: Request<TcpPingRequest>,
    ) -> Result<Response<TcpPingResponse>, Status> {
        let request = request.into_inner();
        let (target, options) = wire::ping_request(&request, MAX_PING_TIMEOUT).map_err(invalid)?;
        let outcome = tcp_ping(target, &options)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(wire::ping_response(
            &outcome,
            options.live_port_needed,
        )))
    }

    async fn network_test(
        &self,
        request: Request<NetworkTestRequest>,
    ) -> Result<Response<NetworkTestResponse>, Status> {
        let request = request.into_inner();
        let verdicts = network_test::run(&self.ctx, request).await?;
        Ok(Response::new(NetworkTestResponse { verdicts }))
    }

    async fn upload_file(
        &self,
        request: Request<Streaming<UploadFileRequest>>,
    ) -> Result<Response<UploadFileResponse>, Status> {
        let peer = caller(&request);
        let written = upload::receive(&self.ctx, &peer, request.into_inner()).await?;
        Ok(Response::new(UploadFileResponse {
            bytes_written: written,
        }))
    }

    async fn write_master_copy(
        &self,
        request: Request<WriteMasterCopyRequest>,
    ) -> Result<Response<WriteMasterCopyResponse>, Status> {
        let peer = caller(&request);
        copy::write(&self.ctx, &peer, request.into_inner()).await?;
        Ok(Response::new(WriteMasterCopyResponse {}))
    }

    async fn drop_master_copy(
        &self,
        request: Request<DropMasterCopyRequest>,
    ) -> Result<Response<DropMasterCopyResponse>, Status> {
        let dropped = copy::drop_copy(&self.ctx, &caller(&request)).await?;
        Ok(Response::new(DropMasterCopyResponse { dropped }))
    }

    async fn read_master_copy(
        &self,
        _request: Request<ReadMasterCopyRequest>,
    ) -> Result<Response<ReadMasterCopyResponse>, Status> {
        copy::read(&self.ctx).map(Response::new)
    }

    async fn leave_cluster(
        &self,
        request: Request<LeaveClusterRequest>,
    ) -> Result<Response<LeaveClusterResponse>, Status> {
        // Its token must never join this node again, whatever the ledger knew until now.
        self.ctx
            .state
            .spend_unrecorded_token(&self.ctx.tokens, self.ctx.cluster.as_str());
        self.ctx.state.wipe().map_err(|e| to_status(&e))?;
        tracing::info!(peer = %caller(&request), cluster = %self.ctx.cluster, "left the cluster; returning to bootstrap mode");
        let _ = self.ctx.leave.send(()).await;
        Ok(Response::new(LeaveClusterResponse {
            bootstrap_address: self.ctx.bootstrap_address.clone(),
        }))
    }

    async fn activate_master_ip(
        &self,
        request: Request<MasterIpRequest>,
    ) -> Result<Response<ActivateMasterIpResponse>, Status> {
        master_ip::activate(&self.ctx, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn deactivate_master_ip(
        &self,
        request: Request<MasterIpRequest>,
    ) -> Result<Response<DeactivateMasterIpResponse>, Status> {
        master_ip::deactivate(&self.ctx, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn change_master_netmask(
        &self,
        request: Request<MasterIpRequest>,
    ) -> Result<Response<ChangeMasterNetmaskResponse>, Status> {
        master_ip::change_netmask(&self.ctx, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn prepare_node_key(
        &self,
        _request: Request<gnt_proto::node::v1::PrepareNodeKeyRequest>,
    ) -> Result<Response<gnt_proto::node::v1::PrepareNodeKeyResponse>, Status> {
        renewal::prepare_key(&self.ctx).await.map(Response::new)
    }

    async fn install_node_certificate(
        &self,
        request: Request<gnt_proto::node::v1::InstallNodeCertificateRequest>,
    ) -> Result<Response<gnt_proto::node::v1::InstallNodeCertificateResponse>, Status> {
        renewal::install(&self.ctx, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn write_trust(
        &self,
        request: Request<gnt_proto::node::v1::WriteTrustRequest>,
    ) -> Result<Response<gnt_proto::node::v1::WriteTrustResponse>, Status> {
        let caller = PeerInfo::of(&request).cloned();
        renewal::write_trust(&self.ctx, caller.as_ref(), request.into_inner())
            .await
            .map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_of_the_same_epoch_naming_another_master_is_refused() {
        let node2 = Hostname::parse("node2.example.com").unwrap();
        let node3 = Hostname::parse("node3.example.com").unwrap();
        let v = SsconfVersion::new;
        assert!(check_replacement(v(3, 5), &node2, v(3, 5), &node2).is_ok());
        assert!(check_replacement(v(3, 5), &node2, v(3, 6), &node2).is_ok());
        assert!(check_replacement(v(3, 5), &node2, v(4, 1), &node3).is_ok());
        assert!(matches!(
            check_replacement(v(3, 5), &node2, v(2, 9), &node2),
            Err(SsconfError::OlderEpoch { .. })
        ));
        assert!(matches!(
            check_replacement(v(3, 5), &node2, v(3, 4), &node2),
            Err(SsconfError::OlderSerial { .. })
        ));
        // node3 chose epoch 3 too, at the same moment as node2, whose set came first.
        for serial in [5, 6] {
            let refused = check_replacement(v(3, 5), &node2, v(3, serial), &node3).unwrap_err();
            assert!(
                refused.to_string().starts_with(
                    "this node's ssconf of master epoch 3 names node2.example.com as master, not node3.example.com"
                ),
                "{refused}"
            );
        }
    }
}
