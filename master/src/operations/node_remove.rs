//! `gnt node remove`: the node is told to leave (it wipes its state and waits for a new
//! Join), then it leaves the configuration, then the other nodes get the new ssconf. A node
//! that is offline or does not answer is removed all the same, with a warning saying how to
//! reset it by hand.

use std::time::Duration;

use gnt_core::runner::CallFailure;
use gnt_proto::node::v1::LeaveClusterRequest;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;

use gnt_core::netutils::Hostname;

use super::Changed;
use super::rpc_call::{failed, timed};
use crate::config::ClusterConfig;
use crate::error::MasterError;
use crate::jobs::{Progress, Step};
use crate::master::{Master, NodeView};

/// How long a node may take to leave.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(30);

impl Master {
    /// Removes node `name` (see the module docs), reporting each step to `progress`; says
    /// whether the node left.
    pub async fn remove_node(
        &self,
        name: &str,
        progress: &dyn Progress,
    ) -> Result<(Changed, bool), MasterError> {
        let view = self.node(name).await?;
        if view.master {
            return Err(MasterError::RemoveMaster);
        }
        progress.step(Step::Leaving)?;
        let left = self.tell_to_leave(&view).await?;
        progress.step(Step::Left { left: left.is_ok() })?;
        let mut warnings = Vec::new();
        if let Err(why) = &left {
            warnings.push(format!(
                "{} {why}; on it, stop gnt-noded and empty its state directory (all but join-ledger)",
                view.name
            ));
        }
        let committed = self.commit_removed(&view.name).await?;
        progress.step_after_commit(Step::Committed {
            serial: committed.serial,
        });
        let changed = self.distribute_change(&committed, warnings, progress).await;
        Ok((changed, left.is_ok()))
    }

    /// Takes node `name` out of the configuration (a node already out is not an error:
    /// recovery may repeat this step).
    pub async fn commit_removed(&self, name: &Hostname) -> Result<ClusterConfig, MasterError> {
        let ((), committed) = self
            .config
            .update(|c| {
                c.nodes.remove(name);
                // A renewal no longer waits for it (the converger finishes one that waited
                // for it alone).
                if let Some(rollover) = &mut c.rollover {
                    rollover.pending.remove(name);
                }
                Ok::<_, MasterError>(())
            })
            .await?;
        self.channels.forget(name.as_str());
        tracing::info!(node = %name, serial = committed.serial, "node removed");
        Ok(committed)
    }

    /// Calls LeaveCluster on the node: `Ok(Err(_))` says why it did not leave, which does
    /// not stop the removal; `Err` is a master that cannot call nodes at all, which does.
    pub(crate) async fn tell_to_leave(
        &self,
        view: &NodeView,
    ) -> Result<Result<(), NotLeft>, MasterError> {
        if view.node.offline {
            return Ok(Err(NotLeft::Offline));
        }
        let channel = self
            .channels
            .get(view.name.as_str(), view.node.primary_ip)?;
        Ok(NodeAgentClient::new(channel)
            .leave_cluster(timed(LeaveClusterRequest {}, LEAVE_TIMEOUT))
            .await
            .map(drop)
            .map_err(|status| NotLeft::Failed(failed(LEAVE_TIMEOUT)(status))))
    }
}

/// Why a removed node was not wiped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotLeft {
    #[error("is offline and was not told to leave")]
    Offline,
    #[error("did not leave ({0})")]
    Failed(CallFailure),
}
