//! End-to-end tests that run the real binaries on multi-host topologies built from network
//! namespaces, grpcurl tests, fault tests, and the benchmark harness.
//!
//! Not built yet (issues 3 to 6). This crate deliberately exports nothing until it does.
