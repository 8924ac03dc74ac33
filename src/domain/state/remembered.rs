//! What a request record remembers of its first answer: the bookings it named, by id, and the answer's small fields
//! (flags, group, ticket, counts), never copies of the bookings, which live once in their shard's `bookings`. A retry's
//! answer is made again from the bookings as they are then ([`RememberedReply::reply_with`], `answers.rs` reads them
//! from the shards): the same bookings, the same kind of reply with the same flags, each booking's current fields. A
//! purge, which deletes bookings, first keeps whole the answers that name them ([`RememberedReply::Kept`]), so a retry
//! is still answered.

use crate::domain::bookings::booking::Booking;
use crate::domain::messages::rejection::Rejection;
use crate::domain::messages::reply::Reply;
use crate::domain::values::ids::{BookingId, GroupId};
use crate::domain::waiting_room::room::TicketId;
use serde::{Deserialize, Serialize};

/// A successful first answer as a request record keeps it: [`Reply`] with booking ids where it has bookings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RememberedReply {
    /// See [`Reply::Held`]: the bookings are numbered from `first_booking_id`, in applicant order (as
    /// [`crate::domain::messages::event::Event::Held`] numbers them).
    Held {
        /// Number of the first booking.
        first_booking_id: BookingId,
        /// How many bookings.
        bookings: u32,
        /// A group hold: its group is numbered like its first booking (as every group has been), so a flag says it
        /// in one byte where the id took sixteen.
        group: bool,
    },
    /// See [`Reply::Paid`].
    Paid {
        /// The booking.
        booking_id: BookingId,
        /// Paid late and revived.
        revived: bool,
        /// Honoured within the settlement grace.
        in_grace: bool,
    },
    /// See [`Reply::Booking`].
    Booking(BookingId),
    /// See [`Reply::OfficeUpserted`].
    OfficeUpserted {
        /// It did not exist before.
        created: bool,
    },
    /// See [`Reply::ScheduleSet`].
    ScheduleSet {
        /// Working days covered.
        dates_scheduled: i32,
    },
    /// See [`Reply::DateClosed`].
    DateClosed {
        /// Active bookings on the date.
        bookings_affected: i32,
    },
    /// See [`Reply::Purged`].
    Purged {
        /// How many.
        bookings_purged: u64,
    },
    /// See [`Reply::Ticket`].
    Ticket {
        /// The ticket.
        ticket_id: TicketId,
    },
    /// See [`Reply::PaymentRepeated`]: answered with the booking as it is, `None` once purged (whether it was there
    /// at the first answer or not), so it is never kept whole.
    PaymentRepeated {
        /// The booking.
        booking_id: BookingId,
    },
    /// The whole answer, as it was when a booking it names was purged (or as an older image stored it when its
    /// bookings were already gone): given as it is.
    Kept(Box<Reply>),
}

/// A command's first answer as a request record keeps it. A refusal is boxed: only a refused payment is remembered
/// with one, and a record's answer is 16 bytes instead of the refusal's 40.
pub type RememberedOutcome = Result<RememberedReply, Box<Rejection>>;

impl RememberedReply {
    /// The bookings this answer is made of, read again on every retry.
    pub fn booking_ids(&self) -> impl Iterator<Item = BookingId> + use<> {
        let (first, count) = match self {
            RememberedReply::Held { first_booking_id, bookings, .. } => (first_booking_id.0, u64::from(*bookings)),
            RememberedReply::Paid { booking_id, .. }
            | RememberedReply::Booking(booking_id)
            | RememberedReply::PaymentRepeated { booking_id } => (booking_id.0, 1),
            RememberedReply::OfficeUpserted { .. }
            | RememberedReply::ScheduleSet { .. }
            | RememberedReply::DateClosed { .. }
            | RememberedReply::Purged { .. }
            | RememberedReply::Ticket { .. }
            | RememberedReply::Kept(_) => (0, 0),
        };
        (first..first + count).map(BookingId)
    }

