//! Member mode: who may call, what each procedure does, the network test against a cut
//! secondary link, and leaving the cluster.

use std::collections::HashMap;
use std::net::SocketAddr;

use gnt_core::policy::IpPolicy;
use gnt_integration::cluster::{NodeChannel, stamped};
use gnt_integration::lab::Network;
use gnt_node_agent::AgentStatus;
use gnt_proto::cluster::v1::{NodeAddresses, SsconfSet as WireSsconf};
use gnt_proto::diag::v1::{WhoAmIRequest, diagnostics_client::DiagnosticsClient};
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_proto::node::v1::{
    HasIpAddressRequest, LeaveClusterRequest, Network as WireNetwork, NetworkTestRequest,
    NetworkVerdict, NodeInfoRequest, PingOutcome, TcpPingRequest, UploadFileHeader,
    UploadFileRequest, UploadFileResponse, VersionRequest, WriteSsconfRequest, upload_file_request,
};
use gnt_transports::Connector;

use crate::support::{Agent, CLUSTER, Topology, any, refusal, snapshot};

const NODE1: &str = "[fd00:77::11]:1811";

pub(crate) fn member_topology() -> (Topology, Agent) {
    let topology = Topology::new();
    let agent = Agent::start(topology.host("node1"), &topology.state_dir("node1"));
    topology.join_hybrid("node1");
    agent.wait_member();
    (topology, agent)
}

/// Runs `call` with a channel from the master host through `connector`, its calls
/// stamped with epoch 1, as the test cluster's master's are.
fn call<T, F, Fut>(topology: &Topology, connector: Connector, call: F) -> T
where
    F: FnOnce(NodeChannel) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
    T: Send + 'static,
{
    call_at(1, topology, connector, call)
}

/// [`call`] as a master of epoch `epoch`.
fn call_at<T, F, Fut>(epoch: u64, topology: &Topology, connector: Connector, call: F) -> T
where
    F: FnOnce(NodeChannel) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
    T: Send + 'static,
{
    topology
        .host("master")
        .block_on(async move { call(stamped(connector.direct_channel(), epoch)).await })
        .unwrap()
}

fn as_master(topology: &Topology) -> Connector {
    topology
        .master
        .connector(NODE1.parse().unwrap(), IpPolicy::HybridIpv6)
}

#[test]
fn only_the_master_certificate_may_call_procedures() {
    let (topology, _agent) = member_topology();
    let ca = &topology.master.ca;
    let node_cert = ca
        .issue("node2.lab.test", "node", &["node2.lab.test"], &[])
        .unwrap();
    let rogue_master = ca
        .issue("rogue.lab.test", "master", &["rogue.lab.test"], &[])
        .unwrap();
    let node1: SocketAddr = NODE1.parse().unwrap();

    for (who, cert, message) in [
        ("a node certificate", &node_cert, "only the master may"),
        (
            "an unlisted master certificate",
            &rogue_master,
            "is not a master certificate this node knows",
        ),
    ] {
        let connector = topology
            .master
            .connector_as(cert, node1, IpPolicy::HybridIpv6);
        let result = call(&topology, connector.clone(), |ch| async move {
            NodeAgentClient::new(ch)
                .version(VersionRequest::default())
                .await
        });
        let status = result.unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{who}");
        assert!(
            status.message().contains(message),
            "{who}: {}",
            status.message()
        );
        // Diagnostics stay open to any cluster certificate.
        let me = call(&topology, connector, |ch| async move {
            DiagnosticsClient::new(ch).who_am_i(WhoAmIRequest {}).await
        })
        .unwrap()
        .into_inner();
        assert!(me.peer.starts_with("[fd00:77::10]:"), "{}", me.peer);
    }

    let ok = call(&topology, as_master(&topology), |ch| async move {
        NodeAgentClient::new(ch)
            .version(VersionRequest::default())
            .await
    });
    assert_eq!(ok.unwrap().into_inner().protocol_version, 1);
}

