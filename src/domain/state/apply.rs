//! Applying: the one place state changes. Every event is a fact; applying it never fails and reads no clock, so the
//! live path and replay produce the same state.
//!
//! Programmer errors (an event naming a booking that does not exist) panic: they mean the log and the code disagree,
//! and continuing would corrupt state.

use super::access::ShardAccess;
use super::answers::keep_answers_naming;
use super::applied::{Applied, answered};
use super::remembered::RememberedReply;
use super::shard::day_key;
use super::shard::{DayKey, DayLedger, OfficeCounters, PoolLedger, SessionLedger, ShardKey};
use crate::domain::bookings::booking::{Booking, BookingState, PurgedBooking, SlotRef};
use crate::domain::bookings::refund::Refund;
use crate::domain::catalogue::office::{Catalog, Office, Pool, ScheduleRule};
use crate::domain::messages::event::Event;
use crate::domain::messages::rejection::Rejection;
use crate::domain::values::ids::BookingId;
use crate::domain::values::short_text::ShortText;
use crate::domain::values::time::{Date, Timestamp};
use crate::domain::waiting_room::apply::{apply_waiting_room_event, open_waiting_room, purge_waiting_rooms};
use crate::domain::waiting_room::event::WaitingRoomEvent;
use crate::domain::waiting_room::room::{TicketState, WaitingRooms};
use crate::limits::PURGED_BOOKINGS_KEPT_DAYS;
use std::sync::Arc;

