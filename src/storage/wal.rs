//! The write-ahead log handle: opening, appending, waiting for durability, closing.
//!
//! Owns the [`Wal`] type, its options and their validation, and the [`LogSink`] implementation over `writer.rs`.
//! `append` only takes a short mutex and never does I/O. With fsync `always` or `batch` all I/O happens on the writer
//! thread; with fsync `none` there is no writer thread and the caller awaiting durability writes the pending records
//! itself (one short `write`, no fsync). It must not be opened on a directory that [`read_log`](super::read_log) has
//! not just recovered.

use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use super::durability::Durability;
use super::error::{Result, StorageError};
use super::file::{FileOpener, StdFileOpener, create_private_dir_all};
use super::options::{FsyncMode, WalOptions};
use super::record::frame_bytes;
use super::recovery::LogReadReport;
use super::segment::{SEGMENT_HEADER_BYTES, create_segment};
use super::sink::{DurableFuture, LogPosition, LogSink};
use super::stats::{StatsCounters, WalObserver, WalStats};
use super::writer::{
    ActiveSegment, Pending, SegmentWriter, Shared, WriterState, run_writer_thread, write_all_and_close, write_through,
};

/// A local-file write-ahead log with group commit. Share it as `Arc<Wal>` or `Arc<dyn LogSink>`.
pub struct Wal {
    shared: Arc<Shared>,
    record_bytes_max: u32,
    /// Fsync mode `none`: callers write their own records and there is no writer thread.
    callers_write: bool,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
}

impl Wal {
    /// Opens the log in `options.dir` for appending after `recovered`, the report of the [`read_log`](super::read_log)
    /// call that just recovered that directory, and starts the writer thread.
    pub fn open(options: WalOptions, recovered: &LogReadReport, observer: Option<Arc<dyn WalObserver>>) -> Result<Wal> {
        Wal::open_with_files(options, recovered, observer, Arc::new(StdFileOpener))
    }

