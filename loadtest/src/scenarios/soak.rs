//! `soak`: steady mixed traffic for `--duration`, best with `--rate`: availability reads (45%), booking look-ups
//! (10%) and booking journeys (45%) that pay, cancel or lapse like in `lifecycle` (with late payments). So the quota
//! never runs out, the oldest paid bookings are cancelled once half the slots are paid for.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::check::Ledger;
use crate::client::system_time;
use crate::driver::Call;
use crate::random;
use crate::scenarios::fixture::ReleaseAt;
use crate::scenarios::late_payments::{LatePayer, LatePayment};
use crate::scenarios::lifecycle::{Fate, fate};
use crate::scenarios::steps::{Steps, is_session_full};
use crate::scenarios::{Context, ScenarioRun, new_recorder};

/// Share of calls that read availability.
pub const BROWSE_SHARE: f64 = 0.45;
/// Share of calls that read one booking (after the browsers).
pub const LOOKUP_SHARE: f64 = 0.10;
/// Recent bookings kept for look-ups.
const RECENT_MAX: usize = 10_000;

const STREAM_KIND: u64 = 0x50a;
const STREAM_PICK: u64 = 0x50b;

/// State shared by the journeys of a soak.
struct Shared {
    steps: Arc<Steps>,
    late: Arc<LatePayer>,
    recent: Mutex<VecDeque<String>>,
    paid: Mutex<VecDeque<String>>,
    paid_max: usize,
    seed: u64,
}

/// Runs `soak`.
pub async fn run(context: &Context) -> anyhow::Result<ScenarioRun> {
    let fixture = context.create_fixture(ReleaseAt::AlreadyOpen).await?;
    let ledger = Arc::new(Ledger::default());
    let recorder = new_recorder();
    let steps = context.steps(fixture.clone(), recorder.clone(), ledger.clone());
    let stop_at = recorder.start() + context.cli.duration() + fixture.payment_window + Duration::from_secs(5);
    let late = Arc::new(LatePayer::start(steps.clone(), stop_at));
    let shared = Arc::new(Shared {
        steps,
        late: late.clone(),
        recent: Mutex::new(VecDeque::with_capacity(RECENT_MAX)),
        paid: Mutex::new(VecDeque::new()),
        paid_max: (fixture.slots() / 2).max(1) as usize,
        seed: context.seed,
    });
    let driver = context
        .drive(context.plan(), recorder.clone(), move |call: Call| {
            let shared = shared.clone();
            async move { one_call(&shared, call).await }
        })
        .await;
    late.finish().await;
    Ok(ScenarioRun::new(recorder, driver, Some(fixture), ledger))
}

async fn one_call(shared: &Shared, call: Call) {
    let steps = &shared.steps;
    let kind = random::unit(shared.seed, STREAM_KIND, call.index);
    if kind < BROWSE_SHARE {
        let office = random::below(shared.seed, STREAM_PICK, call.index, steps.fixture.offices.len() as u64) as usize;
        let _ = steps.availability(office, call.due).await;
        return;
    }
    if kind < BROWSE_SHARE + LOOKUP_SHARE {
        let recent = {
            let recent = shared.recent.lock().expect("recent poisoned");
            let count = recent.len() as u64;
            (count > 0).then(|| recent[random::below(shared.seed, STREAM_PICK, call.index, count) as usize].clone())
        };
        match recent {
            Some(booking_id) => drop(steps.get_booking(&booking_id, call.due).await),
            None => drop(steps.availability(0, call.due).await),
        }
        return;
    }
    book(shared, call).await;
}

async fn book(shared: &Shared, call: Call) {
    let (steps, user) = (&shared.steps, call.index);
    let units = &steps.fixture.units;
    let unit = &units[random::below(shared.seed, STREAM_PICK, user, units.len() as u64) as usize];
    let booking = match steps.hold(user, 0, unit, "", call.due).await {
        Ok(booking) => booking,
        Err(status) if is_session_full(&status) => return steps.recorder.count("holds_session_full", 1),
        Err(_) => return steps.recorder.count("holds_failed", 1),
    };
    steps.recorder.count("holds_ok", 1);
    remember(&shared.recent, booking.booking_id.clone(), RECENT_MAX);
    match fate(shared.seed, user) {
        Fate::Pay => {
            if steps.confirm("ConfirmPayment", "p", user, &booking.booking_id).await.is_err() {
                return steps.recorder.count("confirm_failed", 1);
            }
            steps.recorder.count("confirmed", 1);
            let oldest = remember(&shared.paid, booking.booking_id, shared.paid_max);
            if let Some(oldest) = oldest {
                let cancelled = steps.cancel("r", user, &oldest).await.is_ok();
                steps.recorder.count(if cancelled { "paid_cancelled" } else { "cancel_failed" }, 1);
            }
        }
        Fate::Cancel => {
            let cancelled = steps.cancel("c", user, &booking.booking_id).await.is_ok();
            steps.recorder.count(if cancelled { "cancelled" } else { "cancel_failed" }, 1);
        }
        Fate::Abandon { late } => {
            steps.recorder.count("abandoned", 1);
            if late {
                let deadline = system_time(booking.payment_deadline.as_ref());
                shared.late.send(steps, LatePayment::after(user, booking.booking_id, deadline));
            }
        }
    }
}

/// Appends `item`; returns the oldest item when that makes the queue longer than `max`.
fn remember(queue: &Mutex<VecDeque<String>>, item: String, max: usize) -> Option<String> {
    let mut queue = queue.lock().expect("queue poisoned");
    queue.push_back(item);
    if queue.len() > max { queue.pop_front() } else { None }
}
