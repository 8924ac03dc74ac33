//! Generates valid, distinct applicants: a NIK (16 digits: 6-digit region code, birth date as DDMMYY with 40 added
//! to the day for women, 4-digit serial), a matching birth date and a plausible full name.
//!
//! Applicant `index` of a generator is a bijection of `index` onto the space of (birth date, sex, serial), shifted
//! by an offset drawn from the seed, so indexes below [`ApplicantGenerator::capacity`] never collide and two runs with
//! different seeds rarely share applicants.

use crate::calendar::CivilDate;
use crate::random;

/// First birth date generated (adults well under 60, so they belong in the regular pool).
const BIRTH_FIRST: CivilDate = CivilDate { year: 1966, month: 1, day: 1 };
/// Last birth date generated: every generated applicant is an adult.
const BIRTH_LAST: CivilDate = CivilDate { year: 1999, month: 12, day: 31 };
/// Serials run from 0001 to 9999.
const SERIALS: u64 = 9_999;

/// Region codes (province, regency, district) of places with immigration offices.
const REGIONS: [&str; 8] = ["317101", "317201", "327301", "357801", "217101", "617101", "517101", "737101"];
const GIVEN_NAMES: [&str; 16] = [
    "Budi", "Siti", "Agus", "Dewi", "Rudi", "Sri", "Andi", "Rina", "Joko", "Putri", "Hendra", "Wati", "Eko", "Lestari",
    "Bayu", "Intan",
];
const FAMILY_NAMES: [&str; 12] = [
    "Santoso",
    "Wijaya",
    "Saputra",
    "Lestari",
    "Hidayat",
    "Kurniawan",
    "Pratama",
    "Siregar",
    "Nasution",
    "Simanjuntak",
    "Wibowo",
    "Halim",
];

/// One generated applicant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedApplicant {
    /// The 16-digit NIK.
    pub nik: String,
    /// Full name, letters and spaces only.
    pub full_name: String,
    /// The birth date encoded in the NIK.
    pub birth_date: CivilDate,
    /// Whether the NIK marks a woman (day + 40).
    pub is_woman: bool,
}

/// Produces applicant number `index` of a run.
#[derive(Clone, Debug)]
pub struct ApplicantGenerator {
    seed: u64,
    region: &'static str,
    offset: u64,
}

impl ApplicantGenerator {
    /// A generator whose region and offset come from `seed`.
    pub fn new(seed: u64) -> ApplicantGenerator {
        let region = REGIONS[random::below(seed, 0x4e1, 0, REGIONS.len() as u64) as usize];
        let offset = random::below(seed, 0x4e1, 1, Self::capacity());
        ApplicantGenerator { seed, region, offset }
    }

    /// How many distinct applicants one generator can produce.
    pub fn capacity() -> u64 {
        let dates = (BIRTH_LAST.to_days() - BIRTH_FIRST.to_days() + 1) as u64;
        dates * 2 * SERIALS
    }

    /// Applicant number `index`; distinct for distinct `index` below [`Self::capacity`].
    pub fn applicant(&self, index: u64) -> GeneratedApplicant {
        assert!(index < Self::capacity(), "applicant index {index} beyond the generator's capacity");
        let position = (self.offset + index) % Self::capacity();
        let serial = position % SERIALS + 1;
        let rest = position / SERIALS;
        let is_woman = rest % 2 == 1;
        let birth_date = BIRTH_FIRST.plus_days((rest / 2) as i64);
        let encoded_day = birth_date.day + if is_woman { 40 } else { 0 };
        let nik = format!(
            "{}{:02}{:02}{:02}{:04}",
            self.region,
            encoded_day,
            birth_date.month,
            birth_date.year % 100,
            serial
        );
        let given = GIVEN_NAMES[random::below(self.seed, 0x4e2, index, GIVEN_NAMES.len() as u64) as usize];
        let family = FAMILY_NAMES[random::below(self.seed, 0x4e3, index, FAMILY_NAMES.len() as u64) as usize];
        GeneratedApplicant { nik, full_name: format!("{given} {family}"), birth_date, is_woman }
    }
}

/// Reads the birth date (day, month, two-digit year) and sex encoded in a NIK; `None` when malformed.
#[cfg_attr(not(test), allow(dead_code))]
pub fn decode_nik(nik: &str) -> Option<(u32, u32, u32, bool)> {
    if nik.len() != 16 || !nik.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let encoded_day: u32 = nik[6..8].parse().ok()?;
    let month: u32 = nik[8..10].parse().ok()?;
    let year: u32 = nik[10..12].parse().ok()?;
    let serial: u32 = nik[12..16].parse().ok()?;
    let (day, is_woman) = if encoded_day > 40 { (encoded_day - 40, true) } else { (encoded_day, false) };
    let valid = (1..=31).contains(&day) && (1..=12).contains(&month) && serial > 0;
    valid.then_some((day, month, year, is_woman))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn days_in_month(year: i32, month: u32) -> u32 {
        let next = if month == 12 {
            CivilDate { year: year + 1, month: 1, day: 1 }
        } else {
            CivilDate { year, month: month + 1, day: 1 }
        };
        (next.to_days() - CivilDate { year, month, day: 1 }.to_days()) as u32
    }

    #[test]
    fn niks_are_valid_and_match_the_birth_date() {
        let generator = ApplicantGenerator::new(42);
        for index in (0..200_000).chain([ApplicantGenerator::capacity() - 1]) {
            let applicant = generator.applicant(index);
            let (day, month, year, is_woman) = decode_nik(&applicant.nik).expect("valid nik");
            let birth = applicant.birth_date;
            assert_eq!(
                (day, month, year, is_woman),
                (birth.day, birth.month, (birth.year % 100) as u32, applicant.is_woman)
            );
            assert!(day <= days_in_month(birth.year, birth.month));
            assert!((BIRTH_FIRST..=BIRTH_LAST).contains(&birth));
            assert!(REGIONS.contains(&&applicant.nik[..6]));
            assert!(
                !applicant.full_name.is_empty() && applicant.full_name.chars().all(|c| c.is_alphabetic() || c == ' ')
            );
        }
    }

    #[test]
    fn niks_are_unique_within_a_run() {
        let generator = ApplicantGenerator::new(7);
        let mut seen = HashSet::new();
        for index in 0..300_000 {
            assert!(seen.insert(generator.applicant(index).nik), "duplicate nik at {index}");
        }
    }

    #[test]
    fn both_sexes_appear_and_generation_is_deterministic() {
        let first = ApplicantGenerator::new(9);
        let second = ApplicantGenerator::new(9);
        let women = (0..40_000).filter(|&index| first.applicant(index).is_woman).count();
        assert!(women > 0 && women < 40_000);
        assert_eq!(first.applicant(123), second.applicant(123));
    }

    #[test]
    fn malformed_niks_are_rejected() {
        assert!(decode_nik("31710101019").is_none());
        assert!(decode_nik("317101320190001X").is_none());
        assert!(decode_nik("3171013201900001").is_none()); // day 32
        assert!(decode_nik("3171010113900001").is_none()); // month 13
        assert_eq!(decode_nik("3171015101900001"), Some((11, 1, 90, true)));
    }
}
