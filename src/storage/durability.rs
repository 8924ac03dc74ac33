//! The durable position and the tasks waiting for it.
//!
//! Owns publishing "everything up to position P is durable", the fatal failure state and the closed state, and waking
//! the waiters each publication satisfies. Waiters are grouped by the batch that will carry their record: a writer
//! seals the open batch when it takes its records ([`Durability::seal`]), and one publication wakes every waiter of the
//! batches it covers through one shared [`Notify`] per batch. A call costs no allocation and no ordered-map insert to
//! wait, and a publication costs one lock and one notification per batch, however many callers it releases. It must
//! not do I/O and must never be held across an `.await`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use tokio::sync::Notify;

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

/// Published durability state shared by the writers and waiting tasks.
#[derive(Debug)]
pub(crate) struct Durability {
    position: AtomicU64,
    failure: OnceLock<Failure>,
    closed: AtomicBool,
    /// Batches with possible waiters, oldest first, by strictly increasing last position; the last one is always the
    /// open batch (last position `u64::MAX`): records no writer has taken yet. A handful at most: a batch leaves when a
    /// publication covers it, and writers take one batch at a time. Lock order: taken after the pending buffer's lock
    /// (`seal` runs under it), never before it.
    batches: Mutex<VecDeque<WaitingBatch>>,
}

/// The waiters of one batch of records.
#[derive(Debug)]
struct WaitingBatch {
    /// Highest position in the batch; `u64::MAX` while it is open.
    last_position: u64,
    /// Notified once when the batch is durable (or the log fails or closes); made by its first waiter.
    released: Option<Arc<Notify>>,
}

impl WaitingBatch {
    fn open() -> Self {
        WaitingBatch { last_position: u64::MAX, released: None }
    }
}

impl Durability {
    /// State for a log whose records up to `position` are already durable.
    pub(crate) fn new(position: LogPosition) -> Self {
        Durability {
            position: AtomicU64::new(position.0),
            failure: OnceLock::new(),
            closed: AtomicBool::new(false),
            batches: Mutex::new(VecDeque::from([WaitingBatch::open()])),
        }
    }

    /// Highest durable position.
    pub(crate) fn position(&self) -> LogPosition {
        LogPosition(self.position.load(Ordering::SeqCst))
    }

    /// The failure, if the log has stopped on one.
    pub(crate) fn failure(&self) -> Option<&Failure> {
        self.failure.get()
    }

    /// Closes the open batch at `last_position`: a writer has just taken every pending record up to it. Later waiters
    /// join a new open batch, so the publication of this one does not wake them. Call it under the pending buffer's
    /// lock, so that no record after `last_position` was appended before the seal.
    pub(crate) fn seal(&self, last_position: LogPosition) {
        let mut batches = self.batches.lock();
        let open = batches.back_mut().expect("there is always an open batch");
        debug_assert_eq!(open.last_position, u64::MAX, "the last batch is the open one");
        open.last_position = last_position.0;
        batches.push_back(WaitingBatch::open());
    }

    /// Publishes that every record up to `position` is durable and wakes the waiters of the batches it covers.
    pub(crate) fn publish(&self, position: LogPosition) {
        let previous = self.position.fetch_max(position.0, Ordering::SeqCst);
        assert!(previous <= position.0, "durable position went backwards from {previous} to {}", position.0);
        let mut released = Vec::new();
        {
            let mut batches = self.batches.lock();
            while batches.front().is_some_and(|batch| batch.last_position <= position.0) {
                released.extend(batches.pop_front().and_then(|batch| batch.released));
            }
        }
        wake(released);
    }

    /// Records the fatal failure and wakes every waiter so that each gets the error.
    pub(crate) fn fail(&self, failure: Failure) {
        let _ = self.failure.set(failure);
        self.wake_all();
    }

