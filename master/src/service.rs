//! `gnt.master.v1.Master`: the master API, for the `gnt` CLI. Thin: it converts each
//! request to the operation's own terms once, calls the operation
//! ([`operations`](crate::operations)), and converts the result back; shared types cross
//! through `gnt_core::wire`.
//!
//! The API is served on a Unix socket readable by root only: the file's permissions are its
//! authentication, as for Ganeti's master socket.

use std::sync::Arc;
use std::time::Duration;

use gnt_core::error::{Chain, to_status};
use gnt_core::join::JoinToken;
use gnt_core::netutils::Hostname;
use gnt_core::runner::{NodeResult, TimeoutClass};
use gnt_core::ssconf::nice_cmp;
use gnt_proto::cluster::v1::{NodeAddresses, PrimaryIpVersion};
use gnt_proto::master::v1::{
    AddNodeRequest, AddNodeResponse, CallNodesRequest, CallStatus, ClusterInfoRequest,
    ClusterInfoResponse, CreateJoinTokenRequest, CreateJoinTokenResponse, GetNodeRequest,
    ListNodesRequest, ListNodesResponse, ModifyNodeRequest, NetworkKind, NodeCallResult,
    NodeRecord, RemoveNodeRequest, RemoveNodeResponse, VerifyClusterRequest, VerifyClusterResponse,
    VerifyProblem, master_server,
};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status};

use crate::error::MasterError;
use crate::master::{Master, NodeView};
use crate::operations::node_add::AddNode;
use crate::operations::token::TokenError;
use crate::operations::verify::Problem;
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
    tracing::warn!(error = %Chain(&error), "request refused");
    to_status(&error)
}

fn record(view: &NodeView) -> NodeRecord {
    NodeRecord {
        addresses: Some(NodeAddresses::from(&view.node())),
        master: view.master,
        offline: view.node.offline,
        certificate_sha256: view.node.certificate_sha256.clone(),
    }
}

fn problem(problem: Problem) -> VerifyProblem {
    VerifyProblem {
        node: problem.node.to_string(),
        target: problem.target.unwrap_or_default(),
        network: problem
            .network
            .map_or(NetworkKind::Unspecified, NetworkKind::from)
            .into(),
        message: problem.message,
    }
}

fn call_result(result: NodeResult<Hostname, String>) -> NodeCallResult {
    let (status, response_json, failure) = match result.outcome {
        Ok(json) => (CallStatus::Ok, json, String::new()),
        Err(failure) => (
            CallStatus::from(&failure),
            String::new(),
            failure.to_string(),
        ),
    };
    NodeCallResult {
        node: result.key.to_string(),
        status: status.into(),
        response_json,
        failure,
        elapsed: prost_types::Duration::try_from(result.elapsed).ok(),
    }
}

#[tonic::async_trait]
impl master_server::Master for MasterService {
    async fn cluster_info(
        &self,
        _request: Request<ClusterInfoRequest>,
    ) -> Result<Response<ClusterInfoResponse>, Status> {
        let config = self.master.config.snapshot().await;
        Ok(Response::new(ClusterInfoResponse {
            cluster_name: config.cluster_name.to_string(),
            primary_ip_version: PrimaryIpVersion::from(config.policy).into(),
            master: config
                .node(&config.master_node)
                .map(|master| NodeAddresses::from(&master)),
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
            Some(ttl) => {
                Duration::try_from(ttl).map_err(|_| status(MasterError::NegativeTokenLifetime))?
            }
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
        let token: JoinToken = request
            .join_token
            .parse()
            .map_err(|e| status(TokenError::from(e).into()))?;
        let add = AddNode {
            name: request.name,
            secondary: Some(request.secondary_ip).filter(|s| !s.is_empty()),
            token,
        };
        let (view, changed) = self.master.add_node(add).await.map_err(status)?;
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
        let (changed, left) = self
            .master
            .remove_node(&request.into_inner().name)
            .await
            .map_err(status)?;
        Ok(Response::new(RemoveNodeResponse {
            config_serial: changed.serial,
            warnings: changed.warnings,
            left,
        }))
    }

    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let config = self.master.config.snapshot().await;
        let mut views: Vec<NodeView> = config
            .nodes
            .iter()
            .map(|(name, node)| NodeView {
                master: *name == config.master_node,
                name: name.clone(),
                node: node.clone(),
            })
            .collect();
        views.sort_by(|a, b| nice_cmp(a.name.as_str(), b.name.as_str()));
        Ok(Response::new(ListNodesResponse {
            nodes: views.iter().map(record).collect(),
        }))
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

    type CallNodesStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<NodeCallResult, Status>> + Send + 'static>,
    >;

    async fn call_nodes(
        &self,
        request: Request<CallNodesRequest>,
    ) -> Result<Response<Self::CallNodesStream>, Status> {
        let request = request.into_inner();
        let call = PreparedCall::new(&request.procedure, &request.request_json)
            .map_err(|e| status(e.into()))?;
        let class = TimeoutClass::from(request.timeout_class());
        let results = self
            .master
            .call_nodes(call, &request.nodes, class)
            .await
            .map_err(status)?;
        let stream = UnboundedReceiverStream::new(results).map(|result| Ok(call_result(result)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn verify_cluster(
        &self,
        _request: Request<VerifyClusterRequest>,
    ) -> Result<Response<VerifyClusterResponse>, Status> {
        let verification = self.master.verify().await;
        Ok(Response::new(VerifyClusterResponse {
            problems: verification.problems.into_iter().map(problem).collect(),
            nodes_checked: u32::try_from(verification.nodes_checked).unwrap_or(u32::MAX),
        }))
    }
}
