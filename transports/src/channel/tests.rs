use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gnt_core::policy::IpPolicy;
use gnt_core::runner::CallFailure;
use gnt_proto::diag::v1::WhoAmIRequest;
use gnt_proto::diag::v1::diagnostics_client::DiagnosticsClient;
use tokio::io::AsyncReadExt;
use tokio::net::UnixListener;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use super::DirectChannel;
use crate::{ClientTls, Connector, DialOptions, GrpcServer, Listener, RunningServer, call_failure};

async fn server_at(addr: SocketAddr) -> RunningServer {
    GrpcServer::new("test")
        .start(vec![Listener::tcp(addr).unwrap()])
        .await
        .unwrap()
}

fn tcp(addr: SocketAddr) -> Connector {
    Connector::tcp_addr(addr, DialOptions::new(IpPolicy::Ipv4))
}

/// Whether `check` holds within two seconds, asked every 10 ms.
async fn within_two_seconds<F: Future<Output = bool>>(check: impl Fn() -> F) -> bool {
    for _ in 0..200 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check().await
}

async fn caller_address(channel: &DirectChannel) -> Result<String, tonic::Status> {
    let answer = DiagnosticsClient::new(channel.clone())
        .who_am_i(WhoAmIRequest {})
        .await?;
    Ok(answer.into_inner().peer)
}

#[tokio::test]
async fn calls_share_one_connection_and_the_first_call_after_it_ends_dials_again() {
    let server = server_at(SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let addr = server.local_addrs()[0].tcp().unwrap();
    let channel = DirectChannel::new(tcp(addr));
    assert!(!channel.is_connected().await, "connected before any call");

    let first = caller_address(&channel).await.unwrap();
    let calls: Vec<_> = (0..8).map(|_| caller_address(&channel)).collect();
    for peer in futures_util::future::join_all(calls).await {
        assert_eq!(
            peer.unwrap(),
            first,
            "a call opened a connection of its own"
        );
    }

    server.shutdown().await.unwrap();
    assert!(
        within_two_seconds(|| async { !channel.is_connected().await }).await,
        "the ended connection is still in use"
    );
    let refused = caller_address(&channel).await.unwrap_err();
    assert!(
        matches!(
            call_failure(&refused, Duration::from_secs(5)),
            CallFailure::Refused(_)
        ),
        "{refused:?}"
    );

    let server = server_at(addr).await;
    let again = caller_address(&channel).await.unwrap();
    assert_ne!(again, first, "the same connection came back");
    server.shutdown().await.unwrap();
}

/// A Unix socket that counts connections, and closes each after `hold` without a word.
fn counting_listener(path: &Path, hold: Duration) -> Arc<AtomicUsize> {
    silent_listener(path, hold).0
}

/// A Unix socket that never answers: it counts the connections made to it, reads what they
/// send, counts those the client closed, and closes the others after `hold`.
fn silent_listener(path: &Path, hold: Duration) -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = UnixListener::bind(path).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed_by_client = Arc::new(AtomicUsize::new(0));
    let (count, closed) = (accepted.clone(), closed_by_client.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut sink = [0u8; 1024];
                let read_to_end = async { while let Ok(1..) = stream.read(&mut sink).await {} };
                if tokio::time::timeout(hold, read_to_end).await.is_ok() {
                    closed.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (accepted, closed_by_client)
}

#[tokio::test]
async fn calls_that_waited_for_a_failing_dial_share_its_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    let accepted = counting_listener(&path, Duration::from_millis(200));
    // The handshake dies with the connection: the dial fails after 200 ms.
    let tls = ClientTls::danger_unverified_server(None)
        .unwrap()
        .with_server_name("node.test")
        .unwrap();
    let channel = DirectChannel::new(Connector::unix(&path).with_tls(tls));

    let calls: Vec<_> = (0..8)
        .map(|_| {
            let mut health = HealthClient::new(channel.clone());
            async move { health.check(HealthCheckRequest::default()).await }
        })
        .collect();
    for result in futures_util::future::join_all(calls).await {
        let status = result.unwrap_err();
        assert!(
            matches!(
                call_failure(&status, Duration::from_secs(5)),
                CallFailure::TlsRejected(_) | CallFailure::Unreachable(_)
            ),
            "{status:?}"
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one dial for all eight calls"
    );

    // A later call dials again.
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "{status:?}");
}

#[tokio::test]
async fn a_silent_server_fails_a_call_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    counting_listener(&path, Duration::from_secs(60));
    let channel = DirectChannel::new(Connector::unix(&path));

    let mut request = tonic::Request::new(HealthCheckRequest::default());
    request.set_timeout(Duration::from_millis(300));
    let mut health = HealthClient::new(channel);
    let call = health.check(request);
    let status = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the deadline was not enforced")
        .unwrap_err();
    assert_eq!(
        call_failure(&status, Duration::from_millis(300)),
        CallFailure::TimedOut(Duration::from_millis(300)),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_dropped_channel_closes_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    let (accepted, closed) = silent_listener(&path, Duration::from_secs(60));
    let channel = DirectChannel::new(Connector::unix(&path));
    let mut request = tonic::Request::new(HealthCheckRequest::default());
    request.set_timeout(Duration::from_millis(100));
    HealthClient::new(channel.clone())
        .check(request)
        .await
        .unwrap_err();
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(
        closed.load(Ordering::SeqCst),
        0,
        "closed while the channel lives"
    );

    drop(channel);
    assert!(
        within_two_seconds(|| async { closed.load(Ordering::SeqCst) == 1 }).await,
        "the connection of a dropped channel is still open"
    );
}

#[tokio::test]
async fn a_server_that_stops_answering_pings_fails_the_waiting_calls_as_frozen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    counting_listener(&path, Duration::from_secs(60));
    let channel = DirectChannel::with_keepalive(
        Connector::unix(&path),
        Duration::from_millis(100),
        Duration::from_millis(200),
    );

    let mut health = HealthClient::new(channel.clone());
    let call = health.check(HealthCheckRequest::default());
    let status = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the silent server was not noticed")
        .unwrap_err();
    assert_eq!(
        call_failure(&status, Duration::from_secs(60)),
        CallFailure::TimedOut(crate::FROZEN_PEER_DETECTION),
        "{status:?}"
    );
    assert!(status.message().contains("stopped answering"), "{status:?}");
    assert!(
        !channel.is_connected().await,
        "the frozen connection is kept"
    );
}

#[tokio::test]
async fn a_request_stream_larger_than_the_servers_window_flows_while_answers_come_back() {
    let server = server_at(SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let addr = server.local_addrs()[0].tcp().unwrap();
    let channel = DirectChannel::new(tcp(addr));

    // 48 requests of 256 KiB: 12 MiB, three times the server's 4 MiB window per call.
    const REQUESTS: usize = 48;
    let padding = "x".repeat(256 * 1024);
    let requests = tokio_stream::iter((0..REQUESTS).map(move |_| ServerReflectionRequest {
        host: padding.clone(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    }));
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    let mut answered = 0;
    while let Some(answer) = answers.message().await.unwrap() {
        assert!(
            matches!(
                answer.message_response,
                Some(MessageResponse::ListServicesResponse(_))
            ),
            "answer {answered} is not a list of services"
        );
        answered += 1;
    }
    assert_eq!(answered, REQUESTS);
    server.shutdown().await.unwrap();
}
