//! Who may call this member's procedures, and fencing of a replaced master.
//!
//! Two rules, both from the node's own ssconf, checked by the gate before a procedure runs:
//!
//! - **The certificate**: role (subject OU) `master` and a SHA-256 fingerprint listed in
//!   ssconf's `master_candidates_certs` (Ganeti checks a SHA-1 digest in the same key). An
//!   empty list lets no one in; it never means "any master".
//! - **The epoch**: every procedure but `Version` carries the caller's master epoch in the
//!   `gnt-master-epoch` metadata, and one older than the epoch of the node's ssconf is
//!   refused, naming both epochs and the master the node knows. A failover raises the
//!   epoch and writes it to every node it reaches, so a master it replaced (cut off, then
//!   back with its old state) cannot change a node: its first call is refused, and the
//!   refusal (which carries the node's epoch back in the same metadata) tells it to stand
//!   down. `Version` stays open so that such a master, or a candidate counting votes, can
//!   learn who the master is without being refused.
//!
//! Within one epoch there is one master: a call stating the node's own epoch must come
//! from the certificate listed under the master that the node's ssconf names (except
//! `Version` and `ReadMasterCopy`, which a candidate counting votes or gathering copies
//! asks at the current epoch). Two candidates that ran `master-failover` at the same time
//! both chose the same new epoch; the first to reach a node keeps it there, and the other
//! is refused as a replaced master is (with the epoch in the metadata), instead of both
//! changing the node.
//!
//! The epoch is not secret and a caller chooses what it sends: the fence stops a master
//! that is out of date, not a forger. A forger would need a listed master certificate,
//! which is the cluster's own key material (see `docs/security.md`).

use std::sync::RwLock;

use gnt_core::digest::parse_fingerprint;
use gnt_core::error::{Classify, ErrorKind, to_status};
use gnt_core::netutils::Hostname;
use gnt_core::ssconf::{Published, SsconfError, SsconfVersion};
use gnt_core::wire::MASTER_EPOCH_METADATA;
use gnt_transports::{CallInfo, PeerIdentity, PeerInfo};
use tonic::Status;
use tonic::metadata::MetadataValue;

/// The only procedure a caller may call without an epoch.
const VERSION_PATH: &str = "/gnt.node.v1.NodeAgent/Version";

/// What a candidate that is not the master asks at the current epoch (a failover gathering
/// the newest configuration), besides `Version`.
const READ_COPY_PATH: &str = "/gnt.node.v1.NodeAgent/ReadMasterCopy";

/// What the node's ssconf says about its masters, parsed once per set so a call compares
/// 32 bytes and a number.
#[derive(Debug, Clone)]
pub(crate) struct Authority {
    /// Digests of the certificates allowed to call procedures. Never empty.
    certificates: Vec<[u8; 32]>,
    /// The version of the set on disk.
    pub(crate) version: SsconfVersion,
    /// The master the set names.
    pub(crate) master: Hostname,
    /// The digests listed under that master's name, the only certificates that may act at
    /// the set's epoch (two while a renewal replaces the master's certificate); empty when
    /// the set lists none for it (then any listed one may).
    master_certificates: Vec<[u8; 32]>,
}

impl Authority {
    /// The authority `published` grants.
    pub(crate) fn of(published: &Published) -> Result<Self, SsconfError> {
        let master = published.set.master_node()?;
        let master_certificates = published
            .set
            .master_certificates()?
            .iter()
            .filter(|(name, _)| Hostname::parse(name).is_ok_and(|name| name == master))
            .filter_map(|(_, fingerprint)| parse_fingerprint(fingerprint))
            .collect();
        Ok(Self {
            certificates: published.set.master_certificate_digests()?,
            version: published.version(),
            master,
            master_certificates,
        })
    }
}

/// Lets a call through only from a listed master certificate of a current epoch (see the
/// module's docs).
pub(crate) fn authorize(authority: &RwLock<Authority>, call: &CallInfo<'_>) -> Result<(), Status> {
    let authority = authority.read().unwrap_or_else(|p| p.into_inner());
    check_call(&authority, call).map_err(|refused| {
        tracing::warn!(peer = %shown(call.peer), reason = %refused, "procedure call refused");
        status_of(&refused)
    })
}

