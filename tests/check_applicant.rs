//! `CheckApplicant` through the wire (issue 18): it refuses exactly what `Hold` refuses, with the same status, reason and
//! field violations, for every invalid hold of the error tests (`errors.rs`, `hostile_input.rs`) driven through both
//! calls; and it answers what the state says: an applicant's active booking, the limit, a ticket in the office's
//! waiting room, whether the slot is open. It changes nothing.

#[path = "common/api.rs"]
mod api;
mod common;

use antrean::proto::waiting_room_service_client::WaitingRoomServiceClient;
use antrean::proto::{self, Date, check_applicant_request::Hold};
use api::Booking;
use common::{Server, applicant, create_office, hold_request, jakarta_date, request_id, test_office};
use std::collections::BTreeMap;
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;

const OFFICE: &str = "kanim-check";

async fn start() -> (Server, Booking, api::Admin) {
    let server = Server::start();
    let (booking, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, 5, 7200)).await;
    (server, booking, admin)
}

/// A hold, single or group, as a case of the table.
#[derive(Clone, Debug)]
enum Case {
    Single(proto::HoldRequest),
    Group(proto::HoldGroupRequest),
}

fn group(applicants: Vec<proto::Applicant>) -> proto::HoldGroupRequest {
    let single = hold_request(OFFICE, 1, applicant(1));
    proto::HoldGroupRequest {
        request_id: single.request_id,
        office_id: single.office_id,
        service: single.service,
        date: single.date,
        session_id: single.session_id,
        pool: single.pool,
        applicants,
        account_id: single.account_id,
        admission_token: String::new(),
    }
}

/// Every invalid hold of `errors.rs` and `hostile_input.rs` (and a few more the domain refuses), by name.
fn invalid_holds() -> Vec<(&'static str, Case)> {
    let mut cases = Vec::new();
    let edit = |change: &dyn Fn(&mut proto::HoldRequest)| {
        let mut request = hold_request(OFFICE, 1, applicant(1));
        change(&mut request);
        Case::Single(request)
    };
    cases.push((
        "four bad fields at once",
        edit(&|request| {
            let someone = request.applicant.as_mut().expect("applicant");
            someone.nik = "12345".into();
            someone.full_name = "   ".into();
            request.date = Some(Date { year: 2030, month: 2, day: 30 });
            request.pool = proto::Pool::Unspecified as i32;
        }),
    ));
    cases.push((
        "NIK encoding another birth date",
        edit(&|request| {
            request.applicant.as_mut().expect("applicant").birth_date = Some(Date { year: 1985, month: 8, day: 18 });
        }),
    ));
    cases.push(("unknown office", Case::Single(hold_request("kanim-nowhere", 1, applicant(1)))));
    cases.push(("unknown session", edit(&|request| request.session_id = "0700-0800".into())));
    cases.push((
        "unknown enum values",
        edit(&|request| {
            request.pool = 99;
            request.service = 99;
        }),
    ));
    let long = "x".repeat(200 * 1024);
    cases.push((
        "extreme field values",
        edit(&|request| {
            request.request_id.clone_from(&long);
            request.office_id.clone_from(&long);
            request.session_id = "\u{0}\u{202e}".into();
            request.service = 99;
            request.pool = -1;
            request.account_id = "🙂".repeat(1000);
            request.admission_token.clone_from(&long);
            request.date = Some(Date { year: i32::MAX, month: i32::MIN, day: -1 });
        }),
    ));
    cases.push((
        "a bad applicant",
        edit(&|request| {
            let someone = request.applicant.as_mut().expect("applicant");
            someone.full_name.clone_from(&long);
            someone.nik = "9".repeat(10_000);
            someone.birth_date = Some(Date { year: -5000, month: 2, day: 30 });
        }),
    ));
    for name in ["Budi \u{202e}oyotnaS", "Bu\u{200b}di Santoso", "Budi\u{2066} Santoso"] {
        cases.push((
            "a name with an invisible or reordering character",
            edit(&|request| request.applicant.as_mut().expect("applicant").full_name = name.into()),
        ));
    }
    cases.push(("no applicant", edit(&|request| request.applicant = None)));
    cases.push(("a date in the past", edit(&|request| request.date = Some(jakarta_date(-1)))));
    cases.push(("a date beyond the booking window", edit(&|request| request.date = Some(jakarta_date(31)))));
    cases.push(("a pool the session does not have", edit(&|request| request.pool = proto::Pool::Express as i32)));
    cases.push(("an adult in the priority pool", edit(&|request| request.pool = proto::Pool::Priority as i32)));
    cases.push(("a request id that is too long", edit(&|request| request.request_id = "r".repeat(65))));
    cases.push(("a malformed admission token", edit(&|request| request.admission_token = "AT12".into())));
    cases.push(("too many applicants", Case::Group(group((0..10_000).map(applicant).collect()))));
    cases.push(("no applicants", Case::Group(group(Vec::new()))));
    cases.push(("the same applicant twice", Case::Group(group(vec![applicant(1), applicant(2), applicant(1)]))));
    let mut priority = group(vec![applicant(3), common_elder(4), applicant(5)]);
    priority.pool = proto::Pool::Priority as i32;
    cases.push(("a group with adults in the priority pool", Case::Group(priority)));
    cases
}

