//! `gnt`, the operator CLI: parses the command line, runs the command, and turns a failure
//! into one line on standard error and the exit code of its kind.

use std::process::ExitCode;

use clap::Parser;
use gnt_master::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        gnt_transports::daemon::init_logging();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gnt: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime
        .block_on(run(cli))
        .unwrap_or_else(|failure| gnt_transports::daemon::exit_on("gnt", &failure))
}