#[test]
fn procedures_answer_from_the_nodes_own_state_and_network() {
    let (topology, _agent) = member_topology();
    let master = as_master(&topology);

    let info = call(&topology, master.clone(), |ch| async move {
        NodeAgentClient::new(ch).node_info(NodeInfoRequest {}).await
    })
    .unwrap()
    .into_inner();
    assert_eq!(info.name, "node1.lab.test");
    assert_eq!(info.primary_ip_version, 6);
    let addresses = info.addresses.unwrap();
    assert_eq!(
        (
            addresses.primary_ip.as_str(),
            addresses.secondary_ip.as_str()
        ),
        ("fd00:77::11", "10.78.0.11")
    );
    let eth0 = info
        .interfaces
        .iter()
        .find(|i| i.interface == "eth0")
        .unwrap();
    assert!(
        eth0.ipv6.contains(&"fd00:77::11".to_owned())
            && eth0.ipv4.contains(&"10.77.0.11".to_owned())
    );
    let eth1 = info
        .interfaces
        .iter()
        .find(|i| i.interface == "eth1")
        .unwrap();
    assert_eq!(eth1.ipv4, ["10.78.0.11"]);

    // Version describes the node's certificate only when asked (verify does), as node.pem
    // on disk is: its fingerprint and its expiry.
    let version = |certificates: bool| {
        call(&topology, master.clone(), move |ch| async move {
            NodeAgentClient::new(ch)
                .version(VersionRequest {
                    certificates,
                    ..VersionRequest::default()
                })
                .await
        })
        .unwrap()
        .into_inner()
    };
    let plain = version(false);
    assert_eq!(
        (
            plain.certificate_sha256.as_str(),
            plain.certificate_not_after
        ),
        ("", 0)
    );
    let described = version(true);
    let node_pem = gnt_transports::Pem::read(
        "node certificate",
        &topology.state_dir("node1").join("node.pem"),
    )
    .unwrap();
    assert_eq!(
        described.certificate_sha256,
        gnt_transports::fingerprint(&node_pem.leaf_sha256().unwrap())
    );
    let der = node_pem.certificates("node certificate").unwrap();
    let (_, parsed) = {
        use x509_parser::prelude::FromDer;
        x509_parser::certificate::X509Certificate::from_der(der[0].as_ref()).unwrap()
    };
    assert_eq!(
        described.certificate_not_after,
        parsed.validity().not_after.timestamp()
    );

    let owned = |address: &str| {
        let address = address.to_owned();
        call(&topology, master.clone(), |ch| async move {
            NodeAgentClient::new(ch)
                .has_ip_address(HasIpAddressRequest { address })
                .await
        })
    };
    assert!(owned("10.78.0.11").unwrap().into_inner().owned);
    assert!(!owned("10.78.0.12").unwrap().into_inner().owned);
    // Broadcast addresses bind, but no peer reaches this node there: the limited one, and
    // those of its networks (10.77.0.0/24 on eth0, 10.78.0.0/24 on eth1).
    for broadcast in ["255.255.255.255", "10.77.0.255", "10.78.0.255"] {
        assert!(
            !owned(broadcast).unwrap().into_inner().owned,
            "{broadcast} reported as owned"
        );
    }
    assert_eq!(
        owned("not-an-ip").unwrap_err().code(),
        tonic::Code::InvalidArgument
    );

    let ping = |target: &str, port: u32, source: &str, live: bool| {
        let request = TcpPingRequest {
            target: target.to_owned(),
            port,
            source: source.to_owned(),
            timeout: Some(prost_types::Duration {
                seconds: 2,
                nanos: 0,
            }),
            live_port_needed: live,
        };
        call(&topology, master.clone(), |ch| async move {
            NodeAgentClient::new(ch).tcp_ping(request).await
        })
    };
    // Nothing listens on the master's 1811: the reset proves it is up, unless live is needed.
    let refused = ping("10.77.0.10", 1811, "10.77.0.11", false)
        .unwrap()
        .into_inner();
    assert!(refused.alive);
    assert_eq!(refused.outcome(), PingOutcome::Refused);
    assert!(
        !ping("10.77.0.10", 1811, "", true)
            .unwrap()
            .into_inner()
            .alive
    );
    let connected = ping("fd00:77::11", 1811, "fd00:77::11", true)
        .unwrap()
        .into_inner();
    assert_eq!(connected.outcome(), PingOutcome::Connected);
    let err = ping("10.77.0.10", 1811, "fd00:77::11", false).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("the source is not an IPv4 address"),
        "{}",
        err.message()
    );
    let err = ping("10.77.0.10", 1811, "10.77.0.99", false).unwrap_err();
    assert!(
        err.message().contains("cannot ping from 10.77.0.99"),
        "{}",
        err.message()
    );

    // WriteSsconf: the same cluster is accepted, another is refused.
    let set = topology.master.ssconf(
        CLUSTER,
        IpPolicy::HybridIpv6,
        &[
            topology.spec("master", IpPolicy::HybridIpv6),
            topology.spec("node1", IpPolicy::HybridIpv6),
            topology.spec("node2", IpPolicy::HybridIpv6),
        ],
    );
    let mut values = WireSsconf::from(&set).values;
    let write = |values: std::collections::HashMap<String, String>, serial: u64| {
        call(&topology, master.clone(), move |ch| async move {
            NodeAgentClient::new(ch)
                .write_ssconf(WriteSsconfRequest {
                    ssconf: Some(WireSsconf { values }),
                    serial,
                    epoch: 1,
                })
                .await
        })
    };
    let serial = || {
        call(&topology, master.clone(), |ch| async move {
            NodeAgentClient::new(ch)
                .version(VersionRequest::default())
                .await
        })
        .unwrap()
        .into_inner()
        .ssconf_serial
    };
    let stored = || {
        gnt_core::ssconf::SsconfStore::new(topology.state_dir("node1"))
            .read_published()
            .unwrap()
    };
    assert_eq!(serial(), 1, "the serial Join brought");
    let written = write(values.clone(), 5).unwrap().into_inner();
    assert_eq!(written.keys_written as usize, values.len());
    let node_list =
        std::fs::read_to_string(topology.state_dir("node1").join("ssconf_node_list")).unwrap();
    assert_eq!(
        node_list,
        "master.lab.test\nnode1.lab.test\nnode2.lab.test\n"
    );
    assert_eq!(serial(), 5);
    assert_eq!(stored().serial, 5, "stored with the set");

    // The same serial is written again; an older one is refused and changes nothing.
    write(values.clone(), 5).unwrap();
    let before = snapshot(&topology.state_dir("node1"));
    let refused = |err: tonic::Status, expected: &str| {
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
        assert!(err.message().contains(expected), "{}", err.message());
    };
    refused(
        write(values.clone(), 4).unwrap_err(),
        "this node's ssconf is at configuration serial 5, newer than the offered 4",
    );
    assert_eq!(snapshot(&topology.state_dir("node1")), before);
    assert_eq!(serial(), 5);

    values.insert("cluster_name".to_owned(), "other.lab.test".to_owned());
    refused(
        write(values, 6).unwrap_err(),
        "belongs to cluster 'cluster.lab.test', not to 'other.lab.test'",
    );
    assert_eq!(
        std::fs::read_to_string(topology.state_dir("node1").join("ssconf_cluster_name")).unwrap(),
        format!("{CLUSTER}\n")
    );
}

