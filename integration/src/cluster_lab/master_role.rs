//! The lab's master role: which host `gnt` and gnt-masterd run on (the master, until a
//! failover moves it), and taking a whole host away and back (its processes killed, its
//! links cut), as a dead master host would be.

use super::{ClusterLab, ClusterLabError, CommandOutput};
use crate::lab::Network;

impl ClusterLab {
    /// Runs `gnt ARGS` on `host`, with its state directory.
    pub fn gnt_on(&self, host: &str, args: &[&str]) -> Result<CommandOutput, ClusterLabError> {
        let state = self.state_dir(host);
        let output = self
            .host(host)?
            .command(&self.gnt)
            .arg("--state-dir")
            .arg(&state)
            .args(args)
            .output()
            .map_err(|source| ClusterLabError::Io {
                action: "run gnt".to_owned(),
                source,
            })?;
        Ok(CommandOutput::from(
            format!("gnt {} (on {host})", args.join(" ")),
            &output,
        ))
    }

    /// The host `gnt` and gnt-masterd run on: `master` until [`Self::use_master`] says
    /// otherwise.
    pub fn master_host(&self) -> String {
        self.master_host
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// From now on `gnt` and gnt-masterd run on `host` (after a failover to it).
    pub fn use_master(&self, host: &str) {
        *self.master_host.lock().unwrap_or_else(|p| p.into_inner()) = host.to_owned();
    }

    /// Starts gnt-masterd on `host` and waits until it answers there.
    pub fn start_masterd_on(&self, host: &str) -> Result<(), ClusterLabError> {
        let before = self.activations_at_start(host);
        self.spawn_masterd_on(host)?;
        self.wait_for_masterd(host, before)
    }

    /// Stops gnt-masterd on `host`: gracefully (SIGTERM) or not (SIGKILL).
    pub fn stop_masterd_on(&self, host: &str, graceful: bool) -> Result<(), ClusterLabError> {
        self.stop(&format!("{host}/gnt-masterd"), graceful)
    }

    /// Takes `host` away as a dead machine would go: every lab process on it killed, both
    /// its links cut. Its state directory stays, as a disk would.
    pub fn kill_host(&self, host: &str) -> Result<(), ClusterLabError> {
        let keys: Vec<String> = self
            .processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|key| key.starts_with(&format!("{host}/")))
            .cloned()
            .collect();
        for key in keys {
            self.stop(&key, false)?;
        }
        for network in [Network::Primary, Network::Secondary] {
            self.lab.cut_link(host, network)?;
        }
        Ok(())
    }

    /// Plugs a host [`Self::kill_host`] took away back in (its daemons stay stopped).
    pub fn revive_host(&self, host: &str) -> Result<(), ClusterLabError> {
        for network in [Network::Primary, Network::Secondary] {
            self.lab.restore_link(host, network)?;
        }
        Ok(())
    }
}

impl ClusterLab {
    /// Waits (at most `patience`) for lab process `key` (`<host>/<name>`) to exit; its exit
    /// code, or `None` if it still runs (or was never started).
    pub fn wait_exit(&self, key: &str, patience: std::time::Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            {
                let mut processes = self.processes.lock().unwrap_or_else(|p| p.into_inner());
                let process = processes.get_mut(key)?;
                if let Ok(Some(status)) = process.child().try_wait() {
                    return Some(status.code().unwrap_or(-1));
                }
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Starts gnt-masterd on `host` without waiting for it to answer (it may refuse to).
    pub fn spawn_masterd_on(&self, host: &str) -> Result<(), ClusterLabError> {
        let state = self.state_dir(host);
        let mut args = vec!["--state-dir", state.to_str().unwrap_or_default()];
        args.extend(self.masterd_args.iter().map(String::as_str));
        self.spawn("gnt-masterd".to_owned(), host, &self.masterd, &args, None)
    }
}
