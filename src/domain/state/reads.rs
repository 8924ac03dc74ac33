//! Queries: availability, booking lists, statistics and refunds. They lock one shard at a time and never log.

use super::book::QuotaBook;
use super::shard::{DayKey, OfficeCounters, ShardKey, session_pool};
use crate::domain::bookings::booking::Booking;
use crate::domain::bookings::refund::Refund;
use crate::domain::catalogue::office::{Pool, ServiceType};
use crate::domain::messages::rejection::Rejection;
use crate::domain::values::ids::{BookingId, OfficeId, SessionId};
use crate::domain::values::nik::Nik;
use crate::domain::values::time::{Date, TimeOfDay, Timestamp};
use crate::domain::waiting_room::room::WaitingRoomKey;
use crate::limits::{AVAILABILITY_DAYS_MAX, SHARD_COUNT};

/// Whether a pool can be booked now. Numbers mirror `antrean.v1.SessionState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Before the release instant.
    NotYetOpen = 1,
    /// Bookable.
    Open = 2,
    /// No slot left.
    Full = 3,
    /// Closed by the office, or the session has started.
    Closed = 4,
}

/// One pool of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolAvailability {
    /// The pool.
    pub pool: Pool,
    /// Slots.
    pub capacity: u32,
    /// Slots free.
    pub remaining: u32,
    /// Bookable now?
    pub state: SessionState,
}

/// One session of one date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionAvailability {
    /// The date.
    pub date: Date,
    /// The session.
    pub session_id: SessionId,
    /// Local start.
    pub starts_at: TimeOfDay,
    /// Local end.
    pub ends_at: TimeOfDay,
    /// Release instant.
    pub release_at: Timestamp,
    /// Pools with capacity.
    pub pools: Vec<PoolAvailability>,
    /// Closed by the office.
    pub closed: bool,
    /// For a date behind a waiting room: the commitment to that line's draw secret, once it has one.
    pub draw_commitment: Option<[u8; 32]>,
}

/// An office's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OfficeStats {
    /// Slots on dates with a ledger.
    pub capacity: u64,
    /// Free slots on those dates.
    pub remaining: u64,
    /// Bookings awaiting payment.
    pub active_holds: u64,
    /// Bookings confirmed.
    pub confirmed: u64,
    /// Bookings checked in.
    pub checked_in: u64,
    /// Running totals.
    pub counters: OfficeCounters,
}

impl QuotaBook {
    /// Availability of `office_id`'s sessions from `first` to `last` at `now`.
    pub fn availability(
        &self,
        office_id: &OfficeId,
        service: ServiceType,
        first: Date,
        last: Date,
        now: Timestamp,
    ) -> Result<Vec<SessionAvailability>, Rejection> {
        let catalog = self.catalog();
        let office = catalog.office(office_id).ok_or_else(|| Rejection::OfficeNotFound(office_id.clone()))?;
        if !office.offers(service) {
            return Err(Rejection::invalid("service", "the office does not offer this service"));
        }
        let days = last.days_since(first);
        if !(0..AVAILABILITY_DAYS_MAX).contains(&days) {
            let description =
                format!("must be on or after first_date and at most {} days after it", AVAILABILITY_DAYS_MAX - 1);
            return Err(Rejection::invalid("last_date", description));
        }
        let mut sessions = Vec::new();
        let mut commitments: Vec<(Timestamp, Option<[u8; 32]>)> = Vec::new();
        for offset in 0..=days {
            let date = first.plus_days(offset);
            let Some(plan) = office.plan(date) else { continue };
            // Dates of one release share a line: look its commitment up once.
            let known = commitments.iter().find(|(release_at, _)| *release_at == plan.release_at);
            let draw_commitment = match known {
                _ if !plan.waiting_room => None,
                Some((_, commitment)) => *commitment,
                None => {
                    let key = WaitingRoomKey { office_id: office_id.clone(), release_at: plan.release_at };
                    let commitment = self.draw_commitment(&key);
                    commitments.push((plan.release_at, commitment));
                    commitment
                }
            };
            let key = DayKey { office_id: office_id.clone(), date };
            // Only the session counters are copied out of the lock: the day's booking-id set can be large.
            let counters =
                self.read_shard(key.shard_index(), |shard| shard.days.get(&key).map(|day| day.sessions.clone()));
            for template in plan.sessions {
                let started = now >= office.session_start(date, template);
                let pools = Pool::ALL
                    .iter()
                    .filter(|pool| template.capacity(**pool) > 0)
                    .map(|pool| {
                        let counted = counters
                            .as_deref()
                            .and_then(|counters| session_pool(counters, &template.session_id, *pool));
                        let capacity = template.capacity(*pool);
                        let remaining = counted.map_or(capacity, |ledger| ledger.remaining());
                        let state = if plan.closed.is_some() || started {
                            SessionState::Closed
                        } else if now < plan.release_at {
                            SessionState::NotYetOpen
                        } else if remaining == 0 {
                            SessionState::Full
                        } else {
                            SessionState::Open
                        };
                        PoolAvailability { pool: *pool, capacity, remaining, state }
                    })
                    .collect();
                sessions.push(SessionAvailability {
                    date,
                    session_id: template.session_id.clone(),
                    starts_at: template.starts_at,
                    ends_at: template.ends_at,
                    release_at: plan.release_at,
                    pools,
                    closed: plan.closed.is_some(),
                    draw_commitment,
                });
            }
        }
        Ok(sessions)
    }

