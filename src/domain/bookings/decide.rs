//! Deciding: whether a command may happen, and if so the event that records it. Reads state, never writes it.
//!
//! Each function here is pure given the locked shards, the catalogue and `now`: the same inputs always give the same
//! event or the same refusal.

use super::booking::{Applicant, Booking, BookingState, PurgedBooking, SlotRef};
use super::refund::{Refund, RefundReason};
use super::rules::BookRules;
use crate::domain::catalogue::office::{Catalog, Office, Pool, SessionTemplate};
use crate::domain::messages::command::HoldCommand;
use crate::domain::messages::event::{Event, Stamp};
use crate::domain::messages::rejection::Rejection;
use crate::domain::state::access::ShardAccess;
use crate::domain::state::shard::{DayKey, ShardKey};
use crate::domain::values::ids::{BookingId, GroupId, PaymentReference, SessionId};
use crate::domain::values::time::{Date, Timestamp};
use crate::domain::values::violation::FieldViolation;
use crate::domain::waiting_room::admission::{check_admission, line_waits_for, waiting_room_for};
use crate::domain::waiting_room::room::WaitingRooms;
use crate::limits::PAID_AT_AHEAD_MS_MAX;

/// A bookable session: what [`check_bookable`] found.
pub struct Bookable<'office> {
    /// The session's template.
    pub session: &'office SessionTemplate,
    /// When it starts.
    pub starts_at: Timestamp,
}

/// Checks that `slot` can take new bookings at `now`: the office works that day, the session and pool exist, the date
/// is inside the booking window, released, not closed, and the session has not started.
pub fn check_bookable<'office>(
    office: &'office Office,
    slot_date: Date,
    session_id: &SessionId,
    pool: Pool,
    now: Timestamp,
) -> Result<Bookable<'office>, Rejection> {
    let (session, opening) = check_slot(office, slot_date, session_id, pool, now)?;
    Ok(Bookable { session, starts_at: opening? })
}

/// The checks of [`check_bookable`], split by what they depend on: the first refusal is about the slot named (a date in
/// the past or beyond the booking window, a session or pool that does not exist), the second (inside) about the moment
/// (closed, not yet released, started), in the order `check_bookable` applies them. `CheckApplicant` reports the
/// second kind as a finding instead of a refusal.
fn check_slot<'office>(
    office: &'office Office,
    slot_date: Date,
    session_id: &SessionId,
    pool: Pool,
    now: Timestamp,
) -> Result<(&'office SessionTemplate, Result<Timestamp, Rejection>), Rejection> {
    let today = office.today(now);
    if slot_date < today {
        return Err(Rejection::invalid("date", format!("{slot_date} is in the past at this office")));
    }
    let horizon = office.settings.booking_horizon_days;
    if slot_date.days_since(today) > horizon {
        return Err(Rejection::invalid("date", format!("{slot_date} is beyond the booking window of {horizon} days")));
    }
    let not_found = || Rejection::SessionNotFound { date: slot_date, session_id: session_id.clone() };
    let plan = office.plan(slot_date).ok_or_else(not_found)?;
    let session = plan.sessions.iter().find(|session| &session.session_id == session_id).ok_or_else(not_found)?;
    if session.capacity(pool) == 0 {
        return Err(Rejection::invalid("pool", format!("session {session_id} has no {} pool", pool.name())));
    }
    let opening = (|| {
        if let Some(reason) = plan.closed {
            return Err(Rejection::DateClosed { reason: reason.to_owned() });
        }
        if now < plan.release_at {
            return Err(Rejection::NotYetOpen { opens_at: plan.release_at });
        }
        let starts_at = office.session_start(slot_date, session);
        if now >= starts_at {
            return Err(Rejection::invalid("session_id", format!("session {session_id} on {slot_date} has started")));
        }
        Ok(starts_at)
    })();
    Ok((session, opening))
}

/// What a hold request is, checked against the catalogue: the part of deciding a hold that needs no booking, no
/// applicant record and no waiting room. `Hold`/`HoldGroup` and `CheckApplicant` both go through it, so the same
/// data gets the same refusal, with the same field violations.
pub struct CheckedHold<'office> {
    /// The office.
    pub office: &'office Office,
    /// The session's template.
    pub session: &'office SessionTemplate,
    /// When the session starts, or why the slot cannot be booked at this moment (closed, not yet released, started).
    pub opening: Result<Timestamp, Rejection>,
}

