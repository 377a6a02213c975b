//! `gnt.master.v1.Master`: the master API, for the `gnt` CLI. Thin: it converts each
//! request to the operation's own terms once, calls the operation
//! ([`operations`](crate::operations)), and converts the result back; shared types cross
//! through `gnt_core::wire`.
//!
//! Operations that change the cluster run as jobs ([`crate::jobs`]): `AddNode`,
//! `RemoveNode`, `ModifyNode` and `ModifyCluster` submit one and wait for it, and a caller
//! that goes away leaves the job running; `SubmitJob`, `WatchJob`, `GetJob` and `ListJobs`
//! are the queue itself. Read-only calls never wait for a job, and neither do
//! `ActivateMasterIp` and `DeactivateMasterIp`, which change no configuration.
//!
//! The API is served on a Unix socket readable by root only: the file's permissions are its
//! authentication, as for Ganeti's master socket.

use std::sync::Arc;
use std::time::Duration;

use gnt_core::error::{Chain, to_status};
use gnt_core::netutils::Hostname;
use gnt_core::runner::{NodeResult, TimeoutClass};
use gnt_core::ssconf::nice_cmp;
use gnt_proto::cluster::v1::{NodeAddresses, PrimaryIpVersion};
use gnt_proto::master::v1::{
    ActivateMasterIpRequest, AddNodeRequest, AddNodeResponse, CallNodesRequest, CallStatus,
    ClusterInfoRequest, ClusterInfoResponse, CopyFileRequest, CopyFileResponse,
    CreateJoinTokenRequest, CreateJoinTokenResponse, DeactivateMasterIpRequest, GetJobRequest,
    GetNodeRequest, Job, JobReference, ListJobsRequest, ListJobsResponse, ListNodesRequest,
    ListNodesResponse, MasterIpResult, ModifyClusterRequest, ModifyClusterResponse,
    ModifyNodeRequest, NetworkKind, NodeCallResult, NodeRecord, RedistributeConfigRequest,
    RedistributeConfigResponse, RemoveNodeRequest, RemoveNodeResponse, SubmitJobRequest,
    VerifyClusterRequest, VerifyClusterResponse, VerifyCode, VerifyProblem, VerifySeverity,
    WatchJobRequest, job, master_server,
};
use gnt_proto::master::v1::{
    DeleteJoinTokenRequest, DeleteJoinTokenResponse, JoinTokenInfo, ListJoinTokensRequest,
    ListJoinTokensResponse,
};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status};

use crate::error::MasterError;
use crate::jobs::JobQueue;
use crate::jobs::queue::Submission;
use crate::jobs::wire::{failure_status, node_record};
use crate::master::{Master, NodeView};
use crate::operations::master_ip::MasterIpDone;
use crate::operations::verify::{Check, Problem, Severity};
use crate::procedure::PreparedCall;

mod requests;

use requests::{add_submission, cluster_modification, node_flags, submission};

/// The default lifetime of a join token.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// The service.
#[derive(Debug, Clone)]
pub struct MasterService {
    master: Arc<Master>,
    jobs: JobQueue,
}

impl MasterService {
    /// Serves `master`, running changes as jobs of `jobs`.
    pub fn new(master: Arc<Master>, jobs: JobQueue) -> Self {
        Self { master, jobs }
    }

    /// Submits `submission` and waits for the job to end: its record, or the status of
    /// its failure. The job does not depend on this wait: dropping it leaves the job running.
    async fn run(&self, submission: Submission) -> Result<Job, Status> {
        let mut submitted = self.jobs.submit(submission).map_err(status)?;
        let record = submitted
            .record
            .wait_for(|record| record.state.ended())
            .await
            .map_err(|_| status(MasterError::Stopping))?
            .clone();
        match &record.failure {
            Some(failure) => Err(failure_status(failure)),
            None => Ok(Job::from(&record)),
        }
    }
}

fn master_ip_result(done: MasterIpDone) -> MasterIpResult {
    MasterIpResult {
        node: done.node.to_string(),
        address: done.address.to_string(),
        prefix_length: u32::from(done.prefix),
        netdev: done.netdev,
        changed: done.changed,
        warnings: done.warnings,
    }
}

/// The result a job that succeeded carries; a job of another kind is a defect.
fn unexpected(job: &Job) -> Status {
    Status::internal(format!("job {} ended without the expected result", job.id))
}

fn status(error: MasterError) -> Status {
    tracing::warn!(error = %Chain(&error), "request refused");
    to_status(&error)
}

