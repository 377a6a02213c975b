use std::collections::BTreeMap;

use gnt_core::runner::CallFailure;
use gnt_core::ssconf::SsconfVersion;

use super::*;

fn name(text: &str) -> Hostname {
    Hostname::parse(text).unwrap()
}

fn config(epoch: u64) -> ClusterConfig {
    ClusterConfig {
        serial: 7,
        cluster_name: name("c.example"),
        policy: gnt_core::policy::IpPolicy::Ipv4,
        master_node: name("m.example"),
        master_ip: "192.0.2.100".parse().unwrap(),
        master_netmask: 32,
        master_netdev: String::new(),
        node_port: 1811,
        master_epoch: epoch,
        candidate_pool_size: 10,
        certificate_validity_secs: crate::pki::DEFAULT_CERTIFICATE_VALIDITY.as_secs(),
        ca_validity_secs: crate::pki::DEFAULT_CA_VALIDITY.as_secs(),
        nodes: BTreeMap::new(),
        join_tokens: Vec::new(),
        rollover: None,
        created_at: 0,
        modified_at: 0,
    }
}

fn report(master: &str, epoch: u64, running: bool) -> Result<NodeReport, CallFailure> {
    Ok(NodeReport {
        ssconf: SsconfVersion::new(epoch, 7),
        master: master.to_owned(),
        copy: SsconfVersion::new(epoch, 7),
        master_daemon_running: running,
        certificate: None,
    })
}

fn silent() -> Result<NodeReport, CallFailure> {
    Err(CallFailure::Refused("connection refused".to_owned()))
}

fn reports(
    entries: Vec<(&str, Result<NodeReport, CallFailure>)>,
) -> BTreeMap<Hostname, Result<NodeReport, CallFailure>> {
    entries.into_iter().map(|(n, r)| (name(n), r)).collect()
}

#[test]
fn the_vote_needs_a_majority_naming_the_master_whose_daemon_is_stopped() {
    let (me, master) = (name("b.example"), name("m.example"));
    let cfg = config(1);
    let passed = vote(
        &cfg,
        &me,
        &master,
        &reports(vec![
            ("m.example", report("m.example", 1, false)),
            ("b.example", report("m.example", 1, false)),
            ("c.example", silent()),
        ]),
    )
    .unwrap();
    assert!(
        passed.starts_with("2 of 3 online nodes answered; 2 name m.example"),
        "{passed}"
    );

    let no_majority = vote(
        &cfg,
        &me,
        &master,
        &reports(vec![
            ("m.example", silent()),
            ("b.example", report("m.example", 1, false)),
        ]),
    );
    assert!(matches!(
        no_majority,
        Err(FailoverError::NoMajority {
            answered: 1,
            total: 2,
            ..
        })
    ));

    let alive = vote(
        &cfg,
        &me,
        &master,
        &reports(vec![
            ("m.example", report("m.example", 1, true)),
            ("b.example", report("m.example", 1, false)),
        ]),
    );
    assert!(matches!(alive, Err(FailoverError::MasterAlive(_))));

    let elsewhere = vote(
        &cfg,
        &me,
        &master,
        &reports(vec![
            ("m.example", report("x.example", 1, false)),
            ("b.example", report("x.example", 1, false)),
            ("c.example", report("m.example", 1, false)),
        ]),
    );
    assert!(matches!(
        elsewhere,
        Err(FailoverError::WrongConfiguration { .. })
    ));
}

#[test]
fn a_newer_epoch_is_told_apart_from_an_interrupted_failover_to_this_node() {
    let (me, master) = (name("b.example"), name("m.example"));
    let cfg = config(1);
    // Another candidate took over already.
    let newer = vote(
        &cfg,
        &me,
        &master,
        &reports(vec![
            ("m.example", report("c.example", 2, false)),
            ("b.example", report("m.example", 1, false)),
        ]),
    );
    assert!(matches!(
        newer,
        Err(FailoverError::NewerEpoch { epoch: 2, .. })
    ));
    // This node's own failover reached a node before it was killed.
    let interrupted = vote(
        &cfg,
        &me,
        &master,
        &reports(vec![
            ("m.example", report("b.example", 2, false)),
            ("b.example", report("m.example", 1, false)),
        ]),
    )
    .unwrap_err();
    assert!(matches!(
        interrupted,
        FailoverError::InterruptedHere { epoch: 2, .. }
    ));
    assert!(
        interrupted
            .to_string()
            .contains("start gnt-masterd here (it brings the other nodes up to date), or run this again with --no-voting"),
        "{interrupted}"
    );
}
