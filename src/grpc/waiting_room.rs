//! `antrean.v1.WaitingRoomService`: join a line, watch a ticket, leave. Conversions and the watch stream only; the
//! order, admissions and tokens are decided in the core.
//!
//! A Watch stream sleeps until its line changes (the engine wakes every stream of a line once per change, after the
//! change is durable), then reads its ticket and sends what is news: a change of state, place or admission at once,
//! the countdown at most once per `WATCH_COUNTDOWN_INTERVAL_MS`. It never polls.

use super::EngineHandle;
use super::convert::{self, Violations};
use super::status::overload_status;
use crate::auth::Access;
use crate::domain::{Date, JoinWish, Nik, Rejection, TicketId, TicketState, TicketView};
use crate::engine::Engine;
use crate::engine::watchers::{LineSignal, TicketSignal};
use crate::limits::{GROUP_APPLICANTS_MAX, WATCH_COUNTDOWN_INTERVAL_MS, WATCH_STREAMS_MAX};
use crate::proto::{self, waiting_room_service_server::WaitingRoomService};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
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
    let state = super::convert::ticket_state(ticket.state);
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
        party_size: u32::from(ticket.party_size),
        admitted_party_size: if admitted { u32::from(ticket.admitted_party) } else { 0 },
        draw_commitment: view.draw_commitment.map(Vec::from).unwrap_or_default(),
        receipt: view.receipt.map(Vec::from).unwrap_or_default(),
    }
}

fn ticket_id(violations: &mut Violations, text: &str) -> Option<TicketId> {
    violations.id("ticket_id", text, TicketId::parse, TicketId::RULE)
}

/// The dates a Join names: `first_date` alone is that one date, `last_date` alone the dates up to it.
fn wished_dates(violations: &mut Violations, request: &proto::JoinRequest) -> Option<(Date, Date)> {
    let first = request.first_date.as_ref().and_then(|date| violations.date("first_date", Some(date)));
    let last = request.last_date.as_ref().and_then(|date| violations.date("last_date", Some(date)));
    let dates = match (first, last) {
        (Some(first), Some(last)) => Some((first, last)),
        (Some(only), None) | (None, Some(only)) => Some((only, only)),
        (None, None) => None,
    };
    if dates.is_some_and(|(first, last)| last < first) {
        violations.add("last_date", "must be on or after first_date");
    }
    dates
}

/// The party size of a Join: 0 means 1.
fn party_size(violations: &mut Violations, party_size: u32) -> u8 {
    match party_size {
        0 => 1,
        size if size as usize <= GROUP_APPLICANTS_MAX => size as u8,
        _ => {
            violations.add("party_size", format!("must be 1 to {GROUP_APPLICANTS_MAX}"));
            1
        }
    }
}

/// Releases a watch-stream place when the stream ends.
struct WatchPlace(Arc<AtomicUsize>);

impl Drop for WatchPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Tells the engine when a Watch stream ends, however it ends.
struct Following {
    engine: Arc<Engine>,
    ticket_id: TicketId,
}

impl Drop for Following {
    fn drop(&mut self) {
        self.engine.unwatch(self.ticket_id);
    }
}

type WatchSender = mpsc::Sender<Result<proto::WatchResponse, Status>>;

