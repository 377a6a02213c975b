//! Certificate renewal (issue 13): `gnt cluster renew-crypto` of each kind on a running
//! lab cluster while the master fans `Version` out to every node and a long `UploadFile`
//! streams to a node: no call fails. Afterwards every node presents a certificate of the new
//! CA to an independent client (grpcurl), the old CA no longer verifies any, and no old key
//! is left on any disk. A node that is down during a CA rollover is renewed by the master
//! when it comes back, and the rollover then finishes by itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gnt_core::DEFAULT_NODE_PORT;
use gnt_core::digest::sha256;
use gnt_core::policy::IpPolicy;
use gnt_integration::cluster_lab::ClusterLab;
use gnt_integration::grpcurl::grpcurl;
use gnt_master::channels::stamped;
use gnt_master::master::node_client_tls;
use gnt_master::paths::MasterPaths;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_proto::node::v1::{UploadFileHeader, UploadFileRequest, upload_file_request};
use gnt_transports::{Connector, DialOptions};

use crate::support::{
    empty_but_join_ledger, empty_with_masterd_args, files_under, gnt_ok, running,
};

const HOSTS: [&str; 3] = ["master", "node1", "node2"];

/// Every private key under `dir`, as PEM text, by file.
fn keys_under(dir: &Path) -> Vec<(PathBuf, String)> {
    files_under(dir, |_| true)
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            text.contains("PRIVATE KEY").then_some((path, text))
        })
        .collect()
}

/// grpcurl from the master host to `node`'s agent, trusting only `ca` and presenting the
/// master's current certificate: whether the node's certificate verifies, and the output.
pub(crate) fn grpcurl_with_ca(cluster: &ClusterLab, node: &str, ca: &Path) -> (bool, String) {
    let dir = cluster.state_dir("master").join("master");
    let output = cluster
        .host("master")
        .unwrap()
        .command(grpcurl().unwrap())
        .arg("-cacert")
        .arg(ca)
        .arg("-cert")
        .arg(dir.join("master.pem"))
        .arg("-key")
        .arg(dir.join("master.key"))
        .arg(format!("{}:{DEFAULT_NODE_PORT}", ClusterLab::fqdn(node)))
        .arg("list")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The `Version` fan-out through gnt-masterd, again and again until `stop`: how many
/// rounds, and the output of each that failed.
fn version_rounds(cluster: &ClusterLab, stop: &AtomicBool) -> (usize, Vec<String>) {
    let mut rounds = 0;
    let mut failed = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let out = cluster
            .gnt(&["rpc", "call", "Version", "-o", "json"])
            .unwrap();
        rounds += 1;
        if !out.success() {
            failed.push(out.to_string());
        }
    }
    (rounds, failed)
}

/// A 1 MiB upload to `node`'s agent on one connection, opened with the master's
/// certificate as it is now: a chunk every 40 ms until `stop`, then the rest at once.
fn slow_upload(cluster: &ClusterLab, node: &str, stop: &'static AtomicBool) -> Result<u64, String> {
    const CHUNK: usize = 4096;
    const CHUNKS: usize = 256;
    let paths = MasterPaths::new(&cluster.state_dir("master"));
    let tls = node_client_tls(&paths)
        .unwrap()
        .with_server_name(&ClusterLab::fqdn(node))
        .unwrap();
    let addr = SocketAddr::new(cluster.primary(node), DEFAULT_NODE_PORT);
    let connector = Connector::tcp_addr(addr, DialOptions::new(cluster.policy())).with_tls(tls);
    let destination = cluster
        .state_dir(node)
        .join("uploads")
        .join("during-renewal.bin");
    let content: Vec<u8> = (0..CHUNK * CHUNKS).map(|i| (i % 251) as u8).collect();
    let header = UploadFileHeader {
        path: destination.display().to_string(),
        mode: 0o644,
        size: content.len() as u64,
        sha256: gnt_core::digest::hex(&sha256(&content)),
    };
    cluster
        .host("master")
        .unwrap()
        .block_on(async move {
            let channel = connector.channel().await.map_err(|e| e.to_string())?;
            let mut agent = NodeAgentClient::new(stamped(channel, 1));
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let sender = tokio::spawn(async move {
                let first = UploadFileRequest {
                    part: Some(upload_file_request::Part::Header(header)),
                };
                if tx.send(first).await.is_err() {
                    return;
                }
                for chunk in content.chunks(CHUNK) {
                    let part = UploadFileRequest {
                        part: Some(upload_file_request::Part::Chunk(chunk.to_vec().into())),
                    };
                    if tx.send(part).await.is_err() {
                        return;
                    }
                    if !stop.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(40)).await;
                    }
                }
            });
            let reply = agent
                .upload_file(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .map_err(|status| status.to_string())?;
            let _ = sender.await;
            Ok(reply.into_inner().bytes_written)
        })
        .unwrap()
}

