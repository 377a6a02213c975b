//! The agent's life in one process: bootstrap mode until a Join succeeds, member mode until
//! the node leaves its cluster (then bootstrap again), until a shutdown signal.
//!
//! Mode changes close the old listener before opening the new one: the bootstrap and the
//! member listener often share port 1811. Each change and the final stop are graceful: calls
//! in flight (the Join itself, a LeaveCluster) finish within the grace period.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use gnt_core::DEFAULT_NODE_PORT;
use gnt_core::clock::unix_now;
use gnt_core::error::{Classify, ErrorKind};
use gnt_core::ssconf::Published;
use gnt_proto::bootstrap::v1::bootstrap_server::BootstrapServer;
use gnt_proto::node::v1::node_agent_server::NodeAgentServer;
use gnt_transports::join::{
    AlreadyJoined, JoinService, MasterCopyStore, Membership, Mode, NodeState, StateError,
    TokenSource,
};
use gnt_transports::{
    CallInfo, ClientAuth, ConnectionLimits, Gated, GrpcServer, ListenAddr, ListenError, Listener,
    Protected, RunningServer, ServeError, ServerSettings, ServerTls, TlsConfigError,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::member::{
    Authority, MemberContext, NodeAgentService, authorize, is_allowed_master, ping_slots,
    remove_leftovers, stored_version,
};

/// The name servers report in diagnostics and logs.
const SERVER_NAME: &str = "gnt-noded";
/// How long to keep trying to bind the member listener after a mode change (the old
/// listener may linger briefly).
const BIND_PATIENCE: Duration = Duration::from_secs(5);
/// How long a connection nobody protects may carry no call before it is closed. The master
/// calls at once on a connection it opens, and its channels are protected on a member
/// node; other callers (a Join, health checks, grpcurl) make their calls and go.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the agent is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentStatus {
    /// Starting.
    Starting,
    /// Waiting for Join on these addresses.
    Bootstrap(Vec<ListenAddr>),
    /// Serving the member API of a cluster.
    Member {
        /// The cluster.
        cluster: String,
        /// Where.
        listening: Vec<ListenAddr>,
    },
    /// Stopped.
    Stopped,
}

/// Why the agent stopped.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The state directory is unusable.
    #[error(transparent)]
    State(#[from] StateError),
    /// A listener could not be opened.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// A TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// A server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

impl Classify for AgentError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::State(e) => e.kind(),
            Self::Listen(e) => e.kind(),
            Self::Tls(e) => e.kind(),
            Self::Serve(e) => e.kind(),
        }
    }
}

/// Runs the agent until `shutdown` is cancelled, reporting its status on `status`.
pub async fn run(
    config: AgentConfig,
    shutdown: CancellationToken,
    status: watch::Sender<AgentStatus>,
) -> Result<(), AgentError> {
    let state = Arc::new(NodeState::open(&config.state_dir)?);
    // Before anything can upload: what an earlier run left mid-upload goes now.
    let removed = remove_leftovers(state.dir(), &config.upload);
    if removed > 0 {
        tracing::info!(
            files = removed,
            "removed the leftovers of interrupted uploads"
        );
    }
    let started = Instant::now();
    let result = async {
        // Only a listener of this process, closed for a mode change, can linger on the
        // port; at start a port in use is another program's, said at once.
        let mut patience = Duration::ZERO;
        loop {
            let next = match state.mode()? {
                Mode::Bootstrap => bootstrap(&config, &state, &shutdown, &status).await?,
                Mode::Member(membership) => {
                    let member_run = MemberRun { started, patience };
                    member(&config, &state, *membership, member_run, &shutdown, &status).await?
                }
            };
            if next == Next::Stop {
                return Ok(());
            }
            patience = BIND_PATIENCE;
        }
    }
    .await;
    status.send_replace(AgentStatus::Stopped);
    result
}

#[derive(Debug, PartialEq, Eq)]
enum Next {
    Stop,
    Continue,
}

