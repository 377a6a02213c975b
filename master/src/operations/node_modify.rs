//! `gnt node modify --offline yes|no`: an offline node gets no traffic at all (Ganeti's
//! offline flag); the change reaches every online node's ssconf.

use super::Changed;
use crate::error::MasterError;
use crate::jobs::{Progress, Step};
use crate::master::{Master, NodeView};

impl Master {
    /// Marks node `name` offline or back online, reporting each step to `progress`.
    pub async fn set_offline(
        &self,
        name: &str,
        offline: bool,
        progress: &dyn Progress,
    ) -> Result<(NodeView, Changed), MasterError> {
        let view = self.node(name).await?;
        if view.master && offline {
            return Err(MasterError::OfflineMaster);
        }
        let (node, committed) = self
            .config
            .update(|c| {
                // Looked up again under the lock: it may have been removed meanwhile.
                let node = c
                    .nodes
                    .get_mut(&view.name)
                    .ok_or_else(|| MasterError::UnknownNode(view.name.to_string()))?;
                node.offline = offline;
                Ok::<_, MasterError>(node.clone())
            })
            .await?;
        tracing::info!(node = %view.name, offline, serial = committed.serial, "node modified");
        progress.step_after_commit(Step::Committed {
            serial: committed.serial,
        });
        let warnings = self.redistribute(&committed).await;
        progress.step_after_commit(Step::Distributed {
            missed: warnings.len(),
        });
        Ok((
            NodeView { node, ..view },
            Changed {
                serial: committed.serial,
                warnings,
            },
        ))
    }
}
