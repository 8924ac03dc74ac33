//! Deciding admin commands: offices, schedules and closures. They run with every shard locked, because a new plan
//! must be checked against every day of the office that already has bookings.

use super::office::{Catalog, Office, SessionTemplate};
use crate::domain::messages::command::Command;
use crate::domain::messages::event::{Event, Stamp};
use crate::domain::messages::rejection::Rejection;
use crate::domain::state::access::ShardAccess;
use crate::domain::values::ids::{OfficeId, SessionId};
use crate::domain::values::time::Timestamp;
use crate::limits::{OFFICES_MAX, SCHEDULES_PER_OFFICE_MAX, SHARD_COUNT};

/// Decides an admin command against the whole state.
pub fn decide(
    access: &impl ShardAccess,
    catalog: &Catalog,
    command: &Command,
    stamp: Stamp,
) -> Result<Event, Rejection> {
    match command {
        Command::UpsertOffice(settings) => {
            let mut trial = catalog.clone();
            let existing = trial.offices.remove(&settings.office_id);
            if existing.is_none() && catalog.offices.len() >= OFFICES_MAX {
                return Err(Rejection::LimitReached { limit: "offices_max".into() });
            }
            let Some(mut office) = Office::new(settings.clone()) else {
                return Err(Rejection::invalid("office.time_zone", "unknown IANA time zone"));
            };
            if let Some(existing) = existing {
                office.rules = existing.rules;
                office.closed = existing.closed;
            }
            trial.offices.insert(settings.office_id.clone(), office);
            check_replan(access, catalog, &trial, &settings.office_id, "office.sessions", stamp.at)?;
            Ok(Event::OfficeUpserted { stamp, settings: settings.clone() })
        }
        Command::SetSchedule { office_id, rule } => {
            let mut trial = catalog.clone();
            let office =
                trial.offices.get_mut(office_id).ok_or_else(|| Rejection::OfficeNotFound(office_id.clone()))?;
            // The same pruning the event's application does, so the limit counts only schedules still in force.
            office.forget_past_rules(stamp.at);
            if office.rules.len() >= SCHEDULES_PER_OFFICE_MAX {
                return Err(Rejection::LimitReached { limit: "schedules_per_office_max".into() });
            }
            office.rules.push(rule.clone());
            check_replan(access, catalog, &trial, office_id, "sessions", stamp.at)?;
            Ok(Event::ScheduleSet { stamp, office_id: office_id.clone(), rule: rule.clone() })
        }
        Command::CloseDate { office_id, date, reason, reopen } => {
            if catalog.office(office_id).is_none() {
                return Err(Rejection::OfficeNotFound(office_id.clone()));
            }
            let (office_id, date, reason, reopen) = (office_id.clone(), *date, reason.clone(), *reopen);
            Ok(Event::DateClosed { stamp, office_id, date, reason, reopen })
        }
        Command::PurgeBookings { before } => Ok(Event::BookingsPurged { stamp, before: *before }),
        _ => unreachable!("dispatched on admin commands"),
    }
}

/// Refuses a new plan that would leave any booking of the office from today on without a slot (`field` is invalid),
/// or that would move the start or end of a session holding bookings still to come (their start and payment deadline
/// were promised to applicants; the refusal counts them). Past days are history and are not replanned.
fn check_replan(
    access: &impl ShardAccess,
    current: &Catalog,
    trial: &Catalog,
    office_id: &OfficeId,
    field: &str,
    now: Timestamp,
) -> Result<(), Rejection> {
    let office = trial.office(office_id).expect("inserted by the caller");
    let before = current.office(office_id);
    let today = before.unwrap_or(office).today(now);
    let mut moved = 0u32;
    for index in 0..SHARD_COUNT {
        let days = access.shard(index).days.iter();
        for (key, day) in days.filter(|(key, _)| &key.office_id == office_id && key.date >= today) {
            let plan = office.plan(key.date);
            let old_plan = before.and_then(|before| before.plan(key.date));
            for session in &day.sessions {
                let template = plan.as_ref().and_then(|plan| find_session(plan.sessions, &session.session_id));
                for pool in &session.pools {
                    let Some(pool_kind) = pool.pool else { continue };
                    let capacity = template.map_or(0, |template| template.capacity(pool_kind));
                    if pool.taken() > capacity {
                        let description = format!(
                            "would leave {} booking(s) of session {} ({}) on {} without a slot (capacity {capacity})",
                            pool.taken(),
                            session.session_id,
                            pool_kind.name(),
                            key.date
                        );
                        return Err(Rejection::invalid(field, description));
                    }
                }
                let old_template = old_plan.as_ref().and_then(|plan| find_session(plan.sessions, &session.session_id));
                let (Some(template), Some(old_template), Some(before)) = (template, old_template, before) else {
                    continue;
                };
                let times = |office: &Office, template: &SessionTemplate| {
                    (office.session_start(key.date, template), office.session_end(key.date, template))
                };
                if times(office, template) != times(before, old_template) {
                    let waiting: u32 = session.pools.iter().map(|pool| pool.awaiting + pool.confirmed).sum();
                    moved += waiting;
                }
            }
        }
    }
    if moved > 0 {
        return Err(Rejection::SessionsHaveBookings { bookings: moved });
    }
    Ok(())
}

fn find_session<'plan>(sessions: &'plan [SessionTemplate], session_id: &SessionId) -> Option<&'plan SessionTemplate> {
    sessions.iter().find(|template| &template.session_id == session_id)
}
