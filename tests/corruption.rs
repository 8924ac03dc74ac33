//! Damaged data directories through the real binary: a flipped byte in the middle of the log, a torn tail, and a
//! corrupt newest snapshot. Each test makes state with real calls, stops the server (SIGKILL unless a snapshot is
//! wanted), damages the files the way a crash or the medium would, and restarts on the same directory.
//!
//! File layouts are in src/storage/segment.rs (24-byte segment header, then frames), src/storage/record.rs (16-byte
//! frame header: u32 length, u32 crc32c, u64 position, then the payload) and src/storage/snapshot.rs (36-byte header,
//! then the payload).

mod common;

use antrean::domain::Event;
use antrean::engine::codec::decode_event;
use antrean::proto::{self, booking_service_client::BookingServiceClient};
use common::{Options, Server, applicant, create_office, hold_request, test_office};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Channel;

const OFFICE: &str = "kanim-corrupt";
/// Regular slots per session: more than any test holds, so no hold is refused.
const CAPACITY: u32 = 100;
/// Segment header bytes (segment.rs).
const SEGMENT_HEADER_BYTES: usize = 24;
/// Record frame header bytes (record.rs).
const RECORD_HEADER_BYTES: usize = 16;
/// Snapshot header bytes (snapshot.rs).
const SNAPSHOT_HEADER_BYTES: usize = 36;

/// Durable answers, and no snapshot but the one a clean stop writes.
fn options() -> Options {
    Options {
        args: vec!["--fsync".into(), "always".into()],
        config: Some("[storage]\nsnapshot_every_records = 100000000\nsnapshot_every_seconds = 100000000\n".into()),
    }
}

fn with_truncation_accepted(options: &Options) -> Options {
    let mut options = options.clone();
    options.args.push("--accept-log-truncation".into());
    options
}

/// A hold that was answered OK.
#[derive(Clone, Debug)]
struct Held {
    request: proto::HoldRequest,
    booking: proto::Booking,
}

/// One record frame found in a segment.
#[derive(Clone, Copy, Debug)]
struct Frame {
    /// Byte offset of the frame header in the file.
    offset: usize,
    /// Its log position.
    position: u64,
    /// Payload length.
    payload_bytes: usize,
}

impl Frame {
    fn payload_offset(&self) -> usize {
        self.offset + RECORD_HEADER_BYTES
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_log_corruption_refuses_to_start_unless_truncation_is_accepted() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let options = options();
    let mut server = Server::start_in(&data_dir, &options);
    let (mut client, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, CAPACITY, 7200)).await;
    let held = hold_many(&mut client, 50, 1).await;
    server.kill();

    let segment = only_segment(&data_dir);
    let bytes = std::fs::read(&segment).expect("read segment");
    let frames = frames(&bytes);
    let held_at = held_positions(&bytes, &frames);
    assert_eq!(held_at.len(), held.len(), "one Held record per acknowledged hold");
    // Damage a record in the middle: valid records follow it, so this is not a torn tail.
    let damaged = frames[frames.len() / 2];
    let mut damaged_bytes = bytes.clone();
    damaged_bytes[damaged.payload_offset() + damaged.payload_bytes / 2] ^= 0x40;
    std::fs::write(&segment, &damaged_bytes).expect("write damaged segment");

    let (status, stderr) = run_until_exit(&data_dir, &options);
    assert!(!status.success(), "a mid-log corruption must stop the start, got {status}; stderr:\n{stderr}");
    assert!(stderr.contains("corrupt log"), "stderr names the corruption:\n{stderr}");
    assert!(stderr.contains("wal-"), "stderr names the segment:\n{stderr}");
    let untouched = std::fs::read(&segment).expect("read segment");
    assert_eq!(untouched, damaged_bytes, "a refused start leaves the log as it found it, for the operator to copy");

