//! Where a node's join token comes from: a file the operator wrote, read again at every
//! Join (so a new token can be dropped in after the node left its cluster, without a
//! restart), or a value given at start (the environment); never the command line, where
//! `ps` would show it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::join::{JoinToken, JoinTokenError};

/// Where the join token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// No token: Join is refused until the agent gets one.
    None,
    /// A file, read at every Join and whenever bootstrap mode starts; a missing file is no
    /// token.
    File(PathBuf),
    /// A token given at start (from the environment).
    Value(JoinToken),
}

/// A token that cannot be had from its source.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TokenSourceError {
    /// The token file cannot be read.
    #[error("cannot read the join token file {}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token is malformed.
    #[error("the join token from {origin} is invalid")]
    Malformed {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        #[source]
        source: JoinTokenError,
    },
}

impl Classify for TokenSourceError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::File { .. } => ErrorKind::Environment,
            Self::Malformed { .. } => ErrorKind::WrongInput,
        }
    }
}

impl TokenSource {
    /// The token, read now.
    pub fn load(&self) -> Result<Option<JoinToken>, TokenSourceError> {
        match self {
            Self::None => Ok(None),
            Self::Value(token) => Ok(Some(token.clone())),
            Self::File(path) => {
                let text = match fs::read_to_string(path) {
                    Ok(text) => text,
                    // Removed after the join (the unit's comment allows it), or not written
                    // yet: no token, not an error.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(source) => {
                        return Err(TokenSourceError::File {
                            path: path.clone(),
                            source,
                        });
                    }
                };
                text.parse()
                    .map(Some)
                    .map_err(|source| TokenSourceError::Malformed {
                        origin: path.display().to_string(),
                        source,
                    })
            }
        }
    }

    /// Warns when the token file is readable by other users than its owner.
    pub fn warn_if_exposed(&self) {
        if let Self::File(path) = self
            && fs::metadata(path).is_ok_and(|m| m.mode() & 0o077 != 0)
        {
            tracing::warn!(path = %path.display(), "the join token file is readable by other users; chmod 600 it");
        }
    }
}
