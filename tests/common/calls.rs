//! Calls the security tests need beyond the generated clients: any method by path with raw bytes as the body (so one
//! loop can try every RPC, and hostile bytes can be sent), and generated clients that send a bearer token.
//!
//! Declare it beside the harness with `#[path = "common/calls.rs"] mod calls;`.

#![allow(dead_code)]

use antrean::proto::admin_service_client::AdminServiceClient;
use antrean::proto::booking_service_client::BookingServiceClient;
use prost::bytes::{Buf, BufMut};
use std::time::Duration;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// A codec that sends and receives message bodies as they are, without protobuf.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

/// Encodes raw bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawEncoder;

/// Decodes raw bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buffer: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buffer.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buffer: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let length = buffer.remaining();
        Ok(Some(buffer.copy_to_bytes(length).to_vec()))
    }
}

/// Calls `path` (`/package.Service/Method`) with `body` as the message, with a bearer `token` if given; gives up
/// after 5 s with DEADLINE_EXCEEDED (a streaming method may legitimately keep the call open).
pub async fn call_raw(channel: &Channel, path: &str, body: Vec<u8>, token: Option<&str>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone())
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    grpc.ready().await.map_err(|error| Status::unavailable(error.to_string()))?;
    let mut request = tonic::Request::new(body);
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", bearer(token));
    }
    let path = http::uri::PathAndQuery::try_from(path).expect("path");
    match tokio::time::timeout(Duration::from_secs(5), grpc.unary(request, path, RawCodec)).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(Status::new(Code::DeadlineExceeded, "test gave up waiting")),
    }
}

fn bearer(token: &str) -> MetadataValue<Ascii> {
    format!("Bearer {token}").parse().expect("ascii token")
}

/// Adds `authorization: Bearer TOKEN` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A booking client sending `token`.
pub type AuthBooking = BookingServiceClient<InterceptedService<Channel, Bearer>>;
/// An admin client sending `token`.
pub type AuthAdmin = AdminServiceClient<InterceptedService<Channel, Bearer>>;

/// Booking and admin clients that send `token`.
pub fn clients_with_token(channel: &Channel, token: &str) -> (AuthBooking, AuthAdmin) {
    let interceptor = Bearer(bearer(token));
    (
        BookingServiceClient::with_interceptor(channel.clone(), interceptor.clone()),
        AdminServiceClient::with_interceptor(channel.clone(), interceptor),
    )
}

/// The SHA-256 of `token` in hex, for `token_sha256`.
pub fn token_hash(token: &str) -> String {
    antrean::auth::token::hash_token(token.as_bytes()).to_hex()
}
