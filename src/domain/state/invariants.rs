//! The invariants of the quota book, checked over the whole state. Tests and debug builds call this after replay and
//! after random command sequences; a violation is a bug, reported with enough detail to find it.

use super::book::QuotaBook;
use super::image::Image;
use super::shard::{OrdSet, Shard};
use crate::domain::bookings::booking::BookingState;
use crate::domain::values::ids::BookingId;
use std::collections::{BTreeSet, HashMap};

impl QuotaBook {
    /// Checks every invariant; returns the first violation found.
    pub fn check_invariants(&self) -> Result<(), String> {
        check_image(&self.image(0), self.rules().applicant_active_bookings_max)?;
        (0..crate::limits::SHARD_COUNT).try_for_each(|index| self.read_shard(index, check_time_indexes))
    }
}

/// The ticker's indexes list exactly what it must look at: every hold by when it is next due, every confirmed
/// booking by the end of its session, every remembered request by when it was recorded.
fn check_time_indexes(shard: &Shard) -> Result<(), String> {
    let holds: OrdSet<_> = shard
        .bookings
        .values()
        .filter(|booking| booking.state == BookingState::AwaitingPayment)
        .map(|booking| (booking.hold_due_at(), booking.booking_id))
        .collect();
    if holds != shard.deadlines {
        return Err(format!("deadline index {:?} but holds {holds:?}", shard.deadlines));
    }
    let confirmed: OrdSet<_> = shard
        .bookings
        .values()
        .filter(|booking| booking.state == BookingState::Confirmed)
        .map(|booking| (booking.session_ends_at, booking.booking_id))
        .collect();
    if confirmed != shard.session_ends {
        return Err(format!("session-end index {:?} but confirmed {confirmed:?}", shard.session_ends));
    }
    let requests: OrdSet<_> = shard.requests.iter().map(|(request, record)| (record.recorded_at, *request)).collect();
    if requests != shard.requests_by_age {
        return Err(format!("request age index {:?} but requests {requests:?}", shard.requests_by_age));
    }
    Ok(())
}

/// Checks the invariants of an image:
/// - no pool has more slot-holding bookings than capacity, and its counts equal the bookings in each state;
/// - every booking is listed by its day, and every applicant's active list is exactly its active bookings, within
///   the limit;
/// - only holds have a settlement deadline, after their payment deadline;
/// - no booking is both present and purged, and every booking number is below `BookingId::NUMBER_END`;
/// - every refund belongs to a booking that is present or purged;
/// - every owner is the owner of a booking that is present.
pub fn check_image(image: &Image, applicant_active_bookings_max: u32) -> Result<(), String> {
    check_money_and_numbers(image)?;
    let mut counted: HashMap<(usize, String, u8, BookingState), u32> = HashMap::new();
    let day_index: HashMap<_, usize> =
        image.days.iter().enumerate().map(|(index, (key, _))| (key.clone(), index)).collect();
    for booking in &image.bookings {
        let key = super::shard::day_key(&booking.slot);
        let Some(&index) = day_index.get(&key) else {
            return Err(format!("booking {} has no day ledger for {key:?}", booking.booking_id));
        };
        if !image.days[index].1.booking_ids.contains(&booking.booking_id) {
            return Err(format!("booking {} is not listed by its day {key:?}", booking.booking_id));
        }
        if booking.state.holds_slot() {
            let slot = (index, booking.slot.session_id.to_string(), booking.slot.pool as u8, booking.state);
            *counted.entry(slot).or_default() += 1;
        }
    }
    for (index, (key, day)) in image.days.iter().enumerate() {
        for session in &day.sessions {
            for pool in &session.pools {
                if pool.taken() > pool.capacity {
                    return Err(format!("overbooked: {key:?} {} {pool:?}", session.session_id));
                }
                let pool_number = pool.pool.map_or(0, |pool| pool as u8);
                for (state, count) in [
                    (BookingState::AwaitingPayment, pool.awaiting),
                    (BookingState::Confirmed, pool.confirmed),
                    (BookingState::CheckedIn, pool.checked_in),
                ] {
                    let actual = counted.get(&(index, session.session_id.to_string(), pool_number, state)).copied();
                    if actual.unwrap_or(0) != count {
                        return Err(format!(
                            "{key:?} {} counts {count} {state:?} but has {actual:?}",
                            session.session_id
                        ));
                    }
                }
            }
        }
    }
    check_applicants(image, applicant_active_bookings_max)
}

fn check_money_and_numbers(image: &Image) -> Result<(), String> {
    let present: BTreeSet<_> = image.bookings.iter().map(|booking| booking.booking_id).collect();
    let purged: BTreeSet<_> = image.purged.iter().map(|purged| purged.booking_id).collect();
    if let Some(both) = present.intersection(&purged).next() {
        return Err(format!("booking {both} is both present and purged"));
    }
    if let Some(highest) = present.iter().chain(&purged).max()
        && highest.0 >= BookingId::NUMBER_END
    {
        return Err(format!("booking number {} is not below {}", highest.0, BookingId::NUMBER_END));
    }
    if let Some((booking_id, _)) = image.owners.iter().find(|(booking_id, _)| !present.contains(booking_id)) {
        return Err(format!("booking {booking_id} has an owner but is not present"));
    }
    for booking in &image.bookings {
        let settlement_ok = booking.settlement_deadline.is_none_or(|settlement| {
            booking.state == BookingState::AwaitingPayment && settlement >= booking.payment_deadline
        });
        if !settlement_ok {
            return Err(format!("booking {} has a settlement deadline in {:?}", booking.booking_id, booking.state));
        }
    }
    match image
        .refunds
        .iter()
        .find(|refund| !present.contains(&refund.booking_id) && !purged.contains(&refund.booking_id))
    {
        Some(orphan) => Err(format!("refund of unknown booking {}", orphan.booking_id)),
        None => Ok(()),
    }
}

fn check_applicants(image: &Image, active_max: u32) -> Result<(), String> {
    let states: HashMap<_, _> = image.bookings.iter().map(|booking| (booking.booking_id, booking)).collect();
    for (nik, record) in &image.applicants {
        if record.active().len() > active_max as usize {
            return Err(format!("applicant {} has {} active bookings", nik.masked(), record.active().len()));
        }
        let mut expected: Vec<_> = record
            .booking_ids()
            .iter()
            .filter(|booking_id| states.get(booking_id).is_some_and(|booking| booking.state.is_active()))
            .copied()
            .collect();
        let mut actual = record.active().to_vec();
        expected.sort_unstable();
        actual.sort_unstable();
        if expected != actual {
            return Err(format!("applicant {} active list {actual:?} but bookings say {expected:?}", nik.masked()));
        }
    }
    Ok(())
}
