//! `gnt cluster renew-crypto`: new node keys and certificates, a new master certificate, a
//! new cluster CA, while every call goes on (Ganeti's `LUClusterRenewCrypto` stops every
//! daemon; this does not).
//!
//! A renewal is a **rollover** recorded in the configuration (`config::Rollover`) until it
//! has reached every node:
//!
//! 1. **Start** (the job): the new CA is made, and the master's new certificate (for its
//!    node's new key, made on that node, when node keys are renewed). The master's old
//!    certificate and key are kept aside (`master-retiring.*`), the rollover is committed
//!    with every node pending, and the master directory switches to the new CA and
//!    certificate (`settle_master_dir`, which a master stopped half-way runs at its start).
//! 2. **Each node** (`renewal_node`): while pending, the master calls it with its old
//!    certificate, which the node still accepts. It is sent the CAs to trust (old and new),
//!    the ssconf that lists both master certificates, then (when asked) it makes a new key,
//!    the master certifies it with the new CA, the node installs it; all in one connection
//!    per step, none refused. A node renewed is no longer pending; from then on the master
//!    calls it with its new certificate.
//! 3. **Finish**, once none is pending: every node is told to trust the new CA only, the old
//!    master certificate leaves ssconf, the retiring key is deleted.
//!
//! A node that cannot be renewed (down, offline) stays pending; the converger renews it as
//! soon as it answers (`catch_up_renewal`), and the old CA and master certificate stay
//! trusted until then. `cluster verify` names every pending node.

use std::collections::BTreeSet;

use gnt_core::clock::unix_now;
use gnt_core::fs_atomic::{self, FsError};
use gnt_core::netutils::Hostname;
use gnt_proto::node::v1::PrepareNodeKeyRequest;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_transports::join::NodeState;
use gnt_transports::{KeyChoice, PairError};
use rcgen::{KeyPair, PublicKeyData};
use serde::{Deserialize, Serialize};

use super::rpc_call::timed;
use crate::config::{ClusterConfig, Rollover};
use crate::error::MasterError;
use crate::identity::{ca_pair, master_pair, presenting, retiring_pair};
use crate::jobs::{Progress, Step};
use crate::master::Master;
use crate::pki::{ClusterCa, fingerprint_of_pem};

pub mod before_expiry;
pub(crate) mod node;

pub use node::NodeRenewal;

/// What a renewal replaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CryptoParts {
    /// `--new-node-certificates`: every node makes a new key and gets a certificate for it
    /// (master certificates of candidates included); the old keys are destroyed.
    #[serde(default)]
    pub node_certificates: bool,
    /// `--new-master-certificate`: the master's certificate is issued again.
    #[serde(default)]
    pub master_certificate: bool,
    /// `--new-cluster-certificate`: a new cluster CA, and every certificate issued again by it.
    #[serde(default)]
    pub cluster_certificate: bool,
}

impl CryptoParts {
    /// Whether anything is asked for.
    pub fn any(&self) -> bool {
        self.node_certificates || self.master_certificate || self.cluster_certificate
    }

    /// The parts in words.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.cluster_certificate {
            parts.push("the cluster CA");
        }
        if self.node_certificates {
            parts.push("node keys and certificates");
        }
        if self.master_certificate {
            parts.push("the master certificate");
        }
        if parts.is_empty() {
            "continue the certificate renewal in progress".to_owned()
        } else {
            format!("renew {}", parts.join(", "))
        }
    }
}

/// What a renewal did.
#[derive(Debug, Clone, Default)]
pub struct Renewal {
    /// The configuration serial after it.
    pub serial: u64,
    /// The nodes renewed now, with the fingerprint of the certificate each presents.
    pub renewed: Vec<NodeRenewal>,
    /// The nodes still to renew (down or offline): the renewal waits for them.
    pub pending: Vec<Hostname>,
    /// Whether the renewal is over (nothing waits, the old CA and certificate are gone).
    pub finished: bool,
    /// Problems that did not stop it.
    pub warnings: Vec<String>,
}

