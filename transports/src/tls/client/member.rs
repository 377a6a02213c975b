//! The cluster CA's verifier, which also tells a server that is not a member: a node that
//! left the cluster (or was never joined) presents its self-signed bootstrap certificate,
//! which the CA rejects as of an unknown issuer like any stranger's; that one case gets an
//! error of its own, [`NotAMember`], so that the caller can say what happened and what to
//! do. Nothing else changes: what the CA rejects stays rejected.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

/// The server presented a self-signed certificate: a node in bootstrap mode.
#[derive(Debug, thiserror::Error)]
#[error(
    "the node is not a member (it left the cluster, or was never joined): remove it with `gnt node remove` and add it again with `gnt node add`"
)]
pub(crate) struct NotAMember;

/// [`WebPkiServerVerifier`] with [`NotAMember`] for a self-signed server certificate.
#[derive(Debug)]
pub(super) struct ClusterMember(pub(super) Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ClusterMember {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
                    if self_signed(end_entity) =>
                {
                    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
                        Arc::new(NotAMember),
                    )))
                }
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Whether `certificate` is its own issuer and signed by its own key.
fn self_signed(certificate: &CertificateDer<'_>) -> bool {
    use x509_parser::prelude::FromDer;
    let Ok((_, parsed)) = x509_parser::certificate::X509Certificate::from_der(certificate.as_ref())
    else {
        return false;
    };
    parsed.issuer() == parsed.subject() && parsed.verify_signature(None).is_ok()
}

/// Whether `error` (a failed TLS handshake, as tokio-rustls reports it) is [`NotAMember`].
pub(crate) fn is_not_a_member(error: &std::io::Error) -> bool {
    let Some(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(cause)))) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return false;
    };
    cause.is::<NotAMember>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(name: &str, issuer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        match issuer {
            None => params.self_signed(&key).unwrap().der().to_vec(),
            Some(issuer) => params.signed_by(&key, issuer).unwrap().der().to_vec(),
        }
    }

    #[test]
    fn only_a_self_signed_certificate_is_taken_for_a_node_that_is_not_a_member() {
        let bootstrap = certificate("node1.example", None);
        assert!(self_signed(&CertificateDer::from(bootstrap)));

        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "another cluster");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let issued = certificate("node1.example", Some(&issuer));
        assert!(!self_signed(&CertificateDer::from(issued)));
        assert!(!self_signed(&CertificateDer::from(b"not DER".to_vec())));

        let wrapped = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                NotAMember,
            )))),
        );
        assert!(is_not_a_member(&wrapped));
        let stranger = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert!(!is_not_a_member(&stranger));
    }
}
