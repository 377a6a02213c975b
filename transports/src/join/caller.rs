//! The master's half of Join: prove the token, check the node's proof, then (only then)
//! certify the node's own key and send the offer.
//!
//! The bootstrap listener's certificate is self-signed, so it is accepted unverified; trust
//! comes from the token instead. Both proofs are bound to this TLS session's exporter
//! value, and the node's certificate is issued only after the node's proof has verified, for
//! exactly the key the node presented in the handshake.

use std::net::SocketAddr;

use gnt_core::error::{Classify, ErrorKind, kind_of_status};
use gnt_core::join::{JoinAccepted, JoinOffer, JoinToken, Side};
use gnt_core::node::Node;
use gnt_proto::bootstrap::v1::{
    JoinClientMessage, JoinRequest, JoinServerMessage, MasterHello,
    bootstrap_client::BootstrapClient, join_client_message, join_server_message,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::connect::Connector;
use crate::error::TlsConfigError;
use crate::tls::{ClientTls, Identity, Pem};

/// Issues node certificates: the cluster CA's signature over a node's public key.
pub trait CertificateIssuer: Send + Sync {
    /// A PEM certificate for `node`, for the public key `spki` (DER SubjectPublicKeyInfo),
    /// with subject CN = the node's name and OU = `node`, valid for its name and addresses.
    fn issue_node_certificate(&self, spki: &[u8], node: &Node) -> Result<String, IssueError>;
}

/// A certificate the CA could not issue; the cause is the issuer's own error.
#[derive(Debug, thiserror::Error)]
#[error("cannot issue the node's certificate")]
pub struct IssueError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// A rewrite of the request as it goes on the wire, after the certificate is issued.
#[cfg(feature = "testing")]
type RequestRewrite = Box<dyn FnOnce(&mut JoinRequest) + Send>;

/// What to send.
pub struct JoinPlan {
    /// The token the node was started with.
    pub token: JoinToken,
    /// When the token expires, seconds since the Unix epoch.
    pub expires_at_unix: i64,
    /// The offer; its node certificate is filled in here.
    pub offer: JoinOffer,
    /// The master's own certificate, presented in the handshake: a node that is a member
    /// already (its listener requires a cluster certificate) then answers with why it
    /// refuses, instead of failing the handshake. `None` by default.
    pub presenting: Option<Identity>,
    #[cfg(feature = "testing")]
    rewrite: Option<RequestRewrite>,
}

impl std::fmt::Debug for JoinPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinPlan")
            .field("token", &self.token)
            .field("expires_at_unix", &self.expires_at_unix)
            .field("offer", &self.offer)
            .finish_non_exhaustive()
    }
}

impl JoinPlan {
    /// A plan to send `offer` to a node holding `token`, which expires at `expires_at_unix`.
    pub fn new(token: JoinToken, expires_at_unix: i64, offer: JoinOffer) -> Self {
        Self {
            token,
            expires_at_unix,
            offer,
            presenting: None,
            #[cfg(feature = "testing")]
            rewrite: None,
        }
    }

    /// Sends the request as `rewrite` leaves it instead of the offer's faithful form: for
    /// tests that play a master sending what no real master sends (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn danger_rewrite_request(
        &mut self,
        rewrite: impl FnOnce(&mut JoinRequest) + Send + 'static,
    ) {
        self.rewrite = Some(Box::new(rewrite));
    }
}

/// A node that joined, as the master learns it.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Where the node's member API listens now, as it answered; `None` when the answer did
    /// not parse (logged: the node has joined all the same, and the master reaches it at its
    /// primary address).
    pub listen: Option<SocketAddr>,
    /// The node's protocol version.
    pub protocol_version: u32,
    /// The node's software version.
    pub software_version: String,
    /// SHA-256 of the certificate issued to the node (DER).
    pub certificate_sha256: [u8; 32],
}

