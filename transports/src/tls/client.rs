//! The client side: [`ClientTls`], verifying the server against the cluster CA (or, for the
//! join, not at all), and keeping the last session for channel binding.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::WantsClientCert;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ConfigBuilder};
use tokio::io::{AsyncRead, AsyncWrite};

use super::pem::roots;
use super::policy::ALPN_H2;
use super::session::session_of;
use super::{
    DEFAULT_HANDSHAKE_TIMEOUT, Identity, PROTOCOL_VERSIONS, Pem, debug_setting, invalid, provider,
};
use crate::error::TlsConfigError;
use crate::peer::TlsPeer;

mod danger;
mod member;

pub(crate) use member::{NotAMember, is_not_a_member};

/// The client side of TLS.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    last_session: Arc<Mutex<Option<TlsPeer>>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_setting(f, "ClientTls", "server_name", &self.server_name)
    }
}

impl ClientTls {
    /// A client trusting only `ca`, presenting `identity` when given.
    pub fn new(ca: &Pem, identity: Option<&Identity>) -> Result<Self, TlsConfigError> {
        let provider = provider();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots(ca)?,
            provider.clone(),
        )
        .build()
        .map_err(|e| invalid("CA certificate", ca.origin(), e))?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(|e| invalid("TLS versions", ca.origin(), e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(member::ClusterMember(verifier)));
        Self::with_identity(builder, identity)
    }

    /// A client from PEM files: the CA, and optionally a certificate and its key.
    pub fn from_files(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Self, TlsConfigError> {
        let identity = identity
            .map(|(cert, key)| Identity::from_files(cert, key))
            .transpose()?;
        Self::new(&Pem::read("CA certificate", ca)?, identity.as_ref())
    }

    /// A client that accepts whatever certificate the server presents, verifying only that
    /// the server holds its key. Only for a handshake whose trust comes from elsewhere (the
    /// join token's proof bound to [`TlsPeer::channel_binding`]); never for cluster RPC.
    pub fn danger_unverified_server(identity: Option<&Identity>) -> Result<Self, TlsConfigError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(|e| invalid("TLS versions", Path::new("<built-in>"), e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(danger::AnyServerCertificate(provider)));
        Self::with_identity(builder, identity)
    }

    /// Both ways of checking the server end here, so a client certificate is presented
    /// the same way whichever the server check is.
    fn with_identity(
        builder: ConfigBuilder<ClientConfig, WantsClientCert>,
        identity: Option<&Identity>,
    ) -> Result<Self, TlsConfigError> {
        let config = match identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(|e| invalid("certificate", &identity.cert_origin, e))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Self::from_config(config))
    }

    fn from_config(mut config: ClientConfig) -> Self {
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Self {
            config: Arc::new(config),
            server_name: None,
            last_session: Arc::new(Mutex::new(None)),
        }
    }

    /// This configuration with a session record of its own: for a client that reads
    /// [`last_session`](Self::last_session) and must not see another clone's handshake.
    pub fn with_own_session(mut self) -> Self {
        self.last_session = Arc::new(Mutex::new(None));
        self
    }

    /// Verifies the server's certificate for `name` (a DNS name or an IP address) instead of
    /// the dialled host. Required over Unix sockets and in memory, where there is no host.
    pub fn with_server_name(mut self, name: &str) -> Result<Self, TlsConfigError> {
        let server_name =
            ServerName::try_from(name.to_owned()).map_err(|e| TlsConfigError::Invalid {
                what: "server name",
                path: PathBuf::from(name),
                reason: e.to_string(),
            })?;
        self.server_name = Some(server_name);
        Ok(self)
    }

    /// The name the server's certificate is checked against: the configured one, or `host`.
    pub(crate) fn server_name_for(&self, host: Option<&str>) -> Option<ServerName<'static>> {
        self.server_name
            .clone()
            .or_else(|| host.and_then(|h| ServerName::try_from(h.to_owned()).ok()))
    }

    /// Runs the client handshake on `io`, and records the session.
    pub(crate) async fn connect<IO>(
        &self,
        name: ServerName<'static>,
        io: IO,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let stream = tokio::time::timeout(DEFAULT_HANDSHAKE_TIMEOUT, connector.connect(name, io))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })??;
        let session = session_of(stream.get_ref().1)?;
        *self.last_session.lock().unwrap_or_else(|p| p.into_inner()) = Some(session);
        Ok(stream)
    }

    /// The rustls configuration, for a client that does its own dialling (a test that must
    /// speak exactly this TLS without HTTP/2 on top).
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The most recent session a connector with this configuration established: the
    /// server's certificates and the exporter value, for channel binding.
    pub fn last_session(&self) -> Option<TlsPeer> {
        self.last_session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
