//! The master copy a master candidate keeps: what it needs to become master (the
//! configuration, the cluster CA with its key, its own master certificate for its node
//! key), written by the master with every change, read by `gnt cluster master-failover` on this
//! node, and compared by a failover elsewhere (`ReadMasterCopy`, never the keys).
//!
//! One file, `<state>/master-copy.json`, 0600 in the 0700 state directory, replaced
//! atomically: a reader finds the old copy or the new one, never a mix of two versions.
//! Like ssconf it never goes back: a copy of an older version than the one held is refused
//! (a delayed push of a master that a failover replaced, or one overtaken by a newer push).
//! Leaving the cluster deletes it with the rest of the node's cluster state.

use std::path::{Path, PathBuf};

use crate::{Identity, Pem};
use gnt_core::error::{Classify, ErrorKind};
use gnt_core::fs_atomic::{self, FsError};
use gnt_core::ssconf::SsconfVersion;
use gnt_proto::node::v1::{ReadMasterCopyResponse, WriteMasterCopyRequest};
use serde::{Deserialize, Serialize};

/// The copy's file name in the state directory.
pub const MASTER_COPY_FILE: &str = "master-copy.json";

/// A master copy as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterCopy {
    /// The configuration's master epoch.
    pub epoch: u64,
    /// The configuration's serial.
    pub serial: u64,
    /// The configuration, as the master wrote it (JSON text).
    pub config_json: String,
    /// The cluster CA certificate, PEM.
    pub ca_certificate_pem: String,
    /// The cluster CA key, PEM.
    pub ca_key_pem: String,
    /// This candidate's master certificate for its node key, PEM.
    pub master_certificate_pem: String,
}

impl std::fmt::Debug for MasterCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterCopy")
            .field("epoch", &self.epoch)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

impl MasterCopy {
    /// Its version.
    pub fn version(&self) -> SsconfVersion {
        SsconfVersion::new(self.epoch, self.serial)
    }

    /// The master identity it gives a node whose key is in `node_key`: the copy's master
    /// certificate with that key (refused when the certificate is for another key).
    pub fn master_identity(&self, node_key: &Path) -> Result<Identity, MasterCopyError> {
        Identity::from_pem(
            &Pem::from_bytes("master certificate", self.master_certificate_pem.as_bytes()),
            &Pem::read("node key", node_key).map_err(|source| MasterCopyError::Credentials {
                what: "node key",
                source,
            })?,
        )
        .map_err(|source| MasterCopyError::Credentials {
            what: "master certificate (for this node's key)",
            source,
        })
    }
}

/// Why a master copy was refused or cannot be kept.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MasterCopyError {
    /// The configuration is not JSON, or does not state the version sent with it.
    #[error("the master copy's configuration {0}")]
    Configuration(String),
    /// A certificate or key does not parse, or the key is not the certificate's.
    #[error("the master copy's {what} is not usable")]
    Credentials {
        /// Which.
        what: &'static str,
        /// Why.
        #[source]
        source: crate::TlsConfigError,
    },
    /// The copy is older than the one held.
    #[error("this node holds a master copy of {current}, newer than the offered {offered}")]
    Older {
        /// The held copy's version.
        current: SsconfVersion,
        /// The offered copy's version.
        offered: SsconfVersion,
    },
    /// The stored copy does not parse.
    #[error(
        "the master copy {path} is damaged: {reason}; the master sends a new one with its next change, or run `gnt cluster redist-conf` on the master"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl Classify for MasterCopyError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Configuration(_) | Self::Credentials { .. } => ErrorKind::WrongInput,
            Self::Older { .. } => ErrorKind::WrongState,
            Self::Damaged { .. } => ErrorKind::Environment,
            Self::Fs(e) => e.kind(),
        }
    }
}

impl TryFrom<WriteMasterCopyRequest> for MasterCopy {
    type Error = MasterCopyError;

    /// A copy whose configuration states the version it came with, and whose keys are the
    /// certificates' own.
    fn try_from(request: WriteMasterCopyRequest) -> Result<Self, MasterCopyError> {
        let config_json = String::from_utf8(request.config_json)
            .map_err(|_| MasterCopyError::Configuration("is not UTF-8".to_owned()))?;
        let config: serde_json::Value = serde_json::from_str(&config_json)
            .map_err(|e| MasterCopyError::Configuration(format!("is not JSON: {e}")))?;
        for (field, sent) in [("serial", request.serial), ("master_epoch", request.epoch)] {
            let stated = config.get(field).and_then(serde_json::Value::as_u64);
            if stated != Some(sent) {
                return Err(MasterCopyError::Configuration(format!(
                    "states {field} {stated:?}, but {sent} was sent with it"
                )));
            }
        }
        let credentials = |what, cert: &str, key: &str| {
            Identity::from_pem(
                &Pem::from_bytes(what, cert.as_bytes()),
                &Pem::from_bytes(what, key.as_bytes()),
            )
            .map_err(|source| MasterCopyError::Credentials { what, source })
        };
        credentials(
            "CA certificate and key",
            &request.ca_certificate_pem,
            &request.ca_key_pem,
        )?;
        Pem::from_bytes(
            "master certificate",
            request.master_certificate_pem.as_bytes(),
        )
        .leaf_sha256()
        .map_err(|source| MasterCopyError::Credentials {
            what: "master certificate",
            source,
        })?;
        Ok(Self {
            epoch: request.epoch,
            serial: request.serial,
            config_json,
            ca_certificate_pem: request.ca_certificate_pem,
            ca_key_pem: request.ca_key_pem,
            master_certificate_pem: request.master_certificate_pem,
        })
    }
}

