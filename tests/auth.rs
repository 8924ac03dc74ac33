//! Caller authentication and authorization against the real server: every role against every RPC, missing and bad
//! tokens, office scoping, NIK masking per role, anti-hoarding limits, and `antrean hash-token`.

#[path = "common/api.rs"]
mod api;
#[path = "common/calls.rs"]
mod calls;
mod common;

use antrean::auth::permissions::{METHODS, Role};
use antrean::proto;
use calls::{call_raw, clients_with_token, token_hash};
use common::{Options, Server, applicant, hold_request, reason, request_id, test_office};
use std::io::Write;
use std::process::{Command, Stdio};
use tonic::Code;

const BOOKING_TOKEN: &str = "booking-token-0123456789abcdef0123456789abcdef";
const PAYMENT_TOKEN: &str = "payment-token-0123456789abcdef0123456789abcdef";
const OFFICE_TOKEN: &str = "office-token-0123456789abcdef0123456789abcdef";
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef0123456789abcdef";
const PARTNER_TOKEN: &str = "partner-token-0123456789abcdef0123456789abcdef";
const OFFICE_A: &str = "kanim-auth-a";
const OFFICE_B: &str = "kanim-auth-b";

fn config(anti_hoarding: &str) -> String {
    format!(
        r#"
{anti_hoarding}

[[callers]]
name = "app-backend"
token_sha256 = "{booking}"
roles = ["booking"]

[[callers]]
name = "partner-backend"
token_sha256 = "{partner}"
roles = ["booking"]

[[callers]]
name = "payment-backend"
token_sha256 = "{payment}"
roles = ["payment"]

[[callers]]
name = "counter-a"
token_sha256 = "{office}"
roles = ["office"]
offices = ["{OFFICE_A}"]

[[callers]]
name = "operator"
token_sha256 = "{admin}"
roles = ["admin"]
"#,
        booking = token_hash(BOOKING_TOKEN),
        payment = token_hash(PAYMENT_TOKEN),
        office = token_hash(OFFICE_TOKEN),
        admin = token_hash(ADMIN_TOKEN),
        partner = token_hash(PARTNER_TOKEN),
    )
}

fn start(anti_hoarding: &str) -> Server {
    Server::start_with(Options { config: Some(config(anti_hoarding)), ..Options::default() })
}