#[test]
fn a_partial_or_malformed_ssconf_set_is_refused_whole_and_the_master_keeps_its_place() {
    let (topology, _agent) = member_topology();
    let set = topology.master.ssconf(
        CLUSTER,
        IpPolicy::HybridIpv6,
        &[
            topology.spec("master", IpPolicy::HybridIpv6),
            topology.spec("node1", IpPolicy::HybridIpv6),
        ],
    );
    let full = WireSsconf::from(&set).values;
    let state = topology.state_dir("node1");
    let before = snapshot(&state);
    let without = |key: &str| {
        let mut values = full.clone();
        values.remove(key);
        values
    };
    let with = |key: &str, value: &str| {
        let mut values = full.clone();
        values.insert(key.to_owned(), value.to_owned());
        values
    };
    let only_the_name: HashMap<String, String> =
        [("cluster_name".to_owned(), CLUSTER.to_owned())].into();
    let attacks = [
        ("only the cluster name", only_the_name, "is missing"),
        (
            "no master certificate",
            without("master_candidates_certs"),
            "is missing",
        ),
        (
            "an empty master certificate list",
            with("master_candidates_certs", ""),
            "is missing",
        ),
        (
            "no primary IP family",
            without("primary_ip_family"),
            "is missing",
        ),
        ("no master", without("master_node"), "is missing"),
        ("no node list", without("node_list"), "is missing"),
        (
            "a NUL byte",
            with("node_list", "master.lab.test\nnode1.lab.test\0"),
            "NUL byte",
        ),
        (
            "a second line in a single-line key",
            with("primary_ip_family", "10\n2"),
            "expected a single line",
        ),
    ];
    for (what, values, expected) in attacks {
        let err = call(&topology, as_master(&topology), |ch| async move {
            NodeAgentClient::new(ch)
                .write_ssconf(WriteSsconfRequest {
                    ssconf: Some(WireSsconf { values }),
                    serial: 9,
                    epoch: 1,
                })
                .await
        })
        .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{what}: {err:?}");
        assert!(
            err.message().contains(expected),
            "{what}: {}",
            err.message()
        );
        assert_eq!(snapshot(&state), before, "{what}: the state changed");
    }
    // The allow-list is untouched: the master still gets through.
    let version = call(&topology, as_master(&topology), |ch| async move {
        NodeAgentClient::new(ch)
            .version(VersionRequest::default())
            .await
    });
    assert_eq!(version.unwrap().into_inner().protocol_version, 1);
}

