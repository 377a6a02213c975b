//! Jobs in the master API's terms: a record as `gnt.master.v1.Job`, an outcome as the
//! response of the call that waited for it, a failure as the status that call ends with.

use gnt_core::error::{ERROR_KIND_METADATA, ErrorKind};
use gnt_proto::cluster::v1::NodeAddresses;
use gnt_proto::master::v1::{
    AddNodeResponse, Job, JobStatus, JobStep, NodeRecord, RemoveNodeResponse, job,
};
use tonic::Status;
use tonic::metadata::MetadataValue;

use super::record::{JobFailure, JobOutcome, JobRecord, JobState};
use crate::master::NodeView;

/// A node as the API shows it.
pub fn node_record(view: &NodeView) -> NodeRecord {
    NodeRecord {
        addresses: Some(NodeAddresses::from(&view.node())),
        master: view.master,
        offline: view.node.offline,
        certificate_sha256: view.node.certificate_sha256.clone(),
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
