//! Writing the log: group commit.
//!
//! Owns the pending buffer that `append` fills and the [`SegmentWriter`] that drains it: take every pending record (up
//! to the batch limits), encode them, write them with one write call, fsync per the fsync mode, publish the durable
//! position. Who drains it depends on the fsync mode:
//! - `always` and `batch`: the writer thread ([`run_writer_thread`]), woken only when the buffer goes from empty to
//!   non-empty while it sleeps, so a burst of appends costs one wake-up, and its fsync blocks no async task;
//! - `none`: the caller waiting for its record ([`write_through`]), on its own thread: there is no fsync to wait for,
//!   so handing the write to another thread and back would cost two context switches per batch for nothing. The
//!   record is in the operating system (it survives a crash of the process) before the caller is answered.
//!
//! A failed write or fsync stops the log for good: nothing is retried, because after a failed fsync the kernel may
//! have dropped the dirty pages.

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

/// State shared by the `Wal` handle, the writer thread and writing callers.
pub(crate) struct Shared {
    /// Records appended but not yet taken by a writer. Held only for a push or a swap, never across I/O.
    pub(crate) pending: Mutex<Pending>,
    /// Signalled when the pending buffer goes from empty to non-empty, and on close (writer thread only).
    pub(crate) work_ready: Condvar,
    /// The active segment. Held across a batch's write and fsync, so batches reach the file in position order. Lock
    /// order: `output`, then `pending`, then the durability state; `append` never takes it.
    pub(crate) output: Mutex<SegmentWriter>,
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

/// Whether the log still takes records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriterState {
    /// Taking records.
    Open,
    /// `close` was called: records appended before it are written, later ones are dropped.
    Closing,
    /// The log has failed; appended records are dropped.
    Failed,
}

/// The segment being appended to.
pub(crate) struct ActiveSegment {
    pub(crate) file: Box<dyn LogFile>,
    pub(crate) path: PathBuf,
    pub(crate) length_bytes: u64,
}

