//! `gnt-masterd`: loads the master, holds the lock that makes it the only master daemon of
//! its state directory, serves the master API on a Unix socket, and runs the job queue
//! (recovering first what a previous master left unfinished) and the converger
//! (`operations::converge`) until told to stop.
//!
//! Once recovery is over it activates the cluster IP on the master node
//! (`operations::master_ip`); a failure is logged as an error and the daemon runs on (the
//! cluster is still managed at the master's own address). A graceful stop deactivates it,
//! after the last job, so that another master can take it over.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gnt_core::error::{Chain, Classify, ErrorKind};
use gnt_proto::master::v1::master_server::MasterServer;
use gnt_transports::{GrpcServer, ListenError, Listener, ServeError, ServerSettings};
use tokio_util::sync::CancellationToken;

use crate::error::MasterError;
use crate::jobs::record::JobStoreError;
use crate::jobs::{JobQueue, JobStore};
use crate::master::Master;
use crate::operations::converge::{self, Converger};
use crate::paths::MasterPaths;
use crate::service::MasterService;

/// How long a stopping daemon waits for the cluster IP to be deactivated.
const DEACTIVATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the daemon stopped.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The master could not be loaded.
    #[error(transparent)]
    Load(#[from] MasterError),
    /// The socket cannot be opened.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The job queue cannot be read.
    #[error(transparent)]
    Jobs(#[from] JobStoreError),
}

impl Classify for DaemonError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Load(e) => e.kind(),
            Self::Listen(e) => e.kind(),
            Self::Serve(e) => e.kind(),
            Self::Jobs(e) => e.kind(),
        }
    }
}

/// How the daemon runs, beyond its state directory.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// How often the converger checks every online node's ssconf serial; `None` runs no
    /// converger at all (not at start, nor after failed redistributions: for tests that
    /// need a node to stay behind).
    pub converge_interval: Option<Duration>,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        Self {
            converge_interval: Some(converge::DEFAULT_INTERVAL),
        }
    }
}

/// Runs the daemon, with the default options, until `shutdown` is cancelled.
pub async fn run(state_dir: &Path, shutdown: CancellationToken) -> Result<(), DaemonError> {
    run_with(state_dir, &DaemonOptions::default(), shutdown).await
}

/// Runs the daemon with `options` until `shutdown` is cancelled.
pub async fn run_with(
    state_dir: &Path,
    options: &DaemonOptions,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let (master, _lock) = Master::load(state_dir)?;
    let master = Arc::new(master);
    let paths = MasterPaths::new(state_dir);
    let config = master.config.snapshot().await;
    let (jobs, mut worker) = JobQueue::open(JobStore::new(&paths.master_dir))?;
    let recovered = worker.recovered();
    let listener = Listener::unix(&paths.socket, 0o600)?;
    let server = GrpcServer::new("gnt-masterd")
        .settings(ServerSettings {
            // A node add can take a while (pings, Join, version wait); let it finish.
            shutdown_grace: Duration::from_secs(30),
            ..ServerSettings::default()
        })
        .add_service(MasterServer::new(MasterService::new(master.clone(), jobs)))
        .start(vec![listener])
        .await?;
    let stop_jobs = CancellationToken::new();
    let worker = tokio::spawn(worker.run(master.clone(), stop_jobs.clone()));
    tracing::info!(
        cluster = %config.cluster_name,
        nodes = config.nodes.len(),
        serial = config.serial,
        socket = %paths.socket.display(),
        "master daemon ready"
    );
    let mut activation = tokio::spawn(activate_master_ip(master.clone(), recovered));
    let converger = match options.converge_interval {
        Some(interval) => Some(tokio::spawn(
            Converger::new(master.clone(), interval).run(shutdown.child_token()),
        )),
        None => {
            tracing::warn!(
                "the converger is off: nodes that miss a redistribution stay behind until `gnt cluster redist-conf`"
            );
            None
        }
    };
    shutdown.cancelled().await;
    // The job running now is let finish (within the server's grace), so that callers
    // waiting for it get its end; queued jobs stay queued for the next start.
    stop_jobs.cancel();
    if tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .is_err()
    {
        tracing::warn!("a job is still running at shutdown; the next start will recover it");
    }
    // An activation still running (a probe, or the device work) ends before the address
    // is removed, so it cannot add it back afterwards.
    if tokio::time::timeout(DEACTIVATE_TIMEOUT, &mut activation)
        .await
        .is_err()
    {
        activation.abort();
    }
    deactivate_master_ip(&master).await;
    server.shutdown().await?;
    if let Some(converger) = converger {
        // It stops at once on the cancelled token; a panic in it is not the server's.
        let _ = converger.await;
    }
    Ok(())
}

/// Activates the cluster IP once `recovered` says recovery is over; a failure is logged,
/// naming its cause, and changes nothing else.
async fn activate_master_ip(master: Arc<Master>, recovered: tokio::sync::oneshot::Receiver<()>) {
    if recovered.await.is_err() {
        return; // The worker stopped before recovery ended: the daemon is stopping.
    }
    // One line either way, so that whoever waits for the start (the lab) knows it ended.
    match master.activate_master_ip().await {
        Ok(done) => {
            for warning in &done.warnings {
                tracing::warn!(%warning, "cluster IP");
            }
            tracing::info!(node = %done.node, ip = %done.address, netdev = %done.netdev, added = done.changed, "cluster IP activated at start");
        }
        Err(error) => tracing::error!(
            error = %Chain(&error),
            "cluster IP not activated at start; the cluster is still managed through the master's own address; fix the cause, then run `gnt cluster activate-master-ip`"
        ),
    }
}

/// Deactivates the cluster IP on the master node before the daemon stops, within
/// [`DEACTIVATE_TIMEOUT`]; a failure is logged.
async fn deactivate_master_ip(master: &Master) {
    let node = master.config.snapshot().await.master_node;
    match tokio::time::timeout(DEACTIVATE_TIMEOUT, master.deactivate_master_ip(&node)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(
            error = %Chain(&error),
            "the cluster IP may stay active after this daemon stops; before another master takes it, remove it from this host by hand"
        ),
        Err(_) => tracing::error!(
            seconds = DEACTIVATE_TIMEOUT.as_secs(),
            "the master's agent did not deactivate the cluster IP in time; it may stay active after this daemon stops"
        ),
    }
}
