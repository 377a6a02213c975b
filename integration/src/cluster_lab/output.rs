//! What a command run in the lab printed, and how it ended.

use std::fmt;
use std::process::Output;

/// The result of a command run in the lab.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// The command line, for display.
    pub command: String,
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CommandOutput {
    pub(super) fn from(command: String, output: &Output) -> Self {
        Self {
            command,
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

impl fmt::Display for CommandOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        write!(f, "{}", self.stdout)?;
        for line in self.stderr.lines() {
            writeln!(f, "{line}")?;
        }
        if self.code != 0 {
            writeln!(f, "(exit code {})", self.code)?;
        }
        Ok(())
    }
}
