//! `gnt-bench`: gnt-rpc's benchmarks, each beside a baseline in the same run. Builds a lab
//! cluster (root needed), runs the scenarios asked for, prints a table and writes JSON.
//! With `--target`, loads any server of the node proto's `Version` instead (no lab).
//!
//! Run it optimised: `cargo gnt-bench` (an alias for `cargo run --release -p
//! gnt-integration --bin gnt-bench --`). How to read the results: `docs/benchmarks.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use gnt_core::netutils::HostPort;
use gnt_core::policy::IpPolicy;
use gnt_integration::bench::bare::{self, BareArgs};
use gnt_integration::bench::report::Report;
use gnt_integration::bench::run::{Options, Scenario, run};
use gnt_integration::bench::{fleet, unary};
use gnt_transports::{ClientTls, Connector, DialOptions};

/// gnt-rpc's benchmarks, each beside a baseline in the same run.
#[derive(Debug, Parser)]
#[command(
    name = "gnt-bench",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Scenarios need root (a lab network namespace), except `unary --target`.\n\
                  Results: a table on standard output, everything in the JSON file."
)]
struct Cli {
    #[command(subcommand)]
    internal: Option<Internal>,

    /// Scenarios to run; all when none is named.
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,

    /// Fleet size: simulated nodes joined, called and held channels to.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,

    /// Nodes added one at a time through gnt-masterd.
    #[arg(long, default_value_t = 5)]
    node_adds: usize,

    /// `unary`: concurrent callers, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    concurrency: Vec<usize>,

    /// `unary`: connections the callers are spread over, comma-separated; each count of
    /// callers is run over each count of connections it can fill.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    connections: Vec<usize>,

    /// `unary`: pin the servers to CPU 0 and the load generator to CPU 1, so that they do
    /// not share a CPU and the server's CPU per call is its own.
    #[arg(long)]
    pin: bool,

    /// `unary`: seconds per round.
    #[arg(long, default_value_t = 2.0)]
    duration: f64,

    /// `unary`: rounds per target (and pairs the ratio is the mean of).
    #[arg(long, default_value_t = 10)]
    rounds: usize,

    /// `upload`: rounds per target.
    #[arg(long, default_value_t = 3)]
    upload_rounds: usize,

    /// `join`: joins started all at once before the rest.
    #[arg(long, default_value_t = 100)]
    join_batch: usize,

    /// `join`: joins in flight at once after the first batch.
    #[arg(long, default_value_t = 100)]
    join_concurrency: usize,

    /// `fanout`: rounds on new channels.
    #[arg(long, default_value_t = 3)]
    cold_rounds: usize,

    /// `fanout`: rounds on live channels.
    #[arg(long, default_value_t = 5)]
    warm_rounds: usize,

    /// `upload`: file size, MiB.
    #[arg(long, default_value_t = 1024)]
    upload_mib: usize,

    /// `upload`: bytes per UploadFile message, KiB.
    #[arg(long, default_value_t = 1024)]
    upload_chunk_kib: usize,

    /// The cluster's primary IP version: 6 (hybrid IPv6/IPv4) or 4.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(4..=6))]
    ip_version: u8,

    /// Where the site keeps its files; default: a new directory in /dev/shm, removed after.
    #[arg(long)]
    work_dir: Option<PathBuf>,

    /// Where to write the JSON results.
    #[arg(long, default_value = "gnt-bench.json")]
    json: PathBuf,

    /// `unary` only: load this server (`host:port`) instead of building a lab.
    #[arg(long)]
    target: Option<String>,

    /// With `--target`: the CA to verify it with (TLS); without, plaintext.
    #[arg(long, requires = "target")]
    ca: Option<PathBuf>,

    /// With `--target`: a client certificate to present (PEM).
    #[arg(long, requires_all = ["ca", "key"])]
    cert: Option<PathBuf>,

    /// With `--target`: the client certificate's key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,

    /// With `--target`: the name to verify its certificate for (default: its host).
    #[arg(long, requires = "ca")]
    server_name: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// Roles this harness starts itself in; not for people.
    #[command(hide = true)]
    Internal {
        #[command(subcommand)]
        role: Role,
    },
}

