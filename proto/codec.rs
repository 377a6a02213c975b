//! The codec of every generated service: prost's, with small buffers.
//!
//! tonic encodes each call's message, and decodes its answer, in a buffer of 8 KiB by
//! default, allocated per call. The master's fan-out makes a call to every node at once,
//! so it allocates them all together, between the channels' long-lived buffers; once freed
//! they leave holes that keep the heap resident (4–6 KiB per node channel at 1,006 nodes,
//! `docs/benchmarks.md`). Our messages are far smaller than 8 KiB; a larger one grows its
//! buffer, once.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// A buffer's size when a call starts.
pub const BUFFER_SIZE: usize = 512;

/// How much a stream encodes before it lets other tasks run (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// The buffer settings of every generated service, and of the master's raw calls.
pub fn buffer_settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

/// prost's codec with [`buffer_settings`].
#[derive(Debug, Clone, Copy)]
pub struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(buffer_settings())
    }
}
