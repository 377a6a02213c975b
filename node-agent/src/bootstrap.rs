//! Bootstrap mode: the Join exchange, node side (the exchange itself is specified in
//! `proto/gnt/bootstrap/v1/bootstrap.proto`).
//!
//! Every check happens before anything is written: the master's proof, the token's expiry,
//! then every field of the request (policy, bind address, primary and secondary families,
//! that this host owns both addresses, that the certificate is the CA's and for this node's
//! own key, that the ssconf describes the same cluster and node). A refusal answers with a
//! status saying what is wrong and leaves the state directory as it was.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gnt_core::error::{Classify, ErrorKind, to_status};
use gnt_core::join::{JoinToken, Side};
use gnt_core::netutils::{
    AddressError, Hostname, HostnameError, owns_address, parse_ip, parse_port,
};
use gnt_core::policy::{IpFamily, IpPolicy};
use gnt_core::ssconf::{SsconfError, SsconfSet};
use gnt_proto::bootstrap::v1::{
    JoinClientMessage, JoinRequest, JoinResult, JoinServerMessage, NodeHello, bootstrap_server,
    join_client_message, join_server_message,
};
use gnt_proto::cluster::v1::PrimaryIpVersion;
use gnt_transports::{PeerInfo, TlsPeer};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::sync::{Mutex, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::state::{JoinCommit, MemberConf, NodeState, StateError};

/// How long a whole Join exchange may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a Join was refused.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum JoinRefusal {
    /// The agent was started without a token.
    #[error(
        "this node has no join token; restart gnt-noded with --join-token-file or GNT_JOIN_TOKEN"
    )]
    NoToken,
    /// The token id is not this node's.
    #[error("join token '{given}' is not this node's token")]
    WrongTokenId {
        /// The id the master used.
        given: String,
    },
    /// The master's proof does not verify.
    #[error(
        "the master's join token proof is invalid for this connection (wrong token, or a replayed or relayed request)"
    )]
    BadProof,
    /// The token has expired.
    #[error("the join token expired {ago}s ago; create a new one with `gnt node token create`")]
    Expired {
        /// Seconds since it expired.
        ago: u64,
    },
    /// The exchange did not follow the protocol.
    #[error("join protocol error: {0}")]
    Protocol(&'static str),
    /// The connection is not TLS (cannot happen on a bootstrap listener).
    #[error("Join needs a TLS connection")]
    NotTls,
    /// A field is missing or malformed.
    #[error("invalid {field} '{value}': {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The bind address does not fit the policy.
    #[error("bind address {addr} does not fit a {policy} cluster; use {} or an address of this node", policy.bind_wildcard())]
    BindFamily {
        /// The address.
        addr: IpAddr,
        /// The policy.
        policy: IpPolicy,
    },
    /// The primary address is of the wrong family.
    #[error("primary address {addr} is not {family}, as a {policy} cluster requires")]
    PrimaryFamily {
        /// The address.
        addr: IpAddr,
        /// The required family.
        family: IpFamily,
        /// The policy.
        policy: IpPolicy,
    },
    /// The secondary address is missing or not IPv4.
    #[error(
        "secondary address '{0}' must be an IPv4 address (required in a hybrid IPv6/IPv4 cluster)"
    )]
    Secondary(String),
    /// The node does not own an address it was given.
    #[error(
        "this node does not have its {role} address {addr}; configure it on an interface first"
    )]
    NotOwned {
        /// `primary`, `secondary` or `bind`.
        role: &'static str,
        /// The address.
        addr: IpAddr,
    },
    /// The state belongs to another cluster.
    #[error("this node holds state of cluster '{existing}', not '{offered}'; remove it first")]
    ClusterConflict {
        /// The cluster in the state directory.
        existing: String,
        /// The cluster of the request.
        offered: String,
    },
    /// The certificate is not the CA's, not for this node, or not for this node's key.
    #[error("the node certificate is unacceptable: {0}")]
    Certificate(String),
    /// The ssconf set is invalid or contradicts the request.
    #[error("the ssconf set is unacceptable: {0}")]
    Ssconf(String),
    /// The node already joined.
    #[error(
        "this node already belongs to cluster '{0}'; remove it from that cluster first (`gnt node remove`)"
    )]
    AlreadyJoined(String),
    /// Writing the state failed.
    #[error("cannot store the cluster state")]
    Storage(#[source] StateError),
}

