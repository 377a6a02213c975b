//! One HTTP/2 channel per node, kept for the daemon's life: mutual TLS as the master, the
//! node's certificate checked for its name, dialled by the cluster policy at the node's
//! primary address. Channels connect on first use and reconnect after failures (tonic
//! does); a node's channel is replaced when its address changes and dropped when it leaves.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use gnt_core::policy::IpPolicy;
use gnt_transports::{ClientTls, Connector, DialOptions, TlsConfigError};
use tonic::transport::Channel;

/// The channel cache.
#[derive(Debug)]
pub struct NodeChannels {
    tls: ClientTls,
    policy: IpPolicy,
    port: u16,
    cache: Mutex<HashMap<String, (SocketAddr, Channel)>>,
}

impl NodeChannels {
    /// Channels presenting `tls` (the master's identity, the cluster CA).
    pub fn new(tls: ClientTls, policy: IpPolicy, port: u16) -> Self {
        Self {
            tls,
            policy,
            port,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The channel to node `name` at `primary`.
    pub fn get(&self, name: &str, primary: IpAddr) -> Result<Channel, TlsConfigError> {
        let addr = SocketAddr::new(primary, self.port);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached, channel)) = cache.get(name)
            && *cached == addr
        {
            return Ok(channel.clone());
        }
        let tls = self.tls.clone().with_server_name(name)?;
        let channel = Connector::tcp_addr(addr, DialOptions::new(self.policy))
            .with_tls(tls)
            .channel_lazy();
        cache.insert(name.to_owned(), (addr, channel.clone()));
        Ok(channel)
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
