//! What went wrong with a call, for the fan-out runner: refused, timed out, TLS rejected,
//! unreachable, or an error status from the node. The connector's own error is found in
//! the status's cause chain, so the classification does not depend on tonic's wording;
//! so is a keepalive's verdict (a [`DirectChannel`](crate::DirectChannel)'s [`PeerFrozen`],
//! or hyper's only timeout on a tonic channel): the node stopped answering (frozen), which
//! is a timeout like the others ("no answer within 20s"), not raw HTTP/2 text.

use std::error::Error as StdError;
use std::time::Duration;

use gnt_core::error::{Chain, find_cause};
use gnt_core::runner::CallFailure;

use crate::channel::PeerFrozen;
use crate::connect::FROZEN_PEER_DETECTION;
use crate::error::ConnectError;
use crate::tls::{NotAMember, is_not_a_member};

/// Classifies a failed call that was given `timeout`.
pub fn call_failure(status: &tonic::Status, timeout: Duration) -> CallFailure {
    if let Some(cause) = StdError::source(status) {
        if let Some(connect) = find_cause::<ConnectError>(cause) {
            return from_connect(connect);
        }
        if find_cause::<PeerFrozen>(cause).is_some()
            || find_cause::<hyper::Error>(cause).is_some_and(hyper::Error::is_timeout)
        {
            return CallFailure::TimedOut(FROZEN_PEER_DETECTION);
        }
    }
    let message = status.message().to_owned();
    match status.code() {
        tonic::Code::DeadlineExceeded => CallFailure::TimedOut(timeout),
        // tonic reports its own expired deadline as CANCELLED "Timeout expired".
        tonic::Code::Cancelled if message.contains("Timeout expired") => {
            CallFailure::TimedOut(timeout)
        }
        tonic::Code::Unavailable | tonic::Code::Unknown if status.metadata().is_empty() => {
            let detail = Chain(status).to_string();
            if looks_like_tls(&detail) {
                CallFailure::TlsRejected(detail)
            } else {
                CallFailure::Unreachable(detail)
            }
        }
        code => CallFailure::Remote {
            code: code_name(code).to_owned(),
            message,
        },
    }
}

/// Classifies a connection that could not be made.
pub fn from_connect(error: &ConnectError) -> CallFailure {
    let detail = Chain(error).to_string();
    match error {
        ConnectError::TimedOut { timeout, .. } => CallFailure::TimedOut(*timeout),
        // What rustls would say is "UnknownIssuer": true, but not what the operator needs.
        ConnectError::Tls { source, .. } if is_not_a_member(source) => {
            CallFailure::TlsRejected(NotAMember.to_string())
        }
        ConnectError::Tls { .. } | ConnectError::TlsSetup { .. } => {
            CallFailure::TlsRejected(detail)
        }
        _ if error.is_refused() => CallFailure::Refused(detail),
        _ => CallFailure::Unreachable(detail),
    }
}

/// A peer that refuses our certificate does so after the handshake, with an alert that
/// surfaces as a broken connection; its wording is rustls'.
fn looks_like_tls(detail: &str) -> bool {
    ["alert", "certificate", "handshake"]
        .iter()
        .any(|w| detail.contains(w))
}

/// The canonical name of a gRPC status code.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_statuses_are_remote_errors_with_their_code() {
        let status = tonic::Status::permission_denied("only the master may");
        assert_eq!(
            call_failure(&status, Duration::from_secs(60)),
            CallFailure::Remote {
                code: "PERMISSION_DENIED".to_owned(),
                message: "only the master may".to_owned()
            }
        );
    }

    #[test]
    fn expired_deadlines_are_timeouts() {
        let status = tonic::Status::cancelled("Timeout expired");
        assert_eq!(
            call_failure(&status, Duration::from_secs(60)),
            CallFailure::TimedOut(Duration::from_secs(60))
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_classified_from_the_connectors_own_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let channel = crate::Connector::tcp_addr(
            port,
            crate::DialOptions::new(gnt_core::policy::IpPolicy::Ipv4),
        )
        .channel_lazy();
        let status = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                call_failure(&status, Duration::from_secs(5)),
                CallFailure::Refused(_)
            ),
            "{:?}",
            call_failure(&status, Duration::from_secs(5))
        );
    }
}