/// The active segment and everything needed to write batches to it.
pub(crate) struct SegmentWriter {
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

/// What the writer thread does next.
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

/// The writer thread of fsync modes `always` and `batch`: runs until the log is closed or fails.
pub(crate) fn run_writer_thread(shared: Arc<Shared>) {
    let result = write_until_closed(&shared);
    finish(&shared, result);
}

/// Fsync mode `none`: writes pending records on the calling thread until `position` is written, nothing is left to
/// write (the record was dropped: the log closed or failed) or the log fails. Blocks on one short `write` per batch;
/// callers appending meanwhile find their record written by it and do not write at all.
pub(crate) fn write_through(shared: &Shared, position: LogPosition) {
    let mut output = shared.output.lock();
    while shared.durability.position() < position {
        match output.write_and_publish(shared) {
            Ok(true) => {}
            Ok(false) => return,
            Err(failure) => {
                stop_on_failure(shared, failure);
                return;
            }
        }
    }
}

/// Fsync mode `none`: the part of `close` the writer thread does in the other modes. Writes every pending record,
/// then marks the log closed (or failed).
pub(crate) fn write_all_and_close(shared: &Shared) {
    let result = {
        let mut output = shared.output.lock();
        loop {
            match output.write_and_publish(shared) {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(failure) => break Err(failure),
            }
        }
    };
    finish(shared, result);
}

fn write_until_closed(shared: &Shared) -> Result<(), Failure> {
    loop {
        // Only this thread changes what the deadline depends on, so reading it before waiting is exact.
        let deadline = shared.output.lock().deferred_sync_deadline();
        let work = next_work(shared, deadline);
        let mut output = shared.output.lock();
        match work {
            Work::Batch => {
                output.write_and_publish(shared)?;
            }
            Work::DeferredSync => {
                let fsync_nanos = output.sync_and_publish(shared)?;
                if let Some(observer) = &output.observer {
                    observer.deferred_sync(fsync_nanos);
                }
            }
            Work::Close => {
                output.sync_and_publish(shared)?;
                return Ok(());
            }
        }
    }
}

/// Waits until there are records to write, a deferred fsync is due at `deadline`, or the log is closing.
fn next_work(shared: &Shared, deadline: Option<Instant>) -> Work {
    let mut pending = shared.pending.lock();
    loop {
        if !pending.records.is_empty() {
            return Work::Batch;
        }
        if pending.state != WriterState::Open {
            return Work::Close;
        }
        match deadline {
            Some(deadline) if Instant::now() >= deadline => return Work::DeferredSync,
            Some(deadline) => {
                shared.work_ready.wait_until(&mut pending, deadline);
            }
            None => shared.work_ready.wait(&mut pending),
        }
    }
}

/// Marks the log closed, or failed for good.
fn finish(shared: &Shared, result: Result<(), Failure>) {
    match result {
        Ok(()) => shared.durability.close(),
        Err(failure) => stop_on_failure(shared, failure),
    }
}

fn stop_on_failure(shared: &Shared, failure: Failure) {
    tracing::error!(operation = failure.operation, segment = %failure.segment.display(), detail = %failure.detail,
        "log writer failed; no more records will be made durable");
    {
        let mut pending = shared.pending.lock();
        pending.state = WriterState::Failed;
        pending.records = Vec::new();
        pending.bytes = 0;
    }
    shared.durability.fail(failure);
}

impl SegmentWriter {
    /// Takes the oldest pending records (as many as the batch limits allow), writes them, applies the fsync mode and
    /// publishes what is durable. Returns false when nothing was pending.
    fn write_and_publish(&mut self, shared: &Shared) -> Result<bool, Failure> {
        {
            let mut pending = shared.pending.lock();
            if pending.records.is_empty() {
                return Ok(false);
            }
            take_batch(&mut self.batch, &self.options, &mut pending);
            let last_position = self.batch.last().expect("a batch holds at least one record").0;
            // Under the pending lock: every record appended after this seal belongs to a later batch.
            shared.durability.seal(last_position);
        }
        let written = self.write_batch(shared)?;
        let fsync_nanos = self.sync_after_batch(shared)?;
        if let Some(observer) = &self.observer {
            let fsync_nanos = fsync_nanos + written.roll_fsync_nanos;
            observer.batch_written(written.records, written.bytes, written.write_nanos, fsync_nanos);
        }
        Ok(true)
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
    fn write_batch(&mut self, shared: &Shared) -> Result<BatchWritten, Failure> {
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
                written.roll_fsync_nanos += self.roll(shared, position)?;
            }
            encode_record(&mut self.encoded, position, &payload);
            encoded_last_position = position;
            written.records += 1;
            written.bytes += frame;
        }
        self.batch = batch;
        self.write_encoded(encoded_last_position)?;
        written.write_nanos = elapsed_nanos(started).saturating_sub(written.roll_fsync_nanos);
        shared.stats.record_batch(u64::from(written.records), written.bytes, written.write_nanos);
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
    fn roll(&mut self, shared: &Shared, first_position: LogPosition) -> Result<u64, Failure> {
        let fsync_nanos = self.sync_and_publish(shared)?;
        let sync = self.options.fsync != FsyncMode::None;
        let path =
            create_segment(&self.options.dir, first_position, sync).map_err(|error| self.failure("roll", &error))?;
        let file = self.opener.open_append(&path).map_err(|error| self.failure("roll", &error))?;
        self.segment = ActiveSegment { file, path, length_bytes: SEGMENT_HEADER_BYTES };
        shared.stats.record_segment_created();
        tracing::debug!(segment = %self.segment.path.display(), "rolled to new log segment");
        Ok(fsync_nanos)
    }

    /// Applies the fsync mode after a batch. Returns the fsync nanoseconds, 0 if no fsync was made.
    fn sync_after_batch(&mut self, shared: &Shared) -> Result<u64, Failure> {
        match self.options.fsync {
            FsyncMode::Always | FsyncMode::None => self.sync_and_publish(shared),
            FsyncMode::Batch { .. } => match self.deferred_sync_deadline() {
                Some(deadline) if Instant::now() < deadline => Ok(0),
                _ => self.sync_and_publish(shared),
            },
        }
    }

    /// Fsyncs the active segment if it holds unsynced records (never in fsync mode `None`) and publishes the durable
    /// position. Returns the fsync nanoseconds, 0 if no fsync was made.
    fn sync_and_publish(&mut self, shared: &Shared) -> Result<u64, Failure> {
        let mut fsync_nanos = 0;
        if self.written_position > self.synced_position {
            let started = Instant::now();
            self.segment.file.sync_data().map_err(|error| self.failure("fsync", &error))?;
            fsync_nanos = elapsed_nanos(started).max(1);
            self.last_sync = Some(started);
            self.synced_position = self.written_position;
            shared.stats.record_fsync(fsync_nanos);
        }
        if self.synced_position > shared.durability.position() {
            shared.durability.publish(self.synced_position);
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
