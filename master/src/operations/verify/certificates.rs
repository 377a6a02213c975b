//! `gnt cluster verify`'s certificate check (Ganeti's `ECLUSTERCERT`): every certificate in
//! use, with the node it belongs to and the day it expires.
//!
//! The certificates: the cluster CA and the master's client certificate (the master's
//! `ca.pem` and `master.pem`), every other master candidate's master certificate (from the
//! configuration: what it calls nodes with once it is master), and every online node's
//! certificate as the node describes it in `Version` (so the one it presents, not a copy).
//!
//! Thresholds are Ganeti's: a warning when a certificate expires within 30 days, an error
//! within 7 days, once expired, or while not valid yet (Ganeti warns of the last; a peer
//! refuses such a certificate as surely as an expired one). Unlike Ganeti, "now" is the
//! master's clock without its 150 s of allowed skew: the thresholds are days. "About N days"
//! counts started days, so that the number printed decides the severity: 7 or less is an
//! error, 30 or less a warning.
//!
//! A node that presents a certificate other than the one the configuration records for it is
//! an error too: the master would refuse to trust it by fingerprint anywhere it checks one.
//! A node that describes no certificate (an agent older than this master, or one that cannot
//! read its own) is a warning: its expiry goes unchecked.

use gnt_core::clock::unix_now;
use gnt_core::error::Chain;
use gnt_core::netutils::Hostname;
use gnt_core::runner::NodeResult;

use super::{Check, Problem, Severity};
use crate::config::ClusterConfig;
use crate::master::Master;
use crate::operations::converge::NodeReport;
use crate::operations::utc;
use crate::pki::{PkiError, PkiPaths, Validity, certificate_validity};

const DAY: i64 = 86_400;
/// A certificate expiring within this long is a warning (Ganeti's
/// `SSL_CERT_EXPIRATION_WARN`, 30 days).
const WARN_WITHIN: i64 = 30 * DAY;
/// Within this long, an error (`SSL_CERT_EXPIRATION_ERROR`, 7 days).
const ERROR_WITHIN: i64 = 7 * DAY;

impl Master {
    /// The certificate problems of `config`'s cluster, the nodes' certificates taken from
    /// `reports` (asked with `certificates`).
    pub(super) fn certificate_problems(
        &self,
        config: &ClusterConfig,
        reports: &[NodeResult<Hostname, NodeReport>],
    ) -> Vec<Problem> {
        let now = unix_now();
        let mut problems = master_problems(config, &self.paths.pki, now);
        problems.extend(node_problems(config, reports, now));
        problems.extend(readdress_problems(config, reports));
        let holds_previous = crate::identity::retiring_pair(&self.paths)
            .identity()
            .is_ok();
        problems.extend(renewal_problems(config, holds_previous));
        problems
    }
}

/// The problems of the certificates the master holds: the CA and its own in its directory,
/// the other candidates' master certificates in `config`.
fn master_problems(config: &ClusterConfig, paths: &PkiPaths, now: i64) -> Vec<Problem> {
    let master = &config.master_node;
    let read = |what: &'static str, path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map_err(|e| PkiError::Fs(gnt_core::fs_atomic::FsError::new("read", path, e)))
            .and_then(|pem| certificate_validity(what, &pem))
    };
    let mut problems = Vec::new();
    for (what, path, renew) in [
        ("cluster CA certificate", &paths.ca_cert, RENEW_CA),
        ("master certificate", &paths.master_cert, RENEW_MASTER),
    ] {
        match read(what, path) {
            Ok(validity) => problems.extend(expiry(master, what, validity, now, renew)),
            Err(e) => problems.push(error(
                master,
                format!("cannot check the {what}: {}", Chain(&e)),
            )),
        }
    }
    for (name, node) in config.candidates() {
        if node.master_certificate_pem.is_empty() {
            continue;
        }
        let what = "master certificate";
        match certificate_validity(what, &node.master_certificate_pem) {
            Ok(validity) => problems.extend(expiry(name, what, validity, now, RENEW_NODES)),
            Err(e) => problems.push(error(
                name,
                format!(
                    "cannot check its {what} in the configuration: {}",
                    Chain(&e)
                ),
            )),
        }
    }
    problems
}

/// The problems of the certificates the online nodes among `reports` present.
fn node_problems(
    config: &ClusterConfig,
    reports: &[NodeResult<Hostname, NodeReport>],
    now: i64,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for result in reports {
        let Ok(report) = &result.outcome else {
            continue; // the network test reports a node that does not answer
        };
        let node = &result.key;
        let Some(certificate) = &report.certificate else {
            problems.push(Problem {
                severity: Severity::Warning,
                ..error(
                    node,
                    "did not describe its certificate, so its expiry is not checked: its gnt-noded is older than this master, or cannot read its node.pem (see its log)".to_owned(),
                )
            });
            continue;
        };
        let record = config.nodes.get(node);
        let recorded = record.map_or("", |n| n.certificate_sha256.as_str());
        let interrupted = record.and_then(|n| n.readdress.as_ref()).filter(|r| {
            r.certificate_sha256
                .eq_ignore_ascii_case(&certificate.sha256)
        });
        if let Some(readdress) = interrupted {
            let ip = readdress.secondary_ip;
            problems.push(error(
                node,
                format!(
                    "presents the certificate issued for its new secondary ip {ip} (SHA256 {}), but the change of address was interrupted before it was committed: run `gnt node modify --secondary-ip {ip} {node}` again to finish it",
                    certificate.sha256
                ),
            ));
        } else if !recorded.is_empty() && !recorded.eq_ignore_ascii_case(&certificate.sha256) {
            problems.push(error(
                node,
                format!(
                    "presents a certificate (SHA256 {}) other than the one the configuration records for it (SHA256 {recorded})",
                    certificate.sha256
                ),
            ));
        }
        let validity = Validity {
            not_before: i64::MIN,
            not_after: certificate.not_after,
        };
        problems.extend(expiry(node, "certificate", validity, now, RENEW_NODES));
    }
    problems
}

