//! Where the master keeps its files: in `master/` inside the state directory it shares with
//! the local gnt-noded (whose ssconf, keys and certificates sit in the directory itself).
//!
//! ```text
//! <state>/master/config.json     the cluster configuration (0600)
//! <state>/master/ca.pem, ca.key  the cluster CA (key 0600)
//! <state>/master/master.pem/.key the master's client certificate (key 0600)
//! <state>/master/master.sock     the master API, for `gnt` (0600)
//! <state>/master/masterd.lock    held by the running gnt-masterd
//! ```

use std::path::{Path, PathBuf};

use crate::pki::PkiPaths;

/// The master's files.
#[derive(Debug, Clone)]
pub struct MasterPaths {
    /// The state directory (the local node agent's).
    pub state_dir: PathBuf,
    /// `<state>/master`.
    pub master_dir: PathBuf,
    /// The PKI files.
    pub pki: PkiPaths,
    /// The master API socket.
    pub socket: PathBuf,
}

impl MasterPaths {
    /// The files for state directory `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        let master_dir = state_dir.join("master");
        Self {
            state_dir: state_dir.to_owned(),
            pki: PkiPaths::new(&master_dir),
            socket: master_dir.join("master.sock"),
            master_dir,
        }
    }
}
