//! `gnt-demo`: a hybrid IPv6/IPv4 cluster (a master and three nodes; with `--ipv4` a
//! dual-homed IPv4 one) in a private lab of
//! network namespaces, driven with the real `gnt`, `gnt-masterd` and `gnt-noded`: init,
//! join tokens, node add, list, an RPC fan-out, verify (with a cut secondary link and its
//! repair), a renewal of every key and of the CA, a master failover, then cleanup.
//! `--keep` leaves it running and prints how to explore it. SIGINT, SIGTERM and SIGHUP
//! clean everything up, during the run as while kept (`signals`).
//!
//! Run with `cargo run --release -p gnt-integration --bin gnt-demo` as root. The machine's
//! own network is not touched: the lab's hosts and bridges live in their own namespaces.

mod signals;

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use gnt_core::policy::IpPolicy;
use gnt_integration::cluster_lab::{CLUSTER_NAME, ClusterLab, CommandOutput};
use gnt_integration::lab::Network;

/// Runs a demo cluster in network namespaces.
#[derive(Debug, Parser)]
#[command(name = "gnt-demo")]
struct Cli {
    /// Keep the cluster running at the end, and print how to explore it; Ctrl-C (or SIGTERM,
    /// SIGHUP) cleans up.
    #[arg(long)]
    keep: bool,
    /// A pure IPv4 cluster instead of a hybrid IPv6/IPv4 one.
    #[arg(long)]
    ipv4: bool,
    /// Number of nodes besides the master.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=50))]
    nodes: u8,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !is_root() {
        eprintln!(
            "gnt-demo: the demo builds network namespaces, veth pairs and bridges, which needs root; run it with sudo (as root it changes nothing outside its own namespaces)"
        );
        return ExitCode::from(77);
    }
    // First, before any thread or process exists: from here on a signal cleans up.
    if let Err(error) = signals::install() {
        eprintln!("gnt-demo: {error:#}");
        return ExitCode::FAILURE;
    }
    // A signal's cleanup makes `run` fail (its commands are killed) or even panic (printing to
    // a closed terminal after SIGHUP): either way, wait for the cleanup to end the process.
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| run(&cli)));
    signals::wait_if_stopping();
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            eprintln!("gnt-demo: {error:#}");
            ExitCode::FAILURE
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn say(text: &str) {
    println!("\n== {text}");
}

fn show<E>(output: Result<CommandOutput, E>) -> anyhow::Result<CommandOutput>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let output = output?;
    print!("{output}");
    Ok(output)
}

