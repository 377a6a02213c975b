//! The node agent, `gnt-noded`: bootstrap mode (the one-shot Join) until the node has
//! ssconf, member mode (node procedures over mutual TLS) afterwards.
//!
//! Not built yet (issue 4). This crate deliberately exports nothing, and ships no binary,
//! until it does.