fn upload(
    topology: &Topology,
    path: String,
    mode: u32,
    content: Vec<u8>,
    claimed_sha: Option<String>,
) -> Result<u64, tonic::Status> {
    let sha = claimed_sha.unwrap_or_else(|| {
        gnt_transports::sha256(&content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    });
    let header = UploadFileHeader {
        path,
        mode,
        size: content.len() as u64,
        sha256: sha,
    };
    call(topology, as_master(topology), |ch| async move {
        let mut messages = vec![UploadFileRequest {
            part: Some(upload_file_request::Part::Header(header)),
        }];
        messages.extend(content.chunks(64 * 1024).map(|chunk| UploadFileRequest {
            part: Some(upload_file_request::Part::Chunk(
                bytes::Bytes::copy_from_slice(chunk),
            )),
        }));
        NodeAgentClient::new(ch)
            .upload_file(tokio_stream::iter(messages))
            .await
            .map(|r| r.into_inner().bytes_written)
    })
}

#[test]
fn uploads_are_checked_and_land_atomically_only_where_allowed() {
    use std::os::unix::fs::MetadataExt;
    let (topology, _agent) = member_topology();
    let uploads = topology.state_dir("node1").join("uploads");
    let target = uploads.join("known_hosts");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let written = upload(
        &topology,
        target.display().to_string(),
        0o640,
        content.clone(),
        None,
    )
    .unwrap();
    assert_eq!(written, content.len() as u64);
    assert_eq!(std::fs::read(&target).unwrap(), content);
    assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o7777, 0o640);

    let err = upload(
        &topology,
        target.display().to_string(),
        0o644,
        b"other".to_vec(),
        Some("00".repeat(32)),
    )
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("does not match the checksum"),
        "{}",
        err.message()
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        content,
        "a failed upload keeps the old file"
    );

    let err = upload(
        &topology,
        "/etc/passwd".to_owned(),
        0o644,
        b"x".to_vec(),
        None,
    )
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let err = upload(
        &topology,
        format!("{}/../escape", uploads.display()),
        0o644,
        b"x".to_vec(),
        None,
    )
    .unwrap_err();
    assert!(
        err.message().contains("without '.' or '..'"),
        "{}",
        err.message()
    );
    let err = upload(
        &topology,
        uploads.join("suid").display().to_string(),
        0o4755,
        b"x".to_vec(),
        None,
    )
    .unwrap_err();
    assert!(
        err.message().contains("no set-id or sticky bits"),
        "{}",
        err.message()
    );
    let leftovers: Vec<_> = std::fs::read_dir(&uploads)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        leftovers,
        ["known_hosts"],
        "no temporary file is left behind"
    );
}

