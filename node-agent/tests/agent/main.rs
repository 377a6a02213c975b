//! End-to-end tests of the node agent, in the network-namespace lab (needs root): the agent
//! in-process inside a lab host, and the real `gnt-noded` binary.
//!
//! Run with `cargo test -p gnt-node-agent --test agent`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is a failed assertion"
)]

mod binary;
mod join;
mod member;
mod renewal;
mod support;
mod token;
