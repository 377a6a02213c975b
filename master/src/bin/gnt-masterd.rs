//! `gnt-masterd`, the master daemon: serves the master API on `<state>/master/master.sock`
//! until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gnt_core::error::{Chain, Classify};
use tokio_util::sync::CancellationToken;

/// The master daemon of a gnt-rpc cluster: it holds the cluster configuration and drives
/// the node agents. Start it on the host where `gnt cluster init` ran; `gnt` talks to it
/// through a Unix socket in the state directory.
#[derive(Debug, Parser)]
#[command(name = "gnt-masterd", version)]
struct Cli {
    /// The state directory given to `gnt cluster init`.
    #[arg(
        long,
        env = "GNT_STATE_DIR",
        default_value = "/var/lib/gnt-rpc",
        value_name = "DIR"
    )]
    state_dir: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gnt_node_agent::process::init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gnt-masterd: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(gnt_node_agent::process::stop_on_signal(shutdown.clone()));
        gnt_master::daemon::run(&cli.state_dir, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gnt-masterd: {}", Chain(&err));
            ExitCode::from(err.kind().exit_code())
        }
    }
}