/// `UploadFileRequest` as prost sees it, its header's string `path` declared as bytes, so
/// the test can send what no string is.
#[derive(Clone, PartialEq, prost::Message)]
struct LyingUploadRequest {
    #[prost(message, optional, tag = "1")]
    header: Option<LyingUploadHeader>,
}

/// `UploadFileHeader` with `path` (field 1) as bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct LyingUploadHeader {
    #[prost(bytes = "vec", tag = "1")]
    path: Vec<u8>,
}

#[test]
fn upload_headers_are_parsed_strictly_as_documented() {
    let (topology, _agent) = member_topology();
    let uploads = topology.state_dir("node1").join("uploads");
    let lower = |content: &[u8]| -> String {
        gnt_transports::sha256(content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let refused = |path: String, sha: Option<String>, field: &str| {
        let err = upload(&topology, path.clone(), 0o644, b"x".to_vec(), sha).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{path}: {err:?}");
        assert!(
            err.message().starts_with(&format!("invalid {field}: ")),
            "{path}: {}",
            err.message()
        );
    };

    // Paths are taken literally: these name uploads/x, but are not how it is written.
    let dir = uploads.display().to_string();
    for path in [
        format!("{dir}/./x"),
        format!("{dir}//x"),
        format!("{dir}/x/"),
        format!("/{dir}/x"),
        // Named like a temporary file: it would be taken for a leftover at the next start.
        format!("{dir}/.x.upload-12-3"),
    ] {
        refused(path, None, "path");
    }
    // A NUL was a file-system failure (FAILED_PRECONDITION); it is bad input.
    refused(format!("{dir}/x\0.conf"), None, "path");

    // The checksum is 64 lower-case hexadecimal digits: upper case and signs are refused.
    refused(
        format!("{dir}/x"),
        Some(lower(b"x").to_uppercase()),
        "sha256",
    );
    // A content whose checksum starts with a 0 digit: "+d" parses as the byte 0x0d.
    let content = (0..1000u32)
        .map(|i| format!("attack {i}").into_bytes())
        .find(|c| lower(c).starts_with('0'))
        .unwrap();
    let signed = format!("+{}", &lower(&content)[1..]);
    let err = upload(&topology, format!("{dir}/x"), 0o644, content, Some(signed)).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");

    assert!(
        std::fs::read_dir(&uploads).unwrap().next().is_none(),
        "a refused upload wrote something"
    );
    // A path that is not UTF-8 at all: tonic's INTERNAL was the answer; it is bad input.
    let err = call(&topology, as_master(&topology), |ch| async move {
        let mut grpc = tonic::client::Grpc::new(ch);
        grpc.ready().await.unwrap();
        let header = LyingUploadRequest {
            header: Some(LyingUploadHeader {
                path: b"/tmp/\xff\xfe".to_vec(),
            }),
        };
        grpc.client_streaming::<_, _, UploadFileResponse, _>(
            tonic::Request::new(tokio_stream::iter([header])),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/gnt.node.v1.NodeAgent/UploadFile",
            ),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err()
    });
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().starts_with("malformed request: ")
            && err.message().contains("UploadFileHeader.path: ")
            && err.message().ends_with("data is not UTF-8 encoded"),
        "{}",
        err.message()
    );

    // The literal form of the same path is accepted.
    upload(&topology, format!("{dir}/x"), 0o644, b"x".to_vec(), None).unwrap();
    assert_eq!(std::fs::read(uploads.join("x")).unwrap(), b"x");
}

/// NetworkTest from node1 (as the master asks it) of `nodes`, each ping given
/// `timeout_ms`.
fn network_test(
    topology: &Topology,
    nodes: Vec<NodeAddresses>,
    timeout_ms: u32,
) -> Result<Vec<NetworkVerdict>, tonic::Status> {
    let timeout = std::time::Duration::from_millis(timeout_ms.into());
    call(topology, as_master(topology), move |ch| async move {
        NodeAgentClient::new(ch)
            .network_test(NetworkTestRequest {
                nodes,
                port: 0,
                timeout: prost_types::Duration::try_from(timeout).ok(),
            })
            .await
            .map(|r| r.into_inner().verdicts)
    })
}

#[test]
fn network_test_keeps_a_bounded_number_of_pings_in_flight() {
    const PEERS: usize = 300;
    const CAP: usize = 128; // gnt-noded's MAX_PINGS_IN_FLIGHT
    let (topology, _agent) = member_topology();
    // Addresses on node1's own networks that no host has: every ping waits for its timeout.
    let nodes: Vec<NodeAddresses> = (0..PEERS)
        .map(|i| NodeAddresses {
            name: format!("ghost{i}.lab.test"),
            primary_ip: "fd00:77::200".to_owned(),
            secondary_ip: "10.78.0.200".to_owned(),
        })
        .collect();
    let node1 = topology.host("node1").clone();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (verdicts, peak, took) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            // Connections being opened on node1, sampled until the call ends (at most 60 s).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst)
                && std::time::Instant::now() < deadline
            {
                let out = node1.run("ss", &["-tnH", "state", "syn-sent"]).unwrap();
                peak = peak.max(String::from_utf8_lossy(&out.stdout).lines().count());
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            peak
        });
        let started = std::time::Instant::now();
        let verdicts = network_test(&topology, nodes, 300);
        let took = started.elapsed();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (verdicts, sampler.join().unwrap(), took)
    });
    let verdicts = verdicts.unwrap();
    assert_eq!(verdicts.len(), 2 * PEERS, "both networks of every peer");
    assert!(verdicts.iter().all(|v| !v.reachable));
    assert_eq!(
        (verdicts[0].node.as_str(), verdicts[1].node.as_str()),
        ("ghost0.lab.test", "ghost0.lab.test"),
        "verdicts in the order of the request"
    );
    eprintln!(
        "NetworkTest of {PEERS} silent peers: at most {peak} connections opening at once, {took:?}"
    );
    assert!(peak > 0, "the sampler saw no ping at all");
    assert!(peak <= CAP, "{peak} pings in flight, more than {CAP}");
}

