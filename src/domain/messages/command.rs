//! What callers ask for: commands. Commands are validated values: the edge turns requests into commands and refuses
//! malformed ones with every field violation at once.

use crate::domain::bookings::booking::{Applicant, SlotRef};
use crate::domain::catalogue::office::{OfficeSettings, ScheduleRule, ServiceType};
use crate::domain::values::hashing::{fnv1a, fnv1a_continue};
use crate::domain::values::ids::{AccountId, BookingId, OfficeId, PaymentReference, SessionId};
use crate::domain::values::nik::Nik;
use crate::domain::values::time::{Date, Timestamp};
use crate::domain::waiting_room::room::TicketId;
use serde::{Deserialize, Serialize};

/// Take slots in one session for one or more applicants, all or none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldCommand {
    /// Where.
    pub slot: SlotRef,
    /// What for.
    pub service: ServiceType,
    /// Who comes: one for `Hold`, up to the group limit for `HoldGroup`.
    pub applicants: Vec<Applicant>,
    /// Who books.
    pub account_id: AccountId,
    /// Made through `HoldGroup` (the bookings get a group id).
    pub group: bool,
    /// Admission token from the waiting room, for dates behind one.
    pub admission_token: Option<u64>,
}

/// What an `AmendBooking` changes: each field set is a change, each `None` leaves the booking as it is. The NIK is
/// not here: it is the applicant's identity, and another applicant is a cancellation and a new hold.
///
/// Debug output leaves the name out (it says only whether one is set), so a command or event in a log never shows
/// personal data, like the NIK's masked Debug.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amendment {
    /// The applicant's full name, validated like a hold's (trimmed, 1 to the maximum of printable characters).
    pub full_name: Option<String>,
    /// Whether the applicant has a disability (eligibility for the priority pool).
    pub has_disability: Option<bool>,
    /// The service the applicant comes for.
    pub service: Option<ServiceType>,
}

impl Amendment {
    /// Whether it changes nothing at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.full_name.is_none() && self.has_disability.is_none() && self.service.is_none()
    }

    /// The names of the fields it sets, in a fixed order, for logs and the event's record of what changed.
    #[must_use]
    pub fn field_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.full_name.is_some() {
            names.push("full_name");
        }
        if self.has_disability.is_some() {
            names.push("has_disability");
        }
        if self.service.is_some() {
            names.push("service");
        }
        names
    }
}

impl std::fmt::Debug for Amendment {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Amendment")
            .field("full_name", &self.full_name.as_ref().map(|_| "<masked>"))
            .field("has_disability", &self.has_disability)
            .field("service", &self.service)
            .finish()
    }
}

