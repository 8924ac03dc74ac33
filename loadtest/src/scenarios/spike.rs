//! `spike`: a release moment. `--users` users arrive at random over `--arrival-window`, starting at setup, when a
//! fresh office's dates are scheduled to open 2 s later, to compete for `--slots` slots. Each user passes a [`Gate`],
//! then holds, then pays (80%) or walks away (the hold lapses after the payment window and its slot comes back).
//!
//! By default the dates are behind the server's waiting room ([`WaitingRoomGate`]): users join the line, follow their
//! ticket on a Watch stream (pushed by the server, no polling), and either are told SOLD_OUT or hold with the
//! admission token, trying sessions that still have slots (a shared note of sessions found full, refreshed from
//! `GetAvailability` when every one is noted); the gate then reports every user's final answer and checks the order
//! of admissions. The run ends as soon as every user has an answer. With `--no-waiting-room` ([`DirectGate`]) everyone holds at once: early arrivals are told the
//! session is not yet open and retry after a short backoff, and a full session sends the user to another one, up to
//! three.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::check::Ledger;
use crate::client::is_ambiguous;
use crate::driver::{Call, Plan, Timetable, now};
use crate::random;
use crate::recorder::Outcome;
use crate::scenarios::fixture::ReleaseAt;
use crate::scenarios::steps::{Steps, is_not_yet_open, is_session_full};
use crate::scenarios::waiting_room::WaitingRoomGate;
use crate::scenarios::{Context, ScenarioRun, backoff, new_recorder, sleep_before};

/// How long after setup the dates open.
pub const RELEASE_DELAY: Duration = Duration::from_secs(2);
/// Share of users with a slot who pay.
pub const PAY_SHARE: f64 = 0.80;
/// Sessions a user tries before giving up when they are full.
pub const FULL_SESSIONS_MAX: u32 = 3;
/// Sessions an admitted user (waiting room) tries at most.
pub const ADMITTED_HOLD_ATTEMPTS_MAX: u32 = 20;
/// Times a call whose outcome is unknown (deadline, cancelled, unavailable) or that the server shed for overload is
/// sent again with the same request id, which returns the first answer if the first call took effect.
pub const AMBIGUOUS_RETRIES_MAX: u32 = 5;
/// First pause before a call refused for overload is sent again (the server's RetryInfo says 200 ms).
pub const OVERLOAD_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Hold attempts of one user at most (not-yet-open retries included).
pub const HOLD_ATTEMPTS_MAX: u32 = 400;
/// Base pause before retrying a session that is not open yet (jittered up to twice as long).
pub const NOT_YET_OPEN_BACKOFF: Duration = Duration::from_millis(100);
/// The pseudo-RPC measuring a user's arrival to held slot.
pub const JOURNEY: &str = "journey:arrival-to-hold";

const STREAM_ARRIVAL: u64 = 0x5b1;
const STREAM_UNIT: u64 = 0x5b2;
const STREAM_FATE: u64 = 0x5b3;

/// What a gate decided for one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// May hold, with this token (empty when the dates are not behind a waiting room).
    Admitted {
        /// The admission token to send with `Hold`.
        token: String,
    },
    /// Gave up or was refused; the journey ends. Only a waiting-room gate refuses.
    Refused {
        /// Why, as a counter name.
        reason: &'static str,
    },
}

/// The step between arriving and holding.
pub trait Gate: Send + Sync {
    /// Lets user `user` (arrived as call `call`) through, or not.
    fn admit<'a>(
        &'a self,
        steps: &'a Steps,
        user: u64,
        call: Call,
    ) -> Pin<Box<dyn Future<Output = Admission> + Send + 'a>>;

    /// The office whose sessions the admitted user must hold in (an admission is valid for one office), or `None`
    /// when any will do.
    fn office<'a>(&'a self, _steps: &'a Steps, _user: u64) -> Option<usize> {
        None
    }

    /// Called once the admitted user held (`held`) or gave up without a slot.
    fn finish<'a>(
        &'a self,
        _steps: &'a Steps,
        _user: u64,
        _held: bool,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async {})
    }
}

