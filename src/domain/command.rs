//! What callers ask for (commands), what the quota book records (events), and what it answers (replies and
//! rejections).
//!
//! Commands are validated values: the edge turns requests into commands and refuses malformed ones with every field
//! violation at once. Events are facts: applying an event never fails and never looks at the clock, so replaying the
//! log rebuilds exactly the state that answered the callers. Refusals that change nothing are not events: they cost no
//! log write.

use super::booking::{Applicant, Booking, BookingState, SlotRef};
use super::ids::{AccountId, BookingId, GroupId, OfficeId, PaymentReference, RequestId, SessionId};
use super::nik::Nik;
use super::office::{OfficeSettings, ScheduleRule, ServiceType};
use super::time::{Date, Timestamp};
use super::waiting_room::{RoomKey, TicketId};
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

/// A change a caller asks for. Each arrives with a [`RequestId`] that makes it idempotent.
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
        }
    }

    /// The booking a booking command acts on.
    #[must_use]
    pub fn booking_id(&self) -> Option<BookingId> {
        match self {
            Command::ConfirmPayment { booking_id, .. }
            | Command::Cancel { booking_id }
            | Command::Reschedule { booking_id, .. }
            | Command::CheckIn { booking_id } => Some(*booking_id),
            _ => None,
        }
    }

    /// A stable 64-bit digest of the command, to tell a retry (same digest) from a reuse of a request id for a
    /// different command. FNV-1a over the canonical encoding: stable across builds and restarts.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        // Encode into a stack buffer first: a hold encodes to a few hundred bytes, so the common case allocates nothing.
        let mut buffer = [0u8; 2048];
        match postcard::to_slice(self, &mut buffer) {
            Ok(encoded) => fnv1a(encoded),
            Err(_) => fnv1a(&postcard::to_stdvec(self).unwrap_or_default()),
        }
    }
}

/// FNV-1a, 64-bit: a fixed, documented hash (no per-process random keys).
#[must_use]
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_continue(0xcbf2_9ce4_8422_2325, bytes)
}

/// FNV-1a continued over more bytes from an earlier `hash`.
#[must_use]
pub fn fnv1a_continue(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Who asked for a change, and when: recorded with the change so a retry finds the first answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// The caller's id of the call.
    pub request_id: RequestId,
    /// [`Command::fingerprint`] of the call.
    pub fingerprint: u64,
    /// When it was applied.
    pub at: Timestamp,
}

/// Why a payment must be refunded. Numbers mirror `antrean.v1.RefundReason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RefundReason {
    /// Paid after the deadline and the slot was gone.
    PaymentExpired = 1,
    /// A second, different payment.
    DuplicatePayment = 2,
    /// Paid for a cancelled booking.
    Cancelled = 3,
}

impl RefundReason {
    /// Lowercase name for labels.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RefundReason::PaymentExpired => "payment_expired",
            RefundReason::DuplicatePayment => "duplicate_payment",
            RefundReason::Cancelled => "cancelled",
        }
    }
}

