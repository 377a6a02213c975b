//! The policy both sides share: TLS 1.3 only, ALPN `h2`, ring with this project's suite
//! order, and the handshake timeout.

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;

/// How long a TLS handshake may take before the connection is dropped. Defaults to 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The only application protocol spoken: HTTP/2 (tonic clients insist on it).
pub(super) const ALPN_H2: &[u8] = b"h2";

/// The only protocol version spoken: TLS 1.3. Every peer is a gnt-rpc daemon, `gnt` or a
/// recent grpcurl, so nothing needs TLS 1.2, and its exporter (the join's channel binding)
/// is sound only with extended master secrets, which 1.3 makes moot.
pub const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The crypto provider of every configuration: ring, with the TLS 1.3 suites in the order
/// this project prefers. AES-128-GCM comes first (rustls' default puts AES-256 first): its
/// handshake hash is SHA-256, which CPUs with SHA extensions run in hardware while SHA-384
/// runs in software, and its bulk encryption does 10 AES rounds instead of 14. Both are
/// 128-bit-secure choices; `docs/benchmarks.md` has what the order saves.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    })
}
