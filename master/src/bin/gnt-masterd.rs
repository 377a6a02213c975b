//! `gnt-masterd`, the master daemon: serves the master API on `<state>/master/master.sock`
//! until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gnt_core::DEFAULT_STATE_DIR;
use gnt_master::daemon::DaemonOptions;
use gnt_transports::daemon::{init_logging, run_daemon};

/// The master daemon of a gnt-rpc cluster: it holds the cluster configuration and drives
/// the node agents. Start it on the host where `gnt cluster init` ran; `gnt` talks to it
/// through a Unix socket in the state directory.
#[derive(Debug, Parser)]
#[command(name = "gnt-masterd", version)]
struct Cli {
    /// The state directory given to `gnt cluster init`.
    #[arg(long, env = "GNT_STATE_DIR", default_value = DEFAULT_STATE_DIR, value_name = "DIR")]
    state_dir: PathBuf,
    /// How often to check that every online node holds the configuration's ssconf, in
    /// seconds (nodes are also checked at start and after every redistribution some node
    /// did not take). 0 turns the check off entirely; tests use it to keep a node behind.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    converge_interval: u64,
    /// How often to look for certificates past two thirds of their life, in seconds; a
    /// renewal job is submitted for them. 0 turns automatic renewal off.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    renewal_check_interval: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let options = DaemonOptions {
        converge_interval: Some(Duration::from_secs(cli.converge_interval))
            .filter(|interval| !interval.is_zero()),
        renewal_check_interval: Some(Duration::from_secs(cli.renewal_check_interval))
            .filter(|interval| !interval.is_zero()),
    };
    run_daemon("gnt-masterd", |shutdown| async move {
        gnt_master::daemon::run_with(&cli.state_dir, &options, shutdown).await
    })
}
