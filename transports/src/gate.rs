//! A gate in front of a gRPC service: every call's connection ([`PeerInfo`]), method and
//! metadata ([`CallInfo`]) are checked before the service sees the call, and a refused call
//! is answered with the check's status. Unlike a tonic interceptor, the request is not
//! converted to a `tonic::Request` and back: the check reads the connection from the HTTP
//! request's extensions and the rest from its head, so a call that passes costs one
//! extension lookup and whatever the check reads.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;

use crate::PeerInfo;

/// What a gate's check sees of a call.
#[derive(Debug, Clone, Copy)]
pub struct CallInfo<'a> {
    /// The call's connection, if the listener recorded one.
    pub peer: Option<&'a PeerInfo>,
    /// The method's path, `/package.Service/Method`.
    pub path: &'a str,
    /// The call's metadata (HTTP/2 headers).
    pub headers: &'a http::HeaderMap,
}

/// `service`, behind `check`.
#[derive(Debug, Clone)]
pub struct Gated<S, F> {
    service: S,
    check: F,
}

impl<S, F> Gated<S, F> {
    /// Lets a call reach `service` only when `check` accepts it.
    pub fn new(service: S, check: F) -> Self {
        Self { service, check }
    }
}

impl<S: NamedService, F> NamedService for Gated<S, F> {
    const NAME: &'static str = S::NAME;
}

impl<S, F, B> tower::Service<http::Request<B>> for Gated<S, F>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>,
    F: Fn(&CallInfo<'_>) -> Result<(), tonic::Status>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<http::Response<Body>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = CallInfo {
            peer: request.extensions().get::<PeerInfo>(),
            path: request.uri().path(),
            headers: request.headers(),
        };
        match (self.check)(&call) {
            Ok(()) => Either::Left(self.service.call(request)),
            Err(status) => Either::Right(ready(Ok(status.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tower::{Service, ServiceExt};

    use super::*;
    use crate::{ListenAddr, PeerAddr};

    #[tokio::test]
    async fn a_refused_call_never_reaches_the_service_and_gets_the_status() {
        let reached = Arc::new(AtomicUsize::new(0));
        let counter = reached.clone();
        let service = tower::service_fn(move |_request: http::Request<Body>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(http::Response::new(Body::empty())) }
        });
        let mut gated = Gated::new(service, |call: &CallInfo<'_>| match call.peer {
            Some(_) if call.headers.contains_key("x-ticket") => Ok(()),
            Some(_) => Err(tonic::Status::permission_denied("no ticket")),
            None => Err(tonic::Status::permission_denied("who are you?")),
        });

        let refused = gated
            .ready()
            .await
            .unwrap()
            .call(http::Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(refused.headers()["grpc-status"], "7");
        // Percent-encoded, as gRPC carries messages.
        assert_eq!(refused.headers()["grpc-message"], "who%20are%20you%3F");
        assert_eq!(reached.load(Ordering::SeqCst), 0);

        let peer = PeerInfo::new(PeerAddr::Memory, ListenAddr::Memory);
        let mut request = http::Request::new(Body::empty());
        request.extensions_mut().insert(peer.clone());
        let refused = gated.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(refused.headers()["grpc-message"], "no%20ticket");
        assert_eq!(reached.load(Ordering::SeqCst), 0);

        let mut request = http::Request::new(Body::empty());
        request.extensions_mut().insert(peer);
        request
            .headers_mut()
            .insert("x-ticket", http::HeaderValue::from_static("1"));
        let passed = gated.ready().await.unwrap().call(request).await.unwrap();
        assert!(passed.headers().get("grpc-status").is_none());
        assert_eq!(reached.load(Ordering::SeqCst), 1);
    }
}
