//! Offices, their services, session plans, release instants and closed dates: the catalogue every booking is checked
//! against.
//!
//! The catalogue changes only through admin commands, which the quota book applies while holding every shard lock, so
//! a hold always sees one consistent catalogue.

use crate::domain::values::ids::{OfficeId, SessionId};
use crate::domain::values::text::is_plain_text;
use crate::domain::values::time::{Date, TimeOfDay, Timestamp, Zone};
use crate::domain::values::violation::FieldViolation;
use crate::limits::{DISPLAY_TEXT_CHARS_MAX, POOL_CAPACITY_MAX, SESSIONS_PER_DAY_MAX};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the applicant comes for. Numbers mirror `antrean.v1.ServiceType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ServiceType {
    /// A first passport.
    NewPassport = 1,
    /// A replacement passport.
    Replacement = 2,
}

/// A share of a session's capacity. Numbers mirror `antrean.v1.Pool`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Pool {
    /// The ordinary online quota.
    Regular = 1,
    /// Same-day express service, a paid extra.
    Express = 2,
    /// Applicants over 60, under 5, or with a disability.
    Priority = 3,
}

impl Pool {
    /// Every pool, in number order.
    pub const ALL: [Pool; 3] = [Pool::Regular, Pool::Express, Pool::Priority];

    /// Lowercase name for labels and logs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Pool::Regular => "regular",
            Pool::Express => "express",
            Pool::Priority => "priority",
        }
    }
}

/// One session of a day and the capacity of each pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTemplate {
    /// Unique within the office.
    pub session_id: SessionId,
    /// Local start time.
    pub starts_at: TimeOfDay,
    /// Local end time, after the start.
    pub ends_at: TimeOfDay,
    /// Capacity per pool; absent pools have none.
    pub capacities: Vec<(Pool, u32)>,
}

impl SessionTemplate {
    /// The capacity of `pool` (0 when absent).
    #[must_use]
    pub fn capacity(&self, pool: Pool) -> u32 {
        self.capacities.iter().find(|(each, _)| *each == pool).map_or(0, |(_, capacity)| *capacity)
    }
}

/// An office's settings, as set by `UpsertOffice` or the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficeSettings {
    /// The office.
    pub office_id: OfficeId,
    /// Name shown to applicants.
    pub display_name: String,
    /// IANA time zone name.
    pub time_zone: String,
    /// City, for display.
    pub city: String,
    /// Province, for display.
    pub province: String,
    /// Services offered.
    pub services: Vec<ServiceType>,
    /// Sessions of a working day without a schedule of its own, ordered by start.
    pub sessions: Vec<SessionTemplate>,
    /// ISO weekdays the office works (1 = Monday).
    pub working_weekdays: Vec<i8>,
    /// Time to pay after a hold.
    pub payment_window_ms: i64,
    /// How many days ahead dates can be booked.
    pub booking_horizon_days: i32,
    /// Dates without a schedule open this many days before ...
    pub release_days_before: i32,
    /// ... at this local time.
    pub release_time: TimeOfDay,
}

/// A `SetSchedule`: a range of dates with their release instant and, optionally, their own sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRule {
    /// First date, inclusive.
    pub first_date: Date,
    /// Last date, inclusive.
    pub last_date: Date,
    /// When these dates become bookable.
    pub release_at: Timestamp,
    /// Sessions for these dates; `None` keeps the office's default sessions.
    pub sessions: Option<Vec<SessionTemplate>>,
    /// These dates are booked through a waiting room: holds need an admission token.
    pub waiting_room: bool,
}

/// An office with its schedules and closed dates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Office {
    /// The settings.
    pub settings: OfficeSettings,
    /// The resolved time zone.
    pub zone: Zone,
    /// Schedules, later ones taking precedence over earlier ones for the dates they share.
    pub rules: Vec<ScheduleRule>,
    /// Closed dates and why.
    pub closed: BTreeMap<Date, String>,
}

/// What an office offers on one date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayPlan<'office> {
    /// When the date's slots become bookable.
    pub release_at: Timestamp,
    /// The date's sessions.
    pub sessions: &'office [SessionTemplate],
    /// Why the date is closed, if it is.
    pub closed: Option<&'office str>,
    /// Holds on this date need an admission token from the waiting room of the release at `release_at`.
    pub waiting_room: bool,
}

impl Office {
    /// The office from its settings, or `None` when the time zone is unknown.
    #[must_use]
    pub fn new(settings: OfficeSettings) -> Option<Office> {
        let zone = Zone::resolve(&settings.time_zone)?;
        Some(Office { settings, zone, rules: Vec::new(), closed: BTreeMap::new() })
    }

    /// The plan for `date`, or `None` when the office does not work that day. A schedule covering the date changes its
    /// release instant and sessions, never whether the office works: it applies to the office's working days only.
    #[must_use]
    pub fn plan(&self, date: Date) -> Option<DayPlan<'_>> {
        if !self.settings.working_weekdays.contains(&date.iso_weekday()) {
            return None;
        }
        let closed = self.closed.get(&date).map(String::as_str);
        let rule = self.rules.iter().rev().find(|rule| rule.first_date <= date && date <= rule.last_date);
        if let Some(rule) = rule {
            let sessions = rule.sessions.as_deref().unwrap_or(&self.settings.sessions);
            return Some(DayPlan { release_at: rule.release_at, sessions, closed, waiting_room: rule.waiting_room });
        }
        let release_date = date.plus_days(-self.settings.release_days_before);
        let release_at = self.zone.instant_of(release_date, self.settings.release_time);
        Some(DayPlan { release_at, sessions: &self.settings.sessions, closed, waiting_room: false })
    }

    /// The office's local date at `now`.
    #[must_use]
    pub fn today(&self, now: Timestamp) -> Date {
        self.zone.date_at(now)
    }

    /// The instant a session starts on `date`.
    #[must_use]
    pub fn session_start(&self, date: Date, session: &SessionTemplate) -> Timestamp {
        self.zone.instant_of(date, session.starts_at)
    }

    /// The instant a session ends on `date`.
    #[must_use]
    pub fn session_end(&self, date: Date, session: &SessionTemplate) -> Timestamp {
        self.zone.instant_of(date, session.ends_at)
    }

    /// Schedules still in force at `now`: those covering today or a later date.
    #[must_use]
    pub fn current_rules(&self, now: Timestamp) -> usize {
        let today = self.today(now);
        self.rules.iter().filter(|rule| rule.last_date >= today).count()
    }

    /// Drops schedules whose every date is before today at `now`: they decide nothing any more (past dates take no
    /// bookings, and their day ledgers keep the sessions they had), so they do not count against the limit.
    pub fn forget_past_rules(&mut self, now: Timestamp) {
        let today = self.today(now);
        self.rules.retain(|rule| rule.last_date >= today);
    }

    /// Whether the office offers `service`.
    #[must_use]
    pub fn offers(&self, service: ServiceType) -> bool {
        self.settings.services.contains(&service)
    }
}

/// Every office, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Offices by id.
    pub offices: BTreeMap<OfficeId, Office>,
}

impl Catalog {
    /// The office with `office_id`.
    #[must_use]
    pub fn office(&self, office_id: &OfficeId) -> Option<&Office> {
        self.offices.get(office_id)
    }
}

/// Checks what parsing cannot: every violation of `settings`, with field paths under `prefix` (e.g. `office.`).
#[must_use]
pub fn validate_settings(settings: &OfficeSettings, prefix: &str) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    let mut violate = |field: String, description: String| violations.push(FieldViolation::new(field, description));
    for (name, text, required) in [
        ("display_name", &settings.display_name, true),
        ("city", &settings.city, false),
        ("province", &settings.province, false),
    ] {
        let chars = text.chars().count();
        if chars > DISPLAY_TEXT_CHARS_MAX || (required && text.trim().is_empty()) || !is_plain_text(text) {
            violate(format!("{prefix}{name}"), format!("must be up to {DISPLAY_TEXT_CHARS_MAX} printable characters"));
        }
    }
    if Zone::resolve(&settings.time_zone).is_none() {
        violate(format!("{prefix}time_zone"), "unknown IANA time zone (e.g. Asia/Jakarta)".into());
    }
    let mut services = settings.services.clone();
    services.dedup();
    if settings.services.is_empty() || services.len() != settings.services.len() {
        violate(format!("{prefix}services"), "must list each offered service once, at least one".into());
    }
    if settings.working_weekdays.iter().any(|day| !(1..=7).contains(day)) {
        violate(format!("{prefix}working_weekdays"), "ISO weekdays are 1 (Monday) to 7 (Sunday)".into());
    }
    if !(1_000..=7 * 86_400_000).contains(&settings.payment_window_ms) {
        violate(format!("{prefix}payment_window_seconds"), "must be between 1 and 604800".into());
    }
    if !(0..=366).contains(&settings.booking_horizon_days) {
        violate(format!("{prefix}booking_horizon_days"), "must be between 0 and 366".into());
    }
    if !(0..=366).contains(&settings.release_days_before) {
        violate(format!("{prefix}release_days_before"), "must be between 0 and 366".into());
    }
    violations.extend(validate_sessions(&settings.sessions, &format!("{prefix}sessions")));
    violations
}

/// Checks a list of sessions: 1 to the most per day, unique ids, each ending after it starts, bounded capacities.
#[must_use]
pub fn validate_sessions(sessions: &[SessionTemplate], field: &str) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    if sessions.is_empty() || sessions.len() > SESSIONS_PER_DAY_MAX {
        violations.push(FieldViolation::new(field, format!("must have 1 to {SESSIONS_PER_DAY_MAX} sessions")));
    }
    for (index, session) in sessions.iter().enumerate() {
        if sessions[..index].iter().any(|earlier| earlier.session_id == session.session_id) {
            violations.push(FieldViolation::new(format!("{field}[{index}].session_id"), "duplicate session id"));
        }
        if session.ends_at <= session.starts_at {
            violations.push(FieldViolation::new(format!("{field}[{index}].ends_at"), "must be after starts_at"));
        }
        if session.capacities.iter().any(|(_, capacity)| *capacity > POOL_CAPACITY_MAX) {
            let description = format!("pool capacities are at most {POOL_CAPACITY_MAX}");
            violations.push(FieldViolation::new(format!("{field}[{index}].capacities"), description));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office() -> Office {
        let session = SessionTemplate {
            session_id: SessionId::parse("0800-1000").expect("id"),
            starts_at: TimeOfDay::new(8, 0).expect("time"),
            ends_at: TimeOfDay::new(10, 0).expect("time"),
            capacities: vec![(Pool::Regular, 10)],
        };
        Office::new(OfficeSettings {
            office_id: OfficeId::parse("kanim-batam").expect("id"),
            display_name: "Batam".into(),
            time_zone: "Asia/Jakarta".into(),
            city: String::new(),
            province: String::new(),
            services: vec![ServiceType::NewPassport],
            sessions: vec![session],
            working_weekdays: vec![1, 2, 3, 4, 5],
            payment_window_ms: 7_200_000,
            booking_horizon_days: 30,
            release_days_before: 7,
            release_time: TimeOfDay::new(9, 0).expect("time"),
        })
        .expect("known zone")
    }

    #[test]
    fn weekends_have_no_plan_and_weekdays_release_days_before() {
        let office = office();
        let saturday = Date::new(2026, 12, 5).expect("date");
        assert!(office.plan(saturday).is_none());
        let monday = Date::new(2026, 12, 7).expect("date");
        let plan = office.plan(monday).expect("monday plan");
        let release_day = Date::new(2026, 11, 30).expect("date");
        assert_eq!(plan.release_at, office.zone.instant_of(release_day, TimeOfDay::new(9, 0).expect("time")));
    }

    #[test]
    fn a_schedule_covers_working_days_only() {
        let mut office = office();
        let saturday = Date::new(2026, 12, 5).expect("date");
        office.rules.push(ScheduleRule {
            first_date: saturday,
            last_date: saturday.plus_days(2),
            release_at: Timestamp(1),
            sessions: None,
            waiting_room: false,
        });
        assert!(office.plan(saturday).is_none());
        assert!(office.plan(saturday.plus_days(1)).is_none());
        assert_eq!(office.plan(saturday.plus_days(2)).expect("monday").release_at, Timestamp(1));
    }

    #[test]
    fn later_rules_override_earlier_ones_and_closures_show() {
        let mut office = office();
        let monday = Date::new(2026, 12, 7).expect("date");
        for release in [Timestamp(1), Timestamp(2)] {
            office.rules.push(ScheduleRule {
                first_date: monday,
                last_date: monday,
                release_at: release,
                sessions: None,
                waiting_room: false,
            });
        }
        office.closed.insert(monday, "holiday".into());
        let plan = office.plan(monday).expect("plan");
        assert_eq!(plan.release_at, Timestamp(2));
        assert_eq!(plan.closed, Some("holiday"));
    }
}