/// Applies `event`. Admin events replace the catalogue through `catalog`. Events that touch waiting rooms (holds with
/// an admission token, schedules with a waiting room, room events) need `rooms`.
pub fn apply(
    access: &mut impl ShardAccess,
    catalog: &mut Arc<Catalog>,
    rooms: Option<&mut WaitingRooms>,
    event: &Event,
) -> Applied {
    match event {
        Event::WaitingRoomRequested { stamp, change } => {
            let rooms = rooms.expect("waiting-room requests are applied with the waiting rooms locked");
            let applied = apply_waiting_room_event(rooms, change);
            let ticket_id = match change {
                WaitingRoomEvent::Joined { ticket_id, .. }
                | WaitingRoomEvent::JoinedParty { ticket_id, .. }
                | WaitingRoomEvent::Left { ticket_id, .. } => *ticket_id,
                WaitingRoomEvent::Advanced { .. }
                | WaitingRoomEvent::Stepped { .. }
                | WaitingRoomEvent::Finished { .. }
                | WaitingRoomEvent::DrawCommitted { .. } => {
                    unreachable!("the waiting room moves on by itself, not on request")
                }
            };
            Applied { answered: answered(stamp, Ok(RememberedReply::Ticket { ticket_id })).answered, ..applied }
        }
        Event::WaitingRoom(room_event) => {
            let rooms = rooms.expect("room events are applied with the rooms locked");
            apply_waiting_room_event(rooms, room_event)
        }
        Event::Held { stamp, hold, first_booking_id, group_id, payment_deadline, session_starts_at, admission } => {
            if let Some((key, ticket_id)) = admission {
                let rooms = rooms.expect("holds with an admission are applied with the rooms locked");
                let room = Arc::make_mut(rooms.get_mut(key).expect("admission was checked against this room"));
                room.set_state(*ticket_id, TicketState::Booked);
            }
            let owner = stamp.request_id.caller();
            let day = day_key(&hold.slot);
            ensure_day(access, catalog, &day);
            let (slot, session_ends_at) = catalogued_slot(catalog, &hold.slot);
            for (offset, applicant) in hold.applicants.iter().enumerate() {
                let booking_id = BookingId(first_booking_id.0 + offset as u64);
                let booking = Booking {
                    booking_id,
                    state: BookingState::AwaitingPayment,
                    slot: slot.clone(),
                    service: hold.service,
                    applicant: applicant.clone(),
                    account_id: hold.account_id.clone(),
                    payment_deadline: *payment_deadline,
                    payment_reference: None,
                    created_at: stamp.at,
                    updated_at: stamp.at,
                    reschedules_used: 0,
                    group_id: *group_id,
                    session_starts_at: *session_starts_at,
                    session_ends_at,
                    settlement_deadline: None,
                    amendments_used: 0,
                    last_amended_at: None,
                };
                insert_booking(access, &day, booking);
                if let Some(owner) = owner {
                    access.shard_mut(booking_id.shard_index()).set_owner(booking_id, owner);
                }
            }
            let created = hold.applicants.len() as u64;
            counters(access, &day).holds_total += created;
            let count = u32::try_from(created).expect("a group is far smaller than u32::MAX");
            assert!(
                group_id.is_none_or(|group| group.0 == first_booking_id.0),
                "a group is numbered like its first booking"
            );
            let reply = Ok(RememberedReply::Held {
                first_booking_id: *first_booking_id,
                bookings: count,
                group: group_id.is_some(),
            });
            Applied { answered: Some((stamp.clone(), reply)), bookings_created: created, ..Applied::default() }
        }
        Event::PaymentConfirmed { stamp, booking_id, payment_reference, revived } => {
            let in_grace = !*revived && stamp.at >= booking(access, *booking_id).payment_deadline;
            let day = transition(access, *booking_id, BookingState::Confirmed, stamp.at);
            booking_mut(access, *booking_id).payment_reference = Some(payment_reference.clone());
            if *revived {
                counters(access, &day).revivals_total += 1;
            }
            answered(stamp, Ok(RememberedReply::Paid { booking_id: *booking_id, revived: *revived, in_grace }))
        }
        Event::PaymentRefused { stamp, booking_id, payment_reference, reason } => {
            let day = booking_day(access, *booking_id);
            let refund = Refund {
                booking_id: *booking_id,
                office_id: day.office_id.clone(),
                payment_reference: payment_reference.clone(),
                reason: *reason,
                recorded_at: stamp.at,
            };
            access.shard_mut(booking_id.shard_index()).refunds.get_or_default(*booking_id).push(refund);
            counters(access, &day).refunds_total += 1;
            answered(stamp, Err(Box::new(Rejection::refund(*reason, *booking_id))))
        }
        Event::PaymentRepeated { stamp, booking_id, .. } => {
            answered(stamp, Ok(RememberedReply::PaymentRepeated { booking_id: *booking_id }))
        }
        Event::PaymentOverdue { booking_id, at, settles_until } => {
            let shard = access.shard_mut(booking_id.shard_index());
            let booking = shard.bookings.get_mut(booking_id).expect("the ticker names an existing hold");
            assert_eq!(booking.state, BookingState::AwaitingPayment, "only a hold becomes overdue");
            assert!(booking.settlement_deadline.is_none() && *at == booking.payment_deadline, "overdue once");
            shard.deadlines.remove(&(booking.hold_due_at(), *booking_id));
            booking.settlement_deadline = Some(*settles_until);
            shard.deadlines.insert((*settles_until, *booking_id));
            Applied::default()
        }
        Event::NoShow { booking_id, at } => {
            let day = transition(access, *booking_id, BookingState::NoShow, *at);
            counters(access, &day).no_shows_total += 1;
            Applied::default()
        }
        Event::Cancelled { stamp, booking_id } => {
            let day = transition(access, *booking_id, BookingState::Cancelled, stamp.at);
            counters(access, &day).cancellations_total += 1;
            answered(stamp, Ok(RememberedReply::Booking(*booking_id)))
        }
        Event::CheckedIn { stamp, booking_id } => {
            let day = transition(access, *booking_id, BookingState::CheckedIn, stamp.at);
            counters(access, &day).check_ins_total += 1;
            answered(stamp, Ok(RememberedReply::Booking(*booking_id)))
        }
        Event::Expired { booking_id, at } => {
            let day = transition(access, *booking_id, BookingState::Expired, *at);
            counters(access, &day).expiries_total += 1;
            Applied::default()
        }
        Event::Rescheduled { stamp, booking_id, to, session_starts_at, payment_deadline } => {
            move_booking(access, catalog, *booking_id, to, *session_starts_at, *payment_deadline, stamp.at);
            counters(access, &day_key(to)).reschedules_total += 1;
            answered(stamp, Ok(RememberedReply::Booking(*booking_id)))
        }
        Event::Amended { stamp, booking_id, amendment, to_pool } => {
            if let Some(pool) = to_pool {
                move_to_pool(access, *booking_id, *pool);
            }
            let booking = booking_mut(access, *booking_id);
            if let Some(full_name) = &amendment.full_name {
                booking.applicant.full_name = ShortText::from(full_name);
            }
            if let Some(has_disability) = amendment.has_disability {
                booking.applicant.has_disability = has_disability;
            }
            if let Some(service) = amendment.service {
                booking.service = service;
            }
            booking.amendments_used += 1;
            booking.last_amended_at = Some(stamp.at);
            booking.updated_at = stamp.at;
            answered(stamp, Ok(RememberedReply::Booking(*booking_id)))
        }
        Event::RequestsForgotten { recorded_before } => forget_requests(access, *recorded_before),
        Event::OwnerChanged { .. } => Applied::default(),
        Event::BookingsPurged { stamp, before } => {
            let bookings_purged = purge_bookings(access, *before);
            forget_purged(access, before.plus_days(-PURGED_BOOKINGS_KEPT_DAYS));
            if let Some(rooms) = rooms {
                purge_waiting_rooms(rooms, *before);
            }
            Applied { bookings_purged, ..answered(stamp, Ok(RememberedReply::Purged { bookings_purged })) }
        }
        Event::OfficeUpserted { stamp, settings } => {
            let catalog = Arc::make_mut(catalog);
            let created = !catalog.offices.contains_key(&settings.office_id);
            let office = catalog.offices.remove(&settings.office_id);
            let mut updated = Office::new(settings.clone()).expect("time zone was checked before the event was made");
            if let Some(previous) = office {
                updated.rules = previous.rules;
                updated.closed = previous.closed;
            }
            catalog.offices.insert(settings.office_id.clone(), updated);
            resize_days(access, catalog, &settings.office_id, stamp.at);
            answered(stamp, Ok(RememberedReply::OfficeUpserted { created }))
        }
        Event::ScheduleSet { stamp, office_id, rule } => {
            let catalog = Arc::make_mut(catalog);
            let office = catalog.offices.get_mut(office_id).expect("office was checked before the event was made");
            office.forget_past_rules(stamp.at);
            office.rules.push(rule.clone());
            let dates_scheduled = scheduled_days(office, rule);
            if rule.waiting_room {
                let rooms = rooms.expect("schedules are applied with the rooms locked");
                open_waiting_room(rooms, office, rule, stamp.fingerprint);
            }
            resize_days(access, catalog, office_id, stamp.at);
            answered(stamp, Ok(RememberedReply::ScheduleSet { dates_scheduled }))
        }
        Event::DateClosed { stamp, office_id, date, reason, reopen } => {
            let office = Arc::make_mut(catalog).offices.get_mut(office_id).expect("office was checked");
            if *reopen {
                office.closed.remove(date);
            } else {
                office.closed.insert(*date, reason.clone());
            }
            let key = DayKey { office_id: office_id.clone(), date: *date };
            let bookings_affected = access.shard(key.shard_index()).days.get(&key).map_or(0, |day| {
                day.sessions.iter().flat_map(|session| &session.pools).map(|pool| pool.awaiting + pool.confirmed).sum()
            });
            answered(stamp, Ok(RememberedReply::DateClosed { bookings_affected: bookings_affected as i32 }))
        }
    }
}

