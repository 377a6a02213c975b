//! The project's error vocabulary: every error is classified into one [`ErrorKind`], in the
//! spirit of Ganeti's `errors.ECODE_*`, and the kind alone decides the gRPC status code a
//! server answers with and the exit code a CLI ends with.
//!
//! Each module keeps its own `thiserror` enum with the context an operator needs (the
//! address, the file, the name); those enums implement [`Classify`]. Classification happens
//! once, at the edge: [`to_status`] when a server answers, [`ErrorKind::exit_code`] when a CLI
//! exits. Several kinds share a gRPC code, so the kind also travels in the status metadata
//! under [`ERROR_KIND_METADATA`] and [`kind_of_status`] recovers it exactly.

use std::error::Error as StdError;
use std::fmt;

/// What went wrong, from the point of view of what the caller can do about it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is invalid: a malformed address, a wrong family, an out-of-range value.
    /// Fix the input. Ganeti: `wrong_input`.
    WrongInput,
    /// A name does not resolve, or not in the family the cluster needs. Fix DNS or
    /// `/etc/hosts`. Ganeti: `resolver_error`.
    Resolver,
    /// The host is not as required: an address it does not own, a full disk, a missing
    /// directory. Fix the host. Ganeti: `environment_error`.
    Environment,
    /// A value that must be unique is already used elsewhere (an address owned by another
    /// node, a cluster IP that answers). Ganeti: `resource_not_unique`.
    NotUnique,
    /// The operation does not fit the current state (cluster not initialised, node already
    /// joined). Ganeti: `wrong_state`.
    WrongState,
    /// The thing to be created exists already. Ganeti: `already_exists`.
    AlreadyExists,
    /// The named thing does not exist. Ganeti: `unknown_entity`.
    UnknownEntity,
    /// The caller did not prove who it is (no certificate, bad join token).
    Unauthenticated,
    /// The caller is known but not allowed to do this.
    PermissionDenied,
    /// The peer could not be reached; trying again later may work.
    Unavailable,
    /// The operation did not finish in time.
    Timeout,
    /// A bug: an invariant of this program did not hold.
    Internal,
}

/// Every kind, for exhaustive tables and tests.
pub const ALL_KINDS: [ErrorKind; 12] = [
    ErrorKind::WrongInput,
    ErrorKind::Resolver,
    ErrorKind::Environment,
    ErrorKind::NotUnique,
    ErrorKind::WrongState,
    ErrorKind::AlreadyExists,
    ErrorKind::UnknownEntity,
    ErrorKind::Unauthenticated,
    ErrorKind::PermissionDenied,
    ErrorKind::Unavailable,
    ErrorKind::Timeout,
    ErrorKind::Internal,
];

/// Status metadata key that carries [`ErrorKind::code`] next to the gRPC status code.
pub const ERROR_KIND_METADATA: &str = "gnt-error-kind";

