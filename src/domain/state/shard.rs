//! One shard of the quota book: the days, bookings, applicants, request records and refunds whose keys hash to it.
//!
//! A shard is plain data behind one lock, made of persistent collections so that a snapshot shares it instead of
//! copying it (`shared_map.rs`). Which shard a key lives in depends only on the key, so every command can name the
//! shards it needs before it takes any lock.

use super::remembered::RememberedOutcome;
pub use super::shared_map::{Map, OrdSet, SharedMap};
use crate::domain::bookings::booking::SlotRef;
use crate::domain::bookings::booking::{Booking, BookingState, PurgedBooking};
use crate::domain::bookings::refund::Refund;
use crate::domain::catalogue::office::Pool;
use crate::domain::values::ids::{BookingId, OfficeId, RequestDigest, RequestId, SessionId};
use crate::domain::values::nik::Nik;
use crate::domain::values::time::{Date, Timestamp};
use crate::limits::SHARD_COUNT;
use arcstr::ArcStr;
use serde::{Deserialize, Serialize};

/// The key of a day ledger: an office's date.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DayKey {
    /// The office.
    pub office_id: OfficeId,
    /// The date.
    pub date: Date,
}

/// Slot counts of one pool of one session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolLedger {
    /// The pool.
    pub pool: Option<Pool>,
    /// Slots.
    pub capacity: u32,
    /// Bookings awaiting payment.
    pub awaiting: u32,
    /// Bookings confirmed.
    pub confirmed: u32,
    /// Bookings checked in.
    pub checked_in: u32,
}

impl PoolLedger {
    /// Slots occupied.
    #[must_use]
    pub fn taken(&self) -> u32 {
        self.awaiting + self.confirmed + self.checked_in
    }

    /// Slots free.
    #[must_use]
    pub fn remaining(&self) -> u32 {
        self.capacity.saturating_sub(self.taken())
    }

    /// The counter of bookings in `state` (only slot-holding states have one).
    pub fn count_mut(&mut self, state: BookingState) -> Option<&mut u32> {
        match state {
            BookingState::AwaitingPayment => Some(&mut self.awaiting),
            BookingState::Confirmed => Some(&mut self.confirmed),
            BookingState::CheckedIn => Some(&mut self.checked_in),
            BookingState::Cancelled | BookingState::Expired | BookingState::NoShow => None,
        }
    }
}

/// Slot counts of one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLedger {
    /// The session.
    pub session_id: SessionId,
    /// One ledger per pool with capacity.
    pub pools: Vec<PoolLedger>,
}

/// The slots of one office's date, made from the catalogue's plan the first time the date is booked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayLedger {
    /// Sessions of the day.
    pub sessions: Vec<SessionLedger>,
    /// Bookings on this date, whatever their state. Persistent, so a day of many bookings is shared with a capture,
    /// not copied; it encodes in an image exactly as the sorted set it was before.
    pub booking_ids: OrdSet<BookingId>,
}

impl DayLedger {
    /// The pool ledger of `session_id`/`pool`.
    pub fn pool_mut(&mut self, session_id: &SessionId, pool: Pool) -> Option<&mut PoolLedger> {
        let session = self.sessions.iter_mut().find(|session| &session.session_id == session_id)?;
        session.pools.iter_mut().find(|ledger| ledger.pool == Some(pool))
    }

    /// The pool ledger of `session_id`/`pool`, read-only.
    #[must_use]
    pub fn pool(&self, session_id: &SessionId, pool: Pool) -> Option<&PoolLedger> {
        session_pool(&self.sessions, session_id, pool)
    }
}

/// The pool ledger of `session_id`/`pool` among a day's sessions. Readers copy a day's `sessions` (a few counters)
/// out of the shard lock and look pools up with this, instead of cloning the whole day with its booking-id set.
#[must_use]
pub fn session_pool<'day>(
    sessions: &'day [SessionLedger],
    session_id: &SessionId,
    pool: Pool,
) -> Option<&'day PoolLedger> {
    let session = sessions.iter().find(|session| &session.session_id == session_id)?;
    session.pools.iter().find(|ledger| ledger.pool == Some(pool))
}

