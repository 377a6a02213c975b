//! The directory of job files: each job written atomically, all of them read back at a
//! start, the oldest ended ones pruned.

use std::path::{Path, PathBuf};

use gnt_core::error::{Chain, Classify};
use gnt_core::fs_atomic::{self, FsError};

use super::JobRecord;

/// Whether `path` is a temporary file of an atomic write (`.<name>.tmp-<pid>-<n>`).
fn is_temporary(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.') && name.contains(".tmp-"))
}

/// The directory of job files.
#[derive(Debug, Clone)]
pub struct JobStore {
    dir: PathBuf,
}

/// A job file that cannot be read or written.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum JobStoreError {
    /// The file system failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A file does not parse.
    #[error("the job file {} is corrupt; move it out of that directory to start without it", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
}

impl Classify for JobStoreError {
    fn kind(&self) -> gnt_core::ErrorKind {
        match self {
            Self::Fs(e) => e.kind(),
            Self::Corrupt { .. } => gnt_core::ErrorKind::Environment,
        }
    }
}

impl JobStore {
    /// The jobs of master directory `master_dir`.
    pub fn new(master_dir: &Path) -> Self {
        Self {
            dir: master_dir.join("jobs"),
        }
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:010}.json"))
    }

    /// Writes `record`, atomically and durably.
    pub fn save(&self, record: &JobRecord) -> Result<(), JobStoreError> {
        fs_atomic::ensure_dir(&self.dir, 0o700)?;
        let path = self.path(record.id);
        let mut text =
            serde_json::to_vec_pretty(record).map_err(|source| JobStoreError::Corrupt {
                path: path.clone(),
                source,
            })?;
        text.push(b'\n');
        fs_atomic::write_atomic(&path, &text, 0o600)?;
        Ok(())
    }

    /// Every job, oldest first. Only reads: anyone may call it while the master writes.
    pub fn load_all(&self) -> Result<Vec<JobRecord>, JobStoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FsError::new("list", &self.dir, e).into()),
        };
        let mut jobs = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| FsError::new("list", &self.dir, e))?
                .path();
            // A temporary file is a write in progress or one a kill interrupted: either
            // way the record it replaces is whole.
            if is_temporary(&path) || path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read(&path).map_err(|e| FsError::new("read", &path, e))?;
            let record: JobRecord = serde_json::from_slice(&text)
                .map_err(|source| JobStoreError::Corrupt { path, source })?;
            jobs.push(record);
        }
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    /// Removes the temporary files of writes a kill interrupted; returns how many. Only for
    /// the master daemon, holding the master's lock, before its first write: a temporary
    /// file of a write in progress looks the same, and removing it fails that write (a
    /// reader that did so left a job "running" for good).
    pub fn remove_leftovers(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for path in entries.filter_map(|entry| entry.ok().map(|e| e.path())) {
            if !is_temporary(&path) {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) => {
                    let error = FsError::new("remove", &path, e);
                    tracing::warn!(error = %Chain(&error), "cannot remove the leftover of an interrupted job write");
                }
            }
        }
        removed
    }

    /// Removes the files of ended jobs beyond the newest `keep`.
    pub fn prune(&self, jobs: &[JobRecord], keep: usize) -> Vec<u64> {
        let ended: Vec<&JobRecord> = jobs.iter().filter(|j| j.state.ended()).collect();
        let excess = ended.len().saturating_sub(keep);
        ended
            .iter()
            .take(excess)
            .filter(|job| std::fs::remove_file(self.path(job.id)).is_ok())
            .map(|job| job.id)
            .collect()
    }
}
