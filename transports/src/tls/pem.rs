//! Key material from PEM: certificates, private keys, the identity they make together, and
//! the trust anchors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::provider;
use crate::error::TlsConfigError;

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

    /// The PEM text.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
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

    /// SHA-256 of the first certificate in it (DER), as fingerprints and ssconf's
    /// `master_candidates_certs` are made.
    pub fn leaf_sha256(&self) -> Result<[u8; 32], TlsConfigError> {
        let certs = self.certificates("certificate")?;
        certs
            .first()
            .map(|leaf| gnt_core::digest::sha256(leaf.as_ref()))
            .ok_or_else(|| self.no_pem("certificate", None))
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

    pub(super) fn origin(&self) -> &Path {
        &self.origin
    }
}

/// A certificate chain with its private key.
#[derive(Debug, Clone)]
pub struct Identity {
    pub(super) chain: Vec<CertificateDer<'static>>,
    pub(super) key: Arc<PrivateKeyDer<'static>>,
    pub(super) cert_origin: PathBuf,
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
pub(super) fn roots(ca: &Pem) -> Result<Arc<RootCertStore>, TlsConfigError> {
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

/// Checks that `chain` (leaf first) is issued by one of the CAs in `ca` and valid now, as a
/// server checking a client certificate would (cluster certificates serve both ends): what
/// a node checks before it installs a certificate or trusts a new bundle, so that neither
/// can lock it or its master out.
pub fn check_issued_by(ca: &Pem, chain: &[CertificateDer<'static>]) -> Result<(), TlsConfigError> {
    use rustls::server::WebPkiClientVerifier;
    let invalid = |reason: String| TlsConfigError::Invalid {
        what: "certificate chain",
        path: ca.origin().to_owned(),
        reason,
    };
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| invalid("no certificate".to_owned()))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    verifier
        .verify_client_cert(leaf, intermediates, rustls::pki_types::UnixTime::now())
        .map(|_| ())
        .map_err(|e| invalid(e.to_string()))
}
