//! The master's side of Join (the exchange is specified in
//! `proto/gnt/bootstrap/v1/bootstrap.proto`).
//!
//! The bootstrap listener's certificate is self-signed, so it is accepted unverified; trust
//! comes from the token instead. Both proofs are bound to this TLS session's exporter
//! value, and the node's certificate is issued only after the node's proof has verified, for
//! exactly the key the node presented in the handshake.

use gnt_core::error::{Chain, Classify, ErrorKind, kind_of_status};
use gnt_core::join::{JoinToken, Side};
use gnt_proto::bootstrap::v1::{
    JoinClientMessage, JoinRequest, JoinServerMessage, MasterHello,
    bootstrap_client::BootstrapClient, join_client_message, join_server_message,
};
use gnt_proto::cluster::v1::NodeAddresses;
use gnt_transports::{ClientTls, Connector, TlsConfigError, sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Issues node certificates: the cluster CA's signature over a node's public key.
pub trait CertificateIssuer: Send + Sync {
    /// A PEM certificate for `node`, for the public key `spki` (DER SubjectPublicKeyInfo),
    /// with subject CN = the node's name and OU = `node`, valid for its name and addresses.
    fn issue_node_certificate(&self, spki: &[u8], node: &NodeAddresses) -> Result<String, String>;
}

/// What to send.
#[derive(Debug)]
pub struct JoinPlan {
    /// The token the node was started with.
    pub token: JoinToken,
    /// When the token expires, seconds since the Unix epoch.
    pub expires_at_unix: i64,
    /// The request; its `node_certificate_pem` is filled in here.
    pub request: JoinRequest,
}

/// A successful join.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Where the node will listen, `host:port`.
    pub listen_address: String,
    /// The node's protocol version.
    pub protocol_version: u32,
    /// The node's software version.
    pub software_version: String,
    /// The certificate issued to the node, PEM.
    pub certificate_pem: String,
    /// SHA-256 of that certificate (DER).
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
    /// The node did not prove it holds the token: it is not the node the token was for.
    #[error(
        "the node at {target} did not prove it holds the join token; it may not be the node you meant (check the address and the token)"
    )]
    NodeNotAuthentic {
        /// The address.
        target: String,
    },
    /// The node refused.
    #[error("the node refused to join: {}", status.message())]
    Refused {
        /// The node's status.
        status: tonic::Status,
    },
    /// The exchange went wrong.
    #[error("join protocol error with {target}: {reason}")]
    Protocol {
        /// The address.
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// The certificate could not be issued.
    #[error("cannot issue the node's certificate: {0}")]
    Issue(String),
    /// The client TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
}

impl Classify for JoinError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Connect { .. } => ErrorKind::Unavailable,
            Self::NodeNotAuthentic { .. } => ErrorKind::Unauthenticated,
            Self::Refused { status } => kind_of_status(status),
            Self::Protocol { .. } | Self::Issue(_) | Self::Tls(_) => ErrorKind::Internal,
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
    let protocol = |reason: String| JoinError::Protocol {
        target: target.clone(),
        reason,
    };
    let tls = ClientTls::danger_unverified_server(None)?;
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
        .ok_or_else(|| protocol("no TLS session".to_owned()))?;
    let node_spki = session
        .certificates
        .first()
        .and_then(|cert| {
            use x509_parser::prelude::FromDer;
            x509_parser::certificate::X509Certificate::from_der(cert.as_ref())
                .ok()
                .map(|(_, parsed)| parsed.public_key().raw.to_vec())
        })
        .ok_or_else(|| protocol("the node presented no usable certificate".to_owned()))?;

    let (tx, rx) = mpsc::channel(2);
    let hello = MasterHello {
        token_id: plan.token.id().to_owned(),
        proof: plan.token.proof(Side::Master, &session.channel_binding),
        expires_at_unix: plan.expires_at_unix,
    };
    send(&tx, join_client_message::Step::Hello(hello), &protocol).await?;
    let refused = |status: tonic::Status| JoinError::Refused { status };
    let mut inbound = BootstrapClient::new(channel)
        .join(ReceiverStream::new(rx))
        .await
        .map_err(refused)?
        .into_inner();

    let node_hello = match inbound.message().await.map_err(refused)? {
        Some(JoinServerMessage {
            step: Some(join_server_message::Step::Hello(hello)),
        }) => hello,
        other => {
            return Err(protocol(format!(
                "expected the node's hello, got {other:?}"
            )));
        }
    };
    if !plan
        .token
        .verify(Side::Node, &session.channel_binding, &node_hello.proof)
    {
        // Stop here: nothing about the cluster goes to a party without the token.
        return Err(JoinError::NodeNotAuthentic { target });
    }

    let node = plan.request.node.clone().unwrap_or_default();
    let certificate_pem = issuer
        .issue_node_certificate(&node_spki, &node)
        .map_err(JoinError::Issue)?;
    let mut request = plan.request;
    request.node_certificate_pem = certificate_pem.clone();
    send(&tx, join_client_message::Step::Request(request), &protocol).await?;

    let result = match inbound.message().await.map_err(refused)? {
        Some(JoinServerMessage {
            step: Some(join_server_message::Step::Result(result)),
        }) => result,
        other => return Err(protocol(format!("expected the join result, got {other:?}"))),
    };
    let certificate_sha256 = {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        CertificateDer::from_pem_slice(certificate_pem.as_bytes())
            .map(|der| sha256(der.as_ref()))
            .map_err(|e| JoinError::Issue(format!("the issued certificate is not PEM: {e}")))?
    };
    tracing::info!(node = %node.name, listen = %result.listen_address, "node joined");
    Ok(Joined {
        listen_address: result.listen_address,
        protocol_version: node_hello.protocol_version,
        software_version: node_hello.software_version,
        certificate_pem,
        certificate_sha256,
    })
}

async fn send(
    tx: &mpsc::Sender<JoinClientMessage>,
    step: join_client_message::Step,
    protocol: &impl Fn(String) -> JoinError,
) -> Result<(), JoinError> {
    tx.send(JoinClientMessage { step: Some(step) })
        .await
        .map_err(|e| protocol(format!("the exchange closed early: {}", Chain(&e))))
}
