//! Runs one history against the real engine (domain, log, snapshots, recovery, ticker work, waiting rooms) on real
//! files under a fault-injecting opener, and checks every answer and every recovery as it goes.
//!
//! Determinism: the history is fixed before it runs; the clock moves only when a step says so; booking numbers come
//! from a fixed key per process start; requests are driven one at a time, each awaited until answered (or until the
//! process stopped), so the group-commit writer thread never sees two requests at once and every batch is one record
//! (`batch_records_max = 1`): the order of writes, fsyncs and faults is the same on every run.

use crate::check::{Fact, check_fact, check_state};
use crate::damage::{self, Expect};
use crate::history::{PaidAt, Step};
use crate::rng::{FNV_OFFSET, fnv1a};
use crate::world::{self, RETENTION_MS, SimClock};
use antrean::domain::{
    BookingId, Command, DrawSecret, HoldCommand, JoinWish, PaymentReference, Rejection, Reply, RequestId, SlotRef,
    TicketId, TicketState, Timestamp, WaitingRoomKey,
};
use antrean::engine::{Clock, Engine, EngineOptions, EngineSeams, codec};
use antrean::storage::{FaultPlan, FaultyFileOpener, FsyncMode, WalOptions};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A history that ran to its end with every check passing.
#[derive(Debug)]
pub struct Finished {
    /// Digest of the trace: the same history gives the same digest, byte for byte.
    pub digest: u64,
    /// One line per step: the step and what came of it.
    pub trace: Vec<String>,
    /// Counts of what happened.
    pub stats: Stats,
}

/// A check that failed.
#[derive(Debug)]
pub struct Failure {
    /// Index of the step where it failed.
    pub step: usize,
    /// What was violated.
    pub message: String,
    /// The trace up to and including the failing step.
    pub trace: Vec<String>,
}

/// Counts of what a history did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Successful answers.
    pub answered: u64,
    /// Refusals.
    pub refused: u64,
    /// Times the process stopped or was killed and restarted.
    pub restarts: u64,
    /// Recoveries whose position had a live state to compare with.
    pub recoveries_compared: u64,
    /// Starts refused as the damage required.
    pub starts_refused: u64,
    /// Snapshots written.
    pub snapshots: u64,
}

/// Runs `steps` in a fresh data directory.
pub fn run(steps: &[Step]) -> Result<Finished, Failure> {
    let mut sim = Sim::new().map_err(|message| Failure {
        step: 0,
        message: format!("setting up the world: {message}"),
        trace: vec![format!("   0 set-up -> FAILED: {message}")],
    })?;
    for (index, step) in steps.iter().enumerate() {
        let line = match sim.step(step) {
            Ok(Flow::Continue(line)) => line,
            Ok(Flow::End(line)) => {
                sim.record(index, step, &line);
                return Ok(sim.finish_without_engine());
            }
            Err(message) => {
                let message = message.replace(&sim.data_dir.display().to_string(), "<data>");
                sim.record(index, step, &format!("FAILED: {message}"));
                return Err(Failure { step: index, message, trace: sim.trace });
            }
        };
        sim.record(index, step, &line);
    }
    let index = steps.len();
    match sim.final_checks() {
        Ok(line) => {
            sim.trace.push(format!("{index:4} end: {line}"));
            sim.digest = fnv1a(sim.digest, line.as_bytes());
            Ok(sim.finish_without_engine())
        }
        Err(message) => {
            let message = message.replace(&sim.data_dir.display().to_string(), "<data>");
            sim.trace.push(format!("{index:4} end: FAILED: {message}"));
            Err(Failure { step: index, message, trace: sim.trace })
        }
    }
}

enum Flow {
    Continue(String),
    /// The history cannot go on (the service refused to start for good, as it must).
    End(String),
}

/// A request as sent, to send again. (A few hundred requests per history: their size does not matter.)
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
enum Request {
    Command(Command),
    Join { applicant: u8, party: u8 },
    Leave(TicketId),
}

/// A request sent, with its first answer when that was logged and acknowledged.
#[derive(Clone, Debug)]
struct Sent {
    request_id: RequestId,
    request: Request,
    acknowledged: Option<(String, Timestamp, u64)>,
}

/// The answer to one request.
struct Answer {
    text: String,
    outcome: Option<Result<Reply, Rejection>>,
    ticket: Option<TicketId>,
    logged_at: Option<u64>,
}

