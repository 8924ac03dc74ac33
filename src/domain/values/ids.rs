//! Identifiers: what each one is, how it is spelled, and its bounds.
//!
//! Every string identifier is validated once, at the edge, by its `parse` function; inside the core an `OfficeId` is
//! always well-formed.

use arcstr::ArcStr;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest client-chosen token (request id, account id, payment reference).
pub const CLIENT_TOKEN_CHARS_MAX: usize = 64;
/// Longest office id.
pub const OFFICE_ID_CHARS_MAX: usize = 48;
/// Longest session id.
pub const SESSION_ID_CHARS_MAX: usize = 32;

fn is_slug(text: &str, chars_max: usize) -> bool {
    !text.is_empty()
        && text.len() <= chars_max
        && text.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !text.starts_with('-')
}

fn is_client_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= CLIENT_TOKEN_CHARS_MAX
        && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._:-".contains(&byte))
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $valid:expr, $rule:literal) => {
        $(#[$doc])*
        ///
        /// Shared text: a copy is a reference count, so the bookings of a hold, its event and the indexes that name
        /// the id hold one string between them. One pointer wide (the length is stored with the text, not beside
        /// every copy, as `Arc<str>` would): a booking names four ids and the request indexes one each, so this
        /// saves about 70 bytes a booking. Encoded as the text itself.
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(ArcStr);

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                String::deserialize(deserializer).map(|text| $name(ArcStr::from(text)))
            }
        }

        impl $name {
            /// What a well-formed value looks like, for error messages.
            pub const RULE: &'static str = $rule;

            /// The id, or `None` when `text` is not well-formed.
            #[must_use]
            pub fn parse(text: &str) -> Option<$name> {
                let valid: fn(&str) -> bool = $valid;
                valid(text).then(|| $name(ArcStr::from(text)))
            }

            /// The id as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// An immigration office, e.g. `kanim-batam`.
    OfficeId,
    |text| is_slug(text, OFFICE_ID_CHARS_MAX),
    "1 to 48 characters of a-z, 0-9 and '-', not starting with '-'"
);
string_id!(
    /// A session within an office's day, e.g. `0800-1000`.
    SessionId,
    |text| is_slug(text, SESSION_ID_CHARS_MAX),
    "1 to 32 characters of a-z, 0-9 and '-', not starting with '-'"
);
string_id!(
    /// A client-chosen id of one mutating call, reused by the client when it retries.
    RequestId,
    is_client_token,
    "1 to 64 characters of A-Z, a-z, 0-9 and '._:-'"
);
string_id!(
    /// The app account that books for one or more applicants.
    AccountId,
    is_client_token,
    "1 to 64 characters of A-Z, a-z, 0-9 and '._:-'"
);
string_id!(
    /// The payment system's reference of one payment.
    PaymentReference,
    is_client_token,
    "1 to 64 characters of A-Z, a-z, 0-9 and '._:-'"
);

impl RequestId {
    /// The id `id` of a call by `caller`: `caller/id`. Request ids are per caller, so one caller's id never finds
    /// another caller's remembered answer, and a hold's bookings belong to the caller its request id names. Client ids
    /// cannot contain `/`, so the caller is everything before the last one. Made at the edge, never parsed from a
    /// client: it may be longer than [`CLIENT_TOKEN_CHARS_MAX`].
    #[must_use]
    pub fn of_caller(caller: &str, id: &RequestId) -> RequestId {
        RequestId(ArcStr::from(format!("{caller}/{id}")))
    }

    /// The caller this id names, if it was made by [`RequestId::of_caller`] (ids logged before request ids were per
    /// caller, and ids of domain tests, name none).
    #[must_use]
    pub fn caller(&self) -> Option<&str> {
        self.0.rsplit_once('/').map(|(caller, _)| caller)
    }
}

/// A booking. Its number is drawn at random by the quota book (from a keyed stream; the log records it, so replay
/// needs no randomness) below [`BookingId::NUMBER_END`], so ids cannot be guessed from one another: with 20 million
/// bookings, a guessed id exists with a chance of about one in 1.7 million, and it belongs to another caller anyway.
///
/// Spelled `BK`, nine characters of Crockford's base 32 (`0-9` and `A-Z` without `I`, `L`, `O`, `U`, so it reads
/// well over a phone), then a check character (Luhn mod 32) that catches every single mistyped character and most
/// swapped neighbours: `BK` and 10 characters, e.g. `BK3MX0K7QZ4E`. Parsing ignores case and takes `O` for `0` and
/// `I`, `L` for `1`, as Crockford's alphabet does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BookingId(pub u64);

impl BookingId {
    /// What a well-formed value looks like, for error messages.
    pub const RULE: &'static str =
        "'BK' followed by 10 characters of 0-9 and A-Z except I, L, O and U, the last a check character";

    /// Booking numbers are below this: 45 bits, nine base-32 characters. Below 10^14 too, so the payment code
    /// derived from a number stays unique (`bookings::booking::payment_code_for`).
    pub const NUMBER_END: u64 = 1 << 45;

    /// Where a number's prefix starts: a book whose numbers are prefixed (a cluster partition's, see
    /// `state/numbers.rs`) draws only the 37 bits below it, and the 8 bits from here up are its prefix.
    pub const PREFIX_SHIFT: u32 = 37;

    /// The top 8 bits of the number: the prefix of the book that drew it, if that book prefixed its numbers. A hint
    /// only: an unprefixed book's numbers are random there too.
    #[must_use]
    pub fn prefix(self) -> u8 {
        (self.0 >> BookingId::PREFIX_SHIFT) as u8
    }

