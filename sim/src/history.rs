//! A history: the list of steps one seed makes. Steps name what they act on abstractly (the `pick`th booking seen so
//! far, applicant 12), so that a history with steps dropped still runs: that is how a failing history is shrunk.

use crate::rng::Rng;
use crate::world::{ACCOUNTS, APPLICANTS, DAY_MS, HOUR_MS, MINUTE_MS};
use std::fmt;

/// When a payment says it was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaidAt {
    /// Not reported.
    Unknown,
    /// This long before the payment deadline.
    BeforeDeadline(i64),
    /// This long after the payment deadline.
    AfterDeadline(i64),
    /// An hour from now (refused).
    Future,
}

/// One step of a history: a client's request, time passing, background work, or a fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// One applicant holds a slot (with the admission token of their ticket, when they have one).
    Hold {
        /// Account.
        account: u8,
        /// Applicant.
        applicant: u8,
        /// Office.
        office: u8,
        /// Date.
        day: u8,
        /// Session.
        session: u8,
        /// Pool.
        pool: u8,
    },
    /// Several applicants hold together.
    HoldGroup {
        /// Account.
        account: u8,
        /// Applicants.
        members: Vec<u8>,
        /// Office.
        office: u8,
        /// Date.
        day: u8,
        /// Session.
        session: u8,
        /// Pool.
        pool: u8,
    },
    /// A payment for the `pick`th booking seen.
    Pay {
        /// Which booking.
        pick: u32,
        /// Which of three references (the same one again is a duplicate notification).
        reference: u8,
        /// When the payment says it was made.
        paid_at: PaidAt,
    },
    /// Cancel a booking.
    Cancel {
        /// Which booking.
        pick: u32,
    },
    /// Move a booking.
    Reschedule {
        /// Which booking.
        pick: u32,
        /// New date.
        day: u8,
        /// New session.
        session: u8,
    },
    /// Check a booking in.
    CheckIn {
        /// Which booking.
        pick: u32,
    },
    /// An applicant joins office 0's waiting room.
    Join {
        /// Applicant.
        applicant: u8,
        /// Party size.
        party: u8,
    },
    /// A ticket leaves its line.
    Leave {
        /// Which ticket.
        pick: u32,
    },
    /// A request sent before is sent again with the same request id.
    Retry {
        /// Which request.
        pick: u32,
    },
    /// A request id sent before is reused for a different request.
    Reuse {
        /// Which request.
        pick: u32,
    },
    /// An office closes or reopens a date.
    CloseDate {
        /// Office.
        office: u8,
        /// Date.
        day: u8,
        /// Reopen instead.
        reopen: bool,
    },
    /// Retention: purge finished bookings before a date.
    Purge {
        /// Cut-off date.
        day: u8,
    },
    /// One tick of the background ticker.
    Tick,
    /// The clock moves on (a jump when long).
    Advance {
        /// Milliseconds.
        ms: i64,
    },
    /// The snapshotter writes a snapshot.
    Snapshot,
    /// The next fsync fails with EIO: the process stops without answering, then restarts. Unsynced bytes are lost but
    /// `kept` bytes of them (a torn write).
    FailNextSync {
        /// Unsynced bytes that reach the disk anyway.
        kept: u32,
    },
    /// The next write is short (half of it lands), then fails: the process stops, then restarts.
    ShortNextWrite {
        /// Unsynced bytes that reach the disk anyway.
        kept: u32,
    },
    /// The process is killed now and restarts.
    Crash,
    /// The process is killed the instant the next successful answer leaves it.
    CrashAfterNextAnswer,
    /// Crash, then one bit of the log on disk flips before the restart.
    FlipLogBit {
        /// Which segment, byte and bit.
        pick: u64,
    },
    /// Crash, then one bit of the newest snapshot flips before the restart.
    FlipSnapshotBit {
        /// Which byte and bit.
        pick: u64,
    },
    /// The snapshotter dies mid-write (a partial temporary file), and the process with it.
    InterruptedSnapshot {
        /// Payload bytes written before it died.
        cut: u32,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{self:?}")
    }
}

/// Relative weights of the step kinds, in the order of [`generate`]'s match. Faults are a few percent of all steps.
const WEIGHTS: [u64; 23] = [
    120, // hold
    15,  // group hold
    70,  // pay
    20,  // cancel
    15,  // reschedule
    10,  // check in
    70,  // join
    10,  // leave
    25,  // retry
    8,   // reuse
    4,   // close or reopen a date
    3,   // purge
    60,  // tick
    60,  // advance a little
    6,   // jump forward
    10,  // snapshot
    4,   // EIO
    3,   // short write
    6,   // crash
    5,   // crash after the next answer
    2,   // log bit flip
    3,   // snapshot bit flip
    3,   // interrupted snapshot
];

