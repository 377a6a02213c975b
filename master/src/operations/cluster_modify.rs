//! `gnt cluster modify --master-netmask N --candidate-pool-size N` (Ganeti's
//! `LUClusterSetParams`, these two parameters): checked, committed together, redistributed;
//! then a new netmask is made live on the master (`master_ip`), and a larger pool is filled
//! from the online nodes that are not candidates yet (Ganeti's `AdjustCandidatePool`,
//! which, like this, only promotes: a smaller pool demotes no one).
//!
//! Nodes to promote are certified before the commit (a probe over mutual TLS: no effect on
//! them), in name order; a node that cannot prove its key is skipped with a warning, and
//! the pool stays short until the next add or `gnt node modify --master-candidate yes`.

use serde::{Deserialize, Serialize};

use super::Changed;
use super::candidates::CandidateCertificate;
use super::master_ip::MasterIpError;
use crate::config::ClusterConfig;
use crate::error::MasterError;
use crate::jobs::{Progress, Step};
use crate::master::Master;
use gnt_core::netutils::Hostname;

/// What a `gnt cluster modify` changes; `None` leaves a parameter as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterChange {
    /// The new master netmask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_netmask: Option<u8>,
    /// The new candidate pool size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_pool_size: Option<u32>,
}

impl ClusterChange {
    /// The change in words.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(netmask) = self.master_netmask {
            parts.push(format!("the master netmask to {netmask}"));
        }
        if let Some(size) = self.candidate_pool_size {
            parts.push(format!("the candidate pool size to {size}"));
        }
        if parts.is_empty() {
            return "modify the cluster (nothing to change)".to_owned();
        }
        format!("set {}", parts.join(" and "))
    }

    /// Whether `config` has these values already.
    pub fn applied_to(&self, config: &ClusterConfig) -> bool {
        self.master_netmask
            .is_none_or(|n| n == config.master_netmask)
            && self
                .candidate_pool_size
                .is_none_or(|n| n == config.candidate_pool_size)
    }
}

impl Master {
    /// `gnt cluster modify` (see the module docs).
    pub async fn modify_cluster(
        &self,
        change: ClusterChange,
        progress: &dyn Progress,
    ) -> Result<Changed, MasterError> {
        if change.master_netmask.is_none() && change.candidate_pool_size.is_none() {
            return Err(MasterIpError::NothingToModify.into());
        }
        let before = self.config.snapshot().await;
        if let Some(netmask) = change.master_netmask {
            let policy = before.policy;
            policy
                .validate_master_netmask(u32::from(netmask))
                .map_err(|_| MasterIpError::Netmask {
                    netmask: u32::from(netmask),
                    version: policy.primary_family().version(),
                })?;
        }
        if change.candidate_pool_size == Some(0) {
            return Err(MasterError::EmptyCandidatePool);
        }
        let mut warnings = Vec::new();
        let promotions = self.pool_promotions(&before, change, &mut warnings).await;
        let ((), committed) = self
            .config
            .update(|config| {
                if let Some(netmask) = change.master_netmask {
                    config.master_netmask = netmask;
                }
                if let Some(size) = change.candidate_pool_size {
                    config.candidate_pool_size = size;
                }
                for (name, certificate) in &promotions {
                    // Looked at again under the lock: only a promotable node is promoted.
                    if let Some(node) = config.nodes.get_mut(name).filter(|n| n.promotable()) {
                        certificate.clone().promote(node);
                    }
                }
                Ok::<_, MasterError>(())
            })
            .await?;
        tracing::info!(change = %change.summary(), promoted = promotions.len(), serial = committed.serial, "cluster modified");
        progress.step_after_commit(Step::Committed {
            serial: committed.serial,
        });
        let mut changed = self.distribute_change(&committed, warnings, progress).await;
        if change.master_netmask.is_some() {
            changed
                .warnings
                .extend(self.apply_master_netmask(&committed, progress).await);
        }
        Ok(changed)
    }

    /// The nodes a larger pool promotes, certified: online, undrained non-candidates in
    /// name order, as many as the pool lacks.
    async fn pool_promotions(
        &self,
        config: &ClusterConfig,
        change: ClusterChange,
        warnings: &mut Vec<String>,
    ) -> Vec<(Hostname, CandidateCertificate)> {
        let Some(size) = change.candidate_pool_size else {
            return Vec::new();
        };
        let wanted = usize::try_from(size)
            .unwrap_or(usize::MAX)
            .saturating_sub(config.candidate_count());
        let mut promoted = Vec::new();
        let eligible = config
            .nodes
            .iter()
            .filter(|(_, node)| node.promotable() && !node.master_candidate);
        for (name, node) in eligible {
            if promoted.len() >= wanted {
                break;
            }
            let Some(target) = config.node(name) else {
                continue;
            };
            match self
                .certify_candidate(&target, &node.certificate_sha256)
                .await
            {
                Ok(certificate) => promoted.push((name.clone(), certificate)),
                Err(error) => warnings.push(format!("{name} not made a master candidate: {error}")),
            }
        }
        promoted
    }
}
