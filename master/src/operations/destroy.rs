//! `gnt cluster destroy --yes-do-it` (Ganeti's `LUClusterDestroy`, then
//! `FinalizeClusterDestroy`): refused while any node but the master is in the configuration;
//! otherwise a job takes the cluster IP off the master and tells the master's own node to
//! leave (its gnt-noded wipes its ssconf, key and certificates and goes back to bootstrap
//! mode); once the job has ended, gnt-masterd stops and removes the master directory
//! (configuration, CA, master key, jobs).
//!
//! The order is chosen so that a kill at any point leaves a working cluster or a host where
//! `gnt cluster init` works:
//!
//! - Until the node has left, nothing is lost: a failure fails the job and puts the cluster
//!   IP back; a kill fails it at the next start (recovery), which activates the IP again.
//! - The node's leaving is the point of no return. Whether it happened is read from this
//!   host's own node state (an empty ssconf), not from an answer that may have been lost: an
//!   unfinished destroy whose node left is finished by recovery, and a master that finds a
//!   destroy ended in its job queue removes its directory and stops instead of starting.
//! - A master whose node had left before the destroy (a forced `LeaveCluster`) cannot have
//!   the cluster IP removed through it any more: its directory is removed all the same, and
//!   a warning says how to remove the address by hand.
//! - The master directory is renamed away first (one atomic step: no half-removed
//!   directory is ever taken for a cluster), then deleted; what a kill leaves of it,
//!   `master.destroyed`, is deleted by the next destroy or `gnt cluster init`.

use std::path::{Path, PathBuf};

use gnt_core::error::Chain;
use gnt_core::fs_atomic::{self, FsError};
use gnt_core::ssconf::SsconfStore;
use gnt_proto::master::v1::DestroyClusterResponse;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::MasterError;
use crate::jobs::{JobOp, JobRecord, JobState, Progress, Step};
use crate::master::Master;
use crate::operations::node_remove::NotLeft;
use crate::paths::MasterPaths;

/// What is left of a master directory whose removal a kill interrupted.
const REMAINS: &str = "master.destroyed";

/// What a destroy did, as its job records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destroyed {
    /// The cluster.
    pub cluster: String,
    /// The master node, whose node agent left.
    pub master: String,
    /// The cluster IP.
    pub master_ip: String,
    /// The device it was removed from; empty when it was not active.
    pub netdev: String,
}

impl From<&Destroyed> for DestroyClusterResponse {
    fn from(done: &Destroyed) -> Self {
        Self {
            cluster_name: done.cluster.clone(),
            master_node: done.master.clone(),
            master_ip: done.master_ip.clone(),
            netdev: done.netdev.clone(),
            warnings: Vec::new(),
        }
    }
}

/// Raised once the master's node has left: the daemon runs no further job, stops, and
/// removes the master directory.
#[derive(Debug, Default)]
pub struct DestroySignal(CancellationToken);

impl DestroySignal {
    /// Raises it.
    pub fn signal(&self) {
        self.0.cancel();
    }

    /// Whether it was raised.
    pub fn is_signalled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Waits until it is raised.
    pub async fn signalled(&self) {
        self.0.cancelled().await;
    }
}

/// The refusal while nodes besides the master are in the cluster (Ganeti: "There are still
/// %d node(s) in this cluster."), naming them and the way out.
pub fn still_nodes(nodes: &[String]) -> String {
    match nodes {
        [one] => format!(
            "There is still 1 node in this cluster besides the master: {one}; remove it first with `gnt node remove {one}`"
        ),
        several => format!(
            "There are still {} nodes in this cluster besides the master: {}; remove them first with `gnt node remove NAME`",
            several.len(),
            several.join(", ")
        ),
    }
}

/// Whether this host's own node has left its cluster: its ssconf is empty (the first thing
/// `LeaveCluster` removes, and what makes the agent a bootstrapping one).
pub fn node_left(state_dir: &Path) -> bool {
    SsconfStore::new(state_dir)
        .read()
        .is_ok_and(|set| set.is_empty())
}

/// Whether `jobs` hold a destroy that succeeded while this host's node has left: the
/// master stopped after the job, before its directory was gone.
pub fn ended_before(jobs: &[JobRecord], state_dir: &Path) -> bool {
    jobs.iter()
        .any(|job| job.op == JobOp::DestroyCluster && job.state == JobState::Succeeded)
        && node_left(state_dir)
}

fn remains(state_dir: &Path) -> PathBuf {
    state_dir.join(REMAINS)
}

/// Deletes what a killed destroy left of a master directory; says whether there was any.
pub fn remove_remains(state_dir: &Path) -> Result<bool, FsError> {
    let path = remains(state_dir);
    match std::fs::remove_dir_all(&path) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "removed what a destroyed cluster left");
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FsError::new("remove", path, e)),
    }
}

/// Removes the master directory, keys and all: renamed away at once, then deleted.
pub fn remove_master_dir(paths: &MasterPaths) -> Result<(), FsError> {
    remove_remains(&paths.state_dir)?;
    let aside = remains(&paths.state_dir);
    match std::fs::rename(&paths.master_dir, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(FsError::new("rename", &paths.master_dir, e)),
    }
    fs_atomic::sync_dir(&paths.state_dir)?;
    std::fs::remove_dir_all(&aside).map_err(|e| FsError::new("remove", &aside, e))?;
    fs_atomic::sync_dir(&paths.state_dir)
}

