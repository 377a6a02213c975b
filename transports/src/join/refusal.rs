//! Why a node refused a Join: each refusal names what is wrong and what to do, and maps to
//! the status the master (and its operator) sees.

use std::net::IpAddr;

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::wire::WireError;

use super::ledger::LedgerError;
use super::source::TokenSourceError;
use super::state::StateError;

/// Why a Join was refused.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum JoinRefusal {
    /// The agent was started without a token.
    #[error(
        "this node has no join token; give gnt-noded one with --join-token-file or GNT_JOIN_TOKEN"
    )]
    NoToken,
    /// The token the agent was given cannot be read.
    #[error("this node's join token cannot be read")]
    TokenUnreadable(#[source] TokenSourceError),
    /// The master's proof does not verify: another token id, or another secret (one
    /// refusal for both, so that a guesser learns nothing about the id).
    #[error(
        "the master's join token proof is invalid for this connection (wrong token, or a replayed or relayed request)"
    )]
    BadProof,
    /// The token was used on this node before: a token works once.
    #[error(
        "join token '{id}' was already used on this node (to join cluster '{cluster}'); a token works once: give gnt-noded a new one from `gnt node token create`"
    )]
    AlreadyUsed {
        /// The token's id.
        id: String,
        /// The cluster it joined.
        cluster: String,
    },
    /// The master claims a later expiry than the node's copy of the token allows.
    #[error(
        "the master claims the join token expires at {claimed}, later than this node allows ({limit}, seconds since the epoch)"
    )]
    ExpiryBeyond {
        /// The master's claim.
        claimed: i64,
        /// The node's limit.
        limit: i64,
    },
    /// The token has expired.
    #[error("the join token expired {ago}s ago; create a new one with `gnt node token create`")]
    Expired {
        /// Seconds since it expired.
        ago: u64,
    },
    /// Too many failed Joins from this source, or from all sources.
    #[error("too many failed join attempts; try again in {retry_after}s")]
    Throttled {
        /// Seconds until the next attempt may be made.
        retry_after: u64,
    },
    /// The token ledger cannot be read or written.
    #[error("cannot check or record the join token's use")]
    Ledger(#[source] LedgerError),
    /// The exchange did not follow the protocol.
    #[error("join protocol error: {0}")]
    Exchange(ExchangeFault),
    /// The connection is not TLS (cannot happen on a bootstrap listener).
    #[error("Join needs a TLS connection")]
    NotTls,
    /// The offer does not hold together.
    #[error(transparent)]
    Offer(#[from] WireError),
    /// The node does not own an address it was given.
    #[error(
        "this node does not have its {role} address {addr}; configure it on an interface first"
    )]
    NotOwned {
        /// `primary`, `secondary` or `bind`.
        role: &'static str,
        /// The address.
        addr: IpAddr,
    },
    /// The state belongs to another cluster.
    #[error("this node holds state of cluster '{existing}', not '{offered}'; remove it first")]
    ClusterConflict {
        /// The cluster in the state directory.
        existing: String,
        /// The cluster of the request.
        offered: String,
    },
    /// The certificate is not the CA's, not for this node, or not for this node's key.
    #[error("the node certificate is unacceptable: {0}")]
    Certificate(#[from] CertificateFault),
    /// The node already joined.
    #[error(
        "this node already belongs to cluster '{0}'; remove it from that cluster first (`gnt node remove`)"
    )]
    AlreadyJoined(String),
    /// Writing the state failed; the token is spent all the same.
    #[error(
        "cannot store the cluster state (the join token is spent: give gnt-noded a new one once this is fixed)"
    )]
    Storage(#[source] StateError),
}

impl JoinRefusal {
    /// Whether the refusal is a failed attempt (no token held, a wrong one, a spent or
    /// expired one, or an exchange out of order or too slow), which the throttle counts.
    pub(crate) fn is_failed_attempt(&self) -> bool {
        matches!(
            self,
            Self::NoToken
                | Self::BadProof
                | Self::AlreadyUsed { .. }
                | Self::ExpiryBeyond { .. }
                | Self::Expired { .. }
                | Self::Exchange(_)
        )
    }

    /// Whether the caller proved it holds the token before being refused: someone who saw
    /// the token is trying it, which deserves log lines of its own.
    pub(crate) fn is_by_token_holder(&self) -> bool {
        matches!(
            self,
            Self::AlreadyUsed { .. } | Self::ExpiryBeyond { .. } | Self::Expired { .. }
        )
    }
}

impl Classify for JoinRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoToken | Self::ClusterConflict { .. } => ErrorKind::WrongState,
            Self::BadProof
            | Self::AlreadyUsed { .. }
            | Self::ExpiryBeyond { .. }
            | Self::Expired { .. }
            | Self::NotTls => ErrorKind::Unauthenticated,
            Self::Throttled { .. } => ErrorKind::Unavailable,
            Self::TokenUnreadable(e) => e.kind(),
            Self::Ledger(e) => e.kind(),
            Self::Exchange(_) | Self::Certificate(_) => ErrorKind::WrongInput,
            Self::Offer(e) => e.kind(),
            Self::NotOwned { .. } | Self::Storage(_) => ErrorKind::Environment,
            Self::AlreadyJoined(_) => ErrorKind::AlreadyExists,
        }
    }
}

/// How the master broke the exchange's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeFault {
    /// Something else came before the hello.
    #[error("expected hello first")]
    HelloFirst,
    /// Something else came after the hello.
    #[error("expected the request after hello")]
    RequestAfterHello,
    /// A message with no step.
    #[error("empty message")]
    EmptyMessage,
    /// The master ended its stream early.
    #[error("the master closed the exchange")]
    MasterClosed,
    /// The master stopped reading.
    #[error("the master went away")]
    MasterGone,
    /// The whole exchange took too long.
    #[error("the exchange took longer than 30 s")]
    TooSlow,
    /// No hello in time.
    #[error("no hello within 5 s")]
    NoHello,
}

/// Why the offered node certificate is refused.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CertificateFault {
    /// The CA certificate is not PEM.
    #[error("the CA certificate is not PEM")]
    CaNotPem(#[source] rustls::pki_types::pem::Error),
    /// rustls refuses the CA certificate.
    #[error("the CA certificate is invalid")]
    CaInvalid(#[source] rustls::Error),
    /// No verifier can be built on the CA certificate.
    #[error("the CA certificate is unusable")]
    CaUnusable(#[source] rustls::client::VerifierBuilderError),
    /// The node certificate is not PEM.
    #[error("not PEM")]
    NotPem(#[source] rustls::pki_types::pem::Error),
    /// The PEM holds no certificate.
    #[error("no certificate in it")]
    Empty,
    /// The node's name cannot be a certificate's name.
    #[error("the node name '{0}' cannot be verified against a certificate")]
    Name(String),
    /// It does not chain to the CA, or is not for this node's name.
    #[error("it does not verify for '{node}' against the CA")]
    Unverified {
        /// The node's name.
        node: String,
        /// What rustls said.
        source: rustls::Error,
    },
    /// It verifies but does not parse as X.509 (a defect of the issuer).
    #[error("it does not parse")]
    Unparsable(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// It is not for the key this node holds.
    #[error("it is for another key than this node's")]
    OtherKey,
}
