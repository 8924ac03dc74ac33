//! How events and state images become bytes for the log and snapshots.
//!
//! Format: the storage layer frames each log record (length, crc32c, position) and each snapshot (magic, version,
//! crc32c); inside a frame, the payload is the [postcard](https://postcard.jamesmunns.com/wire-format) encoding of an
//! [`Event`] (log) or an [`Image`] (snapshot): varint integers, length-prefixed strings and sequences, enum variants by
//! index. Variant order is part of the format: new variants are appended, never inserted. Every decoded value is checked
//! again by the domain when applied (pair assertions).

use crate::domain::{Event, Image, ImageV2, ImageV3};

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

/// Decodes a snapshot image of the current version, or of version 3 (made current: its waiting rooms committed to no
/// draw secret) or 2 (also: its bookings have no owners).
/// The version is the image's first field, so it is read first to pick the layout.
pub fn decode_image(bytes: &[u8]) -> Result<Image, DecodeError> {
    let error = |source| DecodeError { what: "snapshot image", source };
    let (version, _) = postcard::take_from_bytes::<u16>(bytes).map_err(error)?;
    if version == 2 {
        return postcard::from_bytes::<ImageV2>(bytes).map(Image::from).map_err(error);
    }
    if version == 3 {
        return postcard::from_bytes::<ImageV3>(bytes).map(Image::from).map_err(error);
    }
    postcard::from_bytes(bytes).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_2_snapshot_image_still_loads() {
        let image = crate::domain::QuotaBook::new(crate::domain::BookRules::default()).image(7);
        let old = ImageV2 {
            version: 2,
            log_position: image.log_position,
            next_booking_id: 42,
            offices: image.offices.clone(),
            days: image.days.clone(),
            bookings: image.bookings.clone(),
            applicants: image.applicants.clone(),
            requests: image.requests.clone(),
            refunds: image.refunds.clone(),
            purged: image.purged.clone(),
            counters: image.counters.clone(),
            rooms: image.rooms.clone(),
        };
        let bytes = postcard::to_stdvec(&old).expect("encode");
        assert_eq!(decode_image(&bytes).expect("a version 2 image"), image);
        assert_eq!(decode_image(&encode_image(&image)).expect("a current image"), image);
        assert!(decode_image(&[0x80]).is_err(), "a truncated version");
    }

    #[test]
    fn a_version_3_snapshot_image_still_loads() {
        let image = crate::domain::QuotaBook::new(crate::domain::BookRules::default()).image(9);
        let old = ImageV3 {
            version: 3,
            log_position: image.log_position,
            offices: image.offices.clone(),
            days: image.days.clone(),
            bookings: image.bookings.clone(),
            applicants: image.applicants.clone(),
            requests: image.requests.clone(),
            refunds: image.refunds.clone(),
            purged: image.purged.clone(),
            counters: image.counters.clone(),
            rooms: image.rooms.clone(),
            owners: image.owners.clone(),
            next_ticket_id: image.next_ticket_id,
        };
        let bytes = postcard::to_stdvec(&old).expect("encode");
        assert_eq!(decode_image(&bytes).expect("a version 3 image"), image);
    }
}
