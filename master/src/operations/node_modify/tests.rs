//! The flags' rules without a cluster: what is refused, and the role a node ends with.

use gnt_core::netutils::Hostname;
use gnt_core::node::NodeAddrs;

use super::*;

fn view(master: bool, offline: bool, drained: bool, candidate: bool) -> NodeView {
    let mut node = NodeConfig::new(NodeAddrs {
        primary: "192.0.2.1".parse().unwrap(),
        secondary: "198.51.100.1".parse().unwrap(),
    });
    node.offline = offline;
    node.drained = drained;
    node.master_candidate = candidate;
    NodeView {
        name: Hostname::parse("node1.example.com").unwrap(),
        node,
        master,
    }
}

fn flags(offline: Option<bool>, drained: Option<bool>, candidate: Option<bool>) -> NodeFlags {
    NodeFlags {
        offline,
        drained,
        master_candidate: candidate,
        secondary_ip: None,
    }
}

/// The role `f` gives `v`'s node: (offline, drained, candidacy).
fn target(f: NodeFlags, v: &NodeView) -> (bool, bool, Candidacy) {
    let t = f.target(&v.node);
    (t.offline, t.drained, t.candidate)
}

fn refusal(flags: NodeFlags, view: &NodeView) -> String {
    flags.check(view).unwrap_err().to_string()
}

#[test]
fn two_states_at_once_are_refused_in_ganetis_words() {
    let regular = view(false, false, false, false);
    let two = "Can't set the node into more than one state at the same time";
    for pair in [
        flags(Some(true), Some(true), None),
        flags(Some(true), None, Some(true)),
        flags(None, Some(true), Some(true)),
        flags(Some(true), Some(true), Some(true)),
    ] {
        assert_eq!(refusal(pair, &regular), two, "{pair:?}");
    }
    // A yes with noes is one state.
    assert!(
        flags(Some(false), Some(true), Some(false))
            .check(&regular)
            .is_ok()
    );
}

#[test]
fn the_master_is_never_drained_and_its_flags_change_only_by_failover() {
    let master = view(true, false, false, true);
    assert_eq!(
        refusal(flags(None, Some(true), None), &master),
        "cannot mark the master node drained"
    );
    assert_eq!(
        refusal(flags(Some(true), None, None), &master),
        "cannot mark the master node offline"
    );
    assert_eq!(
        refusal(flags(None, None, Some(false)), &master),
        "The master role can be changed only via master-failover"
    );
    assert_eq!(
        refusal(flags(None, Some(false), None), &master),
        "The master role can be changed only via master-failover"
    );
}

#[test]
fn a_drained_node_becomes_a_candidate_only_when_undrained_in_the_same_change() {
    let drained = view(false, false, true, false);
    assert_eq!(
        refusal(flags(None, None, Some(true)), &drained),
        "node1.example.com is drained: a drained node is never a master candidate; undrain it first (--drained no)"
    );
    let both = flags(None, Some(false), Some(true));
    assert!(both.check(&drained).is_ok());
    assert_eq!(
        both.target(&drained.node),
        Target {
            offline: false,
            drained: false,
            candidate: Candidacy::Yes
        }
    );
}

#[test]
fn a_secondary_address_goes_alone_and_a_modify_must_change_something() {
    let regular = view(false, false, false, false);
    let mut with_flag = flags(None, Some(true), None);
    with_flag.secondary_ip = Some("198.51.100.9".parse().unwrap());
    assert_eq!(
        refusal(with_flag, &regular),
        "give --secondary-ip alone: a change of address is a job of its own"
    );
    assert_eq!(
        refusal(NodeFlags::default(), &regular),
        "give --offline, --drained, --master-candidate or --secondary-ip: nothing to change"
    );
    let alone = NodeFlags {
        secondary_ip: Some("198.51.100.9".parse().unwrap()),
        ..NodeFlags::default()
    };
    assert!(alone.check(&view(true, false, false, true)).is_ok());
}

#[test]
fn a_yes_sets_one_role_and_clears_the_others() {
    // Draining a candidate demotes it.
    let candidate = view(false, false, false, true);
    assert_eq!(
        target(flags(None, Some(true), None), &candidate),
        (false, true, Candidacy::No)
    );
    // Draining an offline node brings it online, drained (Ganeti's role table).
    let offline = view(false, true, false, false);
    assert_eq!(
        target(flags(None, Some(true), None), &offline),
        (false, true, Candidacy::No)
    );
    // Taking a drained node offline undrains it.
    let drained = view(false, false, true, false);
    assert_eq!(
        target(flags(Some(true), None, None), &drained),
        (true, false, Candidacy::No)
    );
}

#[test]
fn undraining_may_self_promote_and_unsetting_an_absent_flag_changes_nothing() {
    let drained = view(false, false, true, false);
    assert_eq!(
        target(flags(None, Some(false), None), &drained),
        (false, false, Candidacy::IfRoom)
    );
    // Said no to: not promoted.
    assert_eq!(
        target(flags(None, Some(false), Some(false)), &drained),
        (false, false, Candidacy::No)
    );
    // `--drained no` on an offline node: it stays offline, nothing is promoted.
    let offline = view(false, true, false, false);
    assert_eq!(
        target(flags(None, Some(false), None), &offline),
        (true, false, Candidacy::Keep)
    );
    // `--offline no` on a drained node leaves it drained.
    assert_eq!(
        target(flags(Some(false), None, None), &drained),
        (false, true, Candidacy::Keep)
    );
}

#[test]
fn a_change_counts_as_applied_only_once_the_configuration_shows_it() {
    let drained = view(false, false, true, false);
    assert!(flags(None, Some(true), None).applied_to(&drained));
    assert!(!flags(None, Some(false), None).applied_to(&drained));
    let ip: std::net::IpAddr = "198.51.100.9".parse().unwrap();
    let change = NodeFlags {
        secondary_ip: Some(ip),
        ..NodeFlags::default()
    };
    let mut moved = view(false, false, false, false);
    assert!(!change.applied_to(&moved));
    moved.node.secondary_ip = ip;
    assert!(change.applied_to(&moved));
    // Staged but not installed: not applied, the change runs again.
    moved.node.readdress = Some(crate::config::Readdress {
        secondary_ip: ip,
        certificate_sha256: "AB:CD".to_owned(),
    });
    assert!(!change.applied_to(&moved));
    // Committed for an offline node, its certificate owed: applied.
    moved.node.readdress = Some(crate::config::Readdress {
        secondary_ip: ip,
        certificate_sha256: String::new(),
    });
    assert!(change.applied_to(&moved));
}
