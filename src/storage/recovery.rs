//! Start-up reading of the log: streams every record after a snapshot to the caller and repairs a torn tail.
//!
//! Owns the rules for telling a torn tail (expected after a crash, cut silently and reported) from corruption in the
//! middle of the log (refused unless the operator accepts losing everything after it). It must not interpret payloads
//! and must not run while a writer has the directory open.
//!
//! # Rules
//!
//! - Segments must chain: each starts at the position after the last record of the one before, and the first starts
//!   at or before `after + 1`. Records inside a segment must have consecutive positions.
//! - A bad frame (partial header, length past the end, checksum mismatch) in the last segment with no valid frame
//!   anywhere after it is a torn tail: the file is cut at the last good record and the report says so.
//! - A bad frame in any other segment, a bad frame followed by a valid one, a bad segment header, or positions that
//!   do not chain is corruption: [`StorageError::CorruptLog`], unless `accept_truncation` is set, in which case the
//!   log is cut at the bad frame and all later segments are deleted.
//! - Foreign files (bad magic) and other format versions are always refused.
//!
//! Memory use is one segment at a time: each segment is read whole, then its records are passed by reference.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use super::error::{Result, StorageError};
use super::file::sync_directory;
use super::record::{Decoded, RECORD_HEADER_BYTES, decode_record};
use super::segment::{
    SEGMENT_HEADER_BYTES, SegmentFile, decode_segment_header, delete_temporary_segments, list_segments,
};
use super::sink::LogPosition;

/// Records read into memory by [`collect_log`], in position order.
pub type LogRecords = Vec<(LogPosition, Vec<u8>)>;

/// What [`read_log`] found and repaired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogReadReport {
    /// The directory read; `Wal::open` checks it is given the same one.
    pub dir: PathBuf,
    /// Records passed to the callback, that is records with position above `after`.
    pub records_delivered: u64,
    /// Frame bytes of those records: the log a snapshot taken now would spare the next start from replaying.
    pub bytes_delivered: u64,
    /// The highest position in the log after repair, or `after` if the log holds no records.
    /// The writer continues at `last_position + 1`.
    pub last_position: LogPosition,
    /// Segments read, including any later cut or deleted.
    pub segments_read: u32,
    /// Half-created segment files (`.log.tmp`) deleted.
    pub temporary_segments_deleted: u32,
    /// The cut made, if any.
    pub truncation: Option<Truncation>,
    /// The newest segment after repair, which the writer appends to; None if the directory holds no segments.
    pub tail: Option<TailSegment>,
}

/// A cut made by [`read_log`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The segment cut.
    pub segment: PathBuf,
    /// Byte offset of the cut: the segment now ends here. 0 means the segment was deleted.
    pub offset: u64,
    /// Bytes removed from `segment`.
    pub bytes_removed: u64,
    /// Later segments deleted, oldest first. Empty for a torn tail.
    pub segments_deleted: Vec<PathBuf>,
    /// Whether valid data followed the damage (accepted only because `accept_truncation` was set).
    pub mid_log: bool,
    /// What was wrong at the cut.
    pub reason: String,
}

/// The segment the writer continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailSegment {
    /// The file.
    pub path: PathBuf,
    /// Position of its first record.
    pub first_position: LogPosition,
    /// Its length after repair; the writer refuses to start if the file length differs.
    pub length_bytes: u64,
}

