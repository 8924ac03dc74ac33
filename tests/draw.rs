//! The draw anyone can check (issue 17), black-box: a line commits to a secret before its release instant, the secret
//! shows up nowhere before the draw (no RPC answer, not /metrics, not the server's log), and after the draw the
//! published draw verifies with both verifiers (`antrean verify-draw` and `scripts/verify_draw.py`), which both refuse
//! it when one byte of the list, the secret or the order is changed. A restart keeps the secret.

mod common;

use antrean::proto::admin_service_client::AdminServiceClient;
use antrean::proto::booking_service_client::BookingServiceClient;
use antrean::proto::waiting_room_service_client::WaitingRoomServiceClient;
use antrean::proto::{self, Date};
use common::{Options, Server, applicant, create_office, jakarta_date, request_id, test_office};
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::transport::Channel;

const OFFICE: &str = "kanim-draw";
/// Applicants who join before the release instant.
const APPLICANTS: u32 = 12;

type Line = WaitingRoomServiceClient<Channel>;

/// Everything a test saw before the release instant: each answer's text and bytes, the /metrics pages.
#[derive(Default)]
struct Seen {
    answers: Vec<(String, Vec<u8>)>,
}

impl Seen {
    fn answer(&mut self, what: &str, message: &(impl Message + std::fmt::Debug)) {
        self.answers.push((format!("{what}: {message:?}"), message.encode_to_vec()));
    }

    fn text(&mut self, what: &str, text: String) {
        self.answers.push((format!("{what}: {text}"), Vec::new()));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect to /metrics");
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("response");
    body
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as i64
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// A test server whose log goes to a file, with /metrics on its own port.
struct Scene {
    server: Server,
    temp: tempfile::TempDir,
    metrics_port: u16,
}

impl Scene {
    fn start() -> Scene {
        let temp = tempfile::tempdir().expect("temp dir");
        let metrics_port = free_port();
        let server = Server::start_logging(
            &temp.path().join("data"),
            &Scene::options(metrics_port),
            Some((&temp.path().join("server.log"), "debug")),
        );
        Scene { server, temp, metrics_port }
    }

    fn options(metrics_port: u16) -> Options {
        Options {
            args: vec![format!("--metrics-listen=127.0.0.1:{metrics_port}")],
            config: Some(
                "[booking]\nwaiting_room_pre_open_seconds = 600\npayment_settlement_grace_seconds = 0\n".into(),
            ),
        }
    }

    fn restart(&mut self) {
        assert!(self.server.terminate().success(), "a clean shutdown");
        let log = self.temp.path().join("server.log");
        self.server = Server::start_logging(
            &self.temp.path().join("data"),
            &Scene::options(self.metrics_port),
            Some((&log, "debug")),
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.temp.path().join("server.log")).expect("read the server's log")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.temp.path().join(name)
    }
}

async fn schedule_line(
    admin: &mut AdminServiceClient<Channel>,
    first: Date,
    last: Date,
    release_at_ms: i64,
) -> proto::SetScheduleResponse {
    let request = proto::SetScheduleRequest {
        request_id: request_id("schedule"),
        office_id: OFFICE.into(),
        first_date: Some(first),
        last_date: Some(last),
        release_at: Some(timestamp(release_at_ms)),
        sessions: Vec::new(),
        waiting_room: true,
    };
    admin.set_schedule(request).await.expect("schedule").into_inner()
}

async fn join(line: &mut Line, serial: u32) -> proto::Ticket {
    let request = proto::JoinRequest {
        request_id: request_id("join"),
        office_id: OFFICE.into(),
        service: proto::ServiceType::NewPassport as i32,
        nik: applicant(serial).nik,
        first_date: None,
        last_date: None,
        party_size: 1,
    };
    line.join(request).await.expect("join").into_inner().ticket.expect("ticket")
}

async fn get_draw(line: &mut Line, release_at_ms: i64) -> proto::GetDrawResponse {
    let request = proto::GetDrawRequest {
        office_id: OFFICE.into(),
        release_at: Some(timestamp(release_at_ms)),
        offset: 0,
        page_size: 0,
    };
    line.get_draw(request).await.expect("get draw").into_inner()
}

/// Waits (at most 30 s) until the line's draw is made.
async fn drawn(line: &mut Line, release_at_ms: i64) -> proto::GetDrawResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let draw = get_draw(line, release_at_ms).await;
        if draw.drawn {
            return draw;
        }
        assert!(Instant::now() < deadline, "the draw was not made within 30 s of the release instant");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `antrean get-draw` into `path`.
fn fetch_draw_file(server: &Server, release_at_ms: i64, path: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_antrean"))
        .args(["get-draw", "--target", &format!("http://{}", server.address), "--office-id", OFFICE])
        .args(["--release-at", &release_at_ms.to_string(), "--output"])
        .arg(path)
        .status()
        .expect("run antrean get-draw");
    assert!(status.success(), "antrean get-draw failed");
}

/// Both verifiers' verdicts on `path`: (Rust accepts, Python accepts).
fn verdicts(path: &Path) -> (bool, bool) {
    let rust =
        Command::new(env!("CARGO_BIN_EXE_antrean")).arg("verify-draw").arg(path).output().expect("run verify-draw");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verify_draw.py");
    let python =
        Command::new("python3").arg(script).arg(path).output().expect("python3 runs (it is needed to check the draw)");
    for (name, output) in [("verify-draw", &rust), ("verify_draw.py", &python)] {
        let code = output.status.code();
        assert!(code == Some(0) || code == Some(1), "{name} crashed: {}", String::from_utf8_lossy(&output.stderr));
    }
    (rust.status.success(), python.status.success())
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read the draw file")).expect("json")
}

fn write_json(path: &Path, value: &serde_json::Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).expect("encode")).expect("write the draw file");
}

