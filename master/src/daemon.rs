//! `gnt-masterd`: loads the master, holds the lock that makes it the only master daemon of
//! its state directory, serves the master API on a Unix socket, and runs the job queue
//! (recovering first what a previous master left unfinished) and the converger
//! (`operations::converge`) until told to stop.
//!
//! Once recovery is over it activates the cluster IP on the master node
//! (`operations::master_ip`); a failure is logged as an error and the daemon runs on (the
//! cluster is still managed at the master's own address). A graceful stop deactivates it,
//! after the last job, so that another master can take it over.
//!
//! A destroy job (`operations::destroy`) that made the master's node leave stops the daemon
//! too, which then removes the master directory; a daemon that finds such a job ended
//! before its directory was gone removes it at start, instead of starting.

mod cli;

pub use cli::MasterdCli;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gnt_core::error::{Chain, Classify, ErrorKind};
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
use crate::operations::destroy;
use crate::operations::renew_crypto::before_expiry;
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
    /// How often certificates are checked for renewal before expiry
    /// (`operations::renew_crypto::before_expiry`); `None` never renews them unasked.
    pub renewal_check_interval: Option<Duration>,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        Self {
            converge_interval: Some(converge::DEFAULT_INTERVAL),
            renewal_check_interval: Some(before_expiry::DEFAULT_CHECK_INTERVAL),
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
    // A certificate renewal stopped between its commit and the switch of the master
    // directory is switched now, before anything calls a node.
    master.settle_master_dir(&config)?;
    // With no renewal in the configuration, the master's previous key and any key staged
    // for a renewal are of no use. A master stopped after a renewal's last commit, before
    // (or while) deleting them, left them here, and nothing else would ever delete them:
    // not the job's recovery (the renewal had finished), not the converger (no renewal
    // waits), which may have been the one finishing it.
    if config.rollover.is_none()
        && let Err(error) = master.discard_staged_renewal()
    {
        tracing::warn!(error = %gnt_core::error::Chain(&error), "cannot delete the previous master key");
    }
    let (jobs, mut worker) = JobQueue::open(JobStore::new(&paths.master_dir))?;
    if destroy::ended_before(&jobs.list(), state_dir) {
        tracing::warn!(cluster = %config.cluster_name, "this cluster was destroyed before gnt-masterd stopped: removing the master directory, and stopping");
        return finish_destroy(&paths);
    }
    let recovered = worker.recovered();
    let listener = Listener::unix(&paths.socket, 0o600)?;
    let server = GrpcServer::new("gnt-masterd")
        .settings(ServerSettings {
            // A node add can take a while (pings, Join, version wait); let it finish.
            shutdown_grace: Duration::from_secs(30),
            ..ServerSettings::default()
        })
        .add_service(MasterServer::new(MasterService::new(
            master.clone(),
            jobs.clone(),
        )))
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
    let mut activation = tokio::spawn(activate_master_ip(master.clone(), recovered));
    let stop_converger = shutdown.child_token();
    let renewals = options.renewal_check_interval.map(|interval| {
        tokio::spawn(before_expiry::renew_before_expiry(
            master.clone(),
            jobs.clone(),
            interval,
            stop_converger.clone(),
        ))
    });
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
        () = master.destroyed.signalled() => None,
        reason = master.stand_down.signalled() => {
            Some(DaemonError::Load(MasterError::NotMaster { reason }))
        }
        ended = &mut worker => Some(DaemonError::JobWorkerStopped(match ended {
            Err(error) if error.is_panic() => "it panicked".to_owned(),
            Err(error) => error.to_string(),
            Ok(()) => "it returned".to_owned(),
        })),
    };
    if let Some(error) = &stopped {
        tracing::error!(%error, "gnt-masterd stops");
    }
    let destroyed = master.destroyed.is_signalled();
    if stopped.is_some() || destroyed {
        stop_converger.cancel();
    }
    // The job running now is let finish (within the server's grace), so that callers
    // waiting for it get its end; queued jobs stay queued for the next start. A master
    // standing down does not wait: the nodes refuse its calls.
    stop_jobs.cancel();
    let patience = if stopped.is_some() {
        Duration::ZERO
    } else {
        Duration::from_secs(30)
    };
    if tokio::time::timeout(patience, worker).await.is_err() {
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
    // A master that stands down gives the cluster IP up too (on its own node, which may
    // refuse it if the failover reached it: the failover took the address away then). A
    // destroy took it away before its node left, and that node is no member to ask now.
    if !destroyed {
        deactivate_master_ip(&master).await;
    }
    server.shutdown().await?;
    if let Some(converger) = converger {
        // It stops at once on the cancelled token; a panic in it is not the server's.
        let _ = converger.await;
    }
    if let Some(renewals) = renewals {
        let _ = renewals.await;
    }
    if destroyed {
        return finish_destroy(&paths);
    }
    stopped.map_or(Ok(()), Err)
}

/// The end of a destroy: the master directory goes, keys and all.
fn finish_destroy(paths: &MasterPaths) -> Result<(), DaemonError> {
    destroy::remove_master_dir(paths).map_err(MasterError::from)?;
    tracing::warn!(dir = %paths.master_dir.display(), "cluster destroyed: the master directory is removed; gnt-masterd stops");
    Ok(())
}

/// Activates the cluster IP once `recovered` says recovery is over; a failure is logged,
/// naming its cause, and changes nothing else.
async fn activate_master_ip(master: Arc<Master>, recovered: tokio::sync::oneshot::Receiver<()>) {
    if recovered.await.is_err() || master.destroyed.is_signalled() {
        return; // The daemon is stopping (recovery may have finished a destroy).
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
