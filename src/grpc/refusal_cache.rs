//! Statuses of the refusals many callers meet at once, made once and then reused.
//!
//! When a month's quota opens, thousands of callers a second are refused for the same few reasons with the same values
//! (this session is full with 0 remaining, this date opens at that instant). Making such a status formats its
//! message, builds a metadata map and encodes a `google.rpc.Status` with an `ErrorInfo` in an `Any`, about a tenth of
//! what the whole refusal costs the server. A status is a pure function of its [`Rejection`], so each worker thread
//! keeps the last [`CACHED_REFUSALS_MAX`] it made and hands out clones (a clone shares the encoded details).
//!
//! Only refusals whose values are shared by many callers are kept: those that name a caller's own booking or ticket
//! would only push the shared ones out. A thread-local list needs no lock, and a short list scanned by equality needs
//! no hash of the rejection.
//!
//! Architecture invariant: a cached status is byte for byte the status [`super::status::rejection_status`] makes.

use crate::domain::Rejection;
use std::cell::RefCell;
use tonic::Status;

/// Distinct refusals each worker thread keeps; beyond it the oldest is replaced.
pub const CACHED_REFUSALS_MAX: usize = 32;

/// The refusals a thread made last, oldest replaced first.
#[derive(Default)]
struct Made {
    entries: Vec<(Rejection, Status)>,
    /// The entry replaced next once the list is full.
    next: usize,
}

thread_local! {
    static MADE: RefCell<Made> = RefCell::new(Made::default());
}

/// The status of `rejection`: a clone of the one made earlier on this thread when there is one and the refusal is one
/// many callers share, else `make(rejection)` (kept for the next caller when shared).
pub fn status_of(rejection: &Rejection, make: impl FnOnce(&Rejection) -> Status) -> Status {
    if !shared_by_callers(rejection) {
        return make(rejection);
    }
    MADE.with_borrow_mut(|made| {
        if let Some((_, status)) = made.entries.iter().find(|(seen, _)| seen == rejection) {
            return status.clone();
        }
        let status = make(rejection);
        let entry = (rejection.clone(), status.clone());
        if made.entries.len() < CACHED_REFUSALS_MAX {
            made.entries.push(entry);
        } else {
            let next = made.next;
            made.entries[next] = entry;
            made.next = (next + 1) % CACHED_REFUSALS_MAX;
        }
        status
    })
}

/// Whether many callers meet this very refusal (same values): the session, date, office or limit, not the caller's
/// own booking, ticket or request.
fn shared_by_callers(rejection: &Rejection) -> bool {
    match rejection {
        Rejection::SessionFull { .. }
        | Rejection::NotYetOpen { .. }
        | Rejection::DateClosed { .. }
        | Rejection::AdmissionRequired
        | Rejection::SessionNotFound { .. }
        | Rejection::OfficeNotFound(_)
        | Rejection::NoWaitingRoom(_)
        | Rejection::LimitReached { .. }
        | Rejection::RequestIdReused => true,
        Rejection::Invalid(_)
        | Rejection::BookingNotFound(_)
        | Rejection::ApplicantHasBooking { .. }
        | Rejection::PaymentExpired { .. }
        | Rejection::AlreadyPaid { .. }
        | Rejection::RescheduleNotAllowed { .. }
        | Rejection::InvalidState { .. }
        | Rejection::TicketNotFound(_)
        | Rejection::PaidAfterCancellation { .. }
        | Rejection::BookingPurged { .. }
        | Rejection::SessionsHaveBookings { .. }
        | Rejection::AmendmentNotAllowed { .. }
        | Rejection::AmendmentPoolFull { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Date, OfficeId, SessionId, Timestamp};
    use std::cell::Cell;

    fn same(left: &Status, right: &Status) {
        super::super::status::assert_same_status(left, right);
    }

    #[test]
    fn a_shared_refusal_is_made_once_and_then_cloned_as_made() {
        let made = Cell::new(0);
        let make = |rejection: &Rejection| {
            made.set(made.get() + 1);
            super::super::status::make_rejection_status(rejection)
        };
        let full = Rejection::SessionFull { remaining: 0 };
        let first = status_of(&full, make);
        let again = status_of(&full, make);
        assert_eq!(made.get(), 1, "the second refusal is the first one's clone");
        same(&first, &again);
        same(&again, &super::super::status::make_rejection_status(&full));
        let other = status_of(&Rejection::SessionFull { remaining: 1 }, make);
        assert_eq!(made.get(), 2, "other values are another refusal");
        assert!(other.message().contains("(1 remaining)"), "{}", other.message());
    }

    #[test]
    fn a_caller_s_own_refusal_is_made_every_time() {
        let made = Cell::new(0);
        let make = |rejection: &Rejection| {
            made.set(made.get() + 1);
            super::super::status::make_rejection_status(rejection)
        };
        let booking = Rejection::BookingNotFound(crate::domain::BookingId(19));
        status_of(&booking, make);
        status_of(&booking, make);
        assert_eq!(made.get(), 2);
    }

    #[test]
    fn the_list_stays_bounded_and_keeps_the_newest() {
        let office = |index: usize| OfficeId::parse(&format!("office-{index}")).expect("office id");
        for index in 0..CACHED_REFUSALS_MAX * 3 {
            status_of(&Rejection::OfficeNotFound(office(index)), super::super::status::make_rejection_status);
        }
        MADE.with_borrow(|made| assert_eq!(made.entries.len(), CACHED_REFUSALS_MAX));
        let made = Cell::new(0);
        let newest = Rejection::OfficeNotFound(office(CACHED_REFUSALS_MAX * 3 - 1));
        status_of(&newest, |rejection| {
            made.set(made.get() + 1);
            super::super::status::make_rejection_status(rejection)
        });
        assert_eq!(made.get(), 0, "the newest is still kept");
        let day = Date::new(2027, 1, 4).expect("date");
        let session = SessionId::parse("0800-1000").expect("session id");
        let not_found = Rejection::SessionNotFound { date: day, session_id: session };
        same(
            &status_of(&not_found, super::super::status::make_rejection_status),
            &super::super::status::make_rejection_status(&not_found),
        );
        let opens = Rejection::NotYetOpen { opens_at: Timestamp(1_800_000_000_000) };
        same(
            &status_of(&opens, super::super::status::make_rejection_status),
            &super::super::status::make_rejection_status(&opens),
        );
    }
}
