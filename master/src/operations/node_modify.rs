//! `gnt node modify --offline|--drained|--master-candidate yes|no`: Ganeti's node flags;
//! `--secondary-ip` is [`super::node_secondary`].
//!
//! - An offline node gets no traffic at all; the change reaches every online node's ssconf.
//! - A drained node is online (traffic, ssconf) but never a master candidate.
//! - A master candidate holds a copy of what a master needs ([`super::candidates`]).
//!
//! As in Ganeti, the three are one role: at most one flag may become "yes" at once, and
//! setting one clears the others (draining or taking offline a candidate demotes it); the
//! master's flags change only by failover; unsetting a flag the node does not have changes
//! nothing; a node coming back online or undrained becomes a candidate if the pool has
//! room, unless `--master-candidate no` says otherwise. A node is certified as a candidate
//! before the commit (a probe over mutual TLS, no effect on the node), so a node that
//! cannot prove its key changes nothing.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::Changed;
use super::candidates::{demote, pool_has_room};
use crate::config::NodeConfig;
use crate::error::MasterError;
use crate::jobs::{Progress, Step};
use crate::master::{Master, NodeView};

/// The flags a modify changes; `None` leaves one as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFlags {
    /// The offline flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<bool>,
    /// The drained flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained: Option<bool>,
    /// The master-candidate flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_candidate: Option<bool>,
    /// A new secondary address (alone: never with a flag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_ip: Option<IpAddr>,
}

/// What a node's candidacy becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Candidacy {
    Keep,
    Yes,
    No,
    /// Only if the pool has room (Ganeti's self-promotion).
    IfRoom,
}

/// The flags a node ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    offline: bool,
    drained: bool,
    candidate: Candidacy,
}

impl NodeFlags {
    /// The change in words (`offline`, `drained`, `a master candidate`, ...).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(offline) = self.offline {
            parts.push(if offline { "offline" } else { "online" }.to_owned());
        }
        if let Some(drained) = self.drained {
            parts.push(if drained { "drained" } else { "undrained" }.to_owned());
        }
        if let Some(candidate) = self.master_candidate {
            parts.push(
                if candidate {
                    "a master candidate"
                } else {
                    "not a master candidate"
                }
                .to_owned(),
            );
        }
        if let Some(ip) = self.secondary_ip {
            parts.push(format!("with secondary ip {ip}"));
        }
        parts.join(" and ")
    }

    /// Whether `view` has these flags already.
    pub fn applied_to(&self, view: &NodeView) -> bool {
        let node = &view.node;
        self.offline.is_none_or(|o| o == node.offline)
            && self.drained.is_none_or(|d| d == node.drained)
            && self
                .master_candidate
                .is_none_or(|c| c == node.master_candidate)
            && self.secondary_ip.is_none_or(|ip| {
                // Committed, with the certificate installed (or owed to an offline node).
                ip == node.secondary_ip
                    && node
                        .readdress
                        .as_ref()
                        .is_none_or(|r| r.certificate_sha256.is_empty())
            })
    }

    fn check(&self, view: &NodeView) -> Result<(), MasterError> {
        let flags = [self.offline, self.drained, self.master_candidate];
        if flags.iter().all(Option::is_none) {
            return if self.secondary_ip.is_some() {
                Ok(())
            } else {
                Err(MasterError::NoFlags)
            };
        }
        if self.secondary_ip.is_some() {
            return Err(MasterError::SecondaryWithFlags);
        }
        if flags.iter().filter(|f| **f == Some(true)).count() > 1 {
            // Ganeti's words.
            return Err(MasterError::TwoStates);
        }
        if view.master {
            return Err(if self.offline == Some(true) {
                MasterError::OfflineMaster
            } else if self.drained == Some(true) {
                MasterError::DrainedMaster
            } else {
                MasterError::MasterRole
            });
        }
        if self.master_candidate == Some(true) {
            if view.node.offline && self.offline != Some(false) {
                return Err(MasterError::OfflineCandidate(view.name.clone()));
            }
            if view.node.drained && self.drained != Some(false) {
                return Err(MasterError::DrainedCandidate(view.name.clone()));
            }
        }
        Ok(())
    }

    /// The role `node` ends with: a "yes" sets its role and clears the others; a "no"
    /// leaves a role the node has (and is ignored otherwise, as in Ganeti).
    fn target(&self, node: &NodeConfig) -> Target {
        let role = |offline, drained, candidate| Target {
            offline,
            drained,
            candidate,
        };
        if self.master_candidate == Some(true) {
            return role(false, false, Candidacy::Yes);
        }
        if self.drained == Some(true) {
            return role(false, true, Candidacy::No);
        }
        if self.offline == Some(true) {
            return role(true, false, Candidacy::No);
        }
        let leaving_offline = self.offline == Some(false) && node.offline;
        let undraining = self.drained == Some(false) && node.drained;
        let candidate = if self.master_candidate == Some(false) {
            Candidacy::No
        } else if (leaving_offline || undraining) && !node.master_candidate {
            Candidacy::IfRoom
        } else {
            Candidacy::Keep
        };
        role(
            node.offline && !leaving_offline,
            node.drained && !undraining,
            candidate,
        )
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
        if let Some(ip) = flags.secondary_ip {
            return self.change_secondary(view, ip, progress).await;
        }
        let mut warnings = Vec::new();
        let target = flags.target(&view.node);
        let wants_candidate = match target.candidate {
            Candidacy::Yes => true,
            Candidacy::No => false,
            Candidacy::Keep => view.node.master_candidate,
            Candidacy::IfRoom => pool_has_room(&self.config.snapshot().await),
        };
        let certificate = if wants_candidate && !view.node.master_candidate {
            match self
                .certify_candidate(&view.node(), &view.node.certificate_sha256)
                .await
            {
                Ok(certificate) => Some(certificate),
                // Asked for: the modify fails and changes nothing.
                Err(error) if target.candidate == Candidacy::Yes => return Err(error),
                // Only the pool's wish: the node comes back all the same.
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
                node.offline = target.offline;
                node.drained = target.drained;
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
        // A demoted node drops its copy (with the CA key); so does one coming back online
        // as an ordinary node, which kept its copy when it was demoted while offline.
        let back_online = view.node.offline && !node.offline;
        if (was_candidate || back_online) && !node.master_candidate && !node.offline {
            warnings.extend(self.drop_copy(&committed, &view.name).await);
        }
        if let Some(owed) = node
            .readdress
            .as_ref()
            .filter(|_| view.node.offline && !node.offline)
        {
            warnings.push(format!(
                "its certificate does not name its secondary ip {ip} yet (changed while it was offline): run `gnt node modify --secondary-ip {ip} {name}` to reissue it",
                ip = owed.secondary_ip,
                name = view.name
            ));
        }
        if was_candidate && !node.master_candidate && pool_has_room(&committed) {
            warnings.push(format!(
                "the cluster now has {} master candidate(s), fewer than its pool size {}",
                committed.candidate_count(),
                committed.candidate_pool_size
            ));
        }
        let changed = self.distribute_change(&committed, warnings, progress).await;
        Ok((NodeView { node, ..view }, changed))
    }
}

#[cfg(test)]
mod tests;
