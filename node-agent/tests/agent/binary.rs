//! The real `gnt-noded`, started in a lab host: Join, member mode where it was told, a
//! graceful SIGTERM, a restart in member mode from its state alone, grpcurl against both
//! modes, and logs that show an IPv4 peer as IPv4.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use gnt_core::policy::IpPolicy;
use gnt_integration::grpcurl::grpcurl;
use gnt_integration::lab::{LabHost, LabProcess};
use gnt_proto::diag::v1::{WhoAmIRequest, diagnostics_client::DiagnosticsClient};
use gnt_proto::node::v1::{VersionRequest, node_agent_client::NodeAgentClient};
use gnt_transports::{ClientTls, Connector, DialOptions};

use crate::support::{TOKEN, Topology, listening};

const NODE1_V6: &str = "[fd00:77::11]:1811";

fn start(host: &LabHost, state: &Path, token_file: Option<&Path>) -> LabProcess {
    let binary = Path::new(env!("CARGO_BIN_EXE_gnt-noded"));
    let mut args = vec![
        "--state-dir",
        state.to_str().unwrap(),
        "--shutdown-grace",
        "2",
    ];
    if let Some(file) = token_file {
        args.extend(["--join-token-file", file.to_str().unwrap()]);
    }
    host.spawn_process(binary, &args).unwrap()
}

/// Starts gnt-noded on node1 with a join token file (0600) and waits for its bootstrap
/// listener.
fn start_bootstrap(topology: &Topology) -> LabProcess {
    let token_file = topology.dir.path().join("join-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let agent = start(
        topology.host("node1"),
        &topology.state_dir("node1"),
        Some(&token_file),
    );
    until("the bootstrap listener", || bootstrap_answers(topology));
    agent
}

