//! What `gnt` prints: tables and JSON, the token instructions, verify's report, and the
//! progress line of long calls.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use gnt_core::policy::IpPolicy;
use gnt_proto::master::v1::{
    AddNodeResponse, CallStatus, ClusterInfoResponse, CreateJoinTokenResponse, JoinTokenInfo,
    NetworkKind, NodeCallResult, RedistributeConfigResponse, VerifyClusterResponse, VerifyCode,
    VerifySeverity,
};
use serde_json::json;

use crate::config::ClusterConfig;
use crate::operations::utc;
use crate::pki::Human;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For programs.
    Json,
}

/// The policy a cluster-info answer names, for people.
fn policy_name(version: i32) -> String {
    gnt_proto::cluster::v1::PrimaryIpVersion::try_from(version)
        .ok()
        .and_then(|wire| IpPolicy::try_from(wire).ok())
        .map_or_else(|| "unknown".to_owned(), |policy| policy.to_string())
}

pub(super) fn initialised(config: &ClusterConfig, state_dir: &Path) {
    let master = config.master();
    println!(
        "Cluster {} initialised ({}).",
        config.cluster_name, config.policy
    );
    if let Some(master) = master {
        println!(
            "  master node: {} (primary {}, secondary {})",
            config.master_node, master.primary_ip, master.secondary_ip
        );
    }
    println!(
        "  cluster IP:  {}/{} on {}",
        config.master_ip, config.master_netmask, config.master_netdev
    );
    println!(
        "  state:       {} (configuration serial {})",
        state_dir.display(),
        config.serial
    );
    println!(
        "  lifetimes:   certificates {}, the CA {}",
        Human(config.certificate_validity()),
        Human(config.ca_validity())
    );
    println!("Now start the daemons on this host:");
    println!("  gnt-noded --state-dir {}", state_dir.display());
    println!("  gnt-masterd --state-dir {}", state_dir.display());
}

pub(super) fn cluster_info(info: &ClusterInfoResponse, output: Output) {
    let master = info.master.clone().unwrap_or_default();
    if output == Output::Json {
        let value = json!({
            "cluster_name": info.cluster_name,
            "primary_ip_version": info.primary_ip_version,
            "master_node": master.name,
            "master_primary_ip": master.primary_ip,
            "master_secondary_ip": master.secondary_ip,
            "master_ip": info.master_ip,
            "master_netmask": info.master_netmask,
            "master_netdev": info.master_netdev,
            "node_port": info.node_port,
            "node_count": info.node_count,
            "config_serial": info.config_serial,
            "master_epoch": info.master_epoch,
            "candidate_pool_size": info.candidate_pool_size,
        });
        println!("{value:#}");
        return;
    }
    println!("Cluster name:        {}", info.cluster_name);
    println!(
        "Primary IP version:  {} ({})",
        info.primary_ip_version,
        policy_name(info.primary_ip_version)
    );
    println!(
        "Master node:         {} (primary {}, secondary {})",
        master.name, master.primary_ip, master.secondary_ip
    );
    let netdev = if info.master_netdev.is_empty() {
        "the device holding the master's primary address"
    } else {
        info.master_netdev.as_str()
    };
    println!(
        "Cluster IP:          {}/{} on {netdev}",
        info.master_ip, info.master_netmask
    );
    println!("Node agent port:     {}", info.node_port);
    println!("Nodes:               {}", info.node_count);
    println!("Configuration serial: {}", info.config_serial);
    println!("Master epoch:        {}", info.master_epoch);
    println!("Candidate pool size: {}", info.candidate_pool_size);
}

/// `gnt node token list`: a line per token, never a secret.
pub(super) fn tokens(tokens: &[JoinTokenInfo], output: Output) {
    let now = gnt_core::clock::unix_now();
    let status = |t: &JoinTokenInfo| {
        if !t.used_by.is_empty() {
            format!("used by {}", t.used_by)
        } else if t.expires_at_unix <= now {
            "expired".to_owned()
        } else {
            "unused".to_owned()
        }
    };
    if output == Output::Json {
        let list: Vec<_> = tokens
            .iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "expires_at": utc(t.expires_at_unix),
                    "used_by": (!t.used_by.is_empty()).then_some(t.used_by.as_str()),
                    "status": status(t),
                })
            })
            .collect();
        println!("{:#}", serde_json::Value::Array(list));
        return;
    }
    let rows: Vec<[String; 3]> = tokens
        .iter()
        .map(|t| [t.id.clone(), utc(t.expires_at_unix), status(t)])
        .collect();
    table(&["ID", "Expires", "Status"], &rows);
}

