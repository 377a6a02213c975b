//! Looking up a name given by an operator (a node's, the cluster's): normalise it, then take
//! its first address in the cluster's family, with Ganeti's refusal when it does not resolve.
//! `gnt cluster init` and `gnt node add` both start this way.

use std::net::IpAddr;

use super::hostname::{Hostname, HostnameError};
use super::resolve::{ResolveError, Resolver};
use crate::error::{Classify, ErrorKind};
use crate::policy::IpFamily;

/// A name that is not valid, or does not resolve in the family.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    /// Not a valid host name.
    #[error("invalid {what} '{name}': {reason}")]
    Invalid {
        /// Which name (`node name`, `cluster name`, ...).
        what: &'static str,
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No address in the family (Ganeti's words).
    #[error("The given name ({name}) does not resolve: {source}")]
    Unresolved {
        /// The name.
        name: Hostname,
        /// What the resolver said.
        source: ResolveError,
    },
}

impl Classify for NameError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid { .. } => ErrorKind::WrongInput,
            Self::Unresolved { .. } => ErrorKind::Resolver,
        }
    }
}

/// `text` as a normalised host name; `what` names it in the refusal.
pub fn parse_name(what: &'static str, text: &str) -> Result<Hostname, NameError> {
    Hostname::parse(text).map_err(|e: HostnameError| NameError::Invalid {
        what,
        name: text.to_owned(),
        reason: e.reason,
    })
}

impl Resolver {
    /// The preferred address of `name` in `family` (what Ganeti's `GetIP` returns).
    pub async fn first_address(
        &self,
        name: &Hostname,
        family: IpFamily,
    ) -> Result<IpAddr, NameError> {
        self.resolve(name.as_str(), Some(family))
            .await
            .map(|resolved| resolved.first())
            .map_err(|source| NameError::Unresolved {
                name: name.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_are_checked_then_resolved_in_the_family_only() {
        let err = parse_name("node name", "node_1..example").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid node name 'node_1..example': it has an empty label (a leading dot or '..')"
        );
        assert_eq!(err.kind(), ErrorKind::WrongInput);

        let resolver = Resolver::hosts_only("192.0.2.7 node1.example.com\n");
        let name = parse_name("node name", "Node1.Example.COM.").unwrap();
        assert_eq!(
            resolver.first_address(&name, IpFamily::V4).await.unwrap(),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        let err = resolver
            .first_address(&name, IpFamily::V6)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("The given name (node1.example.com) does not resolve: "),
            "{err}"
        );
        assert_eq!(err.kind(), ErrorKind::Resolver);
    }
}
