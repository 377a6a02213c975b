//! Certificate lifetimes: how long `gnt cluster init` makes the CA and the certificates it
//! issues valid ([`Lifetimes`]), and a certificate's validity read back from its PEM
//! ([`certificate_validity`]), for `cluster verify`'s expiry check and for renewal.
//!
//! Why the defaults are what they are is in `docs/security.md`, "Certificate lifetimes".

use std::fmt;
use std::time::Duration;

use gnt_core::error::{Classify, ErrorKind};
use gnt_transports::Pem;
use rustls::pki_types::CertificateDer;

use super::PkiError;

const DAY: u64 = 86_400;

/// How long node and master certificates are valid in a cluster initialised now, unless
/// `--certificate-validity` says otherwise: 1 year, since they are renewed automatically
/// before they expire.
pub const DEFAULT_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(365 * DAY);
/// How long the cluster CA is valid, unless `--ca-validity` says otherwise: 10 years.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * DAY);
/// What a cluster initialised before lifetimes were configurable issued certificates for
/// (5 years, Ganeti's 1825 days): its configuration has no `certificate_validity_secs`.
pub const LEGACY_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(5 * 365 * DAY);
/// The CA lifetime of such a cluster: 10 years.
pub const LEGACY_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * DAY);

/// The shortest lifetime accepted: a minute, renewed after 40 s, which a lab or a test
/// can watch happen. Lifetimes under a day make sense nowhere else (every renewal rewrites
/// every node's key, and verify calls anything under 7 days an error); shorter than a
/// minute leaves no time to renew at all.
const MIN_VALIDITY: Duration = Duration::from_secs(60);
/// The longest: 100 years (an X.509 date ends in 9999, and nothing should live longer
/// than the hardware it runs on).
const MAX_VALIDITY: Duration = Duration::from_secs(36_500 * DAY);

/// The lifetimes of a cluster's CA and of the certificates it issues: each between a minute
/// and 100 years, the certificates' shorter than the CA's (a certificate cannot outlive its
/// issuer's signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    certificate: Duration,
    ca: Duration,
}

impl Default for Lifetimes {
    /// [`DEFAULT_CERTIFICATE_VALIDITY`] and [`DEFAULT_CA_VALIDITY`].
    fn default() -> Self {
        Self {
            certificate: DEFAULT_CERTIFICATE_VALIDITY,
            ca: DEFAULT_CA_VALIDITY,
        }
    }
}

impl Lifetimes {
    /// Certificates valid for `certificate`, the CA for `ca`; refused outside the bounds.
    pub fn new(certificate: Duration, ca: Duration) -> Result<Self, LifetimeError> {
        for (flag, given) in [("certificate-validity", certificate), ("ca-validity", ca)] {
            if given < MIN_VALIDITY {
                return Err(LifetimeError::TooShort { flag, given });
            }
            if given > MAX_VALIDITY {
                return Err(LifetimeError::TooLong { flag, given });
            }
        }
        if certificate >= ca {
            return Err(LifetimeError::OutlivesCa { certificate, ca });
        }
        Ok(Self { certificate, ca })
    }

    /// How long node and master certificates are valid.
    pub fn certificate(&self) -> Duration {
        self.certificate
    }

    /// How long the CA is valid.
    pub fn ca(&self) -> Duration {
        self.ca
    }
}

/// Lifetimes that `gnt cluster init` refuses.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LifetimeError {
    /// Shorter than a minute (zero included).
    #[error("--{flag} {}: too short; give at least 1m", Human(*given))]
    TooShort {
        /// The flag.
        flag: &'static str,
        /// Its value.
        given: Duration,
    },
    /// Longer than 100 years.
    #[error("--{flag} {}: too long; give at most 36500d (100 years)", Human(*given))]
    TooLong {
        /// The flag.
        flag: &'static str,
        /// Its value.
        given: Duration,
    },
    /// The certificates would outlive the CA.
    #[error(
        "--certificate-validity {} must be shorter than --ca-validity {}: a certificate cannot outlive the CA that signs it",
        Human(*certificate),
        Human(*ca)
    )]
    OutlivesCa {
        /// The certificates' lifetime.
        certificate: Duration,
        /// The CA's.
        ca: Duration,
    },
}

impl Classify for LifetimeError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::WrongInput
    }
}