/// Every method in the role table, plus health and reflection, with no token, a bad token and each role's token.
#[tokio::test]
async fn every_role_against_every_rpc() {
    let server = start("");
    let channel = server.channel().await;
    let roles = [
        (Role::Booking, BOOKING_TOKEN),
        (Role::Payment, PAYMENT_TOKEN),
        (Role::Office, OFFICE_TOKEN),
        (Role::Admin, ADMIN_TOKEN),
    ];
    let mut checked = 0;
    for (method, allowed) in METHODS {
        let status = call_raw(&channel, method, Vec::new(), None).await.expect_err("no token");
        assert_eq!(status.code(), Code::Unauthenticated, "{method} without a token: {status:?}");
        assert_eq!(reason(&status).as_deref(), Some("CREDENTIALS_MISSING"));
        let status = call_raw(&channel, method, Vec::new(), Some("not-a-token")).await.expect_err("bad token");
        assert_eq!(status.code(), Code::Unauthenticated, "{method} with a bad token: {status:?}");
        assert_eq!(reason(&status).as_deref(), Some("TOKEN_INVALID"));
        for (role, token) in roles {
            let code = match call_raw(&channel, method, Vec::new(), Some(token)).await {
                Ok(_) => Code::Ok,
                Err(status) => status.code(),
            };
            if allowed.contains(&role) {
                assert!(
                    !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
                    "{method} must be allowed to {role:?}, got {code:?}"
                );
            } else {
                assert_eq!(code, Code::PermissionDenied, "{method} must be refused to {role:?}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 4 * 16);

    let health = "/grpc.health.v1.Health/Check";
    call_raw(&channel, health, Vec::new(), None).await.expect("health is public for load balancers");
    let reflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
    let status = call_raw(&channel, reflection, Vec::new(), None).await.expect_err("reflection needs a caller");
    assert_eq!(status.code(), Code::Unauthenticated);
    let unknown = "/antrean.v1.BookingService/DropEverything";
    let status = call_raw(&channel, unknown, Vec::new(), Some(ADMIN_TOKEN)).await.expect_err("unknown method");
    assert_eq!(status.code(), Code::PermissionDenied, "unknown methods are denied by default");
}

#[tokio::test]
async fn malformed_authorization_headers_are_unauthenticated() {
    let server = start("");
    let channel = server.channel().await;
    let path = "/antrean.v1.BookingService/ListOffices";
    for token in ["", " ", "booking-token", &format!("{BOOKING_TOKEN}x"), &"a".repeat(4000)] {
        let status = call_raw(&channel, path, Vec::new(), Some(token)).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "token {token:?}");
    }
    call_raw(&channel, path, Vec::new(), Some(BOOKING_TOKEN)).await.expect("the real token works");
}

async fn setup_two_offices(channel: &tonic::transport::Channel) -> (proto::Booking, proto::Booking) {
    let (mut booking, mut admin) = clients_with_token(channel, ADMIN_TOKEN);
    for office in [OFFICE_A, OFFICE_B] {
        let request = proto::UpsertOfficeRequest {
            request_id: request_id("office"),
            office: Some(test_office(office, 10, 3600)),
        };
        admin.upsert_office(request).await.expect("admin creates offices");
    }
    let status = booking.hold(hold_request(OFFICE_A, 1, applicant(1))).await.expect_err("admin cannot hold");
    assert_eq!(status.code(), Code::PermissionDenied);
    let (mut booking, _) = clients_with_token(channel, BOOKING_TOKEN);
    let in_a = booking.hold(hold_request(OFFICE_A, 1, applicant(1))).await.expect("hold a").into_inner();
    let in_b = booking.hold(hold_request(OFFICE_B, 1, applicant(2))).await.expect("hold b").into_inner();
    (in_a.booking.expect("booking"), in_b.booking.expect("booking"))
}

#[tokio::test]
async fn office_callers_reach_only_their_offices() {
    let server = start("");
    let channel = server.channel().await;
    let (in_a, in_b) = setup_two_offices(&channel).await;
    let (mut office, _) = clients_with_token(&channel, OFFICE_TOKEN);

    let seen = office.get_booking(proto::GetBookingRequest { booking_id: in_a.booking_id.clone() }).await;
    let seen = seen.expect("own office").into_inner().booking.expect("booking");
    assert_eq!(seen.applicant.expect("applicant").nik, applicant(1).nik, "office staff check the full NIK");
    let status = office
        .get_booking(proto::GetBookingRequest { booking_id: in_b.booking_id.clone() })
        .await
        .expect_err("another office");
    assert_eq!(status.code(), Code::NotFound, "another office's booking is not there for this caller");

    let list = |office_id: &str| proto::ListBookingsRequest {
        office_id: office_id.to_owned(),
        date: Some(common::jakarta_date(1)),
        page_size: 0,
        page_token: String::new(),
    };
    let listed = office.list_bookings(list(OFFICE_A)).await.expect("own list").into_inner();
    assert_eq!(listed.bookings.len(), 1);
    let status = office.list_bookings(list(OFFICE_B)).await.expect_err("another office's list");
    assert_eq!(status.code(), Code::PermissionDenied);

    let check_in = |booking_id: &str| proto::CheckInRequest {
        request_id: request_id("check-in"),
        booking_id: booking_id.to_owned(),
    };
    let status = office.check_in(check_in(&in_b.booking_id)).await.expect_err("another office's check-in");
    assert_eq!(status.code(), Code::NotFound);
    let status = office.check_in(check_in(&in_a.booking_id)).await.expect_err("unpaid");
    assert_eq!(status.code(), Code::FailedPrecondition, "own office passes authorization: {status:?}");

    let found = office.find_bookings(proto::FindBookingsRequest { nik: applicant(2).nik }).await.expect("find");
    assert!(found.into_inner().bookings.is_empty(), "another office's bookings are filtered out");
    let found = office.find_bookings(proto::FindBookingsRequest { nik: applicant(1).nik }).await.expect("find");
    assert_eq!(found.into_inner().bookings.len(), 1);
}

#[tokio::test]
async fn nik_is_masked_for_roles_that_do_not_need_it() {
    let server = start("");
    let channel = server.channel().await;
    let (in_a, _) = setup_two_offices(&channel).await;
    assert_eq!(in_a.applicant.as_ref().expect("applicant").nik, applicant(1).nik, "the booking back-end sees it");
    let (mut payment, _) = clients_with_token(&channel, PAYMENT_TOKEN);
    let request = proto::ConfirmPaymentRequest {
        request_id: request_id("pay"),
        booking_id: in_a.booking_id.clone(),
        payment_reference: "PAY-1".into(),
        paid_at: None,
    };
    let paid = payment.confirm_payment(request).await.expect("pay").into_inner();
    let nik = paid.booking.expect("booking").applicant.expect("applicant").nik;
    assert_ne!(nik, applicant(1).nik);
    assert!(nik.ends_with("**********") && nik.starts_with(&applicant(1).nik[..6]), "masked: {nik}");
}

#[tokio::test]
async fn holds_are_limited_per_account_and_per_applicant() {
    let server = start("[anti_hoarding]\naccount_holds_max = 3\napplicant_holds_max = 2\n");
    let channel = server.channel().await;
    let (_, mut admin) = clients_with_token(&channel, ADMIN_TOKEN);
    let request =
        proto::UpsertOfficeRequest { request_id: request_id("office"), office: Some(test_office(OFFICE_A, 50, 3600)) };
    admin.upsert_office(request).await.expect("office");
    let (mut booking, _) = clients_with_token(&channel, BOOKING_TOKEN);

    let hold = |serial: u32, account: &str| {
        let mut request = hold_request(OFFICE_A, 1, applicant(serial));
        account.clone_into(&mut request.account_id);
        request
    };
    for serial in 10..13 {
        booking.hold(hold(serial, "broker")).await.expect("under the account limit");
    }
    let status = booking.hold(hold(13, "broker")).await.expect_err("fourth hold of one account");
    let metadata = api::expect_reason(&status, Code::ResourceExhausted, "HOLD_RATE_LIMITED");
    assert_eq!(metadata.get("scope").map(String::as_str), Some("account"));
    use tonic_types::StatusExt;
    let retry = status.get_error_details().retry_info().and_then(|info| info.retry_delay).expect("retry hint");
    assert!(retry.as_secs() <= 3600 && retry.as_millis() > 0);
    booking.hold(hold(13, "someone-else")).await.expect("other accounts are not affected");

    // The same applicant re-held again and again (hold, cancel, hold) by fresh accounts.
    for round in 0..2 {
        let held = booking.hold(hold(20, &format!("parker-{round}"))).await.expect("hold").into_inner();
        let booking_id = held.booking.expect("booking").booking_id;
        booking.cancel(proto::CancelRequest { request_id: request_id("cancel"), booking_id }).await.expect("cancel");
    }
    let status = booking.hold(hold(20, "parker-9")).await.expect_err("third hold of one applicant");
    let metadata = api::expect_reason(&status, Code::ResourceExhausted, "HOLD_RATE_LIMITED");
    assert_eq!(metadata.get("scope").map(String::as_str), Some("applicant"));

    // A hold the engine refuses is not counted against the applicant.
    let refused = booking.hold(hold(30, "a")).await.expect("first");
    drop(refused);
    for _ in 0..3 {
        let status = booking.hold(hold(30, "b")).await.expect_err("already has a booking");
        assert_eq!(status.code(), Code::AlreadyExists);
    }
}

#[test]
fn hash_token_prints_the_sha256_of_standard_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_antrean"))
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    child.stdin.take().expect("stdin").write_all(format!("{BOOKING_TOKEN}\n").as_bytes()).expect("write");
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), token_hash(BOOKING_TOKEN));
    assert!(output.stderr.is_empty(), "a long token draws no warning");
}

