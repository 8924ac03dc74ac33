//! Money through the real server: a payment made on time but notified late keeps its slot through the settlement
//! grace, `paid_at` is checked, a re-delivered accepted payment is never refunded, and every refusal that records a
//! refund says so.

#[path = "common/api.rs"]
mod api;
#[path = "common/calls.rs"]
mod calls;
mod common;

use antrean::proto;
use api::{Booking, bad_fields, expect_reason, fields};
use calls::{clients_with_token, token_hash};
use common::{Options, Server, applicant, create_office, hold_request, request_id, test_office};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::Code;

const OFFICE: &str = "kanim-payments";
const PAYMENT_TOKEN: &str = "payment-token-0123456789abcdef0123456789abcdef";
const BOOKING_TOKEN: &str = "booking-token-0123456789abcdef0123456789abcdef";

/// A server with a settlement grace of `grace_seconds` and the test office: `capacity` regular slots, a payment
/// window of `window_seconds`.
async fn start(grace_seconds: u64, capacity: u32, window_seconds: i64) -> (Server, Booking, api::Admin) {
    let config = format!("[booking]\npayment_settlement_grace_seconds = {grace_seconds}\n");
    let server = Server::start_with(Options { config: Some(config), ..Options::default() });
    let (booking, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, capacity, window_seconds)).await;
    (server, booking, admin)
}

fn millis(at: Option<&prost_types::Timestamp>) -> i64 {
    let at = at.expect("timestamp");
    at.seconds * 1000 + i64::from(at.nanos / 1_000_000)
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as i64
}

/// Waits until the wall clock is past `at_ms` (Unix milliseconds).
async fn wait_until(at_ms: i64) {
    api::poll(
        Duration::from_secs(10),
        "the clock to pass an instant",
        || async move { (unix_ms() > at_ms).then_some(()) },
    )
    .await;
}

fn payment(booking_id: &str, reference: &str, paid_at_ms: Option<i64>) -> proto::ConfirmPaymentRequest {
    proto::ConfirmPaymentRequest {
        request_id: request_id("pay"),
        booking_id: booking_id.to_owned(),
        payment_reference: reference.to_owned(),
        paid_at: paid_at_ms.map(timestamp),
    }
}

#[tokio::test]
async fn a_payment_made_on_time_but_notified_after_the_deadline_keeps_the_slot_within_the_grace() {
    let (_server, mut booking, mut admin) = start(60, 1, 1).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    let deadline_ms = millis(held.payment_deadline.as_ref());
    wait_until(deadline_ms + 400).await;

    let status = booking.hold(hold_request(OFFICE, 1, applicant(2))).await.expect_err("the slot is still reserved");
    expect_reason(&status, Code::FailedPrecondition, "SESSION_FULL");
    let overdue = api::get_booking(&mut booking, &held.booking_id).await.expect("read");
    assert_eq!(overdue.state, proto::BookingState::AwaitingPayment as i32);
    assert_eq!(millis(overdue.settlement_deadline.as_ref()), deadline_ms + 60_000);

    let paid_at_ms = deadline_ms - 500;
    let request = payment(&held.booking_id, "SIMPONI-1059", Some(paid_at_ms));
    let paid = booking.confirm_payment(request).await.expect("honoured").into_inner();

    assert!(!paid.revived, "paid on time: not a revival");
    let confirmed = paid.booking.expect("booking");
    assert_eq!(confirmed.state, proto::BookingState::Confirmed as i32);
    assert_eq!(confirmed.settlement_deadline, None);
    assert!(api::refunds(&mut admin, OFFICE).await.is_empty());
}

#[tokio::test]
async fn after_the_grace_the_slot_returns_and_an_on_time_payment_is_refunded_when_it_is_gone() {
    let (_server, mut booking, mut admin) = start(1, 1, 1).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    let deadline_ms = millis(held.payment_deadline.as_ref());
    api::await_expired(&mut booking, &held.booking_id).await;
    api::hold(&mut booking, hold_request(OFFICE, 1, applicant(2))).await;

    let request = payment(&held.booking_id, "SIMPONI-1", Some(deadline_ms - 100));
    let status = booking.confirm_payment(request).await.expect_err("the slot is gone");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "PAYMENT_EXPIRED");
    assert_eq!(metadata.get("refund_recorded").map(String::as_str), Some("true"));
    assert_eq!(api::refunds(&mut admin, OFFICE).await.len(), 1);
}

#[tokio::test]
async fn paid_at_in_the_future_is_invalid_argument() {
    let (_server, mut booking, _admin) = start(900, 5, 7200).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;

    let request = payment(&held.booking_id, "SIMPONI-1", Some(unix_ms() + 3_600_000));
    let status = booking.confirm_payment(request).await.expect_err("refused");

    assert_eq!(bad_fields(&status), fields(&["paid_at"]));
    let read = api::get_booking(&mut booking, &held.booking_id).await.expect("read");
    assert_eq!(read.state, proto::BookingState::AwaitingPayment as i32, "nothing changed");
}