#[derive(Debug, Subcommand)]
enum Role {
    /// The fleet simulator.
    Fleet {
        /// The fleet spec.
        spec: PathBuf,
    },
    /// The baselines.
    Bare(BareArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gnt_transports::daemon::init_logging_at("warn");
    let outcome = match &cli.internal {
        Some(Internal::Internal { role }) => internal(role),
        None => benchmark(&cli),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gnt-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn internal(role: &Role) -> anyhow::Result<()> {
    match role {
        Role::Fleet { spec } => fleet::serve(spec).context("the fleet failed"),
        Role::Bare(args) => bare::serve(args).context("the baselines failed"),
    }
}

fn benchmark(cli: &Cli) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let report = match &cli.target {
        Some(target) => external(cli, target)?,
        None => lab(cli, &exe)?,
    };
    print!("{}", report.table());
    let json = serde_json::to_vec_pretty(&report).context("cannot encode the results")?;
    gnt_core::fs_atomic::write_atomic(&cli.json, &json, 0o644)
        .with_context(|| format!("cannot write {}", cli.json.display()))?;
    println!("\nresults: {}", cli.json.display());
    let missed = report.missed();
    if !missed.is_empty() {
        println!(
            "{} target(s) missed: {}",
            missed.len(),
            missed
                .iter()
                .map(|r| format!("{} {}", r.scenario, r.metric))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

fn lab(cli: &Cli, exe: &Path) -> anyhow::Result<Report> {
    use std::os::unix::fs::MetadataExt;
    if !std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        bail!(
            "the scenarios run in a lab of network namespaces, which needs root; run gnt-bench as root, or load a server of your own with `unary --target HOST:PORT`"
        );
    }
    gnt_integration::binaries::build_if_under_cargo()
        .context("cannot build the gnt-rpc binaries")?;
    let scenarios = if cli.scenarios.is_empty() {
        vec![
            Scenario::Unary,
            Scenario::Fanout,
            Scenario::Join,
            Scenario::Upload,
            Scenario::Memory,
        ]
    } else {
        cli.scenarios.clone()
    };
    if cli.upload_chunk_kib == 0 || !(cli.upload_mib * 1024).is_multiple_of(cli.upload_chunk_kib) {
        bail!("--upload-mib must be a whole number of chunks of --upload-chunk-kib");
    }
    let scratch;
    let work_dir = match &cli.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            let base = Path::new("/dev/shm");
            let base = if base.is_dir() {
                base.to_owned()
            } else {
                std::env::temp_dir()
            };
            scratch = tempfile::Builder::new()
                .prefix("gnt-bench-")
                .tempdir_in(&base)
                .with_context(|| format!("cannot create a directory in {}", base.display()))?;
            scratch.path().to_owned()
        }
    };
    let options = Options {
        scenarios,
        ip_version: cli.ip_version,
        nodes: cli.nodes,
        node_adds: cli.node_adds,
        concurrency: cli.concurrency.clone(),
        connections: cli.connections.clone(),
        pin: cli.pin,
        duration_seconds: cli.duration,
        rounds: cli.rounds.max(1),
        upload_rounds: cli.upload_rounds.max(1),
        join_batch: cli.join_batch,
        join_concurrency: cli.join_concurrency.max(1),
        cold_rounds: cli.cold_rounds,
        warm_rounds: cli.warm_rounds,
        upload_mib: cli.upload_mib,
        upload_chunk_kib: cli.upload_chunk_kib,
        work_dir,
    };
    Ok(run(&options, exe)?)
}

fn external(cli: &Cli, target: &str) -> anyhow::Result<Report> {
    if cli.scenarios.iter().any(|s| *s != Scenario::Unary) {
        bail!("--target runs the unary scenario only");
    }
    let parsed: HostPort = target
        .parse()
        .with_context(|| format!("--target {target}: expected host:port"))?;
    let Some(port) = parsed.port else {
        bail!("--target {target}: give the port too (host:port)");
    };
    let mut connector = Connector::tcp(parsed.host, port, DialOptions::new(IpPolicy::HybridIpv6));
    if let Some(ca) = &cli.ca {
        let identity = cli.cert.as_deref().zip(cli.key.as_deref());
        let mut tls = ClientTls::from_files(ca, identity).context("cannot load the TLS files")?;
        if let Some(name) = &cli.server_name {
            tls = tls
                .with_server_name(name)
                .context("invalid --server-name")?;
        }
        connector = connector.with_tls(tls);
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start a runtime")?;
    let server = unary::Server {
        connector: connector.clone(),
        pid: None,
    };
    let plan = unary::Plan {
        shapes: unary::Shape::all(&cli.concurrency, &cli.connections),
        duration: Duration::from_secs_f64(cli.duration),
        rounds: cli.rounds.max(1),
        client_cpu: None,
    };
    let result = runtime.block_on(unary::compare(&server, None, &plan))?;
    let mut report = Report::new(serde_json::json!({
        "target": connector.target(),
        "concurrency": cli.concurrency,
        "connections": cli.connections,
        "duration_seconds": cli.duration,
        "rounds": cli.rounds,
    }));
    report.add("unary", &result, unary::rows(&result));
    Ok(report)
}
