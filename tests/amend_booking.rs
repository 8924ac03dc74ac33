//! `AmendBooking` through the wire (issue 18): a correction keeps the slot and the payment, the NIK cannot change, a
//! change that costs a booking its priority eligibility moves it to the regular pool only when a slot is free there
//! (else nothing changes), amendments are limited and idempotent, reach follows the caller, and the amendment survives
//! a crash (replay from the log) and a restart (load from the snapshot).

#[path = "common/api.rs"]
mod api;
#[path = "common/calls.rs"]
mod calls;
mod common;

use antrean::proto;
use api::{Booking, bad_fields, expect_reason, fields};
use calls::{clients_with_token, token_hash};
use common::{Options, Server, applicant, create_office, hold_request, jakarta_date, request_id, test_office};
use tonic::Code;

const OFFICE: &str = "kanim-amend";
const OTHER_OFFICE: &str = "kanim-amend-other";
const SESSION: &str = "1300-1500";

fn options(amendments_max: u32) -> Options {
    let config = format!("[booking]\namendments_max = {amendments_max}\n");
    Options { config: Some(config), ..Options::default() }
}

/// A server with the test office (`regular` slots per session, 2 priority) and `amendments_max`.
async fn start(regular: u32, amendments_max: u32) -> (Server, Booking) {
    let server = Server::start_with(options(amendments_max));
    let (booking, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, regular, 7200)).await;
    (server, booking)
}

fn amend(booking_id: &str) -> proto::AmendBookingRequest {
    proto::AmendBookingRequest {
        request_id: request_id("amend"),
        booking_id: booking_id.to_owned(),
        ..proto::AmendBookingRequest::default()
    }
}

async fn send(booking: &mut Booking, request: proto::AmendBookingRequest) -> Result<proto::Booking, tonic::Status> {
    Ok(booking.amend_booking(request).await?.into_inner().booking.expect("an amended booking"))
}

async fn read(booking: &mut Booking, booking_id: &str) -> proto::Booking {
    api::get_booking(booking, booking_id).await.expect("read")
}

/// The booking with what an amendment may change set aside: what must stay the same.
fn kept(booking: &proto::Booking) -> proto::Booking {
    let mut kept = booking.clone();
    kept.applicant.as_mut().expect("applicant").full_name.clear();
    kept.service = 0;
    kept.updated_at = None;
    kept.amendments_used = 0;
    kept.last_amended_at = None;
    kept
}

#[tokio::test]
async fn an_amendment_keeps_the_slot_and_the_payment() {
    let (_server, mut booking) = start(1, 2).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 2, applicant(1))).await;
    let paid = api::pay(&mut booking, &held.booking_id, "SIMPONI-1").await.expect("pay").booking.expect("booking");

    let request = proto::AmendBookingRequest {
        full_name: Some("  Budi Santoso  ".into()),
        service: proto::ServiceType::Replacement as i32,
        ..amend(&held.booking_id)
    };
    let amended = send(&mut booking, request).await.expect("amended");

    assert_eq!(amended.applicant.as_ref().expect("applicant").full_name, "Budi Santoso", "trimmed like a hold's");
    assert_eq!(amended.service, proto::ServiceType::Replacement as i32);
    assert_eq!(amended.amendments_used, 1);
    assert!(amended.last_amended_at.is_some());
    assert_eq!(kept(&amended), kept(&paid), "same booking, slot, state, payment code and reference");
    assert_eq!(amended.payment_reference, "SIMPONI-1");
    assert_eq!(read(&mut booking, &held.booking_id).await, amended, "GetBooking shows the amendment");
    assert_eq!(api::regular_remaining(&mut booking, OFFICE, jakarta_date(2), SESSION).await, 0, "the slot is kept");
}

#[tokio::test]
async fn the_nik_cannot_be_amended() {
    let (_server, mut booking) = start(5, 2).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 2, applicant(1))).await;

    let request = proto::AmendBookingRequest { nik: applicant(2).nik, ..amend(&held.booking_id) };
    let status = send(&mut booking, request).await.expect_err("another NIK");

    assert_eq!(bad_fields(&status), fields(&["nik"]));
    let description = api::violation_description(&status, "nik");
    assert!(description.contains("cancel this booking and hold a new one"), "{description}");
    assert_eq!(read(&mut booking, &held.booking_id).await, held, "nothing changed");
    // The booking's own NIK, sent with the whole form, is no change.
    let request =
        proto::AmendBookingRequest { nik: applicant(1).nik, full_name: Some("Siti".into()), ..amend(&held.booking_id) };
    assert_eq!(send(&mut booking, request).await.expect("own NIK").amendments_used, 1);
}

