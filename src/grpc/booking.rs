//! `antrean.v1.BookingService`: converts each request, hands it to the engine, converts the answer. No business
//! logic lives here.

use super::EngineHandle;
use super::convert::{self, Violations};
use super::hold::{self, HoldParts, hold_command};
use super::{amendment, check};
use crate::auth::hoarding::SessionPool;
use crate::auth::status::hoarding_status;
use crate::auth::{Access, HoldLimiter, HoldRequestKeys};
use crate::domain::{Booking, BookingId, Command, Date, Nik, OfficeId, Outcome, Rejection, Reply, RequestId, Zone};
use crate::engine::Engine;
use crate::metrics as names;
use crate::proto::{self, booking_service_server::BookingService};
use std::sync::{Arc, OnceLock};
use tonic::{Request, Response, Status};

/// The booking service.
pub struct BookingApi {
    engine: EngineHandle,
    hold_limiter: Arc<HoldLimiter>,
}

impl BookingApi {
    /// The service over `engine`, with holds counted by `hold_limiter`.
    #[must_use]
    pub fn new(engine: EngineHandle, hold_limiter: Arc<HoldLimiter>) -> BookingApi {
        BookingApi { engine, hold_limiter }
    }

    fn engine(&self) -> Result<&Arc<Engine>, Status> {
        self.engine.get()
    }

    /// Today's date in UTC, to refuse birth dates in the future.
    fn today(now: crate::domain::Timestamp) -> Date {
        static UTC: OnceLock<Zone> = OnceLock::new();
        UTC.get_or_init(|| Zone::resolve("UTC").expect("bundled UTC")).date_at(now)
    }

    /// The office id as a metric label: only offices in the catalogue, so labels stay a closed set.
    fn office_label(engine: &Engine, office_id: &str) -> String {
        match OfficeId::parse(office_id) {
            Some(id) if engine.book().catalog().office(&id).is_some() => id.to_string(),
            _ => "unknown".to_owned(),
        }
    }

    /// The office of the booking `command` acts on (present or purged) as a metric label, `unknown` when there is none.
    fn booking_office_label(engine: &Engine, command: &Command) -> String {
        let office = command.booking_id().and_then(|booking_id| engine.book().office_of(booking_id));
        office.map_or_else(|| "unknown".to_owned(), |office_id| office_id.to_string())
    }

    /// Executes `command` under the caller's own request id.
    async fn run(&self, access: &Access, request_id: &RequestId, command: Command) -> Result<Reply, Status> {
        self.engine()?.execute(&access.request_id(request_id), &command).await.map_err(Status::from)
    }

    /// The booking `booking_id` when it exists and the caller reaches it, `None` when it does not exist (the engine
    /// then answers, with NOT_FOUND or a retry's remembered answer), and NOT_FOUND when the caller does not reach it:
    /// another caller's booking, or another office's, is answered as one that does not exist.
    fn reachable(&self, access: &Access, booking_id: BookingId) -> Result<Option<Booking>, Status> {
        let Some((booking, owner)) = self.engine()?.book().booking_with_owner(booking_id) else { return Ok(None) };
        access.check_booking(&booking, owner.as_deref())?;
        Ok(Some(booking))
    }

    /// Counts a hold against the anti-hoarding limits of `access`'s caller, the account and every applicant. With
    /// every limit off (the open demo) there is nothing to count; the session pool is named only when shares count.
    fn reserve_hold(
        &self,
        access: &Access,
        command: &Command,
        now: crate::domain::Timestamp,
        office: &str,
    ) -> Result<Option<crate::auth::hoarding::Reservation>, Status> {
        let Command::Hold(hold) = command else { return Ok(None) };
        if self.hold_limiter.limits_nothing() {
            return Ok(None);
        }
        let applicants: Vec<Nik> = hold.applicants.iter().map(|applicant| applicant.nik).collect();
        let slot = &hold.slot;
        let session_key = self
            .hold_limiter
            .counts_session_shares()
            .then(|| format!("{}/{}/{}/{}", slot.office_id, slot.date, slot.session_id, slot.pool.name()));
        let capacity = match &session_key {
            // Read through the catalogue's `Arc`: cloning the office (its plans and closures) cost more than the check.
            Some(_) => self.engine()?.book().catalog().office(&slot.office_id).and_then(|office| {
                let plan = office.plan(slot.date)?;
                plan.sessions
                    .iter()
                    .find(|session| session.session_id == slot.session_id)
                    .map(|session| session.capacity(slot.pool))
            }),
            None => None,
        };
        let session = session_key.as_deref().zip(capacity).map(|(key, capacity)| SessionPool { key, capacity });
        let keys = HoldRequestKeys {
            caller: &access.caller,
            account: hold.account_id.as_str(),
            applicants: &applicants,
            session,
        };
        self.hold_limiter.reserve(&keys, now.0).map(Some).map_err(|refusal| {
            metrics::counter!(names::HOARDING_REFUSALS_TOTAL, "scope" => refusal.scope.label()).increment(1);
            metrics::counter!(names::HOLDS_TOTAL, "office" => office.to_owned(), "outcome" => "rate_limited")
                .increment(1);
            hoarding_status(&refusal)
        })
    }

