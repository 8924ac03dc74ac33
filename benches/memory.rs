//! Heap bytes a booking costs, counted in-process: `QuotaBook::execute` of `HOLDS` holds shaped as
//! `loadtest memory` makes them (a new applicant and account each, the caller's name in every request id), with a
//! counting allocator. Prints the heap per booking, as requested and as glibc's chunks round it, and how much of it
//! each part of the state holds (each part measured by forgetting it: request records through `forget_requests`).
//!
//! Run: `cargo bench --bench memory` (one run, no statistics: the count is exact, not timed).

// Counting needs a global allocator, whose trait is unsafe: it only passes each call on to the system allocator.
#![allow(unsafe_code)]

use antrean::domain::{
    AccountId, Applicant, BookRules, Booking, Command, Date, Event, EventLog, HoldCommand, Nik, OfficeId,
    OfficeSettings, Pool, QuotaBook, RequestId, ServiceType, SessionId, SessionTemplate, SlotRef, TimeOfDay, Timestamp,
    Zone,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

/// Bookings made.
const HOLDS: u64 = 100_000;
/// Dates booked.
const DATES: i32 = 30;
/// Sessions a day.
const SESSIONS: usize = 8;

/// Counts what is live: bytes asked for, glibc chunk bytes (size plus its 8-byte header, rounded up to 16, at least
/// 32) and allocations.
struct Counting;

static REQUESTED: AtomicI64 = AtomicI64::new(0);
static CHUNKS: AtomicI64 = AtomicI64::new(0);
static LIVE: AtomicI64 = AtomicI64::new(0);

fn chunk(size: usize) -> i64 {
    (((size + 8).div_ceil(16) * 16).max(32)) as i64
}

// SAFETY: every call is passed on to the system allocator unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        REQUESTED.fetch_add(layout.size() as i64, Ordering::Relaxed);
        CHUNKS.fetch_add(chunk(layout.size()), Ordering::Relaxed);
        LIVE.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        REQUESTED.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        CHUNKS.fetch_sub(chunk(layout.size()), Ordering::Relaxed);
        LIVE.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: allocated above with this layout.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REQUESTED.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        CHUNKS.fetch_add(chunk(new_size) - chunk(layout.size()), Ordering::Relaxed);
        // SAFETY: the caller's pointer and layout, passed on.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Clone, Copy, Debug)]
struct Heap {
    requested: i64,
    chunks: i64,
    live: i64,
}

fn heap() -> Heap {
    Heap {
        requested: REQUESTED.load(Ordering::Relaxed),
        chunks: CHUNKS.load(Ordering::Relaxed),
        live: LIVE.load(Ordering::Relaxed),
    }
}

fn per_booking(label: &str, before: Heap, after: Heap) {
    let per = |bytes: i64| bytes as f64 / HOLDS as f64;
    println!(
        "{label:<40} {:>7.1} bytes requested, {:>7.1} bytes in chunks, {:>5.2} allocations a booking",
        per(after.requested - before.requested),
        per(after.chunks - before.chunks),
        per(after.live - before.live)
    );
}

struct NoLog;

impl EventLog for NoLog {
    fn append(&self, _event: &Event) -> u64 {
        0
    }
}

fn now() -> Timestamp {
    zone().instant_of(Date::new(2026, 12, 1).expect("date"), TimeOfDay::new(10, 0).expect("time"))
}

fn zone() -> Zone {
    Zone::resolve("Asia/Jakarta").expect("bundled zone")
}

fn settings() -> OfficeSettings {
    let sessions = (0..SESSIONS)
        .map(|index| SessionTemplate {
            session_id: SessionId::parse(&format!("{:02}00-{:02}00", 8 + index, 9 + index)).expect("session id"),
            starts_at: TimeOfDay::new(8 + index as i32, 0).expect("time"),
            ends_at: TimeOfDay::new(9 + index as i32, 0).expect("time"),
            capacities: vec![(Pool::Regular, 100_000)],
        })
        .collect();
    OfficeSettings {
        office_id: OfficeId::parse("kanim-jakarta-selatan").expect("office id"),
        display_name: "Kanim Jakarta Selatan".into(),
        time_zone: "Asia/Jakarta".into(),
        city: String::new(),
        province: String::new(),
        services: vec![ServiceType::NewPassport],
        sessions,
        working_weekdays: (1..=7).collect(),
        payment_window_ms: 7_200_000,
        booking_horizon_days: DATES,
        release_days_before: DATES,
        release_time: TimeOfDay::new(0, 0).expect("time"),
    }
}

/// Hold `serial` as loadtest makes it: `lt-<run>-h<user>-0` from caller `loadtest`, account `lt-<run>-a<user>`, a
/// two-word name.
fn hold(serial: u64, office: &OfficeId) -> (RequestId, Command) {
    let region = 317_101 + serial / 10_000 % 100;
    let nik = Nik::from_value(region * 10_000_000_000 + 170_885 * 10_000 + serial % 10_000).expect("nik");
    let slot = SlotRef {
        office_id: office.clone(),
        date: Date::new(2026, 12, 2).expect("date").plus_days((serial / SESSIONS as u64 % DATES as u64) as i32),
        session_id: SessionId::parse(&format!("{:02}00-{:02}00", 8 + serial % 8, 9 + serial % 8)).expect("id"),
        pool: Pool::Regular,
    };
    let command = Command::Hold(HoldCommand {
        slot,
        service: ServiceType::NewPassport,
        applicants: vec![Applicant {
            nik,
            full_name: format!("Budi{} Santoso", serial % 1000).into(),
            birth_date: Date::new(1985, 8, 17).expect("date"),
            has_disability: false,
        }],
        account_id: AccountId::parse(&format!("lt-k3x9-a{serial}")).expect("account id"),
        group: false,
        admission_token: None,
    });
    let id = RequestId::parse(&format!("lt-k3x9-h{serial}-0")).expect("request id");
    (RequestId::of_caller("loadtest", &id), command)
}

fn main() {
    if std::env::args().any(|argument| argument == "--list") {
        return;
    }
    println!(
        "sizes: Booking {} bytes, Applicant {}, SlotRef {}, RequestRecord {}, RememberedOutcome {}, ApplicantRecord {}",
        size_of::<Booking>(),
        size_of::<Applicant>(),
        size_of::<SlotRef>(),
        size_of::<antrean::domain::state::shard::RequestRecord>(),
        size_of::<antrean::domain::RememberedOutcome>(),
        size_of::<antrean::domain::state::shard::ApplicantRecord>(),
    );
    let rules = BookRules { requests_max: u64::MAX / 2, bookings_max: u64::MAX / 2, ..BookRules::default() };
    let book = QuotaBook::new(rules);
    let at = now();
    let office = settings();
    let office_id = office.office_id.clone();
    let created = book.execute(&RequestId::parse("office").expect("id"), &Command::UpsertOffice(office), at, &NoLog);
    assert!(created.outcome.is_ok());
    // Make the first booking of every day, so day ledgers are not counted against the bookings.
    let warm: Vec<(RequestId, Command)> = (HOLDS..HOLDS + 400).map(|serial| hold(serial, &office_id)).collect();
    for (request_id, command) in &warm {
        assert!(book.execute(request_id, command, at, &NoLog).outcome.is_ok());
    }
    drop(warm);
    // Counted from before the commands are made to after they are dropped: what the bookings keep of a command's
    // text (shared or copied) is counted, the commands themselves are not.
    let before = heap();
    let commands: Vec<(RequestId, Command)> = (0..HOLDS).map(|serial| hold(serial, &office_id)).collect();
    for (request_id, command) in &commands {
        let execution = book.execute(request_id, command, at, &NoLog);
        assert!(execution.outcome.is_ok(), "{:?}", execution.outcome);
    }
    drop(commands);
    let after = heap();
    per_booking("whole state", before, after);
    let forgotten = book.forget_requests(Timestamp(at.0 + 365 * 86_400_000), &NoLog);
    assert!(forgotten.is_some(), "request records forgotten");
    per_booking("of which request records", heap(), after);
}