/// A join that did not happen.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The bootstrap address could not be reached.
    #[error("cannot reach the node's bootstrap listener at {target}")]
    Connect {
        /// The address.
        target: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The node presented no certificate whose key could be certified.
    #[error("the node at {target} presented no usable certificate in the TLS handshake")]
    NoNodeKey {
        /// The address.
        target: String,
    },
    /// The node did not prove it holds the token: it is not the node the token was for.
    #[error(
        "the node at {target} did not prove it holds the join token; it may not be the node you meant (check the address and the token)"
    )]
    NodeNotAuthentic {
        /// The address.
        target: String,
    },
    /// The node presented a certificate of another cluster's CA: it is a member there (a
    /// node waiting for a Join presents its own self-signed certificate).
    #[error(
        "the node at {target} belongs to another cluster (its certificate is issued by '{issuer}', not this cluster's CA); remove it from that cluster first (`gnt node remove` on that cluster's master)"
    )]
    MemberElsewhere {
        /// The address.
        target: String,
        /// The issuer of its certificate.
        issuer: String,
    },
    /// The node is a member of this cluster as it was before its CA was renewed (it was
    /// removed, or down, while the CA changed).
    #[error(
        "the node at {target} is a member of this cluster from before its CA was renewed (its certificate is issued by '{issuer}'): on it, stop gnt-noded and empty its state directory (all but join-ledger), then add it again"
    )]
    MemberBeforeRenewal {
        /// The address.
        target: String,
        /// The issuer of its certificate.
        issuer: String,
    },
    /// The node refused.
    #[error("the node refused to join: {}", status.message())]
    Refused {
        /// The node's status.
        status: tonic::Status,
    },
    /// The node answered out of turn, or the exchange ended early.
    #[error("join protocol error with {target}: expected {expected}, got {got}")]
    Protocol {
        /// The address.
        target: String,
        /// What the exchange expected at that point.
        expected: &'static str,
        /// What came instead.
        got: &'static str,
    },
    /// The certificate could not be issued.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// The certificate the CA issued cannot be read back (a defect of the issuer).
    #[error("the node certificate just issued cannot be read back")]
    IssuedUnreadable(#[source] TlsConfigError),
    /// The client TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
}

impl Classify for JoinError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Connect { .. } => ErrorKind::Unavailable,
            Self::NodeNotAuthentic { .. } => ErrorKind::Unauthenticated,
            Self::MemberElsewhere { .. } | Self::MemberBeforeRenewal { .. } => {
                ErrorKind::WrongState
            }
            Self::Refused { status } => kind_of_status(status),
            Self::NoNodeKey { .. }
            | Self::Protocol { .. }
            | Self::Issue(_)
            | Self::IssuedUnreadable(_)
            | Self::Tls(_) => ErrorKind::Internal,
        }
    }
}

/// Joins the node behind `bootstrap` (a plain connector; TLS is added here).
pub async fn join(
    bootstrap: Connector,
    plan: JoinPlan,
    issuer: &dyn CertificateIssuer,
) -> Result<Joined, JoinError> {
    let target = bootstrap.target();
    let tls = ClientTls::danger_unverified_server(plan.presenting.as_ref())?;
    let channel = bootstrap
        .with_tls(tls.clone())
        .channel()
        .await
        .map_err(|source| JoinError::Connect {
            target: target.clone(),
            source,
        })?;
    let session = tls
        .last_session()
        .ok_or_else(|| out_of_turn(&target, "a TLS session", "none"))?;
    let node_certificate = session
        .certificates
        .first()
        .and_then(|cert| {
            use x509_parser::prelude::FromDer;
            x509_parser::certificate::X509Certificate::from_der(cert.as_ref())
                .ok()
                .map(|(_, parsed)| parsed)
        })
        .ok_or_else(|| JoinError::NoNodeKey {
            target: target.clone(),
        })?;
    // A member of another cluster would refuse this master's certificate in the handshake's
    // last flight, which reaches us only as "transport error": say what it is instead.
    // (Only a message depends on this; trust still comes from the token's proofs.)
    if let Some(issuer) = foreign_issuer(&node_certificate, &plan.offer.ca_certificate_pem) {
        // Every CA of a cluster is named after it (`gnt-rpc CA of <cluster>`, and
        // `..., renewed at <time>` for its successors): a name says which case this is,
        // never whether to trust anything.
        let ours = format!("CN=gnt-rpc CA of {}", plan.offer.cluster);
        let same_cluster = issuer == ours || issuer.starts_with(&format!("{ours},"));
        return Err(if same_cluster {
            JoinError::MemberBeforeRenewal { target, issuer }
        } else {
            JoinError::MemberElsewhere { target, issuer }
        });
    }
    let node_spki = node_certificate.public_key().raw.to_vec();

    // Step 1: our proof; step 2: the node's.
    let hello = MasterHello {
        token_id: plan.token.id().to_owned(),
        proof: plan.token.proof(Side::Master, &session.channel_binding),
        expires_at_unix: plan.expires_at_unix,
    };
    let mut exchange = Exchange::open(channel, target, hello).await?;
    let node_hello = exchange
        .receive("the node's hello", |step| match step {
            join_server_message::Step::Hello(hello) => Ok(hello),
            join_server_message::Step::Result(_) => Err("a join result"),
        })
        .await?;
    if !plan
        .token
        .verify(Side::Node, &session.channel_binding, &node_hello.proof)
    {
        // Stop here: nothing about the cluster goes to a party without the token.
        return Err(JoinError::NodeNotAuthentic {
            target: exchange.target,
        });
    }

    // Step 3: the offer, with a certificate for the key the node presented.
    let mut offer = plan.offer;
    offer.node_certificate_pem = issuer.issue_node_certificate(&node_spki, &offer.node)?;
    let certificate_sha256 = Pem::from_bytes(
        "the issued node certificate",
        offer.node_certificate_pem.clone(),
    )
    .leaf_sha256()
    .map_err(JoinError::IssuedUnreadable)?;
    #[cfg_attr(not(feature = "testing"), allow(unused_mut))]
    let mut request = JoinRequest::from(&offer);
    #[cfg(feature = "testing")]
    if let Some(rewrite) = plan.rewrite {
        rewrite(&mut request);
    }
    exchange
        .send(join_client_message::Step::Request(request))
        .await?;

    // Step 4: the node's answer.
    let result = exchange
        .receive("the join result", |step| match step {
            join_server_message::Step::Result(result) => Ok(result),
            join_server_message::Step::Hello(_) => Err("a second hello"),
        })
        .await?;
    let listen = match JoinAccepted::try_from(&result) {
        Ok(accepted) => Some(accepted.listen),
        Err(error) => {
            tracing::warn!(node = %offer.node.name, %error, "the node joined but named no usable listen address");
            None
        }
    };
    tracing::info!(node = %offer.node.name, listen = ?listen, "node joined");
    Ok(Joined {
        listen,
        protocol_version: node_hello.protocol_version,
        software_version: node_hello.software_version,
        certificate_sha256,
    })
}

