//! Name resolution through a real DNS server: an in-process hickory-server on 127.0.0.1
//! serving a small zone, so that the DNS half of the resolver (after the hosts table) is
//! exercised end to end without any traffic leaving the host.
//!
//! Run with `cargo test -p gnt-core --test resolver_dns`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is a failed assertion"
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::netutils::{ResolveError, Resolver};
use gnt_core::policy::IpFamily;
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{A, AAAA, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

const ZONE: &str = "cluster.test.";

/// A DNS server on 127.0.0.1:<ephemeral> answering for `cluster.test.`.
struct TestDns {
    address: SocketAddr,
    server: Server<Catalog>,
}

impl TestDns {
    async fn start(records: &[(&str, IpAddr)]) -> Self {
        let origin = Name::from_str(ZONE).unwrap();
        let zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let serial = 1;
        let soa = SOA::new(
            Name::from_str("ns.cluster.test.").unwrap(),
            Name::from_str("admin.cluster.test.").unwrap(),
            serial,
            3600,
            600,
            86400,
            60,
        );
        let mut zone = zone;
        assert!(zone.upsert_mut(
            Record::from_rdata(origin.clone(), 60, RData::SOA(soa)),
            serial
        ));
        for (name, ip) in records {
            let name = Name::from_str(&format!("{name}.{ZONE}")).unwrap();
            let rdata = match ip {
                IpAddr::V4(v4) => RData::A(A(*v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
            };
            assert!(zone.upsert_mut(Record::from_rdata(name, 60, rdata), serial));
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let mut server = Server::new(catalog);
        server.register_socket(socket);
        Self { address, server }
    }

    fn resolver(&self, hosts: &str) -> Resolver {
        Resolver::with_name_servers(
            hosts,
            &[self.address],
            &[Name::from_str(ZONE).unwrap()],
            Duration::from_secs(2),
        )
        .unwrap()
    }

    async fn stop(mut self) {
        let _ = self.server.shutdown_gracefully().await;
    }
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from_str(s).unwrap())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from_str(s).unwrap())
}

async fn zone() -> TestDns {
    TestDns::start(&[
        ("only4", v4("192.0.2.41")),
        ("only6", v6("2001:db8::61")),
        ("dual", v4("192.0.2.51")),
        ("dual", v6("2001:db8::51")),
        ("shadowed", v4("192.0.2.99")),
    ])
    .await
}

#[tokio::test]
async fn names_only_in_dns_resolve_in_the_asked_family() {
    let dns = zone().await;
    let r = dns.resolver("");
    let got = r
        .resolve("only4.cluster.test", Some(IpFamily::V4))
        .await
        .unwrap();
    assert_eq!(got.addresses(), [v4("192.0.2.41")]);
    let got = r
        .resolve("only6.cluster.test", Some(IpFamily::V6))
        .await
        .unwrap();
    assert_eq!(got.addresses(), [v6("2001:db8::61")]);
    let got = r
        .resolve("dual.cluster.test", Some(IpFamily::V6))
        .await
        .unwrap();
    assert_eq!(got.addresses(), [v6("2001:db8::51")]);
    let got = r.resolve("dual.cluster.test", None).await.unwrap();
    assert_eq!(got.addresses(), [v6("2001:db8::51"), v4("192.0.2.51")]);
    dns.stop().await;
}

#[tokio::test]
async fn a_dns_name_of_the_other_family_only_gets_the_hint() {
    let dns = zone().await;
    let r = dns.resolver("");
    let err = r
        .resolve("only4.cluster.test", Some(IpFamily::V6))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the name 'only4.cluster.test' has no IPv6 address; it resolves to IPv4 only: 192.0.2.41"
    );
    dns.stop().await;
}

#[tokio::test]
async fn unknown_names_are_not_found_not_a_dns_failure() {
    let dns = zone().await;
    let r = dns.resolver("");
    let err = r
        .resolve("nosuch.cluster.test", Some(IpFamily::V4))
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::NotFound { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Resolver);
    dns.stop().await;
}

#[tokio::test]
async fn short_names_use_the_search_domains() {
    let dns = zone().await;
    let r = dns.resolver("");
    let got = r.resolve("only6", Some(IpFamily::V6)).await.unwrap();
    assert_eq!(got.addresses(), [v6("2001:db8::61")]);
    dns.stop().await;
}

#[tokio::test]
async fn the_hosts_table_wins_over_dns_for_its_family_only() {
    let dns = zone().await;
    let r = dns.resolver("192.0.2.1 shadowed.cluster.test\n2001:db8::77 dual.cluster.test\n");
    let got = r
        .resolve("shadowed.cluster.test", Some(IpFamily::V4))
        .await
        .unwrap();
    assert_eq!(got.addresses(), [v4("192.0.2.1")]);
    // The hosts table has only IPv6 for `dual`: IPv4 still comes from DNS.
    let got = r
        .resolve("dual.cluster.test", Some(IpFamily::V4))
        .await
        .unwrap();
    assert_eq!(got.addresses(), [v4("192.0.2.51")]);
    let got = r
        .resolve("dual.cluster.test", Some(IpFamily::V6))
        .await
        .unwrap();
    assert_eq!(got.addresses(), [v6("2001:db8::77")]);
    dns.stop().await;
}

#[tokio::test]
async fn a_dead_name_server_is_a_dns_failure_within_the_timeout() {
    // A loopback UDP port with nothing behind it (bound, then released).
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = Resolver::with_name_servers("", &[dead], &[], Duration::from_millis(500)).unwrap();
    let started = Instant::now();
    let err = r
        .resolve("node1.cluster.test", Some(IpFamily::V4))
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::Dns { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "cannot resolve 'node1.cluster.test': DNS lookup failed"
    );
    assert_eq!(err.kind(), ErrorKind::Resolver);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_dns_failure_still_gets_the_hint_when_the_hosts_file_has_the_other_family() {
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = Resolver::with_name_servers(
        "192.0.2.5 only4.cluster.test\n",
        &[dead],
        &[],
        Duration::from_millis(300),
    )
    .unwrap();
    let err = r
        .resolve("only4.cluster.test", Some(IpFamily::V6))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the name 'only4.cluster.test' has no IPv6 address; it resolves to IPv4 only: 192.0.2.5"
    );
}
