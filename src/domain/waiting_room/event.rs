//! What the log records of a waiting room: joining, leaving, the waiting room moving on, and its end.
//!
//! Variants are encoded by index: new ones go at the end. `Joined` and `Advanced` are what earlier builds logged; they
//! are still applied on replay, and new events use `JoinedParty` and `Stepped`. `DrawCommitted` came last.

use super::draw::DrawSecret;
use super::room::{TicketId, WaitingRoomKey};
use crate::domain::catalogue::office::ServiceType;
use crate::domain::values::nik::Nik;
use crate::domain::values::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A waiting-room event: joining, leaving, and the line moving on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitingRoomEvent {
    /// An applicant took a place in line.
    Joined {
        /// The line.
        room: WaitingRoomKey,
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
        room: WaitingRoomKey,
        /// The ticket.
        ticket_id: TicketId,
    },
    /// The line moved on (as logged by earlier builds): the draw (if due), admissions of one slot each, expiries, and
    /// whether the line became sold out (every waiting ticket reads as sold out) or got slots again.
    Advanced {
        /// The line.
        room: WaitingRoomKey,
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
    /// An applicant took a place in line for a party of `party_size` (themself and family members booked with them).
    JoinedParty {
        /// The line.
        room: WaitingRoomKey,
        /// The new ticket.
        ticket_id: TicketId,
        /// Whose.
        nik: Nik,
        /// The service wanted.
        service: ServiceType,
        /// Slots the party needs, 1 to the group maximum.
        party_size: u8,
        /// When.
        at: Timestamp,
    },
    /// The line moved on: the draw (if due), expiries, admissions taken back, admissions, and the reachable boundary
    /// recomputed for `potential` slots after them.
    Stepped {
        /// The line.
        room: WaitingRoomKey,
        /// When.
        at: Timestamp,
        /// Tickets admitted now, each with the slots its token may hold.
        admitted: Vec<(TicketId, u8)>,
        /// Their tokens are valid until then.
        admission_expires_at: Timestamp,
        /// Tickets expired now (admitted and did not hold in time, or stopped watching).
        expired: Vec<TicketId>,
        /// Admissions taken back because the slots behind the line shrank below them: those tickets wait again at
        /// their own places.
        revoked: Vec<TicketId>,
        /// Every slot that could still come to the line: free and bookable now, held awaiting payment, or free on
        /// dates closed for now or not yet in the booking window.
        potential: u64,
    },
    /// The line ended: none of its dates can be booked through it any more (they passed, or were given another
    /// release without a waiting room). It is dropped with its tickets.
    Finished {
        /// The line.
        room: WaitingRoomKey,
    },
    /// The line's draw secret, drawn by the engine from the operating system before the draw. Its commitment is
    /// published from now on; the secret itself only once the draw is made.
    DrawCommitted {
        /// The line.
        room: WaitingRoomKey,
        /// The secret.
        secret: DrawSecret,
    },
}
