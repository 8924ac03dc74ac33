//! What the log writer reports about its batches, for the metrics layer.
//!
//! Owns the running counters and the observer callback. It must not depend on a metrics crate: the layer above turns
//! these numbers into exported metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Receives one call per batch the writer makes, on the writer thread. Implementations must be quick and must not
/// block: the next batch waits for them.
pub trait WalObserver: Send + Sync {
    /// A batch of `records` records, `bytes` bytes of frames in total, was written in `write_nanos`, followed by an
    /// fsync taking `fsync_nanos` (0 when this batch's fsync was deferred, as fsync mode `Batch` does between syncs,
    /// or skipped, as fsync mode `None` always does).
    fn batch_written(&self, records: u32, bytes: u64, write_nanos: u64, fsync_nanos: u64);

    /// A deferred fsync (fsync mode `Batch`), made without a new batch, took `fsync_nanos`.
    fn deferred_sync(&self, fsync_nanos: u64) {
        let _ = fsync_nanos;
    }
}

/// Totals since the log was opened; a copy taken by `Wal::stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Batches written.
    pub batches: u64,
    /// Records written.
    pub records: u64,
    /// Frame bytes written, excluding segment headers.
    pub bytes: u64,
    /// Records in the most recent batch.
    pub last_batch_records: u64,
    /// Nanoseconds spent in write calls.
    pub write_nanos_total: u64,
    /// Fsyncs of segment files.
    pub fsyncs: u64,
    /// Nanoseconds spent in fsyncs of segment files.
    pub fsync_nanos_total: u64,
    /// Segments created since the log was opened.
    pub segments_created: u64,
}

/// The live counters behind [`WalStats`], updated by the writer thread only.
#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    batches: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    last_batch_records: AtomicU64,
    write_nanos_total: AtomicU64,
    fsyncs: AtomicU64,
    fsync_nanos_total: AtomicU64,
    segments_created: AtomicU64,
}

impl StatsCounters {
    pub(crate) fn record_batch(&self, records: u64, bytes: u64, write_nanos: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_batch_records.store(records, Ordering::Relaxed);
        self.write_nanos_total.fetch_add(write_nanos, Ordering::Relaxed);
    }

    pub(crate) fn record_fsync(&self, fsync_nanos: u64) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_nanos_total.fetch_add(fsync_nanos, Ordering::Relaxed);
    }

    pub(crate) fn record_segment_created(&self) {
        self.segments_created.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> WalStats {
        WalStats {
            batches: self.batches.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            last_batch_records: self.last_batch_records.load(Ordering::Relaxed),
            write_nanos_total: self.write_nanos_total.load(Ordering::Relaxed),
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            fsync_nanos_total: self.fsync_nanos_total.load(Ordering::Relaxed),
            segments_created: self.segments_created.load(Ordering::Relaxed),
        }
    }
}
