//! Smoke tests of `gnt-bench`: every scenario runs briefly at small sizes on a real lab
//! cluster (root needed), and its JSON is checked for well-formed figures from calls that
//! all succeeded (the harness fails the run on any failed call). Nothing about speed is
//! asserted: speed is what the benchmarks report, not what tests decide.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is a failed assertion"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use gnt_integration::pki::TestCa;
use serde_json::Value;

fn gnt_bench() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gnt-bench"));
    // Not under cargo: the harness must not rebuild the binaries the tests already built.
    command.env_remove("CARGO");
    command
}

fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "gnt-bench failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

fn positive(value: &Value) -> f64 {
    let n = number(value);
    assert!(n.is_finite() && n > 0.0, "not a positive figure: {value}");
    n
}

/// Percentiles present, positive and in order.
fn check_latency(latency: &Value, samples: Option<u64>) {
    let p50 = positive(&latency["p50_us"]);
    let p90 = positive(&latency["p90_us"]);
    let p99 = positive(&latency["p99_us"]);
    let max = positive(&latency["max_us"]);
    assert!(p50 <= p90 && p90 <= p99 && p99 <= max, "{latency}");
    let count = latency["samples"].as_u64().unwrap();
    match samples {
        Some(expected) => assert_eq!(count, expected, "{latency}"),
        None => assert!(count > 0, "{latency}"),
    }
}

