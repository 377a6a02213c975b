//! `gnt-masterd`: loads the configuration and the PKI, holds the lock that makes it the only
//! master daemon of its state directory, and serves the master API on a Unix socket until
//! told to stop.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::netutils::{ResolveError, Resolver};
use gnt_proto::master::v1::master_server::MasterServer;
use gnt_transports::{
    ClientTls, GrpcServer, Identity, ListenError, Listener, Pem, ServeError, ServerSettings,
    TlsConfigError,
};
use tokio_util::sync::CancellationToken;

use crate::channels::NodeChannels;
use crate::config::{ConfigError, ConfigHandle, ConfigStore};
use crate::operations::Master;
use crate::paths::MasterPaths;
use crate::pki::{ClusterCa, PkiError};
use crate::service::MasterService;

/// Why the daemon stopped.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is missing, corrupt or locked.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The CA cannot be loaded.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The master's TLS identity cannot be loaded.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// The resolver configuration cannot be read.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The socket cannot be opened.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

impl Classify for DaemonError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(e) => e.kind(),
            Self::Pki(e) => e.kind(),
            Self::Tls(e) => e.kind(),
            Self::Resolve(e) => e.kind(),
            Self::Listen(e) => e.kind(),
            Self::Serve(e) => e.kind(),
        }
    }
}

/// The master, loaded from `state_dir`, with the lock that keeps other daemons out.
pub fn load(state_dir: &Path) -> Result<(Master, std::fs::File), DaemonError> {
    let master = load_unlocked(state_dir)?;
    let lock = ConfigStore::new(&MasterPaths::new(state_dir).master_dir).lock()?;
    Ok((master, lock))
}

/// The master, loaded from `state_dir` without taking the daemon lock: for tools that
/// only read the configuration and call nodes (the benchmarks).
pub fn load_unlocked(state_dir: &Path) -> Result<Master, DaemonError> {
    let paths = MasterPaths::new(state_dir);
    let store = ConfigStore::new(&paths.master_dir);
    let config = store.load()?;
    let ca = ClusterCa::load(&paths.pki)?;
    let channels = NodeChannels::new(node_client_tls(&paths)?, config.policy(), config.node_port);
    Ok(Master {
        config: ConfigHandle::new(store, config),
        ca,
        channels,
        resolver: Arc::new(Resolver::system()?),
    })
}

/// The master's TLS client configuration for node agents: its certificate, the cluster
/// CA. Each call builds a new one (with its own session cache).
pub fn node_client_tls(paths: &MasterPaths) -> Result<ClientTls, DaemonError> {
    let identity = Identity::from_files(&paths.pki.master_cert, &paths.pki.master_key)?;
    Ok(ClientTls::new(
        &Pem::read("CA certificate", &paths.pki.ca_cert)?,
        Some(&identity),
    )?)
}

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(state_dir: &Path, shutdown: CancellationToken) -> Result<(), DaemonError> {
    let (master, _lock) = load(state_dir)?;
    let paths = MasterPaths::new(state_dir);
    let config = master.config.snapshot().await;
    let listener = Listener::unix(&paths.socket, 0o600)?;
    let server = GrpcServer::new("gnt-masterd")
        .settings(ServerSettings {
            // A node add can take a while (pings, Join, version wait); let it finish.
            shutdown_grace: Duration::from_secs(30),
            ..ServerSettings::default()
        })
        .add_service(MasterServer::new(MasterService::new(Arc::new(master))))
        .start(vec![listener])
        .await?;
    tracing::info!(
        cluster = %config.cluster_name,
        nodes = config.nodes.len(),
        serial = config.serial,
        socket = %paths.socket.display(),
        "master daemon ready"
    );
    shutdown.cancelled().await;
    server.shutdown().await?;
    Ok(())
}
