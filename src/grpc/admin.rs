//! `antrean.v1.AdminService`: offices, schedules, closures, statistics and refunds. Conversions only; the engine and
//! the core decide.

use super::EngineHandle;
use super::convert::{self, Violations};
use crate::auth::Access;
use crate::domain::{Command, Reply, RequestId, ScheduleRule};
use crate::engine::Engine;
use crate::limits::{DISPLAY_TEXT_CHARS_MAX, SCHEDULE_DAYS_MAX};
use crate::proto::{self, admin_service_server::AdminService};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The admin service.
pub struct AdminApi {
    engine: EngineHandle,
}

impl AdminApi {
    /// The service over `engine`.
    #[must_use]
    pub fn new(engine: EngineHandle) -> AdminApi {
        AdminApi { engine }
    }

    fn engine(&self) -> Result<&Arc<Engine>, Status> {
        self.engine.get()
    }

    /// Executes `command` under the caller's own request id.
    async fn run(&self, access: &Access, request_id: &RequestId, command: Command) -> Result<Reply, Status> {
        self.engine()?.execute(&access.request_id(request_id), &command).await.map_err(Status::from)
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn upsert_office(
        &self,
        request: Request<proto::UpsertOfficeRequest>,
    ) -> Result<Response<proto::UpsertOfficeResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let mut violations = Violations::default();
        let request_id = violations.request_id(&request.request_id);
        let settings = violations.office(request.office.as_ref());
        let (request_id, settings) = violations.finish(request_id.zip(settings))?;
        let office_id = settings.office_id.clone();
        let created = match self.run(&access, &request_id, Command::UpsertOffice(settings)).await? {
            Reply::OfficeUpserted { created } => created,
            other => unreachable!("an upsert answers OfficeUpserted, not {other:?}"),
        };
        let office = self.engine()?.book().office(&office_id).map(|office| convert::office(&office));
        Ok(Response::new(proto::UpsertOfficeResponse { office, created }))
    }

    async fn set_schedule(
        &self,
        request: Request<proto::SetScheduleRequest>,
    ) -> Result<Response<proto::SetScheduleResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let mut violations = Violations::default();
        let request_id = violations.request_id(&request.request_id);
        let office_id = violations.office_id("office_id", &request.office_id);
        let first = violations.date("first_date", request.first_date.as_ref());
        let last = violations.date("last_date", request.last_date.as_ref());
        if let (Some(first), Some(last)) = (first, last)
            && !(0..SCHEDULE_DAYS_MAX).contains(&last.days_since(first))
        {
            violations.add(
                "last_date",
                format!("must be on or after first_date, at most {} days after", SCHEDULE_DAYS_MAX - 1),
            );
        }
        let release_at = violations.timestamp("release_at", request.release_at.as_ref());
        let sessions = if request.sessions.is_empty() {
            Some(None)
        } else {
            violations.sessions("sessions", &request.sessions).map(Some)
        };
        let (request_id, command) = violations.finish((|| {
            let rule = ScheduleRule {
                first_date: first?,
                last_date: last?,
                release_at: release_at?,
                sessions: sessions?,
                waiting_room: request.waiting_room,
            };
            Some((request_id?, Command::SetSchedule { office_id: office_id?, rule }))
        })())?;
        match self.run(&access, &request_id, command).await? {
            Reply::ScheduleSet { dates_scheduled } => Ok(Response::new(proto::SetScheduleResponse { dates_scheduled })),
            other => unreachable!("a schedule answers ScheduleSet, not {other:?}"),
        }
    }

    async fn close_date(
        &self,
        request: Request<proto::CloseDateRequest>,
    ) -> Result<Response<proto::CloseDateResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let mut violations = Violations::default();
        let request_id = violations.request_id(&request.request_id);
        let office_id = violations.office_id("office_id", &request.office_id);
        let date = violations.date("date", request.date.as_ref());
        let reason = request.reason.trim().to_owned();
        if reason.chars().count() > DISPLAY_TEXT_CHARS_MAX || !crate::domain::is_plain_text(&reason) {
            violations.add("reason", format!("must be up to {DISPLAY_TEXT_CHARS_MAX} printable characters"));
        }
        let (request_id, command) = violations.finish((|| {
            Some((
                request_id?,
                Command::CloseDate { office_id: office_id?, date: date?, reason, reopen: request.reopen },
            ))
        })())?;
        match self.run(&access, &request_id, command).await? {
            Reply::DateClosed { bookings_affected } => {
                Ok(Response::new(proto::CloseDateResponse { bookings_affected }))
            }
            other => unreachable!("a closure answers DateClosed, not {other:?}"),
        }
    }

    async fn get_office_stats(
        &self,
        request: Request<proto::GetOfficeStatsRequest>,
    ) -> Result<Response<proto::GetOfficeStatsResponse>, Status> {
        let request = request.into_inner();
        let mut violations = Violations::default();
        let office_id = violations.office_id("office_id", &request.office_id);
        let office_id = violations.finish(office_id)?;
        let stats = self.engine()?.book().office_stats(&office_id)?;
        Ok(Response::new(convert::office_stats(&office_id, &stats)))
    }

    async fn list_refunds(
        &self,
        request: Request<proto::ListRefundsRequest>,
    ) -> Result<Response<proto::ListRefundsResponse>, Status> {
        let request = request.into_inner();
        let mut violations = Violations::default();
        let office_id = if request.office_id.is_empty() {
            Some(None)
        } else {
            violations.office_id("office_id", &request.office_id).map(Some)
        };
        let limit = convert::page_size(&mut violations, request.page_size);
        let skip = if request.page_token.is_empty() { Some(0) } else { request.page_token.parse::<usize>().ok() };
        if skip.is_none() {
            violations.add("page_token", "must be a next_page_token from a previous response");
        }
        let (office_id, skip) = violations.finish(office_id.zip(skip))?;
        let (refunds, more) = self.engine()?.book().list_refunds(office_id.as_ref(), skip, limit);
        let next_page_token = if more { (skip + refunds.len()).to_string() } else { String::new() };
        Ok(Response::new(proto::ListRefundsResponse {
            refunds: refunds.iter().map(convert::refund).collect(),
            next_page_token,
        }))
    }

    async fn purge_bookings(
        &self,
        request: Request<proto::PurgeBookingsRequest>,
    ) -> Result<Response<proto::PurgeBookingsResponse>, Status> {
        let access = Access::of(request.extensions());
        let request = request.into_inner();
        let mut violations = Violations::default();
        let request_id = violations.request_id(&request.request_id);
        let before = violations.date("before_date", request.before_date.as_ref());
        let engine = self.engine()?;
        let today = crate::domain::Zone::resolve("UTC").map(|utc| utc.date_at(engine.now()));
        if let (Some(before), Some(today)) = (before, today)
            && before >= today
        {
            violations.add("before_date", "must be before today: only past appointments are purged");
        }
        let (request_id, before) = violations.finish(request_id.zip(before))?;
        match self.run(&access, &request_id, Command::PurgeBookings { before }).await? {
            Reply::Purged { bookings_purged } => Ok(Response::new(proto::PurgeBookingsResponse { bookings_purged })),
            other => unreachable!("a purge answers Purged, not {other:?}"),
        }
    }
}
