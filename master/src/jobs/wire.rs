//! Jobs in the master API's terms: a record as `gnt.master.v1.Job`, an outcome as the
//! response of the call that waited for it, a failure as the status that call ends with.

use std::time::Duration;

use gnt_core::error::{ERROR_KIND_METADATA, ErrorKind};
use gnt_core::netutils::Hostname;
use gnt_core::runner::{CallFailure, NodeResult};
use gnt_core::ssconf::nice_cmp;
use gnt_proto::cluster::v1::NodeAddresses;
use gnt_proto::master::v1::{
    AddNodeResponse, CallStatus, DestroyClusterResponse, Job, JobStatus, JobStep,
    ModifyClusterResponse, NodeCallResult, NodeRecord, RedistributeConfigResponse,
    RemoveNodeResponse, RenewCryptoResponse, RenewedNode, job,
};
use tonic::Status;
use tonic::metadata::MetadataValue;

use super::record::{Delivery, JobFailure, JobOutcome, JobRecord, JobState, RenewedRecord};
use crate::master::NodeView;
use crate::operations::redistribute::Redistribution;
use crate::operations::renew_crypto::Renewal;

/// A node as the API shows it.
pub fn node_record(view: &NodeView) -> NodeRecord {
    NodeRecord {
        addresses: Some(NodeAddresses::from(&view.node())),
        master: view.master,
        offline: view.node.offline,
        certificate_sha256: view.node.certificate_sha256.clone(),
        master_candidate: view.node.master_candidate,
        drained: view.node.drained,
    }
}

impl From<JobState> for JobStatus {
    fn from(state: JobState) -> Self {
        match state {
            JobState::Queued => Self::Queued,
            JobState::Running => Self::Running,
            JobState::Succeeded => Self::Succeeded,
            JobState::Failed => Self::Failed,
        }
    }
}

/// What a job that succeeded did, with its warnings, as the call that waited for it
/// answers.
fn result(outcome: &JobOutcome, warnings: &[String]) -> job::Result {
    match outcome {
        JobOutcome::Added { node, serial } => job::Result::Added(AddNodeResponse {
            node: Some(node_record(node)),
            config_serial: *serial,
            warnings: warnings.to_vec(),
        }),
        JobOutcome::Removed { serial, left } => job::Result::Removed(RemoveNodeResponse {
            config_serial: *serial,
            warnings: warnings.to_vec(),
            left: *left,
        }),
        JobOutcome::Modified { node, .. } => job::Result::Modified(node_record(node)),
        JobOutcome::ClusterModified { serial } => {
            job::Result::ClusterModified(ModifyClusterResponse {
                config_serial: *serial,
                warnings: warnings.to_vec(),
            })
        }
        JobOutcome::CryptoRenewed {
            serial,
            renewed,
            pending,
            finished,
        } => job::Result::CryptoRenewed(RenewCryptoResponse {
            config_serial: *serial,
            renewed: renewed
                .iter()
                .map(|done| RenewedNode {
                    name: done.node.clone(),
                    certificate_sha256: done.certificate_sha256.clone(),
                    new_certificate: done.new_certificate,
                })
                .collect(),
            pending: pending.clone(),
            finished: *finished,
            warnings: warnings.to_vec(),
        }),
        JobOutcome::Destroyed(done) => job::Result::Destroyed(DestroyClusterResponse {
            warnings: warnings.to_vec(),
            ..done.into()
        }),
        JobOutcome::Redistributed { serial, nodes } => {
            job::Result::Redistributed(RedistributeConfigResponse {
                config_serial: *serial,
                nodes: nodes.iter().map(NodeCallResult::from).collect(),
            })
        }
    }
}

/// A renewal as its job records it, with its warnings.
pub fn crypto_renewed(renewal: Renewal) -> (JobOutcome, Vec<String>) {
    let outcome = JobOutcome::CryptoRenewed {
        serial: renewal.serial,
        renewed: renewal
            .renewed
            .into_iter()
            .map(|done| RenewedRecord {
                node: done.node.to_string(),
                certificate_sha256: done.certificate_sha256,
                new_certificate: done.new_certificate,
            })
            .collect(),
        pending: renewal.pending.iter().map(ToString::to_string).collect(),
        finished: renewal.finished,
    };
    (outcome, renewal.warnings)
}

/// A redistribution as its job records it: the serial and each node's result, by name.
pub fn redistributed(done: &Redistribution) -> JobOutcome {
    let mut nodes: Vec<Delivery> = done.results.iter().map(delivery).collect();
    nodes.sort_by(|a, b| nice_cmp(&a.node, &b.node));
    JobOutcome::Redistributed {
        serial: done.serial,
        nodes,
    }
}

fn delivery(result: &NodeResult<Hostname, ()>) -> Delivery {
    let (status, failure) = match &result.outcome {
        Ok(()) => (CallStatus::Ok, String::new()),
        Err(CallFailure::Offline) => (CallStatus::Offline, String::new()),
        Err(failure) => (CallStatus::from(failure), failure.to_string()),
    };
    Delivery {
        node: result.key.to_string(),
        status: status.as_str_name().to_owned(),
        failure,
        elapsed_ms: u64::try_from(result.elapsed.as_millis()).unwrap_or(u64::MAX),
    }
}

impl From<&Delivery> for NodeCallResult {
    fn from(delivery: &Delivery) -> Self {
        let status = CallStatus::from_str_name(&delivery.status).unwrap_or(CallStatus::Unspecified);
        Self {
            node: delivery.node.clone(),
            status: status.into(),
            response_json: String::new(),
            failure: delivery.failure.clone(),
            elapsed: prost_types::Duration::try_from(Duration::from_millis(delivery.elapsed_ms))
                .ok(),
        }
    }
}

impl From<&JobRecord> for Job {
    fn from(record: &JobRecord) -> Self {
        let result = record
            .outcome
            .as_ref()
            .map(|outcome| result(outcome, &record.warnings));
        Self {
            id: record.id,
            summary: record.op.summary(),
            status: JobStatus::from(record.state).into(),
            steps: record
                .steps
                .iter()
                .map(|s| JobStep {
                    name: s.step.name().to_owned(),
                    at_unix: s.at,
                    note: s.step.note(),
                })
                .collect(),
            submitted_at_unix: record.submitted_at,
            ended_at_unix: record.ended_at.unwrap_or(0),
            result,
            error: record
                .failure
                .as_ref()
                .map(|f| f.message.clone())
                .unwrap_or_default(),
            error_kind: record
                .failure
                .as_ref()
                .map(|f| f.kind.clone())
                .unwrap_or_default(),
            recovery: record.recovery.clone().unwrap_or_default(),
            warnings: if record.outcome.is_some() {
                record.warnings.clone()
            } else {
                Vec::new()
            },
        }
    }
}

/// The status a call that waited for a failed job ends with: the job's message and kind,
/// as if the call had failed itself.
pub fn failure_status(failure: &JobFailure) -> Status {
    let kind = ErrorKind::from_code(&failure.kind).unwrap_or(ErrorKind::Internal);
    let mut status = Status::new(kind.grpc_code(), failure.message.clone());
    if let Ok(value) = MetadataValue::try_from(kind.code()) {
        status.metadata_mut().insert(ERROR_KIND_METADATA, value);
    }
    status
}
