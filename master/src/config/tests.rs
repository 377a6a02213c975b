use super::*;

fn name(text: &str) -> Hostname {
    Hostname::parse(text).unwrap()
}

fn config() -> ClusterConfig {
    let mut nodes = BTreeMap::new();
    nodes.insert(
        name("master.example.com"),
        NodeConfig {
            primary_ip: "2001:db8::10".parse().unwrap(),
            secondary_ip: "192.0.2.10".parse().unwrap(),
            offline: false,
            drained: false,
            certificate_sha256: "CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD".to_owned(),
            added_at: 1,
            master_candidate: true,
            master_certificate_pem: String::new(),
            master_certificate_sha256: "AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA".to_owned(),
            readdress: None,
        },
    );
    ClusterConfig {
        serial: 1,
        cluster_name: name("cluster.example.com"),
        policy: IpPolicy::HybridIpv6,
        master_node: name("master.example.com"),
        master_ip: "2001:db8::100".parse().unwrap(),
        master_netmask: 128,
        master_netdev: String::new(),
        node_port: 1811,
        master_epoch: 1,
        candidate_pool_size: 10,
        certificate_validity_secs: crate::pki::DEFAULT_CERTIFICATE_VALIDITY.as_secs(),
        ca_validity_secs: crate::pki::DEFAULT_CA_VALIDITY.as_secs(),
        nodes,
        join_tokens: Vec::new(),
        rollover: None,
        created_at: 1,
        modified_at: 1,
    }
}

#[tokio::test]
async fn changes_bump_the_serial_and_a_failed_change_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ConfigStore::new(dir.path());
    store.save(&config()).unwrap();
    let handle = ConfigHandle::new(store.clone(), store.load().unwrap());
    let ((), next) = handle
        .update(|c| {
            c.master_netmask = 64;
            Ok::<_, ConfigError>(())
        })
        .await
        .unwrap();
    assert_eq!(next.serial, 2);
    assert_eq!(store.load().unwrap(), next);
    let failed: Result<((), ClusterConfig), ConfigError> = handle
        .update(|c| {
            c.master_netmask = 1;
            Err(ConfigError::Locked {
                dir: PathBuf::from("/x"),
            })
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(handle.snapshot().await, next);
    assert_eq!(store.load().unwrap(), next);
}

#[test]
fn the_file_is_root_only_and_a_corrupt_one_is_named() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let store = ConfigStore::new(dir.path());
    assert!(matches!(
        store.load(),
        Err(ConfigError::NotInitialised { .. })
    ));
    store.save(&config()).unwrap();
    assert_eq!(
        std::fs::metadata(dir.path().join("config.json"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );
    std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
    let err = store.load().unwrap_err();
    assert!(
        err.to_string().starts_with("the cluster configuration"),
        "{err}"
    );
    assert!(err.to_string().contains("config.json is corrupt"), "{err}");
}

#[test]
fn one_daemon_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = ConfigStore::new(dir.path());
    let _held = store.lock().unwrap();
    let err = store.lock().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("another gnt-masterd is running"),
        "{err}"
    );
}

#[test]
fn the_ssconf_of_a_config_lists_every_node_and_the_master_certificate() {
    let set = config().ssconf().unwrap();
    assert_eq!(set.ip_policy().unwrap(), IpPolicy::HybridIpv6);
    assert_eq!(
        set.master_certificates().unwrap()[0].1,
        "AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA"
    );
    assert_eq!(set.node_list().unwrap().len(), 1);
}

/// The saved configuration with `edit` applied to its JSON, as a hand edit would.
fn load_edited(edit: impl FnOnce(&mut serde_json::Value)) -> Result<ClusterConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let store = ConfigStore::new(dir.path());
    store.save(&config()).unwrap();
    let path = dir.path().join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    store.load()
}

