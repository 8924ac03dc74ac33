//! Durable storage of opaque byte payloads: a write-ahead log with group commit, and snapshots.
//!
//! Owns every byte antrean puts on disk: the record frame, log segment files, the writer thread that batches many
//! appends into one write and one fsync, start-up recovery of the log (including repair of a torn tail), snapshot
//! files, and a file seam through which tests inject faults. It must not know what a payload means: the engine encodes
//! its events and state to bytes and decodes them again. Nothing here runs blocking I/O on an async runtime thread;
//! only [`LogSink::wait_durable`] is async.
//!
//! # Layout
//!
//! - `error.rs`: [`StorageError`] and [`Result`].
//! - `record.rs`: the record frame, byte by byte.
//! - `segment.rs`: segment file names and header, creation, listing, [`prune_segments`].
//! - `file.rs`: the [`LogFile`] / [`FileOpener`] seam, its `std::fs` implementation and the [`FaultPlan`] one.
//! - `wal.rs`: [`Wal`], [`WalOptions`], [`FsyncMode`], the [`LogSink`] implementation.
//! - `writer.rs`: the group-commit writer thread.
//! - `durability.rs`: the durable position and the tasks waiting on it.
//! - `stats.rs`: [`WalStats`] and [`WalObserver`] for the metrics layer.
//! - `recovery.rs`: [`read_log`] and its torn-tail and corruption rules.
//! - `snapshot.rs`: [`write_snapshot`], [`SnapshotWriter`], [`load_latest_snapshot`].
//!
//! # Start-up sequence
//!
//! 1. [`load_latest_snapshot`] gives the state at some position P (or nothing, P = 0).
//! 2. [`read_log`] with `after = P` streams the records after P and repairs the tail.
//! 3. [`Wal::open`] with that report continues the log at the report's `last_position + 1`.
//!
//! After [`write_snapshot`], call [`prune_segments`] with the returned `oldest_kept_position`.

mod durability;
mod error;
mod file;
mod record;
mod recovery;
mod segment;
mod snapshot;
mod stats;
mod wal;
mod writer;

use std::future::Future;
use std::pin::Pin;

pub use error::{Result, StorageError};
pub use file::{FaultPlan, FaultyFileOpener, FileOpener, LogFile, StdFileOpener, StdLogFile};
pub use record::{Decoded, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_LIMIT, decode_record, encode_record};
pub use recovery::{LogReadReport, LogRecords, TailSegment, Truncation, collect_log, read_log};
pub use segment::{
    PruneReport, SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_BYTES, SegmentFile, list_segments, prune_segments,
    segment_file_name,
};
pub use snapshot::{
    LoadedSnapshot, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_HEADER_BYTES, SNAPSHOTS_KEPT, SnapshotInfo, SnapshotWriter,
    load_latest_snapshot, snapshot_file_name, write_snapshot,
};
pub use stats::{WalObserver, WalStats};
pub use wal::{FsyncMode, Wal, WalOptions};

/// Sequence number of a log record: 1 for the first record ever written, then +1 per record, never reused.
/// Position 0 means "before the first record".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogPosition(pub u64);

/// The future returned by [`LogSink::wait_durable`].
pub type DurableFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// The seam between the engine and the log, so a replicated log could replace local files and tests can inject faults.
pub trait LogSink: Send + Sync + 'static {
    /// Appends one record and returns its position. Non-blocking and cheap: it is called while the caller holds
    /// in-memory shard locks, and the order of calls defines log order. Positions are assigned in call order. Never
    /// blocks on I/O. After the log has failed or closed, the position is still assigned but the record is dropped and
    /// waiting on it returns the error.
    fn append(&self, payload: Vec<u8>) -> LogPosition;

    /// Resolves once every record up to and including `position` is durable per the fsync mode; an error if the log
    /// has failed (a failed write or fsync is fatal: every current and future waiter gets the error; nothing is
    /// retried) or was closed first.
    fn wait_durable(&self, position: LogPosition) -> DurableFuture<'_>;

    /// Highest position known durable.
    fn durable_position(&self) -> LogPosition;

    /// Highest position assigned.
    fn last_position(&self) -> LogPosition;
}
