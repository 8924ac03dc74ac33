//! Deciding the requests a caller makes of a waiting room (join, leave): which event they log, or why they are
//! refused, or that they change nothing. Reads the waiting rooms; changes nothing itself.

use super::admission::gates_any_date;
use super::event::WaitingRoomEvent;
use super::room::{TicketId, WaitingRoom, WaitingRoomKey, WaitingRooms};
use crate::domain::bookings::rules::BookRules;
use crate::domain::catalogue::office::{Catalog, Office, ServiceType};
use crate::domain::messages::event::{Event, Stamp};
use crate::domain::messages::rejection::Rejection;
use crate::domain::state::shard::ApplicantRecord;
use crate::domain::values::ids::OfficeId;
use crate::domain::values::nik::Nik;
use crate::domain::values::time::{Date, Timestamp};
use crate::limits::{GROUP_APPLICANTS_MAX, JOINS_PER_APPLICANT_PER_ROOM_MAX};

/// What a waiting-room request comes to.
// A decision lives for one call and is consumed at once: boxing the event would allocate on every join instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decision {
    /// Log this event; it answers with the ticket.
    Change(Box<Event>),
    /// Nothing to change: answer with this ticket as it is (the applicant's existing ticket, or one already ended).
    Unchanged(TicketId),
}

/// What a join asks for.
#[derive(Clone, Copy, Debug)]
pub struct JoinWish<'wish> {
    /// The office.
    pub office_id: &'wish OfficeId,
    /// The service wanted.
    pub service: ServiceType,
    /// Who joins.
    pub nik: Nik,
    /// Slots the party needs (the applicant and family members booked with them).
    pub party_size: u8,
    /// The dates wanted, if named: the line that gates them is joined.
    pub dates: Option<(Date, Date)>,
}

/// Joining an office's open waiting room: the applicant's ticket there if it is still in line (waiting, admitted or
/// sold out for now), else a new ticket at the back of the line (`new_ticket_id` is called only then). Refused when the
/// applicant already holds the most active bookings (`applicant`), or has joined this line the most times allowed.
pub fn join(
    rules: &BookRules,
    catalog: &Catalog,
    rooms: &WaitingRooms,
    applicant: Option<&ApplicantRecord>,
    wish: JoinWish<'_>,
    stamp: Stamp,
    new_ticket_id: impl FnOnce() -> TicketId,
) -> Result<Decision, Rejection> {
    if !(1..=GROUP_APPLICANTS_MAX).contains(&usize::from(wish.party_size)) {
        return Err(Rejection::invalid("party_size", format!("must be 1 to {GROUP_APPLICANTS_MAX}")));
    }
    let office = catalog.office(wish.office_id).ok_or_else(|| Rejection::OfficeNotFound(wish.office_id.clone()))?;
    let key = joinable_waiting_room(rules, office, rooms, wish.dates, stamp.at)?;
    let room = rooms.get(&key).expect("chosen among the rooms");
    let previous = room.by_nik.get(&wish.nik).and_then(|ticket_id| room.tickets.get(ticket_id));
    if let Some(ticket) = previous.filter(|ticket| !ticket.state.has_ended()) {
        return Ok(Decision::Unchanged(ticket.ticket_id));
    }
    if let Some(record) =
        applicant.filter(|record| record.active().len() >= rules.applicant_active_bookings_max as usize)
    {
        return Err(Rejection::ApplicantHasBooking { booking_id: record.active()[0] });
    }
    if previous.is_some_and(|ticket| usize::from(ticket.attempt) >= JOINS_PER_APPLICANT_PER_ROOM_MAX) {
        return Err(Rejection::LimitReached { limit: "joins_per_applicant_max".into() });
    }
    if room.tickets.len() as u64 >= rules.tickets_per_room_max {
        return Err(Rejection::LimitReached { limit: "tickets_per_room_max".into() });
    }
    let change = WaitingRoomEvent::JoinedParty {
        room: key,
        ticket_id: new_ticket_id(),
        nik: wish.nik,
        service: wish.service,
        party_size: wish.party_size,
        at: stamp.at,
    };
    Ok(Decision::Change(Box::new(Event::WaitingRoomRequested { stamp, change })))
}

/// Leaving a waiting room. Leaving twice, or after the ticket ended, changes nothing.
pub fn leave(rooms: &WaitingRooms, ticket_id: TicketId, stamp: Stamp) -> Result<Decision, Rejection> {
    let key = waiting_room_of(rooms, ticket_id).ok_or(Rejection::TicketNotFound(ticket_id))?;
    if rooms[&key].tickets[&ticket_id].state.has_ended() {
        return Ok(Decision::Unchanged(ticket_id));
    }
    let change = WaitingRoomEvent::Left { room: key, ticket_id };
    Ok(Decision::Change(Box::new(Event::WaitingRoomRequested { stamp, change })))
}

/// The waiting room an office's applicants join at `now`: among the lines that still gate a date to come (of `dates`,
/// when named), the latest one already open, else an error naming when the next one opens.
fn joinable_waiting_room(
    rules: &BookRules,
    office: &Office,
    rooms: &WaitingRooms,
    dates: Option<(Date, Date)>,
    now: Timestamp,
) -> Result<WaitingRoomKey, Rejection> {
    let pre_open = rules.waiting_room_pre_open_ms;
    let today = office.today(now);
    let office_id = &office.settings.office_id;
    let lines = rooms.iter().filter(|(key, room)| &key.office_id == office_id && gates(office, room, dates, today));
    let open = lines.clone().map(|(key, _)| key).filter(|key| key.release_at.plus_ms(-pre_open) <= now).max();
    if let Some(key) = open {
        return Ok(key.clone());
    }
    match lines.map(|(key, _)| key).min() {
        Some(next) => Err(Rejection::NotYetOpen { opens_at: next.release_at.plus_ms(-pre_open) }),
        None => Err(Rejection::NoWaitingRoom(office_id.clone())),
    }
}

/// Whether `room` still gates a date from `today` on, within `dates` when named.
fn gates(office: &Office, room: &WaitingRoom, dates: Option<(Date, Date)>, today: Date) -> bool {
    let (first, last) = match dates {
        Some((first, last)) => (room.first_date.max(first), room.last_date.min(last)),
        None => (room.first_date, room.last_date),
    };
    gates_any_date(office, &room.key, first, last, today)
}

/// Whether `room` is over at `now`: it gates no date from the office's today on (its dates passed, or were given
/// another release).
#[must_use]
pub fn has_finished(office: &Office, room: &WaitingRoom, now: Timestamp) -> bool {
    !gates(office, room, None, office.today(now))
}

/// The waiting room that holds `ticket_id`.
#[must_use]
pub fn waiting_room_of(rooms: &WaitingRooms, ticket_id: TicketId) -> Option<WaitingRoomKey> {
    rooms.iter().find(|(_, room)| room.tickets.contains_key(&ticket_id)).map(|(key, _)| key.clone())
}
