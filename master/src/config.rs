//! The cluster configuration: one JSON file in the master's directory, replaced atomically,
//! with a serial number that grows by one with every change.
//!
//! `gnt cluster init` creates it; afterwards only `gnt-masterd` changes it, holding the lock
//! file for as long as it runs, and applying one change at a time ([`ConfigHandle`]): a change
//! is computed on a copy, written, and only then becomes the configuration, so a failed write
//! leaves both the file and the daemon's view as they were.
//!
//! The file is typed: the policy is an [`IpPolicy`] (stored as `4` or `6`, as before), the
//! names are normalised [`Hostname`]s, and a loaded file must describe a cluster ssconf can
//! be built from. A value the file cannot hold is refused when it is loaded (naming the
//! file), never replaced by a default.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use gnt_core::clock::unix_now;
use gnt_core::error::{Classify, ErrorKind};
use gnt_core::fs_atomic::FsError;
use gnt_core::join::JoinOffer;
use gnt_core::netutils::Hostname;
use gnt_core::node::{Node, NodeAddrs};
use gnt_core::policy::IpPolicy;
use gnt_core::ssconf::{
    CandidateFacts, ClusterFacts, Location, NodeFacts, SsconfError, SsconfKey, SsconfSet,
    SsconfVersion,
};
use serde::{Deserialize, Serialize};

/// The cluster configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Grows by one with every change.
    pub serial: u64,
    /// The cluster's name.
    pub cluster_name: Hostname,
    /// The IP-version policy (`4` or `6` in the file).
    #[serde(rename = "primary_ip_version")]
    pub policy: IpPolicy,
    /// The master node's name.
    pub master_node: Hostname,
    /// The cluster (master) IP, resolved from the cluster name at init.
    pub master_ip: IpAddr,
    /// The master IP's netmask length.
    pub master_netmask: u8,
    /// The master node's network device for the cluster IP, e.g. `eth0`. `gnt cluster
    /// init` writes the device it chose; a configuration written before this field loads
    /// with it empty, which means "the device that holds the master's primary address",
    /// found by the master's agent when it activates the address (so nothing guesses a
    /// device on a host other than the one that has it).
    #[serde(default)]
    pub master_netdev: String,
    /// The node agents' port.
    pub node_port: u16,
    /// The master's term: raised by every master failover, stamped on every call to a node,
    /// which refuses calls of an older epoch than its ssconf's (fencing of a replaced
    /// master). 1 for a cluster that has never failed over.
    #[serde(default = "first_epoch")]
    pub master_epoch: u64,
    /// How many master candidates (the master included) the cluster wants; a node added
    /// while there are fewer becomes one (Ganeti's `candidate_pool_size`).
    #[serde(default = "default_candidate_pool_size")]
    pub candidate_pool_size: u32,
    /// How long the node and master certificates the master issues are valid, in seconds
    /// (`gnt cluster init --certificate-validity`; 1 year by default). A configuration
    /// written before this field loads with 5 years, what such clusters issued.
    #[serde(default = "legacy_certificate_validity")]
    pub certificate_validity_secs: u64,
    /// How long the cluster CA is valid, in seconds (`--ca-validity`; 10 years by
    /// default, and for a configuration written before this field).
    #[serde(default = "legacy_ca_validity")]
    pub ca_validity_secs: u64,
    /// The nodes, by name.
    #[serde(deserialize_with = "unique_nodes")]
    pub nodes: BTreeMap<Hostname, NodeConfig>,
    /// Join tokens: issued, used or expired (expired unused ones are purged at the first
    /// change a week after their expiry).
    pub join_tokens: Vec<TokenRecord>,
    /// A certificate renewal that waits for some nodes (`gnt cluster renew-crypto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollover: Option<Rollover>,
    /// When the cluster was initialised, seconds since the Unix epoch.
    pub created_at: i64,
    /// When the configuration last changed.
    pub modified_at: i64,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Primary address.
    pub primary_ip: IpAddr,
    /// Secondary address (the primary on a single-homed IPv4 node).
    pub secondary_ip: IpAddr,
    /// Whether it is marked offline.
    pub offline: bool,
    /// Whether it is drained (Ganeti's flag): online, it gets traffic and ssconf, but it is
    /// not a master candidate and is never promoted to one. Absent in a configuration
    /// written before the flag: not drained.
    #[serde(default)]
    pub drained: bool,
    /// SHA-256 fingerprint of its certificate.
    pub certificate_sha256: String,
    /// When it was added.
    pub added_at: i64,
    /// Whether it is a master candidate: it holds a copy of what a master needs, and may
    /// become master by `gnt cluster master-failover`. The master always is one.
    #[serde(default)]
    pub master_candidate: bool,
    /// A candidate's master certificate (role `master`, for the node's own key), PEM: what
    /// it calls node procedures with once it is master. Empty for other nodes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub master_certificate_pem: String,
    /// That certificate's SHA-256 fingerprint, as ssconf's `master_candidates_certs` lists
    /// it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub master_certificate_sha256: String,
    /// A change of its secondary address whose certificate is not installed on the node
    /// yet (see `operations::node_secondary`): verify names it, and running the change
    /// again finishes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readdress: Option<Readdress>,
}

