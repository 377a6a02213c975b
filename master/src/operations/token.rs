//! Join tokens: `gnt node token create|list|delete`, and the check node add makes before
//! it contacts a node. The configuration keeps a token's id, the SHA-256 of the whole
//! token, its expiry and the node it added; never the secret. An unused token is kept for
//! [`EXPIRED_TOKEN_GRACE`] after it expires, so that `list` can say why an add was refused,
//! then purged at the next change; a used one stays as the record of its node's join.

use std::time::Duration;

use gnt_core::clock::unix_now;
use gnt_core::error::{Classify, ErrorKind};
use gnt_core::join::{JoinToken, JoinTokenError};

use super::utc;
use crate::config::{ClusterConfig, TokenRecord};
use crate::error::MasterError;
use crate::master::Master;

/// Shortest and longest lifetime of a token.
const LIFETIME: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(60)..=Duration::from_secs(30 * 86400);

/// How long an unused token stays listed after it expired.
pub const EXPIRED_TOKEN_GRACE: i64 = 7 * 86400;

/// Why a join token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token at all.
    #[error(transparent)]
    Malformed(#[from] JoinTokenError),
    /// No token given (only a re-add may go without one).
    #[error(
        "a new node joins with a token: create one with `gnt node token create`, start the node's gnt-noded with it and give it with --join-token"
    )]
    Missing,
    /// No token with that id.
    #[error("unknown join token '{0}'; create one with `gnt node token create`")]
    Unknown(String),
    /// The id exists but the secret is wrong.
    #[error("join token '{0}' does not match the stored one")]
    Mismatch(String),
    /// Expired.
    #[error("join token '{id}' expired at {at}; create a new one with `gnt node token create`")]
    Expired {
        /// The id.
        id: String,
        /// When, as UTC text.
        at: String,
    },
    /// Already used.
    #[error("join token '{id}' was already used to add {node}; tokens are single-use")]
    Used {
        /// The id.
        id: String,
        /// The node it added.
        node: String,
    },
    /// No token with that id to revoke.
    #[error("no join token '{0}' to revoke; `gnt node token list` shows the tokens")]
    NoSuchToken(String),
    /// A used token cannot be revoked.
    #[error(
        "join token '{id}' was used to add {node} already: it cannot join anything again, and its record stays; to take the node out, `gnt node remove {node}`"
    )]
    NothingToRevoke {
        /// The id.
        id: String,
        /// The node it added.
        node: String,
    },
}

impl Classify for TokenError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Malformed(e) => e.kind(),
            Self::NothingToRevoke { .. } => ErrorKind::WrongState,
            Self::NoSuchToken(_) => ErrorKind::UnknownEntity,
            Self::Missing => ErrorKind::WrongInput,
            _ => ErrorKind::Unauthenticated,
        }
    }
}

impl Master {
    /// Issues a single-use join token valid for `ttl`; returns it with its expiry.
    pub async fn create_token(&self, ttl: Duration) -> Result<(JoinToken, i64), MasterError> {
        if !LIFETIME.contains(&ttl) {
            return Err(MasterError::TokenLifetime {
                seconds: ttl.as_secs(),
            });
        }
        let expires_at = unix_now() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        // The token carries its expiry to the node, which enforces it whatever a caller
        // of Join claims.
        let token = JoinToken::generate()
            .map_err(TokenError::from)?
            .expiring_at(expires_at);
        let record = TokenRecord {
            id: token.id().to_owned(),
            sha256: token.hash_hex(),
            expires_at,
            used_by: None,
        };
        let ((), committed) = self
            .config
            .update(|c| {
                c.join_tokens.push(record);
                Ok::<_, MasterError>(())
            })
            .await?;
        tracing::info!(token = %token, expires = %utc(expires_at), serial = committed.serial, "join token created");
        // The set is unchanged, but its serial is the configuration's: without it every
        // node would lag after each token (the converger retries those that miss it).
        for warning in self.redistribute(&committed).await {
            tracing::warn!(%warning, "after creating a join token");
        }
        Ok((token, expires_at))
    }

    /// The tokens the configuration keeps, soonest expiry first.
    pub async fn list_tokens(&self) -> Vec<TokenRecord> {
        let mut tokens = self.config.snapshot().await.join_tokens;
        tokens.sort_by_key(|t| t.expires_at);
        tokens
    }