/// Reads the log in `dir`, calls `on_record` for every record with position above `after`, in position order, and
/// repairs the tail as described in the module documentation.
///
/// On error the callback may already have seen a prefix of the records; the caller must discard what it built.
pub fn read_log<E, F>(
    dir: &Path,
    after: LogPosition,
    accept_truncation: bool,
    mut on_record: F,
) -> std::result::Result<LogReadReport, E>
where
    E: From<StorageError>,
    F: FnMut(LogPosition, &[u8]) -> std::result::Result<(), E>,
{
    let temporary_segments_deleted = delete_temporary_segments(dir)?;
    let segments = list_segments(dir)?;
    if let Some(first) = segments.first()
        && first.first_position.0 > after.0 + 1
    {
        return Err(mismatch(after, format!("the log starts at position {}", first.first_position.0)).into());
    }
    let mut chain =
        Chain { expected: segments.first().map(|segment| segment.first_position.0), delivered: 0, delivered_bytes: 0 };
    let mut report = LogReadReport {
        dir: dir.to_owned(),
        records_delivered: 0,
        bytes_delivered: 0,
        last_position: after,
        segments_read: 0,
        temporary_segments_deleted,
        truncation: None,
        tail: None,
    };
    for (index, segment) in segments.iter().enumerate() {
        report.segments_read += 1;
        let is_last = index + 1 == segments.len();
        let bytes = std::fs::read(&segment.path).map_err(|source| StorageError::io("read", &segment.path, source))?;
        let damage = scan_segment(segment, &bytes, is_last, after, &mut chain, &mut on_record)?;
        let tail = TailSegment { path: segment.path.clone(), first_position: segment.first_position, length_bytes: 0 };
        let Some(damage) = damage else {
            report.tail = Some(TailSegment { length_bytes: bytes.len() as u64, ..tail });
            continue;
        };
        if damage.mid_log && !accept_truncation {
            return Err(StorageError::CorruptLog {
                segment: segment.path.clone(),
                offset: damage.offset,
                detail: damage.detail,
            }
            .into());
        }
        let truncation = cut_log(dir, segment, bytes.len() as u64, damage, &segments[index + 1..])?;
        if truncation.offset > 0 {
            report.tail = Some(TailSegment { length_bytes: truncation.offset, ..tail });
        }
        report.truncation = Some(truncation);
        break;
    }
    finish_report(&mut report, &chain, after)?;
    Ok(report)
}

/// Reads the whole log into memory: [`read_log`] for tests and small logs.
pub fn collect_log(dir: &Path, after: LogPosition, accept_truncation: bool) -> Result<(LogReadReport, LogRecords)> {
    let mut records = Vec::new();
    let report = read_log(dir, after, accept_truncation, |position, payload| {
        records.push((position, payload.to_vec()));
        Ok::<(), StorageError>(())
    })?;
    Ok((report, records))
}

/// Position bookkeeping across segments.
struct Chain {
    /// The position the next record must have; None before the first segment.
    expected: Option<u64>,
    /// Records passed to the callback.
    delivered: u64,
    /// Their frame bytes.
    delivered_bytes: u64,
}

/// Where and why a segment stops being valid.
#[derive(Debug)]
struct Damage {
    offset: u64,
    detail: String,
    mid_log: bool,
}

/// Validates one segment's header and records, delivering records above `after`. Returns the first damage found.
fn scan_segment<E, F>(
    segment: &SegmentFile,
    bytes: &[u8],
    is_last: bool,
    after: LogPosition,
    chain: &mut Chain,
    on_record: &mut F,
) -> std::result::Result<Option<Damage>, E>
where
    E: From<StorageError>,
    F: FnMut(LogPosition, &[u8]) -> std::result::Result<(), E>,
{
    let first_position = match decode_segment_header(segment, bytes) {
        Ok(first_position) => first_position,
        Err(StorageError::CorruptLog { detail, .. }) => return Ok(Some(Damage { offset: 0, detail, mid_log: true })),
        Err(error) => return Err(error.into()),
    };
    let expected = chain.expected.unwrap_or(first_position.0);
    if first_position.0 != expected {
        let detail = format!("segment starts at position {} but the log continues at {expected}", first_position.0);
        return Ok(Some(Damage { offset: 0, detail, mid_log: true }));
    }
    let mut offset = SEGMENT_HEADER_BYTES as usize;
    let mut next_position = expected;
    while offset < bytes.len() {
        let (position, payload, frame_bytes) = match decode_record(&bytes[offset..]) {
            Decoded::Record { position, payload, frame_bytes } => (position, payload, frame_bytes),
            Decoded::Incomplete { detail } | Decoded::Corrupt { detail } => {
                let mid_log = !is_last || valid_record_after(bytes, offset + 1);
                chain.expected = Some(next_position);
                return Ok(Some(Damage { offset: offset as u64, detail, mid_log }));
            }
        };
        if position.0 != next_position {
            let detail = format!("record has position {} but the log continues at {next_position}", position.0);
            chain.expected = Some(next_position);
            return Ok(Some(Damage { offset: offset as u64, detail, mid_log: true }));
        }
        if position > after {
            on_record(position, payload)?;
            chain.delivered += 1;
            chain.delivered_bytes += frame_bytes;
        }
        next_position += 1;
        offset += frame_bytes as usize;
    }
    chain.expected = Some(next_position);
    Ok(None)
}

