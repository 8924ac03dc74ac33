//! The log's options: where it lives, how batches are made durable, and the size limits of segments and batches.
//! There are no defaults here: durability settings are always chosen explicitly by the caller.

use super::error::{Result, StorageError};
use super::record::{RECORD_PAYLOAD_BYTES_LIMIT, frame_bytes};
use super::segment::SEGMENT_HEADER_BYTES;
use std::path::PathBuf;

/// How the writer makes batches durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncMode {
    /// fdatasync after every batch; a waiter is released by the fsync that covers its record.
    Always,
    /// fdatasync at most once every `interval_ms`; waiters are still released only by an fsync that covers them, so
    /// this trades latency for fewer fsyncs.
    Batch {
        /// Minimum milliseconds between fsyncs; at least 1.
        interval_ms: u64,
    },
    /// Never fsync; waiters are released once their record is written to the operating system, which the waiting
    /// caller does itself (there is no writer thread). A power cut can lose acknowledged records. For tests and
    /// benchmarks only.
    None,
}

/// Options for [`Wal::open`](super::Wal::open). There are no defaults: durability settings are always chosen explicitly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// Directory holding the segment files.
    pub dir: PathBuf,
    /// Largest size of a segment file, header included. Must fit the segment header plus the largest record.
    pub segment_bytes_max: u64,
    /// How batches are made durable.
    pub fsync: FsyncMode,
    /// Most records the writer takes into one batch; at least 1.
    pub batch_records_max: u32,
    /// Most frame bytes the writer takes into one batch (a batch always holds at least one record); at least 1.
    pub batch_bytes_max: u64,
    /// Largest payload `append` accepts; at most `RECORD_PAYLOAD_BYTES_LIMIT`.
    pub record_bytes_max: u32,
}

impl WalOptions {
    /// Checks every option, naming the first bad one and why.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, reason: String| Err(StorageError::InvalidOptions { field, reason });
        if self.record_bytes_max == 0 || self.record_bytes_max > RECORD_PAYLOAD_BYTES_LIMIT {
            return invalid("record_bytes_max", format!("must be between 1 and {RECORD_PAYLOAD_BYTES_LIMIT}"));
        }
        let segment_bytes_min = SEGMENT_HEADER_BYTES + frame_bytes(u64::from(self.record_bytes_max));
        if self.segment_bytes_max < segment_bytes_min {
            return invalid(
                "segment_bytes_max",
                format!("must be at least {segment_bytes_min} to hold the largest record"),
            );
        }
        if self.batch_records_max == 0 {
            return invalid("batch_records_max", "must be at least 1".to_owned());
        }
        if self.batch_bytes_max == 0 {
            return invalid("batch_bytes_max", "must be at least 1".to_owned());
        }
        if self.fsync == (FsyncMode::Batch { interval_ms: 0 }) {
            return invalid("fsync", "batch interval_ms must be at least 1".to_owned());
        }
        Ok(())
    }
}
