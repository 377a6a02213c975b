//! End-to-end tests of the master with the real binaries (`gnt`, `gnt-masterd`,
//! `gnt-noded`) in lab namespaces (needs root). `cargo test --workspace` builds the binaries
//! first.
//!
//! Run with `cargo test -p gnt-master --test cluster` after `cargo build --workspace --bins`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is a failed assertion"
)]

mod certificates;
mod convergence;
mod copyfile;
mod crash;
mod destroy;
mod failover;
mod faults;
mod flood;
mod init;
mod jobs;
mod lifecycle;
mod master_ip;
mod modify;
mod operations;
mod operator;
mod readd;
mod refusals;
mod renewal;
mod renewal_crash;
mod support;
mod tokens;