#[test]
fn bad_caller_configuration_names_the_field() {
    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        ("[[callers]]\nname = \"x\"\ntoken_sha256 = \"abc\"\nroles = [\"booking\"]\n", "callers[0].token_sha256"),
        (
            &format!("[[callers]]\nname = \"x\"\ntoken_sha256 = \"{}\"\nroles = [\"root\"]\n", token_hash("t")),
            "callers[0].roles",
        ),
        (
            &format!("[[callers]]\nname = \"x\"\ntoken_sha256 = \"{}\"\nroles = [\"office\"]\n", token_hash("t")),
            "callers[0].offices",
        ),
        ("[server.tls]\ncert_path = \"\"\nkey_path = \"k\"\n", "server.tls.cert_path"),
        ("[anti_hoarding]\nwindow_seconds = 0\n", "anti_hoarding.window_seconds"),
    ];
    for (index, (text, field)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad-{index}.toml"));
        std::fs::write(&path, text).expect("write");
        let output = Command::new(env!("CARGO_BIN_EXE_antrean")).arg("check-config").arg(&path).output().expect("run");
        assert_eq!(output.status.code(), Some(1), "{text}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(field), "{field} not named in {stderr}");
        assert!(!stderr.contains(&token_hash("t")), "the token hash is not echoed back");
    }
}

