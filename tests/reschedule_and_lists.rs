//! Rescheduling, the read side (FindBookings, GetAvailability, GetOfficeStats) and check-in timing, through the real
//! server.

#[path = "common/api.rs"]
mod api;
mod common;

use antrean::proto::{self, PoolCapacity, SessionTemplate, TimeOfDay};
use api::{Admin, Booking, expect_reason};
use common::{Server, applicant, create_office, hold_request, jakarta_date, request_id, test_office};
use std::time::{SystemTime, UNIX_EPOCH};
use tonic::Code;

const OFFICE: &str = "kanim-lists";

async fn start(capacity: u32) -> (Server, Booking, Admin) {
    let server = Server::start();
    let (booking, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, capacity, 7200)).await;
    (server, booking, admin)
}

fn unix_seconds() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64
}

#[tokio::test]
async fn reschedule_moves_the_booking_and_its_slot_in_one_step() {
    let (_server, mut booking, _admin) = start(5).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 2, applicant(1))).await;
    assert_eq!(api::regular_remaining(&mut booking, OFFICE, jakarta_date(2), "1300-1500").await, 4);
    assert_eq!(api::regular_remaining(&mut booking, OFFICE, jakarta_date(3), "1500-1700").await, 5);

    let moved = api::reschedule(&mut booking, &held.booking_id, jakarta_date(3), "1500-1700").await.expect("moved");

    assert_eq!(moved.booking_id, held.booking_id);
    assert_eq!(moved.date, Some(jakarta_date(3)));
    assert_eq!(moved.session_id, "1500-1700");
    assert_eq!(moved.reschedules_used, 1);
    assert_eq!(moved.state, held.state);
    assert_eq!(api::regular_remaining(&mut booking, OFFICE, jakarta_date(2), "1300-1500").await, 5, "old +1");
    assert_eq!(api::regular_remaining(&mut booking, OFFICE, jakarta_date(3), "1500-1700").await, 4, "new -1");
    assert_eq!(api::get_booking(&mut booking, &held.booking_id).await.expect("read"), moved);
}

#[tokio::test]
async fn find_bookings_by_nik_lists_the_applicants_bookings_newest_first() {
    let (_server, mut booking, _admin) = start(5).await;
    let first = api::hold(&mut booking, hold_request(OFFICE, 2, applicant(1))).await;
    api::cancel(&mut booking, &first.booking_id).await.expect("cancel");
    let second = api::hold(&mut booking, hold_request(OFFICE, 3, applicant(1))).await;
    let moved = api::reschedule(&mut booking, &second.booking_id, jakarta_date(4), "1300-1500").await.expect("moved");
    api::hold(&mut booking, hold_request(OFFICE, 2, applicant(2))).await;

    let found = booking
        .find_bookings(proto::FindBookingsRequest { nik: applicant(1).nik })
        .await
        .expect("find")
        .into_inner()
        .bookings;

    let ids: Vec<&str> = found.iter().map(|each| each.booking_id.as_str()).collect();
    assert_eq!(ids, [second.booking_id.as_str(), first.booking_id.as_str()], "newest first, only this applicant");
    assert_eq!(found[0], moved, "the rescheduled booking as it is now");
    assert_eq!(found[1].state, proto::BookingState::Cancelled as i32);
}

#[tokio::test]
async fn check_in_is_refused_before_the_appointment_day() {
    let (_server, mut booking, mut admin) = start(5).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    api::pay(&mut booking, &held.booking_id, "SIMPONI-1").await.expect("pay");

    let status = api::check_in(&mut booking, &held.booking_id).await.expect_err("refused");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "INVALID_STATE");
    assert_eq!(metadata.get("state").map(String::as_str), Some("CONFIRMED"));
    let read = api::get_booking(&mut booking, &held.booking_id).await.expect("read");
    assert_eq!(read.state, proto::BookingState::Confirmed as i32, "unchanged");
    let stats = api::office_stats(&mut admin, OFFICE).await;
    assert_eq!((stats.confirmed, stats.checked_in), (1, 0));
}

