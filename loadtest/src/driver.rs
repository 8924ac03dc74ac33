//! Paces a scenario's calls: a closed loop of tasks that each send the next call when the previous returns, or an
//! open loop that sends calls on a fixed timetable whatever the server does.
//!
//! In the open loop every call carries the instant it was *due*; the scenario measures latency from there, so a
//! server (or client) that falls behind shows up as latency instead of being hidden by sending later (coordinated
//! omission). Calls that find too many calls in flight are not sent and are counted as dropped. Both loops stop by
//! themselves at the deadline or after the call limit, then wait a bounded time for calls in flight.
//!
//! The driver knows nothing of gRPC; a call is any future the scenario builds from a [`Call`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::recorder::Recorder;

/// How long calls in flight may take to finish after the load stops before the driver gives up on them.
pub const DRAIN_MAX: Duration = Duration::from_secs(15);

/// One call the scenario is asked to make.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    /// Sequence number, from 0; unique within the run.
    pub index: u64,
    /// When the call was due: latency is measured from here.
    pub due: Instant,
    /// When the load stops; a journey of several calls should not start new steps after it.
    pub deadline: Instant,
}

/// When open-loop calls are due, relative to the start.
#[derive(Clone, Debug)]
pub enum Timetable {
    /// Evenly spaced at this many calls per second.
    Rate(f64),
    /// At these offsets, ascending (e.g. the arrival times of users).
    Offsets(Vec<Duration>),
}

/// How the load is paced and bounded.
#[derive(Clone, Debug)]
pub enum Plan {
    /// `tasks` tasks in a closed loop.
    Closed {
        /// Number of tasks.
        tasks: usize,
    },
    /// An open loop on a timetable with at most `outstanding_max` calls in flight.
    Open {
        /// When calls are due.
        timetable: Timetable,
        /// Calls in flight at most.
        outstanding_max: usize,
    },
}

/// What the driver did.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct DriverStats {
    /// Calls started.
    pub started: u64,
    /// Open-loop calls not sent for lack of room.
    pub dropped: u64,
    /// From the start to the end of the drain, in seconds.
    pub elapsed_s: f64,
    /// Calls still running when the drain gave up.
    pub abandoned_in_flight: u64,
}

/// Runs `call` as `plan` says from `start` until `start + duration` or `max_calls` calls.
pub async fn run<F, Fut>(
    plan: Plan,
    start: Instant,
    duration: Duration,
    max_calls: u64,
    recorder: Arc<Recorder>,
    call: F,
) -> DriverStats
where
    F: Fn(Call) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let deadline = start + duration;
    let call = Arc::new(call);
    let mut stats = match plan {
        Plan::Closed { tasks } => closed_loop(tasks, deadline, max_calls, call).await,
        Plan::Open { timetable, outstanding_max } => {
            open_loop(&timetable, outstanding_max, start, deadline, max_calls, &recorder, call).await
        }
    };
    stats.elapsed_s = now().saturating_duration_since(start).as_secs_f64();
    stats
}

async fn closed_loop<F, Fut>(tasks: usize, deadline: Instant, max_calls: u64, call: Arc<F>) -> DriverStats
where
    F: Fn(Call) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for _ in 0..tasks {
        let (next, call) = (next.clone(), call.clone());
        set.spawn(async move {
            while now() < deadline {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= max_calls {
                    break;
                }
                call(Call { index, due: now(), deadline }).await;
            }
        });
    }
    let drained =
        tokio::time::timeout_at((deadline + DRAIN_MAX).into(), async { while set.join_next().await.is_some() {} })
            .await;
    let abandoned_in_flight = if drained.is_err() { set.len() as u64 } else { 0 };
    set.abort_all();
    let started = next.load(Ordering::Relaxed).min(max_calls);
    DriverStats { started, dropped: 0, elapsed_s: 0.0, abandoned_in_flight }
}