impl Classify for JoinRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoToken | Self::ClusterConflict { .. } => ErrorKind::WrongState,
            Self::WrongTokenId { .. } | Self::BadProof | Self::Expired { .. } | Self::NotTls => {
                ErrorKind::Unauthenticated
            }
            Self::Protocol(_)
            | Self::Invalid { .. }
            | Self::BindFamily { .. }
            | Self::PrimaryFamily { .. }
            | Self::Secondary(_)
            | Self::Certificate(_)
            | Self::Ssconf(_) => ErrorKind::WrongInput,
            Self::NotOwned { .. } | Self::Storage(_) => ErrorKind::Environment,
            Self::AlreadyJoined(_) => ErrorKind::AlreadyExists,
        }
    }
}

/// Sent to the daemon when a join has been committed.
#[derive(Debug, Clone, Copy)]
pub struct Joined {
    /// Where the member API is to listen.
    pub listen: SocketAddr,
}

/// The Join service of a bootstrapping node.
#[derive(Clone)]
pub(crate) struct BootstrapService {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<NodeState>,
    token: Option<JoinToken>,
    node_spki: Vec<u8>,
    /// Held while a request is checked and committed: one join at a time, and none after
    /// the first succeeded.
    committed: Mutex<Option<String>>,
    joined: mpsc::Sender<Joined>,
}

impl BootstrapService {
    pub(crate) fn new(
        state: Arc<NodeState>,
        token: Option<JoinToken>,
        node_spki: Vec<u8>,
        joined: mpsc::Sender<Joined>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                state,
                token,
                node_spki,
                committed: Mutex::new(None),
                joined,
            }),
        }
    }
}

type JoinStream = ReceiverStream<Result<JoinServerMessage, Status>>;

#[tonic::async_trait]
impl bootstrap_server::Bootstrap for BootstrapService {
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
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(2);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let _entered = span.enter();
            let outcome =
                tokio::time::timeout(JOIN_TIMEOUT, exchange(&inner, &session, inbound, &tx)).await;
            let result = match outcome {
                Ok(result) => result,
                Err(_) => Err(JoinRefusal::Protocol("the exchange took longer than 30 s")),
            };
            if let Err(refusal) = result {
                tracing::warn!(error = %refusal, "join refused");
                let _ = tx.send(Err(to_status(&refusal))).await;
            }
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
    let hello = match next_step(&mut inbound).await? {
        join_client_message::Step::Hello(hello) => hello,
        join_client_message::Step::Request(_) => {
            return Err(JoinRefusal::Protocol("expected hello first"));
        }
    };
    let token = inner.token.as_ref().ok_or(JoinRefusal::NoToken)?;
    if hello.token_id != token.id() {
        return Err(JoinRefusal::WrongTokenId {
            given: hello.token_id,
        });
    }
    if !token.verify(Side::Master, &session.channel_binding, &hello.proof) {
        return Err(JoinRefusal::BadProof);
    }
    let now = unix_now();
    if hello.expires_at_unix <= now {
        return Err(JoinRefusal::Expired {
            ago: now.saturating_sub(hello.expires_at_unix).unsigned_abs(),
        });
    }