/// Creates `offices` (id and regular capacity per session) as the operator.
async fn create_offices(channel: &tonic::transport::Channel, offices: &[(&str, u32)]) {
    let (_, mut admin) = clients_with_token(channel, ADMIN_TOKEN);
    for (office_id, capacity) in offices {
        let office = test_office(office_id, *capacity, 3600);
        let request = proto::UpsertOfficeRequest { request_id: request_id("office"), office: Some(office) };
        admin.upsert_office(request).await.expect("the operator creates offices");
    }
}

/// A hold of applicant `serial` at `office_id` tomorrow, for `account`.
fn hold_for(office_id: &str, serial: u32, account: &str) -> proto::HoldRequest {
    let mut request = hold_request(office_id, 1, applicant(serial));
    account.clone_into(&mut request.account_id);
    request
}

/// Calls `path` with an empty message and `authorization` exactly as given.
async fn call_with_authorization(
    channel: &tonic::transport::Channel,
    path: &str,
    authorization: &str,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let mut request = tonic::Request::new(Vec::new());
    request.metadata_mut().insert("authorization", authorization.parse().expect("ascii header"));
    let path = http::uri::PathAndQuery::try_from(path).expect("path");
    grpc.unary(request, path, calls::RawCodec).await.map(tonic::Response::into_inner)
}

/// Issue 13, item 1: a hold the engine refuses gives its anti-hoarding counts back and leaves no key behind, so one
/// caller re-holding an applicant who already has a booking with a new account each time cannot fill the table.
#[tokio::test]
async fn refused_holds_leave_nothing_behind_in_the_anti_hoarding_table() {
    let server = start("[anti_hoarding]\ntracked_keys_max = 100\n");
    let channel = server.channel().await;
    create_offices(&channel, &[(OFFICE_A, 50), (OFFICE_B, 50)]).await;
    let (mut app, _) = clients_with_token(&channel, BOOKING_TOKEN);
    let (mut partner, _) = clients_with_token(&channel, PARTNER_TOKEN);

    app.hold(hold_for(OFFICE_A, 1, "first-account")).await.expect("the applicant's booking");
    let mut already_booked = 0;
    for round in 0..110 {
        let status = app.hold(hold_for(OFFICE_A, 1, &format!("account-{round}"))).await.expect_err("has a booking");
        assert_eq!(status.code(), Code::AlreadyExists, "round {round}: {status:?}");
        already_booked += 1;
    }
    assert_eq!(already_booked, 110);
    partner
        .hold(hold_for(OFFICE_B, 2, "partner-account"))
        .await
        .expect("another caller's hold at another office is not refused for a table the refusals filled");
}

/// Issue 13, item 1: one caller's successful holds fill at most its share of the anti-hoarding table; the other
/// booking back-end keeps its own.
#[tokio::test]
async fn one_caller_cannot_fill_the_anti_hoarding_table_that_others_need() {
    let server = start("[anti_hoarding]\ntracked_keys_max = 60\n");
    let channel = server.channel().await;
    create_offices(&channel, &[(OFFICE_A, 200), (OFFICE_B, 50)]).await;
    let (mut app, _) = clients_with_token(&channel, BOOKING_TOKEN);
    let (mut partner, _) = clients_with_token(&channel, PARTNER_TOKEN);

    let mut held = 0;
    for serial in 0..60 {
        match app.hold(hold_for(OFFICE_A, 100 + serial, &format!("fresh-{serial}"))).await {
            Ok(_) => held += 1,
            Err(status) => {
                let metadata = api::expect_reason(&status, Code::ResourceExhausted, "HOLD_RATE_LIMITED");
                assert_eq!(metadata.get("scope").map(String::as_str), Some("tracked_keys"));
                break;
            }
        }
    }
    assert!(held < 60, "the caller reaches the end of its share of the table");
    partner.hold(hold_for(OFFICE_B, 2, "partner-account")).await.expect("the other back-end keeps its share");
}

