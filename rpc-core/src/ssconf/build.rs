//! The typed constructor of a set: what every node of a cluster gets, derived from the
//! facts the master holds. Node lists are sorted the way Ganeti sorts names (`node2`
//! before `node10`); facts that break the policy's rule are refused, never written.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::order::nice_cmp;
use super::{Location, SsconfError, SsconfKey, SsconfSet};
use crate::netutils::Hostname;
use crate::node::{NodeAddrs, NodeAddrsError};
use crate::policy::{IpFamily, IpPolicy};

/// One node, as the master describes it to build a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// The node's name.
    pub name: Hostname,
    /// Its addresses.
    pub addresses: NodeAddrs,
    /// Whether it is marked offline.
    pub offline: bool,
}

/// The cluster facts a set is built from.
#[derive(Debug, Clone)]
pub struct ClusterFacts<'a> {
    /// The cluster's name.
    pub cluster_name: &'a Hostname,
    /// The IP-version policy.
    pub policy: IpPolicy,
    /// The master node's name; it must be one of `nodes`.
    pub master: &'a Hostname,
    /// The cluster (master) IP address, of the primary family.
    pub master_ip: IpAddr,
    /// The master netmask, within the primary family's bounds.
    pub master_netmask: u8,
    /// Every node of the cluster, the master included.
    pub nodes: &'a [NodeFacts],
    /// The software release, e.g. `0.1.0`.
    pub release_version: &'a str,
    /// SHA-256 fingerprint of the master's client certificate (colon-separated hex), which
    /// nodes accept as the only caller of their procedures; written to
    /// `master_candidates_certs` as `<master>=<fingerprint>`. Ganeti keys this by node
    /// UUID and uses SHA-1; the name and SHA-256 are ours.
    pub master_certificate_sha256: Option<&'a str>,
    /// The master candidates other than the master, each with the fingerprint of its own
    /// master certificate; with the master, they are `master_candidates`,
    /// `master_candidates_ips` and `master_candidates_certs`. Each must be one of `nodes`.
    pub candidates: &'a [CandidateFacts<'a>],
}

/// A master candidate other than the master.
#[derive(Debug, Clone, Copy)]
pub struct CandidateFacts<'a> {
    /// Its name.
    pub name: &'a Hostname,
    /// SHA-256 fingerprint of its master certificate (colon-separated hex).
    pub certificate_sha256: &'a str,
}

fn invalid(key: SsconfKey, reason: String) -> SsconfError {
    SsconfError::Malformed {
        location: Location::Key(key),
        line: 1,
        reason,
    }
}

impl SsconfSet {
    /// The set every node of a cluster gets, derived from the cluster's facts. Refuses
    /// facts that contradict the policy (node addresses that break its rule, a cluster IP of
    /// the other family, a netmask out of bounds) and a master that is not a node.
    pub fn from_cluster(facts: &ClusterFacts<'_>) -> Result<Self, SsconfError> {
        let policy = facts.policy;
        let mut nodes: Vec<&NodeFacts> = facts.nodes.iter().collect();
        nodes.sort_by(|a, b| nice_cmp(a.name.as_str(), b.name.as_str()));
        let mut seen = BTreeSet::new();
        for node in &nodes {
            if !seen.insert(&node.name) {
                return Err(invalid(
                    SsconfKey::NodeList,
                    format!("node '{}' is listed twice", node.name),
                ));
            }
            let NodeAddrs { primary, secondary } = node.addresses;
            if let Err(e) = policy.node_addrs(primary, Some(secondary)) {
                let key = match e {
                    NodeAddrsError::PrimaryFamily { .. } => SsconfKey::NodePrimaryIps,
                    _ => SsconfKey::NodeSecondaryIps,
                };
                return Err(invalid(key, format!("node '{}': {e}", node.name)));
            }
        }
        let master = nodes
            .iter()
            .find(|n| &n.name == facts.master)
            .ok_or_else(|| {
                invalid(
                    SsconfKey::MasterNode,
                    format!("master '{}' is not a node", facts.master),
                )
            })?;
        let primary_family = policy.primary_family();
        if IpFamily::of(&facts.master_ip) != primary_family {
            return Err(invalid(
                SsconfKey::MasterIp,
                format!("{} is not an {primary_family} address", facts.master_ip),
            ));
        }
        let netmask = policy
            .validate_master_netmask(u32::from(facts.master_netmask))
            .map_err(|e| invalid(SsconfKey::MasterNetmask, e.to_string()))?;

        let mut set = Self::new();
        set.insert(SsconfKey::ClusterName, facts.cluster_name.as_str())?;
        set.insert(SsconfKey::PrimaryIpFamily, policy.af_number().to_string())?;
        set.insert(SsconfKey::MasterNode, facts.master.as_str())?;
        set.insert(SsconfKey::MasterIp, facts.master_ip.to_string())?;
        set.insert(SsconfKey::MasterNetmask, netmask.to_string())?;
        // The master first, then the other candidates in name order.
        let mut candidates: Vec<(&NodeFacts, Option<&str>)> =
            vec![(master, facts.master_certificate_sha256)];
        let mut others: Vec<&CandidateFacts<'_>> = facts.candidates.iter().collect();
        others.sort_by(|a, b| nice_cmp(a.name.as_str(), b.name.as_str()));
        for candidate in others {
            let node = nodes
                .iter()
                .find(|n| &n.name == candidate.name)
                .filter(|n| &n.name != facts.master)
                .ok_or_else(|| {
                    invalid(
                        SsconfKey::MasterCandidates,
                        format!(
                            "candidate '{}' is not a node other than the master",
                            candidate.name
                        ),
                    )
                })?;
            candidates.push((node, Some(candidate.certificate_sha256)));
        }
        set.insert_lines(
            SsconfKey::MasterCandidates,
            candidates.iter().map(|(n, _)| n.name.as_str()),
        )?;
        set.insert_lines(
            SsconfKey::MasterCandidatesIps,
            candidates
                .iter()
                .map(|(n, _)| n.addresses.primary.to_string()),
        )?;
        set.insert(SsconfKey::ReleaseVersion, facts.release_version)?;
        let certificates: Vec<String> = candidates
            .iter()
            .filter_map(|(n, fingerprint)| fingerprint.map(|f| format!("{}={f}", n.name)))
            .collect();
        if !certificates.is_empty() {
            set.insert_lines(SsconfKey::MasterCandidatesCerts, certificates)?;
        }
        set.insert_lines(SsconfKey::NodeList, nodes.iter().map(|n| n.name.as_str()))?;
        set.insert_lines(
            SsconfKey::OnlineNodes,
            nodes.iter().filter(|n| !n.offline).map(|n| n.name.as_str()),
        )?;
        set.insert_lines(
            SsconfKey::OfflineNodes,
            nodes.iter().filter(|n| n.offline).map(|n| n.name.as_str()),
        )?;
        set.insert_lines(
            SsconfKey::NodePrimaryIps,
            nodes
                .iter()
                .map(|n| format!("{} {}", n.name, n.addresses.primary)),
        )?;
        set.insert_lines(
            SsconfKey::NodeSecondaryIps,
            nodes
                .iter()
                .map(|n| format!("{} {}", n.name, n.addresses.secondary)),
        )?;
        Ok(set)
    }
}