fn expect<E>(output: Result<CommandOutput, E>) -> anyhow::Result<CommandOutput>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let output = show(output)?;
    if !output.success() {
        bail!("`{}` failed", output.command);
    }
    Ok(output)
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    // Under `cargo demo`, the daemons are rebuilt if the sources changed: never a stale demo.
    gnt_integration::binaries::build_if_under_cargo()?;
    let policy = if cli.ipv4 {
        IpPolicy::Ipv4
    } else {
        IpPolicy::HybridIpv6
    };
    let dir = tempfile::Builder::new()
        .prefix("gnt-demo-")
        .tempdir()
        .context("cannot create a working directory")?;
    let root: PathBuf = dir.path().to_owned();
    signals::remember_workdir(root.clone());
    let nodes: Vec<String> = (1..=cli.nodes).map(|k| format!("node{k}")).collect();

    say(&format!(
        "Building a lab: master and {} in network namespaces, a primary network (fd00:77::/64 and 10.77.0.0/24{}) and a secondary one (10.78.0.0/24); {CLUSTER_NAME} resolves to an unused address",
        nodes.join(", "),
        if cli.ipv4 {
            ", of which an IPv4 cluster uses 10.77.0.0/24 only"
        } else {
            ""
        }
    ));
    let cluster = {
        let _building = signals::BUILDING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ClusterLab::new(&root, policy, cli.nodes)?
    };
    println!("   working directory: {}", root.display());
    for host in cluster.lab().hosts() {
        let addresses: Vec<String> = host.addresses().iter().map(ToString::to_string).collect();
        println!(
            "   {:8} {}  secondary {}  (namespace {})",
            host.name(),
            addresses.join(", "),
            host.secondary().map(|s| s.to_string()).unwrap_or_default(),
            host.netns()
        );
    }

    // Both demos are dual-homed, as Ganeti's IPv4 clusters can be: with a secondary network
    // of its own, cutting a node's secondary link is something verify can see. (The lab's
    // IPv4 default is single-homed, where secondary = primary, for the tests of that case.)
    let master_secondary = ClusterLab::secondary("master").to_string();
    say(&format!(
        "Initialising {} cluster on master, dual-homed (secondary {master_secondary})",
        match policy {
            IpPolicy::Ipv4 => "an IPv4",
            IpPolicy::HybridIpv6 => "a hybrid IPv6/IPv4",
        }
    ));
    expect(match policy {
        IpPolicy::Ipv4 => cluster.init_with(&["-s", &master_secondary]),
        IpPolicy::HybridIpv6 => cluster.init(),
    })?;
    say("Starting gnt-noded (member mode, from its new ssconf) and gnt-masterd on master");
    cluster.start_noded("master", None)?;
    cluster.start_masterd()?;
    expect(cluster.gnt(&["cluster", "info"]))?;

    for node in &nodes {
        say(&format!(
            "Adding {node}: a join token, gnt-noded started with it on {node}, then gnt node add"
        ));
        let token = expect(cluster.gnt(&["node", "token", "create"]))?;
        let token = token
            .stdout
            .lines()
            .nth(1)
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        cluster.start_noded(node, Some(&token))?;
        println!("   (gnt-noded is waiting for its Join on {node}, [::]:1811)");
        let name = ClusterLab::fqdn(node);
        let secondary = ClusterLab::secondary(node).to_string();
        let args = [
            "node",
            "add",
            "--join-token",
            token.as_str(),
            "-s",
            secondary.as_str(),
            name.as_str(),
        ];
        expect(cluster.gnt(&args))?;
    }

    say("The cluster");
    expect(cluster.gnt(&["node", "list"]))?;
    say("An RPC fan-out: Version on every node, then NodeInfo on one");
    expect(cluster.gnt(&["rpc", "call", "Version", "--all"]))?;
    let first = ClusterLab::fqdn(&nodes[0]);
    expect(cluster.gnt(&["rpc", "call", "NodeInfo", "--nodes", &first, "-o", "json"]))?;

    say("Verifying the network: every node pings every node on both networks");
    expect(cluster.gnt(&["cluster", "verify"]))?;
    let last = nodes.last().cloned().unwrap_or_default();
    say(&format!(
        "Cutting {last}'s secondary link: verify must name it"
    ));
    cluster.lab().cut_link(&last, Network::Secondary)?;
    let verdict = show(cluster.gnt(&["cluster", "verify"]))?;
    if verdict.success() {
        bail!("cluster verify did not notice the cut link");
    }
    cluster.lab().restore_link(&last, Network::Secondary)?;
    say(&format!("{last}'s link restored"));
    expect(cluster.gnt(&["cluster", "verify"]))?;

    say(
        "Renewing every key and certificate, and the CA, while the cluster runs: nodes trust both CAs, get new keys and certificates of the new one, then trust it alone",
    );
    expect(cluster.gnt(&[
        "cluster",
        "renew-crypto",
        "--new-cluster-certificate",
        "--new-node-certificates",
    ]))?;
    expect(cluster.gnt(&["rpc", "call", "Version", "--all"]))?;

    say(&format!(
        "Master failover: gnt-masterd stopped on master, then `gnt cluster master-failover` on {} (a master candidate, with a copy of the configuration)",
        nodes[0]
    ));
    cluster.stop_masterd()?;
    expect(cluster.gnt_on(&nodes[0], &["cluster", "master-failover"]))?;
    cluster.use_master(&nodes[0]);
    say(&format!(
        "Starting gnt-masterd on {}, the new master: it brings up the cluster IP there",
        nodes[0]
    ));
    cluster.start_masterd()?;
    expect(cluster.gnt(&["node", "list"]))?;
    expect(cluster.gnt(&["cluster", "info"]))?;
    for host in ["master", nodes[0].as_str()] {
        let shown = cluster.host(host)?.run("ip", &["-o", "addr", "show"])?;
        let text = String::from_utf8_lossy(&shown.stdout).into_owned();
        let cluster_ip = text
            .lines()
            .filter(|line| line.contains(".100/") || line.contains("::100/"))
            .map(|line| {
                line.split_whitespace()
                    .take(4)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>();
        println!(
            "   cluster IP on {host}: {}",
            if cluster_ip.is_empty() {
                "none".to_owned()
            } else {
                cluster_ip.join("; ")
            }
        );
    }
    say("The old master's epoch is over: started again, its gnt-masterd refuses to act");
    cluster.spawn_masterd_on("master")?;
    match cluster.wait_exit("master/gnt-masterd", std::time::Duration::from_secs(20)) {
        Some(code) if code != 0 => {
            let log = std::fs::read_to_string(cluster.log("master", "gnt-masterd"))?;
            let refusal = log
                .lines()
                .rev()
                .find(|line| line.contains("no longer the master"))
                .unwrap_or_default();
            println!("   gnt-masterd on master exited with code {code}: {refusal}");
        }
        other => bail!("the old master's gnt-masterd did not refuse to act: {other:?}"),
    }
    expect(cluster.gnt(&["cluster", "verify"]))?;

    if cli.keep {
        print_hints(&cluster, &root)?;
        println!("Press Ctrl-C (or send SIGTERM or SIGHUP) to stop everything and clean up.");
        signals::wait_forever();
    }
    say("Cleaning up: daemons stopped, namespaces and files removed");
    drop(cluster);
    drop(dir);
    Ok(())
}

/// How to explore the kept cluster: commands to paste as they are, so with the full path of
/// every program, since none of the workspace's binaries is on `PATH` (nor, usually, grpcurl).
fn print_hints(cluster: &ClusterLab, root: &Path) -> anyhow::Result<()> {
    let current = cluster.master_host();
    let master = cluster.host(&current)?;
    let ns = master.netns();
    let state = cluster.state_dir(&current);
    let state = state.display();
    let gnt = gnt_integration::binaries::locate("gnt").context("cannot find gnt for the hints")?;
    let gnt = gnt.display();
    say("The cluster keeps running. Explore it as root, for example:");
    println!("   ip netns exec {ns} {gnt} --state-dir {state} node list");
    println!("   ip netns exec {ns} {gnt} --state-dir {state} rpc call NodeInfo --all");
    match gnt_integration::grpcurl::grpcurl() {
        Ok(grpcurl) => {
            // Without the `..` of the default install directory: shorter to read.
            let grpcurl = std::fs::canonicalize(&grpcurl).unwrap_or(grpcurl);
            let grpcurl = grpcurl.display();
            // The agent listens in the primary family only (0.0.0.0 in an IPv4 cluster).
            let agent = SocketAddr::new(cluster.primary(&current), 1811);
            println!(
                "   ip netns exec {ns} {grpcurl} -plaintext -unix -authority localhost {state}/master/master.sock list"
            );
            println!(
                "   ip netns exec {ns} {grpcurl} -cacert {state}/master/ca.pem -cert {state}/master/master.pem -key {state}/master/master.key '{agent}' list"
            );
        }
        Err(error) => println!("   (no grpcurl examples: {error})"),
    }
    println!("   logs: {}/<host>/*.log", root.display());
    Ok(())
}
