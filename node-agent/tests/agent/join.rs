//! The Join exchange: happy paths for both policies, every refusal, second and replayed
//! Joins, and a node that cannot prove it holds the token.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gnt_core::error::Chain;
use gnt_core::join::{JoinToken, Side};
use gnt_core::policy::IpPolicy;
use gnt_integration::cluster::TestMaster;
use gnt_node_agent::AgentStatus;
use gnt_proto::bootstrap::v1::{
    JoinClientMessage, JoinRequest, JoinServerMessage, MasterHello, NodeHello,
    bootstrap_client::BootstrapClient, bootstrap_server, join_client_message, join_server_message,
};
use gnt_proto::node::v1::{VersionRequest, node_agent_client::NodeAgentClient};
use gnt_transports::join::{CertificateIssuer, IssueError, JoinError, JoinPlan, Joined};
use gnt_transports::{
    ClientAuth, ClientTls, Connector, DialOptions, GrpcServer, Identity, Listener, Pem, ServerTls,
};
use tokio_stream::wrappers::ReceiverStream;

use crate::support::{Agent, CLUSTER, TOKEN, Topology, any, listening, refusal, snapshot};

fn version(topology: &Topology, target: SocketAddr, policy: IpPolicy) -> u32 {
    let connector = topology.master.connector(target, policy);
    topology
        .host("master")
        .block_on(async move {
            let channel = connector.channel().await.unwrap();
            NodeAgentClient::new(channel)
                .version(VersionRequest::default())
                .await
                .unwrap()
                .into_inner()
                .protocol_version
        })
        .unwrap()
}

#[test]
fn a_hybrid_join_switches_the_agent_to_member_mode_where_it_was_told() {
    let topology = Topology::new();
    let node1 = topology.host("node1");
    let agent = Agent::start(node1, &topology.state_dir("node1"));
    assert_eq!(
        agent.status(),
        AgentStatus::Bootstrap(vec![gnt_transports::ListenAddr::Tcp(any(1811))])
    );
    assert_eq!(
        listening(node1, 1811),
        ["*:1811"],
        "bootstrap listens dual-stack"
    );

    let joined = topology
        .join("node1", IpPolicy::HybridIpv6, any(1811), |_| {})
        .unwrap();
    assert_eq!(joined.listen, Some("[::]:1811".parse().unwrap()));
    assert_eq!(joined.protocol_version, 1);
    assert_eq!(agent.wait_member(), ["[::]:1811"]);
    assert_eq!(
        listening(node1, 1811),
        ["*:1811"],
        "member listens dual-stack"
    );

    // Mutual TLS as the master, over both families of the dual-stack listener.
    assert_eq!(
        version(
            &topology,
            "[fd00:77::11]:1811".parse().unwrap(),
            IpPolicy::HybridIpv6
        ),
        1
    );
    assert_eq!(
        version(
            &topology,
            "10.78.0.11:1811".parse().unwrap(),
            IpPolicy::HybridIpv6
        ),
        1
    );

    let state = topology.state_dir("node1");
    assert_eq!(
        std::fs::metadata(state.join("node.key")).unwrap().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(state.join("ssconf_primary_ip_family")).unwrap(),
        "10\n"
    );
    assert_eq!(
        std::fs::read_to_string(state.join("ssconf_cluster_name")).unwrap(),
        format!("{CLUSTER}\n")
    );
}

#[test]
fn an_ipv4_join_binds_the_address_it_was_given() {
    let topology = Topology::new();
    let node1 = topology.host("node1");
    let agent = Agent::start(node1, &topology.state_dir("node1"));
    let bind: SocketAddr = "10.77.0.11:1811".parse().unwrap();
    let joined = topology
        .join("node1", IpPolicy::Ipv4, bind, |_| {})
        .unwrap();
    assert_eq!(joined.listen, Some("10.77.0.11:1811".parse().unwrap()));
    assert_eq!(agent.wait_member(), ["10.77.0.11:1811"]);
    assert_eq!(listening(node1, 1811), ["10.77.0.11:1811"]);
    assert_eq!(version(&topology, bind, IpPolicy::Ipv4), 1);
    let family =
        std::fs::read_to_string(topology.state_dir("node1").join("ssconf_primary_ip_family"))
            .unwrap();
    assert_eq!(family, "2\n");
}

