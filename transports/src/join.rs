//! Join, both halves side by side: how a node with no cluster state becomes a member.
//!
//! - [`caller`](join): the master's half (`gnt node add`): prove the token, check the
//!   node's proof, certify the node's own key, send the offer;
//! - the node's half ([`JoinService`]): check the master's proof, prove the token in turn,
//!   check the offer and what only the host can tell, commit it;
//! - [`NodeState`]: the node's state directory, which a committed offer fills (and which
//!   `gnt cluster init` fills the same way for the master's own node), with the
//!   [`TokenLedger`] that makes a token work once on a node, and the [`MasterCopy`] a
//!   master candidate keeps;
//! - [`TokenSource`]: where the node's token comes from; `throttle`: failed Joins counted
//!   per source and in total, and their log lines limited.
//!
//! The token, its proofs and the offer are values in `gnt_core::join`; their wire forms are
//! converted in `gnt_core::wire`. The exchange is specified in
//! `proto/gnt/bootstrap/v1/bootstrap.proto`; what it defends against, in
//! `docs/security.md`.

mod answer;
mod caller;
mod ledger;
mod master_copy;
mod refusal;
mod source;
mod state;
mod throttle;
mod verify;

pub use answer::{AlreadyJoined, BARE_TOKEN_LIFETIME, JoinService, MemberReady};
pub use caller::{CertificateIssuer, IssueError, JoinError, JoinPlan, Joined, join};
pub use ledger::{LedgerEntry, LedgerError, TokenLedger, TokenUse};
pub use master_copy::{MASTER_COPY_FILE, MasterCopy, MasterCopyError, MasterCopyStore};
pub use refusal::{CertificateFault, ExchangeFault, JoinRefusal};
pub use source::{TokenSource, TokenSourceError};
pub use state::{MemberConf, Membership, Mode, NodeState, StateError};
