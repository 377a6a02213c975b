//! One node's part of a renewal, over the channel that presents the master's previous
//! certificate (the node is pending): the CAs to trust, the ssconf that lists the new master
//! certificate, then a new key and certificate when the renewal asks for them. Each step
//! can be sent again: a node renewed half-way is simply renewed again.

use std::fmt;

use futures_util::StreamExt;
use gnt_core::error::Chain;
use gnt_core::netutils::Hostname;
use gnt_core::runner::{CallFailure, TimeoutClass};
use gnt_core::ssconf::Published;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_proto::node::v1::{
    InstallNodeCertificateRequest, PrepareNodeKeyRequest, WriteSsconfRequest, WriteTrustRequest,
};
use gnt_transports::join::CertificateIssuer;
use gnt_transports::{Pem, call_failure, check_issued_by};

use crate::config::{ClusterConfig, NodeConfig, Rollover};
use crate::error::MasterError;
use crate::identity::trust_bundle;
use crate::master::Master;
use crate::operations::probe::Membership;
use crate::operations::rpc_call::{fan_out_on, timed};
use crate::pki::fingerprint_of_pem;

/// Nodes renewed at once.
const RENEWALS_AT_ONCE: usize = 16;

/// A node renewed: what the configuration records of it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRenewal {
    /// The node.
    pub node: Hostname,
    /// The fingerprint of the certificate it presents.
    pub certificate_sha256: String,
    /// Whether that certificate is new (not only the ssconf that lists the master's).
    pub new_certificate: bool,
    /// A master candidate's new master certificate (PEM) and its fingerprint.
    master_certificate: Option<(String, String)>,
}

impl NodeRenewal {
    /// Records it in `config`: the node's certificates, and the node no longer pending.
    pub(super) fn apply(&self, config: &mut ClusterConfig) {
        if let Some(record) = config.nodes.get_mut(&self.node) {
            record
                .certificate_sha256
                .clone_from(&self.certificate_sha256);
            if let Some((pem, sha256)) = &self.master_certificate {
                record.master_certificate_pem.clone_from(pem);
                record.master_certificate_sha256.clone_from(sha256);
            }
        }
        if let Some(rollover) = &mut config.rollover {
            rollover.pending.remove(&self.node);
        }
    }
}

/// The fingerprints of the certificates `record`'s node may present with its own key: the
/// one the configuration lists, and one issued for a change of its secondary address that
/// was interrupted after the node installed it ([`crate::config::Readdress`]).
pub(crate) fn accepted_certificates(record: &NodeConfig) -> Vec<&str> {
    let mut accepted = vec![record.certificate_sha256.as_str()];
    if let Some(readdress) = &record.readdress
        && !readdress.certificate_sha256.is_empty()
    {
        accepted.push(readdress.certificate_sha256.as_str());
    }
    accepted
}

/// Why a node was not renewed, or a key not proven.
#[derive(Debug)]
pub(crate) enum NodeFailure {
    Call {
        step: &'static str,
        failure: CallFailure,
    },
    Master(MasterError),
}

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Call { step, failure } => write!(f, "{step}: {failure}"),
            Self::Master(error) => write!(f, "{}", Chain(error)),
        }
    }
}

impl<E: Into<MasterError>> From<E> for NodeFailure {
    fn from(error: E) -> Self {
        Self::Master(error.into())
    }
}

fn step(step: &'static str) -> impl Fn(tonic::Status) -> NodeFailure {
    let timeout = TimeoutClass::Fast.duration();
    move |status| NodeFailure::Call {
        step,
        failure: call_failure(&status, timeout),
    }
}

impl Master {
    /// Renews every online node `rollover` waits for; returns those renewed, and a warning
    /// per node that was not.
    pub(super) async fn renew_nodes(
        &self,
        config: &ClusterConfig,
        rollover: &Rollover,
    ) -> (Vec<NodeRenewal>, Vec<String>) {
        let targets: Vec<Hostname> = rollover
            .pending
            .iter()
            .filter(|name| config.nodes.get(*name).is_some_and(|n| !n.offline))
            .cloned()
            .collect();
        let results: Vec<(Hostname, Result<NodeRenewal, NodeFailure>)> =
            futures_util::stream::iter(targets)
                .map(|name| async move {
                    let result = self.renew_node(config, rollover, &name).await;
                    (name, result)
                })
                .buffer_unordered(RENEWALS_AT_ONCE)
                .collect()
                .await;
        let mut renewed = Vec::new();
        let mut warnings = Vec::new();
        for (name, result) in results {
            match result {
                Ok(done) => renewed.push(done),
                Err(failure) => warnings.push(format!(
                    "{name} is not renewed yet ({failure}); the renewal goes on when it answers"
                )),
            }
        }
        let offline = rollover
            .pending
            .iter()
            .filter(|name| config.nodes.get(*name).is_some_and(|n| n.offline));
        for name in offline {
            warnings.push(format!(
                "{name} is offline: it is renewed once it is marked online and answers"
            ));
        }
        renewed.sort_by(|a, b| a.node.cmp(&b.node));
        (renewed, warnings)
    }

