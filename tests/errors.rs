//! Every refusal through the wire: its gRPC code, its `ErrorInfo` reason and metadata, or the `BadRequest` listing
//! every bad field.

#[path = "common/api.rs"]
mod api;
mod common;

use antrean::proto::{self, Date};
use api::{Admin, Booking, bad_fields, expect_reason, fields};
use common::{Server, applicant, create_office, hold_request, jakarta_date, request_id, test_office};
use std::time::{SystemTime, UNIX_EPOCH};
use tonic::Code;

const OFFICE: &str = "kanim-errors";

/// A server with the test office of `capacity` regular slots and the given payment window, and no settlement grace, so
/// that a hold's slot returns at its deadline (the grace has tests of its own in `payments.rs`).
async fn start(capacity: u32, payment_window_seconds: i64) -> (Server, Booking, Admin) {
    let config = "[booking]\npayment_settlement_grace_seconds = 0\n".to_owned();
    let server = Server::start_with(common::Options { config: Some(config), ..common::Options::default() });
    let (booking, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, capacity, payment_window_seconds)).await;
    (server, booking, admin)
}

#[tokio::test]
async fn hold_with_four_bad_fields_reports_all_four_at_once() {
    let (_server, mut booking, _admin) = start(5, 7200).await;
    let mut request = hold_request(OFFICE, 1, applicant(1));
    let applicant = request.applicant.as_mut().expect("applicant");
    applicant.nik = "12345".into();
    applicant.full_name = "   ".into();
    request.date = Some(Date { year: 2030, month: 2, day: 30 });
    request.pool = proto::Pool::Unspecified as i32;

    let status = booking.hold(request).await.expect_err("refused");

    assert_eq!(bad_fields(&status), fields(&["applicant.nik", "applicant.full_name", "date", "pool"]));
}

#[tokio::test]
async fn nik_encoding_another_birth_date_is_invalid() {
    let (_server, mut booking, _admin) = start(5, 7200).await;
    let mut someone = applicant(1);
    someone.birth_date = Some(Date { year: 1985, month: 8, day: 18 });

    let status = booking.hold(hold_request(OFFICE, 1, someone)).await.expect_err("refused");

    assert_eq!(bad_fields(&status), fields(&["applicant.nik"]));
    let description = api::violation_description(&status, "applicant.nik");
    assert!(description.contains("does not match"), "{description}");
}

#[tokio::test]
async fn womans_nik_with_forty_added_to_the_day_is_accepted() {
    let (_server, mut booking, _admin) = start(5, 7200).await;
    let woman = proto::Applicant {
        nik: "3171015708850002".into(),
        full_name: "Siti Aminah".into(),
        birth_date: Some(Date { year: 1985, month: 8, day: 17 }),
        has_disability: false,
    };

    let held = api::hold(&mut booking, hold_request(OFFICE, 1, woman.clone())).await;

    assert_eq!(held.state, proto::BookingState::AwaitingPayment as i32);
    assert_eq!(held.applicant.expect("applicant").nik, woman.nik);
}

#[tokio::test]
async fn unknown_office_is_not_found() {
    let (_server, mut booking, mut admin) = start(5, 7200).await;

    let status = booking.hold(hold_request("kanim-nowhere", 1, applicant(1))).await.expect_err("refused");
    let metadata = expect_reason(&status, Code::NotFound, "OFFICE_NOT_FOUND");
    assert_eq!(metadata.get("office_id").map(String::as_str), Some("kanim-nowhere"));

    let stats = proto::GetOfficeStatsRequest { office_id: "kanim-nowhere".into() };
    let status = admin.get_office_stats(stats).await.expect_err("refused");
    expect_reason(&status, Code::NotFound, "OFFICE_NOT_FOUND");
}

#[tokio::test]
async fn unknown_booking_is_not_found() {
    let (_server, mut booking, _admin) = start(5, 7200).await;

    let absent = antrean::domain::BookingId(999_999).to_string();
    let status = api::get_booking(&mut booking, &absent).await.expect_err("refused");
    let metadata = expect_reason(&status, Code::NotFound, "BOOKING_NOT_FOUND");
    assert_eq!(metadata.get("booking_id"), Some(&absent));

    let status = api::cancel(&mut booking, &absent).await.expect_err("refused");
    expect_reason(&status, Code::NotFound, "BOOKING_NOT_FOUND");
}

