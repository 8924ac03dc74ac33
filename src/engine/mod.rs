//! The engine: the one thing the gRPC layer calls. For a change it reads the clock, lets the quota book decide and
//! apply it under shard locks (logging its event there), then awaits durability of that log record before the answer
//! is released. It also owns the background work, started and stopped as one value in [`background`] (the ticker that
//! expires holds, forgets old request ids and moves the waiting rooms on; snapshots; gauges), told to stop through
//! [`shutdown`].
//!
//! Architecture invariant: no answer that reports a change leaves here before the change is durable, and a failed log
//! write stops the process instead of answering.

pub mod background;
pub mod codec;
pub mod draw;
pub mod error;
pub mod lifecycle;
pub mod local_log;
pub mod nik_claim_state;
pub mod nik_claims;
pub mod partition;
pub mod recovery;
pub mod shutdown;
pub mod waiting_room;
pub mod watchers;

use crate::domain::{Command, Event, EventLog, Execution, OfficeSettings, Outcome, QuotaBook, RequestId, Timestamp};
use crate::limits::{IDLE_TICKET_SCAN_SECONDS, STALE_REQUEST_SCAN_SECONDS};
use crate::metrics as names;
use crate::storage::{self, FileOpener, LogPosition, LogStore, SavedSnapshot, StdFileOpener, Wal, WalOptions};
pub use error::{EngineError, Result};
use parking_lot::Mutex;
pub use recovery::RecoveryReport;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where "now" comes from. The engine reads it once per command and passes it to the core.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(since_epoch.as_millis() as i64)
    }
}

/// How the engine stores and schedules.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Data directory; the log lives in `wal/`, snapshots in `snapshots/`.
    pub data_dir: PathBuf,
    /// Log options (its `dir` must be `data_dir/wal`).
    pub wal: WalOptions,
    /// Start despite mid-log corruption.
    pub accept_log_truncation: bool,
    /// Snapshot after this many records.
    pub snapshot_every_records: u64,
    /// Snapshot once this many bytes of log were written since the last snapshot (replayed ones included).
    pub snapshot_every_log_bytes: u64,
    /// Snapshot after this long.
    pub snapshot_every: Duration,
    /// Expiry ticker period.
    pub expiry_tick: Duration,
}

/// Gives a waiting room its draw secret.
pub type DrawSecretSource = Arc<dyn Fn(&crate::domain::WaitingRoomKey) -> crate::domain::DrawSecret + Send + Sync>;

/// Called when the log fails (a write or fsync error): the engine never answers after it.
pub type LogFailureHook = Arc<dyn Fn(&storage::StorageError) + Send + Sync>;

/// What a test or the simulator may put under the engine instead of the real world. [`Engine::open`] uses
/// [`EngineSeams::default`]: real files, a random booking-number key, and a failed log stopping the process.
#[derive(Clone, Default)]
pub struct EngineSeams {
    /// Opens the log's segment files; `None` opens them through `std::fs`.
    pub files: Option<Arc<dyn FileOpener>>,
    /// The booking-number key; `None` draws one at random (a replayable simulation needs a fixed one).
    pub booking_number_key: Option<[u8; 32]>,
    /// The prefix of every booking number this engine draws (cluster mode: its partition's mark, so that calls by
    /// booking id are routed to it first); `None` draws from the whole range.
    pub booking_number_prefix: Option<u8>,
    /// What a log failure does; `None` stops the process (`exit 1`). With a hook, the engine calls it and then never
    /// answers the waiting call, as a stopped process would not.
    pub on_log_failure: Option<LogFailureHook>,
    /// Each waiting room's draw secret; `None` draws them from the operating system (a replayable simulation needs
    /// them to follow from its seed).
    pub draw_secrets: Option<DrawSecretSource>,
}

/// Where the last snapshot left the log.
#[derive(Clone, Copy, Debug)]
struct LastSnapshot {
    /// The log position it covers.
    position: u64,
    /// When it was taken (or the engine opened).
    taken_at: Instant,
    /// Log bytes written by this process when it was taken, minus those replayed at start after the snapshot
    /// loaded: `written now - this` is the log a start would replay.
    log_bytes_at: i128,
}

