//! TLS over any transport, with rustls and its ring provider only (no C crypto build).
//!
//! - [`ServerTls`]: the server side of every listener kind: certificate and key from PEM,
//!   client certificates checked against the cluster CA when [`ClientAuth`] asks, ALPN `h2`,
//!   a handshake timeout. The handshake runs in the listener's accept path, so the verified
//!   peer identity and the session's exporter value reach services in [`PeerInfo`].
//! - [`ClientTls`]: the client side of every connector kind: the cluster CA as the only
//!   trust anchor, an optional client certificate, ALPN `h2`, and the last session's peer
//!   certificates and exporter value for channel binding.
//!
//! Configuration errors name the file: a missing file, a file without PEM, a key that does
//! not belong to its certificate.
//!
//! [`PeerInfo`]: crate::PeerInfo

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::TlsConfigError;
use crate::peer::{CHANNEL_BINDING_LABEL, PeerIdentity, TlsPeer};

/// How long a TLS handshake may take before the connection is dropped. Defaults to 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The only application protocol spoken: HTTP/2 (tonic clients insist on it).
const ALPN_H2: &[u8] = b"h2";

/// The only protocol version spoken: TLS 1.3. Every peer is a gnt-rpc daemon, `gnt` or a
/// recent grpcurl, so nothing needs TLS 1.2, and its exporter (the join's channel binding)
/// is sound only with extended master secrets, which 1.3 makes moot.
pub const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The crypto provider of every configuration: ring, with the TLS 1.3 suites in the order
/// this project prefers. AES-128-GCM comes first (rustls' default puts AES-256 first): its
/// handshake hash is SHA-256, which CPUs with SHA extensions run in hardware while SHA-384
/// runs in software, and its bulk encryption does 10 AES rounds instead of 14. Both are
/// 128-bit-secure choices; `docs/benchmarks.md` has what the order saves.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    })
}

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

/// PEM input and where it came from, for error messages.
#[derive(Debug, Clone)]
pub struct Pem {
    origin: PathBuf,
    bytes: Vec<u8>,
}

impl Pem {
    /// Reads a PEM file; `what` names its role in errors ("CA certificate", ...).
    pub fn read(what: &'static str, path: &Path) -> Result<Self, TlsConfigError> {
        std::fs::read(path)
            .map(|bytes| Self {
                origin: path.to_owned(),
                bytes,
            })
            .map_err(|source| TlsConfigError::Read {
                what,
                path: path.to_owned(),
                source,
            })
    }

    /// PEM held in memory; `origin` names it in errors (a file name, or a description).
    pub fn from_bytes(origin: impl Into<PathBuf>, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            origin: origin.into(),
            bytes: bytes.into(),
        }
    }

    /// The certificates in it, in order; at least one.
    pub fn certificates(
        &self,
        what: &'static str,
    ) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
        let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&self.bytes).collect();
        match certs {
            Ok(certs) if !certs.is_empty() => Ok(certs),
            Ok(_) => Err(self.no_pem(what, None)),
            Err(err) => Err(self.no_pem(what, Some(err.to_string()))),
        }
    }

    /// The private key in it.
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
        PrivateKeyDer::from_pem_slice(&self.bytes).map_err(|err| {
            let detail = match err {
                rustls::pki_types::pem::Error::NoItemsFound => None,
                other => Some(other.to_string()),
            };
            self.no_pem("private key", detail)
        })
    }

    fn no_pem(&self, what: &'static str, detail: Option<String>) -> TlsConfigError {
        TlsConfigError::NoPem {
            what,
            path: self.origin.clone(),
            detail,
        }
    }

    fn origin(&self) -> &Path {
        &self.origin
    }
}

/// A certificate chain with its private key.
#[derive(Debug, Clone)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    cert_origin: PathBuf,
    key_origin: PathBuf,
}