fn problem(problem: Problem) -> VerifyProblem {
    let code = match problem.check {
        Check::NodeNet => VerifyCode::NodeNet,
        Check::NodeSsconf => VerifyCode::NodeSsconf,
        Check::NodeMasterCopy => VerifyCode::NodeMasterCopy,
        Check::MasterIp => VerifyCode::NodeMasterIp,
        Check::ClusterCert => VerifyCode::ClusterCert,
    };
    let severity = match problem.severity {
        Severity::Error => VerifySeverity::Error,
        Severity::Warning => VerifySeverity::Warning,
    };
    VerifyProblem {
        code: code.into(),
        severity: severity.into(),
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
            master_epoch: config.master_epoch,
            candidate_pool_size: config.candidate_pool_size,
            master_netdev: config.master_netdev,
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

    async fn list_join_tokens(
        &self,
        _request: Request<ListJoinTokensRequest>,
    ) -> Result<Response<ListJoinTokensResponse>, Status> {
        let tokens = self
            .master
            .list_tokens()
            .await
            .into_iter()
            .map(|t| JoinTokenInfo {
                id: t.id,
                expires_at_unix: t.expires_at,
                used_by: t.used_by.map(|n| n.to_string()).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(ListJoinTokensResponse { tokens }))
    }

    async fn delete_join_token(
        &self,
        request: Request<DeleteJoinTokenRequest>,
    ) -> Result<Response<DeleteJoinTokenResponse>, Status> {
        let config_serial = self
            .master
            .delete_token(&request.into_inner().id)
            .await
            .map_err(status)?;
        Ok(Response::new(DeleteJoinTokenResponse { config_serial }))
    }

    async fn add_node(
        &self,
        request: Request<AddNodeRequest>,
    ) -> Result<Response<AddNodeResponse>, Status> {
        let job = self.run(add_submission(request.into_inner())?).await?;
        match job.result {
            Some(job::Result::Added(added)) => Ok(Response::new(added)),
            _ => Err(unexpected(&job)),
        }
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        let name = request.into_inner().name;
        let job = self.run(Submission::RemoveNode { name }).await?;
        match job.result {
            Some(job::Result::Removed(removed)) => Ok(Response::new(removed)),
            _ => Err(unexpected(&job)),
        }
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
            nodes: views.iter().map(node_record).collect(),
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
        Ok(Response::new(node_record(&view)))
    }

    async fn modify_node(
        &self,
        request: Request<ModifyNodeRequest>,
    ) -> Result<Response<NodeRecord>, Status> {
        let request = request.into_inner();
        let job = self
            .run(Submission::ModifyNode {
                flags: node_flags(&request)?,
                name: request.name,
            })
            .await?;
        match job.result {
            Some(job::Result::Modified(node)) => Ok(Response::new(node)),
            _ => Err(unexpected(&job)),
        }
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

    async fn copy_file(
        &self,
        request: Request<CopyFileRequest>,
    ) -> Result<Response<CopyFileResponse>, Status> {
        let request = request.into_inner();
        let results = self
            .master
            .copy_file(std::path::Path::new(&request.path), &request.nodes)
            .await
            .map_err(status)?;
        Ok(Response::new(CopyFileResponse {
            results: results
                .into_iter()
                .map(|result| {
                    call_result(NodeResult {
                        key: result.key,
                        outcome: result
                            .outcome
                            .map(|bytes| format!(r#"{{"bytesWritten":"{bytes}"}}"#)),
                        elapsed: result.elapsed,
                    })
                })
                .collect(),
        }))
    }

    async fn verify_cluster(
        &self,
        _request: Request<VerifyClusterRequest>,
    ) -> Result<Response<VerifyClusterResponse>, Status> {
        let verification = self.master.verify().await;
        Ok(Response::new(VerifyClusterResponse {
            problems: verification.problems.into_iter().map(problem).collect(),
            nodes_checked: u32::try_from(verification.nodes_checked).unwrap_or(u32::MAX),
            config_serial: verification.serial,
        }))
    }

    async fn redistribute_config(
        &self,
        _request: Request<RedistributeConfigRequest>,
    ) -> Result<Response<RedistributeConfigResponse>, Status> {
        let job = self.run(Submission::Redistribute).await?;
        match job.result {
            Some(job::Result::Redistributed(done)) => Ok(Response::new(done)),
            _ => Err(unexpected(&job)),
        }
    }

    async fn activate_master_ip(
        &self,
        _request: Request<ActivateMasterIpRequest>,
    ) -> Result<Response<MasterIpResult>, Status> {
        let done = self.master.activate_master_ip().await.map_err(status)?;
        Ok(Response::new(master_ip_result(done)))
    }

    async fn deactivate_master_ip(
        &self,
        _request: Request<DeactivateMasterIpRequest>,
    ) -> Result<Response<MasterIpResult>, Status> {
        let master = self.master.config.snapshot().await.master_node;
        let done = self
            .master
            .deactivate_master_ip(&master)
            .await
            .map_err(status)?;
        Ok(Response::new(master_ip_result(done)))
    }

    async fn modify_cluster(
        &self,
        request: Request<ModifyClusterRequest>,
    ) -> Result<Response<ModifyClusterResponse>, Status> {
        let policy = self.master.config.snapshot().await.policy;
        let job = self
            .run(cluster_modification(&request.into_inner(), policy)?)
            .await?;
        match job.result {
            Some(job::Result::ClusterModified(done)) => Ok(Response::new(done)),
            _ => Err(unexpected(&job)),
        }
    }

    async fn submit_job(
        &self,
        request: Request<SubmitJobRequest>,
    ) -> Result<Response<JobReference>, Status> {
        let policy = self.master.config.snapshot().await.policy;
        let submitted = self
            .jobs
            .submit(submission(request.into_inner(), policy)?)
            .map_err(status)?;
        Ok(Response::new(JobReference {
            job_id: submitted.id,
        }))
    }

    type WatchJobStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<Job, Status>> + Send + 'static>>;

    async fn watch_job(
        &self,
        request: Request<WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let record = self
            .jobs
            .watch(request.into_inner().job_id)
            .map_err(status)?;
        // The record now, then at every change until it has ended. Changes that come
        // faster than the caller reads are seen as one: the record holds every step.
        let stream = futures_util::stream::unfold(Some((record, true)), |state| async move {
            let (mut record, first) = state?;
            if !first && record.changed().await.is_err() {
                return None;
            }
            let job = Job::from(&*record.borrow_and_update());
            let ended = job.ended_at_unix != 0;
            Some((Ok(job), (!ended).then_some((record, false))))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_job(&self, request: Request<GetJobRequest>) -> Result<Response<Job>, Status> {
        let record = self.jobs.get(request.into_inner().job_id).map_err(status)?;
        Ok(Response::new(Job::from(&record)))
    }

    async fn list_jobs(
        &self,
        _request: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        Ok(Response::new(ListJobsResponse {
            jobs: self.jobs.list().iter().map(Job::from).collect(),
        }))
    }
}
