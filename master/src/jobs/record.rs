//! A job as it is written down: the operation, each step as it is taken, and how the job
//! ended. One JSON file per job in `<state>/master/jobs/` (0600, replaced atomically at
//! every step), so that a master killed at any moment finds, at its next start, every job
//! it had begun and how far each got.
//!
//! A join token's secret is never written: an add records the token's id only. Recovery
//! never needs the secret (it rolls back what had not reached the node, and finds out from
//! the node what had).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use gnt_core::error::{Chain, Classify};
use gnt_core::fs_atomic::{self, FsError};
use serde::{Deserialize, Serialize};

use crate::master::NodeView;
use crate::operations::cluster_modify::ClusterChange;
use crate::operations::node_modify::NodeFlags;
use crate::operations::renew_crypto::CryptoParts;

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
        /// The join token's id (never its secret).
        token_id: String,
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
            Self::AddNode { name, .. } => format!("add node {name}"),
            Self::RemoveNode { name } => format!("remove node {name}"),
            Self::ModifyNode { name, flags } => format!("mark node {name} {}", flags.summary()),
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

/// Whether `path` is a temporary file of an atomic write (`.<name>.tmp-<pid>-<n>`).
fn is_temporary(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.') && name.contains(".tmp-"))
}

/// The directory of job files.
#[derive(Debug, Clone)]
pub struct JobStore {
    dir: PathBuf,
}

/// A job file that cannot be read or written.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum JobStoreError {
    /// The file system failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A file does not parse.
    #[error("the job file {} is corrupt; move it out of that directory to start without it", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
}

impl Classify for JobStoreError {
    fn kind(&self) -> gnt_core::ErrorKind {
        match self {
            Self::Fs(e) => e.kind(),
            Self::Corrupt { .. } => gnt_core::ErrorKind::Environment,
        }
    }
}

impl JobStore {
    /// The jobs of master directory `master_dir`.
    pub fn new(master_dir: &Path) -> Self {
        Self {
            dir: master_dir.join("jobs"),
        }
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:010}.json"))
    }

    /// Writes `record`, atomically and durably.
    pub fn save(&self, record: &JobRecord) -> Result<(), JobStoreError> {
        fs_atomic::ensure_dir(&self.dir, 0o700)?;
        let path = self.path(record.id);
        let mut text =
            serde_json::to_vec_pretty(record).map_err(|source| JobStoreError::Corrupt {
                path: path.clone(),
                source,
            })?;
        text.push(b'\n');
        fs_atomic::write_atomic(&path, &text, 0o600)?;
        Ok(())
    }

    /// Every job, oldest first. Only reads: anyone may call it while the master writes.
    pub fn load_all(&self) -> Result<Vec<JobRecord>, JobStoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FsError::new("list", &self.dir, e).into()),
        };
        let mut jobs = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| FsError::new("list", &self.dir, e))?
                .path();
            // A temporary file is a write in progress or one a kill interrupted: either
            // way the record it replaces is whole.
            if is_temporary(&path) || path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read(&path).map_err(|e| FsError::new("read", &path, e))?;
            let record: JobRecord = serde_json::from_slice(&text)
                .map_err(|source| JobStoreError::Corrupt { path, source })?;
            jobs.push(record);
        }
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    /// Removes the temporary files of writes a kill interrupted; returns how many. Only for
    /// the master daemon, holding the master's lock, before its first write: a temporary
    /// file of a write in progress looks the same, and removing it fails that write (a
    /// reader that did so left a job "running" for good).
    pub fn remove_leftovers(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for path in entries.filter_map(|entry| entry.ok().map(|e| e.path())) {
            if !is_temporary(&path) {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) => {
                    let error = FsError::new("remove", &path, e);
                    tracing::warn!(error = %Chain(&error), "cannot remove the leftover of an interrupted job write");
                }
            }
        }
        removed
    }

    /// Removes the files of ended jobs beyond the newest `keep`.
    pub fn prune(&self, jobs: &[JobRecord], keep: usize) -> Vec<u64> {
        let ended: Vec<&JobRecord> = jobs.iter().filter(|j| j.state.ended()).collect();
        let excess = ended.len().saturating_sub(keep);
        ended
            .iter()
            .take(excess)
            .filter(|job| std::fs::remove_file(self.path(job.id)).is_ok())
            .map(|job| job.id)
            .collect()
    }
}
