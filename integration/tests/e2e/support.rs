//! Shared fixtures: a test PKI, and clients for the services every server has.

use std::net::IpAddr;
use std::path::Path;

use gnt_integration::pki::{TestCa, TestCert};
use gnt_proto::diag::v1::{WhoAmIRequest, WhoAmIResponse, diagnostics_client::DiagnosticsClient};
use gnt_transports::{ClientAuth, ClientTls, Identity, Pem, ServerTls};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A cluster CA with a server certificate (for `localhost`, the loopback addresses and any
/// extra addresses) and a client certificate (`master`), plus a second, unrelated CA with a
/// client certificate of its own.
pub(crate) struct Pki {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) ca: TestCa,
    pub(crate) server: TestCert,
    pub(crate) client: TestCert,
    pub(crate) stranger: TestCert,
}

impl Pki {
    pub(crate) fn new(extra_ips: &[IpAddr]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path(), "gnt test CA").unwrap();
        let mut ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        ips.extend_from_slice(extra_ips);
        let server = ca
            .issue(
                "server.lab.test",
                "node",
                &["localhost", "server.lab.test"],
                &ips,
            )
            .unwrap();
        let client = ca
            .issue("master.lab.test", "master", &["master.lab.test"], &[])
            .unwrap();
        let other_ca = TestCa::new(dir.path(), "another CA").unwrap();
        let stranger = other_ca
            .issue("intruder", "master", &["intruder"], &[])
            .unwrap();
        Self {
            dir,
            ca,
            server,
            client,
            stranger,
        }
    }

    pub(crate) fn server_tls(&self, auth: ClientAuth) -> ServerTls {
        ServerTls::from_files(self.ca.ca_path(), &self.server.cert, &self.server.key, auth).unwrap()
    }

    /// A client trusting the cluster CA, presenting `identity` if any.
    pub(crate) fn client_tls(&self, identity: Option<&TestCert>) -> ClientTls {
        let identity = identity.map(|c| Identity::from_files(&c.cert, &c.key).unwrap());
        ClientTls::new(
            &Pem::read("CA certificate", self.ca.ca_path()).unwrap(),
            identity.as_ref(),
        )
        .unwrap()
    }

    pub(crate) fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

pub(crate) async fn who_am_i(channel: Channel) -> Result<WhoAmIResponse, tonic::Status> {
    DiagnosticsClient::new(channel)
        .who_am_i(WhoAmIRequest {})
        .await
        .map(tonic::Response::into_inner)
}

pub(crate) async fn health(
    channel: Channel,
    service: &str,
) -> Result<ServingStatus, tonic::Status> {
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(reply.into_inner().status())
}

/// Whether this host's loopback has IPv6 (true on the CI machines).
pub(crate) fn ipv6_loopback() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok()
}

pub(crate) fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}
