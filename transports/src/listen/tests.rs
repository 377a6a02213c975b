use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::*;

/// A Unix listener in `dir` holding `max_connections`, `max_handshakes` of them pending.
fn unix_listener(
    dir: &Path,
    max_connections: usize,
    max_handshakes: usize,
) -> (Incoming, std::path::PathBuf) {
    let path = dir.join("test.sock");
    let limits = ConnectionLimits {
        max_connections,
        max_handshakes,
    };
    let incoming = Listener::unix(&path, 0o600).unwrap().into_incoming(limits);
    (incoming, path)
}

/// Whether the server has closed `stream` (within a moment).
async fn closed(stream: &mut UnixStream) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

async fn speaking(path: &Path) -> UnixStream {
    let mut stream = UnixStream::connect(path).await.unwrap();
    stream.write_all(b"PRI").await.unwrap();
    stream
}

#[tokio::test]
async fn idle_connections_make_room_for_one_that_speaks_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (mut incoming, path) = unix_listener(dir.path(), 8, 4);
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(UnixStream::connect(&path).await.unwrap());
    }
    let _talker = speaking(&path).await;
    let connection = tokio::time::timeout(Duration::from_secs(5), incoming.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(connection.peer().remote(), PeerAddr::Unix { .. }));
    // Idle connections wait (readiness alone does not count as speaking) and the oldest
    // made room: the newest three idle ones are still open.
    assert_eq!(incoming.admission.pending(), 3);
    assert_eq!(incoming.admission.established(), 1);
    assert!(closed(&mut idle[0]).await);
    assert!(!closed(&mut idle[9]).await);
    drop(connection);
    assert_eq!(incoming.admission.established(), 0);
}

#[tokio::test]
async fn a_full_listener_refuses_newcomers_and_keeps_its_established_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (mut incoming, path) = unix_listener(dir.path(), 2, 2);
    let _first = speaking(&path).await;
    let _second = speaking(&path).await;
    let held = [
        incoming.next().await.unwrap().unwrap(),
        incoming.next().await.unwrap().unwrap(),
    ];
    let mut third = speaking(&path).await;
    let next = tokio::time::timeout(Duration::from_millis(300), incoming.next()).await;
    assert!(next.is_err(), "nothing more is accepted: {next:?}");
    assert!(closed(&mut third).await);
    assert_eq!(incoming.admission.established(), 2);
    drop(held);
    let _fourth = speaking(&path).await;
    assert!(incoming.next().await.unwrap().is_ok());
}
