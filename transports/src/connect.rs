//! Connectors: how a tonic client reaches a server, over the same kinds as the listeners.
//!
//! - **TCP** ([`Connector::tcp`]). The policy decides the families: an IPv4 cluster never
//!   dials IPv6, not even a literal. A name is resolved in the policy's families
//!   ([`Resolver`]); when it has addresses of both, they are dialled Happy-Eyeballs style
//!   (RFC 8305): IPv6 first, families interleaved, the next attempt started 250 ms after the
//!   previous one (or as soon as it fails), the first connection to succeed wins and the
//!   others are dropped. One timeout bounds the whole dial (5 s by default, Ganeti's
//!   `RPC_CONNECT_TIMEOUT`).
//! - **Unix domain socket** ([`Connector::unix`]).
//! - **In memory** ([`Connector::memory`]), from [`Listener::memory`](crate::Listener::memory).
//!
//! Any kind can carry TLS ([`Connector::with_tls`]). A connector is a `tower::Service<Uri>`,
//! so tonic uses it for every (re)connection of a channel; the URI is ignored.
//!
//! Every channel pings its server over HTTP/2 when calls wait on a connection that has
//! been silent for [`KEEPALIVE_INTERVAL`], and drops the connection (failing its calls) when
//! a ping goes unanswered for [`KEEPALIVE_TIMEOUT`]. That is what notices a frozen node
//! (SIGSTOP, a hung kernel): its TCP connection stays open, the kernel still acknowledges,
//! nothing answers. Within [`FROZEN_PEER_DETECTION`] of its last word, 20 s, a third of the
//! shortest timeout class (60 s); it was 40 s with 30 s and 10 s, and the failure then read
//! as raw HTTP/2 text. A node that is merely slow answers pings from its connection task
//! while its handler works, so a long call is not cut.

mod happy_eyeballs;

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use gnt_core::netutils::{Host, Resolver, format_host_port};
use gnt_core::policy::{IpFamily, IpPolicy};
use gnt_core::runner::TimeoutClass;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

pub use happy_eyeballs::DEFAULT_ATTEMPT_DELAY;

use crate::error::ConnectError;
use crate::io::{ClientIo, PlainIo};
use crate::listen::MemoryConnector;
use crate::tls::ClientTls;

/// Ganeti's `RPC_CONNECT_TIMEOUT`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Silence on a connection with calls waiting after which the channel pings the server.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long a ping may go unanswered before the connection and its calls are given up.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a frozen server goes unnoticed while calls wait on it: no frame for
/// [`KEEPALIVE_INTERVAL`], then no answer to the ping for [`KEEPALIVE_TIMEOUT`].
pub const FROZEN_PEER_DETECTION: Duration =
    Duration::from_secs(KEEPALIVE_INTERVAL.as_secs() + KEEPALIVE_TIMEOUT.as_secs());

// Noticed within a third of the shortest timeout class, or the build fails.
const _: () =
    assert!(FROZEN_PEER_DETECTION.as_secs() * 3 <= TimeoutClass::Urgent.duration().as_secs());

/// How TCP targets are dialled.
#[derive(Debug, Clone)]
pub struct DialOptions {
    /// The cluster's policy: which families may be dialled, and in which order.
    pub policy: IpPolicy,
    /// Bound on the whole dial, name resolution excluded. Defaults to 5 s.
    pub connect_timeout: Duration,
    /// Delay before the next address is tried while one is still pending. Defaults to
    /// 250 ms (RFC 8305's Connection Attempt Delay).
    pub attempt_delay: Duration,
    /// The resolver for names; the system's (`/etc/hosts`, `/etc/resolv.conf`) when unset.
    pub resolver: Option<Arc<Resolver>>,
}

impl DialOptions {
    /// The defaults for `policy`.
    pub fn new(policy: IpPolicy) -> Self {
        Self {
            policy,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            attempt_delay: DEFAULT_ATTEMPT_DELAY,
            resolver: None,
        }
    }
}

