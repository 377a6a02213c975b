//! `gnt cluster verify`: the network test, where every online node pings every online node
//! on both networks (Ganeti 3.x tests the secondary only when the primary fails, hiding a
//! broken replication network), and every failed ping or silent node is a problem
//! (`ENODENET`); and the ssconf check, where every online node whose ssconf serial is not
//! the configuration's is a problem (`ENODESSCONF`); and the cluster IP check
//! (`ENODEMASTERIP`, `verify/master_ip.rs`): the master has it, every other online node
//! reaches it; and the certificate check (`ECLUSTERCERT`, `verify/certificates.rs`): no
//! certificate in use near its expiry, and every node presenting the certificate the
//! configuration records. All run at once.
//!
//! Each problem has a [`Severity`], as in Ganeti: an error fails the verification; a
//! warning (a certificate expiring within 30 days, or one behind its node's secondary address) is reported and does not.
//!
//! A node that does not tell its serial is not reported twice: the network test reports it
//! silent already. A node is reported ahead of the configuration only if it is ahead of the
//! configuration as it is once the answers are in, so a change committed during the check
//! is not mistaken for an older configuration.

use std::time::Duration;

use gnt_core::netutils::Hostname;
use gnt_core::node::{Network, Node};
use gnt_core::runner::{CallFailure, NodeResult, TimeoutClass};
use gnt_core::ssconf::nice_cmp;
use gnt_proto::cluster::v1::NodeAddresses;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_proto::node::v1::{NetworkTestRequest, NetworkVerdict, VersionRequest};

mod certificates;
mod master_ip;

use super::converge::{NodeReport, SerialCheck};
use super::rpc_call::{failed, fan_out_on, timed};
use crate::config::ClusterConfig;
use crate::master::Master;

/// Timeout of each ping of `cluster verify`.
const VERIFY_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Which check found a problem, as Ganeti's error codes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `ENODENET`: the network test.
    NodeNet,
    /// `ENODESSCONF`: the node's ssconf serial.
    NodeSsconf,
    /// `ENODEMASTERCOPY`: a master candidate's copy.
    NodeMasterCopy,
    /// `ENODEMASTERIP`: the cluster IP, on the master and from the other nodes.
    MasterIp,
    /// `ECLUSTERCERT`: a certificate in use near its expiry or past it, or not the one the
    /// configuration records.
    ClusterCert,
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Fails the verification.
    Error,
    /// Needs attention soon; the verification still passes.
    Warning,
}

/// One failed check of `cluster verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The check.
    pub check: Check,
    /// How bad it is.
    pub severity: Severity,
    /// The node that ran the test, or that did not answer.
    pub node: Hostname,
    /// The node it could not reach, if the problem is a ping.
    pub target: Option<String>,
    /// The network of that ping.
    pub network: Option<Network>,
    /// What failed.
    pub message: String,
}

/// What `cluster verify` found.
#[derive(Debug, Clone)]
pub struct Verification {
    /// Nodes that ran the network test.
    pub nodes_checked: usize,
    /// Every failed check, by node: errors and warnings.
    pub problems: Vec<Problem>,
    /// The configuration serial the nodes' ssconf was compared with.
    pub serial: u64,
}

impl Master {
    /// Runs the network test, the ssconf, cluster IP and certificate checks on every online
    /// node (see the module docs).
    pub async fn verify(&self) -> Verification {
        let config = self.config.snapshot().await;
        let online: Vec<NodeAddresses> = config
            .nodes
            .iter()
            .filter(|(_, n)| !n.offline)
            .map(|(name, n)| {
                NodeAddresses::from(&Node {
                    name: name.clone(),
                    addrs: n.addrs(),
                })
            })
            .collect();
        let port = u32::from(config.node_port);
        let network_test = fan_out_on(
            &self.channels,
            &config,
            None,
            TimeoutClass::Fast,
            |channel, timeout| {
                let request = timed(
                    NetworkTestRequest {
                        nodes: online.clone(),
                        port,
                        timeout: prost_types::Duration::try_from(VERIFY_PING_TIMEOUT).ok(),
                    },
                    timeout,
                );
                async move {
                    NodeAgentClient::new(channel)
                        .network_test(request)
                        .await
                        .map(|r| r.into_inner().verdicts)
                        .map_err(failed(timeout))
                }
            },
            |_| {},
        );
        let asking = VersionRequest {
            certificates: true,
            ..VersionRequest::default()
        };
        let (results, reports, master_ip) = tokio::join!(
            network_test,
            self.node_reports_asking(&config, None, asking),
            self.master_ip_problems(&config)
        );
        let mut problems = copy_problems(&config, &reports);
        problems.extend(self.ssconf_problems(config.serial, &reports).await);
        problems.extend(master_ip);
        problems.extend(self.certificate_problems(&config, &reports));
        let mut checked = 0;
        for result in results {
            match result.outcome {
                Err(CallFailure::Offline) => {}
                Err(failure) => problems.push(Problem {
                    check: Check::NodeNet,
                    severity: Severity::Error,
                    node: result.key,
                    target: None,
                    network: None,
                    message: format!("node hasn't returned node tcp connectivity data: {failure}"),
                }),
                Ok(verdicts) => {
                    checked += 1;
                    let failed = verdicts.into_iter().filter(|v| !v.reachable);
                    problems.extend(failed.map(|verdict| unreachable(&result.key, verdict)));
                }
            }
        }
        problems.sort_by(|a, b| {
            nice_cmp(a.node.as_str(), b.node.as_str()).then_with(|| a.message.cmp(&b.message))
        });
        Verification {
            nodes_checked: checked,
            problems,
            serial: config.serial,
        }
    }