#[test]
fn the_file_keeps_its_format_and_a_value_it_cannot_hold_is_refused_at_load() {
    let text = serde_json::to_value(config()).unwrap();
    assert_eq!(
        text["primary_ip_version"], 6,
        "the policy is stored as 4 or 6"
    );
    assert_eq!(text["cluster_name"], "cluster.example.com");
    assert_eq!(load_edited(|_| {}).unwrap(), config());

    // Anything but 4 or 6 was once read as IPv4; now it is an error naming the file.
    let refusal = |edit: fn(&mut serde_json::Value)| {
        gnt_core::error::Chain(&load_edited(edit).unwrap_err()).to_string()
    };
    let err = refusal(|j| j["primary_ip_version"] = 5.into());
    assert!(
        err.contains("config.json is corrupt: invalid primary IP version '5'"),
        "{err}"
    );
    let err = refusal(|j| j["cluster_name"] = "bad name".into());
    assert!(
        err.contains("config.json is corrupt: invalid host name 'bad name'"),
        "{err}"
    );
    // Two spellings of one node are one node listed twice, not a merge.
    let err = refusal(|j| {
        let node = j["nodes"]["master.example.com"].clone();
        j["nodes"]["MASTER.example.com."] = node;
    });
    assert!(
        err.contains("node 'master.example.com' is listed twice"),
        "{err}"
    );
    // A policy the nodes' addresses break is refused as well.
    let err = load_edited(|j| j["primary_ip_version"] = 4.into()).unwrap_err();
    assert!(matches!(err, ConfigError::Inconsistent { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Environment);
}

#[test]
fn a_file_written_before_master_candidates_takes_the_masters_certificate_from_master_pem() {
    let dir = tempfile::tempdir().unwrap();
    let store = ConfigStore::new(dir.path());
    let mut old = serde_json::to_value(config()).unwrap();
    let master = &mut old["nodes"]["master.example.com"];
    for field in [
        "master_candidate",
        "master_certificate_pem",
        "master_certificate_sha256",
    ] {
        master.as_object_mut().unwrap().remove(field);
    }
    old["master_certificate_sha256"] = "AA:AA".into();
    old.as_object_mut().unwrap().remove("master_epoch");
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&old).unwrap(),
    )
    .unwrap();
    // Without the certificate there is no master any node would accept: refused, named.
    let missing = store.load().unwrap_err();
    assert!(
        gnt_core::error::Chain(&missing)
            .to_string()
            .contains("master.pem"),
        "{missing}"
    );

    let ca = crate::pki::ClusterCa::create("cluster.example.com", crate::pki::DEFAULT_CA_VALIDITY)
        .unwrap();
    let cert = ca
        .issue_with_new_key("master.example.com", "master", &["master.example.com"], &[])
        .unwrap();
    std::fs::write(dir.path().join("master.pem"), &cert.cert_pem).unwrap();
    let loaded = store.load().unwrap();
    let master = &loaded.nodes[&name("master.example.com")];
    assert!(master.master_candidate);
    assert_eq!(master.master_certificate_pem, cert.cert_pem);
    assert_eq!(
        master.master_certificate_sha256,
        crate::pki::fingerprint_of_pem(&cert.cert_pem).unwrap()
    );
    assert_eq!(loaded.master_epoch, 1, "a cluster that never failed over");
    let ssconf = loaded.ssconf().unwrap();
    assert_eq!(
        ssconf.get(SsconfKey::MasterCandidatesCerts).unwrap(),
        format!("master.example.com={}", master.master_certificate_sha256)
    );
}

#[test]
fn a_file_without_lifetimes_loads_with_those_its_cluster_was_issued_with() {
    let dir = tempfile::tempdir().unwrap();
    let store = ConfigStore::new(dir.path());
    let mut old = serde_json::to_value(config()).unwrap();
    for field in ["certificate_validity_secs", "ca_validity_secs"] {
        old.as_object_mut().unwrap().remove(field);
    }
    std::fs::write(dir.path().join("config.json"), old.to_string()).unwrap();
    let loaded = store.load().unwrap();
    // Before lifetimes were configurable, certificates lived 5 years and the CA 10.
    assert_eq!(loaded.certificate_validity_secs, 5 * 365 * 86_400);
    assert_eq!(loaded.ca_validity_secs, 10 * 365 * 86_400);
    assert_eq!(
        loaded.certificate_validity(),
        crate::pki::LEGACY_CERTIFICATE_VALIDITY
    );
}