#[tokio::test]
async fn office_stats_move_by_exactly_what_each_call_changes() {
    // A day of the test office with capacity 5: 1300-1500 has 5 regular and 2 priority slots, 1500-1700 has 5.
    const DAY_CAPACITY: u64 = 12;
    let (_server, mut booking, mut admin) = start(5).await;
    let empty = api::office_stats(&mut admin, OFFICE).await;
    assert_eq!(empty, proto::GetOfficeStatsResponse { office_id: OFFICE.into(), ..Default::default() });

    let held = api::hold(&mut booking, hold_request(OFFICE, 2, applicant(1))).await;
    let after_hold = api::office_stats(&mut admin, OFFICE).await;
    let expected = proto::GetOfficeStatsResponse {
        capacity: DAY_CAPACITY,
        remaining: DAY_CAPACITY - 1,
        active_holds: 1,
        holds_total: 1,
        ..empty.clone()
    };
    assert_eq!(after_hold, expected, "a hold on a fresh date");

    api::pay(&mut booking, &held.booking_id, "SIMPONI-1").await.expect("pay");
    let after_pay = api::office_stats(&mut admin, OFFICE).await;
    assert_eq!(after_pay, proto::GetOfficeStatsResponse { active_holds: 0, confirmed: 1, ..after_hold.clone() });

    api::reschedule(&mut booking, &held.booking_id, jakarta_date(3), "1500-1700").await.expect("moved");
    let after_move = api::office_stats(&mut admin, OFFICE).await;
    let expected = proto::GetOfficeStatsResponse {
        capacity: 2 * DAY_CAPACITY,
        remaining: 2 * DAY_CAPACITY - 1,
        reschedules_total: 1,
        ..after_pay.clone()
    };
    assert_eq!(after_move, expected, "a reschedule to a fresh date");

    let other = api::hold(&mut booking, hold_request(OFFICE, 3, applicant(2))).await;
    let after_second = api::office_stats(&mut admin, OFFICE).await;
    let expected = proto::GetOfficeStatsResponse {
        remaining: after_move.remaining - 1,
        active_holds: 1,
        holds_total: 2,
        ..after_move.clone()
    };
    assert_eq!(after_second, expected, "a second hold");

    api::cancel(&mut booking, &other.booking_id).await.expect("cancel");
    let after_cancel = api::office_stats(&mut admin, OFFICE).await;
    let expected = proto::GetOfficeStatsResponse {
        remaining: after_second.remaining + 1,
        active_holds: 0,
        cancellations_total: 1,
        ..after_second.clone()
    };
    assert_eq!(after_cancel, expected, "a cancellation");

    api::check_in(&mut booking, &held.booking_id).await.expect_err("not the appointment day");
    assert_eq!(api::office_stats(&mut admin, OFFICE).await, after_cancel, "a refusal changes nothing");
}

/// The states of the 1300-1500 regular pool.
async fn regular_state(booking: &mut Booking, days: i32, session_id: &str) -> (i32, u32, bool) {
    let session = api::session_availability(booking, OFFICE, jakarta_date(days), session_id).await;
    let closed = session.closed;
    let pool = session.pools.into_iter().find(|pool| pool.pool == proto::Pool::Regular as i32).expect("regular pool");
    (pool.state, pool.remaining, closed)
}

#[tokio::test]
async fn availability_reports_open_full_not_yet_open_and_closed() {
    use proto::SessionState::{Closed, Full, NotYetOpen, Open};
    let (_server, mut booking, mut admin) = start(1).await;
    api::hold(&mut booking, hold_request(OFFICE, 3, applicant(1))).await;
    let release_at = prost_types::Timestamp { seconds: unix_seconds() + 3600, nanos: 0 };
    set_schedule(&mut admin, 4, release_at, Vec::new()).await;
    close_date(&mut admin, 5, false).await;

    assert_eq!(regular_state(&mut booking, 2, "1300-1500").await, (Open as i32, 1, false));
    assert_eq!(regular_state(&mut booking, 3, "1300-1500").await, (Full as i32, 0, false));
    assert_eq!(regular_state(&mut booking, 4, "1300-1500").await, (NotYetOpen as i32, 1, false));
    assert_eq!(regular_state(&mut booking, 5, "1300-1500").await, (Closed as i32, 1, true));
    let not_yet = api::session_availability(&mut booking, OFFICE, jakarta_date(4), "1300-1500").await;
    assert_eq!(not_yet.release_at, Some(release_at));

    close_date(&mut admin, 5, true).await;
    assert_eq!(regular_state(&mut booking, 5, "1300-1500").await, (Open as i32, 1, false), "reopened");
}