#[test]
fn network_test_reports_a_cut_secondary_link_while_the_primary_works() {
    let (topology, _agent) = member_topology();
    let nodes: Vec<_> = ["master", "node1", "node2"]
        .iter()
        .map(|n| NodeAddresses::from(&topology.spec(n, IpPolicy::HybridIpv6)))
        .collect();
    let run = |nodes| network_test(&topology, nodes, 1000).unwrap();
    let healthy = run(nodes.clone());
    assert_eq!(healthy.len(), 6, "two networks for each of three nodes");
    assert!(healthy.iter().all(|v| v.reachable), "{healthy:?}");

    topology.lab.cut_link("node2", Network::Secondary).unwrap();
    let verdicts = run(nodes);
    let failed: Vec<_> = verdicts.iter().filter(|v| !v.reachable).collect();
    assert_eq!(failed.len(), 1, "{verdicts:?}");
    assert_eq!(failed[0].node, "node2.lab.test");
    assert_eq!(failed[0].network(), WireNetwork::Secondary);
    assert!(
        failed[0].failure.contains("10.78.0.12"),
        "{}",
        failed[0].failure
    );
    let node2_primary = verdicts
        .iter()
        .find(|v| v.node == "node2.lab.test" && v.network() == WireNetwork::Primary)
        .unwrap();
    assert!(node2_primary.reachable, "the primary network still works");
}

