//! `gnt node modify --offline yes|no --master-candidate yes|no`: Ganeti's node flags.
//!
//! - An offline node gets no traffic at all; the change reaches every online node's ssconf.
//! - A master candidate holds a copy of what a master needs ([`super::candidates`]).
//!
//! As in Ganeti: at most one flag may become "yes" at once (an offline node cannot be a
//! candidate), the master's flags change only by failover, going offline demotes a
//! candidate, and a node coming back online becomes a candidate if the pool has room.
//! A node is certified as a candidate before the commit (a probe over mutual TLS, no
//! effect on the node), so a node that cannot prove its key changes nothing.

use serde::{Deserialize, Serialize};

use super::Changed;
use super::candidates::{demote, pool_has_room};
use crate::error::MasterError;
use crate::jobs::{Progress, Step};
use crate::master::{Master, NodeView};

/// The flags a modify changes; `None` leaves one as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFlags {
    /// The offline flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<bool>,
    /// The master-candidate flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_candidate: Option<bool>,
}

impl NodeFlags {
    /// The change in words (`offline`, `a master candidate`, ...).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(offline) = self.offline {
            parts.push(if offline { "offline" } else { "online" });
        }
        if let Some(candidate) = self.master_candidate {
            parts.push(if candidate {
                "a master candidate"
            } else {
                "not a master candidate"
            });
        }
        parts.join(" and ")
    }

    /// Whether `view` has these flags already.
    pub fn applied_to(&self, view: &NodeView) -> bool {
        self.offline.is_none_or(|o| o == view.node.offline)
            && self
                .master_candidate
                .is_none_or(|c| c == view.node.master_candidate)
    }

    fn check(&self, view: &NodeView) -> Result<(), MasterError> {
        if self.offline.is_none() && self.master_candidate.is_none() {
            return Err(MasterError::NoFlags);
        }
        if self.offline == Some(true) && self.master_candidate == Some(true) {
            // Ganeti's words.
            return Err(MasterError::TwoStates);
        }
        if view.master {
            return Err(if self.offline == Some(true) {
                MasterError::OfflineMaster
            } else {
                MasterError::MasterRole
            });
        }
        let offline_after = self.offline.unwrap_or(view.node.offline);
        if self.master_candidate == Some(true) && offline_after {
            return Err(MasterError::OfflineCandidate(view.name.clone()));
        }
        Ok(())
    }
}

impl Master {
    /// Changes node `name`'s flags, reporting each step to `progress`.
    pub async fn modify_node(
        &self,
        name: &str,
        flags: NodeFlags,
        progress: &dyn Progress,
    ) -> Result<(NodeView, Changed), MasterError> {
        let view = self.node(name).await?;
        flags.check(&view)?;
        let mut warnings = Vec::new();
        let going_online = flags.offline == Some(false) && view.node.offline;
        let wants_candidate = match flags.master_candidate {
            Some(wanted) => wanted,
            None if flags.offline == Some(true) => false,
            None if going_online && !view.node.master_candidate => {
                let config = self.config.snapshot().await;
                pool_has_room(&config)
            }
            None => view.node.master_candidate,
        };
        let certificate = if wants_candidate && !view.node.master_candidate {
            match self
                .certify_candidate(&view.node(), &view.node.certificate_sha256)
                .await
            {
                Ok(certificate) => Some(certificate),
                // Asked for: the modify fails and changes nothing.
                Err(error) if flags.master_candidate == Some(true) => return Err(error),
                // Only the pool's wish: the node comes back online all the same.
                Err(error) => {
                    warnings.push(format!("not made a master candidate: {error}"));
                    None
                }
            }
        } else {
            None
        };
        let was_candidate = view.node.master_candidate;
        let (node, committed) = self
            .config
            .update(|c| {
                // Looked up again under the lock: it may have been removed meanwhile.
                let node = c
                    .nodes
                    .get_mut(&view.name)
                    .ok_or_else(|| MasterError::UnknownNode(view.name.to_string()))?;
                if let Some(offline) = flags.offline {
                    node.offline = offline;
                }
                if let Some(certificate) = certificate.clone() {
                    certificate.promote(node);
                } else if !wants_candidate {
                    demote(node);
                }
                Ok::<_, MasterError>(node.clone())
            })
            .await?;
        tracing::info!(node = %view.name, change = %flags.summary(), master_candidate = node.master_candidate, serial = committed.serial, "node modified");
        progress.step_after_commit(Step::Committed {
            serial: committed.serial,
        });
        if was_candidate && !node.master_candidate && !node.offline {
            warnings.extend(self.drop_copy(&committed, &view.name).await);
        }
        if was_candidate && !node.master_candidate && pool_has_room(&committed) {
            warnings.push(format!(
                "the cluster now has {} master candidate(s), fewer than its pool size {}",
                committed.candidate_count(),
                committed.candidate_pool_size
            ));
        }
        let missed = self.redistribute(&committed).await;
        progress.step_after_commit(Step::Distributed {
            missed: missed.len(),
        });
        warnings.extend(missed);
        Ok((
            NodeView { node, ..view },
            Changed {
                serial: committed.serial,
                warnings,
            },
        ))
    }
}
