//! The master as the daemon holds it: the configuration, the CA, one channel per node, the
//! resolver and the converger's wake-up; loading it from the state directory; looking nodes
//! up by name.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use gnt_core::netutils::{Hostname, Resolver};
use gnt_core::node::Node;
use gnt_transports::{ClientTls, Identity, Pem, TlsConfigError};
use tokio_util::sync::CancellationToken;

use crate::channels::NodeChannels;
use crate::config::{ConfigHandle, ConfigStore, NodeConfig};
use crate::error::MasterError;
use crate::identity::{IssuingCa, ca_pair, master_pair, presenting};
use crate::operations::converge::Wakeup;
use crate::paths::MasterPaths;
use crate::pki::ClusterCa;

/// The master: configuration, CA, channels, resolver, converger wake-up.
#[derive(Debug)]
pub struct Master {
    /// The configuration.
    pub config: ConfigHandle,
    /// The cluster CA (replaced by a CA renewal).
    pub ca: IssuingCa,
    /// The per-node channels.
    pub channels: NodeChannels,
    /// Name resolution (the master host's `/etc/hosts` and DNS).
    pub resolver: Arc<Resolver>,
    /// Where its files are.
    pub paths: MasterPaths,
    /// Wakes the converger (`operations::converge`) when a node did not take a set.
    pub converger: Wakeup,
    /// Signalled when this master learns that a failover replaced it.
    pub stand_down: StandDown,
    /// Raised when a destroy job has made the master's node leave.
    pub destroyed: crate::operations::destroy::DestroySignal,
    /// Held by whatever renews certificates (a renew-crypto job, the converger catching a
    /// node up), so that one renewal step runs at a time.
    pub renewal: tokio::sync::Mutex<()>,
}

/// The signal that this master was replaced by a failover and must stop acting as master
/// (fencing: nodes refuse its calls already, see `docs/design.md`, "Master failover").
#[derive(Debug, Default)]
pub struct StandDown {
    token: CancellationToken,
    reason: OnceLock<String>,
}

impl StandDown {
    /// Signals it, for `reason` (the first reason is kept).
    pub fn signal(&self, reason: String) {
        if self.reason.set(reason).is_ok() {
            tracing::error!(reason = %self.reason.get().map_or("", String::as_str), "a newer master took over: standing down");
        }
        self.token.cancel();
    }

    /// Waits for the signal; returns its reason.
    pub async fn signalled(&self) -> String {
        self.token.cancelled().await;
        self.reason.get().cloned().unwrap_or_default()
    }
}

/// A node as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeView {
    /// Its name.
    pub name: Hostname,
    /// Its record.
    pub node: NodeConfig,
    /// Whether it is the master.
    pub master: bool,
}

impl NodeView {
    /// The node's name and addresses.
    pub fn node(&self) -> Node {
        Node {
            name: self.name.clone(),
            addrs: self.node.addrs(),
        }
    }
}

impl Master {
    /// The master of `state_dir`, with the lock that keeps other daemons out.
    pub fn load(state_dir: &Path) -> Result<(Self, std::fs::File), MasterError> {
        let master = Self::load_unlocked(state_dir)?;
        let lock = ConfigStore::new(&MasterPaths::new(state_dir).master_dir).lock()?;
        Ok((master, lock))
    }

    /// The master of `state_dir` without the daemon lock: for tools that only read the
    /// configuration and call nodes (the benchmarks).
    pub fn load_unlocked(state_dir: &Path) -> Result<Self, MasterError> {
        let paths = MasterPaths::new(state_dir);
        let store = ConfigStore::new(&paths.master_dir);
        let config = store.load()?;
        // A renewal cut between its renames is finished before anything reads the files.
        for pair in [ca_pair(&paths), master_pair(&paths)] {
            if pair.recover()? {
                tracing::info!(file = %pair.cert_path().display(), "finished installing a renewed certificate that a crash interrupted");
            }
        }
        // Every certificate this master issues (node add, candidates' master certificates,
        // renewals) lives as long as the configuration says.
        let ca =
            ClusterCa::load(&paths.pki)?.with_certificate_validity(config.certificate_validity());
        let channels = NodeChannels::presenting(
            presenting(&paths, &config)?,
            config.policy,
            config.node_port,
            config.master_epoch,
        );
        Ok(Self {
            config: ConfigHandle::new(store, config),
            ca: IssuingCa::new(ca),
            channels,
            resolver: Arc::new(Resolver::system()?),
            paths,
            converger: Wakeup::default(),
            stand_down: StandDown::default(),
            destroyed: Default::default(),
            renewal: tokio::sync::Mutex::new(()),
        })
    }

