//! The master role (issue 12): master candidates and their copies, `gnt cluster
//! master-failover` with and without voting, and fencing of the master it replaced (nodes
//! refuse its calls naming the epoch; it stands down).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use gnt_core::policy::IpPolicy;
use gnt_integration::cluster_lab::ClusterLab;
use gnt_integration::grpcurl::grpcurl;

use crate::master_ip::{answers_from, cluster_ip, eventually, held};
use crate::support::{Running, empty, gnt_ok, running, serial};

/// `gnt node list -o json` on the current master: (name, candidate, offline) per node.
fn roles(cluster: &ClusterLab) -> Vec<(String, bool, bool)> {
    let out = gnt_ok(cluster, &["node", "list", "-o", "json"]);
    let nodes: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_owned(),
                n["master_candidate"].as_bool().unwrap(),
                n["offline"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The master copy of `host`, as JSON.
fn copy_of(cluster: &ClusterLab, host: &str) -> serde_json::Value {
    let path = cluster.state_dir(host).join("master-copy.json");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} is root's alone", path.display());
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A node procedure called on `target` from `from` with the certificate in `from`'s master
/// directory, claiming master epoch `epoch`: grpcurl's exit code and output.
fn call_as_old_master(cluster: &ClusterLab, from: &str, target: &str, epoch: u64) -> (i32, String) {
    let dir = cluster.state_dir(from).join("master");
    let address = format!("{}:1811", ClusterLab::fqdn(target));
    let output = cluster
        .host(from)
        .unwrap()
        .command(grpcurl().unwrap())
        .args(["-cacert"])
        .arg(dir.join("ca.pem"))
        .arg("-cert")
        .arg(dir.join("master.pem"))
        .arg("-key")
        .arg(dir.join("master.key"))
        .args(["-H", &format!("gnt-master-epoch: {epoch}"), "-d", "{}"])
        .arg(&address)
        .arg("gnt.node.v1.NodeAgent/NodeInfo")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn voting_refuses_a_live_master_and_a_failover_fences_the_old_one() {
    let cluster = running(IpPolicy::HybridIpv6, 2);
    // The pool (10) has room: both added nodes became candidates, with a copy each.
    assert_eq!(
        roles(&cluster),
        [
            ("master.lab.test".to_owned(), true, false),
            ("node1.lab.test".to_owned(), true, false),
            ("node2.lab.test".to_owned(), true, false),
        ]
    );
    let before = serial(&cluster);
    let copy = copy_of(&cluster, "node1");
    assert_eq!(copy["serial"], before);
    assert_eq!(copy["epoch"], 1);

    // The master's gnt-masterd runs: the vote refuses.
    let refused = cluster
        .gnt_on("node1", &["cluster", "master-failover"])
        .unwrap();
    assert_ne!(refused.code, 0, "{refused}");
    assert!(
        refused
            .stderr
            .contains("the master master.lab.test is alive and its gnt-masterd runs"),
        "{refused}"
    );
    // Nor may the master fail over to itself, or a non-member.
    let itself = cluster.gnt(&["cluster", "master-failover"]).unwrap();
    assert!(itself.stderr.contains("is already the master"), "{itself}");

    // Killed (it could not give the cluster IP up): the vote passes, node1 takes the role
    // at epoch 2, and the address moves with it.
    let ip = cluster_ip(IpPolicy::HybridIpv6);
    assert!(held(&cluster, "master", ip).is_some());
    cluster.stop_masterd_on("master", false).unwrap();
    assert!(held(&cluster, "master", ip).is_some(), "kill -9 left it");
    let moved = cluster
        .gnt_on("node1", &["cluster", "master-failover"])
        .unwrap();
    assert_eq!(moved.code, 0, "{moved}");
    assert!(
        moved.stdout.contains(&format!(
            "Master role moved from master.lab.test to node1.lab.test: master epoch 2, configuration serial {}.",
            before + 1
        )) && moved.stdout.contains("3 of 3 online nodes answered"),
        "{moved}"
    );
    assert!(
        held(&cluster, "master", ip).is_none(),
        "the failover removed it"
    );
    cluster.use_master("node1");
    cluster.start_masterd().unwrap();
    assert!(held(&cluster, "node1", ip).is_some());
    eventually("the cluster IP answers on node1", || {
        answers_from(&cluster, "node2", ip)
    });
    for host in ["master", "node1", "node2"] {
        let named = cluster.gnt_on(host, &["cluster", "getmaster"]).unwrap();
        assert_eq!(named.stdout.trim(), "node1.lab.test", "{host}: {named}");
    }
    // On a node that is not the master, a command that needs the master names it.
    let elsewhere = cluster.gnt_on("node2", &["node", "list"]).unwrap();
    assert!(
        elsewhere
            .stderr
            .contains("the master is node1.lab.test (ssconf), run gnt there"),
        "{elsewhere}"
    );
    let verify = gnt_ok(&cluster, &["cluster", "verify"]);
    assert!(verify.stdout.contains("Cluster verify passed"), "{verify}");

    // The old master's certificate is still a candidate's, but its epoch is over.
    let (code, out) = call_as_old_master(&cluster, "master", "node2", 1);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(
            "master epoch 1 is older than this node's 2: node1.lab.test is the master now"
        ),
        "{out}"
    );
    // Its gnt-masterd, started again with its old configuration, refuses to act.
    cluster.spawn_masterd_on("master").unwrap();
    let code = cluster.wait_exit("master/gnt-masterd", Duration::from_secs(20));
    assert!(code.is_some_and(|c| c != 0), "exit code {code:?}");
    let log = std::fs::read_to_string(cluster.log("master", "gnt-masterd")).unwrap();
    assert!(
        log.contains("this node is no longer the master")
            && log.contains("names node1.lab.test as master"),
        "{log}"
    );
}

/// A cluster of the master and `added` nodes, with two more hosts (`node{added+1}`,
/// `node{added+2}`) not added yet.
fn with_a_spare_host(policy: IpPolicy, added: u8) -> Running {
    let cluster = empty(policy, added + 2, &[]);
    assert!(cluster.init().unwrap().success());
    cluster.start_noded("master", None).unwrap();
    cluster.start_masterd().unwrap();
    for n in 1..=added {
        let host = format!("node{n}");
        let secondary = cluster.default_secondary(&host);
        let added = cluster.add_node(&host, secondary.as_deref()).unwrap();
        assert!(added.success(), "{added}");
    }
    cluster
}

#[test]
fn after_the_master_host_dies_a_failover_without_voting_keeps_every_acknowledged_change() {
    let cluster = with_a_spare_host(IpPolicy::Ipv4, 3);
    // A change acknowledged just before the master dies.
    gnt_ok(
        &cluster,
        &[
            "node",
            "modify",
            "--master-candidate",
            "no",
            "node3.lab.test",
        ],
    );
    let acknowledged = serial(&cluster);
    assert!(
        !cluster.state_dir("node3").join("master-copy.json").exists(),
        "a demoted candidate's copy is deleted"
    );
    cluster.kill_host("master").unwrap();

    let without = cluster
        .gnt_on("node1", &["cluster", "master-failover", "--no-voting"])
        .unwrap();
    assert_ne!(without.code, 0, "no terminal, no --yes-do-it: {without}");
    assert!(without.stderr.contains("add --yes-do-it"), "{without}");
    let moved = cluster
        .gnt_on(
            "node1",
            &["cluster", "master-failover", "--no-voting", "--yes-do-it"],
        )
        .unwrap();
    assert_eq!(moved.code, 0, "{moved}");
    assert!(
        moved
            .stdout
            .contains(&format!("configuration serial {}.", acknowledged + 1))
            && moved
                .stdout
                .contains("Warning:       ssconf not updated on master.lab.test"),
        "{moved}"
    );
    cluster.use_master("node1");
    cluster.start_masterd().unwrap();
    assert_eq!(
        roles(&cluster),
        [
            ("master.lab.test".to_owned(), true, false),
            ("node1.lab.test".to_owned(), true, false),
            ("node2.lab.test".to_owned(), true, false),
            ("node3.lab.test".to_owned(), false, false),
        ],
        "the change acknowledged before the kill is there"
    );

    // Fully manageable: the dead host out of the way, a node removed, a node added.
    gnt_ok(
        &cluster,
        &["node", "modify", "--offline", "yes", "master.lab.test"],
    );
    gnt_ok(&cluster, &["node", "remove", "node3.lab.test"]);
    let added = cluster.add_node("node4", None).unwrap();
    assert!(added.success(), "{added}");
    let verify = gnt_ok(&cluster, &["cluster", "verify"]);
    assert!(verify.stdout.contains("Cluster verify passed"), "{verify}");
    let copy = copy_of(&cluster, "node4");
    assert_eq!(copy["epoch"], 2);
    assert_eq!(copy["serial"], serial(&cluster));

    // The old master comes back with its old state (its ssconf and configuration of epoch
    // 1; marked offline meanwhile, it is no candidate any more): the nodes refuse its calls
    // naming the epoch, and its gnt-masterd, which finds nothing wrong on its own disk,
    // stands down as soon as it hears from them.
    cluster.revive_host("master").unwrap();
    cluster.start_noded("master", None).unwrap();
    let (code, out) = call_as_old_master(&cluster, "master", "node2", 1);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("master epoch 1 is older than this node's 2"),
        "{out}"
    );
    cluster.spawn_masterd_on("master").unwrap();
    let code = cluster.wait_exit("master/gnt-masterd", Duration::from_secs(30));
    assert_eq!(code, Some(76), "wrong state");
    let log = std::fs::read_to_string(cluster.log("master", "gnt-masterd")).unwrap();
    assert!(
        log.contains("a newer master took over: standing down")
            && log.contains(
                "refuses this master's calls: its ssconf is of master epoch 2, this master's is 1"
            )
            && log.contains("node1.lab.test is the master now"),
        "{log}"
    );
    // It gave up the cluster IP it still held from before the kill (its agent may finish
    // the removal a moment after the daemon's wait for it ended, on a loaded machine); the
    // new master has it.
    let ip = cluster_ip(IpPolicy::Ipv4);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while held(&cluster, "master", ip).is_some() {
        let agent = std::fs::read_to_string(cluster.log("master", "gnt-noded")).unwrap_or_default();
        assert!(
            std::time::Instant::now() < deadline,
            "the old master kept the cluster IP\n{log}\n{agent}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(held(&cluster, "node1", ip).is_some());
    // Nothing it did reached the nodes: the new master's cluster is as it was.
    let verify = gnt_ok(&cluster, &["cluster", "verify"]);
    assert!(verify.stdout.contains("Cluster verify passed"), "{verify}");
}

#[test]
fn the_candidate_pool_is_filled_at_add_and_when_it_grows() {
    let cluster = with_a_spare_host(IpPolicy::Ipv4, 0);
    gnt_ok(
        &cluster,
        &["cluster", "modify", "--candidate-pool-size", "2"],
    );
    // node1 fills the pool; node2 (the lab's second host, started by hand) finds it full.
    let added = cluster.add_node("node1", None).unwrap();
    assert!(added.success(), "{added}");
    let token = cluster.token().unwrap();
    cluster.start_noded("node2", Some(&token)).unwrap();
    let added = cluster.node_add("node2", &token, None).unwrap();
    assert!(added.success(), "{added}");
    assert_eq!(
        roles(&cluster),
        [
            ("master.lab.test".to_owned(), true, false),
            ("node1.lab.test".to_owned(), true, false),
            ("node2.lab.test".to_owned(), false, false),
        ]
    );
    let no_copy = cluster.state_dir("node2").join("master-copy.json");
    assert!(!no_copy.exists());

    // A larger pool promotes node2 at once: a copy, and its certificate in every ssconf.
    let grown = gnt_ok(&cluster, &["cluster", "modify", "-C", "3"]);
    assert!(
        grown
            .stdout
            .contains("Cluster modified: candidate pool size 3"),
        "{grown}"
    );
    assert_eq!(copy_of(&cluster, "node2")["serial"], serial(&cluster));
    for host in ["master", "node1", "node2"] {
        let certs = crate::support::ssconf(&cluster, host, "master_candidates_certs").unwrap();
        assert!(certs.contains("node2.lab.test="), "{host}: {certs}");
    }
    // Demoted by hand: its copy is deleted and its certificate unlisted.
    gnt_ok(
        &cluster,
        &[
            "node",
            "modify",
            "--master-candidate",
            "no",
            "node2.lab.test",
        ],
    );
    assert!(!no_copy.exists());
    let certs = crate::support::ssconf(&cluster, "node1", "master_candidates_certs").unwrap();
    assert!(!certs.contains("node2.lab.test="), "{certs}");
    // The master's flags are the failover's.
    let refused = cluster
        .gnt(&["node", "modify", "-C", "no", "master.lab.test"])
        .unwrap();
    assert!(
        refused
            .stderr
            .contains("The master role can be changed only via master-failover"),
        "{refused}"
    );
    let verify = gnt_ok(&cluster, &["cluster", "verify"]);
    assert!(verify.stdout.contains("Cluster verify passed"), "{verify}");
}