/// The nodes whose certificate does not name their secondary address yet (a change made
/// while they were offline), or whose change of address stopped before the node installed
/// its certificate: warnings (the node works; its certificate is merely behind), each with
/// the command that finishes it. A node that presents the new certificate already is
/// [`node_problems`]'s error instead.
fn readdress_problems(
    config: &ClusterConfig,
    reports: &[NodeResult<Hostname, NodeReport>],
) -> Vec<Problem> {
    let presented = |name: &Hostname| {
        reports
            .iter()
            .find(|r| r.key == *name)
            .and_then(|r| r.outcome.as_ref().ok())
            .and_then(|report| report.certificate.as_ref())
            .map(|c| c.sha256.clone())
    };
    let mut problems = Vec::new();
    for (name, node) in &config.nodes {
        let Some(readdress) = &node.readdress else {
            continue;
        };
        let ip = readdress.secondary_ip;
        let finish = format!("`gnt node modify --secondary-ip {ip} {name}`");
        let message = if readdress.certificate_sha256.is_empty() {
            format!(
                "its certificate does not name its secondary ip {ip}, changed while it was offline: once it is online, {finish} reissues it"
            )
        } else if presented(name)
            .is_some_and(|p| p.eq_ignore_ascii_case(&readdress.certificate_sha256))
        {
            continue;
        } else {
            format!(
                "a change of its secondary ip to {ip} stopped before its certificate was installed, so its secondary ip is still {}: run {finish} again to finish it",
                node.secondary_ip
            )
        };
        problems.push(Problem {
            severity: Severity::Warning,
            ..error(name, message)
        });
    }
    problems
}

/// The nodes a certificate renewal still waits for: while it does, the previous CA and
/// master certificate stay trusted, so each is a warning that says how the wait ends.
///
/// A master that took the role during a renewal of certificates (`holds_previous` false)
/// cannot call a node the renewal had not reached: that node accepts only the previous
/// master's previous certificate, or the old CA. The wait then ends only by removing the
/// node and adding it again, which the line says instead.
fn renewal_problems(config: &ClusterConfig, holds_previous: bool) -> Vec<Problem> {
    let Some(rollover) = &config.rollover else {
        return Vec::new();
    };
    let since = utc(rollover.started_at);
    let cut_off = !holds_previous && rollover.node_certificates;
    rollover
        .pending
        .iter()
        .map(|name| {
            let offline = config.nodes.get(name).is_some_and(|n| n.offline);
            let how = if cut_off {
                format!(
                    "this master took over during the renewal and has no certificate the node accepts: remove it (`gnt node remove {name}`) and add it again with a new token"
                )
            } else if offline {
                format!(
                    "it is offline: mark it online (`gnt node modify --offline no {name}`) and it is renewed once it answers, or remove it (`gnt node remove {name}`)"
                )
            } else {
                format!(
                    "gnt-masterd renews it as soon as it answers; if it is gone for good, remove it (`gnt node remove {name}`)"
                )
            };
            Problem {
                severity: Severity::Warning,
                ..error(
                    name,
                    format!(
                        "the certificate renewal started {since} has not reached this node, so the previous CA and master certificate are still trusted: {how}"
                    ),
                )
            }
        })
        .collect()
}

/// What renews the cluster CA.
const RENEW_CA: &str = "gnt cluster renew-crypto --new-cluster-certificate";
/// What renews the master's certificate.
const RENEW_MASTER: &str = "gnt cluster renew-crypto --new-master-certificate";
/// What renews node certificates and candidates' master certificates.
const RENEW_NODES: &str = "gnt cluster renew-crypto --new-node-certificates";

/// An `ECLUSTERCERT` error of `node`.
fn error(node: &Hostname, message: String) -> Problem {
    Problem {
        check: Check::ClusterCert,
        severity: Severity::Error,
        node: node.clone(),
        target: None,
        network: None,
        message,
    }
}

/// The problem of `node`'s certificate `what`, valid for `validity`, at `now`, saying that
/// `renew` renews it; none when it has more than 30 days left.
fn expiry(
    node: &Hostname,
    what: &str,
    validity: Validity,
    now: i64,
    renew: &str,
) -> Option<Problem> {
    let Validity {
        not_before,
        not_after,
    } = validity;
    let problem = |severity, message: String| {
        Some(Problem {
            severity,
            ..error(node, format!("{message}; `{renew}` renews it"))
        })
    };
    if not_after < now {
        return problem(
            Severity::Error,
            format!("{what} expired on {}", day(not_after)),
        );
    }
    if not_before > now {
        return problem(
            Severity::Error,
            format!(
                "{what} is not valid before {}; is the master's clock right?",
                utc(not_before)
            ),
        );
    }
    let left = not_after - now;
    let severity = if left <= ERROR_WITHIN {
        Severity::Error
    } else if left <= WARN_WITHIN {
        Severity::Warning
    } else {
        return None;
    };
    // Started days: 7 days and a second left is "about 8 days", a warning.
    let days = (left + DAY - 1) / DAY;
    let when = if days <= 1 {
        "within a day".to_owned()
    } else {
        format!("in about {days} days")
    };
    problem(
        severity,
        format!("{what} expires {when} (on {})", day(not_after)),
    )
}

/// The UTC day of a Unix time, `YYYY-MM-DD`.
fn day(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| unix.to_string())
}

#[cfg(test)]
mod tests;
