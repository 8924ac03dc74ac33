//! What anyone may read of a line's draw, and committing a line to its secret. Before the draw: the commitment and how
//! many tickets are in the draw. After it: the secret, the list in canonical order (receipts, never NIKs), the
//! resulting order, the later arrivals in line order, and the line's figures. Lists are read a page at a time.
//!
//! A read copies the line's `Arc` under the rooms lock and does the rest without it, so a large draw read page by page
//! never keeps joins or holds waiting.

use super::draw::{DRAW_ALGORITHM_VERSION, DrawEntry, DrawSecret, RECEIPT_BYTES};
use super::event::WaitingRoomEvent;
use super::room::{TicketId, TicketState, WaitingRoom, WaitingRoomKey};
use crate::domain::catalogue::office::{Catalog, Pool};
use crate::domain::messages::event::Event;
use crate::domain::state::book::{EventLog, QuotaBook};
use std::sync::Arc;

/// A line's draw as published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedDraw {
    /// The line.
    pub key: WaitingRoomKey,
    /// [`DRAW_ALGORITHM_VERSION`], or 0 for a line that committed to nothing (drawn by an earlier build).
    pub algorithm_version: u32,
    /// SHA-256 of the prefixed secret, published from the moment the line has a secret.
    pub commitment: Option<[u8; 32]>,
    /// The draw has been made.
    pub drawn: bool,
    /// The secret, once the draw has been made; `None` before.
    pub secret: Option<[u8; 32]>,
    /// Tickets in the draw: waiting to be drawn before the draw, drawn after it.
    pub pre_open_total: u64,
    /// A page of the drawn list in canonical order (ascending ticket number), from `offset` (empty before the draw).
    pub pre_open: Vec<DrawEntry>,
    /// A page of the resulting order: the ticket at places `offset + 1` on (empty before the draw).
    pub order: Vec<TicketId>,
    /// Tickets that joined after the draw, first come, first served.
    pub later_total: u64,
    /// A page of them in line order, from `offset`.
    pub later: Vec<DrawEntry>,
    /// Where the pages start.
    pub offset: u64,
    /// The line's figures.
    pub figures: DrawFigures,
}

/// A release's figures, readable by anyone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrawFigures {
    /// Slots behind the line per pool (the priority pool is never behind a line).
    pub slots_offered: Vec<(Pool, u64)>,
    /// Tickets in line at the draw.
    pub tickets_at_draw: u64,
    /// Milliseconds from the release instant until no slot could come to the line any more, once that happened.
    pub sold_out_after_ms: Option<i64>,
    /// Admissions given (a ticket admitted again after its admission was taken back counts twice).
    pub admitted: u64,
    /// Tickets that held a slot.
    pub booked: u64,
    /// Tickets that expired (admitted and did not hold in time, or stopped watching).
    pub expired: u64,
    /// Tickets that left.
    pub left: u64,
    /// Tickets waiting within reach of the slots.
    pub waiting: u64,
    /// Tickets waiting that are told SOLD_OUT now: the tickets ahead of them ask for every slot that could still come.
    pub told_sold_out: u64,
}

impl QuotaBook {
    /// Lines not drawn yet that have no secret: the engine draws one for each.
    #[must_use]
    pub fn waiting_rooms_to_commit(&self) -> Vec<WaitingRoomKey> {
        let rooms = self.waiting_rooms.lock();
        rooms.values().filter(|room| !room.drawn && room.draw.secret.is_none()).map(|room| room.key.clone()).collect()
    }

    /// Commits a line to `secret` (logged as `DrawCommitted`). Returns the log position, or `None` when the line is
    /// gone, drawn already, or committed already (the secret is then dropped unused).
    pub fn commit_draw(&self, key: &WaitingRoomKey, secret: DrawSecret, log: &impl EventLog) -> Option<u64> {
        let mut rooms = self.waiting_rooms.lock();
        let room = rooms.get(key)?;
        if room.drawn || room.draw.secret.is_some() {
            return None;
        }
        let event = WaitingRoomEvent::DrawCommitted { room: key.clone(), secret };
        // A commitment hands out no ticket and answers no request: nothing of what applying reports is needed.
        let _ = super::apply::apply_waiting_room_event(&mut rooms, &event);
        Some(log.append(&Event::WaitingRoom(event)))
    }

    /// The commitment of the line `key`, if it has one.
    #[must_use]
    pub fn draw_commitment(&self, key: &WaitingRoomKey) -> Option<[u8; 32]> {
        let rooms = self.waiting_rooms.lock();
        rooms.get(key).and_then(|room| room.draw.secret).map(|secret| secret.commitment())
    }

    /// The draw of the line `key` as anyone may read it, with `page_size` entries of each list from `offset`; `None`
    /// when there is no such line (it never existed, or ended).
    #[must_use]
    pub fn published_draw(&self, key: &WaitingRoomKey, offset: u64, page_size: usize) -> Option<PublishedDraw> {
        let room: Arc<WaitingRoom> = Arc::clone(self.waiting_rooms.lock().get(key)?);
        let catalog = self.catalog();
        Some(publish(&room, &catalog, offset, page_size))
    }
}

