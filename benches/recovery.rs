//! Start-up cost with 1,000,000 bookings: encoding and loading a snapshot, replaying the log's events, and the whole
//! `engine::recovery::recover` from files on disk. The target is recovery of 1,000,000 bookings in under 2 s.
//!
//! Run: `cargo bench --bench recovery` (add `-- snapshot` to run one group).
//!
//! The state is built once, before any measurement, by executing 1,000,000 holds (10 offices x 30 dates x 4 sessions of
//! 1,000 slots) against a log that keeps the events; those events are then replayed and written to real log files.
//! Each figure is one whole pass; results are dropped outside the timed region.

use antrean::domain::{
    AccountId, Applicant, BookRules, Command, Date, Event, EventLog, HoldCommand, Nik, OfficeId, OfficeSettings, Pool,
    QuotaBook, RequestId, ServiceType, SessionId, SessionTemplate, SlotRef, TimeOfDay, Timestamp, Zone,
};
use antrean::engine::codec::{decode_event, decode_image, encode_capture, encode_event, encode_image};
use antrean::engine::recovery::recover;
use antrean::storage::{self, FsyncMode, LogPosition, LogSink, StorageError, Wal, WalOptions};
use criterion::{Criterion, criterion_group, criterion_main};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BOOKINGS: u64 = 1_000_000;
const OFFICES: usize = 10;
const DATES: usize = 30;
const SESSIONS: usize = 4;
const CAPACITY: u32 = 1_000;

/// An event log that keeps every event; positions start at 1.
#[derive(Default)]
struct VecLog(Mutex<Vec<Event>>);

impl EventLog for VecLog {
    fn append(&self, event: &Event) -> u64 {
        let mut events = self.0.lock().expect("log lock");
        events.push(event.clone());
        events.len() as u64
    }
}

fn now() -> Timestamp {
    Zone::resolve("Asia/Jakarta").expect("zone").instant_of(date_after(0), TimeOfDay::new(10, 0).expect("time"))
}

fn date_after(days: usize) -> Date {
    Date::new(2026, 12, 1).expect("date").plus_days(days as i32)
}

fn office_id(index: usize) -> OfficeId {
    OfficeId::parse(&format!("kanim-bench-{index}")).expect("office id")
}

fn session_id(index: usize) -> SessionId {
    SessionId::parse(&format!("s{index:02}")).expect("session id")
}

fn settings(office: usize) -> OfficeSettings {
    let sessions = (0..SESSIONS)
        .map(|index| SessionTemplate {
            session_id: session_id(index),
            starts_at: TimeOfDay::new(8 + 2 * index as i32, 0).expect("time"),
            ends_at: TimeOfDay::new(9 + 2 * index as i32, 0).expect("time"),
            capacities: vec![(Pool::Regular, CAPACITY)],
        })
        .collect();
    OfficeSettings {
        office_id: office_id(office),
        display_name: format!("Bench office {office}"),
        time_zone: "Asia/Jakarta".into(),
        city: String::new(),
        province: String::new(),
        services: vec![ServiceType::NewPassport],
        sessions,
        working_weekdays: (1..=7).collect(),
        payment_window_ms: 7_200_000,
        booking_horizon_days: DATES as i32,
        release_days_before: DATES as i32,
        release_time: TimeOfDay::new(0, 0).expect("time"),
    }
}

fn rules() -> BookRules {
    BookRules { requests_max: u64::MAX / 2, bookings_max: u64::MAX / 2, ..BookRules::default() }
}

fn hold(serial: u64) -> (RequestId, Command) {
    let spot = serial as usize;
    let slot = SlotRef {
        office_id: office_id(spot % OFFICES),
        date: date_after(1 + spot / OFFICES % DATES),
        session_id: session_id(spot / OFFICES / DATES % SESSIONS),
        pool: Pool::Regular,
    };
    let region = 110_000 + serial / 10_000;
    let applicant = Applicant {
        nik: Nik::from_value(region * 10_000_000_000 + 170_885 * 10_000 + serial % 10_000).expect("nik"),
        full_name: format!("Pemohon {serial}").into(),
        birth_date: Date::new(1985, 8, 17).expect("date"),
        has_disability: false,
    };
    let command = Command::Hold(HoldCommand {
        slot,
        service: ServiceType::NewPassport,
        applicants: vec![applicant],
        account_id: AccountId::parse("account-bench").expect("account id"),
        group: false,
        admission_token: None,
    });
    (RequestId::parse(&format!("hold-{serial:010}")).expect("request id"), command)
}

