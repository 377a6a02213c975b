//! Master candidates (Ganeti's `master_candidate` flag): the nodes that hold a copy of
//! what a master needs and may become master by `gnt cluster master-failover`.
//!
//! - **Certifying** a node as a candidate: the master asks the node over mutual TLS for
//!   the certificate it holds (which must be the one the configuration lists for it) and
//!   issues a master certificate (role `master`) for the same key. The node's key never
//!   leaves the node, and no new key is made: a candidate's master identity is its own key
//!   with a second certificate, listed in ssconf's `master_candidates_certs` under its name.
//! - **The pool**: a node added while the cluster has fewer candidates than
//!   `candidate_pool_size` (the master included) becomes one (Ganeti's
//!   `_DecideSelfPromotion` at node add). Promotion and demotion by hand are `gnt node
//!   modify --master-candidate yes|no` ([`crate::operations::node_modify`]). Only an
//!   online, undrained node is ever promoted ([`crate::config::NodeConfig::promotable`]):
//!   draining a candidate demotes it, and no pool change promotes it back.
//! - **Copies**: with every change, each online candidate gets the configuration, the
//!   cluster CA with its key, and its own master certificate (`WriteMasterCopy`), stored
//!   0600 by the node, with the configuration's version; a demoted candidate's copy is
//!   deleted (`DropMasterCopy`). A candidate that misses a copy is the converger's, as a
//!   node that misses an ssconf set is.

use gnt_core::netutils::Hostname;
use gnt_core::node::Node;
use gnt_core::runner::{CallFailure, NodeResult, TimeoutClass};
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_proto::node::v1::{DropMasterCopyRequest, WriteMasterCopyRequest};

use super::probe::Membership;
use super::rpc_call::{failed, fan_out_named, fan_out_on, timed};
use crate::config::{ClusterConfig, ConfigError, NodeConfig};
use crate::error::MasterError;
use crate::master::Master;
use crate::pki::fingerprint_of_pem;

/// A candidate's master certificate.
#[derive(Debug, Clone)]
pub struct CandidateCertificate {
    /// PEM.
    pub pem: String,
    /// Its SHA-256 fingerprint.
    pub sha256: String,
}

impl CandidateCertificate {
    /// Makes `record` a candidate holding this certificate.
    pub fn promote(self, record: &mut NodeConfig) {
        record.master_candidate = true;
        record.master_certificate_pem = self.pem;
        record.master_certificate_sha256 = self.sha256;
    }
}

/// Makes `record` an ordinary node again.
pub fn demote(record: &mut NodeConfig) {
    record.master_candidate = false;
    record.master_certificate_pem.clear();
    record.master_certificate_sha256.clear();
}

/// Whether `config` wants one more candidate.
pub fn pool_has_room(config: &ClusterConfig) -> bool {
    config.candidate_count() < usize::try_from(config.candidate_pool_size).unwrap_or(usize::MAX)
}

impl Master {
    /// A master certificate for `node`'s own key, which it must present over mutual TLS
    /// now, in the certificate the configuration lists for it (`certificate_sha256`).
    pub async fn certify_candidate(
        &self,
        node: &Node,
        certificate_sha256: &str,
    ) -> Result<CandidateCertificate, MasterError> {
        let refused = |why: String| MasterError::NotCertifiable {
            node: node.name.clone(),
            why,
        };
        let public_key = match self.probe_membership(node).await? {
            Membership::Member {
                certificate_sha256: presented,
                public_key,
                ..
            } => {
                if !presented.eq_ignore_ascii_case(certificate_sha256) {
                    return Err(refused(format!(
                        "it presents certificate {presented}, not the {certificate_sha256} it joined with"
                    )));
                }
                public_key
            }
            Membership::NotMember(why) | Membership::Unreachable(why) => return Err(refused(why)),
        };
        let pem = self
            .ca
            .get()
            .issue_master_certificate(&node.name, &public_key)?;
        let sha256 = fingerprint_of_pem(&pem)?;
        Ok(CandidateCertificate { pem, sha256 })
    }

    /// Sends every online candidate among `names` (all when `None`) its master copy of
    /// `config`; one result per candidate.
    pub(crate) async fn write_copies(
        &self,
        config: &ClusterConfig,
        names: Option<&[Hostname]>,
    ) -> Result<Vec<NodeResult<Hostname, ()>>, MasterError> {
        let candidates: Vec<Hostname> = config
            .candidates()
            .filter(|(name, node)| !node.offline && names.is_none_or(|n| n.contains(name)))
            .map(|(name, _)| name.clone())
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let config_json = serde_json::to_vec(config).map_err(|source| {
            MasterError::Config(ConfigError::Corrupt {
                path: self.paths.master_dir.join("config.json"),
                source,
            })
        })?;
        let ca = self.ca.get();
        let ca_certificate_pem = ca.cert_pem().to_owned();
        let ca_key_pem = ca.key_pem();
        let version = config.version();
        Ok(fan_out_named(
            &self.channels,
            config,
            Some(&candidates),
            TimeoutClass::Fast,
            |name, channel, timeout| {
                let request = WriteMasterCopyRequest {
                    config_json: config_json.clone(),
                    epoch: version.epoch,
                    serial: version.serial,
                    ca_certificate_pem: ca_certificate_pem.clone(),
                    ca_key_pem: ca_key_pem.clone(),
                    master_certificate_pem: config
                        .nodes
                        .get(name)
                        .map(|node| node.master_certificate_pem.clone())
                        .unwrap_or_default(),
                };
                let request = timed(request, timeout);
                async move {
                    NodeAgentClient::new(channel)
                        .write_master_copy(request)
                        .await
                        .map(drop)
                        .map_err(failed(timeout))
                }
            },
            |_| {},
        )
        .await)
    }

    /// Deletes `node`'s master copy (it is no longer a candidate); a warning when it could
    /// not be told.
    pub(crate) async fn drop_copy(
        &self,
        config: &ClusterConfig,
        node: &Hostname,
    ) -> Option<String> {
        let results = fan_out_on(
            &self.channels,
            config,
            Some(std::slice::from_ref(node)),
            TimeoutClass::Fast,
            |channel, timeout| {
                let request = timed(DropMasterCopyRequest {}, timeout);
                async move {
                    NodeAgentClient::new(channel)
                        .drop_master_copy(request)
                        .await
                        .map(drop)
                        .map_err(failed(timeout))
                }
            },
            |_| {},
        )
        .await;
        results.into_iter().find_map(|result| match result.outcome {
            Ok(()) | Err(CallFailure::Offline) => None,
            Err(failure) => Some(format!(
                "the master copy on {node} was not deleted ({failure}); it is no longer listed, so it cannot act as master; delete {} on it by hand",
                gnt_transports::join::MASTER_COPY_FILE
            )),
        })
    }
}