/// The status of a refusal; one of an older epoch carries the node's epoch in the
/// metadata, so the old master stands down on the number, not the text.
fn status_of(refused: &CallRefused) -> Status {
    let mut status = to_status(refused);
    if let CallRefused::OlderEpoch { current, .. } | CallRefused::NotTheMaster { current, .. } =
        refused
        && let Ok(value) = MetadataValue::try_from(current.to_string())
    {
        status.metadata_mut().insert(MASTER_EPOCH_METADATA, value);
    }
    status
}

/// Whether `peer` presented one of the allowed master certificates: the connections the
/// member listener never drops (`gnt_transports::Protected`). Quiet, unlike [`authorize`]:
/// the listener asks it about every connection whenever it needs room.
pub(crate) fn is_allowed_master(authority: &RwLock<Authority>, peer: &PeerInfo) -> bool {
    let authority = authority.read().unwrap_or_else(|p| p.into_inner());
    check_caller(&authority.certificates, peer.identity()).is_ok()
}

fn shown(peer: Option<&PeerInfo>) -> String {
    peer.map_or_else(|| "unknown".to_owned(), ToString::to_string)
}

/// `identity`, if it is a certificate of role `master`.
fn master_role(identity: Option<&PeerIdentity>) -> Result<&PeerIdentity, CallRefused> {
    let identity = identity.ok_or(CallRefused::NoCertificate)?;
    if identity.role.as_deref() != Some("master") {
        return Err(CallRefused::NotMaster(Box::new(identity.clone())));
    }
    Ok(identity)
}

/// Whether `identity` is one of the `allowed` master certificates.
fn check_caller(allowed: &[[u8; 32]], identity: Option<&PeerIdentity>) -> Result<(), CallRefused> {
    let identity = master_role(identity)?;
    if !allowed.contains(&identity.sha256) {
        return Err(CallRefused::UnknownMaster(Box::new(identity.clone())));
    }
    Ok(())
}

/// The whole rule, in this order: a master-role certificate; an epoch older than the
/// node's is refused as such, even from a certificate no longer listed (a replaced master
/// demoted by the failover's successor learns why, and stands down), except that a listed
/// certificate may always ask `Version`; then the certificate must be listed; then every
/// procedure but `Version` must state an epoch; then, at the node's own epoch, only the
/// master's certificate may call procedures other than `Version` and `ReadMasterCopy`.
fn check_call(authority: &Authority, call: &CallInfo<'_>) -> Result<(), CallRefused> {
    let identity = master_role(call.peer.and_then(PeerInfo::identity))?;
    let offered = epoch_of(call)?;
    let listed = authority.certificates.contains(&identity.sha256);
    let version = call.path == VERSION_PATH;
    if let Some(offered) = offered
        && offered < authority.version.epoch
        && !(listed && version)
    {
        return Err(CallRefused::OlderEpoch {
            offered,
            current: authority.version.epoch,
            master: authority.master.clone(),
        });
    }
    if !listed {
        return Err(CallRefused::UnknownMaster(Box::new(identity.clone())));
    }
    if offered.is_none() && !version {
        return Err(CallRefused::NoEpoch);
    }
    if offered == Some(authority.version.epoch)
        && !version
        && call.path != READ_COPY_PATH
        && !authority.master_certificates.is_empty()
        && !authority.master_certificates.contains(&identity.sha256)
    {
        return Err(CallRefused::NotTheMaster {
            current: authority.version.epoch,
            master: authority.master.clone(),
        });
    }
    Ok(())
}

/// The epoch the call states, if it states one.
fn epoch_of(call: &CallInfo<'_>) -> Result<Option<u64>, CallRefused> {
    let Some(header) = call.headers.get(MASTER_EPOCH_METADATA) else {
        return Ok(None);
    };
    header
        .to_str()
        .ok()
        .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|text| text.parse::<u64>().ok())
        .map(Some)
        .ok_or(CallRefused::BadEpoch)
}

