//! The log writer thread: group commit.
//!
//! Owns the pending buffer that `append` fills and the one thread that drains it: take every pending record (up to the
//! batch limits), encode them, write them with one write call, fsync per the fsync mode, publish the durable position,
//! repeat. It must never be called from an async task (it blocks on I/O), and a failed write or fsync stops it for
//! good: nothing is retried, because after a failed fsync the kernel may have dropped the dirty pages.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::durability::{Durability, Failure};
use super::file::{FileOpener, LogFile};
use super::options::{FsyncMode, WalOptions};
use super::record::{encode_record, frame_bytes};
use super::segment::{SEGMENT_HEADER_BYTES, create_segment};
use super::sink::LogPosition;
use super::stats::{StatsCounters, WalObserver};

/// State shared by the `Wal` handle and the writer thread.
pub(crate) struct Shared {
    /// Records appended but not yet taken by the writer. Held only for a push or a swap, never across I/O.
    pub(crate) pending: Mutex<Pending>,
    /// Signalled when the pending buffer goes from empty to non-empty, and on close.
    pub(crate) work_ready: Condvar,
    pub(crate) durability: Durability,
    pub(crate) stats: StatsCounters,
}

/// The pending buffer and position counter.
pub(crate) struct Pending {
    pub(crate) records: Vec<(LogPosition, Vec<u8>)>,
    /// Sum of the frame bytes of `records`.
    pub(crate) bytes: u64,
    /// Highest position assigned; the next append gets `last_position + 1`.
    pub(crate) last_position: LogPosition,
    pub(crate) state: WriterState,
}

/// Whether the writer still takes records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriterState {
    /// Taking records.
    Open,
    /// `close` was called: records appended before it are written, later ones are dropped.
    Closing,
    /// The writer has failed; appended records are dropped.
    Failed,
}

/// The segment being appended to.
pub(crate) struct ActiveSegment {
    pub(crate) file: Box<dyn LogFile>,
    pub(crate) path: PathBuf,
    pub(crate) length_bytes: u64,
}

/// Everything the writer thread owns.
pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) options: WalOptions,
    pub(crate) opener: Arc<dyn FileOpener>,
    pub(crate) observer: Option<Arc<dyn WalObserver>>,
    pub(crate) segment: ActiveSegment,
    /// Highest position written to a file (durable or not).
    pub(crate) written_position: LogPosition,
    /// Highest position covered by a successful fsync (or written, in fsync mode `None`).
    pub(crate) synced_position: LogPosition,
    /// Records taken from the pending buffer; reused so steady state does not allocate.
    pub(crate) batch: Vec<(LogPosition, Vec<u8>)>,
    /// Encoded frames of the batch; reused.
    pub(crate) encoded: Vec<u8>,
    pub(crate) last_sync: Option<Instant>,
}

/// What the writer does next.
enum Work {
    Batch,
    DeferredSync,
    Close,
}

/// Measurements of one written batch.
struct BatchWritten {
    records: u32,
    bytes: u64,
    write_nanos: u64,
    /// Time in fsyncs forced by rolling to a new segment.
    roll_fsync_nanos: u64,
}

impl Writer {
    /// Runs until closed or failed. Runs on its own thread.
    pub(crate) fn run(mut self) {
        match self.run_until_closed() {
            Ok(()) => self.shared.durability.close(),
            Err(failure) => {
                tracing::error!(operation = failure.operation, segment = %failure.segment.display(),
                    detail = %failure.detail, "log writer failed; no more records will be made durable");
                {
                    let mut pending = self.shared.pending.lock();
                    pending.state = WriterState::Failed;
                    pending.records = Vec::new();
                    pending.bytes = 0;
                }
                self.shared.durability.fail(failure);
            }
        }
    }

    fn run_until_closed(&mut self) -> Result<(), Failure> {
        loop {
            match self.next_work() {
                Work::Batch => {
                    let written = self.write_batch()?;
                    let fsync_nanos = self.sync_after_batch()?;
                    if let Some(observer) = &self.observer {
                        let fsync_nanos = fsync_nanos + written.roll_fsync_nanos;
                        observer.batch_written(written.records, written.bytes, written.write_nanos, fsync_nanos);
                    }
                }
                Work::DeferredSync => {
                    let fsync_nanos = self.sync_and_publish()?;
                    if let Some(observer) = &self.observer {
                        observer.deferred_sync(fsync_nanos);
                    }
                }
                Work::Close => {
                    self.sync_and_publish()?;
                    return Ok(());
                }
            }
        }
    }

    /// Waits for work and, for a batch, moves it from the pending buffer into `self.batch`.
    fn next_work(&mut self) -> Work {
        let mut pending = self.shared.pending.lock();
        loop {
            if !pending.records.is_empty() {
                take_batch(&mut self.batch, &self.options, &mut pending);
                return Work::Batch;
            }
            if pending.state != WriterState::Open {
                return Work::Close;
            }
            match self.deferred_sync_deadline() {
                Some(deadline) if Instant::now() >= deadline => return Work::DeferredSync,
                Some(deadline) => {
                    self.shared.work_ready.wait_until(&mut pending, deadline);
                }
                None => self.shared.work_ready.wait(&mut pending),
            }
        }
    }

