//! The seam between the engine and a log: positions, and the [`LogSink`] trait that the local write-ahead log
//! implements and a replicated log could implement instead.

use super::error::Result;
use std::future::Future;
use std::pin::Pin;

/// Sequence number of a log record: 1 for the first record ever written, then +1 per record, never reused.
/// Position 0 means "before the first record".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogPosition(pub u64);

/// A snapshot a [`LogStore`] kept, and what it dropped because of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedSnapshot {
    /// The position it covers.
    pub position: LogPosition,
    /// Where it is (a file path, an object name), for the log line.
    pub location: String,
    /// Bytes of the engine's payload.
    pub payload_bytes: u64,
    /// Storage units dropped because of it: segment files for the local log, messages for a replicated one.
    pub units_dropped: u64,
}

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

/// What the engine needs of its log beyond [`LogSink`]: how much it has written (to schedule snapshots), whether
/// snapshots are kept, keeping one and dropping what it covers, and closing. The local write-ahead log implements it
/// with its snapshot and segment files; the cluster's log with the JetStream object store and a purge.
pub trait LogStore: LogSink {
    /// Frame bytes of the records this log has made durable since it was opened.
    fn bytes_written(&self) -> u64;

    /// Whether the engine's snapshots are taken for this log: a snapshot lets the next start (or the next owner of a
    /// replicated log) replay only the records after it, and lets [`LogStore::save_snapshot`] drop the records it
    /// covers. False for a log with nowhere to keep them.
    fn keeps_snapshots(&self) -> bool;

    /// Keeps `payload`, the engine's image of the state after every record up to and including `position` (all of them
    /// durable), where the next start or the next owner finds it, then drops what the log no longer needs because of
    /// it (the local log: snapshot files beyond two and the segments they cover; a replicated log: its own equivalent).
    /// `Ok(None)` when this snapshot was skipped (logged with why); the engine tries again at the next trigger.
    /// Blocking: called on the snapshot thread.
    fn save_snapshot(&self, position: LogPosition, payload: &[u8]) -> Result<Option<SavedSnapshot>>;

    /// Makes every record appended so far durable and stops taking more; later appends are dropped and their waiters
    /// get an error. Blocking: call it off the async runtime. Returns the failure if the log had failed.
    fn close(&self) -> Result<()>;
}
