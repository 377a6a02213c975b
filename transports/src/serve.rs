//! Serving helpers: one call gives a gRPC server the standard extras and a bounded shutdown.
//!
//! [`GrpcServer`] adds to the services it is given:
//!
//! - server reflection, both `grpc.reflection.v1alpha` (the only one grpcurl 1.8.6 speaks)
//!   and `grpc.reflection.v1`, advertising exactly the services served;
//! - the standard health service, `SERVING` for the server (`""`) and each service from
//!   the start, `NOT_SERVING` as soon as shutdown begins;
//! - `gnt.diag.v1.Diagnostics`, which tells a caller how the server sees it;
//! - INVALID_ARGUMENT, not tonic's INTERNAL, for a request that does not decode
//!   (`malformed`).
//!
//! It serves on any number of [`Listener`]s at once, each holding at most the connections
//! its [`ConnectionLimits`] allow and never dropping those [`Protected`] covers; calls are
//! counted on their connection (`calls`), so that a listener knows which ones carry none.
//! Shutdown stops accepting, lets calls in flight finish,
//! and closes what is left when the grace period ends (tonic alone would wait forever for a
//! stuck stream).

use std::convert::Infallible;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::calls::CallsLayer;
use crate::diag::DiagnosticsService;
use crate::error::ServeError;
use crate::listen::{ConnectionLimits, Listener, Protected};
use crate::malformed::MalformedRequestsLayer;
use crate::peer::ListenAddr;

/// Server settings, each with its default.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// How long calls in flight may run once shutdown begins. Defaults to 10 s.
    pub shutdown_grace: Duration,
    /// Interval of HTTP/2 pings on idle connections. Defaults to none: TCP keepalive on
    /// every accepted connection already closes those of dead peers, and with pings on,
    /// every frame received costs a clock read (about 1 % of the CPU of a `Version` call,
    /// `docs/benchmarks.md`). Clients, which must notice a dead server, ping.
    pub http2_keepalive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed. Defaults to 10 s.
    pub http2_keepalive_timeout: Duration,
    /// Concurrent calls per connection. Defaults to 1024.
    pub max_concurrent_streams: u32,
    /// Largest HTTP/2 frame a client may send. Defaults to 256 KiB (HTTP/2's default is
    /// 16 KiB): a large upload then takes a sixteenth of the frames, each with its own
    /// bookkeeping.
    pub max_frame_size: u32,
    /// HTTP/2 flow-control windows, per call and per connection. Default to 4 MiB and
    /// 8 MiB (hyper's are 1 MiB), so a client keeps sending while the node writes what it
    /// received; UploadFile is 15 % faster for it (`docs/benchmarks.md`). Memory is taken
    /// only as data arrives.
    pub stream_window: u32,
    /// See `stream_window`.
    pub connection_window: u32,
    /// Connections each listener holds at once, how many of them may be in their
    /// handshake or belong to one peer, and how long one may carry no call. Default to
    /// what the open-file limit allows when the settings are made, without idle timeout
    /// ([`ConnectionLimits::for_this_process`]).
    pub connection_limits: ConnectionLimits,
    /// The connections no listener drops, neither to make room nor for carrying no calls.
    /// Defaults to none.
    pub protected: Protected,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(10),
            http2_keepalive_interval: None,
            http2_keepalive_timeout: Duration::from_secs(10),
            max_concurrent_streams: 1024,
            max_frame_size: 256 * 1024,
            stream_window: 4 << 20,
            connection_window: 8 << 20,
            connection_limits: ConnectionLimits::for_this_process(),
            protected: Protected::none(),
        }
    }
}

/// A gRPC server being assembled.
pub struct GrpcServer {
    name: &'static str,
    routes: RoutesBuilder,
    services: Vec<&'static str>,
    descriptor_sets: Vec<&'static [u8]>,
    settings: ServerSettings,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("name", &self.name)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// A server named `name` (the daemon, for logs and diagnostics), with the descriptor
    /// set of every gnt-rpc package registered for reflection.
    pub fn new(name: &'static str) -> Self {
        let mut server = Self {
            name,
            routes: RoutesBuilder::default(),
            services: Vec::new(),
            descriptor_sets: vec![gnt_proto::FILE_DESCRIPTOR_SET],
            settings: ServerSettings::default(),
        };
        server = server.add_service(
            gnt_proto::diag::v1::diagnostics_server::DiagnosticsServer::new(
                DiagnosticsService::new(name),
            ),
        );
        server
    }

