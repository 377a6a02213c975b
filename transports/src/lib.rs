//! How every gnt-rpc daemon listens and how every client dials, so that the cluster's
//! IP-version policy means the same thing on every host.
//!
//! **Listeners** ([`Listener`]) are one type with three kinds, each a stream of
//! [`Connection`]s for tonic's `serve_with_incoming_shutdown`, each reporting its peer
//! ([`PeerInfo`], also in every request's extensions):
//!
//! - *TCP by policy*: `0.0.0.0` for an IPv4 cluster; `[::]` with `IPV6_V6ONLY` explicitly
//!   off for a hybrid one, so it takes IPv4 and IPv6 whatever `net.ipv6.bindv6only` says;
//!   or one explicit address. IPv4 peers of a dual-stack socket are reported as IPv4.
//! - *Unix domain socket*: checked directory, mode set before the socket is reachable,
//!   stale files replaced only when dead; peers identified by process credentials.
//! - *In memory*: an in-process pipe for tests and embedding.
//!
//! Each holds a bounded number of connections, of handshakes in progress and of connections
//! per peer ([`ConnectionLimits`], from the open-file limit by default): a flood of idle
//! connections, half-sent handshakes or completed ones loses its own to newcomers, those
//! the daemon protects ([`Protected`]) are never dropped, and running out of descriptors
//! does not stall accepting.
//!
//! **Connectors** ([`Connector`]) reach the same kinds from a tonic channel. TCP follows
//! the policy: an IPv4 cluster never dials IPv6; a name with addresses of both families is
//! raced Happy-Eyeballs style (IPv6 first, IPv4 250 ms later, first to connect wins).
//!
//! **TLS** ([`ServerTls`], [`ClientTls`]) layers over any kind, with rustls and ring only:
//! PEM files, client certificates required / optional / off, ALPN `h2`, the verified peer
//! identity and the session's exporter value (for channel binding) in [`TlsPeer`].
//!
//! **Serving** ([`GrpcServer`]) adds reflection (v1alpha for grpcurl 1.8.6, and v1), health
//! (SERVING from the start, NOT_SERVING from the moment shutdown begins), diagnostics
//! (`gnt.diag.v1.Diagnostics/WhoAmI`), a shutdown that ends within a grace period, and
//! INVALID_ARGUMENT for a request that does not decode (tonic says INTERNAL).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use gnt_core::policy::IpPolicy;
//! use gnt_transports::{GrpcServer, Listener};
//!
//! let listener = Listener::tcp_for_policy(IpPolicy::HybridIpv6, 1811)?; // [::]:1811, dual-stack
//! let server = GrpcServer::new("example").start(vec![listener]).await?;
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! **Join** ([`join`]) is here because it is a protocol of the TLS session (both proofs are
//! bound to its exporter value): both halves, the master's and the node's, side by side,
//! with the node state directory a committed offer fills. **Daemon plumbing**
//! ([`daemon`]: logging, runtime, stop signals, exit codes) is written once for both
//! daemons and the tools.
//!
//! This crate does not decide *which* certificates a cluster uses or what a caller may do:
//! that is the daemons' business, with the identity this crate hands them.

mod calls;
mod channel;
mod connect;
pub mod daemon;
mod diag;
mod error;
mod failure;
mod gate;
mod io;
pub mod join;
mod listen;
mod malformed;
mod peer;
mod serve;
mod tls;

pub use channel::{DirectChannel, PeerFrozen, ResponseBody};
pub use connect::{
    Connector, DEFAULT_ATTEMPT_DELAY, DEFAULT_CONNECT_TIMEOUT, DialOptions, FROZEN_PEER_DETECTION,
    KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, dial_tcp,
};
pub use error::{AttemptFailure, ConnectError, ListenError, ServeError, TlsConfigError};
pub use failure::{call_failure, code_name, from_connect};
pub use gate::{CallInfo, Gated};
pub use gnt_core::digest::{fingerprint, parse_fingerprint, sha256};
pub use io::{ClientIo, Connection};
pub use listen::{ConnectionLimits, Incoming, Listener, MemoryConnector, Protected};
pub use peer::{
    CHANNEL_BINDING_LABEL, ListenAddr, PeerAddr, PeerIdentity, PeerInfo, TlsPeer, canonical,
};
pub use serve::{GrpcServer, RunningServer, ServerSettings, Shutdown};
pub use tls::{
    ClientAuth, ClientTls, DEFAULT_HANDSHAKE_TIMEOUT, Identity, KeyChoice, PROTOCOL_VERSIONS,
    PairError, PairFiles, Pem, ServerTls, check_issued_by, provider,
};
