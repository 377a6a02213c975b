//! The master: the cluster configuration and PKI, `gnt cluster init`, the master daemon
//! `gnt-masterd` and its API, node add and remove with Ganeti's checks, fan-out calls to the
//! nodes, cluster verify, and the `gnt` CLI.
//!
//! - [`paths`]: where the master keeps its files (`<state>/master/`);
//! - [`config`]: the configuration file and the one-change-at-a-time handle on it;
//! - [`pki`]: the cluster CA and the certificates it issues;
//! - [`identity`]: the CA that issues and what the channels present, renewable live;
//! - [`master`]: the master as the daemon holds it (configuration, CA, channels, resolver);
//! - [`operations`]: what the master does, one module per operation;
//! - [`jobs`]: operations that change the cluster, recorded and run one at a time;
//! - [`channels`]: one HTTP/2 channel per node;
//! - [`procedure`]: any node procedure by name, with JSON in and out (`gnt rpc call`);
//! - [`service`]: the gRPC master API;
//! - [`daemon`]: the `gnt-masterd` daemon;
//! - [`cli`]: the `gnt` CLI.
//!
//! The Join exchange, the node state directory `cluster init` fills for the master's own
//! node, and daemon plumbing come from `gnt_transports`; this crate does not depend on the
//! node agent.

pub mod channels;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod error;
pub mod identity;
pub mod jobs;
pub mod master;
pub mod operations;
pub mod paths;
pub mod pki;
pub mod procedure;
pub mod service;
