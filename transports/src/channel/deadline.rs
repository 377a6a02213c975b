//! A call's `grpc-timeout` header (gRPC over HTTP/2: at most 8 digits and a unit), read so
//! that the channel enforces it on its side too: a server that has stopped answering
//! cannot enforce anything.

use std::time::Duration;

/// The timeout `headers` ask for, if any and well formed.
pub(super) fn of(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(value: &str) -> Option<Duration> {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", value.parse().unwrap());
        of(&headers)
    }

    #[test]
    fn every_unit_of_the_spec_is_read() {
        assert_eq!(timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(timeout("60S"), Some(Duration::from_secs(60)));
        assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
    }

    #[test]
    fn malformed_values_set_no_deadline() {
        for bad in ["", "S", "123456789S", "10x", "-1S", "1.5S", "10"] {
            assert_eq!(timeout(bad), None, "{bad:?}");
        }
        assert_eq!(of(&http::HeaderMap::new()), None);
    }

    #[test]
    fn tonic_writes_what_is_read_back() {
        let mut request = tonic::Request::new(());
        request.set_timeout(Duration::from_secs(60));
        let headers = request.metadata().clone().into_headers();
        assert_eq!(of(&headers), Some(Duration::from_secs(60)));
    }
}
