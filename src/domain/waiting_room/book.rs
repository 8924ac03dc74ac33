//! The quota book's waiting-room operations: joining and leaving a line, reading a ticket, and moving a line on.
//!
//! Lock order: the rooms lock is taken after shard locks (holds) or alone (everything here); the supply figures a
//! line needs are read from the shards first, one at a time, and passed in.

use super::decide::waiting_room_of;
use super::event::WaitingRoomEvent;
use super::room::{Ticket, TicketId, TicketState, WaitingRoom, WaitingRoomKey, WaitingRooms};
use crate::domain::catalogue::office::{Pool, ServiceType};
use crate::domain::messages::command::Command;
use crate::domain::messages::event::Event;
use crate::domain::messages::rejection::Rejection;
use crate::domain::messages::reply::Reply;
use crate::domain::state::book::{EventLog, Execution, QuotaBook};
use crate::domain::state::shard::{DayKey, ShardKey};
use crate::domain::values::ids::{OfficeId, RequestId};
use crate::domain::values::nik::Nik;
use crate::domain::values::time::Timestamp;
use crate::limits::WAITING_ROOM_STEP_TICKETS_MAX;
use std::sync::atomic::Ordering;

/// A ticket as a caller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketView {
    /// The ticket.
    pub ticket: Ticket,
    /// Its line.
    pub room: WaitingRoomKey,
    /// Waiting tickets ahead of it.
    pub ahead: u64,
    /// Estimated milliseconds until admission, from the line's admission rate (or until the release instant).
    pub estimated_wait_ms: i64,
}

/// What moving a line on did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advanced {
    /// Log position of the event.
    pub position: u64,
    /// For each ticket admitted, how long it waited in line (since it joined or since the release instant, whichever
    /// is later), in milliseconds.
    pub waited_ms: Vec<i64>,
}

/// What a line needs to know about the slots behind it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Supply {
    /// Slots neither held nor confirmed on the line's dates.
    pub remaining: u64,
    /// Holds awaiting payment, which may still expire and free their slot.
    pub awaiting: u64,
    /// Tickets admitted and not yet booked, read before the slots: a hold with a token that lands between the read
    /// and the step lowers both, so the step counts admissions as of the read (or now, if more).
    pub admitted: u64,
}

impl QuotaBook {
    /// Every line.
    #[must_use]
    pub fn waiting_room_keys(&self) -> Vec<WaitingRoomKey> {
        self.waiting_rooms.lock().keys().cloned().collect()
    }

    /// Joins the office's open waiting room (or returns the applicant's ticket there) under `request_id`: a retry of
    /// the same request returns the same ticket. Refused when the office has no waiting room, or its next one does not
    /// open yet. Returns the ticket now and the log position to await, if anything was logged.
    pub fn join(
        &self,
        request_id: &RequestId,
        office_id: &OfficeId,
        service: ServiceType,
        nik: Nik,
        now: Timestamp,
        log: &impl EventLog,
    ) -> Result<(TicketView, Option<u64>), Rejection> {
        let command = Command::JoinWaitingRoom { office_id: office_id.clone(), service, nik };
        self.ticket_answer(self.execute(request_id, &command, now, log), now)
    }

    /// Leaves a waiting room under `request_id`. Leaving twice, or after the ticket ended, changes nothing.
    pub fn leave(
        &self,
        request_id: &RequestId,
        ticket_id: TicketId,
        now: Timestamp,
        log: &impl EventLog,
    ) -> Result<(TicketView, Option<u64>), Rejection> {
        self.ticket_answer(self.execute(request_id, &Command::LeaveWaitingRoom { ticket_id }, now, log), now)
    }

    fn ticket_answer(&self, execution: Execution, now: Timestamp) -> Result<(TicketView, Option<u64>), Rejection> {
        match execution.outcome? {
            Reply::Ticket { ticket_id } => {
                let view = self.ticket(ticket_id, now).ok_or(Rejection::TicketNotFound(ticket_id))?;
                Ok((view, execution.log_position))
            }
            other => unreachable!("a waiting-room request answers with a ticket, not {other:?}"),
        }
    }

    /// A ticket as its holder sees it now.
    #[must_use]
    pub fn ticket(&self, ticket_id: TicketId, now: Timestamp) -> Option<TicketView> {
        let rooms = self.waiting_rooms.lock();
        let key = waiting_room_of(&rooms, ticket_id)?;
        self.view(&rooms[&key], ticket_id, now)
    }

    fn view(&self, room: &WaitingRoom, ticket_id: TicketId, now: Timestamp) -> Option<TicketView> {
        let ticket = room.tickets.get(&ticket_id)?.clone();
        let ahead = if ticket.state == TicketState::Waiting { room.ahead(&ticket) } else { 0 };
        let estimated_wait_ms = if now < room.key.release_at {
            room.key.release_at.ms_since(now)
        } else {
            match room.first_admitted_at {
                Some(first) if room.admitted_total > 0 => {
                    let per_admission = now.ms_since(first).max(1) as f64 / room.admitted_total as f64;
                    (per_admission * ahead as f64) as i64
                }
                _ => 0,
            }
        };
        Some(TicketView { ticket, room: room.key.clone(), ahead, estimated_wait_ms })
    }