#[test]
fn every_refusal_leaves_the_state_as_it_was() {
    let topology = Topology::new();
    let node1 = topology.host("node1");
    let state = topology.state_dir("node1");
    let agent = Agent::start(node1, &state);
    let before = snapshot(&state);
    let hybrid = IpPolicy::HybridIpv6;
    let unauthenticated = tonic::Code::Unauthenticated;
    let invalid = tonic::Code::InvalidArgument;
    let precondition = tonic::Code::FailedPrecondition;

    type Edit = Box<dyn FnOnce(&mut JoinPlan)>;
    let cases: Vec<(&str, IpPolicy, SocketAddr, Edit, tonic::Code, &str)> = vec![
        (
            "wrong secret",
            hybrid,
            any(1811),
            Box::new(|p| p.token = "abcdef.ffffffffffffffff".parse().unwrap()),
            unauthenticated,
            "proof is invalid for this connection",
        ),
        (
            "another token",
            hybrid,
            any(1811),
            Box::new(|p| p.token = "zzzzzz.0123456789abcdef".parse().unwrap()),
            unauthenticated,
            // The same refusal as a wrong secret: a guesser learns nothing of the id.
            "proof is invalid for this connection",
        ),
        (
            "expired token",
            hybrid,
            any(1811),
            Box::new(|p| p.expires_at_unix = 1),
            unauthenticated,
            "the join token expired",
        ),
        (
            "IPv4 bind in a hybrid cluster",
            hybrid,
            "0.0.0.0:1811".parse().unwrap(),
            Box::new(|_| {}),
            invalid,
            "bind address 0.0.0.0 does not fit a hybrid IPv6/IPv4 cluster",
        ),
        (
            "IPv4 primary in a hybrid cluster",
            hybrid,
            any(1811),
            Box::new(|p| {
                p.danger_rewrite_request(|r| {
                    r.node.as_mut().unwrap().primary_ip = "10.77.0.11".to_owned()
                })
            }),
            invalid,
            "primary address 10.77.0.11 is not IPv6",
        ),
        (
            "IPv6 secondary",
            hybrid,
            any(1811),
            Box::new(|p| {
                p.danger_rewrite_request(|r| {
                    r.node.as_mut().unwrap().secondary_ip = "fd00:77::11".to_owned()
                })
            }),
            invalid,
            "secondary address 'fd00:77::11' must be an IPv4 address",
        ),
        (
            "missing secondary in a hybrid cluster",
            hybrid,
            any(1811),
            Box::new(|p| {
                p.danger_rewrite_request(|r| r.node.as_mut().unwrap().secondary_ip = String::new())
            }),
            invalid,
            "must be an IPv4 address",
        ),
        (
            "a primary this node does not have",
            hybrid,
            any(1811),
            Box::new(|p| p.danger_rewrite_request(|r| readdress(r, "fd00:77::11", "fd00:77::99"))),
            precondition,
            "this node does not have its primary address fd00:77::99",
        ),
        (
            "a secondary this node does not have",
            hybrid,
            any(1811),
            Box::new(|p| p.danger_rewrite_request(|r| readdress(r, "10.78.0.11", "10.78.0.99"))),
            precondition,
            "this node does not have its secondary address 10.78.0.99",
        ),
        (
            "a certificate for someone else's key",
            hybrid,
            any(1811),
            Box::new(|_| {}),
            invalid,
            "it is for another key than this node's",
        ),
        (
            "ssconf that contradicts the request",
            hybrid,
            any(1811),
            Box::new(|p| {
                p.danger_rewrite_request(|r| {
                    let values = &mut r.ssconf.as_mut().unwrap().values;
                    let fixed = values["node_primary_ips"].replace("fd00:77::11", "fd00:77::12");
                    values.insert("node_primary_ips".to_owned(), fixed);
                })
            }),
            invalid,
            "its addresses of this node contradicts the request",
        ),
    ];
    for (what, policy, bind, edit, code, message) in cases {
        let result = if what == "a certificate for someone else's key" {
            join_with_foreign_key(&topology)
        } else {
            topology.join("node1", policy, bind, edit)
        };
        let (got_code, got_message) = refusal(result);
        assert_eq!(got_code, code, "{what}: {got_message}");
        assert!(got_message.contains(message), "{what}: {got_message}");
        assert_eq!(snapshot(&state), before, "{what}: the state changed");
        assert!(
            matches!(agent.status(), AgentStatus::Bootstrap(_)),
            "{what}"
        );
    }

    // State of another cluster left in the directory.
    let conf = state.join("member.conf");
    std::fs::write(&conf, "cluster=other.lab.test\nlisten=[::]:1811\n").unwrap();
    let with_conf = snapshot(&state);
    let (code, message) = refusal(topology.join("node1", hybrid, any(1811), |_| {}));
    assert_eq!(code, precondition);
    assert!(
        message.contains("holds state of cluster 'other.lab.test'"),
        "{message}"
    );
    assert_eq!(snapshot(&state), with_conf);
    std::fs::remove_file(conf).unwrap();

    // After all that, the right Join still works.
    topology.join("node1", hybrid, any(1811), |_| {}).unwrap();
    agent.wait_member();
}