#[tokio::test]
async fn malformed_and_empty_amendments_are_invalid() {
    let (_server, mut booking) = start(5, 2).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 2, applicant(1))).await;

    let bad = proto::AmendBookingRequest {
        full_name: Some("Budi \u{202e}oyotnaS".into()),
        service: 99,
        nik: "12345".into(),
        ..amend("BK-nope")
    };
    let status = send(&mut booking, bad).await.expect_err("every field is wrong");
    assert_eq!(bad_fields(&status), fields(&["booking_id", "full_name", "service", "nik"]));
    let status = send(&mut booking, amend(&held.booking_id)).await.expect_err("nothing to amend");
    assert_eq!(bad_fields(&status), fields(&["full_name"]));
    let same = proto::AmendBookingRequest { full_name: Some(applicant(1).full_name), ..amend(&held.booking_id) };
    let status = send(&mut booking, same).await.expect_err("the booking's own name");
    assert_eq!(bad_fields(&status), fields(&["full_name"]));
    assert_eq!(read(&mut booking, &held.booking_id).await, held);
}

/// Slots left in one pool of the test session two days from today.
async fn remaining(booking: &mut Booking, pool: proto::Pool) -> u32 {
    api::pool_availability(booking, OFFICE, jakarta_date(2), SESSION, pool).await.remaining
}

#[tokio::test]
async fn losing_priority_eligibility_moves_the_booking_only_into_a_pool_with_room() {
    let (_server, mut booking) = start(1, 2).await;
    let date = jakarta_date(2);
    let mut disabled = applicant(1);
    disabled.has_disability = true;
    let mut priority_hold = hold_request(OFFICE, 2, disabled);
    priority_hold.pool = proto::Pool::Priority as i32;
    let priority = api::hold(&mut booking, priority_hold).await;
    let regular = api::hold(&mut booking, hold_request(OFFICE, 2, applicant(2))).await;
    let clear_flag = || proto::AmendBookingRequest { has_disability: Some(false), ..amend(&priority.booking_id) };

    let status = send(&mut booking, clear_flag()).await.expect_err("the regular pool is full");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "AMENDMENT_POOL_FULL");
    assert_eq!(metadata.get("pool").map(String::as_str), Some("POOL_REGULAR"));
    assert_eq!(read(&mut booking, &priority.booking_id).await, priority, "the booking is untouched");
    assert_eq!(remaining(&mut booking, proto::Pool::Priority).await, 1);

    api::cancel(&mut booking, &regular.booking_id).await.expect("a regular slot comes free");
    let moved = send(&mut booking, clear_flag()).await.expect("moves to the regular pool");

    assert_eq!(moved.pool, proto::Pool::Regular as i32);
    assert!(!moved.applicant.as_ref().expect("applicant").has_disability);
    assert_eq!((moved.session_id.as_str(), moved.date), (SESSION, Some(date)), "same session");
    assert_eq!(remaining(&mut booking, proto::Pool::Priority).await, 2, "the priority slot is given back");
    assert_eq!(remaining(&mut booking, proto::Pool::Regular).await, 0, "the regular slot is taken");
    // Gaining eligibility moves nothing: the booking keeps the slot it has.
    let set_flag = proto::AmendBookingRequest { has_disability: Some(true), ..amend(&priority.booking_id) };
    assert_eq!(send(&mut booking, set_flag).await.expect("amended").pool, proto::Pool::Regular as i32);
}

#[tokio::test]
async fn amendments_are_limited_idempotent_and_only_for_active_bookings_before_their_session() {
    let (_server, mut booking) = start(5, 1).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 2, applicant(1))).await;
    let first = proto::AmendBookingRequest { full_name: Some("Budi".into()), ..amend(&held.booking_id) };

    let amended = send(&mut booking, first.clone()).await.expect("first amendment");
    let retried = send(&mut booking, first.clone()).await.expect("the same request again");
    assert_eq!(retried, amended, "a retry gets the first answer");
    assert_eq!(read(&mut booking, &held.booking_id).await.amendments_used, 1, "and amends nothing more");
    let reused = proto::AmendBookingRequest { full_name: Some("Budi S".into()), ..first };
    let status = send(&mut booking, reused).await.expect_err("same request id, another amendment");
    expect_reason(&status, Code::InvalidArgument, "REQUEST_ID_REUSED");

    let second = proto::AmendBookingRequest { full_name: Some("Budi S".into()), ..amend(&held.booking_id) };
    let status = send(&mut booking, second).await.expect_err("one amendment allowed");
    let metadata = expect_reason(&status, Code::FailedPrecondition, "AMENDMENT_NOT_ALLOWED");
    assert!(metadata.get("why").is_some_and(|why| why.contains("already amended 1")), "{metadata:?}");

    let other = api::hold(&mut booking, hold_request(OFFICE, 2, applicant(2))).await;
    api::cancel(&mut booking, &other.booking_id).await.expect("cancel");
    let late = proto::AmendBookingRequest { full_name: Some("Siti".into()), ..amend(&other.booking_id) };
    let status = send(&mut booking, late).await.expect_err("cancelled");
    let metadata = expect_reason(&status, Code::FailedPrecondition, "INVALID_STATE");
    assert_eq!(metadata.get("state").map(String::as_str), Some("CANCELLED"));
}

