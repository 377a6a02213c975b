//! A job as it is written down: the operation, each step as it is taken, and how the job
//! ended. One JSON file per job in `<state>/master/jobs/` (0600, replaced atomically at
//! every step), so that a master killed at any moment finds, at its next start, every job
//! it had begun and how far each got.
//!
//! A join token's secret is never written: an add records the token's id only. Recovery
//! never needs the secret (it rolls back what had not reached the node, and finds out from
//! the node what had).

use std::net::IpAddr;

use gnt_core::error::{Chain, Classify};
use serde::{Deserialize, Serialize};

use crate::master::NodeView;
use crate::operations::cluster_modify::ClusterChange;
use crate::operations::node_modify::NodeFlags;
use crate::operations::renew_crypto::CryptoParts;

mod store;

pub use store::{JobStore, JobStoreError};

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum JobOp {
    /// `gnt node add`.
    AddNode {
        /// The node's name, as given.
        name: String,
        /// `-s`, as given.
        secondary: Option<String>,
        /// The join token's id (never its secret); empty for a re-add without one.
        token_id: String,
        /// `--readd`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        readd: bool,
    },
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
        #[serde(flatten)]
        flags: NodeFlags,
    },
    /// `gnt cluster redist-conf`.
    Redistribute,
    /// `gnt cluster modify`.
    ModifyCluster {
        /// What changes.
        #[serde(flatten)]
        change: ClusterChange,
    },
    /// `gnt cluster renew-crypto`.
    RenewCrypto {
        /// What is renewed.
        #[serde(flatten)]
        parts: CryptoParts,
    },
    /// `gnt cluster destroy`.
    DestroyCluster,
}

impl JobOp {
    /// The operation in words.
    pub fn summary(&self) -> String {
        match self {
            Self::AddNode {
                name, readd: true, ..
            } => format!("re-add node {name}"),
            Self::AddNode { name, .. } => format!("add node {name}"),
            Self::RemoveNode { name } => format!("remove node {name}"),
            Self::ModifyNode { name, flags } => match flags.secondary_ip {
                Some(ip) => format!("change node {name}'s secondary ip to {ip}"),
                None => format!("mark node {name} {}", flags.summary()),
            },
            Self::Redistribute => "redistribute the configuration".to_owned(),
            Self::ModifyCluster { change } => change.summary(),
            Self::RenewCrypto { parts } => parts.summary(),
            Self::DestroyCluster => "destroy the cluster".to_owned(),
        }
    }
}

/// A step a job took, with what recovery needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Every check passed (add): the node's addresses, as resolved.
    Checked {
        /// Primary address.
        primary: IpAddr,
        /// Secondary address.
        secondary: IpAddr,
    },
    /// The Join is about to be sent (add): from here on the node may have joined.
    Joining,
    /// The node joined (add).
    Joined {
        /// Its certificate's SHA-256 fingerprint.
        certificate_sha256: String,
    },
    /// The node answered over mutual TLS with our protocol (add).
    VersionChecked,
    /// The node is being told to leave (remove).
    Leaving,
    /// It left, or could not be told to (remove).
    Left {
        /// Whether it left.
        left: bool,
    },
    /// The change is in the configuration.
    Committed {
        /// The configuration serial after it.
        serial: u64,
    },
    /// The new ssconf went to the online nodes.
    Distributed {
        /// Nodes that did not take it (they catch up later).
        missed: usize,
    },
    /// A new master netmask was made live on the master's cluster IP, or could not be.
    NetmaskLive {
        /// Whether the master's cluster IP has it now.
        live: bool,
    },
    /// Nodes of a certificate renewal were renewed.
    Renewed {
        /// How many now.
        renewed: usize,
        /// How many it still waits for.
        pending: usize,
    },
}