/// The booking, which must exist.
pub fn booking(access: &impl ShardAccess, booking_id: BookingId) -> &Booking {
    match access.shard(booking_id.shard_index()).bookings.get(&booking_id) {
        Some(booking) => booking,
        None => panic!("event names booking {booking_id}, which does not exist"),
    }
}

fn booking_mut(access: &mut impl ShardAccess, booking_id: BookingId) -> &mut Booking {
    match access.shard_mut(booking_id.shard_index()).bookings.get_mut(&booking_id) {
        Some(booking) => booking,
        None => panic!("event names booking {booking_id}, which does not exist"),
    }
}

/// The day of a booking, or of what is kept of it once purged: where its refunds are counted.
fn booking_day(access: &impl ShardAccess, booking_id: BookingId) -> DayKey {
    let shard = access.shard(booking_id.shard_index());
    if let Some(booking) = shard.bookings.get(&booking_id) {
        return day_key(&booking.slot);
    }
    match shard.purged.get(&booking_id) {
        Some(purged) => DayKey { office_id: purged.office_id.clone(), date: purged.date },
        None => panic!("event names booking {booking_id}, which never existed"),
    }
}

/// `slot` with the catalogue's own office and session ids, which a copy shares rather than duplicates (a booking's
/// ids then cost no text of their own), and when its session ends, by the catalogue the hold or reschedule was
/// decided against.
fn catalogued_slot(catalog: &Catalog, slot: &SlotRef) -> (SlotRef, Timestamp) {
    let office = catalog.office(&slot.office_id).expect("a booked office exists");
    let plan = office.plan(slot.date).expect("a booked date has a plan");
    let session = plan.sessions.iter().find(|session| session.session_id == slot.session_id);
    let session = session.expect("a booked session is in its plan");
    let shared = SlotRef {
        office_id: office.settings.office_id.clone(),
        date: slot.date,
        session_id: session.session_id.clone(),
        pool: slot.pool,
    };
    (shared, office.session_end(slot.date, session))
}