/// The booking engine.
pub struct Engine {
    book: QuotaBook,
    log: Arc<dyn LogStore>,
    clock: Arc<dyn Clock>,
    options: EngineOptions,
    snapshot_in_progress: Mutex<()>,
    last_snapshot: Mutex<LastSnapshot>,
    watchers: watchers::Watchers,
    started_at: Timestamp,
    ticks: std::sync::atomic::AtomicU64,
    on_log_failure: Option<LogFailureHook>,
    draw_secrets: Option<DrawSecretSource>,
    /// Cluster mode: the NIK claims that keep the one-active-booking rule across partitions (`nik_claims.rs`).
    nik_claims: std::sync::OnceLock<Arc<nik_claim_state::NikClaims>>,
}

/// Sends the quota book's events to the log.
struct LogEvents<'log>(&'log dyn LogStore);

impl EventLog for LogEvents<'_> {
    fn append(&self, event: &Event) -> u64 {
        self.0.append(codec::encode_event(event)).0
    }
}

impl Engine {
    /// Recovers the state in `options.data_dir` and opens the log for appending. Blocking: call it off the runtime.
    pub fn open(
        rules: crate::domain::BookRules,
        options: EngineOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<(Engine, RecoveryReport)> {
        Engine::open_with_seams(rules, options, clock, EngineSeams::default())
    }

    /// [`Engine::open`] over `seams` (files, booking-number key, log-failure behaviour), for the simulator and tests.
    pub fn open_with_seams(
        rules: crate::domain::BookRules,
        options: EngineOptions,
        clock: Arc<dyn Clock>,
        seams: EngineSeams,
    ) -> Result<(Engine, RecoveryReport)> {
        storage::check_private_dir(&options.data_dir)?;
        let snapshot_dir = options.data_dir.join("snapshots");
        let (book, report) = recovery::recover(rules, &snapshot_dir, &options.wal.dir, options.accept_log_truncation)?;
        // Booking numbers come from a stream keyed afresh at every start: nothing needs the key again (the log keeps
        // the numbers), and a number already taken is drawn again.
        book.key_booking_numbers(seams.booking_number_key.unwrap_or_else(rand::random));
        let observer: Arc<dyn storage::WalObserver> = Arc::new(names::WalMetrics);
        let files = seams.files.clone().unwrap_or_else(|| Arc::new(StdFileOpener));
        let wal = Wal::open_with_files(options.wal.clone(), &report.log, Some(observer), files)?;
        let log: Arc<dyn LogStore> = Arc::new(local_log::LocalLog::new(wal, options.wal.dir.clone(), snapshot_dir));
        Ok((Engine::assemble(book, log, &report, options, clock, seams), report))
    }

    /// Opens the engine on a log that is not the local write-ahead log (a replicated one): `snapshot`, when given, is
    /// an image (as [`codec::encode_image`] made it) of the state at a log position; `records` are the log's records
    /// after it (or from the first, without one) in position order, replayed here onto it, and `log` continues after
    /// the last of them. No local snapshot is read; where snapshots go is `log`'s business
    /// ([`LogStore::save_snapshot`]). An image that does not decode is an error: the caller tries an older one.
    /// Blocking.
    pub fn open_on_log(
        rules: crate::domain::BookRules,
        options: EngineOptions,
        clock: Arc<dyn Clock>,
        seams: EngineSeams,
        snapshot: Option<(LogPosition, &[u8])>,
        records: storage::LogRecords,
        log: Arc<dyn LogStore>,
    ) -> Result<(Engine, RecoveryReport)> {
        let (book, report) = recovery::replay_records_after(rules, snapshot, records)?;
        book.key_booking_numbers(seams.booking_number_key.unwrap_or_else(rand::random));
        Ok((Engine::assemble(book, log, &report, options, clock, seams), report))
    }

    fn assemble(
        book: QuotaBook,
        log: Arc<dyn LogStore>,
        report: &RecoveryReport,
        options: EngineOptions,
        clock: Arc<dyn Clock>,
        seams: EngineSeams,
    ) -> Engine {
        if let Some(prefix) = seams.booking_number_prefix {
            book.prefix_booking_numbers(prefix);
        }
        let last = LastSnapshot {
            position: report.snapshot_position.unwrap_or(0),
            taken_at: Instant::now(),
            log_bytes_at: -i128::from(report.log.bytes_delivered),
        };
        let engine = Engine {
            book,
            log,
            started_at: clock.now(),
            clock,
            options,
            snapshot_in_progress: Mutex::new(()),
            last_snapshot: Mutex::new(last),
            watchers: watchers::Watchers::default(),
            ticks: std::sync::atomic::AtomicU64::new(0),
            on_log_failure: seams.on_log_failure,
            draw_secrets: seams.draw_secrets,
            nik_claims: std::sync::OnceLock::new(),
        };
        metrics::gauge!(names::RECOVERY_DURATION_SECONDS).set(report.duration.as_secs_f64());
        metrics::gauge!(names::RECOVERY_RECORDS_REPLAYED).set(report.records_replayed as f64);
        engine
    }

    /// Creates the offices of `seed` that the catalogue does not have yet (first start on an empty data directory).
    pub async fn seed_offices(&self, seed: &[OfficeSettings]) -> usize {
        let catalog = self.book.catalog();
        let mut created = 0;
        for settings in seed.iter().filter(|settings| catalog.office(&settings.office_id).is_none()) {
            let request_id = RequestId::parse(&format!("seed:{}", settings.office_id)).expect("office ids are short");
            if self.execute(&request_id, &Command::UpsertOffice(settings.clone())).await.is_ok() {
                created += 1;
            }
        }
        created
    }

    /// The quota book, for reads.
    #[must_use]
    pub fn book(&self) -> &QuotaBook {
        &self.book
    }

    /// The current instant.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Executes a change and returns its answer once the change is durable.
    pub async fn execute(&self, request_id: &RequestId, command: &Command) -> Outcome {
        let now = self.clock.now();
        let locking = Instant::now();
        let execution = self.book.execute(request_id, command, now, &self.events());
        if command.locks_every_shard() {
            all_shards_locked("admin", locking);
        }
        if let Some(position) = self.durable_before_answering(&execution) {
            self.await_durable(position).await;
        }
        if matches!(command, Command::SetSchedule { .. }) && execution.outcome.is_ok() {
            // A new line is committed to its draw secret before the schedule is acknowledged.
            self.commit_draws().await;
        }
        tracing::debug!(command = command.name(), request_id = %request_id, repeated = execution.repeated,
            outcome = match &execution.outcome { Ok(_) => "ok", Err(rejection) => rejection.reason() }, "executed");
        self.release_ended_claims(&execution.outcome).await;
        execution.outcome
    }

    /// The log position that must be durable before `execution` is answered: its own record's; for a retry, whose
    /// answer shows its bookings as they are now (maybe with a later change still on its way to disk), everything
    /// logged so far (one group commit at most).
    fn durable_before_answering(&self, execution: &Execution) -> Option<u64> {
        let position = if execution.repeated { Some(self.log.last_position().0) } else { execution.log_position };
        position.filter(|position| *position > 0)
    }

    /// The quota book's way to the log.
    fn events(&self) -> LogEvents<'_> {
        LogEvents(self.log.as_ref())
    }