/// Sessions found full by some user, shared so admitted users try the others first. Slots come back when holds
/// lapse, so the note is refreshed from `GetAvailability` once every session of an office is noted.
pub struct FullSessions {
    full: Vec<AtomicBool>,
}

impl FullSessions {
    fn new(units: usize) -> FullSessions {
        FullSessions { full: (0..units).map(|_| AtomicBool::new(false)).collect() }
    }

    /// A random unit of `office` not noted full, refreshing the note when all are; `None` when the server says
    /// every session of the office is full.
    async fn pick(&self, steps: &Steps, office: usize, seed: u64, index: u64) -> Option<usize> {
        for refreshed in [false, true] {
            let open: Vec<usize> = (0..steps.fixture.units.len())
                .filter(|unit| steps.fixture.units[*unit].office == office && !self.full[*unit].load(Ordering::Relaxed))
                .collect();
            if !open.is_empty() {
                return Some(open[random::below(seed, STREAM_UNIT, index, open.len() as u64) as usize]);
            }
            if refreshed {
                break;
            }
            self.refresh(steps, office).await;
        }
        None
    }

    async fn refresh(&self, steps: &Steps, office: usize) {
        let Ok(availability) = steps.availability(office, now()).await else { return };
        steps.recorder.count("availability_refreshes", 1);
        for session in availability.sessions {
            let date = session.date.as_ref().map(crate::client::civil_date);
            let remaining: u32 = session.pools.iter().map(|pool| pool.remaining).sum();
            let unit = steps.fixture.units.iter().position(|unit| {
                unit.office == office && Some(unit.date) == date && unit.session_id == session.session_id
            });
            if let Some(unit) = unit {
                self.full[unit].store(remaining == 0, Ordering::Relaxed);
            }
        }
    }
}

/// No waiting room: everyone is admitted at once and the server's release instant does the gating.
pub struct DirectGate;

impl Gate for DirectGate {
    fn admit<'a>(
        &'a self,
        _steps: &'a Steps,
        _user: u64,
        _call: Call,
    ) -> Pin<Box<dyn Future<Output = Admission> + Send + 'a>> {
        Box::pin(async { Admission::Admitted { token: String::new() } })
    }
}

/// Arrival offsets of `users` users over `window`, ascending: the open loop's timetable.
pub fn arrivals(seed: u64, users: u64, window: Duration) -> Vec<Duration> {
    let mut offsets: Vec<Duration> =
        (0..users).map(|user| window.mul_f64(random::unit(seed, STREAM_ARRIVAL, user))).collect();
    offsets.sort_unstable();
    offsets
}

/// Runs `spike`.
pub async fn run(context: &Context) -> anyhow::Result<ScenarioRun> {
    let mut spec = context.fixture_spec(ReleaseAt::After(RELEASE_DELAY));
    spec.waiting_room = !context.cli.no_waiting_room;
    let fixture = context.create_fixture_from(&spec, &context.run_id).await?;
    let ledger = Arc::new(Ledger::default());
    let recorder = new_recorder();
    let steps = context.steps(fixture.clone(), recorder.clone(), ledger.clone());
    let waiting_room = spec
        .waiting_room
        .then(|| Arc::new(WaitingRoomGate::new(context.seed, context.cli.watchers_max, fixture.release_at)));
    let gate: Arc<dyn Gate> = match &waiting_room {
        Some(gate) => gate.clone(),
        None => Arc::new(DirectGate),
    };
    let full = Arc::new(FullSessions::new(fixture.units.len()));
    let users = context.cli.users;
    let plan = Plan::Open {
        timetable: Timetable::Offsets(arrivals(context.seed, users, context.cli.arrival_window)),
        outstanding_max: users as usize,
    };
    recorder.count("users", users);
    let (seed, journey_steps) = (context.seed, steps.clone());
    let driver = context
        .drive(plan, recorder.clone(), move |call: Call| {
            let (steps, gate, full) = (journey_steps.clone(), gate.clone(), full.clone());
            async move { journey(&steps, gate.as_ref(), &full, seed, call).await }
        })
        .await;
    let verdict = waiting_room.as_ref().map(|gate| gate.verdict(&steps));
    Ok(ScenarioRun { waiting_room: verdict, ..ScenarioRun::new(recorder, driver, Some(fixture), ledger) })
}

