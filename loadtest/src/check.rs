//! Correctness after the load: what the client was told (the [`Ledger`]) against what the server now says.
//!
//! * `overbooked`: session pools whose active bookings (awaiting payment, confirmed, checked in) as listed by
//!   `ListBookings` exceed the capacity from `GetAvailability`, whose `remaining` is impossible (above capacity) or
//!   differs from `capacity - active`, or for which the client holds more live answered bookings than capacity.
//!   Holds whose payment deadline has passed may or may not have been expired yet; both readings are accepted.
//! * `lost`: bookings the server answered OK for that `GetBooking` no longer finds, or finds in another state than
//!   the last answer implies (a hold may have expired once its deadline passed).
//! * `unterminated`, `inversions` and `admission_order_inversions` belong to the waiting room and are computed by the
//!   spike's gate (`scenarios::waiting_room`); 0 for every other scenario.
//!
//! This module reads the server; it never changes it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tonic::Code;

use crate::calendar::CivilDate;
use crate::client::{Clients, civil_date, proto_date, system_time};
use crate::proto::{self, BookingState};
use crate::scenarios::fixture::{Fixture, SERVICE};

/// Most bookings the ledger tracks; later ones are counted as untracked.
pub const LEDGER_MAX: usize = 2_000_000;
/// How late the server's expiry may run after a payment deadline before an unexpired hold counts as lost.
pub const EXPIRY_LAG_MAX: Duration = Duration::from_secs(10);
/// How early (clock resolution) an expiry may be seen before the deadline.
pub const EXPIRY_EARLY_MAX: Duration = Duration::from_secs(1);
/// `GetBooking` calls in flight during the check.
const CHECK_CONCURRENCY: usize = 32;
/// Examples of each violation kept for the report.
const EXAMPLES_MAX: usize = 10;
/// Attempts to read a date's availability and bookings while they do not change.
const STABLE_READ_ATTEMPTS: usize = 4;

/// What the last answer about a booking implies about its state now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Held: awaiting payment until the deadline, expired after it.
    Awaiting {
        /// The payment deadline.
        deadline: SystemTime,
    },
    /// Paid.
    Confirmed,
    /// Checked in.
    CheckedIn,
    /// Cancelled.
    Cancelled,
    /// Expired.
    Expired,
    /// Confirmed, not checked in by the end of its session.
    NoShow,
    /// A later call failed in a way that leaves its effect unknown: any state is acceptable, but it must exist.
    Unknown,
}

#[derive(Clone, Debug)]
struct Entry {
    expected: Expected,
    office_id: String,
    date: CivilDate,
    session_id: String,
}

/// Every booking the server answered OK for, with its last answered state.
#[derive(Default)]
pub struct Ledger {
    entries: Mutex<HashMap<String, Entry>>,
    untracked: Mutex<u64>,
}

impl Ledger {
    /// Records the state of `booking` as the server just answered it.
    pub fn observe(&self, booking: &proto::Booking) {
        let expected = match booking.state() {
            BookingState::AwaitingPayment => {
                Expected::Awaiting { deadline: system_time(booking.payment_deadline.as_ref()) }
            }
            BookingState::Confirmed => Expected::Confirmed,
            BookingState::CheckedIn => Expected::CheckedIn,
            BookingState::Cancelled => Expected::Cancelled,
            BookingState::Expired => Expected::Expired,
            BookingState::NoShow => Expected::NoShow,
            BookingState::Unspecified => Expected::Unknown,
        };
        let mut entries = self.entries.lock().expect("ledger poisoned");
        if let Some(entry) = entries.get_mut(&booking.booking_id) {
            entry.expected = expected;
        } else if entries.len() < LEDGER_MAX {
            let entry = Entry {
                expected,
                office_id: booking.office_id.clone(),
                date: booking.date.as_ref().map(civil_date).unwrap_or(CivilDate { year: 0, month: 0, day: 0 }),
                session_id: booking.session_id.clone(),
            };
            entries.insert(booking.booking_id.clone(), entry);
        } else {
            *self.untracked.lock().expect("ledger poisoned") += 1;
        }
    }

    /// Records that a call on `booking_id` failed ambiguously.
    pub fn ambiguous(&self, booking_id: &str) {
        if let Some(entry) = self.entries.lock().expect("ledger poisoned").get_mut(booking_id) {
            entry.expected = Expected::Unknown;
        }
    }