    /// Records that the log has stopped cleanly and wakes every remaining waiter.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    /// Resolves once `position` is durable, or with the reason it never will be.
    pub(crate) async fn wait(&self, position: LogPosition) -> Result<()> {
        loop {
            if let Some(outcome) = self.outcome(position) {
                return outcome;
            }
            let released = {
                let mut batches = self.batches.lock();
                // Checked again under the lock: `publish`, `fail` and `close` change state before taking it, so a
                // waiter registered here is woken by whichever of them comes next.
                if let Some(outcome) = self.outcome(position) {
                    return outcome;
                }
                let batch = batches
                    .iter_mut()
                    .find(|batch| batch.last_position >= position.0)
                    .expect("the open batch takes every position");
                // Created under the lock: a notification sent after it is never missed, even before the first poll.
                Arc::clone(batch.released.get_or_insert_with(Arc::default)).notified_owned()
            };
            // Usually the batch's publication, so the loop then ends; a batch sealed while part of what was pending
            // stayed behind (batch limits) wakes that part early, and it waits again.
            released.await;
        }
    }

    /// The final answer for `position`, or None while it may still become durable.
    pub(crate) fn outcome(&self, position: LogPosition) -> Option<Result<()>> {
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
        let released: Vec<_> = {
            let mut batches = self.batches.lock();
            let all = std::mem::replace(&mut *batches, VecDeque::from([WaitingBatch::open()]));
            all.into_iter().filter_map(|batch| batch.released).collect()
        };
        wake(released);
    }
}

