//! Instants, calendar dates and times of day, and the conversions between them in an office's time zone.
//!
//! The core never reads a clock: every instant arrives as an argument. Time zones come from the tz database bundled
//! into the binary, so the same log replays to the same state whatever the host's zoneinfo says.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An instant, in milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The instant `milliseconds` later (saturating).
    #[must_use]
    pub fn plus_ms(self, milliseconds: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(milliseconds))
    }

    /// Milliseconds from `earlier` to `self`, negative when `earlier` is later.
    #[must_use]
    pub fn ms_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(instant) => write!(formatter, "{instant}"),
            Err(_) => write!(formatter, "{}ms", self.0),
        }
    }
}

/// A calendar date (proleptic Gregorian), valid by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date {
    /// Year, 1 to 9999.
    pub year: i16,
    /// Month, 1 to 12.
    pub month: i8,
    /// Day of the month, 1 to 31.
    pub day: i8,
}

impl Date {
    /// The date, or `None` when it does not exist (30 February, month 13, year 0).
    #[must_use]
    pub fn new(year: i32, month: i32, day: i32) -> Option<Date> {
        let year = i16::try_from(year).ok()?;
        let month = i8::try_from(month).ok()?;
        let day = i8::try_from(day).ok()?;
        if !(1..=9999).contains(&year) {
            return None;
        }
        jiff::civil::Date::new(year, month, day).ok()?;
        Some(Date { year, month, day })
    }

    fn civil(self) -> jiff::civil::Date {
        jiff::civil::date(self.year, self.month, self.day)
    }

    fn from_civil(date: jiff::civil::Date) -> Date {
        Date { year: date.year(), month: date.month(), day: date.day() }
    }

    /// The date `days` later (or earlier when negative), clamped to the supported range.
    #[must_use]
    pub fn plus_days(self, days: i32) -> Date {
        let span = jiff::Span::new().days(days.clamp(-3_000_000, 3_000_000));
        match self.civil().checked_add(span) {
            Ok(date) => Date::from_civil(date),
            Err(_) if days < 0 => Date { year: 1, month: 1, day: 1 },
            Err(_) => Date { year: 9999, month: 12, day: 31 },
        }
    }

    /// Days from `earlier` to `self`.
    #[must_use]
    pub fn days_since(self, earlier: Date) -> i32 {
        earlier.civil().until((jiff::Unit::Day, self.civil())).map(|span| span.get_days()).unwrap_or(i32::MAX)
    }

    /// ISO weekday: 1 = Monday .. 7 = Sunday.
    #[must_use]
    pub fn iso_weekday(self) -> i8 {
        self.civil().weekday().to_monday_one_offset()
    }
}

impl fmt::Display for Date {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A local time of day, minute precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimeOfDay {
    /// Hours, 0 to 23.
    pub hours: i8,
    /// Minutes, 0 to 59.
    pub minutes: i8,
}

impl TimeOfDay {
    /// The time, or `None` when out of range.
    #[must_use]
    pub fn new(hours: i32, minutes: i32) -> Option<TimeOfDay> {
        let valid = (0..24).contains(&hours) && (0..60).contains(&minutes);
        valid.then_some(TimeOfDay { hours: hours as i8, minutes: minutes as i8 })
    }

    /// Minutes since midnight.
    #[must_use]
    pub fn minutes_of_day(self) -> i32 {
        i32::from(self.hours) * 60 + i32::from(self.minutes)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:02}:{:02}", self.hours, self.minutes)
    }
}

/// An IANA time zone resolved from the bundled tz database.
#[derive(Clone, Debug)]
pub struct Zone {
    name: String,
    zone: jiff::tz::TimeZone,
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone {}

impl Zone {
    /// Resolves `name` (e.g. `Asia/Jakarta`), or `None` when the bundled database does not know it.
    #[must_use]
    pub fn resolve(name: &str) -> Option<Zone> {
        let zone = jiff::tz::TimeZoneDatabase::bundled().get(name).ok()?;
        Some(Zone { name: name.to_owned(), zone })
    }

    /// The IANA name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local date at `instant`.
    #[must_use]
    pub fn date_at(&self, instant: Timestamp) -> Date {
        match jiff::Timestamp::from_millisecond(instant.0) {
            Ok(instant) => Date::from_civil(instant.to_zoned(self.zone.clone()).date()),
            Err(_) => Date { year: 1970, month: 1, day: 1 },
        }
    }

    /// The instant of local `time` on `date` (the earlier one when a transition makes it ambiguous).
    #[must_use]
    pub fn instant_of(&self, date: Date, time: TimeOfDay) -> Timestamp {
        let local = date.civil().at(time.hours, time.minutes, 0, 0);
        match self.zone.to_ambiguous_zoned(local).compatible() {
            Ok(zoned) => Timestamp(zoned.timestamp().as_millisecond()),
            Err(_) => Timestamp(i64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_that_do_not_exist_are_refused() {
        assert!(Date::new(2026, 2, 29).is_none());
        assert!(Date::new(2028, 2, 29).is_some());
        assert!(Date::new(2026, 13, 1).is_none());
        assert!(Date::new(0, 1, 1).is_none());
    }

    #[test]
    fn jakarta_is_seven_hours_ahead_of_utc() {
        let jakarta = Zone::resolve("Asia/Jakarta").expect("bundled zone");
        let date = Date::new(2026, 12, 1).expect("date");
        let eight = TimeOfDay::new(8, 0).expect("time");
        let instant = jakarta.instant_of(date, eight);
        assert_eq!(instant, Timestamp(1_796_086_800_000));
        assert_eq!(jakarta.date_at(instant), date);
        assert_eq!(jakarta.date_at(instant.plus_ms(-8 * 3_600_000 - 1)), date.plus_days(-1));
    }

    #[test]
    fn day_arithmetic_round_trips() {
        let date = Date::new(2026, 12, 30).expect("date");
        assert_eq!(date.plus_days(3), Date::new(2027, 1, 2).expect("date"));
        assert_eq!(date.plus_days(3).days_since(date), 3);
        assert_eq!(date.iso_weekday(), 3);
        assert!(Zone::resolve("Mars/Olympus").is_none());
    }
}
