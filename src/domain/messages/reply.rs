//! What a command answers when it succeeds, and the answer type of every command.

use super::rejection::Rejection;
use crate::domain::bookings::booking::Booking;
use crate::domain::values::ids::GroupId;
use crate::domain::waiting_room::room::TicketId;
use serde::{Deserialize, Serialize};

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
        /// Paid late: the booking had lapsed (or was past its deadline) and its slot was still free.
        revived: bool,
        /// Notified after the deadline but paid before it, within the settlement grace: honoured as on time.
        in_grace: bool,
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
    /// A waiting-room ticket joined or left (the caller reads its current state).
    Ticket {
        /// The ticket.
        ticket_id: TicketId,
    },
    /// The payment the booking had already accepted, notified again: nothing changed, nothing is refunded.
    PaymentRepeated {
        /// The booking as it is now (in any state); `None` when it has been purged since.
        booking: Option<Booking>,
    },
}

/// A command's answer: a reply or a refusal.
pub type Outcome = Result<Reply, Rejection>;
