//! The quota book's waiting-room operations: joining and leaving a line, reading a ticket, moving a line on, and
//! ending it.
//!
//! Lock order: the rooms lock is taken after shard locks (holds, joins) or alone (everything here); the supply figures
//! a line needs are read from the shards first, one at a time, and passed in.

use super::decide::{JoinWish, has_finished};
use super::draw::RECEIPT_BYTES;
use super::event::WaitingRoomEvent;
use super::room::{Ticket, TicketId, TicketState, WaitingRoom, WaitingRoomKey, WaitingRooms};
use super::step::{Supply, decide_step};
use crate::domain::catalogue::office::{Office, Pool, SessionTemplate};
use crate::domain::messages::command::Command;
use crate::domain::messages::event::Event;
use crate::domain::messages::rejection::Rejection;
use crate::domain::messages::reply::Reply;
use crate::domain::state::book::{EventLog, Execution, QuotaBook};
use crate::domain::state::shard::{DayKey, ShardKey};
use crate::domain::values::ids::RequestId;
use crate::domain::values::time::{Date, Timestamp};
use std::sync::atomic::Ordering;

/// A ticket as a caller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketView {
    /// The ticket, with the state its holder is shown (sold out when past the line's reachable boundary).
    pub ticket: Ticket,
    /// Its line.
    pub room: WaitingRoomKey,
    /// Waiting tickets ahead of it.
    pub ahead: u64,
    /// Estimated milliseconds until admission, from the line's recent admission rate (or until the release instant);
    /// 0 when not waiting.
    pub estimated_wait_ms: i64,
    /// The commitment to the line's draw secret, once the line has one.
    pub draw_commitment: Option<[u8; 32]>,
    /// The ticket's public receipt in the draw's published lists, once the line has a secret.
    pub receipt: Option<[u8; RECEIPT_BYTES]>,
}

/// What moving a line on did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advanced {
    /// Log position of the event.
    pub position: u64,
    /// For each ticket admitted, how long it waited in line (since it joined or since the release instant, whichever
    /// is later), in milliseconds.
    pub waited_ms: Vec<i64>,
    /// The tickets whose own state the step changed (admitted, expired, taken back): their holders have news now.
    pub changed: Vec<TicketId>,
}

/// Where a ticket is, for the engine's idle check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    /// In line (sold-out ones included) in `room`; `released` once the line's release instant has come.
    Waiting {
        /// The line.
        room: WaitingRoomKey,
        /// The release instant has come (only then does an idle ticket lose its place).
        released: bool,
    },
    /// Admitted: the admission lapses by itself if unused.
    Admitted,
    /// Ended, or no longer known (its line ended).
    Gone,
}

impl QuotaBook {
    /// Every line.
    #[must_use]
    pub fn waiting_room_keys(&self) -> Vec<WaitingRoomKey> {
        self.waiting_rooms.lock().keys().cloned().collect()
    }

    /// Joins the office's open waiting room that gates the wished dates (or returns the applicant's ticket there while
    /// it is still in line) under `request_id`: a retry of the same request returns the same ticket. Refused when the
    /// office has no such waiting room, or its next one does not open yet. Returns the ticket now and the log position
    /// to await, if anything was logged.
    pub fn join(
        &self,
        request_id: &RequestId,
        wish: JoinWish<'_>,
        now: Timestamp,
        log: &impl EventLog,
    ) -> Result<(TicketView, Option<u64>), Rejection> {
        let command = Command::JoinWaitingRoom {
            office_id: wish.office_id.clone(),
            service: wish.service,
            nik: wish.nik,
            party_size: wish.party_size,
            dates: wish.dates,
        };
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
        let room = rooms.values().find(|room| room.tickets.contains_key(&ticket_id))?;
        view(room, ticket_id, now, Proofs::Included)
    }

    /// A ticket as [`QuotaBook::ticket`] shows it, but without the draw's commitment and the ticket's receipt (two
    /// SHA-256 hashes, both `None` here): what a Watch stream compares on each wake-up of its line, to read the whole
    /// ticket only when it has something to send.
    #[must_use]
    pub fn ticket_glance(&self, ticket_id: TicketId, now: Timestamp) -> Option<TicketView> {
        let rooms = self.waiting_rooms.lock();
        let room = rooms.values().find(|room| room.tickets.contains_key(&ticket_id))?;
        view(room, ticket_id, now, Proofs::Left)
    }

