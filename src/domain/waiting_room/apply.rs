//! Applying waiting-room events: the only code that changes a waiting room, used by the live path and replay alike.

use super::event::WaitingRoomEvent;
use super::room::{Ticket, TicketId, TicketState, WaitingRoom, WaitingRoomKey, WaitingRooms};
use crate::domain::catalogue::office::ScheduleRule;
use crate::domain::state::applied::Applied;
use crate::domain::values::ids::OfficeId;
use crate::domain::values::time::Timestamp;
use std::sync::Arc;

/// Creates the waiting room of a schedule (or widens its dates when the release already has one).
pub fn open_waiting_room(rooms: &mut WaitingRooms, office_id: &OfficeId, rule: &ScheduleRule, fingerprint: u64) {
    let key = WaitingRoomKey { office_id: office_id.clone(), release_at: rule.release_at };
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

/// Applies a waiting-room event.
pub fn apply_waiting_room_event(rooms: &mut WaitingRooms, event: &WaitingRoomEvent) -> Applied {
    match event {
        WaitingRoomEvent::Joined { room, ticket_id, nik, service, at } => {
            let room = Arc::make_mut(rooms.get_mut(room).expect("join was decided on this room"));
            let state = if room.sold_out { TicketState::SoldOut } else { TicketState::Waiting };
            let ticket = Ticket {
                ticket_id: *ticket_id,
                nik: *nik,
                service: *service,
                joined_at: *at,
                state,
                order: 0,
                admission_token: 0,
                admission_expires_at: Timestamp(0),
            };
            room.join(ticket);
            Applied { highest_ticket_id: Some(*ticket_id), ..Applied::default() }
        }
        WaitingRoomEvent::Left { room, ticket_id } => {
            let room = Arc::make_mut(rooms.get_mut(room).expect("leave was decided on this room"));
            room.set_state(*ticket_id, TicketState::Left);
            Applied::default()
        }
        WaitingRoomEvent::Advanced { room, at, admitted, admission_expires_at, expired, sold_out } => {
            let room = Arc::make_mut(rooms.get_mut(room).expect("the line exists"));
            room.draw_if_due(*at);
            for ticket_id in expired {
                room.set_state(*ticket_id, TicketState::Expired);
            }
            for ticket_id in admitted {
                room.admit(*ticket_id, *at, *admission_expires_at);
            }
            match sold_out {
                Some(true) => {
                    room.sold_out = true;
                    let waiting: Vec<TicketId> = room
                        .tickets
                        .values()
                        .filter(|ticket| ticket.state == TicketState::Waiting)
                        .map(|ticket| ticket.ticket_id)
                        .collect();
                    for ticket_id in waiting {
                        room.set_state(ticket_id, TicketState::SoldOut);
                    }
                }
                Some(false) => room.sold_out = false,
                None => {}
            }
            Applied::default()
        }
    }
}
