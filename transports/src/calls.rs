//! Calls in progress on each connection, counted for its listener: a connection that
//! carries none may be closed once idle for long enough, and is dropped before one that
//! carries some when the listener needs room (`listen::admission`).
//!
//! [`CallsLayer`], on every server of [`GrpcServer`](crate::GrpcServer), counts a call from
//! the moment its request reaches the server until its response body is done (sent to
//! the end, or the call cut): a unary call while its handler runs and its answer goes out,
//! a stream (health's `Watch`, Join) for as long as it lasts. It costs a lookup of the
//! connection's [`PeerInfo`] among the request's extensions and two atomic additions, no
//! allocation.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::future::{Join, Map, Ready, join, ready};
use hyper::body::{Body, Frame, SizeHint};
use tonic::codegen::http;

use crate::PeerInfo;
use crate::listen::Tracking;

/// The layer of [`Calls`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CallsLayer;

impl<S> tower::Layer<S> for CallsLayer {
    type Service = Calls<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Calls { inner }
    }
}

/// `inner`, counting its calls on their connection.
#[derive(Debug, Clone)]
pub(crate) struct Calls<S> {
    inner: S,
}

/// A call in progress; ends when dropped.
#[derive(Debug)]
pub(crate) struct Call(Arc<Tracking>);

impl Call {
    fn start(tracking: &Arc<Tracking>) -> Self {
        tracking.call_started();
        Self(tracking.clone())
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.0.call_ended();
    }
}

type Answered<R, E> = (Result<http::Response<R>, E>, Option<Call>);
type Counted<R, E> = Result<http::Response<CallBody<R>>, E>;

impl<S, B, R> tower::Service<http::Request<B>> for Calls<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<CallBody<R>>;
    type Error = S::Error;
    // Plain functions and combinators, nothing boxed: the call travels with the future,
    // and then with the body.
    type Future = Map<
        Join<S::Future, Ready<Option<Call>>>,
        fn(Answered<R, S::Error>) -> Counted<R, S::Error>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = request
            .extensions()
            .get::<PeerInfo>()
            .and_then(PeerInfo::tracking)
            .map(Call::start);
        join(self.inner.call(request), ready(call)).map(attach::<R, S::Error> as fn(_) -> _)
    }
}

/// Hands the call over to the response body.
fn attach<R, E>((response, call): Answered<R, E>) -> Counted<R, E> {
    response.map(|response| response.map(|body| CallBody { body, _call: call }))
}

/// A response body that holds its call until it is dropped.
#[derive(Debug)]
pub(crate) struct CallBody<R> {
    body: R,
    _call: Option<Call>,
}

impl<R: Body + Unpin> Body for CallBody<R> {
    type Data = R::Data;
    type Error = R::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests;
