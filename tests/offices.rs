//! Offices through the real server: a schedule opens only the office's working days, a change of session times that
//! bookings depend on is refused with their count, and schedules for past dates do not pile up against the limit.

#[path = "common/api.rs"]
mod api;
mod common;

use antrean::limits::SCHEDULES_PER_OFFICE_MAX;
use antrean::proto::{self, Date, TimeOfDay};
use api::{Admin, Booking, expect_reason};
use common::{Options, Server, applicant, create_office, hold_request, jakarta_date, request_id, test_office};
use std::time::{SystemTime, UNIX_EPOCH};
use tonic::Code;

const OFFICE: &str = "kanim-offices";

async fn start(office: proto::Office) -> (Server, Booking, Admin) {
    let server = Server::start_with(Options { args: vec!["--fsync".into(), "none".into()], ..Options::default() });
    let (booking, mut admin) = server.clients().await;
    create_office(&mut admin, office).await;
    (server, booking, admin)
}

/// ISO weekday of a date (1 = Monday).
fn weekday(date: &Date) -> i8 {
    let civil = jiff::civil::date(date.year as i16, date.month as i8, date.day as i8);
    civil.weekday().to_monday_one_offset()
}

fn schedule(first: Date, last: Date, release_unix_seconds: i64) -> proto::SetScheduleRequest {
    proto::SetScheduleRequest {
        request_id: request_id("schedule"),
        office_id: OFFICE.into(),
        first_date: Some(first),
        last_date: Some(last),
        release_at: Some(prost_types::Timestamp { seconds: release_unix_seconds, nanos: 0 }),
        sessions: Vec::new(),
        waiting_room: false,
    }
}

fn an_hour_ago() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64 - 3_600
}

#[tokio::test]
async fn a_schedule_over_a_whole_week_opens_only_the_working_days() {
    let mut office = test_office(OFFICE, 5, 7200);
    office.working_weekdays = vec![1, 2, 3, 4, 5];
    let (_server, mut booking, mut admin) = start(office).await;
    let saturday = (1..=7).map(jakarta_date).find(|date| weekday(date) == 6).expect("a Saturday this week");
    let week = (1..=7).map(jakarta_date).collect::<Vec<_>>();

    let set = admin.set_schedule(schedule(week[0], week[6], an_hour_ago())).await.expect("schedule").into_inner();

    assert_eq!(set.dates_scheduled, 5, "Monday to Friday only");
    let status = booking.hold(hold_request(OFFICE, 0, applicant(1)).with_date(saturday)).await.expect_err("closed");
    expect_reason(&status, Code::NotFound, "SESSION_NOT_FOUND");
    let request = proto::GetAvailabilityRequest {
        office_id: OFFICE.into(),
        service: proto::ServiceType::NewPassport as i32,
        first_date: Some(saturday),
        last_date: Some(saturday),
    };
    let sessions = booking.get_availability(request).await.expect("availability").into_inner().sessions;
    assert!(sessions.is_empty(), "{sessions:?}");
}

#[tokio::test]
async fn moving_a_session_that_has_bookings_is_refused_with_their_count() {
    let (_server, mut booking, mut admin) = start(test_office(OFFICE, 5, 7200)).await;
    api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    let paid = api::hold(&mut booking, hold_request(OFFICE, 2, applicant(2))).await;
    api::pay(&mut booking, &paid.booking_id, "SIMPONI-1").await.expect("pay");
    let mut moved = test_office(OFFICE, 5, 7200);
    moved.sessions[0].starts_at = Some(TimeOfDay { hours: 14, minutes: 0 });
    moved.sessions[0].ends_at = Some(TimeOfDay { hours: 16, minutes: 0 });
    moved.sessions[1].starts_at = Some(TimeOfDay { hours: 16, minutes: 0 });
    moved.sessions[1].ends_at = Some(TimeOfDay { hours: 18, minutes: 0 });

    let request = proto::UpsertOfficeRequest { request_id: request_id("move"), office: Some(moved) };
    let status = admin.upsert_office(request).await.expect_err("refused");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "SESSIONS_HAVE_BOOKINGS");
    assert_eq!(metadata.get("bookings_affected").map(String::as_str), Some("2"));
    let read = api::get_booking(&mut booking, &paid.booking_id).await.expect("read");
    assert_eq!(read.session_starts_at, paid.session_starts_at, "nothing moved");
    let mut free = test_office(OFFICE, 5, 7200);
    free.sessions[1].starts_at = Some(TimeOfDay { hours: 15, minutes: 30 });
    let request = proto::UpsertOfficeRequest { request_id: request_id("move-free"), office: Some(free) };
    admin.upsert_office(request).await.expect("the 15:00 session has no bookings: it may move");
}

#[tokio::test]
async fn schedules_for_past_dates_do_not_count_against_the_limit() {
    let (_server, _booking, mut admin) = start(test_office(OFFICE, 5, 7200)).await;
    let yesterday = jakarta_date(-1);
    for index in 0..=SCHEDULES_PER_OFFICE_MAX {
        let set = admin.set_schedule(schedule(jakarta_date(-30), yesterday, an_hour_ago())).await;
        set.unwrap_or_else(|status| panic!("schedule {index}: {status:?}"));
    }
    let future = admin.set_schedule(schedule(jakarta_date(1), jakarta_date(2), an_hour_ago())).await;
    future.expect("a schedule for the future still fits");
}

/// A hold request for another date.
trait WithDate {
    fn with_date(self, date: Date) -> Self;
}

impl WithDate for proto::HoldRequest {
    fn with_date(mut self, date: Date) -> proto::HoldRequest {
        self.date = Some(date);
        self
    }
}
