//! Durable storage of opaque byte payloads: a write-ahead log with group commit, and snapshots.
//!
//! Owns every byte antrean puts on disk: the record frame, log segment files, the writer thread that batches many
//! appends into one write and one fsync, start-up recovery of the log (including repair of a torn tail), snapshot
//! files, and a file seam through which tests inject faults. It must not know what a payload means: the engine encodes
//! its events and state to bytes and decodes them again. Nothing here runs blocking I/O on an async runtime thread,
//! except the one short buffered `write` a caller of [`LogSink::wait_durable`] makes itself with fsync `none` (no
//! fsync, so it never waits for the disk); only [`LogSink::wait_durable`] is async.
//!
//! # Layout
//!
//! - `error.rs`: [`StorageError`] and [`Result`].
//! - `record.rs`: the record frame, byte by byte.
//! - `segment.rs`: segment file names and header, creation, listing, [`prune_segments`].
//! - `file.rs`: the [`LogFile`] / [`FileOpener`] seam, its `std::fs` implementation and the [`FaultPlan`] one.
//! - `sink.rs`: [`LogSink`], the seam between the engine and a log, and [`LogPosition`].
//! - `options.rs`: [`WalOptions`] and [`FsyncMode`].
//! - `wal.rs`: [`Wal`], the local-file [`LogSink`].
//! - `writer.rs`: group commit: the writer thread (fsync `always`, `batch`) or the waiting caller (fsync `none`).
//! - `durability.rs`: the durable position and the tasks waiting on it, one shared notification per batch.
//! - `stats.rs`: [`WalStats`] and [`WalObserver`] for the metrics layer.
//! - `recovery.rs`: [`read_log`] and its torn-tail and corruption rules.
//! - `snapshot.rs`: [`write_snapshot`], [`SnapshotWriter`], [`load_latest_snapshot`]; [`frame_snapshot`] and
//!   [`unframe_snapshot`], the same frame in memory.
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
mod options;
mod record;
mod recovery;
mod segment;
mod sink;
mod snapshot;
mod stats;
mod wal;
mod writer;

pub use error::{Result, StorageError};
pub use file::{
    FaultPlan, FaultyFileOpener, FileOpener, LogFile, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, StdFileOpener, StdLogFile,
    check_private_dir, create_private_dir_all,
};
pub use options::{FsyncMode, WalOptions};
pub use record::{Decoded, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_LIMIT, decode_record, encode_record};
pub use recovery::{LogReadReport, LogRecords, TailSegment, Truncation, collect_log, read_log};
pub use segment::{
    PruneReport, SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_BYTES, SegmentFile, list_segments, prune_segments,
    segment_file_name,
};
pub use sink::{DurableFuture, LogPosition, LogSink, LogStore, SavedSnapshot};
pub use snapshot::{
    LoadedSnapshot, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_HEADER_BYTES, SNAPSHOTS_KEPT, SnapshotInfo, SnapshotWriter,
    frame_snapshot, load_latest_snapshot, snapshot_file_name, unframe_snapshot, write_snapshot,
};
pub use stats::{WalObserver, WalStats};
pub use wal::Wal;
