//! `gnt node modify --secondary-ip IPV4`: a node's new secondary (replication) address,
//! with the checks of Ganeti's LUNodeSetParams, and the node's certificate reissued for it.
//!
//! A node certificate names the node's addresses (IP SANs, [`crate::pki`]), so the address
//! and the certificate change together. The configuration records each node's certificate
//! fingerprint, and the master calls nodes by name (never by fingerprint), so the order is:
//!
//! 1. the checks: IPv4, a dual-homed cluster (homing must stay the master's), not the
//!    node's primary, no other node's address, reachable from the master's secondary by
//!    TCP ping (node add's check), or, for the master, an address of the master host;
//! 2. the node proves its key (the certificate it presents is the recorded one), and the
//!    CA issues a certificate for that key and the new addresses;
//! 3. commit: the configuration records the certificate being installed
//!    ([`crate::config::Readdress`]), the address not yet;
//! 4. the node installs the certificate (same key);
//! 5. commit: the new address and the new fingerprint; then ssconf to every node.
//!
//! A stop at any point leaves a node the master still talks to (the CA and its name are
//! unchanged), and a state that running the same change again finishes: before 4 the node
//! presents the recorded certificate, after 4 the one of step 3, and both are accepted as
//! proof of its key. Verify names a change left half-way, and the command that finishes it.
//!
//! An offline node cannot be called: its address is committed alone, with the certificate
//! owed ([`crate::config::Readdress`] without a fingerprint); verify and `--offline no`
//! say to run the change again once it is online, which reissues it. Candidates' master
//! certificates name no address, so they stay as they are.

use std::net::IpAddr;

use gnt_core::netutils::owns_address;
use gnt_core::node::{Node, NodeAddrs};
use gnt_core::runner::TimeoutClass;
use gnt_proto::node::v1::InstallNodeCertificateRequest;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_transports::call_failure;
use gnt_transports::join::CertificateIssuer;

use super::Changed;
use super::node_add::{check_reachable, check_unique, master_of};
use super::renew_crypto::node::accepted_certificates;
use super::rpc_call::timed;
use crate::config::{ClusterConfig, NodeConfig, Readdress};
use crate::error::MasterError;
use crate::jobs::{Progress, Step};
use crate::master::{Master, NodeView};
use crate::pki::fingerprint_of_pem;

impl Master {
    /// Gives node `view` the secondary address `ip` (see the module docs).
    pub(super) async fn change_secondary(
        &self,
        view: NodeView,
        ip: IpAddr,
        progress: &dyn Progress,
    ) -> Result<(NodeView, Changed), MasterError> {
        let config = self.config.snapshot().await;
        let target = Node {
            name: view.name.clone(),
            addrs: NodeAddrs {
                primary: view.node.primary_ip,
                secondary: ip,
            },
        };
        check_secondary(&config, &target)?;
        if view.master {
            if !owns_address(ip) {
                return Err(MasterError::SecondaryNotOwned(ip));
            }
        } else if !view.node.offline {
            check_reachable(&config, &target).await?;
        }
        let mut warnings = Vec::new();
        let committed = if view.node.offline {
            warnings.push(format!(
                "{name} is offline, so its certificate still names its previous secondary ip: once it is online, run `gnt node modify --secondary-ip {ip} {name}` to reissue it",
                name = view.name
            ));
            self.commit_secondary(&target, String::new()).await?
        } else {
            self.readdress_online(&view, &target).await?
        };
        let node = committed
            .nodes
            .get(&view.name)
            .cloned()
            .ok_or_else(|| MasterError::UnknownNode(view.name.to_string()))?;
        tracing::info!(node = %view.name, secondary = %ip, certificate = %node.certificate_sha256, serial = committed.serial, "secondary ip changed");
        progress.step_after_commit(Step::Committed {
            serial: committed.serial,
        });
        let changed = self.distribute_change(&committed, warnings, progress).await;
        Ok((NodeView { node, ..view }, changed))
    }

