//! Why a command was refused: business outcomes as values, each mapped to one gRPC status at the edge.

use crate::domain::bookings::booking::BookingState;
use crate::domain::bookings::refund::RefundReason;
use crate::domain::values::ids::{BookingId, OfficeId, SessionId};
use crate::domain::values::time::{Date, Timestamp};
use crate::domain::values::violation::FieldViolation;
use crate::domain::waiting_room::room::TicketId;
use serde::{Deserialize, Serialize};

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
    /// A payment for a cancelled booking: the money is recorded for refund.
    PaidAfterCancellation {
        /// The booking.
        booking_id: BookingId,
    },
    /// A payment for a booking that has been purged: the money is recorded for refund.
    BookingPurged {
        /// The booking.
        booking_id: BookingId,
    },
    /// A new plan would move the start or end of sessions that have bookings still to come (their start and payment
    /// deadline were given to applicants): cancel or reschedule those bookings first.
    SessionsHaveBookings {
        /// How many bookings (awaiting payment or confirmed, today or later) are in sessions the plan would move.
        bookings: u32,
    },
    /// The booking may not be amended any more (it used every amendment allowed).
    AmendmentNotAllowed {
        /// Why not.
        why: String,
    },
    /// The amendment would move the booking to another pool of its session (it loses its eligibility for its own), and
    /// that pool has no slot for it: nothing changed.
    AmendmentPoolFull {
        /// The pool the booking would have to move to.
        pool: crate::domain::catalogue::office::Pool,
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
            // The wire reason stays the one callers already handle for a payment on a cancelled booking.
            Rejection::PaidAfterCancellation { .. } => "INVALID_STATE",
            Rejection::BookingPurged { .. } => "BOOKING_PURGED",
            Rejection::SessionsHaveBookings { .. } => "SESSIONS_HAVE_BOOKINGS",
            Rejection::AmendmentNotAllowed { .. } => "AMENDMENT_NOT_ALLOWED",
            Rejection::AmendmentPoolFull { .. } => "AMENDMENT_POOL_FULL",
        }
    }

    /// A stable lowercase label for metrics (`outcome`), one per variant: the match is exhaustive so a new refusal
    /// gets its own label instead of disappearing into "other".
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::Invalid(_) => "invalid",
            Rejection::RequestIdReused => "request_id_reused",
            Rejection::OfficeNotFound(_) => "office_not_found",
            Rejection::SessionNotFound { .. } => "session_not_found",
            Rejection::BookingNotFound(_) => "booking_not_found",
            Rejection::ApplicantHasBooking { .. } => "already_exists",
            Rejection::NotYetOpen { .. } => "not_yet_open",
            Rejection::SessionFull { .. } => "session_full",
            Rejection::DateClosed { .. } => "date_closed",
            Rejection::PaymentExpired { .. } => "payment_expired",
            Rejection::AlreadyPaid { .. } => "already_paid",
            Rejection::RescheduleNotAllowed { .. } => "reschedule_not_allowed",
            Rejection::InvalidState { .. } => "invalid_state",
            Rejection::AdmissionRequired => "admission_required",
            Rejection::NoWaitingRoom(_) => "no_waiting_room",
            Rejection::TicketNotFound(_) => "ticket_not_found",
            Rejection::LimitReached { .. } => "limit_reached",
            Rejection::PaidAfterCancellation { .. } => "paid_after_cancellation",
            Rejection::BookingPurged { .. } => "booking_purged",
            Rejection::SessionsHaveBookings { .. } => "sessions_have_bookings",
            Rejection::AmendmentNotAllowed { .. } => "amendment_not_allowed",
            Rejection::AmendmentPoolFull { .. } => "amendment_pool_full",
        }
    }

    /// A single invalid field.
    #[must_use]
    pub fn invalid(field: &str, description: impl Into<String>) -> Rejection {
        Rejection::Invalid(vec![FieldViolation::new(field, description)])
    }

    /// The refusal that goes with a refund of a payment for `booking_id`: every one of them tells the caller the money
    /// is recorded for refund (`refund_recorded` at the edge).
    #[must_use]
    pub fn refund(reason: RefundReason, booking_id: BookingId) -> Rejection {
        match reason {
            RefundReason::PaymentExpired => Rejection::PaymentExpired { booking_id },
            RefundReason::DuplicatePayment => Rejection::AlreadyPaid { booking_id },
            RefundReason::Cancelled => Rejection::PaidAfterCancellation { booking_id },
            RefundReason::BookingPurged => Rejection::BookingPurged { booking_id },
        }
    }

    /// Why a refund is on record for the payment this refusal refused, if it is one of those.
    #[must_use]
    pub fn refund_reason(&self) -> Option<RefundReason> {
        match self {
            Rejection::PaymentExpired { .. } => Some(RefundReason::PaymentExpired),
            Rejection::AlreadyPaid { .. } => Some(RefundReason::DuplicatePayment),
            Rejection::PaidAfterCancellation { .. } => Some(RefundReason::Cancelled),
            Rejection::BookingPurged { .. } => Some(RefundReason::BookingPurged),
            _ => None,
        }
    }
}
