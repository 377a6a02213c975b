//! Requests that do not decode are the caller's fault: INVALID_ARGUMENT, not INTERNAL.
//!
//! tonic (through tonic-prost) answers a request whose bytes are not the method's message
//! (a string field that is not UTF-8, a field of the wrong wire type, a length running past
//! the end) with INTERNAL, which reads as "the server is broken" and makes the `gnt` CLI
//! exit 70. [`MalformedRequests`], a layer on every server of [`GrpcServer`](crate::GrpcServer),
//! turns exactly those answers into INVALID_ARGUMENT with the kind `wrong_input`, keeping
//! prost's description, which names the message and field.
//!
//! Which answers: a call that ended before any response message (the status is in the
//! headers, "trailers-only"), with INTERNAL, without our `gnt-error-kind` (so it is not one
//! of our own statuses) and with prost's `failed to decode Protobuf message` wording, the
//! only mark tonic leaves (the status has no typed cause). Unary and client-streaming calls
//! (every node procedure, `UploadFile` included) read their request before answering, so
//! that is where such a status is; Join, the one bidirectional stream, turns a message it
//! cannot read into its own refusal. gRPC framing faults are left as they are (a bad
//! compressed-flag must be INTERNAL, says the gRPC specification; a stream cut mid-message).
//! A test sends a real request with invalid UTF-8 in a string field and fails if tonic's
//! wording ever changes.

use std::task::{Context, Poll};

use futures_util::future::{MapOk, TryFutureExt};
use gnt_core::error::{Classify, ERROR_KIND_METADATA, ErrorKind, to_status};
use tonic::codegen::http;

/// How prost's `DecodeError` starts its message.
const PROST_DECODE_FAILURE: &str = "failed to decode Protobuf message";

/// A request that is not the message its method takes.
#[derive(Debug, thiserror::Error)]
#[error("malformed request: {detail}")]
pub(crate) struct MalformedRequest {
    /// What the decoder found, naming the message and field.
    detail: String,
}

impl Classify for MalformedRequest {
    fn kind(&self) -> ErrorKind {
        ErrorKind::WrongInput
    }
}

/// The layer of [`MalformedRequests`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MalformedRequestsLayer;

impl<S> tower::Layer<S> for MalformedRequestsLayer {
    type Service = MalformedRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MalformedRequests { inner }
    }
}

/// `inner`, with tonic's INTERNAL for an undecodable request turned into INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub(crate) struct MalformedRequests<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for MalformedRequests<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    // A plain function, not a closure: nothing to allocate per call.
    type Future = MapOk<S::Future, fn(http::Response<R>) -> http::Response<R>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.inner.call(request).map_ok(|mut response| {
            reclassify(response.headers_mut());
            response
        })
    }
}

/// Rewrites `headers` in place if they end the call with tonic's decoding failure.
fn reclassify(headers: &mut http::HeaderMap) {
    // Cheap checks first: this runs on every response.
    if headers.get("grpc-status").map(|v| v.as_bytes()) != Some(b"13")
        || headers.contains_key(ERROR_KIND_METADATA)
    {
        return;
    }
    let Some(status) = tonic::Status::from_header_map(headers) else {
        return;
    };
    if !status.message().starts_with(PROST_DECODE_FAILURE) {
        return;
    }
    let refused = MalformedRequest {
        detail: status.message().to_owned(),
    };
    tracing::debug!(error = %refused, "request refused");
    if let Err(unencodable) = to_status(&refused).add_header(headers) {
        // Our own message always encodes; should it not, the original answer stands.
        tracing::warn!(error = %unencodable, "cannot reclassify a malformed request");
    }
}

#[cfg(test)]
mod tests {
    use gnt_core::error::kind_of_status;
    use tonic::codegen::http::HeaderMap;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;
    use crate::{Connector, GrpcServer, Listener};

    /// `grpc.health.v1.HealthCheckRequest` as prost sees it, with its string field 1
    /// (`service`) declared as bytes, so a client can send what no string is.
    #[derive(Clone, PartialEq, prost::Message)]
    struct LyingHealthCheckRequest {
        #[prost(bytes = "vec", tag = "1")]
        service: Vec<u8>,
    }

    #[tokio::test]
    async fn invalid_utf8_in_a_string_field_is_an_invalid_argument_naming_the_field() {
        let (listener, connector) = Listener::memory();
        let server = GrpcServer::new("test").start(vec![listener]).await.unwrap();
        let channel = Connector::memory(connector).channel().await.unwrap();

        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let status = grpc
            .unary::<_, HealthCheckRequest, _>(
                tonic::Request::new(LyingHealthCheckRequest {
                    service: vec![b'g', 0xff, 0xfe],
                }),
                http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check"),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert_eq!(kind_of_status(&status), ErrorKind::WrongInput);
        assert!(
            status.message().starts_with(
                "malformed request: failed to decode Protobuf message: HealthCheckRequest.service: invalid string value: data is not UTF-8 encoded"
            ),
            "{}",
            status.message()
        );

        // The same connection still serves a valid request.
        let ok = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap();
        assert_eq!(ok.into_inner().status, 1);
        server.shutdown().await.unwrap();
    }

    fn headers(status: &tonic::Status) -> HeaderMap {
        let mut headers = HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        headers
    }

    #[test]
    fn our_own_statuses_and_other_internal_errors_are_left_alone() {
        let ours = to_status(&MalformedRequest {
            detail: format!("{PROST_DECODE_FAILURE}: but already classified"),
        });
        let mut internal_of_ours = headers(&ours);
        internal_of_ours.insert("grpc-status", http::HeaderValue::from_static("13"));
        for untouched in [
            internal_of_ours,
            headers(&tonic::Status::internal("Unexpected EOF decoding stream.")),
            headers(&tonic::Status::unknown(format!(
                "{PROST_DECODE_FAILURE}: not INTERNAL"
            ))),
            HeaderMap::new(),
        ] {
            let mut rewritten = untouched.clone();
            reclassify(&mut rewritten);
            assert_eq!(rewritten, untouched);
        }
    }
}