    /// The slots behind a line at `now`: bookable now, awaiting payment, and free but bookable only later, over its
    /// dates still to come (past dates and started sessions count for nothing).
    #[must_use]
    pub fn supply(&self, key: &WaitingRoomKey, now: Timestamp) -> Supply {
        let catalog = self.catalog();
        let Some(office) = catalog.office(&key.office_id) else { return Supply::default() };
        let Some((first, last, admitted)) = self
            .waiting_rooms
            .lock()
            .get(key)
            .map(|room| (room.first_date, room.last_date, u64::from(room.admitted_slots)))
        else {
            return Supply::default();
        };
        let mut supply = Supply { admitted, ..Supply::default() };
        let today = office.today(now);
        let start = first.max(today);
        for offset in 0..=last.days_since(start) {
            self.add_day_supply(office, key, start.plus_days(offset), now, &mut supply);
        }
        supply
    }

    fn add_day_supply(&self, office: &Office, key: &WaitingRoomKey, date: Date, now: Timestamp, supply: &mut Supply) {
        let Some(plan) = office.plan(date).filter(|plan| plan.waiting_room && plan.release_at == key.release_at) else {
            return;
        };
        let today = office.today(now);
        let in_window = date.days_since(today) <= office.settings.booking_horizon_days;
        let bookable = plan.closed.is_none() && in_window && now >= plan.release_at;
        let to_come: Vec<&SessionTemplate> =
            plan.sessions.iter().filter(|session| now < office.session_start(date, session)).collect();
        if to_come.is_empty() {
            return;
        }
        let day = DayKey { office_id: key.office_id.clone(), date };
        self.read_shard(day.shard_index(), |shard| {
            let ledger = shard.days.get(&day);
            for session in to_come {
                // The priority pool is not behind the line (see `admission::waiting_room_for`).
                for (pool, capacity) in session.capacities.iter().filter(|(pool, _)| *pool != Pool::Priority) {
                    let counted = ledger.and_then(|ledger| ledger.pool(&session.session_id, *pool));
                    let free = u64::from(counted.map_or(*capacity, |ledger| ledger.remaining()));
                    supply.awaiting += u64::from(counted.map_or(0, |ledger| ledger.awaiting));
                    if bookable {
                        supply.remaining += free;
                    } else {
                        supply.later += free;
                    }
                }
            }
        });
    }

    /// Whether a line has anything to move on at `now`: released, and not yet drawn, or with tickets waiting or
    /// admitted. Lines with nothing in them cost no slot reading.
    #[must_use]
    pub fn waiting_room_busy(&self, key: &WaitingRoomKey, now: Timestamp) -> bool {
        let rooms = self.waiting_rooms.lock();
        rooms.get(key).is_some_and(|room| {
            now >= key.release_at && (!room.drawn || room.waiting() > 0 || !room.admitted.is_empty())
        })
    }

