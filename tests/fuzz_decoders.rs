//! Fuzzing on stable: proptest replays random bytes, and mutations of the seed corpus in `fuzz/corpus/`, through every
//! decoder that reads bytes from disk or the network: the log record frame, log events, snapshot files and images
//! (down to rebuilding the book from one), and the gRPC request conversions. Each must return a value or an error,
//! never panic, never allocate beyond its input. (`fuzz/` also has cargo-fuzz targets for the same decoders, for
//! machines with a nightly toolchain.)
//!
//! The corpus comes from a real run: `cargo test --test fuzz_decoders -- --ignored write_corpus` rewrites it.

mod common;

use antrean::domain::{BookRules, QuotaBook};
use antrean::engine::codec::{decode_event, decode_image, encode_event};
use antrean::grpc::convert::{self, Violations};
use antrean::proto;
use antrean::storage::{self, Decoded, LogPosition, decode_record, encode_record, load_latest_snapshot};
use proptest::prelude::*;
use prost::Message;
use std::path::{Path, PathBuf};

fn corpus_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(kind)
}

/// The seed files of one corpus directory.
fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(kind))
        .map(|entries| entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|path| std::fs::read(path).ok()).collect()
}

/// Flips, inserts, removes and truncates bytes at the given places.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for (position, value, kind) in edits {
        if bytes.is_empty() {
            bytes.push(*value);
            continue;
        }
        let at = position % bytes.len();
        match kind % 5 {
            0 => bytes[at] ^= value | 1,
            1 => bytes.insert(at, *value),
            2 => {
                bytes.remove(at);
            }
            3 => bytes.truncate(at),
            _ => bytes[at] = *value,
        }
    }
    bytes
}

/// Random bytes, or a mutated seed from the corpus `kind`.
fn input(kind: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus(kind);
    let seed_count = seeds.len();
    let mutated = (0..seed_count.max(1), proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6))
        .prop_map(move |(index, edits)| mutate(seeds.get(index).cloned().unwrap_or_default(), &edits));
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..512), mutated]
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() }
}

#[test]
fn the_corpus_has_seeds_of_every_kind() {
    for kind in ["log_record", "log_event", "snapshot_image", "snapshot", "hold_request", "segment-header"] {
        assert!(!corpus(kind).is_empty(), "fuzz/corpus/{kind} is empty");
    }
    for event in corpus("log_event") {
        let decoded = decode_event(&event).expect("seed events decode");
        assert_eq!(encode_event(&decoded), event, "seed events round-trip");
    }
    for image in corpus("snapshot_image") {
        let image = decode_image(&image).expect("seed images decode");
        QuotaBook::from_image(BookRules::default(), image).expect("seed images rebuild a book");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn record_frames_decode_or_are_refused(bytes in input("log_record")) {
        match decode_record(&bytes) {
            Decoded::Record { position, payload, frame_bytes } => {
                prop_assert!(position.0 >= 1);
                prop_assert!(frame_bytes as usize <= bytes.len());
                let mut again = Vec::new();
                encode_record(&mut again, position, payload);
                prop_assert_eq!(&again[..], &bytes[..frame_bytes as usize], "pair assertion: re-encodes the same");
            }
            Decoded::Incomplete { .. } | Decoded::Corrupt { .. } => {}
        }
    }

    #[test]
    fn log_events_decode_or_are_refused(bytes in input("log_event")) {
        if let Ok(event) = decode_event(&bytes) {
            let encoded = encode_event(&event);
            prop_assert_eq!(decode_event(&encoded).map(|again| encode_event(&again)).ok(), Some(encoded));
        }
    }

    #[test]
    fn snapshot_images_decode_or_are_refused(bytes in input("snapshot_image")) {
        if let Ok(image) = decode_image(&bytes) {
            // A decoded image is checked again when the book is rebuilt from it: an error, never a panic.
            let _ = QuotaBook::from_image(BookRules::default(), image);
        }
    }

    #[test]
    fn snapshot_files_load_or_are_refused(bytes in input("snapshot")) {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join(storage::snapshot_file_name(LogPosition(7))), &bytes).expect("write");
        if let Ok(Some(loaded)) = load_latest_snapshot(dir.path()) {
            prop_assert_eq!(loaded.position, LogPosition(7));
            let _ = decode_image(&loaded.payload);
        }
    }

    #[test]
    fn log_segments_recover_or_are_refused(bytes in input("log_record"), accept in any::<bool>()) {
        let dir = tempfile::tempdir().expect("dir");
        let mut segment = Vec::new();
        // A valid segment header followed by the fuzzed bytes as records.
        let header = corpus("segment-header");
        segment.extend_from_slice(header.first().map_or(&[][..], Vec::as_slice));
        segment.extend_from_slice(&bytes);
        std::fs::write(dir.path().join(storage::segment_file_name(LogPosition(1))), &segment).expect("write");
        if let Ok((_, records)) = storage::collect_log(dir.path(), LogPosition(0), accept) {
            for (_, payload) in records {
                let _ = decode_event(&payload);
            }
        }
    }

    #[test]
    fn requests_convert_or_are_refused(bytes in input("hold_request")) {
        if let Ok(request) = proto::HoldGroupRequest::decode(&bytes[..]) {
            let today = antrean::domain::Date::new(2026, 6, 1).expect("date");
            let mut violations = Violations::default();
            violations.request_id(&request.request_id);
            violations.office_id("office_id", &request.office_id);
            violations.service("service", request.service);
            violations.pool("pool", request.pool);
            violations.date("date", request.date.as_ref());
            violations.session_id("session_id", &request.session_id);
            violations.account_id(&request.account_id);
            for applicant in &request.applicants {
                violations.applicant("applicants[]", Some(applicant), today);
            }
            let _ = violations.finish(Some(()));
        }
        if let Ok(request) = proto::UpsertOfficeRequest::decode(&bytes[..]) {
            let mut violations = Violations::default();
            violations.office(request.office.as_ref());
            let _ = violations.finish(Some(()));
        }
        if let Ok(request) = proto::SetScheduleRequest::decode(&bytes[..]) {
            let mut violations = Violations::default();
            violations.timestamp("release_at", request.release_at.as_ref());
            violations.sessions("sessions", &request.sessions);
            let _ = convert::page_size(&mut violations, request.first_date.map_or(0, |date| date.day));
        }
    }
}

