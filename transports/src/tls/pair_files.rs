//! A certificate and its private key in two files, replaced as a pair.
//!
//! Two files cannot be renamed at once, so a replacement is a short journal: the new key
//! waits beside the old one as `<key>.new` (made when a renewal starts, so the public half
//! can be certified while the old pair stays in use), the new certificate is written as
//! `<cert>.new`, then the key is renamed over the key and the certificate over the
//! certificate. A crash between the two renames leaves a new key with an old certificate;
//! [`PairFiles::recover`] finishes the replacement at the next start, because the staged
//! certificate says which key it belongs to. A staged key without a staged certificate is a
//! renewal that has not been certified yet, and stays for the renewal to be retried.
//!
//! The rename over the old key is what destroys it: nothing copies it anywhere first.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::fs_atomic::{self, FsError};
use rcgen::KeyPair;

use super::{Identity, Pem};
use crate::error::TlsConfigError;

/// Which key a certificate being installed is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice {
    /// The staged key (`<key>.new`), which replaces the key in use.
    Staged,
    /// The key in use (a certificate renewed without a new key).
    Current,
}

/// A pair that cannot be staged or installed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// A file operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A key cannot be generated or read.
    #[error("the key {} is unusable", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What rcgen said.
        source: rcgen::Error,
    },
    /// No key was staged for the certificate.
    #[error("no new key was prepared ({} is missing): prepare one first", path.display())]
    NothingStaged {
        /// The staged key's path.
        path: PathBuf,
    },
    /// The certificate is not for the key, or either is unreadable.
    #[error("the certificate is not usable with {}: {source}", key.display())]
    Mismatch {
        /// The key it was checked with.
        key: PathBuf,
        /// Why it does not fit.
        source: TlsConfigError,
    },
}

impl Classify for PairError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Fs(e) => e.kind(),
            Self::Key { .. } => ErrorKind::Environment,
            Self::NothingStaged { .. } => ErrorKind::WrongState,
            Self::Mismatch { .. } => ErrorKind::WrongInput,
        }
    }
}

/// A certificate file and its key file.
#[derive(Debug, Clone)]
pub struct PairFiles {
    cert: PathBuf,
    key: PathBuf,
}

fn staged(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

fn read(path: &Path) -> Result<Option<String>, FsError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::new("read", path, e)),
    }
}

fn remove(path: &Path) -> Result<(), FsError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FsError::new("remove", path, e)),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), FsError> {
    fs::rename(from, to).map_err(|e| FsError::new("rename", from, e))
}

impl PairFiles {
    /// The pair `cert` (0644) and `key` (0600).
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// The key file.
    pub fn key_path(&self) -> &Path {
        &self.key
    }

    /// The staged key's file.
    pub fn staged_key_path(&self) -> PathBuf {
        staged(&self.key)
    }

    /// The pair in use.
    pub fn identity(&self) -> Result<Identity, TlsConfigError> {
        Identity::from_files(&self.cert, &self.key)
    }

    /// The staged key, generated (0600) when none is staged: a renewal that is retried
    /// certifies the key it prepared the first time.
    pub fn stage_new_key(&self) -> Result<KeyPair, PairError> {
        let path = self.staged_key_path();
        let bad = |source| PairError::Key {
            path: path.clone(),
            source,
        };
        if let Some(pem) = read(&path)? {
            return KeyPair::from_pem(&pem).map_err(bad);
        }
        let key = KeyPair::generate().map_err(bad)?;
        fs_atomic::write_atomic(&path, key.serialize_pem().as_bytes(), 0o600)?;
        Ok(key)
    }

    /// Stages `key_pem` (a key made elsewhere on this host: the master directory takes its
    /// node's new key), replacing a staged one.
    pub fn stage_key(&self, key_pem: &str) -> Result<(), PairError> {
        KeyPair::from_pem(key_pem).map_err(|source| PairError::Key {
            path: self.staged_key_path(),
            source,
        })?;
        fs_atomic::write_atomic(&self.staged_key_path(), key_pem.as_bytes(), 0o600)?;
        Ok(())
    }

    /// Installs `cert_pem` for the key `which` names, and returns the pair now in use. The
    /// certificate must be for that key; nothing changes otherwise.
    pub fn install(&self, cert_pem: &str, which: KeyChoice) -> Result<Identity, PairError> {
        let key_path = match which {
            KeyChoice::Staged => self.staged_key_path(),
            KeyChoice::Current => self.key.clone(),
        };
        let Some(key_pem) = read(&key_path)? else {
            return Err(PairError::NothingStaged { path: key_path });
        };
        Identity::from_pem(
            &Pem::from_bytes(&self.cert, cert_pem),
            &Pem::from_bytes(&key_path, key_pem),
        )
        .map_err(|source| PairError::Mismatch {
            key: key_path.clone(),
            source,
        })?;
        let staged_cert = staged(&self.cert);
        fs_atomic::write_atomic(&staged_cert, cert_pem.as_bytes(), 0o644)?;
        if which == KeyChoice::Staged {
            rename(&key_path, &self.key)?;
        }
        rename(&staged_cert, &self.cert)?;
        self.sync()?;
        self.identity().map_err(|source| PairError::Mismatch {
            key: self.key.clone(),
            source,
        })
    }

