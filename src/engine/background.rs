//! The engine's background work, started and stopped as one [`Background`] value: the ticker (expiring holds,
//! forgetting old request ids, moving the waiting rooms on, see [`Engine::run_tick`]), the snapshotter, and the
//! gauges published for Prometheus.
//!
//! Each loop selects on a [`Shutdown`] beside its timer, so [`Background::stop`] returns as soon as the piece of work
//! in progress has finished; nothing is aborted halfway through logging a change. The snapshotter is an OS thread of
//! its own because a snapshot is blocking file I/O that can take seconds; it waits for its next look on the same
//! shutdown signal, so it stops within one snapshot, not one poll period. It runs at the lowest CPU priority
//! ([`SNAPSHOT_THREAD_NICE`]): on a saturated core the request path comes first, and the snapshot takes the time that
//! is left (under full saturation it finishes late, not never: the scheduler still gives it a small share).

use super::Engine;
use super::shutdown::{Shutdown, ShutdownNotifier};
use crate::limits::{GAUGE_PERIOD_SECONDS, SNAPSHOT_POLL_MS};
use crate::metrics as names;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The nice value of the snapshot thread: the lowest priority, so that encoding a large image never takes the core
/// from calls. Its capture holds every shard lock only for a handful of reference-count bumps (the shards are
/// persistent maps), so a preemption there delays calls by a context switch at most: waiting calls park and leave it
/// the core.
pub const SNAPSHOT_THREAD_NICE: i32 = 19;

/// The running background work of one engine.
pub struct Background {
    notifier: ShutdownNotifier,
    tasks: Vec<JoinHandle<()>>,
    snapshotter: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Starts the ticker, the snapshotter and the gauges for `engine`. Call it from within the Tokio runtime, after
    /// recovery, once the engine may take changes.
    #[must_use]
    pub fn start(engine: &Arc<Engine>) -> Background {
        let notifier = ShutdownNotifier::new();
        let ticker = tokio::spawn(run_ticker(Arc::clone(engine), notifier.subscribe()));
        let gauges = tokio::spawn(run_gauges(Arc::clone(engine), notifier.subscribe()));
        let snapshotter = spawn_snapshotter(Arc::clone(engine), notifier.subscribe());
        Background { notifier, tasks: vec![ticker, gauges], snapshotter }
    }

    /// Tells every loop to stop and waits until they have: the tick or snapshot in progress finishes first. After
    /// this nothing in the background touches the engine, so a final snapshot sees everything.
    pub async fn stop(mut self) {
        self.notifier.notify();
        for task in self.tasks.drain(..) {
            if let Err(error) = task.await {
                tracing::error!(%error, "background task failed");
            }
        }
        if let Some(thread) = self.snapshotter.take() {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("snapshot thread failed");
            }
        }
    }
}

/// Runs [`Engine::run_tick`] every `expiry_tick` until shut down. A tick that runs late delays the next one instead of
/// bunching them up.
async fn run_ticker(engine: Arc<Engine>, mut shutdown: Shutdown) {
    let mut interval = tokio::time::interval(engine.options.expiry_tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = shutdown.recv() => return,
        }
        let started = Instant::now();
        engine.run_tick().await;
        metrics::histogram!(names::BACKGROUND_PASS_SECONDS, "pass" => "tick").record(started.elapsed().as_secs_f64());
    }
}

/// Publishes the gauges every [`GAUGE_PERIOD_SECONDS`] until shut down.
async fn run_gauges(engine: Arc<Engine>, mut shutdown: Shutdown) {
    let started = Instant::now();
    let mut interval = tokio::time::interval(Duration::from_secs(GAUGE_PERIOD_SECONDS));
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = shutdown.recv() => return,
        }
        let pass_started = Instant::now();
        publish_gauges(&engine, &engine.options.data_dir, started);
        metrics::histogram!(names::BACKGROUND_PASS_SECONDS, "pass" => "gauges")
            .record(pass_started.elapsed().as_secs_f64());
    }
}

