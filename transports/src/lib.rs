//! Listeners and connectors behind one interface: TCP bound by the cluster's IP-version
//! policy, Unix domain sockets, in-memory pipes, and TLS over any of them.
//!
//! Not built yet (issue 3). This crate deliberately exports nothing until it does.
