//! The quota book against a naive reference model: random command sequences over two offices with tiny capacities,
//! checked after every step, then rebuilt from the log and from an image. And threads racing for the last slots.

use super::testkit::*;
use crate::domain::bookings::booking::{Applicant, Booking, BookingState, SlotRef};
use crate::domain::bookings::rules::BookRules;
use crate::domain::catalogue::office::{Pool, ServiceType};
use crate::domain::messages::command::{Amendment, Command, HoldCommand};
use crate::domain::messages::rejection::Rejection;
use crate::domain::messages::reply::{Outcome, Reply};
use crate::domain::state::book::{Execution, QuotaBook};
use crate::domain::state::image::Image;
use crate::domain::values::ids::{AccountId, BookingId, OfficeId, RequestId, SessionId};
use crate::domain::values::nik::Nik;
use crate::domain::values::time::{Date, Timestamp};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Barrier;

/// How long the model's book remembers request ids: short, so sequences see ids forgotten.
const RETENTION_MS: i64 = 6 * HOUR_MS;
/// The model's settlement grace: not the default, so the book is seen to use its rules.
const GRACE_MS: i64 = 30 * 60_000;

fn model_rules() -> BookRules {
    BookRules { request_retention_ms: RETENTION_MS, payment_settlement_grace_ms: GRACE_MS, ..BookRules::default() }
}

fn offices() -> [(OfficeId, Capacities); 2] {
    [
        (OfficeId::parse("kanim-a").expect("id"), Capacities { regular: 2, priority: 1 }),
        (OfficeId::parse("kanim-b").expect("id"), Capacities { regular: 1, priority: 1 }),
    ]
}

fn dates() -> [Date; 3] {
    [monday(), tuesday(), wednesday()]
}

fn sessions() -> [(SessionId, i64); 2] {
    [(morning(), 8), (late_morning(), 10)]
}

const POOLS: [Pool; 2] = [Pool::Regular, Pool::Priority];

/// Four adults, then three applicants eligible for the priority pool.
fn applicants() -> Vec<Applicant> {
    vec![adult(1), adult(2), adult(3), adult(4), elder(5), toddler(6), disabled(7)]
}

/// When a payment says it was made, relative to the booking's deadline and to now.
#[derive(Clone, Copy, Debug)]
enum PaidAt {
    /// Not reported.
    Unknown,
    /// This long before the payment deadline.
    BeforeDeadline(i64),
    /// This long after the payment deadline (never after now).
    AfterDeadline(i64),
    /// An hour from now: refused.
    Future,
}

fn paid_at() -> impl Strategy<Value = PaidAt> {
    prop_oneof![
        2 => Just(PaidAt::Unknown),
        3 => (0..HOUR_MS).prop_map(PaidAt::BeforeDeadline),
        1 => (1..HOUR_MS).prop_map(PaidAt::AfterDeadline),
        1 => Just(PaidAt::Future),
    ]
}

/// A step of a random history.
#[derive(Clone, Debug)]
enum Op {
    Hold {
        office: usize,
        date: usize,
        session: usize,
        pool: usize,
        applicant: usize,
    },
    HoldGroup {
        office: usize,
        date: usize,
        session: usize,
        pool: usize,
        members: Vec<usize>,
    },
    Pay {
        pick: Index,
        reference: u8,
        paid_at: PaidAt,
    },
    LatePay {
        pick: Index,
        reference: u8,
        after_ms: i64,
        tick_first: bool,
        paid_at: PaidAt,
    },
    Purge {
        before: usize,
    },
    Cancel {
        pick: Index,
    },
    Reschedule {
        pick: Index,
        date: usize,
        session: usize,
    },
    CheckIn {
        pick: Index,
        on_the_day: bool,
    },
    Amend {
        pick: Index,
        name: Option<u8>,
        disability: Option<bool>,
        replacement: Option<bool>,
        nik: Option<usize>,
    },
    /// Clear the disability flag of a booking in the priority pool that has it: the amendment that moves a booking.
    /// With `crowd_first`, the adults try to hold the regular pool of its session first (so that it may be full).
    ClearDisability {
        pick: Index,
        crowd_first: bool,
    },
    Tick {
        advance_ms: i64,
    },
    Retry {
        pick: Index,
    },
    Reuse {
        pick: Index,
    },
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    let place = (0..2usize, 0..3usize, 0..2usize, 0..2usize);
    prop_oneof![
        5 => (place.clone(), 0..7usize).prop_map(|((office, date, session, pool), applicant)| Op::Hold {
            office, date, session, pool, applicant
        }),
        1 => (place, prop::collection::vec(0..7usize, 1..=4)).prop_map(|((office, date, session, pool), members)| {
            Op::HoldGroup { office, date, session, pool, members }
        }),
        3 => (any::<Index>(), 0..2u8, paid_at()).prop_map(|(pick, reference, paid_at)| Op::Pay { pick, reference, paid_at }),
        3 => (any::<Index>(), 0..2u8, prop_oneof![0..GRACE_MS, 0..3 * HOUR_MS], any::<bool>(), paid_at()).prop_map(
            |(pick, reference, after_ms, tick_first, paid_at)| Op::LatePay {
                pick, reference, after_ms, tick_first, paid_at
            }
        ),
        1 => (0..4usize).prop_map(|before| Op::Purge { before }),
        2 => any::<Index>().prop_map(|pick| Op::Cancel { pick }),
        2 => (any::<Index>(), 0..3usize, 0..2usize).prop_map(|(pick, date, session)| Op::Reschedule {
            pick, date, session
        }),
        2 => (any::<Index>(), any::<bool>()).prop_map(|(pick, on_the_day)| Op::CheckIn { pick, on_the_day }),
        3 => (
            any::<Index>(),
            prop::option::of(0..2u8),
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>()),
            prop::option::weighted(0.1, 0..7usize),
        )
            .prop_map(|(pick, name, disability, replacement, nik)| Op::Amend { pick, name, disability, replacement, nik }),
        2 => (any::<Index>(), any::<bool>()).prop_map(|(pick, crowd_first)| Op::ClearDisability { pick, crowd_first }),
        3 => prop_oneof![0..2 * HOUR_MS, 0..2 * DAY_MS].prop_map(|advance_ms| Op::Tick { advance_ms }),
        2 => any::<Index>().prop_map(|pick| Op::Retry { pick }),
        1 => any::<Index>().prop_map(|pick| Op::Reuse { pick }),
        1 => Just(Op::Snapshot),
    ]
}

// ---------------------------------------------------------------------------------------------------------------
// The reference model: a list of bookings with states, and arithmetic on Jakarta time (UTC+7, no daylight saving).

