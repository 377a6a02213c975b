//! The renewal procedures (issue 13) on a real agent: a certificate installed for a new key
//! is presented to the next connection while a connection already open keeps working; and
//! every install or trust bundle that would lock the node or its master out is refused,
//! changing nothing on disk.

use std::net::SocketAddr;

use gnt_core::policy::IpPolicy;
use gnt_integration::cluster::stamped;
use gnt_integration::pki::TestCa;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_proto::node::v1::{
    InstallNodeCertificateRequest, PrepareNodeKeyRequest, VersionRequest, WriteTrustRequest,
};
use gnt_transports::join::CertificateIssuer;
use gnt_transports::{ClientTls, Connector, DialOptions, Identity, Pem};

use crate::member::member_topology;
use crate::support::{Topology, snapshot};

const NODE1: &str = "[fd00:77::11]:1811";

/// The master's client, trusting `bundle` (PEM): the configuration, to read its last
/// session, and a connector with it.
fn master_client(topology: &Topology, bundle: &str) -> (ClientTls, Connector) {
    let cert = &topology.master.cert;
    let identity = Identity::from_files(&cert.cert, &cert.key).unwrap();
    let tls = ClientTls::new(&Pem::from_bytes("bundle", bundle), Some(&identity))
        .unwrap()
        .with_server_name("node1.lab.test")
        .unwrap();
    let addr: SocketAddr = NODE1.parse().unwrap();
    let connector =
        Connector::tcp_addr(addr, DialOptions::new(IpPolicy::HybridIpv6)).with_tls(tls.clone());
    (tls, connector)
}

#[test]
fn a_new_certificate_is_presented_to_new_connections_while_open_ones_keep_working() {
    let (topology, _agent) = member_topology();
    let ca = topology.master.ca.ca_pem().to_owned();
    let node = topology.spec("node1", IpPolicy::HybridIpv6);
    let state = topology.state_dir("node1");
    let old_key = std::fs::read_to_string(state.join("node.key")).unwrap();
    let (tls, connector) = master_client(&topology, &ca);
    let issuer = topology.master.clone();
    let (installed, presented_after, old_connection) = topology
        .host("master")
        .block_on(async move {
            let open = connector.channel().await.unwrap();
            let mut open = NodeAgentClient::new(stamped(open, 1));
            open.version(VersionRequest::default()).await.unwrap();
            let before = tls.last_session().unwrap().identity.unwrap().sha256;

            let prepared = open
                .prepare_node_key(PrepareNodeKeyRequest {})
                .await
                .unwrap()
                .into_inner();
            // Asked again (a retry), the same key.
            let again = open
                .prepare_node_key(PrepareNodeKeyRequest {})
                .await
                .unwrap()
                .into_inner();
            assert_eq!(prepared.public_key, again.public_key);
            let certificate_pem = issuer
                .ca
                .issue_node_certificate(&prepared.public_key, &node)
                .unwrap();
            let installed = open
                .install_node_certificate(InstallNodeCertificateRequest {
                    certificate_pem,
                    same_key: false,
                })
                .await
                .unwrap()
                .into_inner();

            let fresh = connector.channel().await.unwrap();
            NodeAgentClient::new(stamped(fresh, 1))
                .version(VersionRequest::default())
                .await
                .unwrap();
            let after = tls.last_session().unwrap().identity.unwrap().sha256;
            assert_ne!(
                before, after,
                "the new connection meets the new certificate"
            );
            // The connection opened before the install still carries calls.
            let old = open.version(VersionRequest::default()).await.is_ok();
            (installed, gnt_transports::fingerprint(&after), old)
        })
        .unwrap();
    assert_eq!(installed.certificate_sha256, presented_after);
    assert!(old_connection, "the open connection was dropped");
    let new_key = std::fs::read_to_string(state.join("node.key")).unwrap();
    assert_ne!(new_key, old_key, "the old key is gone");
    assert!(!state.join("node.key.new").exists());
    assert!(!state.join("node.pem.new").exists());
}

