//! End-to-end tests of gnt-rpc, one module per area, in one test binary.
//!
//! Run with `cargo test -p gnt-integration --test e2e`. The lab tests need root.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is a failed assertion"
)]

mod grpcurl;
mod install;
mod lab_network;
mod support;
mod transports;
