//! The allocation core in-process: `QuotaBook::execute` with a log that only counts, so these figures are the ceiling
//! the gRPC layer and the write-ahead log can reach. Throughput is reported per element: one hold (or one hold plus its
//! payment or cancellation) per element.
//!
//! Run: `cargo bench --bench core` (add `-- hold` to run one group).
//!
//! Commands are built outside the timed region, in chunks, so a figure measures deciding, applying and remembering,
//! not building request strings. A fresh book is made for every sample, so memory stays bounded and late samples do not
//! run against a bigger book than early ones.

use antrean::domain::{
    AccountId, Applicant, BookRules, BookingId, Command, Date, Event, EventLog, HoldCommand, Nik, OfficeId,
    OfficeSettings, PaymentReference, Pool, QuotaBook, Reply, RequestId, ServiceType, SessionId, SessionTemplate,
    SlotRef, TimeOfDay, Timestamp, Zone,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Sessions per day of the benchmark offices (the most a day may have).
const SESSIONS: usize = 24;
/// Dates booked, from tomorrow.
const DATES: i32 = 30;
/// Regular slots per session (the most a pool may have).
const CAPACITY: u32 = 100_000;
/// Commands built at once, untimed, before a timed run through them.
const CHUNK: u64 = 50_000;

/// An event log that assigns positions and keeps nothing.
#[derive(Default)]
struct CountingLog(AtomicU64);

impl EventLog for CountingLog {
    fn append(&self, _event: &Event) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Tuesday 1 December 2026, 10:00 in Jakarta: every date of the next 30 days is released.
fn now() -> Timestamp {
    zone().instant_of(date_after(0), TimeOfDay::new(10, 0).expect("time"))
}

fn zone() -> Zone {
    Zone::resolve("Asia/Jakarta").expect("bundled zone")
}

fn date_after(days: i32) -> Date {
    Date::new(2026, 12, 1).expect("date").plus_days(days)
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
            starts_at: TimeOfDay::new(index as i32 % 24, 0).expect("time"),
            ends_at: TimeOfDay::new(index as i32 % 24, 30).expect("time"),
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
        booking_horizon_days: DATES,
        release_days_before: DATES,
        release_time: TimeOfDay::new(0, 0).expect("time"),
    }
}

/// Rules without the server-wide limits in the way.
fn rules() -> BookRules {
    BookRules { requests_max: u64::MAX / 2, bookings_max: u64::MAX / 2, ..BookRules::default() }
}

/// A book with `offices` benchmark offices.
fn book(offices: usize) -> QuotaBook {
    let book = QuotaBook::new(rules());
    let log = CountingLog::default();
    for office in 0..offices {
        let request_id = RequestId::parse(&format!("office-{office}")).expect("request id");
        let execution = book.execute(&request_id, &Command::UpsertOffice(settings(office)), now(), &log);
        assert!(execution.outcome.is_ok(), "office created: {:?}", execution.outcome);
    }
    book
}

/// A distinct valid applicant per `serial` (born 17 August 1985).
fn applicant(serial: u64) -> Applicant {
    let region = 110_000 + serial / 10_000;
    let nik = Nik::from_value(region * 10_000_000_000 + 170_885 * 10_000 + serial % 10_000).expect("nik");
    Applicant {
        nik,
        full_name: "Pemohon Bench".into(),
        birth_date: Date::new(1985, 8, 17).expect("date"),
        has_disability: false,
    }
}

fn slot(office: usize, date: i32, session: usize) -> SlotRef {
    SlotRef {
        office_id: office_id(office),
        date: date_after(1 + date),
        session_id: session_id(session),
        pool: Pool::Regular,
    }
}

/// Where hold `serial` goes: one hot slot, or spread over every date and session of `offices` offices.
#[derive(Clone, Copy)]
enum Spread {
    Hot,
    Offices(usize),
}

fn hold(serial: u64, spread: Spread) -> (RequestId, Command) {
    let slot = match spread {
        Spread::Hot => slot(0, 0, 0),
        Spread::Offices(offices) => {
            let spot = serial as usize;
            slot(spot % offices, (spot / offices % DATES as usize) as i32, spot / offices / DATES as usize % SESSIONS)
        }
    };
    let command = Command::Hold(HoldCommand {
        slot,
        service: ServiceType::NewPassport,
        applicants: vec![applicant(serial)],
        account_id: AccountId::parse("account-bench").expect("account id"),
        group: false,
        admission_token: None,
    });
    (RequestId::parse(&format!("hold-{serial}")).expect("request id"), command)
}

fn held_booking(reply: &Reply) -> BookingId {
    match reply {
        Reply::Held { bookings, .. } => bookings[0].booking_id,
        other => panic!("expected a hold, got {other:?}"),
    }
}

/// What follows each hold inside the timed region.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FollowUp {
    Nothing,
    Pay,
    Cancel,
}