/// Changes one hex digit of `text` (at `index`), so exactly one byte differs.
fn flip_hex_digit(text: &str, index: usize) -> String {
    let mut digits: Vec<char> = text.chars().collect();
    digits[index] = if digits[index] == '0' { '1' } else { '0' };
    digits.into_iter().collect()
}

/// Standard base64, padded (the alphabet and padding of RFC 4648).
fn base64(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let word = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for index in 0..=chunk.len() {
            text.push(alphabet[((word >> (18 - 6 * index)) & 63) as usize] as char);
        }
        if pad {
            text.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    text
}

/// The ways the secret could be written out: raw, hex (both cases), base64 (standard and URL-safe, with and without
/// padding), and a 16-byte slice of each half in hex (a partial leak).
fn spellings(secret: &[u8]) -> Vec<String> {
    const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let hex = hex::encode(secret);
    vec![
        hex.clone(),
        hex.to_uppercase(),
        hex[..32].to_owned(),
        hex[32..].to_owned(),
        base64(secret, STANDARD, true),
        base64(secret, STANDARD, false),
        base64(secret, URL_SAFE, false),
        format!("{secret:?}"),
    ]
}

fn assert_secret_absent(secret: &[u8], seen: &Seen, log: &str) {
    let spellings = spellings(secret);
    for (text, bytes) in &seen.answers {
        assert!(!bytes.windows(secret.len()).any(|window| window == secret), "the secret's bytes are in {text}");
        for spelling in &spellings {
            assert!(!text.contains(spelling.as_str()), "the secret ({spelling}) is in {text}");
        }
    }
    for spelling in &spellings {
        assert!(!log.contains(spelling.as_str()), "the secret ({spelling}) is in the server's log");
    }
}

#[tokio::test]
async fn a_published_draw_verifies_with_both_verifiers_and_refuses_any_change() {
    let scene = Scene::start();
    let channel = scene.server.channel().await;
    let mut admin = AdminServiceClient::new(channel.clone());
    let mut booking = BookingServiceClient::new(channel.clone());
    let mut line = WaitingRoomServiceClient::new(channel);
    create_office(&mut admin, test_office(OFFICE, 3, 600)).await;
    let mut seen = Seen::default();

    // Schedule: two dates behind a line released a few seconds from now.
    let release_at_ms = now_ms() + 6_000;
    let scheduled = schedule_line(&mut admin, jakarta_date(20), jakarta_date(21), release_at_ms).await;
    seen.answer("SetSchedule", &scheduled);

    // Join before the instant; every ticket carries the same commitment and a receipt of its own.
    let mut tickets = Vec::new();
    for serial in 1..=APPLICANTS {
        let ticket = join(&mut line, serial).await;
        seen.answer("Join", &ticket);
        tickets.push(ticket);
    }
    let commitment = tickets[0].draw_commitment.clone();
    assert_eq!(commitment.len(), 32, "a SHA-256 commitment on the ticket");
    assert!(tickets.iter().all(|ticket| ticket.draw_commitment == commitment && ticket.receipt.len() == 16));
    assert!(tickets.iter().all(|ticket| ticket.position == 0), "no place before the draw");

    let mut stream =
        line.watch(proto::WatchRequest { ticket_id: tickets[0].ticket_id.clone() }).await.expect("watch").into_inner();
    let watched = stream.message().await.expect("watch").expect("a first update");
    seen.answer("Watch", &watched);
    drop(stream);

    let availability = booking
        .get_availability(proto::GetAvailabilityRequest {
            office_id: OFFICE.into(),
            service: proto::ServiceType::NewPassport as i32,
            first_date: Some(jakarta_date(19)),
            last_date: Some(jakarta_date(22)),
        })
        .await
        .expect("availability")
        .into_inner();
    seen.answer("GetAvailability", &availability);
    let behind: Vec<&proto::SessionAvailability> =
        availability.sessions.iter().filter(|session| !session.draw_commitment.is_empty()).collect();
    assert_eq!(behind.len(), 4, "two dates, two sessions each, behind the line: {availability:?}");
    assert!(behind.iter().all(|session| session.draw_commitment == commitment));

    let before = get_draw(&mut line, release_at_ms).await;
    seen.answer("GetDraw", &before);
    assert!(!before.drawn && before.secret.is_empty() && before.pre_open.is_empty() && before.order.is_empty());
    assert_eq!(before.draw_commitment, commitment);
    assert_eq!(before.pre_open_total, u64::from(APPLICANTS));
    assert_eq!(before.algorithm_version, 1);
    seen.text("/metrics", scrape(scene.metrics_port).await);
    assert!(now_ms() < release_at_ms, "everything above happened before the release instant; start the line later");

    // The draw, then one later arrival.
    let after = drawn(&mut line, release_at_ms).await;
    let late = join(&mut line, APPLICANTS + 1).await;
    let secret = after.secret.clone();
    assert_eq!(secret.len(), 32);
    assert_secret_absent(&secret, &seen, &scene.log());

    // The published draw, fetched as a file, verifies with both verifiers.
    let path = scene.file("draw.json");
    fetch_draw_file(&scene.server, release_at_ms, &path);
    assert_eq!(verdicts(&path), (true, true), "both verifiers accept the published draw");
    let draw = read_json(&path);
    assert_eq!(draw["commitment"], hex::encode(&commitment), "the commitment read before the draw");
    let receipts: Vec<&str> = draw["pre_open"]
        .as_array()
        .expect("list")
        .iter()
        .map(|entry| entry["receipt"].as_str().expect("receipt"))
        .collect();
    assert_eq!(receipts.len(), APPLICANTS as usize);
    for ticket in &tickets {
        assert!(receipts.contains(&hex::encode(&ticket.receipt).as_str()), "each applicant finds their receipt");
    }
    let later = draw["later_arrivals"].as_array().expect("later arrivals");
    assert_eq!(later.len(), 1);
    assert_eq!(later[0]["ticket_id"], late.ticket_id.as_str());
    assert!(later[0]["joined_at_ms"].as_i64().expect("join time") >= release_at_ms);
    assert_eq!(draw["figures"]["tickets_at_draw"], u64::from(APPLICANTS));
    assert_eq!(draw["figures"]["slots_offered"]["regular"], 12, "3 slots, 2 sessions, 2 dates");

    // The published order is the line's real order: each ticket's place.
    let order: Vec<&str> = draw["order"].as_array().expect("order").iter().map(|id| id.as_str().expect("id")).collect();
    for ticket in &tickets {
        let mut stream =
            line.watch(proto::WatchRequest { ticket_id: ticket.ticket_id.clone() }).await.expect("watch").into_inner();
        let now = stream.message().await.expect("watch").expect("update").ticket.expect("ticket");
        assert_eq!(order[now.position as usize - 1], ticket.ticket_id, "place {} of the published order", now.position);
    }

    // One byte changed in the list, the secret or the order: both verifiers refuse.
    let mut tampered = Vec::new();
    let mut receipt_changed = draw.clone();
    let receipt = receipt_changed["pre_open"][3]["receipt"].as_str().expect("receipt").to_owned();
    receipt_changed["pre_open"][3]["receipt"] = flip_hex_digit(&receipt, 5).into();
    tampered.push(("a receipt in the list", receipt_changed));
    let mut join_time_changed = draw.clone();
    let joined = join_time_changed["pre_open"][0]["joined_at_ms"].as_i64().expect("time");
    join_time_changed["pre_open"][0]["joined_at_ms"] = (joined ^ 1).into();
    tampered.push(("a join time in the list", join_time_changed));
    let mut secret_changed = draw.clone();
    secret_changed["secret"] = flip_hex_digit(draw["secret"].as_str().expect("secret"), 10).into();
    tampered.push(("the secret", secret_changed));
    let mut order_changed = draw.clone();
    let (first, second) = (order[0].to_owned(), order[1].to_owned());
    order_changed["order"][0] = second.into();
    order_changed["order"][1] = first.into();
    tampered.push(("the order", order_changed));
    for (what, value) in tampered {
        let path = scene.file("tampered.json");
        write_json(&path, &value);
        assert_eq!(verdicts(&path), (false, false), "both verifiers refuse a draw with {what} changed");
    }
}

// Several threads: the connections dropped before the restart close on another thread while this one waits for the
// server to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_secret_and_the_draw_still_verifies() {
    let mut scene = Scene::start();
    let mut admin = AdminServiceClient::new(scene.server.channel().await);
    create_office(&mut admin, test_office(OFFICE, 3, 600)).await;
    let release_at_ms = now_ms() + 8_000;
    schedule_line(&mut admin, jakarta_date(20), jakarta_date(20), release_at_ms).await;
    let mut line = WaitingRoomServiceClient::new(scene.server.channel().await);
    let mut tickets = Vec::new();
    for serial in 1..=4 {
        tickets.push(join(&mut line, serial).await);
    }
    let commitment = get_draw(&mut line, release_at_ms).await.draw_commitment;
    // Connections left open would hold the shutdown until its drain timeout.
    drop((admin, line));
    scene.restart();
    let mut line = WaitingRoomServiceClient::new(scene.server.channel().await);
    let before = get_draw(&mut line, release_at_ms).await;
    assert_eq!(before.draw_commitment, commitment, "the commitment survives the restart");
    assert!(
        before.secret.is_empty() && !before.drawn,
        "and the secret stays hidden: {before:?} at {} for {release_at_ms}",
        now_ms()
    );
    assert!(now_ms() < release_at_ms, "the restart happened before the release instant; start the line later");
    let after = drawn(&mut line, release_at_ms).await;
    assert_eq!(after.pre_open_total, 4);
    let path = scene.file("draw.json");
    fetch_draw_file(&scene.server, release_at_ms, &path);
    assert_eq!(verdicts(&path), (true, true), "the draw made after the restart verifies");
    assert_secret_absent(&after.secret, &Seen::default(), &scene.log());
}
