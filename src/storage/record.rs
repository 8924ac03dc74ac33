//! The log record frame: how one opaque payload and its position are laid out in a segment.
//!
//! Owns encoding and decoding of a single record. It must not do I/O and must not interpret payloads.
//!
//! # Format (all integers little-endian)
//!
//! ```text
//! offset  size  field
//! 0       4     payload length in bytes, u32
//! 4       4     crc32c, u32, computed over bytes 0..4 (length), then bytes 8..16 (position), then the payload
//! 8       8     position, u64; 1 for the first record ever written, then +1 per record
//! 16      len   payload, opaque bytes
//! ```
//!
//! A frame is therefore `16 + len` bytes, with no padding or alignment. The checksum covers every byte of the frame
//! except itself, so a torn write, a flipped bit, or a frame copied to another position are all detected. A length of
//! zero is legal. Lengths above [`RECORD_PAYLOAD_BYTES_LIMIT`] are invalid in any file, whatever the writer's
//! `record_bytes_max`, so a corrupt length field cannot make a reader allocate or scan gigabytes.

use super::sink::LogPosition;

/// Bytes in a record frame before the payload.
pub const RECORD_HEADER_BYTES: u64 = 16;

/// The largest payload length the format allows, 64 MiB. `WalOptions::record_bytes_max` must not exceed it.
pub const RECORD_PAYLOAD_BYTES_LIMIT: u32 = 64 * 1024 * 1024;

/// Result of decoding one frame at the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record.
    Record {
        /// The record's position.
        position: LogPosition,
        /// The payload, borrowed from the input.
        payload: &'a [u8],
        /// Bytes the whole frame occupies, header included.
        frame_bytes: u64,
    },
    /// The slice ends before the frame does: a partial header, or a length that runs past the end.
    Incomplete {
        /// What is missing.
        detail: String,
    },
    /// The frame is complete but invalid: checksum mismatch, zero position or an impossible length.
    Corrupt {
        /// What is wrong.
        detail: String,
    },
}

/// Bytes a frame for a payload of `payload_bytes` occupies.
pub fn frame_bytes(payload_bytes: u64) -> u64 {
    RECORD_HEADER_BYTES + payload_bytes
}

/// Appends the frame for `payload` at `position` to `out`.
///
/// # Panics
/// If `position` is 0 or the payload is longer than [`RECORD_PAYLOAD_BYTES_LIMIT`]; callers validate both first.
pub fn encode_record(out: &mut Vec<u8>, position: LogPosition, payload: &[u8]) {
    assert!(position.0 >= 1, "record position must be at least 1");
    let length = u32::try_from(payload.len())
        .ok()
        .filter(|length| *length <= RECORD_PAYLOAD_BYTES_LIMIT)
        .unwrap_or_else(|| panic!("record payload of {} bytes exceeds the format limit", payload.len()));
    let start = out.len();
    let length_bytes = length.to_le_bytes();
    let position_bytes = position.0.to_le_bytes();
    out.extend_from_slice(&length_bytes);
    out.extend_from_slice(&checksum(length_bytes, position_bytes, payload).to_le_bytes());
    out.extend_from_slice(&position_bytes);
    out.extend_from_slice(payload);
    debug_assert_eq!(
        decode_record(&out[start..]),
        Decoded::Record { position, payload, frame_bytes: frame_bytes(u64::from(length)) }
    );
}

/// Decodes the frame at the start of `bytes`, validating its length, checksum and position.
#[must_use]
pub fn decode_record(bytes: &[u8]) -> Decoded<'_> {
    let Some(header) = bytes.get(..16) else {
        return Decoded::Incomplete { detail: format!("partial record header of {} bytes", bytes.len()) };
    };
    let length_bytes: [u8; 4] = header[0..4].try_into().expect("slice of 4");
    let stored_checksum = u32::from_le_bytes(header[4..8].try_into().expect("slice of 4"));
    let position_bytes: [u8; 8] = header[8..16].try_into().expect("slice of 8");
    let length = u32::from_le_bytes(length_bytes);
    if length > RECORD_PAYLOAD_BYTES_LIMIT {
        return Decoded::Corrupt { detail: format!("record length {length} exceeds the format limit") };
    }
    let frame_end = 16 + length as usize;
    let Some(payload) = bytes.get(16..frame_end) else {
        return Decoded::Incomplete {
            detail: format!("record of {length} payload bytes runs past the end of the segment"),
        };
    };
    let computed_checksum = checksum(length_bytes, position_bytes, payload);
    if computed_checksum != stored_checksum {
        return Decoded::Corrupt {
            detail: format!(
                "record checksum mismatch (stored {stored_checksum:#010x}, computed {computed_checksum:#010x})"
            ),
        };
    }
    let position = u64::from_le_bytes(position_bytes);
    if position == 0 {
        return Decoded::Corrupt { detail: "record position is 0".to_owned() };
    }
    Decoded::Record { position: LogPosition(position), payload, frame_bytes: frame_bytes(u64::from(length)) }
}

/// The frame checksum: length bytes, then position bytes, then payload.
fn checksum(length_bytes: [u8; 4], position_bytes: [u8; 8], payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&length_bytes);
    let crc = crc32c::crc32c_append(crc, &position_bytes);
    crc32c::crc32c_append(crc, payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(position: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(&mut out, LogPosition(position), payload);
        out
    }

    #[test]
    fn round_trip_and_layout() {
        let bytes = encoded(7, b"hello");
        assert_eq!(bytes.len(), 21);
        assert_eq!(&bytes[0..4], &5u32.to_le_bytes());
        assert_eq!(&bytes[8..16], &7u64.to_le_bytes());
        assert_eq!(&bytes[16..], b"hello");
        assert_eq!(
            decode_record(&bytes),
            Decoded::Record { position: LogPosition(7), payload: b"hello", frame_bytes: 21 }
        );
    }

    #[test]
    fn empty_payload_is_legal() {
        let bytes = encoded(1, b"");
        assert!(matches!(decode_record(&bytes), Decoded::Record { frame_bytes: 16, .. }));
    }

    #[test]
    fn every_truncation_is_incomplete() {
        let bytes = encoded(3, b"some payload");
        for cut in 0..bytes.len() {
            assert!(matches!(decode_record(&bytes[..cut]), Decoded::Incomplete { .. }), "cut at {cut}");
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let bytes = encoded(3, b"abc");
        for index in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[index] ^= 1 << bit;
                assert!(
                    !matches!(decode_record(&damaged), Decoded::Record { .. }),
                    "flip of bit {bit} in byte {index} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn oversized_length_is_corrupt_not_incomplete() {
        let mut bytes = encoded(3, b"abc");
        bytes[0..4].copy_from_slice(&(RECORD_PAYLOAD_BYTES_LIMIT + 1).to_le_bytes());
        assert!(matches!(decode_record(&bytes), Decoded::Corrupt { .. }));
    }

    #[test]
    #[should_panic(expected = "at least 1")]
    fn position_zero_is_refused_at_encode() {
        encoded(0, b"x");
    }

    proptest! {
        #[test]
        fn random_payloads_round_trip(
            position in 1u64..u64::MAX,
            payload in proptest::collection::vec(any::<u8>(), 0..2048),
            trailing in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let mut bytes = encoded(position, &payload);
            let frame = bytes.len() as u64;
            bytes.extend_from_slice(&trailing);
            prop_assert_eq!(
                decode_record(&bytes),
                Decoded::Record { position: LogPosition(position), payload: &payload, frame_bytes: frame }
            );
        }
    }
}
