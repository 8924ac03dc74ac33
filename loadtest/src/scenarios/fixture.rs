//! Creates a run's own quota through `AdminService`, so every run starts from the same state: fresh offices
//! `lt-<run>-<k>`, each with three sessions a day on every weekday, and a schedule for tomorrow onwards whose
//! session capacities add up to exactly the requested number of slots.

use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};

use crate::calendar::{CivilDate, jakarta_today};
use crate::client::{Clients, proto_date, timestamp};
use crate::proto;

/// A local time of day as (hours, minutes).
type HourMinute = (i32, i32);
/// The sessions of every test day: id, start, end.
pub const SESSIONS: [(&str, HourMinute, HourMinute); 3] =
    [("0800-1000", (8, 0), (10, 0)), ("1000-1200", (10, 0), (12, 0)), ("1300-1500", (13, 0), (15, 0))];
/// Largest pool capacity of one session the server accepts.
pub const SESSION_CAPACITY_MAX: u32 = 100_000;
/// The service every test office offers and every test booking asks for.
pub const SERVICE: proto::ServiceType = proto::ServiceType::NewPassport;
/// The pool every test booking takes from.
pub const POOL: proto::Pool = proto::Pool::Regular;

/// What quota to create.
#[derive(Clone, Debug)]
pub struct FixtureSpec {
    /// Number of offices.
    pub offices: u32,
    /// Dates per office, from tomorrow on (fewer when there are not enough slots for three sessions a day).
    pub days: u32,
    /// Total slots over all offices, dates and sessions.
    pub slots: u64,
    /// The offices' payment window.
    pub payment_window: Duration,
    /// When the dates open, relative to the moment `SetSchedule` is sent (negative: already open).
    pub release_after_setup: ReleaseAt,
    /// Book the dates through a waiting room (`SetSchedule.waiting_room`): holds need an admission token.
    pub waiting_room: bool,
}

/// When the scheduled dates open.
#[derive(Clone, Copy, Debug)]
pub enum ReleaseAt {
    /// A minute before setup: bookable at once.
    AlreadyOpen,
    /// This long after the schedule is set.
    After(Duration),
}

impl ReleaseAt {
    /// Far enough ahead that the dates stay closed for any run (10 minutes at most); its waiting room, if any, is open
    /// already (it opens 15 minutes before by default) and is not drawn during the run.
    pub const NOT_DURING_RUN: ReleaseAt = ReleaseAt::After(Duration::from_secs(14 * 60));
}

/// One session of one date of one office, with its capacity in the regular pool.
#[derive(Clone, Debug)]
pub struct Unit {
    /// Index into [`Fixture::offices`].
    pub office: usize,
    /// The date.
    pub date: CivilDate,
    /// The session id.
    pub session_id: &'static str,
    /// Slots in the regular pool.
    pub capacity: u32,
}

/// The quota a run created.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// Office ids.
    pub offices: Vec<String>,
    /// Scheduled dates, ascending.
    pub dates: Vec<CivilDate>,
    /// Every session of every date of every office.
    pub units: Vec<Unit>,
    /// The release instant sent with `SetSchedule`.
    pub release_at: SystemTime,
    /// The offices' payment window.
    pub payment_window: Duration,
    /// Whether the dates are behind a waiting room.
    pub waiting_room: bool,
}

impl Fixture {
    /// Total slots.
    pub fn slots(&self) -> u64 {
        self.units.iter().map(|unit| u64::from(unit.capacity)).sum()
    }
}

/// Creates the offices and schedules of `spec` for run `run_id`.
pub async fn create(clients: &Clients, run_id: &str, spec: &FixtureSpec) -> anyhow::Result<Fixture> {
    let sessions_per_day = SESSIONS.len() as u64;
    if spec.slots < u64::from(spec.offices) * sessions_per_day {
        bail!(
            "--slots must be at least {} (three sessions for each of {} offices)",
            u64::from(spec.offices) * 3,
            spec.offices
        );
    }
    let days = u64::from(spec.days).min(spec.slots / (u64::from(spec.offices) * sessions_per_day)).max(1);
    let sessions = u64::from(spec.offices) * days * sessions_per_day;
    if spec.slots.div_ceil(sessions) > u64::from(SESSION_CAPACITY_MAX) {
        bail!(
            "--slots {} needs more than {SESSION_CAPACITY_MAX} slots per session; add --offices or --days",
            spec.slots
        );
    }
    let tomorrow = jakarta_today().plus_days(1);
    let dates: Vec<CivilDate> = (0..days as i64).map(|day| tomorrow.plus_days(day)).collect();
    let offices: Vec<String> = (0..spec.offices).map(|k| format!("lt-{run_id}-{k}")).collect();
    let units = plan_units(offices.len(), &dates, spec.slots);
    for office_id in &offices {
        upsert_office(clients, run_id, office_id, spec.payment_window).await?;
    }
    let release_at = match spec.release_after_setup {
        ReleaseAt::AlreadyOpen => SystemTime::now() - Duration::from_secs(60),
        ReleaseAt::After(delay) => SystemTime::now() + delay,
    };
    for (office_index, office_id) in offices.iter().enumerate() {
        for date in &dates {
            let capacities: Vec<u32> = units
                .iter()
                .filter(|unit| unit.office == office_index && unit.date == *date)
                .map(|unit| unit.capacity)
                .collect();
            let schedule =
                Schedule { date: *date, release_at, capacities: &capacities, waiting_room: spec.waiting_room };
            set_schedule(clients, run_id, office_id, &schedule).await?;
        }
    }
    Ok(Fixture {
        offices,
        dates,
        units,
        release_at,
        payment_window: spec.payment_window,
        waiting_room: spec.waiting_room,
    })
}

