//! Test fixtures for the allocation core: an in-memory event log, a small office in Jakarta, valid applicants, fixed
//! instants, and a `check(steps, expected)` helper. Test-only: nothing here is compiled into the service.

use crate::domain::bookings::booking::{Applicant, Booking, BookingState, SlotRef};
use crate::domain::bookings::rules::BookRules;
use crate::domain::catalogue::office::{OfficeSettings, Pool, ServiceType, SessionTemplate};
use crate::domain::messages::command::{Command, HoldCommand};
use crate::domain::messages::event::Event;
use crate::domain::messages::reply::{Outcome, Reply};
use crate::domain::state::book::{EventLog, Execution, QuotaBook};
use crate::domain::state::image::Image;
use crate::domain::values::ids::{AccountId, BookingId, OfficeId, PaymentReference, RequestId, SessionId};
use crate::domain::values::nik::Nik;
use crate::domain::values::time::{Date, TimeOfDay, Timestamp, Zone};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// An [`EventLog`] that keeps every event in memory; positions start at 1.
#[derive(Default)]
pub struct VecLog {
    events: Mutex<Vec<Event>>,
}

impl EventLog for VecLog {
    fn append(&self, event: &Event) -> u64 {
        let mut events = self.events.lock().expect("log lock");
        events.push(event.clone());
        events.len() as u64
    }
}

impl VecLog {
    /// A copy of the events logged so far, in log order.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("log lock").clone()
    }

    /// How many events were logged.
    pub fn len(&self) -> usize {
        self.events.lock().expect("log lock").len()
    }
}

/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// The test office's payment window: two hours, as in the field.
pub const PAYMENT_WINDOW_MS: i64 = 2 * HOUR_MS;
/// The default settlement grace: a hold's slot stays reserved 15 minutes past its deadline.
pub const SETTLEMENT_GRACE_MS: i64 = 15 * 60_000;
/// The test office releases a date this many days before it, at 09:00 local time.
pub const RELEASE_DAYS_BEFORE: i32 = 7;

/// A date that exists.
pub fn date(year: i32, month: i32, day: i32) -> Date {
    Date::new(year, month, day).expect("a real date")
}

/// A time of day that exists.
pub fn time(hours: i32, minutes: i32) -> TimeOfDay {
    TimeOfDay::new(hours, minutes).expect("a real time of day")
}

/// Jakarta's zone (WIB, UTC+7 without daylight saving).
pub fn jakarta() -> Zone {
    Zone::resolve("Asia/Jakarta").expect("bundled zone")
}

/// The instant of local time `hours:minutes` on `on` in Jakarta.
pub fn wib(on: Date, hours: i32, minutes: i32) -> Timestamp {
    jakarta().instant_of(on, time(hours, minutes))
}

/// Monday 7 December 2026: released Monday 30 November at 09:00 WIB.
pub fn monday() -> Date {
    date(2026, 12, 7)
}

/// Tuesday 8 December 2026: released Tuesday 1 December at 09:00 WIB.
pub fn tuesday() -> Date {
    date(2026, 12, 8)
}

/// Wednesday 9 December 2026: released Wednesday 2 December at 09:00 WIB.
pub fn wednesday() -> Date {
    date(2026, 12, 9)
}

/// Saturday 5 December 2026: the office does not work.
pub fn saturday() -> Date {
    date(2026, 12, 5)
}

/// The release instant of a working day with no schedule of its own.
pub fn release_of(on: Date) -> Timestamp {
    wib(on.plus_days(-RELEASE_DAYS_BEFORE), 9, 0)
}

/// Tuesday 1 December 2026, 10:00 WIB: Monday the 7th and Tuesday the 8th are open, Wednesday the 9th is not.
pub fn now() -> Timestamp {
    wib(date(2026, 12, 1), 10, 0)
}

/// The morning session, 08:00-10:00.
pub fn morning() -> SessionId {
    SessionId::parse("0800-1000").expect("id")
}

/// The late-morning session, 10:00-12:00.
pub fn late_morning() -> SessionId {
    SessionId::parse("1000-1200").expect("id")
}

/// The test office's id.
pub fn office_id() -> OfficeId {
    OfficeId::parse("kanim-test").expect("id")
}

/// Per-pool capacities of each of the test office's two sessions.
#[derive(Clone, Copy, Debug)]
pub struct Capacities {
    /// Regular pool.
    pub regular: u32,
    /// Priority pool.
    pub priority: u32,
}

/// Small capacities: 3 regular and 2 priority slots per session.
pub const SMALL: Capacities = Capacities { regular: 3, priority: 2 };

