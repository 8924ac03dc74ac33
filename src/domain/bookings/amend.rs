//! Deciding an amendment: correcting an active booking's applicant name, disability flag or service without giving
//! up its slot or its payment. Reads state, never writes it.
//!
//! The NIK never changes here (it is the applicant's identity, and the edge refuses it before a command exists). A
//! change that costs the booking its eligibility for the priority pool moves it to the regular pool of the same
//! session in the same event, and only when a slot there is free and no waiting-room line waits for it; otherwise
//! nothing changes.

use super::booking::{Booking, BookingState, SlotRef};
use super::decide::{priority_eligible, remaining};
use super::rules::BookRules;
use crate::domain::catalogue::office::{Catalog, Pool};
use crate::domain::messages::command::Amendment;
use crate::domain::messages::event::{Event, Stamp};
use crate::domain::messages::rejection::Rejection;
use crate::domain::state::access::ShardAccess;
use crate::domain::values::nik::Nik;
use crate::domain::values::violation::FieldViolation;
use crate::domain::waiting_room::admission::line_waits_for;
use crate::domain::waiting_room::room::WaitingRooms;

/// Why a different NIK is refused, and what to do instead.
pub const NIK_NOT_AMENDABLE: &str = "cannot be amended: the NIK is the applicant's identity; to book for another \
     applicant, cancel this booking and hold a new one";

/// Decides an amendment of `booking` at `stamp.at`: the NIK sent (if any) is the booking's own, the booking active (awaiting payment before its deadline, or confirmed), its
/// session not started, amendments left, something actually changing, the new service offered by the office, and the
/// pool it must move to (if any) with a free slot that no waiting room waits for.
// The request (amendment, NIK sent), the booking and what the decision reads under the held locks, as for a payment.
#[allow(clippy::too_many_arguments)]
pub fn amend(
    access: &impl ShardAccess,
    catalog: &Catalog,
    rules: &BookRules,
    booking: &Booking,
    amendment: &Amendment,
    nik: Option<Nik>,
    stamp: Stamp,
    rooms: Option<&WaitingRooms>,
) -> Result<Event, Rejection> {
    if nik.is_some_and(|nik| nik != booking.applicant.nik) {
        return Err(Rejection::invalid("nik", NIK_NOT_AMENDABLE));
    }
    check_amendable(rules, booking, &stamp)?;
    let changed = changes(booking, amendment)?;
    let office = catalog
        .office(&booking.slot.office_id)
        .ok_or_else(|| Rejection::OfficeNotFound(booking.slot.office_id.clone()))?;
    if let Some(service) = changed.service
        && !office.offers(service)
    {
        return Err(Rejection::invalid("service", "the office does not offer this service"));
    }
    let to_pool = pool_after(booking, &changed);
    if let Some(pool) = to_pool {
        let to = SlotRef { pool, ..booking.slot.clone() };
        let session = office
            .plan(to.date)
            .and_then(|plan| plan.sessions.iter().find(|session| session.session_id == to.session_id).cloned());
        let free = session.is_some_and(|session| session.capacity(pool) > 0 && remaining(access, &to, &session) > 0);
        // A regular slot behind a waiting room belongs to the line while anyone in it is admitted or waiting: taking
        // it without an admission would skip the line.
        if !free || line_waits_for(catalog, rooms, &to) {
            return Err(Rejection::AmendmentPoolFull { pool });
        }
    }
    Ok(Event::Amended { stamp, booking_id: booking.booking_id, amendment: changed, to_pool })
}

/// The booking can be amended now: its appointment is still to come and it has amendments left.
fn check_amendable(rules: &BookRules, booking: &Booking, stamp: &Stamp) -> Result<(), Rejection> {
    if !booking.state.is_active() {
        return Err(Rejection::InvalidState { state: booking.state, action: "amend".into() });
    }
    // An unpaid hold past its deadline only waits for a payment already made, like for a reschedule.
    if booking.state == BookingState::AwaitingPayment && stamp.at >= booking.payment_deadline {
        let action = "amend a hold past its payment deadline".into();
        return Err(Rejection::InvalidState { state: booking.state, action });
    }
    if stamp.at >= booking.session_starts_at {
        let action = format!("amend once the session has started ({})", booking.session_starts_at);
        return Err(Rejection::InvalidState { state: booking.state, action });
    }
    if u32::from(booking.amendments_used) >= rules.amendments_max {
        let why = format!("already amended {} time(s), the most allowed", booking.amendments_used);
        return Err(Rejection::AmendmentNotAllowed { why });
    }
    Ok(())
}

/// The fields of `amendment` that differ from the booking. An amendment that would change nothing is refused, naming
/// the fields sent: a caller sending the booking's own values has probably amended the wrong booking.
fn changes(booking: &Booking, amendment: &Amendment) -> Result<Amendment, Rejection> {
    let applicant = &booking.applicant;
    let changed = Amendment {
        full_name: amendment.full_name.clone().filter(|name| name.as_str() != applicant.full_name.as_str()),
        has_disability: amendment.has_disability.filter(|flag| *flag != applicant.has_disability),
        service: amendment.service.filter(|service| *service != booking.service),
    };
    if changed.is_empty() {
        let mut violations: Vec<FieldViolation> = amendment
            .field_names()
            .into_iter()
            .map(|field| FieldViolation::new(field, "is already the booking's value: nothing to amend"))
            .collect();
        if violations.is_empty() {
            violations.push(FieldViolation::new("nik", "is the booking's own NIK, and nothing else is to be amended"));
        }
        return Err(Rejection::Invalid(violations));
    }
    Ok(changed)
}

/// The pool the booking must move to after `changed`: the regular pool when it is in the priority pool and the
/// amended applicant is no longer eligible for it; `None` when it stays. Gaining eligibility never moves a booking
/// (its slot is kept), and the express pool is a paid extra that does not depend on the applicant.
fn pool_after(booking: &Booking, changed: &Amendment) -> Option<Pool> {
    if booking.slot.pool != Pool::Priority {
        return None;
    }
    let mut applicant = booking.applicant.clone();
    if let Some(flag) = changed.has_disability {
        applicant.has_disability = flag;
    }
    (!priority_eligible(&applicant, booking.slot.date)).then_some(Pool::Regular)
}