#[tokio::test]
async fn unknown_session_is_not_found() {
    let (_server, mut booking, _admin) = start(5, 7200).await;
    let mut request = hold_request(OFFICE, 1, applicant(1));
    request.session_id = "0700-0800".into();

    let status = booking.hold(request).await.expect_err("refused");

    let metadata = expect_reason(&status, Code::NotFound, "SESSION_NOT_FOUND");
    assert_eq!(metadata.get("session_id").map(String::as_str), Some("0700-0800"));
    assert!(metadata.contains_key("date"), "{metadata:?}");
}

#[tokio::test]
async fn second_active_booking_of_an_applicant_already_exists() {
    let (_server, mut booking, _admin) = start(5, 7200).await;
    let first = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;

    let status = booking.hold(hold_request(OFFICE, 2, applicant(1))).await.expect_err("refused");

    let metadata = expect_reason(&status, Code::AlreadyExists, "APPLICANT_HAS_BOOKING");
    assert_eq!(metadata.get("booking_id"), Some(&first.booking_id));
}

#[tokio::test]
async fn hold_before_the_release_instant_is_not_yet_open() {
    let (_server, mut booking, mut admin) = start(5, 7200).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    let release_at = prost_types::Timestamp { seconds: now + 3600, nanos: 0 };
    let schedule = proto::SetScheduleRequest {
        request_id: request_id("schedule"),
        office_id: OFFICE.into(),
        first_date: Some(jakarta_date(5)),
        last_date: Some(jakarta_date(5)),
        release_at: Some(release_at),
        ..Default::default()
    };
    admin.set_schedule(schedule).await.expect("schedule");

    let status = booking.hold(hold_request(OFFICE, 5, applicant(1))).await.expect_err("refused");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "NOT_YET_OPEN");
    let opens_at: jiff::Timestamp = metadata.get("opens_at").expect("opens_at").parse().expect("an RFC 3339 instant");
    assert_eq!(opens_at.as_second(), now + 3600);
}

#[tokio::test]
async fn hold_in_a_full_session_is_session_full() {
    let (_server, mut booking, _admin) = start(1, 7200).await;
    api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;

    let status = booking.hold(hold_request(OFFICE, 1, applicant(2))).await.expect_err("refused");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "SESSION_FULL");
    assert_eq!(metadata.get("remaining").map(String::as_str), Some("0"));
}

#[tokio::test]
async fn hold_on_a_closed_date_is_date_closed() {
    let (_server, mut booking, mut admin) = start(5, 7200).await;
    let close = proto::CloseDateRequest {
        request_id: request_id("close"),
        office_id: OFFICE.into(),
        date: Some(jakarta_date(3)),
        reason: "Idul Fitri".into(),
        reopen: false,
    };
    admin.close_date(close).await.expect("close");

    let status = booking.hold(hold_request(OFFICE, 3, applicant(1))).await.expect_err("refused");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "DATE_CLOSED");
    assert_eq!(metadata.get("closure").map(String::as_str), Some("Idul Fitri"));
}

#[tokio::test]
async fn late_payment_when_the_slot_is_gone_is_payment_expired_and_recorded_for_refund() {
    let (_server, mut booking, mut admin) = start(1, 1).await;
    let late = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    api::await_expired(&mut booking, &late.booking_id).await;
    api::hold(&mut booking, hold_request(OFFICE, 1, applicant(2))).await;

    let status = api::pay(&mut booking, &late.booking_id, "SIMPONI-LATE").await.expect_err("refused");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "PAYMENT_EXPIRED");
    assert_eq!(metadata.get("booking_id"), Some(&late.booking_id));
    assert_eq!(metadata.get("refund_recorded").map(String::as_str), Some("true"));
    let refunds = api::refunds(&mut admin, OFFICE).await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0].booking_id, late.booking_id);
    assert_eq!(refunds[0].payment_reference, "SIMPONI-LATE");
    assert_eq!(refunds[0].reason, proto::RefundReason::PaymentExpired as i32);
    let read = api::get_booking(&mut booking, &late.booking_id).await.expect("read");
    assert_eq!(read.state, proto::BookingState::Expired as i32);
}

