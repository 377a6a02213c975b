//! The offered node certificate, checked before anything is written: it must chain to the
//! CA it came with, name this node, and be for the key this node holds (so a master cannot
//! hand the node someone else's identity).

use std::sync::Arc;

use gnt_core::join::JoinOffer;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::refusal::CertificateFault;
use crate::tls::provider;

/// Checks `offer`'s node certificate against its CA, its node's name and `node_spki` (the
/// DER SubjectPublicKeyInfo of this node's key).
pub(super) fn verify_node_certificate(
    offer: &JoinOffer,
    node_spki: &[u8],
) -> Result<(), CertificateFault> {
    let ca: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(offer.ca_certificate_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(CertificateFault::CaNotPem)?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(offer.node_certificate_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(CertificateFault::NotPem)?;
    let (leaf, intermediates) = chain.split_first().ok_or(CertificateFault::Empty)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca {
        roots.add(cert).map_err(CertificateFault::CaInvalid)?;
    }
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(CertificateFault::CaUnusable)?;
    let node = offer.node.name.as_str();
    let name = ServerName::try_from(node.to_owned())
        .map_err(|_| CertificateFault::Name(node.to_owned()))?;
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
        .map_err(|source| CertificateFault::Unverified {
            node: node.to_owned(),
            source,
        })?;
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(leaf.as_ref())
        .map_err(CertificateFault::Unparsable)?;
    if parsed.public_key().raw != node_spki {
        return Err(CertificateFault::OtherKey);
    }
    Ok(())
}