/// Gives the node address `to` instead of `from`, in the request and in its ssconf alike,
/// so that only the node itself can tell it is wrong.
fn readdress(request: &mut JoinRequest, from: &str, to: &str) {
    let node = request.node.as_mut().unwrap();
    for address in [&mut node.primary_ip, &mut node.secondary_ip] {
        if address == from {
            *address = to.to_owned();
        }
    }
    for value in request.ssconf.as_mut().unwrap().values.values_mut() {
        *value = value.replace(from, to);
    }
}

/// A Join whose certificate the CA issued for a key that is not the node's.
fn join_with_foreign_key(topology: &Topology) -> Result<Joined, JoinError> {
    struct ForeignKeyIssuer<'a>(&'a gnt_integration::pki::TestCa);
    impl CertificateIssuer for ForeignKeyIssuer<'_> {
        fn issue_node_certificate(
            &self,
            _spki: &[u8],
            node: &gnt_core::node::Node,
        ) -> Result<String, IssueError> {
            let other = rcgen_spki();
            self.0.issue_node_certificate(&other, node)
        }
    }
    fn rcgen_spki() -> Vec<u8> {
        use rcgen::PublicKeyData;
        rcgen::KeyPair::generate()
            .unwrap()
            .subject_public_key_info()
    }
    let token: JoinToken = TOKEN.parse().unwrap();
    let policy = IpPolicy::HybridIpv6;
    let plan = topology.master.join_plan(
        &token,
        CLUSTER,
        policy,
        &topology.spec("master", policy),
        &topology.spec("node1", policy),
        any(1811),
    );
    let master = topology.master.clone();
    topology
        .host("master")
        .block_on(async move {
            let connector = Connector::tcp_addr(
                "[fd00:77::11]:1811".parse().unwrap(),
                DialOptions::new(policy),
            );
            gnt_transports::join::join(connector, plan, &ForeignKeyIssuer(&master.ca)).await
        })
        .unwrap()
}

#[test]
fn a_second_join_and_a_replayed_join_are_refused() {
    let topology = Topology::new();
    let agent1 = Agent::start(topology.host("node1"), &topology.state_dir("node1"));
    let agent2 = Agent::start(topology.host("node2"), &topology.state_dir("node2"));

    // Replay: a hello whose proof was made for another TLS session.
    let token: JoinToken = TOKEN.parse().unwrap();
    let recorded = token.proof(Side::Master, &[42u8; 32]);
    let replayed = topology
        .host("master")
        .block_on(async move {
            let tls = ClientTls::danger_unverified_server(None).unwrap();
            let connector = Connector::tcp_addr(
                "[fd00:77::12]:1811".parse().unwrap(),
                DialOptions::new(IpPolicy::HybridIpv6),
            )
            .with_tls(tls);
            let channel = connector.channel().await.unwrap();
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tx.send(JoinClientMessage {
                step: Some(join_client_message::Step::Hello(MasterHello {
                    token_id: "abcdef".to_owned(),
                    proof: recorded,
                    expires_at_unix: i64::MAX,
                })),
            })
            .await
            .unwrap();
            let mut stream = BootstrapClient::new(channel)
                .join(ReceiverStream::new(rx))
                .await
                .unwrap()
                .into_inner();
            stream.message().await
        })
        .unwrap();
    let status = replayed.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(
        status.message().contains("replayed or relayed"),
        "{}",
        status.message()
    );
    assert!(matches!(agent2.status(), AgentStatus::Bootstrap(_)));

    // A second Join after a successful one.
    topology
        .join("node1", IpPolicy::HybridIpv6, any(1811), |_| {})
        .unwrap();
    agent1.wait_member();
    // The bootstrap listener is gone: without a cluster certificate nothing gets through.
    let again = topology.join("node1", IpPolicy::HybridIpv6, any(1811), |_| {});
    assert!(
        again.is_err(),
        "a Join without a cluster certificate got through: {again:?}"
    );
    // A master that presents its certificate, as the real one does, learns why.
    let identity =
        Identity::from_files(&topology.master.cert.cert, &topology.master.cert.key).unwrap();
    let again = topology.join("node1", IpPolicy::HybridIpv6, any(1811), |plan| {
        plan.presenting = Some(identity)
    });
    let message = again.map(drop).map_err(|e| Chain(&e).to_string());
    assert!(
        message
            .as_ref()
            .is_err_and(|m| m.contains(&format!("already belongs to cluster '{CLUSTER}'"))),
        "{message:?}"
    );
    // So does the master of another cluster, whose certificate the node cannot accept.
    let foreign_dir = topology.dir.path().join("foreign");
    std::fs::create_dir(&foreign_dir).unwrap();
    let foreign = Arc::new(TestMaster::new(&foreign_dir, "master.lab.test").unwrap());
    let identity = Identity::from_files(&foreign.cert.cert, &foreign.cert.key).unwrap();
    let foreign_join =
        topology.join_from(&foreign, "node1", IpPolicy::HybridIpv6, any(1811), |plan| {
            plan.presenting = Some(identity)
        });
    let message = foreign_join.map(drop).map_err(|e| Chain(&e).to_string());
    println!("foreign: {message:?}");
    assert!(
        message
            .as_ref()
            .is_err_and(|m| !m.ends_with("transport error")),
        "{message:?}"
    );
    // With the master's certificate, Join on the member listener is refused explicitly.
    let connector = topology
        .master
        .connector("[fd00:77::11]:1811".parse().unwrap(), IpPolicy::HybridIpv6);
    let second = topology
        .host("master")
        .block_on(async move {
            let channel = connector.channel().await.unwrap();
            let (_tx, rx) = tokio::sync::mpsc::channel::<JoinClientMessage>(1);
            BootstrapClient::new(channel)
                .join(ReceiverStream::new(rx))
                .await
                .map(|_| ())
        })
        .unwrap();
    let status = second.unwrap_err();
    assert_eq!(status.code(), tonic::Code::AlreadyExists);
    assert!(
        status
            .message()
            .contains(&format!("already belongs to cluster '{CLUSTER}'")),
        "{}",
        status.message()
    );
}

