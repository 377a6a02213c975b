//! The gnt-rpc wire protocol: messages and gRPC services generated from `proto/**/*.proto`.
//!
//! Packages are versioned (`gnt.node.v1`, ...); a breaking change gets a new package, never
//! an edit of a published one. The modules mirror the packages:
//!
//! - [`cluster::v1`]: types shared by the other packages (policy, node addresses, ssconf set);
//! - [`node::v1`]: the node agent's member API, called by the master over mutual TLS;
//! - [`bootstrap::v1`]: the one-shot Join that turns a fresh node into a member;
//! - [`master::v1`]: the master daemon's API, used by the `gnt` CLI;
//! - [`diag::v1`]: diagnostics every daemon serves (how does the server see the caller).
//!
//! [`FILE_DESCRIPTOR_SET`] is the encoded descriptor set of all of them, with source comments,
//! for server reflection: `grpcurl describe` shows the documentation written in the `.proto`
//! files. This crate holds no logic; conversions to domain types live with the domain types.

pub mod codec;

/// Version of the node protocol spoken by this build: the master and every node must agree.
pub const NODE_PROTOCOL_VERSION: u32 = 1;

/// Encoded `google.protobuf.FileDescriptorSet` of every gnt-rpc package and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gnt_descriptor");

/// Shared types: `gnt.cluster.*`.
pub mod cluster {
    /// Package `gnt.cluster.v1`.
    pub mod v1 {
        #![allow(missing_docs, unreachable_pub, clippy::all)]
        tonic::include_proto!("gnt.cluster.v1");
    }
}

/// The node agent's member API: `gnt.node.*`.
pub mod node {
    /// Package `gnt.node.v1`.
    pub mod v1 {
        #![allow(missing_docs, unreachable_pub, clippy::all)]
        tonic::include_proto!("gnt.node.v1");
    }
}

/// The node agent's bootstrap API: `gnt.bootstrap.*`.
pub mod bootstrap {
    /// Package `gnt.bootstrap.v1`.
    pub mod v1 {
        #![allow(missing_docs, unreachable_pub, clippy::all)]
        tonic::include_proto!("gnt.bootstrap.v1");
    }
}

/// Diagnostics served by every daemon: `gnt.diag.*`.
pub mod diag {
    /// Package `gnt.diag.v1`.
    pub mod v1 {
        #![allow(missing_docs, unreachable_pub, clippy::all)]
        tonic::include_proto!("gnt.diag.v1");
    }
}

/// The master daemon's API: `gnt.master.*`.
pub mod master {
    /// Package `gnt.master.v1`.
    pub mod v1 {
        #![allow(missing_docs, unreachable_pub, clippy::all)]
        tonic::include_proto!("gnt.master.v1");
    }
}

#[cfg(test)]
mod descriptor_tests;