    async fn await_durable(&self, position: u64) {
        let started = Instant::now();
        if let Err(error) = self.log.wait_durable(LogPosition(position)).await {
            let Some(hook) = &self.on_log_failure else { fatal_log_failure(&error) };
            hook(&error);
            // A stopped process answers nothing: this call never completes.
            std::future::pending::<()>().await;
        }
        metrics::histogram!(names::WAL_APPEND_SECONDS).record(started.elapsed().as_secs_f64());
    }

    /// One tick of the background ticker: moves bookings on with time (`lifecycle.rs`: holds past their payment
    /// deadline enter their settlement grace, holds past the grace expire, confirmed bookings whose session ended
    /// unchecked become no-shows, a bounded number of each per tick), forgets request ids past their retention (every
    /// [`STALE_REQUEST_SCAN_SECONDS`]), and moves every waiting room on, expiring tickets nobody watches (looked for
    /// every [`IDLE_TICKET_SCAN_SECONDS`]). Each change is logged and durable before it returns. Returns how many holds
    /// expired.
    pub async fn run_tick(&self) -> usize {
        let now = self.clock.now();
        let expired = self.release_due_bookings(now).await;
        let tick = self.ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ticks_per_second = (1000 / self.options.expiry_tick.as_millis().max(1)) as u64;
        if tick.is_multiple_of((ticks_per_second * STALE_REQUEST_SCAN_SECONDS).max(1)) {
            let locking = Instant::now();
            let forgotten = self.book.forget_requests(now, &self.events());
            if let Some(position) = forgotten {
                all_shards_locked("forget_requests", locking);
                self.await_durable(position).await;
            }
        }
        self.advance_waiting_rooms(tick.is_multiple_of((ticks_per_second * IDLE_TICKET_SCAN_SECONDS).max(1))).await;
        expired
    }