/// Waits until `probe` succeeds (at most 15 s).
fn until(what: &str, probe: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !probe() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn bootstrap_answers(topology: &Topology) -> bool {
    topology
        .host("master")
        .block_on(async {
            let tls = ClientTls::danger_unverified_server(None).unwrap();
            let connector = Connector::tcp_addr(
                NODE1_V6.parse().unwrap(),
                DialOptions::new(IpPolicy::HybridIpv6),
            )
            .with_tls(tls);
            match connector.channel().await {
                Ok(channel) => DiagnosticsClient::new(channel)
                    .who_am_i(WhoAmIRequest {})
                    .await
                    .is_ok(),
                Err(_) => false,
            }
        })
        .unwrap()
}

fn version(topology: &Topology, target: SocketAddr) -> Result<u32, String> {
    let connector = topology.master.connector(target, IpPolicy::HybridIpv6);
    topology
        .host("master")
        .block_on(async move {
            let channel = connector.channel().await.map_err(|e| e.to_string())?;
            NodeAgentClient::new(channel)
                .version(VersionRequest::default())
                .await
                .map(|r| r.into_inner().protocol_version)
                .map_err(|e| e.to_string())
        })
        .unwrap()
}

fn grpcurl_on_master(topology: &Topology, args: &[&str]) -> (i32, String) {
    let output = topology
        .host("master")
        .command(grpcurl().unwrap())
        .args(["-max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn sigterm(process: &mut LabProcess) -> std::process::ExitStatus {
    let pid = process.child().id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = process.child().try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "gnt-noded ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_real_binary_joins_restarts_from_its_state_and_answers_grpcurl() {
    let topology = Topology::new();
    let node1 = topology.host("node1");
    let state = topology.state_dir("node1");
    let mut agent = start_bootstrap(&topology);
    assert_eq!(listening(node1, 1811), ["*:1811"]);

    // grpcurl against bootstrap mode: the self-signed certificate needs -insecure.
    let (code, out) = grpcurl_on_master(&topology, &["-insecure", NODE1_V6, "list"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines().any(|l| l == "gnt.bootstrap.v1.Bootstrap"),
        "{out}"
    );
    assert!(
        !out.contains("gnt.node.v1.NodeAgent"),
        "bootstrap mode serves no procedures: {out}"
    );
    let (code, out) = grpcurl_on_master(
        &topology,
        &[
            "-insecure",
            NODE1_V6,
            "describe",
            "gnt.bootstrap.v1.Bootstrap",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Makes this node a member of a cluster"),
        "{out}"
    );
    // Calling Join without the token: refused, UNAUTHENTICATED (grpcurl exits 64 + 16).
    let hello = r#"{"hello":{"tokenId":"abcdef","proof":"AAAA","expiresAtUnix":"9999999999"}}"#;
    let (code, out) = grpcurl_on_master(
        &topology,
        &[
            "-insecure",
            "-d",
            hello,
            NODE1_V6,
            "gnt.bootstrap.v1.Bootstrap/Join",
        ],
    );
    assert_eq!(code, 80, "{out}");
    assert!(
        out.contains("proof is invalid for this connection"),
        "{out}"
    );

    topology.join_hybrid("node1");
    until("member mode", || {
        version(&topology, NODE1_V6.parse().unwrap()).is_ok()
    });
    assert_eq!(listening(node1, 1811), ["*:1811"]);

    // grpcurl against member mode, as the master.
    let ca = topology.master.ca.ca_path().to_str().unwrap().to_owned();
    let cert = topology.master.cert.cert.to_str().unwrap().to_owned();
    let key = topology.master.cert.key.to_str().unwrap().to_owned();
    let tls = [
        "-cacert",
        ca.as_str(),
        "-cert",
        cert.as_str(),
        "-key",
        key.as_str(),
    ];
    let with = |rest: &[&str]| -> Vec<String> {
        tls.iter().chain(rest).map(|s| (*s).to_owned()).collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        grpcurl_on_master(&topology, &args)
    };
    let (code, out) = run(with(&[NODE1_V6, "list"]));
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().any(|l| l == "gnt.node.v1.NodeAgent"), "{out}");
    let (code, out) = run(with(&[
        "-d",
        "{}",
        NODE1_V6,
        "gnt.node.v1.NodeAgent/Version",
    ]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"protocolVersion\": 1"), "{out}");
    // Over IPv4 too (the secondary address, which the certificate names).
    let (code, out) = run(with(&[
        "-d",
        "{}",
        "-H",
        "gnt-master-epoch: 1",
        "10.78.0.11:1811",
        "gnt.node.v1.NodeAgent/NodeInfo",
    ]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"name\": \"node1.lab.test\""), "{out}");

    // A refused call over IPv4: its log line must show the peer as IPv4.
    let intruder = topology
        .master
        .ca
        .issue("node2.lab.test", "node", &["node2.lab.test"], &[])
        .unwrap();
    let refused = topology.master.connector_as(
        &intruder,
        "10.78.0.11:1811".parse().unwrap(),
        IpPolicy::HybridIpv6,
    );
    let status = topology
        .host("master")
        .block_on(async move {
            let channel = refused.channel().await.unwrap();
            NodeAgentClient::new(channel)
                .version(VersionRequest::default())
                .await
                .unwrap_err()
        })
        .unwrap();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    let exit = sigterm(&mut agent);
    assert!(
        exit.success(),
        "SIGTERM must stop gnt-noded cleanly, got {exit}"
    );
    let log = String::from_utf8_lossy(&agent.kill_and_collect().unwrap().stderr).into_owned();
    let refused_line = log
        .lines()
        .find(|l| l.contains("procedure call refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    assert!(
        refused_line.contains("peer=10.78.0.10:"),
        "IPv4 peer not shown as IPv4: {refused_line}"
    );
    assert!(!log.contains("::ffff:"), "{log}");
    assert!(
        !log.contains("0123456789abcdef"),
        "the token secret leaked into the log"
    );

    // Restart without a token: member mode from the state alone.
    let mut agent = start(node1, &state, None);
    until("member mode after restart", || {
        version(&topology, NODE1_V6.parse().unwrap()).is_ok()
    });
    assert_eq!(listening(node1, 1811), ["*:1811"]);
    assert!(sigterm(&mut agent).success());
}

/// The temporary files of uploads in `dir`, with their sizes.
fn upload_leftovers(dir: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|name| name.starts_with('.') && name.contains(".upload-"))
        .map(|name| {
            let size = std::fs::metadata(dir.join(&name)).map_or(0, |m| m.len());
            (name, size)
        })
        .collect()
}

#[test]
fn uploads_cut_by_kill_9_leave_nothing_once_the_agent_restarts() {
    use std::hash::{BuildHasher, Hasher};

    use gnt_proto::node::v1::{UploadFileHeader, UploadFileRequest, upload_file_request};

    const SIZE: usize = 30 << 20;
    const CHUNK: usize = 64 << 10;
    let topology = Topology::new();
    let node1 = topology.host("node1");
    let state = topology.state_dir("node1");
    let uploads = state.join("uploads");
    let mut agent = start_bootstrap(&topology);
    topology.join_hybrid("node1");

    for round in 0..3 {
        until("member mode", || {
            version(&topology, NODE1_V6.parse().unwrap()).is_ok()
        });
        assert_eq!(
            upload_leftovers(&uploads),
            [],
            "round {round}: not cleaned at start"
        );
        // 30 MB, paced to take about 2 s (a chunk every 4 ms), so a kill in its first 0.8 s
        // always lands mid-upload. The checksum does not matter: it is never checked.
        let connector = topology
            .master
            .connector(NODE1_V6.parse().unwrap(), IpPolicy::HybridIpv6);
        let header = UploadFileHeader {
            path: uploads.join("big").display().to_string(),
            mode: 0o644,
            size: SIZE as u64,
            sha256: "00".repeat(32),
        };
        let upload = topology
            .host("master")
            .spawn(async move {
                let header = UploadFileRequest {
                    part: Some(upload_file_request::Part::Header(header)),
                };
                let chunks = futures_util::stream::unfold(0, |sent| async move {
                    if sent >= SIZE {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(4)).await;
                    let chunk = bytes::Bytes::from(vec![0x5a; CHUNK]);
                    let message = UploadFileRequest {
                        part: Some(upload_file_request::Part::Chunk(chunk)),
                    };
                    Some((message, sent + CHUNK))
                });
                let messages =
                    futures_util::StreamExt::chain(futures_util::stream::iter([header]), chunks);
                let channel = connector.channel().await.map_err(|e| e.to_string())?;
                NodeAgentClient::new(gnt_integration::cluster::stamped(channel, 1))
                    .upload_file(messages)
                    .await
                    .map_err(|e| e.to_string())
            })
            .unwrap();
        until("the upload's temporary file", || {
            !upload_leftovers(&uploads).is_empty()
        });
        let delay = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            % 800;
        std::thread::sleep(Duration::from_millis(delay));
        agent.child().kill().unwrap();
        agent.child().wait().unwrap();
        let outcome = upload.join().unwrap();
        assert!(
            outcome.is_err(),
            "round {round}: the upload finished: {outcome:?}"
        );
        let left = upload_leftovers(&uploads);
        eprintln!("round {round}: kill -9 {delay} ms into the upload left {left:?}");
        assert_eq!(left.len(), 1, "round {round}: {left:?}");

        agent = start(node1, &state, None);
    }
    until("member mode", || {
        version(&topology, NODE1_V6.parse().unwrap()).is_ok()
    });
    assert_eq!(upload_leftovers(&uploads), []);
    assert!(!uploads.join("big").exists(), "no upload completed");
    assert!(sigterm(&mut agent).success());
}

#[test]
fn a_port_in_use_is_refused_naming_the_program_that_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gnt-noded"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--bootstrap-listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("GNT_JOIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let expected = format!("port {port} is in use by PID {} (", std::process::id());
    assert!(stderr.contains(&expected), "{expected} in: {stderr}");
    assert!(
        stderr.contains("stop it, or give this daemon another port"),
        "{stderr}"
    );
    drop(holder);
}