    /// Bookings tracked.
    pub fn len(&self) -> usize {
        self.entries.lock().expect("ledger poisoned").len()
    }

    fn snapshot(&self) -> Vec<(String, Entry)> {
        self.entries.lock().expect("ledger poisoned").iter().map(|(id, entry)| (id.clone(), entry.clone())).collect()
    }
}

/// The correctness counts and what they were computed from.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Correctness {
    /// Session pools with more active bookings than capacity, or inconsistent remaining counts.
    pub overbooked: u64,
    /// Answered bookings missing or in an unexplained state.
    pub lost: u64,
    /// Waiting-room tickets not in a terminal state at the end (after a bounded wait).
    pub unterminated: u64,
    /// First come, first served violations among tickets that joined after the release instant.
    pub inversions: u64,
    /// Tickets admitted while a ticket with an earlier place in the drawn order was still waiting (whole line).
    pub admission_order_inversions: u64,
    /// Session pools compared.
    pub pools_checked: u64,
    /// Bookings compared.
    pub bookings_checked: u64,
    /// Bookings beyond the ledger's limit, not compared.
    pub bookings_untracked: u64,
    /// Check calls that failed (not counted as violations).
    pub check_errors: u64,
    /// Up to ten descriptions of violations.
    pub examples: Vec<String>,
}

impl Correctness {
    /// Whether any correctness count is non-zero.
    pub fn failed(&self) -> bool {
        self.overbooked + self.lost + self.unterminated + self.inversions + self.admission_order_inversions > 0
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < EXAMPLES_MAX {
            self.examples.push(text);
        }
    }
}

/// Compares the server's state with `ledger` for the quota of `fixture`.
pub async fn run(clients: &Clients, fixture: &Fixture, ledger: &Ledger) -> Correctness {
    let mut correctness = Correctness {
        bookings_untracked: *ledger.untracked.lock().expect("ledger poisoned"),
        ..Correctness::default()
    };
    let entries = ledger.snapshot();
    check_bookings(clients, &entries, &mut correctness).await;
    check_sessions(clients, fixture, &entries, &mut correctness).await;
    correctness
}

async fn check_bookings(clients: &Clients, entries: &[(String, Entry)], correctness: &mut Correctness) {
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(CHECK_CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for (booking_id, entry) in entries.iter().cloned() {
        let permit = semaphore.clone().acquire_owned().await.expect("semaphore open");
        let mut client = clients.booking();
        set.spawn(async move {
            let answer = client.get_booking(proto::GetBookingRequest { booking_id: booking_id.clone() }).await;
            drop(permit);
            (booking_id, entry, answer.map(|response| response.into_inner().booking))
        });
        while let Some(done) = set.try_join_next() {
            judge_booking(done.expect("check task"), correctness);
        }
    }
    while let Some(done) = set.join_next().await {
        judge_booking(done.expect("check task"), correctness);
    }
}

type BookingAnswer = (String, Entry, Result<Option<proto::Booking>, tonic::Status>);

fn judge_booking((booking_id, entry, answer): BookingAnswer, correctness: &mut Correctness) {
    correctness.bookings_checked += 1;
    let mut expected = entry.expected;
    let state = match answer {
        Ok(Some(booking)) => {
            // A hold past its deadline keeps its slot through the server's settlement grace (for a payment made on
            // time but notified late); the server says until when.
            if let (Expected::Awaiting { deadline }, Some(settlement)) =
                (expected, booking.settlement_deadline.as_ref())
            {
                expected = Expected::Awaiting { deadline: deadline.max(system_time(Some(settlement))) };
            }
            booking.state()
        }
        Ok(None) => BookingState::Unspecified,
        Err(status) if status.code() == Code::NotFound => {
            correctness.lost += 1;
            correctness.example(format!("lost: {booking_id} answered OK but GetBooking says NOT_FOUND"));
            return;
        }
        Err(_) => {
            correctness.check_errors += 1;
            return;
        }
    };
    if !state_explained(expected, state, SystemTime::now()) {
        correctness.lost += 1;
        correctness.example(format!("lost: {booking_id} expected {expected:?} but is {}", state.as_str_name()));
    }
}

/// Whether a booking found in `state` at `now` agrees with what the client was last told.
pub fn state_explained(expected: Expected, state: BookingState, now: SystemTime) -> bool {
    match expected {
        Expected::Awaiting { deadline } => match state {
            BookingState::AwaitingPayment => now < deadline + EXPIRY_LAG_MAX,
            BookingState::Expired => now + EXPIRY_EARLY_MAX >= deadline,
            _ => false,
        },
        // A confirmed booking becomes a no-show when its session ends without a check-in.
        Expected::Confirmed => matches!(state, BookingState::Confirmed | BookingState::NoShow),
        Expected::NoShow => state == BookingState::NoShow,
        Expected::CheckedIn => state == BookingState::CheckedIn,
        Expected::Cancelled => state == BookingState::Cancelled,
        Expected::Expired => state == BookingState::Expired,
        Expected::Unknown => state != BookingState::Unspecified,
    }
}

/// Key of one pool of one session: (office, date, session, pool).
type PoolKey = (String, CivilDate, String, i32);

/// Active bookings of a pool: those certainly active, and those whose deadline has passed but are still listed as
/// awaiting payment (the server may count them or not, depending on whether its expiry has run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Active {
    /// Confirmed, checked in, or awaiting payment before the deadline.
    pub certain: u64,
    /// Awaiting payment past the deadline.
    pub overdue: u64,
}