    async fn renew_node(
        &self,
        config: &ClusterConfig,
        rollover: &Rollover,
        name: &Hostname,
    ) -> Result<NodeRenewal, NodeFailure> {
        let node = config
            .node(name)
            .ok_or_else(|| MasterError::UnknownNode(name.to_string()))?;
        let record = config
            .nodes
            .get(name)
            .ok_or_else(|| MasterError::UnknownNode(name.to_string()))?;
        let timeout = TimeoutClass::Fast.duration();
        let channel = self.channels.get(name.as_str(), node.addrs.primary)?;
        let mut client = NodeAgentClient::new(channel);
        if rollover.replaces_ca() {
            let ca_bundle_pem = trust_bundle(&self.paths, config)?;
            client
                .write_trust(timed(WriteTrustRequest { ca_bundle_pem }, timeout))
                .await
                .map_err(step("trusting the new CA"))?;
        }
        let ssconf = WriteSsconfRequest::from(&Published::new(config.ssconf()?, config.version()));
        client
            .write_ssconf(timed(ssconf, timeout))
            .await
            .map_err(step(
                "sending the ssconf that lists the new master certificate",
            ))?;
        if !rollover.node_certificates {
            return Ok(NodeRenewal {
                node: name.clone(),
                certificate_sha256: record.certificate_sha256.clone(),
                new_certificate: false,
                master_certificate: None,
            });
        }
        let (public_key, same_key) = if rollover.new_node_keys {
            let prepared = client
                .prepare_node_key(timed(PrepareNodeKeyRequest {}, timeout))
                .await
                .map_err(step("making a new key"))?;
            (prepared.into_inner().public_key, false)
        } else {
            let accepted = accepted_certificates(record);
            (
                self.presented_key(&node, &accepted, &rollover.issuing_ca_pem)
                    .await?,
                true,
            )
        };
        let ca = self.ca.get();
        let certificate_pem = ca
            .issue_node_certificate(&public_key, &node)
            .map_err(|e| MasterError::Issue(e.to_string()))?;
        let master_certificate = if record.master_candidate && *name != config.master_node {
            let pem = ca.issue_master_certificate(name, &public_key)?;
            Some((fingerprint_of_pem(&pem)?, pem)).map(|(sha256, pem)| (pem, sha256))
        } else {
            None
        };
        let installed = client
            .install_node_certificate(timed(
                InstallNodeCertificateRequest {
                    certificate_pem,
                    same_key,
                },
                timeout,
            ))
            .await
            .map_err(step("installing its new certificate"))?
            .into_inner();
        Ok(NodeRenewal {
            node: name.clone(),
            certificate_sha256: installed.certificate_sha256,
            new_certificate: true,
            master_certificate,
        })
    }

    /// The public key of the certificate `node` presents, which must be one of `accepted`
    /// (fingerprints the configuration lists for it, [`accepted_certificates`]): a
    /// certificate renewed for the same key is for that key.
    ///
    /// Or one that `issuing_ca_pem` issued (when not empty: the new CA of a renewal): an
    /// earlier attempt of this renewal installed it, and its master stopped (or the node's
    /// answer was lost) before the commit. In a renewal that keeps the keys that CA
    /// certifies only keys pinned this way, and the probe checked that the certificate
    /// names this node, so the key is still the node's. Refusing it left the node pending
    /// for good, and the old CA and master key trusted.
    pub(crate) async fn presented_key(
        &self,
        node: &gnt_core::node::Node,
        accepted: &[&str],
        issuing_ca_pem: &str,
    ) -> Result<Vec<u8>, NodeFailure> {
        let issued_by_new_ca = |certificate: &rustls::pki_types::CertificateDer<'static>| {
            !issuing_ca_pem.is_empty()
                && check_issued_by(
                    &Pem::from_bytes("the CA this renewal made", issuing_ca_pem.as_bytes()),
                    std::slice::from_ref(certificate),
                )
                .is_ok()
        };
        match self.probe_membership(node).await? {
            Membership::Member {
                certificate_sha256: presented,
                public_key,
                certificate,
                ..
            } if accepted.iter().any(|a| presented.eq_ignore_ascii_case(a))
                || issued_by_new_ca(&certificate) =>
            {
                Ok(public_key)
            }
            Membership::Member {
                certificate_sha256: presented,
                ..
            } => Err(MasterError::Issue(format!(
                "it presents certificate {presented}, not the {} the configuration lists",
                accepted.first().copied().unwrap_or_default()
            ))
            .into()),
            Membership::NotMember(why) | Membership::Unreachable(why) => Err(NodeFailure::Call {
                step: "reading its certificate",
                failure: CallFailure::Unreachable(why),
            }),
        }
    }

    /// Tells every online node to trust `bundle` (PEM); one warning per node that was not
    /// told, offline ones included.
    pub(super) async fn write_trust(&self, config: &ClusterConfig, bundle: &str) -> Vec<String> {
        let results = fan_out_on(
            &self.channels,
            config,
            None,
            TimeoutClass::Fast,
            |channel, timeout| {
                let request = timed(
                    WriteTrustRequest {
                        ca_bundle_pem: bundle.to_owned(),
                    },
                    timeout,
                );
                async move {
                    NodeAgentClient::new(channel)
                        .write_trust(request)
                        .await
                        .map(drop)
                        .map_err(|status| call_failure(&status, timeout))
                }
            },
            |_| {},
        )
        .await;
        // An offline node is not called, so it keeps the retired CA as surely as one that
        // did not answer: it is named too, or nothing would ever say so.
        results
            .into_iter()
            .filter_map(|r| match r.outcome {
                Ok(()) => None,
                Err(CallFailure::Offline) => Some(format!(
                    "{} is offline, so it still trusts the retired CA: once it is online again, run `gnt cluster renew-crypto --new-cluster-certificate` again",
                    r.key
                )),
                Err(failure) => Some(format!(
                    "{} still trusts the retired CA ({failure}): run `gnt cluster renew-crypto --new-cluster-certificate` again once it answers",
                    r.key
                )),
            })
            .collect()
    }
}