/// Why a caller may not call the node procedures.
#[derive(Debug, thiserror::Error)]
enum CallRefused {
    #[error("node procedures need the master's client certificate")]
    NoCertificate,
    #[error("certificate '{0}' may not call node procedures; only the master may")]
    NotMaster(Box<PeerIdentity>),
    #[error(
        "certificate '{0}' is not a master certificate this node knows (ssconf master_candidates_certs)"
    )]
    UnknownMaster(Box<PeerIdentity>),
    #[error(
        "node procedures need the caller's master epoch in the '{MASTER_EPOCH_METADATA}' metadata"
    )]
    NoEpoch,
    #[error("the '{MASTER_EPOCH_METADATA}' metadata must be a decimal number")]
    BadEpoch,
    #[error(
        "master epoch {offered} is older than this node's {current}: {master} is the master now, and a master that a failover replaced must not act"
    )]
    OlderEpoch {
        offered: u64,
        current: u64,
        master: Hostname,
    },
    #[error(
        "master epoch {current} belongs to {master} on this node, and the caller is not {master}: two master-failovers chose the same epoch; stop gnt-masterd on both new masters and run 'gnt cluster master-failover --no-voting' on the one to keep (it takes a newer epoch)"
    )]
    NotTheMaster { current: u64, master: Hostname },
}

impl Classify for CallRefused {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoEpoch | Self::BadEpoch => ErrorKind::WrongInput,
            Self::OlderEpoch { .. } | Self::NotTheMaster { .. } => ErrorKind::WrongState,
            _ => ErrorKind::PermissionDenied,
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::codegen::http;

    use super::*;

    fn master_certificate(sha256: [u8; 32]) -> PeerIdentity {
        PeerIdentity {
            common_name: Some("master.example.com".to_owned()),
            role: Some("master".to_owned()),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            sha256,
        }
    }

    #[test]
    fn only_a_listed_master_certificate_may_call_and_an_empty_list_lets_no_one_in() {
        let master = master_certificate([1; 32]);
        assert!(check_caller(&[[1; 32]], Some(&master)).is_ok());
        assert!(matches!(
            check_caller(&[[2; 32]], Some(&master)),
            Err(CallRefused::UnknownMaster(_))
        ));
        // Once read as "no restriction": any master-role certificate of the CA got in.
        assert!(matches!(
            check_caller(&[], Some(&master)),
            Err(CallRefused::UnknownMaster(_))
        ));
        let node = PeerIdentity {
            role: Some("node".to_owned()),
            ..master_certificate([1; 32])
        };
        assert!(matches!(
            check_caller(&[[1; 32]], Some(&node)),
            Err(CallRefused::NotMaster(_))
        ));
        assert!(matches!(
            check_caller(&[[1; 32]], None),
            Err(CallRefused::NoCertificate)
        ));
    }

    fn authority(epoch: u64) -> Authority {
        Authority {
            certificates: vec![[1; 32]],
            version: SsconfVersion::new(epoch, 9),
            master: Hostname::parse("node2.example.com").unwrap(),
            master_certificates: vec![[1; 32]],
        }
    }

    /// `check_call` of `path` from a master certificate with digest `sha256`, stating
    /// `epoch` if given.
    fn check(
        authority: &Authority,
        sha256: [u8; 32],
        path: &str,
        epoch: Option<&'static str>,
    ) -> Result<(), CallRefused> {
        let mut headers = http::HeaderMap::new();
        if let Some(epoch) = epoch {
            headers.insert(MASTER_EPOCH_METADATA, http::HeaderValue::from_static(epoch));
        }
        let peer = PeerInfo::with_identity(
            gnt_transports::PeerAddr::Memory,
            gnt_transports::ListenAddr::Memory,
            master_certificate(sha256),
        );
        check_call(
            authority,
            &CallInfo {
                peer: Some(&peer),
                path,
                headers: &headers,
            },
        )
    }

