//! The local demo's opening moment (`--demo-release-in SECONDS`): schedules the next week of one real office to be
//! released a little after start, behind a waiting room, so the rush can be tried on one machine.
//!
//! It goes through [`Engine::execute`] like an admin call would; it holds no rule of its own.

use crate::engine::Engine;

/// The office `--demo-release-in` releases: Pontianak opens every Friday for the following week (2025).
pub const DEMO_RELEASE_OFFICE: &str = "kanim-pontianak";

/// Schedules the demo office's dates 7 to 13 days ahead to open `seconds` from now, behind a waiting room. A refusal
/// (the office is not in the catalogue, the schedule is refused) is logged, not returned: the demo is optional.
pub async fn demo_release(engine: &Engine, seconds: u64) {
    use crate::domain::{Command, OfficeId, RequestId, ScheduleRule};
    let office_id = OfficeId::parse(DEMO_RELEASE_OFFICE).expect("a valid id");
    let Some(office) = engine.book().office(&office_id) else {
        tracing::warn!(office = DEMO_RELEASE_OFFICE, "demo release: office not in the catalogue");
        return;
    };
    let now = engine.now();
    let today = office.today(now);
    let release_at = now.plus_ms(i64::try_from(seconds).unwrap_or(i64::MAX / 2).saturating_mul(1000));
    let rule = ScheduleRule {
        first_date: today.plus_days(7),
        last_date: today.plus_days(13),
        release_at,
        sessions: None,
        waiting_room: true,
    };
    let request_id = RequestId::parse(&format!("demo-release:{}", release_at.0)).expect("short");
    match engine.execute(&request_id, &Command::SetSchedule { office_id, rule }).await {
        Ok(_) => {
            tracing::info!(office = DEMO_RELEASE_OFFICE, %release_at, "demo release scheduled behind a waiting room");
        }
        Err(rejection) => tracing::warn!(reason = rejection.reason(), "demo release not scheduled"),
    }
}
