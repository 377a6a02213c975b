//! Transports across real hosts: network namespaces on a private bridge, each with its own
//! addresses, hosts file and sysctls. Needs root; every address used is inside the lab.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::netutils::{Host, Hostname};
use gnt_core::policy::IpPolicy;
use gnt_integration::lab::{HostSpec, Lab, LabHost, Network};
use gnt_transports::{ConnectError, Connector, DialOptions, GrpcServer, ListenError, Listener};

use crate::support::who_am_i;

fn two_hosts(server: HostSpec) -> Lab {
    Lab::builder()
        .host(
            server
                .ipv4("10.77.0.1".parse().unwrap())
                .ipv6("fd00:77::1".parse().unwrap()),
        )
        .host(
            HostSpec::new("client")
                .ipv4("10.77.0.2".parse().unwrap())
                .ipv6("fd00:77::2".parse().unwrap()),
        )
        .build()
        .unwrap()
}

/// A server inside `host` listening by `policy` on a free port; stops when the returned
/// sender is dropped. Returns the port.
fn serve_in(host: &LabHost, policy: IpPolicy) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let (port_tx, port_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    host.spawn(async move {
        let listener = Listener::tcp_for_policy(policy, 0).unwrap();
        let server = GrpcServer::new("lab-server")
            .start(vec![listener])
            .await
            .unwrap();
        port_tx
            .send(server.local_addrs()[0].tcp().unwrap().port())
            .unwrap();
        let _ = stop_rx.await;
        server.shutdown().await.unwrap();
    })
    .unwrap();
    (
        port_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        stop_tx,
    )
}

/// The listening sockets on `port` as `ss -ltn` shows them inside `host`.
fn listening(host: &LabHost, port: u16) -> Vec<String> {
    let out = host.run("ss", &["-ltnH"]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3).map(str::to_owned))
        .filter(|local| local.ends_with(&format!(":{port}")))
        .collect()
}

fn dial(addr: SocketAddr) -> Connector {
    Connector::tcp_addr(addr, DialOptions::new(IpPolicy::HybridIpv6))
}

#[test]
fn a_hybrid_listener_on_a_bindv6only_host_takes_ipv4_and_ipv6_on_one_socket() {
    let lab = two_hosts(HostSpec::new("server").sysctl("net.ipv6.bindv6only", "1"));
    let server = lab.host("server").unwrap();
    let sysctl = server
        .run("cat", &["/proc/sys/net/ipv6/bindv6only"])
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sysctl.stdout).trim(),
        "1",
        "the host default is v6-only"
    );

    let (port, _stop) = serve_in(server, IpPolicy::HybridIpv6);
    // One socket, shown by ss as `*:port`: dual-stack, not `[::]:port` (v6-only).
    assert_eq!(listening(server, port), [format!("*:{port}")]);

    let (v4, v6) = lab
        .host("client")
        .unwrap()
        .block_on(async move {
            let v4 = who_am_i(dial(([10, 77, 0, 1], port).into()).channel().await.unwrap())
                .await
                .unwrap();
            let v6 = who_am_i(
                dial(SocketAddr::new("fd00:77::1".parse().unwrap(), port))
                    .channel()
                    .await
                    .unwrap(),
            )
            .await
            .unwrap();
            (v4, v6)
        })
        .unwrap();
    assert_eq!((v4.family.as_str(), v6.family.as_str()), ("IPv4", "IPv6"));
    assert!(
        v4.peer.starts_with("10.77.0.2:"),
        "IPv4 peers are reported as IPv4: {}",
        v4.peer
    );
    assert!(v6.peer.starts_with("[fd00:77::2]:"), "{}", v6.peer);
}

#[test]
fn an_ipv4_policy_listener_takes_ipv4_and_refuses_ipv6() {
    let lab = two_hosts(HostSpec::new("server"));
    let server = lab.host("server").unwrap();
    let (port, _stop) = serve_in(server, IpPolicy::Ipv4);
    assert_eq!(listening(server, port), [format!("0.0.0.0:{port}")]);
    let (v4, v6) = lab
        .host("client")
        .unwrap()
        .block_on(async move {
            let v4 = who_am_i(dial(([10, 77, 0, 1], port).into()).channel().await.unwrap()).await;
            let v6 = dial(SocketAddr::new("fd00:77::1".parse().unwrap(), port))
                .connect()
                .await
                .map(|_| ());
            (v4, v6)
        })
        .unwrap();
    assert_eq!(v4.unwrap().family, "IPv4");
    let err = v6.unwrap_err();
    assert!(err.is_refused(), "IPv6 must be refused: {err}");
}

