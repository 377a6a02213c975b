//! `gnt-masterd`: loads the master, holds the lock that makes it the only master daemon of
//! its state directory, serves the master API on a Unix socket, and runs the job queue
//! (recovering first what a previous master left unfinished) and the converger
//! (`operations::converge`) until told to stop.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::ssconf::SsconfStore;
use gnt_proto::master::v1::master_server::MasterServer;
use gnt_transports::{GrpcServer, ListenError, Listener, ServeError, ServerSettings};
use tokio_util::sync::CancellationToken;

use crate::config::ClusterConfig;
use crate::error::MasterError;
use crate::jobs::record::JobStoreError;
use crate::jobs::{JobQueue, JobStore};
use crate::master::Master;
use crate::operations::converge::{self, Converger};
use crate::paths::MasterPaths;
use crate::service::MasterService;

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
    /// The job worker stopped while the daemon ran (a defect outside any one job's run).
    #[error(
        "the job worker stopped ({0}); gnt-masterd stops too, so that its next start takes the unfinished jobs up again"
    )]
    JobWorkerStopped(String),
}

impl Classify for DaemonError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Load(e) => e.kind(),
            Self::Listen(e) => e.kind(),
            Self::Serve(e) => e.kind(),
            Self::Jobs(e) => e.kind(),
            Self::JobWorkerStopped(_) => ErrorKind::Internal,
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

/// Refuses to act as master when this node's own ssconf (written by the master of the
/// newest epoch this node has seen) says another master took over: a master that a
/// failover replaced, started again with its old configuration.
fn still_master(state_dir: &Path, config: &ClusterConfig) -> Result<(), MasterError> {
    let published = SsconfStore::new(state_dir).read_published()?;
    let named = published.set.master_node().ok();
    let replaced = published.epoch > config.master_epoch
        || (published.epoch == config.master_epoch
            && named.as_ref().is_some_and(|m| *m != config.master_node));
    if replaced {
        return Err(MasterError::NotMaster {
            reason: format!(
                "this node's ssconf is of master epoch {} and names {} as master; the configuration here is of epoch {}",
                published.epoch,
                named.map_or_else(|| "no node".to_owned(), |m| m.to_string()),
                config.master_epoch
            ),
        });
    }
    Ok(())
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
    still_master(state_dir, &config)?;
    let (jobs, worker) = JobQueue::open(JobStore::new(&paths.master_dir))?;
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
    let mut worker = tokio::spawn(worker.run(master.clone(), stop_jobs.clone()));
    tracing::info!(
        cluster = %config.cluster_name,
        nodes = config.nodes.len(),
        serial = config.serial,
        socket = %paths.socket.display(),
        "master daemon ready"
    );
    let stop_converger = shutdown.child_token();
    let converger = match options.converge_interval {
        Some(interval) => Some(tokio::spawn(
            Converger::new(master.clone(), interval).run(stop_converger.clone()),
        )),
        None => {
            tracing::warn!(
                "the converger is off: nodes that miss a redistribution stay behind until `gnt cluster redist-conf`"
            );
            None
        }
    };
    // The worker ends only when told to (it turns a panic in a job's run into the job's
    // failure). Should it end before, by a panic in its own bookkeeping, no job would run
    // again and new ones would stay queued: stop, and let the next start recover them,
    // rather than serve on without it.
    let stopped = tokio::select! {
        () = shutdown.cancelled() => None,
        reason = master.stand_down.signalled() => {
            Some(DaemonError::Load(MasterError::NotMaster { reason }))
        }
        ended = &mut worker => Some(DaemonError::JobWorkerStopped(match ended {
            Err(error) if error.is_panic() => "it panicked".to_owned(),
            Err(error) => error.to_string(),
            Ok(()) => "it returned".to_owned(),
        })),
    };
    if let Some(error) = stopped {
        tracing::error!(%error, "gnt-masterd stops");
        stop_jobs.cancel();
        stop_converger.cancel();
        server.shutdown().await?;
        return Err(error);
    }
    // The job running now is let finish (within the server's grace), so that callers
    // waiting for it get its end; queued jobs stay queued for the next start.
    stop_jobs.cancel();
    if tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .is_err()
    {
        tracing::warn!("a job is still running at shutdown; the next start will recover it");
    }
    server.shutdown().await?;
    if let Some(converger) = converger {
        // It stops at once on the cancelled token; a panic in it is not the server's.
        let _ = converger.await;
    }
    Ok(())
}