impl Answer {
    /// What a retry must give back unchanged: the answer with its bookings by id (a retry answers them as they are now,
    /// and a repeated payment's booking as `None` once purged).
    fn remembered_text(&self) -> String {
        let ids = |bookings: &[antrean::domain::Booking]| -> Vec<u64> {
            bookings.iter().map(|booking| booking.booking_id.0).collect()
        };
        match &self.outcome {
            Some(Ok(Reply::Held { bookings, group_id })) => format!("Ok(Held {:?} {group_id:?})", ids(bookings)),
            Some(Ok(Reply::Paid { booking, revived, in_grace })) => {
                format!("Ok(Paid {} {revived} {in_grace})", booking.booking_id)
            }
            Some(Ok(Reply::Booking(booking))) => format!("Ok(Booking {})", booking.booking_id),
            Some(Ok(Reply::PaymentRepeated { .. })) => "Ok(PaymentRepeated)".to_owned(),
            _ => self.text.clone(),
        }
    }

    /// The bookings the answer names.
    fn bookings(&self) -> Vec<&antrean::domain::Booking> {
        match &self.outcome {
            Some(Ok(Reply::Held { bookings, .. })) => bookings.iter().collect(),
            Some(Ok(Reply::Paid { booking, .. } | Reply::Booking(booking))) => vec![booking],
            Some(Ok(Reply::PaymentRepeated { booking })) => booking.iter().collect(),
            _ => Vec::new(),
        }
    }
}

/// Set by the engine's log-failure hook: the process has stopped.
#[derive(Default)]
struct Stopped {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

struct Sim {
    _root: tempfile::TempDir,
    data_dir: PathBuf,
    runtime: tokio::runtime::Runtime,
    clock: Arc<SimClock>,
    engine: Option<Engine>,
    plan: Arc<FaultPlan>,
    stopped: Arc<Stopped>,
    starts: u64,
    crash_after_answer: bool,
    pending_kept: u64,
    bookings: Vec<BookingId>,
    tickets: HashMap<u8, TicketId>,
    all_tickets: Vec<TicketId>,
    sent: Vec<Sent>,
    next_request: u64,
    facts: Vec<(u64, Fact)>,
    images: BTreeMap<u64, u64>,
    acknowledged: u64,
    trace: Vec<String>,
    digest: u64,
    stats: Stats,
}

/// Where the data directory lives: memory-backed `/dev/shm` when there is one, so fsyncs cost nothing.
fn temp_root() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix("antrean-sim-").tempdir_in(shm);
    builder.or_else(|_| tempfile::tempdir()).expect("a temporary directory")
}

impl Sim {
    fn new() -> Result<Sim, String> {
        let root = temp_root();
        let data_dir = root.path().join("data");
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let mut sim = Sim {
            _root: root,
            data_dir,
            runtime,
            clock: Arc::new(SimClock::new(world::start())),
            engine: None,
            plan: FaultPlan::new(),
            stopped: Arc::default(),
            starts: 0,
            crash_after_answer: false,
            pending_kept: 0,
            bookings: Vec::new(),
            tickets: HashMap::new(),
            all_tickets: Vec::new(),
            sent: Vec::new(),
            next_request: 0,
            facts: Vec::new(),
            images: BTreeMap::new(),
            acknowledged: 0,
            trace: Vec::new(),
            digest: FNV_OFFSET,
            stats: Stats::default(),
        };
        sim.open(false)?;
        sim.set_up_world()?;
        Ok(sim)
    }

    fn record(&mut self, index: usize, step: &Step, line: &str) {
        // The data directory's name is random: keep it out of the trace, which must be the same on every run.
        let line = format!("{index:4} {step} -> {line}").replace(&self.data_dir.display().to_string(), "<data>");
        self.digest = fnv1a(self.digest, line.as_bytes());
        self.digest = fnv1a(self.digest, b"\n");
        self.trace.push(line);
    }

    fn finish_without_engine(mut self) -> Finished {
        drop(self.engine.take());
        Finished { digest: self.digest, trace: std::mem::take(&mut self.trace), stats: self.stats }
    }

    fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("the engine runs between steps")
    }

    fn options(&self, accept_log_truncation: bool) -> EngineOptions {
        EngineOptions {
            data_dir: self.data_dir.clone(),
            wal: WalOptions {
                dir: self.data_dir.join("wal"),
                segment_bytes_max: 64 * 1024,
                fsync: FsyncMode::Always,
                batch_records_max: 1,
                batch_bytes_max: 1,
                record_bytes_max: 48 * 1024,
            },
            accept_log_truncation,
            snapshot_every_records: u64::MAX,
            snapshot_every_log_bytes: u64::MAX,
            snapshot_every: Duration::from_secs(u64::from(u32::MAX)),
            expiry_tick: Duration::from_secs(1),
        }
    }

    /// Starts the process on the data directory: a fresh fault plan, recovery, the log opened. Returns the recovered
    /// log position, or recovery's refusal.
    fn open(&mut self, accept_log_truncation: bool) -> Result<u64, String> {
        self.starts += 1;
        self.plan = FaultPlan::new();
        self.stopped = Arc::default();
        let stopped = Arc::clone(&self.stopped);
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.starts.to_le_bytes());
        let seams = EngineSeams {
            files: Some(Arc::new(FaultyFileOpener::new(Arc::clone(&self.plan)))),
            booking_number_key: Some(key),
            booking_number_prefix: None,
            on_log_failure: Some(Arc::new(move |_| {
                stopped.flag.store(true, Ordering::SeqCst);
                stopped.notify.notify_one();
            })),
            // A line's draw secret follows from its key, so the draw's order is the same on every run.
            draw_secrets: Some(Arc::new(|key: &WaitingRoomKey| {
                let text = format!("{}@{}", key.office_id, key.release_at.0);
                let mut secret = [0u8; 32];
                for (index, chunk) in secret.chunks_mut(8).enumerate() {
                    let hash = fnv1a(FNV_OFFSET ^ index as u64, text.as_bytes());
                    chunk.copy_from_slice(&hash.to_le_bytes());
                }
                DrawSecret(secret)
            })),
        };
        let clock: Arc<dyn Clock> = Arc::clone(&self.clock) as Arc<dyn Clock>;
        let (engine, _report) =
            Engine::open_with_seams(world::rules(), self.options(accept_log_truncation), clock, seams)
                .map_err(|error| error.to_string())?;
        let position = engine.log_position();
        self.engine = Some(engine);
        Ok(position)
    }

    /// The offices and the waiting room every history starts with (not part of the history: never dropped).
    fn set_up_world(&mut self) -> Result<(), String> {
        let mut commands: Vec<Command> =
            (0..2).map(|office| Command::UpsertOffice(world::office_settings(office))).collect();
        commands.push(Command::SetSchedule { office_id: world::office(0), rule: world::waiting_room_schedule() });
        for command in commands {
            let answer = self.send(Request::Command(command)).map_err(|halt| format!("{halt:?}"))?;
            if !answer.text.starts_with("Ok") {
                return Err(format!("refused: {}", answer.text));
            }
        }
        self.capture()
    }

    fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        let client = self.next_request % 16;
        let local = RequestId::parse(&format!("r{}", self.next_request)).expect("id");
        RequestId::of_caller(&format!("client-{client}"), &local)
    }

    /// Sends a new request and remembers it for retries.
    fn send(&mut self, request: Request) -> Result<Answer, Halt> {
        let request_id = self.request_id();
        self.send_as(request_id, request, true)
    }

    /// Sends `request` under `request_id` and awaits its answer, or the process stopping. Checks that a successful
    /// answer left the process only after its record was durable.
    fn send_as(&mut self, request_id: RequestId, request: Request, remember: bool) -> Result<Answer, Halt> {
        let before = self.engine().log_position();
        let answer = self.execute(&request_id, &request);
        let after = self.engine().log_position();
        let Some(mut answer) = answer else {
            return Err(Halt::Stopped);
        };
        if after > before && answer.logged_at.is_none() {
            answer.logged_at = Some(after);
        }
        if let Some(position) = answer.logged_at {
            if self.plan.unsynced_bytes() > 0 {
                return Err(Halt::Violation(format!(
                    "answer released before its record was durable ({} bytes unsynced): {}",
                    self.plan.unsynced_bytes(),
                    answer.text
                )));
            }
            if self.stopped.flag.load(Ordering::SeqCst) {
                return Err(Halt::Violation(format!("answered although the log failed: {}", answer.text)));
            }
            self.acknowledged = self.acknowledged.max(position);
            self.learn(&answer, &request, position);
        }
        match &answer.outcome {
            Some(Ok(_)) => self.stats.answered += 1,
            _ => self.stats.refused += 1,
        }
        if remember {
            let acknowledged = answer.logged_at.map(|position| (answer.remembered_text(), self.clock.now(), position));
            self.sent.push(Sent { request_id, request, acknowledged });
        }
        if self.crash_after_answer && answer.logged_at.is_some() {
            self.crash_after_answer = false;
            return Err(Halt::CrashNow(answer.text));
        }
        Ok(answer)
    }

    /// Runs one request on the engine: `None` when the process stopped instead of answering.
    fn execute(&self, request_id: &RequestId, request: &Request) -> Option<Answer> {
        let engine = self.engine();
        let stopped = Arc::clone(&self.stopped);
        self.runtime.block_on(async {
            match request {
                Request::Command(command) => {
                    let execution = tokio::select! {
                        biased;
                        execution = engine.execute_detailed(request_id, command) => execution,
                        () = stopped.notify.notified() => return None,
                    };
                    let text = format!("{:?}", execution.outcome);
                    Some(Answer {
                        text,
                        outcome: Some(execution.outcome),
                        ticket: None,
                        logged_at: execution.log_position,
                    })
                }
                Request::Join { applicant, party } => {
                    let office_id = world::office(0);
                    let wish = JoinWish {
                        office_id: &office_id,
                        service: antrean::domain::ServiceType::NewPassport,
                        nik: world::applicant(*applicant).nik,
                        party_size: *party,
                        dates: None,
                    };
                    let joined = tokio::select! {
                        biased;
                        joined = engine.join(request_id, wish) => joined,
                        () = stopped.notify.notified() => return None,
                    };
                    let ticket = joined.as_ref().ok().map(|view| view.ticket.ticket_id);
                    let text = match &joined {
                        Ok(view) => format!("Ok(ticket {} {:?})", view.ticket.ticket_id, view.ticket.state),
                        Err(rejection) => format!("Err({rejection:?})"),
                    };
                    Some(Answer { text, outcome: None, ticket, logged_at: None })
                }
                Request::Leave(ticket_id) => {
                    let left = tokio::select! {
                        biased;
                        left = engine.leave(request_id, *ticket_id) => left,
                        () = stopped.notify.notified() => return None,
                    };
                    let text = match &left {
                        Ok(view) => format!("Ok(ticket {} {:?})", view.ticket.ticket_id, view.ticket.state),
                        Err(rejection) => format!("Err({rejection:?})"),
                    };
                    Some(Answer { text, outcome: None, ticket: None, logged_at: None })
                }
            }
        })
    }

    /// Remembers what an acknowledged answer established.
    fn learn(&mut self, answer: &Answer, request: &Request, position: u64) {
        let mut facts = Vec::new();
        match &answer.outcome {
            Some(Err(rejection)) if rejection.refund_reason().is_some() => {
                if let Request::Command(Command::ConfirmPayment { booking_id, payment_reference, .. }) = request {
                    facts.push(Fact::Refunded(*booking_id, payment_reference.clone()));
                }
            }
            Some(Ok(Reply::Held { bookings, .. })) => {
                for booking in bookings {
                    self.bookings.push(booking.booking_id);
                    facts.push(Fact::Booked(booking.booking_id));
                }
            }
            Some(Ok(Reply::Paid { booking, .. })) => {
                if let Some(reference) = &booking.payment_reference {
                    facts.push(Fact::Paid(booking.booking_id, reference.clone()));
                }
            }
            Some(Ok(Reply::Booking(booking))) if booking.state == antrean::domain::BookingState::Cancelled => {
                facts.push(Fact::Cancelled(booking.booking_id));
            }
            _ => {}
        }
        for fact in facts {
            self.facts.push((position, fact));
        }
    }

    /// Records the live state at the current log position (once per position) and checks it.
    fn capture(&mut self) -> Result<(), String> {
        let engine = self.engine();
        let position = engine.log_position();
        if self.images.contains_key(&position) {
            return Ok(());
        }
        let image = engine.book().image(position);
        check_state(engine.book(), &image)?;
        let digest = fnv1a(FNV_OFFSET, &codec::encode_image(&image));
        self.images.insert(position, digest);
        Ok(())
    }
}

