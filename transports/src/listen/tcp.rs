//! TCP sockets with every option set explicitly, never left to the host's defaults.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

use crate::error::ListenError;
use crate::peer::ListenAddr;

/// Listen backlog: enough for a master reconnecting to thousands of nodes at once.
const BACKLOG: i32 = 4096;
/// Idle time before TCP keepalive probes start, and their interval: a dead peer is noticed
/// within about two minutes even on a connection no RPC uses.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// Binds and listens on `addr`. `[::]` gets `IPV6_V6ONLY` off (dual-stack), any other IPv6
/// address gets it on.
pub(super) fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, ListenError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(ListenError::Io {
            action: "listen outside a Tokio runtime on",
            addr: ListenAddr::Tcp(addr),
            source: io::Error::other("no Tokio runtime"),
        });
    }
    if addr.is_ipv6() && !ipv6_enabled() {
        return Err(ListenError::Ipv6Unavailable { addr });
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|source| classify(addr, source, "create a socket for"))?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(!addr.ip().is_unspecified())
            .map_err(|source| classify(addr, source, "set IPV6_V6ONLY on"))?;
    }
    socket
        .set_reuse_address(true)
        .and_then(|()| socket.set_nonblocking(true))
        .map_err(|source| classify(addr, source, "configure"))?;
    socket
        .bind(&addr.into())
        .map_err(|source| classify(addr, source, "bind"))?;
    socket
        .listen(BACKLOG)
        .map_err(|source| classify(addr, source, "listen on"))?;
    Ok(socket.into())
}

/// Options of every connection, accepted or dialled: no Nagle delay (gRPC writes whole
/// frames) and keepalive probes. Failures only lose an optimisation, so they are logged.
pub(crate) fn tune(stream: &tokio::net::TcpStream) {
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    let socket = SockRef::from(stream);
    if let Err(error) = stream
        .set_nodelay(true)
        .and_then(|()| socket.set_tcp_keepalive(&keepalive))
    {
        tracing::debug!(%error, "cannot set TCP options");
    }
}

/// Whether this host (in the calling thread's network namespace) has IPv6: the kernel
/// supports it and it is not disabled for all interfaces.
fn ipv6_enabled() -> bool {
    let supported = std::path::Path::new("/proc/net/if_inet6").exists();
    let disabled = std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
        .is_ok_and(|v| v.trim() == "1");
    supported && !disabled
}

fn classify(addr: SocketAddr, source: io::Error, action: &'static str) -> ListenError {
    match source.kind() {
        // Who holds the port is looked up only when the error is reported
        // (`ListenError::naming_port_holder`): it reads every process's descriptors.
        io::ErrorKind::AddrInUse => ListenError::AddressInUse { addr, holder: None },
        io::ErrorKind::AddrNotAvailable if addr.is_ipv6() && addr.ip().is_unspecified() => {
            ListenError::Ipv6Unavailable { addr }
        }
        io::ErrorKind::AddrNotAvailable => ListenError::AddressNotOwned { addr },
        _ if source.raw_os_error() == Some(97) && addr.is_ipv6() => {
            // EAFNOSUPPORT: a kernel without IPv6.
            ListenError::Ipv6Unavailable { addr }
        }
        _ => ListenError::Io {
            action,
            addr: ListenAddr::Tcp(addr),
            source,
        },
    }
}
