//! Requests that submit jobs, in the operations' own terms: each field checked once, here.

use gnt_core::join::JoinToken;
use gnt_core::netutils::parse_ip;
use gnt_core::policy::IpPolicy;
use gnt_proto::master::v1::{
    AddNodeRequest, ModifyClusterRequest, ModifyNodeRequest, SubmitJobRequest, submit_job_request,
};
use tonic::Status;

use super::status;
use crate::error::MasterError;
use crate::jobs::queue::Submission;
use crate::operations::cluster_modify::ClusterChange;
use crate::operations::master_ip::MasterIpError;
use crate::operations::node_add::AddNode;
use crate::operations::node_modify::NodeFlags;
use crate::operations::renew_crypto::CryptoParts;
use crate::operations::token::TokenError;

/// The operation of a `SubmitJobRequest` in a cluster of `policy`.
pub(super) fn submission(
    request: SubmitJobRequest,
    policy: IpPolicy,
) -> Result<Submission, Status> {
    match request.operation {
        Some(submit_job_request::Operation::AddNode(add)) => add_submission(add),
        Some(submit_job_request::Operation::RemoveNode(remove)) => {
            Ok(Submission::RemoveNode { name: remove.name })
        }
        Some(submit_job_request::Operation::ModifyNode(modify)) => Ok(Submission::ModifyNode {
            flags: node_flags(&modify)?,
            name: modify.name,
        }),
        Some(submit_job_request::Operation::RedistributeConfig(_)) => Ok(Submission::Redistribute),
        Some(submit_job_request::Operation::ModifyCluster(modify)) => {
            cluster_modification(&modify, policy)
        }
        Some(submit_job_request::Operation::RenewCrypto(renew)) => {
            Ok(Submission::RenewCrypto(CryptoParts {
                node_certificates: renew.new_node_certificates,
                master_certificate: renew.new_master_certificate,
                cluster_certificate: renew.new_cluster_certificate,
            }))
        }
        Some(submit_job_request::Operation::DestroyCluster(_)) => Ok(Submission::DestroyCluster),
        None => Err(Status::invalid_argument(
            "the job names no operation (set add_node, remove_node, modify_node, redistribute_config, modify_cluster, renew_crypto or destroy_cluster)",
        )),
    }
}

/// The change a `ModifyNodeRequest` asks for; a secondary address that is no IPv4 address
/// is refused in Ganeti's words.
pub(super) fn node_flags(request: &ModifyNodeRequest) -> Result<NodeFlags, Status> {
    let secondary_ip = match request.secondary_ip.as_str() {
        "" => None,
        text => Some(
            parse_ip(text)
                .ok()
                .filter(std::net::IpAddr::is_ipv4)
                .ok_or_else(|| status(MasterError::SecondaryNotIpv4(text.to_owned())))?,
        ),
    };
    Ok(NodeFlags {
        offline: request.offline,
        drained: request.drained,
        master_candidate: request.master_candidate,
        secondary_ip,
    })
}

/// A `ModifyClusterRequest`, its netmask checked against `policy`'s family (0: unchanged;
/// a pool size of 0 too).
pub(super) fn cluster_modification(
    request: &ModifyClusterRequest,
    policy: IpPolicy,
) -> Result<Submission, Status> {
    let master_netmask = match request.master_netmask {
        0 => None,
        netmask => Some(policy.validate_master_netmask(netmask).map_err(|_| {
            status(
                MasterIpError::Netmask {
                    netmask,
                    version: policy.primary_family().version(),
                }
                .into(),
            )
        })?),
    };
    let candidate_pool_size = match request.candidate_pool_size {
        0 => None,
        size => Some(size),
    };
    Ok(Submission::ModifyCluster(ClusterChange {
        master_netmask,
        candidate_pool_size,
    }))
}

pub(super) fn add_submission(request: AddNodeRequest) -> Result<Submission, Status> {
    // Only a re-add may go without a token: the node proves its membership instead.
    let token = if request.readd && request.join_token.is_empty() {
        None
    } else {
        let token: JoinToken = request
            .join_token
            .parse()
            .map_err(|e| status(TokenError::from(e).into()))?;
        Some(token)
    };
    Ok(Submission::AddNode(AddNode {
        name: request.name,
        secondary: Some(request.secondary_ip).filter(|s| !s.is_empty()),
        token,
        readd: request.readd,
    }))
}
