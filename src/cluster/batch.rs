//! The body of one JetStream message of an office's log: one group-committed batch of records.
//!
//! Owns encoding and decoding of a batch body and its message id. It must not do I/O and must not interpret the
//! records' payloads (the engine's events): each record is framed exactly as the local log frames it
//! (`storage::encode_record`: length, crc32c, position, payload), so a record reads the same from a segment file and
//! from the stream.
//!
//! # Format (all integers little-endian)
//!
//! ```text
//! offset  size  field
//! 0       8     magic "ANTRBAT\0"
//! 8       2     format version, u16 (= 1)
//! 10      2     reserved, u16 (= 0)
//! 12      4     record count, u32 (at least 1)
//! 16      8     epoch, u64: the writer's office lease revision when it took the office
//! 24      8     first position, u64: the log position of the first record (at least 1)
//! 32      4     crc32c of bytes 0..32, u32
//! 36      ...   the records, one record frame each, at first position, first position + 1, ...; nothing after them
//! ```
//!
//! Every record frame carries its own checksum, so the header checksum covers only the header.

use crate::storage::{Decoded, LogPosition, decode_record, encode_record};

/// The magic bytes that open a batch body.
pub const BATCH_MAGIC: [u8; 8] = *b"ANTRBAT\0";
/// The batch format version this code writes and reads.
pub const BATCH_FORMAT_VERSION: u16 = 1;
/// Bytes of the batch header, its checksum included.
pub const BATCH_HEADER_BYTES: usize = 36;

/// What a batch says about where it belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// The lease revision of the writer when it took the office.
    pub epoch: u64,
    /// Position of the batch's first record.
    pub first_position: LogPosition,
    /// Records in the batch.
    pub record_count: u32,
}

impl BatchHeader {
    /// Position of the batch's last record.
    #[must_use]
    pub fn last_position(&self) -> LogPosition {
        LogPosition(self.first_position.0 + u64::from(self.record_count) - 1)
    }
}

/// A decoded batch: its header and its records' payloads, in position order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedBatch {
    /// Epoch, first position and count.
    pub header: BatchHeader,
    /// The payloads, the first at `header.first_position`.
    pub payloads: Vec<Vec<u8>>,
}

/// Why a batch body could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid log batch: {detail}")]
pub struct BatchError {
    /// What is wrong.
    pub detail: String,
}

fn refuse<T>(detail: impl Into<String>) -> Result<T, BatchError> {
    Err(BatchError { detail: detail.into() })
}

/// The `Nats-Msg-Id` of a batch: `office/epoch/first_position`. A retry of an append whose outcome is unknown sends the
/// same id, and the stream's duplicate window stores it once.
#[must_use]
pub fn message_id(office: &str, epoch: u64, first_position: LogPosition) -> String {
    format!("{office}/{epoch}/{}", first_position.0)
}

/// Encodes `payloads` as one batch starting at `first_position`.
///
/// # Panics
/// If `payloads` is empty, holds more than `u32::MAX` records, or `first_position` is 0: callers never build such a
/// batch.
#[must_use]
pub fn encode_batch(epoch: u64, first_position: LogPosition, payloads: &[Vec<u8>]) -> Vec<u8> {
    assert!(!payloads.is_empty(), "a batch holds at least one record");
    assert!(first_position.0 >= 1, "log positions start at 1");
    let record_count = u32::try_from(payloads.len()).expect("record count fits in u32");
    let body_bytes: usize = payloads.iter().map(|payload| 16 + payload.len()).sum();
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body_bytes);
    out.extend_from_slice(&BATCH_MAGIC);
    out.extend_from_slice(&BATCH_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&record_count.to_le_bytes());
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&first_position.0.to_le_bytes());
    let checksum = crc32c::crc32c(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    for (offset, payload) in (0u64..).zip(payloads) {
        encode_record(&mut out, LogPosition(first_position.0 + offset), payload);
    }
    debug_assert_eq!(decode_batch(&out).map(|batch| batch.payloads.len()), Ok(payloads.len()));
    out
}

