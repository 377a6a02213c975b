//! The refusals and failures of the master's operations. Node-add messages follow Ganeti's
//! LUNodeAdd word for word where the operator guide quotes them; the rest follow the
//! project's rule (`docs/design.md`, "Messages").

use std::net::IpAddr;

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::netutils::{Hostname, NameError, ResolveError};
use gnt_core::node::NodeAddrsError;
use gnt_core::runner::CallFailure;
use gnt_core::ssconf::SsconfError;
use gnt_transports::TlsConfigError;
use gnt_transports::join::JoinError;

use crate::config::ConfigError;
use crate::jobs::record::JobStoreError;
use crate::operations::master_ip::MasterIpError;
use crate::operations::token::TokenError;
use crate::pki::PkiError;
use crate::procedure::ProcedureError;

/// A master operation that was refused or failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// A name is invalid or does not resolve in the cluster family.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The node exists already (Ganeti's words).
    #[error(
        "Node {0} is already in the configuration; to take it back in (e.g. after a reinstall), use `gnt node add --readd`"
    )]
    NodeExists(Hostname),
    /// No such node (Ganeti's words, and where to look).
    #[error("Node {0} is not in the configuration; `gnt node list` shows the nodes")]
    UnknownNode(String),
    /// No such node, but one with a close name.
    #[error("Node {typed} is not in the configuration; did you mean {close}?")]
    UnknownNodeSuggest {
        /// What was typed.
        typed: String,
        /// The close name.
        close: String,
    },
    /// A short name of several nodes.
    #[error("{typed} could be any of {nodes}: give the full name")]
    AmbiguousNode {
        /// What was typed.
        typed: String,
        /// The nodes it could be.
        nodes: String,
    },
    /// A hybrid cluster needs `-s` (Ganeti's words).
    #[error(
        "When using a IPv6 primary address, a valid IPv4 address must be given as secondary (-s/--secondary-ip)"
    )]
    SecondaryRequired,
    /// The secondary is not IPv4 (Ganeti's words).
    #[error("Secondary IP ({0}) needs to be a valid IPv4 address")]
    SecondaryNotIpv4(String),
    /// Node addresses that break the policy's rule otherwise.
    #[error(transparent)]
    Addresses(NodeAddrsError),
    /// An address is already used by another node (Ganeti's words).
    #[error(
        "New node ip address(es) conflict with existing node {node} ({address} is already its address)"
    )]
    AddressConflict {
        /// The node using it.
        node: Hostname,
        /// The address.
        address: IpAddr,
    },
    /// The master is single-homed and the new node is not (Ganeti's words).
    #[error("The master has no secondary ip but the new node has one")]
    MasterSingleHomed,
    /// The master is dual-homed and the new node is not (Ganeti's words).
    #[error("The master has a secondary ip but the new node doesn't have one (give it with -s)")]
    MasterDualHomed,
    /// The primary does not answer (Ganeti's words, and what to check).
    #[error(
        "Node not reachable by ping: nothing answered at {address} port {port}; is gnt-noded running there, and does the name resolve to the right address?"
    )]
    PrimaryUnreachable {
        /// The address.
        address: IpAddr,
        /// The port.
        port: u16,
    },
    /// The secondary does not answer from the master's secondary (Ganeti's words).
    #[error(
        "Node secondary ip not reachable by TCP based ping to node daemon port: {address} port {port} from {source_addr}: {detail}"
    )]
    SecondaryUnreachable {
        /// The node's secondary.
        address: IpAddr,
        /// The port.
        port: u16,
        /// The master's secondary.
        source_addr: IpAddr,
        /// What the ping found.
        detail: String,
    },
    /// The join token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The Join failed.
    #[error("joining {node} failed")]
    Join {
        /// The node.
        node: Hostname,
        /// Why (boxed: a refusal carries the node's whole status).
        #[source]
        source: Box<JoinError>,
    },
    /// The node stopped answering during the Join.
    #[error(
        "{node} did not finish the Join within {seconds}s, so whether it joined is unknown; once it answers, run `gnt node add` again (a node that joined this cluster is taken in as it is)"
    )]
    JoinTimeout {
        /// The node.
        node: Hostname,
        /// The limit.
        seconds: u64,
    },
    /// The node joined but does not answer over mutual TLS (Ganeti's words, and how to
    /// reset the node).
    #[error(
        "Can't get version information from node {node}: {failure}; it joined but was not added: once it answers, run `gnt node add` again (a node that joined this cluster is taken in as it is)"
    )]
    NoVersion {
        /// The node.
        node: Hostname,
        /// The last attempt's failure.
        failure: CallFailure,
    },
    /// The node speaks another protocol (Ganeti's words).
    #[error("Version mismatch master version {master}, node version {node_version} on {node}")]
    VersionMismatch {
        /// The node.
        node: Hostname,
        /// Ours.
        master: u32,
        /// Its.
        node_version: u32,
    },
    /// The master node cannot be removed.
    #[error("cannot remove the master node")]
    RemoveMaster,
    /// The master node cannot be marked offline.
    #[error("cannot mark the master node offline")]
    OfflineMaster,
    /// The master is re-added by failover, not by `--readd` (Ganeti's words).
    #[error("Cannot readd the master node")]
    ReaddMaster,
    /// A re-add that gives the node another secondary (Ganeti's words, and what to do).
    #[error(
        "Readded node doesn't have the same IP address configuration as before: its secondary is {recorded}, not {given}; change it with `gnt node modify --secondary-ip` once the node is back"
    )]
    ReaddOtherSecondary {
        /// The secondary the configuration lists.
        recorded: IpAddr,
        /// The one given.
        given: IpAddr,
    },
    /// A re-add without a token, of a node that cannot prove it is still a member.
    #[error(
        "{node} does not prove it is a member of this cluster ({why}); if it was reinstalled, start its gnt-noded with a join token (`gnt node token create`) and give that token with --join-token"
    )]
    ReaddNeedsToken {
        /// The node.
        node: Hostname,
        /// What the check found.
        why: String,
    },
    /// A re-add of a node presenting a certificate of our CA the configuration does not
    /// list (an old key, from a restored state).
    #[error(
        "{node} presents certificate {presented}, which is not the one the configuration lists: it runs from an older state (a restored backup?); on {node}, stop gnt-noded and empty its state directory (all but join-ledger), start it with a new join token, and re-add it with --join-token"
    )]
    ReaddOldCertificate {
        /// The node.
        node: Hostname,
        /// The fingerprint it presents.
        presented: String,
    },
    /// A re-add with a token of a node a CA renewal still waits for.
    #[error(
        "{0} is waited for by the renewal of the cluster CA, so a new Join would leave it unreachable; remove it with `gnt node remove`, then add it with `gnt node add`"
    )]
    ReaddDuringRollover(Hostname),
    /// A token lifetime out of bounds.
    #[error(
        "invalid token lifetime: {}: use 1 minute to 30 days",
        in_largest_unit(*seconds)
    )]
    TokenLifetime {
        /// The lifetime asked for, in seconds.
        seconds: u64,
    },
    /// A negative token lifetime.
    #[error("invalid token lifetime: must be positive")]
    NegativeTokenLifetime,
    /// The configuration failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The PKI failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// A file could not be copied to the nodes.
    #[error(transparent)]
    CopyFile(#[from] crate::operations::copy_file::CopyFileError),
    /// A file of the master directory failed.
    #[error(transparent)]
    Fs(#[from] gnt_core::fs_atomic::FsError),
    /// The state directory the master shares with its node agent is unusable.
    #[error(transparent)]
    State(#[from] gnt_transports::join::StateError),
    /// A certificate and its key could not be replaced.
    #[error(transparent)]
    Pair(#[from] gnt_transports::PairError),
    /// The resolver configuration cannot be read.
    #[error(transparent)]
    Resolver(#[from] ResolveError),
    /// ssconf could not be built.
    #[error(transparent)]
    Ssconf(#[from] SsconfError),
    /// A procedure call could not be prepared.
    #[error(transparent)]
    Procedure(#[from] ProcedureError),
    /// A job's step could not be written down, so it was not taken.
    #[error("cannot record the job's progress")]
    JobRecord(#[source] JobStoreError),
    /// No such job.
    #[error("job {0} does not exist; `gnt job list` shows the jobs")]
    UnknownJob(u64),
    /// The master is stopping and takes no more jobs.
    #[error("the master daemon is stopping; submit the job again once it runs")]
    Stopping,
    /// A cluster IP operation was refused or failed.
    #[error(transparent)]
    MasterIp(#[from] MasterIpError),
    /// A node that says it is a member of this cluster could not be shown to be one.
    #[error(
        "{node} says it already belongs to this cluster, but {why}; on {node}, stop gnt-noded and empty its state directory (all but join-ledger), then retry"
    )]
    NotAdoptable {
        /// The node.
        node: Hostname,
        /// What the check found.
        why: String,
    },
    /// A node to become a master candidate did not prove its key over mutual TLS.
    #[error("{node} cannot become a master candidate: {why}")]
    NotCertifiable {
        /// The node.
        node: Hostname,
        /// What the check found.
        why: String,
    },
    /// A modify that changes nothing.
    #[error("give --offline, --drained, --master-candidate or --secondary-ip: nothing to change")]
    NoFlags,
    /// Two states at once (Ganeti's words).
    #[error("Can't set the node into more than one state at the same time")]
    TwoStates,
    /// The master's flags change only by failover (Ganeti's words).
    #[error("The master role can be changed only via master-failover")]
    MasterRole,
    /// An offline node cannot be a master candidate.
    #[error("{0} is offline: a master candidate must be online; mark it online first")]
    OfflineCandidate(Hostname),
    /// A drained node cannot be a master candidate.
    #[error(
        "{0} is drained: a drained node is never a master candidate; undrain it first (--drained no)"
    )]
    DrainedCandidate(Hostname),
    /// The master node cannot be drained.
    #[error("cannot mark the master node drained")]
    DrainedMaster,
    /// A secondary address given with flags.
    #[error("give --secondary-ip alone: a change of address is a job of its own")]
    SecondaryWithFlags,
    /// A new secondary in a single-homed cluster: homing must match the master's.
    #[error(
        "The master has no secondary ip: this cluster is single-homed, so every node's secondary ip is its primary ip and cannot be changed"
    )]
    SingleHomedCluster,
    /// A secondary equal to the node's primary in a dual-homed cluster (Ganeti's words).
    #[error(
        "Cannot set the secondary IP to be the same as the primary IP on a multi-homed cluster ({0} is the node's primary ip)"
    )]
    SecondaryIsPrimary(IpAddr),
    /// The master's new secondary is not an address of the master host.
    #[error(
        "You gave {0} as the master's secondary IP, but it does not belong to this host: add it to one of its interfaces first"
    )]
    SecondaryNotOwned(IpAddr),
    /// A node's certificate could not be reissued for its new secondary address.
    #[error(
        "{node}'s certificate was not reissued for its new secondary ip ({why}); its secondary ip is unchanged: run the change again"
    )]
    NotReissued {
        /// The node.
        node: Hostname,
        /// Why.
        why: String,
    },
    /// A pool size of zero.
    #[error("the candidate pool size must be at least 1 (the master is always a candidate)")]
    EmptyCandidatePool,
    /// This daemon is no longer the master.
    #[error(
        "this node is no longer the master: {reason}; gnt-masterd stands down (run `gnt cluster master-failover` here to take the role back)"
    )]
    NotMaster {
        /// What showed it.
        reason: String,
    },
    /// Not while any node but the master is in the cluster (Ganeti's words, then which
    /// nodes, and what to do).
    #[error("{}", crate::operations::destroy::still_nodes(nodes))]
    NodesLeft {
        /// The nodes besides the master.
        nodes: Vec<String>,
    },
    /// A job queued behind a destroy that succeeded.
    #[error("the cluster was destroyed by an earlier job; gnt-masterd is stopping")]
    Destroyed,
    /// The master's own node did not leave, so nothing of the cluster was removed.
    #[error(
        "the master's node {node} did not leave the cluster ({reason}); nothing was removed; fix that, then run `gnt cluster destroy --yes-do-it` again"
    )]
    MasterNotLeft {
        /// The master node.
        node: Hostname,
        /// Why.
        reason: String,
    },
    /// `renew-crypto` with nothing to renew.
    #[error(
        "give --new-node-certificates, --new-master-certificate or --new-cluster-certificate: nothing to renew"
    )]
    NothingToRenew,
    /// A renewal waits for nodes; another cannot start.
    #[error(
        "the certificate renewal started {since} still waits for {nodes}: bring them back online (it goes on by itself) or remove them (`gnt node remove`), then renew again"
    )]
    RenewalWaits {
        /// When it started.
        since: String,
        /// The nodes it waits for.
        nodes: String,
    },
    /// The master's own node could not make its new key.
    #[error("the master's node could not make a new key: {why}")]
    MasterNodeKey {
        /// Why.
        why: String,
    },
    /// A certificate could not be issued for a node.
    #[error("cannot certify the node: {0}")]
    Issue(String),
}

