//! Join tokens, and the proofs that bind them to one TLS session.
//!
//! A token is `<id>.<secret>`: 6 and 16 characters of `a-z0-9` (kubeadm's shape), about
//! 82 bits of secret, followed by `.<expiry>` (seconds since the Unix epoch) as
//! `gnt node token create` prints it. The master stores only a hash of `<id>.<secret>`; the
//! operator hands the whole token to the new node's agent in a file or the environment, so
//! the node learns the expiry from the operator, never from whoever calls Join.
//!
//! The secret never crosses the wire. Each side proves it holds the token with an
//! HMAC-SHA256, keyed by the secret, over a label naming the side and the TLS exporter value
//! of the connection (gnt-transports' `TlsPeer::channel_binding`): a proof is worth nothing
//! on any other connection, so a recorded Join cannot be replayed and a machine in the
//! middle (which has two sessions, with two exporter values) cannot relay one. The labels
//! differ, so one side's proof is never the other's.

use std::fmt;
use std::str::FromStr;

use ring::rand::SecureRandom;

use crate::error::{Classify, ErrorKind};

/// Length of the public id.
pub const ID_LEN: usize = 6;
/// Length of the secret.
pub const SECRET_LEN: usize = 16;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// HMAC label of the master's proof.
pub const MASTER_LABEL: &[u8] = b"gnt join v1 master";
/// HMAC label of the node's proof.
pub const NODE_LABEL: &[u8] = b"gnt join v1 node";

/// A join token. Its `Display` and `Debug` show the id only; the secret is reachable only
/// through [`JoinToken::expose`], for the places that hand it to the operator or the master.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    id: String,
    secret: String,
    expires_at: Option<i64>,
}

/// Which side a proof comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The master, calling Join.
    Master,
    /// The node, answering it.
    Node,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Master => MASTER_LABEL,
            Self::Node => NODE_LABEL,
        }
    }
}

/// A token that does not parse, or a proof that does not verify.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinTokenError {
    /// Not `<6 chars>.<16 chars>` of `a-z0-9`.
    #[error(
        "invalid join token: expected 6 and 16 lower-case letters or digits separated by a dot, and its expiry after another dot, like abcdef.0123456789abcdef.1767225600"
    )]
    Malformed,
    /// The system's random generator failed.
    #[error("cannot generate a join token: the system random generator failed")]
    Random,
}

impl Classify for JoinTokenError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Malformed => ErrorKind::WrongInput,
            Self::Random => ErrorKind::Environment,
        }
    }
}

impl JoinToken {
    /// A fresh random token.
    pub fn generate() -> Result<Self, JoinTokenError> {
        let rng = ring::rand::SystemRandom::new();
        let mut random = [0u8; ID_LEN + SECRET_LEN];
        rng.fill(&mut random).map_err(|_| JoinTokenError::Random)?;
        // 256 is not a multiple of 36; the bias this leaves (under 1 %) costs well under a
        // bit of the ~82-bit secret.
        let text: String = random
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect();
        Ok(Self {
            id: text[..ID_LEN].to_owned(),
            secret: text[ID_LEN..].to_owned(),
            expires_at: None,
        })
    }

    /// The same token, carrying its expiry (seconds since the Unix epoch).
    pub fn expiring_at(self, expires_at: i64) -> Self {
        Self {
            expires_at: Some(expires_at),
            ..self
        }
    }

    /// When the token expires, if it carries its expiry.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    /// The public id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The whole token, `<id>.<secret>` and `.<expiry>` when it carries one: only for
    /// showing it to the operator, and for `gnt node add` to send the operator's copy.
    pub fn expose(&self) -> String {
        match self.expires_at {
            Some(at) => format!("{}.{}.{at}", self.id, self.secret),
            None => format!("{}.{}", self.id, self.secret),
        }
    }

    /// SHA-256 of `<id>.<secret>`, as the master stores it (the expiry is not part of it:
    /// the master keeps its own).
    pub fn hash(&self) -> [u8; 32] {
        let credential = format!("{}.{}", self.id, self.secret);
        let digest = ring::digest::digest(&ring::digest::SHA256, credential.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }

    /// [`hash`](Self::hash) as lower-case hex: the form the master's configuration keeps.
    pub fn hash_hex(&self) -> String {
        crate::digest::hex(&self.hash())
    }

    /// The proof `side` sends on the TLS session with exporter value `channel_binding`.
    pub fn proof(&self, side: Side, channel_binding: &[u8]) -> Vec<u8> {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.secret.as_bytes());
        let mut context = ring::hmac::Context::with_key(&key);
        context.update(side.label());
        context.update(channel_binding);
        context.sign().as_ref().to_vec()
    }