/// Checks a hold request as far as the request and the catalogue decide it: each applicant named once, the office
/// exists and offers the service, the slot exists and is inside the booking window; then, for the priority pool, each
/// applicant's eligibility. A slot that is not bookable at this moment stops `Hold` before the eligibility check
/// (`stop_when_not_bookable`, as [`hold`] calls it); `CheckApplicant` goes on to check eligibility anyway and keeps the
/// moment's refusal in `opening`: what Hold would say once the slot opens.
pub fn check_hold_request<'catalog>(
    catalog: &'catalog Catalog,
    hold: &HoldCommand,
    now: Timestamp,
    stop_when_not_bookable: bool,
) -> Result<CheckedHold<'catalog>, Rejection> {
    check_distinct_applicants(hold)?;
    let slot = &hold.slot;
    let office = catalog.office(&slot.office_id).ok_or_else(|| Rejection::OfficeNotFound(slot.office_id.clone()))?;
    if !office.offers(hold.service) {
        return Err(Rejection::invalid("service", "the office does not offer this service"));
    }
    let (session, opening) = check_slot(office, slot.date, &slot.session_id, slot.pool, now)?;
    match &opening {
        Err(rejection) if stop_when_not_bookable => return Err(rejection.clone()),
        // A started session is a bad `session_id`, whatever the moment: reported like Hold reports it.
        Err(invalid @ Rejection::Invalid(_)) => return Err(invalid.clone()),
        _ => {}
    }
    if slot.pool == Pool::Priority {
        check_priority_eligible(hold, slot.date)?;
    }
    Ok(CheckedHold { office, session, opening })
}

/// Slots left in `slot`'s pool: from the day's ledger once it exists, else the plan's full capacity.
pub fn remaining(access: &impl ShardAccess, slot: &SlotRef, session: &SessionTemplate) -> u32 {
    let key = DayKey { office_id: slot.office_id.clone(), date: slot.date };
    match access.shard(key.shard_index()).days.get(&key) {
        Some(day) => day.pool(&slot.session_id, slot.pool).map_or(0, |ledger| ledger.remaining()),
        None => session.capacity(slot.pool),
    }
}

/// Decides a hold of one or more applicants.
pub fn hold(
    access: &impl ShardAccess,
    catalog: &Catalog,
    rules: &BookRules,
    hold: &HoldCommand,
    stamp: Stamp,
    first_booking_id: BookingId,
    rooms: Option<&WaitingRooms>,
) -> Result<Event, Rejection> {
    let checked = check_hold_request(catalog, hold, stamp.at, true)?;
    let (office, slot) = (checked.office, &hold.slot);
    let bookable = Bookable { session: checked.session, starts_at: checked.opening? };
    for applicant in &hold.applicants {
        let record = access.shard(applicant.nik.shard_index()).applicants.get(&applicant.nik);
        if let Some(record) =
            record.filter(|record| record.active().len() >= rules.applicant_active_bookings_max as usize)
        {
            return Err(Rejection::ApplicantHasBooking { booking_id: record.active()[0] });
        }
    }
    let wanted = hold.applicants.len() as u32;
    let left = remaining(access, slot, bookable.session);
    if left < wanted {
        return Err(Rejection::SessionFull { remaining: left });
    }
    let admission = match waiting_room_for(catalog, slot) {
        Some(key) => Some((key.clone(), check_admission(rooms, &key, hold, stamp.at)?)),
        None => None,
    };
    let payment_deadline = stamp.at.plus_ms(office.settings.payment_window_ms).min(bookable.starts_at);
    let group_id = hold.group.then_some(GroupId(first_booking_id.0));
    Ok(Event::Held {
        stamp,
        hold: hold.clone(),
        first_booking_id,
        group_id,
        payment_deadline,
        session_starts_at: bookable.starts_at,
        admission,
    })
}

/// One person once per group: the per-applicant limit below is checked against existing bookings only, so a NIK named
/// twice would otherwise get two active bookings from one hold.
fn check_distinct_applicants(hold: &HoldCommand) -> Result<(), Rejection> {
    if hold.applicants.is_empty() || hold.applicants.len() > crate::limits::GROUP_APPLICANTS_MAX {
        let description = format!("must list 1 to {} applicants", crate::limits::GROUP_APPLICANTS_MAX);
        return Err(Rejection::invalid("applicants", description));
    }
    let violations: Vec<FieldViolation> = hold
        .applicants
        .iter()
        .enumerate()
        .filter(|(index, applicant)| hold.applicants[..*index].iter().any(|earlier| earlier.nik == applicant.nik))
        .map(|(index, _)| {
            FieldViolation::new(format!("applicants[{index}].nik"), "names an applicant already in the group")
        })
        .collect();
    if violations.is_empty() { Ok(()) } else { Err(Rejection::Invalid(violations)) }
}