#[derive(Debug, Clone)]
enum Target {
    Tcp {
        host: Host,
        port: u16,
        options: DialOptions,
    },
    Unix(PathBuf),
    Memory(MemoryConnector),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port, .. } => write!(f, "{host}:{port}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Memory(_) => f.write_str("memory"),
        }
    }
}

/// Reaches one server; clone it freely.
#[derive(Debug, Clone)]
pub struct Connector {
    target: Target,
    tls: Option<ClientTls>,
}

impl Connector {
    /// A TCP server by address or name.
    pub fn tcp(host: Host, port: u16, options: DialOptions) -> Self {
        Self {
            target: Target::Tcp {
                host,
                port,
                options,
            },
            tls: None,
        }
    }

    /// A TCP server by address.
    pub fn tcp_addr(addr: SocketAddr, options: DialOptions) -> Self {
        Self::tcp(Host::Ip(addr.ip()), addr.port(), options)
    }

    /// A Unix socket.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self {
            target: Target::Unix(path.into()),
            tls: None,
        }
    }

    /// An in-memory listener.
    pub fn memory(connector: MemoryConnector) -> Self {
        Self {
            target: Target::Memory(connector),
            tls: None,
        }
    }

    /// Negotiates TLS on every connection.
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The target, for messages: `host:port`, `unix:/path` or `memory`.
    pub fn target(&self) -> String {
        self.target.to_string()
    }

    /// Opens one connection.
    pub async fn connect(&self) -> Result<ClientIo, ConnectError> {
        let (plain, host) = match &self.target {
            Target::Tcp {
                host,
                port,
                options,
            } => {
                let (stream, _) = dial_tcp(host, *port, options).await?;
                let name = match host {
                    Host::Ip(ip) => ip.to_string(),
                    Host::Name(name) => name.as_str().to_owned(),
                };
                (PlainIo::Tcp(stream), Some(name))
            }
            Target::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|source| ConnectError::Unix {
                        path: path.clone(),
                        source,
                    })?;
                (PlainIo::Unix(stream), None)
            }
            Target::Memory(memory) => (memory.connect().await?, None),
        };
        let Some(tls) = &self.tls else {
            return Ok(ClientIo::plain(plain));
        };
        let name = tls
            .server_name_for(host.as_deref())
            .ok_or_else(|| ConnectError::TlsSetup {
                target: self.target(),
                reason: "no server name to verify the certificate against; set one with ClientTls::with_server_name".to_owned(),
            })?;
        let stream = tls
            .connect(name, plain)
            .await
            .map_err(|source| ConnectError::Tls {
                target: self.target(),
                source,
            })?;
        Ok(ClientIo::tls(stream))
    }

    /// A channel that connects now, failing if the first connection fails.
    pub async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        endpoint().connect_with_connector(self.clone()).await
    }

    /// A channel that connects on first use (and reconnects after failures).
    pub fn channel_lazy(&self) -> Channel {
        endpoint().connect_with_connector_lazy(self.clone())
    }
}

/// The HTTP/2 settings of every channel. The URI only names the channel: the connector
/// decides where it goes and does TLS itself, hence `http`.
fn endpoint() -> Endpoint {
    Endpoint::from_static("http://gnt-rpc.invalid")
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<ClientIo>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect().await.map(TokioIo::new) })
    }
}

/// Dials `host:port` as the policy allows, returning the stream and the address used.
pub async fn dial_tcp(
    host: &Host,
    port: u16,
    options: &DialOptions,
) -> Result<(tokio::net::TcpStream, SocketAddr), ConnectError> {
    let target = match host {
        Host::Ip(ip) => format_host_port(*ip, port),
        Host::Name(name) => format!("{name}:{port}"),
    };
    let addresses = addresses_of(host, port, options, &target).await?;
    happy_eyeballs::connect(
        &target,
        &addresses,
        options.attempt_delay,
        options.connect_timeout,
    )
    .await
}