impl ErrorKind {
    /// The stable text code: Ganeti's `ECODE_*` strings for the kinds Ganeti has.
    pub const fn code(self) -> &'static str {
        match self {
            Self::WrongInput => "wrong_input",
            Self::Resolver => "resolver_error",
            Self::Environment => "environment_error",
            Self::NotUnique => "resource_not_unique",
            Self::WrongState => "wrong_state",
            Self::AlreadyExists => "already_exists",
            Self::UnknownEntity => "unknown_entity",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal_error",
        }
    }

    /// The kind whose [`code`](Self::code) is `code`.
    pub fn from_code(code: &str) -> Option<Self> {
        ALL_KINDS.into_iter().find(|kind| kind.code() == code)
    }

    /// The gRPC status code a server answers with.
    pub const fn grpc_code(self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::WrongInput => Code::InvalidArgument,
            Self::Resolver | Self::Environment | Self::WrongState => Code::FailedPrecondition,
            Self::NotUnique | Self::AlreadyExists => Code::AlreadyExists,
            Self::UnknownEntity => Code::NotFound,
            Self::Unauthenticated => Code::Unauthenticated,
            Self::PermissionDenied => Code::PermissionDenied,
            Self::Unavailable => Code::Unavailable,
            Self::Timeout => Code::DeadlineExceeded,
            Self::Internal => Code::Internal,
        }
    }

    /// The best kind for a status that does not carry [`ERROR_KIND_METADATA`] (one produced
    /// by tonic itself, or by another gRPC server).
    pub const fn from_grpc_code(code: tonic::Code) -> Self {
        use tonic::Code;
        match code {
            Code::InvalidArgument | Code::OutOfRange => Self::WrongInput,
            Code::FailedPrecondition | Code::Aborted => Self::WrongState,
            Code::AlreadyExists => Self::AlreadyExists,
            Code::NotFound => Self::UnknownEntity,
            Code::Unauthenticated => Self::Unauthenticated,
            Code::PermissionDenied => Self::PermissionDenied,
            Code::Unavailable | Code::ResourceExhausted => Self::Unavailable,
            // tonic reports an expired client deadline as Cancelled("Timeout expired").
            Code::DeadlineExceeded | Code::Cancelled => Self::Timeout,
            Code::Ok | Code::Unknown | Code::Unimplemented | Code::Internal | Code::DataLoss => {
                Self::Internal
            }
        }
    }

    /// The exit code of a CLI that fails with this kind. Codes are taken from the BSD
    /// `sysexits` range (64-78) so that they never collide with a shell's own codes; each
    /// kind has its own so scripts can tell them apart.
    ///
    /// | kind | exit |
    /// |---|---|
    /// | WrongInput | 64 |
    /// | NotUnique | 65 |
    /// | AlreadyExists | 66 |
    /// | UnknownEntity | 67 |
    /// | Resolver | 68 |
    /// | Unavailable | 69 |
    /// | Internal | 70 |
    /// | Environment | 71 |
    /// | Timeout | 75 |
    /// | WrongState | 76 |
    /// | PermissionDenied | 77 |
    /// | Unauthenticated | 78 |
    pub const fn exit_code(self) -> u8 {
        match self {
            Self::WrongInput => 64,
            Self::NotUnique => 65,
            Self::AlreadyExists => 66,
            Self::UnknownEntity => 67,
            Self::Resolver => 68,
            Self::Unavailable => 69,
            Self::Internal => 70,
            Self::Environment => 71,
            Self::Timeout => 75,
            Self::WrongState => 76,
            Self::PermissionDenied => 77,
            Self::Unauthenticated => 78,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An error that knows its [`ErrorKind`].
pub trait Classify: StdError {
    /// The kind of this error.
    fn kind(&self) -> ErrorKind;
}

/// Displays an error followed by its whole `source()` chain, `outer: inner: innermost`,
/// skipping a source whose text the outer message already contains.
pub struct Chain<'a>(pub &'a (dyn StdError + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut written = self.0.to_string();
        f.write_str(&written)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !written.contains(&text) {
                write!(f, ": {text}")?;
                written.push_str(&text);
            }
            next = cause.source();
        }
        Ok(())
    }
}

/// The first error of type `E` in `error`'s `source()` chain, `error` itself included: how a
/// cause is recognised by its type rather than by its words.
pub fn find_cause<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(cause) = next {
        if let Some(found) = cause.downcast_ref::<E>() {
            return Some(found);
        }
        next = cause.source();
    }
    None
}

/// The status a gRPC server answers with for `err`: the code of its kind, the whole cause
/// chain as message, and the kind in [`ERROR_KIND_METADATA`].
pub fn to_status<E: Classify>(err: &E) -> tonic::Status {
    let kind = err.kind();
    let mut status = tonic::Status::new(kind.grpc_code(), Chain(err).to_string());
    status.metadata_mut().insert(
        ERROR_KIND_METADATA,
        tonic::metadata::MetadataValue::from_static(kind.code()),
    );
    status
}

