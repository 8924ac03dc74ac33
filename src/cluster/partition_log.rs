//! [`JetStreamLog`]: a partition's log on JetStream as the engine's [`LogStore`]. Records appended by the engine are
//! group-committed by one writer task into batches, each batch one fenced JetStream message through the lease
//! holder's [`OfficeWriter`]; a record is durable once its batch's PubAck came back, so answers are released only then.
//!
//! Owns the pending records, the writer task, and the durable position the engine's calls wait on. It must not decide
//! who owns the partition: the caller opened the writer under its lease. A fenced append, a refusal, or an unknown
//! outcome that outlasts the retry window fails the log for good (every current and later waiter gets the error), as a
//! failed fsync fails the local log; the caller then stops serving the partition. [`JetStreamLog::fail`] does the same
//! from outside, when the lease is lost.
//!
//! With [`SnapshotKeeping`], it also keeps the engine's snapshots ([`LogStore::save_snapshot`]): it remembers which
//! stream sequence holds which positions ([`BatchSequences`], fed by every PubAck and by the take-over's replay), stores
//! a snapshot in the object store with the sequence a replay after it starts from, deletes the partition's snapshots
//! older than the newest two, and purges the subject below the older kept one, the last two only while the node may
//! serve.

use super::error::{ClusterError, Result};
use super::log::OfficeLog;
use super::positions::{BatchSequence, BatchSequences};
use super::snapshots::{SnapshotBucket, StoredSnapshot};
use super::writer::OfficeWriter;
use crate::domain::OfficeId;
use crate::storage::{
    self, DurableFuture, LogPosition, LogRecords, LogSink, LogStore, RECORD_HEADER_BYTES, SNAPSHOTS_KEPT,
    SavedSnapshot, StorageError,
};
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// How long the writer waits before resending a batch whose outcome was unknown.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What the metrics layer learns from the writer.
pub trait PartitionLogObserver: Send + Sync {
    /// A batch of `records` was stored (PubAck received) `elapsed` after its first send.
    fn batch_appended(&self, records: usize, elapsed: Duration);
    /// An append was refused because another writer moved the log on (the fence).
    fn append_fenced(&self);
    /// A snapshot of `bytes` (framed) at `position` was stored in the object store.
    fn snapshot_stored(&self, _position: LogPosition, _bytes: u64) {}
    /// `messages` of the partition's subject were purged below the older kept snapshot.
    fn log_purged(&self, _messages: u64) {}
}

/// Where a partition's log keeps its snapshots, and when it may drop what they cover.
pub struct SnapshotKeeping {
    /// The object store bucket.
    pub bucket: SnapshotBucket,
    /// The office logs, to purge the partition's subject.
    pub log: OfficeLog,
    /// Whether this node may still act as the partition's owner (its serving gate): older snapshots are deleted and
    /// the subject purged only then, so a deposed owner never drops what the new one may need.
    pub may_prune: Arc<dyn Fn() -> bool + Send + Sync>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Closing,
    Stopped,
}

struct Pending {
    records: Vec<(LogPosition, Vec<u8>)>,
    last_position: LogPosition,
    state: State,
}

#[derive(Clone)]
struct Durable {
    position: LogPosition,
    failure: Option<String>,
    closed: bool,
}

struct Shared {
    subject: String,
    pending: Mutex<Pending>,
    work: Notify,
    durable: watch::Sender<Durable>,
    bytes_written: AtomicU64,
    batch_bytes_max: usize,
    /// Which stream sequence holds which positions, for the newest batches.
    batch_sequences: Mutex<BatchSequences>,
}

impl Shared {
    /// Stops the log with `failure`: pending records are dropped and every waiter gets the error.
    fn fail(&self, failure: String) {
        {
            let mut pending = self.pending.lock();
            pending.state = State::Stopped;
            pending.records.clear();
        }
        self.durable.send_modify(|durable| {
            durable.failure.get_or_insert(failure);
        });
    }

    /// Takes the oldest pending records that fit in one batch; empty when there are none.
    fn take_batch(&self) -> (Vec<(LogPosition, Vec<u8>)>, State) {
        let mut pending = self.pending.lock();
        let budget = self.batch_bytes_max.saturating_sub(super::batch::BATCH_HEADER_BYTES);
        let mut bytes = 0usize;
        let count = pending
            .records
            .iter()
            .take_while(|(_, payload)| {
                bytes += RECORD_HEADER_BYTES as usize + payload.len();
                bytes <= budget
            })
            .count()
            .max(1)
            .min(pending.records.len());
        (pending.records.drain(..count).collect(), pending.state)
    }
}

