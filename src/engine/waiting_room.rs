//! The engine's side of the waiting rooms: joining, leaving and reading tickets with durability; who is still there
//! (an open Watch stream, or a recent Join); waking Watch streams once per change of their line; and moving every
//! line on each tick from the slots the quota book reports, ending the lines that are over.
//!
//! Who is watching is observed in `watchers.rs` (it is not state): the decision that a ticket went idle is logged as an event,
//! so replay does not depend on it. Each tick's work is proportional to what changed: the idle check reads only the
//! tickets that went quiet longest ago, lines with nobody in them cost no slot reading, and a Watch stream wakes
//! once per change of its line instead of polling.

use super::Engine;
use super::watchers::{LineSignal, TicketSignal};
use crate::domain::{JoinWish, Presence, Rejection, RequestId, TicketId, TicketView, Timestamp, WaitingRoomKey};
use crate::limits::{IDLE_CHECK_TICKETS_MAX, WAITING_ROOM_STEP_TICKETS_MAX};
use crate::metrics as names;
use std::collections::HashMap;

impl Engine {
    /// Joins the office's waiting room, durably; a retry of `request_id` returns the same ticket.
    pub async fn join(&self, request_id: &RequestId, wish: JoinWish<'_>) -> Result<TicketView, Rejection> {
        let now = self.clock.now();
        let (mut view, position) = self.book.join(request_id, wish, now, &self.events())?;
        if let Some(position) = position {
            self.await_durable(position).await;
        }
        if view.draw_commitment.is_none() && self.commit_draws().await > 0 {
            // The line was scheduled a moment ago and had no secret yet: answer with its commitment and the receipt.
            view = self.peek_ticket(view.ticket.ticket_id).unwrap_or(view);
        }
        self.watchers.seen(view.ticket.ticket_id, now);
        Ok(view)
    }

    /// Leaves a waiting room, durably; a retry of `request_id` gives the same answer.
    pub async fn leave(&self, request_id: &RequestId, ticket_id: TicketId) -> Result<TicketView, Rejection> {
        let now = self.clock.now();
        let (view, position) = self.book.leave(request_id, ticket_id, now, &self.events())?;
        if let Some(position) = position {
            self.await_durable(position).await;
        }
        if view.ticket.state.has_ended() {
            self.watchers.table.lock().forget(ticket_id);
        }
        Ok(view)
    }

    /// A ticket now, without counting as watching (a Watch stream counts by being open).
    #[must_use]
    pub fn peek_ticket(&self, ticket_id: TicketId) -> Option<TicketView> {
        self.book.ticket(ticket_id, self.clock.now())
    }

    /// A ticket now without the draw's commitment and receipt ([`crate::domain::QuotaBook::ticket_glance`]): cheaper,
    /// for a Watch stream deciding whether it has news.
    #[must_use]
    pub fn glance_ticket(&self, ticket_id: TicketId) -> Option<TicketView> {
        self.book.ticket_glance(ticket_id, self.clock.now())
    }

    /// Starts following a ticket with a Watch stream: the ticket now, its line's signal and its own. The ticket counts
    /// as watched until [`Engine::unwatch`].
    pub fn watch(&self, ticket_id: TicketId) -> Option<(TicketView, LineSignal, TicketSignal)> {
        let signal = self.line_signal(ticket_id)?;
        let own = self.watchers.table.lock().open_stream(ticket_id, self.clock.now());
        // Read after subscribing, so no change between the two is missed.
        let Some(view) = self.peek_ticket(ticket_id) else {
            self.unwatch(ticket_id);
            return None;
        };
        Some((view, signal, own))
    }

    /// The signal of the line that holds `ticket_id` now (it may have moved to another release instant), or `None`
    /// when the ticket is gone.
    pub fn line_signal(&self, ticket_id: TicketId) -> Option<LineSignal> {
        let view = self.peek_ticket(ticket_id)?;
        Some(self.watchers.signal(&view.room, ticket_id))
    }

    /// A Watch stream of `ticket_id` ended.
    pub fn unwatch(&self, ticket_id: TicketId) {
        let now = self.clock.now();
        let ended = self.peek_ticket(ticket_id).is_none_or(|view| view.ticket.state.has_ended());
        let mut table = self.watchers.table.lock();
        table.close_stream(ticket_id, now);
        if ended && table.tickets.get(&ticket_id).is_some_and(|seen| seen.streams == 0) {
            table.forget(ticket_id);
        }
    }

