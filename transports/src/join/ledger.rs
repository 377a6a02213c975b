//! The node's memory of join tokens, kept across leaving a cluster and restarts: when it
//! first saw each token, and the Join each one was used for. A token works at most once on
//! a node, whoever calls with it and whatever expiry they claim.
//!
//! One line per token in `<state>/join-ledger` (0600, rewritten atomically), hashes only:
//! `<sha256 of id.secret> <first seen> <used at or -> <cluster or ->`. The file is not part
//! of the cluster state `LeaveCluster` wipes. A ledger that cannot be read refuses every
//! Join (fail closed): the node cannot tell a fresh token from a spent one without it.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::fs_atomic::{self, FsError};
use gnt_core::join::JoinToken;

/// What the ledger knows of one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// When this node first saw the token (loaded it), seconds since the Unix epoch.
    pub first_seen: i64,
    /// The Join it was used for, if any.
    pub used: Option<TokenUse>,
}

/// The one Join a token was used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUse {
    /// When, seconds since the Unix epoch.
    pub at: i64,
    /// The cluster joined.
    pub cluster: String,
}

/// A ledger that cannot be read or written.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The file cannot be read or written.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A line does not parse.
    #[error("the join token ledger {}, line {line}, is corrupt; every Join is refused until it is repaired (a line removed makes its token usable on this node again)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

impl Classify for LedgerError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Fs(e) => e.kind(),
            Self::Corrupt { .. } => ErrorKind::Environment,
        }
    }
}

/// The ledger file.
#[derive(Debug)]
pub struct TokenLedger {
    path: PathBuf,
    /// Serialises read-modify-write cycles of this process.
    lock: Mutex<()>,
}

type Entries = Vec<(String, LedgerEntry)>;

impl TokenLedger {
    /// The ledger in file `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    /// What the ledger knows of `token`, recording `now` as its first sighting if it is new.
    pub fn observe(&self, token: &JoinToken, now: i64) -> Result<LedgerEntry, LedgerError> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut entries = self.read()?;
        let key = token.hash_hex();
        if let Some((_, entry)) = entries.iter().find(|(k, _)| *k == key) {
            return Ok(entry.clone());
        }
        let entry = LedgerEntry {
            first_seen: now,
            used: None,
        };
        entries.push((key, entry.clone()));
        self.write(&entries)?;
        Ok(entry)
    }

    /// Records that `token` joined `cluster` at `now`.
    pub fn mark_used(&self, token: &JoinToken, cluster: &str, now: i64) -> Result<(), LedgerError> {
        self.set_use(
            token,
            Some(TokenUse {
                at: now,
                cluster: cluster.to_owned(),
            }),
            now,
        )
    }

    /// Whether any token is recorded as having joined `cluster`: a member whose ledger does
    /// not know how it joined (it joined before the ledger existed, or the file was lost)
    /// spends the token it holds, the one it must have joined with.
    pub fn knows_join_of(&self, cluster: &str) -> Result<bool, LedgerError> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self
            .read()?
            .iter()
            .any(|(_, entry)| entry.used.as_ref().is_some_and(|u| u.cluster == cluster)))
    }

    fn set_use(
        &self,
        token: &JoinToken,
        used: Option<TokenUse>,
        now: i64,
    ) -> Result<(), LedgerError> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut entries = self.read()?;
        let key = token.hash_hex();
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, entry)) => entry.used = used,
            None => entries.push((
                key,
                LedgerEntry {
                    first_seen: now,
                    used,
                },
            )),
        }
        self.write(&entries)
    }

    fn read(&self) -> Result<Entries, LedgerError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FsError::new("read", &self.path, e).into()),
        };
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                parse_line(line).ok_or_else(|| LedgerError::Corrupt {
                    path: self.path.clone(),
                    line: i + 1,
                })
            })
            .collect()
    }

    fn write(&self, entries: &Entries) -> Result<(), LedgerError> {
        let mut text = String::new();
        for (key, entry) in entries {
            let (at, cluster) = match &entry.used {
                Some(used) => (used.at.to_string(), used.cluster.as_str()),
                None => ("-".to_owned(), "-"),
            };
            let _ = writeln!(text, "{key} {} {at} {cluster}", entry.first_seen);
        }
        fs_atomic::write_atomic(&self.path, text.as_bytes(), 0o600)?;
        Ok(())
    }

    /// The ledger's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn parse_line(line: &str) -> Option<(String, LedgerEntry)> {
    let mut fields = line.split_whitespace();
    let (Some(key), Some(first_seen), Some(at), Some(cluster), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return None;
    };
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let used = match (at, cluster) {
        ("-", "-") => None,
        (at, cluster) => Some(TokenUse {
            at: at.parse().ok()?,
            cluster: cluster.to_owned(),
        }),
    };
    Some((
        key.to_owned(),
        LedgerEntry {
            first_seen: first_seen.parse().ok()?,
            used,
        },
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn a_token_is_seen_once_used_once_and_remembered_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("join-ledger");
        let token: JoinToken = "abcdef.0123456789abcdef".parse().unwrap();
        let ledger = TokenLedger::new(&path);
        let first = ledger.observe(&token, 100).unwrap();
        assert_eq!(first.first_seen, 100);
        assert_eq!(
            ledger.observe(&token, 200).unwrap(),
            first,
            "first sighting kept"
        );
        ledger
            .mark_used(&token, "cluster.example.com", 300)
            .unwrap();
        let again = TokenLedger::new(&path).observe(&token, 400).unwrap();
        assert_eq!(
            again.used,
            Some(TokenUse {
                at: 300,
                cluster: "cluster.example.com".to_owned()
            })
        );
        // The same credential with an expiry attached is the same token.
        let dated = token.expiring_at(5000);
        assert!(ledger.observe(&dated, 500).unwrap().used.is_some());
        assert!(ledger.knows_join_of("cluster.example.com").unwrap());
        assert!(!ledger.knows_join_of("other.example.com").unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("0123456789abcdef"),
            "no secret on disk: {text}"
        );
    }

    #[test]
    fn a_corrupt_ledger_refuses_rather_than_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("join-ledger");
        std::fs::write(&path, "not a ledger line\n").unwrap();
        let token: JoinToken = "abcdef.0123456789abcdef".parse().unwrap();
        let err = TokenLedger::new(&path).observe(&token, 1).unwrap_err();
        assert!(err.to_string().contains("line 1, is corrupt"), "{err}");
    }
}
