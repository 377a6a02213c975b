//! Certificate lifetimes chosen at `gnt cluster init`, and `gnt cluster verify`'s
//! certificate check (Ganeti's `ECLUSTERCERT`) on real daemons: certificates issued with
//! short lifetimes (never a changed clock) are warned of within 30 days of their expiry,
//! and fail verify within 7, each line naming the node and the day.

use gnt_core::policy::IpPolicy;
use gnt_integration::cluster_lab::ClusterLab;

use crate::support::{Running, empty};

/// A cluster of the master and node1, initialised with `flags`; init says `lifetimes`.
fn initialised_with(policy: IpPolicy, flags: &[&str], lifetimes: &str) -> Running {
    let cluster = empty(policy, 1, &[]);
    let init = cluster.init_with(flags).unwrap();
    assert!(init.success(), "{init}");
    assert!(
        init.stdout
            .contains(&format!("\n  lifetimes:   {lifetimes}\n")),
        "{init}"
    );
    cluster.start_noded("master", None).unwrap();
    cluster.start_masterd().unwrap();
    let secondary = cluster.default_secondary("node1");
    let added = cluster.add_node("node1", secondary.as_deref()).unwrap();
    assert!(added.success(), "{added}");
    cluster
}

/// The UTC day the certificate in `host`'s state file `file` expires.
fn expiry_day(cluster: &ClusterLab, host: &str, file: &str) -> String {
    day(&std::fs::read_to_string(cluster.state_dir(host).join(file)).unwrap())
}

/// The UTC day `node`'s master certificate, in the configuration, expires.
fn master_certificate_day(cluster: &ClusterLab, node: &str) -> String {
    let path = cluster.state_dir("master").join("master/config.json");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    day(config["nodes"][node]["master_certificate_pem"]
        .as_str()
        .unwrap())
}

/// The UTC day the certificate `pem` expires.
fn day(pem: &str) -> String {
    let not_after = gnt_master::pki::certificate_not_after(pem).unwrap();
    time::OffsetDateTime::from_unix_timestamp(not_after)
        .unwrap()
        .date()
        .to_string()
}

#[test]
fn verify_warns_of_certificates_issued_for_20_days_naming_each_node_and_passes() {
    let cluster = initialised_with(
        IpPolicy::HybridIpv6,
        &["--certificate-validity", "20d"],
        "certificates 20d, the CA 3650d",
    );
    let verify = cluster.gnt(&["cluster", "verify"]).unwrap();
    assert_eq!(verify.code, 0, "warnings alone pass: {verify}");
    // The master's and node1's node certificates (node1's issued by the daemon at node
    // add, with the lifetime the configuration keeps), and the master certificates of the
    // master and of node1 (a master candidate, as the pool has room).
    let expected = [
        format!(
            "  - WARNING:ECLUSTERCERT: node master.lab.test: certificate expires in about 20 days (on {}); `gnt cluster renew-crypto --new-node-certificates` renews it",
            expiry_day(&cluster, "master", "node.pem")
        ),
        format!(
            "  - WARNING:ECLUSTERCERT: node master.lab.test: master certificate expires in about 20 days (on {}); `gnt cluster renew-crypto --new-master-certificate` renews it",
            expiry_day(&cluster, "master", "master/master.pem")
        ),
        format!(
            "  - WARNING:ECLUSTERCERT: node node1.lab.test: certificate expires in about 20 days (on {}); `gnt cluster renew-crypto --new-node-certificates` renews it",
            expiry_day(&cluster, "node1", "node.pem")
        ),
        format!(
            "  - WARNING:ECLUSTERCERT: node node1.lab.test: master certificate expires in about 20 days (on {}); `gnt cluster renew-crypto --new-node-certificates` renews it",
            master_certificate_day(&cluster, "node1.lab.test")
        ),
    ];
    for line in &expected {
        assert!(verify.stdout.lines().any(|l| l == line), "{line}\n{verify}");
    }
    assert!(!verify.stdout.contains("ERROR"), "{verify}");
    assert!(!verify.stdout.contains("cluster CA"), "{verify}");
    assert!(
        verify
            .stdout
            .contains("Cluster verify passed with 4 warnings: 2 nodes reach each other"),
        "{verify}"
    );
}

#[test]
fn verify_fails_on_certificates_issued_for_5_days_and_warns_of_a_ca_for_20() {
    let cluster = initialised_with(
        IpPolicy::Ipv4,
        &["--certificate-validity", "5d", "--ca-validity", "20d"],
        "certificates 5d, the CA 20d",
    );
    let verify = cluster.gnt(&["cluster", "verify"]).unwrap();
    assert_eq!(verify.code, 1, "{verify}");
    let expected = [
        format!(
            "  - WARNING:ECLUSTERCERT: node master.lab.test: cluster CA certificate expires in about 20 days (on {}); `gnt cluster renew-crypto --new-cluster-certificate` renews it",
            expiry_day(&cluster, "master", "master/ca.pem")
        ),
        format!(
            "  - ERROR:ECLUSTERCERT: node master.lab.test: certificate expires in about 5 days (on {}); `gnt cluster renew-crypto --new-node-certificates` renews it",
            expiry_day(&cluster, "master", "node.pem")
        ),
        format!(
            "  - ERROR:ECLUSTERCERT: node master.lab.test: master certificate expires in about 5 days (on {}); `gnt cluster renew-crypto --new-master-certificate` renews it",
            expiry_day(&cluster, "master", "master/master.pem")
        ),
        format!(
            "  - ERROR:ECLUSTERCERT: node node1.lab.test: certificate expires in about 5 days (on {}); `gnt cluster renew-crypto --new-node-certificates` renews it",
            expiry_day(&cluster, "node1", "node.pem")
        ),
        format!(
            "  - ERROR:ECLUSTERCERT: node node1.lab.test: master certificate expires in about 5 days (on {}); `gnt cluster renew-crypto --new-node-certificates` renews it",
            master_certificate_day(&cluster, "node1.lab.test")
        ),
    ];
    for line in &expected {
        assert!(verify.stdout.lines().any(|l| l == line), "{line}\n{verify}");
    }
    assert!(
        verify
            .stdout
            .contains("Cluster verify failed: 4 problems and 1 warning (2 nodes checked)."),
        "{verify}"
    );
}