/// Issue 13, item 2: the per-caller request rate is counted per authenticated caller, however the scheme of its
/// `authorization` header is spelled, and per peer address for calls without a caller (junk headers on Health).
#[tokio::test]
async fn the_request_rate_is_counted_per_caller_not_per_header_spelling() {
    let server = start("[server]\ncaller_requests_per_second_max = 5\n");
    let channel = server.channel().await;
    // At most the burst (5) and what refills while the calls run (5 a second), and one for rounding.
    let allowed = |started: std::time::Instant| 6.0 + 5.0 * started.elapsed().as_secs_f64();

    let started = std::time::Instant::now();
    let mut served = 0;
    for spelling in 0..40u32 {
        let scheme: String = "bearer"
            .chars()
            .enumerate()
            .map(|(position, letter)| if spelling >> position & 1 == 1 { letter.to_ascii_uppercase() } else { letter })
            .collect();
        let authorization = format!("{scheme} {BOOKING_TOKEN}");
        if call_with_authorization(&channel, "/antrean.v1.BookingService/ListOffices", &authorization).await.is_ok() {
            served += 1;
        }
    }
    assert!(f64::from(served) <= allowed(started), "{served} of 40 calls of one caller got through a limit of 5/s");

    let started = std::time::Instant::now();
    let mut served = 0;
    for junk in 0..40 {
        let authorization = format!("junk-{junk}");
        if call_with_authorization(&channel, "/grpc.health.v1.Health/Check", &authorization).await.is_ok() {
            served += 1;
        }
    }
    assert!(f64::from(served) <= allowed(started), "{served} of 40 calls from one address got through 5/s");

    let (mut partner, _) = clients_with_token(&channel, PARTNER_TOKEN);
    partner.list_offices(proto::ListOfficesRequest {}).await.expect("another caller has a budget of its own");
}

