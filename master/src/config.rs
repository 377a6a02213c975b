//! The cluster configuration: one JSON file in the master's directory, replaced atomically,
//! with a serial number that grows by one with every change.
//!
//! `gnt cluster init` creates it; afterwards only `gnt-masterd` changes it, holding the lock
//! file for as long as it runs, and applying one change at a time ([`ConfigHandle`]): a change
//! is computed on a copy, written, and only then becomes the configuration, so a failed write
//! leaves both the file and the daemon's view as they were.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::fs_atomic::{self, FsError};
use gnt_core::netutils::Hostname;
use gnt_core::policy::IpPolicy;
use gnt_core::ssconf::{ClusterFacts, NodeAddrs, NodeFacts, SsconfError, SsconfSet};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// The cluster configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Grows by one with every change.
    pub serial: u64,
    /// The cluster's name.
    pub cluster_name: String,
    /// 4 or 6.
    pub primary_ip_version: u8,
    /// The master node's name.
    pub master_node: String,
    /// The cluster (master) IP, resolved from the cluster name at init.
    pub master_ip: IpAddr,
    /// The master IP's netmask length.
    pub master_netmask: u8,
    /// The node agents' port.
    pub node_port: u16,
    /// SHA-256 fingerprint of the master's client certificate, as ssconf lists it.
    pub master_certificate_sha256: String,
    /// The nodes, by name.
    pub nodes: BTreeMap<String, NodeConfig>,
    /// Join tokens: issued, used or expired (expired ones are pruned on the next change).
    pub join_tokens: Vec<TokenRecord>,
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
    /// SHA-256 fingerprint of its certificate.
    pub certificate_sha256: String,
    /// When it was added.
    pub added_at: i64,
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
    pub used_by: Option<String>,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl ClusterConfig {
    /// The policy.
    pub fn policy(&self) -> IpPolicy {
        if self.primary_ip_version == 6 {
            IpPolicy::HybridIpv6
        } else {
            IpPolicy::Ipv4
        }
    }

    /// The master's record.
    pub fn master(&self) -> Option<&NodeConfig> {
        self.nodes.get(&self.master_node)
    }

    /// The ssconf set every node gets.
    pub fn ssconf(&self) -> Result<SsconfSet, SsconfError> {
        let parse = |name: &str| {
            Hostname::parse(name).map_err(|e| SsconfError::Malformed {
                location: gnt_core::ssconf::Location::Key(gnt_core::ssconf::SsconfKey::NodeList),
                line: 1,
                reason: e.to_string(),
            })
        };
        let nodes = self
            .nodes
            .iter()
            .map(|(name, node)| {
                Ok(NodeFacts {
                    name: parse(name)?,
                    addresses: NodeAddrs {
                        primary: node.primary_ip,
                        secondary: node.secondary_ip,
                    },
                    offline: node.offline,
                })
            })
            .collect::<Result<Vec<_>, SsconfError>>()?;
        SsconfSet::from_cluster(&ClusterFacts {
            cluster_name: &parse(&self.cluster_name)?,
            policy: self.policy(),
            master: &parse(&self.master_node)?,
            master_ip: self.master_ip,
            master_netmask: self.master_netmask,
            nodes: &nodes,
            release_version: env!("CARGO_PKG_VERSION"),
            master_certificate_sha256: Some(&self.master_certificate_sha256),
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
    /// The file does not parse.
    #[error("the cluster configuration {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
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
            Self::Fs(_) | Self::Corrupt { .. } => ErrorKind::Environment,
        }
    }
}

/// The configuration file.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    path: PathBuf,
}

impl ConfigStore {
    /// The file in master directory `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("config.json"),
        }
    }

    /// Whether a cluster is initialised.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Reads it.
    pub fn load(&self) -> Result<ClusterConfig, ConfigError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::NotInitialised {
                    dir: self.path.parent().unwrap_or(Path::new("/")).to_owned(),
                });
            }
            Err(e) => return Err(FsError::new("read", &self.path, e).into()),
        };
        serde_json::from_slice(&text).map_err(|e| ConfigError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    /// Writes it as it is (serial included), atomically, readable by root only (it holds
    /// token hashes and the cluster's layout).
    pub fn save(&self, config: &ClusterConfig) -> Result<(), ConfigError> {
        let mut text = serde_json::to_vec_pretty(config).map_err(|e| ConfigError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        text.push(b'\n');
        fs_atomic::write_atomic(&self.path, &text, 0o600)?;
        Ok(())
    }

    /// Takes the daemon's exclusive lock: one gnt-masterd per master directory.
    pub fn lock(&self) -> Result<File, ConfigError> {
        let dir = self.path.parent().unwrap_or(Path::new("/")).to_owned();
        let path = dir.join("masterd.lock");
        let file = fs_atomic::open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(ConfigError::Locked { dir }),
            Err(std::fs::TryLockError::Error(e)) => Err(FsError::new("lock", &path, e).into()),
        }
    }
}