fn publish(room: &WaitingRoom, catalog: &Catalog, offset: u64, page_size: usize) -> PublishedDraw {
    let secret = room.draw.secret;
    let receipt = |ticket_id: TicketId| secret.map_or([0; RECEIPT_BYTES], |secret| secret.receipt(ticket_id.0));
    let entry = |ticket_id: TicketId, joined_at_ms: i64| DrawEntry {
        ticket_number: ticket_id.0,
        receipt: receipt(ticket_id),
        joined_at_ms,
    };
    let drawn_tickets = room.draw.drawn_tickets;
    let (pre_open_total, mut pre_open, mut order, later_total, mut later) = if room.drawn {
        let placed = room.next_order.saturating_sub(1);
        let later_total = placed.saturating_sub(drawn_tickets);
        let pre_open: Vec<DrawEntry> = room
            .tickets
            .values()
            .filter(|ticket| (1..=drawn_tickets).contains(&ticket.order))
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(page_size)
            .map(|ticket| entry(ticket.ticket_id, ticket.joined_at.0))
            .collect();
        let order = by_place(room, offset, drawn_tickets, page_size, 0).into_iter().map(|(id, _)| id).collect();
        let later = by_place(room, offset, later_total, page_size, drawn_tickets)
            .into_iter()
            .map(|(ticket_id, joined_at_ms)| entry(ticket_id, joined_at_ms))
            .collect();
        (drawn_tickets, pre_open, order, later_total, later)
    } else {
        (room.pre_open.len() as u64, Vec::new(), Vec::new(), 0, Vec::new())
    };
    if secret.is_none() {
        // Without a secret nothing proves the order: publish no list to verify, only the figures.
        pre_open.clear();
        order.clear();
        later.clear();
    }
    PublishedDraw {
        key: room.key.clone(),
        algorithm_version: if secret.is_some() { DRAW_ALGORITHM_VERSION } else { 0 },
        commitment: secret.map(|secret| secret.commitment()),
        drawn: room.drawn,
        secret: secret.filter(|_| room.drawn).map(|secret| secret.0),
        pre_open_total,
        pre_open,
        order,
        later_total,
        later,
        offset,
        figures: figures(room, catalog),
    }
}

/// The tickets at places `base + offset + 1` on, at most `page_size` and never past `base + total`, with their join
/// instants. Places are contiguous: every placed ticket stays in the line until it ends.
fn by_place(room: &WaitingRoom, offset: u64, total: u64, page_size: usize, base: u64) -> Vec<(TicketId, i64)> {
    let first = base + offset + 1;
    let count = total.saturating_sub(offset).min(page_size as u64);
    let mut page: Vec<Option<(TicketId, i64)>> = vec![None; count as usize];
    for ticket in room.tickets.values().filter(|ticket| (first..first + count).contains(&ticket.order)) {
        page[(ticket.order - first) as usize] = Some((ticket.ticket_id, ticket.joined_at.0));
    }
    page.into_iter().flatten().collect()
}

fn figures(room: &WaitingRoom, catalog: &Catalog) -> DrawFigures {
    let mut figures = DrawFigures {
        slots_offered: slots_offered(room, catalog),
        tickets_at_draw: room.draw.drawn_tickets,
        sold_out_after_ms: room.draw.sold_out_at.map(|at| at.ms_since(room.key.release_at)),
        admitted: room.admitted_total,
        ..DrawFigures::default()
    };
    for ticket in room.tickets.values() {
        match room.shown_state(ticket) {
            TicketState::Booked => figures.booked += 1,
            TicketState::Expired => figures.expired += 1,
            TicketState::Left => figures.left += 1,
            TicketState::Waiting => figures.waiting += 1,
            TicketState::SoldOut => figures.told_sold_out += 1,
            TicketState::Admitted => {}
        }
    }
    figures
}

/// Slots per pool on the dates this line releases (regular and express: the priority pool is not behind a line).
fn slots_offered(room: &WaitingRoom, catalog: &Catalog) -> Vec<(Pool, u64)> {
    let mut offered: Vec<(Pool, u64)> =
        Pool::ALL.iter().filter(|pool| **pool != Pool::Priority).map(|pool| (*pool, 0)).collect();
    let Some(office) = catalog.office(&room.key.office_id) else { return offered };
    for offset in 0..=room.last_date.days_since(room.first_date).max(0) {
        let date = room.first_date.plus_days(offset);
        let Some(plan) = office.plan(date).filter(|plan| plan.waiting_room && plan.release_at == room.key.release_at)
        else {
            continue;
        };
        for session in plan.sessions {
            for (pool, slots) in &mut offered {
                *slots += u64::from(session.capacity(*pool));
            }
        }
    }
    offered
}