    /// The id, or `None` when `text` is not `BK` and ten characters whose last checks the others.
    #[must_use]
    pub fn parse(text: &str) -> Option<BookingId> {
        parse_checked(text, "BK").map(BookingId)
    }
}

impl fmt::Display for BookingId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_checked(formatter, "BK", self.0)
    }
}

/// Bookings made together by one group hold, numbered like their first booking. Spelled like a booking id with `GR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId(pub u64);

impl fmt::Display for GroupId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_checked(formatter, "GR", self.0)
    }
}

/// Crockford's base-32 alphabet.
const BASE32: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters of a number, before its check character.
const NUMBER_CHARS: usize = 9;

/// The value of one base-32 character, ignoring case, with Crockford's aliases (`O` is `0`; `I` and `L` are `1`).
fn base32_value(character: u8) -> Option<u32> {
    let character = match character.to_ascii_uppercase() {
        b'O' => b'0',
        b'I' | b'L' => b'1',
        other => other,
    };
    BASE32.iter().position(|each| *each == character).map(|position| position as u32)
}

/// The Luhn mod 32 check value of `digits` (base-32 values, most significant first).
fn luhn32(digits: &[u32]) -> u32 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, digit)| {
            let addend = if position % 2 == 0 { digit * 2 } else { *digit };
            addend / 32 + addend % 32
        })
        .sum();
    (32 - sum % 32) % 32
}

/// The base-32 digits of a number below [`BookingId::NUMBER_END`], most significant first.
fn digits_of(number: u64) -> [u32; NUMBER_CHARS] {
    let mut digits = [0u32; NUMBER_CHARS];
    for (index, digit) in digits.iter_mut().enumerate() {
        *digit = ((number >> (5 * (NUMBER_CHARS - 1 - index))) & 31) as u32;
    }
    digits
}

fn write_checked(formatter: &mut fmt::Formatter<'_>, prefix: &str, number: u64) -> fmt::Result {
    assert!(number < BookingId::NUMBER_END, "booking numbers are below 2^45, not {number}");
    let digits = digits_of(number);
    formatter.write_str(prefix)?;
    for digit in digits.iter().chain(std::iter::once(&luhn32(&digits))) {
        fmt::Write::write_char(formatter, char::from(BASE32[*digit as usize]))?;
    }
    Ok(())
}

fn parse_checked(text: &str, prefix: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != prefix.len() + NUMBER_CHARS + 1 || !bytes[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    {
        return None;
    }
    let values: Vec<u32> = bytes[prefix.len()..].iter().map(|byte| base32_value(*byte)).collect::<Option<_>>()?;
    let (digits, check) = values.split_at(NUMBER_CHARS);
    if luhn32(digits) != check[0] {
        return None;
    }
    Some(digits.iter().fold(0u64, |number, digit| number << 5 | u64::from(*digit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booking_ids_round_trip_and_reject_other_spellings() {
        for number in [0, 1, 42, 31, 32, 1_000_003, BookingId::NUMBER_END - 1] {
            let id = BookingId(number);
            let text = id.to_string();
            assert!(text.starts_with("BK") && text.len() == 12, "{text}");
            assert_eq!(BookingId::parse(&text), Some(id), "{text}");
            assert_eq!(BookingId::parse(&text.to_lowercase()), Some(id), "case is ignored");
        }
        assert_eq!(BookingId::parse("BK7MFRSRBJBZ"), Some(BookingId(0x07A3_F19C_2E4B)), "README's example");
        let text = BookingId(0x0123_4567_89ab).to_string();
        assert_eq!(GroupId(0x0123_4567_89ab).to_string(), text.replacen("BK", "GR", 1));
        let crockford = text.replace('0', "o").replace('1', "L");
        assert_eq!(BookingId::parse(&crockford), BookingId::parse(&text), "Crockford's aliases");
        for bad in ["", "BK42", "BK0000000042", "XX00000000000", "BK00000000-0", "BKU000000000", &format!("{text}0")] {
            assert_eq!(BookingId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_check_character_catches_every_single_mistyped_character() {
        for number in [1, 987_654_321, BookingId::NUMBER_END / 3] {
            let text = BookingId(number).to_string().into_bytes();
            for position in 2..text.len() {
                for replacement in BASE32 {
                    if *replacement == text[position] {
                        continue;
                    }
                    let mut typo = text.clone();
                    typo[position] = *replacement;
                    let typo = String::from_utf8(typo).expect("ascii");
                    assert_eq!(BookingId::parse(&typo), None, "{typo} passed for {}", BookingId(number));
                }
            }
            let mut swapped = text.clone();
            swapped.swap(4, 5);
            if swapped != text {
                assert_eq!(BookingId::parse(&String::from_utf8(swapped).expect("ascii")), None, "a swap");
            }
        }
    }

    #[test]
    fn request_ids_are_per_caller() {
        let id = RequestId::parse("hold-1").expect("id");
        assert_eq!(id.caller(), None);
        let app = RequestId::of_caller("app/backend", &id);
        assert_eq!(app.caller(), Some("app/backend"));
        assert_ne!(app, RequestId::of_caller("bank", &id));
        assert!(RequestId::parse(app.as_str()).is_none(), "no client can send a per-caller id itself");
    }

    #[test]
    fn slugs_and_tokens_are_bounded() {
        assert!(OfficeId::parse("kanim-batam").is_some());
        assert!(OfficeId::parse("Kanim").is_none());
        assert!(OfficeId::parse("-x").is_none());
        assert!(OfficeId::parse(&"a".repeat(49)).is_none());
        assert!(RequestId::parse("req:01.A_b-c").is_some());
        assert!(RequestId::parse("has space").is_none());
        assert!(RequestId::parse(&"r".repeat(65)).is_none());
        assert!(SessionId::parse("0800-1000").is_some());
    }
}
