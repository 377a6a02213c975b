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
//! - [`config`]: the command line, and where the join token comes from;
//! - [`daemon`]: the agent's life: bootstrap, member, and back;
//! - `member`: the node procedures;
//! - `netdev`: the host's network devices (the cluster IP's addresses and announcements).
//!
//! The Join exchange (both halves) and the state directory it fills are
//! `gnt_transports::join`, shared with the master; what the agent trusts is in
//! `docs/security.md`.

pub mod config;
pub mod daemon;
mod member;
mod netdev;

pub use config::AgentConfig;
pub use daemon::{AgentError, AgentStatus, run};
pub use member::version;