async fn open_loop<F, Fut>(
    timetable: &Timetable,
    outstanding_max: usize,
    start: Instant,
    deadline: Instant,
    max_calls: u64,
    recorder: &Recorder,
    call: Arc<F>,
) -> DriverStats
where
    F: Fn(Call) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(outstanding_max));
    let calls = scheduled_calls(timetable, deadline.duration_since(start), max_calls);
    let mut stats = DriverStats::default();
    for index in 0..calls {
        let due = start + due_offset(timetable, index);
        if due > now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            recorder.drop_call();
            stats.dropped += 1;
            continue;
        };
        let call = call.clone();
        stats.started += 1;
        tokio::spawn(async move {
            call(Call { index, due, deadline }).await;
            drop(permit);
        });
    }
    let all = u32::try_from(outstanding_max).expect("outstanding_max fits in u32");
    let drained = tokio::time::timeout_at((deadline.max(now()) + DRAIN_MAX).into(), slots.acquire_many(all)).await;
    if drained.is_err() {
        stats.abandoned_in_flight = (outstanding_max - slots.available_permits()) as u64;
    }
    stats
}

/// The current instant on tokio's clock (which tests can pause), as a `std` instant.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// How many calls of `timetable` fall within `duration`, at most `max_calls`.
pub fn scheduled_calls(timetable: &Timetable, duration: Duration, max_calls: u64) -> u64 {
    let within = match timetable {
        Timetable::Rate(rate) => (duration.as_secs_f64() * rate).ceil().max(0.0) as u64,
        Timetable::Offsets(offsets) => offsets.partition_point(|offset| *offset < duration) as u64,
    };
    within.min(max_calls)
}

/// When call `index` of `timetable` is due, relative to the start.
pub fn due_offset(timetable: &Timetable, index: u64) -> Duration {
    match timetable {
        Timetable::Rate(rate) => Duration::from_secs_f64(index as f64 / rate),
        Timetable::Offsets(offsets) => offsets[index as usize],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_timetable_spaces_calls_evenly() {
        let timetable = Timetable::Rate(1000.0);
        assert_eq!(due_offset(&timetable, 0), Duration::ZERO);
        assert_eq!(due_offset(&timetable, 1), Duration::from_millis(1));
        assert_eq!(due_offset(&timetable, 2500), Duration::from_millis(2500));
        assert_eq!(scheduled_calls(&timetable, Duration::from_secs(3), u64::MAX), 3000);
        assert_eq!(scheduled_calls(&timetable, Duration::from_secs(3), 10), 10);
        // A fractional rate still schedules the call at time zero.
        assert_eq!(scheduled_calls(&Timetable::Rate(0.5), Duration::from_secs(1), u64::MAX), 1);
        assert_eq!(scheduled_calls(&Timetable::Rate(3.0), Duration::from_millis(1500), u64::MAX), 5);
    }

    #[test]
    fn offset_timetable_stops_at_the_duration() {
        let offsets =
            vec![Duration::ZERO, Duration::from_millis(10), Duration::from_millis(20), Duration::from_secs(9)];
        let timetable = Timetable::Offsets(offsets);
        assert_eq!(scheduled_calls(&timetable, Duration::from_secs(1), u64::MAX), 3);
        assert_eq!(due_offset(&timetable, 2), Duration::from_millis(20));
    }

    #[tokio::test(start_paused = true)]
    async fn open_loop_measures_from_the_due_time_and_drops_beyond_the_cap() {
        let start = now();
        let recorder = Arc::new(Recorder::new(start));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let plan = Plan::Open { timetable: Timetable::Rate(100.0), outstanding_max: 5 };
        let stats = run(plan, start, Duration::from_secs(1), u64::MAX, recorder.clone(), move |call: Call| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push((call.index, call.due));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        // Each call holds a slot for 200 ms and one is due every 10 ms: 5 run at a time, so most are dropped.
        assert_eq!(stats.started + stats.dropped, 100);
        assert!(stats.dropped > 50, "{stats:?}");
        assert_eq!(recorder.summary().dropped, stats.dropped);
        for (index, due) in seen.lock().unwrap().iter() {
            assert_eq!(*due, start + Duration::from_millis(10 * index));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn closed_loop_stops_at_the_call_limit() {
        let start = now();
        let recorder = Arc::new(Recorder::new(start));
        let count = Arc::new(AtomicU64::new(0));
        let counter = count.clone();
        let stats = run(Plan::Closed { tasks: 4 }, start, Duration::from_secs(60), 37, recorder, move |_call| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert_eq!(stats.started, 37);
        assert_eq!(count.load(Ordering::Relaxed), 37);
    }
}
