//! `gnt node modify --offline yes|no`: an offline node gets no traffic at all (Ganeti's
//! offline flag); the change reaches every online node's ssconf.

use super::Changed;
use crate::error::MasterError;
use crate::master::{Master, NodeView};

impl Master {
    /// Marks node `name` offline or back online.
    pub async fn set_offline(
        &self,
        name: &str,
        offline: bool,
    ) -> Result<(NodeView, Changed), MasterError> {
        let view = self.node(name).await?;
        if view.master && offline {
            return Err(MasterError::OfflineMaster);
        }
        let ((), committed) = self
            .config
            .update(|c| {
                if let Some(node) = c.nodes.get_mut(&view.name) {
                    node.offline = offline;
                }
                Ok::<_, MasterError>(())
            })
            .await?;
        tracing::info!(node = %view.name, offline, serial = committed.serial, "node modified");
        let warnings = self.redistribute(&committed).await;
        let node = committed.nodes[&view.name].clone();
        Ok((
            NodeView { node, ..view },
            Changed {
                serial: committed.serial,
                warnings,
            },
        ))
    }
}