/// An applicant's bookings: every one, oldest first, and those that are active (awaiting payment or confirmed), in the
/// order they became so. Both lists in one vector, the first two ids inline: an applicant with one booking, the usual
/// case, costs 32 bytes in its tree node and no allocation, where two vectors took 48. Encoded as the two lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplicantRecord {
    /// Every booking, then the active ones.
    ids: smallvec::SmallVec<[BookingId; 2]>,
    /// How many of `ids` are the list of every booking.
    all: u32,
}

impl ApplicantRecord {
    /// A record of `booking_ids` of which `active` are active.
    #[must_use]
    pub fn new(booking_ids: &[BookingId], active: &[BookingId]) -> ApplicantRecord {
        let all = u32::try_from(booking_ids.len()).expect("an applicant's bookings are far fewer than u32::MAX");
        ApplicantRecord { ids: booking_ids.iter().chain(active).copied().collect(), all }
    }

    /// Every booking of the applicant, oldest first.
    #[must_use]
    pub fn booking_ids(&self) -> &[BookingId] {
        &self.ids[..self.all as usize]
    }

    /// Those that are active, in the order they became so.
    #[must_use]
    pub fn active(&self) -> &[BookingId] {
        &self.ids[self.all as usize..]
    }

    /// Adds a new booking, active.
    pub fn add_active(&mut self, booking_id: BookingId) {
        self.ids.insert(self.all as usize, booking_id);
        self.all += 1;
        self.ids.push(booking_id);
    }

    /// Marks `booking_id` active (last) or no longer active.
    pub fn set_active(&mut self, booking_id: BookingId, active: bool) {
        if active {
            self.ids.push(booking_id);
        } else if let Some(offset) = self.active().iter().position(|each| *each == booking_id) {
            self.ids.remove(self.all as usize + offset);
        }
    }

    /// Forgets `booking_id` (purged, so not active).
    pub fn forget(&mut self, booking_id: BookingId) {
        if let Some(index) = self.booking_ids().iter().position(|each| *each == booking_id) {
            self.ids.remove(index);
            self.all -= 1;
        }
    }
}

/// How an [`ApplicantRecord`] is encoded: its two lists, each a sequence, as they always were.
#[derive(Serialize)]
struct ApplicantRecordLayout<'record> {
    booking_ids: &'record [BookingId],
    active: &'record [BookingId],
}

/// [`ApplicantRecordLayout`] decoded: inline, for the usual one booking, so a snapshot's load allocates nothing for it.
#[derive(Deserialize)]
struct DecodedApplicantRecord {
    booking_ids: smallvec::SmallVec<[BookingId; 2]>,
    active: smallvec::SmallVec<[BookingId; 2]>,
}

impl Serialize for ApplicantRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ApplicantRecordLayout { booking_ids: self.booking_ids(), active: self.active() }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ApplicantRecord {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ApplicantRecord, D::Error> {
        let decoded = DecodedApplicantRecord::deserialize(deserializer)?;
        Ok(ApplicantRecord::new(&decoded.booking_ids, &decoded.active))
    }
}

/// The first answer to a request, kept so a retry gets it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Digest of the command, to tell a retry from a reused id.
    pub fingerprint: u64,
    /// When the first answer was given.
    pub recorded_at: Timestamp,
    /// The answer: booking ids and the reply's small fields, the bookings being read again on a retry.
    pub outcome: RememberedOutcome,
    /// Log position of the change (0 after recovery, when everything is durable). Not part of the state proper.
    #[serde(skip)]
    pub log_position: u64,
}

/// The day key of a slot.
#[must_use]
pub fn day_key(slot: &SlotRef) -> DayKey {
    DayKey { office_id: slot.office_id.clone(), date: slot.date }
}

/// Running totals of one office, kept in the shard of each of its days and summed when read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficeCounters {
    /// Holds taken.
    pub holds_total: u64,
    /// Cancellations.
    pub cancellations_total: u64,
    /// Expiries.
    pub expiries_total: u64,
    /// Late payments that revived a booking.
    pub revivals_total: u64,
    /// Refunds recorded.
    pub refunds_total: u64,
    /// Reschedules (counted at the new date).
    pub reschedules_total: u64,
    /// Check-ins.
    pub check_ins_total: u64,
    /// Confirmed bookings not checked in by the end of their session.
    pub no_shows_total: u64,
}