fn counters<'access>(access: &'access mut impl ShardAccess, day: &DayKey) -> &'access mut OfficeCounters {
    access.shard_mut(day.shard_index()).counters.entry(day.office_id.clone()).or_default()
}

/// Makes the day's ledger from the catalogue's plan the first time the date is booked.
fn ensure_day(access: &mut impl ShardAccess, catalog: &Catalog, day: &DayKey) {
    let shard = access.shard_mut(day.shard_index());
    if shard.days.contains_key(day) {
        return;
    }
    let plan = catalog.office(&day.office_id).and_then(|office| office.plan(day.date));
    let sessions = plan.map_or(&[][..], |plan| plan.sessions);
    let sessions = sessions
        .iter()
        .map(|template| SessionLedger {
            session_id: template.session_id.clone(),
            pools: template
                .capacities
                .iter()
                .filter(|(_, capacity)| *capacity > 0)
                .map(|(pool, capacity)| PoolLedger { pool: Some(*pool), capacity: *capacity, ..PoolLedger::default() })
                .collect(),
        })
        .collect();
    shard.days.insert(day.clone(), DayLedger { sessions, booking_ids: Default::default() });
}

fn insert_booking(access: &mut impl ShardAccess, day: &DayKey, booking: Booking) {
    let booking_id = booking.booking_id;
    let nik = booking.applicant.nik;
    let ledger = access.shard_mut(day.shard_index()).days.get_mut(day).expect("day ensured");
    ledger.booking_ids.insert(booking_id);
    let pool = ledger.pool_mut(&booking.slot.session_id, booking.slot.pool).expect("hold was decided on this plan");
    pool.awaiting += 1;
    assert!(pool.taken() <= pool.capacity, "overbooked {day:?}: {pool:?}");
    let applicant = access.shard_mut(nik.shard_index()).applicants.entry(nik).or_default();
    applicant.add_active(booking_id);
    let shard = access.shard_mut(booking_id.shard_index());
    shard.deadlines.insert((booking.payment_deadline, booking_id));
    let previous = shard.bookings.insert(booking_id, booking);
    assert!(previous.is_none(), "booking {booking_id} created twice");
}

/// Moves a booking to `to`, keeping all counts and indexes in step: the one way a booking's state changes. Returns
/// the day.
fn transition(access: &mut impl ShardAccess, booking_id: BookingId, to: BookingState, at: Timestamp) -> DayKey {
    let current = booking(access, booking_id);
    let (from, slot, nik, due, ends) =
        (current.state, current.slot.clone(), current.applicant.nik, current.hold_due_at(), current.session_ends_at);
    let day = day_key(&slot);
    let ledger = access.shard_mut(day.shard_index()).days.get_mut(&day).expect("a booked day has a ledger");
    let pool = ledger.pool_mut(&slot.session_id, slot.pool).expect("a booked session has its pool");
    if let Some(count) = pool.count_mut(from) {
        *count -= 1;
    }
    if let Some(count) = pool.count_mut(to) {
        *count += 1;
    }
    assert!(pool.taken() <= pool.capacity, "overbooked {day:?}: {pool:?}");
    if from.is_active() != to.is_active() {
        let applicant = access.shard_mut(nik.shard_index()).applicants.entry(nik).or_default();
        applicant.set_active(booking_id, to.is_active());
    }
    let shard = access.shard_mut(booking_id.shard_index());
    assert!(to != BookingState::AwaitingPayment, "no booking goes back to awaiting payment");
    if from == BookingState::AwaitingPayment {
        shard.deadlines.remove(&(due, booking_id));
    }
    if from == BookingState::Confirmed {
        shard.session_ends.remove(&(ends, booking_id));
    }
    if to == BookingState::Confirmed {
        shard.session_ends.insert((ends, booking_id));
    }
    let booking = shard.bookings.get_mut(&booking_id).expect("checked above");
    booking.state = to;
    booking.updated_at = at;
    booking.settlement_deadline = None;
    day
}