    /// Moves a line on at `now`: makes the draw when due, expires admissions that ran out and tickets in `idle`, takes
    /// back admissions beyond what the slots allow, admits the next tickets within remaining slots times the
    /// admission factor, and recomputes which waiting tickets are within reach of the slots. Logs one event when
    /// anything changes.
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
        let step = decide_step(room, &supply, idle, now, self.rules())?;
        let changed = match &step.event {
            WaitingRoomEvent::Stepped { admitted, expired, revoked, .. } => {
                admitted.iter().map(|(ticket_id, _)| *ticket_id).chain(expired.iter().chain(revoked).copied()).collect()
            }
            _ => Vec::new(),
        };
        let position = self.commit_waiting_room_event(&mut rooms, &Event::WaitingRoom(step.event), log);
        Some(Advanced { position, waited_ms: step.waited_ms, changed })
    }

    /// Lines that are over at `now`: none of their dates can be booked through them any more.
    #[must_use]
    pub fn finished_waiting_rooms(&self, now: Timestamp) -> Vec<WaitingRoomKey> {
        let catalog = self.catalog();
        let rooms = self.waiting_rooms.lock();
        rooms
            .iter()
            .filter(|(key, room)| catalog.office(&key.office_id).is_none_or(|office| has_finished(office, room, now)))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Ends a line that is over at `now`, dropping it with its tickets. Returns the log position and the tickets that
    /// went with it, or `None` when the line is not over (or gone already).
    pub fn finish_waiting_room(
        &self,
        key: &WaitingRoomKey,
        now: Timestamp,
        log: &impl EventLog,
    ) -> Option<(u64, Vec<TicketId>)> {
        let catalog = self.catalog();
        let mut rooms = self.waiting_rooms.lock();
        let room = rooms.get(key)?;
        if catalog.office(&key.office_id).is_some_and(|office| !has_finished(office, room, now)) {
            return None;
        }
        let tickets = room.tickets.keys().copied().collect();
        let event = Event::WaitingRoom(WaitingRoomEvent::Finished { room: key.clone() });
        Some((self.commit_waiting_room_event(&mut rooms, &event, log), tickets))
    }

    /// Tickets waiting and admitted per line, for gauges.
    #[must_use]
    pub fn waiting_room_depths(&self) -> Vec<(WaitingRoomKey, u64, u32)> {
        let rooms = self.waiting_rooms.lock();
        rooms.iter().map(|(key, room)| (key.clone(), room.waiting(), room.admitted.len() as u32)).collect()
    }

    /// Each line's count of changes its ticket holders can see, and whether its draw is made, so watchers are woken
    /// once per change of the line (at once after the draw, and at most about once a second otherwise).
    #[must_use]
    pub fn waiting_room_changes(&self) -> Vec<(WaitingRoomKey, u64, bool)> {
        self.waiting_rooms.lock().iter().map(|(key, room)| (key.clone(), room.changes.0, room.drawn)).collect()
    }

    /// Where each of `ticket_ids` is at `now`, for the engine's idle check.
    #[must_use]
    pub fn presence(&self, ticket_ids: &[TicketId], now: Timestamp) -> Vec<(TicketId, Presence)> {
        let rooms = self.waiting_rooms.lock();
        ticket_ids
            .iter()
            .map(|ticket_id| {
                let found = rooms.values().find_map(|room| room.tickets.get(ticket_id).map(|ticket| (room, ticket)));
                let presence = match found {
                    Some((room, ticket)) if ticket.state == TicketState::Waiting => {
                        Presence::Waiting { room: room.key.clone(), released: now >= room.key.release_at }
                    }
                    Some((_, ticket)) if ticket.state == TicketState::Admitted => Presence::Admitted,
                    _ => Presence::Gone,
                };
                (*ticket_id, presence)
            })
            .collect()
    }

    /// Every ticket still in line or admitted, with when it joined (for the engine to start watching for idleness
    /// after a restart).
    #[must_use]
    pub fn present_tickets(&self) -> Vec<(TicketId, Timestamp)> {
        let rooms = self.waiting_rooms.lock();
        rooms
            .values()
            .flat_map(|room| room.tickets.values())
            .filter(|ticket| !ticket.state.has_ended())
            .map(|ticket| (ticket.ticket_id, ticket.joined_at))
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

/// Whether a view carries the draw's commitment and the ticket's receipt.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Proofs {
    Included,
    Left,
}

/// A ticket of `room` as its holder sees it at `now`.
fn view(room: &WaitingRoom, ticket_id: TicketId, now: Timestamp, proofs: Proofs) -> Option<TicketView> {
    let mut ticket = room.tickets.get(&ticket_id)?.clone();
    let waiting = ticket.state == TicketState::Waiting;
    ticket.state = room.shown_state(&ticket);
    let ahead = if waiting { room.ahead(&ticket) } else { 0 };
    let estimated_wait_ms = if now < room.key.release_at {
        room.key.release_at.ms_since(now)
    } else if ticket.state == TicketState::Waiting {
        room.ms_per_admission(now).map_or(0, |per_admission| (per_admission * ahead as f64) as i64)
    } else {
        0
    };
    let secret = room.draw.secret.filter(|_| proofs == Proofs::Included);
    let draw_commitment = secret.map(|secret| secret.commitment());
    let receipt = secret.map(|secret| secret.receipt(ticket_id.0));
    Some(TicketView { ticket, room: room.key.clone(), ahead, estimated_wait_ms, draw_commitment, receipt })
}
