//! `gnt-masterd`'s command line, in the library so that the installer can make its manual
//! page and completions from the same definition.

use std::path::PathBuf;
use std::time::Duration;

use gnt_core::DEFAULT_STATE_DIR;

use super::DaemonOptions;

/// The master daemon of a gnt-rpc cluster: it holds the cluster configuration and drives
/// the node agents. Start it on the host where `gnt cluster init` ran; `gnt` talks to it
/// through a Unix socket in the state directory.
#[derive(Debug, clap::Parser)]
#[command(name = "gnt-masterd", version)]
pub struct MasterdCli {
    /// The state directory given to `gnt cluster init`.
    #[arg(long, env = "GNT_STATE_DIR", default_value = DEFAULT_STATE_DIR, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// How often to check that every online node holds the configuration's ssconf, in
    /// seconds (nodes are also checked at start and after every redistribution some node
    /// did not take). 0 turns the check off entirely; tests use it to keep a node behind.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub converge_interval: u64,
    /// How often to look for certificates past two thirds of their life, in seconds; a
    /// renewal job is submitted for them. 0 turns automatic renewal off.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub renewal_check_interval: u64,
}

impl MasterdCli {
    /// The daemon's options (an interval of 0 turns its task off).
    pub fn options(&self) -> DaemonOptions {
        let every = |seconds: u64| Some(Duration::from_secs(seconds)).filter(|d| !d.is_zero());
        DaemonOptions {
            converge_interval: every(self.converge_interval),
            renewal_check_interval: every(self.renewal_check_interval),
        }
    }
}