impl Classify for MasterError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::SecondaryRequired
            | Self::SecondaryNotIpv4(_)
            | Self::MasterSingleHomed
            | Self::MasterDualHomed
            | Self::TokenLifetime { .. }
            | Self::NegativeTokenLifetime => ErrorKind::WrongInput,
            Self::Addresses(e) => e.kind(),
            Self::NodeExists(_) => ErrorKind::AlreadyExists,
            Self::UnknownNode(_) | Self::UnknownNodeSuggest { .. } => ErrorKind::UnknownEntity,
            Self::AmbiguousNode { .. } => ErrorKind::NotUnique,
            Self::AddressConflict { .. } => ErrorKind::NotUnique,
            Self::PrimaryUnreachable { .. }
            | Self::SecondaryUnreachable { .. }
            | Self::NoVersion { .. } => ErrorKind::Environment,
            Self::JoinTimeout { .. } => ErrorKind::Timeout,
            Self::VersionMismatch { .. }
            | Self::RemoveMaster
            | Self::OfflineMaster
            | Self::ReaddMaster
            | Self::ReaddNeedsToken { .. }
            | Self::ReaddOldCertificate { .. }
            | Self::ReaddDuringRollover(_) => ErrorKind::WrongState,
            Self::ReaddOtherSecondary { .. } => ErrorKind::WrongInput,
            Self::Name(e) => e.kind(),
            Self::Token(e) => e.kind(),
            Self::Join { source, .. } => source.kind(),
            Self::Config(e) => e.kind(),
            Self::Pki(e) => e.kind(),
            Self::Tls(e) => e.kind(),
            Self::Pair(e) => e.kind(),
            Self::Fs(e) => e.kind(),
            Self::State(e) => e.kind(),
            Self::CopyFile(e) => e.kind(),
            Self::Resolver(e) => e.kind(),
            Self::Ssconf(e) => e.kind(),
            Self::Procedure(e) => e.kind(),
            Self::JobRecord(e) => e.kind(),
            Self::UnknownJob(_) => ErrorKind::UnknownEntity,
            Self::Stopping => ErrorKind::Unavailable,
            Self::NotAdoptable { .. }
            | Self::NotCertifiable { .. }
            | Self::MasterRole
            | Self::OfflineCandidate(_)
            | Self::DrainedCandidate(_)
            | Self::DrainedMaster
            | Self::NotMaster { .. }
            | Self::NodesLeft { .. }
            | Self::Destroyed
            | Self::RenewalWaits { .. } => ErrorKind::WrongState,
            Self::MasterNotLeft { .. } => ErrorKind::Unavailable,
            Self::NothingToRenew => ErrorKind::WrongInput,
            Self::MasterNodeKey { .. } | Self::SecondaryNotOwned(_) | Self::NotReissued { .. } => {
                ErrorKind::Environment
            }
            Self::Issue(_) => ErrorKind::Internal,
            Self::EmptyCandidatePool
            | Self::NoFlags
            | Self::TwoStates
            | Self::SecondaryWithFlags
            | Self::SingleHomedCluster
            | Self::SecondaryIsPrimary(_) => ErrorKind::WrongInput,
            Self::MasterIp(e) => e.kind(),
        }
    }
}

