//! `gnt-noded`, the node agent: parses the command line, sets up logging, and runs the
//! agent until SIGTERM or SIGINT (then drains within the grace period).

use std::process::ExitCode;

use clap::Parser;
use gnt_node_agent::config::{AgentConfig, Cli, TOKEN_ENV};
use gnt_node_agent::{AgentStatus, run};
use gnt_transports::daemon::{exit_on, init_logging, run_daemon};
use tokio::sync::watch;

const NAME: &str = "gnt-noded";

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let config = match AgentConfig::from_cli(cli, std::env::var(TOKEN_ENV).ok()) {
        Ok(config) => config,
        Err(err) => return exit_on(NAME, &err),
    };
    run_daemon(NAME, |shutdown| async move {
        let (status, _) = watch::channel(AgentStatus::Starting);
        run(config, shutdown, status).await
    })
}