#[tokio::test]
async fn late_payment_when_the_slot_is_still_free_revives_the_booking() {
    let (_server, mut booking, mut admin) = start(1, 1).await;
    let late = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    api::await_expired(&mut booking, &late.booking_id).await;

    let paid = api::pay(&mut booking, &late.booking_id, "SIMPONI-LATE").await.expect("revived");

    assert!(paid.revived);
    assert_eq!(paid.booking.expect("booking").state, proto::BookingState::Confirmed as i32);
    assert_eq!(api::regular_remaining(&mut booking, OFFICE, jakarta_date(1), "1300-1500").await, 0);
    assert!(api::refunds(&mut admin, OFFICE).await.is_empty());
}

#[tokio::test]
async fn second_different_payment_is_already_paid_and_recorded_for_refund() {
    let (_server, mut booking, mut admin) = start(5, 7200).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    api::pay(&mut booking, &held.booking_id, "SIMPONI-1").await.expect("pay");
    let again = api::pay(&mut booking, &held.booking_id, "SIMPONI-1").await.expect("same payment twice is fine");
    assert!(!again.revived);

    let status = api::pay(&mut booking, &held.booking_id, "SIMPONI-2").await.expect_err("refused");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "ALREADY_PAID");
    assert_eq!(metadata.get("booking_id"), Some(&held.booking_id));
    assert_eq!(metadata.get("refund_recorded").map(String::as_str), Some("true"));
    let refunds = api::refunds(&mut admin, OFFICE).await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0].payment_reference, "SIMPONI-2");
    assert_eq!(refunds[0].reason, proto::RefundReason::DuplicatePayment as i32);
}

#[tokio::test]
async fn second_reschedule_is_not_allowed() {
    let (_server, mut booking, _admin) = start(5, 7200).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 3, applicant(1))).await;
    api::reschedule(&mut booking, &held.booking_id, jakarta_date(4), "1300-1500").await.expect("first reschedule");

    let status =
        api::reschedule(&mut booking, &held.booking_id, jakarta_date(5), "1300-1500").await.expect_err("refused");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "RESCHEDULE_NOT_ALLOWED");
    assert!(metadata.get("why").is_some_and(|why| !why.is_empty()), "{metadata:?}");
}

#[tokio::test]
async fn cancelling_a_cancelled_booking_is_invalid_state() {
    let (_server, mut booking, _admin) = start(5, 7200).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    api::cancel(&mut booking, &held.booking_id).await.expect("cancel");

    let status = api::cancel(&mut booking, &held.booking_id).await.expect_err("refused");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "INVALID_STATE");
    assert_eq!(metadata.get("state").map(String::as_str), Some("CANCELLED"));
}

#[tokio::test]
async fn check_in_on_another_day_than_the_appointment_is_invalid_state() {
    let (_server, mut booking, _admin) = start(5, 7200).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    api::pay(&mut booking, &held.booking_id, "SIMPONI-1").await.expect("pay");

    let status = api::check_in(&mut booking, &held.booking_id).await.expect_err("refused");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "INVALID_STATE");
    assert_eq!(metadata.get("state").map(String::as_str), Some("CONFIRMED"));
}

#[tokio::test]
async fn request_id_reused_for_a_different_request_is_invalid_argument() {
    let (_server, mut booking, _admin) = start(5, 7200).await;
    let first = hold_request(OFFICE, 1, applicant(1));
    api::hold(&mut booking, first.clone()).await;
    let different = proto::HoldRequest { applicant: Some(applicant(2)), ..first };

    let status = booking.hold(different).await.expect_err("refused");

    expect_reason(&status, Code::InvalidArgument, "REQUEST_ID_REUSED");
    assert_eq!(bad_fields(&status), fields(&["request_id"]));
}

#[tokio::test]
async fn unknown_enum_values_are_invalid_argument() {
    let (_server, mut booking, _admin) = start(5, 7200).await;
    let mut request = hold_request(OFFICE, 1, applicant(1));
    request.pool = 99;
    request.service = 99;

    let status = booking.hold(request).await.expect_err("refused");
    assert_eq!(bad_fields(&status), fields(&["pool", "service"]));

    let availability = proto::GetAvailabilityRequest {
        office_id: OFFICE.into(),
        service: 99,
        first_date: Some(jakarta_date(1)),
        last_date: Some(jakarta_date(1)),
    };
    let status = booking.get_availability(availability).await.expect_err("refused");
    assert_eq!(bad_fields(&status), fields(&["service"]));
}

