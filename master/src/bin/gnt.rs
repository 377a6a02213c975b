//! `gnt`, the operator CLI: parses the command line, runs the command, and turns a failure
//! into one line on standard error and the exit code of its kind.

use std::process::ExitCode;

use clap::Parser;
use gnt_master::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        gnt_node_agent::process::init_logging();
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
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("gnt: {}", failure.message);
            ExitCode::from(failure.kind.exit_code())
        }
    }
}
