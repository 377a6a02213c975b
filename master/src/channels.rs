//! One HTTP/2 channel per node, kept for the daemon's life: mutual TLS as the master, the
//! node's certificate checked for its name, dialled by the cluster policy at the node's
//! primary address. Channels are [`DirectChannel`]s, straight over h2 (a master holds one
//! per node, so what an idle one costs counts); they connect on first use and again after
//! a failure. A node's channel is replaced when its address changes and dropped when it
//! leaves.
//! Every call carries the master's epoch (`gnt-master-epoch`), which nodes check to fence
//! a master that a failover replaced.
//!
//! While a certificate renewal waits for some nodes (`operations::renew_crypto`), the
//! channels to those nodes present the master's previous certificate, which is all they
//! accept yet; the others present the new one. Changing either drops the cached channels:
//! calls in flight finish on theirs, the next ones dial with the new identity.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use gnt_core::policy::IpPolicy;
use gnt_core::wire::MASTER_EPOCH_METADATA;
use gnt_transports::{ClientTls, Connector, DialOptions, DirectChannel, TlsConfigError};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;

/// A channel to one node; every call on it carries the master's epoch.
pub type NodeChannel = InterceptedService<DirectChannel, EpochStamp>;

/// `channel`, its calls stamped with master epoch `epoch`: for callers that dial a node
/// themselves (the benchmarks, tests).
pub fn stamped<C>(channel: C, epoch: u64) -> InterceptedService<C, EpochStamp> {
    InterceptedService::new(channel, EpochStamp::new(epoch))
}

/// Stamps the master's epoch on a call.
#[derive(Debug, Clone)]
pub struct EpochStamp(MetadataValue<Ascii>);

impl EpochStamp {
    /// The stamp of epoch `epoch`.
    pub fn new(epoch: u64) -> Self {
        Self(MetadataValue::from(epoch))
    }
}

impl Interceptor for EpochStamp {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert(MASTER_EPOCH_METADATA, self.0.clone());
        Ok(request)
    }
}

/// What the channels present: the master's certificate, and the previous one for the nodes
/// a renewal has not reached yet.
#[derive(Debug, Clone)]
pub struct Presenting {
    /// The master's certificate and the CAs it trusts.
    pub current: ClientTls,
    /// The previous certificate, and the nodes that still need it.
    pub retiring: Option<(ClientTls, BTreeSet<String>)>,
}

impl Presenting {
    fn for_node(&self, name: &str) -> &ClientTls {
        match &self.retiring {
            Some((tls, nodes)) if nodes.contains(name) => tls,
            _ => &self.current,
        }
    }
}

/// The channel cache.
#[derive(Debug)]
pub struct NodeChannels {
    tls: std::sync::RwLock<Presenting>,
    policy: IpPolicy,
    port: u16,
    epoch: EpochStamp,
    cache: Mutex<HashMap<String, (SocketAddr, DirectChannel)>>,
}

impl NodeChannels {
    /// Channels presenting `tls` (the master's identity, the cluster CA), stamping master
    /// epoch `epoch` on every call.
    pub fn new(tls: ClientTls, policy: IpPolicy, port: u16, epoch: u64) -> Self {
        Self::presenting(
            Presenting {
                current: tls,
                retiring: None,
            },
            policy,
            port,
            epoch,
        )
    }

    /// Channels presenting `tls`, stamping master epoch `epoch` on every call.
    pub fn presenting(tls: Presenting, policy: IpPolicy, port: u16, epoch: u64) -> Self {
        Self {
            tls: std::sync::RwLock::new(tls),
            policy,
            port,
            epoch: EpochStamp::new(epoch),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The channel to node `name` at `primary`.
    pub fn get(&self, name: &str, primary: IpAddr) -> Result<NodeChannel, TlsConfigError> {
        let addr = SocketAddr::new(primary, self.port);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached, channel)) = cache.get(name)
            && *cached == addr
        {
            return Ok(self.stamped(channel.clone()));
        }
        let tls = self
            .tls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .for_node(name)
            .clone()
            .with_server_name(name)?;
        let channel = Connector::tcp_addr(addr, DialOptions::new(self.policy))
            .with_tls(tls)
            .direct_channel();
        cache.insert(name.to_owned(), (addr, channel.clone()));
        Ok(self.stamped(channel))
    }

    fn stamped(&self, channel: DirectChannel) -> NodeChannel {
        InterceptedService::new(channel, self.epoch.clone())
    }

    /// What the channel to node `name` presents, for a caller that dials it itself.
    pub fn client_tls(&self, name: &str) -> ClientTls {
        self.tls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .for_node(name)
            .clone()
    }

    /// Presents `tls` from the next call on (see the module's docs).
    pub fn present(&self, tls: Presenting) {
        *self.tls.write().unwrap_or_else(|p| p.into_inner()) = tls;
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Forgets node `name`'s channel.
    pub fn forget(&self, name: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// How many channels are open (or ready to open).
    pub fn len(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