async fn journey(steps: &Steps, gate: &dyn Gate, full: &FullSessions, seed: u64, call: Call) {
    let user = call.index;
    let token = match gate.admit(steps, user, call).await {
        Admission::Admitted { token } => token,
        Admission::Refused { reason } => return steps.recorder.count(reason, 1),
    };
    let booking_id = match gate.office(steps, user) {
        Some(office) => {
            let booking_id = hold_admitted(steps, full, seed, user, call, &token, office).await;
            gate.finish(steps, user, booking_id.is_some()).await;
            booking_id
        }
        None => hold_until_done(steps, seed, user, call, &token).await,
    };
    let Some(booking_id) = booking_id else { return };
    if random::unit(seed, STREAM_FATE, user) < PAY_SHARE {
        let mut paid = steps.confirm("ConfirmPayment", "p", user, &booking_id).await;
        for retry in 0..AMBIGUOUS_RETRIES_MAX {
            match &paid {
                Err(status) if worth_retrying(status) && now() < call.deadline => {
                    retry_pause(seed, user, retry, status).await;
                    paid = steps.confirm("ConfirmPayment", "p", user, &booking_id).await;
                }
                _ => break,
            }
        }
        steps.recorder.count(if paid.is_ok() { "users_paid" } else { "users_payment_failed" }, 1);
    } else {
        steps.recorder.count("users_abandoned", 1);
    }
}

/// Holds for an admitted `user` in a session of `office` that still has slots; the booking id, or `None` when the
/// user ends without a slot.
async fn hold_admitted(
    steps: &Steps,
    full: &FullSessions,
    seed: u64,
    user: u64,
    call: Call,
    token: &str,
    office: usize,
) -> Option<String> {
    for attempt in 0..ADMITTED_HOLD_ATTEMPTS_MAX {
        let Some(unit) = full.pick(steps, office, seed, user * 64 + u64::from(attempt)).await else { break };
        let mut held = steps.hold(user, attempt, &steps.fixture.units[unit], token, now()).await;
        // An unknown outcome is asked again under the same request id (the first answer comes back if it held), an
        // overloaded server after its retry pause.
        for retry in 0..AMBIGUOUS_RETRIES_MAX {
            match &held {
                Err(status) if worth_retrying(status) && now() < call.deadline => {
                    retry_pause(seed, user, retry, status).await;
                    held = steps.hold(user, attempt, &steps.fixture.units[unit], token, now()).await;
                }
                _ => break,
            }
        }
        let status = match held {
            Ok(booking) => {
                steps.recorder.record(JOURNEY, call.due, &Outcome::OK);
                steps.recorder.count("users_held", 1);
                return Some(booking.booking_id);
            }
            Err(status) => status,
        };
        if !is_session_full(&status) {
            steps.recorder.record(JOURNEY, call.due, &Outcome { code: "FAILED", reason: None });
            steps.recorder.count("users_failed", 1);
            return None;
        }
        full.full[unit].store(true, Ordering::Relaxed);
    }
    steps.recorder.record(JOURNEY, call.due, &Outcome { code: "NO_SLOT", reason: None });
    steps.recorder.count("users_no_slot", 1);
    None
}

/// Whether a failed call is worth sending again under the same request id: its outcome is unknown, or the server
/// shed it for overload (RESOURCE_EXHAUSTED with a retry hint).
fn worth_retrying(status: &tonic::Status) -> bool {
    is_ambiguous(status.code()) || status.code() == tonic::Code::ResourceExhausted
}

/// The pause before retry `retry` of `user`: the server's 200 ms hint (jittered) after an overload refusal, none after
/// an unknown outcome (the call already waited for its deadline).
async fn retry_pause(seed: u64, user: u64, retry: u32, status: &tonic::Status) {
    if status.code() == tonic::Code::ResourceExhausted {
        let base = OVERLOAD_RETRY_PAUSE * 2u32.pow(retry.min(3));
        tokio::time::sleep(backoff(seed, user * 8 + u64::from(retry), base)).await;
    }
}

