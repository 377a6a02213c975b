//! Running `ip` and other setup commands; a failure names the command line and carries
//! its standard error.

use std::process::{Command, Output};

use super::LabError;

pub(super) fn ip(args: &[&str]) -> Result<(), LabError> {
    run(Command::new("ip").args(args))
}

pub(super) fn ip_in(netns: &str, args: &[&str]) -> Result<(), LabError> {
    run(Command::new("ip").arg("-n").arg(netns).args(args))
}

pub(super) fn run(command: &mut Command) -> Result<(), LabError> {
    let line = format!("{command:?}");
    let output = command.output().map_err(|source| LabError::Io {
        action: format!("run {line}"),
        source,
    })?;
    succeeded(line, &output)
}

/// `Ok` if command `line` exited successfully, else what it printed on standard error.
pub(super) fn succeeded(line: String, output: &Output) -> Result<(), LabError> {
    if output.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            command: line,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
