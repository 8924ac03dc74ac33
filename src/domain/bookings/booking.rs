//! A booking: one applicant's slot through its life, and the applicant who comes.

use crate::domain::catalogue::office::{Pool, ServiceType};
use crate::domain::values::ids::{AccountId, BookingId, GroupId, OfficeId, PaymentReference, SessionId};
use crate::domain::values::nik::Nik;
use crate::domain::values::short_text::ShortText;
use crate::domain::values::time::{Date, Timestamp};
use serde::{Deserialize, Serialize};

/// Where a booking is in its life. Numbers mirror `antrean.v1.BookingState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BookingState {
    /// Holds a slot until the payment deadline.
    AwaitingPayment = 1,
    /// Paid; holds a slot.
    Confirmed = 2,
    /// Arrived on the day; holds a slot.
    CheckedIn = 3,
    /// Cancelled; no slot.
    Cancelled = 4,
    /// Deadline passed unpaid (and its settlement grace with it); no slot.
    Expired = 5,
    /// Confirmed but not checked in by the end of its session; no slot, and no longer counts against the applicant.
    NoShow = 6,
}

impl BookingState {
    /// Whether a booking in this state occupies a slot of its session.
    #[must_use]
    pub fn holds_slot(self) -> bool {
        matches!(self, BookingState::AwaitingPayment | BookingState::Confirmed | BookingState::CheckedIn)
    }

    /// Whether it counts against the applicant's limit of active bookings (an appointment still to come).
    #[must_use]
    pub fn is_active(self) -> bool {
        matches!(self, BookingState::AwaitingPayment | BookingState::Confirmed)
    }

    /// Uppercase name, as in the API.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            BookingState::AwaitingPayment => "AWAITING_PAYMENT",
            BookingState::Confirmed => "CONFIRMED",
            BookingState::CheckedIn => "CHECKED_IN",
            BookingState::Cancelled => "CANCELLED",
            BookingState::Expired => "EXPIRED",
            BookingState::NoShow => "NO_SHOW",
        }
    }
}

/// The person who comes to the office.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applicant {
    /// National identity number.
    pub nik: Nik,
    /// Full name as on the identity card: inline up to 22 bytes, as most names are, so a booking's name costs no
    /// allocation of its own.
    pub full_name: ShortText,
    /// Birth date, matching the NIK.
    pub birth_date: Date,
    /// Has a disability (eligible for the priority pool).
    pub has_disability: bool,
}

/// Where a booking's slot is: office, date, session and pool.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SlotRef {
    /// The office.
    pub office_id: OfficeId,
    /// The date.
    pub date: Date,
    /// The session.
    pub session_id: SessionId,
    /// The pool.
    pub pool: Pool,
}

/// One applicant's appointment. 200 bytes: its payment code is derived from its number, not kept (see
/// [`Booking::payment_code`]), and it is encoded in the layout bookings always had, the code included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booking {
    /// The booking.
    pub booking_id: BookingId,
    /// Where it is in its life.
    pub state: BookingState,
    /// Its slot (kept after cancellation or expiry, for the record and for revival).
    pub slot: SlotRef,
    /// What the applicant comes for.
    pub service: ServiceType,
    /// Who comes.
    pub applicant: Applicant,
    /// Who booked.
    pub account_id: AccountId,
    /// Pay before this instant.
    pub payment_deadline: Timestamp,
    /// The accepted payment, once confirmed.
    pub payment_reference: Option<PaymentReference>,
    /// When the hold was taken.
    pub created_at: Timestamp,
    /// When the state last changed.
    pub updated_at: Timestamp,
    /// Times rescheduled.
    pub reschedules_used: u32,
    /// Shared with the other bookings of a group hold.
    pub group_id: Option<GroupId>,
    /// When the session starts.
    pub session_starts_at: Timestamp,
    /// When the session ends: a confirmed booking not checked in by then is a no-show.
    pub session_ends_at: Timestamp,
    /// Set while a hold is past its payment deadline but within its settlement grace: its slot stays reserved, and a
    /// payment made before the deadline but notified late is still accepted, until this instant.
    pub settlement_deadline: Option<Timestamp>,
    /// Times the applicant's data or the service were amended (`AmendBooking`), at most the configured maximum (at
    /// most [`crate::limits::AMENDMENTS_MAX`], so a byte holds it).
    pub amendments_used: u8,
    /// When it was last amended.
    pub last_amended_at: Option<Timestamp>,
}

impl Booking {
    /// When the ticker must next look at this hold: its payment deadline, or once that has passed, the end of its
    /// settlement grace. The key of the shard's `deadlines` index.
    #[must_use]
    pub fn hold_due_at(&self) -> Timestamp {
        self.settlement_deadline.unwrap_or(self.payment_deadline)
    }

    /// The 15-digit code to pay with: [`payment_code_for`] its number, as it always was.
    #[must_use]
    pub fn payment_code(&self) -> u64 {
        payment_code_for(self.booking_id)
    }

    /// The payment code as its 15 digits.
    #[must_use]
    pub fn payment_code_text(&self) -> String {
        format!("{:015}", self.payment_code())
    }
}