#[tokio::test]
async fn availability_of_a_session_that_has_started_is_closed() {
    use proto::SessionState::Closed;
    let (_server, mut booking, mut admin) = start(1).await;
    let midnight = SessionTemplate {
        session_id: "0000-0001".into(),
        starts_at: Some(TimeOfDay { hours: 0, minutes: 0 }),
        ends_at: Some(TimeOfDay { hours: 0, minutes: 1 }),
        capacities: vec![PoolCapacity { pool: proto::Pool::Regular as i32, capacity: 3 }],
    };
    let released = prost_types::Timestamp { seconds: unix_seconds() - 86_400 * 2, nanos: 0 };
    set_schedule(&mut admin, 0, released, vec![midnight]).await;

    assert_eq!(regular_state(&mut booking, 0, "0000-0001").await, (Closed as i32, 3, false));
}

#[tokio::test]
async fn availability_lists_sessions_in_date_and_start_order() {
    let (_server, mut booking, _admin) = start(1).await;
    let request = proto::GetAvailabilityRequest {
        office_id: OFFICE.into(),
        service: proto::ServiceType::NewPassport as i32,
        first_date: Some(jakarta_date(1)),
        last_date: Some(jakarta_date(3)),
    };

    let sessions = booking.get_availability(request).await.expect("availability").into_inner().sessions;

    let order: Vec<(proto::Date, String)> =
        sessions.into_iter().map(|session| (session.date.expect("date"), session.session_id)).collect();
    let expected: Vec<(proto::Date, String)> = (1..=3)
        .flat_map(|days| ["1300-1500", "1500-1700"].map(|session| (jakarta_date(days), session.to_owned())))
        .collect();
    assert_eq!(order, expected);
}

async fn set_schedule(
    admin: &mut Admin,
    days: i32,
    release_at: prost_types::Timestamp,
    sessions: Vec<SessionTemplate>,
) {
    let request = proto::SetScheduleRequest {
        request_id: request_id("schedule"),
        office_id: OFFICE.into(),
        first_date: Some(jakarta_date(days)),
        last_date: Some(jakarta_date(days)),
        release_at: Some(release_at),
        sessions,
        ..Default::default()
    };
    admin.set_schedule(request).await.expect("schedule");
}

async fn close_date(admin: &mut Admin, days: i32, reopen: bool) -> proto::CloseDateResponse {
    let request = proto::CloseDateRequest {
        request_id: request_id("close"),
        office_id: OFFICE.into(),
        date: Some(jakarta_date(days)),
        reason: "Idul Fitri".into(),
        reopen,
    };
    admin.close_date(request).await.expect("close").into_inner()
}

#[tokio::test]
async fn list_bookings_follows_a_rescheduled_booking_to_its_new_date() {
    let (_server, mut booking, _admin) = start(5).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 2, applicant(1))).await;

    api::reschedule(&mut booking, &held.booking_id, jakarta_date(3), "1300-1500").await.expect("moved");

    assert!(list_ids(&mut booking, 2).await.is_empty(), "gone from the old date");
    assert_eq!(list_ids(&mut booking, 3).await, [held.booking_id]);
}

#[tokio::test]
async fn bookings_on_a_closed_date_can_be_rescheduled_beyond_the_usual_limit() {
    let (_server, mut booking, mut admin) = start(5).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 2, applicant(1))).await;
    api::reschedule(&mut booking, &held.booking_id, jakarta_date(3), "1300-1500").await.expect("first reschedule");

    let closed = close_date(&mut admin, 3, false).await;
    let moved = api::reschedule(&mut booking, &held.booking_id, jakarta_date(4), "1300-1500").await;

    assert_eq!(closed.bookings_affected, 1);
    let moved = moved.expect("a closure waives the reschedule limit");
    assert_eq!((moved.date, moved.reschedules_used), (Some(jakarta_date(4)), 2));
}

async fn list_ids(booking: &mut Booking, days: i32) -> Vec<String> {
    let request = proto::ListBookingsRequest {
        office_id: OFFICE.into(),
        date: Some(jakarta_date(days)),
        page_size: 0,
        page_token: String::new(),
    };
    let page = booking.list_bookings(request).await.expect("list").into_inner();
    assert!(page.next_page_token.is_empty());
    page.bookings.into_iter().map(|each| each.booking_id).collect()
}
