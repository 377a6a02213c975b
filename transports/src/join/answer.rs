//! The node's half of Join: check the master's proof, prove the token in turn, then check
//! the offer completely and commit it (the exchange is specified in
//! `proto/gnt/bootstrap/v1/bootstrap.proto`).
//!
//! Every check happens before anything is written: the throttle, the master's proof, that
//! the token was never used on this node, its expiry (as this node's copy says; a master's
//! claim beyond it is refused), the offer's own consistency ([`JoinOffer`]'s wire
//! conversion), then what only this host can tell: that it owns the addresses it is given,
//! that its state is not another cluster's, and that the certificate is the CA's, for this
//! node, and for this node's own key. A refusal answers with a status saying what is wrong
//! and leaves the state directory as it was.
//!
//! A token without its expiry (`<id>.<secret>` alone) is good until the master's claim or
//! [`BARE_TOKEN_LIFETIME`] after this node first saw it, whichever comes first (the claim
//! is not refused: the node has no expiry of its own to hold it against);
//! `gnt node token create` prints tokens with theirs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gnt_core::clock::unix_now;
use gnt_core::error::to_status;
use gnt_core::join::{JoinAccepted, JoinOffer, Side};
use gnt_core::netutils::owns_address;
use gnt_proto::bootstrap::v1::{
    JoinClientMessage, JoinResult, JoinServerMessage, NodeHello, bootstrap_server,
    join_client_message, join_server_message,
};
use tokio::sync::{Mutex, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::refusal::{ExchangeFault, JoinRefusal};
use super::source::TokenSource;
use super::state::NodeState;
use super::throttle::{LogBurst, Throttle};
use super::verify::verify_node_certificate;
use crate::peer::{PeerInfo, TlsPeer};

/// How long a whole Join exchange may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a token that does not carry its expiry is good for, from when this node first
/// saw it: the default lifetime `gnt node token create` gives.
pub const BARE_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How long a caller may take to send its hello: a stream that says nothing holds memory.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one log line per this long for refused Joins; the others are counted in it.
const REFUSAL_LOG_WINDOW: Duration = Duration::from_secs(10);

/// What the daemon learns when an offer has been committed: the member API must start.
#[derive(Debug, Clone, Copy)]
pub struct MemberReady {
    /// Where the member API is to listen.
    pub listen: SocketAddr,
}

/// The Join service of a bootstrapping node.
#[derive(Clone)]
pub struct JoinService {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<NodeState>,
    tokens: TokenSource,
    node_spki: Vec<u8>,
    /// Held while a request is checked and committed: one join at a time, and none after
    /// the first succeeded.
    committed: Mutex<Option<String>>,
    ready: mpsc::Sender<MemberReady>,
    throttle: Arc<Throttle>,
    /// Refusals of callers without the token (guesses, garbage).
    refusals: LogBurst,
    /// Refusals of callers with the token (spent, expired): rarer, and worth their own lines.
    holder_refusals: LogBurst,
}

impl JoinService {
    /// The service of a node whose state is `state`, its token from `tokens` (read at every
    /// Join; none: every Join is refused), whose bootstrap certificate is for the key
    /// `node_spki` (DER SubjectPublicKeyInfo). A committed offer is announced on `ready`.
    pub fn new(
        state: Arc<NodeState>,
        tokens: TokenSource,
        node_spki: Vec<u8>,
        ready: mpsc::Sender<MemberReady>,
    ) -> Self {
        let inner = Arc::new(Inner {
            state,
            tokens,
            node_spki,
            committed: Mutex::new(None),
            ready,
            throttle: Arc::new(Throttle::default()),
            refusals: LogBurst::new(REFUSAL_LOG_WINDOW),
            holder_refusals: LogBurst::new(REFUSAL_LOG_WINDOW),
        });
        // The count of a burst's last refusals is written when the burst is over, not at
        // the next refusal, which may never come.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&inner);
            runtime.spawn(async move {
                loop {
                    tokio::time::sleep(REFUSAL_LOG_WINDOW).await;
                    let Some(inner) = weak.upgrade() else { return };
                    inner.flush_refusal_counts();
                }
            });
        }
        Self { inner }
    }
}

type JoinStream = ReceiverStream<Result<JoinServerMessage, Status>>;

#[tonic::async_trait]
impl bootstrap_server::Bootstrap for JoinService {
    type JoinStream = JoinStream;