fn move_booking(
    access: &mut impl ShardAccess,
    catalog: &Catalog,
    booking_id: BookingId,
    to: &SlotRef,
    session_starts_at: Timestamp,
    payment_deadline: Timestamp,
    at: Timestamp,
) {
    let current = booking(access, booking_id);
    let (state, from, old_due, old_end) =
        (current.state, current.slot.clone(), current.hold_due_at(), current.session_ends_at);
    let old_day = day_key(&from);
    let new_day = day_key(to);
    let (to_shared, session_ends_at) = catalogued_slot(catalog, to);
    ensure_day(access, catalog, &new_day);
    {
        let ledger = access.shard_mut(old_day.shard_index()).days.get_mut(&old_day).expect("booked day");
        ledger.booking_ids.remove(&booking_id);
        let pool = ledger.pool_mut(&from.session_id, from.pool).expect("booked pool");
        *pool.count_mut(state).expect("an active booking holds a slot") -= 1;
    }
    let ledger = access.shard_mut(new_day.shard_index()).days.get_mut(&new_day).expect("ensured");
    ledger.booking_ids.insert(booking_id);
    let pool = ledger.pool_mut(&to.session_id, to.pool).expect("reschedule was decided on this plan");
    *pool.count_mut(state).expect("an active booking holds a slot") += 1;
    assert!(pool.taken() <= pool.capacity, "overbooked {new_day:?}: {pool:?}");
    let shard = access.shard_mut(booking_id.shard_index());
    if state == BookingState::AwaitingPayment {
        shard.deadlines.remove(&(old_due, booking_id));
        shard.deadlines.insert((payment_deadline, booking_id));
    }
    if state == BookingState::Confirmed {
        shard.session_ends.remove(&(old_end, booking_id));
        shard.session_ends.insert((session_ends_at, booking_id));
    }
    let booking = shard.bookings.get_mut(&booking_id).expect("checked above");
    assert!(booking.settlement_deadline.is_none(), "a hold past its deadline is not moved");
    booking.slot = to_shared;
    booking.session_starts_at = session_starts_at;
    booking.session_ends_at = session_ends_at;
    booking.payment_deadline = payment_deadline;
    booking.reschedules_used += 1;
    booking.updated_at = at;
}

/// Moves an active booking to another pool of its own session: one slot less taken in the old pool, one more in the
/// new, in the same ledger, so every pool's count stays equal to its bookings (invariant 1).
fn move_to_pool(access: &mut impl ShardAccess, booking_id: BookingId, to: Pool) {
    let current = booking(access, booking_id);
    let (state, slot) = (current.state, current.slot.clone());
    let day = day_key(&slot);
    let ledger = access.shard_mut(day.shard_index()).days.get_mut(&day).expect("a booked day has a ledger");
    *ledger.pool_mut(&slot.session_id, slot.pool).expect("booked pool").count_mut(state).expect("active") -= 1;
    let pool = ledger.pool_mut(&slot.session_id, to).expect("the amendment was decided on this plan");
    *pool.count_mut(state).expect("an active booking holds a slot") += 1;
    assert!(pool.taken() <= pool.capacity, "overbooked {day:?}: {pool:?}");
    booking_mut(access, booking_id).slot.pool = to;
}

fn forget_requests(access: &mut impl ShardAccess, recorded_before: Timestamp) -> Applied {
    let mut forgotten = 0;
    for index in 0..crate::limits::SHARD_COUNT {
        if access.shard(index).oldest_request().is_some_and(|oldest| oldest < recorded_before) {
            // A persistent map frees its tree nodes as they empty: a crowd's request ids leave no oversized table.
            forgotten += access.shard_mut(index).forget_requests_before(recorded_before);
        }
    }
    Applied { requests_forgotten: forgotten, ..Applied::default() }
}

