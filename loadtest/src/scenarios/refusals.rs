//! `refusals`: every call is a `Hold` the server must refuse, to measure what saying no costs next to `ping`. Even
//! calls hold on a date that opens only after the run (NOT_YET_OPEN), odd calls on a session filled at setup
//! (SESSION_FULL). A hold that succeeds is counted as `holds_ok_unexpected`; the full sessions are then checked
//! like any other quota.

use std::sync::Arc;

use crate::check::Ledger;
use crate::driver::{Call, now};
use crate::random;
use crate::scenarios::fixture::{FixtureSpec, ReleaseAt};
use crate::scenarios::steps::{Steps, is_not_yet_open, is_session_full};
use crate::scenarios::{Context, ScenarioRun, new_recorder};

/// Random stream of the session choice.
const STREAM_UNIT: u64 = 0x7ef;

/// Runs `refusals`.
pub async fn run(context: &Context) -> anyhow::Result<ScenarioRun> {
    let small = |release| FixtureSpec { offices: 1, days: 1, slots: 3, ..context.fixture_spec(release) };
    let closed =
        context.create_fixture_from(&small(ReleaseAt::NOT_DURING_RUN), &format!("{}n", context.run_id)).await?;
    let full = context.create_fixture_from(&small(ReleaseAt::AlreadyOpen), &format!("{}f", context.run_id)).await?;
    let ledger = Arc::new(Ledger::default());
    let recorder = new_recorder();
    let closed_steps = context.steps(closed, recorder.clone(), ledger.clone());
    let full_steps = context.steps(full.clone(), recorder.clone(), ledger.clone());
    for (filler, unit) in full.units.iter().enumerate() {
        // The last applicants of the generator, apart from the journeys' (numbered from 0).
        let user = crate::nik::ApplicantGenerator::capacity() - 1 - filler as u64;
        full_steps.hold(user, 0, unit, "", now()).await?;
    }
    let fresh = new_recorder();
    let (closed_steps, full_steps) = (rebind(&closed_steps, &fresh), rebind(&full_steps, &fresh));
    let seed = context.seed;
    let driver = context
        .drive(context.plan(), fresh.clone(), move |call: Call| {
            let steps = if call.index.is_multiple_of(2) { closed_steps.clone() } else { full_steps.clone() };
            async move {
                let units = &steps.fixture.units;
                let unit = &units[random::below(seed, STREAM_UNIT, call.index, units.len() as u64) as usize];
                let counter = match steps.hold(call.index, 0, unit, "", call.due).await {
                    Ok(_) => "holds_ok_unexpected",
                    Err(status) if is_not_yet_open(&status) => "refused_not_yet_open",
                    Err(status) if is_session_full(&status) => "refused_session_full",
                    Err(_) => "holds_failed",
                };
                steps.recorder.count(counter, 1);
            }
        })
        .await;
    Ok(ScenarioRun::new(fresh, driver, Some(full), ledger))
}

/// The same steps measured by `recorder` (so the setup holds stay out of the figures).
fn rebind(steps: &Arc<Steps>, recorder: &Arc<crate::recorder::Recorder>) -> Arc<Steps> {
    Arc::new(Steps {
        clients: steps.clients.clone(),
        recorder: recorder.clone(),
        ledger: steps.ledger.clone(),
        fixture: steps.fixture.clone(),
        run_id: steps.run_id.clone(),
        applicants: steps.applicants.clone(),
    })
}