    /// The nodes among `reports` whose ssconf is not that of configuration `serial`.
    async fn ssconf_problems(
        &self,
        serial: u64,
        reports: &[NodeResult<Hostname, NodeReport>],
    ) -> Vec<Problem> {
        let answers: Vec<(Hostname, SerialCheck)> = reports
            .iter()
            .filter_map(|r| {
                let held = r.outcome.as_ref().ok()?.ssconf.serial;
                Some((r.key.clone(), SerialCheck::of(held, serial)))
            })
            .collect();
        let ahead = answers
            .iter()
            .any(|(_, check)| matches!(check, SerialCheck::Ahead { .. }));
        let latest = if ahead {
            self.config.snapshot().await.serial
        } else {
            serial
        };
        let problem = |node, message| Problem {
            check: Check::NodeSsconf,
            severity: Severity::Error,
            node,
            target: None,
            network: None,
            message,
        };
        answers
            .into_iter()
            .filter_map(|(node, check)| match check {
                SerialCheck::Current => None,
                SerialCheck::Lags { node: held } => Some(problem(
                    node,
                    format!(
                        "ssconf is out of date: serial {held}, the configuration's is {serial}; gnt-masterd retries the node, `gnt cluster redist-conf` sends it now"
                    ),
                )),
                SerialCheck::Ahead { node: held } if held > latest => Some(problem(
                    node,
                    format!(
                        "ssconf is newer than the configuration: serial {held}, the configuration's is {latest}; the master's configuration is an older copy"
                    ),
                )),
                SerialCheck::Ahead { .. } => None,
            })
            .collect()
    }
}

/// The online master candidates among `reports` whose master copy is not `config`'s, and
/// a master that is no candidate (Ganeti's "Master node is not a master candidate").
fn copy_problems(
    config: &ClusterConfig,
    reports: &[NodeResult<Hostname, NodeReport>],
) -> Vec<Problem> {
    let problem = |node: &Hostname, message: String| Problem {
        check: Check::NodeMasterCopy,
        severity: Severity::Error,
        node: node.clone(),
        target: None,
        network: None,
        message,
    };
    let mut problems = Vec::new();
    if config.master().is_some_and(|m| !m.master_candidate) {
        problems.push(problem(
            &config.master_node,
            "Master node is not a master candidate".to_owned(),
        ));
    }
    let version = config.version();
    for result in reports {
        let Ok(report) = &result.outcome else {
            continue; // the network test reports a node that does not answer
        };
        let candidate = config.candidates().any(|(name, _)| *name == result.key);
        if candidate && report.copy != version {
            problems.push(problem(
                &result.key,
                format!(
                    "its master copy is {}, the configuration is {version}: it could not take over with the latest changes; gnt-masterd retries the node, `gnt cluster redist-conf` sends it now",
                    report.copy
                ),
            ));
        }
    }
    problems
}

/// The problem a failed ping of `node`'s network test is.
fn unreachable(node: &Hostname, verdict: NetworkVerdict) -> Problem {
    // Every verdict names its network; one that does not is reported as the primary's,
    // without a network of its own.
    let network = Network::try_from(verdict.network()).ok();
    Problem {
        check: Check::NodeNet,
        severity: Severity::Error,
        node: node.clone(),
        message: format!(
            "tcp communication with node '{}' on the {} network failed: {}",
            verdict.node,
            network.unwrap_or(Network::Primary),
            verdict.failure
        ),
        target: Some(verdict.node),
        network,
    }
}