impl Identity {
    /// From PEM: the certificate (chain) and its key.
    pub fn from_pem(cert: &Pem, key: &Pem) -> Result<Self, TlsConfigError> {
        let identity = Self {
            chain: cert.certificates("certificate")?,
            key: Arc::new(key.private_key()?),
            cert_origin: cert.origin().to_owned(),
            key_origin: key.origin().to_owned(),
        };
        identity.check_key()?;
        Ok(identity)
    }

    /// From PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsConfigError> {
        Self::from_pem(
            &Pem::read("certificate", cert)?,
            &Pem::read("private key", key)?,
        )
    }

    /// The end-entity certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    fn check_key(&self) -> Result<(), TlsConfigError> {
        let provider = provider();
        let key = provider
            .key_provider
            .load_private_key(self.key.clone_key())
            .map_err(|e| TlsConfigError::Invalid {
                what: "private key",
                path: self.key_origin.clone(),
                reason: e.to_string(),
            })?;
        let certified = rustls::sign::CertifiedKey::new(self.chain.clone(), key);
        match certified.keys_match() {
            Ok(()) => Ok(()),
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                Err(TlsConfigError::KeyMismatch {
                    cert: self.cert_origin.clone(),
                    key: self.key_origin.clone(),
                })
            }
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
            Err(e) => Err(TlsConfigError::Invalid {
                what: "certificate",
                path: self.cert_origin.clone(),
                reason: e.to_string(),
            }),
        }
    }
}

/// Trust anchors: the cluster CA certificate(s).
fn roots(ca: &Pem) -> Result<Arc<RootCertStore>, TlsConfigError> {
    let mut store = RootCertStore::empty();
    for cert in ca.certificates("CA certificate")? {
        store.add(cert).map_err(|e| TlsConfigError::Invalid {
            what: "CA certificate",
            path: ca.origin().to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(Arc::new(store))
}

/// The server side of TLS.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    handshake_timeout: Duration,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
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
            config,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// The rustls configuration, for a server that does its own accepting (the benchmark's
    /// bare baseline) and must speak exactly this TLS.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
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
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.clone());
        let stream = tokio::time::timeout(self.handshake_timeout, acceptor.accept(io))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })??;
        let peer = session_of(stream.get_ref().1)?;
        Ok((stream, peer))
    }
}

/// The client side of TLS.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    last_session: Arc<Mutex<Option<TlsPeer>>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// A client trusting only `ca`, presenting `identity` when given.
    pub fn new(ca: &Pem, identity: Option<&Identity>) -> Result<Self, TlsConfigError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(|e| invalid("TLS versions", ca.origin(), e))?
            .with_root_certificates(roots(ca)?);
        let config = match identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(|e| invalid("certificate", &identity.cert_origin, e))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Self::from_config(config))
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

    /// The most recent session a connector with this configuration established: the
    /// server's certificates and the exporter value, for channel binding.
    pub fn last_session(&self) -> Option<TlsPeer> {
        self.last_session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn session_of<Data>(conn: &rustls::ConnectionCommon<Data>) -> std::io::Result<TlsPeer> {
    let certificates: Vec<CertificateDer<'static>> = conn
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let identity = certificates
        .first()
        .and_then(PeerIdentity::from_certificate);
    let channel_binding = conn
        .export_keying_material([0u8; 32], CHANNEL_BINDING_LABEL, None)
        .map_err(std::io::Error::other)?;
    Ok(TlsPeer {
        certificates,
        identity,
        channel_binding,
    })
}

fn invalid(what: &'static str, path: &Path, err: impl fmt::Display) -> TlsConfigError {
    TlsConfigError::Invalid {
        what,
        path: path.to_owned(),
        reason: err.to_string(),
    }
}

mod danger {
    //! A server-certificate verifier that trusts any certificate but still checks the
    //! handshake signatures, so the server must hold the key of the certificate it shows.

    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    pub(super) struct AnyServerCertificate(pub(super) Arc<CryptoProvider>);

    impl ServerCertVerifier for AnyServerCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
