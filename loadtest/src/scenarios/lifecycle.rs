//! `lifecycle`: each journey holds a slot, then pays (~70%), cancels (~15%) or walks away (~15%) and lets the hold
//! expire; about a third of those pay late anyway. A few payments are sent twice with the same request id, as a
//! retrying payment back-end would, and the repeat must get the same answer.

use std::sync::Arc;
use std::time::Duration;

use crate::check::Ledger;
use crate::client::system_time;
use crate::driver::Call;
use crate::proto::BookingState;
use crate::random;
use crate::scenarios::fixture::ReleaseAt;
use crate::scenarios::late_payments::{LatePayer, LatePayment};
use crate::scenarios::steps::{Steps, is_session_full};
use crate::scenarios::{Context, ScenarioRun, new_recorder};

/// Share of held journeys that pay.
pub const PAY_SHARE: f64 = 0.70;
/// Share of held journeys that cancel (after the payers).
pub const CANCEL_SHARE: f64 = 0.15;
/// Share of abandoned holds paid late.
pub const LATE_SHARE: f64 = 1.0 / 3.0;
/// Share of payments repeated with the same request id.
pub const RETRY_SHARE: f64 = 0.05;

const STREAM_UNIT: u64 = 0x11fe;
const STREAM_FATE: u64 = 0x11ff;
const STREAM_LATE: u64 = 0x1200;
const STREAM_RETRY: u64 = 0x1201;

/// What a held journey does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Pays in time.
    Pay,
    /// Cancels.
    Cancel,
    /// Walks away; pays late when `late`.
    Abandon {
        /// Pays after the deadline.
        late: bool,
    },
}

/// The fate of user `user`'s hold.
pub fn fate(seed: u64, user: u64) -> Fate {
    let roll = random::unit(seed, STREAM_FATE, user);
    if roll < PAY_SHARE {
        Fate::Pay
    } else if roll < PAY_SHARE + CANCEL_SHARE {
        Fate::Cancel
    } else {
        Fate::Abandon { late: random::unit(seed, STREAM_LATE, user) < LATE_SHARE }
    }
}

/// Runs `lifecycle`.
pub async fn run(context: &Context) -> anyhow::Result<ScenarioRun> {
    let fixture = context.create_fixture(ReleaseAt::AlreadyOpen).await?;
    let ledger = Arc::new(Ledger::default());
    let recorder = new_recorder();
    let steps = context.steps(fixture.clone(), recorder.clone(), ledger.clone());
    let stop_at = recorder.start() + context.cli.duration() + fixture.payment_window + Duration::from_secs(5);
    let late = Arc::new(LatePayer::start(steps.clone(), stop_at));
    let seed = context.seed;
    let journey_late = late.clone();
    let driver = context
        .drive(context.plan(), recorder.clone(), move |call: Call| {
            let (steps, late) = (steps.clone(), journey_late.clone());
            async move { journey(&steps, &late, seed, call).await }
        })
        .await;
    late.finish().await;
    Ok(ScenarioRun::new(recorder, driver, Some(fixture), ledger))
}

async fn journey(steps: &Steps, late: &LatePayer, seed: u64, call: Call) {
    let units = &steps.fixture.units;
    let unit = &units[random::below(seed, STREAM_UNIT, call.index, units.len() as u64) as usize];
    let booking = match steps.hold(call.index, 0, unit, "", call.due).await {
        Ok(booking) => booking,
        Err(status) if is_session_full(&status) => return steps.recorder.count("holds_session_full", 1),
        Err(_) => return steps.recorder.count("holds_failed", 1),
    };
    steps.recorder.count("holds_ok", 1);
    match fate(seed, call.index) {
        Fate::Pay => pay(steps, seed, call.index, &booking.booking_id).await,
        Fate::Cancel => {
            let counter = if steps.cancel("c", call.index, &booking.booking_id).await.is_ok() {
                "cancelled"
            } else {
                "cancel_failed"
            };
            steps.recorder.count(counter, 1);
        }
        Fate::Abandon { late: pays_late } => {
            steps.recorder.count("abandoned", 1);
            if pays_late {
                let deadline = system_time(booking.payment_deadline.as_ref());
                late.send(steps, LatePayment::after(call.index, booking.booking_id, deadline));
            }
        }
    }
}

async fn pay(steps: &Steps, seed: u64, user: u64, booking_id: &str) {
    let Ok(first) = steps.confirm("ConfirmPayment", "p", user, booking_id).await else {
        return steps.recorder.count("confirm_failed", 1);
    };
    steps.recorder.count("confirmed", 1);
    if random::unit(seed, STREAM_RETRY, user) >= RETRY_SHARE {
        return;
    }
    let same = match steps.confirm("ConfirmPayment(retry)", "p", user, booking_id).await {
        Ok(repeat) => {
            let (first, repeat) = (first.booking.unwrap_or_default(), repeat.booking.unwrap_or_default());
            repeat.state() == BookingState::Confirmed && repeat.payment_reference == first.payment_reference
        }
        Err(_) => false,
    };
    steps.recorder.count(if same { "payment_retries_consistent" } else { "payment_retries_inconsistent" }, 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fates_follow_the_proportions() {
        let users = 100_000;
        let fates: Vec<Fate> = (0..users).map(|user| fate(3, user)).collect();
        let share = |wanted: fn(&Fate) -> bool| fates.iter().filter(|fate| wanted(fate)).count() as f64 / users as f64;
        assert!((share(|fate| *fate == Fate::Pay) - 0.70).abs() < 0.01);
        assert!((share(|fate| *fate == Fate::Cancel) - 0.15).abs() < 0.01);
        assert!((share(|fate| *fate == Fate::Abandon { late: true }) - 0.05).abs() < 0.01);
    }
}
