//! Whether a node is a member of this cluster, asked over mutual TLS with the cluster CA:
//! what node add needs before taking in a node that says it joined already, and what
//! recovery needs to learn whether an interrupted Join reached the node.
//!
//! A member presents a certificate of our CA valid for its name and answers `Version` to
//! the master; a node in bootstrap mode (self-signed certificate) or of another cluster
//! fails the handshake while its port answers; a node whose port does not answer is
//! unreachable, and nothing can be concluded about it.

use std::net::SocketAddr;
use std::time::Duration;

use gnt_core::error::{Chain, find_cause};
use gnt_core::netutils::{PingOptions, tcp_ping};
use gnt_core::node::Node;
use gnt_proto::node::v1::VersionRequest;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_transports::{ConnectError, Connector, DialOptions, PeerIdentity, fingerprint};

use super::rpc_call::timed;
use crate::error::MasterError;
use crate::master::Master;

/// How long the handshake and the Version call may take, each.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a node is, as far as this cluster is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// A member: its certificate's SHA-256 fingerprint, its public key, and its protocol
    /// version.
    Member {
        /// The fingerprint of the certificate it presented.
        certificate_sha256: String,
        /// The subject public key info (DER) of that certificate.
        public_key: Vec<u8>,
        /// That certificate (DER), for who issued it.
        certificate: rustls::pki_types::CertificateDer<'static>,
        /// Its protocol version.
        protocol_version: u32,
    },
    /// It answers, but not as a member of this cluster: why.
    NotMember(String),
    /// Nothing answers: why.
    Unreachable(String),
}

impl Master {
    /// Asks `node` at its primary address whether it is a member of this cluster.
    pub async fn probe_membership(&self, node: &Node) -> Result<Membership, MasterError> {
        let config = self.config.snapshot().await;
        let addr = SocketAddr::new(node.addrs.primary, config.node_port);
        // What the node's channel presents (a node a renewal waits for accepts only the
        // master's previous certificate), with a session record that is this probe's only.
        let tls = self
            .channels
            .client_tls(node.name.as_str())
            .with_own_session()
            .with_server_name(node.name.as_str())?;
        let connector =
            Connector::tcp_addr(addr, DialOptions::new(config.policy)).with_tls(tls.clone());
        let channel = match tokio::time::timeout(PROBE_TIMEOUT, connector.channel()).await {
            Ok(Ok(channel)) => channel,
            // Nothing listened when we dialled: whatever listens a moment later (a node
            // switching listeners after a Join) says nothing about this attempt.
            Ok(Err(error))
                if find_cause::<ConnectError>(&error).is_some_and(ConnectError::is_refused) =>
            {
                return Ok(Membership::Unreachable(Chain(&error).to_string()));
            }
            Ok(Err(error))
                if find_cause::<ConnectError>(&error)
                    .is_some_and(ConnectError::is_not_a_member) =>
            {
                return Ok(Membership::NotMember(
                    "it presents a self-signed certificate: it has no membership (it left the cluster, or waits for a Join)".to_owned(),
                ));
            }
            Ok(Err(error)) if port_answers(addr).await => {
                return Ok(Membership::NotMember(format!(
                    "it refuses mutual TLS with this cluster's CA ({})",
                    Chain(&error)
                )));
            }
            Ok(Err(error)) => return Ok(Membership::Unreachable(Chain(&error).to_string())),
            Err(_) => {
                return Ok(Membership::Unreachable(format!(
                    "no TLS handshake within {}s",
                    PROBE_TIMEOUT.as_secs()
                )));
            }
        };
        let session = tls.last_session();
        let presented = session.as_ref().and_then(|session| {
            let identity = session.identity.as_ref()?;
            let certificate = session.certificates.first()?;
            let public_key = PeerIdentity::public_key_of(certificate)?;
            Some((
                fingerprint(&identity.sha256),
                public_key,
                certificate.clone(),
            ))
        });
        let Some((certificate_sha256, public_key, certificate)) = presented else {
            return Ok(Membership::NotMember(
                "it presented no readable certificate".to_owned(),
            ));
        };
        let request = timed(VersionRequest::default(), PROBE_TIMEOUT);
        match NodeAgentClient::new(channel).version(request).await {
            Ok(reply) => Ok(Membership::Member {
                certificate_sha256,
                public_key,
                certificate,
                protocol_version: reply.into_inner().protocol_version,
            }),
            Err(status) => Ok(Membership::NotMember(format!(
                "it does not answer the master as a member ({})",
                status.message()
            ))),
        }
    }
}

/// Whether anything accepts a TCP connection at `addr`.
async fn port_answers(addr: SocketAddr) -> bool {
    let options = PingOptions {
        timeout: PROBE_TIMEOUT,
        source: None,
        live_port_needed: true,
    };
    tcp_ping(addr, &options)
        .await
        .is_ok_and(|outcome| outcome.is_alive(true))
}
