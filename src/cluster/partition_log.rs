//! [`JetStreamLog`]: a partition's log on JetStream as the engine's [`LogStore`]. Records appended by the engine are
//! group-committed by one writer task into batches, each batch one fenced JetStream message through the lease
//! holder's [`OfficeWriter`]; a record is durable once its batch's PubAck came back, so answers are released only then.
//!
//! Owns the pending records, the writer task, and the durable position the engine's calls wait on. It must not decide
//! who owns the partition: the caller opened the writer under its lease. A fenced append, a refusal, or an unknown
//! outcome that outlasts the retry window fails the log for good (every current and later waiter gets the error), as a
//! failed fsync fails the local log; the caller then stops serving the partition. [`JetStreamLog::fail`] does the same
//! from outside, when the lease is lost.

use super::error::{ClusterError, Result};
use super::log::OfficeLog;
use super::writer::OfficeWriter;
use crate::domain::OfficeId;
use crate::storage::{DurableFuture, LogPosition, LogRecords, LogSink, LogStore, RECORD_HEADER_BYTES, StorageError};
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
        });
        let runtime = tokio::runtime::Handle::current();
        let task = runtime.spawn(run_writer(Arc::clone(&shared), writer, retry_for, observer));
        JetStreamLog { shared, writer_task: Mutex::new(Some(task)), runtime }
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

    /// The partition's log is replayed from its subject at every take-over: local snapshots would not be found by
    /// the next owner (object-store snapshots are not built yet).
    fn keeps_snapshots(&self) -> bool {
        false
    }

    fn prune_before(&self, _oldest_kept: LogPosition) -> crate::storage::Result<usize> {
        Ok(0)
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

/// Reads `partition`'s whole log back from its subject as records in position order, for the engine's replay before a
/// new owner serves.
pub async fn read_records(log: &OfficeLog, partition: &OfficeId) -> Result<LogRecords> {
    let batches = log.replay(partition, 0).await?;
    let mut records = Vec::new();
    for replayed in batches {
        let first = replayed.batch.header.first_position.0;
        records.extend((first..).map(LogPosition).zip(replayed.batch.payloads));
    }
    Ok(records)
}