/// Settings of an office in Jakarta with two sessions (08:00-10:00, 10:00-12:00), working Monday to Friday, releasing
/// a date [`RELEASE_DAYS_BEFORE`] days before at 09:00, with a two-hour payment window and a 30-day horizon.
pub fn office_settings(office_id: OfficeId, capacities: Capacities) -> OfficeSettings {
    let session = |session_id: SessionId, start: i32| SessionTemplate {
        session_id,
        starts_at: time(start, 0),
        ends_at: time(start + 2, 0),
        capacities: vec![(Pool::Regular, capacities.regular), (Pool::Priority, capacities.priority)],
    };
    OfficeSettings {
        office_id,
        display_name: "Kanim Test".into(),
        time_zone: "Asia/Jakarta".into(),
        city: "Jakarta Pusat".into(),
        province: "DKI Jakarta".into(),
        services: vec![ServiceType::NewPassport, ServiceType::Replacement],
        sessions: vec![session(morning(), 8), session(late_morning(), 10)],
        working_weekdays: vec![1, 2, 3, 4, 5],
        payment_window_ms: PAYMENT_WINDOW_MS,
        booking_horizon_days: 30,
        release_days_before: RELEASE_DAYS_BEFORE,
        release_time: time(9, 0),
    }
}

/// A valid NIK: region 317101 (Gambir, Jakarta Pusat), birth date DDMMYY with 40 added to a woman's day, serial.
pub fn nik_for(birth: Date, woman: bool, serial: u16) -> Nik {
    assert!(serial < 10_000, "a NIK serial has four digits");
    let day = i32::from(birth.day) + if woman { 40 } else { 0 };
    let text = format!("317101{day:02}{:02}{:02}{serial:04}", birth.month, i32::from(birth.year) % 100);
    Nik::parse_matching(&text, birth).expect("a valid NIK")
}

/// An applicant born on `birth`, with a NIK that matches.
pub fn applicant_born(serial: u16, birth: Date, woman: bool, has_disability: bool) -> Applicant {
    Applicant {
        nik: nik_for(birth, woman, serial),
        full_name: format!("Pemohon {serial}").into(),
        birth_date: birth,
        has_disability,
    }
}

/// An ordinary adult applicant (born 17 August 1990; women for odd serials), distinct per serial.
pub fn adult(serial: u16) -> Applicant {
    applicant_born(serial, date(1990, 8, 17), serial % 2 == 1, false)
}

/// An applicant of 76 on the test dates: eligible for the priority pool.
pub fn elder(serial: u16) -> Applicant {
    applicant_born(serial, date(1950, 3, 2), false, false)
}

/// A child of 2 on the test dates: eligible for the priority pool.
pub fn toddler(serial: u16) -> Applicant {
    applicant_born(serial, date(2024, 3, 10), true, false)
}

/// An adult with a disability: eligible for the priority pool.
pub fn disabled(serial: u16) -> Applicant {
    applicant_born(serial, date(1985, 1, 20), false, true)
}

/// A slot of the test office.
pub fn slot(on: Date, session_id: SessionId, pool: Pool) -> SlotRef {
    SlotRef { office_id: office_id(), date: on, session_id, pool }
}

/// A hold of one applicant.
pub fn hold(slot: SlotRef, applicant: Applicant) -> Command {
    Command::Hold(HoldCommand {
        slot,
        service: ServiceType::NewPassport,
        applicants: vec![applicant],
        account_id: AccountId::parse("account-1").expect("id"),
        group: false,
        admission_token: None,
    })
}

/// A group hold.
pub fn hold_group(slot: SlotRef, applicants: Vec<Applicant>) -> Command {
    Command::Hold(HoldCommand {
        slot,
        service: ServiceType::NewPassport,
        applicants,
        account_id: AccountId::parse("account-family").expect("id"),
        group: true,
        admission_token: None,
    })
}

/// A payment of `booking_id` with `reference`, without `paid_at`.
pub fn pay(booking_id: BookingId, reference: &str) -> Command {
    pay_at(booking_id, reference, None)
}

/// A payment of `booking_id` with `reference` that the payment network says was made at `paid_at`.
pub fn pay_at(booking_id: BookingId, reference: &str, paid_at: Option<Timestamp>) -> Command {
    let payment_reference = PaymentReference::parse(reference).expect("reference");
    Command::ConfirmPayment { booking_id, payment_reference, paid_at }
}

/// A request id.
pub fn request(text: &str) -> RequestId {
    RequestId::parse(text).expect("request id")
}