#[tokio::test]
async fn an_amendment_survives_a_crash_and_a_restart() {
    let (mut server, mut booking) = start(5, 2).await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 2, applicant(1))).await;
    let request = proto::AmendBookingRequest {
        full_name: Some("Budi Santoso".into()),
        service: proto::ServiceType::Replacement as i32,
        ..amend(&held.booking_id)
    };
    let amended = send(&mut booking, request.clone()).await.expect("amended");

    // SIGKILL: the amendment comes back by replaying the log.
    server.kill();
    let server = Server::start_in(&server.data_dir.clone(), &options(2));
    let (mut booking, _) = server.clients().await;
    assert_eq!(read(&mut booking, &held.booking_id).await, amended, "replayed from the log");
    assert_eq!(send(&mut booking, request.clone()).await.expect("retry after the crash"), amended, "remembered");

    // SIGTERM writes a final snapshot: the amendment comes back from the snapshot image.
    let mut server = server;
    assert!(server.terminate().success());
    let server = Server::start_in(&server.data_dir.clone(), &options(2));
    let (mut booking, _) = server.clients().await;
    assert_eq!(read(&mut booking, &held.booking_id).await, amended, "loaded from the snapshot");
    assert_eq!(send(&mut booking, request).await.expect("retry after the restart"), amended, "remembered");
}

const BOOKING_TOKEN: &str = "booking-token-0123456789abcdef0123456789abcdef";
const PARTNER_TOKEN: &str = "partner-token-0123456789abcdef0123456789abcdef";
const OFFICE_TOKEN: &str = "office-token-0123456789abcdef0123456789abcdef";
const OTHER_OFFICE_TOKEN: &str = "other-office-token-0123456789abcdef0123456789";
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn booking_callers_amend_their_own_bookings_and_office_callers_those_of_their_offices() {
    let caller = |name: &str, token: &str, roles: &str, offices: &str| {
        format!(
            "[[callers]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nroles = [{roles}]\n{offices}\n",
            token_hash(token)
        )
    };
    let config = [
        caller("app-backend", BOOKING_TOKEN, "\"booking\"", ""),
        caller("partner-backend", PARTNER_TOKEN, "\"booking\"", ""),
        caller("counter", OFFICE_TOKEN, "\"office\"", &format!("offices = [\"{OFFICE}\"]")),
        caller("other-counter", OTHER_OFFICE_TOKEN, "\"office\"", &format!("offices = [\"{OTHER_OFFICE}\"]")),
        caller("operator", ADMIN_TOKEN, "\"admin\"", ""),
    ]
    .concat();
    let server = Server::start_with(Options { config: Some(config), ..Options::default() });
    let channel = server.channel().await;
    let (mut app, _) = clients_with_token(&channel, BOOKING_TOKEN);
    let (mut partner, _) = clients_with_token(&channel, PARTNER_TOKEN);
    let (mut counter, _) = clients_with_token(&channel, OFFICE_TOKEN);
    let (mut other_counter, _) = clients_with_token(&channel, OTHER_OFFICE_TOKEN);
    let (_, mut operator) = clients_with_token(&channel, ADMIN_TOKEN);
    for office in [OFFICE, OTHER_OFFICE] {
        let upsert =
            proto::UpsertOfficeRequest { request_id: request_id("office"), office: Some(test_office(office, 5, 7200)) };
        operator.upsert_office(upsert).await.expect("office");
    }
    let held = app.hold(hold_request(OFFICE, 2, applicant(1))).await.expect("hold").into_inner().booking.expect("b");
    let name = |text: &str| proto::AmendBookingRequest { full_name: Some(text.into()), ..amend(&held.booking_id) };

    let status = partner.amend_booking(name("Partner")).await.expect_err("another caller's booking");
    expect_reason(&status, Code::NotFound, "BOOKING_NOT_FOUND");
    let status = other_counter.amend_booking(name("Other")).await.expect_err("another office's booking");
    expect_reason(&status, Code::NotFound, "BOOKING_NOT_FOUND");
    let by_counter = counter.amend_booking(name("Counter")).await.expect("the office's booking").into_inner();
    assert_eq!(by_counter.booking.expect("booking").amendments_used, 1);
    let by_app = app.amend_booking(name("Owner")).await.expect("the caller's own booking").into_inner();
    assert_eq!(by_app.booking.expect("booking").applicant.expect("applicant").full_name, "Owner");
}
