//! The few pieces of gRPC's wire format routing needs: the message inside a unary request body (5-byte prefix:
//! compressed flag, big-endian length), reading a unary answer back into its message or its status, and making an
//! answer from a merged message. Compressed messages are not looked into (the call is answered where it landed).

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use tonic::Status;
use tonic::body::Body;

/// Bytes of the prefix before every gRPC message.
pub const PREFIX_BYTES: usize = 5;

/// The message of a body that holds exactly one uncompressed gRPC message.
#[must_use]
pub fn message_of(body: &[u8]) -> Option<&[u8]> {
    let (&compressed, rest) = body.split_first()?;
    let length = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let message = rest.get(4..)?;
    (compressed == 0 && message.len() == length).then_some(message)
}

/// `message` with its gRPC prefix, as a body carries it.
#[must_use]
pub fn framed(message: &[u8]) -> Bytes {
    let mut bytes = BytesMut::with_capacity(PREFIX_BYTES + message.len());
    bytes.put_u8(0);
    bytes.put_u32(u32::try_from(message.len()).expect("messages are far below 4 GiB"));
    bytes.put_slice(message);
    bytes.freeze()
}

/// The status an answer's headers carry (a trailers-only answer: an error before any message), if any.
#[must_use]
pub fn header_status(response: &http::Response<Body>) -> Option<Status> {
    Status::from_header_map(response.headers())
}

/// Reads a unary answer: its message, or the status it failed with (`broken` names a body that is neither).
pub async fn read_unary(response: http::Response<Body>, broken: impl Fn(&str) -> Status) -> Result<Bytes, Status> {
    if let Some(status) = header_status(&response)
        && status.code() != tonic::Code::Ok
    {
        return Err(status);
    }
    let collected = response.into_body().collect().await.map_err(|error| broken(&error.to_string()))?;
    if let Some(status) = collected.trailers().and_then(Status::from_header_map)
        && status.code() != tonic::Code::Ok
    {
        return Err(status);
    }
    let bytes = collected.to_bytes();
    message_of(&bytes).map(Bytes::copy_from_slice).ok_or_else(|| broken("not one uncompressed message"))
}

/// A successful unary answer carrying `message`.
///
/// # Panics
/// Never: the header values are constants.
#[must_use]
pub fn unary_response(message: &[u8]) -> http::Response<Body> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let body = Full::new(framed(message)).with_trailers(async move { Some(Ok(trailers)) });
    let mut response = http::Response::new(Body::new(body));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_read_only_from_one_whole_uncompressed_frame() {
        let body = framed(b"hello");
        assert_eq!(message_of(&body), Some(&b"hello"[..]));
        assert_eq!(message_of(&body[..body.len() - 1]), None, "cut short");
        let mut compressed = body.to_vec();
        compressed[0] = 1;
        assert_eq!(message_of(&compressed), None, "compressed");
        assert_eq!(message_of(&[]), None);
        assert_eq!(message_of(&framed(b"")), Some(&b""[..]), "an empty message is a message");
    }

    #[tokio::test]
    async fn an_answer_made_here_reads_back_and_an_error_reads_as_its_status() {
        let broken = |why: &str| Status::internal(why.to_owned());
        let read = read_unary(unary_response(b"merged"), broken).await.expect("a message");
        assert_eq!(&read[..], b"merged");
        let failed = Status::not_found("no such booking").into_http::<Body>();
        let status = read_unary(failed, broken).await.expect_err("a status");
        assert_eq!(status.code(), tonic::Code::NotFound);
    }
}