/// A state change, as written to the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Slots were held; bookings are numbered from `first_booking_id` in applicant order.
    Held {
        /// Who asked.
        stamp: Stamp,
        /// What was held.
        hold: HoldCommand,
        /// Number of the first booking.
        first_booking_id: BookingId,
        /// Set for group holds.
        group_id: Option<GroupId>,
        /// Pay before this.
        payment_deadline: Timestamp,
        /// When the session starts.
        session_starts_at: Timestamp,
        /// The waiting-room ticket whose admission token was used.
        admission: Option<(RoomKey, TicketId)>,
    },
    /// A payment was accepted.
    PaymentConfirmed {
        /// Who asked.
        stamp: Stamp,
        /// The booking.
        booking_id: BookingId,
        /// The payment.
        payment_reference: PaymentReference,
        /// It came after the deadline and the slot was taken again.
        revived: bool,
    },
    /// A payment was refused and must be refunded.
    PaymentRefused {
        /// Who asked.
        stamp: Stamp,
        /// The booking.
        booking_id: BookingId,
        /// The payment.
        payment_reference: PaymentReference,
        /// Why.
        reason: RefundReason,
    },
    /// A booking was cancelled.
    Cancelled {
        /// Who asked.
        stamp: Stamp,
        /// The booking.
        booking_id: BookingId,
    },
    /// A booking moved to another session.
    Rescheduled {
        /// Who asked.
        stamp: Stamp,
        /// The booking.
        booking_id: BookingId,
        /// The new slot.
        to: SlotRef,
        /// When the new session starts.
        session_starts_at: Timestamp,
        /// The new payment deadline (unchanged unless it would fall after the new session starts).
        payment_deadline: Timestamp,
    },
    /// The applicant arrived.
    CheckedIn {
        /// Who asked.
        stamp: Stamp,
        /// The booking.
        booking_id: BookingId,
    },
    /// A hold's deadline passed unpaid.
    Expired {
        /// The booking.
        booking_id: BookingId,
        /// The deadline, which is when it expired (even if the service was down then).
        at: Timestamp,
    },
    /// Request records older than `recorded_before` are dropped.
    RequestsForgotten {
        /// The cut-off.
        recorded_before: Timestamp,
    },
    /// An office was created or its settings replaced.
    OfficeUpserted {
        /// Who asked.
        stamp: Stamp,
        /// The new settings.
        settings: OfficeSettings,
    },
    /// A schedule was added.
    ScheduleSet {
        /// Who asked.
        stamp: Stamp,
        /// The office.
        office_id: OfficeId,
        /// The schedule.
        rule: ScheduleRule,
    },
    /// The waiting room changed.
    Room(RoomEvent),
    /// Finished bookings before a date were deleted.
    BookingsPurged {
        /// Who asked.
        stamp: Stamp,
        /// The cut-off date (exclusive).
        before: Date,
    },
    /// A date was closed or reopened.
    DateClosed {
        /// Who asked.
        stamp: Stamp,
        /// The office.
        office_id: OfficeId,
        /// The date.
        date: Date,
        /// Why.
        reason: String,
        /// Reopened instead.
        reopen: bool,
    },
}

/// A waiting-room event: joining, leaving, and the line moving on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomEvent {
    /// An applicant took a place in line.
    Joined {
        /// The line.
        room: RoomKey,
        /// The new ticket.
        ticket_id: TicketId,
        /// Whose.
        nik: Nik,
        /// The service wanted.
        service: ServiceType,
        /// When.
        at: Timestamp,
    },
    /// An applicant left the line.
    Left {
        /// The line.
        room: RoomKey,
        /// The ticket.
        ticket_id: TicketId,
    },
    /// The line moved on: the draw (if due), admissions, expiries, sold out.
    Advanced {
        /// The line.
        room: RoomKey,
        /// When.
        at: Timestamp,
        /// Tickets admitted now.
        admitted: Vec<TicketId>,
        /// Their tokens are valid until then.
        admission_expires_at: Timestamp,
        /// Tickets expired now (admitted and did not hold in time, or stopped watching).
        expired: Vec<TicketId>,
        /// Set when the line became sold out (true) or got slots again (false).
        sold_out: Option<bool>,
    },
}

/// What a successful command answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Slots held.
    Held {
        /// The bookings, in applicant order.
        bookings: Vec<Booking>,
        /// Set for group holds.
        group_id: Option<GroupId>,
    },
    /// A payment confirmed.
    Paid {
        /// The booking.
        booking: Booking,
        /// Revived after expiry.
        revived: bool,
    },
    /// Cancelled, rescheduled or checked in.
    Booking(Booking),
    /// An office created or updated.
    OfficeUpserted {
        /// It did not exist before.
        created: bool,
    },
    /// A schedule set.
    ScheduleSet {
        /// Working days covered.
        dates_scheduled: i32,
    },
    /// A date closed or reopened.
    DateClosed {
        /// Active bookings on the date.
        bookings_affected: i32,
    },
    /// Bookings purged.
    Purged {
        /// How many.
        bookings_purged: u64,
    },
}

