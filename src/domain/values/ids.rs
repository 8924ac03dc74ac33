//! Identifiers: what each one is, how it is spelled, and its bounds.
//!
//! Every string identifier is validated once, at the edge, by its `parse` function; inside the core an `OfficeId` is
//! always well-formed.

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
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// What a well-formed value looks like, for error messages.
            pub const RULE: &'static str = $rule;

            /// The id, or `None` when `text` is not well-formed.
            #[must_use]
            pub fn parse(text: &str) -> Option<$name> {
                let valid: fn(&str) -> bool = $valid;
                valid(text).then(|| $name(text.to_owned()))
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

/// A booking, numbered by the server from 1 in the order bookings were made. Spelled `BK` and ten digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BookingId(pub u64);

impl BookingId {
    /// What a well-formed value looks like, for error messages.
    pub const RULE: &'static str = "'BK' followed by 10 digits";

    /// The id, or `None` when `text` is not `BK` and ten digits.
    #[must_use]
    pub fn parse(text: &str) -> Option<BookingId> {
        let digits = text.strip_prefix("BK")?;
        if digits.len() != 10 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(BookingId)
    }
}

impl fmt::Display for BookingId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "BK{:010}", self.0)
    }
}

/// Bookings made together by one group hold, numbered like bookings. Spelled `GR` and ten digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId(pub u64);

impl fmt::Display for GroupId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "GR{:010}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booking_ids_round_trip_and_reject_other_spellings() {
        let id = BookingId(42);
        assert_eq!(id.to_string(), "BK0000000042");
        assert_eq!(BookingId::parse("BK0000000042"), Some(id));
        for bad in ["", "BK42", "bk0000000042", "BK00000000420", "BK00000000-1", "XX0000000042"] {
            assert_eq!(BookingId::parse(bad), None, "{bad:?}");
        }
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