#[derive(Clone, Debug)]
struct ModelBooking {
    booking_id: BookingId,
    slot: SlotRef,
    applicant: Applicant,
    state: BookingState,
    payment_deadline: Timestamp,
    session_starts_at: Timestamp,
    reschedules_used: u32,
    payment_reference: Option<String>,
    settlement_deadline: Option<Timestamp>,
    service: ServiceType,
    amendments_used: u8,
}

impl ModelBooking {
    /// Sessions are two hours long.
    fn session_ends_at(&self) -> Timestamp {
        self.session_starts_at.plus_ms(2 * HOUR_MS)
    }

    fn settles_until(&self) -> Timestamp {
        let grace_end = self.payment_deadline.plus_ms(GRACE_MS).min(self.session_starts_at).max(self.payment_deadline);
        self.settlement_deadline.unwrap_or(grace_end)
    }
}

/// What is left of a purged booking in the model.
#[derive(Clone, Debug)]
struct ModelPurged {
    booking_id: BookingId,
    payment_reference: Option<String>,
}

/// What the model expects a command to do.
#[derive(Debug)]
enum Expected {
    /// Refused, nothing logged. Compared exactly except for free-text rejections, compared by reason.
    Refused(Rejection),
    /// Held, with these deadline and start.
    Held { payment_deadline: Timestamp, session_starts_at: Timestamp },
    /// Confirmed (bookings index).
    Paid { index: usize, revived: bool, in_grace: bool },
    /// The booking's accepted payment again: answered with the booking as it is (`None` once purged), logged so the
    /// answer is remembered, nothing else changes.
    PaidAgain { index: Option<usize> },
    /// Refused with a refund recorded (logged).
    Refunded(Rejection),
    /// Cancelled.
    Cancelled { index: usize },
    /// Moved.
    Rescheduled { index: usize, to: SlotRef, session_starts_at: Timestamp, payment_deadline: Timestamp },
    /// Checked in.
    CheckedIn { index: usize },
    /// Amended: these fields changed, and it moved to this pool.
    Amended { index: usize, changed: Amendment, to_pool: Option<Pool> },
    /// Purged: these bookings indexes.
    Purged { indexes: Vec<usize> },
}

struct Model {
    now: Timestamp,
    bookings: Vec<ModelBooking>,
    /// Bookings purged.
    purged: Vec<ModelPurged>,
    /// Refunds recorded: booking, payment reference, and the refusal that went with it.
    refunds: Vec<(BookingId, String, Rejection)>,
    /// Request ids with a logged answer: when recorded, and the first execution.
    remembered: HashMap<RequestId, (Timestamp, Execution)>,
}

fn capacity(office_id: &OfficeId, pool: Pool) -> u32 {
    let (_, capacities) = offices().into_iter().find(|(id, _)| id == office_id).expect("model office");
    match pool {
        Pool::Regular => capacities.regular,
        Pool::Priority => capacities.priority,
        Pool::Express => 0,
    }
}

fn epoch() -> Date {
    date(1970, 1, 1)
}

/// Local midnight-based arithmetic for UTC+7.
fn local_instant(on: Date, hours: i64) -> Timestamp {
    Timestamp(i64::from(on.days_since(epoch())) * DAY_MS + (hours - 7) * HOUR_MS)
}

fn local_today(now: Timestamp) -> Date {
    epoch().plus_days((now.0 + 7 * HOUR_MS).div_euclid(DAY_MS) as i32)
}

fn session_start(slot_date: Date, session_id: &SessionId) -> Timestamp {
    let (_, hours) = sessions().into_iter().find(|(id, _)| id == session_id).expect("model session");
    local_instant(slot_date, hours)
}

fn eligible(applicant: &Applicant) -> bool {
    applicant.has_disability || applicant.birth_date.year <= 1960 || applicant.birth_date.year >= 2022
}

impl Model {
    fn remaining(&self, slot: &SlotRef) -> u32 {
        let taken = self.bookings.iter().filter(|booking| &booking.slot == slot && booking.state.holds_slot()).count();
        capacity(&slot.office_id, slot.pool) - taken as u32
    }

    fn active_of(&self, applicant: &Applicant) -> Option<BookingId> {
        let mut active = self.bookings.iter().filter(|booking| booking.applicant.nik == applicant.nik);
        active.find(|booking| booking.state.is_active()).map(|booking| booking.booking_id)
    }

    fn index_of(&self, booking_id: BookingId) -> Option<usize> {
        self.bookings.iter().position(|booking| booking.booking_id == booking_id)
    }

    /// The date and session checks shared by holds and reschedules.
    fn bookable(&self, slot: &SlotRef) -> Result<Timestamp, Rejection> {
        if slot.date < local_today(self.now) {
            return Err(Rejection::invalid("date", "in the past"));
        }
        let release = local_instant(slot.date.plus_days(-RELEASE_DAYS_BEFORE), 9);
        if self.now < release {
            return Err(Rejection::NotYetOpen { opens_at: release });
        }
        let starts_at = session_start(slot.date, &slot.session_id);
        if self.now >= starts_at {
            return Err(Rejection::invalid("session_id", "started"));
        }
        Ok(starts_at)
    }

    fn expect(&self, command: &Command) -> Expected {
        match command {
            Command::Hold(hold) => self.expect_hold(hold),
            Command::ConfirmPayment { booking_id, payment_reference, paid_at } => {
                let Some(index) = self.index_of(*booking_id) else {
                    return self.expect_purged_payment(*booking_id, payment_reference.as_str(), *paid_at);
                };
                self.expect_payment(index, payment_reference.as_str(), *paid_at)
            }
            Command::Cancel { booking_id } => match self.index_of(*booking_id) {
                None => Expected::Refused(Rejection::BookingNotFound(*booking_id)),
                Some(index) if self.bookings[index].state.is_active() => Expected::Cancelled { index },
                Some(index) => invalid_state(self.bookings[index].state),
            },
            Command::CheckIn { booking_id } => {
                let Some(index) = self.index_of(*booking_id) else {
                    return Expected::Refused(Rejection::BookingNotFound(*booking_id));
                };
                let booking = &self.bookings[index];
                let on_the_day = local_today(self.now) == booking.slot.date && self.now < booking.session_ends_at();
                if booking.state != BookingState::Confirmed || !on_the_day {
                    return invalid_state(booking.state);
                }
                Expected::CheckedIn { index }
            }
            Command::Reschedule { booking_id, date, session_id } => {
                let Some(index) = self.index_of(*booking_id) else {
                    return Expected::Refused(Rejection::BookingNotFound(*booking_id));
                };
                self.expect_reschedule(index, *date, session_id)
            }
            Command::AmendBooking { booking_id, amendment, nik } => match self.index_of(*booking_id) {
                None => Expected::Refused(Rejection::BookingNotFound(*booking_id)),
                Some(index) => self.expect_amend(index, amendment, *nik),
            },
            Command::PurgeBookings { before } => Expected::Purged {
                indexes: (0..self.bookings.len())
                    .filter(|index| {
                        let booking = &self.bookings[*index];
                        booking.slot.date < *before && !booking.state.is_active()
                    })
                    .collect(),
            },
            _ => unreachable!("the model sends no other admin commands"),
        }
    }

