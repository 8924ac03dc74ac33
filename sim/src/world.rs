//! The simulated world every history starts from: two offices in Jakarta, a waiting room in front of a release two
//! hours after the start, forty applicants (adults, elders, toddlers, people with a disability), eight accounts, and a
//! clock the simulator moves by hand.

use antrean::domain::{
    AccountId, Applicant, BookRules, Date, Nik, OfficeId, OfficeSettings, Pool, ScheduleRule, ServiceType, SessionId,
    SessionTemplate, TimeOfDay, Timestamp, Zone,
};
use antrean::engine::Clock;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds in a minute.
pub const MINUTE_MS: i64 = 60_000;
/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// Applicants in the world.
pub const APPLICANTS: u8 = 40;
/// Accounts (the app users who book for applicants).
pub const ACCOUNTS: u8 = 8;
/// How long request ids are remembered: short, so histories see ids forgotten.
pub const RETENTION_MS: i64 = 6 * HOUR_MS;

/// A clock that stands still until the simulator moves it: every read between two moves gives the same instant.
#[derive(Debug)]
pub struct SimClock {
    now_ms: AtomicI64,
}

impl SimClock {
    /// A clock at `start`.
    #[must_use]
    pub fn new(start: Timestamp) -> SimClock {
        SimClock { now_ms: AtomicI64::new(start.0) }
    }

    /// Moves the clock forward by `milliseconds`.
    pub fn advance(&self, milliseconds: i64) {
        self.now_ms.fetch_add(milliseconds, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now_ms.load(Ordering::SeqCst))
    }
}

fn date(year: i32, month: i32, day: i32) -> Date {
    Date::new(year, month, day).expect("a real date")
}

fn time(hours: i32, minutes: i32) -> TimeOfDay {
    TimeOfDay::new(hours, minutes).expect("a real time of day")
}

fn jakarta() -> Zone {
    Zone::resolve("Asia/Jakarta").expect("bundled zone")
}

/// Tuesday 1 December 2026, 10:30 WIB: Monday the 7th and Tuesday the 8th are open, Wednesday the 9th opens tomorrow.
#[must_use]
pub fn start() -> Timestamp {
    jakarta().instant_of(date(2026, 12, 1), time(10, 30))
}

/// The waiting room's release instant: 12:00 WIB the same day (its line opens an hour before).
#[must_use]
pub fn release() -> Timestamp {
    start().plus_ms(90 * MINUTE_MS)
}

/// The rules of the simulated service.
#[must_use]
pub fn rules() -> BookRules {
    BookRules {
        request_retention_ms: RETENTION_MS,
        waiting_room_pre_open_ms: HOUR_MS,
        admission_ttl_ms: 2 * MINUTE_MS,
        ticket_idle_ttl_ms: 20 * MINUTE_MS,
        ..BookRules::default()
    }
}

/// The offices' ids.
#[must_use]
pub fn office(index: u8) -> OfficeId {
    OfficeId::parse(["kanim-a", "kanim-b"][usize::from(index % 2)]).expect("id")
}

/// Sessions of both offices: 08:00-10:00 and 10:00-12:00.
#[must_use]
pub fn session(index: u8) -> SessionId {
    SessionId::parse(["0800-1000", "1000-1200", "1300-1500"][usize::from(index % 3)]).expect("id")
}

/// Dates a request may name: open ones, one that opens tomorrow, the two behind the waiting room, a Saturday, one
/// beyond the booking horizon.
#[must_use]
pub fn day(index: u8) -> Date {
    let days = [(12, 7), (12, 8), (12, 9), (12, 10), (12, 11), (12, 5), (12, 14)];
    let (month, day_of_month) = days[usize::from(index) % days.len()];
    if index as usize % days.len() == 6 { date(2027, 2, 1) } else { date(2026, month, day_of_month) }
}

/// Dates a request may name.
pub const DAYS: u8 = 7;

/// The pools a hold may name (express is not offered: a refusal).
#[must_use]
pub fn pool(index: u8) -> Pool {
    [Pool::Regular, Pool::Priority, Pool::Express][usize::from(index % 3)]
}

/// An account.
#[must_use]
pub fn account(index: u8) -> AccountId {
    AccountId::parse(&format!("account-{}", index % ACCOUNTS)).expect("id")
}

/// Applicant `index`: every fourth is an elder, toddler or has a disability (priority pool), the rest adults.
#[must_use]
pub fn applicant(index: u8) -> Applicant {
    let serial = u16::from(index % APPLICANTS) + 1;
    let (birth, disability) = match serial % 8 {
        1 => (date(1950, 3, 2), false),
        3 => (date(2024, 3, 10), false),
        5 => (date(1985, 1, 20), true),
        _ => (date(1990, 8, 17), false),
    };
    let woman = serial % 2 == 0;
    let day_field = i32::from(birth.day) + if woman { 40 } else { 0 };
    let text = format!("317101{day_field:02}{:02}{:02}{serial:04}", birth.month, i32::from(birth.year) % 100);
    let nik = Nik::parse_matching(&text, birth).expect("a valid NIK");
    Applicant { nik, full_name: format!("Pemohon {serial}").into(), birth_date: birth, has_disability: disability }
}

/// Settings of office `index`: Jakarta, two sessions with tiny capacities, Monday to Friday, dates released seven days
/// before at 09:00, a two-hour payment window, a 30-day horizon.
#[must_use]
pub fn office_settings(index: u8) -> OfficeSettings {
    let (regular, priority) = if index == 0 { (3, 2) } else { (2, 1) };
    let template = |session_index: u8, start: i32| SessionTemplate {
        session_id: session(session_index),
        starts_at: time(start, 0),
        ends_at: time(start + 2, 0),
        capacities: vec![(Pool::Regular, regular), (Pool::Priority, priority)],
    };
    OfficeSettings {
        office_id: office(index),
        display_name: format!("Kanim {index}"),
        time_zone: "Asia/Jakarta".into(),
        city: "Jakarta Pusat".into(),
        province: "DKI Jakarta".into(),
        services: vec![ServiceType::NewPassport, ServiceType::Replacement],
        sessions: vec![template(0, 8), template(1, 10)],
        working_weekdays: vec![1, 2, 3, 4, 5],
        payment_window_ms: 2 * HOUR_MS,
        booking_horizon_days: 30,
        release_days_before: 7,
        release_time: time(9, 0),
    }
}

/// The schedule that puts Thursday 10 and Friday 11 December of office 0 behind a waiting room released at
/// [`release`].
#[must_use]
pub fn waiting_room_schedule() -> ScheduleRule {
    ScheduleRule {
        first_date: date(2026, 12, 10),
        last_date: date(2026, 12, 11),
        release_at: release(),
        sessions: None,
        waiting_room: true,
    }
}