/// One invalid field of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldViolation {
    /// Path of the field in the request, e.g. `applicants[2].nik`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    #[must_use]
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> FieldViolation {
        FieldViolation { field: field.into(), description: description.into() }
    }
}

/// Why a command was refused. Each variant maps to one gRPC status code and reason in one place at the edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// Malformed request: every bad field.
    Invalid(Vec<FieldViolation>),
    /// The request id was used before for a different request.
    RequestIdReused,
    /// No such office.
    OfficeNotFound(OfficeId),
    /// The office has no such session on that date (or does not work that day).
    SessionNotFound {
        /// The date.
        date: Date,
        /// The session.
        session_id: SessionId,
    },
    /// No such booking.
    BookingNotFound(BookingId),
    /// The applicant already holds the most active bookings allowed.
    ApplicantHasBooking {
        /// One of the applicant's active bookings.
        booking_id: BookingId,
    },
    /// The date's slots are not released yet.
    NotYetOpen {
        /// When they will be.
        opens_at: Timestamp,
    },
    /// Not enough slots remain in the session's pool.
    SessionFull {
        /// How many remain.
        remaining: u32,
    },
    /// The office closed the date.
    DateClosed {
        /// Why.
        reason: String,
    },
    /// The payment came after the deadline and the slot is gone: the money is recorded for refund.
    PaymentExpired {
        /// The booking.
        booking_id: BookingId,
    },
    /// The booking was already paid with another payment: the new one is recorded for refund.
    AlreadyPaid {
        /// The booking.
        booking_id: BookingId,
    },
    /// The booking may not be rescheduled.
    RescheduleNotAllowed {
        /// Why not.
        why: String,
    },
    /// The booking is not in a state that allows the action.
    InvalidState {
        /// Its state.
        state: BookingState,
        /// What was asked.
        action: String,
    },
    /// The date is behind a waiting room and no valid admission token was given.
    AdmissionRequired,
    /// The office has no waiting room now or ahead.
    NoWaitingRoom(OfficeId),
    /// No such ticket.
    TicketNotFound(TicketId),
    /// A server-wide limit is reached (bookings, remembered request ids): try later.
    LimitReached {
        /// Which limit.
        limit: String,
    },
}

impl Rejection {
    /// A stable uppercase reason, as sent in `ErrorInfo.reason` and used as a metric label.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Invalid(_) => "INVALID_ARGUMENT",
            Rejection::RequestIdReused => "REQUEST_ID_REUSED",
            Rejection::OfficeNotFound(_) => "OFFICE_NOT_FOUND",
            Rejection::SessionNotFound { .. } => "SESSION_NOT_FOUND",
            Rejection::BookingNotFound(_) => "BOOKING_NOT_FOUND",
            Rejection::ApplicantHasBooking { .. } => "APPLICANT_HAS_BOOKING",
            Rejection::NotYetOpen { .. } => "NOT_YET_OPEN",
            Rejection::SessionFull { .. } => "SESSION_FULL",
            Rejection::DateClosed { .. } => "DATE_CLOSED",
            Rejection::PaymentExpired { .. } => "PAYMENT_EXPIRED",
            Rejection::AlreadyPaid { .. } => "ALREADY_PAID",
            Rejection::RescheduleNotAllowed { .. } => "RESCHEDULE_NOT_ALLOWED",
            Rejection::InvalidState { .. } => "INVALID_STATE",
            Rejection::AdmissionRequired => "ADMISSION_REQUIRED",
            Rejection::NoWaitingRoom(_) => "NO_WAITING_ROOM",
            Rejection::TicketNotFound(_) => "TICKET_NOT_FOUND",
            Rejection::LimitReached { .. } => "LIMIT_REACHED",
        }
    }

    /// A single invalid field.
    #[must_use]
    pub fn invalid(field: &str, description: impl Into<String>) -> Rejection {
        Rejection::Invalid(vec![FieldViolation::new(field, description)])
    }
}

/// A command's answer: a reply or a refusal.
pub type Outcome = Result<Reply, Rejection>;