#[tokio::test]
async fn only_the_payment_role_may_say_when_a_payment_was_made() {
    let config = format!(
        "[[callers]]\nname = \"payment-backend\"\ntoken_sha256 = \"{}\"\nroles = [\"payment\"]\n\n\
         [[callers]]\nname = \"app-backend\"\ntoken_sha256 = \"{}\"\nroles = [\"booking\", \"admin\"]\n",
        token_hash(PAYMENT_TOKEN),
        token_hash(BOOKING_TOKEN),
    );
    let server = Server::start_with(Options { config: Some(config), ..Options::default() });
    let channel = server.channel().await;
    let (mut app, mut admin) = clients_with_token(&channel, BOOKING_TOKEN);
    let (mut payer, _) = clients_with_token(&channel, PAYMENT_TOKEN);
    let office =
        proto::UpsertOfficeRequest { request_id: request_id("office"), office: Some(test_office(OFFICE, 5, 7200)) };
    admin.upsert_office(office).await.expect("office");
    let held = app.hold(hold_request(OFFICE, 1, applicant(1))).await.expect("hold").into_inner().booking.expect("b");

    let status = app.confirm_payment(payment(&held.booking_id, "SIMPONI-1", Some(unix_ms()))).await.expect_err("no");

    expect_reason(&status, Code::PermissionDenied, "ROLE_NOT_ALLOWED");
    let paid = payer.confirm_payment(payment(&held.booking_id, "SIMPONI-1", Some(unix_ms()))).await.expect("paid");
    assert_eq!(paid.into_inner().booking.expect("booking").state, proto::BookingState::Confirmed as i32);
}

#[tokio::test]
async fn a_redelivered_accepted_payment_after_cancellation_records_no_refund() {
    let (_server, mut booking, mut admin) = start(900, 5, 7200).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    api::pay(&mut booking, &held.booking_id, "SIMPONI-1").await.expect("pay-1");
    api::cancel(&mut booking, &held.booking_id).await.expect("cancel");

    let again = api::pay(&mut booking, &held.booking_id, "SIMPONI-1").await.expect("recognised, not refused");

    assert!(again.already_applied);
    assert_eq!(again.booking.expect("booking").state, proto::BookingState::Cancelled as i32);
    assert!(api::refunds(&mut admin, OFFICE).await.is_empty(), "the accepted payment is not refunded");
}

#[tokio::test]
async fn the_same_payment_twice_is_remembered_under_its_request_id() {
    let (_server, mut booking, _admin) = start(900, 5, 7200).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    api::pay(&mut booking, &held.booking_id, "SIMPONI-1").await.expect("pay-1");
    let redelivery = payment(&held.booking_id, "SIMPONI-1", None);
    let first = booking.confirm_payment(redelivery.clone()).await.expect("recognised").into_inner();
    api::cancel(&mut booking, &held.booking_id).await.expect("cancel");

    let retried = booking.confirm_payment(redelivery).await.expect("the first answer again").into_inner();

    // The same answer (recognised, nothing refunded) about the same booking, shown as it is now.
    assert!(retried.already_applied && first.already_applied);
    let (first, retried) = (first.booking.expect("booking"), retried.booking.expect("booking"));
    assert_eq!(retried.booking_id, first.booking_id);
    assert_eq!(first.state, proto::BookingState::Confirmed as i32);
    assert_eq!(retried.state, proto::BookingState::Cancelled as i32);
}

#[tokio::test]
async fn every_refusal_that_records_a_refund_says_so() {
    let (_server, mut booking, mut admin) = start(900, 5, 7200).await;
    let cancelled = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    api::cancel(&mut booking, &cancelled.booking_id).await.expect("cancel");
    let paid = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(2))).await;
    api::pay(&mut booking, &paid.booking_id, "SIMPONI-A").await.expect("pay");

    let status = api::pay(&mut booking, &cancelled.booking_id, "SIMPONI-C").await.expect_err("refused");
    let metadata = expect_reason(&status, Code::FailedPrecondition, "INVALID_STATE");
    assert_eq!(metadata.get("state").map(String::as_str), Some("CANCELLED"));
    assert_eq!(metadata.get("refund_recorded").map(String::as_str), Some("true"));
    let status = api::pay(&mut booking, &paid.booking_id, "SIMPONI-B").await.expect_err("refused");
    let metadata = expect_reason(&status, Code::FailedPrecondition, "ALREADY_PAID");
    assert_eq!(metadata.get("refund_recorded").map(String::as_str), Some("true"));
    let status = api::pay(&mut booking, &cancelled.booking_id, "SIMPONI-C").await.expect_err("again");
    let metadata = expect_reason(&status, Code::FailedPrecondition, "INVALID_STATE");
    assert_eq!(metadata.get("refund_recorded").map(String::as_str), Some("true"), "still on record");
    assert_eq!(api::refunds(&mut admin, OFFICE).await.len(), 2);
}