    /// The slots behind a line: remaining and awaiting payment over its dates.
    #[must_use]
    pub fn supply(&self, key: &WaitingRoomKey) -> Supply {
        let catalog = self.catalog();
        let Some(office) = catalog.office(&key.office_id) else { return Supply::default() };
        let Some((first, last, admitted)) = self
            .waiting_rooms
            .lock()
            .get(key)
            .map(|room| (room.first_date, room.last_date, u64::from(room.admitted_now)))
        else {
            return Supply::default();
        };
        let mut supply = Supply { admitted, ..Supply::default() };
        for offset in 0..=last.days_since(first) {
            let date = first.plus_days(offset);
            let Some(plan) = office.plan(date).filter(|plan| plan.waiting_room && plan.release_at == key.release_at)
            else {
                continue;
            };
            if plan.closed.is_some() {
                continue;
            }
            let day = DayKey { office_id: key.office_id.clone(), date };
            let ledger = self.read_shard(day.shard_index(), |shard| shard.days.get(&day).cloned());
            for session in plan.sessions {
                // The priority pool is not behind the line (see `decide::waiting_room_for`).
                for (pool, capacity) in session.capacities.iter().filter(|(pool, _)| *pool != Pool::Priority) {
                    let counted = ledger.as_ref().and_then(|ledger| ledger.pool(&session.session_id, *pool));
                    supply.remaining += u64::from(counted.map_or(*capacity, |ledger| ledger.remaining()));
                    supply.awaiting += u64::from(counted.map_or(0, |ledger| ledger.awaiting));
                }
            }
        }
        supply
    }

    /// Moves a line on at `now`: makes the draw when due, expires admissions that ran out and tickets in `idle`,
    /// admits the next tickets while admitted-not-booked stays within remaining slots times the admission factor, and
    /// declares the line sold out when no slot is left and none can come back. Logs one event when anything changes.
    pub fn advance_waiting_room(
        &self,
        key: &WaitingRoomKey,
        supply: Supply,
        idle: &[TicketId],
        now: Timestamp,
        log: &impl EventLog,
    ) -> Option<Advanced> {
        let mut rooms = self.waiting_rooms.lock();
        let room = rooms.get(key)?;
        if now < key.release_at {
            return None;
        }
        let mut expired: Vec<TicketId> = room
            .admitted
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= now)
            .map(|(_, ticket_id)| *ticket_id)
            .take(WAITING_ROOM_STEP_TICKETS_MAX)
            .collect();
        let admitted_after_expiry = u64::from(room.admitted_now).max(supply.admitted) - expired.len() as u64;
        expired.extend(idle.iter().filter(|ticket_id| {
            room.tickets.get(ticket_id).is_some_and(|ticket| ticket.state == TicketState::Waiting)
        }));
        // Rounded up, so a factor below 100 % still admits someone for the last slot instead of stalling the line.
        let budget = (supply.remaining * u64::from(self.rules().admission_factor_percent)).div_ceil(100);
        let wanted = budget.saturating_sub(admitted_after_expiry).min(WAITING_ROOM_STEP_TICKETS_MAX as u64) as usize;
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
        let admitted: Vec<TicketId> = ordered
            .next_waiting(wanted + expired.len())
            .into_iter()
            .filter(|ticket_id| !expired.contains(ticket_id))
            .take(wanted)
            .collect();
        let nothing_left = supply.remaining == 0 && supply.awaiting == 0 && admitted_after_expiry == 0;
        let sold_out = match (room.sold_out, nothing_left && room.waiting() > 0) {
            (false, true) => Some(true),
            (true, false) if supply.remaining > 0 => Some(false),
            _ => None,
        };
        if expired.is_empty() && admitted.is_empty() && sold_out.is_none() && room.drawn {
            return None;
        }
        let waited_ms = admitted
            .iter()
            .filter_map(|ticket_id| ordered.tickets.get(ticket_id))
            .map(|ticket| now.ms_since(ticket.joined_at.max(key.release_at)))
            .collect();
        let admission_expires_at = now.plus_ms(self.rules().admission_ttl_ms);
        let event = Event::WaitingRoom(WaitingRoomEvent::Advanced {
            room: key.clone(),
            at: now,
            admitted,
            admission_expires_at,
            expired,
            sold_out,
        });
        let position = self.commit_waiting_room_event(&mut rooms, &event, log);
        Some(Advanced { position, waited_ms })
    }

    /// Tickets waiting and admitted per line, for gauges.
    #[must_use]
    pub fn waiting_room_depths(&self) -> Vec<(WaitingRoomKey, u64, u32)> {
        self.waiting_rooms.lock().iter().map(|(key, room)| (key.clone(), room.waiting(), room.admitted_now)).collect()
    }

    /// Waiting tickets of a line, for the engine's idle check.
    #[must_use]
    pub fn waiting_tickets(&self, key: &WaitingRoomKey, limit: usize) -> Vec<(TicketId, Timestamp)> {
        let rooms = self.waiting_rooms.lock();
        let Some(room) = rooms.get(key) else { return Vec::new() };
        room.tickets
            .values()
            .filter(|ticket| ticket.state == TicketState::Waiting)
            .map(|ticket| (ticket.ticket_id, ticket.joined_at))
            .take(limit)
            .collect()
    }

    fn commit_waiting_room_event(&self, rooms: &mut WaitingRooms, event: &Event, log: &impl EventLog) -> u64 {
        let Event::WaitingRoom(room_event) = event else { unreachable!("room events only") };
        let applied = super::apply::apply_waiting_room_event(rooms, room_event);
        if let Some(highest) = applied.highest_ticket_id {
            self.next_ticket_id.fetch_max(highest.0 + 1, Ordering::Relaxed);
        }
        log.append(event)
    }
}
