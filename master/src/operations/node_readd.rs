//! `gnt node add --readd`: taking back a node the configuration lists already, as Ganeti's
//! LUNodeAdd does with `readd`. The add's steps run (reachability, Join or proof of
//! membership, version), with these differences:
//!
//! - **Checks.** The node must be listed and must not be the master. Its secondary stays
//!   what the configuration says (a different `-s` is refused, in Ganeti's words); its
//!   primary is resolved again, so a reinstalled host whose address changed is followed.
//! - **No token.** A node that still holds its membership (it was offline, say) proves it
//!   over mutual TLS, with a certificate the configuration lists, instead of joining; a
//!   reinstalled one needs a token, and the refusal says so. A node still waited for by a
//!   CA renewal cannot be re-added with a token (`node remove` first).
//! - **The commit updates the record in place**: new primary and certificate, offline
//!   and drained cleared (Ganeti resets the flags), and candidacy decided again with the node left out
//!   of the count, so a candidate comes back as one with a master certificate for its new
//!   key. A node that joined is no longer waited for by a renewal: the Join gave it this
//!   cluster's current CA and master certificates. The renewal lock is held throughout, so
//!   that the converger does not renew the node between its proof and the commit.
//!
//! Every step can be run again: a re-add interrupted anywhere is finished by running it
//! again, or by the job's recovery.

use gnt_core::join::JoinToken;
use gnt_core::node::Node;
use rustls::pki_types::CertificateDer;

use super::candidates::{CandidateCertificate, demote, pool_has_room};
use super::node_add::{AddNode, Candidate, check_homing, check_unique};
use super::probe::Membership;
use super::renew_crypto::node::accepted_certificates;
use super::token::check_token;
use crate::config::{ClusterConfig, NodeConfig};
use crate::error::MasterError;
use crate::master::{Master, NodeView};
use crate::pki::der_validity;

/// What the configuration said of a re-added node before its re-add.
#[derive(Debug, Clone)]
pub(crate) struct Previous {
    /// The fingerprints of the certificates it may present without a new Join: the one
    /// the configuration lists, and one staged by an interrupted change of its secondary.
    pub accepted: Vec<String>,
}

impl Previous {
    /// `previous`, read from `record`.
    pub(crate) fn of(record: &NodeConfig) -> Self {
        Self {
            accepted: accepted_certificates(record)
                .into_iter()
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Whether a re-add takes the certificate `certificate_sha256` (`certificate`) that
    /// `node` presents, and whether it is a Join's (`with_token`: the re-add has one): one
    /// the configuration lists, or, with a token, one a Join issued lately. Any certificate
    /// of our CA for its name is not enough: a host restored from an old backup holds one
    /// too, and must not be recorded (nor certified as a candidate) for a key the cluster
    /// replaced.
    pub(crate) fn takes(
        &self,
        node: &Node,
        certificate_sha256: String,
        certificate: &CertificateDer<'_>,
        with_token: bool,
    ) -> Result<(String, bool), MasterError> {
        if self
            .accepted
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&certificate_sha256))
        {
            return Ok((certificate_sha256, false));
        }
        if with_token && issued_lately(certificate) {
            return Ok((certificate_sha256, true));
        }
        Err(MasterError::ReaddOldCertificate {
            node: node.name.clone(),
            presented: certificate_sha256,
        })
    }
}

/// How long before now a certificate of a Join may have been issued, for a re-add to take
/// it as its own (an earlier attempt's Join whose answer was lost). Node certificates
/// start an hour before they are issued, for clock slack.
const RECENT_JOIN: i64 = 2 * 3600;

impl Master {
    /// The re-add's checks: the node listed and not the master, its secondary unchanged,
    /// its primary resolved again and unique, homing like the master's.
    pub(super) async fn check_readd(
        &self,
        config: &ClusterConfig,
        request: AddNode,
    ) -> Result<Candidate, MasterError> {
        let view = self.node(&request.name).await?;
        if view.master {
            return Err(MasterError::ReaddMaster);
        }
        let name = view.name.clone();
        if request.token.is_some()
            && let Some(rollover) = &config.rollover
            && rollover.replaces_ca()
            && rollover.pending.contains(&name)
        {
            // A Join gives the node the new CA only, while the master still calls it as a
            // node of the old one: it could answer neither. `node remove` ends the wait.
            return Err(MasterError::ReaddDuringRollover(name));
        }
        let token = match request.token {
            Some(token) => {
                let expires_at = check_token(config, &token)?.expires_at;
                Some((token, expires_at))
            }
            None => None,
        };
        let policy = config.policy;
        let recorded = view.node.addrs();
        if let Some(typed) = request.secondary.as_deref()
            && let Some(given) = policy.parse_secondary(Some(typed))?
            && given != recorded.secondary
        {
            return Err(MasterError::ReaddOtherSecondary {
                recorded: recorded.secondary,
                given,
            });
        }
        let primary = self
            .resolver
            .first_address(&name, policy.primary_family())
            .await?;
        let secondary = (!recorded.single_homed()).then_some(recorded.secondary);
        let addrs = policy.node_addrs(primary, secondary)?;
        check_unique(config, &addrs, Some(&name))?;
        check_homing(config, &addrs)?;
        Ok(Candidate {
            node: Node { name, addrs },
            token,
            previous: Some(Previous::of(&view.node)),
        })
    }