/// The addresses to try, in order: the policy's families only, IPv6 first and the
/// families interleaved (RFC 8305 section 4).
async fn addresses_of(
    host: &Host,
    port: u16,
    options: &DialOptions,
    target: &str,
) -> Result<Vec<SocketAddr>, ConnectError> {
    let ips: Vec<IpAddr> = match host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(name) => {
            let family = match options.policy {
                IpPolicy::Ipv4 => Some(IpFamily::V4),
                IpPolicy::HybridIpv6 => None,
            };
            let resolved = match &options.resolver {
                Some(resolver) => resolver.resolve(name.as_str(), family).await,
                None => match Resolver::system() {
                    Ok(resolver) => resolver.resolve(name.as_str(), family).await,
                    Err(err) => Err(err),
                },
            };
            resolved
                .map_err(|source| ConnectError::Resolve {
                    target: target.to_owned(),
                    source,
                })?
                .addresses()
                .to_vec()
        }
    };
    let allowed = options.policy.dial_families();
    let mut v6 = Vec::new();
    let mut v4 = Vec::new();
    for ip in ips {
        let ip = ip.to_canonical();
        let family = IpFamily::of(&ip);
        if !allowed.contains(&family) {
            return Err(ConnectError::PolicyForbids {
                addr: SocketAddr::new(ip, port),
            });
        }
        match family {
            IpFamily::V6 => v6.push(SocketAddr::new(ip, port)),
            IpFamily::V4 => v4.push(SocketAddr::new(ip, port)),
        }
    }
    Ok(happy_eyeballs::interleave(v6, v4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(policy: IpPolicy) -> DialOptions {
        let mut options = DialOptions::new(policy);
        options.resolver = Some(Arc::new(Resolver::hosts_only(
            "192.0.2.1 both.test\n2001:db8::1 both.test\n192.0.2.2 both.test\n2001:db8::2 both.test\n",
        )));
        options
    }

    async fn addresses(host: &str, policy: IpPolicy) -> Result<Vec<String>, ConnectError> {
        let host = Host::parse(host).unwrap();
        addresses_of(&host, 1811, &options(policy), "target")
            .await
            .map(|a| a.iter().map(ToString::to_string).collect())
    }

    #[tokio::test]
    async fn an_ipv4_cluster_never_selects_an_ipv6_address() {
        assert_eq!(
            addresses("both.test", IpPolicy::Ipv4).await.unwrap(),
            ["192.0.2.1:1811", "192.0.2.2:1811"]
        );
        let err = addresses("2001:db8::1", IpPolicy::Ipv4).await.unwrap_err();
        assert!(matches!(err, ConnectError::PolicyForbids { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_hybrid_cluster_interleaves_families_starting_with_ipv6() {
        assert_eq!(
            addresses("both.test", IpPolicy::HybridIpv6).await.unwrap(),
            [
                "[2001:db8::1]:1811",
                "192.0.2.1:1811",
                "[2001:db8::2]:1811",
                "192.0.2.2:1811"
            ]
        );
        // Secondary-network (IPv4) literals stay dialable in a hybrid cluster.
        assert_eq!(
            addresses("192.0.2.9", IpPolicy::HybridIpv6).await.unwrap(),
            ["192.0.2.9:1811"]
        );
        // A v4-mapped literal is the IPv4 address it stands for.
        assert_eq!(
            addresses("::ffff:192.0.2.9", IpPolicy::Ipv4).await.unwrap(),
            ["192.0.2.9:1811"]
        );
    }

    #[tokio::test]
    async fn unresolvable_names_fail_with_the_resolver_error() {
        let err = addresses("nosuch.test", IpPolicy::HybridIpv6)
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectError::Resolve { .. }), "{err}");
    }
}