/// A partition's log on JetStream; see the module documentation.
pub struct JetStreamLog {
    shared: Arc<Shared>,
    writer_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    runtime: tokio::runtime::Handle,
    partition: OfficeId,
    observer: Option<Arc<dyn PartitionLogObserver>>,
    snapshots: Option<SnapshotKeeping>,
}

impl JetStreamLog {
    /// Starts the writer task for `writer` (opened under this node's lease, after the caller replayed the log up to
    /// `writer.next_position() - 1`) on the current Tokio runtime. An append whose outcome stays unknown for
    /// `retry_for` fails the log. Must be called from within a Tokio runtime.
    #[must_use]
    pub fn start(
        writer: OfficeWriter,
        batch_bytes_max: u32,
        retry_for: Duration,
        observer: Option<Arc<dyn PartitionLogObserver>>,
    ) -> JetStreamLog {
        let last_position = LogPosition(writer.next_position().0 - 1);
        let shared = Arc::new(Shared {
            subject: super::placement::log_subject(writer.office()),
            pending: Mutex::new(Pending { records: Vec::new(), last_position, state: State::Open }),
            work: Notify::new(),
            durable: watch::Sender::new(Durable { position: last_position, failure: None, closed: false }),
            bytes_written: AtomicU64::new(0),
            batch_bytes_max: batch_bytes_max as usize,
            batch_sequences: Mutex::new(BatchSequences::default()),
        });
        let runtime = tokio::runtime::Handle::current();
        let partition = writer.office().clone();
        let task = runtime.spawn(run_writer(Arc::clone(&shared), writer, retry_for, observer.clone()));
        JetStreamLog { shared, writer_task: Mutex::new(Some(task)), runtime, partition, observer, snapshots: None }
    }

    /// Keeps the engine's snapshots per `keeping`; `replayed` are the batches the take-over replayed (in order), so a
    /// snapshot taken before this owner appended much can still place its position. Call before the engine appends.
    #[must_use]
    pub fn with_snapshots(
        mut self,
        keeping: SnapshotKeeping,
        replayed: impl IntoIterator<Item = BatchSequence>,
    ) -> Self {
        let mut sequences = self.shared.batch_sequences.lock();
        for batch in replayed {
            sequences.record(batch);
        }
        drop(sequences);
        self.snapshots = Some(keeping);
        self
    }

    /// Fails the log with `reason` (the lease was lost): nothing more is appended, every waiter gets the error.
    pub fn fail(&self, reason: &str) {
        self.shared.fail(reason.to_owned());
        self.shared.work.notify_one();
    }

    /// Why the log failed, once it has.
    #[must_use]
    pub fn failure(&self) -> Option<String> {
        self.shared.durable.borrow().failure.clone()
    }

    /// Resolves once the log has failed (fenced, refused, unavailable for too long, or [`JetStreamLog::fail`]), with
    /// why.
    pub async fn wait_failed(&self) -> String {
        let mut receiver = self.shared.durable.subscribe();
        match receiver.wait_for(|durable| durable.failure.is_some()).await {
            Ok(durable) => durable.failure.clone().unwrap_or_default(),
            // The sender lives as long as `self`: never reached.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for JetStreamLog {
    fn drop(&mut self) {
        if let Some(task) = self.writer_task.lock().take() {
            task.abort();
        }
    }
}

/// The error a waiter gets once the log failed.
fn failed(subject: &str, detail: &str) -> StorageError {
    StorageError::LogFailed { operation: "append", segment: PathBuf::from(subject), detail: detail.to_owned() }
}

impl LogSink for JetStreamLog {
    fn append(&self, payload: Vec<u8>) -> LogPosition {
        let (position, was_idle) = {
            let mut pending = self.shared.pending.lock();
            pending.last_position = LogPosition(pending.last_position.0 + 1);
            let was_idle = pending.records.is_empty();
            let position = pending.last_position;
            if pending.state == State::Open {
                pending.records.push((position, payload));
            }
            (position, was_idle)
        };
        if was_idle {
            self.shared.work.notify_one();
        }
        position
    }

    fn wait_durable(&self, position: LogPosition) -> DurableFuture<'_> {
        let mut receiver = self.shared.durable.subscribe();
        Box::pin(async move {
            let durable = receiver
                .wait_for(|durable| durable.position >= position || durable.failure.is_some() || durable.closed)
                .await
                .map(|durable| durable.clone())
                .map_err(|_| StorageError::LogClosed)?;
            match durable.failure {
                _ if durable.position >= position => Ok(()),
                Some(failure) => Err(failed(&self.shared.subject, &failure)),
                None => Err(StorageError::LogClosed),
            }
        })
    }

    fn durable_position(&self) -> LogPosition {
        self.shared.durable.borrow().position
    }

    fn last_position(&self) -> LogPosition {
        self.shared.pending.lock().last_position
    }
}

impl LogStore for JetStreamLog {
    fn bytes_written(&self) -> u64 {
        self.shared.bytes_written.load(Ordering::Relaxed)
    }