/// The violations of one pool: `capacity` and `remaining` from `GetAvailability`, `listed` from `ListBookings`,
/// `answered` the live bookings the client was told of.
pub fn pool_violation(capacity: u64, remaining: u64, listed: Active, answered: u64) -> Option<String> {
    if remaining > capacity {
        return Some(format!("remaining {remaining} > capacity {capacity}"));
    }
    if listed.certain > capacity {
        return Some(format!("{} active bookings > capacity {capacity}", listed.certain));
    }
    let taken = capacity - remaining;
    if taken < listed.certain || taken > listed.certain + listed.overdue {
        return Some(format!(
            "remaining {remaining} != capacity {capacity} - active {} (+{} overdue)",
            listed.certain, listed.overdue
        ));
    }
    if answered > capacity {
        return Some(format!("client holds {answered} live answered bookings > capacity {capacity}"));
    }
    None
}

async fn check_sessions(
    clients: &Clients,
    fixture: &Fixture,
    entries: &[(String, Entry)],
    correctness: &mut Correctness,
) {
    let answered = answered_live(entries, SystemTime::now());
    for office_id in &fixture.offices {
        for date in &fixture.dates {
            match stable_read(clients, office_id, *date).await {
                Ok((pools, listed)) => {
                    for ((session_id, pool), (capacity, remaining)) in pools {
                        correctness.pools_checked += 1;
                        let key = (office_id.clone(), *date, session_id.clone(), pool);
                        let active = listed.get(&key).copied().unwrap_or_default();
                        let mine = answered.get(&(office_id.clone(), *date, session_id.clone())).copied().unwrap_or(0);
                        if let Some(problem) = pool_violation(capacity, remaining, active, mine) {
                            correctness.overbooked += 1;
                            correctness.example(format!("overbooked: {office_id} {date} {session_id}: {problem}"));
                        }
                    }
                }
                Err(_) => correctness.check_errors += 1,
            }
        }
    }
}

/// Per (office, date, session), the bookings the client was last told are confirmed, checked in, or awaiting
/// payment with a deadline still ahead.
fn answered_live(entries: &[(String, Entry)], now: SystemTime) -> HashMap<(String, CivilDate, String), u64> {
    let mut live = HashMap::new();
    for (_, entry) in entries {
        let is_live = match entry.expected {
            Expected::Awaiting { deadline } => now + EXPIRY_EARLY_MAX < deadline,
            Expected::Confirmed | Expected::CheckedIn => true,
            _ => false,
        };
        if is_live {
            *live.entry((entry.office_id.clone(), entry.date, entry.session_id.clone())).or_insert(0) += 1;
        }
    }
    live
}

type PoolCounts = BTreeMap<(String, i32), (u64, u64)>;

/// Reads availability, the bookings, then availability again, until both availability reads agree.
async fn stable_read(
    clients: &Clients,
    office_id: &str,
    date: CivilDate,
) -> Result<(PoolCounts, HashMap<PoolKey, Active>), tonic::Status> {
    let mut last = None;
    for _ in 0..STABLE_READ_ATTEMPTS {
        let before = availability(clients, office_id, date).await?;
        let listed = list_active(clients, office_id, date).await?;
        let after = availability(clients, office_id, date).await?;
        if before == after {
            return Ok((after, listed));
        }
        last = Some((after, listed));
    }
    Ok(last.expect("at least one attempt"))
}

