//! What `memory` and `recovery` share: a quota with room for exactly `--holds` holds, spread over every office, date
//! and session of the flags, and the holds themselves, one new applicant each. Hold number `i` goes to session
//! `i mod sessions`, and the quota gives every session its share of the slots in the same order (the first ones one
//! more), so no hold is refused for want of a slot.

use std::sync::Arc;

use crate::check::Ledger;
use crate::driver::{self, Call, DriverStats};
use crate::progress::Progress;
use crate::recorder::Recorder;
use crate::scenarios::fixture::{Fixture, FixtureSpec, ReleaseAt, SESSIONS};
use crate::scenarios::{Context, new_recorder};

/// The holds made and what the server answered.
pub struct BulkHolds {
    /// Measurements of the holds.
    pub recorder: Arc<Recorder>,
    /// What the driver did.
    pub driver: DriverStats,
    /// Bookings answered OK.
    pub ledger: Arc<Ledger>,
    /// Holds answered OK.
    pub acknowledged: u64,
    /// Holds answered with an error (refused or failed).
    pub not_acknowledged: u64,
}

/// The quota of `--holds` holds: `--offices` offices and up to `--days` dates, already open, a payment window that
/// outlasts the run.
pub fn spec(context: &Context) -> FixtureSpec {
    let sessions_min = u64::from(context.cli.offices()) * SESSIONS.len() as u64;
    FixtureSpec { slots: context.cli.holds.max(sessions_min), ..context.fixture_spec(ReleaseAt::AlreadyOpen) }
}

/// Creates the quota of [`spec`].
pub async fn create_fixture(context: &Context) -> anyhow::Result<Arc<Fixture>> {
    context.create_fixture_from(&spec(context), &context.run_id).await
}

/// Makes `--holds` holds on `fixture`, paced by `--concurrency` or `--rate`, with a progress bar.
pub async fn hold_all(context: &Context, fixture: Arc<Fixture>) -> BulkHolds {
    let ledger = Arc::new(Ledger::default());
    let recorder = new_recorder();
    let steps = context.steps(fixture, recorder.clone(), ledger.clone());
    let duration = context.cli.duration();
    let progress = Progress::start(context.cli.scenario.name(), duration, recorder.clone(), context.cli.quiet);
    let calls = context.cli.holds.min(context.cli.max_requests);
    let driver = driver::run(context.plan(), recorder.start(), duration, calls, recorder.clone(), move |call: Call| {
        let steps = steps.clone();
        async move {
            let units = &steps.fixture.units;
            let unit = &units[(call.index % units.len() as u64) as usize];
            let counter = match steps.hold(call.index, 0, unit, "", call.due).await {
                Ok(_) => "holds_ok",
                Err(_) => "holds_not_ok",
            };
            steps.recorder.count(counter, 1);
        }
    })
    .await;
    progress.finish();
    let counters = recorder.summary().counters;
    let count = |name: &str| counters.get(name).copied().unwrap_or(0);
    BulkHolds { acknowledged: count("holds_ok"), not_acknowledged: count("holds_not_ok"), recorder, driver, ledger }
}

#[cfg(test)]
mod tests {
    use crate::calendar::CivilDate;
    use crate::scenarios::fixture::plan_units;

    #[test]
    fn holds_in_turn_fill_every_session_exactly() {
        let dates: Vec<CivilDate> = (0..3).map(|day| CivilDate { year: 2030, month: 1, day: 1 + day }).collect();
        for holds in [36, 37, 1000, 1001] {
            let units = plan_units(4, &dates, holds);
            let mut taken = vec![0u32; units.len()];
            for index in 0..holds {
                taken[(index % units.len() as u64) as usize] += 1;
            }
            let capacities: Vec<u32> = units.iter().map(|unit| unit.capacity).collect();
            assert_eq!(taken, capacities, "{holds} holds");
        }
    }
}