/// A bootstrap listener that does not hold the token: it answers the master's hello with
/// a made-up proof, and records whether the master sent the request anyway.
#[derive(Clone)]
struct Impostor {
    got_request: Arc<AtomicBool>,
}

#[tonic::async_trait]
impl bootstrap_server::Bootstrap for Impostor {
    type JoinStream = ReceiverStream<Result<JoinServerMessage, tonic::Status>>;

    async fn join(
        &self,
        request: tonic::Request<tonic::Streaming<JoinClientMessage>>,
    ) -> Result<tonic::Response<Self::JoinStream>, tonic::Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let got_request = self.got_request.clone();
        tokio::spawn(async move {
            let _ = inbound.message().await;
            let hello = NodeHello {
                proof: vec![0u8; 32],
                protocol_version: 1,
                software_version: "impostor".to_owned(),
            };
            let _ = tx
                .send(Ok(JoinServerMessage {
                    step: Some(join_server_message::Step::Hello(hello)),
                }))
                .await;
            if let Ok(Some(JoinClientMessage {
                step: Some(join_client_message::Step::Request(_)),
            })) = inbound.message().await
            {
                got_request.store(true, Ordering::SeqCst);
            }
        });
        Ok(tonic::Response::new(ReceiverStream::new(rx)))
    }
}

#[test]
fn the_master_sends_nothing_to_a_node_that_cannot_prove_the_token() {
    let topology = Topology::new();
    let got_request = Arc::new(AtomicBool::new(false));
    let impostor = Impostor {
        got_request: got_request.clone(),
    };
    let cert = topology
        .master
        .ca
        .issue("node2.lab.test", "node", &["node2.lab.test"], &[])
        .unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = topology
        .host("node2")
        .spawn(async move {
            let identity = Identity::from_files(&cert.cert, &cert.key).unwrap();
            let tls = ServerTls::new(&identity, None::<&Pem>, ClientAuth::Off).unwrap();
            let listener = Listener::tcp("[::]:1811".parse().unwrap())
                .unwrap()
                .with_tls(tls);
            let server = GrpcServer::new("impostor")
                .add_service(bootstrap_server::BootstrapServer::new(impostor))
                .start(vec![listener])
                .await
                .unwrap();
            ready_tx.send(()).unwrap();
            let _ = stop_rx.await;
            server.shutdown().await.unwrap();
        })
        .unwrap();
    ready_rx.recv().unwrap();
    let result = topology.join("node2", IpPolicy::HybridIpv6, any(1811), |_| {});
    assert!(
        matches!(result, Err(JoinError::NodeNotAuthentic { .. })),
        "{result:?}"
    );
    stop_tx.send(()).unwrap();
    server.join().unwrap();
    assert!(
        !got_request.load(Ordering::SeqCst),
        "the request (with a certificate) reached the impostor"
    );
}
