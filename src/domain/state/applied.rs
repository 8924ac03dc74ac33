//! What applying one event did beyond the state change itself: the answer to remember and the counts the book keeps.
//! Its own file so that every applier (bookings, catalogue, waiting rooms) can return it without importing the others.

use super::remembered::RememberedOutcome;
use crate::domain::messages::event::Stamp;
use crate::domain::waiting_room::room::TicketId;

/// What applying an event did, beyond the state change itself.
#[derive(Debug, Default)]
pub struct Applied {
    /// The request the event answers and the answer as a request record keeps it (booking ids, not bookings): the
    /// caller reads the bookings from the shards to reply, and remembers it for retries.
    pub answered: Option<(Stamp, RememberedOutcome)>,
    /// Bookings created.
    pub bookings_created: u64,
    /// Request records dropped.
    pub requests_forgotten: u64,
    /// Highest ticket id the event uses.
    pub highest_ticket_id: Option<TicketId>,
    /// Bookings deleted.
    pub bookings_purged: u64,
}

/// The result of an event that answers a request.
pub fn answered(stamp: &Stamp, outcome: RememberedOutcome) -> Applied {
    Applied { answered: Some((stamp.clone(), outcome)), ..Applied::default() }
}