/// A change a caller asks for. Each arrives with a [`RequestId`](crate::domain::RequestId) that makes it idempotent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Hold slots.
    Hold(HoldCommand),
    /// A payment arrived for a booking.
    ConfirmPayment {
        /// The booking paid for.
        booking_id: BookingId,
        /// The payment's reference.
        payment_reference: PaymentReference,
        /// When the payment was made, as the payment network reports it; `None` when not reported (the payment then
        /// counts as made when it is notified). Left out of the encoding when `None`, so the fingerprint of a payment
        /// without it is what it was before the field existed and retries across an upgrade still match. (Commands are
        /// encoded only to be fingerprinted, never decoded.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paid_at: Option<Timestamp>,
    },
    /// Cancel a booking.
    Cancel {
        /// The booking.
        booking_id: BookingId,
    },
    /// Move a booking to another session (same office, service and pool).
    Reschedule {
        /// The booking.
        booking_id: BookingId,
        /// New date.
        date: Date,
        /// New session.
        session_id: SessionId,
    },
    /// The applicant arrived at the office.
    CheckIn {
        /// The booking.
        booking_id: BookingId,
    },
    /// Create or replace an office's settings.
    UpsertOffice(OfficeSettings),
    /// Set the release instant (and maybe sessions) of a range of dates.
    SetSchedule {
        /// The office.
        office_id: OfficeId,
        /// The schedule.
        rule: ScheduleRule,
    },
    /// Delete finished bookings with an appointment before `before` (retention).
    PurgeBookings {
        /// The cut-off date (exclusive).
        before: Date,
    },
    /// Close or reopen a date.
    CloseDate {
        /// The office.
        office_id: OfficeId,
        /// The date.
        date: Date,
        /// Why.
        reason: String,
        /// Reopen instead of close.
        reopen: bool,
    },
    /// Take a place in the office's open waiting room (or get back the applicant's ticket there while it is in line).
    JoinWaitingRoom {
        /// The office.
        office_id: OfficeId,
        /// The service wanted.
        service: ServiceType,
        /// Who joins.
        nik: Nik,
        /// Slots the party needs: the applicant and family members booked with them (1 to the group maximum).
        party_size: u8,
        /// The dates wanted, when named: the line that gates them is joined (else the office's latest open line).
        dates: Option<(Date, Date)>,
    },
    /// Give up a place in a waiting room.
    LeaveWaitingRoom {
        /// The ticket.
        ticket_id: TicketId,
    },
    /// Correct the applicant's name or disability flag, or the service, of an active booking, keeping its slot and
    /// payment.
    AmendBooking {
        /// The booking.
        booking_id: BookingId,
        /// What changes.
        amendment: Amendment,
        /// The NIK the caller sent, if any: accepted only when it is the booking's own (a form sent whole), refused
        /// otherwise, since the NIK is the applicant's identity and cannot be amended.
        nik: Option<Nik>,
    },
}

impl Command {
    /// Lowercase name for logs and metrics.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Command::Hold(hold) if hold.group => "hold_group",
            Command::Hold(_) => "hold",
            Command::ConfirmPayment { .. } => "confirm_payment",
            Command::Cancel { .. } => "cancel",
            Command::Reschedule { .. } => "reschedule",
            Command::CheckIn { .. } => "check_in",
            Command::UpsertOffice(_) => "upsert_office",
            Command::SetSchedule { .. } => "set_schedule",
            Command::CloseDate { .. } => "close_date",
            Command::PurgeBookings { .. } => "purge_bookings",
            Command::JoinWaitingRoom { .. } => "join_waiting_room",
            Command::LeaveWaitingRoom { .. } => "leave_waiting_room",
            Command::AmendBooking { .. } => "amend_booking",
        }
    }

    /// Whether deciding this command locks every shard (admin commands must see every day ledger).
    #[must_use]
    pub fn locks_every_shard(&self) -> bool {
        matches!(
            self,
            Command::UpsertOffice(_)
                | Command::SetSchedule { .. }
                | Command::CloseDate { .. }
                | Command::PurgeBookings { .. }
        )
    }

    /// The booking a booking command acts on.
    #[must_use]
    pub fn booking_id(&self) -> Option<BookingId> {
        match self {
            Command::ConfirmPayment { booking_id, .. }
            | Command::Cancel { booking_id }
            | Command::Reschedule { booking_id, .. }
            | Command::CheckIn { booking_id }
            | Command::AmendBooking { booking_id, .. } => Some(*booking_id),
            _ => None,
        }
    }

    /// A stable 64-bit digest of the command, to tell a retry (same digest) from a reuse of a request id for a
    /// different command. FNV-1a over the canonical encoding: stable across builds and restarts.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        // Hashed as it is encoded: no buffer to fill and read again, nothing allocated whatever the command's size.
        postcard::serialize_with_flavor(self, HashingFlavor { hash: fnv1a(&[]) })
            .expect("commands encode: no maps with non-string keys, no unsupported types")
    }
}

/// A postcard output that keeps only the FNV-1a hash of the bytes written to it: the same value as hashing the
/// encoding, without the encoding.
struct HashingFlavor {
    hash: u64,
}

impl postcard::ser_flavors::Flavor for HashingFlavor {
    type Output = u64;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.hash = fnv1a_continue(self.hash, data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    fn finalize(self) -> postcard::Result<u64> {
        Ok(self.hash)
    }
}
