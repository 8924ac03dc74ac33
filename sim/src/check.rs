//! The checker's memory of what the service answered, and the checks over a state: facts every successful answer
//! established (they must survive any crash), capacity, one active booking per applicant, the book's own invariants.

use antrean::domain::{BookingId, BookingState, Image, PaymentReference, QuotaBook};
use std::collections::{HashMap, HashSet};

/// Something a successful answer told a client, which must stay true.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    /// A hold answered: the booking exists (or was purged later).
    Booked(BookingId),
    /// A payment accepted: the booking keeps it as its payment (purged ones too).
    Paid(BookingId, PaymentReference),
    /// A cancellation answered: the booking stays cancelled (or was purged).
    Cancelled(BookingId),
    /// A payment refused with a refund: the refund is recorded.
    Refunded(BookingId, PaymentReference),
}

/// Checks `fact` against `image`.
pub fn check_fact(fact: &Fact, image: &Image) -> Result<(), String> {
    let booking = |id: &BookingId| image.bookings.iter().find(|booking| booking.booking_id == *id);
    let purged = |id: &BookingId| image.purged.iter().find(|purged| purged.booking_id == *id);
    let holds = match fact {
        Fact::Booked(id) => booking(id).is_some() || purged(id).is_some(),
        Fact::Paid(id, reference) => {
            booking(id).is_some_and(|booking| booking.payment_reference.as_ref() == Some(reference))
                || purged(id).is_some_and(|purged| purged.payment_reference.as_ref() == Some(reference))
        }
        Fact::Cancelled(id) => {
            booking(id).is_some_and(|booking| booking.state == BookingState::Cancelled) || purged(id).is_some()
        }
        Fact::Refunded(id, reference) => {
            image.refunds.iter().any(|refund| refund.booking_id == *id && refund.payment_reference == *reference)
        }
    };
    if holds { Ok(()) } else { Err(format!("an acknowledged answer is no longer true: {fact:?}")) }
}

/// Capacity of every session pool and the active-booking limit per applicant, counted from the image alone (not
/// trusting the ledgers), then the book's own invariant checks.
pub fn check_state(book: &QuotaBook, image: &Image) -> Result<(), String> {
    let limit = book.rules().applicant_active_bookings_max as usize;
    let mut active: HashMap<_, usize> = HashMap::new();
    let mut taken: HashMap<_, u32> = HashMap::new();
    for booking in &image.bookings {
        if booking.state.is_active() {
            *active.entry(booking.applicant.nik).or_default() += 1;
        }
        if booking.state.holds_slot() {
            *taken.entry(booking.slot.clone()).or_default() += 1;
        }
    }
    if let Some((nik, count)) = active.iter().find(|(_, count)| **count > limit) {
        return Err(format!("applicant {nik:?} has {count} active bookings, more than {limit}"));
    }
    for (slot, count) in &taken {
        let office = book.office(&slot.office_id).ok_or_else(|| format!("booking in unknown office {slot:?}"))?;
        let capacity = office
            .plan(slot.date)
            .and_then(|plan| plan.sessions.iter().find(|session| session.session_id == slot.session_id).cloned())
            .map(|session| session.capacity(slot.pool));
        if let Some(capacity) = capacity
            && *count > capacity
        {
            return Err(format!("{count} bookings hold slots in {slot:?} of capacity {capacity}"));
        }
    }
    let ids: HashSet<_> = image.bookings.iter().map(|booking| booking.booking_id).collect();
    if ids.len() != image.bookings.len() {
        return Err("a booking number was handed out twice".into());
    }
    book.check_invariants()
}
