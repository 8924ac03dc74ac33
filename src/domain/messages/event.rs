//! What the quota book records: events. Events are facts: applying an event never fails and never looks at the
//! clock, so replaying the log rebuilds exactly the state that answered the callers. Refusals that change nothing are
//! not events: they cost no log write.

use super::command::{Amendment, HoldCommand};
use crate::domain::bookings::booking::SlotRef;
use crate::domain::bookings::refund::RefundReason;
use crate::domain::catalogue::office::Pool;
use crate::domain::catalogue::office::{OfficeSettings, ScheduleRule};
use crate::domain::values::ids::{BookingId, GroupId, OfficeId, PaymentReference, RequestId};
use crate::domain::values::time::{Date, Timestamp};
use crate::domain::waiting_room::event::WaitingRoomEvent;
use crate::domain::waiting_room::room::{TicketId, WaitingRoomKey};
use serde::{Deserialize, Serialize};

/// Who asked for a change, and when: recorded with the change so a retry finds the first answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// The caller's id of the call.
    pub request_id: RequestId,
    /// [`Command::fingerprint`](crate::domain::Command::fingerprint) of the call.
    pub fingerprint: u64,
    /// When it was applied.
    pub at: Timestamp,
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
        admission: Option<(WaitingRoomKey, TicketId)>,
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
    WaitingRoom(WaitingRoomEvent),
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
    /// A caller's request changed a waiting room (join, leave): the change, with the stamp that lets a retry of the
    /// same request id find its first answer.
    WaitingRoomRequested {
        /// Who asked.
        stamp: Stamp,
        /// What changed.
        change: WaitingRoomEvent,
    },
    /// A hold's payment deadline passed unpaid: its slot stays reserved until `settles_until` for a payment made before
    /// the deadline whose notification is still on its way. Logged by the ticker, stamped with the deadline.
    PaymentOverdue {
        /// The booking.
        booking_id: BookingId,
        /// The payment deadline, which is when the grace began (even if the service was down then).
        at: Timestamp,
        /// The end of the settlement grace: the hold expires then unless paid.
        settles_until: Timestamp,
    },
    /// A confirmed booking was not checked in by the end of its session. Logged by the ticker, stamped with the end.
    NoShow {
        /// The booking.
        booking_id: BookingId,
        /// The end of the session, which is when the booking became a no-show (even if the service was down then).
        at: Timestamp,
    },
    /// The payment a booking had already accepted was notified again: nothing changes and nothing is refunded. Logged
    /// only so the answer is remembered under its request id like every other answer.
    PaymentRepeated {
        /// Who asked.
        stamp: Stamp,
        /// The booking (present, or purged).
        booking_id: BookingId,
        /// The payment, equal to the booking's accepted one.
        payment_reference: PaymentReference,
    },
    /// A booking's applicant data or service was amended. `amendment` holds only the fields that changed, with their
    /// new values. When the change cost the booking its eligibility for its pool, `to_pool` is the pool of the same
    /// session it moved to (a slot there was free).
    Amended {
        /// Who asked.
        stamp: Stamp,
        /// The booking.
        booking_id: BookingId,
        /// The fields that changed, with their new values.
        amendment: Amendment,
        /// The pool the booking moved to, when it moved.
        to_pool: Option<Pool>,
    },
    /// A new owner took this log over (a cluster node that won the log's lease): every record after this one was
    /// written under `epoch`. Changes no state; written first by each new owner so its append, fenced on the log's end,
    /// shuts out the previous owner at once.
    OwnerChanged {
        /// The new owner's epoch (its lease's creating revision).
        epoch: u64,
    },
}