/// A certificate owed to a node for its secondary address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readdress {
    /// The secondary address the certificate names.
    pub secondary_ip: IpAddr,
    /// The fingerprint of the certificate issued for it and being installed; empty when
    /// none is (the node was offline: the address is committed, the certificate is not).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub certificate_sha256: String,
}

/// A certificate renewal that has not reached every node yet: what stays trusted for the
/// nodes it waits for (see `operations::renew_crypto`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollover {
    /// When it started, seconds since the Unix epoch.
    pub started_at: i64,
    /// The fingerprint of the master's certificate before the renewal: still listed in
    /// ssconf, so that the nodes it waits for accept the master's calls with it.
    pub retiring_master_sha256: String,
    /// The master that certificate is of. After a failover during the renewal another node
    /// is master, and the previous certificate is no longer listed: it would count as the
    /// new master's at the new epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_master: Option<Hostname>,
    /// The cluster CA before the renewal, PEM, when the renewal replaced the CA: trusted
    /// beside the new one until every node has a certificate of the new one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub retiring_ca_pem: String,
    /// The cluster CA the renewal made, PEM (empty when it kept the CA): what the master
    /// directory's `ca.pem` must be, so that a master stopped between the commit and the
    /// switch finishes the switch when it starts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuing_ca_pem: String,
    /// Whether the renewal gives nodes new keys.
    pub new_node_keys: bool,
    /// Whether nodes get new certificates (a new key, or a new CA); otherwise only the
    /// master's certificate changes, and a node is renewed once its ssconf lists it.
    pub node_certificates: bool,
    /// The nodes it has not renewed yet.
    pub pending: std::collections::BTreeSet<Hostname>,
}

impl Rollover {
    /// Whether the renewal replaced the cluster CA (nodes it waits for trust only the old).
    pub fn replaces_ca(&self) -> bool {
        !self.retiring_ca_pem.is_empty()
    }
}

/// The epoch of a cluster that has never failed over.
fn first_epoch() -> u64 {
    1
}

/// Ganeti's default pool size.
pub const DEFAULT_CANDIDATE_POOL_SIZE: u32 = 10;

fn default_candidate_pool_size() -> u32 {
    DEFAULT_CANDIDATE_POOL_SIZE
}

fn legacy_certificate_validity() -> u64 {
    crate::pki::LEGACY_CERTIFICATE_VALIDITY.as_secs()
}

fn legacy_ca_validity() -> u64 {
    crate::pki::LEGACY_CA_VALIDITY.as_secs()
}