/// Reads only the header of a batch body (checked), without its records.
pub fn decode_batch_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let Some(header) = bytes.get(..BATCH_HEADER_BYTES) else {
        return refuse(format!("{} bytes is shorter than the header", bytes.len()));
    };
    if header[0..8] != BATCH_MAGIC {
        return refuse("bad magic");
    }
    let stored_checksum = u32::from_le_bytes(header[32..36].try_into().expect("slice of 4"));
    if crc32c::crc32c(&header[..32]) != stored_checksum {
        return refuse("header checksum mismatch");
    }
    let version = u16::from_le_bytes(header[8..10].try_into().expect("slice of 2"));
    if version != BATCH_FORMAT_VERSION {
        return refuse(format!("format version {version}, this build reads {BATCH_FORMAT_VERSION}"));
    }
    let record_count = u32::from_le_bytes(header[12..16].try_into().expect("slice of 4"));
    let epoch = u64::from_le_bytes(header[16..24].try_into().expect("slice of 8"));
    let first_position = u64::from_le_bytes(header[24..32].try_into().expect("slice of 8"));
    if record_count == 0 || first_position == 0 || first_position.checked_add(u64::from(record_count)).is_none() {
        return refuse(format!("impossible header: {record_count} records from position {first_position}"));
    }
    Ok(BatchHeader { epoch, first_position: LogPosition(first_position), record_count })
}

/// Decodes a whole batch body: header, then exactly `record_count` frames at consecutive positions, then nothing.
pub fn decode_batch(bytes: &[u8]) -> Result<DecodedBatch, BatchError> {
    let header = decode_batch_header(bytes)?;
    let mut rest = &bytes[BATCH_HEADER_BYTES..];
    // Each frame is at least 16 bytes, so a corrupt count cannot make this allocate more than the body's size.
    let mut payloads = Vec::with_capacity((header.record_count as usize).min(rest.len() / 16));
    for offset in 0..u64::from(header.record_count) {
        let expected = LogPosition(header.first_position.0 + offset);
        match decode_record(rest) {
            Decoded::Record { position, payload, frame_bytes } if position == expected => {
                payloads.push(payload.to_vec());
                rest = &rest[frame_bytes as usize..];
            }
            Decoded::Record { position, .. } => {
                return refuse(format!("record at position {} where {} was due", position.0, expected.0));
            }
            Decoded::Incomplete { detail } | Decoded::Corrupt { detail } => {
                return refuse(format!("record {}: {detail}", expected.0));
            }
        }
    }
    if !rest.is_empty() {
        return refuse(format!("{} bytes after the last record", rest.len()));
    }
    Ok(DecodedBatch { header, payloads })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads() -> Vec<Vec<u8>> {
        vec![b"first".to_vec(), Vec::new(), vec![7; 300]]
    }

    #[test]
    fn a_batch_round_trips_with_its_header() {
        let bytes = encode_batch(42, LogPosition(10), &payloads());
        let batch = decode_batch(&bytes).expect("valid");
        assert_eq!(batch.header, BatchHeader { epoch: 42, first_position: LogPosition(10), record_count: 3 });
        assert_eq!(batch.header.last_position(), LogPosition(12));
        assert_eq!(batch.payloads, payloads());
        assert_eq!(&bytes[..8], b"ANTRBAT\0");
        assert_eq!(bytes.len(), BATCH_HEADER_BYTES + 3 * 16 + 5 + 300);
    }

    #[test]
    fn records_are_framed_as_the_local_log_frames_them() {
        let bytes = encode_batch(1, LogPosition(5), &[b"hello".to_vec()]);
        let mut local = Vec::new();
        encode_record(&mut local, LogPosition(5), b"hello");
        assert_eq!(&bytes[BATCH_HEADER_BYTES..], local.as_slice());
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let bytes = encode_batch(3, LogPosition(1), &payloads());
        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x01;
            assert!(decode_batch(&damaged).is_err(), "flipped byte {index} went unnoticed");
        }
        for length in 0..bytes.len() {
            assert!(decode_batch(&bytes[..length]).is_err(), "cut at {length} went unnoticed");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_batch(&longer).is_err(), "a trailing byte went unnoticed");
    }

    #[test]
    fn the_message_id_names_office_epoch_and_first_position() {
        assert_eq!(message_id("kanim-batam", 7, LogPosition(1201)), "kanim-batam/7/1201");
    }
}