    /// Revokes unused token `id` (an unknown id is refused as such); returns the serial
    /// after it.
    pub async fn delete_token(&self, id: &str) -> Result<u64, MasterError> {
        let ((), committed) = self
            .config
            .update(|c| {
                let index = c
                    .join_tokens
                    .iter()
                    .position(|t| t.id == id)
                    .ok_or_else(|| TokenError::NoSuchToken(id.to_owned()))?;
                if let Some(node) = &c.join_tokens[index].used_by {
                    return Err(TokenError::NothingToRevoke {
                        id: id.to_owned(),
                        node: node.to_string(),
                    }
                    .into());
                }
                c.join_tokens.remove(index);
                Ok::<_, MasterError>(())
            })
            .await?;
        tracing::info!(token = id, serial = committed.serial, "join token revoked");
        for warning in self.redistribute(&committed).await {
            tracing::warn!(%warning, "after revoking a join token");
        }
        Ok(committed.serial)
    }
}

/// The stored record of `token`, if the token may join a node now.
pub(crate) fn check_token<'a>(
    config: &'a ClusterConfig,
    token: &JoinToken,
) -> Result<&'a TokenRecord, TokenError> {
    let record = config
        .join_tokens
        .iter()
        .find(|t| t.id == token.id())
        .ok_or_else(|| TokenError::Unknown(token.id().to_owned()))?;
    // Digests, not secrets, are compared: timing could only tell how many leading digest
    // bytes match, which brings no one closer to a token with that digest.
    if token.hash_hex() != record.sha256 {
        return Err(TokenError::Mismatch(token.id().to_owned()));
    }
    if let Some(node) = &record.used_by {
        return Err(TokenError::Used {
            id: record.id.clone(),
            node: node.to_string(),
        });
    }
    if record.expires_at <= unix_now() {
        return Err(TokenError::Expired {
            id: record.id.clone(),
            at: utc(record.expires_at),
        });
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gnt_core::netutils::Hostname;
    use gnt_core::policy::IpPolicy;

    use super::*;

    fn config_with(tokens: Vec<TokenRecord>) -> ClusterConfig {
        ClusterConfig {
            serial: 1,
            cluster_name: Hostname::parse("c.example").unwrap(),
            policy: IpPolicy::Ipv4,
            master_node: Hostname::parse("m.example").unwrap(),
            master_ip: "192.0.2.100".parse().unwrap(),
            master_netmask: 32,
            master_netdev: String::new(),
            node_port: 1811,
            master_epoch: 1,
            candidate_pool_size: 10,
            certificate_validity_secs: crate::pki::DEFAULT_CERTIFICATE_VALIDITY.as_secs(),
            ca_validity_secs: crate::pki::DEFAULT_CA_VALIDITY.as_secs(),
            nodes: BTreeMap::new(),
            join_tokens: tokens,
            rollover: None,
            created_at: 0,
            modified_at: 0,
        }
    }

    fn record(token: &JoinToken, expires_at: i64, used_by: Option<&str>) -> TokenRecord {
        TokenRecord {
            id: token.id().to_owned(),
            sha256: token.hash_hex(),
            expires_at,
            used_by: used_by.map(|n| Hostname::parse(n).unwrap()),
        }
    }

    #[test]
    fn tokens_are_checked_for_id_secret_use_and_expiry() {
        let token: JoinToken = "abcdef.0123456789abcdef".parse().unwrap();
        let future = unix_now() + 3600;
        let fresh = config_with(vec![record(&token, future, None)]);
        assert_eq!(check_token(&fresh, &token).unwrap().expires_at, future);

        let other: JoinToken = "zzzzzz.0123456789abcdef".parse().unwrap();
        let unknown = check_token(&fresh, &other).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unknown join token 'zzzzzz'; create one with `gnt node token create`"
        );

        let forged: JoinToken = "abcdef.ffffffffffffffff".parse().unwrap();
        let mismatch = check_token(&fresh, &forged).unwrap_err();
        assert_eq!(mismatch, TokenError::Mismatch("abcdef".to_owned()));

        let used = check_token(
            &config_with(vec![record(&token, future, Some("node1"))]),
            &token,
        )
        .unwrap_err();
        assert_eq!(
            used.to_string(),
            "join token 'abcdef' was already used to add node1; tokens are single-use"
        );

        let expired =
            check_token(&config_with(vec![record(&token, 1000, None)]), &token).unwrap_err();
        assert_eq!(
            expired.to_string(),
            "join token 'abcdef' expired at 1970-01-01T00:16:40Z; create a new one with `gnt node token create`"
        );
    }
}