/// Why a request got no normal answer.
#[derive(Debug)]
enum Halt {
    /// The process stopped (its log failed) without answering.
    Stopped,
    /// A fault step wants the process killed right after this answer.
    CrashNow(String),
    /// A check failed.
    Violation(String),
}

impl Sim {
    fn step(&mut self, step: &Step) -> Result<Flow, String> {
        let outcome = match step {
            Step::Tick => self.tick(),
            Step::Advance { ms } => {
                self.clock.advance(*ms);
                Ok("clock moved".to_owned())
            }
            Step::Snapshot => self.snapshot(),
            Step::FailNextSync { kept } => {
                self.pending_kept = u64::from(*kept);
                self.plan.fail_sync_at(self.plan.syncs() + 1);
                return Ok(Flow::Continue(format!("armed: EIO on the next fsync, then {kept} bytes kept")));
            }
            Step::ShortNextWrite { kept } => {
                self.pending_kept = u64::from(*kept);
                self.plan.fail_write_at(self.plan.writes() + 1);
                return Ok(Flow::Continue(format!("armed: short next write, then {kept} bytes kept")));
            }
            Step::CrashAfterNextAnswer => {
                self.crash_after_answer = true;
                return Ok(Flow::Continue("armed: crash right after the next answer".to_owned()));
            }
            Step::Crash => return self.crash_and_restart(0, None),
            Step::FlipLogBit { pick } => return self.crash_and_restart(0, Some(Damage::Log(*pick))),
            Step::FlipSnapshotBit { pick } => return self.crash_and_restart(0, Some(Damage::Snapshot(*pick))),
            Step::InterruptedSnapshot { cut } => {
                let engine = self.engine();
                let position = engine.log_position();
                let payload = codec::encode_image(&engine.book().image(position));
                let dir = self.data_dir.join("snapshots");
                damage::interrupted_snapshot(&dir, position, &payload, *cut as usize)
                    .map_err(|error| error.to_string())?;
                return self.crash_and_restart(0, None);
            }
            request => self.request(request),
        };
        match outcome {
            Ok(line) => {
                self.capture()?;
                Ok(Flow::Continue(line))
            }
            Err(Halt::Violation(message)) => Err(message),
            Err(Halt::CrashNow(answer)) => {
                self.capture()?;
                self.crash_and_restart(0, None).map(|flow| match flow {
                    Flow::Continue(line) => Flow::Continue(format!("{answer}; killed after answering; {line}")),
                    end => end,
                })
            }
            Err(Halt::Stopped) => {
                self.capture()?;
                let kept = self.pending_kept;
                self.crash_and_restart(kept, None).map(|flow| match flow {
                    Flow::Continue(line) => Flow::Continue(format!("process stopped without answering; {line}")),
                    end => end,
                })
            }
        }
    }
}