    /// When written records are waiting for a deferred fsync, the time it is due.
    fn deferred_sync_deadline(&self) -> Option<Instant> {
        let FsyncMode::Batch { interval_ms } = self.options.fsync else {
            return None;
        };
        if self.written_position == self.synced_position {
            return None;
        }
        let last_sync = self.last_sync?;
        Some(last_sync + Duration::from_millis(interval_ms))
    }

    /// Encodes and writes `self.batch`, rolling to a new segment where the current one would overflow.
    fn write_batch(&mut self) -> Result<BatchWritten, Failure> {
        let started = Instant::now();
        let mut batch = std::mem::take(&mut self.batch);
        let mut written = BatchWritten { records: 0, bytes: 0, write_nanos: 0, roll_fsync_nanos: 0 };
        self.encoded.clear();
        let mut encoded_last_position = self.written_position;
        for (position, payload) in batch.drain(..) {
            let frame = frame_bytes(payload.len() as u64);
            let length_bytes = self.segment.length_bytes + self.encoded.len() as u64;
            if length_bytes + frame > self.options.segment_bytes_max && length_bytes > SEGMENT_HEADER_BYTES {
                self.write_encoded(encoded_last_position)?;
                written.roll_fsync_nanos += self.roll(position)?;
            }
            encode_record(&mut self.encoded, position, &payload);
            encoded_last_position = position;
            written.records += 1;
            written.bytes += frame;
        }
        self.batch = batch;
        self.write_encoded(encoded_last_position)?;
        written.write_nanos = elapsed_nanos(started).saturating_sub(written.roll_fsync_nanos);
        let stats = &self.shared.stats;
        stats.record_batch(u64::from(written.records), written.bytes, written.write_nanos);
        Ok(written)
    }

    /// Writes `self.encoded` to the active segment in one call.
    fn write_encoded(&mut self, last_position: LogPosition) -> Result<(), Failure> {
        if self.encoded.is_empty() {
            return Ok(());
        }
        let result = self.segment.file.write_all_at_end(&self.encoded);
        result.map_err(|error| self.failure("write", &error))?;
        self.segment.length_bytes += self.encoded.len() as u64;
        self.written_position = last_position;
        self.encoded.clear();
        if self.options.fsync == FsyncMode::None {
            self.synced_position = last_position;
        }
        Ok(())
    }

    /// Makes the active segment durable, then starts the segment for `first_position`. Returns fsync nanoseconds.
    fn roll(&mut self, first_position: LogPosition) -> Result<u64, Failure> {
        let fsync_nanos = self.sync_and_publish()?;
        let sync = self.options.fsync != FsyncMode::None;
        let path =
            create_segment(&self.options.dir, first_position, sync).map_err(|error| self.failure("roll", &error))?;
        let file = self.opener.open_append(&path).map_err(|error| self.failure("roll", &error))?;
        self.segment = ActiveSegment { file, path, length_bytes: SEGMENT_HEADER_BYTES };
        self.shared.stats.record_segment_created();
        tracing::debug!(segment = %self.segment.path.display(), "rolled to new log segment");
        Ok(fsync_nanos)
    }

    /// Applies the fsync mode after a batch. Returns the fsync nanoseconds, 0 if no fsync was made.
    fn sync_after_batch(&mut self) -> Result<u64, Failure> {
        match self.options.fsync {
            FsyncMode::Always | FsyncMode::None => self.sync_and_publish(),
            FsyncMode::Batch { .. } => match self.deferred_sync_deadline() {
                Some(deadline) if Instant::now() < deadline => Ok(0),
                _ => self.sync_and_publish(),
            },
        }
    }

    /// Fsyncs the active segment if it holds unsynced records (never in fsync mode `None`) and publishes the durable
    /// position. Returns the fsync nanoseconds, 0 if no fsync was made.
    fn sync_and_publish(&mut self) -> Result<u64, Failure> {
        let mut fsync_nanos = 0;
        if self.written_position > self.synced_position {
            let started = Instant::now();
            self.segment.file.sync_data().map_err(|error| self.failure("fsync", &error))?;
            fsync_nanos = elapsed_nanos(started).max(1);
            self.last_sync = Some(started);
            self.synced_position = self.written_position;
            self.shared.stats.record_fsync(fsync_nanos);
        }
        if self.synced_position > self.shared.durability.position() {
            self.shared.durability.publish(self.synced_position);
        }
        Ok(fsync_nanos)
    }

    fn failure(&self, operation: &'static str, error: &dyn std::fmt::Display) -> Failure {
        Failure { operation, segment: self.segment.path.clone(), detail: error.to_string() }
    }
}

/// Moves the oldest pending records into `batch`, as many as the batch limits allow and at least one.
fn take_batch(batch: &mut Vec<(LogPosition, Vec<u8>)>, options: &WalOptions, pending: &mut Pending) {
    debug_assert!(batch.is_empty());
    let records_max = options.batch_records_max as usize;
    if pending.records.len() <= records_max && pending.bytes <= options.batch_bytes_max {
        std::mem::swap(batch, &mut pending.records);
        pending.bytes = 0;
        return;
    }
    let (mut count, mut bytes) = (0usize, 0u64);
    for (_, payload) in &pending.records {
        let frame = frame_bytes(payload.len() as u64);
        if count > 0 && (count == records_max || bytes + frame > options.batch_bytes_max) {
            break;
        }
        count += 1;
        bytes += frame;
    }
    batch.extend(pending.records.drain(..count));
    pending.bytes -= bytes;
}

fn elapsed_nanos(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