    async fn hold_any(&self, request: HoldParts<'_>, access: &Access) -> Result<Reply, Status> {
        let engine = self.engine()?;
        let office = BookingApi::office_label(engine, request.office_id);
        // One reading of the clock for the conversion and the checks before the engine (which reads its own).
        let now = engine.now();
        let converted = hold_command(&request, BookingApi::today(now));
        let outcome: Outcome = match converted {
            Ok((request_id, command)) => {
                // A request id the book remembers is answered from memory (a retry) or refused (a reuse): it takes no
                // slot, so it is neither counted nor refused by the anti-hoarding limits.
                let request_id = access.request_id(&request_id);
                let reservation = if engine.book().remembers(&request_id, now) {
                    None
                } else {
                    self.reserve_hold(access, &command, now, &office)?
                };
                let outcome = engine.execute(&request_id, &command).await;
                if let (Err(_), Some(reservation)) = (&outcome, reservation) {
                    self.hold_limiter.release(reservation);
                }
                outcome
            }
            Err(rejection) => Err(rejection),
        };
        let label = match &outcome {
            Ok(_) => "held",
            Err(rejection) => rejection.label(),
        };
        metrics::counter!(names::HOLDS_TOTAL, "office" => office, "outcome" => label).increment(1);
        outcome.map_err(Status::from)
    }
}

fn booking_reply(reply: Reply, reveal_nik: bool) -> proto::Booking {
    match reply {
        Reply::Booking(booking) | Reply::Paid { booking, .. } => convert::booking(&booking, reveal_nik),
        Reply::Held { bookings, .. } => {
            bookings.first().map(|booking| convert::booking(booking, reveal_nik)).unwrap_or_default()
        }
        other => unreachable!("booking commands answer with a booking, not {other:?}"),
    }
}

#[tonic::async_trait]
impl BookingService for BookingApi {
    async fn list_offices(
        &self,
        _request: Request<proto::ListOfficesRequest>,
    ) -> Result<Response<proto::ListOfficesResponse>, Status> {
        let catalog = self.engine()?.book().catalog();
        let offices = catalog.offices.values().map(convert::office).collect();
        Ok(Response::new(proto::ListOfficesResponse { offices }))
    }

    async fn get_availability(
        &self,
        request: Request<proto::GetAvailabilityRequest>,
    ) -> Result<Response<proto::GetAvailabilityResponse>, Status> {
        let request = request.into_inner();
        let mut violations = Violations::default();
        let office_id = violations.office_id("office_id", &request.office_id);
        let service = violations.service("service", request.service);
        let first = violations.date("first_date", request.first_date.as_ref());
        let last = violations.date("last_date", request.last_date.as_ref());
        let (office_id, service, first, last) = violations.finish((|| Some((office_id?, service?, first?, last?)))())?;
        let now = self.engine()?.now();
        let sessions = self.engine()?.book().availability(&office_id, service, first, last, now)?;
        Ok(Response::new(proto::GetAvailabilityResponse {
            sessions: sessions.iter().map(convert::availability).collect(),
        }))
    }