    async fn join(
        &self,
        request: Request<Streaming<JoinClientMessage>>,
    ) -> Result<Response<JoinStream>, Status> {
        let peer = PeerInfo::of(&request);
        let span = tracing::info_span!("join", peer = peer.map(tracing::field::display));
        let session = peer
            .and_then(PeerInfo::tls)
            .cloned()
            .ok_or_else(|| to_status(&JoinRefusal::NotTls))?;
        // Every Join a server accepts comes over TCP; a source it cannot name is counted as
        // one unnamed source.
        let source = peer
            .and_then(|p| p.remote().ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let attempt = match self.inner.throttle.begin(source, Instant::now()) {
            Ok(attempt) => attempt,
            Err(throttled) => {
                let refusal = JoinRefusal::Throttled {
                    retry_after: throttled.retry_after.as_secs().max(1),
                };
                self.inner.log_refusal(&refusal);
                return Err(to_status(&refusal));
            }
        };
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(2);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let _entered = span.enter();
            let outcome =
                tokio::time::timeout(JOIN_TIMEOUT, exchange(&inner, &session, inbound, &tx)).await;
            let result = match outcome {
                Ok(result) => result,
                Err(_) => Err(JoinRefusal::Exchange(ExchangeFault::TooSlow)),
            };
            if let Err(refusal) = result {
                if refusal.is_failed_attempt() {
                    attempt.failed(Instant::now());
                }
                inner.log_refusal(&refusal);
                let _ = tx.send(Err(to_status(&refusal))).await;
            }
            drop(attempt);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn exchange(
    inner: &Inner,
    session: &TlsPeer,
    mut inbound: Streaming<JoinClientMessage>,
    tx: &mpsc::Sender<Result<JoinServerMessage, Status>>,
) -> Result<(), JoinRefusal> {
    // Step 1: the master proves it holds the token.
    let first = tokio::time::timeout(HELLO_TIMEOUT, next_step(&mut inbound))
        .await
        .map_err(|_| JoinRefusal::Exchange(ExchangeFault::NoHello))??;
    let join_client_message::Step::Hello(hello) = first else {
        return Err(JoinRefusal::Exchange(ExchangeFault::HelloFirst));
    };
    let token = inner
        .tokens
        .load()
        .map_err(JoinRefusal::TokenUnreadable)?
        .ok_or(JoinRefusal::NoToken)?;
    // Both checked whatever the first says: a wrong id and a wrong secret look alike.
    let proven = token.verify(Side::Master, &session.channel_binding, &hello.proof);
    if hello.token_id != token.id() || !proven {
        return Err(JoinRefusal::BadProof);
    }
    // From here on the caller holds the token; what it claims is still checked against
    // this node's own record and copy.
    let now = unix_now();
    let seen = inner
        .state
        .ledger()
        .observe(&token, now)
        .map_err(JoinRefusal::Ledger)?;
    if let Some(used) = seen.used {
        return Err(JoinRefusal::AlreadyUsed {
            id: token.id().to_owned(),
            cluster: used.cluster,
        });
    }
    let expires_at = match token.expires_at() {
        // The token's own expiry, set by the master that made it: a claim beyond it is a
        // caller choosing its own.
        Some(limit) if hello.expires_at_unix > limit => {
            return Err(JoinRefusal::ExpiryBeyond {
                claimed: hello.expires_at_unix,
                limit,
            });
        }
        Some(_) => hello.expires_at_unix,
        // No expiry to hold the claim against: this node's own bound caps it.
        None => hello.expires_at_unix.min(
            seen.first_seen
                .saturating_add(i64::try_from(BARE_TOKEN_LIFETIME.as_secs()).unwrap_or(i64::MAX)),
        ),
    };
    if expires_at <= now {
        return Err(JoinRefusal::Expired {
            ago: now.saturating_sub(expires_at).unsigned_abs(),
        });
    }

    // Step 2: the node proves it holds the token.
    let reply = NodeHello {
        proof: token.proof(Side::Node, &session.channel_binding),
        protocol_version: gnt_proto::NODE_PROTOCOL_VERSION,
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    send(tx, join_server_message::Step::Hello(reply)).await?;

    // Step 3: the offer, checked completely, then committed.
    let join_client_message::Step::Request(request) = next_step(&mut inbound).await? else {
        return Err(JoinRefusal::Exchange(ExchangeFault::RequestAfterHello));
    };
    let mut committed = inner.committed.lock().await;
    if let Some(cluster) = committed.as_ref() {
        return Err(JoinRefusal::AlreadyJoined(cluster.clone()));
    }
    let offer = JoinOffer::try_from(&request)?;
    check_host(&offer, &inner.state)?;
    verify_node_certificate(&offer, &inner.node_spki)?;
    // Spent before the state is written, and for good: a crash or a failed write after
    // this point leaves a token that no longer works (the operator makes a new one), never
    // one that works twice. (A write can fail after ssconf has switched, so taking the mark
    // back would leave a member whose token still works.)
    inner
        .state
        .ledger()
        .mark_used(&token, offer.cluster.as_str(), unix_now())
        .map_err(JoinRefusal::Ledger)?;
    inner
        .state
        .commit_join(&offer)
        .map_err(JoinRefusal::Storage)?;
    *committed = Some(offer.cluster.to_string());
    tracing::info!(cluster = %offer.cluster, node = %offer.node.name, listen = %offer.listen, "joined the cluster");

    // Step 4. The node is a member from the commit on, whether or not the master hears
    // so: a master killed at this moment learns it over mutual TLS (its recovery, or the
    // next add, asks), which only the member listener answers. Left in bootstrap mode, the
    // node refused both until it was restarted.
    let accepted = JoinAccepted {
        listen: offer.listen,
    };
    let answered = send(
        tx,
        join_server_message::Step::Result(JoinResult::from(&accepted)),
    )
    .await;
    if answered.is_err() {
        tracing::warn!(cluster = %offer.cluster, "the master went away before the Join's result reached it; serving as a member all the same");
    }
    let _ = inner
        .ready
        .send(MemberReady {
            listen: offer.listen,
        })
        .await;
    Ok(())
}

/// What only this host can tell about an offer: that it has the addresses it is given,
/// and that its state directory holds no other cluster's state.
fn check_host(offer: &JoinOffer, state: &NodeState) -> Result<(), JoinRefusal> {
    let addresses: [(&'static str, IpAddr); 3] = [
        ("primary", offer.node.addrs.primary),
        ("secondary", offer.node.addrs.secondary),
        ("bind", offer.listen.ip()),
    ];
    for (role, addr) in addresses {
        if !addr.is_unspecified() && !owns_address(addr) {
            return Err(JoinRefusal::NotOwned { role, addr });
        }
    }
    if let Some(existing) = state.member_conf().map_err(JoinRefusal::Storage)?
        && existing.cluster_name != offer.cluster.as_str()
    {
        return Err(JoinRefusal::ClusterConflict {
            existing: existing.cluster_name,
            offered: offer.cluster.to_string(),
        });
    }
    Ok(())
}

impl Inner {
    /// Logs a refusal, at most one line per burst (of holders of the token, and of others)
    /// with the count of the others.
    fn log_refusal(&self, refusal: &JoinRefusal) {
        let burst = if refusal.is_by_token_holder() {
            &self.holder_refusals
        } else {
            &self.refusals
        };
        if let Some(suppressed) = burst.event(Instant::now()) {
            tracing::warn!(error = %refusal, more_since_last_line = suppressed, "join refused");
        }
    }

    fn flush_refusal_counts(&self) {
        let now = Instant::now();
        for (burst, who) in [
            (&self.refusals, "without the token"),
            (&self.holder_refusals, "with the token"),
        ] {
            if let Some(count) = burst.flush(now) {
                tracing::warn!(
                    count,
                    "{count} more joins refused ({who}) in the last burst"
                );
            }
        }
    }
}

async fn next_step(
    inbound: &mut Streaming<JoinClientMessage>,
) -> Result<join_client_message::Step, JoinRefusal> {
    match inbound.message().await {
        Ok(Some(JoinClientMessage { step: Some(step) })) => Ok(step),
        Ok(Some(JoinClientMessage { step: None })) => {
            Err(JoinRefusal::Exchange(ExchangeFault::EmptyMessage))
        }
        Ok(None) | Err(_) => Err(JoinRefusal::Exchange(ExchangeFault::MasterClosed)),
    }
}

async fn send(
    tx: &mpsc::Sender<Result<JoinServerMessage, Status>>,
    step: join_server_message::Step,
) -> Result<(), JoinRefusal> {
    tx.send(Ok(JoinServerMessage { step: Some(step) }))
        .await
        .map_err(|_| JoinRefusal::Exchange(ExchangeFault::MasterGone))
}

/// The Join service of a node that is already a member: every Join is refused.
#[derive(Debug, Clone)]
pub struct AlreadyJoined {
    cluster: String,
}

impl AlreadyJoined {
    /// The service of a member of `cluster`.
    pub fn new(cluster: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
        }
    }
}

#[tonic::async_trait]
impl bootstrap_server::Bootstrap for AlreadyJoined {
    type JoinStream = JoinStream;

    async fn join(
        &self,
        _request: Request<Streaming<JoinClientMessage>>,
    ) -> Result<Response<JoinStream>, Status> {
        Err(to_status(&JoinRefusal::AlreadyJoined(self.cluster.clone())))
    }
}