    fn expect_hold(&self, hold: &HoldCommand) -> Expected {
        let niks: Vec<_> = hold.applicants.iter().map(|applicant| applicant.nik).collect();
        if (1..niks.len()).any(|index| niks[..index].contains(&niks[index])) {
            return Expected::Refused(Rejection::invalid("applicants", "twice"));
        }
        let starts_at = match self.bookable(&hold.slot) {
            Ok(starts_at) => starts_at,
            Err(rejection) => return Expected::Refused(rejection),
        };
        if hold.slot.pool == Pool::Priority && !hold.applicants.iter().all(eligible) {
            return Expected::Refused(Rejection::invalid("applicant", "not eligible"));
        }
        if let Some(booking_id) = hold.applicants.iter().find_map(|applicant| self.active_of(applicant)) {
            return Expected::Refused(Rejection::ApplicantHasBooking { booking_id });
        }
        let remaining = self.remaining(&hold.slot);
        if remaining < hold.applicants.len() as u32 {
            return Expected::Refused(Rejection::SessionFull { remaining });
        }
        Expected::Held {
            payment_deadline: self.now.plus_ms(PAYMENT_WINDOW_MS).min(starts_at),
            session_starts_at: starts_at,
        }
    }

    fn expect_payment(&self, index: usize, reference: &str, paid_at: Option<Timestamp>) -> Expected {
        let booking = &self.bookings[index];
        let booking_id = booking.booking_id;
        if paid_at.is_some_and(|paid_at| paid_at > self.now.plus_ms(30_000)) {
            return Expected::Refused(Rejection::invalid("paid_at", "in the future"));
        }
        if booking.payment_reference.as_deref() == Some(reference) {
            return Expected::PaidAgain { index: Some(index) };
        }
        let refunded = self.refunds.iter().find(|(id, paid, _)| *id == booking_id && paid == reference);
        if let Some((_, _, rejection)) = refunded {
            return Expected::Refused(rejection.clone());
        }
        match booking.state {
            BookingState::Confirmed | BookingState::CheckedIn | BookingState::NoShow => {
                Expected::Refunded(Rejection::AlreadyPaid { booking_id })
            }
            BookingState::Cancelled => Expected::Refunded(Rejection::PaidAfterCancellation { booking_id }),
            BookingState::AwaitingPayment if self.now >= booking.session_starts_at => {
                Expected::Refunded(Rejection::PaymentExpired { booking_id })
            }
            BookingState::AwaitingPayment if self.now < booking.payment_deadline => {
                Expected::Paid { index, revived: false, in_grace: false }
            }
            BookingState::AwaitingPayment => {
                let on_time = paid_at.is_some_and(|paid_at| paid_at <= booking.payment_deadline);
                let in_grace = on_time && self.now < booking.settles_until();
                Expected::Paid { index, revived: !in_grace, in_grace }
            }
            BookingState::Expired => {
                let revivable = self.now < booking.session_starts_at
                    && self.active_of(&booking.applicant).is_none()
                    && self.remaining(&booking.slot) >= 1;
                if revivable {
                    Expected::Paid { index, revived: true, in_grace: false }
                } else {
                    Expected::Refunded(Rejection::PaymentExpired { booking_id })
                }
            }
        }
    }

    fn expect_purged_payment(&self, booking_id: BookingId, reference: &str, paid_at: Option<Timestamp>) -> Expected {
        let Some(purged) = self.purged.iter().find(|purged| purged.booking_id == booking_id) else {
            return Expected::Refused(Rejection::BookingNotFound(booking_id));
        };
        if paid_at.is_some_and(|paid_at| paid_at > self.now.plus_ms(30_000)) {
            return Expected::Refused(Rejection::invalid("paid_at", "in the future"));
        }
        if purged.payment_reference.as_deref() == Some(reference) {
            return Expected::PaidAgain { index: None };
        }
        let refunded = self.refunds.iter().find(|(id, paid, _)| *id == booking_id && paid == reference);
        match refunded {
            Some((_, _, rejection)) => Expected::Refused(rejection.clone()),
            None => Expected::Refunded(Rejection::BookingPurged { booking_id }),
        }
    }

    fn expect_reschedule(&self, index: usize, to_date: Date, to_session: &SessionId) -> Expected {
        let booking = &self.bookings[index];
        if !booking.state.is_active() {
            return invalid_state(booking.state);
        }
        if booking.state == BookingState::AwaitingPayment && self.now >= booking.payment_deadline {
            return invalid_state(booking.state);
        }
        if booking.reschedules_used >= 1 || local_today(self.now) > booking.slot.date.plus_days(-1) {
            return Expected::Refused(Rejection::RescheduleNotAllowed { why: String::new() });
        }
        if booking.state == BookingState::Confirmed && self.now >= booking.session_ends_at() {
            return invalid_state(booking.state);
        }
        if to_date == booking.slot.date && to_session == &booking.slot.session_id {
            return Expected::Refused(Rejection::invalid("session_id", "same"));
        }
        let to = SlotRef { date: to_date, session_id: to_session.clone(), ..booking.slot.clone() };
        let starts_at = match self.bookable(&to) {
            Ok(starts_at) => starts_at,
            Err(rejection) => return Expected::Refused(rejection),
        };
        if self.remaining(&to) == 0 {
            return Expected::Refused(Rejection::SessionFull { remaining: 0 });
        }
        let payment_deadline = booking.payment_deadline.min(starts_at);
        Expected::Rescheduled { index, to, session_starts_at: starts_at, payment_deadline }
    }