#[test]
fn every_kind_of_renewal_runs_under_calls_with_none_failing_and_leaves_no_old_key() {
    let cluster = running(IpPolicy::HybridIpv6, 2);
    let old_ca = cluster.state_dir("master").join("master").join("ca.pem");
    let old_ca_copy = cluster.state_dir("master").join("old-ca.pem");
    std::fs::copy(&old_ca, &old_ca_copy).unwrap();
    let old_keys: Vec<String> = HOSTS
        .iter()
        .flat_map(|host| keys_under(&cluster.state_dir(host)))
        .filter(|(path, _)| path.ends_with("node.key"))
        .map(|(_, key)| key)
        .collect();
    assert_eq!(old_keys.len(), HOSTS.len());

    static STOP: AtomicBool = AtomicBool::new(false);
    let started = Instant::now();
    let (rounds, failed_rounds, upload, renewals) = std::thread::scope(|scope| {
        let versions = scope.spawn(|| version_rounds(&cluster, &STOP));
        let upload = scope.spawn(|| slow_upload(&cluster, "node1", &STOP));
        // The loops are under way before the first renewal.
        std::thread::sleep(Duration::from_millis(500));
        let mut renewals = Vec::new();
        for part in [
            "--new-master-certificate",
            "--new-node-certificates",
            "--new-cluster-certificate",
        ] {
            renewals.push(gnt_ok(&cluster, &["cluster", "renew-crypto", part]));
        }
        std::thread::sleep(Duration::from_millis(500));
        STOP.store(true, Ordering::SeqCst);
        let (rounds, failed) = versions.join().unwrap();
        (rounds, failed, upload.join().unwrap(), renewals)
    });
    eprintln!(
        "{rounds} Version rounds over {:?} of renewals, {} failed",
        started.elapsed(),
        failed_rounds.len()
    );
    for (renewal, new_certificates) in renewals.iter().zip([false, true, true]) {
        eprintln!("{renewal}");
        assert!(renewal.stdout.contains("Renewal complete"), "{renewal}");
        let line = if new_certificates {
            "node2.lab.test presents its new certificate"
        } else {
            "Updated:   node2.lab.test accepts the master's new certificate"
        };
        assert!(renewal.stdout.contains(line), "{renewal}");
    }
    assert!(rounds >= 3, "the calls ran during the renewals: {rounds}");
    assert!(
        failed_rounds.is_empty(),
        "{} of {rounds} Version rounds failed:\n{}",
        failed_rounds.len(),
        failed_rounds.join("\n")
    );
    assert_eq!(
        upload,
        Ok(1 << 20),
        "the long upload survived every renewal"
    );

    // Every node presents a certificate of the new CA, checked by grpcurl alone.
    let new_ca = cluster.state_dir("master").join("master").join("ca.pem");
    assert_ne!(
        std::fs::read_to_string(&new_ca).unwrap(),
        std::fs::read_to_string(&old_ca_copy).unwrap(),
        "the cluster CA changed"
    );
    for host in HOSTS {
        let (verified, text) = grpcurl_with_ca(&cluster, host, &new_ca);
        assert!(verified, "{host} with the new CA: {text}");
        assert!(text.contains("gnt.node.v1.NodeAgent"), "{text}");
        eprintln!("grpcurl {host}, new CA:\n{text}");
        let (verified, text) = grpcurl_with_ca(&cluster, host, &old_ca_copy);
        assert!(!verified, "{host} still verifies with the old CA: {text}");
        eprintln!("grpcurl {host}, old CA:\n{text}");
        // Each node trusts the new CA alone.
        let trusted = std::fs::read_to_string(cluster.state_dir(host).join("ca.pem")).unwrap();
        assert_eq!(
            trusted.matches("BEGIN CERTIFICATE").count(),
            1,
            "{host}: {trusted}"
        );
    }

    // No old key is left anywhere: not the node keys, not the master's copy of its own.
    for host in HOSTS {
        for (path, key) in keys_under(&cluster.state_dir(host)) {
            assert!(
                !old_keys.contains(&key),
                "{} still holds an old key",
                path.display()
            );
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                !name.ends_with(".new") && !name.starts_with("master-retiring"),
                "a renewal left {} behind",
                path.display()
            );
        }
    }
    let verify = gnt_ok(&cluster, &["cluster", "verify"]);
    eprintln!("{verify}");
}

