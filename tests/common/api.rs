//! Helpers shared by the black-box API tests: calls that need only a booking id, reads of one pool's availability and
//! of office figures, the rich error details of a refusal, and polling with a deadline.
//!
//! Declare it beside the harness with `#[path = "common/api.rs"] mod api;` (the harness's `mod.rs` stays untouched).

#![allow(dead_code)]

use crate::common::request_id;
use antrean::proto::admin_service_client::AdminServiceClient;
use antrean::proto::booking_service_client::BookingServiceClient;
use antrean::proto::{self, Date};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The booking client.
pub type Booking = BookingServiceClient<Channel>;
/// The admin client.
pub type Admin = AdminServiceClient<Channel>;

/// Checks that `status` carries `code` and an `ErrorInfo` with `reason` in the antrean domain, and returns the
/// `ErrorInfo.metadata`.
#[track_caller]
pub fn expect_reason(status: &Status, code: Code, reason: &str) -> HashMap<String, String> {
    assert_eq!(status.code(), code, "code of {status:?}");
    let details = status.get_error_details();
    let info = details.error_info().unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "reason of {status:?}");
    assert_eq!(info.domain, "antrean", "domain of {status:?}");
    info.metadata.clone()
}

/// Checks that `status` is INVALID_ARGUMENT and returns the fields its `BadRequest` names.
#[track_caller]
pub fn bad_fields(status: &Status) -> BTreeSet<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "code of {status:?}");
    let details = status.get_error_details();
    let bad_request = details.bad_request().unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    bad_request.field_violations.iter().map(|violation| violation.field.clone()).collect()
}

/// The description the `BadRequest` of `status` gives for `field`.
#[track_caller]
pub fn violation_description(status: &Status, field: &str) -> String {
    let details = status.get_error_details();
    let bad_request = details.bad_request().unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    bad_request
        .field_violations
        .iter()
        .find(|violation| violation.field == field)
        .unwrap_or_else(|| panic!("no violation of {field} in {status:?}"))
        .description
        .clone()
}