/// Priority slots are for applicants over 60 or under 5 on the appointment date, or with a disability.
fn check_priority_eligible(hold: &HoldCommand, on: Date) -> Result<(), Rejection> {
    let violations: Vec<FieldViolation> = hold
        .applicants
        .iter()
        .enumerate()
        .filter(|(_, applicant)| !priority_eligible(applicant, on))
        .map(|(index, _)| {
            let field = if hold.group { format!("applicants[{index}]") } else { "applicant".to_owned() };
            FieldViolation::new(field, "not eligible for the priority pool (over 60, under 5, or with a disability)")
        })
        .collect();
    if violations.is_empty() { Ok(()) } else { Err(Rejection::Invalid(violations)) }
}

/// Whether `applicant` may take a priority slot on `on`: 60 or older, under 5, or with a disability.
#[must_use]
pub fn priority_eligible(applicant: &Applicant, on: Date) -> bool {
    applicant.has_disability || !(5..60).contains(&age_on(applicant.birth_date, on))
}

/// Whole years from `birth` to `on`.
#[must_use]
pub fn age_on(birth: Date, on: Date) -> i32 {
    let had_birthday = (on.month, on.day) >= (birth.month, birth.day);
    i32::from(on.year) - i32::from(birth.year) - i32::from(!had_birthday)
}

/// Decides a payment: confirm (on time, or late but notified within the settlement grace), revive a lapsed booking
/// whose slot is still free, recognise the booking's own accepted payment notified again, or refuse and record a
/// refund.
///
/// `paid_at` is when the payment network says the payment was made; without it the payment counts as made now. It is
/// trusted only from the payment role (checked at the edge) and refused when it lies in the future.
/// A lapsed booking behind a waiting room is revived only when nobody in that waiting room waits for the slot
/// (`rooms`).
// The payment (reference, when paid), the booking and everything the decision reads under the held locks: bundling them
// into a struct would only move the list.
#[allow(clippy::too_many_arguments)]
pub fn confirm_payment(
    access: &impl ShardAccess,
    catalog: &Catalog,
    rules: &BookRules,
    booking: &Booking,
    payment_reference: &PaymentReference,
    paid_at: Option<Timestamp>,
    stamp: Stamp,
    rooms: Option<&WaitingRooms>,
) -> Result<Event, Rejection> {
    check_paid_at(paid_at, stamp.at)?;
    let booking_id = booking.booking_id;
    // The payment the booking accepted, notified again (the network re-delivers): whatever the booking's state now,
    // that money was kept for it, so nothing is refunded. Logged only so the answer is remembered.
    if booking.payment_reference.as_ref() == Some(payment_reference) {
        return Ok(Event::PaymentRepeated { stamp, booking_id, payment_reference: payment_reference.clone() });
    }
    // A payment already recorded for refund stays refunded: the same report arriving again (under a new request id)
    // gets the same refusal and records nothing, so the money is never returned twice nor also kept for a revival.
    if let Some(refund) = refund_of(access, booking_id, payment_reference) {
        return Err(Rejection::refund(refund.reason, booking_id));
    }
    let refuse = |reason| Event::PaymentRefused {
        stamp: stamp.clone(),
        booking_id,
        payment_reference: payment_reference.clone(),
        reason,
    };
    let confirm = |revived| Event::PaymentConfirmed {
        stamp: stamp.clone(),
        booking_id,
        payment_reference: payment_reference.clone(),
        revived,
    };
    Ok(match booking.state {
        BookingState::Confirmed | BookingState::CheckedIn | BookingState::NoShow => {
            refuse(RefundReason::DuplicatePayment)
        }
        BookingState::Cancelled => refuse(RefundReason::Cancelled),
        // Once the session has started the slot is of no use: refund, whether or not the ticker expired the hold yet.
        BookingState::AwaitingPayment if stamp.at >= booking.session_starts_at => refuse(RefundReason::PaymentExpired),
        BookingState::AwaitingPayment if stamp.at < booking.payment_deadline => confirm(false),
        // Past the deadline the hold still has its slot (the settlement grace, or the ticker has not run yet). Paid
        // before the deadline and notified within the grace: on time. Otherwise a late payment, which revives the
        // booking because its slot is still free.
        BookingState::AwaitingPayment => {
            let on_time = paid_at.is_some_and(|paid_at| paid_at <= booking.payment_deadline);
            confirm(!(on_time && stamp.at < settlement_deadline(rules, booking)))
        }
        BookingState::Expired
            if can_revive(access, catalog, rules, booking, stamp.at)
                && !line_waits_for(catalog, rooms, &booking.slot) =>
        {
            confirm(true)
        }
        BookingState::Expired => refuse(RefundReason::PaymentExpired),
    })
}

