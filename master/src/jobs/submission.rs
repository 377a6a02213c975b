//! What a caller submits: the operation, with what it needs that is never written down.

use super::record::JobOp;
use crate::operations::cluster_modify::ClusterChange;
use crate::operations::node_add::AddNode;
use crate::operations::node_modify::NodeFlags;
use crate::operations::renew_crypto::CryptoParts;

/// An operation to run, with what it needs that is never written down (a token's secret).
#[derive(Debug)]
pub enum Submission {
    /// `gnt node add`.
    AddNode(AddNode),
    /// `gnt node remove`.
    RemoveNode {
        /// The node's name, as given.
        name: String,
    },
    /// `gnt node modify`.
    ModifyNode {
        /// The node's name, as given.
        name: String,
        /// The flags to change.
        flags: NodeFlags,
    },
    /// `gnt cluster redist-conf`.
    Redistribute,
    /// `gnt cluster modify`.
    ModifyCluster(ClusterChange),
    /// `gnt cluster renew-crypto`.
    RenewCrypto(CryptoParts),
    /// `gnt cluster destroy`.
    DestroyCluster,
}

impl Submission {
    pub(super) fn op(&self) -> JobOp {
        match self {
            Self::AddNode(add) => JobOp::AddNode {
                name: add.name.clone(),
                secondary: add.secondary.clone(),
                token_id: add
                    .token
                    .as_ref()
                    .map(|t| t.id().to_owned())
                    .unwrap_or_default(),
                readd: add.readd,
            },
            Self::RemoveNode { name } => JobOp::RemoveNode { name: name.clone() },
            Self::ModifyNode { name, flags } => JobOp::ModifyNode {
                name: name.clone(),
                flags: *flags,
            },
            Self::Redistribute => JobOp::Redistribute,
            Self::ModifyCluster(change) => JobOp::ModifyCluster { change: *change },
            Self::RenewCrypto(parts) => JobOp::RenewCrypto { parts: *parts },
            Self::DestroyCluster => JobOp::DestroyCluster,
        }
    }
}