    /// [`Wal::open`] with the segment files opened through `opener`, so tests can inject faults.
    pub fn open_with_files(
        options: WalOptions,
        recovered: &LogReadReport,
        observer: Option<Arc<dyn WalObserver>>,
        opener: Arc<dyn FileOpener>,
    ) -> Result<Wal> {
        options.validate()?;
        if recovered.dir != options.dir {
            let reason =
                format!("is {} but the log was recovered from {}", options.dir.display(), recovered.dir.display());
            return Err(StorageError::InvalidOptions { field: "dir", reason });
        }
        if options.fsync == FsyncMode::None {
            tracing::warn!(dir = %options.dir.display(),
                "LOG FSYNC IS OFF: acknowledged records can be lost on a crash or power cut; use only for tests");
        }
        let segment = open_active_segment(&options, recovered, opener.as_ref())?;
        let last_position = recovered.last_position;
        let output = SegmentWriter {
            options: options.clone(),
            opener,
            observer,
            segment,
            written_position: last_position,
            synced_position: last_position,
            batch: Vec::new(),
            encoded: Vec::new(),
            last_sync: None,
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending { records: Vec::new(), bytes: 0, last_position, state: WriterState::Open }),
            work_ready: Condvar::new(),
            output: Mutex::new(output),
            durability: Durability::new(last_position),
            stats: StatsCounters::default(),
        });
        let callers_write = options.fsync == FsyncMode::None;
        let writer_thread = if callers_write {
            None
        } else {
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name("antrean-wal".to_owned())
                .spawn(move || run_writer_thread(shared))
                .map_err(|source| StorageError::io("spawn writer thread for", &options.dir, source))?;
            Some(thread)
        };
        tracing::info!(dir = %options.dir.display(), next_position = last_position.0 + 1, fsync = ?options.fsync,
            "log opened");
        Ok(Wal {
            shared,
            record_bytes_max: options.record_bytes_max,
            callers_write,
            writer_thread: Mutex::new(writer_thread),
        })
    }

    /// Largest payload [`LogSink::append`] accepts.
    pub fn record_bytes_max(&self) -> u32 {
        self.record_bytes_max
    }

    /// Totals since the log was opened.
    pub fn stats(&self) -> WalStats {
        self.shared.stats.snapshot()
    }

    /// Writes and fsyncs every record appended before this call, stops the writer thread and waits for it. Records
    /// appended afterwards are dropped and their waiters get [`StorageError::LogClosed`]. Blocks: call it from
    /// `spawn_blocking` in async code. Calling it again does nothing more. Returns the failure if the log had failed.
    pub fn close(&self) -> Result<()> {
        {
            let mut pending = self.shared.pending.lock();
            if pending.state == WriterState::Open {
                pending.state = WriterState::Closing;
            }
        }
        if self.callers_write {
            write_all_and_close(&self.shared);
        }
        self.shared.work_ready.notify_one();
        if let Some(writer_thread) = self.writer_thread.lock().take()
            && writer_thread.join().is_err()
        {
            tracing::error!("log writer thread panicked");
        }
        match self.shared.durability.failure() {
            Some(failure) => Err(failure.to_error()),
            None => Ok(()),
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl LogSink for Wal {
    /// # Panics
    /// If `payload` is longer than [`Wal::record_bytes_max`]: the caller bounds its records.
    fn append(&self, payload: Vec<u8>) -> LogPosition {
        assert!(
            payload.len() <= self.record_bytes_max as usize,
            "log record of {} bytes exceeds record_bytes_max {}",
            payload.len(),
            self.record_bytes_max
        );
        let frame = frame_bytes(payload.len() as u64);
        let (position, was_idle) = {
            let mut pending = self.shared.pending.lock();
            pending.last_position = LogPosition(pending.last_position.0 + 1);
            let position = pending.last_position;
            let was_idle = pending.records.is_empty();
            if pending.state == WriterState::Open {
                pending.records.push((position, payload));
                pending.bytes += frame;
            }
            (position, was_idle)
        };
        // Only the first record of a batch wakes the writer thread: later ones find it awake (or busy with the batch
        // before, after which it looks at the buffer again before sleeping).
        if was_idle && !self.callers_write {
            self.shared.work_ready.notify_one();
        }
        position
    }

    fn wait_durable(&self, position: LogPosition) -> DurableFuture<'_> {
        let durability = &self.shared.durability;
        if !self.callers_write || durability.outcome(position).is_some() {
            return Box::pin(durability.wait(position));
        }
        Box::pin(async move {
            // Let the other calls that are ready on this thread append first, so that one write carries them all (28
            // records a write instead of 1 under 64 concurrent holds on one core).
            tokio::task::yield_now().await;
            write_through(&self.shared, position);
            durability.wait(position).await
        })
    }

    fn durable_position(&self) -> LogPosition {
        self.shared.durability.position()
    }

    fn last_position(&self) -> LogPosition {
        self.shared.pending.lock().last_position
    }
}

/// Opens the recovered tail segment, or creates the first segment of an empty log.
fn open_active_segment(
    options: &WalOptions,
    recovered: &LogReadReport,
    opener: &dyn FileOpener,
) -> Result<ActiveSegment> {
    create_private_dir_all(&options.dir)
        .map_err(|source| StorageError::io("create directory", &options.dir, source))?;
    let (path, length_bytes) = match &recovered.tail {
        Some(tail) => {
            let metadata =
                std::fs::metadata(&tail.path).map_err(|source| StorageError::io("stat", &tail.path, source))?;
            if metadata.len() != tail.length_bytes {
                return Err(StorageError::CorruptLog {
                    segment: tail.path.clone(),
                    offset: tail.length_bytes,
                    detail: format!(
                        "segment is {} bytes but recovery left it at {}",
                        metadata.len(),
                        tail.length_bytes
                    ),
                });
            }
            (tail.path.clone(), tail.length_bytes)
        }
        None => {
            let first_position = LogPosition(recovered.last_position.0 + 1);
            let sync = options.fsync != FsyncMode::None;
            (create_segment(&options.dir, first_position, sync)?, SEGMENT_HEADER_BYTES)
        }
    };
    let file = opener.open_append(&path).map_err(|source| StorageError::io("open", &path, source))?;
    Ok(ActiveSegment { file, path, length_bytes })
}

#[cfg(test)]
#[path = "wal_tests.rs"]
mod tests;
