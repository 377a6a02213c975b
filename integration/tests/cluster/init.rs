//! `gnt cluster init`: each of Ganeti's checks refuses with a message that says what to fix,
//! and leaves nothing behind.

use std::net::IpAddr;

use gnt_core::policy::IpPolicy;

use crate::support::empty;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn init_refusals_say_what_to_fix_and_write_nothing() {
    let cluster = empty(
        IpPolicy::HybridIpv6,
        1,
        &[
            ("loop.lab.test", &[ip("::1"), ip("127.0.0.1")]),
            ("elsewhere.lab.test", &[ip("fd00:77::77")]),
            ("busy.lab.test", &[ip("fd00:77::11")]),
            ("v4cluster.lab.test", &[ip("10.77.0.100")]),
        ],
    );
    let state = cluster.state_dir("master");
    let init = |args: &[&str]| {
        let mut all = vec!["cluster", "init"];
        all.extend(args);
        cluster.gnt(&all).unwrap()
    };
    // `--primary-ip-version 6 [-s SECONDARY] [MORE...] --node-name NODE CLUSTER`
    let hybrid = |secondary: Option<&'static str>,
                  more: &[&'static str],
                  node: &'static str,
                  cluster: &'static str| {
        let mut args = vec!["--primary-ip-version", "6"];
        if let Some(secondary) = secondary {
            args.extend(["-s", secondary]);
        }
        args.extend_from_slice(more);
        args.extend(["--node-name", node, cluster]);
        args
    };
    let ours = Some("10.78.0.10");
    let master = "master.lab.test";
    let name = "cluster.lab.test";
    let cases: Vec<(&str, Vec<&str>, i32, &str)> = vec![
        (
            "this host resolving to loopback",
            hybrid(ours, &[], "loop.lab.test", name),
            71,
            "This host's IP (::1) resolves to a loopback address. Please fix DNS or /etc/hosts.",
        ),
        (
            "this host's name resolving to an address it does not have",
            hybrid(ours, &[], "elsewhere.lab.test", name),
            71,
            "Inconsistency: this host's name (elsewhere.lab.test) resolves to fd00:77::77, but this IP address does not belong to this host",
        ),
        (
            "a cluster name with no IPv6 address",
            hybrid(ours, &[], master, "v4cluster.lab.test"),
            68,
            "The given name (v4cluster.lab.test) does not resolve: the name 'v4cluster.lab.test' has no IPv6 address",
        ),
        (
            "a cluster IP that answers",
            hybrid(ours, &[], master, "busy.lab.test"),
            65,
            "Cluster IP already active: fd00:77::11 (busy.lab.test) answers on port 1811",
        ),
        (
            "a hybrid cluster without a secondary",
            hybrid(None, &[], master, name),
            64,
            "When using a IPv6 primary address, a valid IPv4 address must be given as secondary",
        ),
        (
            "an IPv6 secondary",
            hybrid(Some("fd00:77::10"), &[], master, name),
            64,
            "Secondary IP address (fd00:77::10) has to be a valid IPv4 address.",
        ),
        (
            "a secondary this host does not have",
            hybrid(Some("10.78.0.99"), &[], master, name),
            71,
            "You gave 10.78.0.99 as secondary IP, but it does not belong to this host.",
        ),
        (
            "a netmask too long for IPv6",
            hybrid(ours, &["--master-netmask", "129"], master, name),
            64,
            "CIDR netmask (129) not valid for IPv6: use 1 to 128",
        ),
        (
            "an IP version that does not exist",
            vec!["--primary-ip-version", "5", "--node-name", master, name],
            2,
            "invalid primary IP version '5': use 4 (IPv4) or 6 (hybrid IPv6/IPv4)",
        ),
    ];
    for (what, args, code, message) in cases {
        let out = init(&args);
        assert_eq!(out.code, code, "{what}: {out}");
        assert!(out.stderr.contains(message), "{what}: {out}");
        assert!(
            !state.join("master").exists(),
            "{what}: the master directory was created"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&state)
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(leftovers.is_empty(), "{what}: left {leftovers:?}");
    }
    let ok = init(&hybrid(ours, &[], master, name));
    assert!(ok.success(), "{ok}");
    let again = init(&hybrid(ours, &[], master, name));
    assert_eq!(again.code, 76, "{again}");
    assert!(
        again.stderr.contains("Cluster is already initialised"),
        "{again}"
    );
}
