//! The real grpcurl 1.8.6 against a gnt-rpc server: listing, describing and calling over
//! IPv4, IPv6 and a Unix socket, with TLS and client certificates, and health checks.

use gnt_integration::grpcurl::grpcurl;
use gnt_transports::{ClientAuth, GrpcServer, Listener};

use crate::support::{Pki, ipv6_loopback, path_str};

/// Runs grpcurl with `args`; returns whether it succeeded, and everything it printed.
async fn run(args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(grpcurl().unwrap())
        .args(["-max-time", "10"])
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn grpcurl_lists_describes_and_calls_over_ipv4_ipv6_and_unix_with_mutual_tls() {
    assert!(
        ipv6_loopback(),
        "this test needs IPv6 on the loopback interface"
    );
    let pki = Pki::new(&[]);
    let socket = pki.path("grpcurl.sock");
    let listeners = vec![
        Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap(),
        Listener::tcp("[::1]:0".parse().unwrap()).unwrap(),
        Listener::unix(&socket, 0o600).unwrap(),
    ]
    .into_iter()
    .map(|l| l.with_tls(pki.server_tls(ClientAuth::Required)))
    .collect();
    let server = GrpcServer::new("grpcurl-test")
        .start(listeners)
        .await
        .unwrap();
    let v4 = server.local_addrs()[0].to_string();
    let v6 = server.local_addrs()[1].to_string();
    assert!(v6.starts_with("[::1]:"), "{v6}");

    // Over a Unix socket grpcurl 1.8.6 must be given the authority (it would send the
    // path, which HTTP/2 refuses); the same name is checked against the certificate.
    let targets: [Vec<&str>; 3] = [
        vec![&v4],
        vec![&v6],
        vec!["-unix", "-authority", "localhost", path_str(&socket)],
    ];
    let ca = ["-cacert", path_str(pki.ca.ca_path())];
    let identity = [
        "-cert",
        path_str(&pki.client.cert),
        "-key",
        path_str(&pki.client.key),
    ];
    for target in &targets {
        // grpcurl (Go's flag package) reads flags only before the address.
        let call = |flags: &[&'static str], command: &[&'static str]| -> Vec<&str> {
            ca.iter()
                .chain(&identity)
                .chain(flags)
                .chain(target)
                .chain(command)
                .copied()
                .collect()
        };
        let (ok, out) = run(&call(&[], &["list"])).await;
        assert!(ok, "{target:?}: {out}");
        for service in [
            "gnt.diag.v1.Diagnostics",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
            "grpc.reflection.v1.ServerReflection",
        ] {
            assert!(
                out.lines().any(|l| l == service),
                "{target:?}: {service} missing from {out}"
            );
        }
        assert!(
            !out.contains("gnt.master.v1"),
            "services not served must not be listed: {out}"
        );

        let (ok, out) = run(&call(&[], &["describe", "gnt.diag.v1.Diagnostics"])).await;
        assert!(
            ok && out.contains("Describes the caller as the server sees it"),
            "{target:?}: {out}"
        );

        let (ok, out) = run(&call(&["-d", "{}"], &["gnt.diag.v1.Diagnostics/WhoAmI"])).await;
        assert!(ok, "{target:?}: {out}");
        assert!(out.contains("\"tls\": true"), "{out}");
        assert!(out.contains("\"commonName\": \"master.lab.test\""), "{out}");
        assert!(out.contains("\"server\": \"grpcurl-test\""), "{out}");

        let (ok, out) = run(&call(
            &["-d", "{\"service\":\"\"}"],
            &["grpc.health.v1.Health/Check"],
        ))
        .await;
        assert!(
            ok && out.contains("\"status\": \"SERVING\""),
            "{target:?}: {out}"
        );

        // Without a client certificate the server refuses the connection (grpcurl keeps
        // redialling until its connect timeout, hence a short one).
        let anonymous: Vec<&str> = ca
            .iter()
            .copied()
            .chain(["-connect-timeout", "1"])
            .chain(target.iter().copied())
            .chain(["list"])
            .collect();
        let (ok, out) = run(&anonymous).await;
        assert!(
            !ok,
            "{target:?}: a client without a certificate was served: {out}"
        );
        assert!(
            out.contains("Failed to dial target host"),
            "{target:?}: {out}"
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn grpcurl_reaches_a_plaintext_server_that_reports_the_callers_family() {
    let listener = Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let server = GrpcServer::new("plain")
        .start(vec![listener])
        .await
        .unwrap();
    let target = server.local_addrs()[0].to_string();
    let (ok, out) = run(&[
        "-plaintext",
        "-d",
        "{}",
        &target,
        "gnt.diag.v1.Diagnostics/WhoAmI",
    ])
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("\"family\": \"IPv4\""), "{out}");
    assert!(out.contains("\"peer\": \"127.0.0.1:"), "{out}");
    server.shutdown().await.unwrap();
}
