//! `gnt cluster destroy --yes-do-it` (issue 14): refused without the option (Ganeti's
//! words), on a node that is not the master, and while another node is in the cluster;
//! then the cluster IP goes, the master's gnt-noded is back in bootstrap mode with none of
//! the cluster's keys, gnt-masterd removes its directory and exits, and `gnt cluster init`
//! makes a new cluster on the same host. And gnt-masterd killed (SIGKILL) at random moments
//! of a destroy leaves a working cluster or a host where `gnt cluster init` works.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use gnt_core::policy::IpPolicy;
use gnt_integration::binaries::locate;
use gnt_integration::cluster_lab::{CLUSTER_NAME, ClusterLab};
use gnt_master::jobs::{JobOp, JobState, JobStore};

use crate::master_ip::{cluster_ip, eventually, held};
use crate::support::{files_under, gnt_ok, running};

const MASTERD: &str = "master/gnt-masterd";

/// Every file under `host`'s state directory, relative to it, sorted.
fn state_files(cluster: &ClusterLab, host: &str) -> Vec<String> {
    let dir = cluster.state_dir(host);
    let mut files: Vec<String> = files_under(&dir, |_| true)
        .iter()
        .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
        .collect();
    files.sort();
    files
}

/// Whether `host`'s own state makes its agent a member (ssconf names a cluster).
fn member(cluster: &ClusterLab, host: &str) -> bool {
    !gnt_core::ssconf::SsconfStore::new(cluster.state_dir(host))
        .read()
        .unwrap()
        .is_empty()
}

/// `gnt cluster init` again on the master host, then its daemons as after a first init
/// (gnt-noded restarted: it was waiting for a Join).
fn init_again(cluster: &ClusterLab) {
    let out = cluster.init().unwrap();
    assert!(out.success(), "{out}");
    assert!(
        out.stdout
            .starts_with(&format!("Cluster {CLUSTER_NAME} initialised")),
        "{out}"
    );
    cluster.stop_noded("master", true).unwrap();
    cluster.start_noded("master", None).unwrap();
    cluster.start_masterd().unwrap();
    let info = gnt_ok(cluster, &["cluster", "info"]);
    assert!(info.stdout.contains("Configuration serial: 1\n"), "{info}");
}

#[test]
fn destroy_is_refused_until_the_master_is_alone_and_leaves_a_host_where_init_works() {
    let policy = IpPolicy::HybridIpv6;
    let cluster = running(policy, 1);
    let ip = cluster_ip(policy);
    eventually("the master holds the cluster IP", || {
        held(&cluster, "master", ip).is_some()
    });

    let out = cluster.gnt(&["cluster", "destroy"]).unwrap();
    assert_eq!(out.code, 64, "{out}");
    assert_eq!(
        out.stderr,
        "gnt: Destroying a cluster is irreversible. If you really want destroy this cluster, supply the --yes-do-it option.\n"
    );
    let out = cluster
        .gnt_on("node1", &["cluster", "destroy", "--yes-do-it"])
        .unwrap();
    assert_eq!(out.code, 76, "{out}");
    assert_eq!(
        out.stderr,
        "gnt: this node (node1.lab.test) is not the master: the master is master.lab.test (ssconf); run `gnt cluster destroy --yes-do-it` there\n"
    );
    let out = cluster.gnt(&["cluster", "destroy", "--yes-do-it"]).unwrap();
    assert_eq!(out.code, 76, "{out}");
    assert_eq!(
        out.stderr,
        "gnt: There is still 1 node in this cluster besides the master: node1.lab.test; remove it first with `gnt node remove node1.lab.test`\n"
    );
    // Refused before anything was done: the cluster works as it did.
    assert!(held(&cluster, "master", ip).is_some());
    gnt_ok(&cluster, &["rpc", "call", "Version", "--all"]);

    gnt_ok(&cluster, &["node", "remove", "node1.lab.test"]);
    let master_key = std::fs::read(cluster.state_dir("master").join("master/master.key")).unwrap();
    let out = gnt_ok(&cluster, &["cluster", "destroy", "--yes-do-it"]);
    let state = cluster.state_dir("master");
    assert_eq!(
        out.stdout,
        format!(
            "Cluster IP {ip} deactivated on master.lab.test (eth0).\n\
             master.lab.test left the cluster: its gnt-noded deleted its ssconf, key and certificates and waits for a Join in bootstrap mode.\n\
             gnt-masterd removed {}/master (configuration, CA, master key, jobs) and stopped.\n\
             Cluster {CLUSTER_NAME} destroyed. `gnt cluster init` makes a new cluster on this host; restart gnt-noded after it.\n",
            state.display()
        )
    );
    assert_eq!(cluster.wait_exit(MASTERD, Duration::from_secs(10)), Some(0));
    assert_eq!(held(&cluster, "master", ip), None);
    // The agent is a bootstrapping one: no ssconf, a new key of its own (the cluster's
    // node and master key is gone: no file holds it), its self-signed certificate.
    assert!(!member(&cluster, "master"));
    // (The ssconf store's lock file is empty; the master's agent never had a join token,
    // so there is no join ledger.)
    assert_eq!(
        state_files(&cluster, "master"),
        [".ssconf/lock", "bootstrap.pem", "node.key"]
    );
    for file in files_under(&state, |_| true) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(master_key.len())
                .any(|w| w == master_key.as_slice()),
            "{} holds the destroyed cluster's key",
            file.display()
        );
    }
    let log = std::fs::read_to_string(cluster.log("master", "gnt-noded")).unwrap();
    let after_leaving = log
        .split("left the cluster; returning to bootstrap mode")
        .nth(1)
        .unwrap_or_else(|| panic!("the agent did not leave:\n{log}"));
    assert!(
        after_leaving.contains("waiting to join a cluster")
            || after_leaving.contains("no join token"),
        "{after_leaving}"
    );
    // Nothing left to destroy, and the CLI says so.
    let out = cluster.gnt(&["cluster", "destroy", "--yes-do-it"]).unwrap();
    assert_eq!(out.code, 76, "{out}");
    assert!(
        out.stderr
            .starts_with("gnt: there is no cluster on this host to destroy"),
        "{out}"
    );

    // What a destroy killed while deleting the master directory leaves, init deletes.
    let remains = state.join("master.destroyed");
    std::fs::create_dir(&remains).unwrap();
    std::fs::write(remains.join("ca.key"), "a destroyed cluster's key").unwrap();
    init_again(&cluster);
    assert!(!remains.exists());
    eventually("the new master holds the cluster IP", || {
        held(&cluster, "master", ip).is_some()
    });
}

