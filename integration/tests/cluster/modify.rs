//! `gnt node modify --drained` and `--secondary-ip` (issue 14), with real daemons: a
//! drained candidate is demoted and stays out of the pool, an undrained node comes back;
//! a new secondary address reaches every node's ssconf, and the node's certificate, reissued
//! for its key, names it.

use std::net::IpAddr;

use gnt_core::policy::IpPolicy;
use gnt_integration::cluster_lab::{ClusterLab, CommandOutput};

use crate::support::{gnt_ok, running, serial, ssconf};

/// `gnt node list -o name,drained,role --no-headers`, one line per node.
fn roles(cluster: &ClusterLab) -> Vec<String> {
    let out = gnt_ok(
        cluster,
        &["node", "list", "-o", "name,drained,role", "--no-headers"],
    );
    out.stdout.lines().map(str::to_owned).collect()
}

/// `gnt ARGS`, which must fail saying `message`.
fn refused(cluster: &ClusterLab, args: &[&str], message: &str) -> CommandOutput {
    let out = cluster.gnt(args).unwrap();
    assert!(!out.success(), "{args:?} succeeded: {out}");
    assert!(out.stderr.contains(message), "{args:?}: {out}");
    out
}

fn verify_passes(cluster: &ClusterLab) -> CommandOutput {
    let verify = gnt_ok(cluster, &["cluster", "verify"]);
    assert!(verify.stdout.contains("Cluster verify passed"), "{verify}");
    verify
}

#[test]
fn drained_candidates_are_demoted_stay_out_of_the_pool_and_come_back_when_undrained() {
    let cluster = running(IpPolicy::Ipv4, 2);
    let copy = cluster.state_dir("node1").join("master-copy.json");
    assert!(copy.exists(), "node1 is a candidate after its add");
    assert_eq!(
        roles(&cluster),
        [
            "master.lab.test N M",
            "node1.lab.test  N C",
            "node2.lab.test  N C"
        ]
    );

    let drained = gnt_ok(&cluster, &["node", "modify", "-D", "yes", "node1.lab.test"]);
    assert!(
        drained
            .stdout
            .contains("Node node1.lab.test is now online and drained."),
        "{drained}"
    );
    assert!(
        drained
            .stderr
            .contains("the cluster now has 2 master candidate(s), fewer than its pool size 10"),
        "{drained}"
    );
    assert_eq!(
        roles(&cluster),
        [
            "master.lab.test N M",
            "node1.lab.test  Y D",
            "node2.lab.test  N C"
        ]
    );
    assert!(!copy.exists(), "a drained node keeps no master copy");
    // Still online: it takes ssconf, which no longer lists it as a candidate.
    let now = serial(&cluster);
    for host in ["master", "node1", "node2"] {
        let candidates = ssconf(&cluster, host, "master_candidates").unwrap();
        assert!(
            !candidates.contains("node1.lab.test"),
            "{host}: {candidates}"
        );
        let published = crate::support::ssconf_published(&cluster, host);
        assert_eq!(published.serial, now, "{host}");
    }
    let info = gnt_ok(&cluster, &["node", "info", "-o", "json", "node1.lab.test"]);
    let info: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(info["drained"], true);
    assert_eq!(info["master_candidate"], false);

    // No promotion takes it back: a larger pool promotes nobody.
    gnt_ok(&cluster, &["cluster", "modify", "-C", "5"]);
    assert_eq!(roles(&cluster)[1], "node1.lab.test  Y D");
    refused(
        &cluster,
        &["node", "modify", "-C", "yes", "node1.lab.test"],
        "node1.lab.test is drained: a drained node is never a master candidate; undrain it first (--drained no)",
    );
    refused(
        &cluster,
        &["node", "modify", "-D", "yes", "-C", "yes", "node2.lab.test"],
        "Can't set the node into more than one state at the same time",
    );
    refused(
        &cluster,
        &[
            "node",
            "modify",
            "--offline",
            "yes",
            "-D",
            "yes",
            "node2.lab.test",
        ],
        "Can't set the node into more than one state at the same time",
    );
    refused(
        &cluster,
        &["node", "modify", "--drained", "yes", "master.lab.test"],
        "cannot mark the master node drained",
    );
    // A single-homed cluster: every secondary is its node's primary.
    refused(
        &cluster,
        &["node", "modify", "-s", "10.78.0.50", "node2.lab.test"],
        "The master has no secondary ip: this cluster is single-homed",
    );
    verify_passes(&cluster);

    // Undrained, with room in the pool: a candidate again, with its copy.
    let undrained = gnt_ok(&cluster, &["node", "modify", "-D", "no", "node1.lab.test"]);
    assert!(
        undrained
            .stdout
            .contains("Node node1.lab.test is now online and a master candidate."),
        "{undrained}"
    );
    assert_eq!(roles(&cluster)[1], "node1.lab.test  N C");
    assert!(copy.exists(), "an undrained candidate gets its copy back");
    verify_passes(&cluster);
}

