//! `spike`: a release moment. `--users` users arrive at random over `--arrival-window`, starting when a fresh
//! office's dates open 2 s later, to compete for `--slots` slots. Each user passes a [`Gate`], then holds: early
//! arrivals are told the session is not yet open and retry after a short backoff; a full session sends the user to
//! another one, up to three; a user with a slot pays (80%) or walks away.
//!
//! The gate is where the waiting room will go: today it admits everyone at once ([`DirectGate`]); a waiting-room gate
//! will take a ticket, wait its turn and return an admission token, and report `unterminated` and `inversions`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::check::Ledger;
use crate::driver::{Call, Plan, Timetable, now};
use crate::random;
use crate::recorder::Outcome;
use crate::scenarios::fixture::ReleaseAt;
use crate::scenarios::steps::{Steps, is_not_yet_open, is_session_full};
use crate::scenarios::{Context, ScenarioRun, backoff, new_recorder, sleep_before};

/// How long after setup the dates open.
pub const RELEASE_DELAY: Duration = Duration::from_secs(2);
/// Share of users with a slot who pay.
pub const PAY_SHARE: f64 = 0.80;
/// Sessions a user tries before giving up when they are full.
pub const FULL_SESSIONS_MAX: u32 = 3;
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
    #[allow(dead_code)]
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

    /// Tickets never admitted nor expired, and admissions out of line order, once the run is over.
    fn violations(&self) -> (u64, u64) {
        (0, 0)
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
    let fixture = context.create_fixture(ReleaseAt::After(RELEASE_DELAY)).await?;
    let ledger = Arc::new(Ledger::default());
    let recorder = new_recorder();
    let steps = context.steps(fixture.clone(), recorder.clone(), ledger.clone());
    let gate: Arc<dyn Gate> = Arc::new(DirectGate);
    let users = context.cli.users;
    let plan = Plan::Open {
        timetable: Timetable::Offsets(arrivals(context.seed, users, context.cli.arrival_window)),
        outstanding_max: users as usize,
    };
    recorder.count("users", users);
    let (seed, journey_gate) = (context.seed, gate.clone());
    let driver = context
        .drive(plan, recorder.clone(), move |call: Call| {
            let (steps, gate) = (steps.clone(), journey_gate.clone());
            async move { journey(&steps, gate.as_ref(), seed, call).await }
        })
        .await;
    let (unterminated, inversions) = gate.violations();
    recorder.count("waiting_room_unterminated", unterminated);
    recorder.count("waiting_room_inversions", inversions);
    Ok(ScenarioRun { recorder, driver, fixture: Some(fixture), ledger })
}

async fn journey(steps: &Steps, gate: &dyn Gate, seed: u64, call: Call) {
    let user = call.index;
    let token = match gate.admit(steps, user, call).await {
        Admission::Admitted { token } => token,
        Admission::Refused { reason } => return steps.recorder.count(reason, 1),
    };
    let Some(booking_id) = hold_until_done(steps, seed, user, call, &token).await else { return };
    if random::unit(seed, STREAM_FATE, user) < PAY_SHARE {
        let paid = steps.confirm("ConfirmPayment", "p", user, &booking_id).await.is_ok();
        steps.recorder.count(if paid { "users_paid" } else { "users_payment_failed" }, 1);
    } else {
        steps.recorder.count("users_abandoned", 1);
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
