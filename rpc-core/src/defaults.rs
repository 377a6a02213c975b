//! Defaults every daemon and tool of a cluster must agree on, written once.

/// TCP port of the node agents' APIs (bootstrap and member): Ganeti's `DEFAULT_NODED_PORT`.
pub const DEFAULT_NODE_PORT: u16 = 1811;

/// Where a host keeps its gnt-rpc state (the node agent's ssconf, keys and certificates;
/// the master's configuration under `master/`) unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/gnt-rpc";