fn read(path: &std::path::Path) -> Result<String, FsError> {
    std::fs::read_to_string(path).map_err(|e| FsError::new("read", path, e))
}

fn public_key_of(key_pem: &str, path: &std::path::Path) -> Result<Vec<u8>, MasterError> {
    KeyPair::from_pem(key_pem)
        .map(|key| key.subject_public_key_info())
        .map_err(|source| {
            MasterError::Pair(gnt_transports::PairError::Key {
                path: path.to_owned(),
                source,
            })
        })
}

impl Master {
    /// `gnt cluster renew-crypto`: starts a renewal of `parts`, and renews every node that
    /// answers; with no part, goes on with the renewal in progress.
    pub async fn renew_crypto(
        &self,
        parts: CryptoParts,
        progress: &dyn Progress,
    ) -> Result<Renewal, MasterError> {
        let _renewing = self.renewal.lock().await;
        let config = self.config.snapshot().await;
        match (&config.rollover, parts.any()) {
            (Some(rollover), true) => Err(MasterError::RenewalWaits {
                since: super::utc(rollover.started_at),
                nodes: names(&rollover.pending),
            }),
            (None, false) => Err(MasterError::NothingToRenew),
            (Some(_), false) => self.continue_renewal(progress).await,
            (None, true) => {
                self.start_renewal(parts, &config, progress).await?;
                self.continue_renewal(progress).await
            }
        }
    }

    /// What the converger calls every round: renews the pending nodes that answer, and
    /// finishes the renewal when none is left. Nothing when no renewal waits, or when a
    /// renewal job runs (it does the same).
    pub async fn catch_up_renewal(&self) -> Option<Renewal> {
        self.config.snapshot().await.rollover.as_ref()?;
        let _renewing = self.renewal.try_lock().ok()?;
        match self.continue_renewal(&crate::jobs::Untracked).await {
            Ok(renewal) => Some(renewal),
            Err(error) => {
                tracing::warn!(error = %gnt_core::error::Chain(&error), "cannot go on with the certificate renewal");
                None
            }
        }
    }

    async fn start_renewal(
        &self,
        parts: CryptoParts,
        config: &ClusterConfig,
        progress: &dyn Progress,
    ) -> Result<(), MasterError> {
        let master_name = config.master_node.clone();
        let next_ca = if parts.cluster_certificate {
            Some(
                self.ca
                    .get()
                    .successor(config.cluster_name.as_str(), config.ca_validity())?
                    .with_certificate_validity(config.certificate_validity()),
            )
        } else {
            None
        };
        let master_key_pem = if parts.node_certificates {
            self.prepare_master_key(config).await?
        } else {
            read(master_pair(&self.paths).key_path())?
        };
        let public_key = public_key_of(&master_key_pem, master_pair(&self.paths).key_path())?;
        let master_certificate = match &next_ca {
            Some(ca) => ca.issue_master_certificate(&master_name, &public_key)?,
            None => self
                .ca
                .get()
                .issue_master_certificate(&master_name, &public_key)?,
        };
        let master_sha256 = fingerprint_of_pem(&master_certificate)?;

        // The old pair stays, for the nodes not renewed yet; the new keys wait beside the
        // ones in use until the commit says they are the ones.
        let current = master_pair(&self.paths);
        let retiring = retiring_pair(&self.paths);
        fs_atomic::write_atomic(
            retiring.cert_path(),
            read(current.cert_path())?.as_bytes(),
            0o644,
        )?;
        fs_atomic::write_atomic(
            retiring.key_path(),
            read(current.key_path())?.as_bytes(),
            0o600,
        )?;
        if let Some(ca) = &next_ca {
            ca_pair(&self.paths).stage_key(&ca.key_pem())?;
        }
        if parts.node_certificates {
            current.stage_key(&master_key_pem)?;
        }

        let issuing_ca_pem = next_ca
            .as_ref()
            .map(|ca| ca.cert_pem().to_owned())
            .unwrap_or_default();
        let retiring_ca_pem = if next_ca.is_some() {
            self.ca.get().cert_pem().to_owned()
        } else {
            String::new()
        };
        let ((), committed) = self
            .config
            .update(|c| {
                let master = c
                    .nodes
                    .get_mut(&master_name)
                    .ok_or_else(|| MasterError::UnknownNode(master_name.to_string()))?;
                let retiring_master_sha256 =
                    std::mem::replace(&mut master.master_certificate_sha256, master_sha256.clone());
                master.master_certificate_pem = master_certificate.clone();
                c.rollover = Some(Rollover {
                    started_at: unix_now(),
                    retiring_master_sha256,
                    retiring_master: Some(master_name.clone()),
                    retiring_ca_pem,
                    issuing_ca_pem,
                    new_node_keys: parts.node_certificates,
                    node_certificates: parts.node_certificates || parts.cluster_certificate,
                    pending: c.nodes.keys().cloned().collect(),
                });
                Ok::<_, MasterError>(())
            })
            .await?;
        tracing::info!(parts = %parts.summary(), serial = committed.serial, master_certificate = %master_sha256, "certificate renewal started");
        progress.step_after_commit(Step::Committed {
            serial: committed.serial,
        });
        self.settle_master_dir(&committed)
    }