/// Rewrites `fuzz/corpus/` from a real run: a server takes holds, payments, a cancellation and an office change,
/// then stops cleanly; its log records, events, snapshot and image become the seeds.
#[test]
#[ignore = "rewrites fuzz/corpus from a real run"]
fn write_corpus() {
    use common::{Server, applicant, hold_request, request_id, test_office};
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut server = Server::start();
    runtime.block_on(async {
        let (mut booking, mut admin) = server.clients().await;
        common::create_office(&mut admin, test_office("kanim-corpus", 5, 3600)).await;
        let held = booking.hold(hold_request("kanim-corpus", 1, applicant(1))).await.expect("hold").into_inner();
        let booking_id = held.booking.expect("booking").booking_id;
        let pay = proto::ConfirmPaymentRequest {
            request_id: request_id("pay"),
            booking_id: booking_id.clone(),
            payment_reference: "PAY-CORPUS".into(),
            paid_at: None,
        };
        booking.confirm_payment(pay).await.expect("pay");
        let held = booking.hold(hold_request("kanim-corpus", 2, applicant(2))).await.expect("hold").into_inner();
        let cancel =
            proto::CancelRequest { request_id: request_id("cancel"), booking_id: held.booking.expect("b").booking_id };
        booking.cancel(cancel).await.expect("cancel");
    });
    assert!(server.terminate().success());
    let write = |kind: &str, name: String, bytes: &[u8]| {
        std::fs::create_dir_all(corpus_dir(kind)).expect("dir");
        std::fs::write(corpus_dir(kind).join(name), bytes).expect("write");
    };
    let wal = server.data_dir.join("wal");
    let (_, records) = storage::collect_log(&wal, LogPosition(0), false).expect("log");
    for (position, payload) in records.iter().take(8) {
        let mut frame = Vec::new();
        encode_record(&mut frame, *position, payload);
        write("log_record", format!("record-{:03}", position.0), &frame);
        write("log_event", format!("event-{:03}", position.0), payload);
    }
    let segment = storage::list_segments(&wal).expect("segments").into_iter().next().expect("a segment");
    let bytes = std::fs::read(&segment.path).expect("segment");
    write("segment-header", "header".into(), &bytes[..storage::SEGMENT_HEADER_BYTES as usize]);
    let snapshot = load_latest_snapshot(&server.data_dir.join("snapshots")).expect("load").expect("a snapshot");
    write("snapshot", "snapshot".into(), &std::fs::read(&snapshot.path).expect("snapshot file"));
    write("snapshot_image", "image".into(), &snapshot.payload);
    let hold = proto::HoldGroupRequest {
        request_id: "req-corpus".into(),
        office_id: "kanim-batam".into(),
        service: 1,
        date: Some(proto::Date { year: 2026, month: 6, day: 2 }),
        session_id: "0800-1000".into(),
        pool: 1,
        applicants: vec![applicant(1), applicant(2)],
        account_id: "acct-corpus".into(),
        admission_token: String::new(),
    };
    write("hold_request", "hold-group".into(), &hold.encode_to_vec());
    let office =
        proto::UpsertOfficeRequest { request_id: "req-office".into(), office: Some(test_office("kanim-x", 5, 3600)) };
    write("hold_request", "upsert-office".into(), &office.encode_to_vec());
}