    /// Serves `service` too.
    pub fn add_service<S, B>(mut self, service: S) -> Self
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
        B::Error: Into<tonic::codegen::StdError>,
    {
        self.services.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Registers another encoded descriptor set for reflection (for services whose protos
    /// are not gnt-rpc's).
    pub fn descriptor_set(mut self, set: &'static [u8]) -> Self {
        self.descriptor_sets.push(set);
        self
    }

    /// Replaces the settings.
    pub fn settings(mut self, settings: ServerSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Reflection over our descriptor sets and health's, advertising exactly the services
    /// served (a descriptor set may describe services this server does not run).
    fn reflection(&self) -> tonic_reflection::server::Builder<'static> {
        // Naming services replaces "all services of the sets", so the extras are named too,
        // and both reflection versions are described by both.
        let mut builder = tonic_reflection::server::Builder::configure()
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
            .with_service_name("grpc.reflection.v1.ServerReflection");
        for set in &self.descriptor_sets {
            builder = builder.register_encoded_file_descriptor_set(set);
        }
        for name in &self.services {
            builder = builder.with_service_name(*name);
        }
        builder
    }

    /// Starts serving on `listeners`, in the background of the current Tokio runtime.
    pub async fn start(self, listeners: Vec<Listener>) -> Result<RunningServer, ServeError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        let v1alpha = self
            .reflection()
            .build_v1alpha()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let v1 = self
            .reflection()
            .build_v1()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let mut routes = self.routes;
        routes
            .add_service(health_service)
            .add_service(v1alpha)
            .add_service(v1);
        let routes = routes.routes().prepare();

        health.set_service_status("", ServingStatus::Serving).await;
        for name in &self.services {
            health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }

        let token = CancellationToken::new();
        let addrs: Vec<ListenAddr> = listeners.iter().map(|l| l.local_addr().clone()).collect();
        let mut servers = JoinSet::new();
        for listener in listeners {
            let addr = listener.local_addr().clone();
            let limits = self.settings.connection_limits;
            tracing::info!(
                server = self.name,
                %addr,
                tls = listener.is_tls(),
                max_connections = limits.max_connections,
                max_handshakes = limits.max_handshakes,
                max_per_peer = limits.max_per_peer,
                idle_timeout = ?limits.idle_timeout,
                "serving"
            );
            let mut builder = tonic::transport::Server::builder();
            // Without a subscriber that wants the spans, not even an empty one per call.
            if tracing::enabled!(tracing::Level::DEBUG) {
                builder = builder.trace_fn(request_span);
            }
            let server = builder
                .layer(MalformedRequestsLayer)
                .layer(CallsLayer)
                .http2_keepalive_interval(self.settings.http2_keepalive_interval)
                .http2_keepalive_timeout(Some(self.settings.http2_keepalive_timeout))
                .max_concurrent_streams(Some(self.settings.max_concurrent_streams))
                .max_frame_size(Some(self.settings.max_frame_size))
                .initial_stream_window_size(Some(self.settings.stream_window))
                .initial_connection_window_size(Some(self.settings.connection_window))
                .add_routes(routes.clone())
                .serve_with_incoming_shutdown(
                    listener
                        .into_incoming(limits)
                        .protecting(self.settings.protected.clone()),
                    token.clone().cancelled_owned(),
                );
            servers.spawn(async move {
                server
                    .await
                    .map_err(|source| ServeError::Server { addr, source })
            });
        }
        let task = tokio::spawn(supervise(
            servers,
            token.clone(),
            health.clone(),
            self.services,
            self.settings.shutdown_grace,
            self.name,
        ));
        Ok(RunningServer {
            token,
            health,
            addrs,
            task,
        })
    }
}

/// The span of one call, at debug level: every log line of its handler then names the
/// method and the peer (IPv4 peers of a dual-stack listener as IPv4, a client certificate
/// by its name and role). Not at info: a span per call costs about 2 µs of server CPU
/// (`docs/benchmarks.md`), a tenth of a `Version` call, so handlers whose lines matter at
/// info name their caller themselves.
fn request_span(request: &http::Request<()>) -> tracing::Span {
    let peer = request.extensions().get::<crate::PeerInfo>();
    tracing::debug_span!(
        "rpc",
        method = request.uri().path(),
        peer = peer.map(tracing::field::display)
    )
}

/// How a server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Every connection finished within the grace period.
    Drained,
    /// Connections still open when the grace period ended were closed.
    Forced,
}

/// A server running in the background.
#[derive(Debug)]
pub struct RunningServer {
    token: CancellationToken,
    health: HealthReporter,
    addrs: Vec<ListenAddr>,
    task: tokio::task::JoinHandle<Result<Shutdown, ServeError>>,
}

impl RunningServer {
    /// Where it listens, in the order the listeners were given.
    pub fn local_addrs(&self) -> &[ListenAddr] {
        &self.addrs
    }

    /// The health reporter, to mark a service `NOT_SERVING` while it cannot serve.
    pub fn health(&self) -> &HealthReporter {
        &self.health
    }

    /// The token whose cancellation begins shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Begins shutdown and waits for it to finish (within the grace period).
    pub async fn shutdown(self) -> Result<Shutdown, ServeError> {
        self.token.cancel();
        self.wait().await
    }

    /// Waits until the server has stopped: after its token was cancelled and connections
    /// drained, or because a listener failed.
    pub async fn wait(self) -> Result<Shutdown, ServeError> {
        self.task.await.unwrap_or(Err(ServeError::Aborted))
    }
}

async fn supervise(
    mut servers: JoinSet<Result<(), ServeError>>,
    token: CancellationToken,
    health: HealthReporter,
    services: Vec<&'static str>,
    grace: Duration,
    name: &'static str,
) -> Result<Shutdown, ServeError> {
    let early = tokio::select! {
        () = token.cancelled() => None,
        Some(ended) = servers.join_next() => Some(ended),
    };
    // Whatever ended it, the others stop too, and health says so first.
    token.cancel();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    for service in &services {
        health
            .set_service_status(*service, ServingStatus::NotServing)
            .await;
    }
    tracing::info!(server = name, "shutting down");
    let mut failure = match early {
        Some(Ok(Err(error))) => Some(error),
        _ => None,
    };
    let drained = tokio::time::timeout(grace, async {
        while let Some(ended) = servers.join_next().await {
            if let Ok(Err(error)) = ended {
                failure.get_or_insert(error);
            }
        }
    })
    .await;
    let outcome = if drained.is_ok() {
        Shutdown::Drained
    } else {
        tracing::warn!(
            server = name,
            ?grace,
            "calls still running after the grace period; closing them"
        );
        servers.abort_all();
        Shutdown::Forced
    };
    match failure {
        Some(error) => Err(error),
        None => Ok(outcome),
    }
}
