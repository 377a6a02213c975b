//! The core of gnt-rpc: what every daemon and tool needs to agree on before any RPC happens.
//!
//! - [`policy`]: the cluster's IP-version policy (pure IPv4, or hybrid IPv6/IPv4), its
//!   mapping to Ganeti's version (4/6) and address-family (2/10) numbers, the wildcard a
//!   daemon binds, the netmask bounds and the address family names resolve in.
//! - [`node`]: a node's name and addresses, and the policy's one rule for those addresses
//!   (primary of the primary family, secondary IPv4, mandatory in hybrid mode).
//! - [`netutils`]: IPv6-aware network helpers with Ganeti's semantics and without its bugs:
//!   strict address parsing, loopback and network membership, `host:port` with brackets,
//!   hostname normalisation, "does this host own this address", interface addresses, TCP
//!   ping, and name resolution through hickory-resolver that honours `/etc/hosts`.
//! - [`ssconf`]: Ganeti-compatible `ssconf_<key>` files, replaced as a whole set atomically,
//!   with typed reads.
//! - [`error`]: the project's error vocabulary ([`ErrorKind`]) and its mapping to gRPC status
//!   codes and CLI exit codes.
//! - [`fs_atomic`]: crash-safe file replacement, shared by ssconf and the key stores.
//! - [`join`]: join tokens, the HMAC proofs that bind them to one TLS session, and the
//!   master's offer (the exchange itself is `gnt_transports::join`).
//! - [`runner`]: the fan-out runner: one procedure on many nodes, one result per node.
//! - [`wire`]: the one place where these types meet their `gnt-proto` messages.
//! - [`defaults`] (the node port, the state directory) and [`clock`] (Unix seconds), shared
//!   by every daemon and tool.
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

pub mod clock;
pub mod defaults;
pub mod digest;
pub mod error;
pub mod fs_atomic;
pub mod join;
pub mod netutils;
pub mod node;
pub mod policy;
pub mod runner;
pub mod ssconf;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod wire;

pub use defaults::{DEFAULT_NODE_PORT, DEFAULT_STATE_DIR};
pub use error::{Classify, ErrorKind};
pub use policy::{IpFamily, IpPolicy};
