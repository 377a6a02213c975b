//! What a finished handshake leaves on either side: the peer's certificates, its identity,
//! and the exporter value for channel binding.

use rustls::pki_types::CertificateDer;

use crate::peer::{CHANNEL_BINDING_LABEL, PeerIdentity, TlsPeer};

pub(super) fn session_of<Data>(conn: &rustls::ConnectionCommon<Data>) -> std::io::Result<TlsPeer> {
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
