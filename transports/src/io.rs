//! The byte streams of every transport, plain or TLS, behind one type per side: what tonic's
//! server reads requests from ([`Connection`]) and what a tonic channel writes to
//! ([`ClientIo`]). Both are enums rather than boxed trait objects, so no allocation or
//! dynamic dispatch sits on the data path.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::listen::Slot;
use crate::peer::PeerInfo;

mod coalesce;

pub(crate) use coalesce::Coalescing;

/// What a server's HTTP/2, or TLS under it, writes to: a transport's stream whose small
/// writes may be coalesced ([`coalesce`]). Clients write as they go: the master's channels
/// carry one call at a time to a node, mostly.
pub(crate) type Wire = Coalescing<PlainIo>;

/// Whether the server side coalesces writes: only with `GNT_COALESCE_WRITES=1` in the
/// daemon's environment ([`coalesce`] says why it is not the default).
fn coalescing_wanted() -> bool {
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WANTED.get_or_init(|| std::env::var_os("GNT_COALESCE_WRITES").is_some_and(|v| v == "1"))
}

/// A transport's plain byte stream.
#[derive(Debug)]
pub(crate) enum PlainIo {
    Tcp(TcpStream),
    Unix(UnixStream),
    Memory(DuplexStream),
}

impl PlainIo {
    /// Waits until the peer has sent at least a byte, which stays unread for whoever reads
    /// the stream next; fails if the peer closes first. A pipe counts at once: it has no
    /// readiness to wait for, and its peer is this process.
    pub(crate) async fn sent_something(&self) -> io::Result<()> {
        let mut byte = [MaybeUninit::<u8>::uninit()];
        loop {
            // Readiness alone is no proof (Tokio reports a new socket readable before
            // anything arrived), so each time it is reported, a peek checks.
            let peeked = match self {
                Self::Tcp(stream) => {
                    stream.readable().await?;
                    stream.try_io(Interest::READABLE, || SockRef::from(stream).peek(&mut byte))
                }
                Self::Unix(stream) => {
                    stream.readable().await?;
                    stream.try_io(Interest::READABLE, || SockRef::from(stream).peek(&mut byte))
                }
                Self::Memory(_) => return Ok(()),
            };
            match peeked {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        }
    }
}

/// An accepted connection, TLS already negotiated when the listener uses it. Once its
/// listener drops it (to make room, or for carrying no calls), its reads and writes fail,
/// so that the server closes it.
#[derive(Debug)]
pub struct Connection {
    io: ServerIo,
    peer: PeerInfo,
    /// Its place among the listener's established connections, given back on drop.
    slot: Option<Slot>,
}

#[derive(Debug)]
enum ServerIo {
    Plain(Wire),
    Tls(Box<tokio_rustls::server::TlsStream<Wire>>),
}

impl Connection {
    pub(crate) fn plain(io: PlainIo, peer: PeerInfo) -> Self {
        Self {
            io: ServerIo::Plain(Coalescing::new(io)),
            peer,
            slot: None,
        }
    }

    /// `io`, its handshake done.
    pub(crate) fn tls(io: tokio_rustls::server::TlsStream<Wire>, peer: PeerInfo) -> Self {
        Self {
            io: ServerIo::Tls(Box::new(io)),
            peer,
            slot: None,
        }
    }

    /// Gives it its place among the listener's established connections: the listener can
    /// close it from then on, and learns through its peer (in every request) of its calls.
    /// Its writes are coalesced from now on, if wanted.
    pub(crate) fn with_slot(mut self, slot: Slot) -> Self {
        if coalescing_wanted() {
            let wire = match &mut self.io {
                ServerIo::Plain(wire) => wire,
                ServerIo::Tls(stream) => stream.get_mut().0,
            };
            wire.enable();
        }
        self.peer = self.peer.with_tracking(slot.tracking().clone());
        self.slot = Some(slot);
        self
    }

    /// Polls `io` with `poll`, unless the listener has dropped the connection; then, and if
    /// it does so while `poll` waits, with an error.
    fn poll_unless_dropped<T>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut ServerIo>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let this = self.get_mut();
        let Some(tracking) = this.slot.as_ref().map(Slot::tracking) else {
            return poll(Pin::new(&mut this.io), cx);
        };
        if tracking.is_dropped() {
            return Poll::Ready(Err(dropped()));
        }
        let polled = poll(Pin::new(&mut this.io), cx);
        if polled.is_pending() {
            tracking.wake_when_dropped(cx.waker());
            if tracking.is_dropped() {
                return Poll::Ready(Err(dropped()));
            }
        }
        polled
    }

    /// Who is on the other end.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

/// What reads and writes of a connection the listener dropped fail with.
fn dropped() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the listener dropped this connection (to make room, or for carrying no calls)",
    )
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_unless_dropped(cx, |io, cx| io.poll_read(cx, buf))
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_unless_dropped(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_unless_dropped(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_unless_dropped(cx, ServerIo::poll_flush)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

/// A client's connection, TLS already negotiated when the connector uses it.
#[derive(Debug)]
pub struct ClientIo(ClientInner);

#[derive(Debug)]
enum ClientInner {
    Plain(PlainIo),
    Tls(Box<tokio_rustls::client::TlsStream<PlainIo>>),
}

impl ClientIo {
    pub(crate) fn plain(io: PlainIo) -> Self {
        Self(ClientInner::Plain(io))
    }

    pub(crate) fn tls(io: tokio_rustls::client::TlsStream<PlainIo>) -> Self {
        Self(ClientInner::Tls(Box::new(io)))
    }
}

/// Implements the tokio I/O traits for an enum by delegating to each variant's stream.
macro_rules! delegate_enum {
    ($ty:ident: $($variant:ident),+) => {
        impl AsyncRead for $ty {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($ty::$variant(io) => Pin::new(io).poll_read(cx, buf),)+ }
            }
        }

        impl AsyncWrite for $ty {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                match self.get_mut() { $($ty::$variant(io) => Pin::new(io).poll_write(cx, buf),)+ }
            }

            fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
                match self.get_mut() { $($ty::$variant(io) => Pin::new(io).poll_write_vectored(cx, bufs),)+ }
            }

            fn is_write_vectored(&self) -> bool {
                match self { $($ty::$variant(io) => io.is_write_vectored(),)+ }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($ty::$variant(io) => Pin::new(io).poll_flush(cx),)+ }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($ty::$variant(io) => Pin::new(io).poll_shutdown(cx),)+ }
            }
        }
    };
}

/// Implements the tokio I/O traits for a struct by delegating to one of its fields.
macro_rules! delegate_field {
    ($ty:ident.$field:tt) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().$field).poll_read(cx, buf)
            }
        }

        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.get_mut().$field).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.get_mut().$field).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.$field.is_write_vectored()
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().$field).poll_flush(cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().$field).poll_shutdown(cx)
            }
        }
    };
}

delegate_enum!(PlainIo: Tcp, Unix, Memory);
delegate_enum!(ServerIo: Plain, Tls);
delegate_enum!(ClientInner: Plain, Tls);
delegate_field!(ClientIo.0);
