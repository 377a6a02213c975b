//! The benchmark harness behind `gnt-bench`: scenarios measured on a real cluster in the
//! lab, each beside a baseline run in the same process at the same time, so that results
//! are ratios and not absolute numbers of one machine.
//!
//! - [`site`]: the lab host holding the master and every benchmarked node, each node on its
//!   own IPv6 and IPv4 loopback addresses, the cluster initialised by the real `gnt`;
//! - [`fleet`]: the fleet simulator, thousands of real node agents in one process;
//! - [`bare`]: the baselines: a bare tonic server of the node proto and a bare TLS sink,
//!   both with the node's own certificate and the cluster CA;
//! - [`unary`], [`upload`], [`node_add`] and [`join`], [`fanout`], [`memory`]: the
//!   scenarios;
//! - [`measure`]: latency percentiles, resident memory; [`report`]: the table and the JSON;
//! - [`run`]: runs the scenarios asked for, in the order their dependencies need.

pub mod bare;
pub mod fanout;
pub mod fleet;
pub mod join;
pub mod measure;
pub mod memory;
pub mod node_add;
pub mod report;
pub mod run;
pub mod site;
pub mod unary;
pub mod upload;

use crate::cluster_lab::ClusterLabError;
use crate::lab::LabError;

/// Why a benchmark could not run or complete.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The lab cluster failed.
    #[error(transparent)]
    Cluster(#[from] ClusterLabError),
    /// The lab failed.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// A file, socket or process operation failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A step of a scenario failed.
    #[error("{what}: {detail}")]
    Failed {
        /// The step.
        what: String,
        /// What went wrong.
        detail: String,
    },
}

impl BenchError {
    /// An I/O failure while doing `action`.
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }

    /// A failed step.
    pub fn failed(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self::Failed {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

/// Raises this process's open-file limit to the most the kernel allows (`fs.nr_open`);
/// children inherit it. Thousands of agents and their connections need one descriptor each.
pub fn raise_fd_limit() -> Result<u64, BenchError> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let most = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|e| BenchError::failed("read the open-file limit", e))?;
    let wanted = most.max(hard);
    if soft >= wanted {
        return Ok(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted) {
        Ok(()) => Ok(wanted),
        // Without the privilege to raise the hard limit, take what it allows.
        Err(_) => setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            .map(|()| hard)
            .map_err(|e| BenchError::failed("raise the open-file limit", e)),
    }
}

/// How long a process the harness starts may take to listen.
const LISTEN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

/// Waits until something accepts connections on `addr` (`what`, for the error).
pub async fn wait_listening(addr: std::net::SocketAddr, what: &str) -> Result<(), BenchError> {
    let deadline = tokio::time::Instant::now() + LISTEN_PATIENCE;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if tokio::time::Instant::now() > deadline {
            return Err(BenchError::failed(
                format!("start {what}"),
                format!("nothing listens on {addr} after {LISTEN_PATIENCE:?}"),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(())
}