    /// Bookings of an office's date with ids after `after`, at most `limit`, and whether more follow.
    pub fn list_bookings(
        &self,
        office_id: &OfficeId,
        date: Date,
        after: Option<BookingId>,
        limit: usize,
    ) -> Result<(Vec<Booking>, bool), Rejection> {
        if self.catalog().office(office_id).is_none() {
            return Err(Rejection::OfficeNotFound(office_id.clone()));
        }
        let key = DayKey { office_id: office_id.clone(), date };
        let ids: Vec<BookingId> = self.read_shard(key.shard_index(), |shard| {
            let Some(day) = shard.days.get(&key) else { return Vec::new() };
            let start = after.map_or(BookingId(0), |after| BookingId(after.0 + 1));
            day.booking_ids.range(start..).take(limit + 1).copied().collect()
        });
        let more = ids.len() > limit;
        let bookings = ids.into_iter().take(limit).filter_map(|booking_id| self.booking(booking_id)).collect();
        Ok((bookings, more))
    }

    /// The office of a booking, present or purged (for metric labels of payments that arrive after a purge).
    #[must_use]
    pub fn office_of(&self, booking_id: BookingId) -> Option<OfficeId> {
        self.read_shard(booking_id.shard_index(), |shard| match shard.bookings.get(&booking_id) {
            Some(booking) => Some(booking.slot.office_id.clone()),
            None => shard.purged.get(&booking_id).map(|purged| purged.office_id.clone()),
        })
    }

    /// Every booking of the applicant, newest first.
    #[must_use]
    pub fn find_bookings(&self, nik: Nik) -> Vec<Booking> {
        let ids = self.read_shard(nik.shard_index(), |shard| {
            shard.applicants.get(&nik).map(|record| record.booking_ids().to_vec()).unwrap_or_default()
        });
        ids.into_iter().rev().filter_map(|booking_id| self.booking(booking_id)).collect()
    }

    /// Figures of one office.
    pub fn office_stats(&self, office_id: &OfficeId) -> Result<OfficeStats, Rejection> {
        if self.catalog().office(office_id).is_none() {
            return Err(Rejection::OfficeNotFound(office_id.clone()));
        }
        let mut stats = OfficeStats::default();
        for index in 0..SHARD_COUNT {
            self.read_shard(index, |shard| {
                for (_, day) in shard.days.iter().filter(|(key, _)| &key.office_id == office_id) {
                    for pool in day.sessions.iter().flat_map(|session| &session.pools) {
                        stats.capacity += u64::from(pool.capacity);
                        stats.remaining += u64::from(pool.remaining());
                        stats.active_holds += u64::from(pool.awaiting);
                        stats.confirmed += u64::from(pool.confirmed);
                        stats.checked_in += u64::from(pool.checked_in);
                    }
                }
                if let Some(counters) = shard.counters.get(office_id) {
                    add_counters(&mut stats.counters, counters);
                }
            });
        }
        Ok(stats)
    }

    /// Refunds, optionally of one office, in the order recorded: those after the first `skip`, at most `limit`, and
    /// whether more follow.
    #[must_use]
    pub fn list_refunds(&self, office_id: Option<&OfficeId>, skip: usize, limit: usize) -> (Vec<Refund>, bool) {
        let mut refunds: Vec<Refund> = Vec::new();
        for index in 0..SHARD_COUNT {
            self.read_shard(index, |shard| {
                let wanted = shard
                    .refunds
                    .values()
                    .flatten()
                    .filter(|refund| office_id.is_none_or(|office| &refund.office_id == office));
                refunds.extend(wanted.cloned());
            });
        }
        refunds.sort_by(refund_order);
        let more = refunds.len() > skip + limit;
        (refunds.into_iter().skip(skip).take(limit).collect(), more)
    }
}

/// The order refunds are listed in: as recorded, ties broken by booking and payment so the order is total.
#[must_use]
pub fn refund_order(left: &Refund, right: &Refund) -> std::cmp::Ordering {
    (left.recorded_at, left.booking_id, left.payment_reference.as_str()).cmp(&(
        right.recorded_at,
        right.booking_id,
        right.payment_reference.as_str(),
    ))
}

/// Adds `more` into `total`.
pub fn add_counters(total: &mut OfficeCounters, more: &OfficeCounters) {
    total.holds_total += more.holds_total;
    total.cancellations_total += more.cancellations_total;
    total.expiries_total += more.expiries_total;
    total.revivals_total += more.revivals_total;
    total.refunds_total += more.refunds_total;
    total.reschedules_total += more.reschedules_total;
    total.check_ins_total += more.check_ins_total;
    total.no_shows_total += more.no_shows_total;
}
