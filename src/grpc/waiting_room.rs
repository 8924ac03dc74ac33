//! `antrean.v1.WaitingRoomService`: join a line, watch a ticket, leave. Conversions and the watch stream only; the
//! order, admissions and tokens are decided in the core.

use super::EngineHandle;
use super::convert::{self, Violations};
use super::status::overload_status;
use crate::auth::Access;
use crate::domain::{Nik, Rejection, TicketId, TicketState, TicketView};
use crate::engine::Engine;
use crate::limits::{WATCH_INTERVAL_MS, WATCH_STREAMS_MAX};
use crate::proto::{self, waiting_room_service_server::WaitingRoomService};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The waiting-room service.
pub struct WaitingRoomApi {
    engine: EngineHandle,
    watch_streams: Arc<AtomicUsize>,
}

impl WaitingRoomApi {
    /// The service over `engine`.
    #[must_use]
    pub fn new(engine: EngineHandle) -> WaitingRoomApi {
        WaitingRoomApi { engine, watch_streams: Arc::new(AtomicUsize::new(0)) }
    }

    fn engine(&self) -> Result<&Arc<Engine>, Status> {
        self.engine.get()
    }
}

/// A ticket on the wire.
#[must_use]
pub fn ticket(view: &TicketView) -> proto::Ticket {
    let ticket = &view.ticket;
    let admitted = ticket.state == TicketState::Admitted;
    let state = match ticket.state {
        TicketState::Waiting => proto::TicketState::Waiting,
        TicketState::Admitted => proto::TicketState::Admitted,
        TicketState::SoldOut => proto::TicketState::SoldOut,
        TicketState::Expired => proto::TicketState::Expired,
        TicketState::Booked => proto::TicketState::Booked,
        TicketState::Left => proto::TicketState::Left,
    };
    let wait_ms = view.estimated_wait_ms.max(0);
    proto::Ticket {
        ticket_id: ticket.ticket_id.to_string(),
        office_id: view.room.office_id.to_string(),
        position: ticket.order,
        ahead: view.ahead,
        estimated_wait: Some(prost_types::Duration {
            seconds: wait_ms / 1000,
            nanos: ((wait_ms % 1000) * 1_000_000) as i32,
        }),
        state: state as i32,
        admission_token: if admitted { ticket.token_text() } else { String::new() },
        admission_expires_at: admitted.then(|| convert::timestamp(ticket.admission_expires_at)),
        release_at: Some(convert::timestamp(view.room.release_at)),
    }
}

fn ticket_id(violations: &mut Violations, text: &str) -> Option<TicketId> {
    violations.id("ticket_id", text, TicketId::parse, TicketId::RULE)
}

/// Releases a watch-stream place when the stream ends.
struct WatchPlace(Arc<AtomicUsize>);

impl Drop for WatchPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[tonic::async_trait]
impl WaitingRoomService for WaitingRoomApi {
    async fn join(&self, request: Request<proto::JoinRequest>) -> Result<Response<proto::JoinResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let mut violations = Violations::default();
        let request_id = violations.request_id(&request.request_id);
        let office_id = violations.office_id("office_id", &request.office_id);
        let service = violations.service("service", request.service);
        let nik = Nik::parse(&request.nik).map_err(|problem| violations.add("nik", problem.description())).ok();
        for (field, date) in [("first_date", &request.first_date), ("last_date", &request.last_date)] {
            if date.is_some() {
                violations.date(field, date.as_ref());
            }
        }
        let (request_id, office_id, service, nik) =
            violations.finish((|| Some((request_id?, office_id?, service?, nik?)))())?;
        let view = self.engine()?.join(&access.request_id(&request_id), &office_id, service, nik).await?;
        Ok(Response::new(proto::JoinResponse { ticket: Some(ticket(&view)) }))
    }

    type WatchStream = ReceiverStream<Result<proto::WatchResponse, Status>>;

    async fn watch(&self, request: Request<proto::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        let mut violations = Violations::default();
        let ticket_id = ticket_id(&mut violations, &request.ticket_id);
        let ticket_id = violations.finish(ticket_id)?;
        let engine = Arc::clone(self.engine()?);
        let first = engine.ticket(ticket_id).ok_or(Rejection::TicketNotFound(ticket_id))?;
        if self.watch_streams.fetch_add(1, Ordering::AcqRel) >= WATCH_STREAMS_MAX {
            self.watch_streams.fetch_sub(1, Ordering::AcqRel);
            return Err(overload_status("watch_streams"));
        }
        let place = WatchPlace(Arc::clone(&self.watch_streams));
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            let _place = place;
            let mut last = first;
            if sender.send(Ok(proto::WatchResponse { ticket: Some(ticket(&last)) })).await.is_err() {
                return;
            }
            while !last.ticket.state.is_terminal() {
                tokio::time::sleep(Duration::from_millis(WATCH_INTERVAL_MS)).await;
                // A watcher that went away must stop counting as watching, or its ticket would never go idle.
                if sender.is_closed() {
                    return;
                }
                let Some(now) = engine.ticket(ticket_id) else { return };
                if now != last {
                    if sender.send(Ok(proto::WatchResponse { ticket: Some(ticket(&now)) })).await.is_err() {
                        return;
                    }
                    last = now;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn leave(&self, request: Request<proto::LeaveRequest>) -> Result<Response<proto::LeaveResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let mut violations = Violations::default();
        let request_id = violations.request_id(&request.request_id);
        let ticket_id = ticket_id(&mut violations, &request.ticket_id);
        let (request_id, ticket_id) = violations.finish(request_id.zip(ticket_id))?;
        let view = self.engine()?.leave(&access.request_id(&request_id), ticket_id).await?;
        Ok(Response::new(proto::LeaveResponse { ticket: Some(ticket(&view)) }))
    }
}