    /// The amendment rules, spelled out: the NIK is the booking's own, the booking active and before its session (a
    /// hold before its deadline), at most two amendments (the default), something changes, and a booking that leaves
    /// the priority pool finds a regular slot in its session.
    fn expect_amend(&self, index: usize, amendment: &Amendment, nik: Option<Nik>) -> Expected {
        let booking = &self.bookings[index];
        if nik.is_some_and(|nik| nik != booking.applicant.nik) {
            return Expected::Refused(Rejection::invalid("nik", "not amendable"));
        }
        if !booking.state.is_active()
            || (booking.state == BookingState::AwaitingPayment && self.now >= booking.payment_deadline)
            || self.now >= booking.session_starts_at
        {
            return invalid_state(booking.state);
        }
        if booking.amendments_used >= 2 {
            return Expected::Refused(Rejection::AmendmentNotAllowed { why: String::new() });
        }
        let changed = Amendment {
            full_name: amendment.full_name.clone().filter(|name| name.as_str() != booking.applicant.full_name.as_str()),
            has_disability: amendment.has_disability.filter(|flag| *flag != booking.applicant.has_disability),
            service: amendment.service.filter(|service| *service != booking.service),
        };
        if changed.is_empty() {
            return Expected::Refused(Rejection::invalid("full_name", "nothing changes"));
        }
        let mut after = booking.applicant.clone();
        after.has_disability = changed.has_disability.unwrap_or(after.has_disability);
        let to_pool = (booking.slot.pool == Pool::Priority && !eligible(&after)).then_some(Pool::Regular);
        if let Some(pool) = to_pool
            && self.remaining(&SlotRef { pool, ..booking.slot.clone() }) == 0
        {
            return Expected::Refused(Rejection::AmendmentPoolFull { pool });
        }
        Expected::Amended { index, changed, to_pool }
    }

    /// Checks the book's answer against the expectation and applies it to the model.
    fn absorb(&mut self, command: &Command, expected: Expected, execution: &Execution) -> Result<(), TestCaseError> {
        let outcome = &execution.outcome;
        let logged = execution.log_position.is_some();
        match (expected, outcome) {
            (Expected::Refused(want), Err(got)) => {
                prop_assert!(same_rejection(&want, got), "expected {want:?}, got {got:?} for {command:?}");
                prop_assert!(!logged, "a refusal is not logged");
            }
            (Expected::Held { payment_deadline, session_starts_at }, Ok(Reply::Held { bookings, group_id })) => {
                let Command::Hold(hold) = command else { unreachable!("holds answer holds") };
                prop_assert!(logged);
                prop_assert_eq!(bookings.len(), hold.applicants.len());
                prop_assert_eq!(group_id.is_some(), hold.group);
                for (booking, applicant) in bookings.iter().zip(&hold.applicants) {
                    prop_assert!(self.index_of(booking.booking_id).is_none(), "booking id reused");
                    prop_assert_eq!(&booking.slot, &hold.slot);
                    prop_assert_eq!(&booking.applicant, applicant);
                    prop_assert_eq!(booking.state, BookingState::AwaitingPayment);
                    prop_assert_eq!(booking.payment_deadline, payment_deadline);
                    prop_assert_eq!(booking.session_starts_at, session_starts_at);
                    self.bookings.push(ModelBooking {
                        booking_id: booking.booking_id,
                        slot: booking.slot.clone(),
                        applicant: applicant.clone(),
                        state: BookingState::AwaitingPayment,
                        payment_deadline,
                        session_starts_at,
                        reschedules_used: 0,
                        payment_reference: None,
                        settlement_deadline: None,
                        service: hold.service,
                        amendments_used: 0,
                    });
                }
            }
            (
                Expected::Paid { index, revived, in_grace },
                Ok(Reply::Paid { booking, revived: got, in_grace: grace }),
            ) => {
                prop_assert!(logged);
                prop_assert_eq!(revived, *got);
                prop_assert_eq!(in_grace, *grace);
                prop_assert_eq!(booking.state, BookingState::Confirmed);
                prop_assert_eq!(booking.settlement_deadline, None);
                let Command::ConfirmPayment { payment_reference, .. } = command else { unreachable!("payment") };
                self.bookings[index].state = BookingState::Confirmed;
                self.bookings[index].settlement_deadline = None;
                self.bookings[index].payment_reference = Some(payment_reference.to_string());
            }
            (Expected::PaidAgain { index }, Ok(Reply::PaymentRepeated { booking })) => {
                prop_assert!(logged, "logged so the answer is remembered");
                let state = booking.as_ref().map(|booking| booking.state);
                prop_assert_eq!(state, index.map(|index| self.bookings[index].state));
            }
            (Expected::Refunded(want), Err(got)) => {
                prop_assert!(same_rejection(&want, got), "expected {want:?}, got {got:?} for {command:?}");
                prop_assert!(logged, "a refund is logged");
                let Command::ConfirmPayment { booking_id, payment_reference, .. } = command else {
                    unreachable!("payment")
                };
                self.refunds.push((*booking_id, payment_reference.to_string(), want));
            }
            (Expected::Purged { indexes }, Ok(Reply::Purged { bookings_purged })) => {
                prop_assert!(logged);
                prop_assert_eq!(*bookings_purged, indexes.len() as u64);
                for index in indexes.iter().rev() {
                    let booking = self.bookings.remove(*index);
                    let payment_reference = booking.payment_reference.clone();
                    self.purged.push(ModelPurged { booking_id: booking.booking_id, payment_reference });
                }
            }
            (Expected::Cancelled { index }, Ok(Reply::Booking(booking))) => {
                prop_assert!(logged);
                prop_assert_eq!(booking.state, BookingState::Cancelled);
                self.bookings[index].state = BookingState::Cancelled;
                self.bookings[index].settlement_deadline = None;
            }
            (Expected::CheckedIn { index }, Ok(Reply::Booking(booking))) => {
                prop_assert!(logged);
                prop_assert_eq!(booking.state, BookingState::CheckedIn);
                self.bookings[index].state = BookingState::CheckedIn;
            }
            (Expected::Rescheduled { index, to, session_starts_at, payment_deadline }, Ok(Reply::Booking(booking))) => {
                prop_assert!(logged);
                prop_assert_eq!(&booking.slot, &to);
                let model = &mut self.bookings[index];
                model.slot = to;
                model.session_starts_at = session_starts_at;
                model.payment_deadline = payment_deadline;
                model.reschedules_used += 1;
            }
            (Expected::Amended { index, changed, to_pool }, Ok(Reply::Booking(booking))) => {
                prop_assert!(logged);
                let model = &mut self.bookings[index];
                if let Some(name) = changed.full_name {
                    model.applicant.full_name = name.into();
                }
                model.applicant.has_disability = changed.has_disability.unwrap_or(model.applicant.has_disability);
                model.service = changed.service.unwrap_or(model.service);
                model.slot.pool = to_pool.unwrap_or(model.slot.pool);
                model.amendments_used += 1;
                prop_assert_eq!(&booking.applicant, &model.applicant);
                prop_assert_eq!(&booking.slot, &model.slot);
                prop_assert_eq!(booking.service, model.service);
                prop_assert_eq!(booking.amendments_used, model.amendments_used);
                prop_assert_eq!(booking.last_amended_at, Some(self.now));
            }
            (expected, outcome) => {
                return Err(TestCaseError::fail(format!("expected {expected:?}, got {outcome:?} for {command:?}")));
            }
        }
        Ok(())
    }

