//! Deciding a waiting room's step, the one way a line moves on by itself: from the slots behind it (read from the
//! shards just before) and the tickets that stopped watching, which admissions lapsed, which idle tickets expire,
//! which admissions are taken back, who is admitted next, and how many slots could still come to the line. Pure:
//! reads the room, changes nothing.
//!
//! Budget: admitted-and-not-yet-booked slots stay within the slots bookable now times the admission factor (invariant
//! 5). Order: admissions go strictly from the front of the line; when the party at the front needs more than the
//! budget allows, nobody behind it is admitted instead.
//!
//! Pace: a line admits at most `admissions_per_second_max` tickets a second, spread over its steps (a step admits that
//! rate over the time since the line's last admitting step, at most [`ADMISSION_PACE_WINDOW_MS`] of it). Every
//! admission is a hold and a payment a moment later: admitting 10,000 tickets in the half second after a draw sent
//! 20,000 calls at the server at once, and every Join behind them waited a second for its answer. Paced, the holds
//! come at a rate the server absorbs while it answers the arrivals, and each step stays small.

use super::event::WaitingRoomEvent;
use super::room::{TicketId, TicketState, WaitingRoom};
use crate::domain::bookings::rules::BookRules;
use crate::domain::values::time::Timestamp;
use crate::limits::WAITING_ROOM_STEP_TICKETS_MAX;
use std::collections::BTreeSet;

/// The longest time one step's admissions are paced for, in milliseconds: a line that admitted nobody for a while (or
/// whose ticker fell behind) admits one window's worth at once, never a backlog of seconds.
pub const ADMISSION_PACE_WINDOW_MS: i64 = 100;

/// What a line needs to know about the slots behind it, at the instant of the step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Supply {
    /// Slots free and bookable now on the line's dates: released, in the booking window, not closed, session not
    /// started, outside the priority pool.
    pub remaining: u64,
    /// Holds awaiting payment on sessions still to come, which may lapse and free their slot.
    pub awaiting: u64,
    /// Slots free on sessions still to come that are not bookable now but may become so: the date is closed for now
    /// or not yet in the booking window.
    pub later: u64,
    /// Slots claimed by admitted tickets, read before the slots: a hold with a token that lands between the read and
    /// the step lowers both, so the step counts admissions as of the read (or now, if more).
    pub admitted: u64,
}

impl Supply {
    /// Every slot that could still come to the line.
    #[must_use]
    pub fn potential(&self) -> u64 {
        self.remaining + self.awaiting + self.later
    }

    /// Slots admissions may claim: remaining times the factor, rounded up so that a factor below 100 % still admits
    /// someone for the last slot instead of stalling the line.
    #[must_use]
    pub fn budget(&self, admission_factor_percent: u32) -> u64 {
        (self.remaining * u64::from(admission_factor_percent)).div_ceil(100)
    }
}

/// A decided step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The event to log (`WaitingRoomEvent::Stepped`).
    pub event: WaitingRoomEvent,
    /// For each ticket admitted, how long it waited in line (since it joined or since the release instant, whichever
    /// is later), in milliseconds.
    pub waited_ms: Vec<i64>,
}

/// Decides the step of `room` at `now` (at or after its release instant), or `None` when nothing would change.
#[must_use]
pub fn decide_step(
    room: &WaitingRoom,
    supply: &Supply,
    idle: &[TicketId],
    now: Timestamp,
    rules: &BookRules,
) -> Option<Step> {
    let claim = |ticket_id: &TicketId| room.tickets.get(ticket_id).map_or(0, |ticket| u64::from(ticket.admitted_party));
    let lapsed: Vec<TicketId> = room
        .admitted
        .iter()
        .take_while(|(expires_at, _)| *expires_at <= now)
        .map(|(_, ticket_id)| *ticket_id)
        .take(WAITING_ROOM_STEP_TICKETS_MAX)
        .collect();
    let lapsed_claims: u64 = lapsed.iter().map(claim).sum();
    let budget = supply.budget(rules.admission_factor_percent);
    // Taking back compares what is admitted now with the slots read before: a hold that landed after the read
    // lowered both (by its party's slots and its admission's claim, which is no less), so the read can only make the
    // slots look larger than they are, never take back an admission for nothing.
    let admitted_now = u64::from(room.admitted_slots).saturating_sub(lapsed_claims);
    let revoked = over_budget(room, &lapsed, admitted_now.saturating_sub(budget));
    // Admitting counts admissions as of the read when that is more: a hold that landed between the read of the
    // admissions and the read of the slots lowered the slots but not the admissions read.
    let claimed = u64::from(room.admitted_slots).max(supply.admitted);
    let kept = claimed.saturating_sub(lapsed_claims).saturating_sub(revoked.iter().map(claim).sum());
    let idle: BTreeSet<TicketId> = idle
        .iter()
        .filter(|ticket_id| room.tickets.get(ticket_id).is_some_and(|ticket| ticket.state == TicketState::Waiting))
        .take(WAITING_ROOM_STEP_TICKETS_MAX)
        .copied()
        .collect();
    // Applying the event makes the draw first, which decides who is next: pick from a drawn copy when it is pending.
    let drawn_copy;
    let ordered = if room.drawn {
        room
    } else {
        let mut copy = WaitingRoom::clone(room);
        copy.draw_if_due(now);
        drawn_copy = copy;
        &drawn_copy
    };
    let admitted = if revoked.is_empty() {
        let paced = admission_allowance(room, now, rules.admissions_per_second_max);
        next_admissions(ordered, &idle, budget.saturating_sub(kept), kept, paced)
    } else {
        Vec::new()
    };
    let potential = supply.potential();
    let unchanged = lapsed.is_empty() && idle.is_empty() && revoked.is_empty() && admitted.is_empty();
    if unchanged && room.drawn && room.boundary(potential) == room.reachable_before {
        return None;
    }
    let waited_ms = admitted
        .iter()
        .filter_map(|(ticket_id, _)| ordered.tickets.get(ticket_id))
        .map(|ticket| now.ms_since(ticket.joined_at.max(room.key.release_at)))
        .collect();
    let mut expired = lapsed;
    expired.extend(idle);
    let event = WaitingRoomEvent::Stepped {
        room: room.key.clone(),
        at: now,
        admitted,
        admission_expires_at: now.plus_ms(rules.admission_ttl_ms),
        expired,
        revoked,
        potential,
    };
    Some(Step { event, waited_ms })
}

