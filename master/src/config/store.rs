//! The configuration file: `config.json` in the master directory, loaded typed and checked
//! (a file no node could run on is refused, naming it), written atomically and readable by
//! root only, and the lock that makes one gnt-masterd per master directory.

use std::fs::File;
use std::path::{Path, PathBuf};

use gnt_core::fs_atomic::{self, FsError};
use gnt_core::ssconf::{Location, SsconfError, SsconfKey};

use super::{ClusterConfig, ConfigError};

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
        let mut config: ClusterConfig =
            serde_json::from_slice(&text).map_err(|source| ConfigError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        self.adopt_master_certificate(&mut config)?;
        // What no node could be given, or would run on, is as unusable as what does not
        // parse.
        config
            .ssconf()
            .and_then(|set| set.check_member())
            .map_err(|source| ConfigError::Inconsistent {
                path: self.path.clone(),
                source,
            })?;
        Ok(config)
    }

    /// A configuration written before master candidates existed names no master
    /// certificate in the master's record (it had one fingerprint for the whole cluster):
    /// the master's `master.pem` beside the file is it.
    fn adopt_master_certificate(&self, config: &mut ClusterConfig) -> Result<(), ConfigError> {
        let master_node = config.master_node.clone();
        let Some(master) = config.nodes.get_mut(&master_node) else {
            return Ok(()); // refused as inconsistent right after
        };
        if !master.master_certificate_sha256.is_empty() {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        let path = crate::pki::PkiPaths::new(dir).master_cert;
        let pem = std::fs::read_to_string(&path).map_err(|e| FsError::new("read", &path, e))?;
        master.master_certificate_sha256 =
            crate::pki::fingerprint_of_pem(&pem).map_err(|_| ConfigError::Inconsistent {
                path: path.clone(),
                source: SsconfError::Missing {
                    location: Location::Key(SsconfKey::MasterCandidatesCerts),
                },
            })?;
        master.master_certificate_pem = pem;
        master.master_candidate = true;
        Ok(())
    }

    /// Writes it as it is (serial included), atomically, readable by root only (it holds
    /// token hashes and the cluster's layout).
    pub fn save(&self, config: &ClusterConfig) -> Result<(), ConfigError> {
        let mut text =
            serde_json::to_vec_pretty(config).map_err(|source| ConfigError::Corrupt {
                path: self.path.clone(),
                source,
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
