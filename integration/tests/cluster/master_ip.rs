//! The cluster IP (issue 12): `gnt-masterd` puts it on the master's device when it starts
//! and takes it off when it stops; `gnt cluster activate-master-ip` and
//! `deactivate-master-ip`; an address configured on another host stops the activation;
//! `gnt cluster modify --master-netmask` changes it live; `gnt cluster verify` reports it
//! missing; the announcement updates a neighbour's stale entry. Each for a hybrid (IPv6)
//! and a pure IPv4 cluster, seen with `ip` inside the lab hosts.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use gnt_core::netutils::{PingOptions, tcp_ping};
use gnt_core::policy::IpPolicy;
use gnt_integration::cluster_lab::ClusterLab;

use crate::support::{empty, gnt_ok, running, ssconf};

/// The cluster IP of the lab's cluster name under `policy`.
pub(crate) fn cluster_ip(policy: IpPolicy) -> IpAddr {
    match policy {
        IpPolicy::HybridIpv6 => "fd00:77::100".parse().unwrap(),
        IpPolicy::Ipv4 => "10.77.0.100".parse().unwrap(),
    }
}

/// What `ip -o addr show` prints in `host`.
fn addresses(cluster: &ClusterLab, host: &str) -> String {
    let out = cluster
        .host(host)
        .unwrap()
        .run("ip", &["-o", "addr", "show"])
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The device and prefix length `ip` has in `host`, if it has it.
pub(crate) fn held(cluster: &ClusterLab, host: &str, ip: IpAddr) -> Option<(String, u8)> {
    // `2: eth0    inet6 fd00:77::100/128 scope global nodad ...`
    addresses(cluster, host).lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (address, prefix) = fields.get(3)?.split_once('/')?;
        (address.parse::<IpAddr>().ok()? == ip)
            .then(|| Some((fields[1].to_owned(), prefix.parse().ok()?)))
            .flatten()
    })
}

/// Waits, at most 20 s, until `done` holds; panics with `what` otherwise.
pub(crate) fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a TCP connection from `host` to `ip` port 1811 is accepted.
pub(crate) fn answers_from(cluster: &ClusterLab, host: &str, ip: IpAddr) -> bool {
    let options = PingOptions {
        timeout: Duration::from_secs(2),
        source: None,
        live_port_needed: true,
    };
    cluster
        .host(host)
        .unwrap()
        .block_on(async move { tcp_ping(SocketAddr::new(ip, 1811), &options).await })
        .unwrap()
        .is_ok_and(|outcome| outcome.is_alive(true))
}

