use super::*;

const HOSTS: &str = "\
# a test hosts table
127.0.0.1   localhost
192.0.2.10  only4.example.com only4
2001:db8::20 only6.example.com only6
192.0.2.30  both.example.com both
2001:db8::30 both.example.com both
192.0.2.31  both.example.com
";

fn hermetic() -> Resolver {
    Resolver::hosts_only(HOSTS)
}

fn ips(resolved: &Resolved) -> Vec<String> {
    resolved.addresses().iter().map(IpAddr::to_string).collect()
}

#[tokio::test]
async fn ipv4_only_names_resolve_in_ipv4_and_fail_in_ipv6_with_a_hint() {
    let r = hermetic();
    let v4 = r
        .resolve("only4.example.com", Some(IpFamily::V4))
        .await
        .unwrap();
    assert_eq!(ips(&v4), ["192.0.2.10"]);
    let err = r
        .resolve("only4.example.com", Some(IpFamily::V6))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the name 'only4.example.com' has no IPv6 address; it resolves to IPv4 only: 192.0.2.10"
    );
    assert_eq!(err.kind(), ErrorKind::Resolver);
}

#[tokio::test]
async fn ipv6_only_names_resolve_in_ipv6_and_fail_in_ipv4_with_a_hint() {
    let r = hermetic();
    let v6 = r.resolve("only6", Some(IpFamily::V6)).await.unwrap();
    assert_eq!(ips(&v6), ["2001:db8::20"]);
    let err = r.resolve("only6", Some(IpFamily::V4)).await.unwrap_err();
    assert!(matches!(err, ResolveError::OnlyOtherFamily { .. }), "{err}");
    assert!(err.to_string().contains("no IPv4 address"), "{err}");
}

#[tokio::test]
async fn dual_family_names_resolve_in_each_family_and_ipv6_first_without_one() {
    let r = hermetic();
    let v4 = r
        .resolve("both.example.com", Some(IpFamily::V4))
        .await
        .unwrap();
    assert_eq!(ips(&v4), ["192.0.2.30", "192.0.2.31"]);
    assert_eq!(v4.first().to_string(), "192.0.2.30");
    let v6 = r
        .resolve("both.example.com", Some(IpFamily::V6))
        .await
        .unwrap();
    assert_eq!(ips(&v6), ["2001:db8::30"]);
    let any = r.resolve("both.example.com", None).await.unwrap();
    assert_eq!(ips(&any), ["2001:db8::30", "192.0.2.30", "192.0.2.31"]);
}

#[tokio::test]
async fn names_are_normalised_before_lookup() {
    let r = hermetic();
    let v4 = r
        .resolve("ONLY4.Example.COM.", Some(IpFamily::V4))
        .await
        .unwrap();
    assert_eq!(v4.name(), "only4.example.com");
    assert_eq!(ips(&v4), ["192.0.2.10"]);
    let err = r.resolve("bad name", None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongInput);
}

#[tokio::test]
async fn unknown_names_fail_naming_the_name_and_family() {
    let r = hermetic();
    let err = r
        .resolve("nosuch.example.com", Some(IpFamily::V6))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the name 'nosuch.example.com' does not resolve to an IPv6 address"
    );
    let err = r.resolve("nosuch.example.com", None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the name 'nosuch.example.com' does not resolve"
    );
}

#[tokio::test]
async fn literals_resolve_to_themselves_in_their_own_family_only() {
    let r = hermetic();
    let v6 = r.resolve("2001:db8::1", Some(IpFamily::V6)).await.unwrap();
    assert_eq!(ips(&v6), ["2001:db8::1"]);
    let v4 = r.resolve("192.0.2.1", None).await.unwrap();
    assert_eq!(ips(&v4), ["192.0.2.1"]);
    let err = r
        .resolve("192.0.2.1", Some(IpFamily::V6))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "'192.0.2.1' is an IPv4 address, not an IPv6 one"
    );
    assert_eq!(err.kind(), ErrorKind::WrongInput);
}

#[tokio::test]
async fn the_hosts_file_decides_localhost_not_the_resolver_library() {
    // hickory alone would answer ::1 as well; this hosts table only has 127.0.0.1.
    let r = hermetic();
    let any = r.resolve("localhost", None).await.unwrap();
    assert_eq!(ips(&any), ["127.0.0.1"]);
}

#[tokio::test]
async fn a_hosts_file_is_reread_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let resolv = dir.path().join("resolv.conf");
    // A name server on a port nobody serves: nothing may leave this host.
    fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .unwrap();
    fs::write(&hosts, "192.0.2.1 node1.example.com\n").unwrap();
    let r = Resolver::from_files(&hosts, &resolv).unwrap();
    let first = r
        .resolve("node1.example.com", Some(IpFamily::V4))
        .await
        .unwrap();
    assert_eq!(ips(&first), ["192.0.2.1"]);
    // Same length, new content: the stamp must still notice (inode of the new file).
    let tmp = dir.path().join("hosts.new");
    fs::write(&tmp, "192.0.2.2 node1.example.com\n").unwrap();
    fs::rename(&tmp, &hosts).unwrap();
    let second = r
        .resolve("node1.example.com", Some(IpFamily::V4))
        .await
        .unwrap();
    assert_eq!(ips(&second), ["192.0.2.2"]);
}

#[test]
fn resolv_conf_without_name_servers_means_the_local_one() {
    let (config, _) = resolv_conf_or_local(b"search example.com\n");
    let servers: Vec<IpAddr> = config.name_servers().iter().map(|s| s.ip).collect();
    assert_eq!(servers, [IpAddr::from([127, 0, 0, 1])]);
    assert_eq!(config.search()[0].to_ascii(), "example.com");
    let (config, options) =
        resolv_conf_or_local(b"nameserver 192.0.2.53\noptions ndots:3 timeout:2\n");
    assert_eq!(config.name_servers()[0].ip, IpAddr::from([192, 0, 2, 53]));
    assert_eq!(options.ndots, 3);
    assert_eq!(options.timeout, Duration::from_secs(2));
}