    // Step 2: the node proves it holds the token.
    let reply = NodeHello {
        proof: token.proof(Side::Node, &session.channel_binding),
        protocol_version: gnt_proto::NODE_PROTOCOL_VERSION,
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    send(tx, join_server_message::Step::Hello(reply)).await?;

    // Step 3: the request, checked completely, then committed.
    let request = match next_step(&mut inbound).await? {
        join_client_message::Step::Request(request) => request,
        join_client_message::Step::Hello(_) => {
            return Err(JoinRefusal::Protocol("expected the request after hello"));
        }
    };
    let mut committed = inner.committed.lock().await;
    if let Some(cluster) = committed.as_ref() {
        return Err(JoinRefusal::AlreadyJoined(cluster.clone()));
    }
    let valid = validate(&request, &inner.state, &inner.node_spki)?;
    inner
        .state
        .commit_join(&JoinCommit {
            ca_pem: &request.ca_certificate_pem,
            node_cert_pem: &request.node_certificate_pem,
            member: MemberConf {
                cluster_name: valid.cluster.to_string(),
                listen: valid.listen,
            },
            ssconf: &valid.ssconf,
        })
        .map_err(JoinRefusal::Storage)?;
    *committed = Some(valid.cluster.to_string());
    tracing::info!(cluster = %valid.cluster, node = %valid.node, listen = %valid.listen, "joined the cluster");

    // Step 4.
    let listen = gnt_core::netutils::format_host_port(valid.listen.ip(), valid.listen.port());
    send(
        tx,
        join_server_message::Step::Result(JoinResult {
            listen_address: listen,
        }),
    )
    .await?;
    let _ = inner
        .joined
        .send(Joined {
            listen: valid.listen,
        })
        .await;
    Ok(())
}

async fn next_step(
    inbound: &mut Streaming<JoinClientMessage>,
) -> Result<join_client_message::Step, JoinRefusal> {
    match inbound.message().await {
        Ok(Some(JoinClientMessage { step: Some(step) })) => Ok(step),
        Ok(Some(JoinClientMessage { step: None })) => Err(JoinRefusal::Protocol("empty message")),
        Ok(None) | Err(_) => Err(JoinRefusal::Protocol("the master closed the exchange")),
    }
}

async fn send(
    tx: &mpsc::Sender<Result<JoinServerMessage, Status>>,
    step: join_server_message::Step,
) -> Result<(), JoinRefusal> {
    tx.send(Ok(JoinServerMessage { step: Some(step) }))
        .await
        .map_err(|_| JoinRefusal::Protocol("the master went away"))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A request that passed every check.
struct ValidJoin {
    cluster: Hostname,
    node: Hostname,
    listen: SocketAddr,
    ssconf: SsconfSet,
}

fn invalid(field: &'static str, value: &str, reason: impl ToString) -> JoinRefusal {
    JoinRefusal::Invalid {
        field,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

fn hostname(field: &'static str, value: &str) -> Result<Hostname, JoinRefusal> {
    Hostname::parse(value).map_err(|e: HostnameError| invalid(field, value, e.reason))
}

fn address(field: &'static str, value: &str) -> Result<IpAddr, JoinRefusal> {
    parse_ip(value).map_err(|e: AddressError| invalid(field, value, e))
}

fn validate(
    request: &JoinRequest,
    state: &NodeState,
    node_spki: &[u8],
) -> Result<ValidJoin, JoinRefusal> {
    let cluster = hostname("cluster name", &request.cluster_name)?;
    let policy = match request.primary_ip_version() {
        PrimaryIpVersion::PrimaryIpVersion4 => IpPolicy::Ipv4,
        PrimaryIpVersion::PrimaryIpVersion6 => IpPolicy::HybridIpv6,
        PrimaryIpVersion::Unspecified => {
            return Err(invalid("primary IP version", "unspecified", "use 4 or 6"));
        }
    };
    let node = request
        .node
        .as_ref()
        .ok_or_else(|| invalid("node", "", "missing"))?;
    let node_name = hostname("node name", &node.name)?;
    let primary = address("primary address", &node.primary_ip)?;
    if IpFamily::of(&primary) != policy.primary_family() {
        return Err(JoinRefusal::PrimaryFamily {
            addr: primary,
            family: policy.primary_family(),
            policy,
        });
    }
    let secondary = match (node.secondary_ip.as_str(), policy) {
        ("", IpPolicy::Ipv4) => primary,
        ("", IpPolicy::HybridIpv6) => return Err(JoinRefusal::Secondary(String::new())),
        (text, _) => match parse_ip(text) {
            Ok(ip @ IpAddr::V4(_)) => ip,
            _ => return Err(JoinRefusal::Secondary(text.to_owned())),
        },
    };
    let bind = address("bind address", &request.bind_address)?;
    if !policy.allows_bind_address(bind) {
        return Err(JoinRefusal::BindFamily { addr: bind, policy });
    }
    let port = parse_port(&request.port.to_string())
        .ok()
        .ok_or_else(|| invalid("port", &request.port.to_string(), "use 1 to 65535"))?;
    for (role, addr) in [
        ("primary", primary),
        ("secondary", secondary),
        ("bind", bind),
    ] {
        if !addr.is_unspecified() && !owns_address(addr) {
            return Err(JoinRefusal::NotOwned { role, addr });
        }
    }
    if let Some(existing) = state.member_conf().map_err(JoinRefusal::Storage)?
        && existing.cluster_name != cluster.as_str()
    {
        return Err(JoinRefusal::ClusterConflict {
            existing: existing.cluster_name,
            offered: cluster.to_string(),
        });
    }
    verify_certificate(request, &node_name, node_spki)?;

    let wire = request
        .ssconf
        .as_ref()
        .map(|s| s.values.clone())
        .unwrap_or_default();
    let ssconf = SsconfSet::from_wire(wire).map_err(|e| JoinRefusal::Ssconf(e.to_string()))?;
    let check = |what: &str, result: Result<bool, SsconfError>| match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(JoinRefusal::Ssconf(format!(
            "its {what} contradicts the request"
        ))),
        Err(e) => Err(JoinRefusal::Ssconf(e.to_string())),
    };
    check("cluster name", ssconf.cluster_name().map(|c| c == cluster))?;
    check("policy", ssconf.ip_policy().map(|p| p == policy))?;
    check(
        "addresses of this node",
        ssconf
            .node_addresses(&node_name)
            .map(|a| a.is_some_and(|a| a.primary == primary && a.secondary == secondary)),
    )?;
    Ok(ValidJoin {
        cluster,
        node: node_name,
        listen: SocketAddr::new(bind, port),
        ssconf,
    })
}

/// The certificate must chain to the CA it came with, name this node, and be for the key
/// this node holds (so the master cannot hand it someone else's identity).
fn verify_certificate(
    request: &JoinRequest,
    node: &Hostname,
    node_spki: &[u8],
) -> Result<(), JoinRefusal> {
    use rustls::pki_types::pem::PemObject;
    let bad = |reason: String| JoinRefusal::Certificate(reason);
    let ca: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(request.ca_certificate_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("the CA certificate is not PEM: {e}")))?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(request.node_certificate_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("not PEM: {e}")))?;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| bad("no certificate in it".to_owned()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca {
        roots
            .add(cert)
            .map_err(|e| bad(format!("the CA certificate is invalid: {e}")))?;
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        gnt_transports::provider(),
    )
    .build()
    .map_err(|e| bad(format!("the CA certificate is unusable: {e}")))?;
    let name = ServerName::try_from(node.as_str().to_owned()).map_err(|e| bad(e.to_string()))?;
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
        .map_err(|e| {
            bad(format!(
                "it does not verify for '{node}' against the CA: {e}"
            ))
        })?;
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| bad(format!("it does not parse: {e}")))?;
    if parsed.public_key().raw != node_spki {
        return Err(bad("it is for another key than this node's".to_owned()));
    }
    Ok(())
}

/// The Join service of a node that is already a member: every Join is refused.
#[derive(Debug, Clone)]
pub(crate) struct AlreadyJoined {
    pub(crate) cluster: String,
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
