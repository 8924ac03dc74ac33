//! Retries are not new holds: with callers configured (so the anti-hoarding limits apply at their defaults, 10 slots
//! per account and 4 holds per applicant an hour), a retry with a known request id gets its first answer and is
//! neither counted nor refused by the limits.

#[path = "common/api.rs"]
mod api;
#[path = "common/calls.rs"]
mod calls;
mod common;

use antrean::proto;
use calls::{clients_with_token, token_hash};
use common::{Options, Server, applicant, hold_request, jakarta_date, request_id, test_office};
use tonic::Code;

const OFFICE: &str = "kanim-retries";
const TOKEN: &str = "booking-token-0123456789abcdef0123456789abcdef";

/// A server whose one caller may book and administer, with the default anti-hoarding limits, and the test office.
async fn start() -> (Server, calls::AuthBooking) {
    let config = format!(
        "[[callers]]\nname = \"app-backend\"\ntoken_sha256 = \"{}\"\nroles = [\"booking\", \"admin\"]\n",
        token_hash(TOKEN)
    );
    let server = Server::start_with(Options { config: Some(config), ..Options::default() });
    let channel = server.channel().await;
    let (booking, mut admin) = clients_with_token(&channel, TOKEN);
    let office =
        proto::UpsertOfficeRequest { request_id: request_id("office"), office: Some(test_office(OFFICE, 50, 7200)) };
    admin.upsert_office(office).await.expect("office");
    (server, booking)
}

#[tokio::test]
async fn retrying_a_successful_hold_any_number_of_times_returns_its_first_answer() {
    let (_server, mut booking) = start().await;
    let request = hold_request(OFFICE, 1, applicant(1));
    let first = booking.hold(request.clone()).await.expect("hold").into_inner();

    for retry in 1..=6 {
        let again = booking.hold(request.clone()).await.unwrap_or_else(|status| panic!("retry {retry}: {status:?}"));
        assert_eq!(again.into_inner(), first, "retry {retry}");
    }

    let other = booking.hold(hold_request(OFFICE, 2, applicant(1))).await.expect_err("a new hold is decided");
    api::expect_reason(&other, Code::AlreadyExists, "APPLICANT_HAS_BOOKING");
}

#[tokio::test]
async fn retrying_a_family_hold_is_not_counted_against_the_account() {
    let (_server, mut booking) = start().await;
    let request = proto::HoldGroupRequest {
        request_id: request_id("family"),
        office_id: OFFICE.into(),
        service: proto::ServiceType::NewPassport as i32,
        date: Some(jakarta_date(1)),
        session_id: "1300-1500".into(),
        pool: proto::Pool::Regular as i32,
        applicants: (1..=5).map(applicant).collect(),
        account_id: "family-account".into(),
        admission_token: String::new(),
    };
    let first = booking.hold_group(request.clone()).await.expect("hold group").into_inner();

    for retry in 1..=3 {
        let again =
            booking.hold_group(request.clone()).await.unwrap_or_else(|status| panic!("retry {retry}: {status:?}"));
        assert_eq!(again.into_inner(), first, "retry {retry}");
    }

    let mut others = request.clone();
    others.request_id = request_id("family-2");
    others.applicants = (6..=10).map(applicant).collect();
    booking.hold_group(others).await.expect("the account has used 5 of its 10 slots, not 20");
}
