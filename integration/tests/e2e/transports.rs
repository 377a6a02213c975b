//! Listeners, connectors and TLS on this host's loopback: one service over every kind,
//! authentication, peer reporting, the errors operators hit, health and shutdown.

use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use gnt_core::error::{Chain, Classify, ErrorKind};
use gnt_core::policy::IpPolicy;
use gnt_transports::{
    ClientAuth, ConnectError, Connector, DialOptions, GrpcServer, Identity, ListenError, Listener,
    Pem, RunningServer, ServerSettings, ServerTls, Shutdown, TlsConfigError,
};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::{Pki, health, ipv6_loopback, who_am_i};

fn tcp(addr: &str) -> Listener {
    Listener::tcp(addr.parse().unwrap()).unwrap()
}

fn dial(addr: SocketAddr) -> Connector {
    Connector::tcp_addr(addr, DialOptions::new(IpPolicy::HybridIpv6))
}

/// A server on `127.0.0.1`, any port, with the test PKI's server certificate, asking clients
/// for certificates as `auth` says.
async fn tls_on_ipv4_loopback(pki: &Pki, auth: ClientAuth) -> (RunningServer, SocketAddr) {
    let listener = tcp("127.0.0.1:0").with_tls(pki.server_tls(auth));
    let server = GrpcServer::new("test-server")
        .start(vec![listener])
        .await
        .unwrap();
    let addr = server.local_addrs()[0].tcp().unwrap();
    (server, addr)
}

#[tokio::test]
async fn the_same_service_answers_over_tcp_unix_and_memory_with_and_without_tls() {
    let pki = Pki::new(&[]);
    for tls in [false, true] {
        let mut listeners = vec![tcp("127.0.0.1:0")];
        if ipv6_loopback() {
            listeners.push(tcp("[::1]:0"));
        }
        let socket = pki.path(if tls { "tls.sock" } else { "plain.sock" });
        listeners.push(Listener::unix(&socket, 0o600).unwrap());
        let (memory, memory_connector) = Listener::memory();
        listeners.push(memory);
        if tls {
            listeners = listeners
                .into_iter()
                .map(|l| l.with_tls(pki.server_tls(ClientAuth::Required)))
                .collect();
        }
        let server = GrpcServer::new("test-server")
            .start(listeners)
            .await
            .unwrap();
        let addrs = server.local_addrs().to_vec();

        let mut connectors: Vec<(Connector, &str, &str)> = addrs
            .iter()
            .filter_map(|a| a.tcp())
            .map(|a| (dial(a), "tcp", if a.is_ipv4() { "IPv4" } else { "IPv6" }))
            .collect();
        connectors.push((Connector::unix(&socket), "unix", ""));
        connectors.push((Connector::memory(memory_connector.clone()), "memory", ""));

        for (connector, transport, family) in connectors {
            let connector = if tls {
                let client = pki.client_tls(Some(&pki.client));
                let client = if transport == "tcp" {
                    client
                } else {
                    client.with_server_name("localhost").unwrap()
                };
                connector.with_tls(client)
            } else {
                connector
            };
            let target = connector.target();
            let channel = connector.channel().await.unwrap();
            let me = who_am_i(channel.clone()).await.unwrap();
            assert_eq!(me.transport, transport, "{target}");
            assert_eq!(me.family, family, "{target}");
            assert_eq!(me.tls, tls, "{target}");
            assert_eq!(me.server, "test-server");
            match transport {
                "unix" => assert!(
                    me.peer
                        .starts_with(&format!("unix:pid={},", std::process::id())),
                    "{}",
                    me.peer
                ),
                "memory" => assert_eq!(me.peer, "memory"),
                _ => assert!(
                    me.peer.starts_with(if family == "IPv4" {
                        "127.0.0.1:"
                    } else {
                        "[::1]:"
                    }),
                    "{}",
                    me.peer
                ),
            }
            let certificate = me.certificate.clone();
            if tls {
                let certificate = certificate.unwrap();
                assert_eq!(certificate.common_name, "master.lab.test");
                assert_eq!(certificate.role, "master");
            } else {
                assert!(certificate.is_none());
            }
            assert_eq!(
                health(channel, "").await.unwrap(),
                ServingStatus::Serving,
                "{target}"
            );
        }
        assert_eq!(server.shutdown().await.unwrap(), Shutdown::Drained);
        assert!(
            !socket.exists(),
            "the socket file is removed when the server stops"
        );
    }
}