    /// Moves every line on; checks for idle tickets and ends the lines that are over when `check_idle`.
    pub(super) async fn advance_waiting_rooms(&self, check_idle: bool) {
        // Lines without a secret (recovered from an earlier build) get one before their draw can be made.
        self.commit_draws().await;
        let now = self.clock.now();
        self.adopt_present_tickets();
        let log = self.events();
        let mut last_position = None;
        let mut changed_tickets = Vec::new();
        let mut idle = if check_idle { self.idle_tickets(now) } else { HashMap::new() };
        if check_idle {
            for key in self.book.finished_waiting_rooms(now) {
                let Some((position, tickets)) = self.book.finish_waiting_room(&key, now, &log) else { continue };
                tracing::info!(office = %key.office_id, release_at = %key.release_at, tickets = tickets.len(),
                    "waiting room ended: none of its dates can be booked through it any more");
                last_position = Some(position);
                // The waiting room took its tickets with it: so does the watchers table.
                let mut table = self.watchers.table.lock();
                for ticket_id in tickets {
                    table.forget(ticket_id);
                }
                if table.tickets.len() < table.tickets.capacity() / 4 {
                    table.tickets.shrink_to_fit();
                }
            }
            let mut table = self.watchers.table.lock();
            let trim_due = table.trim_at.is_some_and(|at| at <= now);
            if last_position.is_some() {
                // The joins' request ids stay remembered for their retention: give their memory back after it too.
                let forgotten_at = now.plus_ms(self.book.rules().request_retention_ms + FORGET_PASS_MS);
                table.trim_at = Some(forgotten_at);
            } else if trim_due {
                table.trim_at = None;
            }
            if last_position.is_some() || trim_due {
                tokio::task::spawn_blocking(release_freed_memory);
            }
        }
        for key in self.book.waiting_room_keys() {
            if !self.book.waiting_room_busy(&key, now) {
                continue;
            }
            let idle = idle.remove(&key).unwrap_or_default();
            let supply = self.book.supply(&key, now);
            if let Some(advanced) = self.book.advance_waiting_room(&key, supply, &idle, now, &log) {
                last_position = Some(advanced.position);
                changed_tickets.extend(advanced.changed);
                let office = key.office_id.to_string();
                let admissions = advanced.waited_ms.len() as u64;
                metrics::counter!(names::WAITING_ROOM_ADMISSIONS_TOTAL, "office" => office.clone())
                    .increment(admissions);
                let wait = metrics::histogram!(names::WAITING_ROOM_WAIT_SECONDS, "office" => office);
                for waited_ms in advanced.waited_ms {
                    wait.record(waited_ms as f64 / 1000.0);
                }
            }
        }
        if let Some(position) = last_position {
            self.await_durable(position).await;
        }
        // Only once the changes are durable may a stream show them (an admission token, for one).
        self.watchers.wake_tickets(&changed_tickets);
        self.watchers.notify(&self.book.waiting_room_changes()).await;
    }

    /// Registers, once after start-up, every ticket still in line as seen when it joined or at start-up, whichever is
    /// later: a restart gives everyone a full idle period to come back.
    fn adopt_present_tickets(&self) {
        if std::mem::replace(&mut self.watchers.table.lock().adopted, true) {
            return;
        }
        let present = self.book.present_tickets();
        let mut table = self.watchers.table.lock();
        for (ticket_id, joined_at) in present {
            if !table.tickets.contains_key(&ticket_id) {
                table.seen(ticket_id, joined_at.max(self.started_at));
            }
        }
    }

    /// Waiting tickets nobody has watched for the idle time, by line, once their line's release instant has come.
    /// Tickets that ended are forgotten; tickets of lines not yet released are looked at again at the release.
    fn idle_tickets(&self, now: Timestamp) -> HashMap<WaitingRoomKey, Vec<TicketId>> {
        let idle_ttl = self.book.rules().ticket_idle_ttl_ms;
        let quiet_since = now.plus_ms(-idle_ttl);
        let quiet: Vec<TicketId> = {
            let table = self.watchers.table.lock();
            let quiet = table.quiet.iter().take_while(|(seen_at, _)| *seen_at <= quiet_since);
            quiet.map(|(_, ticket_id)| *ticket_id).take(IDLE_CHECK_TICKETS_MAX).collect()
        };
        let mut idle: HashMap<WaitingRoomKey, Vec<TicketId>> = HashMap::new();
        if quiet.is_empty() {
            return idle;
        }
        let presence = self.book.presence(&quiet, now);
        let mut table = self.watchers.table.lock();
        for (ticket_id, presence) in presence {
            match presence {
                Presence::Waiting { room, released: true } => {
                    let expiring = idle.entry(room).or_default();
                    // One step expires at most this many: the rest stay at the front of the quiet index for the next
                    // pass, instead of being forgotten without expiring.
                    if expiring.len() < WAITING_ROOM_STEP_TICKETS_MAX {
                        expiring.push(ticket_id);
                        table.forget(ticket_id);
                    }
                }
                Presence::Waiting { room, released: false } => {
                    table.check_again(ticket_id, room.release_at.plus_ms(-idle_ttl));
                }
                Presence::Admitted => table.check_again(ticket_id, now),
                Presence::Gone => table.forget(ticket_id),
            }
        }
        idle
    }
}

/// How long after a request id's retention it is forgotten at the latest (the engine looks about every 10 s), with a
/// margin.
const FORGET_PASS_MS: i64 = 15_000;

/// Gives the heap pages freed by an ended line back to the system, so the process's memory returns to what it was
/// before the line (glibc keeps freed memory otherwise).
#[allow(unsafe_code)]
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the kernel; it has no preconditions and touches no
    // memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}