/// An applicant of 70: eligible for the priority pool.
fn common_elder(serial: u32) -> proto::Applicant {
    api::applicant_born(serial, Date { year: 1955, month: 3, day: 2 })
}

async fn hold(booking: &mut Booking, case: &Case) -> tonic::Status {
    match case {
        Case::Single(request) => booking.hold(request.clone()).await.map(|_| ()),
        Case::Group(request) => booking.hold_group(request.clone()).await.map(|_| ()),
    }
    .expect_err("an invalid hold is refused")
}

async fn check(booking: &mut Booking, case: &Case) -> Result<proto::CheckApplicantResponse, tonic::Status> {
    let hold = match case {
        Case::Single(request) => Hold::Single(request.clone()),
        Case::Group(request) => Hold::Group(request.clone()),
    };
    booking.check_applicant(proto::CheckApplicantRequest { hold: Some(hold) }).await.map(tonic::Response::into_inner)
}

/// A refusal's details as compared: field violations (field, description) in order, and the ErrorInfo's reason,
/// domain and sorted metadata.
type Details = (Vec<(String, String)>, Option<(String, String, BTreeMap<String, String>)>);

/// A refusal's details: every field violation in order, and the ErrorInfo with its metadata sorted.
fn details(status: &tonic::Status) -> Details {
    let details = status.get_error_details();
    let violations = details.bad_request().map_or_else(Vec::new, |bad| {
        bad.field_violations.iter().map(|violation| (violation.field.clone(), violation.description.clone())).collect()
    });
    let info = details.error_info().map(|info| {
        (info.reason.clone(), info.domain.clone(), info.metadata.clone().into_iter().collect::<BTreeMap<_, _>>())
    });
    (violations, info)
}

#[tokio::test]
async fn check_applicant_refuses_every_invalid_hold_exactly_as_hold_does() {
    let (_server, mut booking, _admin) = start().await;
    for (name, case) in invalid_holds() {
        let held = hold(&mut booking, &case).await;
        let checked = check(&mut booking, &case).await.expect_err(name);
        assert_ne!(held.code(), Code::Ok, "{name}");
        assert_eq!(checked.code(), held.code(), "{name}: {checked:?} vs {held:?}");
        assert_eq!(checked.message(), held.message(), "{name}");
        // The details: the BadRequest field violations (field and description, in order) and the ErrorInfo (reason,
        // domain, metadata). Compared decoded: metadata is a map, whose encoded order may differ between two answers.
        assert_eq!(details(&checked), details(&held), "{name}: {checked:?} vs {held:?}");
        if held.code() == Code::InvalidArgument {
            assert!(!api::bad_fields(&held).is_empty(), "{name}: a malformed hold names its bad fields");
        }
    }
}

#[tokio::test]
async fn check_applicant_without_a_hold_is_invalid() {
    let (_server, mut booking, _admin) = start().await;
    let status = booking.check_applicant(proto::CheckApplicantRequest { hold: None }).await.expect_err("no hold");
    assert_eq!(api::bad_fields(&status), api::fields(&["hold"]));
}

