//! How events and state images become bytes for the log and snapshots.
//!
//! Format: the storage layer frames each log record (length, crc32c, position) and each snapshot (magic, version,
//! crc32c); inside a frame, the payload is the [postcard](https://postcard.jamesmunns.com/wire-format) encoding of an
//! [`Event`] (log) or an [`Image`] (snapshot): varint integers, length-prefixed strings and sequences, enum variants by
//! index. Variant order is part of the format: new variants are appended, never inserted. Every decoded value is checked
//! again by the domain when applied (pair assertions).

use crate::domain::{Event, Image};

/// A payload that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode {what}: {source}")]
pub struct DecodeError {
    /// Event or image.
    what: &'static str,
    /// The decoder's reason.
    source: postcard::Error,
}

/// Encodes a log event.
#[must_use]
pub fn encode_event(event: &Event) -> Vec<u8> {
    postcard::to_stdvec(event).expect("events encode: no maps with non-string keys, no unsupported types")
}

/// Decodes a log event.
pub fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    postcard::from_bytes(bytes).map_err(|source| DecodeError { what: "log event", source })
}

/// Encodes a snapshot image.
#[must_use]
pub fn encode_image(image: &Image) -> Vec<u8> {
    postcard::to_stdvec(image).expect("images encode")
}

/// Decodes a snapshot image.
pub fn decode_image(bytes: &[u8]) -> Result<Image, DecodeError> {
    postcard::from_bytes(bytes).map_err(|source| DecodeError { what: "snapshot image", source })
}
