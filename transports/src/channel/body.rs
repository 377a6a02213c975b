//! Bodies on an h2 stream: a request's, sent no faster than the server's window admits,
//! and an answer's, read with its window given back as it is read.

use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame};

use super::{ConnectionState, InFlight};

/// Sends `body` on `stream` to its end. Stops early, resetting the stream, when the body
/// fails; and when the server resets the stream (it answered and wants no more).
pub(super) async fn send(
    body: tonic::body::Body,
    mut stream: h2::SendStream<Bytes>,
    state: Arc<ConnectionState>,
) -> Result<(), tonic::Status> {
    let mut body = pin!(body);
    loop {
        let next = poll_fn(|cx| {
            if stream.poll_reset(cx).is_ready() {
                return Poll::Ready(None);
            }
            body.as_mut().poll_frame(cx).map(Some)
        })
        .await;
        // The server reset the stream: it is done with this request, and its answer
        // says how the call went.
        let Some(frame) = next else { return Ok(()) };
        let frame = match frame {
            None => {
                return stream
                    .send_data(Bytes::new(), true)
                    .map_err(|e| state.failure(e));
            }
            Some(Err(status)) => {
                stream.send_reset(h2::Reason::CANCEL);
                return Err(status);
            }
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(data) => {
                let last = body.is_end_stream();
                send_data(&mut stream, data, last, &state).await?;
                if last {
                    return Ok(());
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    return stream.send_trailers(trailers).map_err(|e| state.failure(e));
                }
            }
        }
    }
}

/// Sends `data` in pieces the server's window admits.
async fn send_data(
    stream: &mut h2::SendStream<Bytes>,
    mut data: Bytes,
    end_of_stream: bool,
    state: &ConnectionState,
) -> Result<(), tonic::Status> {
    if data.is_empty() {
        return stream
            .send_data(data, end_of_stream)
            .map_err(|e| state.failure(e));
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(granted) => granted.map_err(|e| state.failure(e))?,
            None => {
                return Err(tonic::Status::unavailable(
                    "HTTP/2: the stream closed while its request was being sent",
                ));
            }
        };
        let piece = data.split_to(granted.min(data.len()));
        stream
            .send_data(piece, end_of_stream && data.is_empty())
            .map_err(|e| state.failure(e))?;
    }
    Ok(())
}

/// An answer's body: its messages, then its trailers (where gRPC puts the status).
pub struct ResponseBody {
    recv: h2::RecvStream,
    data_done: bool,
    call: InFlight,
}

impl ResponseBody {
    pub(super) fn new(recv: h2::RecvStream, call: InFlight) -> Self {
        Self {
            recv,
            data_done: false,
            call,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Only fails once the stream is gone, which the next poll reports.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => {
                    return Poll::Ready(Some(Err(this.call.state().failure(error))));
                }
                None => this.data_done = true,
            }
        }
        match ready!(this.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(this.call.state().failure(error)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}
