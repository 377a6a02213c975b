//! TLS over any transport, with rustls and its ring provider only (no C crypto build).
//!
//! - [`ServerTls`]: the server side of every listener kind: certificate and key from PEM,
//!   client certificates checked against the cluster CA when [`ClientAuth`] asks, ALPN `h2`,
//!   a handshake timeout. The handshake runs in the listener's accept path, so the verified
//!   peer identity and the session's exporter value reach services in [`PeerInfo`].
//! - [`ClientTls`]: the client side of every connector kind: the cluster CA as the only
//!   trust anchor, an optional client certificate, ALPN `h2`, and the last session's peer
//!   certificates and exporter value for channel binding.
//!
//! Configuration errors name the file: a missing file, a file without PEM, a key that does
//! not belong to its certificate.
//!
//! [`PeerInfo`]: crate::PeerInfo

use std::fmt;
use std::path::Path;

use crate::error::TlsConfigError;

mod client;
mod pair_files;
mod pem;
mod policy;
mod server;
mod session;

pub use client::ClientTls;
pub(crate) use client::{NotAMember, is_not_a_member};
pub use pair_files::{KeyChoice, PairError, PairFiles};
pub use pem::{Identity, Pem, check_issued_by};
pub use policy::{DEFAULT_HANDSHAKE_TIMEOUT, PROTOCOL_VERSIONS, provider};
pub use server::{ClientAuth, ServerTls};

fn invalid(what: &'static str, path: &Path, err: impl fmt::Display) -> TlsConfigError {
    TlsConfigError::Invalid {
        what,
        path: path.to_owned(),
        reason: err.to_string(),
    }
}

/// The `Debug` of either side: its name and one setting, the rest (the rustls
/// configuration, session state) elided, so both sides leave the same things out.
fn debug_setting(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    setting: &str,
    value: &dyn fmt::Debug,
) -> fmt::Result {
    f.debug_struct(name)
        .field(setting, value)
        .finish_non_exhaustive()
}
