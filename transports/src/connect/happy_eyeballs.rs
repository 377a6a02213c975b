//! Racing connection attempts over several addresses (RFC 8305, "Happy Eyeballs v2").
//!
//! Attempts start in order, one every `attempt_delay` while earlier ones are still
//! pending, or at once when the latest fails; the first to connect wins and the others are
//! dropped (closing their sockets). One timeout bounds the whole race.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::net::{TcpSocket, TcpStream};

use crate::error::{AttemptFailure, ConnectError};

/// RFC 8305's recommended Connection Attempt Delay.
pub const DEFAULT_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// IPv6 and IPv4 addresses alternated, starting with IPv6 (RFC 8305 section 4, with a
/// First Address Family Count of 1).
pub(super) fn interleave(v6: Vec<SocketAddr>, v4: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    let mut v6 = v6.into_iter();
    let mut v4 = v4.into_iter();
    loop {
        match (v6.next(), v4.next()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// Connects to the first of `addresses` that answers, as described above.
pub(super) async fn connect(
    target: &str,
    addresses: &[SocketAddr],
    attempt_delay: Duration,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let mut failures = Vec::new();
    let race = race(addresses, attempt_delay, &mut failures);
    match tokio::time::timeout(timeout, race).await {
        Ok(Some(won)) => Ok(won),
        Ok(None) => Err(ConnectError::Failed {
            target: target.to_owned(),
            attempts: failures,
        }),
        Err(_) => Err(ConnectError::TimedOut {
            target: target.to_owned(),
            timeout,
            attempts: failures,
        }),
    }
}

async fn race(
    addresses: &[SocketAddr],
    attempt_delay: Duration,
    failures: &mut Vec<(SocketAddr, AttemptFailure)>,
) -> Option<(TcpStream, SocketAddr)> {
    let mut pending = FuturesUnordered::new();
    let mut next = addresses.iter().copied();
    let start = |addr: SocketAddr| async move { (addr, attempt(addr).await) };
    pending.push(start(next.next()?));
    let delay = tokio::time::sleep(attempt_delay);
    tokio::pin!(delay);
    let mut more = addresses.len() > 1;
    loop {
        tokio::select! {
            finished = pending.next(), if !pending.is_empty() => {
                let Some((addr, result)) = finished else { continue };
                match result {
                    Ok(stream) => {
                        tracing::debug!(%addr, "connected");
                        return Some((stream, addr));
                    }
                    Err(error) => {
                        tracing::debug!(%addr, %error, "connection attempt failed");
                        failures.push((addr, AttemptFailure::from(&error)));
                        // A failure starts the next attempt at once (RFC 8305 section 5).
                        match next.next() {
                            Some(addr) => {
                                pending.push(start(addr));
                                delay.as_mut().reset(tokio::time::Instant::now() + attempt_delay);
                            }
                            None if pending.is_empty() => return None,
                            None => more = false,
                        }
                    }
                }
            }
            () = &mut delay, if more => {
                match next.next() {
                    Some(addr) => {
                        tracing::debug!(%addr, "previous attempt still pending; trying the next address");
                        pending.push(start(addr));
                        delay.as_mut().reset(tokio::time::Instant::now() + attempt_delay);
                    }
                    None => more = false,
                }
            }
        }
    }
}

async fn attempt(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    let stream = socket.connect(addr).await?;
    crate::listen::tune_outgoing(&stream);
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use gnt_core::testing::SilentTarget;

    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn families_alternate_starting_with_ipv6() {
        let v6 = vec![
            addr("[2001:db8::1]:1"),
            addr("[2001:db8::2]:1"),
            addr("[2001:db8::3]:1"),
        ];
        let v4 = vec![addr("192.0.2.1:1")];
        assert_eq!(
            interleave(v6.clone(), v4.clone()),
            [v6[0], v4[0], v6[1], v6[2]]
        );
        assert_eq!(interleave(Vec::new(), v4.clone()), v4);
        assert!(interleave(Vec::new(), Vec::new()).is_empty());
    }

    #[tokio::test]
    async fn a_silent_first_address_is_overtaken_after_the_attempt_delay() {
        let silent = SilentTarget::new().unwrap();
        let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let live_addr = live.local_addr().unwrap();
        let started = Instant::now();
        let (_, used) = connect(
            "test",
            &[silent.addr(), live_addr],
            Duration::from_millis(250),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let took = started.elapsed();
        assert_eq!(used, live_addr);
        assert!(
            took >= Duration::from_millis(240),
            "started the second attempt too early: {took:?}"
        );
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }

    #[tokio::test]
    async fn a_refused_first_address_hands_over_at_once() {
        let refused = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let started = Instant::now();
        let (_, used) = connect(
            "test",
            &[refused, live.local_addr().unwrap()],
            Duration::from_secs(3),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(used, live.local_addr().unwrap());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "waited for the delay: {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn when_all_are_refused_each_failure_is_reported() {
        let a = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = connect(
            "node1:1811",
            &[a, b],
            Duration::from_millis(50),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(err.is_refused(), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot connect to node1:1811: {a}: connection refused; {b}: connection refused"
            )
        );
    }

    #[tokio::test]
    async fn the_whole_dial_is_bounded_by_the_timeout() {
        let silent = SilentTarget::new().unwrap();
        let started = Instant::now();
        let err = connect(
            "node1:1811",
            &[silent.addr()],
            Duration::from_millis(50),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ConnectError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            err.to_string(),
            "cannot connect to node1:1811: no connection within 300ms"
        );
    }
}