impl Step {
    /// The step's name, as `gnt job info` shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Checked { .. } => "checked",
            Self::Joining => "joining",
            Self::Joined { .. } => "joined",
            Self::VersionChecked => "version-checked",
            Self::Leaving => "leaving",
            Self::Left { .. } => "left",
            Self::Committed { .. } => "committed",
            Self::Distributed { .. } => "distributed",
            Self::NetmaskLive { .. } => "netmask-live",
            Self::Renewed { .. } => "renewed",
        }
    }

    /// What the step found or did, in one line.
    pub fn note(&self) -> String {
        match self {
            Self::Checked { primary, secondary } => {
                format!("primary {primary}, secondary {secondary}")
            }
            Self::Joining | Self::VersionChecked | Self::Leaving => String::new(),
            Self::Joined { certificate_sha256 } => format!("certificate {certificate_sha256}"),
            Self::Left { left } => if *left {
                "the node left"
            } else {
                "the node was not told to leave"
            }
            .to_owned(),
            Self::Committed { serial } => format!("configuration serial {serial}"),
            Self::Distributed { missed: 0 } => "every online node has the new ssconf".to_owned(),
            Self::Distributed { missed } => {
                format!("{} did not take the new ssconf yet", nodes(*missed))
            }
            Self::NetmaskLive { live: true } => {
                "the master's cluster IP has the new netmask".to_owned()
            }
            Self::NetmaskLive { live: false } => {
                "the master's cluster IP could not be changed (see the warnings)".to_owned()
            }
            Self::Renewed {
                renewed,
                pending: 0,
            } => {
                format!(
                    "{} renewed; every node has its new certificates",
                    nodes(*renewed)
                )
            }
            Self::Renewed { renewed, pending } => {
                format!("{} renewed; {pending} still to renew", nodes(*renewed))
            }
        }
    }
}

/// `n` nodes, in the singular for one.
fn nodes(n: usize) -> String {
    if n == 1 {
        "1 node".to_owned()
    } else {
        format!("{n} nodes")
    }
}

/// A step as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step.
    #[serde(flatten)]
    pub step: Step,
    /// When, seconds since the Unix epoch.
    pub at: i64,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Recorded, waiting for the jobs before it.
    Queued,
    /// Running.
    Running,
    /// Done.
    Succeeded,
    /// Refused or failed.
    Failed,
}

impl JobState {
    /// Whether the job has ended.
    pub fn ended(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// What a job that succeeded did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum JobOutcome {
    /// A node was added.
    Added {
        /// The node.
        node: NodeView,
        /// The configuration serial after it.
        serial: u64,
    },
    /// A node was removed.
    Removed {
        /// The configuration serial after it.
        serial: u64,
        /// Whether the node left (wiped its state).
        left: bool,
    },
    /// A node's flags changed.
    Modified {
        /// The node.
        node: NodeView,
        /// The configuration serial after it.
        serial: u64,
    },
    /// Cluster parameters changed.
    ClusterModified {
        /// The configuration serial after it.
        serial: u64,
    },
    /// Certificates were renewed.
    CryptoRenewed {
        /// The configuration serial after it.
        serial: u64,
        /// The nodes renewed.
        renewed: Vec<RenewedRecord>,
        /// The nodes still to renew.
        pending: Vec<String>,
        /// Whether the renewal is over.
        finished: bool,
    },
    /// The cluster was destroyed: the master's node left; the daemon removes the rest.
    Destroyed(crate::operations::destroy::Destroyed),
    /// The configuration's ssconf was sent to every online node.
    Redistributed {
        /// The configuration serial of the set sent.
        serial: u64,
        /// What each node did with it, sorted by name.
        nodes: Vec<Delivery>,
    },
}

/// A node a renewal reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewedRecord {
    /// The node's name.
    pub node: String,
    /// The fingerprint of the certificate it presents.
    pub certificate_sha256: String,
    /// Whether that certificate is new.
    pub new_certificate: bool,
}

/// What one node did with a set sent to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The node's name.
    pub node: String,
    /// How the call ended, as the master API's `CallStatus` names it (`CALL_STATUS_OK`).
    pub status: String,
    /// Why it failed; empty when the node took the set or is offline.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failure: String,
    /// How long the call took, in milliseconds.
    pub elapsed_ms: u64,
}

/// Why a job failed: its kind (as `ErrorKind::code`) and its message with causes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// The kind's code.
    pub kind: String,
    /// One line.
    pub message: String,
}

impl JobFailure {
    /// The failure of `error`.
    pub fn of<E: Classify>(error: &E) -> Self {
        Self {
            kind: error.kind().code().to_owned(),
            message: Chain(error).to_string(),
        }
    }
}

/// A job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its id.
    pub id: u64,
    /// What it does.
    pub op: JobOp,
    /// Where it is.
    pub state: JobState,
    /// The steps taken.
    pub steps: Vec<StepRecord>,
    /// When it was submitted.
    pub submitted_at: i64,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// What it did, if it succeeded.
    pub outcome: Option<JobOutcome>,
    /// Problems that did not undo it.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Why it failed, if it did.
    pub failure: Option<JobFailure>,
    /// What recovery did, if a restart of the master interrupted it.
    pub recovery: Option<String>,
}

impl JobRecord {
    /// Whether the job took `name`.
    pub fn took(&self, name: &str) -> bool {
        self.steps.iter().any(|s| s.step.name() == name)
    }

    /// The first step named `name`, if taken.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps
            .iter()
            .map(|s| &s.step)
            .find(|step| step.name() == name)
    }
}
