//! A connection's task: drives h2, and while calls wait on the connection pings the server
//! every [`KEEPALIVE_INTERVAL`], giving the connection up when a ping goes unanswered for
//! [`KEEPALIVE_TIMEOUT`] (so within [`FROZEN_PEER_DETECTION`](crate::FROZEN_PEER_DETECTION)
//! of the call's start). That is what notices a frozen node (SIGSTOP, a hung kernel):
//! its TCP connection stays open and nothing answers. A node that is merely slow answers
//! pings from its connection task while its handler works, so a long call is not cut.
//!
//! An idle connection sets no timer: a master holds thousands of them.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{sleep, timeout};

use super::{ConnectionState, caused_by};
use crate::connect::{KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};
use crate::io::ClientIo;

/// The server stopped answering: a ping went unanswered for this long while calls waited.
#[derive(Debug, thiserror::Error)]
#[error("the node stopped answering: no reply to an HTTP/2 ping within {0:?}")]
pub struct PeerFrozen(pub Duration);

/// When a connection with calls waiting pings, and how long it waits for the answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Keepalive {
    pub(super) interval: Duration,
    pub(super) timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            interval: KEEPALIVE_INTERVAL,
            timeout: KEEPALIVE_TIMEOUT,
        }
    }
}

/// The status of every call on a connection given up as frozen after `timeout`.
pub(super) fn frozen_status(timeout: Duration) -> tonic::Status {
    let frozen = PeerFrozen(timeout);
    caused_by(tonic::Code::Unavailable, frozen.to_string(), frozen)
}

/// Runs `connection` until it ends or is given up.
pub(super) async fn drive(
    mut connection: h2::client::Connection<ClientIo, Bytes>,
    state: Arc<ConnectionState>,
    keepalive: Keepalive,
) {
    let mut pinger = connection.ping_pong();
    let mut connection = pin!(connection);
    let ended = loop {
        if state.in_flight.load(Ordering::Acquire) == 0 {
            tokio::select! {
                ended = &mut connection => break Some(ended),
                () = state.call_started.notified() => continue,
            }
        }
        tokio::select! {
            ended = &mut connection => break Some(ended),
            () = sleep(keepalive.interval) => {}
        }
        // h2 hands the pinger out once, on the first ask: it is always there.
        let Some(pinger) = pinger.as_mut() else {
            continue;
        };
        if state.in_flight.load(Ordering::Acquire) == 0 {
            continue;
        }
        let answered = tokio::select! {
            ended = &mut connection => break Some(ended),
            answered = timeout(keepalive.timeout, pinger.ping(h2::Ping::opaque())) => answered,
        };
        match answered {
            Ok(Ok(_pong)) => {}
            // The connection is failing: driving it on reports how.
            Ok(Err(error)) => tracing::debug!(%error, "keepalive ping failed"),
            Err(_) => {
                tracing::warn!(
                    silent = ?(keepalive.interval + keepalive.timeout),
                    "server silent with calls waiting; giving the connection up"
                );
                state.frozen_after.set(keepalive.timeout).ok();
                break None;
            }
        }
    };
    state.closed.store(true, Ordering::Release);
    if let Some(Err(error)) = ended {
        tracing::debug!(%error, "connection to the server ended");
    }
}