    /// Deletes the keys a renewal staged and never committed (a master stopped before its
    /// commit): nothing else of it happened.
    pub fn discard_staged_renewal(&self) -> Result<(), MasterError> {
        ca_pair(&self.paths).remove_staged()?;
        master_pair(&self.paths).remove_staged()?;
        retiring_pair(&self.paths).remove()?;
        Ok(())
    }

    /// The master node's new key: made by its agent (the key is the node's; the master's
    /// certificate is for it too), read here from the state directory both share.
    async fn prepare_master_key(&self, config: &ClusterConfig) -> Result<String, MasterError> {
        let master = &config.master_node;
        let node = config
            .node(master)
            .ok_or_else(|| MasterError::UnknownNode(master.to_string()))?;
        let channel = self.channels.get(master.as_str(), node.addrs.primary)?;
        let timeout = gnt_core::runner::TimeoutClass::Fast.duration();
        let prepared = NodeAgentClient::new(channel)
            .prepare_node_key(timed(PrepareNodeKeyRequest {}, timeout))
            .await
            .map_err(|status| MasterError::MasterNodeKey {
                why: gnt_transports::call_failure(&status, timeout).to_string(),
            })?
            .into_inner();
        let staged = NodeState::open(&self.paths.state_dir)?
            .identity_files()
            .staged_key_path();
        let pem = read(&staged)?;
        if public_key_of(&pem, &staged)? != prepared.public_key {
            return Err(MasterError::MasterNodeKey {
                why: format!(
                    "the key it made is not {}: does its agent use another state directory?",
                    staged.display()
                ),
            });
        }
        Ok(pem)
    }

    /// Makes the master directory what `config` says: the cluster CA its renewal made, the
    /// master certificate its record lists (for the staged key when there is one), and the
    /// channels presenting them. Run after a renewal's commits, and when the daemon starts
    /// (a master stopped between a commit and the switch finishes it here).
    pub fn settle_master_dir(&self, config: &ClusterConfig) -> Result<(), MasterError> {
        if let Some(rollover) = &config.rollover
            && !rollover.issuing_ca_pem.is_empty()
        {
            let ca = ca_pair(&self.paths);
            if read(ca.cert_path())? != rollover.issuing_ca_pem {
                ca.install(&rollover.issuing_ca_pem, KeyChoice::Staged)?;
                self.ca.replace(
                    ClusterCa::load(&self.paths.pki)?
                        .with_certificate_validity(config.certificate_validity()),
                );
                tracing::info!("the cluster CA is the new one");
            }
        }
        let wanted = config
            .master()
            .map(|m| m.master_certificate_pem.as_str())
            .unwrap_or_default();
        let current = master_pair(&self.paths);
        if !wanted.is_empty() && read(current.cert_path())? != wanted {
            // For the staged key when the renewal gave the master a new one; a key staged
            // by an attempt that never committed fits nothing, and the key in use is meant.
            match current.install(wanted, KeyChoice::Staged) {
                Err(PairError::NothingStaged { .. } | PairError::Mismatch { .. }) => {
                    current.install(wanted, KeyChoice::Current)?;
                    current.remove_staged()?;
                }
                other => {
                    other?;
                }
            }
            tracing::info!("the master presents its new certificate");
        }
        self.channels.present(presenting(&self.paths, config)?);
        Ok(())
    }

