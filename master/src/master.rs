//! The master as the daemon holds it: the configuration, the CA, one channel per node, the
//! resolver and the converger's wake-up; loading it from the state directory; looking nodes
//! up by name.

use std::path::Path;
use std::sync::Arc;

use gnt_core::netutils::{Hostname, Resolver};
use gnt_core::node::Node;
use gnt_transports::{ClientTls, Identity, Pem, TlsConfigError};

use crate::channels::NodeChannels;
use crate::config::{ConfigHandle, ConfigStore, NodeConfig};
use crate::error::MasterError;
use crate::operations::converge::Wakeup;
use crate::paths::MasterPaths;
use crate::pki::ClusterCa;

/// The master: configuration, CA, channels, resolver, converger wake-up.
#[derive(Debug)]
pub struct Master {
    /// The configuration.
    pub config: ConfigHandle,
    /// The cluster CA.
    pub ca: ClusterCa,
    /// The per-node channels.
    pub channels: NodeChannels,
    /// Name resolution (the master host's `/etc/hosts` and DNS).
    pub resolver: Arc<Resolver>,
    /// Where its files are.
    pub paths: MasterPaths,
    /// Wakes the converger (`operations::converge`) when a node did not take a set.
    pub converger: Wakeup,
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
        let ca = ClusterCa::load(&paths.pki)?;
        let channels = NodeChannels::new(
            node_client_tls(&paths)?,
            config.policy,
            config.node_port,
            config.master_epoch,
        );
        Ok(Self {
            config: ConfigHandle::new(store, config),
            ca,
            channels,
            resolver: Arc::new(Resolver::system()?),
            paths,
            converger: Wakeup::default(),
        })
    }

    /// Node `name` (as an operator typed it), or `UnknownNode` naming it normalised.
    pub async fn node(&self, name: &str) -> Result<NodeView, MasterError> {
        let name = Hostname::parse(name).map_err(|_| MasterError::UnknownNode(name.to_owned()))?;
        let config = self.config.snapshot().await;
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

/// The master's TLS client configuration for node agents: its certificate, the cluster
/// CA. Each call builds a new one (with its own session cache).
pub fn node_client_tls(paths: &MasterPaths) -> Result<ClientTls, TlsConfigError> {
    let identity = Identity::from_files(&paths.pki.master_cert, &paths.pki.master_key)?;
    ClientTls::new(
        &Pem::read("CA certificate", &paths.pki.ca_cert)?,
        Some(&identity),
    )
}
