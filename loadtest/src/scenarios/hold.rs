//! `hold`: every call is a `Hold` of a fresh applicant on a random session of the run's own quota. Once the quota
//! is gone the server answers `FAILED_PRECONDITION` (session full), which is an expected outcome reported apart
//! from the holds that succeeded.

use std::sync::Arc;

use crate::check::Ledger;
use crate::driver::Call;
use crate::random;
use crate::scenarios::fixture::ReleaseAt;
use crate::scenarios::steps::is_session_full;
use crate::scenarios::{Context, ScenarioRun, new_recorder};

/// Random stream of the session choice.
const STREAM_UNIT: u64 = 0x401d;

/// Runs `hold`.
pub async fn run(context: &Context) -> anyhow::Result<ScenarioRun> {
    let fixture = context.create_fixture(ReleaseAt::AlreadyOpen).await?;
    let ledger = Arc::new(Ledger::default());
    let recorder = new_recorder();
    let steps = context.steps(fixture.clone(), recorder.clone(), ledger.clone());
    let seed = context.seed;
    let driver = context
        .drive(context.plan(), recorder.clone(), move |call: Call| {
            let steps = steps.clone();
            async move {
                let units = &steps.fixture.units;
                let unit = &units[random::below(seed, STREAM_UNIT, call.index, units.len() as u64) as usize];
                match steps.hold(call.index, 0, unit, "", call.due).await {
                    Ok(_) => steps.recorder.count("holds_ok", 1),
                    Err(status) if is_session_full(&status) => steps.recorder.count("holds_session_full", 1),
                    Err(_) => steps.recorder.count("holds_failed", 1),
                }
            }
        })
        .await;
    Ok(ScenarioRun::new(recorder, driver, Some(fixture), ledger))
}