    /// Whether a snapshot is due by record count or age.
    #[must_use]
    pub fn snapshot_due(&self) -> bool {
        if !self.log.keeps_snapshots() {
            return false;
        }
        let last = *self.last_snapshot.lock();
        let records_since = self.log.last_position().0.saturating_sub(last.position);
        let bytes_since = i128::from(self.log.bytes_written()) - last.log_bytes_at;
        records_since >= self.options.snapshot_every_records
            || bytes_since >= i128::from(self.options.snapshot_every_log_bytes)
            || (records_since > 0 && last.taken_at.elapsed() >= self.options.snapshot_every)
    }

    /// Takes a snapshot of the current state and hands it to the log to keep ([`LogStore::save_snapshot`]: files in
    /// `snapshots/` and the segments they cover dropped for the local log; the object store and a purge for the
    /// cluster's). Blocking: run it on a thread of its own; `runtime` is used to await durability of the captured
    /// position. Does nothing (`Ok(None)`) on a log that keeps no snapshots, or when the log skipped this one.
    pub fn snapshot(&self, runtime: &tokio::runtime::Handle) -> Result<Option<SavedSnapshot>> {
        if !self.log.keeps_snapshots() {
            return Ok(None);
        }
        let _one_at_a_time = self.snapshot_in_progress.lock();
        let started = Instant::now();
        let locking = Instant::now();
        let capture = self.book.capture(|| self.log.last_position().0);
        // Close enough to the bytes up to the captured position: records appended after the capture and already
        // written only make the next size-triggered snapshot come a little later.
        let log_bytes_at_capture = self.log.bytes_written();
        all_shards_locked("capture", locking);
        if capture.log_position == self.last_snapshot.lock().position {
            return Ok(None);
        }
        // A snapshot must never contain a change the log could still lose: the log after it starts at position + 1.
        runtime.block_on(self.log.wait_durable(LogPosition(capture.log_position)))?;
        let position = LogPosition(capture.log_position);
        let payload = codec::encode_image(&capture.to_image());
        drop(capture);
        let saved = self.log.save_snapshot(position, &payload)?;
        // A skipped snapshot counts as taken for scheduling: the next try comes at the next trigger, not every poll.
        *self.last_snapshot.lock() = LastSnapshot {
            position: position.0,
            taken_at: Instant::now(),
            log_bytes_at: i128::from(log_bytes_at_capture),
        };
        let Some(saved) = saved else {
            return Ok(None);
        };
        let elapsed = started.elapsed();
        metrics::histogram!(names::SNAPSHOT_DURATION_SECONDS).record(elapsed.as_secs_f64());
        metrics::gauge!(names::SNAPSHOT_BYTES).set(payload.len() as f64);
        metrics::gauge!(names::SNAPSHOT_LAST_SUCCESS_TIMESTAMP_SECONDS).set(self.clock.now().0 as f64 / 1000.0);
        tracing::info!(
            position = position.0,
            bytes = payload.len(),
            elapsed_ms = elapsed.as_millis() as u64,
            location = %saved.location,
            dropped = saved.units_dropped,
            "snapshot written"
        );
        Ok(Some(saved))
    }

    /// Flushes the log and closes it. Call after the last change.
    pub fn close_log(&self) -> Result<()> {
        self.log.close()?;
        Ok(())
    }

    /// The log's last assigned position.
    #[must_use]
    pub fn log_position(&self) -> u64 {
        self.log.last_position().0
    }
}

/// Records how long an operation that locks every shard kept requests out (measured around the quota book's call,
/// which the domain cannot time itself: it reads no clock).
fn all_shards_locked(operation: &'static str, started: Instant) {
    metrics::histogram!(names::ALL_SHARDS_LOCKED_SECONDS, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}

fn fatal_log_failure(error: &storage::StorageError) -> ! {
    metrics::gauge!(names::WAL_FAILED).set(1.0);
    tracing::error!(%error, "wal fsync failed: the log may not be on disk; stopping rather than answering OK");
    eprintln!("antrean: fatal: write-ahead log failed: {error}");
    std::process::exit(1)
}