/// How a [`Booking`] is encoded (snapshots, remembered answers): every field in this order, the payment code included,
/// as before bookings stopped keeping it.
#[derive(Deserialize)]
struct BookingLayout {
    booking_id: BookingId,
    state: BookingState,
    slot: SlotRef,
    service: ServiceType,
    applicant: Applicant,
    account_id: AccountId,
    payment_deadline: Timestamp,
    payment_code: u64,
    payment_reference: Option<PaymentReference>,
    created_at: Timestamp,
    updated_at: Timestamp,
    reschedules_used: u32,
    group_id: Option<GroupId>,
    session_starts_at: Timestamp,
    session_ends_at: Timestamp,
    settlement_deadline: Option<Timestamp>,
    amendments_used: u32,
    last_amended_at: Option<Timestamp>,
}

impl Serialize for Booking {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut layout = serializer.serialize_struct("BookingLayout", 18)?;
        layout.serialize_field("booking_id", &self.booking_id)?;
        layout.serialize_field("state", &self.state)?;
        layout.serialize_field("slot", &self.slot)?;
        layout.serialize_field("service", &self.service)?;
        layout.serialize_field("applicant", &self.applicant)?;
        layout.serialize_field("account_id", &self.account_id)?;
        layout.serialize_field("payment_deadline", &self.payment_deadline)?;
        layout.serialize_field("payment_code", &self.payment_code())?;
        layout.serialize_field("payment_reference", &self.payment_reference)?;
        layout.serialize_field("created_at", &self.created_at)?;
        layout.serialize_field("updated_at", &self.updated_at)?;
        layout.serialize_field("reschedules_used", &self.reschedules_used)?;
        layout.serialize_field("group_id", &self.group_id)?;
        layout.serialize_field("session_starts_at", &self.session_starts_at)?;
        layout.serialize_field("session_ends_at", &self.session_ends_at)?;
        layout.serialize_field("settlement_deadline", &self.settlement_deadline)?;
        layout.serialize_field("amendments_used", &u32::from(self.amendments_used))?;
        layout.serialize_field("last_amended_at", &self.last_amended_at)?;
        layout.end()
    }
}

impl<'de> Deserialize<'de> for Booking {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Booking, D::Error> {
        use serde::de::Error;
        let layout = BookingLayout::deserialize(deserializer)?;
        // Pair assertion: the code stored is the one derived, as every booking's has been.
        if layout.payment_code != payment_code_for(layout.booking_id) {
            return Err(D::Error::custom(format!("booking {} has a payment code not its own", layout.booking_id)));
        }
        let amendments_used = u8::try_from(layout.amendments_used)
            .map_err(|_| D::Error::custom(format!("booking {} amended too often", layout.booking_id)))?;
        Ok(Booking {
            booking_id: layout.booking_id,
            state: layout.state,
            slot: layout.slot,
            service: layout.service,
            applicant: layout.applicant,
            account_id: layout.account_id,
            payment_deadline: layout.payment_deadline,
            payment_reference: layout.payment_reference,
            created_at: layout.created_at,
            updated_at: layout.updated_at,
            reschedules_used: layout.reschedules_used,
            group_id: layout.group_id,
            session_starts_at: layout.session_starts_at,
            session_ends_at: layout.session_ends_at,
            settlement_deadline: layout.settlement_deadline,
            amendments_used,
            last_amended_at: layout.last_amended_at,
        })
    }
}

/// What is kept of a purged booking: enough to answer a payment notification that arrives after the purge (record a
/// late payment for refund under the right office, and recognise a re-delivery of the payment it had accepted), and
/// nothing about the applicant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgedBooking {
    /// The booking that was purged.
    pub booking_id: BookingId,
    /// Its office.
    pub office_id: OfficeId,
    /// Its appointment date: the record is forgotten [`crate::limits::PURGED_BOOKINGS_KEPT_DAYS`] after it.
    pub date: Date,
    /// The payment it had accepted, if any.
    pub payment_reference: Option<PaymentReference>,
}

/// The payment code of booking number `sequence`: 15 digits, unique per booking, starting with 8 so it never has a
/// leading zero. Derived, not random, so that replay produces the same code.
#[must_use]
pub fn payment_code_for(booking_id: BookingId) -> u64 {
    // Multiplying by an odd constant modulo 10^14 permutes the sequence so consecutive bookings do not get
    // consecutive codes; 10^14 and the multiplier are coprime, so distinct bookings get distinct codes.
    const MODULUS: u64 = 100_000_000_000_000;
    const MULTIPLIER: u64 = 48_271_371_313;
    let scrambled = ((u128::from(booking_id.0) * u128::from(MULTIPLIER)) % u128::from(MODULUS)) as u64;
    800_000_000_000_000 + scrambled
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn payment_codes_are_fifteen_digits_and_distinct() {
        let codes: HashSet<u64> = (1..=100_000).map(|n| payment_code_for(BookingId(n))).collect();
        assert_eq!(codes.len(), 100_000);
        assert!(codes.iter().all(|code| (100_000_000_000_000..1_000_000_000_000_000).contains(code)));
    }
}