    /// A name for the kind of outcome expected, for the coverage count.
    fn kind(&self, expected: &Expected) -> String {
        match expected {
            Expected::Refused(rejection) => rejection.reason().to_owned(),
            Expected::Held { .. } => "held".to_owned(),
            Expected::Paid { index, revived: true, .. } if self.bookings[*index].state == BookingState::Expired => {
                "revived after expiry".to_owned()
            }
            Expected::Paid { index, revived: true, .. } if self.bookings[*index].settlement_deadline.is_some() => {
                "paid late in the grace".to_owned()
            }
            Expected::Paid { revived: true, .. } => "paid late before expiry".to_owned(),
            Expected::Paid { in_grace: true, .. } => "paid on time, notified in the grace".to_owned(),
            Expected::Paid { .. } => "paid".to_owned(),
            Expected::PaidAgain { index: None } => "paid again after purge".to_owned(),
            Expected::PaidAgain { index: Some(index) } if !self.bookings[*index].state.is_active() => {
                "paid again after it ended".to_owned()
            }
            Expected::PaidAgain { .. } => "paid again".to_owned(),
            Expected::Purged { indexes } if indexes.is_empty() => "purged nothing".to_owned(),
            Expected::Purged { .. } => "purged".to_owned(),
            Expected::Refunded(rejection) => format!("refunded {}", rejection.reason()),
            Expected::Cancelled { .. } => "cancelled".to_owned(),
            Expected::Rescheduled { .. } => "rescheduled".to_owned(),
            Expected::CheckedIn { .. } => "checked in".to_owned(),
            Expected::Amended { to_pool: Some(_), .. } => "amended into the regular pool".to_owned(),
            Expected::Amended { .. } => "amended".to_owned(),
        }
    }

    /// What the ticker does at now: holds past their deadline enter their grace or expire at its end, confirmed
    /// bookings past the end of their session become no-shows. Returns the ids moved on, sorted.
    fn tick(&mut self) -> Vec<BookingId> {
        let now = self.now;
        let mut moved = Vec::new();
        for booking in &mut self.bookings {
            match booking.state {
                BookingState::AwaitingPayment
                    if booking.settlement_deadline.unwrap_or(booking.payment_deadline) <= now =>
                {
                    let settles_until = booking.settles_until();
                    if booking.settlement_deadline.is_none() && now < settles_until {
                        booking.settlement_deadline = Some(settles_until);
                    } else {
                        booking.settlement_deadline = None;
                        booking.state = BookingState::Expired;
                    }
                    moved.push(booking.booking_id);
                }
                BookingState::Confirmed if booking.session_ends_at() <= now => {
                    booking.state = BookingState::NoShow;
                    moved.push(booking.booking_id);
                }
                _ => {}
            }
        }
        moved.sort_unstable();
        moved
    }

    /// The remembered first answer to `request_id`, if still within the retention window.
    fn fresh(&self, request_id: &RequestId) -> Option<&Execution> {
        let (recorded_at, execution) = self.remembered.get(request_id)?;
        (self.now < recorded_at.plus_ms(RETENTION_MS)).then_some(execution)
    }
}

fn invalid_state(state: BookingState) -> Expected {
    Expected::Refused(Rejection::InvalidState { state, action: String::new() })
}