async fn availability(clients: &Clients, office_id: &str, date: CivilDate) -> Result<PoolCounts, tonic::Status> {
    let request = proto::GetAvailabilityRequest {
        office_id: office_id.to_string(),
        service: SERVICE as i32,
        first_date: Some(proto_date(date)),
        last_date: Some(proto_date(date)),
    };
    let response = clients.booking().get_availability(request).await?.into_inner();
    let mut pools = BTreeMap::new();
    for session in response.sessions {
        for pool in session.pools {
            pools
                .insert((session.session_id.clone(), pool.pool), (u64::from(pool.capacity), u64::from(pool.remaining)));
        }
    }
    Ok(pools)
}

async fn list_active(
    clients: &Clients,
    office_id: &str,
    date: CivilDate,
) -> Result<HashMap<PoolKey, Active>, tonic::Status> {
    let mut active: HashMap<PoolKey, Active> = HashMap::new();
    let mut page_token = String::new();
    let now = SystemTime::now();
    // Bounded: at most this many pages of 1000 (10 million bookings on one date).
    for _ in 0..10_000 {
        let request = proto::ListBookingsRequest {
            office_id: office_id.to_string(),
            date: Some(proto_date(date)),
            page_size: 1000,
            page_token: page_token.clone(),
        };
        let response = clients.booking().list_bookings(request).await?.into_inner();
        for booking in &response.bookings {
            let key = (booking.office_id.clone(), date, booking.session_id.clone(), booking.pool);
            let counts = active.entry(key).or_default();
            match booking.state() {
                BookingState::Confirmed | BookingState::CheckedIn => counts.certain += 1,
                BookingState::AwaitingPayment if system_time(booking.payment_deadline.as_ref()) > now => {
                    counts.certain += 1;
                }
                BookingState::AwaitingPayment => counts.overdue += 1,
                _ => {}
            }
        }
        if response.next_page_token.is_empty() {
            break;
        }
        page_token = response.next_page_token;
    }
    Ok(active)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awaiting_bookings_may_expire_only_after_the_deadline() {
        let now = SystemTime::now();
        let ahead = Expected::Awaiting { deadline: now + Duration::from_secs(60) };
        let passed = Expected::Awaiting { deadline: now - Duration::from_secs(60) };
        assert!(state_explained(ahead, BookingState::AwaitingPayment, now));
        assert!(!state_explained(ahead, BookingState::Expired, now));
        assert!(state_explained(passed, BookingState::Expired, now));
        assert!(!state_explained(passed, BookingState::AwaitingPayment, now));
        assert!(!state_explained(ahead, BookingState::Cancelled, now));
        assert!(state_explained(Expected::Confirmed, BookingState::Confirmed, now));
        assert!(!state_explained(Expected::Confirmed, BookingState::Expired, now));
        assert!(state_explained(Expected::Unknown, BookingState::Cancelled, now));
    }

    #[test]
    fn pool_violations() {
        let active = |certain, overdue| Active { certain, overdue };
        assert_eq!(pool_violation(10, 4, active(6, 0), 6), None);
        assert_eq!(pool_violation(10, 4, active(5, 2), 5), None); // one overdue hold not yet expired
        assert_eq!(pool_violation(10, 5, active(5, 2), 5), None); // both already released
        assert!(pool_violation(10, 11, active(0, 0), 0).is_some());
        assert!(pool_violation(10, 0, active(11, 0), 0).is_some());
        assert!(pool_violation(10, 6, active(6, 0), 6).is_some());
        assert!(pool_violation(10, 0, active(10, 0), 11).is_some());
    }

    #[test]
    fn ledger_keeps_the_last_answer() {
        let ledger = Ledger::default();
        let mut booking = proto::Booking {
            booking_id: "BK1".into(),
            state: BookingState::AwaitingPayment as i32,
            ..Default::default()
        };
        ledger.observe(&booking);
        booking.state = BookingState::Confirmed as i32;
        ledger.observe(&booking);
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger.snapshot()[0].1.expected, Expected::Confirmed);
        ledger.ambiguous("BK1");
        assert_eq!(ledger.snapshot()[0].1.expected, Expected::Unknown);
    }
}