/// The server settings of both modes; the member listener protects the master's
/// connections (`protected`), the bootstrap listener nobody's: no one is authenticated there.
fn settings(config: &AgentConfig, protected: Protected) -> ServerSettings {
    ServerSettings {
        shutdown_grace: config.shutdown_grace,
        connection_limits: ConnectionLimits {
            idle_timeout: Some(IDLE_TIMEOUT),
            ..ConnectionLimits::for_this_process()
        },
        protected,
        ..ServerSettings::default()
    }
}

/// Streams one bootstrap connection may hold: a Join is one stream, and each costs memory
/// until its exchange ends; a caller with more to say opens more connections, which the
/// listener bounds.
const BOOTSTRAP_STREAMS: u32 = 4;

async fn bootstrap(
    config: &AgentConfig,
    state: &Arc<NodeState>,
    shutdown: &CancellationToken,
    status: &watch::Sender<AgentStatus>,
) -> Result<Next, AgentError> {
    announce_token(&config.join_token, state);
    let key = state.node_key()?;
    let identity = state.bootstrap_identity(&key)?;
    let tls = ServerTls::new(&identity, None, ClientAuth::Off)?;
    let listener = bootstrap_listener(config.bootstrap_listen)?.with_tls(tls);

    let (ready_tx, mut ready_rx) = mpsc::channel(1);
    let service = JoinService::new(
        state.clone(),
        config.join_token.clone(),
        rcgen::PublicKeyData::subject_public_key_info(&key),
        ready_tx,
    );
    let server = GrpcServer::new(SERVER_NAME)
        .settings(ServerSettings {
            max_concurrent_streams: BOOTSTRAP_STREAMS,
            ..settings(config, Protected::none())
        })
        .add_service(BootstrapServer::new(service))
        .start(vec![listener])
        .await?;
    status.send_replace(AgentStatus::Bootstrap(server.local_addrs().to_vec()));
    tokio::select! {
        () = shutdown.cancelled() => {
            stop(server).await?;
            Ok(Next::Stop)
        }
        Some(ready) = ready_rx.recv() => {
            tracing::info!(listen = %ready.listen, "closing the bootstrap listener");
            stop(server).await?;
            Ok(Next::Continue)
        }
    }
}

/// Reads the token once as bootstrap mode starts, records when this node first saw it, and
/// says what the agent waits for: a Join with it, or, when it was spent on an earlier Join
/// (or there is none, or it cannot be read), a new token. Never fatal: the agent keeps
/// waiting, and a Join is refused saying why.
fn announce_token(tokens: &TokenSource, state: &NodeState) {
    tokens.warn_if_exposed();
    let how = match tokens {
        TokenSource::File(path) => format!(
            "write one from `gnt node token create` into {} (read again at every Join)",
            path.display()
        ),
        _ => "restart gnt-noded with one from `gnt node token create` in GNT_JOIN_TOKEN".to_owned(),
    };
    let token = match tokens.load() {
        Ok(Some(token)) => token,
        Ok(None) => {
            tracing::warn!("no join token: Join will be refused; {how}");
            return;
        }
        Err(error) => {
            tracing::warn!(%error, "the join token cannot be read: Join will be refused; {how}");
            return;
        }
    };
    let seen = match state.ledger().observe(&token, unix_now()) {
        Ok(seen) => seen,
        Err(error) => {
            tracing::error!(%error, "every Join will be refused until the join ledger is readable");
            return;
        }
    };
    match seen.used {
        None => tracing::info!(token = %token, "waiting to join a cluster"),
        Some(used) => {
            tracing::warn!(token = %token, cluster = %used.cluster, "this join token was already used on this node and will not work again; waiting for a new one: {how}");
        }
    }
}

/// The bootstrap listener: as configured, else dual-stack, else IPv4 on a host without IPv6.
fn bootstrap_listener(configured: Option<SocketAddr>) -> Result<Listener, ListenError> {
    if let Some(addr) = configured {
        return Listener::tcp(addr);
    }
    match Listener::tcp(SocketAddr::new(
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        DEFAULT_NODE_PORT,
    )) {
        Err(ListenError::Ipv6Unavailable { .. }) => {
            tracing::info!("this host has no IPv6; waiting for Join on IPv4 only");
            Listener::tcp(SocketAddr::from(([0, 0, 0, 0], DEFAULT_NODE_PORT)))
        }
        other => other,
    }
}

