//! The local write-ahead log as the engine's [`LogStore`]: the [`Wal`], the directory its segments live in and the
//! directory of the snapshots, so that keeping a snapshot writes its file and drops the segments it covers.

use crate::storage::{self, DurableFuture, LogPosition, LogSink, LogStore, SavedSnapshot, Wal};
use std::path::PathBuf;

/// A [`Wal`], its directory and the snapshot directory.
pub struct LocalLog {
    wal: Wal,
    dir: PathBuf,
    snapshot_dir: PathBuf,
}

impl LocalLog {
    /// The log `wal`, whose segments are in `dir`, with its snapshots in `snapshot_dir`.
    #[must_use]
    pub fn new(wal: Wal, dir: PathBuf, snapshot_dir: PathBuf) -> LocalLog {
        LocalLog { wal, dir, snapshot_dir }
    }
}

impl LogSink for LocalLog {
    fn append(&self, payload: Vec<u8>) -> LogPosition {
        self.wal.append(payload)
    }

    fn wait_durable(&self, position: LogPosition) -> DurableFuture<'_> {
        self.wal.wait_durable(position)
    }

    fn durable_position(&self) -> LogPosition {
        self.wal.durable_position()
    }

    fn last_position(&self) -> LogPosition {
        self.wal.last_position()
    }
}

impl LogStore for LocalLog {
    fn bytes_written(&self) -> u64 {
        self.wal.stats().bytes
    }

    fn keeps_snapshots(&self) -> bool {
        true
    }

    /// Writes the snapshot file (keeping the newest two), then deletes the segments that the older kept one covers.
    fn save_snapshot(&self, position: LogPosition, payload: &[u8]) -> storage::Result<Option<SavedSnapshot>> {
        let info = storage::write_snapshot(&self.snapshot_dir, position, payload)?;
        let segments_deleted = storage::prune_segments(&self.dir, info.oldest_kept_position)?.deleted.len();
        Ok(Some(SavedSnapshot {
            position,
            location: info.path.display().to_string(),
            payload_bytes: info.payload_bytes,
            units_dropped: segments_deleted as u64,
        }))
    }

    fn close(&self) -> storage::Result<()> {
        self.wal.close()
    }
}
