//! The thresholds at their boundaries, on real certificates issued with short lifetimes (or
//! valid only in the past or the future); "now" is an argument, never the machine's clock
//! changed.

use std::collections::BTreeMap;
use std::time::Duration;

use gnt_core::runner::CallFailure;
use gnt_core::ssconf::SsconfVersion;
use time::OffsetDateTime;

use super::*;
use crate::config::NodeConfig;
use crate::operations::converge::ReportedCertificate;
use crate::pki::{ClusterCa, fingerprint_of_pem};

fn name(text: &str) -> Hostname {
    Hostname::parse(text).unwrap()
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// A CA valid 10 years, issuing certificates valid `validity`.
fn ca(validity: Duration) -> ClusterCa {
    ClusterCa::create("cluster.example.com", days(3650))
        .unwrap()
        .with_certificate_validity(validity)
}

fn issued(ca: &ClusterCa) -> String {
    ca.issue_with_new_key("node1.example.com", "node", &["node1.example.com"], &[])
        .unwrap()
        .cert_pem
}

/// `(severity, message)` of a certificate at `now`.
fn checked(pem: &str, now: i64) -> Option<(Severity, String)> {
    let validity = certificate_validity("certificate", pem).unwrap();
    expiry(
        &name("node1.example.com"),
        "certificate",
        validity,
        now,
        RENEW_NODES,
    )
    .map(|p| {
        assert_eq!(p.check, Check::ClusterCert);
        // Every expiry says what renews the certificate.
        let advice = format!("; `{RENEW_NODES}` renews it");
        let message = p.message.strip_suffix(&advice).unwrap_or_else(|| {
            panic!("no advice in {}", p.message);
        });
        (p.severity, message.to_owned())
    })
}

#[test]
fn certificates_issued_for_20_days_warn_and_for_5_days_fail() {
    let twenty = issued(&ca(days(20)));
    let five = issued(&ca(days(5)));
    let year = issued(&ca(days(365)));
    // Checked after they were issued, as verify does.
    let now = unix_now();
    let (severity, message) = checked(&twenty, now).unwrap();
    assert_eq!(severity, Severity::Warning);
    let date = day(certificate_not_after_of(&twenty));
    assert_eq!(
        message,
        format!("certificate expires in about 20 days (on {date})")
    );
    let (severity, message) = checked(&five, now).unwrap();
    assert_eq!(severity, Severity::Error);
    assert!(
        message.starts_with("certificate expires in about 5 days (on "),
        "{message}"
    );
    // The default lifetime, a year, is far from any threshold.
    assert_eq!(checked(&year, now), None);
}

#[test]
fn thresholds_hold_to_the_second_at_30_days_7_days_and_expiry() {
    let pem = issued(&ca(days(60)));
    let end = certificate_validity("certificate", &pem).unwrap().not_after;
    let at = |left: i64| checked(&pem, end - left);
    assert_eq!(at(30 * DAY + 1), None, "30 days and a second left");
    assert_eq!(
        at(30 * DAY),
        Some((
            Severity::Warning,
            format!("certificate expires in about 30 days (on {})", day(end))
        ))
    );
    assert_eq!(
        at(7 * DAY + 1),
        Some((
            Severity::Warning,
            format!("certificate expires in about 8 days (on {})", day(end))
        ))
    );
    assert_eq!(
        at(7 * DAY),
        Some((
            Severity::Error,
            format!("certificate expires in about 7 days (on {})", day(end))
        ))
    );
    assert_eq!(
        at(0),
        Some((
            Severity::Error,
            format!("certificate expires within a day (on {})", day(end))
        ))
    );
    assert_eq!(
        at(-1),
        Some((
            Severity::Error,
            format!("certificate expired on {}", day(end))
        ))
    );
}

#[test]
fn an_expired_and_a_not_yet_valid_certificate_are_errors() {
    let ca = ca(days(365));
    let now = OffsetDateTime::now_utc();
    let expired = ca.issue_valid_between(
        "node1.example.com",
        now - time::Duration::days(40),
        now - time::Duration::days(10),
    );
    let (severity, message) = checked(&expired, now.unix_timestamp()).unwrap();
    assert_eq!(severity, Severity::Error);
    assert_eq!(
        message,
        format!(
            "certificate expired on {}",
            day((now - time::Duration::days(10)).unix_timestamp())
        )
    );
    let early = ca.issue_valid_between(
        "node1.example.com",
        now + time::Duration::days(1),
        now + time::Duration::days(300),
    );
    let (severity, message) = checked(&early, now.unix_timestamp()).unwrap();
    assert_eq!(severity, Severity::Error);
    assert!(
        message.starts_with("certificate is not valid before ")
            && message.ends_with("; is the master's clock right?"),
        "{message}"
    );
}

fn config(nodes: &[(&str, &str)]) -> ClusterConfig {
    let nodes: BTreeMap<Hostname, NodeConfig> = nodes
        .iter()
        .map(|(node, sha256)| {
            let mut record = NodeConfig::new(gnt_core::node::NodeAddrs {
                primary: "192.0.2.1".parse().unwrap(),
                secondary: "192.0.2.1".parse().unwrap(),
            });
            record.certificate_sha256 = (*sha256).to_owned();
            (name(node), record)
        })
        .collect();
    crate::config::fixture::cluster(nodes)
}

fn report(
    node: &str,
    certificate: Option<ReportedCertificate>,
) -> NodeResult<Hostname, NodeReport> {
    NodeResult {
        key: name(node),
        outcome: Ok(NodeReport {
            ssconf: SsconfVersion::new(1, 3),
            master: "master.example.com".to_owned(),
            copy: SsconfVersion::default(),
            master_daemon_running: false,
            certificate,
        }),
        elapsed: Duration::ZERO,
    }
}

#[test]
fn a_node_is_named_with_the_date_and_one_presenting_another_certificate_is_an_error() {
    let pem = issued(&ca(days(20)));
    let sha256 = fingerprint_of_pem(&pem).unwrap();
    let not_after = certificate_not_after_of(&pem);
    let described = ReportedCertificate {
        sha256: sha256.clone(),
        not_after,
    };
    let config = config(&[
        ("master.example.com", "AA:BB"),
        ("node1.example.com", &sha256),
        ("node2.example.com", ""),
    ]);
    let reports = vec![
        report("master.example.com", Some(described.clone())),
        report("node1.example.com", Some(described)),
        report("node2.example.com", None),
        NodeResult {
            key: name("node3.example.com"),
            outcome: Err(CallFailure::Refused("connection refused".to_owned())),
            elapsed: Duration::ZERO,
        },
    ];
    let found: Vec<(String, Severity, String)> = node_problems(&config, &reports, unix_now())
        .into_iter()
        .map(|p| (p.node.to_string(), p.severity, p.message))
        .collect();
    let expiring = format!(
        "certificate expires in about 20 days (on {}); `{RENEW_NODES}` renews it",
        day(not_after)
    );
    assert_eq!(
        found,
        [
            (
                "master.example.com".to_owned(),
                Severity::Error,
                format!(
                    "presents a certificate (SHA256 {sha256}) other than the one the configuration records for it (SHA256 AA:BB)"
                )
            ),
            ("master.example.com".to_owned(), Severity::Warning, expiring.clone()),
            ("node1.example.com".to_owned(), Severity::Warning, expiring),
            (
                "node2.example.com".to_owned(),
                Severity::Warning,
                "did not describe its certificate, so its expiry is not checked: its gnt-noded is older than this master, or cannot read its node.pem (see its log)".to_owned()
            ),
        ]
    );
}

fn certificate_not_after_of(pem: &str) -> i64 {
    crate::pki::certificate_not_after(pem).unwrap()
}

#[test]
fn the_ca_the_master_certificate_and_candidates_master_certificates_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    // A CA that expires in 20 days, issuing 5-day certificates.
    let ca = ClusterCa::create("cluster.example.com", days(20))
        .unwrap()
        .with_certificate_validity(days(5));
    ca.save(&paths).unwrap();
    let master = ca
        .issue_with_new_key("master.example.com", "master", &["master.example.com"], &[])
        .unwrap();
    std::fs::write(&paths.master_cert, &master.cert_pem).unwrap();
    let mut config = config(&[("master.example.com", ""), ("node1.example.com", "")]);
    let candidate = config.nodes.get_mut(&name("node1.example.com")).unwrap();
    candidate.master_candidate = true;
    candidate.master_certificate_pem = issued(&ca);
    let found: Vec<(String, Severity, String)> = master_problems(&config, &paths, unix_now())
        .into_iter()
        .map(|p| (p.node.to_string(), p.severity, p.message))
        .collect();
    let ends = |pem: &str| day(certificate_not_after_of(pem));
    let (ca_ends, five_ends) = (ends(ca.cert_pem()), ends(&master.cert_pem));
    let days_left = |what: &str, n: i64, on: &str, renew: &str| {
        format!("{what} expires in about {n} days (on {on}); `{renew}` renews it")
    };
    assert_eq!(
        found,
        [
            (
                "master.example.com".to_owned(),
                Severity::Warning,
                days_left("cluster CA certificate", 20, &ca_ends, RENEW_CA)
            ),
            (
                "master.example.com".to_owned(),
                Severity::Error,
                days_left("master certificate", 5, &five_ends, RENEW_MASTER)
            ),
            (
                "node1.example.com".to_owned(),
                Severity::Error,
                days_left("master certificate", 5, &five_ends, RENEW_NODES)
            ),
        ]
    );

    // A missing file is an error naming it, not a silent pass.
    std::fs::remove_file(&paths.master_cert).unwrap();
    let missing = master_problems(&config, &paths, unix_now());
    let message = &missing
        .iter()
        .find(|p| {
            p.message.contains("master certificate") && p.node.as_str() == "master.example.com"
        })
        .unwrap()
        .message;
    assert!(
        message.starts_with("cannot check the master certificate: ")
            && message.contains("master.pem"),
        "{message}"
    );
}

