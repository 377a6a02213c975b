//! The server side: [`ServerTls`] and whether it asks clients for a certificate.
//!
//! A `ServerTls` and its clones share one configuration, which [`ServerTls::replace`]
//! swaps: the next handshake uses the new certificate and trust, while connections already
//! open keep the session they made. That is how a node renews its certificate or its CAs
//! without restarting its listener or dropping a call.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite};

use super::pem::roots;
use super::policy::ALPN_H2;
use super::session::session_of;
use super::{
    DEFAULT_HANDSHAKE_TIMEOUT, Identity, PROTOCOL_VERSIONS, Pem, debug_setting, invalid, provider,
};
use crate::error::TlsConfigError;
use crate::peer::TlsPeer;

/// Whether a server asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A certificate from the cluster CA is required; the handshake fails without one.
    Required,
    /// A certificate is verified if presented; services decide what anonymous callers get.
    Optional,
    /// Certificates are not asked for.
    Off,
}

/// The server side of TLS.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<RwLock<Arc<ServerConfig>>>,
    handshake_timeout: Duration,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_setting(f, "ServerTls", "handshake_timeout", &self.handshake_timeout)
    }
}

impl ServerTls {
    /// A server presenting `identity`, checking client certificates against `ca` as `auth`
    /// says (`ca` may be `None` only with [`ClientAuth::Off`]).
    pub fn new(
        identity: &Identity,
        ca: Option<&Pem>,
        auth: ClientAuth,
    ) -> Result<Self, TlsConfigError> {
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(|e| invalid("TLS versions", &identity.cert_origin, e))?;
        let builder = match (auth, ca) {
            (ClientAuth::Off, _) => builder.with_no_client_auth(),
            (_, None) => {
                return Err(TlsConfigError::Invalid {
                    what: "client authentication",
                    path: identity.cert_origin.clone(),
                    reason: "client certificates need a CA to check them against".to_owned(),
                });
            }
            (auth, Some(ca)) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider);
                let verifier = match auth {
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                    _ => verifier,
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| invalid("CA certificate", ca.origin(), e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(|e| invalid("certificate", &identity.cert_origin, e))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        // The cluster's suite order wins over a client's (grpcurl, a stock rustls client).
        config.ignore_client_order = true;
        Ok(Self::from_config(Arc::new(config)))
    }

    /// A server from PEM files: CA, certificate, key.
    pub fn from_files(
        ca: &Path,
        cert: &Path,
        key: &Path,
        auth: ClientAuth,
    ) -> Result<Self, TlsConfigError> {
        let identity = Identity::from_files(cert, key)?;
        let ca = match auth {
            ClientAuth::Off => None,
            _ => Some(Pem::read("CA certificate", ca)?),
        };
        Self::new(&identity, ca.as_ref(), auth)
    }

    /// A server from a ready rustls configuration (ALPN must include `h2`).
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        Self {
            config: Arc::new(RwLock::new(config)),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// The rustls configuration in use, for a server that does its own accepting (the
    /// benchmark's bare baseline) and must speak exactly this TLS.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Makes every clone of this server use `next`'s certificate and trust from the next
    /// handshake on; open connections are not touched.
    pub fn replace(&self, next: &ServerTls) {
        let next = next.config();
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    /// Changes the handshake timeout.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Runs the server handshake on `io`, within the handshake timeout.
    pub(crate) async fn accept<IO>(
        &self,
        io: IO,
    ) -> std::io::Result<(tokio_rustls::server::TlsStream<IO>, TlsPeer)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config());
        let stream = tokio::time::timeout(self.handshake_timeout, acceptor.accept(io))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })??;
        let peer = session_of(stream.get_ref().1)?;
        Ok((stream, peer))
    }
}