    /// The certificate `node` presents, and whether it is new (a Join's), if it proves
    /// over mutual TLS that it is this cluster's node ([`Previous::takes`]): a re-add
    /// without a token, or one whose Join the node refused as a member already.
    pub(super) async fn prove_readd_member(
        &self,
        node: &Node,
        previous: &Previous,
        with_token: bool,
    ) -> Result<(String, bool), MasterError> {
        match self.probe_membership(node).await? {
            Membership::Member {
                certificate_sha256,
                certificate,
                ..
            } => previous.takes(node, certificate_sha256, &certificate, with_token),
            Membership::NotMember(why) | Membership::Unreachable(why) if with_token => {
                Err(MasterError::NotAdoptable {
                    node: node.name.clone(),
                    why,
                })
            }
            Membership::NotMember(why) | Membership::Unreachable(why) => {
                Err(MasterError::ReaddNeedsToken {
                    node: node.name.clone(),
                    why,
                })
            }
        }
    }

    /// Updates the record of `node`, which now holds the certificate `certificate_sha256`
    /// (`joined`: a Join's, with the token `token_id`): its addresses, that certificate,
    /// online again, a candidate with `promoted` if the pool has room without it. The
    /// uniqueness check is made again against the configuration being changed.
    pub async fn commit_readded(
        &self,
        node: &Node,
        token_id: Option<&str>,
        certificate_sha256: String,
        joined: bool,
        promoted: Option<CandidateCertificate>,
    ) -> Result<(NodeView, ClusterConfig), MasterError> {
        let (record, committed) = self
            .config
            .update(|c| {
                check_unique(c, &node.addrs, Some(&node.name))?;
                let record = c
                    .nodes
                    .get_mut(&node.name)
                    .ok_or_else(|| MasterError::UnknownNode(node.name.to_string()))?;
                record.primary_ip = node.addrs.primary;
                record.secondary_ip = node.addrs.secondary;
                record.offline = false;
                record.drained = false;
                record.certificate_sha256.clone_from(&certificate_sha256);
                if joined {
                    // The Join certified the addresses it lists now: nothing is owed.
                    record.readdress = None;
                }
                demote(record);
                let room = pool_has_room(c);
                let record = c
                    .nodes
                    .get_mut(&node.name)
                    .ok_or_else(|| MasterError::UnknownNode(node.name.to_string()))?;
                if let Some(certificate) = promoted.clone().filter(|_| room) {
                    certificate.promote(record);
                }
                let record = record.clone();
                if let Some(id) = token_id {
                    c.mark_token_used(id, &node.name);
                }
                if joined && let Some(rollover) = &mut c.rollover {
                    rollover.pending.remove(&node.name);
                }
                Ok::<_, MasterError>(record)
            })
            .await?;
        let view = NodeView {
            node: record,
            name: node.name.clone(),
            master: false,
        };
        Ok((view, committed))
    }
}

/// `config` as if `node` were not a candidate: the pool a re-added node is counted against
/// (Ganeti leaves the node itself out).
pub(super) fn without_candidate(config: &ClusterConfig, node: &Node) -> ClusterConfig {
    let mut config = config.clone();
    if let Some(record) = config.nodes.get_mut(&node.name) {
        demote(record);
    }
    config
}

/// The token a re-add joins with, if it has one.
pub(super) fn token_id(token: Option<&(JoinToken, i64)>) -> Option<&str> {
    token.map(|(token, _)| token.id())
}

/// Whether `certificate` was issued lately, as by a Join of this re-add ([`RECENT_JOIN`]).
fn issued_lately(certificate: &CertificateDer<'_>) -> bool {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    der_validity("presented certificate", certificate)
        .is_ok_and(|validity| validity.not_before >= now - RECENT_JOIN)
}
