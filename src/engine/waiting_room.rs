//! The engine's side of the waiting rooms: joining, leaving and reading tickets with durability, remembering who is
//! still watching, and moving every line on each tick from the slots the quota book reports.
//!
//! Who is watching is observed (it is not state; `watchers.rs`): the decision that a ticket went idle is logged as an
//! event, so replay does not depend on it.

use super::{Engine, WalEvents};
use crate::domain::{Nik, OfficeId, Rejection, RequestId, ServiceType, TicketId, TicketView};
use crate::limits::IDLE_CHECK_TICKETS_MAX;
use crate::metrics as names;

impl Engine {
    /// Joins the office's waiting room, durably; a retry of `request_id` returns the same ticket.
    pub async fn join(
        &self,
        request_id: &RequestId,
        office_id: &OfficeId,
        service: ServiceType,
        nik: Nik,
    ) -> Result<TicketView, Rejection> {
        let now = self.clock.now();
        let (view, position) = self.book.join(request_id, office_id, service, nik, now, &WalEvents(&self.wal))?;
        if let Some(position) = position {
            self.await_durable(position).await;
        }
        self.watchers.seen(view.ticket.ticket_id, now);
        Ok(view)
    }

    /// Leaves a waiting room, durably; a retry of `request_id` gives the same answer.
    pub async fn leave(&self, request_id: &RequestId, ticket_id: TicketId) -> Result<TicketView, Rejection> {
        let now = self.clock.now();
        let (view, position) = self.book.leave(request_id, ticket_id, now, &WalEvents(&self.wal))?;
        if let Some(position) = position {
            self.await_durable(position).await;
        }
        Ok(view)
    }

    /// A ticket now; reading it counts as watching.
    pub fn ticket(&self, ticket_id: TicketId) -> Option<TicketView> {
        let now = self.clock.now();
        let view = self.book.ticket(ticket_id, now)?;
        self.watchers.seen(ticket_id, now);
        Some(view)
    }

    /// Moves every line on; checks for idle tickets when `check_idle`.
    pub(super) async fn advance_waiting_rooms(&self, check_idle: bool) {
        let now = self.clock.now();
        let idle_ttl = self.book.rules().ticket_idle_ttl_ms;
        let mut last_position = None;
        for key in self.book.waiting_room_keys() {
            if now < key.release_at {
                continue;
            }
            let idle: Vec<TicketId> = if check_idle {
                self.book
                    .waiting_tickets(&key, IDLE_CHECK_TICKETS_MAX)
                    .into_iter()
                    .filter(|(ticket_id, joined_at)| {
                        let seen = self.watchers.last_seen(*ticket_id).unwrap_or(*joined_at).max(self.started_at);
                        now.ms_since(seen) >= idle_ttl
                    })
                    .map(|(ticket_id, _)| ticket_id)
                    .collect()
            } else {
                Vec::new()
            };
            let supply = self.book.supply(&key);
            if let Some(advanced) = self.book.advance_waiting_room(&key, supply, &idle, now, &WalEvents(&self.wal)) {
                last_position = Some(advanced.position);
                let office = key.office_id.to_string();
                let admissions = advanced.waited_ms.len() as u64;
                metrics::counter!(names::WAITING_ROOM_ADMISSIONS_TOTAL, "office" => office.clone())
                    .increment(admissions);
                let wait = metrics::histogram!(names::WAITING_ROOM_WAIT_SECONDS, "office" => office);
                for waited_ms in advanced.waited_ms {
                    wait.record(waited_ms as f64 / 1000.0);
                }
            }
            self.watchers.forget(&idle);
        }
        if let Some(position) = last_position {
            self.await_durable(position).await;
        }
    }
}