#[tokio::test]
async fn required_client_certificates_refuse_anonymous_and_foreign_clients() {
    let pki = Pki::new(&[]);
    let (server, addr) = tls_on_ipv4_loopback(&pki, ClientAuth::Required).await;

    let anonymous = dial(addr).with_tls(pki.client_tls(None));
    let foreign = dial(addr).with_tls(pki.client_tls(Some(&pki.stranger)));
    for (who, connector) in [("no certificate", anonymous), ("another CA", foreign)] {
        let outcome = match connector.channel().await {
            Ok(channel) => who_am_i(channel).await.map(|_| ()),
            Err(err) => Err(tonic::Status::unavailable(Chain(&err).to_string())),
        };
        assert!(outcome.is_err(), "a client with {who} was let in");
    }
    // The same server takes a client with the cluster's certificate.
    let member = dial(addr).with_tls(pki.client_tls(Some(&pki.client)));
    let me = who_am_i(member.channel().await.unwrap()).await.unwrap();
    assert_eq!(me.certificate.unwrap().role, "master");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_direct_channel_speaks_mutual_tls_and_an_anonymous_one_is_classified_as_refused_tls() {
    use gnt_proto::diag::v1::WhoAmIRequest;
    use gnt_proto::diag::v1::diagnostics_client::DiagnosticsClient;

    let pki = Pki::new(&[]);
    let (server, addr) = tls_on_ipv4_loopback(&pki, ClientAuth::Required).await;

    let member = dial(addr).with_tls(pki.client_tls(Some(&pki.client)));
    let mut diag = DiagnosticsClient::new(member.direct_channel());
    let me = diag.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    assert!(me.tls, "{me:?}");
    assert_eq!(me.certificate.unwrap().role, "master");
    let again = diag.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!(
        again.peer, me.peer,
        "the second call made a connection of its own"
    );

    let anonymous = dial(addr).with_tls(pki.client_tls(None));
    let refused = DiagnosticsClient::new(anonymous.direct_channel())
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            gnt_transports::call_failure(&refused, Duration::from_secs(60)),
            gnt_core::runner::CallFailure::TlsRejected(_)
        ),
        "{refused:?}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_by_the_client() {
    let pki = Pki::new(&[]);
    // The server presents the stranger's certificate; the client trusts only the cluster CA.
    let stranger = Identity::from_files(&pki.stranger.cert, &pki.stranger.key).unwrap();
    let tls = ServerTls::new(&stranger, None, ClientAuth::Off).unwrap();
    let server = GrpcServer::new("impostor")
        .start(vec![tcp("127.0.0.1:0").with_tls(tls)])
        .await
        .unwrap();
    let addr = server.local_addrs()[0].tcp().unwrap();
    let connector = dial(addr).with_tls(
        pki.client_tls(Some(&pki.client))
            .with_server_name("intruder")
            .unwrap(),
    );
    let err = connector.connect().await.unwrap_err();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(
        Chain(&err).to_string().contains("UnknownIssuer"),
        "{}",
        Chain(&err)
    );
    server.shutdown().await.unwrap();
}

