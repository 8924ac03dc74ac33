//! The applicant's national identity number (NIK) and the birth date it encodes.
//!
//! A NIK is 16 digits: 6 of region (province, regency, district), 6 of birth date as DDMMYY with 40 added to the day
//! for women, and 4 of serial. The service refuses a NIK whose embedded date is not a real date or does not match the
//! birth date the applicant gave: mistyped personal data is the most common and most costly error in the field.

use super::time::Date;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A national identity number, stored as its 16-digit value.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Nik(u64);

/// Why a NIK was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NikProblem {
    /// Not exactly 16 ASCII digits.
    NotSixteenDigits,
    /// The province code (first two digits) is below 11, which no province uses.
    UnknownProvince,
    /// Digits 7-12 are not a real DDMMYY date (after removing 40 from a woman's day).
    NoBirthDate,
    /// The embedded date differs from the given birth date.
    BirthDateMismatch,
}

impl NikProblem {
    /// A sentence for the caller.
    #[must_use]
    pub fn description(self) -> &'static str {
        match self {
            NikProblem::NotSixteenDigits => "must be exactly 16 digits",
            NikProblem::UnknownProvince => "first two digits must be a province code (11 or higher)",
            NikProblem::NoBirthDate => "digits 7-12 must be a birth date DDMMYY (day + 40 for women)",
            NikProblem::BirthDateMismatch => "birth date encoded in digits 7-12 does not match birth_date",
        }
    }
}

impl Nik {
    /// Parses the 16 digits, without checking the embedded date against anything.
    pub fn parse(text: &str) -> Result<Nik, NikProblem> {
        if text.len() != 16 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(NikProblem::NotSixteenDigits);
        }
        let value: u64 = text.parse().map_err(|_| NikProblem::NotSixteenDigits)?;
        let nik = Nik(value);
        if nik.digits(0, 2) < 11 {
            return Err(NikProblem::UnknownProvince);
        }
        Ok(nik)
    }

    /// Parses and checks that the embedded date matches `birth_date`.
    pub fn parse_matching(text: &str, birth_date: Date) -> Result<Nik, NikProblem> {
        let nik = Nik::parse(text)?;
        nik.check_birth_date(birth_date)?;
        Ok(nik)
    }

    /// The NIK from its numeric value, when it has at most 16 digits and a plausible province.
    #[must_use]
    pub fn from_value(value: u64) -> Option<Nik> {
        let nik = Nik(value);
        (value < 10_000_000_000_000_000 && nik.digits(0, 2) >= 11).then_some(nik)
    }

    /// The numeric value.
    #[must_use]
    pub fn value(self) -> u64 {
        self.0
    }

    /// Digits `[start, start + count)` counted from the left, as a number.
    fn digits(self, start: u32, count: u32) -> u64 {
        (self.0 / 10u64.pow(16 - start - count)) % 10u64.pow(count)
    }

    /// Checks the embedded DDMMYY against `birth_date` (the century is not encoded).
    pub fn check_birth_date(self, birth_date: Date) -> Result<(), NikProblem> {
        let encoded_day = self.digits(6, 2);
        let day = if encoded_day > 40 { encoded_day - 40 } else { encoded_day };
        let month = self.digits(8, 2);
        let year_of_century = self.digits(10, 2);
        let real = Date::new(2000 + year_of_century as i32, month as i32, day as i32).is_some()
            || Date::new(1900 + year_of_century as i32, month as i32, day as i32).is_some();
        if !real {
            return Err(NikProblem::NoBirthDate);
        }
        let matches = i64::from(birth_date.day) == day as i64
            && i64::from(birth_date.month) == month as i64
            && i64::from(birth_date.year).rem_euclid(100) == year_of_century as i64;
        if matches { Ok(()) } else { Err(NikProblem::BirthDateMismatch) }
    }

    /// The NIK with its birth date and serial hidden, for logs and for callers that need not see it.
    #[must_use]
    pub fn masked(self) -> String {
        format!("{:06}**********", self.digits(0, 6))
    }
}

impl fmt::Display for Nik {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:016}", self.0)
    }
}

/// Debug output is masked too, so a stray `{:?}` never leaks an identity number into a log.
impl fmt::Debug for Nik {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Nik({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i32, month: i32, day: i32) -> Date {
        Date::new(year, month, day).expect("valid date")
    }

    #[test]
    fn a_man_and_a_woman_born_the_same_day() {
        assert!(Nik::parse_matching("3171011708850001", date(1985, 8, 17)).is_ok());
        assert!(Nik::parse_matching("3171015708850002", date(1985, 8, 17)).is_ok());
    }

    #[test]
    fn malformed_niks_name_their_problem() {
        let birth = date(1985, 8, 17);
        assert_eq!(Nik::parse_matching("317101170885000", birth), Err(NikProblem::NotSixteenDigits));
        assert_eq!(Nik::parse_matching("31710117088500a1", birth), Err(NikProblem::NotSixteenDigits));
        assert_eq!(Nik::parse_matching("0171011708850001", birth), Err(NikProblem::UnknownProvince));
        assert_eq!(Nik::parse_matching("3171013202850001", birth), Err(NikProblem::NoBirthDate));
        assert_eq!(Nik::parse_matching("3171017102850001", birth), Err(NikProblem::NoBirthDate));
        assert_eq!(Nik::parse_matching("3171011808850001", birth), Err(NikProblem::BirthDateMismatch));
    }

    #[test]
    fn masking_hides_birth_date_and_serial() {
        let nik = Nik::parse("3171011708850001").expect("valid");
        assert_eq!(nik.masked(), "317101**********");
        assert_eq!(nik.to_string(), "3171011708850001");
        assert!(!format!("{nik:?}").contains("170885"));
    }
}
