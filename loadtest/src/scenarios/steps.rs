//! The steps a user's journey is made of (hold, pay, cancel, read), each one gRPC call that is measured, counted
//! and written to the ledger. Scenarios compose them; a step never decides what comes next.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tonic::Status;

use crate::check::Ledger;
use crate::client::{Clients, is_ambiguous, outcome_of, proto_date, timestamp};
use crate::nik::ApplicantGenerator;
use crate::proto;
use crate::recorder::{Outcome, Recorder};
use crate::scenarios::fixture::{Fixture, POOL, SERVICE, Unit};

/// Everything a step needs; cheap to share.
pub struct Steps {
    /// Connections to the server.
    pub clients: Arc<Clients>,
    /// Where calls are measured.
    pub recorder: Arc<Recorder>,
    /// What the server answered.
    pub ledger: Arc<Ledger>,
    /// The quota of the run.
    pub fixture: Arc<Fixture>,
    /// Prefix of every id this run sends.
    pub run_id: String,
    /// The run's applicants.
    pub applicants: ApplicantGenerator,
}

impl Steps {
    /// Records `result` of `rpc` sent (or due) at `started`, and returns it.
    fn measure<T>(&self, rpc: &'static str, started: Instant, result: Result<T, Status>) -> Result<T, Status> {
        let outcome = match &result {
            Ok(_) => Outcome::OK,
            Err(status) => outcome_of(status),
        };
        self.recorder.record(rpc, started, &outcome);
        result
    }

    /// The hold request of user `user` (attempt `attempt` of that user) for a slot of `unit`.
    pub fn hold_request(&self, user: u64, attempt: u32, unit: &Unit, admission_token: &str) -> proto::HoldRequest {
        let applicant = self.applicants.applicant(user);
        proto::HoldRequest {
            request_id: format!("lt-{}-h{user}-{attempt}", self.run_id),
            office_id: self.fixture.offices[unit.office].clone(),
            service: SERVICE as i32,
            date: Some(proto_date(unit.date)),
            session_id: unit.session_id.to_string(),
            pool: POOL as i32,
            applicant: Some(proto::Applicant {
                nik: applicant.nik,
                full_name: applicant.full_name,
                birth_date: Some(proto_date(applicant.birth_date)),
                has_disability: false,
            }),
            account_id: format!("lt-{}-a{user}", self.run_id),
            admission_token: admission_token.to_string(),
        }
    }

    /// Holds a slot of `unit` for user `user` (attempt `attempt` of that user), as due at `started`.
    pub async fn hold(
        &self,
        user: u64,
        attempt: u32,
        unit: &Unit,
        admission_token: &str,
        started: Instant,
    ) -> Result<proto::Booking, Status> {
        let request = self.hold_request(user, attempt, unit, admission_token);
        let result = self.clients.booking().hold(request).await;
        let result =
            self.measure("Hold", started, result.map(|response| response.into_inner().booking.unwrap_or_default()));
        match &result {
            Ok(booking) => self.ledger.observe(booking),
            Err(status) if is_ambiguous(status.code()) => self.recorder.count("hold_ambiguous", 1),
            Err(_) => {}
        }
        result
    }

    /// Pays for `booking_id` with a reference unique to (`tag`, `user`); `rpc` names the measurement.
    pub async fn confirm(
        &self,
        rpc: &'static str,
        tag: &str,
        user: u64,
        booking_id: &str,
    ) -> Result<proto::ConfirmPaymentResponse, Status> {
        let request = proto::ConfirmPaymentRequest {
            request_id: format!("lt-{}-{tag}{user}", self.run_id),
            booking_id: booking_id.to_string(),
            payment_reference: format!("PAY-{}-{tag}{user}", self.run_id),
            paid_at: Some(timestamp(SystemTime::now())),
        };
        let started = Instant::now();
        let result = self.clients.booking().confirm_payment(request).await.map(tonic::Response::into_inner);
        let result = self.measure(rpc, started, result);
        self.observe(booking_id, result.as_ref().map(|response| response.booking.as_ref()));
        result
    }

    /// Cancels `booking_id` for user `user`.
    pub async fn cancel(&self, tag: &str, user: u64, booking_id: &str) -> Result<proto::CancelResponse, Status> {
        let request = proto::CancelRequest {
            request_id: format!("lt-{}-{tag}{user}", self.run_id),
            booking_id: booking_id.to_string(),
        };
        let started = Instant::now();
        let result = self.clients.booking().cancel(request).await.map(tonic::Response::into_inner);
        let result = self.measure("Cancel", started, result);
        self.observe(booking_id, result.as_ref().map(|response| response.booking.as_ref()));
        result
    }

