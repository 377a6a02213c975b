//! `gnt.master.v1.Master`: the master API, for the `gnt` CLI. Thin: it converts messages and
//! errors; the work is in [`operations`](crate::operations).
//!
//! The API is served on a Unix socket readable by root only: the file's permissions are its
//! authentication, as for Ganeti's master socket.

use std::sync::Arc;
use std::time::Duration;

use gnt_core::error::to_status;
use gnt_core::runner::{CallFailure, TimeoutClass as RunnerClass};
use gnt_proto::cluster::v1::{NodeAddresses, PrimaryIpVersion};
use gnt_proto::master::v1::{
    AddNodeRequest, AddNodeResponse, CallNodesRequest, CallStatus, ClusterInfoRequest,
    ClusterInfoResponse, CreateJoinTokenRequest, CreateJoinTokenResponse, GetNodeRequest,
    ListNodesRequest, ListNodesResponse, ModifyNodeRequest, NetworkKind, NodeCallResult,
    NodeRecord, RemoveNodeRequest, RemoveNodeResponse, TimeoutClass, VerifyClusterRequest,
    VerifyClusterResponse, VerifyProblem, master_server,
};
use gnt_proto::node::v1::Network;
use gnt_transports::call_failure;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status};

use crate::error::MasterError;
use crate::operations::{Master, NodeView, fan_out_on};
use crate::procedure::PreparedCall;

/// The default lifetime of a join token.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// The service.
#[derive(Debug, Clone)]
pub struct MasterService {
    master: Arc<Master>,
}

impl MasterService {
    /// Serves `master`.
    pub fn new(master: Arc<Master>) -> Self {
        Self { master }
    }
}

fn status(error: MasterError) -> Status {
    tracing::warn!(error = %gnt_core::error::Chain(&error), "request refused");
    to_status(&error)
}

fn record(view: &NodeView) -> NodeRecord {
    NodeRecord {
        addresses: Some(NodeAddresses {
            name: view.name.clone(),
            primary_ip: view.node.primary_ip.to_string(),
            secondary_ip: view.node.secondary_ip.to_string(),
        }),
        master: view.master,
        offline: view.node.offline,
        certificate_sha256: view.node.certificate_sha256.clone(),
    }
}

fn runner_class(class: TimeoutClass) -> RunnerClass {
    match class {
        TimeoutClass::Unspecified | TimeoutClass::Urgent => RunnerClass::Urgent,
        TimeoutClass::Fast => RunnerClass::Fast,
        TimeoutClass::Normal => RunnerClass::Normal,
        TimeoutClass::Slow => RunnerClass::Slow,
        TimeoutClass::FourHours => RunnerClass::FourHours,
        TimeoutClass::OneDay => RunnerClass::OneDay,
    }
}

/// A runner failure on the wire.
pub fn wire_failure(failure: &CallFailure) -> CallStatus {
    match failure {
        CallFailure::Offline => CallStatus::Offline,
        CallFailure::Refused(_) => CallStatus::Refused,
        CallFailure::TimedOut(_) => CallStatus::TimedOut,
        CallFailure::TlsRejected(_) => CallStatus::TlsRejected,
        CallFailure::Remote { .. } => CallStatus::RemoteError,
        _ => CallStatus::Unreachable,
    }
}

#[tonic::async_trait]
impl master_server::Master for MasterService {
    async fn cluster_info(
        &self,
        _request: Request<ClusterInfoRequest>,
    ) -> Result<Response<ClusterInfoResponse>, Status> {
        let config = self.master.config.snapshot().await;
        let master = config.master().cloned();
        Ok(Response::new(ClusterInfoResponse {
            cluster_name: config.cluster_name.clone(),
            primary_ip_version: if config.primary_ip_version == 6 {
                PrimaryIpVersion::PrimaryIpVersion6
            } else {
                PrimaryIpVersion::PrimaryIpVersion4
            }
            .into(),
            master: master.map(|m| NodeAddresses {
                name: config.master_node.clone(),
                primary_ip: m.primary_ip.to_string(),
                secondary_ip: m.secondary_ip.to_string(),
            }),
            master_ip: config.master_ip.to_string(),
            master_netmask: u32::from(config.master_netmask),
            config_serial: config.serial,
            node_count: u32::try_from(config.nodes.len()).unwrap_or(u32::MAX),
            node_port: u32::from(config.node_port),
        }))
    }

    async fn create_join_token(
        &self,
        request: Request<CreateJoinTokenRequest>,
    ) -> Result<Response<CreateJoinTokenResponse>, Status> {
        let ttl = match request.into_inner().ttl {
            None => DEFAULT_TOKEN_TTL,
            Some(ttl) => Duration::try_from(ttl).map_err(|_| {
                status(MasterError::InvalidArgument {
                    what: "token lifetime",
                    reason: "must be positive".to_owned(),
                })
            })?,
        };
        let (token, expires_at) = self.master.create_token(ttl).await.map_err(status)?;
        Ok(Response::new(CreateJoinTokenResponse {
            token: token.expose(),
            expires_at_unix: expires_at,
            token_id: token.id().to_owned(),
        }))
    }

