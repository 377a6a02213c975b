use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use gnt_core::policy::IpPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tonic_health::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response};

use crate::{
    ConnectionLimits, Connector, DialOptions, GrpcServer, Listener, Protected, ServerSettings,
};

const IDLE_TIMEOUT: Duration = Duration::from_millis(400);
const PROTECTED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A raw HTTP/2 client from `from`: the preface and an empty SETTINGS frame, then nothing.
async fn hello(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    stream
}

/// Whether the server closes `stream` within `within` (reading what it sends until then).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    tokio::time::timeout(within, async {
        while let Ok(1..) = stream.read(&mut buf).await {}
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn connections_without_calls_are_closed_when_idle_those_with_calls_or_protected_never() {
    let settings = ServerSettings {
        connection_limits: ConnectionLimits {
            idle_timeout: Some(IDLE_TIMEOUT),
            ..ConnectionLimits::for_fd_limit(1024)
        },
        protected: Protected::when(|peer| peer.remote().ip() == Some(PROTECTED)),
        ..ServerSettings::default()
    };
    let listener = Listener::tcp(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let server = GrpcServer::new("test")
        .settings(settings)
        .start(vec![listener])
        .await
        .unwrap();
    let addr = server.local_addrs()[0].tcp().unwrap();
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut idle = hello(loopback, addr).await;
    let mut protected = hello(PROTECTED, addr).await;
    // A call that lasts, on a connection of its own: health's Watch.
    let channel = Connector::tcp_addr(addr, DialOptions::new(IpPolicy::Ipv4))
        .channel()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    let status = |message: Option<tonic_health::pb::HealthCheckResponse>| {
        health_check_response::ServingStatus::try_from(message.unwrap().status).unwrap()
    };
    assert_eq!(
        status(watch.message().await.unwrap()),
        health_check_response::ServingStatus::Serving
    );

    // Closed within 5/4 of the timeout, measured from its hello.
    assert!(closed_within(&mut idle, IDLE_TIMEOUT * 2).await);
    // Three timeouts later, the others are still open.
    tokio::time::sleep(IDLE_TIMEOUT * 3).await;
    assert!(!closed_within(&mut protected, Duration::from_millis(100)).await);
    server
        .health()
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let changed = tokio::time::timeout(Duration::from_secs(5), watch.message()).await;
    assert_eq!(
        status(changed.unwrap().unwrap()),
        health_check_response::ServingStatus::NotServing
    );
    drop((watch, protected));
    server.shutdown().await.unwrap();
}
