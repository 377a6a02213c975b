//! Where accepted connections come from: a TCP or Unix listening socket, or the in-memory
//! pipes of a [`MemoryConnector`], each with the peer it reports.

use std::io;
use std::task::{Context, Poll};

use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use super::tcp;
use crate::error::ConnectError;
use crate::io::PlainIo;
use crate::peer::PeerAddr;

/// Buffer of each in-memory connection, per direction.
const MEMORY_BUFFER: usize = 256 * 1024;

/// A listening socket, or the receiving end of in-memory pipes.
#[derive(Debug)]
pub(super) enum Source {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
    Memory(mpsc::Receiver<DuplexStream>),
}

/// Errors about one incoming connection only; the listener itself is fine.
pub(super) fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::ConnectionRefused
    )
}

impl Source {
    pub(super) fn poll_accept(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<(PlainIo, PeerAddr)>>> {
        match self {
            Self::Tcp(listener) => listener.poll_accept(cx).map(|accepted| {
                Some(accepted.map(|(stream, remote)| {
                    tcp::tune(&stream);
                    (PlainIo::Tcp(stream), PeerAddr::tcp(remote))
                }))
            }),
            Self::Unix(listener) => listener.poll_accept(cx).map(|accepted| {
                Some(accepted.map(|(stream, _)| {
                    let peer = match stream.peer_cred() {
                        Ok(cred) => PeerAddr::Unix {
                            pid: cred.pid(),
                            uid: cred.uid(),
                            gid: cred.gid(),
                        },
                        // The kernel always answers SO_PEERCRED on a connected Unix socket.
                        Err(_) => PeerAddr::Unix {
                            pid: None,
                            uid: u32::MAX,
                            gid: u32::MAX,
                        },
                    };
                    (PlainIo::Unix(stream), peer)
                }))
            }),
            Self::Memory(receiver) => receiver
                .poll_recv(cx)
                .map(|pipe| pipe.map(|pipe| Ok((PlainIo::Memory(pipe), PeerAddr::Memory)))),
        }
    }
}

/// Dials an in-memory listener; clone it freely.
#[derive(Debug, Clone)]
pub struct MemoryConnector {
    pub(super) tx: mpsc::Sender<DuplexStream>,
}

impl MemoryConnector {
    pub(crate) async fn connect(&self) -> Result<PlainIo, ConnectError> {
        let (client, server) = tokio::io::duplex(MEMORY_BUFFER);
        self.tx
            .send(server)
            .await
            .map_err(|_| ConnectError::MemoryClosed)?;
        Ok(PlainIo::Memory(client))
    }
}
