//! `gnt-noded`, the node agent: parses the command line, sets up logging and signals, and
//! runs the agent until SIGTERM or SIGINT (then drains within the grace period).

use std::process::ExitCode;

use clap::Parser;
use gnt_core::error::{Chain, Classify};
use gnt_node_agent::config::{AgentConfig, Cli, TOKEN_ENV};
use gnt_node_agent::{AgentStatus, run};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    gnt_node_agent::process::init_logging();
    let config = match AgentConfig::from_cli(cli, std::env::var(TOKEN_ENV).ok()) {
        Ok(config) => config,
        Err(err) => return fail(&err),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gnt-noded: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(gnt_node_agent::process::stop_on_signal(shutdown.clone()));
        let (status, _) = watch::channel(AgentStatus::Starting);
        run(config, shutdown, status).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

fn fail<E: Classify>(err: &E) -> ExitCode {
    eprintln!("gnt-noded: {}", Chain(err));
    ExitCode::from(err.kind().exit_code())
}