pub(super) fn token(token: &CreateJoinTokenResponse) {
    println!(
        "Join token (single use, valid until {}):",
        utc(token.expires_at_unix)
    );
    println!("  {}", token.token);
    println!();
    println!("On the new node, start the agent with it:");
    println!("  GNT_JOIN_TOKEN={} gnt-noded", token.token);
    println!("(or put the token in a file only root can read and use --join-token-file FILE)");
    println!();
    println!("Then, on this host:");
    println!(
        "  gnt node add --join-token {} [-s SECONDARY_IPV4] NODE_NAME",
        token.token
    );
}

pub(super) fn added(added: &AddNodeResponse, readd: bool) {
    let node = added.node.clone().unwrap_or_default();
    let addresses = node.addresses.unwrap_or_default();
    println!(
        "Node {} {} (primary {}, secondary {}); configuration serial {}.",
        addresses.name,
        if readd { "re-added" } else { "added" },
        addresses.primary_ip,
        addresses.secondary_ip,
        added.config_serial
    );
    warnings(&added.warnings);
}

/// A modified node's role in one sentence.
pub(super) fn modified(node: &gnt_proto::master::v1::NodeRecord) -> String {
    let addresses = node.addresses.clone().unwrap_or_default();
    let role = if node.offline {
        "offline"
    } else if node.master_candidate {
        "online and a master candidate"
    } else if node.drained {
        "online and drained"
    } else {
        "online"
    };
    format!("Node {} is now {role}.", addresses.name)
}

pub(super) fn warnings(warnings: &[String]) {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
}

pub(super) fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

pub(super) fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Verify's report: a line per problem, `WARNING:` or `ERROR:` and Ganeti's code, then the
/// summary; exit code 1 only if there is an error (warnings alone pass).
pub(super) fn verification(verdict: &VerifyClusterResponse) -> ExitCode {
    for problem in &verdict.problems {
        let code = match (problem.code(), problem.network()) {
            (VerifyCode::NodeSsconf, _) => "ENODESSCONF",
            (VerifyCode::NodeMasterCopy, _) => "ENODEMASTERCOPY",
            (VerifyCode::NodeMasterIp, _) => "ENODEMASTERIP",
            (VerifyCode::ClusterCert, _) => "ECLUSTERCERT",
            (_, NetworkKind::Primary) => "ENODENET:primary",
            (_, NetworkKind::Secondary) => "ENODENET:secondary",
            (_, NetworkKind::Unspecified) => "ENODENET",
        };
        // A master from before severities reported errors only.
        let severity = match problem.severity() {
            VerifySeverity::Warning => "WARNING",
            VerifySeverity::Error | VerifySeverity::Unspecified => "ERROR",
        };
        println!(
            "  - {severity}:{code}: node {}: {}",
            problem.node, problem.message
        );
    }
    let (summary, passed) = verdict_summary(verdict);
    println!("{summary}");
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Verify's last line, and whether the cluster passed (warnings alone pass).
fn verdict_summary(verdict: &VerifyClusterResponse) -> (String, bool) {
    let warnings = verdict
        .problems
        .iter()
        .filter(|p| p.severity() == VerifySeverity::Warning)
        .count();
    let errors = verdict.problems.len() - warnings;
    let warned = counted(warnings, "warning");
    if errors == 0 {
        let with = if warnings == 0 {
            String::new()
        } else {
            format!(" with {warned}")
        };
        let reach = match verdict.nodes_checked {
            1 => "1 node reaches itself on both networks and holds".to_owned(),
            n => format!("{n} nodes reach each other on both networks and hold"),
        };
        let line = format!(
            "Cluster verify passed{with}: {reach} the ssconf of configuration serial {}.",
            verdict.config_serial
        );
        (line, true)
    } else {
        let and = if warnings == 0 {
            String::new()
        } else {
            format!(" and {warned}")
        };
        // The nodes checked, not the nodes that found something: one cut link is found by
        // both its ends, and a node's wrong ssconf by the master.
        let line = format!(
            "Cluster verify failed: {}{and} ({} checked).",
            counted(errors, "problem"),
            counted(verdict.nodes_checked as usize, "node")
        );
        (line, false)
    }
}

/// `gnt cluster redist-conf`'s report: a line per node; exit code 1 if an online node did
/// not take the set.
pub(super) fn redistribution(done: RedistributeConfigResponse) -> ExitCode {
    println!(
        "Sending the ssconf of configuration serial {} to every online node:",
        done.config_serial
    );
    let mut results = done.nodes;
    call_results(&mut results, Output::Text);
    let failed = results
        .iter()
        .filter(|r| !matches!(r.status(), CallStatus::Ok | CallStatus::Offline))
        .count();
    if failed == 0 {
        return ExitCode::SUCCESS;
    }
    let (them, they) = if failed == 1 {
        ("it", "it does, or until it is")
    } else {
        ("them", "they do, or until they are")
    };
    println!(
        "{} did not take it; gnt-masterd retries {them} until {they} marked offline.",
        counted(failed, "node")
    );
    ExitCode::from(1)
}

/// `n` and `noun`, in the plural unless `n` is 1 (every noun counted here takes an s).
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn status_name(status: CallStatus) -> &'static str {
    match status {
        CallStatus::Ok => "ok",
        CallStatus::Offline => "offline",
        CallStatus::Refused => "refused",
        CallStatus::TimedOut => "timed out",
        CallStatus::TlsRejected => "TLS rejected",
        CallStatus::RemoteError => "remote error",
        CallStatus::Unreachable | CallStatus::Unspecified => "unreachable",
    }
}

