//! Start-up: load the newest valid snapshot, replay the log after it, and hand back a book ready to serve; or, for a
//! replicated log, the same from an image and records the caller read (`replay_records_after`).
//!
//! Architecture invariant: nothing is served until this returns; the health service says NOT_SERVING meanwhile.

use super::codec;
use super::error::EngineError;
use crate::domain::{BookRules, QuotaBook};
use crate::storage::{self, LogPosition, LogReadReport, LogRecords};
use std::path::Path;
use std::time::{Duration, Instant};

/// What recovery found and did.
#[derive(Debug)]
pub struct RecoveryReport {
    /// Position of the snapshot loaded, if any.
    pub snapshot_position: Option<u64>,
    /// Log records replayed after it.
    pub records_replayed: u64,
    /// The log reader's report (truncation, tail).
    pub log: LogReadReport,
    /// Wall time taken.
    pub duration: Duration,
}

/// Rebuilds the book from `snapshot_dir` and `wal_dir`.
pub fn recover(
    rules: BookRules,
    snapshot_dir: &Path,
    wal_dir: &Path,
    accept_truncation: bool,
) -> Result<(QuotaBook, RecoveryReport), EngineError> {
    let started = Instant::now();
    for dir in [snapshot_dir, wal_dir] {
        storage::create_private_dir_all(dir).map_err(|source| EngineError::DataDir { path: dir.to_owned(), source })?;
    }
    let snapshot = storage::load_latest_snapshot(snapshot_dir)?;
    let (mut book, after) = match &snapshot {
        Some(loaded) => {
            for (path, reason) in &loaded.skipped {
                tracing::warn!(path = %path.display(), reason, "snapshot invalid, trying older");
            }
            let image = codec::decode_image(&loaded.payload)?;
            (QuotaBook::from_image(rules, image)?, loaded.position)
        }
        None => (QuotaBook::new(rules), LogPosition(0)),
    };
    let log = storage::read_log(wal_dir, after, accept_truncation, |_, payload| -> Result<(), EngineError> {
        book.replay(&codec::decode_event(payload)?);
        Ok(())
    })?;
    if let Some(truncation) = &log.truncation {
        tracing::warn!(
            segment = %truncation.segment.display(),
            offset = truncation.offset,
            bytes_removed = truncation.bytes_removed,
            mid_log = truncation.mid_log,
            reason = %truncation.reason,
            "log truncated during recovery"
        );
    }
    if cfg!(debug_assertions) {
        book.check_invariants().map_err(|violation| EngineError::Invariant { violation })?;
    }
    let report = RecoveryReport {
        snapshot_position: snapshot.map(|loaded| loaded.position.0),
        records_replayed: log.records_delivered,
        log,
        duration: started.elapsed(),
    };
    Ok((book, report))
}

/// Rebuilds the book from `records` alone (a replicated log read back in position order, from its first record), with
/// no snapshot. The report's `log` describes the records as a local read would (no directory, no tail, no truncation).
pub fn replay_records(rules: BookRules, records: LogRecords) -> Result<(QuotaBook, RecoveryReport), EngineError> {
    replay_records_after(rules, None, records)
}

/// Rebuilds the book from `snapshot` (the position an image covers and the image as [`codec::encode_image`] made it;
/// none: an empty book) and `records`, the log's records after that position in position order. The caller has checked
/// that the records follow on from the snapshot; an image that does not decode is an error.
pub fn replay_records_after(
    rules: BookRules,
    snapshot: Option<(LogPosition, &[u8])>,
    records: LogRecords,
) -> Result<(QuotaBook, RecoveryReport), EngineError> {
    let started = Instant::now();
    let mut book = match snapshot {
        Some((_, image)) => QuotaBook::from_image(rules, codec::decode_image(image)?)?,
        None => QuotaBook::new(rules),
    };
    let snapshot_position = snapshot.map(|(position, _)| position);
    let mut bytes_delivered = 0u64;
    let mut last_position = snapshot_position.unwrap_or(LogPosition(0));
    for (position, payload) in &records {
        debug_assert_eq!(position.0, last_position.0 + 1, "records follow on from the snapshot");
        book.replay(&codec::decode_event(payload)?);
        bytes_delivered += storage::RECORD_HEADER_BYTES + payload.len() as u64;
        last_position = *position;
    }
    if cfg!(debug_assertions) {
        book.check_invariants().map_err(|violation| EngineError::Invariant { violation })?;
    }
    let log = LogReadReport {
        dir: std::path::PathBuf::new(),
        records_delivered: records.len() as u64,
        bytes_delivered,
        last_position,
        segments_read: 0,
        temporary_segments_deleted: 0,
        truncation: None,
        tail: None,
    };
    let report = RecoveryReport {
        snapshot_position: snapshot_position.map(|position| position.0),
        records_replayed: log.records_delivered,
        log,
        duration: started.elapsed(),
    };
    Ok((book, report))
}