/// The book with 1,000,000 bookings and every event that built it, in log order.
fn build_state() -> (QuotaBook, Vec<Event>) {
    let started = Instant::now();
    let book = QuotaBook::new(rules());
    let log = VecLog::default();
    for office in 0..OFFICES {
        let request_id = RequestId::parse(&format!("office-{office}")).expect("request id");
        assert!(book.execute(&request_id, &Command::UpsertOffice(settings(office)), now(), &log).outcome.is_ok());
    }
    for serial in 0..BOOKINGS {
        let (request_id, command) = hold(serial);
        let execution = book.execute(&request_id, &command, now(), &log);
        assert!(execution.outcome.is_ok(), "hold {serial}: {:?}", execution.outcome);
    }
    assert_eq!(book.sizes().0, BOOKINGS);
    let events = log.0.into_inner().expect("log lock");
    eprintln!("built {BOOKINGS} bookings ({} events) in {:?}", events.len(), started.elapsed());
    (book, events)
}

/// Writes `payloads` as a real log in `wal_dir`, positions 1..=N.
fn write_log(wal_dir: &Path, payloads: &[Vec<u8>]) {
    let report =
        storage::read_log::<StorageError, _>(wal_dir, LogPosition(0), false, |_, _| Ok(())).expect("empty log");
    let options = WalOptions {
        dir: wal_dir.to_owned(),
        segment_bytes_max: 64 * 1024 * 1024,
        fsync: FsyncMode::None,
        batch_records_max: 8192,
        batch_bytes_max: 8 * 1024 * 1024,
        record_bytes_max: antrean::limits::LOG_RECORD_BYTES_MAX,
    };
    let wal = Wal::open(options, &report, None).expect("open log");
    for payload in payloads {
        wal.append(payload.clone());
    }
    wal.close().expect("close log");
}

/// Times `run` once per iteration; what it returns is dropped outside the timed region.
fn timed<T>(iters: u64, mut run: impl FnMut() -> T) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let started = Instant::now();
        let output = run();
        total += started.elapsed();
        drop(output);
    }
    total
}

fn recovery(criterion: &mut Criterion) {
    let (book, events) = build_state();
    let position = events.len() as u64;
    let payloads: Vec<Vec<u8>> = events.iter().map(encode_event).collect();
    let log_bytes: usize = payloads.iter().map(|payload| payload.len() + 16).sum();
    let snapshot = encode_image(&book.image(position));
    eprintln!("snapshot payload {} MB, log {} MB", snapshot.len() >> 20, log_bytes >> 20);

    let files = tempfile::tempdir().expect("temp dir");
    let from_log = files.path().join("from-log");
    write_log(&from_log.join("wal"), &payloads);
    let from_snapshot = files.path().join("from-snapshot");
    storage::write_snapshot(&from_snapshot.join("snapshots"), LogPosition(position), &snapshot).expect("snapshot");
    std::fs::create_dir_all(from_snapshot.join("wal")).expect("wal dir");

    let mut group = criterion.benchmark_group("recovery_1m_bookings");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
    group.bench_function("snapshot_encode_image", |bencher| {
        bencher.iter_custom(|iters| timed(iters, || encode_image(&book.capture(|| position).to_image())));
    });
    // What a snapshot does since the image is streamed from the captured shards.
    group.bench_function("snapshot_encode", |bencher| {
        bencher.iter_custom(|iters| timed(iters, || encode_capture(&book.capture(|| position))));
    });
    group.bench_function("snapshot_load", |bencher| {
        bencher.iter_custom(|iters| {
            timed(iters, || QuotaBook::from_image(rules(), decode_image(&snapshot).expect("decode")).expect("load"))
        });
    });
    group.bench_function("replay_decoded_events", |bencher| {
        bencher.iter_custom(|iters| {
            timed(iters, || {
                let mut replayed = QuotaBook::new(rules());
                for event in &events {
                    replayed.replay(event);
                }
                replayed
            })
        });
    });
    group.bench_function("replay_encoded_events", |bencher| {
        bencher.iter_custom(|iters| {
            timed(iters, || {
                let mut replayed = QuotaBook::new(rules());
                for payload in &payloads {
                    replayed.replay(&decode_event(payload).expect("decode"));
                }
                replayed
            })
        });
    });
    group.bench_function("recover_from_log_files", |bencher| {
        bencher.iter_custom(|iters| {
            timed(iters, || {
                let (book, report) =
                    recover(rules(), &from_log.join("snapshots"), &from_log.join("wal"), false).expect("recover");
                assert_eq!((report.records_replayed, book.sizes().0), (position, BOOKINGS));
                book
            })
        });
    });
    group.bench_function("recover_from_snapshot_file", |bencher| {
        bencher.iter_custom(|iters| {
            timed(iters, || {
                let (book, report) =
                    recover(rules(), &from_snapshot.join("snapshots"), &from_snapshot.join("wal"), false)
                        .expect("recover");
                assert_eq!((report.snapshot_position, book.sizes().0), (Some(position), BOOKINGS));
                book
            })
        });
    });
    group.finish();
}

criterion_group!(benches, recovery);
criterion_main!(benches);