/// Rounds of the kill test: 3, or 20 with `GNT_LONG_TESTS=1`.
fn rounds() -> u32 {
    if std::env::var_os("GNT_LONG_TESTS").is_some_and(|v| v == "1") {
        20
    } else {
        3
    }
}

/// `gnt cluster destroy --yes-do-it` on the master, as a child process.
fn spawn_destroy(cluster: &ClusterLab) -> Child {
    cluster
        .host("master")
        .unwrap()
        .command(locate("gnt").unwrap())
        .arg("--state-dir")
        .arg(cluster.state_dir("master"))
        .args(["cluster", "destroy", "--yes-do-it"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The master's gnt-masterd log, for a failure's message.
fn masterd_log(cluster: &ClusterLab) -> String {
    std::fs::read_to_string(cluster.log("master", "gnt-masterd")).unwrap_or_default()
}

/// Whether the master's job queue holds a destroy that never started.
fn queued_destroy(state: &Path) -> bool {
    let Ok(jobs) = JobStore::new(&state.join("master")).load_all() else {
        return false;
    };
    jobs.iter()
        .any(|job| job.op == JobOp::DestroyCluster && job.state == JobState::Queued)
}

fn has_config(state: &Path) -> bool {
    state.join("master/config.json").exists()
}

#[test]
fn killing_masterd_during_a_destroy_leaves_a_working_cluster_or_a_host_ready_for_init() {
    let policy = IpPolicy::Ipv4;
    let cluster = running(policy, 0);
    let ip = cluster_ip(policy);
    let state = cluster.state_dir("master");
    // How long a whole destroy takes here, uninterrupted; the kills fall within it.
    let started = Instant::now();
    gnt_ok(&cluster, &["cluster", "destroy", "--yes-do-it"]);
    let whole = started.elapsed();
    assert_eq!(cluster.wait_exit(MASTERD, Duration::from_secs(10)), Some(0));
    init_again(&cluster);
    let mut seed = u64::from(std::process::id());
    let mut seen = (0, 0, 0, 0);
    for round in 0..rounds() {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // Every other round within the first tenth, where the job itself runs (the rest of
        // a destroy is the daemon's stop).
        let span = if round % 2 == 0 { whole } else { whole / 10 };
        let delay = span.mul_f64(((seed >> 11) % 1000) as f64 / 1000.0);
        let mut client = spawn_destroy(&cluster);
        std::thread::sleep(delay);
        cluster.stop_masterd_on("master", false).unwrap();
        let _ = client.kill();
        let _ = client.wait();
        // A LeaveCluster the killed master had sent may still be arriving at the agent.
        std::thread::sleep(Duration::from_secs(1));
        let what = format!("round {round}, killed after {delay:?}");
        if queued_destroy(&state) {
            // Killed between recording the job and starting it: like any queued job, the
            // next start runs it (the operator asked for it), and it goes through.
            assert!(member(&cluster, "master"), "{what}");
            seen.3 += 1;
            cluster.spawn_masterd_on("master").unwrap();
            assert_eq!(
                cluster.wait_exit(MASTERD, Duration::from_secs(20)),
                Some(0),
                "{what}: gnt-masterd did not run the queued destroy\n{}",
                masterd_log(&cluster)
            );
            assert!(!state.join("master").exists(), "{what}");
        } else if member(&cluster, "master") {
            // Before the point of no return: the cluster works once gnt-masterd is back,
            // cluster IP included, and a destroy then goes through.
            assert!(has_config(&state), "{what}: a member without its master");
            seen.0 += 1;
            cluster
                .start_masterd()
                .unwrap_or_else(|e| panic!("{what}: {e}\n{}", masterd_log(&cluster)));
            gnt_ok(&cluster, &["cluster", "info"]);
            eventually("the cluster IP is back", || {
                held(&cluster, "master", ip).is_some()
            });
            gnt_ok(&cluster, &["cluster", "destroy", "--yes-do-it"]);
            assert_eq!(cluster.wait_exit(MASTERD, Duration::from_secs(10)), Some(0));
        } else {
            // After it: a gnt-masterd started again finishes the destroy, or there is no
            // configuration left to start from; init copes with what a kill left.
            if has_config(&state) {
                seen.1 += 1;
                cluster.spawn_masterd_on("master").unwrap();
                assert_eq!(
                    cluster.wait_exit(MASTERD, Duration::from_secs(20)),
                    Some(0),
                    "{what}: gnt-masterd did not finish the destroy\n{}",
                    masterd_log(&cluster)
                );
                assert!(!state.join("master").exists(), "{what}");
            } else {
                seen.2 += 1;
            }
        }
        assert_eq!(held(&cluster, "master", ip), None, "{what}");
        assert!(!member(&cluster, "master"), "{what}");
        init_again(&cluster);
        assert!(!state.join("master.destroyed").exists(), "{what}");
    }
    println!(
        "{} rounds within {whole:?}: killed with the job queued {}, before the master's node left {}, after it with the master directory there {}, after it was gone {}",
        rounds(),
        seen.3,
        seen.0,
        seen.1,
        seen.2
    );
}

#[test]
fn a_master_whose_node_left_already_is_destroyed_saying_what_is_left_to_do_by_hand() {
    let policy = IpPolicy::Ipv4;
    let cluster = running(policy, 0);
    let ip = cluster_ip(policy);
    eventually("the master holds the cluster IP", || {
        held(&cluster, "master", ip).is_some()
    });
    // Its node wiped by hand: the master can no longer ask it for anything.
    gnt_ok(
        &cluster,
        &[
            "rpc",
            "call",
            "LeaveCluster",
            "--force",
            "--nodes",
            "master.lab.test",
        ],
    );
    let out = gnt_ok(&cluster, &["cluster", "destroy", "--yes-do-it"]);
    assert!(
        out.stdout.starts_with("master.lab.test left the cluster: "),
        "{out}"
    );
    assert_eq!(
        out.stderr,
        "warning: master.lab.test had left the cluster already, so the cluster IP could not be removed through it; if `ip address show dev eth0` lists 10.77.0.100/32, remove it by hand (`ip address del 10.77.0.100/32 dev eth0`): `gnt cluster init` refuses a cluster IP that answers\n"
    );
    assert_eq!(cluster.wait_exit(MASTERD, Duration::from_secs(10)), Some(0));
    assert!(!cluster.state_dir("master").join("master").exists());
    // The warning is right: the address stayed, and init refuses it until it goes.
    assert!(held(&cluster, "master", ip).is_some());
    let out = cluster.init().unwrap();
    assert_eq!(out.code, 65, "{out}");
    assert!(out.stderr.contains("Cluster IP already active"), "{out}");
    cluster
        .host("master")
        .unwrap()
        .ip(&["address", "del", "10.77.0.100/32", "dev", "eth0"])
        .unwrap();
    init_again(&cluster);
}