#[test]
fn a_name_with_both_families_falls_back_to_ipv4_when_ipv6_is_blackholed() {
    let lab = two_hosts(HostSpec::new("server"));
    let (port, _stop) = serve_in(lab.host("server").unwrap(), IpPolicy::HybridIpv6);
    let client = lab.host("client").unwrap();
    let resolver = client.resolver().unwrap();
    let connector = move |policy| {
        let mut options = DialOptions::new(policy);
        options.resolver = Some(resolver.clone());
        Connector::tcp(
            Host::Name(Hostname::parse("server.lab.test").unwrap()),
            port,
            options,
        )
    };
    let timed = |policy| {
        let connector = connector(policy);
        client
            .block_on(async move {
                let started = Instant::now();
                let me = who_am_i(connector.channel().await.unwrap()).await.unwrap();
                (me.family, started.elapsed())
            })
            .unwrap()
    };

    // Healthy: IPv6 is preferred.
    assert_eq!(timed(IpPolicy::HybridIpv6).0, "IPv6");

    // IPv6 black-holed: the IPv6 attempt hangs, IPv4 starts 250 ms later and wins.
    lab.blackhole("client", "fd00:77::1".parse().unwrap())
        .unwrap();
    let (family, took) = timed(IpPolicy::HybridIpv6);
    assert_eq!(family, "IPv4");
    assert!(
        took >= Duration::from_millis(240),
        "IPv4 started before the attempt delay: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "fallback took {took:?}");

    // An IPv4 cluster dials IPv4 (that it never tries IPv6 is a unit test of the
    // connector's address selection).
    assert_eq!(timed(IpPolicy::Ipv4).0, "IPv4");

    lab.heal("client", "fd00:77::1".parse().unwrap()).unwrap();
    assert_eq!(timed(IpPolicy::HybridIpv6).0, "IPv6");
}

#[test]
fn a_hybrid_listener_on_a_host_without_ipv6_says_so() {
    let lab = Lab::builder()
        .host(
            HostSpec::new("legacy")
                .ipv4("10.77.0.9".parse().unwrap())
                .sysctl("net.ipv6.conf.all.disable_ipv6", "1")
                .sysctl("net.ipv6.conf.default.disable_ipv6", "1"),
        )
        .build()
        .unwrap();
    let (hybrid, ipv4) = lab
        .host("legacy")
        .unwrap()
        .block_on(async {
            let hybrid = Listener::tcp_for_policy(IpPolicy::HybridIpv6, 1811).map(|_| ());
            let ipv4 =
                Listener::tcp_for_policy(IpPolicy::Ipv4, 1811).map(|l| l.local_addr().to_string());
            (hybrid, ipv4)
        })
        .unwrap();
    let err = hybrid.unwrap_err();
    assert!(matches!(err, ListenError::Ipv6Unavailable { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "cannot listen on [::]:1811: IPv6 is not available on this host (disabled, or not supported by the kernel); a hybrid IPv6/IPv4 cluster needs it"
    );
    assert_eq!(err.kind(), ErrorKind::Environment);
    assert_eq!(ipv4.unwrap(), "0.0.0.0:1811");
}

#[test]
fn a_cut_link_makes_a_host_unreachable_until_restored() {
    let lab = two_hosts(HostSpec::new("server"));
    let (port, _stop) = serve_in(lab.host("server").unwrap(), IpPolicy::Ipv4);
    let attempt = || {
        lab.host("client")
            .unwrap()
            .block_on(async move {
                let mut options = DialOptions::new(IpPolicy::Ipv4);
                options.connect_timeout = Duration::from_millis(700);
                Connector::tcp_addr(([10, 77, 0, 1], port).into(), options)
                    .connect()
                    .await
                    .map(|_| ())
            })
            .unwrap()
    };
    attempt().unwrap();
    lab.cut_link("server", Network::Primary).unwrap();
    let err = attempt().unwrap_err();
    assert!(matches!(err, ConnectError::TimedOut { .. }), "{err}");
    lab.restore_link("server", Network::Primary).unwrap();
    attempt().unwrap();
}

#[test]
fn a_lab_removes_its_namespaces_when_dropped_and_sweeps_those_of_dead_runs() {
    // A leftover of a run whose process is gone (pids never reach 4194305). Its name is
    // this run's own, so that suites running side by side never add and sweep the same one.
    let ghost = format!("gntlab-4194305-{}-ghost", std::process::id());
    let ghost = ghost.as_str();
    let added = std::process::Command::new("ip")
        .args(["netns", "add", ghost])
        .status()
        .unwrap();
    assert!(added.success());
    std::fs::create_dir_all(Path::new("/etc/netns").join(ghost)).unwrap();

    let lab = two_hosts(HostSpec::new("server"));
    let names: Vec<String> = lab.hosts().iter().map(|h| h.netns().to_owned()).collect();
    assert!(
        !Path::new("/run/netns").join(ghost).exists(),
        "the dead run's namespace was swept"
    );
    assert!(!Path::new("/etc/netns").join(ghost).exists());
    for name in &names {
        assert!(Path::new("/run/netns").join(name).exists());
        assert!(Path::new("/etc/netns").join(name).join("hosts").exists());
    }
    let hosts =
        std::fs::read_to_string(Path::new("/etc/netns").join(&names[0]).join("hosts")).unwrap();
    assert!(
        hosts.contains("fd00:77::2 client.lab.test client"),
        "{hosts}"
    );
    assert!(
        hosts.contains("10.77.0.1 server.lab.test server"),
        "{hosts}"
    );
    let addresses: Vec<IpAddr> = lab.host("client").unwrap().addresses();
    assert_eq!(
        addresses,
        [
            "fd00:77::2".parse::<IpAddr>().unwrap(),
            "10.77.0.2".parse().unwrap()
        ]
    );

    drop(lab);
    for name in &names {
        assert!(
            !Path::new("/run/netns").join(name).exists(),
            "{name} left behind"
        );
        assert!(
            !Path::new("/etc/netns").join(name).exists(),
            "{name} files left behind"
        );
    }
}
