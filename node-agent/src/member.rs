//! Member mode: the node procedures of `gnt.node.v1.NodeAgent`.
//!
//! Every call arrives over mutual TLS with the cluster CA (the listener refuses anyone
//! without a certificate of the cluster). On top of that, the procedures accept only the
//! master: a certificate with role (subject OU) `master` whose SHA-256 fingerprint is listed
//! in ssconf's `master_candidates_certs` (Ganeti checks a SHA-1 digest in the same key).
//! Health, reflection and diagnostics stay open to any cluster certificate.

mod master_ip;
mod network_test;
mod upload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use gnt_core::error::{Classify, ErrorKind, to_status};
use gnt_core::netutils::{Hostname, all_interface_addresses, owns_address, tcp_ping};
use gnt_core::node::Node;
use gnt_core::ssconf::{Published, SsconfError, SsconfSet};
use gnt_core::wire::{self, WireError};
use gnt_proto::cluster::v1::{NodeAddresses, PrimaryIpVersion};
use gnt_proto::node::v1::{
    ActivateMasterIpResponse, ChangeMasterNetmaskResponse, DeactivateMasterIpResponse,
    MasterIpRequest,
};
use gnt_proto::node::v1::{
    HasIpAddressRequest, HasIpAddressResponse, InterfaceAddresses, LeaveClusterRequest,
    LeaveClusterResponse, NetworkTestRequest, NetworkTestResponse, NodeInfoRequest,
    NodeInfoResponse, TcpPingRequest, TcpPingResponse, UploadFileRequest, UploadFileResponse,
    VersionRequest, VersionResponse, WriteSsconfRequest, WriteSsconfResponse, node_agent_server,
};
use gnt_transports::join::{NodeState, TokenSource};
use gnt_transports::{PeerIdentity, PeerInfo};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::config::UploadPolicy;

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
    /// SHA-256 digests of the certificates allowed to call procedures (from ssconf).
    pub(crate) masters: Arc<RwLock<Vec<[u8; 32]>>>,
    /// Held by WriteSsconf from writing the set to updating `masters`, so that the set on
    /// disk and the allow-list in memory are always the same one.
    pub(crate) ssconf_writes: tokio::sync::Mutex<()>,
    /// The configuration serial of the set on disk, as `Version` reports it; changed only
    /// under `ssconf_writes`, so WriteSsconf compares with the set it replaces.
    pub(crate) ssconf_serial: AtomicU64,
    /// Where the join token comes from (spent before leaving, if the ledger lacks it).
    pub(crate) tokens: TokenSource,
    /// NetworkTest's pings in flight (`network_test::MAX_PINGS_IN_FLIGHT`).
    pub(crate) pings: tokio::sync::Semaphore,
}

/// The certificates ssconf allows to call procedures, as digests: parsed once here, so a
/// call compares 32 bytes instead of formatting a fingerprint. Never empty.
pub(crate) fn allowed_masters(ssconf: &SsconfSet) -> Result<Vec<[u8; 32]>, SsconfError> {
    ssconf.master_certificate_digests()
}