/// Everything whose key hashes to one shard. Every collection is persistent (see `shared_map.rs`): cloning a shard
/// clones a dozen roots, so a snapshot's capture shares the shard, and a write after it copies only the tree path to
/// the key it changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shard {
    /// Day ledgers by office and date.
    pub days: SharedMap<DayKey, DayLedger>,
    /// Bookings by id.
    pub bookings: SharedMap<BookingId, Booking>,
    /// The caller that made each booking in `bookings`, by booking id: the caller named by the request id of its
    /// hold (`RequestId::caller`). Bookings made before request ids named their caller have none. The names are
    /// shared through `callers`: set them with [`Shard::set_owner`].
    pub owners: Map<BookingId, ArcStr>,
    /// Each caller that owns a booking here, once, so the owners of a shard's bookings share one name instead of a
    /// copy each (about 40 bytes a booking). As many as there are callers, which the configuration bounds; a name
    /// stays after its last booking goes, as it would come back with the caller's next hold.
    pub callers: OrdSet<ArcStr>,
    /// Bookings awaiting payment by [`Booking::hold_due_at`] (the payment deadline, then the end of the settlement
    /// grace), soonest first: what the ticker looks at.
    pub deadlines: OrdSet<(Timestamp, BookingId)>,
    /// Confirmed bookings by the end of their session, soonest first: the no-shows the ticker looks for.
    pub session_ends: OrdSet<(Timestamp, BookingId)>,
    /// Applicants by NIK. Records sit in the tree's nodes, not behind an `Arc` each: a record is two inline id lists
    /// (48 bytes), cheaper to copy with its node after a capture than to allocate on its own.
    pub applicants: Map<Nik, ApplicantRecord>,
    /// First answers by the digest of their request id ([`RequestDigest`]: 16 bytes, where the id's text took up to
    /// 130 and an `Arc`), the records in the tree's nodes: a record is a few numbers and the ids of its bookings.
    pub requests: Map<RequestDigest, RequestRecord>,
    /// The same requests by when they were recorded, oldest first, so finding and forgetting stale ones costs what
    /// is stale, not a walk over every remembered request.
    pub requests_by_age: OrdSet<(Timestamp, RequestDigest)>,
    /// Refunds recorded for bookings in this shard (present or purged), by booking, each booking's oldest first.
    pub refunds: SharedMap<BookingId, Vec<Refund>>,
    /// What is kept of purged bookings in this shard, by booking.
    pub purged: SharedMap<BookingId, PurgedBooking>,
    /// Totals per office, for days in this shard.
    pub counters: Map<OfficeId, OfficeCounters>,
}

/// The shard of a key. Keys are hashed with FNV-1a so the mapping is the same in every process.
pub trait ShardKey {
    /// Bytes that identify the key.
    fn shard_index(&self) -> usize;
}

fn index_of(hash: u64) -> usize {
    // Fold the high bits in: FNV's low bits alone are weak for short keys.
    ((hash ^ (hash >> 29) ^ (hash >> 47)) as usize) & (SHARD_COUNT - 1)
}

impl ShardKey for DayKey {
    fn shard_index(&self) -> usize {
        let date = self.date;
        let [year_low, year_high] = date.year.to_le_bytes();
        let hash = crate::domain::values::hashing::fnv1a_continue(
            crate::domain::values::hashing::fnv1a(self.office_id.as_str().as_bytes()),
            &[year_low, year_high, date.month as u8, date.day as u8],
        );
        index_of(hash)
    }
}

impl ShardKey for BookingId {
    fn shard_index(&self) -> usize {
        index_of(crate::domain::values::hashing::fnv1a(&self.0.to_le_bytes()))
    }
}

impl ShardKey for Nik {
    fn shard_index(&self) -> usize {
        index_of(crate::domain::values::hashing::fnv1a(&self.value().to_le_bytes()))
    }
}

impl ShardKey for RequestDigest {
    fn shard_index(&self) -> usize {
        let first: [u8; 8] = self.0[..8].try_into().expect("16 bytes begin with 8");
        index_of(u64::from_le_bytes(first))
    }
}

/// By its digest, so a request record's shard follows from what an image keeps of it.
impl ShardKey for RequestId {
    fn shard_index(&self) -> usize {
        self.digest().shard_index()
    }
}

impl Shard {
    /// Remembers `record` as the first answer to `request_id`, keeping the age index in step. Returns whether the id
    /// was new to the shard.
    pub fn remember_request(&mut self, request: RequestDigest, record: RequestRecord) -> bool {
        self.requests_by_age.insert((record.recorded_at, request));
        match self.requests.insert(request, record) {
            Some(previous) => {
                self.requests_by_age.remove(&(previous.recorded_at, request));
                false
            }
            None => true,
        }
    }

