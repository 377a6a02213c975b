//! Runs the scenarios asked for on one site, in the order their dependencies need: the
//! idle agent's memory before any load; `unary` and `upload` against the master's own
//! agent and the baselines; node adds through `gnt-masterd`; the fleet and its joins;
//! `fanout` over the whole configuration; `gnt-masterd` holding a channel to every node.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gnt_core::join::JoinToken;
use gnt_core::policy::IpPolicy;
use gnt_master::master::{Master, node_client_tls};
use gnt_transports::{ClientTls, Connector, DialOptions};
use serde::Serialize;

use super::bare::BareArgs;
use super::fleet::{Fleet, FleetNode, agents_per_process};
use super::join::Candidate;
use super::measure::{Memory, memory_of};
use super::memory::{FleetMemory, MasterdMemory, MemoryResult};
use super::report::Report;
use super::site::Site;
use super::upload::{Destinations, Payload};
use super::{BenchError, fanout, join, memory, node_add, unary, upload};

/// A scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// `Version` load on one connection, beside bare tonic.
    Unary,
    /// The master's runner calling every node, cold and warm.
    Fanout,
    /// Node adds through gnt-masterd, and the fleet's joins.
    Join,
    /// UploadFile throughput, beside a bare TLS sink.
    Upload,
    /// Resident memory of the daemons.
    Memory,
}

/// How to run.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// The scenarios.
    pub scenarios: Vec<Scenario>,
    /// The cluster's policy.
    pub ip_version: u8,
    /// Fleet size (nodes joined and called).
    pub nodes: usize,
    /// Node adds through gnt-masterd.
    pub node_adds: usize,
    /// `unary` concurrencies.
    pub concurrency: Vec<usize>,
    /// `unary` connections the callers are spread over.
    pub connections: Vec<usize>,
    /// `unary`: the servers pinned to CPU 0, the load generator to CPU 1.
    pub pin: bool,
    /// `unary` seconds per round.
    pub duration_seconds: f64,
    /// `unary` rounds per target.
    pub rounds: usize,
    /// `upload` rounds per target.
    pub upload_rounds: usize,
    /// Joins run all at once first.
    pub join_batch: usize,
    /// Joins in flight at once for the rest.
    pub join_concurrency: usize,
    /// `fanout` rounds on new channels.
    pub cold_rounds: usize,
    /// `fanout` rounds on live channels.
    pub warm_rounds: usize,
    /// `upload` size, MiB.
    pub upload_mib: usize,
    /// `upload` message size, KiB.
    pub upload_chunk_kib: usize,
    /// Where the site keeps its files.
    pub work_dir: PathBuf,
}

impl Options {
    fn wants(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }

    fn policy(&self) -> IpPolicy {
        if self.ip_version == 4 {
            IpPolicy::Ipv4
        } else {
            IpPolicy::HybridIpv6
        }
    }
}

/// Progress lines on standard error, each with the time since the start: a long run says
/// what it is doing, and a slow phase shows.
#[derive(Debug, Clone, Copy)]
struct Progress(std::time::Instant);

impl Progress {
    fn say(&self, what: &str) {
        eprintln!("[{:7.1} s] {what}", self.0.elapsed().as_secs_f64());
    }
}

/// Builds the site, runs the scenarios, and returns what they found. `exe` is this
/// harness's binary (it also serves the fleet and the baselines).
pub fn run(options: &Options, exe: &Path) -> Result<Report, BenchError> {
    let open_files = super::raise_fd_limit()?;
    let needs_fleet = [Scenario::Join, Scenario::Fanout, Scenario::Memory]
        .iter()
        .any(|s| options.wants(*s));
    let fleet_size = if needs_fleet { options.nodes } else { 0 };
    let adds = if options.wants(Scenario::Join) || options.wants(Scenario::Memory) {
        options.node_adds.max(1)
    } else {
        0
    };
    let upload_bytes = (options.upload_mib as u64) << 20;
    let progress = Progress(std::time::Instant::now());
    progress.say(&format!(
        "building the site: {fleet_size} fleet nodes, {adds} node adds, cluster init"
    ));
    let site = Site::build(
        &options.work_dir,
        options.policy(),
        fleet_size,
        adds,
        upload_bytes.max(1 << 30),
    )?;
    // From here on this thread, and every thread it starts (the runtime's), is inside the
    // site's network namespace.
    site.host()?.enter()?;
    let runtime = tokio::runtime::Runtime::new().map_err(BenchError::io("start a runtime"))?;
    let settings = serde_json::to_value(options).unwrap_or_default();
    let mut report = Report::new(settings);
    runtime.block_on(async {
        let interrupted = tokio_util::sync::CancellationToken::new();
        tokio::spawn(gnt_transports::daemon::stop_on_signal(interrupted.clone()));
        tokio::select! {
            result = scenarios(options, exe, &site, &mut report, progress, open_files) => result,
            // Returning drops the fleet, the daemons and the lab: nothing is left behind.
            () = interrupted.cancelled() => Err(BenchError::failed("the run", "interrupted")),
        }
    })?;
    progress.say("done");
    Ok(report)
}