    /// Node `name` as an operator typed it: its full name, or, as Ganeti expands names, a
    /// short one (`node2` for `node2.lab.test`) when exactly one node has it. A short name
    /// of several nodes is refused naming them; an unknown one suggests a close name.
    pub async fn node(&self, name: &str) -> Result<NodeView, MasterError> {
        let unknown = || MasterError::UnknownNode(name.to_owned());
        let typed = Hostname::parse(name).map_err(|_| unknown())?;
        let config = self.config.snapshot().await;
        let name = match expand_name(&typed, config.nodes.keys()) {
            Expanded::One(name) => name,
            Expanded::Several(names) => {
                return Err(MasterError::AmbiguousNode {
                    typed: typed.to_string(),
                    nodes: names.join(", "),
                });
            }
            Expanded::None(Some(close)) => {
                return Err(MasterError::UnknownNodeSuggest {
                    typed: typed.to_string(),
                    close,
                });
            }
            Expanded::None(None) => return Err(MasterError::UnknownNode(typed.to_string())),
        };
        let node = config
            .nodes
            .get(&name)
            .cloned()
            .ok_or_else(|| MasterError::UnknownNode(name.to_string()))?;
        Ok(NodeView {
            master: name == config.master_node,
            name,
            node,
        })
    }
}

/// What a typed node name stands for.
#[derive(Debug, PartialEq, Eq)]
enum Expanded {
    /// One node.
    One(Hostname),
    /// Several nodes share the short name.
    Several(Vec<String>),
    /// None; perhaps a close name.
    None(Option<String>),
}

/// `typed` among `nodes`: the node of that name, else the nodes whose first labels it is
/// (`node2` and `node2.lab` for `node2.lab.test`), else a node whose first label is one
/// edit away from it (a typo).
fn expand_name<'a>(
    typed: &Hostname,
    nodes: impl Iterator<Item = &'a Hostname> + Clone,
) -> Expanded {
    if let Some(exact) = nodes.clone().find(|n| *n == typed) {
        return Expanded::One(exact.clone());
    }
    let prefix = format!("{}.", typed.as_str());
    let matching: Vec<&Hostname> = nodes
        .clone()
        .filter(|n| n.as_str().starts_with(&prefix))
        .collect();
    match matching.as_slice() {
        [one] => return Expanded::One((*one).clone()),
        [] => {}
        several => {
            return Expanded::Several(several.iter().map(ToString::to_string).collect());
        }
    }
    let first_label = |n: &str| n.split('.').next().unwrap_or(n).to_owned();
    let typed_label = first_label(typed.as_str());
    let close = nodes
        .filter(|n| one_edit_apart(&first_label(n.as_str()), &typed_label))
        .map(ToString::to_string)
        .next();
    Expanded::None(close)
}

/// Whether `a` and `b` differ by one inserted, deleted or replaced character.
fn one_edit_apart(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    match long.len() - short.len() {
        0 => short.iter().zip(&long).filter(|(x, y)| x != y).count() == 1,
        1 => (0..long.len()).any(|skip| {
            long.iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, c)| c)
                .eq(short.iter())
        }),
        _ => false,
    }
}

/// The master's TLS client configuration for node agents: its certificate, the cluster
/// CA. Each call builds a new one (with its own session cache).
pub fn node_client_tls(paths: &MasterPaths) -> Result<ClientTls, TlsConfigError> {
    let identity = Identity::from_files(&paths.pki.master_cert, &paths.pki.master_key)?;
    ClientTls::new(
        &Pem::read("CA certificate", &paths.pki.ca_cert)?,
        Some(&identity),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Hostname> {
        list.iter().map(|n| Hostname::parse(n).unwrap()).collect()
    }

    fn expanded(typed: &str, nodes: &[Hostname]) -> Expanded {
        expand_name(&Hostname::parse(typed).unwrap(), nodes.iter())
    }

    #[test]
    fn short_names_expand_as_in_ganeti_and_typos_get_a_suggestion() {
        let nodes = names(&[
            "master.lab.test",
            "node1.lab.test",
            "node2.lab.test",
            "web.a.test",
            "web.b.test",
        ]);
        let one = |n: &str| Expanded::One(Hostname::parse(n).unwrap());
        assert_eq!(expanded("node2.lab.test", &nodes), one("node2.lab.test"));
        assert_eq!(expanded("node2", &nodes), one("node2.lab.test"));
        assert_eq!(expanded("NODE2.lab", &nodes), one("node2.lab.test"));
        assert_eq!(
            expanded("web", &nodes),
            Expanded::Several(vec!["web.a.test".to_owned(), "web.b.test".to_owned()])
        );
        // Not a label boundary: no match, but a suggestion.
        assert_eq!(
            expanded("node", &nodes),
            Expanded::None(Some("node1.lab.test".to_owned()))
        );
        assert_eq!(
            expanded("mastr", &nodes),
            Expanded::None(Some("master.lab.test".to_owned()))
        );
        assert_eq!(expanded("zebra", &nodes), Expanded::None(None));
    }

    #[test]
    fn one_edit_apart_is_one_insertion_deletion_or_replacement() {
        assert!(one_edit_apart("node2", "node3"));
        assert!(one_edit_apart("node", "node2"));
        assert!(one_edit_apart("nde2", "node2"));
        assert!(!one_edit_apart("node2", "node2"));
        assert!(!one_edit_apart("node", "node23"));
        assert!(!one_edit_apart("abcd", "dcba"));
    }
}