/// The daemon's configuration: read by anyone, changed one change at a time.
#[derive(Debug)]
pub struct ConfigHandle {
    store: ConfigStore,
    current: Mutex<ClusterConfig>,
}

impl ConfigHandle {
    /// Wraps a loaded configuration.
    pub fn new(store: ConfigStore, config: ClusterConfig) -> Self {
        Self {
            store,
            current: Mutex::new(config),
        }
    }

    /// A copy of the current configuration.
    pub async fn snapshot(&self) -> ClusterConfig {
        self.current.lock().await.clone()
    }

    /// Holds the configuration for a change that needs to talk to nodes first (node add):
    /// no other change can start until the returned guard is dropped.
    pub async fn lock(&self) -> ConfigGuard<'_> {
        ConfigGuard {
            store: &self.store,
            current: self.current.lock().await,
        }
    }

    /// Applies `change` to a copy; writes the copy with the next serial; then makes it the
    /// configuration. A failed change or write changes nothing.
    pub async fn update<T, E>(
        &self,
        change: impl FnOnce(&mut ClusterConfig) -> Result<T, E>,
    ) -> Result<(T, ClusterConfig), E>
    where
        E: From<ConfigError>,
    {
        self.lock().await.commit(change)
    }
}

/// Exclusive access to the configuration.
#[derive(Debug)]
pub struct ConfigGuard<'a> {
    store: &'a ConfigStore,
    current: tokio::sync::MutexGuard<'a, ClusterConfig>,
}

impl ConfigGuard<'_> {
    /// The configuration as it is.
    pub fn config(&self) -> &ClusterConfig {
        &self.current
    }

    /// See [`ConfigHandle::update`].
    pub fn commit<T, E>(
        &mut self,
        change: impl FnOnce(&mut ClusterConfig) -> Result<T, E>,
    ) -> Result<(T, ClusterConfig), E>
    where
        E: From<ConfigError>,
    {
        let mut next = self.current.clone();
        let value = change(&mut next)?;
        next.serial += 1;
        next.modified_at = unix_now();
        let now = next.modified_at;
        next.join_tokens
            .retain(|t| t.used_by.is_some() || t.expires_at > now);
        self.store.save(&next)?;
        *self.current = next.clone();
        Ok((value, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClusterConfig {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "master.example.com".to_owned(),
            NodeConfig {
                primary_ip: "2001:db8::10".parse().unwrap(),
                secondary_ip: "192.0.2.10".parse().unwrap(),
                offline: false,
                certificate_sha256: "AB:CD".to_owned(),
                added_at: 1,
            },
        );
        ClusterConfig {
            serial: 1,
            cluster_name: "cluster.example.com".to_owned(),
            primary_ip_version: 6,
            master_node: "master.example.com".to_owned(),
            master_ip: "2001:db8::100".parse().unwrap(),
            master_netmask: 128,
            node_port: 1811,
            master_certificate_sha256: "AA:BB".to_owned(),
            nodes,
            join_tokens: Vec::new(),
            created_at: 1,
            modified_at: 1,
        }
    }

    #[tokio::test]
    async fn changes_bump_the_serial_and_a_failed_change_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConfigStore::new(dir.path());
        store.save(&config()).unwrap();
        let handle = ConfigHandle::new(store.clone(), store.load().unwrap());
        let ((), next) = handle
            .update(|c| {
                c.master_netmask = 64;
                Ok::<_, ConfigError>(())
            })
            .await
            .unwrap();
        assert_eq!(next.serial, 2);
        assert_eq!(store.load().unwrap(), next);
        let failed: Result<((), ClusterConfig), ConfigError> = handle
            .update(|c| {
                c.master_netmask = 1;
                Err(ConfigError::Locked {
                    dir: PathBuf::from("/x"),
                })
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(handle.snapshot().await, next);
        assert_eq!(store.load().unwrap(), next);
    }

    #[test]
    fn the_file_is_root_only_and_a_corrupt_one_is_named() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = ConfigStore::new(dir.path());
        assert!(matches!(
            store.load(),
            Err(ConfigError::NotInitialised { .. })
        ));
        store.save(&config()).unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("config.json"))
                .unwrap()
                .mode()
                & 0o777,
            0o600
        );
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let err = store.load().unwrap_err();
        assert!(
            err.to_string().starts_with("the cluster configuration"),
            "{err}"
        );
        assert!(err.to_string().contains("config.json is corrupt"), "{err}");
    }

    #[test]
    fn one_daemon_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConfigStore::new(dir.path());
        let _held = store.lock().unwrap();
        let err = store.lock().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("another gnt-masterd is running"),
            "{err}"
        );
    }

    #[test]
    fn the_ssconf_of_a_config_lists_every_node_and_the_master_certificate() {
        let set = config().ssconf().unwrap();
        assert_eq!(set.ip_policy().unwrap(), IpPolicy::HybridIpv6);
        assert_eq!(set.master_certificates().unwrap()[0].1, "AA:BB");
        assert_eq!(set.node_list().unwrap().len(), 1);
    }
}
