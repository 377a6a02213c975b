//! The values a Join is made of: the token both sides prove they hold ([`JoinToken`]), and
//! what the master offers the node ([`JoinOffer`]).
//!
//! The exchange itself, both halves side by side, is `gnt_transports::join`; the offer's
//! wire form and its checks are in [`wire`](crate::wire), like every other conversion.

mod offer;
mod token;

pub use offer::{JoinAccepted, JoinOffer};
pub use token::{ID_LEN, JoinToken, JoinTokenError, MASTER_LABEL, NODE_LABEL, SECRET_LEN, Side};
