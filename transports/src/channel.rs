//! [`DirectChannel`]: a gRPC channel straight over one h2 connection, for a client that
//! keeps a channel to every node of a fleet (the master) and bounds its calls itself.
//!
//! tonic's `Channel` is built for a client with a few busy channels: a `Buffer` worker task
//! with its queue allocated up front (about 9 KiB), hyper's dispatch queue in front of h2
//! (8.5 KiB), a reconnecting service stack. Per idle channel that is most of what the
//! master holds for a node (`docs/benchmarks.md`, "Memory per node channel"). This channel
//! keeps only h2's connection, its task, and a slot to replace it:
//!
//! - **Connects on first use**, and again on the next call after the connection ended; the
//!   calls that waited for a connection that could not be made fail with that error, so a
//!   dead node costs one dial, not one per waiting call.
//! - **Honours `grpc-timeout`** on the client side, as tonic's channel does (CANCELLED
//!   "Timeout expired"): a frozen node cannot hold a call past its deadline.
//! - **Pings while calls wait** ([`keepalive`]), and gives the connection up when a ping
//!   goes unanswered; its calls then fail with [`PeerFrozen`] in their cause chain.
//! - **Streams request bodies** under h2's flow control ([`body`]).
//!
//! Every failure is a [`tonic::Status`] whose cause chain holds the connector's or h2's
//! own error, which [`call_failure`](crate::call_failure) classifies.

mod body;
mod deadline;
mod keepalive;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{Either, select};
use gnt_core::error::Chain;
use http::uri::{Authority, Scheme};
use tokio::sync::Notify;

pub use body::ResponseBody;
pub use keepalive::PeerFrozen;

use keepalive::Keepalive;

use crate::connect::Connector;

/// The authority every request names. The connector decides where calls go and checks
/// the server's certificate for its own name; servers ignore this one.
const AUTHORITY: &str = "gnt-rpc.invalid";

/// Flow-control windows for what a node sends back, as hyper's client sets them (h2's own
/// 64 KiB would stall a large answer on every round trip). Memory is taken only as data
/// arrives.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// See [`STREAM_WINDOW`].
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
/// How much of a request h2 may buffer beyond what the server's window admits (hyper's).
const MAX_SEND_BUFFER: usize = 1024 * 1024;

/// A gRPC channel over one h2 connection to one server; clones share it.
#[derive(Clone)]
pub struct DirectChannel {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DirectChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectChannel")
            .field("target", &self.shared.connector.target())
            .finish()
    }
}

struct Shared {
    connector: Connector,
    keepalive: Keepalive,
    slot: tokio::sync::Mutex<Slot>,
}

/// The connection in use, and how the last attempt to make one ended.
#[derive(Default)]
struct Slot {
    live: Option<Live>,
    last_failure: Option<(Instant, tonic::Status)>,
}

/// An open connection: the handle that starts calls on it, and what its task shares.
#[derive(Clone)]
struct Live {
    sender: h2::client::SendRequest<Bytes>,
    state: Arc<ConnectionState>,
}

/// What a connection's calls and its task share.
#[derive(Default)]
pub(crate) struct ConnectionState {
    /// Calls started and not yet finished (their answer read or dropped).
    in_flight: AtomicUsize,
    /// Told when a call starts on an idle connection.
    call_started: Notify,
    /// Its task ended: the next call makes a new connection.
    closed: AtomicBool,
    /// It was given up because a ping went unanswered for this long.
    frozen_after: OnceLock<Duration>,
}

impl ConnectionState {
    /// The status of a call that failed with h2's `error` on this connection.
    pub(crate) fn failure(&self, error: h2::Error) -> tonic::Status {
        match self.frozen_after.get() {
            Some(timeout) => keepalive::frozen_status(*timeout),
            None => h2_status(error),
        }
    }
}

/// The status of h2's `error`. The connection went away (the node stopped, restarted, or
/// shut it): the call can be tried again. Otherwise the reason maps as tonic maps it.
fn h2_status(error: h2::Error) -> tonic::Status {
    let code = match error.reason() {
        _ if error.is_io() || error.is_go_away() => tonic::Code::Unavailable,
        Some(h2::Reason::REFUSED_STREAM) => tonic::Code::Unavailable,
        Some(h2::Reason::CANCEL) => tonic::Code::Cancelled,
        Some(h2::Reason::ENHANCE_YOUR_CALM) => tonic::Code::ResourceExhausted,
        Some(h2::Reason::INADEQUATE_SECURITY) => tonic::Code::PermissionDenied,
        Some(_) => tonic::Code::Internal,
        None => tonic::Code::Unknown,
    };
    let message = format!("HTTP/2: {}", Chain(&error));
    caused_by(code, message, error)
}

/// A status whose cause chain holds `error`, where `call_failure` looks for it.
fn caused_by<E>(code: tonic::Code, message: String, error: E) -> tonic::Status
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut status = tonic::Status::new(code, message);
    status.set_source(Arc::new(error));
    status
}

/// A call in progress on a connection, counted until it is dropped.
pub(crate) struct InFlight(Arc<ConnectionState>);

