//! Deciding admin commands: offices, schedules and closures. They run with every shard locked, because a new plan
//! must be checked against every day of the office that already has bookings.

use super::office::{Catalog, Office};
use crate::domain::messages::command::Command;
use crate::domain::messages::event::{Event, Stamp};
use crate::domain::messages::rejection::Rejection;
use crate::domain::state::access::ShardAccess;
use crate::domain::values::ids::OfficeId;
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
            check_replan(access, &trial, &settings.office_id, "office.sessions")?;
            Ok(Event::OfficeUpserted { stamp, settings: settings.clone() })
        }
        Command::SetSchedule { office_id, rule } => {
            let mut trial = catalog.clone();
            let office =
                trial.offices.get_mut(office_id).ok_or_else(|| Rejection::OfficeNotFound(office_id.clone()))?;
            if office.rules.len() >= SCHEDULES_PER_OFFICE_MAX {
                return Err(Rejection::LimitReached { limit: "schedules_per_office_max".into() });
            }
            office.rules.push(rule.clone());
            check_replan(access, &trial, office_id, "sessions")?;
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

/// Refuses a new plan that would leave any existing booking of the office without a slot.
fn check_replan(
    access: &impl ShardAccess,
    trial: &Catalog,
    office_id: &OfficeId,
    field: &str,
) -> Result<(), Rejection> {
    let office = trial.office(office_id).expect("inserted by the caller");
    for index in 0..SHARD_COUNT {
        for (key, day) in access.shard(index).days.iter().filter(|(key, _)| &key.office_id == office_id) {
            let plan = office.plan(key.date);
            for session in &day.sessions {
                for pool in &session.pools {
                    let Some(pool_kind) = pool.pool else { continue };
                    let capacity = plan
                        .as_ref()
                        .and_then(|plan| {
                            plan.sessions.iter().find(|template| template.session_id == session.session_id)
                        })
                        .map_or(0, |template| template.capacity(pool_kind));
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
            }
        }
    }
    Ok(())
}