/// Runs `iters` holds on a fresh book (untimed setup), chunk by chunk, timing only `execute`. Request ids and payment
/// references of the follow-ups are built untimed too; only the command naming the new booking is made in the loop.
fn timed_holds(iters: u64, follow_up: FollowUp) -> Duration {
    let book = book(1);
    let log = CountingLog::default();
    let at = now();
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let count = CHUNK.min(iters - done);
        let holds: Vec<(RequestId, Command)> =
            (done..done + count).map(|serial| hold(serial, Spread::Offices(1))).collect();
        let follow_ups: Vec<(RequestId, PaymentReference)> = match follow_up {
            FollowUp::Nothing => Vec::new(),
            FollowUp::Pay | FollowUp::Cancel => (done..done + count)
                .map(|serial| {
                    let request_id = RequestId::parse(&format!("then-{serial}")).expect("id");
                    (request_id, PaymentReference::parse(&format!("PAY-{serial}")).expect("reference"))
                })
                .collect(),
        };
        let started = Instant::now();
        for (index, (request_id, command)) in holds.iter().enumerate() {
            let execution = book.execute(request_id, command, at, &log);
            let Ok(reply) = &execution.outcome else { panic!("hold refused: {:?}", execution.outcome) };
            if follow_up != FollowUp::Nothing {
                let booking_id = held_booking(reply);
                let (request_id, payment_reference) = &follow_ups[index];
                let command = match follow_up {
                    FollowUp::Pay => Command::ConfirmPayment {
                        booking_id,
                        payment_reference: payment_reference.clone(),
                        paid_at: None,
                    },
                    _ => Command::Cancel { booking_id },
                };
                let execution = book.execute(request_id, &command, at, &log);
                assert!(execution.outcome.is_ok(), "follow-up accepted: {:?}", execution.outcome);
            }
            black_box(&execution);
        }
        total += started.elapsed();
        done += count;
    }
    total
}

fn single_thread(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("core");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("hold", |bencher| bencher.iter_custom(|iters| timed_holds(iters, FollowUp::Nothing)));
    group.bench_function("hold+confirm", |bencher| bencher.iter_custom(|iters| timed_holds(iters, FollowUp::Pay)));
    group.bench_function("hold+cancel", |bencher| bencher.iter_custom(|iters| timed_holds(iters, FollowUp::Cancel)));
    group.finish();

    let mut group = criterion.benchmark_group("core");
    let book = book(1);
    let log = CountingLog::default();
    for serial in 0..100_000 {
        let (request_id, command) = hold(serial, Spread::Offices(1));
        assert!(book.execute(&request_id, &command, now(), &log).outcome.is_ok());
    }
    let office = office_id(0);
    group.bench_function("availability_7_days", |bencher| {
        bencher.iter(|| {
            book.availability(&office, ServiceType::NewPassport, date_after(1), date_after(7), now()).expect("ok")
        });
    });
    group.finish();
}

/// Two threads holding at once, on one hot session or spread across offices; figures are total holds per second.
fn contention(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("contention");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    for (name, spread, offices) in [("hot_session", Spread::Hot, 1), ("spread_64_offices", Spread::Offices(64), 64)] {
        group.bench_function(BenchmarkId::new("2_threads", name), |bencher| {
            bencher.iter_custom(|iters| two_threads(iters, spread, offices));
        });
    }
    group.finish();
}

/// Runs `iters` holds split over two threads, in rounds on fresh books (a hot session takes at most its capacity);
/// wall time of the parallel part only.
fn two_threads(iters: u64, spread: Spread, offices: usize) -> Duration {
    let round_max = match spread {
        Spread::Hot => u64::from(CAPACITY),
        Spread::Offices(_) => 2 * CHUNK,
    };
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let count = round_max.min(iters - done);
        let book = book(offices);
        let log = CountingLog::default();
        let halves: Vec<Vec<(RequestId, Command)>> = (0..2u64)
            .map(|thread| {
                (0..count / 2 + thread * (count % 2)).map(|index| hold(done + index * 2 + thread, spread)).collect()
            })
            .collect();
        let at = now();
        let barrier = std::sync::Barrier::new(3);
        let started = std::thread::scope(|scope| {
            for half in &halves {
                let (book, log, barrier) = (&book, &log, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    for (request_id, command) in half {
                        let execution = book.execute(request_id, command, at, log);
                        assert!(execution.outcome.is_ok(), "hold accepted: {:?}", execution.outcome);
                    }
                });
            }
            barrier.wait();
            Instant::now()
        });
        total += started.elapsed();
        done += count;
    }
    total
}

criterion_group!(benches, single_thread, contention);
criterion_main!(benches);