/// Decides a payment for a booking that has been purged: the payment it had accepted, notified again, changes nothing;
/// any other payment is recorded for refund (once).
pub fn purged_payment(
    access: &impl ShardAccess,
    purged: &PurgedBooking,
    payment_reference: &PaymentReference,
    paid_at: Option<Timestamp>,
    stamp: Stamp,
) -> Result<Event, Rejection> {
    check_paid_at(paid_at, stamp.at)?;
    let booking_id = purged.booking_id;
    if purged.payment_reference.as_ref() == Some(payment_reference) {
        return Ok(Event::PaymentRepeated { stamp, booking_id, payment_reference: payment_reference.clone() });
    }
    if let Some(refund) = refund_of(access, booking_id, payment_reference) {
        return Err(Rejection::refund(refund.reason, booking_id));
    }
    let payment_reference = payment_reference.clone();
    Ok(Event::PaymentRefused { stamp, booking_id, payment_reference, reason: RefundReason::BookingPurged })
}

/// The refund already recorded for this payment of this booking: a lookup by booking, not a scan.
fn refund_of<'access>(
    access: &'access impl ShardAccess,
    booking_id: BookingId,
    payment_reference: &PaymentReference,
) -> Option<&'access Refund> {
    let refunds = access.shard(booking_id.shard_index()).refunds.get(&booking_id)?;
    refunds.iter().find(|refund| &refund.payment_reference == payment_reference)
}

/// A payment cannot have been made in the future (beyond the clock skew allowed).
fn check_paid_at(paid_at: Option<Timestamp>, now: Timestamp) -> Result<(), Rejection> {
    match paid_at {
        Some(paid_at) if paid_at > now.plus_ms(PAID_AT_AHEAD_MS_MAX) => {
            Err(Rejection::invalid("paid_at", format!("is in the future (it is now {now})")))
        }
        _ => Ok(()),
    }
}

/// Until when a hold past its payment deadline keeps its slot for a payment made on time but notified late: the
/// deadline plus the settlement grace, never after the session starts (a slot is of no use then).
#[must_use]
pub fn settlement_deadline(rules: &BookRules, booking: &Booking) -> Timestamp {
    let grace_end = booking.payment_deadline.plus_ms(rules.payment_settlement_grace_ms);
    booking.settlement_deadline.unwrap_or(grace_end.min(booking.session_starts_at).max(booking.payment_deadline))
}

/// What the ticker does with a hold whose deadline (or settlement grace) has passed at `now`: start the grace, or
/// expire it at the end of the grace (at once when there is none, or when the service was down through all of it).
#[must_use]
pub fn lapse(rules: &BookRules, booking: &Booking, now: Timestamp) -> Event {
    let booking_id = booking.booking_id;
    let settles_until = settlement_deadline(rules, booking);
    if booking.settlement_deadline.is_none() && now < settles_until {
        Event::PaymentOverdue { booking_id, at: booking.payment_deadline, settles_until }
    } else {
        Event::Expired { booking_id, at: settles_until }
    }
}

/// A lapsed booking comes back only if its own slot is still free, the date still bookable and the applicant has room.
fn can_revive(
    access: &impl ShardAccess,
    catalog: &Catalog,
    rules: &BookRules,
    booking: &Booking,
    now: Timestamp,
) -> bool {
    let slot = &booking.slot;
    let Some(office) = catalog.office(&slot.office_id) else { return false };
    let Some(plan) = office.plan(slot.date) else { return false };
    let Some(session) = plan.sessions.iter().find(|session| session.session_id == slot.session_id) else {
        return false;
    };
    let applicant_room = access
        .shard(booking.applicant.nik.shard_index())
        .applicants
        .get(&booking.applicant.nik)
        .is_none_or(|record| record.active().len() < rules.applicant_active_bookings_max as usize);
    plan.closed.is_none() && now < booking.session_starts_at && applicant_room && remaining(access, slot, session) >= 1
}