/// Damage done to the disk between a crash and the restart.
#[derive(Clone, Copy, Debug)]
enum Damage {
    Log(u64),
    Snapshot(u64),
}

impl Sim {
    /// A client request of the history.
    fn request(&mut self, step: &Step) -> Result<String, Halt> {
        let request = match step {
            Step::Hold { account, applicant, office, day, session, pool } => {
                self.hold(*account, &[*applicant], (*office, *day, *session, *pool), false)
            }
            Step::HoldGroup { account, members, office, day, session, pool } => {
                self.hold(*account, members, (*office, *day, *session, *pool), true)
            }
            Step::Pay { pick, reference, paid_at } => {
                let Some(booking_id) = self.pick_booking(*pick) else { return Ok("no booking yet".into()) };
                let booking = self.engine().book().booking(booking_id);
                let now = self.clock.now();
                let paid_at = match (paid_at, booking) {
                    (PaidAt::BeforeDeadline(ms), Some(booking)) => Some(booking.payment_deadline.plus_ms(-ms).min(now)),
                    (PaidAt::AfterDeadline(ms), Some(booking)) => Some(booking.payment_deadline.plus_ms(*ms).min(now)),
                    (PaidAt::Future, _) => Some(now.plus_ms(world::HOUR_MS)),
                    _ => None,
                };
                let payment_reference =
                    PaymentReference::parse(&format!("pay-{booking_id}-{reference}")).expect("reference");
                Request::Command(Command::ConfirmPayment { booking_id, payment_reference, paid_at })
            }
            Step::Cancel { pick } => {
                let Some(booking_id) = self.pick_booking(*pick) else { return Ok("no booking yet".into()) };
                Request::Command(Command::Cancel { booking_id })
            }
            Step::Reschedule { pick, day, session } => {
                let Some(booking_id) = self.pick_booking(*pick) else { return Ok("no booking yet".into()) };
                Request::Command(Command::Reschedule {
                    booking_id,
                    date: world::day(*day),
                    session_id: world::session(*session),
                })
            }
            Step::CheckIn { pick } => {
                let Some(booking_id) = self.pick_booking(*pick) else { return Ok("no booking yet".into()) };
                Request::Command(Command::CheckIn { booking_id })
            }
            Step::Join { applicant, party } => Request::Join { applicant: *applicant, party: *party },
            Step::Leave { pick } => {
                if self.all_tickets.is_empty() {
                    return Ok("no ticket yet".into());
                }
                Request::Leave(self.all_tickets[*pick as usize % self.all_tickets.len()])
            }
            Step::CloseDate { office, day, reopen } => Request::Command(Command::CloseDate {
                office_id: world::office(*office),
                date: world::day(*day),
                reason: "hari libur".into(),
                reopen: *reopen,
            }),
            Step::Purge { day } => Request::Command(Command::PurgeBookings { before: world::day(*day) }),
            Step::Retry { pick } => return self.retry(*pick),
            Step::Reuse { pick } => return self.reuse(*pick),
            other => unreachable!("not a request: {other:?}"),
        };
        let answer = self.send(request)?;
        if let (Some(ticket), Step::Join { applicant, .. }) = (answer.ticket, step) {
            self.tickets.insert(*applicant, ticket);
            if !self.all_tickets.contains(&ticket) {
                self.all_tickets.push(ticket);
            }
        }
        Ok(answer.text)
    }