    let mut server = Server::start_in(&data_dir, &with_truncation_accepted(&options));
    let (mut client, _) = server.clients().await;
    let (mut kept, mut lost) = (0, 0);
    for hold in &held {
        let position = held_at[&hold.booking.booking_id];
        let found = get_booking(&mut client, &hold.booking.booking_id).await;
        if position < damaged.position {
            assert_eq!(found.expect("a booking logged before the damage is served"), hold.booking);
            kept += 1;
        } else {
            let status = found.expect_err("a booking logged at or after the damage is gone");
            assert_eq!(status.code(), Code::NotFound, "{status:?}");
            lost += 1;
        }
    }
    assert!(kept > 0 && lost > 0, "the damage splits the holds: {kept} kept, {lost} lost");
    check_availability_counts(&mut client, &held, |hold| held_at[&hold.booking.booking_id] < damaged.position).await;
    // Retrying a kept hold returns its first answer.
    let first = &held[0];
    assert_eq!(
        client.hold(first.request.clone()).await.expect("retry").into_inner().booking.as_ref(),
        Some(&first.booking)
    );
    // The cut is permanent: a new write, a crash, and a start without the flag all work.
    let after = hold_many(&mut client, 1, 1_000).await;
    server.kill();
    let server = Server::start_in(&data_dir, &options);
    let (mut client, _) = server.clients().await;
    assert_eq!(get_booking(&mut client, &after[0].booking.booking_id).await.expect("new hold"), after[0].booking);
    assert_eq!(get_booking(&mut client, &first.booking.booking_id).await.expect("kept hold"), first.booking);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_cut_and_everything_before_it_survives() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let options = options();
    let mut server = Server::start_in(&data_dir, &options);
    let (mut client, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, CAPACITY, 7200)).await;
    let mut held = hold_many(&mut client, 20, 1).await;
    drop(client);

    // Two tears: first inside the last record's payload, then (after more traffic) inside the last record's header.
    for (round, cut_into_frame) in [(0u32, Cut::Payload), (1, Cut::Header)] {
        server.kill();
        let segment = last_segment(&data_dir);
        let bytes = std::fs::read(&segment).expect("read segment");
        let last = *frames(&bytes).last().expect("records");
        assert_eq!(last.offset + RECORD_HEADER_BYTES + last.payload_bytes, bytes.len(), "frames fill the file");
        let torn = held.pop().expect("the last record is the last hold");
        assert_eq!(held_positions(&bytes, &[last]).get(&torn.booking.booking_id), Some(&last.position));
        let cut_at = match cut_into_frame {
            Cut::Payload => last.payload_offset() + last.payload_bytes / 2,
            Cut::Header => last.offset + 7,
        };
        truncate(&segment, cut_at);

        server = Server::start_in(&data_dir, &options);
        let (mut restarted, _) = server.clients().await;
        for hold in &held {
            let found = get_booking(&mut restarted, &hold.booking.booking_id).await;
            assert_eq!(found.expect("acknowledged before the tear"), hold.booking, "round {round}");
        }
        let status = get_booking(&mut restarted, &torn.booking.booking_id).await.expect_err("torn record is gone");
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let repaired = std::fs::metadata(&segment).expect("segment").len();
        assert_eq!(repaired, last.offset as u64, "the tail is cut at the end of the last whole record");
        check_availability_counts(&mut restarted, &held, |_| true).await;
        // The torn call was never acknowledged (in a real crash): its retry is a fresh hold, and is answered.
        let retried = restarted.hold(torn.request.clone()).await.expect("retry of the torn hold").into_inner();
        held.push(Held { request: torn.request.clone(), booking: retried.booking.expect("booking") });
        held.extend(hold_many(&mut restarted, 5, 100 + round * 100).await);
    }
    server.kill();
    let server = Server::start_in(&data_dir, &options);
    let (mut client_after, _) = server.clients().await;
    for hold in &held {
        assert_eq!(get_booking(&mut client_after, &hold.booking.booking_id).await.expect("kept"), hold.booking);
    }
}