    /// Steps 2 to 5 of the module docs, for an online node; the configuration committed.
    async fn readdress_online(
        &self,
        view: &NodeView,
        target: &Node,
    ) -> Result<ClusterConfig, MasterError> {
        let not_reissued = |why: String| MasterError::NotReissued {
            node: view.name.clone(),
            why,
        };
        let public_key = self
            .presented_key(&view.node(), &accepted_certificates(&view.node), "")
            .await
            .map_err(|failure| not_reissued(failure.to_string()))?;
        let certificate_pem = self
            .ca
            .get()
            .issue_node_certificate(&public_key, target)
            .map_err(|e| MasterError::Issue(e.to_string()))?;
        let issued = fingerprint_of_pem(&certificate_pem)?;
        let staged = self
            .update_target(target, |record| {
                record.readdress = Some(Readdress {
                    secondary_ip: target.addrs.secondary,
                    certificate_sha256: issued.clone(),
                });
            })
            .await?;
        let timeout = TimeoutClass::Fast.duration();
        let installed = match self
            .channels
            .get(target.name.as_str(), target.addrs.primary)
        {
            Ok(channel) => NodeAgentClient::new(channel)
                .install_node_certificate(timed(
                    InstallNodeCertificateRequest {
                        certificate_pem,
                        same_key: true,
                    },
                    timeout,
                ))
                .await
                .map(|reply| reply.into_inner().certificate_sha256)
                .map_err(|status| call_failure(&status, timeout).to_string()),
            Err(error) => Err(error.to_string()),
        };
        let installed = match installed {
            Ok(installed) => installed,
            Err(why) => {
                // The staged record is a commit like any other: the nodes get its serial (a
                // node that misses it is the converger's).
                for missed in self.redistribute(&staged).await {
                    tracing::warn!(%missed, "after a change of secondary ip that failed");
                }
                return Err(not_reissued(format!("installing it: {why}")));
            }
        };
        let installed = if installed.is_empty() {
            issued
        } else {
            installed
        };
        self.commit_secondary(target, installed).await
    }

    /// Commits `target`'s secondary address, with the certificate `certificate_sha256` it
    /// presents now (empty: the certificate is owed, its old one still recorded).
    async fn commit_secondary(
        &self,
        target: &Node,
        certificate_sha256: String,
    ) -> Result<ClusterConfig, MasterError> {
        let ip = target.addrs.secondary;
        self.update_target(target, |record| {
            record.secondary_ip = ip;
            if certificate_sha256.is_empty() {
                record.readdress = Some(Readdress {
                    secondary_ip: ip,
                    certificate_sha256: String::new(),
                });
            } else {
                record.certificate_sha256.clone_from(&certificate_sha256);
                record.readdress = None;
            }
        })
        .await
    }

    /// Commits `change` to `target`'s record; the checks passed before must still hold.
    async fn update_target(
        &self,
        target: &Node,
        change: impl Fn(&mut NodeConfig),
    ) -> Result<ClusterConfig, MasterError> {
        let ((), committed) = self
            .config
            .update(|c| {
                check_secondary(c, target)?;
                let record = c
                    .nodes
                    .get_mut(&target.name)
                    .ok_or_else(|| MasterError::UnknownNode(target.name.to_string()))?;
                change(record);
                Ok::<_, MasterError>(())
            })
            .await?;
        Ok(committed)
    }
}

/// The checks of `target`'s new addresses that need only `config`: homing that stays the
/// master's (Ganeti allows a change of homing only with `--force`, on the master; this
/// does not), and no address of another node.
fn check_secondary(config: &ClusterConfig, target: &Node) -> Result<(), MasterError> {
    if !target.addrs.secondary.is_ipv4() {
        return Err(MasterError::SecondaryNotIpv4(
            target.addrs.secondary.to_string(),
        ));
    }
    if master_of(config)?.addrs().single_homed() {
        return Err(MasterError::SingleHomedCluster);
    }
    if target.addrs.single_homed() {
        return Err(MasterError::SecondaryIsPrimary(target.addrs.primary));
    }
    check_unique(config, &target.addrs, Some(&target.name))
}

#[cfg(test)]
mod tests;