#[test]
fn every_node_a_renewal_waits_for_is_named_with_how_the_wait_ends() {
    let mut config = config(&[
        ("master.example.com", ""),
        ("node1.example.com", ""),
        ("node2.example.com", ""),
    ]);
    assert!(
        renewal_problems(&config, true).is_empty(),
        "no renewal, no problem"
    );
    if let Some(node) = config.nodes.get_mut(&name("node2.example.com")) {
        node.offline = true;
    }
    config.rollover = Some(crate::config::Rollover {
        started_at: 0,
        retiring_master_sha256: "AA:BB".to_owned(),
        retiring_master: None,
        retiring_ca_pem: String::new(),
        issuing_ca_pem: String::new(),
        new_node_keys: true,
        node_certificates: true,
        pending: [name("node1.example.com"), name("node2.example.com")].into(),
    });
    let cut_off: Vec<String> = renewal_problems(&config, false)
        .into_iter()
        .map(|p| p.message)
        .collect();
    assert!(
        cut_off
            .iter()
            .all(|m| m.contains("this master took over during the renewal")),
        "{cut_off:?}"
    );
    let found: Vec<(String, Severity, String)> = renewal_problems(&config, true)
        .into_iter()
        .map(|p| (p.node.to_string(), p.severity, p.message))
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .all(|(_, severity, message)| *severity == Severity::Warning
                && message.starts_with(
                    "the certificate renewal started 1970-01-01T00:00:00Z has not reached this node"
                ))
    );
    assert!(found[0].2.contains("gnt-masterd renews it as soon as it answers; if it is gone for good, remove it (`gnt node remove node1.example.com`)"), "{found:?}");
    assert!(
        found[1]
            .2
            .contains("mark it online (`gnt node modify --offline no node2.example.com`)"),
        "{found:?}"
    );
}

