//! Racing callers never oversell: many concurrent holds for the last slots, and all-or-nothing group holds.

#[path = "common/api.rs"]
mod api;
mod common;

use antrean::proto;
use antrean::proto::booking_service_client::BookingServiceClient;
use api::expect_reason;
use common::{Server, applicant, create_office, hold_request, jakarta_date, request_id, test_office};
use std::collections::BTreeSet;
use tonic::Code;

const OFFICE: &str = "kanim-race";
const CAPACITY: u32 = 25;
const CALLERS: u32 = 200;
const CHANNELS: u32 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_racing_holds_take_exactly_the_capacity() {
    let server = Server::start();
    let (_, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, CAPACITY, 7200)).await;
    let mut clients = Vec::new();
    for _ in 0..CHANNELS {
        clients.push(BookingServiceClient::new(server.channel().await));
    }

    let mut tasks = tokio::task::JoinSet::new();
    for serial in 0..CALLERS {
        let mut client = clients[(serial % CHANNELS) as usize].clone();
        tasks.spawn(async move { client.hold(hold_request(OFFICE, 1, applicant(serial))).await });
    }
    let mut held = BTreeSet::new();
    let mut full = 0;
    while let Some(outcome) = tasks.join_next().await {
        match outcome.expect("task") {
            Ok(response) => {
                held.insert(response.into_inner().booking.expect("booking").booking_id);
            }
            Err(status) => {
                expect_reason(&status, Code::FailedPrecondition, "SESSION_FULL");
                full += 1;
            }
        }
    }

    assert_eq!(held.len(), CAPACITY as usize, "distinct bookings held");
    assert_eq!(full, CALLERS - CAPACITY);
    let mut booking = clients[0].clone();
    let pool = api::pool_availability(&mut booking, OFFICE, jakarta_date(1), "1300-1500", proto::Pool::Regular).await;
    assert_eq!(pool.remaining, 0);
    assert_eq!(pool.state, proto::SessionState::Full as i32);
    let listed = list_all_bookings(&mut booking, 1).await;
    assert_eq!(listed, held, "ListBookings lists exactly the held bookings");
}

/// Every booking id of the office on the date `days` ahead, in pages of 10.
async fn list_all_bookings(booking: &mut api::Booking, days: i32) -> BTreeSet<String> {
    let mut listed = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let request = proto::ListBookingsRequest {
            office_id: OFFICE.into(),
            date: Some(jakarta_date(days)),
            page_size: 10,
            page_token,
        };
        let page = booking.list_bookings(request).await.expect("list bookings").into_inner();
        assert!(page.bookings.len() <= 10, "a page holds at most page_size bookings");
        listed.extend(page.bookings.into_iter().map(|each| each.booking_id));
        pages += 1;
        assert!(pages <= 100, "paging does not end");
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let unique: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "no booking listed twice: {listed:?}");
    unique
}

fn group_request(serials: &[u32]) -> proto::HoldGroupRequest {
    proto::HoldGroupRequest {
        request_id: request_id("group"),
        office_id: OFFICE.into(),
        service: proto::ServiceType::NewPassport as i32,
        date: Some(jakarta_date(1)),
        session_id: "1300-1500".into(),
        pool: proto::Pool::Regular as i32,
        applicants: serials.iter().map(|serial| applicant(*serial)).collect(),
        account_id: "family-account".into(),
        admission_token: String::new(),
    }
}

#[tokio::test]
async fn group_larger_than_the_slots_left_takes_nothing() {
    let server = Server::start();
    let (mut booking, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, 3, 7200)).await;

    let status = booking.hold_group(group_request(&[1, 2, 3, 4])).await.expect_err("refused");

    let metadata = expect_reason(&status, Code::FailedPrecondition, "SESSION_FULL");
    assert_eq!(metadata.get("remaining").map(String::as_str), Some("3"));
    assert_eq!(api::regular_remaining(&mut booking, OFFICE, jakarta_date(1), "1300-1500").await, 3);
    for serial in 1..=4 {
        let found = booking.find_bookings(proto::FindBookingsRequest { nik: applicant(serial).nik }).await;
        assert!(found.expect("find").into_inner().bookings.is_empty(), "applicant {serial} got nothing");
    }
}

#[tokio::test]
async fn group_that_fits_takes_every_slot_under_one_group_id() {
    let server = Server::start();
    let (mut booking, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, 3, 7200)).await;

    let response = booking.hold_group(group_request(&[1, 2, 3])).await.expect("group hold").into_inner();

    assert!(!response.group_id.is_empty());
    assert_eq!(response.bookings.len(), 3);
    for (booking, serial) in response.bookings.iter().zip(1..) {
        assert_eq!(booking.group_id, response.group_id);
        assert_eq!(booking.state, proto::BookingState::AwaitingPayment as i32);
        assert_eq!(booking.applicant.as_ref().expect("applicant").nik, applicant(serial).nik, "request order");
    }
    let ids: BTreeSet<&str> = response.bookings.iter().map(|each| each.booking_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "distinct bookings");
    assert_eq!(api::regular_remaining(&mut booking, OFFICE, jakarta_date(1), "1300-1500").await, 0);
}