#[test]
fn nothing_that_would_lock_the_node_or_its_master_out_is_accepted() {
    let (topology, _agent) = member_topology();
    let cluster_ca = topology.master.ca.ca_pem().to_owned();
    let other = TestCa::new(topology.dir.path(), "other.lab.test").unwrap();
    let other_ca = other.ca_pem().to_owned();
    let both = format!("{cluster_ca}{other_ca}");
    let node = topology.spec("node1", IpPolicy::HybridIpv6);
    let node2 = topology.spec("node2", IpPolicy::HybridIpv6);
    let state = topology.state_dir("node1");
    let (_, connector) = master_client(&topology, &both);
    let issuer = topology.master.clone();
    let snapshot_before = snapshot(&state);

    let (refusals, after_refusals) = {
        let state = state.clone();
        topology
            .host("master")
            .block_on(async move {
                let channel = connector.channel().await.unwrap();
                let mut agent = NodeAgentClient::new(stamped(channel, 1));
                let mut refusals = Vec::new();
                let key = agent
                    .prepare_node_key(PrepareNodeKeyRequest {})
                    .await
                    .unwrap()
                    .into_inner()
                    .public_key;
                let staged = snapshot(&state);
                let install = |certificate_pem: String| InstallNodeCertificateRequest {
                    certificate_pem,
                    same_key: false,
                };
                for (what, pem) in [
                    (
                        "another node's name",
                        issuer.ca.issue_node_certificate(&key, &node2).unwrap(),
                    ),
                    (
                        "a CA the node does not trust",
                        other.issue_node_certificate(&key, &node).unwrap(),
                    ),
                    ("not PEM", "garbage".to_owned()),
                ] {
                    let status = agent
                        .install_node_certificate(install(pem))
                        .await
                        .unwrap_err();
                    refusals.push((what, status.code(), status.message().to_owned()));
                }
                // A certificate for a key the node does not hold.
                let stranger = issuer
                    .ca
                    .issue_node_certificate(
                        &rcgen::PublicKeyData::subject_public_key_info(
                            &rcgen::KeyPair::generate().unwrap(),
                        ),
                        &node,
                    )
                    .unwrap();
                let status = agent
                    .install_node_certificate(install(stranger))
                    .await
                    .unwrap_err();
                refusals.push(("another key", status.code(), status.message().to_owned()));
                // Trust that verifies neither the node's certificate nor the caller's.
                let status = agent
                    .write_trust(WriteTrustRequest {
                        ca_bundle_pem: other_ca.clone(),
                    })
                    .await
                    .unwrap_err();
                refusals.push((
                    "a bundle without the node's CA",
                    status.code(),
                    status.message().to_owned(),
                ));
                assert_eq!(snapshot(&state), staged, "a refusal changed the state");

                // Trust both; a certificate of the other CA is then accepted; trusting the
                // other CA alone would lock the master (a certificate of the first) out.
                agent
                    .write_trust(WriteTrustRequest {
                        ca_bundle_pem: format!("{cluster_ca}{other_ca}"),
                    })
                    .await
                    .unwrap();
                agent
                    .install_node_certificate(install(
                        other.issue_node_certificate(&key, &node).unwrap(),
                    ))
                    .await
                    .unwrap();
                let status = agent
                    .write_trust(WriteTrustRequest {
                        ca_bundle_pem: other_ca.clone(),
                    })
                    .await
                    .unwrap_err();
                refusals.push((
                    "a bundle without the caller's CA",
                    status.code(),
                    status.message().to_owned(),
                ));
                (refusals, snapshot(&state))
            })
            .unwrap()
    };
    let expected = [
        ("another node's name", "not for this node"),
        (
            "a CA the node does not trust",
            "not issued by a CA this node trusts",
        ),
        ("not PEM", "no certificate"),
        ("another key", "not usable with"),
        ("a bundle without the node's CA", "lock it out"),
        (
            "a bundle without the caller's CA",
            "the caller's certificate",
        ),
    ];
    assert_eq!(refusals.len(), expected.len());
    for ((what, code, message), (expected_what, words)) in refusals.iter().zip(expected) {
        assert_eq!(*what, expected_what);
        assert_eq!(*code, tonic::Code::InvalidArgument, "{what}: {message}");
        assert!(message.contains(words), "{what}: {message}");
    }
    let trusted = std::fs::read_to_string(state.join("ca.pem")).unwrap();
    assert_eq!(trusted.matches("BEGIN CERTIFICATE").count(), 2, "{trusted}");
    assert_ne!(after_refusals, snapshot_before);
}
