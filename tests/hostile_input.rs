//! Hostile input against the real server: a 100 MB message, corrupted and truncated gRPC frames sent over raw
//! HTTP/2, extreme and out-of-range values in every kind of field, and random or mutated bytes sent to every method.
//! Each is refused with a status (never a crash, never a handler panic, which gRPC would report as UNKNOWN), and the
//! server keeps serving afterwards.

#[path = "common/calls.rs"]
mod calls;
mod common;

use antrean::auth::permissions::METHODS;
use antrean::proto;
use calls::call_raw;
use common::{Server, applicant, hold_request, request_id, test_office};
use proptest::prelude::*;
use prost::Message;
use prost::bytes::Bytes;
use tonic::Code;
use tonic::transport::Channel;

const OFFICE: &str = "kanim-hostile";

async fn still_serving(channel: &Channel) {
    let mut booking = proto::booking_service_client::BookingServiceClient::new(channel.clone());
    booking.list_offices(proto::ListOfficesRequest {}).await.expect("the server keeps serving");
}

/// A status a handler would never produce by itself: a panic shows up as UNKNOWN (or INTERNAL from the transport).
/// Bytes that do not decode are INVALID_ARGUMENT, not INTERNAL.
fn assert_clean(status: &tonic::Status, what: &str) {
    assert!(
        !matches!(status.code(), Code::Unknown | Code::Internal | Code::Unavailable | Code::Cancelled),
        "{what}: {status:?}"
    );
}

#[tokio::test]
async fn a_100_mb_message_is_refused_and_the_server_keeps_serving() {
    let server = Server::start();
    let channel = server.channel().await;
    for bytes in [100 * 1024 * 1024, 2 * 1024 * 1024] {
        let body = vec![0x0a; bytes];
        let status = call_raw(&channel, "/antrean.v1.BookingService/Hold", body, None).await.expect_err("too large");
        assert_eq!(status.code(), Code::ResourceExhausted, "a {bytes}-byte message: {status:?}");
        still_serving(&channel).await;
    }
}

/// Sends `body` (already framed, or not) as the whole request body over a raw HTTP/2 stream and returns the
/// grpc-status the server answered with.
async fn send_raw_frame(address: &str, path: &str, body: Vec<u8>) -> i32 {
    let tcp = tokio::net::TcpStream::connect(address).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{address}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (response, mut stream) = client.send_request(request, false).expect("send");
    stream.send_data(Bytes::from(body), true).expect("data");
    let response = response.await.expect("response headers");
    let (parts, mut body) = response.into_parts();
    if let Some(status) = parts.headers.get("grpc-status") {
        return status.to_str().expect("ascii").parse().expect("number");
    }
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.expect("trailers").expect("a grpc-status trailer");
    trailers.get("grpc-status").expect("grpc-status").to_str().expect("ascii").parse().expect("number")
}

