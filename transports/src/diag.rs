//! `gnt.diag.v1.Diagnostics`, served by every [`GrpcServer`](crate::GrpcServer): tells a
//! caller how the server sees it, so an operator can check with grpcurl which address
//! family a call arrived on and which certificate was accepted.

use gnt_proto::diag::v1::{PeerCertificate, WhoAmIRequest, WhoAmIResponse, diagnostics_server};
use tonic::{Request, Response, Status};

use crate::peer::PeerInfo;

/// The diagnostics service of a server named `server`.
#[derive(Debug, Clone)]
pub(crate) struct DiagnosticsService {
    server: &'static str,
}

impl DiagnosticsService {
    pub(crate) fn new(server: &'static str) -> Self {
        Self { server }
    }
}

#[tonic::async_trait]
impl diagnostics_server::Diagnostics for DiagnosticsService {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let peer = PeerInfo::of(&request)
            .ok_or_else(|| Status::internal("the connection carries no peer information"))?;
        let certificate = peer.identity().map(|identity| PeerCertificate {
            common_name: identity.common_name.clone().unwrap_or_default(),
            role: identity.role.clone().unwrap_or_default(),
            dns_names: identity.dns_names.clone(),
            ip_addresses: identity
                .ip_addresses
                .iter()
                .map(ToString::to_string)
                .collect(),
            sha256: identity.fingerprint(),
        });
        Ok(Response::new(WhoAmIResponse {
            peer: peer.remote().to_string(),
            transport: peer.remote().transport().to_owned(),
            family: peer
                .remote()
                .family()
                .map(|f| f.to_string())
                .unwrap_or_default(),
            local: peer.local().to_string(),
            tls: peer.tls().is_some(),
            certificate,
            server: self.server.to_owned(),
        }))
    }
}
