//! The node agent, `gnt-noded`.
//!
//! Started without ssconf, the agent is in **bootstrap mode**: it serves only Join, health,
//! reflection and diagnostics, over TLS with a self-signed certificate for a key it
//! generated, on a dual-stack wildcard (or IPv4 where the host has no IPv6). One
//! successful Join writes the cluster state and switches the same process to **member
//! mode**: the node procedures of `gnt.node.v1.NodeAgent`, over mutual TLS with the cluster
//! CA, on the address Join gave (or, after a restart, the one ssconf's policy implies).
//! `LeaveCluster` wipes the state and goes back to bootstrap mode.
//!
//! - [`config`]: the command line;
//! - [`state`]: the state directory and the mode it implies;
//! - [`daemon`]: the agent's life: bootstrap, member, and back;
//! - [`join_client`]: the master's side of Join (the master daemon and the tests use it);
//! - `bootstrap` and `member`: the two services.
//!
//! Security of the Join exchange, and what the agent trusts: `docs/security.md`.

mod bootstrap;
pub mod config;
pub mod daemon;
pub mod join_client;
mod member;
pub mod process;
pub mod state;

pub use bootstrap::{JoinRefusal, Joined};
pub use config::AgentConfig;
pub use daemon::{AgentError, AgentStatus, run};
pub use member::version;