    async fn hold(&self, request: Request<proto::HoldRequest>) -> Result<Response<proto::HoldResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let reply = self.hold_any(hold::single(&request), &access).await?;
        Ok(Response::new(proto::HoldResponse { booking: Some(booking_reply(reply, access.reveal_nik)) }))
    }

    async fn hold_group(
        &self,
        request: Request<proto::HoldGroupRequest>,
    ) -> Result<Response<proto::HoldGroupResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        match self.hold_any(hold::group(&request), &access).await? {
            Reply::Held { bookings, group_id } => Ok(Response::new(proto::HoldGroupResponse {
                bookings: bookings.iter().map(|booking| convert::booking(booking, access.reveal_nik)).collect(),
                group_id: group_id.map(|group| group.to_string()).unwrap_or_default(),
            })),
            other => unreachable!("a hold answers Held, not {other:?}"),
        }
    }

    async fn confirm_payment(
        &self,
        request: Request<proto::ConfirmPaymentRequest>,
    ) -> Result<Response<proto::ConfirmPaymentResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let mut violations = Violations::default();
        let request_id = violations.request_id(&request.request_id);
        let booking_id = violations.booking_id(&request.booking_id);
        let payment_reference = violations.payment_reference(&request.payment_reference);
        let paid_at = violations.optional_timestamp("paid_at", request.paid_at.as_ref());
        let (request_id, command) = violations.finish((|| {
            let command = Command::ConfirmPayment {
                booking_id: booking_id?,
                payment_reference: payment_reference?,
                paid_at: paid_at?,
            };
            Some((request_id?, command))
        })())?;
        if matches!(command, Command::ConfirmPayment { paid_at: Some(_), .. }) {
            access.check_attests_payment_time()?;
        }
        let engine = self.engine()?;
        if let Some(booking_id) = command.booking_id() {
            self.reachable(&access, booking_id)?;
        }
        let office = BookingApi::booking_office_label(engine, &command);
        let execution = engine.execute_detailed(&access.request_id(&request_id), &command).await;
        let label = match &execution.outcome {
            Ok(Reply::Paid { revived: true, .. }) => "revived",
            Ok(Reply::Paid { in_grace: true, .. }) => "honoured_in_grace",
            Ok(Reply::PaymentRepeated { .. }) => "repeated",
            Ok(_) => "confirmed",
            Err(Rejection::PaymentExpired { .. }) => "refused_expired",
            Err(Rejection::AlreadyPaid { .. }) => "duplicate",
            Err(rejection) if rejection.refund_reason().is_some() => "refused_refunded",
            Err(_) => "refused",
        };
        metrics::counter!(names::PAYMENTS_TOTAL, "office" => office.clone(), "outcome" => label).increment(1);
        // A refund is counted once, by the call that recorded it (logged now, not a retry or a re-delivery).
        if let Err(rejection) = &execution.outcome
            && let Some(reason) = rejection.refund_reason()
            && execution.log_position.is_some()
            && !execution.repeated
        {
            metrics::counter!(names::REFUNDS_RECORDED_TOTAL, "office" => office, "reason" => reason.name())
                .increment(1);
        }
        match execution.outcome? {
            Reply::Paid { booking, revived, .. } => Ok(Response::new(proto::ConfirmPaymentResponse {
                booking: Some(convert::booking(&booking, access.reveal_nik)),
                revived,
                already_applied: false,
            })),
            Reply::PaymentRepeated { booking } => Ok(Response::new(proto::ConfirmPaymentResponse {
                booking: booking.map(|booking| convert::booking(&booking, access.reveal_nik)),
                revived: false,
                already_applied: true,
            })),
            other => unreachable!("a payment answers Paid or PaymentRepeated, not {other:?}"),
        }
    }

    async fn cancel(&self, request: Request<proto::CancelRequest>) -> Result<Response<proto::CancelResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let (request_id, booking_id) = request_and_booking(&request.request_id, &request.booking_id)?;
        self.reachable(&access, booking_id)?;
        let reply = self.run(&access, &request_id, Command::Cancel { booking_id }).await?;
        let booking = booking_reply(reply, access.reveal_nik);
        metrics::counter!(names::CANCELLATIONS_TOTAL, "office" => booking.office_id.clone()).increment(1);
        Ok(Response::new(proto::CancelResponse { booking: Some(booking) }))
    }

    async fn reschedule(
        &self,
        request: Request<proto::RescheduleRequest>,
    ) -> Result<Response<proto::RescheduleResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let mut violations = Violations::default();
        let request_id = violations.request_id(&request.request_id);
        let booking_id = violations.booking_id(&request.booking_id);
        let date = violations.date("date", request.date.as_ref());
        let session_id = violations.session_id("session_id", &request.session_id);
        let (request_id, command) = violations.finish((|| {
            Some((request_id?, Command::Reschedule { booking_id: booking_id?, date: date?, session_id: session_id? }))
        })())?;
        if let Some(booking_id) = command.booking_id() {
            self.reachable(&access, booking_id)?;
        }
        let booking = booking_reply(self.run(&access, &request_id, command).await?, access.reveal_nik);
        metrics::counter!(names::RESCHEDULES_TOTAL, "office" => booking.office_id.clone()).increment(1);
        Ok(Response::new(proto::RescheduleResponse { booking: Some(booking) }))
    }

    async fn check_in(
        &self,
        request: Request<proto::CheckInRequest>,
    ) -> Result<Response<proto::CheckInResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let (request_id, booking_id) = request_and_booking(&request.request_id, &request.booking_id)?;
        self.reachable(&access, booking_id)?;
        let reply = self.run(&access, &request_id, Command::CheckIn { booking_id }).await?;
        let booking = booking_reply(reply, access.reveal_nik);
        metrics::counter!(names::CHECK_INS_TOTAL, "office" => booking.office_id.clone()).increment(1);
        Ok(Response::new(proto::CheckInResponse { booking: Some(booking) }))
    }

    async fn get_booking(
        &self,
        request: Request<proto::GetBookingRequest>,
    ) -> Result<Response<proto::GetBookingResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let mut violations = Violations::default();
        let booking_id = violations.booking_id(&request.booking_id);
        let booking_id = violations.finish(booking_id)?;
        let booking = self.reachable(&access, booking_id)?.ok_or(Rejection::BookingNotFound(booking_id))?;
        Ok(Response::new(proto::GetBookingResponse { booking: Some(convert::booking(&booking, access.reveal_nik)) }))
    }

    async fn list_bookings(
        &self,
        request: Request<proto::ListBookingsRequest>,
    ) -> Result<Response<proto::ListBookingsResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let mut violations = Violations::default();
        let office_id = violations.office_id("office_id", &request.office_id);
        let date = violations.date("date", request.date.as_ref());
        let limit = convert::page_size(&mut violations, request.page_size);
        let after = if request.page_token.is_empty() {
            Some(None)
        } else {
            violations
                .id("page_token", &request.page_token, crate::domain::BookingId::parse, "a next_page_token")
                .map(Some)
        };
        let (office_id, date, after) = violations.finish((|| Some((office_id?, date?, after?)))())?;
        access.check_office(&office_id)?;
        let (bookings, more) = self.engine()?.book().list_bookings(&office_id, date, after, limit)?;
        let next_page_token = match (more, bookings.last()) {
            (true, Some(last)) => last.booking_id.to_string(),
            _ => String::new(),
        };
        let bookings = bookings.iter().map(|booking| convert::booking(booking, access.reveal_nik)).collect();
        Ok(Response::new(proto::ListBookingsResponse { bookings, next_page_token }))
    }

    async fn check_applicant(
        &self,
        request: Request<proto::CheckApplicantRequest>,
    ) -> Result<Response<proto::CheckApplicantResponse>, Status> {
        self.check(request).await
    }

    async fn amend_booking(
        &self,
        request: Request<proto::AmendBookingRequest>,
    ) -> Result<Response<proto::AmendBookingResponse>, Status> {
        self.amend(request).await
    }

    async fn find_bookings(
        &self,
        request: Request<proto::FindBookingsRequest>,
    ) -> Result<Response<proto::FindBookingsResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let nik = Nik::parse(&request.nik).map_err(|problem| Rejection::invalid("nik", problem.description()))?;
        let book = self.engine()?.book();
        let reached = |booking: &&Booking| {
            let owner = book.booking_with_owner(booking.booking_id).and_then(|(_, owner)| owner);
            access.reaches(booking, owner.as_deref())
        };
        let bookings = book.find_bookings(nik);
        Ok(Response::new(proto::FindBookingsResponse {
            bookings: bookings
                .iter()
                .filter(reached)
                .map(|booking| convert::booking(booking, access.reveal_nik))
                .collect(),
        }))
    }
}