/// Whether any offset at or after `start` holds a frame that decodes as a valid record.
fn valid_record_after(bytes: &[u8], start: usize) -> bool {
    let last_start = bytes.len().saturating_sub(RECORD_HEADER_BYTES as usize);
    (start..=last_start).any(|offset| matches!(decode_record(&bytes[offset..]), Decoded::Record { .. }))
}

/// Cuts `segment` at the damage (deleting it if the damage is in its header) and deletes every later segment.
fn cut_log(
    dir: &Path,
    segment: &SegmentFile,
    length_bytes: u64,
    damage: Damage,
    later: &[SegmentFile],
) -> Result<Truncation> {
    let path = &segment.path;
    if damage.offset == 0 {
        std::fs::remove_file(path).map_err(|source| StorageError::io("delete", path, source))?;
    } else {
        let file =
            OpenOptions::new().write(true).open(path).map_err(|source| StorageError::io("open", path, source))?;
        file.set_len(damage.offset).map_err(|source| StorageError::io("truncate", path, source))?;
        file.sync_all().map_err(|source| StorageError::io("fsync", path, source))?;
    }
    let mut segments_deleted = Vec::new();
    for segment in later {
        std::fs::remove_file(&segment.path).map_err(|source| StorageError::io("delete", &segment.path, source))?;
        segments_deleted.push(segment.path.clone());
    }
    sync_directory(dir)?;
    let truncation = Truncation {
        segment: path.clone(),
        offset: damage.offset,
        bytes_removed: length_bytes - damage.offset,
        segments_deleted,
        mid_log: damage.mid_log,
        reason: damage.detail,
    };
    if truncation.mid_log {
        tracing::error!(segment = %path.display(), offset = truncation.offset, reason = %truncation.reason,
            segments_deleted = truncation.segments_deleted.len(), "cut corrupt log as accepted by the operator");
    } else {
        tracing::warn!(segment = %path.display(), offset = truncation.offset, bytes_removed = truncation.bytes_removed,
            reason = %truncation.reason, "cut torn tail of log");
    }
    Ok(truncation)
}

/// Fills in the last position and checks the log reaches the snapshot.
fn finish_report(report: &mut LogReadReport, chain: &Chain, after: LogPosition) -> Result<()> {
    report.records_delivered = chain.delivered;
    report.bytes_delivered = chain.delivered_bytes;
    let Some(next_position) = chain.expected.filter(|_| report.tail.is_some()) else {
        report.last_position = after;
        return Ok(());
    };
    report.last_position = LogPosition(next_position - 1);
    if report.last_position < after {
        return Err(mismatch(after, format!("the log ends at position {}", report.last_position.0)));
    }
    Ok(())
}

fn mismatch(after: LogPosition, detail: String) -> StorageError {
    StorageError::LogSnapshotMismatch { snapshot_position: after.0, detail }
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