/// Admissions to take back, latest place first, until `excess` slots are freed (none when `excess` is 0): the slots
/// bookable now shrank below what was admitted (a date closed, a session started).
fn over_budget(room: &WaitingRoom, lapsed: &[TicketId], excess: u64) -> Vec<TicketId> {
    if excess == 0 {
        return Vec::new();
    }
    let mut admitted: Vec<(u64, TicketId, u64)> = room
        .admitted
        .iter()
        .map(|(_, ticket_id)| *ticket_id)
        .filter(|ticket_id| !lapsed.contains(ticket_id))
        .filter_map(|ticket_id| room.tickets.get(&ticket_id))
        .map(|ticket| (ticket.order, ticket.ticket_id, u64::from(ticket.admitted_party)))
        .collect();
    admitted.sort_unstable_by(|left, right| right.cmp(left));
    let mut freed = 0;
    let mut revoked = Vec::new();
    for (_, ticket_id, claim) in admitted.into_iter().take(WAITING_ROOM_STEP_TICKETS_MAX) {
        if freed >= excess {
            break;
        }
        freed += claim;
        revoked.push(ticket_id);
    }
    revoked
}

/// Tickets a step of `room` at `now` may admit at most: `per_second` over the time since the line's last admitting
/// step, at most [`ADMISSION_PACE_WINDOW_MS`] of it (a whole window when it never admitted anyone), rounded up.
#[must_use]
pub fn admission_allowance(room: &WaitingRoom, now: Timestamp, per_second: u32) -> usize {
    let since_last = room.recent_admissions.back().map_or(ADMISSION_PACE_WINDOW_MS, |(at, _)| now.ms_since(*at));
    let paced_ms = since_last.clamp(0, ADMISSION_PACE_WINDOW_MS) as u64;
    let allowance = (u64::from(per_second) * paced_ms).div_ceil(1000);
    usize::try_from(allowance).unwrap_or(usize::MAX).min(WAITING_ROOM_STEP_TICKETS_MAX)
}

/// The next tickets to admit from the front of the line for `wanted` slots, `kept` being claimed already, at most
/// `tickets_max` of them. A party larger than everything the line can offer now, at the front with nobody else
/// admitted, takes what there is.
fn next_admissions(
    room: &WaitingRoom,
    idle: &BTreeSet<TicketId>,
    mut wanted: u64,
    kept: u64,
    tickets_max: usize,
) -> Vec<(TicketId, u8)> {
    let mut admitted = Vec::new();
    if wanted == 0 || tickets_max == 0 {
        return admitted;
    }
    for ticket_id in room.waiting_in_order().filter(|ticket_id| !idle.contains(ticket_id)) {
        let party = room.tickets.get(&ticket_id).map_or(1, |ticket| ticket.party_size);
        if u64::from(party) <= wanted {
            admitted.push((ticket_id, party));
            wanted -= u64::from(party);
        } else {
            if kept == 0 && admitted.is_empty() {
                admitted.push((ticket_id, u8::try_from(wanted).unwrap_or(party)));
            }
            break;
        }
        if wanted == 0 || admitted.len() >= tickets_max {
            break;
        }
    }
    admitted
}