fn frame(compressed: u8, declared_length: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![compressed];
    bytes.extend_from_slice(&declared_length.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

#[tokio::test]
async fn corrupted_and_truncated_frames_are_refused_and_the_server_keeps_serving() {
    let server = Server::start();
    let channel = server.channel().await;
    let valid = hold_request(OFFICE, 1, applicant(1)).encode_to_vec();
    let path = "/antrean.v1.BookingService/Hold";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated payload", frame(0, valid.len() as u32, &valid[..valid.len() / 2])),
        ("truncated header", vec![0, 0, 0]),
        ("4 GiB declared length", frame(0, u32::MAX, &valid)),
        ("compressed flag without an encoding", frame(1, valid.len() as u32, &valid)),
        ("bad compression flag", frame(7, valid.len() as u32, &valid)),
        ("garbage protobuf", frame(0, 8, &[0xff; 8])),
        ("truncated varint", frame(0, 2, &[0x0a, 0xff])),
        ("field length past the end", frame(0, 3, &[0x0a, 0x7f, 0x41])),
        ("wrong wire type", frame(0, 2, &[0x0d, 0x01])),
    ];
    for (what, body) in cases {
        let code = Code::from_i32(send_raw_frame(&server.address, path, body).await);
        assert_ne!(code, Code::Ok, "{what}");
        assert_ne!(code, Code::Unknown, "{what}: a handler panicked");
        still_serving(&channel).await;
    }
    // A flipped bit anywhere in a valid request: refused or accepted, never a crash.
    for index in 0..valid.len() {
        let mut damaged = valid.clone();
        damaged[index] ^= 0x80;
        let code =
            Code::from_i32(send_raw_frame(&server.address, path, frame(0, damaged.len() as u32, &damaged)).await);
        assert_ne!(code, Code::Unknown, "flip in byte {index}");
    }
    still_serving(&channel).await;
}

#[tokio::test]
async fn extreme_field_values_are_refused_cleanly() {
    let server = Server::start();
    let channel = server.channel().await;
    let (mut booking, mut admin) = server.clients().await;
    common::create_office(&mut admin, test_office(OFFICE, 10, 3600)).await;
    let long = "x".repeat(200 * 1024);
    let huge_date = proto::Date { year: i32::MAX, month: i32::MIN, day: -1 };

    let mut hold = hold_request(OFFICE, 1, applicant(1));
    hold.request_id.clone_from(&long);
    hold.office_id.clone_from(&long);
    hold.session_id = "\u{0}\u{202e}".into();
    hold.service = 99;
    hold.pool = -1;
    hold.account_id = "🙂".repeat(1000);
    hold.admission_token.clone_from(&long);
    hold.date = Some(huge_date);
    let status = booking.hold(hold).await.expect_err("every field is wrong");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let mut hold = hold_request(OFFICE, 1, applicant(1));
    let person = hold.applicant.as_mut().expect("applicant");
    person.full_name.clone_from(&long);
    person.nik = "9".repeat(10_000);
    person.birth_date = Some(proto::Date { year: -5000, month: 2, day: 30 });
    let status = booking.hold(hold).await.expect_err("bad applicant");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let group = proto::HoldGroupRequest {
        request_id: request_id("group"),
        office_id: OFFICE.into(),
        service: 1,
        date: Some(common::jakarta_date(1)),
        session_id: "1300-1500".into(),
        pool: 1,
        applicants: (0..10_000).map(applicant).collect(),
        account_id: "acct".into(),
        admission_token: String::new(),
    };
    let status = booking.hold_group(group).await.expect_err("too many applicants");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let list = proto::ListBookingsRequest {
        office_id: OFFICE.into(),
        date: Some(huge_date),
        page_size: i32::MIN,
        page_token: long.clone(),
    };
    assert_eq!(booking.list_bookings(list).await.expect_err("bad list").code(), Code::InvalidArgument);
    let find = proto::FindBookingsRequest { nik: long.clone() };
    assert_eq!(booking.find_bookings(find).await.expect_err("bad nik").code(), Code::InvalidArgument);
    let availability = proto::GetAvailabilityRequest {
        office_id: OFFICE.into(),
        service: 1,
        first_date: Some(proto::Date { year: 1, month: 1, day: 1 }),
        last_date: Some(proto::Date { year: 9999, month: 12, day: 31 }),
    };
    assert_clean(&booking.get_availability(availability).await.expect_err("range too long"), "availability");

    let mut office = test_office("kanim-extreme", u32::MAX, i64::MAX);
    office.display_name.clone_from(&long);
    office.time_zone.clone_from(&long);
    office.working_weekdays = vec![i32::MIN, i32::MAX];
    office.booking_horizon_days = i32::MAX;
    office.release_days_before = i32::MIN;
    office.services = vec![12345];
    let upsert = proto::UpsertOfficeRequest { request_id: request_id("office"), office: Some(office) };
    assert_eq!(admin.upsert_office(upsert).await.expect_err("bad office").code(), Code::InvalidArgument);

    for (seconds, nanos) in [(i64::MAX, i32::MAX), (i64::MIN, i32::MIN), (i64::MAX, -1), (0, i32::MAX)] {
        let schedule = proto::SetScheduleRequest {
            request_id: request_id("schedule"),
            office_id: OFFICE.into(),
            first_date: Some(common::jakarta_date(40)),
            last_date: Some(common::jakarta_date(41)),
            release_at: Some(prost_types::Timestamp { seconds, nanos }),
            sessions: Vec::new(),
            ..Default::default()
        };
        if let Err(status) = admin.set_schedule(schedule).await {
            assert_clean(&status, &format!("release_at {seconds}s {nanos}ns"));
        }
    }
    let close = proto::CloseDateRequest {
        request_id: request_id("close"),
        office_id: OFFICE.into(),
        date: Some(common::jakarta_date(2)),
        reason: long.clone(),
        reopen: false,
    };
    assert_eq!(admin.close_date(close).await.expect_err("long reason").code(), Code::InvalidArgument);
    let refunds = proto::ListRefundsRequest { office_id: String::new(), page_size: -1, page_token: "-1".into() };
    assert_eq!(admin.list_refunds(refunds).await.expect_err("bad page").code(), Code::InvalidArgument);
    still_serving(&channel).await;
}

/// Valid requests of a few methods, as seeds to mutate.
fn seeds() -> Vec<(usize, Vec<u8>)> {
    let index = |path: &str| METHODS.iter().position(|(method, _)| *method == path).expect("method");
    let hold = hold_request(OFFICE, 1, applicant(7));
    let office = test_office("kanim-seed", 5, 3600);
    vec![
        (index("/antrean.v1.BookingService/Hold"), hold.encode_to_vec()),
        (
            index("/antrean.v1.AdminService/UpsertOffice"),
            proto::UpsertOfficeRequest { request_id: "seed".into(), office: Some(office) }.encode_to_vec(),
        ),
        (
            index("/antrean.v1.BookingService/GetAvailability"),
            proto::GetAvailabilityRequest {
                office_id: OFFICE.into(),
                service: 1,
                first_date: Some(common::jakarta_date(0)),
                last_date: Some(common::jakarta_date(5)),
            }
            .encode_to_vec(),
        ),
    ]
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for (position, value, kind) in edits {
        if bytes.is_empty() {
            bytes.push(*value);
            continue;
        }
        let at = position % bytes.len();
        match kind % 4 {
            0 => bytes[at] ^= value | 1,
            1 => bytes.insert(at, *value),
            2 => {
                bytes.remove(at);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// Random bytes and mutations of valid requests, sent to every method: every answer is a clean status.
#[test]
fn random_and_mutated_requests_to_every_method_never_crash_the_server() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = Server::start();
    let channel = runtime.block_on(async {
        let channel = server.channel().await;
        let (_, mut admin) = server.clients().await;
        common::create_office(&mut admin, test_office(OFFICE, 10, 3600)).await;
        channel
    });
    let seeds = seeds();
    let strategy = (
        0..METHODS.len(),
        0..seeds.len() + 1,
        proptest::collection::vec(any::<u8>(), 0..256),
        proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
    );
    let config = ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&strategy, |(method, seed, random, edits)| {
            let (method, body) = match seeds.get(seed) {
                Some((seed_method, bytes)) => (*seed_method, mutate(bytes.clone(), &edits)),
                None => (method, random),
            };
            let path = METHODS[method].0;
            let result = runtime.block_on(call_raw(&channel, path, body, None));
            if let Err(status) = result
                && status.code() != Code::DeadlineExceeded
            {
                assert_clean(&status, path);
            }
            Ok(())
        })
        .expect("no input crashes a handler");
    runtime.block_on(still_serving(&channel));
}

/// The `ErrorInfo.reason` of `status`, if any.
fn error_reason(status: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt;
    status.get_error_details().error_info().map(|info| info.reason.clone())
}

/// Issue 13, item 8: a message that is not protobuf is INVALID_ARGUMENT, a message over the size limit is
/// RESOURCE_EXHAUSTED, each with an `ErrorInfo` reason, as gRPC's conventions and README's error table say.
#[tokio::test]
async fn undecodable_and_oversized_messages_get_grpc_codes_with_reasons() {
    let server = Server::start();
    let channel = server.channel().await;
    let path = "/antrean.v1.BookingService/Hold";
    for (what, body) in [("garbage", vec![0xff; 8]), ("truncated varint", vec![0x0a, 0xff]), ("wire type", vec![0x0d])]
    {
        let status = call_raw(&channel, path, body, None).await.expect_err("cannot be decoded");
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_eq!(error_reason(&status).as_deref(), Some("MESSAGE_UNDECODABLE"), "{what}: {status:?}");
    }
    let status = call_raw(&channel, path, vec![0x0a; 2 * 1024 * 1024], None).await.expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(error_reason(&status).as_deref(), Some("MESSAGE_TOO_LARGE"), "{status:?}");
    still_serving(&channel).await;
}

/// Issue 13, item 10: names and other free text refuse control and format characters: bidirectional overrides
/// (U+202E) that make a name read backwards, and zero-width characters that make two names look the same.
#[tokio::test]
async fn free_text_refuses_bidirectional_overrides_and_zero_width_characters() {
    let server = Server::start();
    let (mut booking, mut admin) = server.clients().await;
    common::create_office(&mut admin, test_office(OFFICE, 10, 3600)).await;
    for (serial, name) in [(1, "Budi \u{202e}oyotnaS"), (2, "Bu\u{200b}di Santoso"), (3, "Budi\u{2066} Santoso")] {
        let mut hold = hold_request(OFFICE, 1, applicant(serial));
        hold.applicant.as_mut().expect("applicant").full_name = name.into();
        let status = booking.hold(hold).await.expect_err("a name with an invisible or reordering character");
        assert_eq!(status.code(), Code::InvalidArgument, "{name:?}: {status:?}");
        assert!(status.message().contains("applicant.full_name"), "{name:?}: {status:?}");
    }
    let mut office = test_office("kanim-bidi", 5, 3600);
    office.display_name = "Kanim \u{202e}matab".into();
    office.city = "Ba\u{200d}tam".into();
    let upsert = proto::UpsertOfficeRequest { request_id: request_id("office"), office: Some(office) };
    let status = admin.upsert_office(upsert).await.expect_err("free text of an office");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("office.display_name") && status.message().contains("office.city"), "{status:?}");
    let close = proto::CloseDateRequest {
        request_id: request_id("close"),
        office_id: OFFICE.into(),
        date: Some(common::jakarta_date(3)),
        reason: "libur\u{feff} nasional".into(),
        reopen: false,
    };
    let status = admin.close_date(close).await.expect_err("a closure reason with a zero-width no-break space");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}