#[tokio::test]
async fn check_applicant_reports_an_active_booking_and_changes_nothing() {
    let (_server, mut booking, mut admin) = start().await;
    let held = api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    let stats_before = api::office_stats(&mut admin, OFFICE).await;

    let found = check(&mut booking, &Case::Group(group(vec![applicant(1), applicant(2)]))).await.expect("valid");

    assert_eq!(found.applicants.len(), 2);
    assert_eq!(found.applicants[0].nik, applicant(1).nik);
    assert_eq!(found.applicants[0].active_booking_ids, vec![held.booking_id.clone()]);
    assert!(found.applicants[0].active_bookings_limit_reached, "one active booking is the default limit");
    assert!(found.applicants[1].active_booking_ids.is_empty());
    assert!(!found.applicants[1].active_bookings_limit_reached);
    assert_eq!(found.session_state, proto::SessionState::Open as i32);
    assert_eq!(found.remaining, 4);
    assert!(!found.waiting_room_required);
    // The hold it describes is refused for the reason it reported; nothing was held, logged or counted by the check.
    let status = booking.hold(hold_request(OFFICE, 1, applicant(1))).await.expect_err("already has a booking");
    api::expect_reason(&status, Code::AlreadyExists, "APPLICANT_HAS_BOOKING");
    assert_eq!(api::office_stats(&mut admin, OFFICE).await, stats_before);
    assert_eq!(api::regular_remaining(&mut booking, OFFICE, jakarta_date(1), "1300-1500").await, 4);
}

#[tokio::test]
async fn check_applicant_reports_a_ticket_in_the_office_waiting_room_and_a_slot_not_yet_open() {
    let (server, mut booking, mut admin) = start().await;
    // A release a minute away: the waiting room is open (it opens 15 minutes ahead) and nobody is admitted yet.
    let date = jakarta_date(2);
    let release = api::schedule_release(&mut admin, OFFICE, date, Duration::from_secs(60), true).await;
    let mut line = WaitingRoomServiceClient::new(server.channel().await);
    let join = proto::JoinRequest {
        request_id: request_id("join"),
        office_id: OFFICE.into(),
        service: proto::ServiceType::NewPassport as i32,
        nik: applicant(7).nik,
        ..proto::JoinRequest::default()
    };
    let ticket = line.join(join).await.expect("joins").into_inner().ticket.expect("ticket");

    let in_line = check(&mut booking, &Case::Single(hold_request(OFFICE, 2, applicant(7)))).await.expect("valid");
    let not_in_line = check(&mut booking, &Case::Single(hold_request(OFFICE, 2, applicant(8)))).await.expect("valid");

    assert_eq!(in_line.applicants[0].waiting_room_ticket_id, ticket.ticket_id);
    assert_eq!(in_line.applicants[0].waiting_room_ticket_state, proto::TicketState::Waiting as i32);
    assert_eq!(not_in_line.applicants[0].waiting_room_ticket_id, "");
    assert_eq!(not_in_line.applicants[0].waiting_room_ticket_state, proto::TicketState::Unspecified as i32);
    assert_eq!(in_line.session_state, proto::SessionState::NotYetOpen as i32);
    assert_eq!(in_line.opens_at.expect("opens_at").seconds, release.as_secs() as i64);
    assert!(in_line.waiting_room_required);
}

#[tokio::test]
async fn check_applicant_reports_priority_eligibility_before_the_slot_opens() {
    let (_server, mut booking, mut admin) = start().await;
    api::schedule_release(&mut admin, OFFICE, jakarta_date(3), Duration::from_secs(3600), false).await;
    let mut request = hold_request(OFFICE, 3, applicant(1));
    request.pool = proto::Pool::Priority as i32;

    let held = booking.hold(request.clone()).await.expect_err("not yet open");
    let checked = check(&mut booking, &Case::Single(request)).await.expect_err("not eligible");

    api::expect_reason(&held, Code::FailedPrecondition, "NOT_YET_OPEN");
    assert_eq!(api::bad_fields(&checked), api::fields(&["applicant"]), "what Hold will say once the slot opens");
}
