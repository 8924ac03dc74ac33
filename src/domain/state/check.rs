//! Checking a hold before it is made (`CheckApplicant`): the refusals `Hold` would give for the request itself, through
//! the same checks (`decide::check_hold_request`), and what the state says about each applicant and the slot.
//!
//! A read like those in `reads.rs`: it locks one shard at a time (then the waiting rooms alone), changes nothing and
//! logs nothing, so what it reports may change by the time the hold is sent.

use super::book::QuotaBook;
use super::shard::{DayKey, ShardKey};
use crate::domain::bookings::decide::check_hold_request;
use crate::domain::messages::command::HoldCommand;
use crate::domain::messages::rejection::Rejection;
use crate::domain::state::reads::SessionState;
use crate::domain::values::ids::BookingId;
use crate::domain::values::nik::Nik;
use crate::domain::values::time::Timestamp;
use crate::domain::waiting_room::admission::waiting_room_for;
use crate::domain::waiting_room::room::{TicketId, TicketState};

/// What the state says about one applicant of a checked hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplicantFinding {
    /// The applicant.
    pub nik: Nik,
    /// Their active bookings (awaiting payment or confirmed), at any office, oldest first.
    pub active_bookings: Vec<BookingId>,
    /// They hold the most active bookings allowed: a hold now would be refused `APPLICANT_HAS_BOOKING`.
    pub at_active_bookings_limit: bool,
    /// Their ticket in a waiting room of the office that is still in line (waiting, admitted or sold out), with the
    /// state it shows.
    pub waiting_room_ticket: Option<(TicketId, TicketState)>,
}

/// What a check found, for a request `Hold` would not refuse as malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldCheck {
    /// One finding per applicant, in request order.
    pub applicants: Vec<ApplicantFinding>,
    /// Whether the slot's pool can be booked now: not yet open, open, full (fewer slots than applicants) or closed.
    pub slot_state: SessionState,
    /// Slots left in the pool.
    pub remaining: u32,
    /// When the date's slots open (or opened).
    pub opens_at: Timestamp,
    /// The date's regular and express pools are behind a waiting room: a hold needs an admission token.
    pub behind_waiting_room: bool,
}

impl QuotaBook {
    /// Checks `hold` at `now` as `Hold` would, without holding: the same refusal for a malformed request (every field
    /// violation, including the priority pool's eligibility even before the slot opens), else what the state says.
    pub fn check_hold(&self, hold: &HoldCommand, now: Timestamp) -> Result<HoldCheck, Rejection> {
        let catalog = self.catalog();
        let checked = check_hold_request(&catalog, hold, now, false)?;
        let slot = &hold.slot;
        let plan = checked.office.plan(slot.date).expect("check_hold_request found the date's plan");
        let key = DayKey { office_id: slot.office_id.clone(), date: slot.date };
        let remaining = self.read_shard(key.shard_index(), |shard| match shard.days.get(&key) {
            Some(day) => day.pool(&slot.session_id, slot.pool).map_or(0, |ledger| ledger.remaining()),
            None => checked.session.capacity(slot.pool),
        });
        let slot_state = match &checked.opening {
            Err(Rejection::NotYetOpen { .. }) => SessionState::NotYetOpen,
            Err(_) => SessionState::Closed,
            Ok(_) if remaining < hold.applicants.len() as u32 => SessionState::Full,
            Ok(_) => SessionState::Open,
        };
        let limit = self.rules().applicant_active_bookings_max as usize;
        let mut applicants: Vec<ApplicantFinding> = hold
            .applicants
            .iter()
            .map(|applicant| {
                let nik = applicant.nik;
                let active_bookings = self.read_shard(nik.shard_index(), |shard| {
                    shard.applicants.get(&nik).map(|record| record.active().to_vec()).unwrap_or_default()
                });
                let at_active_bookings_limit = active_bookings.len() >= limit;
                ApplicantFinding { nik, active_bookings, at_active_bookings_limit, waiting_room_ticket: None }
            })
            .collect();
        let rooms = self.waiting_rooms.lock();
        for room in rooms.values().filter(|room| room.key.office_id == slot.office_id) {
            for finding in &mut applicants {
                let ticket = room.by_nik.get(&finding.nik).and_then(|ticket_id| room.tickets.get(ticket_id));
                if let Some(ticket) = ticket.filter(|ticket| !ticket.state.has_ended()) {
                    finding.waiting_room_ticket = Some((ticket.ticket_id, room.shown_state(ticket)));
                }
            }
        }
        let behind_waiting_room = waiting_room_for(&catalog, slot).is_some();
        Ok(HoldCheck { applicants, slot_state, remaining, opens_at: plan.release_at, behind_waiting_room })
    }
}