/// The master's end of one Join stream.
struct Exchange {
    target: String,
    outbound: mpsc::Sender<JoinClientMessage>,
    inbound: Streaming<JoinServerMessage>,
}

/// The issuer of `certificate` when it is neither self-signed (a node waiting for a Join)
/// nor signed by the CA of `ca_pem` (a member of this cluster).
fn foreign_issuer(
    certificate: &x509_parser::certificate::X509Certificate<'_>,
    ca_pem: &str,
) -> Option<String> {
    use x509_parser::prelude::FromDer;
    let issuer = certificate.issuer();
    if issuer == certificate.subject() {
        return None;
    }
    let ours = Pem::from_bytes("the cluster CA", ca_pem.as_bytes().to_vec())
        .certificates("CA certificate")
        .ok()?
        .into_iter()
        .next()?;
    let (_, ca) = x509_parser::certificate::X509Certificate::from_der(ours.as_ref()).ok()?;
    let issued_by_ours =
        issuer == ca.subject() && certificate.verify_signature(Some(ca.public_key())).is_ok();
    (!issued_by_ours).then(|| issuer.to_string())
}

impl Exchange {
    /// Opens the stream on `channel` with `hello` as its first message.
    async fn open(
        channel: tonic::transport::Channel,
        target: String,
        hello: MasterHello,
    ) -> Result<Self, JoinError> {
        let (outbound, rx) = mpsc::channel(2);
        // The channel has room: the hello waits in it until the call starts.
        let hello = JoinClientMessage {
            step: Some(join_client_message::Step::Hello(hello)),
        };
        if outbound.try_send(hello).is_err() {
            return Err(out_of_turn(&target, "the exchange to stay open", "its end"));
        }
        let inbound = BootstrapClient::new(channel)
            .join(ReceiverStream::new(rx))
            .await
            .map_err(|status| JoinError::Refused { status })?
            .into_inner();
        Ok(Self {
            target,
            outbound,
            inbound,
        })
    }

    async fn send(&self, step: join_client_message::Step) -> Result<(), JoinError> {
        self.outbound
            .send(JoinClientMessage { step: Some(step) })
            .await
            .map_err(|_| out_of_turn(&self.target, "the exchange to stay open", "its end"))
    }

    /// The node's next message, which `wanted` must accept; `expected` names it.
    async fn receive<T>(
        &mut self,
        expected: &'static str,
        wanted: impl FnOnce(join_server_message::Step) -> Result<T, &'static str>,
    ) -> Result<T, JoinError> {
        let message = self
            .inbound
            .message()
            .await
            .map_err(|status| JoinError::Refused { status })?;
        let got = match message {
            None => "the end of the exchange",
            Some(JoinServerMessage { step: None }) => "an empty message",
            Some(JoinServerMessage { step: Some(step) }) => match wanted(step) {
                Ok(value) => return Ok(value),
                Err(got) => got,
            },
        };
        Err(out_of_turn(&self.target, expected, got))
    }
}

fn out_of_turn(target: &str, expected: &'static str, got: &'static str) -> JoinError {
    JoinError::Protocol {
        target: target.to_owned(),
        expected,
        got,
    }
}