    /// Snapshots are kept when the log was given somewhere to keep them ([`JetStreamLog::with_snapshots`]), and no
    /// longer once it failed: a deposed owner's snapshotter would otherwise wait on a log that never answers again.
    fn keeps_snapshots(&self) -> bool {
        self.snapshots.is_some() && self.failure().is_none()
    }

    /// Stores the snapshot in the object store, then (while the node may serve) deletes the partition's older
    /// snapshots beyond the newest two and purges the subject below the older kept one. Skipped (`Ok(None)`, logged)
    /// when the stream sequence holding `position` is not known.
    fn save_snapshot(&self, position: LogPosition, payload: &[u8]) -> storage::Result<Option<SavedSnapshot>> {
        let Some(keeping) = &self.snapshots else { return Ok(None) };
        let Some(sequence) = self.shared.batch_sequences.lock().sequence_of(position) else {
            tracing::warn!(
                position = position.0,
                partition = %self.partition,
                "snapshot skipped: the stream sequence holding its position is not known"
            );
            return Ok(None);
        };
        let framed = storage::frame_snapshot(position, payload);
        let kept = self.runtime.block_on(keep(keeping, &self.partition, position, sequence, &framed));
        let (stored, purged) = kept.map_err(|error| {
            let name = super::snapshots::snapshot_object_name(&self.partition, position);
            StorageError::io("store snapshot", std::path::Path::new(&name), std::io::Error::other(error.to_string()))
        })?;
        if let Some(observer) = &self.observer {
            observer.snapshot_stored(position, stored.bytes);
            observer.log_purged(purged);
        }
        Ok(Some(SavedSnapshot {
            position,
            location: format!("{}/{}", super::snapshots::SNAPSHOT_BUCKET, stored.name),
            payload_bytes: payload.len() as u64,
            units_dropped: purged,
        }))
    }