/// Default rules: one active booking per applicant, one reschedule until the day before, 24 h of request memory.
pub fn rules() -> BookRules {
    BookRules::default()
}

/// A quota book, its log, and a source of fresh request ids.
pub struct Fixture {
    /// The book.
    pub book: QuotaBook,
    /// Everything the book logged.
    pub log: VecLog,
    next_request: AtomicU64,
}

impl Fixture {
    /// A book with `rules` and the test office with `capacities`, created at [`now`].
    pub fn with(rules: BookRules, capacities: Capacities) -> Fixture {
        let fixture = Fixture { book: QuotaBook::new(rules), log: VecLog::default(), next_request: AtomicU64::new(1) };
        let upsert = Command::UpsertOffice(office_settings(office_id(), capacities));
        let created = fixture.run(&upsert, now());
        assert_eq!(created.outcome, Ok(Reply::OfficeUpserted { created: true }));
        fixture
    }

    /// The test office with [`SMALL`] capacities and default rules.
    pub fn new() -> Fixture {
        Fixture::with(rules(), SMALL)
    }

    /// Executes `command` at `at` under a fresh request id, and checks the invariants afterwards.
    pub fn run(&self, command: &Command, at: Timestamp) -> Execution {
        let number = self.next_request.fetch_add(1, Ordering::Relaxed);
        self.run_as(&request(&format!("req-{number}")), command, at)
    }

    /// Executes `command` at `at` under `request_id`, and checks the invariants afterwards.
    pub fn run_as(&self, request_id: &RequestId, command: &Command, at: Timestamp) -> Execution {
        let execution = self.book.execute(request_id, command, at, &self.log);
        self.assert_invariants();
        execution
    }

    /// Holds `slot` for `applicant` at `at` and returns the booking; panics when refused.
    pub fn held(&self, slot: SlotRef, applicant: Applicant, at: Timestamp) -> Booking {
        match self.run(&hold(slot, applicant), at).outcome {
            Ok(Reply::Held { mut bookings, group_id: None }) if bookings.len() == 1 => bookings.remove(0),
            other => panic!("expected one held booking, got {other:?}"),
        }
    }

    /// Holds and pays `slot` for `applicant` at `at`; returns the confirmed booking.
    pub fn confirmed(&self, slot: SlotRef, applicant: Applicant, at: Timestamp) -> Booking {
        let booking = self.held(slot, applicant, at);
        match self.run(&pay(booking.booking_id, &format!("pay-{}", booking.booking_id.0)), at).outcome {
            Ok(Reply::Paid { booking, revived: false, in_grace: false }) => booking,
            other => panic!("expected a payment, got {other:?}"),
        }
    }

    /// Moves on everything due at `at`, the way the ticker does: holds past their deadline enter their settlement
    /// grace or expire, confirmed bookings past the end of their session become no-shows. Returns the ids moved on.
    pub fn tick(&self, at: Timestamp) -> Vec<BookingId> {
        let mut due = self.book.due_expiries(at, usize::MAX);
        let moved = due.iter().filter(|booking_id| self.book.expire(**booking_id, at, &self.log).is_some()).count();
        assert_eq!(moved, due.len(), "every due hold moves on");
        let no_shows = self.book.due_no_shows(at, usize::MAX);
        let marked =
            no_shows.iter().filter(|booking_id| self.book.mark_no_show(**booking_id, at, &self.log).is_some()).count();
        assert_eq!(marked, no_shows.len(), "every due no-show is marked");
        self.assert_invariants();
        due.extend(no_shows);
        due
    }

    /// Lets a hold lapse for good, the way the ticker sees it: past its deadline, then through its settlement grace.
    /// Returns when it expired.
    pub fn lapse(&self, booking: &Booking) -> Timestamp {
        self.tick(booking.payment_deadline);
        let lapsed = self.booking(booking.booking_id);
        let expired_at = lapsed.settlement_deadline.unwrap_or(lapsed.payment_deadline);
        self.tick(expired_at);
        assert_eq!(self.booking(booking.booking_id).state, BookingState::Expired, "lapsed");
        expired_at
    }

    /// The booking, which must exist.
    pub fn booking(&self, booking_id: BookingId) -> Booking {
        self.book.booking(booking_id).expect("booking exists")
    }

    /// Slots left in a slot's pool at `at`, as availability reports them.
    pub fn remaining(&self, slot: &SlotRef, at: Timestamp) -> u32 {
        let sessions =
            self.book.availability(&slot.office_id, ServiceType::NewPassport, slot.date, slot.date, at).expect("query");
        let session = sessions.iter().find(|session| session.session_id == slot.session_id).expect("session listed");
        session.pools.iter().find(|pool| pool.pool == slot.pool).expect("pool listed").remaining
    }