/// A stock rustls client (its own defaults, not the project's provider) offering `versions`,
/// presenting the cluster's client certificate.
fn stock_client(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.ca.ca_path()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_file_iter(&pki.client.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.client.key).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

#[tokio::test]
async fn servers_speak_tls_1_3_only_and_choose_aes_128_gcm_first() {
    let pki = Pki::new(&[]);
    let (server, addr) = tls_on_ipv4_loopback(&pki, ClientAuth::Required).await;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();

    // A client preferring AES-256 (rustls' default order) gets the server's choice.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = stock_client(&pki, rustls::DEFAULT_VERSIONS)
        .connect(name.clone(), tcp)
        .await
        .unwrap();
    let (_, session) = stream.get_ref();
    assert_eq!(
        session.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(
        session.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
    );

    // A client that speaks only TLS 1.2 is refused in the handshake.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let refused = stock_client(&pki, &[&rustls::version::TLS12])
        .connect(name, tcp)
        .await;
    assert!(refused.is_err(), "a TLS 1.2 client was let in");

    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn optional_client_certificates_admit_anonymous_clients_without_an_identity() {
    let pki = Pki::new(&[]);
    let (server, addr) = tls_on_ipv4_loopback(&pki, ClientAuth::Optional).await;
    let anonymous = who_am_i(
        dial(addr)
            .with_tls(pki.client_tls(None))
            .channel()
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(anonymous.tls && anonymous.certificate.is_none());
    let member = who_am_i(
        dial(addr)
            .with_tls(pki.client_tls(Some(&pki.client)))
            .channel()
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(member.certificate.unwrap().common_name, "master.lab.test");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn ipv4_clients_of_a_dual_stack_listener_are_reported_as_ipv4() {
    if !ipv6_loopback() {
        panic!("this test needs IPv6 on the loopback interface");
    }
    let server = GrpcServer::new("test-server")
        .start(vec![
            Listener::tcp_for_policy(IpPolicy::HybridIpv6, 0).unwrap(),
        ])
        .await
        .unwrap();
    let port = server.local_addrs()[0].tcp().unwrap().port();
    assert_eq!(server.local_addrs()[0].to_string(), format!("[::]:{port}"));
    let v4 = who_am_i(dial(([127, 0, 0, 1], port).into()).channel().await.unwrap())
        .await
        .unwrap();
    assert!(v4.peer.starts_with("127.0.0.1:"), "{}", v4.peer);
    assert_eq!(v4.family, "IPv4");
    let v6 = who_am_i(
        dial(
            "[::1]:1"
                .parse::<SocketAddr>()
                .map(|a| SocketAddr::new(a.ip(), port))
                .unwrap(),
        )
        .channel()
        .await
        .unwrap(),
    )
    .await
    .unwrap();
    assert!(v6.peer.starts_with("[::1]:"), "{}", v6.peer);
    assert_eq!(v6.family, "IPv6");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_port_in_use_is_refused_naming_the_address() {
    let first = tcp("127.0.0.1:0");
    let addr = first.local_addr().tcp().unwrap();
    // A caller waiting for the port learns only that it is taken.
    assert!(Listener::tcp_if_free(addr).unwrap().is_none());
    let err = Listener::tcp(addr).unwrap_err();
    assert!(matches!(err, ListenError::AddressInUse { .. }), "{err}");
    // The holder is this test process, found through /proc.
    let expected = format!(
        "cannot listen on {addr}: port {} is in use by PID {} (",
        addr.port(),
        std::process::id()
    );
    assert!(err.to_string().starts_with(&expected), "{err}");
    assert_eq!(err.kind(), ErrorKind::NotUnique);
}

#[tokio::test]
async fn an_address_this_host_lacks_is_refused_saying_so() {
    let err = Listener::tcp("192.0.2.77:0".parse().unwrap()).unwrap_err();
    assert!(matches!(err, ListenError::AddressNotOwned { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "cannot listen on 192.0.2.77:0: this host does not have the address 192.0.2.77"
    );
    assert_eq!(err.kind(), ErrorKind::Environment);
}

#[tokio::test]
async fn the_policy_decides_what_may_be_bound_and_dialled() {
    let err = Listener::tcp_in_policy(IpPolicy::Ipv4, "[::1]:0".parse().unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot listen on [::1]:0: the cluster is IPv4; bind 0.0.0.0 or one of this host's IPv4 addresses"
    );
    let err =
        Listener::tcp_in_policy(IpPolicy::HybridIpv6, "0.0.0.0:0".parse().unwrap()).unwrap_err();
    assert!(matches!(err, ListenError::PolicyForbids { .. }), "{err}");
    // An IPv4 cluster refuses to dial IPv6 before sending anything.
    let err = Connector::tcp_addr("[::1]:9".parse().unwrap(), DialOptions::new(IpPolicy::Ipv4))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::PolicyForbids { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "cannot connect to [::1]:9: the cluster is IPv4-only and never dials IPv6"
    );
}

#[tokio::test]
async fn unix_sockets_get_their_mode_replace_only_dead_sockets_and_explain_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.sock");

    let listener = Listener::unix(&path, 0o600).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    let err = Listener::unix(&path, 0o600).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "another process is listening on {}; stop it first",
            path.display()
        )
    );

    // A socket file nobody listens on any more is replaced.
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("stale.sock")).unwrap());
    assert!(dir.path().join("stale.sock").exists());
    Listener::unix(&dir.path().join("stale.sock"), 0o660).unwrap();

    std::fs::write(dir.path().join("file"), b"").unwrap();
    let err = Listener::unix(&dir.path().join("file"), 0o600).unwrap_err();
    assert!(matches!(err, ListenError::UnixNotASocket { .. }), "{err}");

    let long = dir.path().join("x".repeat(120));
    let err = Listener::unix(&long, 0o600).unwrap_err();
    assert!(
        matches!(err, ListenError::UnixPathTooLong { max: 107, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::WrongInput);

    let err = Listener::unix(&dir.path().join("missing/x.sock"), 0o600).unwrap_err();
    assert!(err.to_string().ends_with("missing does not exist"), "{err}");
    let err = Listener::unix(&dir.path().join("file/x.sock"), 0o600).unwrap_err();
    assert!(
        err.to_string().ends_with("file is not a directory"),
        "{err}"
    );

    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = Listener::unix(&open.join("x.sock"), 0o600).unwrap_err();
    assert!(
        err.to_string()
            .contains("writable by every user and not sticky"),
        "{err}"
    );

    // A directory nobody can write, not even root: /proc.
    let err = Listener::unix(std::path::Path::new("/proc/gnt-test.sock"), 0o600).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Environment, "{err}");
    assert_eq!(
        err.to_string(),
        "cannot create Unix socket /proc/gnt-test.sock: its directory /proc does not accept new files (a special file system such as /proc)"
    );
    drop(listener);
}

#[tokio::test]
async fn health_reports_serving_until_shutdown_begins() {
    let (listener, connector) = Listener::memory();
    let server = GrpcServer::new("test-server")
        .start(vec![listener])
        .await
        .unwrap();
    let channel = Connector::memory(connector).channel().await.unwrap();
    assert_eq!(
        health(channel.clone(), "").await.unwrap(),
        ServingStatus::Serving
    );
    assert_eq!(
        health(channel.clone(), "gnt.diag.v1.Diagnostics")
            .await
            .unwrap(),
        ServingStatus::Serving
    );
    let unknown = health(channel.clone(), "gnt.nosuch.v1.Service")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // Watch the overall status: SERVING now, NOT_SERVING once shutdown begins.
    let mut watch = tonic_health::pb::health_client::HealthClient::new(channel)
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    let stop = server.shutdown_token();
    let waiting = tokio::spawn(server.wait());
    stop.cancel();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    drop(watch);
    waiting.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_closes_calls_still_running_when_the_grace_period_ends() {
    let (listener, connector) = Listener::memory();
    let settings = ServerSettings {
        shutdown_grace: Duration::from_millis(500),
        ..ServerSettings::default()
    };
    let server = GrpcServer::new("test-server")
        .settings(settings)
        .start(vec![listener])
        .await
        .unwrap();
    let channel = Connector::memory(connector).channel().await.unwrap();
    // A Watch stream never ends by itself: without a deadline, shutdown would wait forever.
    let mut watch = tonic_health::pb::health_client::HealthClient::new(channel)
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap();
    let started = Instant::now();
    assert_eq!(server.shutdown().await.unwrap(), Shutdown::Forced);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn tls_configuration_errors_name_the_file() {
    let pki = Pki::new(&[]);
    let missing = pki.path("nosuch.pem");
    let err = ServerTls::from_files(
        pki.ca.ca_path(),
        &missing,
        &pki.server.key,
        ClientAuth::Required,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot read the certificate {}", missing.display())
    );
    assert_eq!(err.kind(), ErrorKind::Environment);

    let not_pem = pki.path("garbage.pem");
    std::fs::write(&not_pem, "this is not PEM\n").unwrap();
    let err = ServerTls::from_files(
        pki.ca.ca_path(),
        &not_pem,
        &pki.server.key,
        ClientAuth::Required,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} holds no certificate in PEM format", not_pem.display())
    );
    let err = Identity::from_files(&pki.server.cert, &not_pem).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} holds no private key in PEM format", not_pem.display())
    );

    // The client's key with the server's certificate.
    let err = Identity::from_files(&pki.server.cert, &pki.client.key).unwrap_err();
    assert!(matches!(err, TlsConfigError::KeyMismatch { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "the private key {} does not belong to the certificate {}",
            pki.client.key.display(),
            pki.server.cert.display()
        )
    );
    assert_eq!(err.kind(), ErrorKind::WrongInput);

    let err = ServerTls::from_files(
        &not_pem,
        &pki.server.cert,
        &pki.server.key,
        ClientAuth::Required,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} holds no CA certificate in PEM format",
            not_pem.display()
        )
    );
    assert!(Pem::read("CA certificate", &missing).is_err());
}