/// A set of field names, for comparing with [`bad_fields`].
pub fn fields(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// Holds and returns the booking, panicking on a refusal.
pub async fn hold(booking: &mut Booking, request: proto::HoldRequest) -> proto::Booking {
    booking.hold(request).await.expect("hold").into_inner().booking.expect("booking")
}

/// Pays `booking_id` with `reference`.
pub async fn pay(
    booking: &mut Booking,
    booking_id: &str,
    reference: &str,
) -> Result<proto::ConfirmPaymentResponse, Status> {
    let request = proto::ConfirmPaymentRequest {
        request_id: request_id("pay"),
        booking_id: booking_id.to_owned(),
        payment_reference: reference.to_owned(),
        paid_at: None,
    };
    booking.confirm_payment(request).await.map(tonic::Response::into_inner)
}

/// Cancels `booking_id`.
pub async fn cancel(booking: &mut Booking, booking_id: &str) -> Result<proto::Booking, Status> {
    let request = proto::CancelRequest { request_id: request_id("cancel"), booking_id: booking_id.to_owned() };
    booking.cancel(request).await.map(|response| response.into_inner().booking.expect("booking"))
}

/// Moves `booking_id` to `session_id` on `date`.
pub async fn reschedule(
    booking: &mut Booking,
    booking_id: &str,
    date: Date,
    session_id: &str,
) -> Result<proto::Booking, Status> {
    let request = proto::RescheduleRequest {
        request_id: request_id("reschedule"),
        booking_id: booking_id.to_owned(),
        date: Some(date),
        session_id: session_id.to_owned(),
    };
    booking.reschedule(request).await.map(|response| response.into_inner().booking.expect("booking"))
}

/// Checks in `booking_id`.
pub async fn check_in(booking: &mut Booking, booking_id: &str) -> Result<proto::Booking, Status> {
    let request = proto::CheckInRequest { request_id: request_id("check-in"), booking_id: booking_id.to_owned() };
    booking.check_in(request).await.map(|response| response.into_inner().booking.expect("booking"))
}

/// Reads `booking_id`.
pub async fn get_booking(booking: &mut Booking, booking_id: &str) -> Result<proto::Booking, Status> {
    let request = proto::GetBookingRequest { booking_id: booking_id.to_owned() };
    booking.get_booking(request).await.map(|response| response.into_inner().booking.expect("booking"))
}

/// The availability of one session on one date, for the new-passport service.
pub async fn session_availability(
    booking: &mut Booking,
    office_id: &str,
    date: Date,
    session_id: &str,
) -> proto::SessionAvailability {
    let request = proto::GetAvailabilityRequest {
        office_id: office_id.to_owned(),
        service: proto::ServiceType::NewPassport as i32,
        first_date: Some(date),
        last_date: Some(date),
    };
    let sessions = booking.get_availability(request).await.expect("availability").into_inner().sessions;
    sessions
        .into_iter()
        .find(|session| session.session_id == session_id)
        .unwrap_or_else(|| panic!("no session {session_id} on {date:?}"))
}

/// The availability of one pool of one session on one date.
pub async fn pool_availability(
    booking: &mut Booking,
    office_id: &str,
    date: Date,
    session_id: &str,
    pool: proto::Pool,
) -> proto::PoolAvailability {
    let session = session_availability(booking, office_id, date, session_id).await;
    session
        .pools
        .into_iter()
        .find(|each| each.pool == pool as i32)
        .unwrap_or_else(|| panic!("no {pool:?} pool in session {session_id} on {date:?}"))
}

/// Slots left in the regular pool of one session.
pub async fn regular_remaining(booking: &mut Booking, office_id: &str, date: Date, session_id: &str) -> u32 {
    pool_availability(booking, office_id, date, session_id, proto::Pool::Regular).await.remaining
}

/// The figures of `office_id`.
pub async fn office_stats(admin: &mut Admin, office_id: &str) -> proto::GetOfficeStatsResponse {
    let request = proto::GetOfficeStatsRequest { office_id: office_id.to_owned() };
    admin.get_office_stats(request).await.expect("office stats").into_inner()
}

/// Schedules `date` at `office_id` (its plan's sessions) to open `release_in` from now, behind a waiting room when
/// `waiting_room`; returns the release instant as time since the Unix epoch, in whole seconds.
pub async fn schedule_release(
    admin: &mut Admin,
    office_id: &str,
    date: Date,
    release_in: Duration,
    waiting_room: bool,
) -> Duration {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    let release = Duration::from_secs((since_epoch + release_in).as_secs());
    admin
        .set_schedule(proto::SetScheduleRequest {
            request_id: request_id("schedule"),
            office_id: office_id.to_owned(),
            first_date: Some(date),
            last_date: Some(date),
            release_at: Some(prost_types::Timestamp { seconds: release.as_secs() as i64, nanos: 0 }),
            sessions: Vec::new(),
            waiting_room,
        })
        .await
        .expect("schedule");
    release
}

/// Every refund of `office_id`, following page tokens.
pub async fn refunds(admin: &mut Admin, office_id: &str) -> Vec<proto::Refund> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = proto::ListRefundsRequest { office_id: office_id.to_owned(), page_size: 10, page_token };
        let page = admin.list_refunds(request).await.expect("list refunds").into_inner();
        all.extend(page.refunds);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

/// Calls `probe` every 20 ms until it returns `Some`, failing after `limit`.
pub async fn poll<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `booking_id` reads as EXPIRED (the expiry ticker runs every 100 ms), at most 10 s.
pub async fn await_expired(booking: &mut Booking, booking_id: &str) -> proto::Booking {
    poll(Duration::from_secs(10), "the hold to expire", || {
        let mut booking = booking.clone();
        let booking_id = booking_id.to_owned();
        async move {
            let read = get_booking(&mut booking, &booking_id).await.expect("get booking");
            (read.state == proto::BookingState::Expired as i32).then_some(read)
        }
    })
    .await
}

/// An applicant whose NIK encodes `birth` (a man's NIK), distinct per `serial` below 10 000.
pub fn applicant_born(serial: u32, birth: Date) -> proto::Applicant {
    assert!(serial < 10_000, "serial is four digits");
    proto::Applicant {
        nik: format!("317101{:02}{:02}{:02}{serial:04}", birth.day, birth.month, birth.year.rem_euclid(100)),
        full_name: format!("Applicant born {}-{}-{} #{serial}", birth.year, birth.month, birth.day),
        birth_date: Some(birth),
        has_disability: false,
    }
}
