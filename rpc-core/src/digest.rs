//! SHA-256 digests, and the fingerprints that name certificates by theirs: written as
//! `openssl x509 -fingerprint` prints them, read back strictly.

use std::fmt::Write as _;

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Lower-case hex, no separators: how `UploadFile` states a file's SHA-256, and how the
/// configuration keeps a token's hash.
pub fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// Colon-separated upper-case hex pairs, as `openssl x509 -fingerprint` prints them.
pub fn fingerprint(digest: &[u8]) -> String {
    let mut text = String::with_capacity(digest.len() * 3);
    for (i, byte) in digest.iter().enumerate() {
        if i > 0 {
            text.push(':');
        }
        let _ = write!(text, "{byte:02X}");
    }
    text
}

/// The SHA-256 digest a fingerprint stands for: 32 pairs of hexadecimal digits, separated
/// by colons as [`fingerprint`] writes them or not at all, in either case. `None` for
/// anything else (a sign, a space, a short or long text).
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex: Vec<u8> = if text.contains(':') {
        let pairs: Vec<&str> = text.split(':').collect();
        if pairs.iter().any(|p| p.len() != 2) {
            return None;
        }
        pairs.concat().into_bytes()
    } else {
        text.as_bytes().to_vec()
    };
    if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let value = |digit: u8| match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    };
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.chunks(2)) {
        *byte = value(pair[0]) << 4 | value(pair[1]);
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_pairs_without_separators() {
        assert_eq!(hex(&[0x00, 0xab, 0x0f, 0xff]), "00ab0fff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn fingerprints_parse_back_to_their_digest_and_nothing_else_parses() {
        let digest: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        let text = fingerprint(&digest);
        assert_eq!(text.len(), 95);
        assert_eq!(parse_fingerprint(&text), Some(digest));
        assert_eq!(parse_fingerprint(&text.to_lowercase()), Some(digest));
        assert_eq!(parse_fingerprint(&text.replace(':', "")), Some(digest));
        for bad in [
            "",
            "AA:BB",
            &text[..94],
            &format!("{text}:00"),
            &text.replace("00", "0G"),
            &format!("+{}", &text.replace(':', "")[1..]),
        ] {
            assert_eq!(parse_fingerprint(bad), None, "{bad}");
        }
        assert_eq!(parse_fingerprint(&"a:".repeat(31).replace(':', "b:")), None);
        assert_eq!(sha256(b"").len(), 32);
    }
}
