//! The durable position and the tasks waiting for it.
//!
//! Owns publishing "everything up to position P is durable", the fatal failure state and the closed state, and waking
//! exactly the waiters each publication satisfies. Waiters are kept ordered by position, so a publication wakes only
//! the tasks it releases and thousands of waiters cost nothing per batch beyond their own wake-up. It must not do I/O
//! and must never be held across an `.await`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::error::{Result, StorageError};
use super::sink::LogPosition;

/// Why the writer stopped; kept so every waiter can get its own [`StorageError::LogFailed`].
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) operation: &'static str,
    pub(crate) segment: PathBuf,
    pub(crate) detail: String,
}

impl Failure {
    pub(crate) fn to_error(&self) -> StorageError {
        StorageError::LogFailed {
            operation: self.operation,
            segment: self.segment.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// Published durability state shared by the writer thread and waiting tasks.
#[derive(Debug)]
pub(crate) struct Durability {
    position: AtomicU64,
    failure: OnceLock<Failure>,
    closed: AtomicBool,
    /// Waiters by the position they wait for. Lock order: taken after any writer state, never with another lock.
    waiters: Mutex<BTreeMap<u64, Vec<oneshot::Sender<()>>>>,
}

impl Durability {
    /// State for a log whose records up to `position` are already durable.
    pub(crate) fn new(position: LogPosition) -> Self {
        Durability {
            position: AtomicU64::new(position.0),
            failure: OnceLock::new(),
            closed: AtomicBool::new(false),
            waiters: Mutex::new(BTreeMap::new()),
        }
    }

    /// Highest durable position.
    pub(crate) fn position(&self) -> LogPosition {
        LogPosition(self.position.load(Ordering::SeqCst))
    }

    /// The failure, if the writer has stopped on one.
    pub(crate) fn failure(&self) -> Option<&Failure> {
        self.failure.get()
    }

    /// Publishes that every record up to `position` is durable and wakes their waiters.
    pub(crate) fn publish(&self, position: LogPosition) {
        let previous = self.position.fetch_max(position.0, Ordering::SeqCst);
        assert!(previous <= position.0, "durable position went backwards from {previous} to {}", position.0);
        let released = {
            let mut waiters = self.waiters.lock();
            let still_waiting = waiters.split_off(&(position.0 + 1));
            std::mem::replace(&mut *waiters, still_waiting)
        };
        wake(released);
    }

    /// Records the fatal failure and wakes every waiter so that each gets the error.
    pub(crate) fn fail(&self, failure: Failure) {
        let _ = self.failure.set(failure);
        self.wake_all();
    }

    /// Records that the writer has stopped cleanly and wakes every remaining waiter.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    /// Resolves once `position` is durable, or with the reason it never will be.
    pub(crate) async fn wait(&self, position: LogPosition) -> Result<()> {
        if let Some(outcome) = self.outcome(position) {
            return outcome;
        }
        let receiver = {
            let mut waiters = self.waiters.lock();
            // Checked again under the lock: `publish`, `fail` and `close` change state before taking it.
            if let Some(outcome) = self.outcome(position) {
                return outcome;
            }
            let (sender, receiver) = oneshot::channel();
            waiters.entry(position.0).or_default().push(sender);
            receiver
        };
        // A dropped sender also means "look again": every path that drops one has changed the state first.
        let _ = receiver.await;
        self.outcome(position).unwrap_or(Err(StorageError::LogClosed))
    }

    /// The final answer for `position`, or None while it may still become durable.
    fn outcome(&self, position: LogPosition) -> Option<Result<()>> {
        if position.0 <= self.position.load(Ordering::SeqCst) {
            return Some(Ok(()));
        }
        if let Some(failure) = self.failure.get() {
            return Some(Err(failure.to_error()));
        }
        if self.closed.load(Ordering::SeqCst) {
            return Some(Err(StorageError::LogClosed));
        }
        None
    }

    fn wake_all(&self) {
        let released = std::mem::take(&mut *self.waiters.lock());
        wake(released);
    }
}

fn wake(released: BTreeMap<u64, Vec<oneshot::Sender<()>>>) {
    for sender in released.into_values().flatten() {
        let _ = sender.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publish_releases_only_waiters_at_or_below_the_position() {
        let durability = std::sync::Arc::new(Durability::new(LogPosition(0)));
        let waiting: Vec<_> = (1..=4)
            .map(|position| {
                let durability = std::sync::Arc::clone(&durability);
                tokio::spawn(async move { durability.wait(LogPosition(position)).await })
            })
            .collect();
        while durability.waiters.lock().len() < 4 {
            tokio::task::yield_now().await;
        }
        durability.publish(LogPosition(2));
        let mut waiting = waiting.into_iter();
        for _ in 0..2 {
            waiting.next().unwrap().await.unwrap().unwrap();
        }
        assert_eq!(durability.waiters.lock().len(), 2);
        durability.fail(Failure { operation: "fsync", segment: "s".into(), detail: "boom".into() });
        for task in waiting {
            assert!(matches!(task.await.unwrap(), Err(StorageError::LogFailed { operation: "fsync", .. })));
        }
        assert!(durability.wait(LogPosition(2)).await.is_ok());
        assert!(durability.wait(LogPosition(9)).await.is_err());
    }
}
