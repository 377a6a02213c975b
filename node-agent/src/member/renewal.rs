//! The certificate procedures of `gnt cluster renew-crypto`: `PrepareNodeKey`,
//! `InstallNodeCertificate` and `WriteTrust`.
//!
//! The node never lets a call lock it out: a certificate is installed only if it names this
//! node, has the node role, fits the key and chains to a CA the node trusts, and a trust
//! bundle is written only if it verifies both the node's own certificate and the caller's.
//! Both take effect for the next handshake (`ServerTls::replace`); connections already open
//! keep their session, so calls in flight never notice.

use gnt_core::error::{Classify, ErrorKind, to_status};
use gnt_proto::node::v1::{
    InstallNodeCertificateRequest, InstallNodeCertificateResponse, PrepareNodeKeyResponse,
    WriteTrustRequest, WriteTrustResponse,
};
use gnt_transports::join::StateError;
use gnt_transports::{
    ClientAuth, Identity, KeyChoice, PairError, PeerIdentity, PeerInfo, Pem, ServerTls,
    TlsConfigError, check_issued_by, fingerprint, sha256,
};
use tonic::Status;

use super::MemberContext;

/// Why a renewal procedure refused.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("the certificate is for '{found}', not for this node ('{expected}')")]
    WrongNode { found: String, expected: String },
    #[error("the certificate's role is '{0}', not 'node'")]
    WrongRole(String),
    #[error("the certificate is not issued by a CA this node trusts: {0}")]
    Untrusted(#[source] TlsConfigError),
    #[error("the bundle does not verify this node's own certificate, which would lock it out: {0}")]
    LocksOutNode(#[source] TlsConfigError),
    #[error("the bundle does not verify the caller's certificate, which would lock it out: {0}")]
    LocksOutCaller(#[source] TlsConfigError),
    #[error(transparent)]
    Unreadable(#[from] TlsConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Pair(#[from] PairError),
}

impl Classify for Refused {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::WrongNode { .. }
            | Self::WrongRole(_)
            | Self::Untrusted(_)
            | Self::LocksOutNode(_)
            | Self::LocksOutCaller(_) => ErrorKind::WrongInput,
            Self::Unreadable(e) => e.kind(),
            Self::State(e) => e.kind(),
            Self::Pair(e) => e.kind(),
        }
    }
}

fn status(refused: Refused) -> Status {
    tracing::warn!(reason = %refused, "certificate renewal refused");
    to_status(&refused)
}

/// `PrepareNodeKey`: the staged key's public half (made now, or the one made by an
/// earlier, interrupted renewal).
pub(super) async fn prepare_key(ctx: &MemberContext) -> Result<PrepareNodeKeyResponse, Status> {
    let _writing = ctx.identity_writes.lock().await;
    let key = ctx
        .state
        .identity_files()
        .stage_new_key()
        .map_err(|e| status(e.into()))?;
    tracing::info!("prepared a new node key for a certificate renewal");
    Ok(PrepareNodeKeyResponse {
        public_key: rcgen::PublicKeyData::subject_public_key_info(&key),
    })
}

/// `InstallNodeCertificate`.
pub(super) async fn install(
    ctx: &MemberContext,
    request: InstallNodeCertificateRequest,
) -> Result<InstallNodeCertificateResponse, Status> {
    let _writing = ctx.identity_writes.lock().await;
    install_checked(ctx, &request).map_err(status)
}

fn install_checked(
    ctx: &MemberContext,
    request: &InstallNodeCertificateRequest,
) -> Result<InstallNodeCertificateResponse, Refused> {
    let offered = Pem::from_bytes(
        "the certificate to install",
        request.certificate_pem.clone(),
    );
    let chain = offered.certificates("certificate")?;
    let subject = chain.first().and_then(PeerIdentity::from_certificate);
    let (name, role) = subject.map(|s| (s.common_name, s.role)).unwrap_or_default();
    let name = name.unwrap_or_default();
    if name != ctx.node_name.as_str() {
        return Err(Refused::WrongNode {
            found: name,
            expected: ctx.node_name.to_string(),
        });
    }
    let role = role.unwrap_or_default();
    if role != "node" {
        return Err(Refused::WrongRole(role));
    }
    let trust = ctx.state.trust()?;
    check_issued_by(&trust, &chain).map_err(Refused::Untrusted)?;
    let which = if request.same_key {
        KeyChoice::Current
    } else {
        KeyChoice::Staged
    };
    let identity = ctx
        .state
        .identity_files()
        .install(&request.certificate_pem, which)?;
    present(ctx, &identity, &trust)?;
    let certificate_sha256 = fingerprint(&sha256(identity.certificate().as_ref()));
    tracing::info!(certificate = %certificate_sha256, new_key = !request.same_key, "installed a renewed node certificate");
    Ok(InstallNodeCertificateResponse { certificate_sha256 })
}

/// `WriteTrust`.
pub(super) async fn write_trust(
    ctx: &MemberContext,
    caller: Option<&PeerInfo>,
    request: WriteTrustRequest,
) -> Result<WriteTrustResponse, Status> {
    let _writing = ctx.identity_writes.lock().await;
    write_trust_checked(ctx, caller, &request).map_err(status)
}

fn write_trust_checked(
    ctx: &MemberContext,
    caller: Option<&PeerInfo>,
    request: &WriteTrustRequest,
) -> Result<WriteTrustResponse, Refused> {
    let bundle = Pem::from_bytes("the CA bundle", request.ca_bundle_pem.clone());
    let certificates = bundle.certificates("CA certificate")?.len();
    let identity = ctx.state.identity_files().identity()?;
    check_issued_by(&bundle, &[identity.certificate().clone()]).map_err(Refused::LocksOutNode)?;
    let caller_chain = caller
        .and_then(PeerInfo::tls)
        .map(|tls| tls.certificates.clone())
        .unwrap_or_default();
    check_issued_by(&bundle, &caller_chain).map_err(Refused::LocksOutCaller)?;
    ctx.state.write_trust(&request.ca_bundle_pem)?;
    present(ctx, &identity, &bundle)?;
    tracing::info!(certificates, "the node trusts a new set of CAs");
    Ok(WriteTrustResponse {
        certificates: u32::try_from(certificates).unwrap_or(u32::MAX),
    })
}

/// Presents `identity` and checks callers against `trust` from the next handshake on.
fn present(ctx: &MemberContext, identity: &Identity, trust: &Pem) -> Result<(), Refused> {
    let next = ServerTls::new(identity, Some(trust), ClientAuth::Required)?;
    ctx.tls.replace(&next);
    Ok(())
}