/// Holds for `user`, retrying while the dates are not open and moving on from full sessions; the booking id, or
/// `None` when the user ends without a slot.
async fn hold_until_done(steps: &Steps, seed: u64, user: u64, call: Call, token: &str) -> Option<String> {
    let units = &steps.fixture.units;
    let mut full_sessions = 0;
    let mut unit = &units[random::below(seed, STREAM_UNIT, user * 8, units.len() as u64) as usize];
    for attempt in 0..HOLD_ATTEMPTS_MAX {
        let started = if attempt == 0 { call.due } else { now() };
        let sent_at = SystemTime::now();
        let status = match steps.hold(user, attempt, unit, token, started).await {
            Ok(booking) => {
                if sent_at < steps.fixture.release_at && SystemTime::now() < steps.fixture.release_at {
                    steps.recorder.count("holds_before_release", 1);
                }
                steps.recorder.record(JOURNEY, call.due, &Outcome::OK);
                steps.recorder.count("users_held", 1);
                return Some(booking.booking_id);
            }
            Err(status) => status,
        };
        if is_not_yet_open(&status) {
            steps.recorder.count("not_yet_open_rejections", 1);
            let pause = backoff(seed, user * u64::from(HOLD_ATTEMPTS_MAX) + u64::from(attempt), NOT_YET_OPEN_BACKOFF);
            if !sleep_before(now() + pause, call.deadline).await {
                break;
            }
        } else if is_session_full(&status) {
            full_sessions += 1;
            if full_sessions >= FULL_SESSIONS_MAX {
                steps.recorder.record(JOURNEY, call.due, &Outcome { code: "NO_SLOT", reason: None });
                steps.recorder.count("users_no_slot", 1);
                return None;
            }
            let pick = random::below(seed, STREAM_UNIT, user * 8 + u64::from(full_sessions), units.len() as u64);
            unit = &units[pick as usize];
        } else {
            steps.recorder.record(JOURNEY, call.due, &Outcome { code: "FAILED", reason: None });
            steps.recorder.count("users_failed", 1);
            return None;
        }
    }
    steps.recorder.record(JOURNEY, call.due, &Outcome { code: "TIMED_OUT", reason: None });
    steps.recorder.count("users_timed_out", 1);
    None
}

/// The settlement grace a spawned server gets for `spike`: none. The spike compresses a payment window of hours into
/// seconds, so the 15-minute grace (a quarter of an hour kept for late bank settlements) scales to nothing; with it,
/// every abandoned hold would keep the tickets that might still reach its slot waiting for 15 minutes.
const SPIKE_SERVER_CONFIG: &str = "[booking]\npayment_settlement_grace_seconds = 0\n";

/// The arguments for a spawned server: for `spike`, unless the caller names a `--config`, a configuration file with
/// [`SPIKE_SERVER_CONFIG`] is written to the temporary directory and passed; other scenarios keep `args` as given.
pub fn spawned_server_args(scenario: crate::cli::Scenario, args: &[String]) -> anyhow::Result<Vec<String>> {
    let mut args = args.to_vec();
    if scenario != crate::cli::Scenario::Spike || args.iter().any(|arg| arg.starts_with("--config")) {
        return Ok(args);
    }
    let path = std::env::temp_dir().join(format!("loadtest-spike-server-{}.toml", std::process::id()));
    std::fs::write(&path, SPIKE_SERVER_CONFIG)
        .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?;
    args.push(format!("--config={}", path.display()));
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_sorted_and_within_the_window() {
        let window = Duration::from_secs(5);
        let offsets = arrivals(1, 10_000, window);
        assert_eq!(offsets.len(), 10_000);
        assert!(offsets.windows(2).all(|pair| pair[0] <= pair[1]));
        assert!(offsets.iter().all(|offset| *offset < window));
        let before_release = offsets.iter().filter(|offset| **offset < RELEASE_DELAY).count();
        assert!((3_700..4_300).contains(&before_release), "{before_release}");
    }
}