#[test]
fn a_file_without_master_netdev_loads_and_ssconf_names_the_device_once_it_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let store = ConfigStore::new(dir.path());
    let mut old = serde_json::to_value(config()).unwrap();
    old.as_object_mut().unwrap().remove("master_netdev");
    std::fs::write(dir.path().join("config.json"), old.to_string()).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.master_netdev, "");
    assert_eq!(loaded.ssconf().unwrap().get(SsconfKey::MasterNetdev), None);

    let named = ClusterConfig {
        master_netdev: "eth0".to_owned(),
        ..loaded
    };
    let set = named.ssconf().unwrap();
    assert_eq!(set.get(SsconfKey::MasterNetdev), Some("eth0"));
    set.check_member().unwrap();
}

#[tokio::test]
async fn expired_unused_tokens_stay_listed_a_week_and_used_ones_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let store = ConfigStore::new(dir.path());
    let now = unix_now();
    let token = |id: &str, expires_at: i64, used: bool| TokenRecord {
        id: id.to_owned(),
        sha256: String::new(),
        expires_at,
        used_by: used.then(|| name("node1.example.com")),
    };
    let mut config = config();
    config.join_tokens = vec![
        token("recent", now - 86400, false),
        token("old", now - 8 * 86400, false),
        token("joined", now - 400 * 86400, true),
        token("live", now + 3600, false),
    ];
    store.save(&config).unwrap();
    let handle = ConfigHandle::new(store.clone(), store.load().unwrap());
    let ((), next) = handle
        .update(|c| {
            c.master_netmask = 64;
            Ok::<_, ConfigError>(())
        })
        .await
        .unwrap();
    let kept: Vec<&str> = next.join_tokens.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(kept, ["recent", "joined", "live"]);
}

#[test]
fn a_renewal_lists_the_previous_master_certificate_only_under_the_master_it_was_of() {
    let previous = "BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB";
    let listed = |config: &ClusterConfig| config.ssconf().unwrap().master_certificates().unwrap();
    let mut config = config();
    config.rollover = Some(Rollover {
        started_at: 1,
        retiring_master_sha256: previous.to_owned(),
        retiring_master: Some(name("master.example.com")),
        retiring_ca_pem: String::new(),
        issuing_ca_pem: String::new(),
        new_node_keys: false,
        node_certificates: false,
        pending: [name("master.example.com")].into(),
    });
    let both = listed(&config);
    assert!(
        both.contains(&("master.example.com".to_owned(), previous.to_owned())),
        "{both:?}"
    );
    assert_eq!(both.len(), 2, "the new one and the previous one: {both:?}");
    // Another node became master during the renewal: the previous certificate of the old
    // master must not count as the new master's.
    if let Some(rollover) = &mut config.rollover {
        rollover.retiring_master = Some(name("old-master.example.com"));
    }
    let after_failover = listed(&config);
    assert!(
        after_failover.iter().all(|(_, f)| f != previous),
        "{after_failover:?}"
    );
}

#[test]
fn a_node_written_before_the_drained_flag_loads_undrained_and_the_flag_round_trips() {
    let mut old = serde_json::to_value(config()).unwrap();
    let master = old["nodes"]["master.example.com"].as_object_mut().unwrap();
    assert!(master.remove("drained").is_some());
    assert!(!master.contains_key("readdress"));
    let loaded: ClusterConfig = serde_json::from_value(old).unwrap();
    assert!(!loaded.nodes[&name("master.example.com")].drained);

    let mut drained = config();
    let record = drained.nodes.get_mut(&name("master.example.com")).unwrap();
    record.drained = true;
    record.readdress = Some(Readdress {
        secondary_ip: "192.0.2.77".parse().unwrap(),
        certificate_sha256: String::new(),
    });
    let text = serde_json::to_string(&drained).unwrap();
    let back: ClusterConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(back, drained);
    assert!(!back.nodes[&name("master.example.com")].promotable());
}
