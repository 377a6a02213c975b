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
        max_per_peer: max_connections,
        idle_timeout: None,
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

/// The next connection `incoming` hands over, within 5 s.
async fn accepted(incoming: &mut Incoming) -> Connection {
    let next = tokio::time::timeout(Duration::from_secs(5), incoming.next()).await;
    next.unwrap().unwrap().unwrap()
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
    let connection = accepted(&mut incoming).await;
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
async fn a_newcomer_takes_the_place_of_the_oldest_established_connection_which_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut incoming, path) = unix_listener(dir.path(), 2, 2);
    let _first = speaking(&path).await;
    let _second = speaking(&path).await;
    let mut oldest = incoming.next().await.unwrap().unwrap();
    let _kept = incoming.next().await.unwrap().unwrap();
    // Its server has read what it said, waits for more, and learns that it was dropped.
    oldest.read_exact(&mut [0u8; 3]).await.unwrap();
    let reading = tokio::spawn(async move { oldest.read(&mut [0u8; 1]).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _third = speaking(&path).await;
    let _newcomer = accepted(&mut incoming).await;
    let read = tokio::time::timeout(Duration::from_secs(5), reading)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
    assert_eq!(incoming.admission.established(), 2);
}

#[tokio::test]
async fn a_listener_full_of_protected_connections_refuses_newcomers_and_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let (incoming, path) = unix_listener(dir.path(), 2, 2);
    let mut incoming = incoming.protecting(Protected::when(|_| true));
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
