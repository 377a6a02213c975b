//! The baselines, served by `gnt-bench internal bare` with the node's own certificate and
//! key and the cluster CA (mutual TLS required, the agent's own TLS configuration), and
//! none of gnt-rpc's gRPC layers:
//!
//! - a bare tonic server of `gnt.node.v1.NodeAgent` over tokio-rustls: tonic's defaults,
//!   no reflection, health, diagnostics, interceptor or request spans; only `Version`
//!   answers, everything else is `UNIMPLEMENTED`;
//! - a bare TLS sink for uploads: a connection carries a mode byte ([`SINK_STORE`] or
//!   [`SINK_DISCARD`]), the size (8 bytes, big-endian), the SHA-256 (32 bytes) and the
//!   content. Discarded content measures mutual TLS alone; stored content is stored with the work UploadFile does, the same
//!   way (received on one task while a blocking thread hashes and writes a temporary file;
//!   fsync, rename, fsync the directory); the answer is the size stored (8 bytes), or zero
//!   if the checksum did not match;
//! - a plain TCP echo (no TLS, no HTTP/2), for the round trip of the wire itself.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use gnt_transports::{ClientAuth, ServerTls};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use super::BenchError;

mod agent;

use agent::BareAgent;

/// Size of the sink's reads.
const SINK_BUFFER: usize = 1 << 20;
/// Sink mode: store the content as UploadFile does.
pub const SINK_STORE: u8 = 0;
/// Sink mode: read the content and drop it.
pub const SINK_DISCARD: u8 = 1;

/// Where the baselines get their identity and where they listen.
#[derive(Debug, Clone, clap::Args)]
pub struct BareArgs {
    /// The certificate to present (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// The CA client certificates must chain to (PEM).
    #[arg(long)]
    pub ca: PathBuf,
    /// Where the bare gRPC server listens.
    #[arg(long)]
    pub grpc: SocketAddr,
    /// Where the bare TLS sink listens.
    #[arg(long)]
    pub sink: SocketAddr,
    /// Where the TCP echo listens.
    #[arg(long)]
    pub echo: SocketAddr,
    /// Where the sink stores what it receives.
    #[arg(long)]
    pub dir: PathBuf,
}

/// Serves both baselines until killed.
pub fn serve(args: &BareArgs) -> Result<(), BenchError> {
    let config = server_config(args)?;
    let runtime = tokio::runtime::Runtime::new().map_err(BenchError::io("start a runtime"))?;
    runtime.block_on(async {
        let grpc = TcpListener::bind(args.grpc)
            .await
            .map_err(BenchError::io(format!("listen on {}", args.grpc)))?;
        let sink = TcpListener::bind(args.sink)
            .await
            .map_err(BenchError::io(format!("listen on {}", args.sink)))?;
        let echo = TcpListener::bind(args.echo)
            .await
            .map_err(BenchError::io(format!("listen on {}", args.echo)))?;
        let bound = |l: &TcpListener| {
            l.local_addr()
                .map_err(BenchError::io("read a listener's address"))
        };
        // The harness waits on the ports it chose; tests that let the kernel choose read
        // the addresses here.
        println!(
            "ready grpc={} sink={} echo={}",
            bound(&grpc)?,
            bound(&sink)?,
            bound(&echo)?
        );
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(serve_sink(sink, acceptor.clone(), args.dir.clone()));
        tokio::spawn(serve_echo(echo));
        tonic::transport::Server::builder()
            .add_service(BareAgent)
            .serve_with_incoming(incoming(grpc, acceptor))
            .await
            .map_err(|e| BenchError::failed("serve the bare gRPC server", e))
    })
}

/// The agent's own server TLS (`gnt_transports::ServerTls`): same versions, suite order,
/// client verification and ALPN, so that the baseline differs from the agent in gRPC layers
/// only.
fn server_config(args: &BareArgs) -> Result<Arc<rustls::ServerConfig>, BenchError> {
    let tls = ServerTls::from_files(&args.ca, &args.cert, &args.key, ClientAuth::Required)
        .map_err(|e| BenchError::failed("load the TLS files", e))?;
    Ok(tls.config())
}

/// Accepted connections, each handshaken in its own task so a slow client holds up no one.
fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<Result<BareIo, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = tx.send(Ok(BareIo(tls))).await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A TLS connection, as tonic's server wants it.
struct BareIo(TlsStream<TcpStream>);

impl Connected for BareIo {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for BareIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for BareIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Size of an echo message.
pub const ECHO_BYTES: usize = 64;

async fn serve_echo(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut message = [0u8; ECHO_BYTES];
            while stream.read_exact(&mut message).await.is_ok() {
                if stream.write_all(&message).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn serve_sink(listener: TcpListener, acceptor: TlsAcceptor, dir: PathBuf) {
    let mut sequence = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        sequence += 1;
        let destination = dir.join(format!("sink-{sequence}.bin"));
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Ok(mut tls) = acceptor.accept(stream).await {
                let stored = match tls.read_u8().await {
                    Ok(SINK_STORE) => receive(&mut tls, &destination).await.unwrap_or(0),
                    Ok(_) => discard(&mut tls).await.unwrap_or(0),
                    Err(_) => 0,
                };
                let _ = tls.write_all(&stored.to_be_bytes()).await;
                let _ = tls.shutdown().await;
            }
        });
    }
}

/// Stores one upload as UploadFile does (receiving on this task while a blocking thread
/// hashes and writes, a few chunks in between); returns its size, or 0 on a checksum
/// mismatch.
async fn receive(tls: &mut TlsStream<TcpStream>, destination: &Path) -> std::io::Result<u64> {
    let mut size = [0u8; 8];
    tls.read_exact(&mut size).await?;
    let size = u64::from_be_bytes(size);
    let mut expected = [0u8; 32];
    tls.read_exact(&mut expected).await?;
    let temp = destination.with_extension("partial");
    let file = std::fs::File::create(&temp)?;
    let (chunks, mut inbox) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<[u8; 32]> {
        let mut file = file;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        while let Some(chunk) = inbox.blocking_recv() {
            digest.update(&chunk);
            file.write_all(&chunk)?;
        }
        file.sync_all()?;
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.finish().as_ref());
        Ok(out)
    });
    let mut left = size;
    while left > 0 {
        let want = SINK_BUFFER.min(usize::try_from(left).unwrap_or(usize::MAX));
        let mut buffer = bytes::BytesMut::with_capacity(want);
        while buffer.len() < want {
            if tls.read_buf(&mut buffer).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        left -= buffer.len() as u64;
        if chunks.send(buffer.freeze()).await.is_err() {
            break;
        }
    }
    drop(chunks);
    let digest = writer.await.map_err(std::io::Error::other)??;
    if digest != expected {
        let _ = std::fs::remove_file(&temp);
        return Ok(0);
    }
    std::fs::rename(&temp, destination)?;
    if let Some(dir) = destination.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(size)
}

/// Reads one upload and drops it; returns its size.
async fn discard(tls: &mut TlsStream<TcpStream>) -> std::io::Result<u64> {
    let size = tls.read_u64().await?;
    let mut expected = [0u8; 32];
    tls.read_exact(&mut expected).await?;
    let mut buffer = vec![0u8; SINK_BUFFER];
    let mut left = size;
    while left > 0 {
        let want = SINK_BUFFER.min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = tls.read(&mut buffer[..want]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        left -= n as u64;
    }
    Ok(size)
}
