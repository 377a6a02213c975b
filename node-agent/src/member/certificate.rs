//! The node's own certificate as `Version` describes it when the master asks
//! (`VersionRequest.certificates`, for `gnt cluster verify`): its fingerprint and when it
//! expires.
//!
//! It is read from `node.pem` at every such call rather than kept from start-up, so that a
//! certificate installed since is the one described; the cheap `Version` of the converger
//! never reads it.

use std::path::{Path, PathBuf};

use gnt_transports::join::NodeState;
use gnt_transports::{Pem, TlsConfigError, fingerprint};

/// The node certificate's file in the state directory (`gnt_transports::join`'s layout;
/// `NodeState` has no accessor for it, only for the key).
const NODE_CERT: &str = "node.pem";

/// What `Version` tells about the node's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Described {
    /// SHA-256 fingerprint, colon hex, as the configuration records it.
    pub(crate) sha256: String,
    /// Its last second of validity, seconds since the Unix epoch.
    pub(crate) not_after: i64,
}

/// Why the certificate could not be described.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DescribeError {
    /// The file is missing or holds no certificate.
    #[error(transparent)]
    Read(#[from] TlsConfigError),
    /// It does not parse as X.509.
    #[error("{} is not a valid X.509 certificate: {reason}", path.display())]
    NotX509 {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
}

/// The node certificate of `state`.
pub(crate) fn describe(state: &NodeState) -> Result<Described, DescribeError> {
    describe_file(&state.dir().join(NODE_CERT))
}

fn describe_file(path: &Path) -> Result<Described, DescribeError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let pem = Pem::read("node certificate", path)?;
    let sha256 = fingerprint(&pem.leaf_sha256()?);
    let certificates = pem.certificates("node certificate")?;
    let not_x509 = |reason: String| DescribeError::NotX509 {
        path: path.to_owned(),
        reason,
    };
    // `certificates` returns at least one.
    let leaf = certificates
        .first()
        .ok_or_else(|| not_x509("no certificate".to_owned()))?;
    let (_, parsed) =
        X509Certificate::from_der(leaf.as_ref()).map_err(|e| not_x509(e.to_string()))?;
    Ok(Described {
        sha256,
        not_after: parsed.validity().not_after.timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_described_by_its_fingerprint_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["node1.example.com".to_owned()]).unwrap();
        let not_after = rcgen::date_time_ymd(2030, 3, 17);
        params.not_after = not_after;
        let cert = params.self_signed(&key).unwrap();
        let path = dir.path().join(NODE_CERT);
        std::fs::write(&path, cert.pem()).unwrap();
        let described = describe_file(&path).unwrap();
        assert_eq!(described.not_after, not_after.unix_timestamp());
        assert_eq!(
            described.sha256,
            fingerprint(&gnt_core::digest::sha256(cert.der()))
        );
        let missing = describe_file(&dir.path().join("absent.pem")).unwrap_err();
        assert!(missing.to_string().contains("absent.pem"), "{missing}");
    }
}