async fn scenarios(
    options: &Options,
    exe: &Path,
    site: &Site,
    report: &mut Report,
    progress: Progress,
    open_files: u64,
) -> Result<(), BenchError> {
    let mut memory = MemoryResult::default();
    if options.wants(Scenario::Memory) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        memory.noded_member = Some(memory_of(site.master_agent_pid()?)?);
    }

    if options.wants(Scenario::Unary) || options.wants(Scenario::Upload) {
        let baselines = start_baselines(site, exe).await?;
        let tls = node_client_tls(&site.master_paths())
            .map_err(|e| BenchError::failed("load the master's TLS identity", e))?
            .with_server_name(&site.master_name())
            .map_err(|e| BenchError::failed("name the master", e))?;
        let agent = tcp(site, site.master_primary(), 1811, tls.clone());
        if options.wants(Scenario::Unary) {
            progress.say("unary: gnt-noded and bare tonic in turns");
            let target = unary::Server {
                connector: agent.clone(),
                pid: Some(site.master_agent_pid()?),
            };
            let baseline = unary::Server {
                connector: tcp(
                    site,
                    baselines.grpc.ip(),
                    baselines.grpc.port(),
                    tls.clone(),
                ),
                pid: site.cluster.pid("master/gnt-bench-bare"),
            };
            let plan = unary::Plan {
                shapes: unary::Shape::all(&options.concurrency, &options.connections),
                duration: Duration::from_secs_f64(options.duration_seconds),
                rounds: options.rounds,
                client_cpu: options.pin.then_some(1),
            };
            if options.pin {
                for pid in [target.pid, baseline.pid].into_iter().flatten() {
                    super::measure::pin_process(pid, 0)?;
                }
            }
            let result = unary::compare(&target, Some(&baseline), &plan)
                .await?
                .with_wire(
                    unary::wire_round_trip(
                        baselines.echo,
                        Duration::from_secs_f64(options.duration_seconds),
                    )
                    .await?,
                );
            report.add("unary", &result, unary::rows(&result));
        }
        if options.wants(Scenario::Upload) {
            progress.say("upload: UploadFile and the bare sink in turns");
            let chunk = options.upload_chunk_kib << 10;
            let payload = Payload::new((options.upload_mib << 20) / chunk.max(1), chunk);
            let destinations = Destinations {
                grpc_file: site.master_state().join("uploads").join("bench.bin"),
                bare_dir: baselines.sink_dir.clone(),
            };
            let sink = tcp(site, baselines.sink.ip(), baselines.sink.port(), tls);
            let result = upload::compare(
                &agent,
                &sink,
                &payload,
                &destinations,
                options.upload_rounds,
            )
            .await?;
            report.add("upload", &result, upload::rows(&result));
        }
        site.cluster.stop_process("master/gnt-bench-bare", false)?;
    }

    if options.wants(Scenario::Join) || options.wants(Scenario::Memory) {
        progress.say("node adds through gnt-masterd");
        site.cluster.start_masterd()?;
        let socket = site.master_paths().socket;
        let (adds, bootstrap) = node_add::add_all(site, &socket).await?;
        site.cluster.stop_masterd()?;
        memory.noded_bootstrap = bootstrap;
        if options.wants(Scenario::Join) {
            report.add("node-add", &adds, node_add::rows(&adds));
        }
    }

    if site.fleet.is_empty() {
        return finish_memory(options, report, memory);
    }
    progress.say(&format!("starting {} fleet agents", site.fleet.len()));
    let (fleet, nodes) = start_fleet(site, exe, open_files).await?;
    progress.say("joining the fleet");
    let master = Arc::new(
        Master::load_unlocked(&site.master_state())
            .map_err(|e| BenchError::failed("load the master", e))?,
    );
    let (result, joined) = join::join_fleet(
        &master,
        fleet_candidates(site, &nodes)?,
        options.join_batch,
        options.join_concurrency,
    )
    .await?;
    join::commit(&master, &site.master_paths(), &joined).await?;
    drop(master);
    progress.say(&format!("{} nodes joined and committed", joined.len()));
    if options.wants(Scenario::Join) {
        report.add("join", &result, join::rows(&result));
    }

    if options.wants(Scenario::Fanout) {
        let master = Master::load_unlocked(&site.master_state())
            .map_err(|e| BenchError::failed("load the master", e))?;
        let config = master.config.snapshot().await;
        progress.say("fanout: cold and warm rounds");
        let result = fanout::measure(
            &site.master_paths(),
            &config,
            options.cold_rounds,
            options.warm_rounds,
        )
        .await?;
        report.add("fanout", &result, fanout::rows(&result, options.nodes));
    }

    if options.wants(Scenario::Memory) {
        progress.say("memory: gnt-masterd calling every node");
        site.cluster.start_masterd()?;
        let pid = site
            .cluster
            .pid("master/gnt-masterd")
            .ok_or_else(|| BenchError::failed("start gnt-masterd", "it exited"))?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = memory_of(pid)?;
        let answered = memory::call_everyone(&site.master_paths().socket).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let live_channels = memory_of(pid)?;
        memory.masterd = Some(MasterdMemory {
            nodes: answered,
            idle,
            live_channels,
        });
        let mut total = Memory {
            rss_kib: 0,
            peak_kib: 0,
            anon_kib: 0,
        };
        for pid in fleet.pids() {
            let m = memory_of(pid)?;
            total.rss_kib += m.rss_kib;
            total.peak_kib += m.peak_kib;
            total.anon_kib += m.anon_kib;
        }
        memory.fleet = Some(FleetMemory {
            agents: fleet.size(),
            processes: fleet.pids().len(),
            per_agent_kib: total.rss_kib as f64 / fleet.size().max(1) as f64,
            memory: total,
        });
        site.cluster.stop_masterd()?;
    }
    fleet.stop().await;
    finish_memory(options, report, memory)
}