    async fn add_node(
        &self,
        request: Request<AddNodeRequest>,
    ) -> Result<Response<AddNodeResponse>, Status> {
        let request = request.into_inner();
        let secondary = Some(request.secondary_ip.as_str()).filter(|s| !s.is_empty());
        let (view, changed) = self
            .master
            .add_node(&request.name, secondary, &request.join_token)
            .await
            .map_err(status)?;
        Ok(Response::new(AddNodeResponse {
            node: Some(record(&view)),
            config_serial: changed.serial,
            warnings: changed.warnings,
        }))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        let changed = self
            .master
            .remove_node(&request.into_inner().name)
            .await
            .map_err(status)?;
        Ok(Response::new(RemoveNodeResponse {
            config_serial: changed.serial,
            warnings: changed.warnings,
        }))
    }

    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let config = self.master.config.snapshot().await;
        let mut nodes: Vec<NodeRecord> = config
            .nodes
            .iter()
            .map(|(name, node)| {
                record(&NodeView {
                    name: name.clone(),
                    node: node.clone(),
                    master: *name == config.master_node,
                })
            })
            .collect();
        nodes.sort_by(|a, b| {
            let name = |r: &NodeRecord| {
                r.addresses
                    .as_ref()
                    .map(|a| a.name.clone())
                    .unwrap_or_default()
            };
            gnt_core::ssconf::nice_cmp(&name(a), &name(b))
        });
        Ok(Response::new(ListNodesResponse { nodes }))
    }

    async fn get_node(
        &self,
        request: Request<GetNodeRequest>,
    ) -> Result<Response<NodeRecord>, Status> {
        let view = self
            .master
            .node(&request.into_inner().name)
            .await
            .map_err(status)?;
        Ok(Response::new(record(&view)))
    }

    async fn modify_node(
        &self,
        request: Request<ModifyNodeRequest>,
    ) -> Result<Response<NodeRecord>, Status> {
        let request = request.into_inner();
        let (view, changed) = self
            .master
            .set_offline(&request.name, request.offline)
            .await
            .map_err(status)?;
        for warning in &changed.warnings {
            tracing::warn!(%warning, "after modifying a node");
        }
        Ok(Response::new(record(&view)))
    }

    type CallNodesStream = UnboundedReceiverStream<Result<NodeCallResult, Status>>;

    async fn call_nodes(
        &self,
        request: Request<CallNodesRequest>,
    ) -> Result<Response<Self::CallNodesStream>, Status> {
        let request = request.into_inner();
        let call = PreparedCall::new(&request.procedure, &request.request_json)
            .map_err(|e| status(e.into()))?;
        let class = runner_class(request.timeout_class());
        let config = self.master.config.snapshot().await;
        let names: Option<Vec<String>> = if request.nodes.is_empty() {
            None
        } else {
            let mut names = Vec::new();
            for name in &request.nodes {
                names.push(self.master.node(name).await.map_err(status)?.name);
            }
            Some(names)
        };
        // Unbounded, but never larger than one small result per node: the runner's callback
        // cannot wait for a slow client, and no result may be dropped.
        let (tx, rx) = mpsc::unbounded_channel();
        let master = self.master.clone();
        tokio::spawn(async move {
            fan_out_on(
                &master.channels,
                &config,
                names.as_deref(),
                class,
                |channel, timeout| {
                    let call = call.clone();
                    async move {
                        call.call(channel, timeout)
                            .await
                            .map_err(|s| call_failure(&s, timeout))
                    }
                },
                |result| {
                    let (status, response_json, failure) = match &result.outcome {
                        Ok(json) => (CallStatus::Ok, json.clone(), String::new()),
                        Err(failure) => (wire_failure(failure), String::new(), failure.to_string()),
                    };
                    let message = NodeCallResult {
                        node: result.key.clone(),
                        status: status.into(),
                        response_json,
                        failure,
                        elapsed: prost_types::Duration::try_from(result.elapsed).ok(),
                    };
                    // The client may have gone; the remaining results then go nowhere.
                    let _ = tx.send(Ok(message));
                },
            )
            .await;
        });
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }

    async fn verify_cluster(
        &self,
        _request: Request<VerifyClusterRequest>,
    ) -> Result<Response<VerifyClusterResponse>, Status> {
        let verification = self.master.verify().await;
        let problems = verification
            .problems
            .into_iter()
            .map(|p| VerifyProblem {
                node: p.node,
                target: p.target.unwrap_or_default(),
                network: match p.network {
                    Some(Network::Primary) => NetworkKind::Primary,
                    Some(Network::Secondary) => NetworkKind::Secondary,
                    _ => NetworkKind::Unspecified,
                }
                .into(),
                message: p.message,
            })
            .collect();
        Ok(Response::new(VerifyClusterResponse {
            problems,
            nodes_checked: u32::try_from(verification.nodes_checked).unwrap_or(u32::MAX),
        }))
    }
}
