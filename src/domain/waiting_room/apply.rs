//! Applying waiting-room events: the only code that changes a waiting room, used by the live path and replay alike.

use super::admission::gates_any_date;
use super::event::WaitingRoomEvent;
use super::room::{Ticket, TicketId, TicketState, WaitingRoom, WaitingRoomKey, WaitingRooms};
use crate::domain::catalogue::office::{Office, ScheduleRule, ServiceType};
use crate::domain::state::applied::Applied;
use crate::domain::values::nik::Nik;
use crate::domain::values::time::{Date, Timestamp};
use std::sync::Arc;

/// Creates the waiting room of a schedule (or widens its dates when the release already has one). `office` already
/// carries the schedule. When the schedule moves a line's dates to a new release instant, so that the line gates none
/// of its dates any more, the line moves with them: its tickets follow it to the new instant and keep their places.
pub fn open_waiting_room(rooms: &mut WaitingRooms, office: &Office, rule: &ScheduleRule, fingerprint: u64) {
    let office_id = &office.settings.office_id;
    let key = WaitingRoomKey { office_id: office_id.clone(), release_at: rule.release_at };
    if !rooms.contains_key(&key)
        && let Some(moved) = line_left_behind(rooms, office, rule)
        && let Some(room) = rooms.remove(&moved)
    {
        let mut room = Arc::unwrap_or_clone(room);
        room.key = key.clone();
        room.changes.0 += 1;
        rooms.insert(key.clone(), Arc::new(room));
    }
    // The seed comes from the logged schedule, so the draw replays identically, yet no caller can predict it
    // without knowing the whole request.
    let seed = fingerprint ^ (rule.release_at.0 as u64).rotate_left(17);
    let room = rooms
        .entry(key.clone())
        .or_insert_with(|| Arc::new(WaitingRoom::new(key, seed, rule.first_date, rule.last_date)));
    let room = Arc::make_mut(room);
    room.first_date = room.first_date.min(rule.first_date);
    room.last_date = room.last_date.max(rule.last_date);
}

/// The earliest line of the office whose dates `rule` overlaps and which, with `rule` in force, gates none of its
/// dates: the schedule moved its release.
fn line_left_behind(rooms: &WaitingRooms, office: &Office, rule: &ScheduleRule) -> Option<WaitingRoomKey> {
    rooms
        .iter()
        .filter(|(key, room)| {
            key.office_id == office.settings.office_id
                && room.first_date <= rule.last_date
                && rule.first_date <= room.last_date
                && !gates_any_date(office, key, room.first_date, room.last_date, room.first_date)
        })
        .map(|(key, _)| key.clone())
        .next()
}

/// Drops the lines whose every date is before `before` (retention: `PurgeBookings` covers tickets too).
pub fn purge_waiting_rooms(rooms: &mut WaitingRooms, before: Date) {
    rooms.retain(|_, room| room.last_date >= before);
}

/// Applies a waiting-room event.
pub fn apply_waiting_room_event(rooms: &mut WaitingRooms, event: &WaitingRoomEvent) -> Applied {
    match event {
        WaitingRoomEvent::Joined { room, ticket_id, nik, service, at } => {
            join(room_mut(rooms, room), *ticket_id, *nik, *service, 1, *at)
        }
        WaitingRoomEvent::JoinedParty { room, ticket_id, nik, service, party_size, at } => {
            join(room_mut(rooms, room), *ticket_id, *nik, *service, *party_size, *at)
        }
        WaitingRoomEvent::Left { room, ticket_id } => {
            room_mut(rooms, room).set_state(*ticket_id, TicketState::Left);
            Applied::default()
        }
        WaitingRoomEvent::Advanced { room, at, admitted, admission_expires_at, expired, sold_out } => {
            let room = room_mut(rooms, room);
            room.draw_if_due(*at);
            for ticket_id in expired {
                room.set_state(*ticket_id, TicketState::Expired);
            }
            let before = room.admitted_total;
            for ticket_id in admitted {
                room.admit(*ticket_id, 1, *at, *admission_expires_at);
            }
            if !admitted.is_empty() {
                room.note_admissions(*at, before);
            }
            // Earlier builds made every waiting ticket sold out for good; it now reads so from the boundary.
            match sold_out {
                Some(true) => room.reachable_before = 0,
                Some(false) => room.reachable_before = u64::MAX,
                None => {}
            }
            room.changes.0 += 1;
            Applied::default()
        }
        WaitingRoomEvent::Stepped { room, at, admitted, admission_expires_at, expired, revoked, potential } => {
            let room = room_mut(rooms, room);
            room.draw_if_due(*at);
            for ticket_id in expired {
                room.set_state(*ticket_id, TicketState::Expired);
            }
            for ticket_id in revoked {
                room.revoke(*ticket_id);
            }
            let before = room.admitted_total;
            for (ticket_id, party) in admitted {
                room.admit(*ticket_id, *party, *at, *admission_expires_at);
            }
            if !admitted.is_empty() {
                room.note_admissions(*at, before);
            }
            room.reachable_before = room.boundary(*potential);
            if *potential == 0 && room.draw.sold_out_at.is_none() {
                room.draw.sold_out_at = Some(*at);
            }
            room.changes.0 += 1;
            Applied::default()
        }
        WaitingRoomEvent::Finished { room } => {
            rooms.remove(room);
            Applied::default()
        }
        WaitingRoomEvent::DrawCommitted { room, secret } => {
            let room = room_mut(rooms, room);
            assert!(room.draw.secret.is_none() && !room.drawn, "a line commits to one secret, before its draw");
            room.draw.secret = Some(*secret);
            room.changes.0 += 1;
            Applied::default()
        }
    }
}

fn room_mut<'rooms>(rooms: &'rooms mut WaitingRooms, key: &WaitingRoomKey) -> &'rooms mut WaitingRoom {
    match rooms.get_mut(key) {
        Some(room) => Arc::make_mut(room),
        None => panic!("event names waiting room {key:?}, which does not exist"),
    }
}

fn join(
    room: &mut WaitingRoom,
    ticket_id: TicketId,
    nik: Nik,
    service: ServiceType,
    party_size: u8,
    at: Timestamp,
) -> Applied {
    let previous = room.by_nik.get(&nik).and_then(|previous| room.tickets.get(previous));
    let attempt = previous.map_or(1, |previous| previous.attempt.saturating_add(1));
    let ticket = Ticket {
        ticket_id,
        nik,
        service,
        joined_at: at,
        state: TicketState::Waiting,
        order: 0,
        admission_token: 0,
        admission_expires_at: Timestamp(0),
        party_size,
        admitted_party: 0,
        attempt,
    };
    room.join(ticket);
    Applied { highest_ticket_id: Some(ticket_id), ..Applied::default() }
}