#[tokio::test]
async fn retried_late_payment_answers_the_same_and_records_one_refund() {
    let (_server, mut booking, mut admin) = start(1, 1).await;
    let late = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    api::await_expired(&mut booking, &late.booking_id).await;
    api::hold(&mut booking, hold_request(OFFICE, 1, applicant(2))).await;
    let payment = proto::ConfirmPaymentRequest {
        request_id: request_id("pay"),
        booking_id: late.booking_id.clone(),
        payment_reference: "SIMPONI-LATE".into(),
        paid_at: None,
    };
    let first = booking.confirm_payment(payment.clone()).await.expect_err("refused");

    let retried = booking.confirm_payment(payment).await.expect_err("refused again");

    assert_eq!(expect_reason(&retried, Code::FailedPrecondition, "PAYMENT_EXPIRED"), {
        expect_reason(&first, Code::FailedPrecondition, "PAYMENT_EXPIRED")
    });
    assert_eq!(api::refunds(&mut admin, OFFICE).await.len(), 1, "one refund for one payment");
}

#[tokio::test]
async fn the_same_late_payment_reported_twice_is_refunded_once() {
    let (_server, mut booking, mut admin) = start(1, 1).await;
    let late = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    api::await_expired(&mut booking, &late.booking_id).await;
    api::hold(&mut booking, hold_request(OFFICE, 1, applicant(2))).await;
    let status = api::pay(&mut booking, &late.booking_id, "SIMPONI-LATE").await.expect_err("refused");
    expect_reason(&status, Code::FailedPrecondition, "PAYMENT_EXPIRED");

    // The payment back-end reports the same payment (same reference) again, under a new request id.
    let status = api::pay(&mut booking, &late.booking_id, "SIMPONI-LATE").await.expect_err("refused again");

    expect_reason(&status, Code::FailedPrecondition, "PAYMENT_EXPIRED");
    let refunds = api::refunds(&mut admin, OFFICE).await;
    assert_eq!(refunds.len(), 1, "one payment must be refunded once: {refunds:?}");
}

#[tokio::test]
async fn the_same_duplicate_payment_reported_twice_is_refunded_once() {
    let (_server, mut booking, mut admin) = start(5, 7200).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    api::pay(&mut booking, &held.booking_id, "SIMPONI-1").await.expect("pay");
    api::pay(&mut booking, &held.booking_id, "SIMPONI-2").await.expect_err("already paid");

    let status = api::pay(&mut booking, &held.booking_id, "SIMPONI-2").await.expect_err("already paid again");

    expect_reason(&status, Code::FailedPrecondition, "ALREADY_PAID");
    let refunds = api::refunds(&mut admin, OFFICE).await;
    assert_eq!(refunds.len(), 1, "one payment must be refunded once: {refunds:?}");
}

#[tokio::test]
async fn payment_for_a_cancelled_booking_is_invalid_state_and_recorded_for_refund() {
    let (_server, mut booking, mut admin) = start(5, 7200).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    api::cancel(&mut booking, &held.booking_id).await.expect("cancel");

    let status = api::pay(&mut booking, &held.booking_id, "SIMPONI-1").await.expect_err("refused");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "INVALID_STATE");
    assert_eq!(metadata.get("state").map(String::as_str), Some("CANCELLED"));
    let refunds = api::refunds(&mut admin, OFFICE).await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0].reason, proto::RefundReason::Cancelled as i32);
}

#[tokio::test]
async fn out_of_range_page_size_and_date_range_are_invalid_argument() {
    let (_server, mut booking, _admin) = start(5, 7200).await;
    let list = proto::ListBookingsRequest {
        office_id: OFFICE.into(),
        date: Some(jakarta_date(1)),
        page_size: 1001,
        page_token: String::new(),
    };
    let status = booking.list_bookings(list).await.expect_err("refused");
    assert_eq!(bad_fields(&status), fields(&["page_size"]));

    let availability = proto::GetAvailabilityRequest {
        office_id: OFFICE.into(),
        service: proto::ServiceType::NewPassport as i32,
        first_date: Some(jakarta_date(1)),
        last_date: Some(jakarta_date(0)),
    };
    let status = booking.get_availability(availability).await.expect_err("refused");
    assert_eq!(bad_fields(&status), fields(&["last_date"]));
}