/// The history of `seed`, `length` steps long.
#[must_use]
pub fn generate(seed: u64, length: usize) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    // The opening-moment crowd: in the first fifth of a history (the hour before the release), joins are four times
    // as frequent.
    let mut crowd = WEIGHTS;
    crowd[6] *= 4;
    (0..length).map(|index| step(&mut rng, if index < length / 5 { &crowd } else { &WEIGHTS })).collect()
}

fn small(rng: &mut Rng, bound: u8) -> u8 {
    rng.below(u64::from(bound)) as u8
}

/// A date: mostly open ones and the two behind the waiting room, sometimes one not yet open, closed or out of reach.
fn day(rng: &mut Rng) -> u8 {
    rng.weighted(&[5, 5, 2, 4, 4, 1, 1]) as u8
}

/// A session: mostly one that exists.
fn session(rng: &mut Rng) -> u8 {
    rng.weighted(&[10, 10, 1]) as u8
}

fn step(rng: &mut Rng, weights: &[u64]) -> Step {
    let pick = |rng: &mut Rng| rng.next_u64() as u32;
    match rng.weighted(weights) {
        0 => Step::Hold {
            account: small(rng, ACCOUNTS),
            applicant: small(rng, APPLICANTS),
            office: small(rng, 2),
            day: day(rng),
            session: session(rng),
            pool: if rng.chance(900) { 0 } else { small(rng, 3) },
        },
        1 => Step::HoldGroup {
            account: small(rng, ACCOUNTS),
            members: (0..rng.between(1, 4)).map(|_| small(rng, APPLICANTS)).collect(),
            office: small(rng, 2),
            day: day(rng),
            session: session(rng),
            pool: small(rng, 2),
        },
        2 => Step::Pay {
            pick: pick(rng),
            reference: if rng.chance(800) { 0 } else { small(rng, 3) },
            paid_at: match rng.weighted(&[3, 3, 1, 1]) {
                0 => PaidAt::Unknown,
                1 => PaidAt::BeforeDeadline(rng.between(0, HOUR_MS)),
                2 => PaidAt::AfterDeadline(rng.between(1, HOUR_MS)),
                _ => PaidAt::Future,
            },
        },
        3 => Step::Cancel { pick: pick(rng) },
        4 => Step::Reschedule { pick: pick(rng), day: day(rng), session: session(rng) },
        5 => Step::CheckIn { pick: pick(rng) },
        6 => Step::Join { applicant: small(rng, APPLICANTS), party: if rng.chance(800) { 1 } else { small(rng, 6) } },
        7 => Step::Leave { pick: pick(rng) },
        8 => Step::Retry { pick: pick(rng) },
        9 => Step::Reuse { pick: pick(rng) },
        10 => Step::CloseDate { office: small(rng, 2), day: small(rng, 5), reopen: rng.chance(400) },
        11 => Step::Purge { day: small(rng, 5) },
        12 => Step::Tick,
        13 => Step::Advance { ms: rng.between(0, 10 * MINUTE_MS) },
        14 => Step::Advance { ms: rng.between(HOUR_MS, 2 * DAY_MS) },
        15 => Step::Snapshot,
        16 => Step::FailNextSync { kept: rng.below(300) as u32 },
        17 => Step::ShortNextWrite { kept: rng.below(300) as u32 },
        18 => Step::Crash,
        19 => Step::CrashAfterNextAnswer,
        20 => Step::FlipLogBit { pick: rng.next_u64() },
        21 => Step::FlipSnapshotBit { pick: rng.next_u64() },
        _ => Step::InterruptedSnapshot { cut: rng.below(4096) as u32 },
    }
}

/// The fault mix in words, for the runner's help and the README.
#[must_use]
pub fn fault_mix() -> String {
    let total: u64 = WEIGHTS.iter().sum();
    let share = |index: usize| WEIGHTS[index] as f64 * 100.0 / total as f64;
    format!(
        "per step: EIO on the next fsync {:.1}%, short write {:.1}%, crash now {:.1}%, crash right after the next \
         answer {:.1}%, log bit flip {:.1}%, snapshot bit flip {:.1}%, snapshot interrupted mid-write {:.1}%, \
         snapshot {:.1}%, time jump of 1 h to 2 days {:.1}% (the clock otherwise moves 0 to 10 min, and stands still \
         between moves)",
        share(16),
        share(17),
        share(18),
        share(19),
        share(20),
        share(21),
        share(22),
        share(15),
        share(14)
    )
}
