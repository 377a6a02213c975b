//! Fixtures for tests of this crate and of the crates above it (feature `testing`).

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A loopback TCP address that never answers a new connection: a listener whose accept
/// queue is full, so Linux drops further SYNs silently, as for a black-holed host. Only
/// this host's loopback is involved. The address stays silent while the value lives.
#[derive(Debug)]
pub struct SilentTarget {
    addr: SocketAddr,
    _listener: socket2::Socket,
    _queued: Vec<TcpStream>,
}

impl SilentTarget {
    /// Sets one up on 127.0.0.1.
    pub fn new() -> io::Result<Self> {
        let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        listener.listen(0)?;
        let addr = listener
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("the listener has no IP address"))?;
        // Connections that fill the queue; they are never accepted.
        let queued: Vec<_> = (0..4)
            .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok())
            .collect();
        if queued.is_empty() {
            return Err(io::Error::other("could not fill the accept queue"));
        }
        Ok(Self {
            addr,
            _listener: listener,
            _queued: queued,
        })
    }

    /// The address that does not answer.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