    /// Finishes a replacement a crash interrupted (see the module's docs); returns whether
    /// there was one. A staged certificate that fits neither key is removed.
    pub fn recover(&self) -> Result<bool, PairError> {
        let staged_cert = staged(&self.cert);
        let Some(cert_pem) = read(&staged_cert)? else {
            return Ok(false);
        };
        let fits = |key: &Path| -> Result<bool, FsError> {
            Ok(read(key)?.is_some_and(|key_pem| {
                Identity::from_pem(
                    &Pem::from_bytes(&staged_cert, cert_pem.as_bytes()),
                    &Pem::from_bytes(key, key_pem),
                )
                .is_ok()
            }))
        };
        let staged_key = self.staged_key_path();
        if fits(&staged_key)? {
            rename(&staged_key, &self.key)?;
            rename(&staged_cert, &self.cert)?;
        } else if fits(&self.key)? {
            rename(&staged_cert, &self.cert)?;
        } else {
            remove(&staged_cert)?;
        }
        self.sync()?;
        Ok(true)
    }

    /// Removes what a renewal staged (a node leaving its cluster).
    pub fn remove_staged(&self) -> Result<(), PairError> {
        remove(&staged(&self.cert))?;
        remove(&self.staged_key_path())?;
        Ok(())
    }

    /// Removes the pair, and anything staged for it; files already gone are no error.
    pub fn remove(&self) -> Result<(), PairError> {
        self.remove_staged()?;
        remove(&self.key)?;
        remove(&self.cert)?;
        Ok(())
    }

    fn sync(&self) -> Result<(), FsError> {
        match self.cert.parent() {
            Some(dir) => fs_atomic::sync_dir(dir),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate_for(key: &KeyPair, name: &str) -> String {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.self_signed(key).unwrap().pem()
    }

    fn pair(dir: &Path) -> (PairFiles, KeyPair) {
        let files = PairFiles::new(dir.join("node.pem"), dir.join("node.key"));
        let key = KeyPair::generate().unwrap();
        fs_atomic::write_atomic(files.key_path(), key.serialize_pem().as_bytes(), 0o600).unwrap();
        fs_atomic::write_atomic(
            files.cert_path(),
            certificate_for(&key, "old").as_bytes(),
            0o644,
        )
        .unwrap();
        (files, key)
    }

    #[test]
    fn a_staged_key_is_kept_until_installed_and_then_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let (files, old) = pair(dir.path());
        let staged = files.stage_new_key().unwrap();
        // A retry certifies the same key.
        assert_eq!(
            files.stage_new_key().unwrap().public_key_pem(),
            staged.public_key_pem()
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(files.staged_key_path()).unwrap().mode() & 0o777,
            0o600
        );
        let identity = files
            .install(&certificate_for(&staged, "new"), KeyChoice::Staged)
            .unwrap();
        assert!(!identity.certificate().is_empty());
        let key_now = fs::read_to_string(files.key_path()).unwrap();
        assert_eq!(key_now, staged.serialize_pem());
        assert_ne!(key_now, old.serialize_pem(), "the old key is gone");
        assert!(!files.staged_key_path().exists());
        assert_eq!(
            fs::metadata(files.key_path()).unwrap().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_certificate_for_another_key_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (files, old) = pair(dir.path());
        files.stage_new_key().unwrap();
        let stranger = KeyPair::generate().unwrap();
        let before = fs::read_to_string(files.cert_path()).unwrap();
        let error = files
            .install(&certificate_for(&stranger, "x"), KeyChoice::Staged)
            .unwrap_err();
        assert!(matches!(error, PairError::Mismatch { .. }), "{error}");
        let error = files
            .install(&certificate_for(&stranger, "x"), KeyChoice::Current)
            .unwrap_err();
        assert!(matches!(error, PairError::Mismatch { .. }), "{error}");
        assert_eq!(fs::read_to_string(files.cert_path()).unwrap(), before);
        assert_eq!(
            fs::read_to_string(files.key_path()).unwrap(),
            old.serialize_pem()
        );
        // Installing without a staged key says what to do.
        files.remove_staged().unwrap();
        let error = files
            .install(&certificate_for(&old, "x"), KeyChoice::Staged)
            .unwrap_err();
        assert!(error.to_string().contains("prepare one first"), "{error}");
        // The key in use can be certified again.
        files
            .install(&certificate_for(&old, "renewed"), KeyChoice::Current)
            .unwrap();
    }

    #[test]
    fn a_removed_pair_is_gone_and_removing_it_again_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = pair(dir.path());
        files.stage_new_key().unwrap();
        files.remove().unwrap();
        assert!(!files.cert_path().exists() && !files.key_path().exists());
        assert!(!files.staged_key_path().exists());
        files.remove().unwrap();
    }

    #[test]
    fn recovery_finishes_an_install_cut_between_its_renames() {
        let dir = tempfile::tempdir().unwrap();
        // Cut after the staged certificate was written: both renames to do.
        let (files, _) = pair(dir.path());
        let staged_key = files.stage_new_key().unwrap();
        let cert = certificate_for(&staged_key, "new");
        fs::write(staged(files.cert_path()), &cert).unwrap();
        assert!(files.recover().unwrap());
        files.identity().unwrap();
        assert_eq!(fs::read_to_string(files.cert_path()).unwrap(), cert);

        // Cut after the key was renamed: the certificate is still to go.
        let other = tempfile::tempdir().unwrap();
        let (files, _) = pair(other.path());
        let staged_key = files.stage_new_key().unwrap();
        let cert = certificate_for(&staged_key, "new");
        fs::write(staged(files.cert_path()), &cert).unwrap();
        fs::rename(files.staged_key_path(), files.key_path()).unwrap();
        assert!(
            files.identity().is_err(),
            "the crash left a mismatched pair"
        );
        assert!(files.recover().unwrap());
        files.identity().unwrap();

        // A staged certificate that fits no key is dropped; the pair in use stays.
        let stranger = KeyPair::generate().unwrap();
        fs::write(staged(files.cert_path()), certificate_for(&stranger, "x")).unwrap();
        assert!(files.recover().unwrap());
        assert!(!staged(files.cert_path()).exists());
        files.identity().unwrap();
        assert!(!files.recover().unwrap(), "nothing left to recover");
    }
}
