//! Who is watching a waiting-room ticket: when each ticket was last seen by a Join, a Watch or a read. Observed, not
//! state: the decision that a ticket went idle is logged as an event, so replay does not depend on it.
//!
//! Its own file so that the engine (which owns one) and its waiting-room side (which reads it) do not import each
//! other.

use crate::domain::{TicketId, Timestamp};
use std::collections::HashMap;

/// When each ticket was last seen by a Join, a Watch or a read, in milliseconds since the epoch.
#[derive(Default)]
pub struct Watchers {
    last_seen: parking_lot::Mutex<HashMap<TicketId, Timestamp>>,
}

impl Watchers {
    /// Notes that the ticket's holder is still there.
    pub fn seen(&self, ticket_id: TicketId, now: Timestamp) {
        self.last_seen.lock().insert(ticket_id, now);
    }

    /// When the ticket's holder was last seen, if since the engine started.
    pub(super) fn last_seen(&self, ticket_id: TicketId) -> Option<Timestamp> {
        self.last_seen.lock().get(&ticket_id).copied()
    }

    /// Stops following tickets that ended.
    pub(super) fn forget(&self, ticket_ids: &[TicketId]) {
        let mut last_seen = self.last_seen.lock();
        for ticket_id in ticket_ids {
            last_seen.remove(ticket_id);
        }
    }
}