    /// Reads the availability of every scheduled date of office number `office`, as due at `started`.
    pub async fn availability(
        &self,
        office: usize,
        started: Instant,
    ) -> Result<proto::GetAvailabilityResponse, Status> {
        let request = proto::GetAvailabilityRequest {
            office_id: self.fixture.offices[office].clone(),
            service: SERVICE as i32,
            first_date: self.fixture.dates.first().copied().map(proto_date),
            last_date: self.fixture.dates.last().copied().map(proto_date),
        };
        let result = self.clients.booking().get_availability(request).await.map(tonic::Response::into_inner);
        self.measure("GetAvailability", started, result)
    }

    /// Reads one booking, as due at `started`.
    pub async fn get_booking(&self, booking_id: &str, started: Instant) -> Result<proto::Booking, Status> {
        let request = proto::GetBookingRequest { booking_id: booking_id.to_string() };
        let result = self.clients.booking().get_booking(request).await;
        self.measure("GetBooking", started, result.map(|response| response.into_inner().booking.unwrap_or_default()))
    }

    /// Joins office number `office`'s waiting room for user `user` (call `attempt` of that user), as due at
    /// `started`; `rpc` names the measurement (`Join` for the first call, `Join(poll)` for the repeats that read the
    /// ticket).
    pub async fn join(
        &self,
        rpc: &'static str,
        office: usize,
        user: u64,
        attempt: u32,
        started: Instant,
    ) -> Result<proto::Ticket, Status> {
        let request = proto::JoinRequest {
            request_id: format!("lt-{}-j{user}-{attempt}", self.run_id),
            office_id: self.fixture.offices[office].clone(),
            service: SERVICE as i32,
            nik: self.applicants.applicant(user).nik,
            first_date: self.fixture.dates.first().copied().map(proto_date),
            last_date: self.fixture.dates.last().copied().map(proto_date),
            party_size: 1,
        };
        let result = self.clients.waiting_room().join(request).await;
        self.measure(rpc, started, result.map(|response| response.into_inner().ticket.unwrap_or_default()))
    }

    /// Gives up the place in line of `ticket_id` for user `user`.
    pub async fn leave(&self, user: u64, ticket_id: &str) -> Result<proto::Ticket, Status> {
        let request =
            proto::LeaveRequest { request_id: format!("lt-{}-l{user}", self.run_id), ticket_id: ticket_id.to_string() };
        let started = Instant::now();
        let result = self.clients.waiting_room().leave(request).await;
        self.measure("Leave", started, result.map(|response| response.into_inner().ticket.unwrap_or_default()))
    }

    /// Opens a Watch stream on `ticket_id` (the opening is measured as `Watch`).
    pub async fn watch(&self, ticket_id: &str) -> Result<tonic::Streaming<proto::WatchResponse>, Status> {
        let started = Instant::now();
        let request = proto::WatchRequest { ticket_id: ticket_id.to_string() };
        let result = self.clients.waiting_room_stream().watch(request).await;
        self.measure("Watch", started, result.map(tonic::Response::into_inner))
    }

    fn observe(&self, booking_id: &str, result: Result<Option<&proto::Booking>, &Status>) {
        match result {
            Ok(Some(booking)) => self.ledger.observe(booking),
            Ok(None) => self.ledger.ambiguous(booking_id),
            Err(status) if is_ambiguous(status.code()) => self.ledger.ambiguous(booking_id),
            Err(_) => {}
        }
    }
}

/// Whether a rejection says the session is not bookable yet (before its release instant).
pub fn is_not_yet_open(status: &Status) -> bool {
    has_reason(status, &["NOT_YET_OPEN", "NOT_OPEN"], &["not yet open", "not open yet", "not yet released"])
}

/// Whether a rejection says the session (pool) has no slot left.
pub fn is_session_full(status: &Status) -> bool {
    has_reason(status, &["SESSION_FULL", "POOL_FULL", "FULL"], &["session full", "is full", "no slot"])
}

fn has_reason(status: &Status, reasons: &[&str], phrases: &[&str]) -> bool {
    let outcome = outcome_of(status);
    if let Some(reason) = outcome.reason {
        return reasons.iter().any(|wanted| reason == *wanted || reason.ends_with(&format!("_{wanted}")));
    }
    let message = status.message().to_ascii_lowercase();
    phrases.iter().any(|phrase| message.contains(phrase))
}