impl NodeConfig {
    /// A node with `addrs`, added now, whose certificate is not known yet.
    pub fn new(addrs: NodeAddrs) -> Self {
        Self {
            primary_ip: addrs.primary,
            secondary_ip: addrs.secondary,
            offline: false,
            drained: false,
            certificate_sha256: String::new(),
            added_at: unix_now(),
            master_candidate: false,
            master_certificate_pem: String::new(),
            master_certificate_sha256: String::new(),
            readdress: None,
        }
    }

    /// Whether it may be promoted to master candidate: online and not drained (Ganeti's
    /// candidate pool counts no other node).
    pub fn promotable(&self) -> bool {
        !self.offline && !self.drained
    }

    /// Its addresses.
    pub fn addrs(&self) -> NodeAddrs {
        NodeAddrs {
            primary: self.primary_ip,
            secondary: self.secondary_ip,
        }
    }
}

/// The `nodes` map of the file: every name valid, and no name twice, however it is
/// written (`Node1` and `node1.` are the same node): refused, never merged.
fn unique_nodes<'de, D>(deserializer: D) -> Result<BTreeMap<Hostname, NodeConfig>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Nodes;

    impl<'de> serde::de::Visitor<'de> for Nodes {
        type Value = BTreeMap<Hostname, NodeConfig>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of node names to nodes")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut nodes = BTreeMap::new();
            while let Some((name, node)) = map.next_entry::<Hostname, NodeConfig>()? {
                if nodes.contains_key(&name) {
                    return Err(serde::de::Error::custom(format!(
                        "node '{name}' is listed twice"
                    )));
                }
                nodes.insert(name, node);
            }
            Ok(nodes)
        }
    }

    deserializer.deserialize_map(Nodes)
}

/// A join token, as stored: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The public id.
    pub id: String,
    /// SHA-256 of the whole token, hex.
    pub sha256: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: i64,
    /// The node it joined, once used.
    pub used_by: Option<Hostname>,
}

