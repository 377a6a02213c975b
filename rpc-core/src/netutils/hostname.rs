//! Host names: the normalised form every node name and the cluster name are kept in.
//!
//! Ganeti's `GetNormalizedName`: lower case; only `a-z`, `0-9`, `.`, `_` and `-`; no empty
//! label (no `..`, no leading `.`); one trailing dot removed. Departures, each a bug or a
//! hazard in Ganeti:
//!
//! - the length is checked after the trailing dot is removed, against DNS's own limits: at
//!   most 253 characters in all and 63 per label (Ganeti checks 255 before stripping);
//! - a label may not begin with `-`: such a name reads as an option to `ssh`, `ip` and every
//!   other command it is passed to.
//!
//! An IPv4 literal is a valid host name (it resolves to itself); an IPv6 literal is not,
//! because `:` is not a host-name character.

use std::fmt;
use std::str::FromStr;

use crate::error::{Classify, ErrorKind};

/// Longest host name, without the trailing dot (RFC 1035's 255 octets on the wire).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;

/// A normalised host name: lower case, no trailing dot, DNS-sized.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hostname(String);

/// A text that is not a valid host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host name '{name}': {reason}")]
pub struct HostnameError {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Classify for HostnameError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::WrongInput
    }
}

impl Hostname {
    /// Normalises and checks `text`.
    pub fn parse(text: &str) -> Result<Self, HostnameError> {
        let fail = |reason| HostnameError {
            name: text.to_owned(),
            reason,
        };
        let lowered = text.to_ascii_lowercase();
        let name = lowered.strip_suffix('.').unwrap_or(&lowered);
        if name.is_empty() {
            return Err(fail("it is empty"));
        }
        if name.contains(':') && name.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(fail("an IPv6 address is not a host name"));
        }
        if let Some(bad) = name.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        }) {
            return Err(fail(if bad.is_whitespace() {
                "it contains white space"
            } else {
                "only letters, digits, '.', '_' and '-' are allowed"
            }));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(fail("longer than 253 characters"));
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(fail("it has an empty label (a leading dot or '..')"));
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(fail("a label is longer than 63 characters"));
            }
            if label.starts_with('-') {
                return Err(fail("a label begins with '-'"));
            }
        }
        Ok(Self(name.to_owned()))
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first label, `node1` of `node1.example.com`.
    pub fn short(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }
}

impl FromStr for Hostname {
    type Err = HostnameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Hostname {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Stored as the normalised text; a stored name that is not valid is refused when read,
/// never repaired.
#[cfg(feature = "serde")]
impl serde::Serialize for Hostname {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Hostname {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn norm(text: &str) -> Result<String, &'static str> {
        Hostname::parse(text)
            .map(|h| h.as_str().to_owned())
            .map_err(|e| e.reason)
    }

    #[test]
    fn names_are_lower_cased_and_lose_one_trailing_dot() {
        assert_eq!(norm("Node1.Example.COM").unwrap(), "node1.example.com");
        assert_eq!(norm("node1.example.com.").unwrap(), "node1.example.com");
        assert_eq!(norm("localhost").unwrap(), "localhost");
        assert_eq!(norm("under_score.example").unwrap(), "under_score.example");
        assert_eq!(norm("a-b.c-d").unwrap(), "a-b.c-d");
    }

    #[test]
    fn ipv4_literals_pass_and_ipv6_literals_do_not() {
        assert_eq!(norm("192.0.2.1").unwrap(), "192.0.2.1");
        assert_eq!(
            norm("2001:db8::1"),
            Err("an IPv6 address is not a host name")
        );
        assert_eq!(norm("::1"), Err("an IPv6 address is not a host name"));
    }

    #[test]
    fn bad_characters_and_empty_labels_are_refused() {
        assert_eq!(norm(""), Err("it is empty"));
        assert_eq!(norm("."), Err("it is empty"));
        assert_eq!(
            norm("node1..example"),
            Err("it has an empty label (a leading dot or '..')")
        );
        assert_eq!(
            norm(".node1"),
            Err("it has an empty label (a leading dot or '..')")
        );
        assert_eq!(
            norm("node1.example.."),
            Err("it has an empty label (a leading dot or '..')")
        );
        assert_eq!(norm("node 1"), Err("it contains white space"));
        for bad in ["node1/x", "nöde", "a:b", "a@b", "a,b", "*.example"] {
            assert_eq!(
                norm(bad),
                Err("only letters, digits, '.', '_' and '-' are allowed"),
                "{bad}"
            );
        }
    }

    #[test]
    fn labels_that_begin_with_a_dash_are_refused() {
        assert_eq!(
            norm("-oProxyCommand=x"),
            Err("only letters, digits, '.', '_' and '-' are allowed")
        );
        assert_eq!(norm("-node1"), Err("a label begins with '-'"));
        assert_eq!(norm("node1.-x"), Err("a label begins with '-'"));
        assert_eq!(norm("node-1").unwrap(), "node-1");
    }

    #[test]
    fn length_limits_are_dns_limits_checked_after_the_trailing_dot() {
        let label63 = "a".repeat(63);
        assert!(norm(&label63).is_ok());
        assert_eq!(
            norm(&"a".repeat(64)),
            Err("a label is longer than 63 characters")
        );
        // 4 labels of 63 plus 3 dots = 255 characters: too long for DNS.
        let long = [label63.as_str(); 4].join(".");
        assert_eq!(norm(&long), Err("longer than 253 characters"));
        // 253 characters plus a trailing dot is fine.
        let max = format!("{}.{}.{}.{}", label63, label63, label63, "a".repeat(61));
        assert_eq!(max.len(), 253);
        assert_eq!(norm(&format!("{max}.")).unwrap(), max);
    }

    #[test]
    fn errors_name_the_input() {
        let err = Hostname::parse("bad name").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid host name 'bad name': it contains white space"
        );
    }

    #[test]
    fn short_name_is_the_first_label() {
        assert_eq!(
            Hostname::parse("node1.example.com").unwrap().short(),
            "node1"
        );
        assert_eq!(Hostname::parse("node1").unwrap().short(), "node1");
    }

    proptest! {
        #[test]
        fn normalising_never_panics_and_is_idempotent(text in "\\PC{0,80}") {
            if let Ok(name) = Hostname::parse(&text) {
                prop_assert_eq!(Hostname::parse(name.as_str()).unwrap(), name);
            }
        }

        #[test]
        fn valid_names_survive_case_and_a_trailing_dot(
            labels in proptest::collection::vec("[a-z0-9_][a-z0-9_-]{0,20}", 1..5)
        ) {
            let name = labels.join(".");
            let shouted = format!("{}.", name.to_ascii_uppercase());
            let parsed = Hostname::parse(&shouted).unwrap();
            prop_assert_eq!(parsed.as_str(), name.as_str());
        }
    }
}