/// Puts `address` on `host`'s secondary interface, beside its first one.
fn add_secondary(cluster: &ClusterLab, host: &str, address: &str) {
    let cidr = format!("{address}/24");
    let host = cluster.host(host).unwrap();
    host.ip(&["addr", "add", &cidr, "dev", "eth1"]).unwrap();
}

/// The IP addresses node `host`'s certificate (its `node.pem`) names.
fn certificate_ips(cluster: &ClusterLab, host: &str) -> Vec<IpAddr> {
    let pem = std::fs::read(cluster.state_dir(host).join("node.pem")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let certificate = pem.parse_x509().unwrap();
    let names = certificate.subject_alternative_name().unwrap().unwrap();
    names
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => Some(IpAddr::from(<[u8; 4]>::try_from(*bytes).unwrap())),
                16 => Some(IpAddr::from(<[u8; 16]>::try_from(*bytes).unwrap())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The fingerprint the configuration records for `host`'s certificate, and the one of the
/// certificate it has.
fn fingerprints(cluster: &ClusterLab, host: &str) -> (String, String) {
    let fqdn = ClusterLab::fqdn(host);
    let info = gnt_ok(cluster, &["node", "info", "-o", "json", &fqdn]);
    let info: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    let pem = std::fs::read_to_string(cluster.state_dir(host).join("node.pem")).unwrap();
    (
        info["certificate_sha256"].as_str().unwrap().to_owned(),
        gnt_master::pki::fingerprint_of_pem(&pem).unwrap(),
    )
}

#[test]
fn secondary_ip_changes_reach_every_ssconf_and_the_nodes_certificate() {
    let cluster = running(IpPolicy::HybridIpv6, 2);
    let (listed_before, _) = fingerprints(&cluster, "node1");

    // Refusals, each before anything changes.
    refused(
        &cluster,
        &["node", "modify", "-s", "fd00:78::50", "node1.lab.test"],
        "Secondary IP (fd00:78::50) needs to be a valid IPv4 address",
    );
    let taken = ClusterLab::secondary("node2").to_string();
    refused(
        &cluster,
        &["node", "modify", "-s", &taken, "node1.lab.test"],
        &format!(
            "New node ip address(es) conflict with existing node node2.lab.test ({taken} is already its address)"
        ),
    );
    // Nobody has it yet.
    refused(
        &cluster,
        &["node", "modify", "-s", "10.78.0.50", "node1.lab.test"],
        "Node secondary ip not reachable by TCP based ping to node daemon port: 10.78.0.50 port 1811 from 10.78.0.10",
    );
    refused(
        &cluster,
        &["node", "modify", "-s", "10.78.0.60", "master.lab.test"],
        "You gave 10.78.0.60 as the master's secondary IP, but it does not belong to this host",
    );
    refused(
        &cluster,
        &[
            "node",
            "modify",
            "-s",
            "10.78.0.50",
            "-D",
            "yes",
            "node1.lab.test",
        ],
        "give --secondary-ip alone",
    );
    assert_eq!(fingerprints(&cluster, "node1").0, listed_before);

    // The address on node1's secondary interface, beside its first one.
    add_secondary(&cluster, "node1", "10.78.0.50");
    let changed = gnt_ok(
        &cluster,
        &["node", "modify", "-s", "10.78.0.50", "node1.lab.test"],
    );
    assert!(
        changed
            .stdout
            .contains("Node node1.lab.test now has secondary ip 10.78.0.50."),
        "{changed}"
    );
    for host in ["master", "node1", "node2"] {
        let lines = ssconf(&cluster, host, "node_secondary_ips").unwrap();
        assert!(
            lines.lines().any(|l| l == "node1.lab.test 10.78.0.50"),
            "{host}: {lines}"
        );
    }
    let ips = certificate_ips(&cluster, "node1");
    assert!(
        ips.contains(&"10.78.0.50".parse().unwrap())
            && !ips.contains(&IpAddr::V4(ClusterLab::secondary("node1"))),
        "{ips:?}"
    );
    let (listed, presented) = fingerprints(&cluster, "node1");
    assert_ne!(listed, listed_before, "a new certificate is recorded");
    assert!(
        listed.eq_ignore_ascii_case(&presented),
        "{listed} / {presented}"
    );
    gnt_ok(
        &cluster,
        &["rpc", "call", "Version", "--nodes", "node1.lab.test"],
    );
    // Verify asks each node for the certificate it presents, and pings the new address.
    verify_passes(&cluster);

    // The master's own: an address of the master host, its node certificate reissued by
    // its own agent; the nodes' pings come from it from now on.
    add_secondary(&cluster, "master", "10.78.0.60");
    gnt_ok(
        &cluster,
        &["node", "modify", "-s", "10.78.0.60", "master.lab.test"],
    );
    assert!(certificate_ips(&cluster, "master").contains(&"10.78.0.60".parse().unwrap()));
    let (listed, presented) = fingerprints(&cluster, "master");
    assert!(
        listed.eq_ignore_ascii_case(&presented),
        "{listed} / {presented}"
    );
    verify_passes(&cluster);

    // An offline node: the address is committed, its certificate owed until it is back.
    gnt_ok(
        &cluster,
        &["node", "modify", "--offline", "yes", "node2.lab.test"],
    );
    let offline = gnt_ok(
        &cluster,
        &["node", "modify", "-s", "10.78.0.52", "node2.lab.test"],
    );
    assert!(
        offline.stderr.contains(
            "node2.lab.test is offline, so its certificate still names its previous secondary ip: once it is online, run `gnt node modify --secondary-ip 10.78.0.52 node2.lab.test` to reissue it"
        ),
        "{offline}"
    );
    let owed = gnt_ok(&cluster, &["cluster", "verify"]);
    assert!(
        owed.stdout
            .contains("its certificate does not name its secondary ip 10.78.0.52"),
        "{owed}"
    );
    add_secondary(&cluster, "node2", "10.78.0.52");
    let online = gnt_ok(
        &cluster,
        &["node", "modify", "--offline", "no", "node2.lab.test"],
    );
    assert!(
        online.stderr.contains(
            "run `gnt node modify --secondary-ip 10.78.0.52 node2.lab.test` to reissue it"
        ),
        "{online}"
    );
    gnt_ok(
        &cluster,
        &["node", "modify", "-s", "10.78.0.52", "node2.lab.test"],
    );
    assert!(certificate_ips(&cluster, "node2").contains(&"10.78.0.52".parse().unwrap()));
    let (listed, presented) = fingerprints(&cluster, "node2");
    assert!(
        listed.eq_ignore_ascii_case(&presented),
        "{listed} / {presented}"
    );
    let verify = verify_passes(&cluster);
    assert!(!verify.stdout.contains("10.78.0.52"), "{verify}");
}

/// The state a master stopped between the node's install of its new certificate and the
/// commit leaves, made by hand (a kill rarely lands in that window): the node presents a
/// certificate for the new address that the configuration records only as staged. The
/// master still calls it, verify says what finishes the change, and that finishes it.
#[test]
fn secondary_ip_change_stopped_after_the_install_is_finished_by_running_it_again() {
    use gnt_core::netutils::Hostname;
    use gnt_core::node::{Node, NodeAddrs};
    use gnt_master::config::{ConfigStore, Readdress};
    use gnt_master::pki::{ClusterCa, PkiPaths, fingerprint_of_pem};
    use gnt_transports::join::CertificateIssuer;

    let cluster = running(IpPolicy::HybridIpv6, 1);
    let new: IpAddr = "10.78.0.50".parse().unwrap();
    add_secondary(&cluster, "node1", "10.78.0.50");
    cluster.stop_masterd().unwrap();
    let master_dir = cluster.state_dir("master").join("master");
    let ca = ClusterCa::load(&PkiPaths::new(&master_dir)).unwrap();
    let state = cluster.state_dir("node1");
    let pem = std::fs::read(state.join("node.pem")).unwrap();
    let (_, parsed) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let spki = parsed
        .parse_x509()
        .unwrap()
        .tbs_certificate
        .subject_pki
        .raw
        .to_vec();
    let node = Node {
        name: Hostname::parse("node1.lab.test").unwrap(),
        addrs: NodeAddrs {
            primary: cluster.primary("node1"),
            secondary: new,
        },
    };
    let installed = ca.issue_node_certificate(&spki, &node).unwrap();
    let staged = fingerprint_of_pem(&installed).unwrap();
    let store = ConfigStore::new(&master_dir);
    let mut config = store.load().unwrap();
    config.nodes.get_mut(&node.name).unwrap().readdress = Some(Readdress {
        secondary_ip: new,
        certificate_sha256: staged.clone(),
    });
    store.save(&config).unwrap();
    cluster.stop_noded("node1", true).unwrap();
    std::fs::write(state.join("node.pem"), &installed).unwrap();
    cluster.start_noded("node1", None).unwrap();
    cluster.start_masterd().unwrap();

    gnt_ok(
        &cluster,
        &["rpc", "call", "Version", "--nodes", "node1.lab.test"],
    );
    let verify = cluster.gnt(&["cluster", "verify"]).unwrap();
    assert!(!verify.success(), "{verify}");
    assert!(
        verify
            .stdout
            .contains("presents the certificate issued for its new secondary ip 10.78.0.50")
            && verify.stdout.contains(
                "run `gnt node modify --secondary-ip 10.78.0.50 node1.lab.test` again to finish it"
            ),
        "{verify}"
    );
    gnt_ok(
        &cluster,
        &["node", "modify", "-s", "10.78.0.50", "node1.lab.test"],
    );
    let (listed, presented) = fingerprints(&cluster, "node1");
    assert!(
        listed.eq_ignore_ascii_case(&presented),
        "{listed} / {presented}"
    );
    assert!(!listed.eq_ignore_ascii_case(&staged), "reissued once more");
    assert!(certificate_ips(&cluster, "node1").contains(&new));
    for host in ["master", "node1"] {
        let lines = ssconf(&cluster, host, "node_secondary_ips").unwrap();
        assert!(
            lines.contains("node1.lab.test 10.78.0.50"),
            "{host}: {lines}"
        );
    }
    verify_passes(&cluster);
}

#[test]
fn a_candidate_demoted_while_offline_drops_its_master_copy_when_it_comes_back() {
    let cluster = running(IpPolicy::HybridIpv6, 2);
    let copy = cluster.state_dir("node1").join("master-copy.json");
    assert!(copy.exists(), "node1 is a candidate with its copy");
    gnt_ok(&cluster, &["node", "modify", "--offline", "yes", "node1"]);
    // Offline: demoted, but not told (no traffic at all).
    assert!(copy.exists());
    // The pool is full without it, so it comes back an ordinary node.
    gnt_ok(&cluster, &["cluster", "modify", "-C", "2"]);
    gnt_ok(&cluster, &["node", "modify", "--offline", "no", "node1"]);
    let roles: Vec<String> = roles(&cluster)
        .iter()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        roles,
        [
            "master.lab.test N M",
            "node1.lab.test N R",
            "node2.lab.test N C"
        ],
    );
    assert!(
        !copy.exists(),
        "an ordinary node kept the master copy (with the CA key)"
    );
}