/// Deletes finished bookings (not holding a slot that is still to come) dated before `before`, with their entries in
/// day and applicant indexes, keeping of each only what a later payment notification needs (office, date, accepted
/// payment). Remembered answers that name a purged booking are kept whole first, so a retry is still answered.
/// Runs with every shard locked.
fn purge_bookings(access: &mut impl ShardAccess, before: Date) -> u64 {
    let finished = |booking: &Booking| booking.slot.date < before && !booking.state.is_active();
    let mut doomed = std::collections::HashMap::new();
    for index in 0..crate::limits::SHARD_COUNT {
        let bookings = access.shard(index).bookings.values();
        doomed
            .extend(bookings.filter(|booking| finished(booking)).map(|booking| (booking.booking_id, booking.clone())));
    }
    keep_answers_naming(access, &doomed);
    for booking in doomed.values() {
        let shard = access.shard_mut(booking.booking_id.shard_index());
        shard.bookings.remove(&booking.booking_id);
        shard.owners.remove(&booking.booking_id);
        let kept = PurgedBooking {
            booking_id: booking.booking_id,
            office_id: booking.slot.office_id.clone(),
            date: booking.slot.date,
            payment_reference: booking.payment_reference.clone(),
        };
        shard.purged.insert(booking.booking_id, kept);
    }
    for booking in doomed.values() {
        let day = day_key(&booking.slot);
        if let Some(ledger) = access.shard_mut(day.shard_index()).days.get_mut(&day) {
            ledger.booking_ids.remove(&booking.booking_id);
            // A checked-in booking still counts in its pool; the day is past, so the slot is released with it.
            if let Some(pool) = ledger.pool_mut(&booking.slot.session_id, booking.slot.pool)
                && let Some(count) = pool.count_mut(booking.state)
            {
                *count -= 1;
            }
        }
        let nik = booking.applicant.nik;
        let applicants = &mut access.shard_mut(nik.shard_index()).applicants;
        if let Some(record) = applicants.get_mut(&nik) {
            record.forget(booking.booking_id);
            if record.booking_ids().is_empty() {
                applicants.remove(&nik);
            }
        }
    }
    doomed.len() as u64
}

/// Forgets what was kept of bookings purged with a date before `before`, and their refund records: retention for the
/// money side. Runs with every shard locked.
fn forget_purged(access: &mut impl ShardAccess, before: Date) {
    for index in 0..crate::limits::SHARD_COUNT {
        let stale: Vec<BookingId> = access
            .shard(index)
            .purged
            .values()
            .filter(|purged| purged.date < before)
            .map(|purged| purged.booking_id)
            .collect();
        if stale.is_empty() {
            continue;
        }
        let shard = access.shard_mut(index);
        for booking_id in stale {
            shard.purged.remove(&booking_id);
            shard.refunds.remove(&booking_id);
        }
    }
}

/// Working days a schedule covers.
fn scheduled_days(office: &Office, rule: &ScheduleRule) -> i32 {
    let days = rule.last_date.days_since(rule.first_date);
    (0..=days).filter(|offset| office.plan(rule.first_date.plus_days(*offset)).is_some()).count() as i32
}

/// Brings every existing day ledger of an office from its date at `now` on in line with the catalogue's current
/// plans. Past days are history: their ledgers stay as they were. The decision step has already checked that no
/// booking loses its slot.
fn resize_days(
    access: &mut impl ShardAccess,
    catalog: &Catalog,
    office_id: &crate::domain::values::ids::OfficeId,
    now: Timestamp,
) {
    let Some(office) = catalog.office(office_id) else { return };
    let today = office.today(now);
    for index in 0..crate::limits::SHARD_COUNT {
        let keys: Vec<DayKey> = access
            .shard(index)
            .days
            .keys()
            .filter(|key| &key.office_id == office_id && key.date >= today)
            .cloned()
            .collect();
        for key in keys {
            let plan = office.plan(key.date);
            let sessions = plan.map_or(&[][..], |plan| plan.sessions);
            let ledger = access.shard_mut(index).days.get_mut(&key).expect("listed above");
            resize_day(ledger, sessions);
        }
    }
}

fn resize_day(ledger: &mut DayLedger, sessions: &[crate::domain::catalogue::office::SessionTemplate]) {
    let mut resized = Vec::with_capacity(sessions.len());
    for template in sessions {
        let old = ledger.sessions.iter().find(|session| session.session_id == template.session_id);
        let pools = crate::domain::catalogue::office::Pool::ALL
            .iter()
            .filter_map(|pool| {
                let mut ledger = old
                    .and_then(|old| old.pools.iter().find(|ledger| ledger.pool == Some(*pool)).cloned())
                    .unwrap_or(PoolLedger { pool: Some(*pool), ..PoolLedger::default() });
                ledger.capacity = template.capacity(*pool);
                assert!(ledger.taken() <= ledger.capacity, "replan left bookings without a slot: {ledger:?}");
                (ledger.capacity > 0).then_some(ledger)
            })
            .collect();
        resized.push(SessionLedger { session_id: template.session_id.clone(), pools });
    }
    ledger.sessions = resized;
}