impl Master {
    /// Destroys the cluster (see the module docs): the checks, the cluster IP off, the
    /// master's node told to leave. On success the daemon is signalled to stop and remove
    /// the master directory; the warnings say what is left to do by hand.
    pub async fn destroy_cluster(
        &self,
        progress: &dyn Progress,
    ) -> Result<(Destroyed, Vec<String>), MasterError> {
        let config = self.config.snapshot().await;
        let others: Vec<String> = config
            .nodes
            .keys()
            .filter(|name| **name != config.master_node)
            .map(ToString::to_string)
            .collect();
        if !others.is_empty() {
            return Err(MasterError::NodesLeft { nodes: others });
        }
        let view = self.node(config.master_node.as_str()).await?;
        let mut done = Destroyed {
            cluster: config.cluster_name.to_string(),
            master: view.name.to_string(),
            master_ip: config.master_ip.to_string(),
            netdev: String::new(),
        };
        if node_left(&self.paths.state_dir) {
            // It left before (`gnt rpc call LeaveCluster --force` on it, or its state was
            // deleted): nothing can ask it to remove the cluster IP any more, and only the
            // master directory is left to remove.
            let cidr = format!("{}/{}", config.master_ip, config.master_netmask);
            let warning = format!(
                "{} had left the cluster already, so the cluster IP could not be removed through it; if `ip address show dev {1}` lists {cidr}, remove it by hand (`ip address del {cidr} dev {1}`): `gnt cluster init` refuses a cluster IP that answers",
                view.name, config.master_netdev
            );
            tracing::warn!(%warning, "the master's node left before the destroy");
            self.destroyed.signal();
            return Ok((done, vec![warning]));
        }
        let ip = self.deactivate_master_ip(&view.name).await?;
        if ip.changed {
            done.netdev = ip.netdev;
        }
        let left = match progress.step(Step::Leaving) {
            Ok(()) => self.tell_to_leave(&view).await.map(|r| {
                r.map_err(|not_left| match not_left {
                    NotLeft::Failed(failure) => failure.to_string(),
                    other => other.to_string(),
                })
            }),
            Err(error) => Err(error),
        };
        // An answer lost on the way does not mean the node stayed: its state here says.
        let left = match left {
            Ok(Ok(())) => Ok(()),
            _ if node_left(&self.paths.state_dir) => Ok(()),
            Ok(Err(reason)) => Err(MasterError::MasterNotLeft {
                node: view.name.clone(),
                reason,
            }),
            Err(error) => Err(error),
        };
        if let Err(error) = left {
            // Nothing is lost yet: the cluster goes on as it was, cluster IP included.
            if let Err(again) = self.activate_master_ip().await {
                tracing::error!(error = %Chain(&again), "the cluster IP could not be activated again after a failed destroy; `gnt cluster activate-master-ip` does it");
            }
            return Err(error);
        }
        progress.step_after_commit(Step::Left { left: true });
        tracing::warn!(cluster = %config.cluster_name, "the master's node left: the cluster is destroyed; gnt-masterd stops and removes the master directory");
        self.destroyed.signal();
        Ok((done, Vec::new()))
    }

    /// Takes a destroy a previous master left unfinished to its end: finished if the
    /// master's node left (it was past the point of no return), else `Err` with the note of
    /// a job that removed nothing.
    pub async fn recover_destroy(&self) -> Result<Destroyed, &'static str> {
        if !node_left(&self.paths.state_dir) {
            return Err(
                "the master's node had not left, so nothing was removed (the cluster IP is activated again); run it again",
            );
        }
        let config = self.config.snapshot().await;
        self.destroyed.signal();
        Ok(Destroyed {
            cluster: config.cluster_name.to_string(),
            master: config.master_node.to_string(),
            master_ip: config.master_ip.to_string(),
            netdev: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_counts_and_names_the_nodes_in_the_singular_and_the_plural() {
        assert_eq!(
            still_nodes(&["node1.lab.test".to_owned()]),
            "There is still 1 node in this cluster besides the master: node1.lab.test; remove it first with `gnt node remove node1.lab.test`"
        );
        assert_eq!(
            still_nodes(&["node1.lab.test".to_owned(), "node2.lab.test".to_owned()]),
            "There are still 2 nodes in this cluster besides the master: node1.lab.test, node2.lab.test; remove them first with `gnt node remove NAME`"
        );
    }

    #[test]
    fn the_master_directory_goes_whole_and_what_a_kill_left_of_one_goes_too() {
        let dir = tempfile::tempdir().unwrap();
        let paths = MasterPaths::new(dir.path());
        std::fs::create_dir_all(paths.master_dir.join("jobs")).unwrap();
        for file in [
            "config.json",
            "ca.key",
            "ca.pem",
            "master.key",
            "jobs/1.json",
        ] {
            std::fs::write(paths.master_dir.join(file), "secret").unwrap();
        }
        // A kill in an earlier removal left part of another directory.
        std::fs::create_dir_all(dir.path().join(REMAINS)).unwrap();
        std::fs::write(dir.path().join(REMAINS).join("ca.key"), "old secret").unwrap();
        std::fs::write(dir.path().join("node.key"), "the node's").unwrap();

        remove_master_dir(&paths).unwrap();
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["node.key"], "only the node's own files stay");
        // Nothing to remove is not an error (a destroy finished again).
        remove_master_dir(&paths).unwrap();
        assert!(!remove_remains(dir.path()).unwrap());
    }

    #[test]
    fn a_node_with_ssconf_has_not_left_and_one_without_has() {
        let dir = tempfile::tempdir().unwrap();
        assert!(node_left(dir.path()));
        let mut set = gnt_core::ssconf::SsconfSet::new();
        set.insert(gnt_core::ssconf::SsconfKey::ClusterName, "c.example.com")
            .unwrap();
        SsconfStore::new(dir.path())
            .replace(&set, gnt_core::ssconf::SsconfVersion::new(1, 1))
            .unwrap();
        assert!(!node_left(dir.path()));
    }
}