/// What `Version` answers: the node protocol this agent speaks, and its release (the
/// member's handler adds its ssconf serial).
pub fn version() -> VersionResponse {
    VersionResponse {
        protocol_version: gnt_proto::NODE_PROTOCOL_VERSION,
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
        ssconf_serial: 0,
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

/// Lets a call through only from the master's certificate (`peer` is the call's
/// connection; see `gnt_transports::Gated`).
pub(crate) fn authorize(
    masters: &RwLock<Vec<[u8; 32]>>,
    peer: Option<&PeerInfo>,
) -> Result<(), Status> {
    let allowed = masters.read().unwrap_or_else(|p| p.into_inner());
    check_caller(&allowed, peer.and_then(PeerInfo::identity)).map_err(|refused| {
        tracing::warn!(peer = %shown(peer), reason = %refused, "procedure call refused");
        to_status(&refused)
    })
}

/// Whether `peer` presented one of the allowed master certificates: the connections the
/// member listener never drops (`gnt_transports::Protected`). Quiet, unlike [`authorize`]:
/// the listener asks it about every connection whenever it needs room.
pub(crate) fn is_allowed_master(masters: &RwLock<Vec<[u8; 32]>>, peer: &PeerInfo) -> bool {
    let allowed = masters.read().unwrap_or_else(|p| p.into_inner());
    check_caller(&allowed, peer.identity()).is_ok()
}

/// Whether `identity` is one of the `allowed` master certificates. An empty list allows no
/// one: it never means "any master".
fn check_caller(allowed: &[[u8; 32]], identity: Option<&PeerIdentity>) -> Result<(), CallRefused> {
    let identity = identity.ok_or(CallRefused::NoCertificate)?;
    if identity.role.as_deref() != Some("master") {
        return Err(CallRefused::NotMaster(Box::new(identity.clone())));
    }
    if !allowed.contains(&identity.sha256) {
        return Err(CallRefused::UnknownMaster(Box::new(identity.clone())));
    }
    Ok(())
}

/// Why a caller may not call the node procedures.
#[derive(Debug, thiserror::Error)]
enum CallRefused {
    #[error("node procedures need the master's client certificate")]
    NoCertificate,
    #[error("certificate '{0}' may not call node procedures; only the master may")]
    NotMaster(Box<PeerIdentity>),
    #[error(
        "certificate '{0}' is not the master certificate this node knows (ssconf master_candidates_certs)"
    )]
    UnknownMaster(Box<PeerIdentity>),
}

impl Classify for CallRefused {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PermissionDenied
    }
}

/// Refuses request field `field` for `reason`.
pub(crate) fn bad(field: &'static str, reason: impl ToString) -> Status {
    to_status(&wire::refused(field, reason))
}

/// The status of a request that does not convert.
pub(crate) fn invalid(error: WireError) -> Status {
    to_status(&error)
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
        _request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            ssconf_serial: self.ctx.ssconf_serial.load(Ordering::Acquire),
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
        let Published { set, serial } =
            Published::try_from(request.into_inner()).map_err(|e| to_status(&e))?;
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
        let masters = allowed_masters(&set).map_err(|e| to_status(&e))?;
        let _writing = self.ctx.ssconf_writes.lock().await;
        // Never back: a master working from an older configuration, or a redistribution
        // overtaken by a later one, must not undo a newer set. The same serial is written
        // again (`gnt cluster redist-conf`, a retried push whose answer was lost).
        let current = self.ctx.ssconf_serial.load(Ordering::Acquire);
        if serial < current {
            let refused = SsconfError::OlderSerial {
                current,
                offered: serial,
            };
            tracing::warn!(%peer, reason = %refused, "ssconf write refused");
            return Err(to_status(&refused));
        }
        self.ctx
            .state
            .ssconf()
            .replace(&set, serial)
            .map_err(|e| to_status(&e))?;
        self.ctx.ssconf_serial.store(serial, Ordering::Release);
        *self.ctx.masters.write().unwrap_or_else(|p| p.into_inner()) = masters;
        tracing::info!(%peer, keys = set.len(), serial, "ssconf replaced");
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master_certificate(sha256: [u8; 32]) -> PeerIdentity {
        PeerIdentity {
            common_name: Some("master.example.com".to_owned()),
            role: Some("master".to_owned()),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            sha256,
        }
    }

    #[test]
    fn only_a_listed_master_certificate_may_call_and_an_empty_list_lets_no_one_in() {
        let master = master_certificate([1; 32]);
        assert!(check_caller(&[[1; 32]], Some(&master)).is_ok());
        assert!(matches!(
            check_caller(&[[2; 32]], Some(&master)),
            Err(CallRefused::UnknownMaster(_))
        ));
        // Once read as "no restriction": any master-role certificate of the CA got in.
        assert!(matches!(
            check_caller(&[], Some(&master)),
            Err(CallRefused::UnknownMaster(_))
        ));
        let node = PeerIdentity {
            role: Some("node".to_owned()),
            ..master_certificate([1; 32])
        };
        assert!(matches!(
            check_caller(&[[1; 32]], Some(&node)),
            Err(CallRefused::NotMaster(_))
        ));
        assert!(matches!(
            check_caller(&[[1; 32]], None),
            Err(CallRefused::NoCertificate)
        ));
    }
}