/// Decides a cancellation.
pub fn cancel(booking: &Booking, stamp: Stamp) -> Result<Event, Rejection> {
    if !booking.state.is_active() {
        return Err(Rejection::InvalidState { state: booking.state, action: "cancel".into() });
    }
    Ok(Event::Cancelled { stamp, booking_id: booking.booking_id })
}

/// Decides a check-in: confirmed, on the appointment's date in the office's time zone, before its session ended (after
/// that the applicant is a no-show, whether or not the ticker has marked it yet).
pub fn check_in(catalog: &Catalog, booking: &Booking, stamp: Stamp) -> Result<Event, Rejection> {
    if booking.state != BookingState::Confirmed {
        return Err(Rejection::InvalidState { state: booking.state, action: "check in".into() });
    }
    if stamp.at >= booking.session_ends_at {
        let action = format!("check in after the session ended ({})", booking.session_ends_at);
        return Err(Rejection::InvalidState { state: booking.state, action });
    }
    let office = catalog.office(&booking.slot.office_id);
    let today = office.map(|office| office.today(stamp.at));
    if today != Some(booking.slot.date) {
        return Err(Rejection::InvalidState {
            state: booking.state,
            action: format!("check in on a day other than the appointment ({})", booking.slot.date),
        });
    }
    Ok(Event::CheckedIn { stamp, booking_id: booking.booking_id })
}

/// Decides a reschedule: active, within the allowed count and deadline (both waived when the office closed the
/// booking's date), to a bookable session of the same office and pool with a free slot.
pub fn reschedule(
    access: &impl ShardAccess,
    catalog: &Catalog,
    rules: &BookRules,
    booking: &Booking,
    to_date: Date,
    to_session: &SessionId,
    stamp: Stamp,
) -> Result<Event, Rejection> {
    if !booking.state.is_active() {
        return Err(Rejection::InvalidState { state: booking.state, action: "reschedule".into() });
    }
    // An unpaid hold past its deadline only waits for a payment already made: it cannot be moved.
    if booking.state == BookingState::AwaitingPayment && stamp.at >= booking.payment_deadline {
        let action = "reschedule a hold past its payment deadline".into();
        return Err(Rejection::InvalidState { state: booking.state, action });
    }
    let slot = &booking.slot;
    let office = catalog.office(&slot.office_id).ok_or_else(|| Rejection::OfficeNotFound(slot.office_id.clone()))?;
    let date_closed = office.closed.contains_key(&slot.date);
    if !date_closed {
        if booking.reschedules_used >= rules.reschedules_max {
            let why = format!("already rescheduled {} time(s), the most allowed", booking.reschedules_used);
            return Err(Rejection::RescheduleNotAllowed { why });
        }
        let latest = slot.date.plus_days(-rules.reschedule_days_before_min);
        if office.today(stamp.at) > latest {
            let why =
                format!("must be done by {latest}, {} day(s) before the appointment", rules.reschedule_days_before_min);
            return Err(Rejection::RescheduleNotAllowed { why });
        }
    }
    // Once its session has ended a confirmed booking is a no-show, whether or not the ticker has marked it yet.
    if booking.state == BookingState::Confirmed && stamp.at >= booking.session_ends_at {
        let action = format!("reschedule after the session ended ({})", booking.session_ends_at);
        return Err(Rejection::InvalidState { state: booking.state, action });
    }
    if to_date == slot.date && to_session == &slot.session_id {
        return Err(Rejection::invalid("session_id", "is the booking's current session"));
    }
    let bookable = check_bookable(office, to_date, to_session, slot.pool, stamp.at)?;
    let to =
        SlotRef { office_id: slot.office_id.clone(), date: to_date, session_id: to_session.clone(), pool: slot.pool };
    // A reschedule carries no admission token, so it cannot move into a date behind another waiting room than its
    // own: that would skip the line. Moving within its own release is not a new admission.
    let line = waiting_room_for(catalog, &to);
    if line.is_some() && line != waiting_room_for(catalog, slot) {
        return Err(Rejection::AdmissionRequired);
    }
    let left = remaining(access, &to, bookable.session);
    if left == 0 {
        return Err(Rejection::SessionFull { remaining: 0 });
    }
    Ok(Event::Rescheduled {
        stamp,
        booking_id: booking.booking_id,
        to,
        session_starts_at: bookable.starts_at,
        payment_deadline: booking.payment_deadline.min(bookable.starts_at),
    })
}