/// Issue 13, item 3: with two booking back-ends, one of them choosing a new account for every hold takes at most
/// its share of a session (half by default), and the other still finds slots.
#[tokio::test]
async fn one_booking_caller_cannot_sweep_a_session_with_fresh_accounts() {
    let server = start("");
    let channel = server.channel().await;
    create_offices(&channel, &[(OFFICE_A, 17)]).await;
    let (mut app, _) = clients_with_token(&channel, BOOKING_TOKEN);
    let (mut partner, _) = clients_with_token(&channel, PARTNER_TOKEN);

    let mut held = 0;
    let mut refusal = None;
    for serial in 0..17 {
        match app.hold(hold_for(OFFICE_A, 100 + serial, &format!("fresh-{serial}"))).await {
            Ok(_) => held += 1,
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    assert!(held <= 9, "one booking caller took {held} of the session's 17 slots");
    let status = refusal.expect("refused once past its share");
    let metadata = api::expect_reason(&status, Code::ResourceExhausted, "HOLD_RATE_LIMITED");
    assert_eq!(metadata.get("scope").map(String::as_str), Some("session_share"));
    partner.hold(hold_for(OFFICE_A, 200, "partner-account")).await.expect("the other back-end still finds a slot");
}

/// Issue 13, item 4: a booking belongs to the caller that made it. Another booking caller cannot read, cancel,
/// reschedule or find it (NOT_FOUND, as for an id that does not exist); request ids are per caller; booking ids are
/// not sequential and carry a check character.
#[tokio::test]
async fn a_booking_belongs_to_the_caller_that_made_it() {
    let server = start("");
    let channel = server.channel().await;
    create_offices(&channel, &[(OFFICE_A, 10)]).await;
    let (mut app, _) = clients_with_token(&channel, BOOKING_TOKEN);
    let (mut partner, _) = clients_with_token(&channel, PARTNER_TOKEN);

    let request = hold_request(OFFICE_A, 1, applicant(1));
    let mine = app.hold(request.clone()).await.expect("hold").into_inner().booking.expect("booking");
    let next = app.hold(hold_request(OFFICE_A, 1, applicant(2))).await.expect("hold").into_inner().booking;
    let next = next.expect("booking");
    for id in [&mine.booking_id, &next.booking_id] {
        assert!(id.starts_with("BK") && id.len() == 12, "short enough to read over a phone: {id}");
    }
    let number = |id: &str| id[2..].parse::<u64>().ok();
    if let (Some(first), Some(second)) = (number(&mine.booking_id), number(&next.booking_id)) {
        assert!(first.abs_diff(second) > 1_000, "consecutive holds get unrelated ids: {first} and {second}");
    }
    let mut typo = mine.booking_id.clone().into_bytes();
    typo[6] = if typo[6] == b'0' { b'1' } else { b'0' };
    let typo = String::from_utf8(typo).expect("ascii");
    let status = api_get(&mut app, &typo).await.expect_err("a mistyped id");
    assert_eq!(status.code(), Code::InvalidArgument, "the check character catches {typo}: {status:?}");

    let absent = api_get(&mut partner, &antrean::domain::BookingId(12_345).to_string()).await.expect_err("absent");
    let status = api_get(&mut partner, &mine.booking_id).await.expect_err("another caller's booking");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(reason(&status), reason(&absent), "answered as for an id that does not exist");
    let cancel = proto::CancelRequest { request_id: request_id("cancel"), booking_id: mine.booking_id.clone() };
    assert_eq!(partner.cancel(cancel).await.expect_err("not the partner's").code(), Code::NotFound);
    let reschedule = proto::RescheduleRequest {
        request_id: request_id("reschedule"),
        booking_id: mine.booking_id.clone(),
        date: Some(common::jakarta_date(2)),
        session_id: "1300-1500".into(),
    };
    assert_eq!(partner.reschedule(reschedule).await.expect_err("not the partner's").code(), Code::NotFound);
    let find = || proto::FindBookingsRequest { nik: applicant(1).nik };
    assert!(partner.find_bookings(find()).await.expect("find").into_inner().bookings.is_empty());
    assert_eq!(app.find_bookings(find()).await.expect("find").into_inner().bookings.len(), 1);
    let still = api_get(&mut app, &mine.booking_id).await.expect("the owner reads it");
    assert_eq!(still.state, proto::BookingState::AwaitingPayment as i32, "the partner's cancel changed nothing");

    // The same request id, sent by another caller, is that caller's own.
    match partner.hold(request.clone()).await {
        Ok(answer) => panic!("another caller's request id answered with its booking: {answer:?}"),
        Err(status) => assert_eq!(status.code(), Code::AlreadyExists, "the applicant has a booking: {status:?}"),
    }
    let mut different = hold_request(OFFICE_A, 1, applicant(3));
    different.request_id.clone_from(&request.request_id);
    partner.hold(different).await.expect("a request id another caller used is free for this one");
}

async fn api_get(booking: &mut calls::AuthBooking, booking_id: &str) -> Result<proto::Booking, tonic::Status> {
    let request = proto::GetBookingRequest { booking_id: booking_id.to_owned() };
    booking.get_booking(request).await.map(|response| response.into_inner().booking.expect("booking"))
}

/// Issue 13, item 5: the masked NIK payment callers get cannot be completed from the rest of the same answer: the
/// birth date (digits 7 to 12 of the NIK) is not in it.
#[tokio::test]
async fn a_masked_nik_cannot_be_completed_from_the_rest_of_the_answer() {
    let server = start("");
    let channel = server.channel().await;
    let (in_a, _) = setup_two_offices(&channel).await;
    let (mut payment, _) = clients_with_token(&channel, PAYMENT_TOKEN);
    let request = proto::ConfirmPaymentRequest {
        request_id: request_id("pay"),
        booking_id: in_a.booking_id.clone(),
        payment_reference: "PAY-1".into(),
        paid_at: None,
    };
    let paid = payment.confirm_payment(request).await.expect("pay").into_inner().booking.expect("booking");
    let person = paid.applicant.expect("applicant");
    assert!(person.nik.ends_with("**********"), "masked: {}", person.nik);
    assert_eq!(person.birth_date, None, "the birth date gives away digits 7 to 12 of the masked NIK");
}

/// Issue 13, item 6: an office caller gets the same answer for another office's booking as for an id that does not
/// exist, for reads and for check-in.
#[tokio::test]
async fn office_callers_cannot_tell_another_offices_booking_from_none() {
    let server = start("");
    let channel = server.channel().await;
    let (_, in_b) = setup_two_offices(&channel).await;
    let (mut office, _) = clients_with_token(&channel, OFFICE_TOKEN);
    let absent = antrean::domain::BookingId(12_345).to_string();
    for booking_id in [&in_b.booking_id, &absent] {
        let status = api_get(&mut office, booking_id).await.expect_err("not this office's");
        api::expect_reason(&status, Code::NotFound, "BOOKING_NOT_FOUND");
        let check_in = proto::CheckInRequest { request_id: request_id("check-in"), booking_id: booking_id.clone() };
        let status = office.check_in(check_in).await.expect_err("not this office's");
        api::expect_reason(&status, Code::NotFound, "BOOKING_NOT_FOUND");
    }
}
