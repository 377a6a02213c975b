//! The core of gnt-rpc: what every daemon and tool needs to agree on before any RPC happens.
//!
//! - [`policy`]: the cluster's IP-version policy (pure IPv4, or hybrid IPv6/IPv4), its
//!   mapping to Ganeti's version (4/6) and address-family (2/10) numbers, the wildcard a
//!   daemon binds, the netmask bounds and the address family names resolve in.
//! - [`netutils`]: IPv6-aware network helpers with Ganeti's semantics and without its bugs:
//!   strict address parsing, loopback and network membership, `host:port` with brackets,
//!   hostname normalisation, "does this host own this address", interface addresses, TCP
//!   ping, and name resolution through hickory-resolver that honours `/etc/hosts`.
//! - [`ssconf`]: Ganeti-compatible `ssconf_<key>` files, replaced as a whole set atomically,
//!   with typed reads.
//! - [`error`]: the project's error vocabulary ([`ErrorKind`]) and its mapping to gRPC status
//!   codes and CLI exit codes.
//! - [`fs_atomic`]: crash-safe file replacement, shared by ssconf and the key stores.
//! - [`join`]: join tokens, and the HMAC proofs that bind them to one TLS session.
//! - [`runner`]: the fan-out runner: one procedure on many nodes, one result per node.
//!
//! This crate does no RPC itself and opens no listening socket; listeners and connectors
//! live in `gnt-transports`.
//!
//! ```
//! use gnt_core::{netutils::HostPort, policy::IpPolicy};
//!
//! let policy: IpPolicy = "6".parse().unwrap();
//! assert_eq!(policy.bind_wildcard().to_string(), "::");
//! let target = HostPort::parse("[2001:db8::1]:1811").unwrap();
//! assert_eq!(target.to_string(), "[2001:db8::1]:1811");
//! ```

pub mod error;
pub mod fs_atomic;
pub mod join;
pub mod netutils;
pub mod policy;
pub mod runner;
pub mod ssconf;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{Classify, ErrorKind};
pub use policy::{IpFamily, IpPolicy};