/// `host`'s MAC address on eth0.
fn mac(cluster: &ClusterLab, host: &str) -> String {
    let out = cluster
        .host(host)
        .unwrap()
        .run("cat", &["/sys/class/net/eth0/address"])
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `host`'s neighbour entry for `ip` on eth0, as `ip neigh show` prints it.
fn neighbour(cluster: &ClusterLab, host: &str, ip: IpAddr) -> String {
    let out = cluster
        .host(host)
        .unwrap()
        .run("ip", &["neigh", "show", &ip.to_string(), "dev", "eth0"])
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn full_prefix(policy: IpPolicy) -> u8 {
    policy.default_master_netmask()
}

fn the_cluster_ip_follows_gnt_masterd(policy: IpPolicy) {
    let cluster = running(policy, 1);
    let ip = cluster_ip(policy);
    eventually("the cluster IP is on the master's eth0", || {
        held(&cluster, "master", ip) == Some(("eth0".to_owned(), full_prefix(policy)))
    });
    assert!(
        answers_from(&cluster, "node1", ip),
        "node1 cannot connect to {ip}"
    );
    assert_eq!(held(&cluster, "node1", ip), None);
    let log = std::fs::read_to_string(cluster.log("master", "gnt-noded")).unwrap();
    assert!(log.contains("cluster IP activated"), "{log}");

    cluster.stop_masterd().unwrap();
    assert_eq!(
        held(&cluster, "master", ip),
        None,
        "{}",
        addresses(&cluster, "master")
    );
    assert!(!answers_from(&cluster, "node1", ip));

    // A master that was killed leaves the address; the next start finds it there.
    cluster.start_masterd().unwrap();
    eventually("the cluster IP is back", || {
        held(&cluster, "master", ip).is_some()
    });
    cluster.stop_process("master/gnt-masterd", false).unwrap();
    assert!(held(&cluster, "master", ip).is_some());
    cluster.start_masterd().unwrap();
    let out = gnt_ok(&cluster, &["cluster", "activate-master-ip"]);
    assert!(
        out.stdout
            .contains("is already active on master.lab.test (eth0); nothing to do"),
        "{out}"
    );
}

#[test]
fn the_cluster_ip_is_on_the_master_while_gnt_masterd_runs_hybrid() {
    the_cluster_ip_follows_gnt_masterd(IpPolicy::HybridIpv6);
}

#[test]
fn the_cluster_ip_is_on_the_master_while_gnt_masterd_runs_ipv4() {
    the_cluster_ip_follows_gnt_masterd(IpPolicy::Ipv4);
}

fn operators_move_the_cluster_ip(policy: IpPolicy) {
    let cluster = running(policy, 1);
    let ip = cluster_ip(policy);
    let prefix = full_prefix(policy);
    eventually("the cluster IP is up", || {
        held(&cluster, "master", ip).is_some()
    });

    // The node checks what it is asked against its own ssconf and devices.
    let (other_family, family) = match policy {
        IpPolicy::HybridIpv6 => ("10.77.0.200", "IPv6"),
        IpPolicy::Ipv4 => ("fd00:77::200", "IPv4"),
    };
    for (request, refusal) in [
        (
            format!(r#"{{"address":"{other_family}","prefixLength":32}}"#),
            format!("is not an {family} address, and this node's cluster is {family}"),
        ),
        (
            format!(r#"{{"address":"{ip}","prefixLength":200}}"#),
            format!("invalid prefix length for the cluster IP: invalid {family} netmask /200"),
        ),
        (
            format!(r#"{{"address":"{ip}","prefixLength":{prefix},"netdev":"nosuch0"}}"#),
            "no network device 'nosuch0' on this node".to_owned(),
        ),
    ] {
        let out = cluster
            .gnt(&[
                "rpc",
                "call",
                "ActivateMasterIp",
                "--force",
                "--nodes",
                "master.lab.test",
                "-d",
                &request,
            ])
            .unwrap();
        assert_eq!(out.code, 1, "{out}");
        assert!(out.stdout.contains(&refusal), "{refusal}: {out}");
    }

    // Without a terminal, deactivation wants --yes.
    let out = cluster.gnt(&["cluster", "deactivate-master-ip"]).unwrap();
    assert_eq!(out.code, 64, "{out}");
    assert!(out.stderr.contains("give --yes"), "{out}");
    assert!(held(&cluster, "master", ip).is_some());

    let out = gnt_ok(&cluster, &["cluster", "deactivate-master-ip", "--yes"]);
    assert!(
        out.stdout.contains(&format!(
            "Cluster IP {ip}/{prefix} deactivated on master.lab.test (eth0)."
        )),
        "{out}"
    );
    assert_eq!(held(&cluster, "master", ip), None);
    let out = gnt_ok(&cluster, &["cluster", "deactivate-master-ip", "--yes"]);
    assert!(
        out.stdout
            .contains("is not active on master.lab.test; nothing to do"),
        "{out}"
    );

    // verify: the master lacks it, node1 cannot reach it; the fix is named.
    let out = cluster.gnt(&["cluster", "verify"]).unwrap();
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains(&format!("ERROR:ENODEMASTERIP: node master.lab.test: master IP {ip} not configured on the master; `gnt cluster activate-master-ip` configures it")), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "ERROR:ENODEMASTERIP: node node1.lab.test: cannot reach the master IP {ip} on port 1811"
        )),
        "{out}"
    );

    let out = gnt_ok(&cluster, &["cluster", "activate-master-ip"]);
    assert!(
        out.stdout.contains(&format!(
            "Cluster IP {ip}/{prefix} activated on master.lab.test (eth0)."
        )),
        "{out}"
    );
    assert_eq!(
        held(&cluster, "master", ip),
        Some(("eth0".to_owned(), prefix))
    );
    let out = gnt_ok(&cluster, &["cluster", "verify"]);
    assert!(!out.stdout.contains("ENODEMASTERIP"), "{out}");

    // On another device of the master: left alone by activation, refused by deactivation.
    gnt_ok(&cluster, &["cluster", "deactivate-master-ip", "--yes"]);
    let cidr = format!("{ip}/{prefix}");
    cluster
        .host("master")
        .unwrap()
        .ip(&["addr", "add", &cidr, "dev", "lo"])
        .unwrap();
    let out = gnt_ok(&cluster, &["cluster", "activate-master-ip"]);
    assert!(
        out.stdout
            .contains("already active on master.lab.test (lo)"),
        "{out}"
    );
    assert!(
        out.stderr.contains(&format!(
            "warning: the cluster IP {ip} is on lo, not on eth0"
        )),
        "{out}"
    );
    let out = cluster
        .gnt(&["cluster", "deactivate-master-ip", "--yes"])
        .unwrap();
    assert_eq!(out.code, 76, "{out}");
    assert!(out.stderr.contains(&format!("Could not deactivate the master IP on master.lab.test: the cluster IP {ip} is configured on the wrong device: on lo, not on eth0; remove it by hand (`ip address del {cidr} dev lo`)")), "{out}");
    cluster
        .host("master")
        .unwrap()
        .ip(&["addr", "del", &cidr, "dev", "lo"])
        .unwrap();
}

#[test]
fn operators_activate_and_deactivate_the_cluster_ip_and_verify_sees_it_hybrid() {
    operators_move_the_cluster_ip(IpPolicy::HybridIpv6);
}

#[test]
fn operators_activate_and_deactivate_the_cluster_ip_and_verify_sees_it_ipv4() {
    operators_move_the_cluster_ip(IpPolicy::Ipv4);
}

fn the_cluster_ip_is_claimed_carefully(policy: IpPolicy) {
    let cluster = running(policy, 1);
    let ip = cluster_ip(policy);
    let prefix = full_prefix(policy);
    eventually("the cluster IP is up", || {
        held(&cluster, "master", ip).is_some()
    });
    gnt_ok(&cluster, &["cluster", "deactivate-master-ip", "--yes"]);

    // Configured by hand on node1: activation refuses and adds nothing. Even while the
    // master's kernel is still resolving the address for an earlier probe (made when nobody
    // had it), past its last solicitation: when that resolution failed, 3 s after it began,
    // the kernel dropped the new probe's connection with "no route to host", and the
    // address was taken twice (in every such second of the lab test, before the fix).
    let node1 = cluster.host("node1").unwrap();
    let cidr = format!("{ip}/{prefix}");
    let started = Instant::now();
    let probe = format!(r#"{{"target":"{ip}","port":1811,"timeout":"1s"}}"#);
    let out = gnt_ok(
        &cluster,
        &[
            "rpc",
            "call",
            "TcpPing",
            "--nodes",
            "master.lab.test",
            "-d",
            &probe,
        ],
    );
    assert!(out.stdout.contains("TIMED_OUT"), "{out}");
    // After the resolution's last solicitation (at 2 s), before its end (at 3 s).
    std::thread::sleep(Duration::from_millis(2150).saturating_sub(started.elapsed()));
    node1
        .ip(&["addr", "add", &cidr, "dev", "eth0", "nodad"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(started.elapsed()));
    let out = cluster.gnt(&["cluster", "activate-master-ip"]).unwrap();
    assert_eq!(out.code, 65, "{out}");
    assert_eq!(
        out.stderr.trim(),
        format!(
            "gnt: Could not activate the master IP on master.lab.test: the cluster IP {ip} answers already (on port 1811): it is configured on another machine; remove it there, then run `gnt cluster activate-master-ip` again"
        ),
        "{out}"
    );
    assert_eq!(held(&cluster, "master", ip), None);
    node1.ip(&["addr", "del", &cidr, "dev", "eth0"]).unwrap();

    // The announcement replaces node1's stale entry (a MAC no host has) with the master's.
    node1
        .ip(&[
            "neigh",
            "replace",
            &ip.to_string(),
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "eth0",
            "nud",
            "stale",
        ])
        .unwrap();
    assert!(neighbour(&cluster, "node1", ip).contains("02:00:00:00:00:99"));
    // The control: the address added by hand, without an announcement, leaves the entry
    // as it was.
    let master = cluster.host("master").unwrap();
    master
        .ip(&["addr", "add", &cidr, "dev", "eth0", "nodad"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    master.ip(&["addr", "del", &cidr, "dev", "eth0"]).unwrap();
    assert!(
        neighbour(&cluster, "node1", ip).contains("02:00:00:00:00:99"),
        "{}",
        neighbour(&cluster, "node1", ip)
    );
    gnt_ok(&cluster, &["cluster", "activate-master-ip"]);
    let master_mac = mac(&cluster, "master");
    eventually("node1's entry names the master's MAC", || {
        neighbour(&cluster, "node1", ip).contains(&master_mac)
    });

    // The netmask, changed live and in every node's ssconf.
    let (netmask, wrong, version, max) = match policy {
        IpPolicy::HybridIpv6 => ("64", "129", 6, 128),
        IpPolicy::Ipv4 => ("24", "33", 4, 32),
    };
    let out = gnt_ok(
        &cluster,
        &["cluster", "modify", "--master-netmask", netmask],
    );
    assert!(
        out.stdout
            .contains(&format!("Cluster modified: master netmask {netmask}")),
        "{out}"
    );
    assert!(out.stderr.is_empty(), "{out}");
    assert_eq!(
        held(&cluster, "master", ip),
        Some(("eth0".to_owned(), netmask.parse().unwrap()))
    );
    assert_eq!(
        ssconf(&cluster, "node1", "master_netmask")
            .as_deref()
            .map(str::trim),
        Some(netmask)
    );
    let out = gnt_ok(&cluster, &["cluster", "info"]);
    assert!(
        out.stdout.contains(&format!("{ip}/{netmask} on eth0")),
        "{out}"
    );
    let out = cluster
        .gnt(&["cluster", "modify", "--master-netmask", wrong])
        .unwrap();
    assert_eq!(out.code, 64, "{out}");
    assert_eq!(
        out.stderr.trim(),
        format!("gnt: CIDR netmask ({wrong}) not valid for IPv{version}: use 1 to {max}")
    );
    let out = cluster.gnt(&["cluster", "modify"]).unwrap();
    assert_eq!(out.code, 64, "{out}");
    assert!(
        out.stderr
            .contains("nothing to change: give --master-netmask N"),
        "{out}"
    );
}

#[test]
fn the_cluster_ip_is_refused_when_taken_and_announced_when_claimed_hybrid() {
    the_cluster_ip_is_claimed_carefully(IpPolicy::HybridIpv6);
}

#[test]
fn the_cluster_ip_is_refused_when_taken_and_announced_when_claimed_ipv4() {
    the_cluster_ip_is_claimed_carefully(IpPolicy::Ipv4);
}

#[test]
fn init_takes_the_primary_device_by_default_and_refuses_a_device_the_master_lacks() {
    let cluster = empty(IpPolicy::Ipv4, 0, &[]);
    let out = cluster
        .gnt(&[
            "cluster",
            "init",
            "--master-netdev",
            "eth9",
            "--node-name",
            "master.lab.test",
            "cluster.lab.test",
        ])
        .unwrap();
    assert_eq!(out.code, 67, "{out}");
    assert_eq!(
        out.stderr.trim(),
        "gnt: invalid --master-netdev: no network interface 'eth9' on this host; give a device of this host (`ip link` lists them)"
    );
    let out = gnt_ok(
        &cluster,
        &[
            "cluster",
            "init",
            "--node-name",
            "master.lab.test",
            "cluster.lab.test",
        ],
    );
    assert!(
        out.stdout.contains("cluster IP:  10.77.0.100/32 on eth0"),
        "{out}"
    );
    assert_eq!(
        ssconf(&cluster, "master", "master_netdev")
            .as_deref()
            .map(str::trim),
        Some("eth0")
    );
}
