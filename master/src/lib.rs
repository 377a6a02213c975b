//! The master: cluster configuration and PKI, cluster init, node add and remove with
//! Ganeti's checks, fan-out RPC to the nodes, cluster verify, and the `gnt` CLI.
//!
//! Not built yet (issue 5). This crate deliberately exports nothing, and ships no binary,
//! until it does.