impl InFlight {
    fn start(state: &Arc<ConnectionState>) -> Self {
        if state.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            state.call_started.notify_one();
        }
        Self(state.clone())
    }

    pub(crate) fn state(&self) -> &ConnectionState {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl DirectChannel {
    /// A channel that dials with `connector` on its first call.
    pub fn new(connector: Connector) -> Self {
        let Keepalive { interval, timeout } = Keepalive::default();
        Self::with_keepalive(connector, interval, timeout)
    }

    /// Pings after `interval` with calls waiting, and gives the connection up when a ping
    /// goes unanswered for `timeout` (10 s and 10 s by default).
    pub fn with_keepalive(connector: Connector, interval: Duration, timeout: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                connector,
                keepalive: Keepalive { interval, timeout },
                slot: tokio::sync::Mutex::new(Slot::default()),
            }),
        }
    }

    /// Whether a connection is open now (a call made one and it has not ended).
    pub async fn is_connected(&self) -> bool {
        let slot = self.shared.slot.lock().await;
        slot.live
            .as_ref()
            .is_some_and(|live| !live.state.closed.load(Ordering::Acquire))
    }
}

impl Shared {
    /// The open connection, or a new one.
    async fn live(&self) -> Result<Live, tonic::Status> {
        let asked = Instant::now();
        let mut slot = self.slot.lock().await;
        if let Some(live) = &slot.live
            && !live.state.closed.load(Ordering::Acquire)
        {
            return Ok(live.clone());
        }
        // Another call tried while this one waited for the slot: its failure is this
        // call's answer too, rather than one more dial of a server that just failed one.
        if let Some((at, failure)) = &slot.last_failure
            && *at >= asked
        {
            return Err(failure.clone());
        }
        slot.live = None;
        match self.connect().await {
            Ok(live) => {
                slot.live = Some(live.clone());
                slot.last_failure = None;
                Ok(live)
            }
            Err(failure) => {
                slot.last_failure = Some((Instant::now(), failure.clone()));
                Err(failure)
            }
        }
    }

    async fn connect(&self) -> Result<Live, tonic::Status> {
        let io = self.connector.connect().await.map_err(|error| {
            let message = Chain(&error).to_string();
            caused_by(tonic::Code::Unavailable, message, error)
        })?;
        let (sender, connection) = h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_send_buffer_size(MAX_SEND_BUFFER)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(h2_status)?;
        let state = Arc::new(ConnectionState::default());
        tokio::spawn(keepalive::drive(connection, state.clone(), self.keepalive));
        Ok(Live { sender, state })
    }

    /// One call: its request sent (the body streamed as the server's window allows), its
    /// answer's head received.
    async fn exchange(
        &self,
        request: http::Request<tonic::body::Body>,
    ) -> Result<http::Response<ResponseBody>, tonic::Status> {
        let live = self.live().await?;
        let call = InFlight::start(&live.state);
        let mut sender = live
            .sender
            .ready()
            .await
            .map_err(|e| live.state.failure(e))?;
        let (mut parts, request_body) = request.into_parts();
        parts.uri = with_origin(parts.uri)?;
        let end_of_stream = http_body::Body::is_end_stream(&request_body);
        let (answer, stream) = sender
            .send_request(http::Request::from_parts(parts, ()), end_of_stream)
            .map_err(|e| live.state.failure(e))?;
        let answer = if end_of_stream {
            answer.await
        } else {
            let sending = Box::pin(body::send(request_body, stream, live.state.clone()));
            match select(answer, sending).await {
                // The server answered before the request ended (a streaming call, or a
                // refusal): the rest is sent on its own, until it ends or the server resets.
                Either::Left((answer, sending)) => {
                    tokio::spawn(sending);
                    answer
                }
                Either::Right((sent, answer)) => {
                    sent?;
                    answer.await
                }
            }
        };
        let answer = answer.map_err(|e| live.state.failure(e))?;
        Ok(answer.map(|recv| ResponseBody::new(recv, call)))
    }
}

/// `uri` (a path) with the scheme and authority HTTP/2 requires.
fn with_origin(uri: http::Uri) -> Result<http::Uri, tonic::Status> {
    let mut parts = uri.into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(Authority::from_static(AUTHORITY));
    http::Uri::from_parts(parts).map_err(|e| tonic::Status::internal(format!("request URI: {e}")))
}

impl tower::Service<http::Request<tonic::body::Body>> for DirectChannel {
    type Response = http::Response<ResponseBody>;
    type Error = tonic::Status;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    /// Always ready: the caller bounds its calls, and h2 holds a call that exceeds the
    /// server's concurrent-stream limit until one ends.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let shared = self.shared.clone();
        let timeout = deadline::of(request.headers());
        Box::pin(async move {
            let exchange = shared.exchange(request);
            match timeout {
                Some(timeout) => tokio::time::timeout(timeout, exchange)
                    .await
                    .unwrap_or_else(|_| Err(tonic::Status::cancelled("Timeout expired"))),
                None => exchange.await,
            }
        })
    }
}

impl Connector {
    /// A [`DirectChannel`] to this connector's server, dialling on its first call.
    pub fn direct_channel(&self) -> DirectChannel {
        DirectChannel::new(self.clone())
    }
}

#[cfg(test)]
mod tests;