    /// Waits (blocking) until every record appended so far is stored, then stops the writer task.
    fn close(&self) -> crate::storage::Result<()> {
        {
            let mut pending = self.shared.pending.lock();
            if pending.state == State::Open {
                pending.state = State::Closing;
            }
        }
        self.shared.work.notify_one();
        if let Some(task) = self.writer_task.lock().take() {
            let _ = self.runtime.block_on(task);
        }
        match self.failure() {
            Some(failure) => Err(failed(&self.shared.subject, &failure)),
            None => Ok(()),
        }
    }
}

/// The writer task: takes pending records in order, appends them as one batch, and moves the durable position on
/// after each PubAck. Returns when the log closes or fails.
async fn run_writer(
    shared: Arc<Shared>,
    mut writer: OfficeWriter,
    retry_for: Duration,
    observer: Option<Arc<dyn PartitionLogObserver>>,
) {
    loop {
        let (batch, state) = shared.take_batch();
        if batch.is_empty() {
            match state {
                State::Open => {
                    shared.work.notified().await;
                    continue;
                }
                State::Closing => {
                    shared.durable.send_modify(|durable| durable.closed = true);
                    return;
                }
                State::Stopped => return,
            }
        }
        if batch[0].0 != writer.next_position() {
            let detail = format!("record {} queued where {} was due", batch[0].0.0, writer.next_position().0);
            shared.fail(detail);
            return;
        }
        let records = batch.len();
        let bytes: u64 = batch.iter().map(|(_, payload)| RECORD_HEADER_BYTES + payload.len() as u64).sum();
        let payloads: Vec<Vec<u8>> = batch.into_iter().map(|(_, payload)| payload).collect();
        let started = Instant::now();
        let result = loop {
            match writer.append(&payloads).await {
                Err(error) if error.is_retryable() && started.elapsed() < retry_for => {
                    tracing::warn!(%error, "log append outcome unknown; resending the same batch");
                    tokio::time::sleep(RETRY_PAUSE).await;
                    if shared.pending.lock().state == State::Stopped {
                        return;
                    }
                }
                other => break other,
            }
        };
        match result {
            Ok(written) => {
                shared.bytes_written.fetch_add(bytes, Ordering::Relaxed);
                shared.batch_sequences.lock().record(BatchSequence {
                    first_position: written.first_position,
                    last_position: written.last_position,
                    stream_sequence: written.appended.stream_sequence,
                });
                if let Some(observer) = &observer {
                    observer.batch_appended(records, started.elapsed());
                }
                shared.durable.send_modify(|durable| durable.position = written.last_position);
            }
            Err(error) => {
                if let (ClusterError::Fenced { .. }, Some(observer)) = (&error, &observer) {
                    observer.append_fenced();
                }
                tracing::error!(%error, subject = %shared.subject, "partition log failed; no more appends");
                shared.fail(error.to_string());
                return;
            }
        }
    }
}

/// Stores `framed` as `partition`'s snapshot at `position` (replayed after from `sequence`), then prunes (see
/// [`prune`]). Returns the stored snapshot and how many messages were purged. A failed prune is logged, not an error:
/// the snapshot is stored, and the next one prunes again.
async fn keep(
    keeping: &SnapshotKeeping,
    partition: &OfficeId,
    position: LogPosition,
    sequence: u64,
    framed: &[u8],
) -> Result<(StoredSnapshot, u64)> {
    let stored = keeping.bucket.put(partition, position, sequence, framed).await?;
    let purged = prune(keeping, partition).await.unwrap_or_else(|error| {
        tracing::warn!(%error, partition = %partition, "snapshot stored, but older snapshots or log not dropped yet");
        0
    });
    Ok((stored, purged))
}

/// While the node may serve: deletes `partition`'s snapshots older than the newest [`SNAPSHOTS_KEPT`], then purges its
/// subject below the sequence the older kept one replays from. Returns how many messages were purged.
async fn prune(keeping: &SnapshotKeeping, partition: &OfficeId) -> Result<u64> {
    if !(keeping.may_prune)() {
        return Ok(0);
    }
    let snapshots = keeping.bucket.list(partition).await?;
    let surplus = snapshots.len().saturating_sub(SNAPSHOTS_KEPT);
    for old in &snapshots[..surplus] {
        keeping.bucket.delete(&old.name).await?;
    }
    let kept = &snapshots[surplus..];
    // Only with two kept: the subject must still hold what a fall-back to the older one replays.
    match kept {
        [older, ..] if kept.len() == SNAPSHOTS_KEPT && (keeping.may_prune)() => {
            keeping.log.purge_below(partition, older.replay_from_stream_sequence).await
        }
        _ => Ok(0),
    }
}

/// Reads `partition`'s whole log back from its subject as records in position order, for a replay with no snapshot.
/// [`ClusterError::Gap`] when the subject no longer starts at position 1 (it was purged below a snapshot).
pub async fn read_records(log: &OfficeLog, partition: &OfficeId) -> Result<LogRecords> {
    Ok(read_records_after(log, partition, LogPosition(0), 1).await?.records)
}

/// A partition's log read back after a snapshot.
#[derive(Debug)]
pub struct ReadBack {
    /// The records after the snapshot's position, in position order, the first at position + 1.
    pub records: LogRecords,
    /// The batches read (records up to the snapshot's position included), in order, for [`JetStreamLog::with_snapshots`].
    pub batches: Vec<BatchSequence>,
}

/// Reads `partition`'s log from stream sequence `from_sequence` on (1: its start) and returns the records after
/// position `after`, checked to continue it ([`super::continuity::records_after`]): [`ClusterError::Gap`] otherwise.
pub async fn read_records_after(
    log: &OfficeLog,
    partition: &OfficeId,
    after: LogPosition,
    from_sequence: u64,
) -> Result<ReadBack> {
    let replayed = log.replay(partition, from_sequence.saturating_sub(1)).await?;
    let batches = replayed
        .iter()
        .map(|replayed| BatchSequence {
            first_position: replayed.batch.header.first_position,
            last_position: replayed.batch.header.last_position(),
            stream_sequence: replayed.stream_sequence,
        })
        .collect();
    let decoded = replayed.into_iter().map(|replayed| replayed.batch).collect();
    let records = super::continuity::records_after(after, decoded)
        .map_err(|source| ClusterError::Gap { office: partition.to_string(), source })?;
    Ok(ReadBack { records, batches })
}