    /// Whether `proof` is `side`'s proof for this session (constant-time comparison).
    pub fn verify(&self, side: Side, channel_binding: &[u8], proof: &[u8]) -> bool {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.secret.as_bytes());
        let message = [side.label(), channel_binding].concat();
        ring::hmac::verify(&key, &message, proof).is_ok()
    }
}

impl FromStr for JoinToken {
    type Err = JoinTokenError;

    /// Parses `<id>.<secret>` or `<id>.<secret>.<expiry>`; surrounding white space (a
    /// file's newline) is ignored.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.trim().split('.');
        let (Some(id), Some(secret), expiry, None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoinTokenError::Malformed);
        };
        let valid =
            |part: &str, len| part.len() == len && part.bytes().all(|b| ALPHABET.contains(&b));
        if !(valid(id, ID_LEN) && valid(secret, SECRET_LEN)) {
            return Err(JoinTokenError::Malformed);
        }
        let expires_at = match expiry {
            None => None,
            // Digits only: no sign, no space, nothing `i64::from_str` would also take.
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Some(digits.parse().map_err(|_| JoinTokenError::Malformed)?)
            }
            Some(_) => return Err(JoinTokenError::Malformed),
        };
        Ok(Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
            expires_at,
        })
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.<secret>", self.id)
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn tokens_parse_in_kubeadms_shape_only() {
        let token: JoinToken = "abcdef.0123456789abcdef\n".parse().unwrap();
        assert_eq!(token.id(), "abcdef");
        assert_eq!(token.expose(), "abcdef.0123456789abcdef");
        for bad in [
            "",
            "abcdef",
            "abcdef.",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcdeg!",
            "abc-ef.0123456789abcdef",
            "abcdef:0123456789abcdef",
        ] {
            assert_eq!(
                bad.parse::<JoinToken>(),
                Err(JoinTokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_token_may_carry_its_expiry_which_is_not_part_of_its_hash() {
        let bare: JoinToken = "abcdef.0123456789abcdef".parse().unwrap();
        let dated: JoinToken = "abcdef.0123456789abcdef.1767225600\n".parse().unwrap();
        assert_eq!(bare.expires_at(), None);
        assert_eq!(dated.expires_at(), Some(1_767_225_600));
        assert_eq!(dated.expose(), "abcdef.0123456789abcdef.1767225600");
        assert_eq!(bare.clone().expiring_at(1_767_225_600), dated);
        assert_eq!(
            bare.hash(),
            dated.hash(),
            "the master's record matches either form"
        );
        for bad in [
            "abcdef.0123456789abcdef.",
            "abcdef.0123456789abcdef.+1",
            "abcdef.0123456789abcdef.-1",
            "abcdef.0123456789abcdef.1 2",
            "abcdef.0123456789abcdef.1.2",
            "abcdef.0123456789abcdef.99999999999999999999",
        ] {
            assert_eq!(
                bad.parse::<JoinToken>(),
                Err(JoinTokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_secret_never_shows_in_display_or_debug() {
        let token: JoinToken = "abcdef.0123456789abcdef".parse().unwrap();
        assert_eq!(token.to_string(), "abcdef.<secret>");
        let debug = format!("{token:?}");
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
    }

    #[test]
    fn generated_tokens_are_valid_and_different() {
        let a = JoinToken::generate().unwrap();
        let b = JoinToken::generate().unwrap();
        assert_eq!(a.expose().parse::<JoinToken>().unwrap(), a);
        assert_ne!(a, b);
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash_hex().len(), 64);
        assert_eq!(
            "abcdef.0123456789abcdef"
                .parse::<JoinToken>()
                .unwrap()
                .hash_hex(),
            // printf abcdef.0123456789abcdef | sha256sum
            "a4b8b245ab28bc4f72dcaa0d9ba9f73d6488fa758a2a5cb55ecb11511f002f80"
        );
    }

    #[test]
    fn proofs_verify_only_for_their_side_session_and_token() {
        let token: JoinToken = "abcdef.0123456789abcdef".parse().unwrap();
        let other: JoinToken = "abcdef.fedcba9876543210".parse().unwrap();
        let session = [7u8; 32];
        let proof = token.proof(Side::Master, &session);
        assert!(token.verify(Side::Master, &session, &proof));
        assert!(
            !token.verify(Side::Node, &session, &proof),
            "sides are not interchangeable"
        );
        assert!(
            !token.verify(Side::Master, &[8u8; 32], &proof),
            "bound to the session"
        );
        assert!(
            !other.verify(Side::Master, &session, &proof),
            "bound to the secret"
        );
        assert!(!token.verify(Side::Master, &session, &proof[..31]));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,40}") {
            let _ = text.parse::<JoinToken>();
        }
    }
}