    /// Panics with the violation when an invariant does not hold.
    pub fn assert_invariants(&self) {
        if let Err(violation) = self.book.check_invariants() {
            panic!("invariant violated: {violation}");
        }
    }

    /// Asserts that replaying the log into a fresh book, and loading the image, both rebuild exactly this state.
    pub fn assert_rebuilds(&self) {
        let image = self.book.image(0);
        assert_same_image(&replayed(self.book.rules().clone(), &self.log.events()).image(0), &image, "replay");
        let loaded = QuotaBook::from_image(self.book.rules().clone(), image.clone()).expect("image loads");
        assert_same_image(&loaded.image(0), &image, "image round trip");
        let capture = self.book.capture(|| 0);
        let streamed = postcard::to_stdvec(&capture.streamed()).expect("encodes");
        assert!(streamed == postcard::to_stdvec(&image).expect("encodes"), "a snapshot streams the image's bytes");
        assert!(loaded.check_invariants().is_ok());
    }
}

/// A fresh book with `events` replayed into it.
pub fn replayed(rules: BookRules, events: &[Event]) -> QuotaBook {
    let mut book = QuotaBook::new(rules);
    for event in events {
        book.replay(event);
    }
    book
}

/// Loads `image` into a book with `rules`.
pub fn loaded(rules: BookRules, image: Image) -> QuotaBook {
    QuotaBook::from_image(rules, image).expect("image loads")
}

/// A short verdict for an outcome: `OK` or the rejection's stable reason.
pub fn verdict(outcome: &Outcome) -> &'static str {
    match outcome {
        Ok(_) => "OK",
        Err(rejection) => rejection.reason(),
    }
}

/// The ids of the bookings a hold made, in applicant order; panics on anything else.
pub fn held_ids(outcome: &Outcome) -> Vec<BookingId> {
    match outcome {
        Ok(Reply::Held { bookings, .. }) => bookings.iter().map(|booking| booking.booking_id).collect(),
        other => panic!("expected a hold, got {other:?}"),
    }
}

/// Runs `steps` (command and instant) against a fresh [`Fixture::new`] and asserts each verdict, checking the
/// invariants after every step and that the log rebuilds the final state.
pub fn check(steps: &[(Command, Timestamp)], expected: &[&str]) -> Fixture {
    let fixture = Fixture::new();
    let verdicts: Vec<&str> = steps.iter().map(|(command, at)| verdict(&fixture.run(command, *at).outcome)).collect();
    assert_eq!(verdicts, expected);
    fixture.assert_rebuilds();
    fixture
}

/// Asserts two images are equal, naming the first part that differs (whole images are too long to read).
pub fn assert_same_image(rebuilt: &Image, expected: &Image, what: &str) {
    if let Some(difference) = image_difference(rebuilt, expected) {
        panic!("{what} differs: {difference}");
    }
}

fn first_difference<T: PartialEq + std::fmt::Debug>(name: &str, left: &[T], right: &[T]) -> Option<String> {
    if let Some(index) = (0..left.len().min(right.len())).find(|index| left[*index] != right[*index]) {
        return Some(format!("{name}[{index}]:\n  rebuilt  {:?}\n  expected {:?}", left[index], right[index]));
    }
    (left.len() != right.len()).then(|| format!("{name}: {} entries rebuilt, {} expected", left.len(), right.len()))
}

/// The first part in which two images differ, if any.
pub fn image_difference(left: &Image, right: &Image) -> Option<String> {
    let header = (left.version, left.log_position);
    let expected = (right.version, right.log_position);
    if header != expected {
        return Some(format!("(version, log_position) {header:?} rebuilt, {expected:?} expected"));
    }
    first_difference("offices", &left.offices, &right.offices)
        .or_else(|| first_difference("days", &left.days, &right.days))
        .or_else(|| first_difference("bookings", &left.bookings, &right.bookings))
        .or_else(|| first_difference("applicants", &left.applicants, &right.applicants))
        .or_else(|| first_difference("requests", &left.requests, &right.requests))
        .or_else(|| first_difference("refunds", &left.refunds, &right.refunds))
        .or_else(|| first_difference("counters", &left.counters, &right.counters))
        .or_else(|| first_difference("owners", &left.owners, &right.owners))
        .or_else(|| (left != right).then(|| "images differ".to_owned()))
}