    #[test]
    fn a_call_of_an_older_epoch_is_refused_naming_both_epochs_and_the_master() {
        let write = "/gnt.node.v1.NodeAgent/WriteSsconf";
        let current = authority(3);
        let listed = [1; 32];
        assert!(check(&current, listed, write, Some("3")).is_ok());
        // A newer master (a failover whose ssconf has not reached this node yet) may call.
        assert!(check(&current, listed, write, Some("4")).is_ok());
        let refused = check(&current, listed, write, Some("2")).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "master epoch 2 is older than this node's 3: node2.example.com is the master now, and a master that a failover replaced must not act"
        );
        assert!(matches!(
            check(&current, listed, write, None),
            Err(CallRefused::NoEpoch)
        ));
        for bad in ["", "+3", "-1", "x", "99999999999999999999999"] {
            let value = Box::leak(bad.to_owned().into_boxed_str());
            assert!(
                matches!(
                    check(&current, listed, write, Some(value)),
                    Err(CallRefused::BadEpoch)
                ),
                "{bad:?}"
            );
        }
        // Version answers a listed master of any epoch: it is how one learns it was
        // replaced.
        assert!(check(&current, listed, VERSION_PATH, None).is_ok());
        assert!(check(&current, listed, VERSION_PATH, Some("1")).is_ok());
        // A certificate no longer listed (the old master, demoted) of an older epoch is told
        // about the epoch, on every call; of the current epoch, about its certificate.
        assert!(matches!(
            check(&current, [7; 32], VERSION_PATH, Some("2")),
            Err(CallRefused::OlderEpoch { offered: 2, .. })
        ));
        assert!(matches!(
            check(&current, [7; 32], write, Some("3")),
            Err(CallRefused::UnknownMaster(_))
        ));
    }

    #[test]
    fn at_the_nodes_epoch_only_the_named_master_may_act() {
        // Candidates node2 ([1; 32], the master this node's ssconf names at epoch 3) and
        // node3 ([3; 32]) both ran master-failover at once and chose epoch 3; node2's set
        // reached this node first.
        let current = Authority {
            certificates: vec![[1; 32], [3; 32]],
            ..authority(3)
        };
        let write = "/gnt.node.v1.NodeAgent/WriteSsconf";
        let leave = "/gnt.node.v1.NodeAgent/LeaveCluster";
        assert!(check(&current, [1; 32], write, Some("3")).is_ok());
        for path in [write, leave, "/gnt.node.v1.NodeAgent/WriteMasterCopy"] {
            let refused = check(&current, [3; 32], path, Some("3")).unwrap_err();
            assert!(
                matches!(refused, CallRefused::NotTheMaster { current: 3, .. }),
                "{path}: {refused:?}"
            );
            assert!(
                refused.to_string().starts_with(
                    "master epoch 3 belongs to node2.example.com on this node, and the caller is not node2.example.com"
                ),
                "{refused}"
            );
            assert_eq!(
                status_of(&refused)
                    .metadata()
                    .get(MASTER_EPOCH_METADATA)
                    .unwrap(),
                "3"
            );
        }
        // A candidate counting votes or gathering copies asks at the current epoch.
        assert!(check(&current, [3; 32], VERSION_PATH, Some("3")).is_ok());
        assert!(check(&current, [3; 32], READ_COPY_PATH, Some("3")).is_ok());
        // A failover of a newer epoch is let in (its ssconf has not reached this node).
        assert!(check(&current, [3; 32], write, Some("4")).is_ok());
        // A set that lists no certificate under its master keeps the older rule.
        let unnamed = Authority {
            master_certificates: Vec::new(),
            ..current
        };
        assert!(check(&unnamed, [3; 32], write, Some("3")).is_ok());
    }

    #[test]
    fn the_refusal_of_an_older_epoch_carries_the_nodes_epoch_back() {
        let status = status_of(&CallRefused::OlderEpoch {
            offered: 4,
            current: 5,
            master: Hostname::parse("node2.example.com").unwrap(),
        });
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(status.metadata().get(MASTER_EPOCH_METADATA).unwrap(), "5");
        assert!(
            status_of(&CallRefused::NoEpoch)
                .metadata()
                .get(MASTER_EPOCH_METADATA)
                .is_none()
        );
    }
}
