//! How `antrean.v1` messages become bytes and back, and the answers when a request's bytes cannot be a message.
//!
//! [`ProtoCodec`] is tonic-prost's codec except for its decode errors: a request that is not valid protobuf for its
//! method is INVALID_ARGUMENT with `ErrorInfo` reason `MESSAGE_UNDECODABLE` (gRPC's status-code guide: the client sent
//! a malformed request), where tonic-prost answers INTERNAL, which says the server is at fault. The generated services
//! and clients of [`crate::proto`] use it (`codec_path` in `build.rs`).
//!
//! Its buffers start at [`CODEC_BUFFER_BYTES`] instead of tonic's 8 KiB. tonic allocates one buffer to decode each
//! request and one to encode each response, and a server stream keeps its encoding buffer for as long as it is open:
//! with 8 KiB each, every call took two allocations too large for the allocator's per-thread cache, and 20,000 open
//! Watch streams held 160 MiB (the opening moment's profile: a sixth of the server core in `malloc`, `free` and page
//! faults of a growing heap). antrean's messages are a few hundred bytes; a larger one grows its buffer as it is
//! written or read (a response by doubling, a request to its announced length), which only `GetDraw`'s pages need.
//!
//! [`MessageLimit`] does the same for size: tonic refuses a message over the decoding limit as soon as it reads
//! the 5-byte frame header, before buffering the body, but answers OUT_OF_RANGE; the layer turns that answer into
//! RESOURCE_EXHAUSTED with reason `MESSAGE_TOO_LARGE`. No handler answers OUT_OF_RANGE (every handler status comes
//! from `status.rs`, which has none), so every OUT_OF_RANGE that reaches the layer is tonic's size check. A
//! client-streaming method (only server reflection) decodes inside its handler and keeps tonic's answer.

use super::status::{message_too_large_status, undecodable_status};
use crate::call_layer::{AroundCall, CallFuture, CallLayer, Next};
use crate::limits::GRPC_MESSAGE_BYTES_MAX;
use std::marker::PhantomData;
use tonic::body::Body;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::ProstEncoder;

/// Bytes a message buffer starts with: above antrean's usual messages (a ticket about 150 bytes, a booking about 400)
/// and within glibc's per-thread cache (chunks up to 1,032 bytes), so a call's buffers are quick to take and give back.
pub const CODEC_BUFFER_BYTES: usize = 512;

/// How the codec's buffers are sized: [`CODEC_BUFFER_BYTES`] to start with; tonic's threshold for batching a stream's
/// ready messages into one frame is kept.
fn buffer_settings() -> BufferSettings {
    BufferSettings::new(CODEC_BUFFER_BYTES, STREAM_BATCH_BYTES)
}

/// tonic's default yield threshold: a server stream's ready messages are joined up to this many bytes per write.
const STREAM_BATCH_BYTES: usize = 32 * 1024;

/// tonic-prost's codec with decode errors answered INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U> {
    messages: PhantomData<(T, U)>,
}

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        ProtoCodec { messages: PhantomData }
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> ProstEncoder<T> {
        ProstEncoder::new(buffer_settings())
    }

    fn decoder(&mut self) -> ProtoDecoder<U> {
        ProtoDecoder { message: PhantomData }
    }
}

/// Decodes `U`, answering bytes that are not one with INVALID_ARGUMENT `MESSAGE_UNDECODABLE`.
#[derive(Debug, Clone)]
pub struct ProtoDecoder<U> {
    message: PhantomData<U>,
}

impl<U: prost::Message + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buffer: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        decode_message(buffer).map(Some)
    }

    fn buffer_settings(&self) -> BufferSettings {
        buffer_settings()
    }
}

/// The message in `bytes`, or INVALID_ARGUMENT `MESSAGE_UNDECODABLE`.
fn decode_message<U: prost::Message + Default>(bytes: impl prost::bytes::Buf) -> Result<U, Status> {
    U::decode(bytes).map_err(|error| undecodable_status(&error))
}

/// Answers a request message over the decoding limit with RESOURCE_EXHAUSTED `MESSAGE_TOO_LARGE` instead of tonic's
/// OUT_OF_RANGE. Put its layer innermost, so the metrics layer outside counts the code the caller gets.
#[derive(Clone, Copy, Debug, Default)]
pub struct MessageLimit;

impl MessageLimit {
    /// The tower layer.
    #[must_use]
    pub fn layer() -> CallLayer<MessageLimit> {
        CallLayer(MessageLimit)
    }
}

/// Whether `response` is tonic's trailers-only answer to a request message over the decoding limit.
fn is_oversized_answer(response: &http::Response<tonic::body::Body>) -> bool {
    let status = response.headers().get("grpc-status").and_then(|value| value.to_str().ok());
    status.and_then(|value| value.parse::<i32>().ok()).map(Code::from_i32) == Some(Code::OutOfRange)
}

impl AroundCall for MessageLimit {
    fn call<S: Next>(&self, request: http::Request<Body>, mut next: S) -> CallFuture<S::Error> {
        Box::pin(async move {
            let response = next.call(request).await?;
            if is_oversized_answer(&response) {
                return Ok(message_too_large_status(GRPC_MESSAGE_BYTES_MAX).into_http());
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use tonic::codec::Encoder as _;
    use tonic_types::StatusExt;

    #[test]
    fn bytes_that_are_not_the_message_are_invalid_argument_with_a_reason() {
        let status = decode_message::<crate::proto::HoldRequest>(&[0xff_u8; 8][..]).expect_err("not protobuf");
        assert_eq!(status.code(), Code::InvalidArgument);
        let info = status.get_error_details().error_info().cloned().expect("error info");
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("MESSAGE_UNDECODABLE", "antrean"));

        let valid = crate::proto::HoldRequest { request_id: "r".into(), ..Default::default() }.encode_to_vec();
        let decoded = decode_message::<crate::proto::HoldRequest>(&valid[..]).expect("valid");
        assert_eq!(decoded.request_id, "r");
    }

    #[test]
    fn call_buffers_start_within_the_allocator_thread_cache() {
        let mut codec = ProtoCodec::<crate::proto::JoinResponse, crate::proto::JoinRequest>::default();
        let sizes = [codec.encoder().buffer_settings(), codec.decoder().buffer_settings()].map(|settings| {
            // BufferSettings keeps its fields private: read them from its Debug form.
            let text = format!("{settings:?}");
            let digits = text.split("buffer_size: ").nth(1).expect("buffer_size shown");
            digits.split(|c: char| !c.is_ascii_digit()).next().expect("digits").parse::<usize>().expect("a number")
        });
        assert!(sizes.iter().all(|size| *size <= 1024), "tonic's 8 KiB default is back: {sizes:?}");
        // A message larger than the first buffer still goes through whole, both ways.
        let page = crate::proto::HoldRequest { request_id: "r".repeat(100_000), ..Default::default() };
        let decoded = decode_message::<crate::proto::HoldRequest>(&page.encode_to_vec()[..]).expect("valid");
        assert_eq!(decoded.request_id.len(), 100_000);
    }

    #[test]
    fn only_out_of_range_answers_are_rewritten() {
        let answer = |code: Code| Status::new(code, "x").into_http::<tonic::body::Body>();
        assert!(is_oversized_answer(&answer(Code::OutOfRange)));
        assert!(!is_oversized_answer(&answer(Code::InvalidArgument)));
        assert!(!is_oversized_answer(&http::Response::new(tonic::body::Body::empty())), "a successful answer");
    }
}