fn finish_memory(
    options: &Options,
    report: &mut Report,
    memory: MemoryResult,
) -> Result<(), BenchError> {
    if options.wants(Scenario::Memory) {
        report.add("memory", &memory, memory::rows(&memory));
    }
    Ok(())
}

fn tcp(site: &Site, ip: std::net::IpAddr, port: u16, tls: ClientTls) -> Connector {
    Connector::tcp_addr(
        std::net::SocketAddr::new(ip, port),
        DialOptions::new(site.policy()),
    )
    .with_tls(tls)
}

/// Where the baselines listen.
struct Baselines {
    grpc: std::net::SocketAddr,
    sink: std::net::SocketAddr,
    echo: std::net::SocketAddr,
    sink_dir: PathBuf,
}

/// Starts the baselines on the master's primary address, ports 1812 (gRPC), 1813 (sink)
/// and 1814 (echo), with the master agent's certificate.
async fn start_baselines(site: &Site, exe: &Path) -> Result<Baselines, BenchError> {
    let state = site.master_state();
    let sink_dir = site.dir().join("bare-sink");
    std::fs::create_dir_all(&sink_dir)
        .map_err(BenchError::io(format!("create {}", sink_dir.display())))?;
    let args = BareArgs {
        cert: state.join("node.pem"),
        key: state.join("node.key"),
        ca: state.join("ca.pem"),
        grpc: std::net::SocketAddr::new(site.master_primary(), 1812),
        sink: std::net::SocketAddr::new(site.master_primary(), 1813),
        echo: std::net::SocketAddr::new(site.master_primary(), 1814),
        dir: sink_dir.clone(),
    };
    let text = |p: &Path| p.display().to_string();
    site.cluster.spawn(
        "gnt-bench-bare".to_owned(),
        "master",
        exe,
        &[
            "internal",
            "bare",
            "--cert",
            &text(&args.cert),
            "--key",
            &text(&args.key),
            "--ca",
            &text(&args.ca),
            "--grpc",
            &args.grpc.to_string(),
            "--sink",
            &args.sink.to_string(),
            "--echo",
            &args.echo.to_string(),
            "--dir",
            &text(&args.dir),
        ],
        None,
    )?;
    for addr in [args.grpc, args.sink, args.echo] {
        super::wait_listening(addr, "the baselines").await?;
    }
    Ok(Baselines {
        grpc: args.grpc,
        sink: args.sink,
        echo: args.echo,
        sink_dir,
    })
}

/// Starts the fleet with a fresh token per node; returns it and its nodes.
async fn start_fleet(
    site: &Site,
    exe: &Path,
    open_files: u64,
) -> Result<(Fleet, Vec<FleetNode>), BenchError> {
    let mut nodes = Vec::with_capacity(site.fleet.len());
    for node in &site.fleet {
        let token = JoinToken::generate().map_err(|e| BenchError::failed("make a token", e))?;
        nodes.push(FleetNode {
            state_dir: site.dir().join("fleet").join(&node.name),
            name: node.name.clone(),
            address: node.primary,
            token: token.expose(),
        });
    }
    let host = site.fleet_host()?;
    let command = |spec: &Path| {
        let mut command = host.command(exe);
        command.arg("internal").arg("fleet").arg(spec);
        tokio::process::Command::from(command)
    };
    let fleet = Fleet::start(
        command,
        nodes.clone(),
        1811,
        agents_per_process(open_files),
        site.dir(),
    )
    .await?;
    Ok((fleet, nodes))
}

fn fleet_candidates(site: &Site, nodes: &[FleetNode]) -> Result<Vec<Candidate>, BenchError> {
    site.fleet
        .iter()
        .zip(nodes)
        .map(|(node, spec)| {
            Ok(Candidate {
                node: node.clone(),
                token: spec
                    .token
                    .parse()
                    .map_err(|e| BenchError::failed("read a token", e))?,
            })
        })
        .collect()
}
