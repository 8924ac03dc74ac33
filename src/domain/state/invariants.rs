//! The invariants of the quota book, checked over the whole state. Tests and debug builds call this after replay and
//! after random command sequences; a violation is a bug, reported with enough detail to find it.

use super::book::QuotaBook;
use super::image::Image;
use crate::domain::bookings::booking::BookingState;
use std::collections::HashMap;

impl QuotaBook {
    /// Checks every invariant; returns the first violation found.
    pub fn check_invariants(&self) -> Result<(), String> {
        check_image(&self.image(0), self.rules().applicant_active_bookings_max)
    }
}

/// Checks the invariants of an image:
/// - no pool has more slot-holding bookings than capacity, and its counts equal the bookings in each state;
/// - every booking is listed by its day, and every applicant's active list is exactly its active bookings, within
///   the limit;
/// - every owner is the owner of a booking that exists.
pub fn check_image(image: &Image, applicant_active_bookings_max: u32) -> Result<(), String> {
    let booking_ids: std::collections::HashSet<_> = image.bookings.iter().map(|booking| booking.booking_id).collect();
    if let Some((booking_id, _)) = image.owners.iter().find(|(booking_id, _)| !booking_ids.contains(booking_id)) {
        return Err(format!("booking {booking_id} has an owner but does not exist"));
    }
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

fn check_applicants(image: &Image, active_max: u32) -> Result<(), String> {
    let states: HashMap<_, _> = image.bookings.iter().map(|booking| (booking.booking_id, booking)).collect();
    for (nik, record) in &image.applicants {
        if record.active.len() > active_max as usize {
            return Err(format!("applicant {} has {} active bookings", nik.masked(), record.active.len()));
        }
        let mut expected: Vec<_> = record
            .booking_ids
            .iter()
            .filter(|booking_id| states.get(booking_id).is_some_and(|booking| booking.state.is_active()))
            .copied()
            .collect();
        let mut actual = record.active.clone();
        expected.sort_unstable();
        actual.sort_unstable();
        if expected != actual {
            return Err(format!("applicant {} active list {actual:?} but bookings say {expected:?}", nik.masked()));
        }
    }
    Ok(())
}