/// Follows a ticket until it ends or the caller goes away: waits for its own news or its line's (the engine wakes the
/// line's streams at most once a second, the ticket's at once when a step changed its state; `watchers.rs`), reads
/// it, sends what is new.
///
/// A wake-up is kept cheap: it compares a glance of the ticket (no draw commitment or receipt, whose hashes are made
/// only for a message) with what was last sent, and the countdown's timer is one per stream, reset after each message,
/// not made anew at every wake-up.
async fn follow(
    engine: &Engine,
    ticket_id: TicketId,
    first: TicketView,
    (mut signal, mut own): (LineSignal, TicketSignal),
    sender: &WatchSender,
) {
    let mut own_open = true;
    let countdown = Duration::from_millis(WATCH_COUNTDOWN_INTERVAL_MS);
    if sender.send(Ok(proto::WatchResponse { ticket: Some(ticket(&first)) })).await.is_err() {
        return;
    }
    let (mut shown, mut shown_at, mut countdown_pending) = (without_proofs(first), Instant::now(), false);
    let countdown_due = tokio::time::sleep_until((shown_at + countdown).into());
    tokio::pin!(countdown_due);
    while !shown.ticket.state.has_ended() {
        tokio::select! {
            () = sender.closed() => return,
            changed = signal.changed() => {
                if changed.is_err() {
                    // The line moved to another release instant, or ended: follow the ticket to where it is now.
                    let Some(moved) = engine.line_signal(ticket_id) else { break };
                    signal = moved;
                }
            }
            changed = own.changed(), if own_open => {
                // Closed when the ticket is forgotten (it ended, or its line did): look at it once more, then rely on
                // the line's signal.
                own_open = changed.is_ok();
            }
            () = &mut countdown_due, if countdown_pending => {}
        }
        let Some(now) = engine.glance_ticket(ticket_id) else { break };
        if now == shown {
            countdown_pending = false;
            continue;
        }
        if !is_news(&shown, &now) && shown_at.elapsed() < countdown {
            countdown_pending = true;
            continue;
        }
        // Something to send: the ticket whole, with its proofs.
        let Some(now) = engine.peek_ticket(ticket_id) else { break };
        if sender.send(Ok(proto::WatchResponse { ticket: Some(ticket(&now)) })).await.is_err() {
            return;
        }
        (shown, shown_at, countdown_pending) = (without_proofs(now), Instant::now(), false);
        countdown_due.as_mut().reset((shown_at + countdown).into());
    }
    if !shown.ticket.state.has_ended() {
        let _ = sender.send(Err(Status::from(Rejection::TicketNotFound(ticket_id)))).await;
    }
}

/// `view` as a glance shows it (no commitment or receipt), to compare with glances.
fn without_proofs(view: TicketView) -> TicketView {
    TicketView { draw_commitment: None, receipt: None, ..view }
}

/// Whether `now` differs from `shown` in more than the countdown (`ahead`, `estimated_wait`).
fn is_news(shown: &TicketView, now: &TicketView) -> bool {
    shown.ticket != now.ticket || shown.room != now.room
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
        let dates = wished_dates(&mut violations, &request);
        let party_size = party_size(&mut violations, request.party_size);
        let (request_id, office_id, service, nik) =
            violations.finish((|| Some((request_id?, office_id?, service?, nik?)))())?;
        let wish = JoinWish { office_id: &office_id, service, nik, party_size, dates };
        let view = self.engine()?.join(&access.request_id(&request_id), wish).await?;
        Ok(Response::new(proto::JoinResponse { ticket: Some(ticket(&view)) }))
    }

    type WatchStream = ReceiverStream<Result<proto::WatchResponse, Status>>;

    async fn watch(&self, request: Request<proto::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        let mut violations = Violations::default();
        let ticket_id = ticket_id(&mut violations, &request.ticket_id);
        let ticket_id = violations.finish(ticket_id)?;
        let engine = Arc::clone(self.engine()?);
        if self.watch_streams.fetch_add(1, Ordering::AcqRel) >= WATCH_STREAMS_MAX {
            self.watch_streams.fetch_sub(1, Ordering::AcqRel);
            return Err(overload_status("watch_streams"));
        }
        let place = WatchPlace(Arc::clone(&self.watch_streams));
        let (first, signal, own) =
            engine.watch(ticket_id).ok_or_else(|| Status::from(Rejection::TicketNotFound(ticket_id)))?;
        let following = Following { engine: Arc::clone(&engine), ticket_id };
        let (sender, receiver) = mpsc::channel(2);
        tokio::spawn(async move {
            let (_place, _following) = (place, following);
            follow(&engine, ticket_id, first, (signal, own), &sender).await;
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

    async fn get_draw(
        &self,
        request: Request<proto::GetDrawRequest>,
    ) -> Result<Response<proto::GetDrawResponse>, Status> {
        super::draw::get_draw(self.engine()?, request.get_ref()).map(Response::new)
    }
}
