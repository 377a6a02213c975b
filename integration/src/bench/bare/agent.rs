//! `gnt.node.v1.NodeAgent` as bare tonic serves it, for the baseline: `Version` only, in the
//! shape tonic's generated server has, with prost's codec at tonic's default buffer size.
//! gnt-rpc's generated services use smaller buffers (`gnt_proto::codec`); the baseline keeps
//! tonic's, so that what it measures is tonic's defaults.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use gnt_proto::node::v1::{VersionRequest, VersionResponse};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

const VERSION_PATH: &str = "/gnt.node.v1.NodeAgent/Version";

/// Answers `Version` as the agent does; everything else is UNIMPLEMENTED.
#[derive(Debug, Clone, Copy)]
pub(super) struct BareAgent;

impl NamedService for BareAgent {
    const NAME: &'static str = "gnt.node.v1.NodeAgent";
}

impl tower::Service<http::Request<Body>> for BareAgent {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != VERSION_PATH {
            let refusal = Status::unimplemented("the bare baseline answers only Version");
            return Box::pin(ready(Ok(refusal.into_http())));
        }
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<VersionResponse, VersionRequest>::default();
            Ok(tonic::server::Grpc::new(codec)
                .unary(Version, request)
                .await)
        })
    }
}

struct Version;

impl UnaryService<VersionRequest> for Version {
    type Response = VersionResponse;
    type Future = Ready<Result<Response<VersionResponse>, Status>>;

    fn call(&mut self, _request: Request<VersionRequest>) -> Self::Future {
        ready(Ok(Response::new(gnt_node_agent::version())))
    }
}