#[test]
fn a_node_down_during_a_ca_rollover_is_renewed_when_it_comes_back() {
    let cluster = running(IpPolicy::Ipv4, 2);
    cluster.stop_noded("node2", false).unwrap();
    let out = cluster
        .gnt(&["cluster", "renew-crypto", "--new-cluster-certificate"])
        .unwrap();
    eprintln!("{out}");
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains("Renewal waits for node2.lab.test"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("node1.lab.test presents its new certificate"),
        "{out}"
    );
    // Another renewal cannot start while this one waits, and says why.
    let refused = cluster
        .gnt(&["cluster", "renew-crypto", "--new-node-certificates"])
        .unwrap();
    eprintln!("{refused}");
    assert_ne!(refused.code, 0, "{refused}");
    assert!(
        refused.stderr.contains("still waits for node2.lab.test"),
        "{refused}"
    );
    // Verify names the node the renewal waits for, and how the wait ends.
    let verify = cluster.gnt(&["cluster", "verify"]).unwrap();
    eprintln!("{verify}");
    assert!(
        verify
            .stdout
            .contains("WARNING:ECLUSTERCERT: node node2.lab.test: the certificate renewal started")
            && verify
                .stdout
                .contains("remove it (`gnt node remove node2.lab.test`)"),
        "{verify}"
    );
    // The rest of the cluster works meanwhile.
    let calls = cluster
        .gnt(&["rpc", "call", "Version", "--nodes", "node1.lab.test"])
        .unwrap();
    assert!(calls.success(), "{calls}");

    cluster.start_noded("node2", None).unwrap();
    let retiring = cluster
        .state_dir("master")
        .join("master")
        .join("master-retiring.key");
    let deadline = Instant::now() + Duration::from_secs(40);
    while retiring.exists() {
        assert!(
            Instant::now() < deadline,
            "the rollover did not finish after node2 came back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let new_ca = cluster.state_dir("master").join("master").join("ca.pem");
    for host in HOSTS {
        let (verified, text) = grpcurl_with_ca(&cluster, host, &new_ca);
        assert!(verified, "{host} with the new CA: {text}");
    }
    let calls = gnt_ok(&cluster, &["rpc", "call", "Version"]);
    eprintln!("{calls}");
}

#[test]
fn a_renewed_node_offline_when_the_converger_finishes_a_ca_rollover_is_named() {
    let cluster = running(IpPolicy::Ipv4, 2);
    cluster.stop_noded("node2", false).unwrap();
    let out = cluster
        .gnt(&["cluster", "renew-crypto", "--new-cluster-certificate"])
        .unwrap();
    assert_eq!(out.code, 1, "{out}");
    // node1 is renewed (it trusts both CAs), then marked offline: the finish cannot tell
    // it to drop the retired CA.
    gnt_ok(
        &cluster,
        &["node", "modify", "--offline", "yes", "node1.lab.test"],
    );
    cluster.start_noded("node2", None).unwrap();
    let retiring = cluster
        .state_dir("master")
        .join("master")
        .join("master-retiring.key");
    let deadline = Instant::now() + Duration::from_secs(40);
    while retiring.exists() {
        assert!(Instant::now() < deadline, "the rollover did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
    let trusted = std::fs::read_to_string(cluster.state_dir("node1").join("ca.pem")).unwrap();
    assert_eq!(trusted.matches("BEGIN CERTIFICATE").count(), 2, "{trusted}");
    // The converger finished the rollover, so no job shows it: its log names the node.
    let log = cluster.log("master", "gnt-masterd");
    let wanted = "node1.lab.test is offline, so it still trusts the retired CA";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(wanted) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gnt-masterd's log does not say that node1 still trusts the retired CA"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn certificates_past_two_thirds_of_their_life_are_renewed_without_an_operator() {
    let cluster = empty_with_masterd_args(IpPolicy::Ipv4, 1, &["--renewal-check-interval", "1"]);
    // Certificates of a minute (the shortest lifetime) are due 40 s after they are issued.
    let init = cluster
        .init_with(&["--certificate-validity", "1m"])
        .unwrap();
    assert!(init.success(), "{init}");
    cluster.start_noded("master", None).unwrap();
    cluster.start_masterd().unwrap();
    let added = cluster.add_node("node1", None).unwrap();
    assert!(added.success(), "{added}");
    let certificate =
        |host: &str| std::fs::read_to_string(cluster.state_dir(host).join("node.pem")).unwrap();
    let master_certificate = || {
        std::fs::read_to_string(
            cluster
                .state_dir("master")
                .join("master")
                .join("master.pem"),
        )
        .unwrap()
    };
    let before = (
        certificate("master"),
        certificate("node1"),
        master_certificate(),
    );

    static STOP: AtomicBool = AtomicBool::new(false);
    let (rounds, failed) = std::thread::scope(|scope| {
        let versions = scope.spawn(|| version_rounds(&cluster, &STOP));
        let deadline = Instant::now() + Duration::from_secs(90);
        while certificate("node1") == before.1 || master_certificate() == before.2 {
            assert!(
                Instant::now() < deadline,
                "no certificate was renewed within 90 s"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        STOP.store(true, Ordering::SeqCst);
        versions.join().unwrap()
    });
    assert_ne!(
        certificate("master"),
        before.0,
        "the master's node was renewed too"
    );
    assert!(
        failed.is_empty(),
        "{} of {rounds} Version rounds failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    let jobs = gnt_ok(&cluster, &["job", "list"]);
    eprintln!("{jobs}");
    assert!(
        jobs.stdout.contains("renew node keys and certificates"),
        "{jobs}"
    );
}

#[test]
fn a_node_left_behind_by_a_ca_renewal_is_told_how_to_join_again_and_does() {
    let cluster = running(IpPolicy::Ipv4, 1);
    // Removed while its agent is down: it keeps its member state, of the old CA.
    cluster.stop_noded("node1", true).unwrap();
    gnt_ok(&cluster, &["node", "remove", "node1"]);
    gnt_ok(
        &cluster,
        &["cluster", "renew-crypto", "--new-cluster-certificate"],
    );
    cluster.start_noded("node1", None).unwrap();
    let token = cluster.token().unwrap();
    let refused = cluster
        .gnt(&["node", "add", "--join-token", &token, "node1.lab.test"])
        .unwrap();
    assert_eq!(refused.code, 76, "{refused}");
    assert!(
        refused.stderr.contains(
            "is a member of this cluster from before its CA was renewed (its certificate is issued by 'CN=gnt-rpc CA of cluster.lab.test'): on it, stop gnt-noded and empty its state directory (all but join-ledger), then add it again"
        ),
        "{refused}"
    );
    // The node says why too.
    let log = std::fs::read_to_string(cluster.log("node1", "gnt-noded")).unwrap();
    assert!(
        log.contains("refused a client certificate this node does not trust"),
        "{log}"
    );
    // What the message says, done.
    cluster.stop_noded("node1", true).unwrap();
    let state = cluster.state_dir("node1");
    empty_but_join_ledger(&state);
    cluster.start_noded("node1", Some(&token)).unwrap();
    let added = gnt_ok(
        &cluster,
        &["node", "add", "--join-token", &token, "node1.lab.test"],
    );
    assert!(
        added.stdout.contains("Node node1.lab.test added"),
        "{added}"
    );
}