#[derive(Clone, Copy, Debug)]
enum Cut {
    Payload,
    Header,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_newest_snapshot_falls_back_to_the_older_one() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let options = options();
    let mut held = Vec::new();
    let mut paid = BTreeMap::new();
    // Two clean stops, with traffic before each: two snapshots. Then more traffic and a crash: log after both.
    for run in 0..3u32 {
        let mut server = Server::start_in(&data_dir, &options);
        let (mut client, mut admin) = server.clients().await;
        if run == 0 {
            create_office(&mut admin, test_office(OFFICE, CAPACITY, 7200)).await;
        }
        let new = hold_many(&mut client, 10, 1 + run * 100).await;
        for hold in new.iter().step_by(3) {
            let booking_id = hold.booking.booking_id.clone();
            let answer = client
                .confirm_payment(proto::ConfirmPaymentRequest {
                    request_id: common::request_id("pay"),
                    payment_reference: format!("PAY-{booking_id}"),
                    booking_id: booking_id.clone(),
                    paid_at: None,
                })
                .await
                .expect("pay")
                .into_inner();
            paid.insert(booking_id, answer.booking.expect("booking"));
        }
        held.extend(new);
        if run < 2 {
            assert!(server.terminate().success(), "clean stop {run}");
        } else {
            server.kill();
        }
    }
    let snapshots = snapshot_files(&data_dir);
    assert_eq!(snapshots.len(), 2, "two clean stops leave two snapshots: {snapshots:?}");
    let newest = &snapshots[1];
    let mut bytes = std::fs::read(newest).expect("read snapshot");
    let payload_bytes = bytes.len() - SNAPSHOT_HEADER_BYTES;
    bytes[SNAPSHOT_HEADER_BYTES + payload_bytes / 2] ^= 0x01;
    std::fs::write(newest, &bytes).expect("write damaged snapshot");

    let mut server = Server::start_in(&data_dir, &options);
    let (mut client, _) = server.clients().await;
    for hold in &held {
        let expected = paid.get(&hold.booking.booking_id).unwrap_or(&hold.booking);
        let found = get_booking(&mut client, &hold.booking.booking_id).await.expect("every booking survives");
        assert_eq!(&found, expected);
        let again = client.hold(hold.request.clone()).await.expect("retry").into_inner().booking.expect("booking");
        assert_eq!(&again, expected, "a retry finds the first answer's booking, as it is now");
    }
    check_availability_counts(&mut client, &held, |_| true).await;
    server.kill();

    // With both snapshots corrupt there is nothing to start from (the log before them is gone): refuse.
    let older = &snapshots[0];
    let mut bytes = std::fs::read(older).expect("read snapshot");
    let payload_bytes = bytes.len() - SNAPSHOT_HEADER_BYTES;
    bytes[SNAPSHOT_HEADER_BYTES + payload_bytes / 3] ^= 0x01;
    std::fs::write(older, &bytes).expect("write damaged snapshot");
    let (status, stderr) = run_until_exit(&data_dir, &options);
    assert!(!status.success(), "no valid snapshot: refuse to start, got {status}; stderr:\n{stderr}");
    assert!(stderr.contains("corrupt snapshot"), "stderr names the snapshot:\n{stderr}");
}

/// Holds `count` fresh applicants one after another (so log order is call order), spread over three dates and both
/// sessions.
async fn hold_many(client: &mut BookingServiceClient<Channel>, count: u32, serial_base: u32) -> Vec<Held> {
    let mut held = Vec::new();
    for index in 0..count {
        let mut request = hold_request(OFFICE, 1 + (index % 3) as i32, applicant(serial_base + index));
        if index % 2 == 1 {
            request.session_id = "1500-1700".into();
        }
        let booking = client.hold(request.clone()).await.expect("hold").into_inner().booking.expect("booking");
        held.push(Held { request, booking });
    }
    held
}

async fn get_booking(
    client: &mut BookingServiceClient<Channel>,
    booking_id: &str,
) -> Result<proto::Booking, tonic::Status> {
    let response = client.get_booking(proto::GetBookingRequest { booking_id: booking_id.to_owned() }).await?;
    Ok(response.into_inner().booking.expect("booking"))
}