    /// Mostly one of the last four bookings (clients act on what they just booked), sometimes any.
    fn pick_booking(&self, pick: u32) -> Option<BookingId> {
        let count = self.bookings.len();
        let window = if pick.is_multiple_of(4) { count } else { count.min(4) };
        (count > 0).then(|| self.bookings[count - 1 - (pick >> 2) as usize % window])
    }

    fn hold(&self, account: u8, members: &[u8], place: (u8, u8, u8, u8), group: bool) -> Request {
        let (office, day, session, pool) = place;
        let admission_token = members.first().and_then(|first| self.tickets.get(first)).and_then(|ticket_id| {
            let view = self.engine().peek_ticket(*ticket_id)?;
            (view.ticket.state == TicketState::Admitted).then_some(view.ticket.admission_token)
        });
        Request::Command(Command::Hold(HoldCommand {
            slot: SlotRef {
                office_id: world::office(office),
                date: world::day(day),
                session_id: world::session(session),
                pool: world::pool(pool),
            },
            service: antrean::domain::ServiceType::NewPassport,
            applicants: members.iter().map(|member| world::applicant(*member)).collect(),
            account_id: world::account(account),
            group,
            admission_token,
        }))
    }

    /// Sends an earlier request again under its request id: within the retention window, an acknowledged first
    /// answer must come back unchanged.
    fn retry(&mut self, pick: u32) -> Result<String, Halt> {
        if self.sent.is_empty() {
            return Ok("nothing sent yet".into());
        }
        let sent = self.sent[pick as usize % self.sent.len()].clone();
        let now = self.clock.now();
        let answer = self.send_as(sent.request_id.clone(), sent.request.clone(), false)?;
        if let Some((first, answered_at, _)) = &sent.acknowledged
            && now.0 - answered_at.0 < RETENTION_MS
        {
            let same = match sent.request {
                Request::Join { .. } => first.split(' ').nth(1) == answer.text.split(' ').nth(1),
                _ => *first == answer.remembered_text(),
            };
            if !same {
                return Err(Halt::Violation(format!(
                    "a retry of {} got a different answer: first {first}, now {}",
                    sent.request_id, answer.text
                )));
            }
            // The bookings it names come back as they are now.
            let engine = self.engine();
            for booking in answer.bookings() {
                if let Some(now) = engine.book().booking(booking.booking_id)
                    && now != *booking
                {
                    return Err(Halt::Violation(format!(
                        "a retry of {} answered booking {} as {booking:?}, which is now {now:?}",
                        sent.request_id, booking.booking_id
                    )));
                }
            }
        }
        Ok(format!("retry of {}: {}", sent.request_id, answer.text))
    }