    /// Renews every online pending node, commits what was renewed, and finishes when no
    /// node is left. The caller holds `renewal`.
    async fn continue_renewal(&self, progress: &dyn Progress) -> Result<Renewal, MasterError> {
        let config = self.config.snapshot().await;
        let Some(rollover) = config.rollover.clone() else {
            return Ok(Renewal {
                serial: config.serial,
                finished: true,
                ..Renewal::default()
            });
        };
        let (renewed, mut warnings) = self.renew_nodes(&config, &rollover).await;
        let mut committed = config;
        if !renewed.is_empty() {
            let ((), after) = self
                .config
                .update(|c| {
                    for done in &renewed {
                        done.apply(c);
                    }
                    Ok::<_, MasterError>(())
                })
                .await?;
            committed = after;
        }
        let pending: Vec<Hostname> = committed
            .rollover
            .as_ref()
            .map(|r| r.pending.iter().cloned().collect())
            .unwrap_or_default();
        progress.step_after_commit(Step::Renewed {
            renewed: renewed.len(),
            pending: pending.len(),
        });
        for name in &renewed {
            tracing::info!(node = %name.node, certificate = %name.certificate_sha256, "node certificate renewed");
        }
        // The renewed nodes are called with the new certificate from now on.
        self.settle_master_dir(&committed)?;
        let finished = pending.is_empty();
        if finished {
            let (after, finish_warnings) = self.finish_renewal(&committed).await?;
            committed = after;
            warnings.extend(finish_warnings);
        } else {
            // A pending node that missed the set was named already, with what to expect.
            let missed = self.redistribute(&committed).await;
            warnings.extend(missed.into_iter().filter(|warning| {
                !pending
                    .iter()
                    .any(|node| warning.contains(&format!(" on {node}:")))
            }));
        }
        Ok(Renewal {
            serial: committed.serial,
            renewed,
            pending,
            finished,
            warnings,
        })
    }

    /// Ends a renewal that reached every node: the new CA alone is trusted, the old master
    /// certificate leaves ssconf, its key is deleted.
    async fn finish_renewal(
        &self,
        config: &ClusterConfig,
    ) -> Result<(ClusterConfig, Vec<String>), MasterError> {
        let mut warnings = Vec::new();
        let ca_changed = config.rollover.as_ref().is_some_and(Rollover::replaces_ca);
        if ca_changed {
            let bundle = self.ca.get().cert_pem().to_owned();
            warnings.extend(self.write_trust(config, &bundle).await);
        }
        let ((), committed) = self
            .config
            .update(|c| {
                c.rollover = None;
                Ok::<_, MasterError>(())
            })
            .await?;
        self.settle_master_dir(&committed)?;
        if let Err(error) = self.discard_staged_renewal() {
            warnings.push(format!(
                "cannot delete the previous master key: {}",
                gnt_core::error::Chain(&error)
            ));
        }
        tracing::info!(
            serial = committed.serial,
            "certificate renewal finished: every node is renewed"
        );
        warnings.extend(self.redistribute(&committed).await);
        Ok((committed, warnings))
    }
}

fn names(nodes: &BTreeSet<Hostname>) -> String {
    nodes
        .iter()
        .map(Hostname::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