/// Spreads `slots` over every (office, date, session): each gets the same share, the first ones one more.
pub fn plan_units(offices: usize, dates: &[CivilDate], slots: u64) -> Vec<Unit> {
    let count = (offices * dates.len() * SESSIONS.len()) as u64;
    assert!(count > 0 && slots >= count, "at least one slot per session");
    let (share, extra) = (slots / count, slots % count);
    let mut units = Vec::with_capacity(count as usize);
    for office in 0..offices {
        for date in dates {
            for (session_id, _, _) in SESSIONS {
                let capacity = share + u64::from((units.len() as u64) < extra);
                let capacity = u32::try_from(capacity).expect("session capacity fits in u32");
                units.push(Unit { office, date: *date, session_id, capacity });
            }
        }
    }
    units
}

fn session_templates(capacities: &[u32]) -> Vec<proto::SessionTemplate> {
    SESSIONS
        .iter()
        .zip(capacities)
        .map(|((session_id, (start_h, start_m), (end_h, end_m)), capacity)| proto::SessionTemplate {
            session_id: (*session_id).to_string(),
            starts_at: Some(proto::TimeOfDay { hours: *start_h, minutes: *start_m }),
            ends_at: Some(proto::TimeOfDay { hours: *end_h, minutes: *end_m }),
            capacities: vec![proto::PoolCapacity { pool: POOL as i32, capacity: *capacity }],
        })
        .collect()
}

async fn upsert_office(
    clients: &Clients,
    run_id: &str,
    office_id: &str,
    payment_window: Duration,
) -> anyhow::Result<()> {
    let office = proto::Office {
        office_id: office_id.to_string(),
        display_name: format!("Load test office {office_id}"),
        time_zone: "Asia/Jakarta".to_string(),
        services: vec![SERVICE as i32],
        // Dates without their own schedule get one slot per session; the run schedules its dates explicitly.
        sessions: session_templates(&[1; SESSIONS.len()]),
        working_weekdays: (1..=7).collect(),
        payment_window_seconds: payment_window.as_secs().max(1) as i64,
        booking_horizon_days: 60,
        release_days_before: 60,
        release_time: Some(proto::TimeOfDay { hours: 0, minutes: 0 }),
        city: "Jakarta Pusat".to_string(),
        province: "DKI Jakarta".to_string(),
    };
    let request =
        proto::UpsertOfficeRequest { request_id: format!("lt-{run_id}-office-{office_id}"), office: Some(office) };
    clients.admin().upsert_office(request).await.with_context(|| format!("UpsertOffice {office_id} failed"))?;
    Ok(())
}

/// Takes the fixture's dates out of their waiting room (the same sessions, released at once, booked directly): the
/// line then gates no date and the server ends it, dropping its tickets (`tickets` measures the memory coming back).
pub async fn end_waiting_room(clients: &Clients, run_id: &str, fixture: &Fixture) -> anyhow::Result<()> {
    for (office_index, office_id) in fixture.offices.iter().enumerate() {
        for date in &fixture.dates {
            let capacities: Vec<u32> = fixture
                .units
                .iter()
                .filter(|unit| unit.office == office_index && unit.date == *date)
                .map(|unit| unit.capacity)
                .collect();
            let request = proto::SetScheduleRequest {
                request_id: format!("lt-{run_id}-open-{office_id}-{:04}{:02}{:02}", date.year, date.month, date.day),
                office_id: office_id.clone(),
                first_date: Some(proto_date(*date)),
                last_date: Some(proto_date(*date)),
                release_at: Some(timestamp(SystemTime::now())),
                sessions: session_templates(&capacities),
                waiting_room: false,
            };
            clients.admin().set_schedule(request).await.with_context(|| format!("SetSchedule {office_id} failed"))?;
        }
    }
    Ok(())
}

/// One date's schedule.
struct Schedule<'a> {
    date: CivilDate,
    release_at: SystemTime,
    capacities: &'a [u32],
    waiting_room: bool,
}

async fn set_schedule(clients: &Clients, run_id: &str, office_id: &str, schedule: &Schedule<'_>) -> anyhow::Result<()> {
    let Schedule { date, release_at, capacities, waiting_room } = *schedule;
    let request = proto::SetScheduleRequest {
        request_id: format!("lt-{run_id}-sched-{office_id}-{:04}{:02}{:02}", date.year, date.month, date.day),
        office_id: office_id.to_string(),
        first_date: Some(proto_date(date)),
        last_date: Some(proto_date(date)),
        release_at: Some(timestamp(release_at)),
        sessions: session_templates(capacities),
        waiting_room,
    };
    clients.admin().set_schedule(request).await.with_context(|| format!("SetSchedule {office_id} {date} failed"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spread_exactly() {
        let dates: Vec<CivilDate> = (0..7).map(|day| CivilDate { year: 2030, month: 1, day: 1 + day }).collect();
        for slots in [84, 85, 1000, 100_000, 100_003] {
            let units = plan_units(4, &dates, slots);
            assert_eq!(units.len(), 84);
            assert_eq!(units.iter().map(|unit| u64::from(unit.capacity)).sum::<u64>(), slots);
            let min = units.iter().map(|unit| unit.capacity).min().unwrap();
            let max = units.iter().map(|unit| unit.capacity).max().unwrap();
            assert!(max - min <= 1 && min >= 1);
        }
    }
}