pub(super) fn call_results(results: &mut [NodeCallResult], output: Output) {
    results.sort_by(|a, b| gnt_core::ssconf::nice_cmp(&a.node, &b.node));
    let elapsed = |r: &NodeCallResult| {
        r.elapsed
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or_default()
    };
    if output == Output::Json {
        let list: Vec<_> = results
            .iter()
            .map(|r| {
                let response: serde_json::Value =
                    serde_json::from_str(&r.response_json).unwrap_or(serde_json::Value::Null);
                json!({
                    "node": r.node,
                    "status": status_name(r.status()),
                    "elapsed_ms": elapsed(r).as_secs_f64() * 1000.0,
                    "response": response,
                    "failure": r.failure,
                })
            })
            .collect();
        println!("{:#}", serde_json::Value::Array(list));
        return;
    }
    let rows: Vec<[String; 4]> = results
        .iter()
        .map(|r| {
            let result = if r.status() == CallStatus::Ok {
                r.response_json.clone()
            } else {
                r.failure.clone()
            };
            [
                r.node.clone(),
                status_name(r.status()).to_owned(),
                format!("{:.1?}", elapsed(r)),
                result,
            ]
        })
        .collect();
    table(&["Node", "Status", "Time", "Result"], &rows);
}

/// The "still waiting" line of a call that takes more than a second.
pub(super) struct Progress {
    pending: Vec<String>,
    total: usize,
    shown: bool,
    terminal: bool,
}

impl Progress {
    pub(super) fn new(expected: Vec<String>) -> Self {
        Self {
            total: expected.len(),
            pending: expected,
            shown: false,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub(super) fn answered(&mut self, node: &str) {
        self.pending.retain(|n| n != node);
    }

    pub(super) fn show(&mut self, elapsed: Duration) {
        let mut waiting: Vec<&str> = self.pending.iter().map(String::as_str).take(3).collect();
        if self.pending.len() > 3 {
            waiting.push("...");
        }
        let line = format!(
            "[{:>4.1}s] {}/{} nodes answered; waiting for {}",
            elapsed.as_secs_f64(),
            self.total - self.pending.len(),
            self.total,
            waiting.join(", ")
        );
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else if elapsed.as_millis() % 5000 < 500 || !self.shown {
            // Not a terminal: a line now and then, not a flood.
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.shown = true;
    }

    pub(super) fn finish(&self) {
        if self.shown && self.terminal {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use gnt_proto::master::v1::VerifyProblem;

    use super::*;

    fn verdict(nodes: u32, errors: usize, warnings: usize) -> VerifyClusterResponse {
        let problem = |severity: VerifySeverity| {
            let mut problem = VerifyProblem::default();
            problem.set_severity(severity);
            problem
        };
        let mut problems = vec![problem(VerifySeverity::Error); errors];
        problems.extend(vec![problem(VerifySeverity::Warning); warnings]);
        VerifyClusterResponse {
            problems,
            nodes_checked: nodes,
            config_serial: 7,
        }
    }

    #[test]
    fn verify_counts_in_the_singular_and_the_plural() {
        let line = |nodes, errors, warnings| verdict_summary(&verdict(nodes, errors, warnings));
        assert_eq!(
            line(1, 0, 0),
            (
                "Cluster verify passed: 1 node reaches itself on both networks and holds the ssconf of configuration serial 7.".to_owned(),
                true
            )
        );
        assert!(line(4, 0, 1).0.starts_with(
            "Cluster verify passed with 1 warning: 4 nodes reach each other on both networks and hold"
        ));
        assert_eq!(
            line(2, 1, 0),
            (
                "Cluster verify failed: 1 problem (2 nodes checked).".to_owned(),
                false
            )
        );
        assert_eq!(
            line(1, 4, 2).0,
            "Cluster verify failed: 4 problems and 2 warnings (1 node checked)."
        );
    }
}
