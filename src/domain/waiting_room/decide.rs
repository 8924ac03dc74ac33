//! Deciding the requests a caller makes of a waiting room (join, leave): which event they log, or why they are
//! refused, or that they change nothing. Reads the waiting rooms; changes nothing itself.

use super::event::WaitingRoomEvent;
use super::room::{TicketId, WaitingRoomKey, WaitingRooms};
use crate::domain::bookings::rules::BookRules;
use crate::domain::catalogue::office::ServiceType;
use crate::domain::messages::event::{Event, Stamp};
use crate::domain::messages::rejection::Rejection;
use crate::domain::values::ids::OfficeId;
use crate::domain::values::nik::Nik;

/// What a waiting-room request comes to.
// A decision lives for one call and is consumed at once: boxing the event would allocate on every join instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decision {
    /// Log this event; it answers with the ticket.
    Change(Event),
    /// Nothing to change: answer with this ticket as it is (the applicant's existing ticket, or one already ended).
    Unchanged(TicketId),
}

/// Joining the office's open waiting room: the applicant's ticket there if they have one, else a new ticket
/// (`new_ticket_id` is called only then).
pub fn join(
    rules: &BookRules,
    rooms: &WaitingRooms,
    office_id: &OfficeId,
    service: ServiceType,
    nik: Nik,
    stamp: Stamp,
    new_ticket_id: impl FnOnce() -> TicketId,
) -> Result<Decision, Rejection> {
    let key = joinable_waiting_room(rules, rooms, office_id, stamp.at)?;
    let room = rooms.get(&key).expect("chosen among the rooms");
    if let Some(ticket_id) = room.by_nik.get(&nik) {
        return Ok(Decision::Unchanged(*ticket_id));
    }
    if room.tickets.len() as u64 >= rules.tickets_per_room_max {
        return Err(Rejection::LimitReached { limit: "tickets_per_room_max".into() });
    }
    let at = stamp.at;
    let change = WaitingRoomEvent::Joined { room: key, ticket_id: new_ticket_id(), nik, service, at };
    Ok(Decision::Change(Event::WaitingRoomRequested { stamp, change }))
}

/// Leaving a waiting room. Leaving twice, or after the ticket ended, changes nothing.
pub fn leave(rooms: &WaitingRooms, ticket_id: TicketId, stamp: Stamp) -> Result<Decision, Rejection> {
    let key = waiting_room_of(rooms, ticket_id).ok_or(Rejection::TicketNotFound(ticket_id))?;
    if rooms[&key].tickets[&ticket_id].state.is_terminal() {
        return Ok(Decision::Unchanged(ticket_id));
    }
    let change = WaitingRoomEvent::Left { room: key, ticket_id };
    Ok(Decision::Change(Event::WaitingRoomRequested { stamp, change }))
}

/// The waiting room an office's applicants join at `now`: the latest one already open, else an error naming when the
/// next one opens.
fn joinable_waiting_room(
    rules: &BookRules,
    rooms: &WaitingRooms,
    office_id: &OfficeId,
    now: crate::domain::values::time::Timestamp,
) -> Result<WaitingRoomKey, Rejection> {
    let pre_open = rules.waiting_room_pre_open_ms;
    let office_rooms = rooms.keys().filter(|key| &key.office_id == office_id);
    let open = office_rooms.clone().filter(|key| key.release_at.plus_ms(-pre_open) <= now).max();
    if let Some(key) = open {
        return Ok(key.clone());
    }
    match office_rooms.min() {
        Some(next) => Err(Rejection::NotYetOpen { opens_at: next.release_at.plus_ms(-pre_open) }),
        None => Err(Rejection::NoWaitingRoom(office_id.clone())),
    }
}

/// The waiting room that holds `ticket_id`.
#[must_use]
pub fn waiting_room_of(rooms: &WaitingRooms, ticket_id: TicketId) -> Option<WaitingRoomKey> {
    rooms.iter().find(|(_, room)| room.tickets.contains_key(&ticket_id)).map(|(key, _)| key.clone())
}