    /// Forgets the request records older than `recorded_before`; returns how many.
    pub fn forget_requests_before(&mut self, recorded_before: Timestamp) -> u64 {
        let mut forgotten = 0;
        while let Some((recorded_at, _)) = self.requests_by_age.get_min()
            && *recorded_at < recorded_before
        {
            let (_, request) = self.requests_by_age.remove_min().expect("looked at above");
            self.requests.remove(&request);
            forgotten += 1;
        }
        forgotten
    }

    /// Records `caller` as the owner of `booking_id`, sharing the caller's name with the shard's other bookings.
    pub fn set_owner(&mut self, booking_id: BookingId, caller: &str) {
        let name = match self.callers.get(caller) {
            Some(name) => name.clone(),
            None => {
                let name = ArcStr::from(caller);
                self.callers.insert(name.clone());
                name
            }
        };
        self.owners.insert(booking_id, name);
    }

    /// When the oldest remembered request was recorded.
    #[must_use]
    pub fn oldest_request(&self) -> Option<Timestamp> {
        self.requests_by_age.get_min().map(|(recorded_at, _)| *recorded_at)
    }
}

#[cfg(test)]
mod tests {
    use super::{ApplicantRecord, Shard};
    use crate::domain::values::ids::BookingId;
    use serde::Serialize;

    #[test]
    fn the_bookings_of_one_caller_share_its_name() {
        let mut shard = Shard::default();
        for number in 0..100 {
            shard.set_owner(BookingId(number), if number % 2 == 0 { "app/backend" } else { "bank" });
        }
        let first = &shard.owners[&BookingId(0)];
        assert!((2..100).step_by(2).all(|number| arcstr::ArcStr::ptr_eq(first, &shard.owners[&BookingId(number)])));
        assert_eq!(&*shard.owners[&BookingId(1)], "bank");
        assert_eq!(shard.callers.len(), 2, "one name per caller");
    }

    #[test]
    fn an_applicant_record_keeps_every_booking_in_order_and_the_active_ones_in_the_order_they_became_so() {
        assert_eq!(size_of::<ApplicantRecord>(), 32, "two ids inline, no allocation for one booking");
        let mut record = ApplicantRecord::default();
        for number in [5, 3, 8] {
            record.add_active(BookingId(number));
        }
        assert!(!record.ids.spilled() || record.ids.len() > 2);
        record.set_active(BookingId(5), false);
        record.set_active(BookingId(5), true);
        assert_eq!(record.booking_ids(), &[BookingId(5), BookingId(3), BookingId(8)]);
        assert_eq!(record.active(), &[BookingId(3), BookingId(8), BookingId(5)], "revived last");
        record.set_active(BookingId(3), false);
        record.forget(BookingId(3));
        assert_eq!(record.booking_ids(), &[BookingId(5), BookingId(8)]);
        assert_eq!(record.active(), &[BookingId(8), BookingId(5)]);
        let mut one = ApplicantRecord::default();
        one.add_active(BookingId(9));
        assert!(!one.ids.spilled(), "one booking, active, is inline");
        assert_eq!((one.booking_ids(), one.active()), (&[BookingId(9)][..], &[BookingId(9)][..]));
    }

    /// The layout images were always written with: plain vectors.
    #[derive(Serialize)]
    struct ApplicantRecordWithVectors {
        booking_ids: Vec<BookingId>,
        active: Vec<BookingId>,
    }

    #[test]
    fn an_applicant_record_encodes_as_the_vectors_it_replaced() {
        for (all, active) in [(vec![], vec![]), (vec![7], vec![7]), (vec![3, 1 << 44, 9], vec![9])] {
            let ids = |numbers: &Vec<u64>| numbers.iter().map(|number| BookingId(*number)).collect::<Vec<_>>();
            let record = ApplicantRecord::new(&ids(&all), &ids(&active));
            let old = ApplicantRecordWithVectors { booking_ids: ids(&all), active: ids(&active) };
            let bytes = postcard::to_stdvec(&record).expect("encodes");
            assert_eq!(bytes, postcard::to_stdvec(&old).expect("encodes"));
            assert_eq!(postcard::from_bytes::<ApplicantRecord>(&bytes).expect("decodes"), record);
        }
    }
}