/// When the agent started, and how long a member listener may wait for its port.
struct MemberRun {
    started: Instant,
    patience: Duration,
}

async fn member(
    config: &AgentConfig,
    state: &Arc<NodeState>,
    membership: Membership,
    run: MemberRun,
    shutdown: &CancellationToken,
    status: &watch::Sender<AgentStatus>,
) -> Result<Next, AgentError> {
    let MemberRun { started, patience } = run;
    state.spend_unrecorded_token(&config.join_token, membership.cluster_name.as_str());
    let listen = membership.listen_address(config.bind, config.port);
    let tls = ServerTls::new(
        &membership.identity,
        Some(&membership.ca),
        ClientAuth::Required,
    )?;
    let listener = bind_patiently(listen, patience)
        .await?
        .with_tls(tls.clone());
    let authority = Arc::new(RwLock::new(
        Authority::of(&Published::new(
            membership.ssconf.clone(),
            membership.ssconf_version,
        ))
        .map_err(StateError::from)?,
    ));
    let (leave_tx, mut leave_rx) = mpsc::channel(1);
    let bootstrap_address = config
        .bootstrap_listen
        .map(|a| ListenAddr::Tcp(a).to_string())
        .unwrap_or_else(|| format!("[::]:{DEFAULT_NODE_PORT}"));
    let master_copy = MasterCopyStore::new(state.dir());
    let context = MemberContext {
        state: state.clone(),
        node_name: membership.node_name.clone(),
        cluster: membership.cluster_name.clone(),
        started,
        port: listen.port(),
        upload: config.upload.clone(),
        bootstrap_address,
        leave: leave_tx,
        authority: authority.clone(),
        ssconf_writes: tokio::sync::Mutex::new(()),
        copy_version: RwLock::new(stored_version(&master_copy)),
        master_copy,
        copy_writes: tokio::sync::Mutex::new(()),
        tokens: config.join_token.clone(),
        pings: ping_slots(),
        tls,
        identity_writes: tokio::sync::Mutex::new(()),
    };
    let protected = {
        let authority = authority.clone();
        Protected::when(move |peer| is_allowed_master(&authority, peer))
    };
    let procedures = Gated::new(
        NodeAgentServer::new(NodeAgentService::new(context)),
        move |call: &CallInfo<'_>| authorize(&authority, call),
    );
    let server = GrpcServer::new(SERVER_NAME)
        .settings(settings(config, protected))
        .add_service(procedures)
        .add_service(BootstrapServer::new(AlreadyJoined::new(
            membership.cluster_name.to_string(),
        )))
        .start(vec![listener])
        .await?;
    tracing::info!(cluster = %membership.cluster_name, node = %membership.node_name, policy = %membership.policy, ssconf = %membership.ssconf_version, "member of the cluster");
    status.send_replace(AgentStatus::Member {
        cluster: membership.cluster_name.to_string(),
        listening: server.local_addrs().to_vec(),
    });
    tokio::select! {
        () = shutdown.cancelled() => {
            stop(server).await?;
            Ok(Next::Stop)
        }
        Some(()) = leave_rx.recv() => {
            stop(server).await?;
            Ok(Next::Continue)
        }
    }
}

async fn bind_patiently(addr: SocketAddr, patience: Duration) -> Result<Listener, ListenError> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(listener) = Listener::tcp_if_free(addr)? {
            return Ok(listener);
        }
        if Instant::now() >= deadline {
            // Once more, to name who holds the port.
            return Listener::tcp(addr);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop(server: RunningServer) -> Result<(), AgentError> {
    let outcome = server.shutdown().await?;
    tracing::debug!(?outcome, "server stopped");
    Ok(())
}