/// A duration as the flags take it: in the largest unit that divides it (`20d`, `36h`).
pub(crate) struct Human(pub(crate) Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        match [(DAY, 'd'), (3600, 'h'), (60, 'm')]
            .into_iter()
            .find(|(unit, _)| secs > 0 && secs.is_multiple_of(*unit))
        {
            Some((unit, suffix)) => write!(f, "{}{suffix}", secs / unit),
            None => write!(f, "{secs}s"),
        }
    }
}

/// When a certificate is valid: from `not_before` to `not_after`, seconds since the Unix
/// epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// The first second it is valid.
    pub not_before: i64,
    /// The last.
    pub not_after: i64,
}

/// The validity of the first certificate in `pem`; `what` names it in errors.
pub fn certificate_validity(what: &'static str, pem: &str) -> Result<Validity, PkiError> {
    let certificates = Pem::from_bytes(what, pem)
        .certificates(what)
        .map_err(|source| PkiError::Unreadable { what, source })?;
    // `certificates` returns at least one.
    let Some(leaf) = certificates.first() else {
        return Err(PkiError::NotX509 {
            what,
            reason: "no certificate".to_owned(),
        });
    };
    der_validity(what, leaf)
}

/// The validity of `certificate` (DER); `what` names it in errors.
pub fn der_validity(
    what: &'static str,
    certificate: &CertificateDer<'_>,
) -> Result<Validity, PkiError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, parsed) =
        X509Certificate::from_der(certificate.as_ref()).map_err(|e| PkiError::NotX509 {
            what,
            reason: e.to_string(),
        })?;
    let validity = parsed.validity();
    Ok(Validity {
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

/// When the first certificate in `pem` expires, seconds since the Unix epoch.
pub fn certificate_not_after(pem: &str) -> Result<i64, PkiError> {
    certificate_validity("certificate", pem).map(|v| v.not_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ClusterCa;

    fn days(n: u64) -> Duration {
        Duration::from_secs(n * DAY)
    }

    #[test]
    fn lifetimes_must_be_between_a_minute_and_a_century_and_certificates_shorter_than_the_ca() {
        assert_eq!(
            Lifetimes::new(days(20), days(3650)).unwrap().certificate(),
            days(20)
        );
        let refused = |certificate, ca| Lifetimes::new(certificate, ca).unwrap_err().to_string();
        assert_eq!(
            refused(Duration::ZERO, days(10)),
            "--certificate-validity 0s: too short; give at least 1m"
        );
        assert_eq!(
            refused(Duration::from_secs(60), Duration::from_secs(59)),
            "--ca-validity 59s: too short; give at least 1m"
        );
        assert_eq!(
            refused(days(1), days(36_501)),
            "--ca-validity 36501d: too long; give at most 36500d (100 years)"
        );
        assert_eq!(
            refused(days(3650), days(3650)),
            "--certificate-validity 3650d must be shorter than --ca-validity 3650d: a certificate cannot outlive the CA that signs it"
        );
        assert_eq!(
            refused(Duration::from_secs(3 * 3600), Duration::from_secs(7200)),
            "--certificate-validity 3h must be shorter than --ca-validity 2h: a certificate cannot outlive the CA that signs it"
        );
    }

    #[test]
    fn issued_certificates_last_as_long_as_the_ca_was_told() {
        let ca = ClusterCa::create("cluster.example.com", days(20))
            .unwrap()
            .with_certificate_validity(days(5));
        let now = gnt_core::clock::unix_now();
        let ca_validity = certificate_validity("CA", ca.cert_pem()).unwrap();
        // Issued a moment ago, with an hour of slack for clocks that lag.
        assert!((ca_validity.not_before - (now - 3600)).abs() <= 5);
        assert!((ca_validity.not_after - (now + 20 * 86_400)).abs() <= 5);
        let node = ca
            .issue_with_new_key("node1.example.com", "node", &["node1.example.com"], &[])
            .unwrap();
        let not_after = certificate_not_after(&node.cert_pem).unwrap();
        assert!((not_after - (now + 5 * 86_400)).abs() <= 5, "{not_after}");
    }

    #[test]
    fn a_lifetime_past_the_year_9999_is_an_error_not_a_panic() {
        let refused = ClusterCa::create("cluster.example.com", Duration::MAX).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("cannot be written in a certificate"),
            "{refused}"
        );
    }

    #[test]
    fn text_that_is_no_certificate_is_refused_naming_it() {
        let refused = certificate_validity("ca.pem", "not a certificate").unwrap_err();
        assert_eq!(refused.to_string(), "cannot read ca.pem");
    }
}
