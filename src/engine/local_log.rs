//! The local write-ahead log as the engine's [`LogStore`]: the [`Wal`] and the directory its segments live in, so a
//! snapshot can drop the segments it covers.

use crate::storage::{self, DurableFuture, LogPosition, LogSink, LogStore, Wal};
use std::path::PathBuf;

/// A [`Wal`] and its directory.
pub struct LocalLog {
    wal: Wal,
    dir: PathBuf,
}

impl LocalLog {
    /// The log `wal`, whose segments are in `dir`.
    #[must_use]
    pub fn new(wal: Wal, dir: PathBuf) -> LocalLog {
        LocalLog { wal, dir }
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

    fn prune_before(&self, oldest_kept: LogPosition) -> storage::Result<usize> {
        Ok(storage::prune_segments(&self.dir, oldest_kept)?.deleted.len())
    }

    fn close(&self) -> storage::Result<()> {
        self.wal.close()
    }
}