impl ClusterConfig {
    /// How long the certificates the master issues are valid.
    pub fn certificate_validity(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.certificate_validity_secs)
    }

    /// How long the cluster CA was made valid.
    pub fn ca_validity(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.ca_validity_secs)
    }

    /// The master's record.
    pub fn master(&self) -> Option<&NodeConfig> {
        self.nodes.get(&self.master_node)
    }

    /// Node `name` as a [`Node`], if it is in the configuration.
    pub fn node(&self, name: &Hostname) -> Option<Node> {
        self.nodes.get(name).map(|record| Node {
            name: name.clone(),
            addrs: record.addrs(),
        })
    }

    /// Records that the join token `id` added `node` (nothing if there is no such token).
    pub fn mark_token_used(&mut self, id: &str, node: &Hostname) {
        if let Some(used) = self.join_tokens.iter_mut().find(|t| t.id == id) {
            used.used_by = Some(node.clone());
        }
    }

    /// The version of this configuration, as ssconf sets built from it carry it.
    pub fn version(&self) -> SsconfVersion {
        SsconfVersion::new(self.master_epoch, self.serial)
    }

    /// The master candidates other than the master.
    pub fn candidates(&self) -> impl Iterator<Item = (&Hostname, &NodeConfig)> {
        self.nodes
            .iter()
            .filter(|(name, node)| node.master_candidate && **name != self.master_node)
    }

    /// How many master candidates there are, the master included.
    pub fn candidate_count(&self) -> usize {
        self.nodes.values().filter(|n| n.master_candidate).count()
    }

    /// The ssconf set every node gets: the facts of [`SsconfSet::from_cluster`], and
    /// `master_netdev` when it is set (Ganeti's key; absent means the device holding the
    /// master's primary address).
    pub fn ssconf(&self) -> Result<SsconfSet, SsconfError> {
        let candidates: Vec<CandidateFacts<'_>> = self
            .candidates()
            .filter(|(_, node)| !node.master_certificate_sha256.is_empty())
            .map(|(name, node)| CandidateFacts {
                name,
                certificate_sha256: &node.master_certificate_sha256,
            })
            .collect();
        let master_certificate = self
            .master()
            .map(|m| m.master_certificate_sha256.as_str())
            .filter(|f| !f.is_empty());
        let nodes: Vec<NodeFacts> = self
            .nodes
            .iter()
            .map(|(name, node)| NodeFacts {
                name: name.clone(),
                addresses: node.addrs(),
                offline: node.offline,
            })
            .collect();
        let mut set = SsconfSet::from_cluster(&ClusterFacts {
            cluster_name: &self.cluster_name,
            policy: self.policy,
            master: &self.master_node,
            master_ip: self.master_ip,
            master_netmask: self.master_netmask,
            nodes: &nodes,
            release_version: env!("CARGO_PKG_VERSION"),
            master_certificate_sha256: master_certificate,
            candidates: &candidates,
        })?;
        if !self.master_netdev.is_empty() {
            set.insert(SsconfKey::MasterNetdev, self.master_netdev.as_str())?;
        }
        if let Some(rollover) = &self.rollover
            && rollover
                .retiring_master
                .as_ref()
                .is_none_or(|master| *master == self.master_node)
        {
            // The master's previous certificate, listed after its new one until the
            // renewal has reached every node.
            let mut lines: Vec<String> = set
                .master_certificates()?
                .into_iter()
                .map(|(name, fingerprint)| format!("{name}={fingerprint}"))
                .collect();
            lines.push(format!(
                "{}={}",
                self.master_node, rollover.retiring_master_sha256
            ));
            set.insert_lines(SsconfKey::MasterCandidatesCerts, lines)?;
        }
        Ok(set)
    }

    /// What Join offers `node`, which this configuration lists already (so its ssconf is
    /// the one the node will have as a member, with this configuration's serial): the
    /// cluster CA `ca_pem`, the policy's listen address on the node port, and no
    /// certificate yet.
    pub fn join_offer(&self, node: Node, ca_pem: &str) -> Result<JoinOffer, SsconfError> {
        let ssconf = self.ssconf()?;
        // `ssconf` refuses a configuration whose master is not a node.
        let master = self.node(&self.master_node).ok_or(SsconfError::Missing {
            location: Location::Key(SsconfKey::MasterNode),
        })?;
        Ok(JoinOffer {
            cluster: self.cluster_name.clone(),
            policy: self.policy,
            listen: self.policy.default_listen(self.node_port),
            node,
            master,
            ca_certificate_pem: ca_pem.to_owned(),
            node_certificate_pem: String::new(),
            ssconf,
            ssconf_version: self.version(),
        })
    }
}

/// A configuration that cannot be read, written or changed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No cluster here.
    #[error("no cluster is initialised in {}; run `gnt cluster init` first", dir.display())]
    NotInitialised {
        /// The master directory.
        dir: PathBuf,
    },
    /// The file cannot be read or written.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The file does not parse (or, a defect, the configuration does not serialise).
    #[error("the cluster configuration {} is corrupt", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// The file parses but describes no valid cluster.
    #[error("the cluster configuration {} is inconsistent", path.display())]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// What contradicts the policy or itself.
        source: SsconfError,
    },
    /// Another master daemon holds the lock.
    #[error("another gnt-masterd is running on {} (its lock file is held); stop it first", dir.display())]
    Locked {
        /// The master directory.
        dir: PathBuf,
    },
}

impl Classify for ConfigError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotInitialised { .. } | Self::Locked { .. } => ErrorKind::WrongState,
            Self::Fs(_) | Self::Corrupt { .. } | Self::Inconsistent { .. } => {
                ErrorKind::Environment
            }
        }
    }
}

mod handle;
mod store;

pub use handle::{ConfigGuard, ConfigHandle};
pub use store::ConfigStore;

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;