impl From<&MasterCopy> for ReadMasterCopyResponse {
    fn from(copy: &MasterCopy) -> Self {
        Self {
            config_json: copy.config_json.clone().into_bytes(),
            epoch: copy.epoch,
            serial: copy.serial,
        }
    }
}

/// Where a node keeps its master copy.
#[derive(Debug, Clone)]
pub struct MasterCopyStore {
    path: PathBuf,
}

impl MasterCopyStore {
    /// The copy of state directory `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(MASTER_COPY_FILE),
        }
    }

    /// The copy, if the node holds one.
    pub fn read(&self) -> Result<Option<MasterCopy>, MasterCopyError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FsError::new("read", &self.path, e).into()),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| MasterCopyError::Damaged {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    /// Replaces the copy with `copy` unless the held one is newer. The caller serialises
    /// writers.
    pub fn replace(&self, copy: &MasterCopy) -> Result<(), MasterCopyError> {
        // A damaged copy is replaced: the new one is what repairs it.
        if let Ok(Some(current)) = self.read()
            && copy.version() < current.version()
        {
            return Err(MasterCopyError::Older {
                current: current.version(),
                offered: copy.version(),
            });
        }
        let json = serde_json::to_vec_pretty(copy).map_err(|e| MasterCopyError::Damaged {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        fs_atomic::write_atomic(&self.path, &json, 0o600)?;
        Ok(())
    }

    /// Deletes the copy; whether there was one.
    pub fn drop_copy(&self) -> Result<bool, MasterCopyError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(FsError::new("remove", &self.path, e).into()),
        }
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        fs_atomic::sync_dir(dir)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    /// A self-signed certificate and its key, PEM.
    fn pair(name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn request(epoch: u64, serial: u64) -> (WriteMasterCopyRequest, String) {
        let (ca_cert, ca_key) = pair("ca");
        let (master_cert, master_key) = pair("node1.example.com");
        let request = WriteMasterCopyRequest {
            config_json: format!(r#"{{"serial": {serial}, "master_epoch": {epoch}}}"#).into_bytes(),
            epoch,
            serial,
            ca_certificate_pem: ca_cert,
            ca_key_pem: ca_key,
            master_certificate_pem: master_cert,
        };
        (request, master_key)
    }

    #[test]
    fn a_copy_must_state_its_version_and_hold_a_working_ca() {
        let (good, _) = request(2, 7);
        assert_eq!(
            MasterCopy::try_from(good.clone()).unwrap().version(),
            SsconfVersion::new(2, 7)
        );
        let mut lying = good.clone();
        lying.serial = 8;
        let err = MasterCopy::try_from(lying).unwrap_err();
        assert!(
            err.to_string()
                .contains("states serial Some(7), but 8 was sent"),
            "{err}"
        );
        let mut other_key = good.clone();
        other_key.ca_key_pem = pair("other").1;
        assert!(matches!(
            MasterCopy::try_from(other_key),
            Err(MasterCopyError::Credentials { .. })
        ));
        let mut not_json = good;
        not_json.config_json = b"{".to_vec();
        assert!(matches!(
            MasterCopy::try_from(not_json),
            Err(MasterCopyError::Configuration(_))
        ));
    }

    #[test]
    fn the_store_is_private_never_goes_back_and_drops_its_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = MasterCopyStore::new(dir.path());
        assert!(store.read().unwrap().is_none());
        let newer = MasterCopy::try_from(request(2, 3).0).unwrap();
        store.replace(&newer).unwrap();
        let path = dir.path().join(MASTER_COPY_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(store.read().unwrap().unwrap(), newer);
        // A higher serial of an older epoch is older.
        let older = MasterCopy::try_from(request(1, 9).0).unwrap();
        assert!(matches!(
            store.replace(&older),
            Err(MasterCopyError::Older { .. })
        ));
        assert_eq!(store.read().unwrap().unwrap(), newer);
        store.replace(&newer).unwrap();
        assert!(store.drop_copy().unwrap());
        assert!(!store.drop_copy().unwrap());
        assert!(store.read().unwrap().is_none());
        // The debug form never shows the keys.
        assert!(!format!("{newer:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn the_master_identity_needs_the_nodes_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let (request, master_key) = request(1, 1);
        let copy = MasterCopy::try_from(request).unwrap();
        let own = dir.path().join("node.key");
        std::fs::write(&own, master_key).unwrap();
        assert!(copy.master_identity(&own).is_ok());
        let other = dir.path().join("other.key");
        std::fs::write(&other, pair("x").1).unwrap();
        assert!(matches!(
            copy.master_identity(&other),
            Err(MasterCopyError::Credentials { .. })
        ));
    }
}