impl BookingApi {
    /// `CheckApplicant`: the hold converted by the code `Hold` uses, then checked by the book without holding.
    async fn check(
        &self,
        request: Request<proto::CheckApplicantRequest>,
    ) -> Result<Response<proto::CheckApplicantResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let engine = self.engine()?;
        let parts = check::hold_parts(&request)?;
        let now = engine.now();
        let (_, command) = hold_command(&parts, BookingApi::today(now))?;
        let Command::Hold(hold) = command else { unreachable!("a hold request converts to a hold") };
        let found = engine.book().check_hold(&hold, now)?;
        Ok(Response::new(check::response(&found, access.reveal_nik)))
    }

    /// `AmendBooking`: converted, the booking's reach checked, executed, and counted by outcome.
    async fn amend(
        &self,
        request: Request<proto::AmendBookingRequest>,
    ) -> Result<Response<proto::AmendBookingResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let engine = self.engine()?;
        let (request_id, command) = amendment::amend_command(&request).inspect_err(|rejection| {
            metrics::counter!(names::AMENDMENTS_TOTAL, "office" => "unknown", "outcome" => rejection.label())
                .increment(1);
        })?;
        if let Some(booking_id) = command.booking_id() {
            self.reachable(&access, booking_id)?;
        }
        let office = BookingApi::booking_office_label(engine, &command);
        let execution = engine.execute_detailed(&access.request_id(&request_id), &command).await;
        let label = match &execution.outcome {
            Ok(_) if execution.repeated => "repeated",
            Ok(_) => "amended",
            Err(rejection) => rejection.label(),
        };
        metrics::counter!(names::AMENDMENTS_TOTAL, "office" => office, "outcome" => label).increment(1);
        let booking = booking_reply(execution.outcome?, access.reveal_nik);
        Ok(Response::new(proto::AmendBookingResponse { booking: Some(booking) }))
    }
}

fn request_and_booking(request_id: &str, booking_id: &str) -> Result<(RequestId, BookingId), Status> {
    let mut violations = Violations::default();
    let request_id = violations.request_id(request_id);
    let booking_id = violations.booking_id(booking_id);
    violations.finish(request_id.zip(booking_id)).map_err(Status::from)
}
