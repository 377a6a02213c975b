//! The master's key material in use: the cluster CA that issues certificates, and what its
//! channels to the nodes present. `gnt cluster renew-crypto` replaces both while the daemon
//! runs, so they are read through here, never kept.
//!
//! During a renewal that waits for nodes (`config::Rollover`), the master directory also
//! holds its previous certificate and key (`master-retiring.pem`, `.key`), for the nodes
//! that accept only those yet, and trusts the retiring CA beside the cluster CA. Both go as
//! soon as the last of those nodes is renewed.

use std::sync::{Arc, RwLock};

use gnt_transports::{ClientTls, PairFiles, Pem, TlsConfigError};

use crate::channels::Presenting;
use crate::config::ClusterConfig;
use crate::paths::MasterPaths;
use crate::pki::ClusterCa;

/// The CA that issues certificates now.
#[derive(Debug)]
pub struct IssuingCa(RwLock<Arc<ClusterCa>>);

impl IssuingCa {
    /// Holds `ca`.
    pub fn new(ca: ClusterCa) -> Self {
        Self(RwLock::new(Arc::new(ca)))
    }

    /// The CA now.
    pub fn get(&self) -> Arc<ClusterCa> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Issues with `ca` from now on.
    pub fn replace(&self, ca: ClusterCa) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ca);
    }
}

/// The master's certificate and key.
pub fn master_pair(paths: &MasterPaths) -> PairFiles {
    PairFiles::new(&paths.pki.master_cert, &paths.pki.master_key)
}

/// The cluster CA's certificate and key.
pub fn ca_pair(paths: &MasterPaths) -> PairFiles {
    PairFiles::new(&paths.pki.ca_cert, &paths.pki.ca_key)
}

/// The master's previous certificate and key, kept while a renewal waits for nodes.
pub fn retiring_pair(paths: &MasterPaths) -> PairFiles {
    PairFiles::new(
        paths.master_dir.join("master-retiring.pem"),
        paths.master_dir.join("master-retiring.key"),
    )
}

/// The CAs the master and its nodes trust: the cluster CA, and the retiring one during a
/// rollover.
pub fn trust_bundle(paths: &MasterPaths, config: &ClusterConfig) -> Result<String, TlsConfigError> {
    let ca = Pem::read("CA certificate", &paths.pki.ca_cert)?;
    let mut bundle = String::from_utf8_lossy(ca.bytes()).into_owned();
    if let Some(retiring) = config.rollover.as_ref().map(|r| &r.retiring_ca_pem)
        && !retiring.is_empty()
    {
        if !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle.push_str(retiring);
    }
    Ok(bundle)
}

/// What the channels present, as `config` and the master directory say: the master's
/// certificate to every node, but the previous one to the nodes a renewal waits for.
pub fn presenting(
    paths: &MasterPaths,
    config: &ClusterConfig,
) -> Result<Presenting, TlsConfigError> {
    let trust = Pem::from_bytes("the CAs the master trusts", trust_bundle(paths, config)?);
    let current = ClientTls::new(&trust, Some(&master_pair(paths).identity()?))?;
    let retiring = match &config.rollover {
        Some(rollover) if !rollover.pending.is_empty() => {
            let files = retiring_pair(paths);
            match files.identity() {
                Ok(identity) => {
                    let nodes = rollover.pending.iter().map(ToString::to_string).collect();
                    Some((ClientTls::new(&trust, Some(&identity))?, nodes))
                }
                // A master that took the role by failover during a renewal never had the
                // previous master's key: the nodes still pending accept this master's own
                // certificate anyway, listed in their ssconf as a candidate's.
                Err(error) => {
                    tracing::warn!(%error, "the previous master certificate is not here; nodes the renewal waits for are called with this master's own");
                    None
                }
            }
        }
        _ => None,
    };
    Ok(Presenting { current, retiring })
}