/// The kind of a status received from a server: exact when the server is ours, inferred from
/// the gRPC code otherwise.
pub fn kind_of_status(status: &tonic::Status) -> ErrorKind {
    status
        .metadata()
        .get(ERROR_KIND_METADATA)
        .and_then(|value| value.to_str().ok())
        .and_then(ErrorKind::from_code)
        .unwrap_or_else(|| ErrorKind::from_grpc_code(status.code()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot add node 'node1'")]
    struct Outer {
        #[source]
        inner: Inner,
        kind: ErrorKind,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("address 2001:db8::1 is not owned")]
    struct Inner;

    impl Classify for Outer {
        fn kind(&self) -> ErrorKind {
            self.kind
        }
    }

    #[test]
    fn causes_are_found_by_their_type_at_any_depth() {
        let outer = Outer {
            inner: Inner,
            kind: ErrorKind::WrongInput,
        };
        assert!(find_cause::<Inner>(&outer).is_some());
        assert!(find_cause::<Outer>(&outer).is_some());
        assert!(find_cause::<std::io::Error>(&outer).is_none());
    }

    #[test]
    fn ganeti_codes_are_kept_for_the_kinds_ganeti_has() {
        assert_eq!(ErrorKind::WrongInput.code(), "wrong_input");
        assert_eq!(ErrorKind::Resolver.code(), "resolver_error");
        assert_eq!(ErrorKind::Environment.code(), "environment_error");
        assert_eq!(ErrorKind::NotUnique.code(), "resource_not_unique");
        assert_eq!(ErrorKind::WrongState.code(), "wrong_state");
        assert_eq!(ErrorKind::AlreadyExists.code(), "already_exists");
        assert_eq!(ErrorKind::UnknownEntity.code(), "unknown_entity");
    }

    #[test]
    fn every_kind_round_trips_through_its_code() {
        for kind in ALL_KINDS {
            assert_eq!(ErrorKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(ErrorKind::from_code("no_such_code"), None);
    }

    #[test]
    fn exit_codes_are_distinct_and_in_the_sysexits_range() {
        let codes: HashSet<u8> = ALL_KINDS.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes.len(), ALL_KINDS.len());
        assert!(codes.iter().all(|c| (64..=78).contains(c)));
    }

    #[test]
    fn status_carries_the_exact_kind_even_when_codes_are_shared() {
        for kind in [
            ErrorKind::Resolver,
            ErrorKind::Environment,
            ErrorKind::WrongState,
            ErrorKind::NotUnique,
            ErrorKind::AlreadyExists,
        ] {
            let status = to_status(&Outer { inner: Inner, kind });
            assert_eq!(status.code(), kind.grpc_code());
            assert_eq!(kind_of_status(&status), kind);
        }
    }

    #[test]
    fn status_message_holds_the_whole_cause_chain() {
        let status = to_status(&Outer {
            inner: Inner,
            kind: ErrorKind::Environment,
        });
        assert_eq!(
            status.message(),
            "cannot add node 'node1': address 2001:db8::1 is not owned"
        );
    }

    #[test]
    fn foreign_statuses_are_classified_by_code() {
        let status = tonic::Status::cancelled("Timeout expired");
        assert_eq!(kind_of_status(&status), ErrorKind::Timeout);
        let status = tonic::Status::unavailable("tcp connect error");
        assert_eq!(kind_of_status(&status), ErrorKind::Unavailable);
        let status = tonic::Status::not_found("x");
        assert_eq!(kind_of_status(&status), ErrorKind::UnknownEntity);
    }

    #[test]
    fn chain_skips_a_cause_the_outer_message_already_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("read failed: {0}")]
        struct Repeats(#[source] Inner);
        assert_eq!(
            Chain(&Repeats(Inner)).to_string(),
            "read failed: address 2001:db8::1 is not owned"
        );
    }
}
