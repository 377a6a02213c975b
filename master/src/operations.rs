//! What the master does to the cluster, one module per operation, each a readable list of
//! named steps:
//!
//! | module | operation | Ganeti |
//! |---|---|---|
//! | [`init`] | `gnt cluster init` (no daemon yet) | `InitCluster` |
//! | [`token`] | `gnt node token create`, and checking a token | (kubeadm's join tokens) |
//! | [`node_add`] | `gnt node add`: checks, Join, version check, commit, distribute | `LUNodeAdd` |
//! | [`node_remove`] | `gnt node remove` | `LUNodeRemove` |
//! | [`node_modify`] | `gnt node modify --offline/--drained/--master-candidate` | `LUNodeSetParams` |
//! | [`node_secondary`] | `gnt node modify --secondary-ip`: checks, the certificate reissued, commit | `LUNodeSetParams` |
//! | [`candidates`] | master candidates: certifying one, the pool, their master copies | `AdjustCandidatePool`, `MaintainCandidatePool` |
//! | [`probe`] | is a node a member of this cluster? (adopting, recovery) | (`gnt node add --readd`'s check) |
//! | [`redistribute`] | ssconf to every online node after a change, and `gnt cluster redist-conf` | `RedistributeAncillaryFiles`, `LUClusterRedistConf` |
//! | [`converge`] | bringing lagging nodes' ssconf up to date, in the background | |
//! | [`failover`] | `gnt cluster master-failover`, run on a candidate: the vote, the newest copy, the new epoch | `bootstrap.MasterFailover` |
//! | [`destroy`] | `gnt cluster destroy --yes-do-it`: the cluster IP off, the master's node leaves, the master directory removed | `LUClusterDestroy`, `FinalizeClusterDestroy` |
//! | [`copy_file`] | `gnt cluster copyfile`: a file of the master host to the nodes, over `UploadFile` | `LUClusterCopyFile` (`gnt-cluster copyfile`) |
//! | [`verify`] | `gnt cluster verify`: the network test, every node's ssconf serial | `LUClusterVerifyGroup` |
//! | [`rpc_call`] | fan-out calls, and `gnt rpc call` | `rpc.RpcRunner` |
//! | [`renew_crypto`] | `gnt cluster renew-crypto`: node keys, master certificate, cluster CA, rolled over with no call refused | `LUClusterRenewCrypto` |
//! | [`master_ip`] | the cluster IP on the master: activate, deactivate, `gnt cluster modify --master-netmask` | `LUClusterActivateMasterIp`, `LUClusterDeactivateMasterIp`, `LUClusterSetParams` |
//!
//! Every change runs as a job ([`crate::jobs`]), one at a time, so two operator commands
//! never interleave; the configuration itself is locked only for each commit, so reading it
//! never waits for a Join. A change is committed only after everything it depends on
//! succeeded, so a failure leaves the configuration as it was. Every commit, a join
//! token's included, is followed by a redistribution, so a node that took it holds the
//! configuration's serial; nodes that did not are the converger's.

pub mod candidates;
pub mod cluster_modify;
pub mod converge;
pub mod copy_file;
pub mod destroy;
pub mod failover;
pub mod init;
pub mod master_ip;
pub mod node_add;
pub mod node_modify;
pub mod node_readd;
pub mod node_remove;
pub mod node_secondary;
pub mod probe;
pub mod redistribute;
pub mod renew_crypto;
pub mod rpc_call;
pub mod token;
pub mod verify;

/// The result of a change: the new serial, and problems that did not undo it.
#[derive(Debug, Clone)]
pub struct Changed {
    /// Configuration serial after the change.
    pub serial: u64,
    /// Problems after the commit.
    pub warnings: Vec<String>,
}

/// UTC text (RFC 3339) of a Unix time, for messages and the CLI.
pub fn utc(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}