    /// The answer, with the bookings `find` finds. `Err` names a booking it does not find.
    pub fn reply_with<'found>(&self, find: impl Fn(BookingId) -> Option<&'found Booking>) -> Result<Reply, BookingId> {
        let found = |booking_id: BookingId| find(booking_id).cloned().ok_or(booking_id);
        Ok(match self {
            RememberedReply::Held { first_booking_id, group, .. } => Reply::Held {
                bookings: self.booking_ids().map(found).collect::<Result<_, _>>()?,
                group_id: group.then_some(GroupId(first_booking_id.0)),
            },
            RememberedReply::Paid { booking_id, revived, in_grace } => {
                Reply::Paid { booking: found(*booking_id)?, revived: *revived, in_grace: *in_grace }
            }
            RememberedReply::Booking(booking_id) => Reply::Booking(found(*booking_id)?),
            RememberedReply::OfficeUpserted { created } => Reply::OfficeUpserted { created: *created },
            RememberedReply::ScheduleSet { dates_scheduled } => {
                Reply::ScheduleSet { dates_scheduled: *dates_scheduled }
            }
            RememberedReply::DateClosed { bookings_affected } => {
                Reply::DateClosed { bookings_affected: *bookings_affected }
            }
            RememberedReply::Purged { bookings_purged } => Reply::Purged { bookings_purged: *bookings_purged },
            RememberedReply::Ticket { ticket_id } => Reply::Ticket { ticket_id: *ticket_id },
            RememberedReply::PaymentRepeated { booking_id } => {
                Reply::PaymentRepeated { booking: find(*booking_id).cloned() }
            }
            RememberedReply::Kept(reply) => Reply::clone(reply),
        })
    }

    /// What a record keeps of an answer an older image stored whole: the ids, when `present` says the bookings it
    /// names are all still there and a hold's are numbered in a row (as every hold's are); the whole answer otherwise.
    #[must_use]
    pub fn of_stored(reply: Reply, present: impl Fn(BookingId) -> bool) -> RememberedReply {
        let remembered = match &reply {
            Reply::Held { bookings, group_id } => {
                let in_a_row = bookings.iter().enumerate().all(|(offset, booking)| {
                    booking.booking_id.0.checked_sub(offset as u64) == Some(bookings[0].booking_id.0)
                });
                let numbered_like_its_first =
                    |first: &Booking| group_id.is_none_or(|group| group.0 == first.booking_id.0);
                match (bookings.first(), u32::try_from(bookings.len())) {
                    (Some(first), Ok(count)) if in_a_row && numbered_like_its_first(first) => RememberedReply::Held {
                        first_booking_id: first.booking_id,
                        bookings: count,
                        group: group_id.is_some(),
                    },
                    _ => return RememberedReply::Kept(Box::new(reply)),
                }
            }
            Reply::Paid { booking, revived, in_grace } => {
                RememberedReply::Paid { booking_id: booking.booking_id, revived: *revived, in_grace: *in_grace }
            }
            Reply::Booking(booking) => RememberedReply::Booking(booking.booking_id),
            Reply::OfficeUpserted { created } => RememberedReply::OfficeUpserted { created: *created },
            Reply::ScheduleSet { dates_scheduled } => {
                RememberedReply::ScheduleSet { dates_scheduled: *dates_scheduled }
            }
            Reply::DateClosed { bookings_affected } => {
                RememberedReply::DateClosed { bookings_affected: *bookings_affected }
            }
            Reply::Purged { bookings_purged } => RememberedReply::Purged { bookings_purged: *bookings_purged },
            Reply::Ticket { ticket_id } => RememberedReply::Ticket { ticket_id: *ticket_id },
            // The answer "as it is now" of a booking purged since is `None`, as it would be today.
            Reply::PaymentRepeated { booking: Some(booking) } => {
                return RememberedReply::PaymentRepeated { booking_id: booking.booking_id };
            }
            // Which booking it was is not known: keep it as it was.
            Reply::PaymentRepeated { booking: None } => return RememberedReply::Kept(Box::new(reply)),
        };
        if remembered.booking_ids().all(present) { remembered } else { RememberedReply::Kept(Box::new(reply)) }
    }
}
