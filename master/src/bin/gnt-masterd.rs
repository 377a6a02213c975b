//! `gnt-masterd`, the master daemon: serves the master API on `<state>/master/master.sock`
//! until SIGTERM or SIGINT.

use std::process::ExitCode;

use clap::Parser;
use gnt_master::daemon::MasterdCli;
use gnt_transports::daemon::{init_logging, run_daemon};

fn main() -> ExitCode {
    let cli = MasterdCli::parse();
    init_logging();
    let options = cli.options();
    run_daemon("gnt-masterd", |shutdown| async move {
        gnt_master::daemon::run_with(&cli.state_dir, &options, shutdown).await
    })
}