/// Starts the thread that writes a snapshot whenever one is due, looking every [`SNAPSHOT_POLL_MS`]. `None` (logged)
/// when the thread cannot be started: the service still runs, and the final snapshot is still written at shutdown.
fn spawn_snapshotter(engine: Arc<Engine>, mut shutdown: Shutdown) -> Option<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::current();
    let poll = Duration::from_millis(SNAPSHOT_POLL_MS);
    let spawned = std::thread::Builder::new().name("antrean-snapshot".into()).spawn(move || {
        lower_own_priority();
        loop {
            let told_to_stop = runtime.block_on(async { tokio::time::timeout(poll, shutdown.recv()).await.is_ok() });
            if told_to_stop {
                return;
            }
            if engine.snapshot_due() {
                let started = Instant::now();
                if let Err(error) = engine.snapshot(&runtime) {
                    tracing::error!(%error, "snapshot failed");
                }
                metrics::histogram!(names::BACKGROUND_PASS_SECONDS, "pass" => "snapshot")
                    .record(started.elapsed().as_secs_f64());
            }
        }
    });
    spawned.map_err(|error| tracing::error!(%error, "cannot start the snapshot thread")).ok()
}

/// Sets the calling thread's nice value to [`SNAPSHOT_THREAD_NICE`]. On Linux the nice value is per thread, so this
/// leaves the request threads as they are. Refused (a sandbox without `setpriority`): logged, and the snapshot runs at
/// the priority of the requests.
fn lower_own_priority() {
    let thread = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(thread), SNAPSHOT_THREAD_NICE) {
        tracing::warn!(%error, nice = SNAPSHOT_THREAD_NICE, "cannot lower the snapshot thread's priority");
    }
}

fn publish_gauges(engine: &Engine, data_dir: &Path, started: Instant) {
    metrics::gauge!(names::UPTIME_SECONDS).set(started.elapsed().as_secs_f64());
    for office_id in engine.book().catalog().offices.keys() {
        if let Ok(stats) = engine.book().office_stats(office_id) {
            let office = office_id.to_string();
            metrics::gauge!(names::SLOTS_REMAINING, "office" => office.clone()).set(stats.remaining as f64);
            metrics::gauge!(names::HOLDS_ACTIVE, "office" => office).set(stats.active_holds as f64);
        }
    }
    let mut depths: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (key, waiting, admitted) in engine.book().waiting_room_depths() {
        let depth = depths.entry(key.office_id.to_string()).or_default();
        depth.0 += waiting;
        depth.1 += u64::from(admitted);
    }
    for (office, (waiting, admitted)) in depths {
        metrics::gauge!(names::WAITING_ROOM_TICKETS, "office" => office.clone(), "state" => "waiting")
            .set(waiting as f64);
        metrics::gauge!(names::WAITING_ROOM_TICKETS, "office" => office, "state" => "admitted").set(admitted as f64);
    }
    if let Some((free, total)) = disk_space(data_dir) {
        metrics::gauge!(names::DATA_DIR_FREE_BYTES).set(free as f64);
        metrics::gauge!(names::DATA_DIR_TOTAL_BYTES).set(total as f64);
    }
}

/// Free bytes (for an unprivileged process) and total bytes of the file system holding `path`; `None` if it cannot be
/// asked.
fn disk_space(path: &Path) -> Option<(u64, u64)> {
    let stats = rustix::fs::statvfs(path).ok()?;
    let block = stats.f_frsize;
    Some((stats.f_bavail.saturating_mul(block), stats.f_blocks.saturating_mul(block)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_space_of_a_real_directory_is_known_and_of_a_missing_one_is_not() {
        let dir = std::env::temp_dir();

        let (free, total) = disk_space(&dir).expect("the temporary directory's file system");

        assert!(total > 0 && free <= total, "free {free} of {total}");
        assert_eq!(disk_space(&dir.join("no-such-directory-for-antrean")), None);
    }
}