#[test]
fn a_change_of_secondary_address_left_half_way_is_named_with_the_command_that_finishes_it() {
    let far = i64::MAX / 2;
    let presenting = |sha256: &str| ReportedCertificate {
        sha256: sha256.to_owned(),
        not_after: far,
    };
    let mut config = config(&[
        ("master.example.com", "AA:AA"),
        ("node1.example.com", "11:11"),
        ("node2.example.com", "22:22"),
        ("node3.example.com", "33:33"),
    ]);
    let ip: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    let owe = |config: &mut ClusterConfig, node: &str, sha256: &str| {
        config.nodes.get_mut(&name(node)).unwrap().readdress = Some(crate::config::Readdress {
            secondary_ip: ip,
            certificate_sha256: sha256.to_owned(),
        });
    };
    // node1 installed the new certificate, the commit did not follow; node2 stopped before
    // the install; node3 was offline.
    owe(&mut config, "node1.example.com", "1N:EW");
    owe(&mut config, "node2.example.com", "2N:EW");
    owe(&mut config, "node3.example.com", "");
    let reports = vec![
        report("master.example.com", Some(presenting("AA:AA"))),
        report("node1.example.com", Some(presenting("1N:EW"))),
        report("node2.example.com", Some(presenting("22:22"))),
    ];
    let found: Vec<(String, Severity, String)> = node_problems(&config, &reports, unix_now())
        .into_iter()
        .chain(readdress_problems(&config, &reports))
        .map(|p| (p.node.to_string(), p.severity, p.message))
        .collect();
    assert_eq!(
        found,
        [
            (
                "node1.example.com".to_owned(),
                Severity::Error,
                "presents the certificate issued for its new secondary ip 198.51.100.7 (SHA256 1N:EW), but the change of address was interrupted before it was committed: run `gnt node modify --secondary-ip 198.51.100.7 node1.example.com` again to finish it".to_owned()
            ),
            (
                "node2.example.com".to_owned(),
                Severity::Warning,
                "a change of its secondary ip to 198.51.100.7 stopped before its certificate was installed, so its secondary ip is still 192.0.2.1: run `gnt node modify --secondary-ip 198.51.100.7 node2.example.com` again to finish it".to_owned()
            ),
            (
                "node3.example.com".to_owned(),
                Severity::Warning,
                "its certificate does not name its secondary ip 198.51.100.7, changed while it was offline: once it is online, `gnt node modify --secondary-ip 198.51.100.7 node3.example.com` reissues it".to_owned()
            ),
        ]
    );
}
