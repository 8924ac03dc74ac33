//! The seam between the engine and a log: positions, and the [`LogSink`] trait that the local write-ahead log
//! implements and a replicated log could implement instead.

use super::error::Result;
use std::future::Future;
use std::pin::Pin;

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

/// What the engine needs of its log beyond [`LogSink`]: how much it has written (to schedule snapshots), whether
/// snapshots let it drop records, dropping them, and closing. The local write-ahead log implements it with its segment
/// files; a replicated log implements it without local snapshots.
pub trait LogStore: LogSink {
    /// Frame bytes of the records this log has made durable since it was opened.
    fn bytes_written(&self) -> u64;

    /// Whether the engine's snapshots are taken for this log: a snapshot lets the next start replay only the records
    /// after it, and lets [`LogStore::prune_before`] drop the records it covers. False for a log whose replay does not
    /// read the local snapshots.
    fn keeps_snapshots(&self) -> bool;

    /// Drops what the log no longer needs because a snapshot covers every record before `oldest_kept`; returns how
    /// many storage units (segment files) were dropped. Blocking.
    fn prune_before(&self, oldest_kept: LogPosition) -> Result<usize>;

    /// Makes every record appended so far durable and stops taking more; later appends are dropped and their waiters
    /// get an error. Blocking: call it off the async runtime. Returns the failure if the log had failed.
    fn close(&self) -> Result<()>;
}