    /// Reuses an earlier request id for a different request: within the retention window of an acknowledged first
    /// answer, it must be refused as a reuse.
    fn reuse(&mut self, pick: u32) -> Result<String, Halt> {
        if self.sent.is_empty() {
            return Ok("nothing sent yet".into());
        }
        let sent = self.sent[pick as usize % self.sent.len()].clone();
        let other = match &sent.request {
            Request::Command(Command::PurgeBookings { .. }) => Command::CloseDate {
                office_id: world::office(1),
                date: world::day(5),
                reason: "x".into(),
                reopen: true,
            },
            _ => Command::PurgeBookings { before: world::day(0).plus_days(-400) },
        };
        let now = self.clock.now();
        let answer = self.send_as(sent.request_id.clone(), Request::Command(other), false)?;
        if let Some((_, answered_at, _)) = &sent.acknowledged
            && now.0 - answered_at.0 < RETENTION_MS
            && !answer.text.contains("RequestIdReused")
        {
            return Err(Halt::Violation(format!(
                "a reused request id {} was not refused: {}",
                sent.request_id, answer.text
            )));
        }
        Ok(format!("reuse of {}: {}", sent.request_id, answer.text))
    }

    fn tick(&mut self) -> Result<String, Halt> {
        let engine = self.engine();
        let before = engine.log_position();
        let stopped = Arc::clone(&self.stopped);
        let expired = self.runtime.block_on(async {
            tokio::select! {
                biased;
                expired = engine.run_tick() => Some(expired),
                () = stopped.notify.notified() => None,
            }
        });
        let Some(expired) = expired else { return Err(Halt::Stopped) };
        let after = engine.log_position();
        if after > before {
            if self.plan.unsynced_bytes() > 0 {
                return Err(Halt::Violation("the ticker went on before its records were durable".into()));
            }
            self.acknowledged = self.acknowledged.max(after);
        }
        Ok(format!("{} records, {expired} expired", after - before))
    }

    fn snapshot(&mut self) -> Result<String, Halt> {
        let written = self.engine().snapshot(self.runtime.handle());
        match written {
            Ok(Some(info)) => {
                self.stats.snapshots += 1;
                Ok(format!("snapshot at {}", info.position.0))
            }
            Ok(None) => Ok("no change since the last snapshot".into()),
            Err(error) => Err(Halt::Violation(format!("snapshot failed: {error}"))),
        }
    }

    /// Kills the process: nothing more reaches the disk, unsynced bytes are lost but `kept` of them, the disk may be
    /// damaged, then the process starts again and recovery is checked.
    fn crash_and_restart(&mut self, kept: u64, damage: Option<Damage>) -> Result<Flow, String> {
        self.plan.crash();
        drop(self.engine.take());
        self.plan.simulate_power_loss(kept).map_err(|error| format!("power loss: {error}"))?;
        self.stats.restarts += 1;
        self.crash_after_answer = false;
        let (wal_dir, snapshot_dir) = (self.data_dir.join("wal"), self.data_dir.join("snapshots"));
        let (note, expect) = match damage {
            None => ("no damage".to_owned(), Expect::Recover),
            Some(Damage::Log(pick)) => damage::flip_log_bit(&wal_dir, &snapshot_dir, pick)
                .unwrap_or_else(|| ("no segment to damage".into(), Expect::Recover)),
            Some(Damage::Snapshot(pick)) => damage::flip_snapshot_bit(&snapshot_dir, &wal_dir, pick)
                .unwrap_or_else(|| ("no snapshot to damage".into(), Expect::Recover)),
        };
        let opened = self.open(false);
        let position = match (expect, opened) {
            (Expect::Recover, Ok(position)) => self.check_recovered(position, None)?,
            (Expect::CutTo { position: kept_to }, Ok(position)) => self.check_recovered(position, Some(kept_to))?,
            (Expect::RefuseLog { accepted }, Err(refusal)) => {
                self.stats.starts_refused += 1;
                match (accepted, self.open(true)) {
                    (Some(kept_to), Ok(position)) => self.check_recovered(position, Some(kept_to))?,
                    (None, Err(again)) => {
                        return Ok(Flow::End(format!("{note}; refused: {refusal}; accepting truncation: {again}")));
                    }
                    (Some(_), Err(error)) => {
                        return Err(format!("{note}; accepting truncation still refused: {error}"));
                    }
                    (None, Ok(position)) => {
                        return Err(format!(
                            "{note}; accepting truncation recovered to {position} before the snapshot"
                        ));
                    }
                }
            }
            (Expect::RefuseForGood, Err(refusal)) => {
                self.stats.starts_refused += 1;
                return Ok(Flow::End(format!("{note}; refused to start as it must: {refusal}")));
            }
            (expect, Ok(position)) => return Err(format!("{note}; expected {expect:?} but recovered to {position}")),
            (expect, Err(refusal)) => {
                return Err(format!("{note}; expected {expect:?} but refused to start: {refusal}"));
            }
        };
        let restored = self.restore_offices()?;
        let note = if damage.is_none() { String::new() } else { format!(" ({note})") };
        Ok(Flow::Continue(format!("restarted{note} at {position}{restored}")))
    }