fn wake(released: Vec<Arc<Notify>>) {
    for batch in released {
        batch.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Poll, Wake, Waker};

    type Waiting<'a> = Pin<Box<dyn Future<Output = Result<()>> + 'a>>;

    /// A waiter polled by hand, with a waker that counts its wake-ups.
    struct Waiter<'a> {
        future: Waiting<'a>,
        wakes: Arc<WakeCount>,
    }

    #[derive(Default)]
    struct WakeCount(AtomicUsize);

    impl Wake for WakeCount {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl<'a> Waiter<'a> {
        /// Starts waiting for `position` and checks that it is not released yet.
        fn start(durability: &'a Durability, position: u64) -> Self {
            let mut waiter = Waiter { future: Box::pin(durability.wait(LogPosition(position))), wakes: Arc::default() };
            assert!(waiter.poll().is_pending(), "position {position} is not durable yet");
            waiter
        }

        fn poll(&mut self) -> Poll<Result<()>> {
            let waker = Waker::from(Arc::clone(&self.wakes));
            self.future.as_mut().poll(&mut Context::from_waker(&waker))
        }

        fn wakes(&self) -> usize {
            self.wakes.0.load(Ordering::SeqCst)
        }
    }

    fn failure() -> Failure {
        Failure { operation: "fsync", segment: "wal-1.log".into(), detail: "EIO".into() }
    }

    #[test]
    fn one_publication_releases_every_waiter_of_its_batch_and_wakes_no_later_one() {
        let durability = Durability::new(LogPosition(0));
        let mut first_batch: Vec<_> = (1..=100).map(|position| Waiter::start(&durability, position)).collect();
        durability.seal(LogPosition(100));
        let mut second_batch: Vec<_> = (101..=150).map(|position| Waiter::start(&durability, position)).collect();
        durability.publish(LogPosition(100));
        for waiter in &mut first_batch {
            assert_eq!(waiter.wakes(), 1);
            assert!(matches!(waiter.poll(), Poll::Ready(Ok(()))));
        }
        for waiter in &mut second_batch {
            assert_eq!(waiter.wakes(), 0, "a later batch sleeps through an earlier publication");
            assert!(waiter.poll().is_pending());
        }
        durability.seal(LogPosition(150));
        durability.publish(LogPosition(150));
        assert!(second_batch.iter_mut().all(|waiter| waiter.wakes() == 1 && waiter.poll().is_ready()));
        assert_eq!(durability.batches.lock().len(), 1, "only the open batch is left");
    }

    #[test]
    fn a_waiter_registering_after_the_seal_joins_the_sealed_batch() {
        let durability = Durability::new(LogPosition(0));
        durability.seal(LogPosition(10));
        let mut late = Waiter::start(&durability, 7);
        let mut next = Waiter::start(&durability, 11);
        durability.publish(LogPosition(10));
        assert_eq!((late.wakes(), next.wakes()), (1, 0));
        assert!(matches!(late.poll(), Poll::Ready(Ok(()))));
        assert!(Waiter { future: Box::pin(durability.wait(LogPosition(10))), wakes: Arc::default() }.poll().is_ready());
        assert!(next.poll().is_pending());
    }

    #[test]
    fn a_record_left_behind_by_the_batch_limits_is_woken_early_and_waits_again() {
        let durability = Durability::new(LogPosition(0));
        let mut left_behind = Waiter::start(&durability, 6);
        // The writer took only records 1..=4 of six pending.
        durability.seal(LogPosition(4));
        durability.publish(LogPosition(4));
        assert_eq!(left_behind.wakes(), 1);
        assert!(left_behind.poll().is_pending(), "record 6 is not durable: the waiter registers again");
        durability.seal(LogPosition(6));
        durability.publish(LogPosition(6));
        assert_eq!(left_behind.wakes(), 2);
        assert!(matches!(left_behind.poll(), Poll::Ready(Ok(()))));
    }

    #[test]
    fn a_failure_wakes_every_waiter_of_every_batch_with_the_error() {
        let durability = Durability::new(LogPosition(0));
        durability.publish(LogPosition(1));
        let mut waiters: Vec<_> = (2..=3).map(|position| Waiter::start(&durability, position)).collect();
        durability.seal(LogPosition(3));
        waiters.extend((4..=6).map(|position| Waiter::start(&durability, position)));
        durability.fail(failure());
        for (index, waiter) in waiters.iter_mut().enumerate() {
            assert_eq!(waiter.wakes(), 1, "waiter {index}");
            assert!(matches!(waiter.poll(), Poll::Ready(Err(StorageError::LogFailed { operation: "fsync", .. }))));
        }
        let mut durable = Waiter { future: Box::pin(durability.wait(LogPosition(1))), wakes: Arc::default() };
        assert!(matches!(durable.poll(), Poll::Ready(Ok(()))), "what was durable stays durable");
        let mut later = Waiter { future: Box::pin(durability.wait(LogPosition(9))), wakes: Arc::default() };
        assert!(matches!(later.poll(), Poll::Ready(Err(StorageError::LogFailed { .. }))), "later waiters fail at once");
    }

    #[test]
    fn close_wakes_every_waiter_with_log_closed() {
        let durability = Durability::new(LogPosition(5));
        let mut waiters: Vec<_> = (6..=9).map(|position| Waiter::start(&durability, position)).collect();
        durability.seal(LogPosition(7));
        durability.close();
        for waiter in &mut waiters {
            assert_eq!(waiter.wakes(), 1);
            assert!(matches!(waiter.poll(), Poll::Ready(Err(StorageError::LogClosed))));
        }
        assert!(Waiter { future: Box::pin(durability.wait(LogPosition(5))), wakes: Arc::default() }.poll().is_ready());
    }

    #[tokio::test]
    async fn tasks_on_a_runtime_are_released_by_the_publication_that_covers_them() {
        let durability = Arc::new(Durability::new(LogPosition(0)));
        let waiting: Vec<_> = (1..=4)
            .map(|position| {
                let durability = Arc::clone(&durability);
                tokio::spawn(async move { durability.wait(LogPosition(position)).await })
            })
            .collect();
        tokio::task::yield_now().await;
        durability.seal(LogPosition(4));
        durability.publish(LogPosition(2));
        durability.publish(LogPosition(4));
        for task in waiting {
            task.await.unwrap().unwrap();
        }
    }
}
