//! `gnt cluster verify`'s cluster IP check (Ganeti's `NV_MASTERIP`): the master's agent
//! must report the cluster IP as its own (`HasIpAddress`), and every other online master
//! candidate (the nodes that may have to take it over, and that reach the master by it)
//! must reach it on the node port (`TcpPing`; a refusal counts as reached, as in Ganeti). Ganeti
//! reports both under `ENODENET`; they have a code of their own here (`ENODEMASTERIP`) so
//! that a script can tell a missing cluster IP from a broken network.
//!
//! A node whose agent does not answer is left to the network test, which reports it.

use std::net::IpAddr;
use std::time::Duration;

use gnt_core::runner::TimeoutClass;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_proto::node::v1::{HasIpAddressRequest, PingOutcome, TcpPingRequest, TcpPingResponse};

use super::{Check, Problem, Severity};
use crate::config::ClusterConfig;
use crate::master::Master;
use crate::operations::rpc_call::{failed, fan_out_on, timed};

/// How long each node's connection to the cluster IP may take.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

impl Master {
    /// The cluster IP's problems in `config`'s cluster.
    pub(super) async fn master_ip_problems(&self, config: &ClusterConfig) -> Vec<Problem> {
        let ip = config.master_ip;
        let others: Vec<_> = config.candidates().map(|(name, _)| name.clone()).collect();
        let request = TcpPingRequest {
            target: ip.to_string(),
            port: u32::from(config.node_port),
            source: String::new(),
            timeout: prost_types::Duration::try_from(REACH_TIMEOUT).ok(),
            live_port_needed: false,
        };
        let pings = fan_out_on(
            &self.channels,
            config,
            Some(&others),
            TimeoutClass::Fast,
            |channel, timeout| {
                let request = timed(request.clone(), timeout);
                async move {
                    NodeAgentClient::new(channel)
                        .tcp_ping(request)
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(failed(timeout))
                }
            },
            |_| {},
        );
        let (owned, pings) = tokio::join!(self.master_owns(config), pings);
        let mut problems = Vec::new();
        if owned == Some(false) {
            problems.push(Problem {
                check: Check::MasterIp,
                severity: Severity::Error,
                node: config.master_node.clone(),
                target: None,
                network: None,
                message: format!(
                    "master IP {ip} not configured on the master; `gnt cluster activate-master-ip` configures it"
                ),
            });
        }
        for ping in pings {
            let Ok(answer) = ping.outcome else { continue };
            if !answer.alive {
                problems.push(Problem {
                    check: Check::MasterIp,
                    severity: Severity::Error,
                    node: ping.key,
                    target: None,
                    network: None,
                    message: unreached(ip, config.node_port, &answer),
                });
            }
        }
        problems
    }

    /// Whether the master's agent reports the cluster IP as its own; `None` if it does not
    /// answer.
    async fn master_owns(&self, config: &ClusterConfig) -> Option<bool> {
        let master = config.node(&config.master_node)?;
        let channel = self
            .channels
            .get(master.name.as_str(), master.addrs.primary)
            .ok()?;
        let request = HasIpAddressRequest {
            address: config.master_ip.to_string(),
        };
        NodeAgentClient::new(channel)
            .has_ip_address(timed(request, REACH_TIMEOUT))
            .await
            .ok()
            .map(|answer| answer.into_inner().owned)
    }
}

/// Why a node did not reach the cluster IP, and what to do.
fn unreached(ip: IpAddr, port: u16, answer: &TcpPingResponse) -> String {
    let why = match answer.outcome() {
        PingOutcome::TimedOut => format!("no answer within {}s", REACH_TIMEOUT.as_secs()),
        _ if !answer.detail.is_empty() => answer.detail.clone(),
        outcome => outcome.as_str_name().to_lowercase(),
    };
    format!(
        "cannot reach the master IP {ip} on port {port} ({why}); if the master does not have it, `gnt cluster activate-master-ip` configures it"
    )
}