/// Exact equality, except that free-text parts (field descriptions, actions, reasons why) are not compared.
fn same_rejection(want: &Rejection, got: &Rejection) -> bool {
    match (want, got) {
        (Rejection::Invalid(_), Rejection::Invalid(_)) => true,
        (Rejection::InvalidState { state: want, .. }, Rejection::InvalidState { state: got, .. }) => want == got,
        (Rejection::RescheduleNotAllowed { .. }, Rejection::RescheduleNotAllowed { .. }) => true,
        (Rejection::AmendmentNotAllowed { .. }, Rejection::AmendmentNotAllowed { .. }) => true,
        _ => want == got,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Running a history against both.

struct Harness {
    book: QuotaBook,
    log: VecLog,
    model: Model,
    /// Every (request id, command) sent, for retries.
    sent: Vec<(RequestId, Command)>,
    /// A snapshot taken mid-way, and the number of events it reflects.
    snapshot: Option<(Image, usize)>,
    /// How often each kind of outcome was seen, to show the histories reach every rule.
    seen: BTreeMap<String, usize>,
    /// Request ids whose answer was logged at some point.
    logged: HashSet<RequestId>,
    /// Purged bookings as they were when purged: what a retry of an answer naming them gets.
    as_purged: HashMap<BookingId, Booking>,
}

impl Harness {
    fn new() -> Harness {
        let start = wib(date(2026, 12, 1), 8, 0);
        let mut harness = Harness {
            book: QuotaBook::new(model_rules()),
            log: VecLog::default(),
            model: Model {
                now: start,
                bookings: Vec::new(),
                purged: Vec::new(),
                refunds: Vec::new(),
                remembered: HashMap::new(),
            },
            sent: Vec::new(),
            snapshot: None,
            seen: BTreeMap::new(),
            logged: HashSet::new(),
            as_purged: HashMap::new(),
        };
        for (office_id, capacities) in offices() {
            let request_id = request(&format!("setup-{office_id}"));
            let command = Command::UpsertOffice(office_settings(office_id, capacities));
            let execution = harness.book.execute(&request_id, &command, start, &harness.log);
            assert_eq!(execution.outcome, Ok(Reply::OfficeUpserted { created: true }));
            harness.model.remembered.insert(request_id, (start, execution));
        }
        harness
    }

    /// A booking ever held: present, or purged.
    fn pick(&self, pick: &Index) -> Option<BookingId> {
        let present = self.model.bookings.iter().map(|booking| booking.booking_id);
        let ids: Vec<BookingId> = present.chain(self.model.purged.iter().map(|purged| purged.booking_id)).collect();
        (!ids.is_empty()).then(|| ids[pick.index(ids.len())])
    }

    /// A payment of `booking_id` that says it was made at `paid_at` (relative to its deadline, never after now
    /// unless in the future on purpose).
    fn payment(&self, booking_id: BookingId, reference: u8, paid_at: PaidAt) -> Command {
        let now = self.model.now;
        let index = self.model.index_of(booking_id);
        let deadline = index.map_or(now, |index| self.model.bookings[index].payment_deadline);
        let paid_at = match paid_at {
            PaidAt::Unknown => None,
            PaidAt::BeforeDeadline(ms) => Some(deadline.plus_ms(-ms).min(now)),
            PaidAt::AfterDeadline(ms) => Some(deadline.plus_ms(ms).min(now)),
            PaidAt::Future => Some(now.plus_ms(HOUR_MS)),
        };
        pay_at(booking_id, &format!("ref-{}-{reference}", booking_id.0), paid_at)
    }

    fn slot(office: usize, date: usize, session: usize, pool: usize) -> SlotRef {
        let (office_id, _) = offices()[office].clone();
        SlotRef { office_id, date: dates()[date], session_id: sessions()[session].0.clone(), pool: POOLS[pool] }
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Hold { office, date, session, pool, applicant } => {
                let applicants = vec![applicants()[*applicant].clone()];
                self.send_new(hold_command(Harness::slot(*office, *date, *session, *pool), applicants, false))?;
            }
            Op::HoldGroup { office, date, session, pool, members } => {
                let applicants = members.iter().map(|member| applicants()[*member].clone()).collect();
                self.send_new(hold_command(Harness::slot(*office, *date, *session, *pool), applicants, true))?;
            }
            Op::Pay { pick, reference, paid_at } => {
                if let Some(booking_id) = self.pick(pick) {
                    self.send_new(self.payment(booking_id, *reference, *paid_at))?;
                }
            }
            Op::LatePay { pick, reference, after_ms, tick_first, paid_at } => {
                if let Some(booking_id) = self.pick(pick) {
                    if let Some(index) = self.model.index_of(booking_id) {
                        let late = self.model.bookings[index].payment_deadline.plus_ms(*after_ms);
                        self.model.now = self.model.now.max(late);
                    }
                    if *tick_first {
                        self.tick()?;
                    }
                    self.send_new(self.payment(booking_id, *reference, *paid_at))?;
                }
            }
            Op::Purge { before } => {
                let before = [monday(), tuesday(), wednesday(), wednesday().plus_days(1)][*before];
                let present: Vec<Booking> =
                    self.model.bookings.iter().filter_map(|booking| self.book.booking(booking.booking_id)).collect();
                self.send_new(Command::PurgeBookings { before })?;
                let gone = present.into_iter().filter(|booking| self.book.booking(booking.booking_id).is_none());
                self.as_purged.extend(gone.map(|booking| (booking.booking_id, booking)));
            }
            Op::Cancel { pick } => {
                if let Some(booking_id) = self.pick(pick) {
                    self.send_new(Command::Cancel { booking_id })?;
                }
            }
            Op::Reschedule { pick, date, session } => {
                if let Some(booking_id) = self.pick(pick) {
                    let session_id = sessions()[*session].0.clone();
                    self.send_new(Command::Reschedule { booking_id, date: dates()[*date], session_id })?;
                }
            }
            Op::CheckIn { pick, on_the_day } => {
                if let Some(booking_id) = self.pick(pick) {
                    if *on_the_day && let Some(index) = self.model.index_of(booking_id) {
                        // Go to the appointment day (never back): most histories end before it otherwise.
                        let morning = local_instant(self.model.bookings[index].slot.date, 7);
                        self.model.now = self.model.now.max(morning);
                    }
                    self.send_new(Command::CheckIn { booking_id })?;
                }
            }
            Op::Amend { pick, name, disability, replacement, nik } => {
                if let Some(booking_id) = self.pick(pick) {
                    let amendment = Amendment {
                        full_name: name.map(|serial| format!("Amended Name {serial}")),
                        has_disability: *disability,
                        service: replacement
                            .map(|yes| if yes { ServiceType::Replacement } else { ServiceType::NewPassport }),
                    };
                    // The edge refuses an empty amendment without a NIK before it becomes a command.
                    if !amendment.is_empty() || nik.is_some() {
                        let nik = nik.map(|serial| applicants()[serial].nik);
                        self.send_new(Command::AmendBooking { booking_id, amendment, nik })?;
                    }
                }
            }
            Op::ClearDisability { pick, crowd_first } => {
                let flagged: Vec<BookingId> = self
                    .model
                    .bookings
                    .iter()
                    .filter(|booking| booking.slot.pool == Pool::Priority && booking.applicant.has_disability)
                    .map(|booking| booking.booking_id)
                    .collect();
                if !flagged.is_empty() {
                    let booking_id = flagged[pick.index(flagged.len())];
                    if *crowd_first {
                        let index = self.model.index_of(booking_id).expect("a model booking");
                        let regular = SlotRef { pool: Pool::Regular, ..self.model.bookings[index].slot.clone() };
                        for adult in &applicants()[..4] {
                            self.send_new(hold_command(regular.clone(), vec![adult.clone()], false))?;
                        }
                    }
                    let amendment = Amendment { has_disability: Some(false), ..Amendment::default() };
                    self.send_new(Command::AmendBooking { booking_id, amendment, nik: None })?;
                }
            }
            Op::Tick { advance_ms } => {
                self.model.now = self.model.now.plus_ms(*advance_ms);
                self.tick()?;
            }
            Op::Retry { pick } => {
                if !self.sent.is_empty() {
                    let (request_id, command) = self.sent[pick.index(self.sent.len())].clone();
                    if self.model.fresh(&request_id).is_none() && self.logged.contains(&request_id) {
                        self.saw("retry past the window decided again");
                    }
                    self.send(request_id, command)?;
                }
            }
            Op::Reuse { pick } => {
                if !self.sent.is_empty() {
                    let (request_id, _) = self.sent[pick.index(self.sent.len())].clone();
                    let other = Command::Cancel { booking_id: BookingId(999_999) };
                    let execution = self.book.execute(&request_id, &other, self.model.now, &self.log);
                    let want = match self.model.fresh(&request_id) {
                        Some(_) => Rejection::RequestIdReused,
                        None => Rejection::BookingNotFound(BookingId(999_999)),
                    };
                    self.saw(want.reason());
                    prop_assert_eq!(execution.outcome, Err(want));
                    prop_assert!(execution.log_position.is_none());
                }
            }
            Op::Snapshot => {
                if self.snapshot.is_none() {
                    let events = self.log.len();
                    self.snapshot = Some((self.book.image(events as u64), events));
                }
            }
        }
        self.compare()
    }

    /// A first answer as a retry gets it now: the same reply with the same bookings, each as it is now, or as it was
    /// when purged (a repeated payment's booking is `None` once purged).
    fn as_now(&self, first: &Outcome) -> Outcome {
        let now = |booking: &Booking| {
            let found = self.book.booking(booking.booking_id);
            found.or_else(|| self.as_purged.get(&booking.booking_id).cloned()).expect("a booking ever held")
        };
        first.clone().map(|reply| match reply {
            Reply::Held { bookings, group_id } => {
                Reply::Held { bookings: bookings.iter().map(now).collect(), group_id }
            }
            Reply::Paid { booking, revived, in_grace } => Reply::Paid { booking: now(&booking), revived, in_grace },
            Reply::Booking(booking) => Reply::Booking(now(&booking)),
            Reply::PaymentRepeated { booking } => {
                Reply::PaymentRepeated { booking: booking.and_then(|booking| self.book.booking(booking.booking_id)) }
            }
            other => other,
        })
    }

    fn saw(&mut self, kind: &str) {
        *self.seen.entry(kind.to_owned()).or_default() += 1;
    }

    fn send_new(&mut self, command: Command) -> Result<(), TestCaseError> {
        let request_id = request(&format!("model-{}", self.sent.len() + 1));
        self.sent.push((request_id.clone(), command.clone()));
        self.send(request_id, command)
    }

    fn send(&mut self, request_id: RequestId, command: Command) -> Result<(), TestCaseError> {
        let now = self.model.now;
        if let Some(first) = self.model.fresh(&request_id).cloned() {
            let retry = self.book.execute(&request_id, &command, now, &self.log);
            let expected = self.as_now(&first.outcome);
            prop_assert_eq!(&retry.outcome, &expected, "a retry gets the first answer, its bookings as they are now");
            prop_assert_eq!(retry.log_position, first.log_position);
            prop_assert!(retry.repeated);
            self.saw("retry answered from memory");
            return Ok(());
        }
        let expected = self.model.expect(&command);
        let kind = self.model.kind(&expected);
        self.saw(&kind);
        let execution = self.book.execute(&request_id, &command, now, &self.log);
        prop_assert!(!execution.repeated, "{:?} was not remembered by the model", request_id);
        self.model.absorb(&command, expected, &execution)?;
        if execution.log_position.is_some() {
            self.logged.insert(request_id.clone());
            self.model.remembered.insert(request_id, (now, execution));
        }
        Ok(())
    }

    /// What the ticker does: move on holds past their deadline and no-shows, then forget old request ids.
    fn tick(&mut self) -> Result<(), TestCaseError> {
        let now = self.model.now;
        let mut due = self.book.due_expiries(now, usize::MAX);
        for booking_id in &due {
            let (moved, _) = self.book.expire(*booking_id, now, &self.log).expect("due holds move on");
            let kind = if moved.state == BookingState::Expired { "expired" } else { "entered the settlement grace" };
            prop_assert!(moved.state == BookingState::Expired || moved.settlement_deadline.is_some());
            self.saw(kind);
        }
        let no_shows = self.book.due_no_shows(now, usize::MAX);
        for booking_id in &no_shows {
            let (moved, _) = self.book.mark_no_show(*booking_id, now, &self.log).expect("due no-shows are marked");
            prop_assert_eq!(moved.state, BookingState::NoShow);
            self.saw("no-show");
        }
        due.extend(no_shows);
        due.sort_unstable();
        prop_assert_eq!(due, self.model.tick());
        if self.book.forget_requests(now, &self.log).is_some() {
            self.saw("request ids forgotten");
        }
        let cut_off = now.plus_ms(-RETENTION_MS);
        self.model.remembered.retain(|_, (recorded_at, _)| *recorded_at >= cut_off);
        Ok(())
    }

    fn compare(&self) -> Result<(), TestCaseError> {
        if let Err(violation) = self.book.check_invariants() {
            return Err(TestCaseError::fail(format!("invariant violated: {violation}")));
        }
        for model in &self.model.bookings {
            let booking = self.book.booking(model.booking_id).expect("the book has every model booking");
            prop_assert_eq!(booking.state, model.state, "state of {}", model.booking_id);
            prop_assert_eq!(&booking.slot, &model.slot, "slot of {}", model.booking_id);
            prop_assert_eq!(booking.payment_deadline, model.payment_deadline, "deadline of {}", model.booking_id);
            prop_assert_eq!(booking.settlement_deadline, model.settlement_deadline, "grace of {}", model.booking_id);
            prop_assert_eq!(booking.session_ends_at, model.session_ends_at(), "end of {}", model.booking_id);
            prop_assert_eq!(booking.reschedules_used, model.reschedules_used);
            prop_assert_eq!(&booking.applicant, &model.applicant, "applicant of {}", model.booking_id);
            prop_assert_eq!(booking.service, model.service, "service of {}", model.booking_id);
            prop_assert_eq!(booking.amendments_used, model.amendments_used, "amendments of {}", model.booking_id);
        }
        for purged in &self.model.purged {
            prop_assert!(self.book.booking(purged.booking_id).is_none(), "{} was purged", purged.booking_id);
        }
        for (office_id, _) in offices() {
            let sessions = self
                .book
                .availability(&office_id, ServiceType::NewPassport, monday(), wednesday(), self.model.now)
                .expect("availability");
            for session in sessions {
                for pool in session.pools {
                    let slot = SlotRef {
                        office_id: office_id.clone(),
                        date: session.date,
                        session_id: session.session_id.clone(),
                        pool: pool.pool,
                    };
                    prop_assert_eq!(pool.remaining, self.model.remaining(&slot), "remaining in {:?}", slot);
                }
            }
        }
        let (bookings, requests) = self.book.sizes();
        prop_assert_eq!(bookings, self.model.bookings.len() as u64);
        prop_assert_eq!(requests, self.model.remembered.len() as u64);
        prop_assert_eq!(self.book.list_refunds(None, 0, 1_000).0.len(), self.model.refunds.len());
        Ok(())
    }

    /// Replay from nothing, load the image, and load the mid-way snapshot and replay the rest: all equal.
    fn check_rebuilds(&self) -> Result<(), TestCaseError> {
        let events = self.log.events();
        let image = self.book.image(events.len() as u64);
        let replayed = replayed(model_rules(), &events);
        if let Some(difference) = image_difference(&replayed.image(events.len() as u64), &image) {
            return Err(TestCaseError::fail(format!("replay differs: {difference}")));
        }
        if let Some(difference) =
            image_difference(&loaded(model_rules(), image.clone()).image(image.log_position), &image)
        {
            return Err(TestCaseError::fail(format!("image round trip differs: {difference}")));
        }
        if let Some((snapshot, position)) = &self.snapshot {
            let mut recovered = loaded(model_rules(), snapshot.clone());
            for event in &events[*position..] {
                recovered.replay(event);
            }
            if let Some(difference) = image_difference(&recovered.image(events.len() as u64), &image) {
                return Err(TestCaseError::fail(format!("snapshot + replay differs: {difference}")));
            }
        }
        prop_assert_eq!(replayed.sizes(), self.book.sizes());
        Ok(())
    }
}

fn hold_command(slot: SlotRef, applicants: Vec<Applicant>, group: bool) -> Command {
    let account_id = AccountId::parse("model-account").expect("id");
    Command::Hold(HoldCommand {
        slot,
        service: ServiceType::NewPassport,
        applicants,
        account_id,
        group,
        admission_token: None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_book_agrees_with_the_reference_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut harness = Harness::new();
        for op in &ops {
            harness.step(op)?;
        }
        harness.check_rebuilds()?;
    }
}

#[test]
fn the_random_histories_reach_every_rule() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..128 {
        let ops = prop::collection::vec(op(), 1..60).new_tree(&mut runner).expect("generate").current();
        let mut harness = Harness::new();
        for op in &ops {
            harness.step(op).expect("the model agrees");
        }
        for (kind, count) in harness.seen {
            *seen.entry(kind).or_default() += count;
        }
    }
    let wanted = [
        "held",
        "paid",
        "paid late before expiry",
        "paid late in the grace",
        "paid on time, notified in the grace",
        "revived after expiry",
        "paid again",
        "paid again after it ended",
        "paid again after purge",
        "refunded BOOKING_PURGED",
        "entered the settlement grace",
        "no-show",
        "purged",
        "refunded PAYMENT_EXPIRED",
        "refunded ALREADY_PAID",
        "refunded INVALID_STATE",
        "cancelled",
        "rescheduled",
        "checked in",
        "amended",
        "amended into the regular pool",
        "AMENDMENT_NOT_ALLOWED",
        "AMENDMENT_POOL_FULL",
        "expired",
        "retry answered from memory",
        "retry past the window decided again",
        "request ids forgotten",
        "NOT_YET_OPEN",
        "SESSION_FULL",
        "APPLICANT_HAS_BOOKING",
        "RESCHEDULE_NOT_ALLOWED",
        "INVALID_STATE",
        "INVALID_ARGUMENT",
        "REQUEST_ID_REUSED",
    ];
    eprintln!("outcomes seen: {seen:?}");
    let missing: Vec<_> = wanted.iter().filter(|kind| !seen.contains_key(**kind)).collect();
    assert!(missing.is_empty(), "never reached: {missing:?}; seen: {seen:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// Threads.

#[test]
fn racing_holds_for_the_last_slots_take_exactly_the_capacity() {
    const THREADS: u16 = 16;
    for round in 0..10 {
        let fixture = Fixture::with(rules(), Capacities { regular: 5, priority: 1 });
        let target = slot(monday(), morning(), Pool::Regular);
        fixture.held(target.clone(), adult(9_001), now());
        fixture.held(target.clone(), adult(9_002), now());
        let barrier = Barrier::new(usize::from(THREADS));
        let verdicts: Vec<&str> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|thread| {
                    let (fixture, barrier, target) = (&fixture, &barrier, target.clone());
                    scope.spawn(move || {
                        let command = hold(target, adult(100 + thread));
                        barrier.wait();
                        let id = request(&format!("race-{round}-{thread}"));
                        verdict(&fixture.book.execute(&id, &command, now(), &fixture.log).outcome)
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().expect("thread")).collect()
        });
        assert_eq!(verdicts.iter().filter(|verdict| **verdict == "OK").count(), 3, "{verdicts:?}");
        assert!(verdicts.iter().all(|verdict| ["OK", "SESSION_FULL"].contains(verdict)), "{verdicts:?}");
        assert_eq!(fixture.remaining(&target, now()), 0);
        fixture.assert_invariants();
        fixture.assert_rebuilds();
    }
}

#[test]
fn racing_commands_of_every_kind_replay_to_the_same_image() {
    const THREADS: u16 = 8;
    let fixture = Fixture::with(rules(), Capacities { regular: 2, priority: 1 });
    let barrier = Barrier::new(usize::from(THREADS) + 1);
    let places = [
        slot(monday(), morning(), Pool::Regular),
        slot(monday(), late_morning(), Pool::Regular),
        slot(tuesday(), morning(), Pool::Regular),
    ];
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (fixture, barrier, places) = (&fixture, &barrier, places.clone());
            scope.spawn(move || {
                barrier.wait();
                for round in 0..30u16 {
                    let at = now().plus_ms(i64::from(round) * 60_000);
                    let applicant = adult(thread * 100 + round % 3);
                    let place = places[usize::from((thread + round) % 3)].clone();
                    let run = |command: &Command| {
                        let id = request(&format!("mixed-{thread}-{round}-{}", command.name()));
                        fixture.book.execute(&id, command, at, &fixture.log)
                    };
                    let Ok(Reply::Held { bookings, .. }) = run(&hold(place, applicant)).outcome else { continue };
                    let booking_id = bookings[0].booking_id;
                    match round % 4 {
                        0 => {
                            let _ = run(&Command::Cancel { booking_id });
                        }
                        1 => {
                            let _ = run(&pay(booking_id, &format!("ref-{thread}-{round}")));
                        }
                        2 => {
                            let to = places[usize::from((thread + round + 1) % 3)].clone();
                            let _ = run(&Command::Reschedule { booking_id, date: to.date, session_id: to.session_id });
                        }
                        _ => {
                            let full_name = Some(format!("Renamed {thread}-{round}"));
                            let amendment = Amendment { full_name, ..Amendment::default() };
                            let _ = run(&Command::AmendBooking { booking_id, amendment, nik: None });
                        }
                    }
                }
            });
        }
        // The ticker, racing the callers.
        let (fixture, barrier) = (&fixture, &barrier);
        scope.spawn(move || {
            barrier.wait();
            for minute in 0..200 {
                let at = now().plus_ms(PAYMENT_WINDOW_MS + minute * 60_000);
                for booking_id in fixture.book.due_expiries(at, 100) {
                    fixture.book.expire(booking_id, at, &fixture.log);
                }
            }
        });
    });
    fixture.assert_invariants();
    fixture.assert_rebuilds();
}