/// The policy's address rule, refused in Ganeti's node-add words.
impl From<NodeAddrsError> for MasterError {
    fn from(error: NodeAddrsError) -> Self {
        match error {
            NodeAddrsError::SecondaryRequired { .. } => Self::SecondaryRequired,
            NodeAddrsError::SecondaryNotIpv4(text) => Self::SecondaryNotIpv4(text),
            other => Self::Addresses(other),
        }
    }
}

/// `seconds` in the largest unit of `--ttl`'s (d, h, m, s) that divides it, as an operator
/// types a lifetime: `45d`, not `3888000s`.
fn in_largest_unit(seconds: u64) -> String {
    [(86_400, "d"), (3600, "h"), (60, "m")]
        .iter()
        .find(|(unit, _)| seconds != 0 && seconds.is_multiple_of(*unit))
        .map_or_else(
            || format!("{seconds}s"),
            |(unit, name)| format!("{}{name}", seconds / unit),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_lifetime_is_shown_as_an_operator_types_it() {
        let refused = |seconds| MasterError::TokenLifetime { seconds }.to_string();
        assert_eq!(
            refused(45 * 86_400),
            "invalid token lifetime: 45d: use 1 minute to 30 days"
        );
        assert!(refused(30).contains(": 30s: "));
        assert!(refused(90 * 60).contains(": 90m: "));
        assert!(refused(36 * 3600).contains(": 36h: "));
        assert!(refused(0).contains(": 0s: "));
    }
}
