//! What the log records of a waiting room: joining, leaving, and the waiting room moving on.

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
    /// The line moved on: the draw (if due), admissions, expiries, sold out.
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
}