    /// After an accepted truncation took the offices away, the administrator creates them again, so the history
    /// goes on testing something.
    fn restore_offices(&mut self) -> Result<&'static str, String> {
        if self.engine().book().office(&world::office(0)).is_some() {
            return Ok("");
        }
        let mut commands: Vec<Command> =
            (0..2).map(|office| Command::UpsertOffice(world::office_settings(office))).collect();
        commands.push(Command::SetSchedule { office_id: world::office(0), rule: world::waiting_room_schedule() });
        for command in commands {
            match self.send(Request::Command(command)) {
                Ok(_) => {}
                Err(Halt::Violation(message)) => return Err(message),
                Err(halt) => return Err(format!("restoring the offices was interrupted: {halt:?}")),
            }
        }
        self.capture()?;
        Ok(", offices created again")
    }

    /// Checks the recovered state: no acknowledged record lost (or exactly the records the damage cut), equal to the
    /// live state at that position, consistent, and every acknowledged fact still true. Then forgets the live
    /// history past it.
    fn check_recovered(&mut self, position: u64, cut_to: Option<u64>) -> Result<u64, String> {
        match cut_to {
            Some(expected) if position != expected => {
                return Err(format!("recovered to {position}, but the damage should leave exactly {expected}"));
            }
            Some(_) => self.acknowledged = self.acknowledged.min(position),
            None if position < self.acknowledged => {
                return Err(format!(
                    "acknowledged records lost: recovered to {position}, answers were given up to {}",
                    self.acknowledged
                ));
            }
            None => {}
        }
        let engine = self.engine();
        let image = engine.book().image(position);
        check_state(engine.book(), &image)?;
        if let Some(live) = self.images.get(&position) {
            self.stats.recoveries_compared += 1;
            if *live != fnv1a(FNV_OFFSET, &codec::encode_image(&image)) {
                return Err(format!("the recovered state at {position} differs from the live state there"));
            }
        }
        for (at, fact) in &self.facts {
            if *at <= position {
                check_fact(fact, &image)?;
            }
        }
        self.facts.retain(|(at, _)| *at <= position);
        self.images.retain(|at, _| *at <= position);
        for sent in &mut self.sent {
            if sent.acknowledged.as_ref().is_some_and(|(_, _, at)| *at > position) {
                sent.acknowledged = None;
            }
        }
        self.capture()?;
        Ok(position)
    }

    /// At the end: a clean shutdown and restart gives the live state, and replaying the whole log from the start
    /// (when no snapshot pruned it) gives it too.
    fn final_checks(&mut self) -> Result<String, String> {
        let position = self.engine().log_position();
        self.engine().close_log().map_err(|error| format!("close: {error}"))?;
        drop(self.engine.take());
        let reopened = self.open(false).map_err(|error| format!("clean restart refused: {error}"))?;
        if reopened != position {
            return Err(format!("clean restart recovered to {reopened}, the log was at {position}"));
        }
        self.check_recovered(reopened, None)?;
        let wal_dir = self.data_dir.join("wal");
        let from_start = antrean::storage::list_segments(&wal_dir)
            .map_err(|error| error.to_string())?
            .first()
            .is_some_and(|segment| segment.first_position.0 == 1);
        if from_start {
            self.engine().close_log().map_err(|error| format!("close: {error}"))?;
            let no_snapshots = self.data_dir.join("no-snapshots");
            let (book, _) = antrean::engine::recovery::recover(world::rules(), &no_snapshots, &wal_dir, false)
                .map_err(|error| format!("replay from the start refused: {error}"))?;
            let image = codec::encode_image(&book.image(position));
            if self.images.get(&position) != Some(&fnv1a(FNV_OFFSET, &image)) {
                return Err("replaying the log from the start differs from the live state".into());
            }
        }
        let digest_line = format!(
            "log at {position}, {} answered, {} refused, {} restarts, replayed from the start: {from_start}",
            self.stats.answered, self.stats.refused, self.stats.restarts
        );
        Ok(digest_line)
    }
}