/// Availability of each session equals capacity minus the `held` bookings that `kept` says survive (none of them is
/// cancelled in these tests).
async fn check_availability_counts(
    client: &mut BookingServiceClient<Channel>,
    held: &[Held],
    kept: impl Fn(&Held) -> bool,
) {
    let day = |date: Option<proto::Date>| date.map(|date| (date.year, date.month, date.day)).expect("date");
    let mut taken: BTreeMap<((i32, i32, i32), String), u32> = BTreeMap::new();
    for hold in held.iter().filter(|hold| kept(hold)) {
        *taken.entry((day(hold.request.date), hold.request.session_id.clone())).or_default() += 1;
    }
    let availability = client
        .get_availability(proto::GetAvailabilityRequest {
            office_id: OFFICE.into(),
            service: proto::ServiceType::NewPassport as i32,
            first_date: Some(common::jakarta_date(1)),
            last_date: Some(common::jakarta_date(3)),
        })
        .await
        .expect("availability")
        .into_inner();
    for session in &availability.sessions {
        let regular = session.pools.iter().find(|pool| pool.pool == proto::Pool::Regular as i32).expect("regular");
        let key = (day(session.date), session.session_id.clone());
        let expected = CAPACITY - taken.get(&key).copied().unwrap_or(0);
        assert_eq!(regular.remaining, expected, "remaining of {key:?}");
    }
}

/// Runs the binary on `data_dir` until it exits by itself (at most 30 s); returns its status and stderr.
fn run_until_exit(data_dir: &Path, options: &Options) -> (ExitStatus, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_antrean"));
    command
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "", "--data-dir"])
        .arg(data_dir)
        .args(&options.args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(config) = &options.config {
        let path = data_dir.with_extension("toml");
        std::fs::write(&path, config).expect("write config");
        command.arg("--config").arg(path);
    }
    let mut child = command.spawn().expect("start antrean");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("antrean kept running on a damaged data directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    (status, stderr)
}

fn segment_files(data_dir: &Path) -> Vec<PathBuf> {
    files_named(&data_dir.join("wal"), "wal-", ".log")
}

fn only_segment(data_dir: &Path) -> PathBuf {
    let segments = segment_files(data_dir);
    assert_eq!(segments.len(), 1, "one segment: {segments:?}");
    segments[0].clone()
}

fn last_segment(data_dir: &Path) -> PathBuf {
    segment_files(data_dir).pop().expect("a segment")
}

fn snapshot_files(data_dir: &Path) -> Vec<PathBuf> {
    files_named(&data_dir.join("snapshots"), "snap-", ".snap")
}

/// Files in `dir` named `{prefix}...{suffix}`, sorted by name (which is position order).
fn files_named(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    files.sort();
    files
}

/// The record frames of a segment file, walking the length fields (no checksum verification).
fn frames(bytes: &[u8]) -> Vec<Frame> {
    assert_eq!(&bytes[..8], b"ANTRWAL\0", "segment magic");
    let mut frames = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    while offset + RECORD_HEADER_BYTES <= bytes.len() {
        let payload_bytes = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
        let position = u64::from_le_bytes(bytes[offset + 8..offset + 16].try_into().expect("8 bytes"));
        if offset + RECORD_HEADER_BYTES + payload_bytes > bytes.len() {
            break;
        }
        frames.push(Frame { offset, position, payload_bytes });
        offset += RECORD_HEADER_BYTES + payload_bytes;
    }
    frames
}

/// Log position of the `Held` record of each booking in `frames`.
fn held_positions(bytes: &[u8], frames: &[Frame]) -> BTreeMap<String, u64> {
    let mut positions = BTreeMap::new();
    for frame in frames {
        let payload = &bytes[frame.payload_offset()..frame.payload_offset() + frame.payload_bytes];
        if let Event::Held { first_booking_id, .. } = decode_event(payload).expect("a valid event") {
            positions.insert(first_booking_id.to_string(), frame.position);
        }
    }
    positions
}

fn truncate(path: &Path, length: usize) {
    let file = std::fs::OpenOptions::new().write(true).open(path).expect("open segment");
    file.set_len(length as u64).expect("truncate");
    file.sync_all().expect("sync");
}