#[test]
fn every_scenario_runs_and_reports_well_formed_figures() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let work = dir.path().join("work");
    let output = gnt_bench()
        .args([
            "--nodes",
            "24",
            "--node-adds",
            "2",
            "--concurrency",
            "1,4",
            "--connections",
            "1,2",
            "--pin",
            "--duration",
            "0.3",
            "--rounds",
            "2",
            "--upload-rounds",
            "1",
            "--join-batch",
            "10",
            "--join-concurrency",
            "4",
            "--cold-rounds",
            "2",
            "--warm-rounds",
            "2",
            "--upload-mib",
            "4",
            "--upload-chunk-kib",
            "256",
        ])
        .arg("--work-dir")
        .arg(&work)
        .arg("--json")
        .arg(&json)
        // The daemons it starts coalesce their writes (opt-in): every call of the
        // concurrent shapes, and the upload's large writes, must go through it.
        .env("GNT_COALESCE_WRITES", "1")
        .output()
        .unwrap();
    let table = succeeded(&output);
    for scenario in ["unary", "upload", "join", "fanout", "memory"] {
        assert!(
            table.lines().any(|l| l.starts_with(scenario)),
            "no {scenario} row:\n{table}"
        );
    }

    let report = read_json(&json);
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1, "{report}");
    let scenarios = &report["scenarios"];

    let unary = &scenarios["unary"];
    let comparisons = unary["comparisons"].as_array().unwrap();
    // 1 caller on 1 connection, 4 on 1, 4 over 2 (1 caller is not spread over 2).
    let shapes: Vec<(u64, u64)> = comparisons
        .iter()
        .map(|c| {
            (
                c["concurrency"].as_u64().unwrap(),
                c["connections"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shapes, [(1, 1), (4, 1), (4, 2)], "{unary}");
    assert_eq!(unary["client_cpu"].as_u64(), Some(1), "{unary}");
    assert!(
        table.contains("C=4 over 2 connections server write system calls per call"),
        "{table}"
    );
    for comparison in comparisons {
        for side in ["target", "baseline"] {
            let series = &comparison[side];
            positive(&series["requests_per_second"]);
            positive(&series["server_cpu_us_per_call"]);
            // Responses are written by some system call.
            positive(&series["server_writes_per_call"]);
            check_latency(&series["latency"], None);
            assert_eq!(series["rounds"].as_array().unwrap().len(), 2, "{series}");
        }
        // The ratio is the mean of the two round pairs' ratios, with its standard error.
        let pairs: Vec<f64> = comparison["pair_ratios"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_f64().unwrap())
            .collect();
        assert_eq!(pairs.len(), 2, "{comparison}");
        assert!(
            pairs.iter().all(|r| r.is_finite() && *r > 0.0),
            "{comparison}"
        );
        let ratio = number(&comparison["ratio"]);
        assert!(
            (ratio - (pairs[0] + pairs[1]) / 2.0).abs() < 1e-9,
            "{comparison}"
        );
        let error = number(&comparison["ratio_standard_error"]);
        assert!(error.is_finite() && error >= 0.0, "{comparison}");
    }
    check_latency(&unary["wire_round_trip"], None);

    let upload = &scenarios["upload"];
    assert_eq!(upload["bytes"].as_u64(), Some(4 << 20), "{upload}");
    assert_eq!(upload["chunk_bytes"].as_u64(), Some(256 << 10), "{upload}");
    for key in [
        "grpc_gb_per_second",
        "bare_gb_per_second",
        "tls_only_gb_per_second",
        "ratio",
    ] {
        positive(&upload[key]);
    }

    let adds = &scenarios["node-add"];
    assert_eq!(adds["add_ms"].as_array().unwrap().len(), 2, "{adds}");
    positive(&adds["median_ms"]);
    assert_eq!(adds["warnings"], Value::Array(Vec::new()), "{adds}");

    let join = &scenarios["join"];
    assert_eq!(join["nodes"].as_u64(), Some(24), "{join}");
    assert_eq!(join["batch"]["nodes"].as_u64(), Some(10), "{join}");
    assert_eq!(join["rest"]["nodes"].as_u64(), Some(14), "{join}");
    assert_eq!(join["rest"]["concurrency"].as_u64(), Some(4), "{join}");
    check_latency(&join["batch"]["latency"], Some(10));
    check_latency(&join["rest"]["latency"], Some(14));
    positive(&join["joins_per_second"]);

    // The whole configuration: the master, the node adds and the fleet.
    let fanout = &scenarios["fanout"];
    assert_eq!(fanout["nodes"].as_u64(), Some(27), "{fanout}");
    for kind in ["cold", "warm"] {
        let rounds = fanout[kind]["round_ms"].as_array().unwrap();
        assert_eq!(rounds.len(), 2, "{fanout}");
        rounds.iter().for_each(|r| {
            positive(r);
        });
        assert!(number(&fanout[kind]["worst_ms"]) >= number(&fanout[kind]["median_ms"]));
    }

    let memory = &scenarios["memory"];
    for daemon in ["noded_member", "noded_bootstrap"] {
        let rss = positive(&memory[daemon]["rss_kib"]);
        assert!(number(&memory[daemon]["peak_kib"]) >= rss, "{memory}");
    }
    assert_eq!(memory["masterd"]["nodes"].as_u64(), Some(27), "{memory}");
    positive(&memory["masterd"]["live_channels"]["rss_kib"]);
    assert_eq!(memory["fleet"]["agents"].as_u64(), Some(24), "{memory}");
    positive(&memory["fleet"]["per_agent_kib"]);

    // Nothing of the lab is left behind.
    let leftovers = std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("gntlab-{}-", std::process::id()))
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(leftovers, 0);
}

#[test]
fn the_unary_load_can_be_pointed_at_any_server_of_the_node_proto() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "bench-ca").unwrap();
    let server = ca
        .issue("bare.bench.test", "node", &["bare.bench.test"], &[])
        .unwrap();
    let client = ca.issue("client.bench.test", "master", &[], &[]).unwrap();
    let sink_dir = dir.path().join("sink");
    std::fs::create_dir(&sink_dir).unwrap();

    // The bare baseline, on ports the kernel picks.
    let mut bare = gnt_bench()
        .args(["internal", "bare"])
        .arg("--cert")
        .arg(&server.cert)
        .arg("--key")
        .arg(&server.key)
        .arg("--ca")
        .arg(ca.ca_path())
        .args([
            "--grpc",
            "127.0.0.1:0",
            "--sink",
            "127.0.0.1:0",
            "--echo",
            "127.0.0.1:0",
        ])
        .arg("--dir")
        .arg(&sink_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(bare.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let grpc = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("grpc="))
        .unwrap_or_else(|| panic!("no address in {ready:?}"))
        .to_owned();

    let json = dir.path().join("external.json");
    // `gnt-bench unary` at the baseline over TLS, checking its certificate for `name`.
    let unary_at = |name: &str| {
        let mut command = gnt_bench();
        command
            .args(["unary", "--target", &grpc, "--server-name", name])
            .args(["--concurrency", "2", "--duration", "0.3", "--rounds", "1"])
            .arg("--ca")
            .arg(ca.ca_path())
            .arg("--cert")
            .arg(&client.cert)
            .arg("--key")
            .arg(&client.key)
            .arg("--json")
            .arg(&json);
        command.output().unwrap()
    };
    succeeded(&unary_at("bare.bench.test"));
    let report = read_json(&json);
    let unary = &report["scenarios"]["unary"];
    assert_eq!(unary["target"].as_str(), Some(grpc.as_str()), "{unary}");
    assert!(unary["baseline"].is_null(), "{unary}");
    let series = &unary["comparisons"][0]["target"];
    positive(&series["requests_per_second"]);
    check_latency(&series["latency"], None);

    // The certificate is checked for the name given: another name fails, and says so.
    let output = unary_at("impostor.bench.test");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("connect to"), "{stderr}");

    // A target without a port is refused before anything is sent.
    let output = gnt_bench()
        .args(["unary", "--target", "127.0.0.1", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("give the port too"), "{stderr}");

    let _ = bare.kill();
    let _ = bare.wait();
}