#[test]
fn leaving_the_cluster_wipes_the_state_and_waits_for_a_new_join() {
    let (topology, agent) = member_topology();
    let state = topology.state_dir("node1");
    let key_before = std::fs::read(state.join("node.key")).unwrap();
    let left = call(&topology, as_master(&topology), |ch| async move {
        NodeAgentClient::new(ch)
            .leave_cluster(LeaveClusterRequest {})
            .await
    })
    .unwrap()
    .into_inner();
    assert_eq!(left.bootstrap_address, "[::]:1811");
    agent.wait(|s| matches!(s, AgentStatus::Bootstrap(_)));
    for gone in ["ssconf_cluster_name", "node.pem", "ca.pem", "member.conf"] {
        assert!(!state.join(gone).exists(), "{gone} survived LeaveCluster");
    }
    assert_ne!(
        std::fs::read(state.join("node.key")).unwrap(),
        key_before,
        "a new key for a new membership"
    );
    // It waits for a new token: the one it joined with does not work again.
    let (code, message) = refusal(topology.join("node1", IpPolicy::HybridIpv6, any(1811), |_| {}));
    assert_eq!(code, tonic::Code::Unauthenticated);
    assert!(
        message.contains("was already used on this node"),
        "{message}"
    );
    assert!(matches!(agent.status(), AgentStatus::Bootstrap(_)));
}

#[test]
fn a_master_of_an_older_epoch_is_refused_naming_the_epochs_and_changes_nothing() {
    let (topology, _agent) = member_topology();
    let master = as_master(&topology);
    let set = topology.master.ssconf(
        CLUSTER,
        IpPolicy::HybridIpv6,
        &[
            topology.spec("master", IpPolicy::HybridIpv6),
            topology.spec("node1", IpPolicy::HybridIpv6),
        ],
    );
    let values = WireSsconf::from(&set).values;
    let write = |caller: u64, epoch: u64, serial: u64| {
        let values = values.clone();
        call_at(caller, &topology, master.clone(), move |ch| async move {
            NodeAgentClient::new(ch)
                .write_ssconf(WriteSsconfRequest {
                    ssconf: Some(WireSsconf { values }),
                    serial,
                    epoch,
                })
                .await
        })
    };
    // A failover's new master (epoch 2) writes a set of a lower serial than the old
    // master's last one: the epoch orders first, so it is taken.
    write(1, 1, 7).unwrap();
    write(2, 2, 3).unwrap();
    let version = || {
        call_at(1, &topology, master.clone(), |ch| async move {
            // No epoch needed: Version is how a replaced master learns it was.
            NodeAgentClient::new(ch)
                .version(VersionRequest::default())
                .await
        })
        .unwrap()
        .into_inner()
    };
    let answer = version();
    assert_eq!((answer.master_epoch, answer.ssconf_serial), (2, 3));
    assert_eq!(answer.master_node, "master.lab.test");

    let before = snapshot(&topology.state_dir("node1"));
    // The old master, still at epoch 1: every procedure refused, naming both epochs.
    let refused = call_at(1, &topology, master.clone(), |ch| async move {
        NodeAgentClient::new(ch).node_info(NodeInfoRequest {}).await
    })
    .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert_eq!(
        refused.message(),
        "master epoch 1 is older than this node's 2: master.lab.test is the master now, and a master that a failover replaced must not act"
    );
    assert_eq!(
        refused.metadata().get("gnt-master-epoch").unwrap(),
        "2",
        "the node's epoch, for the old master to stand down on"
    );
    let err = write(1, 1, 9).unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    // Claiming the new epoch in the metadata does not let an old set in either.
    let err = write(2, 1, 9).unwrap_err();
    assert!(
        err.message()
            .contains("this node's ssconf is of master epoch 2, newer than the offered 1"),
        "{}",
        err.message()
    );
    assert_eq!(snapshot(&topology.state_dir("node1")), before);
    assert_eq!(version().master_epoch, 2);
}
