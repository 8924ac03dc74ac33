//! Behaviour tests of the booking lifecycle where money and time meet (issue 12): late notifications of on-time
//! payments, re-delivered payments, purged bookings, no-shows, booking numbers after a purge, and schedules that
//! respect working days, session times that bookings depend on, and time passing. Time is the injected `now`.

use super::testkit::*;
use crate::domain::bookings::booking::{Booking, BookingState, SlotRef};
use crate::domain::bookings::refund::RefundReason;
use crate::domain::catalogue::office::{Pool, ScheduleRule, SessionTemplate};
use crate::domain::messages::command::Command;
use crate::domain::messages::rejection::Rejection;
use crate::domain::messages::reply::Reply;
use crate::domain::values::ids::BookingId;
use crate::domain::values::time::{Date, Timestamp};
use crate::limits::{PURGED_BOOKINGS_KEPT_DAYS, SCHEDULES_PER_OFFICE_MAX};

fn regular(on: Date) -> SlotRef {
    slot(on, morning(), Pool::Regular)
}

fn purge(before: Date) -> Command {
    Command::PurgeBookings { before }
}

/// A confirmed booking on Monday morning, cancelled and purged after the day (a Thursday purge of Wednesday's past).
fn purged_booking(fixture: &Fixture) -> Booking {
    let booking = fixture.confirmed(regular(monday()), adult(1), now());
    fixture.run(&Command::Cancel { booking_id: booking.booking_id }, now());
    let purged = fixture.run(&purge(tuesday()), wib(wednesday(), 12, 0)).outcome;
    assert_eq!(purged, Ok(Reply::Purged { bookings_purged: 1 }));
    booking
}

// ---------------------------------------------------------------------------------------------------------------
// 1. A payment made on time but notified late is honoured.

#[test]
fn a_payment_made_before_the_deadline_and_notified_in_the_grace_confirms_even_when_others_want_the_slot() {
    let fixture = Fixture::with(rules(), Capacities { regular: 1, priority: 1 });
    let booking = fixture.held(regular(monday()), adult(1), now());
    let deadline = booking.payment_deadline;
    fixture.tick(deadline);
    let taker = fixture.run(&hold(regular(monday()), adult(2)), deadline.plus_ms(60_000));
    assert_eq!(taker.outcome, Err(Rejection::SessionFull { remaining: 0 }), "the slot is still reserved");
    let notified = deadline.plus_ms(3 * 60_000);
    let paid = fixture.run(&pay_at(booking.booking_id, "simponi-1059", Some(deadline.plus_ms(-60_000))), notified);
    match paid.outcome {
        Ok(Reply::Paid { booking: paid, revived: false, in_grace: true }) => {
            assert_eq!(paid.state, BookingState::Confirmed);
            assert_eq!(paid.settlement_deadline, None);
        }
        other => panic!("expected the payment honoured, got {other:?}"),
    }
    assert!(fixture.book.due_expiries(deadline.plus_ms(DAY_MS), 10).is_empty(), "nothing left to expire");
    assert!(fixture.book.list_refunds(None, 0, 10).0.is_empty());
    fixture.assert_rebuilds();
}

#[test]
fn a_payment_made_on_time_and_notified_before_the_ticker_started_the_grace_is_honoured_too() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(monday()), adult(1), now());
    let deadline = booking.payment_deadline;
    let paid = fixture.run(&pay_at(booking.booking_id, "simponi-1", Some(deadline)), deadline.plus_ms(1));
    assert!(matches!(paid.outcome, Ok(Reply::Paid { revived: false, in_grace: true, .. })), "{:?}", paid.outcome);
}

#[test]
fn a_payment_made_after_the_deadline_is_late_even_within_the_grace() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(monday()), adult(1), now());
    let deadline = booking.payment_deadline;
    fixture.tick(deadline);
    let late = pay_at(booking.booking_id, "simponi-late", Some(deadline.plus_ms(60_000)));
    let paid = fixture.run(&late, deadline.plus_ms(2 * 60_000));
    assert!(matches!(paid.outcome, Ok(Reply::Paid { revived: true, in_grace: false, .. })), "{:?}", paid.outcome);
}

#[test]
fn after_the_grace_an_on_time_payment_goes_the_revive_or_refund_way() {
    let fixture = Fixture::with(rules(), Capacities { regular: 1, priority: 1 });
    let booking = fixture.held(regular(monday()), adult(1), now());
    let expired_at = fixture.lapse(&booking);
    fixture.held(regular(monday()), adult(2), expired_at);
    let paid = pay_at(booking.booking_id, "simponi-1", Some(booking.payment_deadline.plus_ms(-1)));
    let refused = fixture.run(&paid, expired_at.plus_ms(1));
    assert_eq!(refused.outcome, Err(Rejection::PaymentExpired { booking_id: booking.booking_id }));
    fixture.assert_rebuilds();
}

#[test]
fn paid_at_in_the_future_is_refused_and_changes_nothing() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(monday()), adult(1), now());
    let logged = fixture.log.len();
    let paid = fixture.run(&pay_at(booking.booking_id, "simponi-1", Some(now().plus_ms(HOUR_MS))), now());
    match paid.outcome {
        Err(Rejection::Invalid(violations)) => assert_eq!(violations[0].field, "paid_at"),
        other => panic!("expected paid_at refused, got {other:?}"),
    }
    assert_eq!(fixture.log.len(), logged);
    let skew = fixture.run(&pay_at(booking.booking_id, "simponi-1", Some(now().plus_ms(5_000))), now());
    assert_eq!(verdict(&skew.outcome), "OK", "a few seconds of clock skew are tolerated");
}

#[test]
fn a_hold_in_its_grace_cannot_be_rescheduled_but_can_be_cancelled() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(tuesday()), adult(1), now());
    fixture.tick(booking.payment_deadline);
    let at = booking.payment_deadline.plus_ms(60_000);
    let moved = fixture
        .run(&Command::Reschedule { booking_id: booking.booking_id, date: wednesday(), session_id: morning() }, at);
    assert_eq!(verdict(&moved.outcome), "INVALID_STATE");
    let cancelled = fixture.run(&Command::Cancel { booking_id: booking.booking_id }, at);
    assert_eq!(verdict(&cancelled.outcome), "OK");
    assert!(fixture.book.due_expiries(at.plus_ms(DAY_MS), 10).is_empty());
    fixture.assert_rebuilds();
}

#[test]
fn a_payment_without_paid_at_is_made_when_notified() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(monday()), adult(1), now());
    fixture.tick(booking.payment_deadline);
    let paid = fixture.run(&pay(booking.booking_id, "simponi-1"), booking.payment_deadline.plus_ms(60_000));
    assert!(matches!(paid.outcome, Ok(Reply::Paid { revived: true, in_grace: false, .. })), "{:?}", paid.outcome);
}

#[test]
fn a_payment_fingerprint_without_paid_at_is_what_it_was_before_the_field_existed() {
    #[derive(serde::Serialize)]
    enum Before {
        #[allow(dead_code)]
        Hold,
        ConfirmPayment {
            booking_id: BookingId,
            payment_reference: crate::domain::values::ids::PaymentReference,
        },
    }
    let payment_reference = crate::domain::values::ids::PaymentReference::parse("simponi-1").expect("reference");
    let before = Before::ConfirmPayment { booking_id: BookingId(7), payment_reference: payment_reference.clone() };
    let encoded = postcard::to_stdvec(&before).expect("encodes");
    let now = Command::ConfirmPayment { booking_id: BookingId(7), payment_reference, paid_at: None };
    assert_eq!(now.fingerprint(), crate::domain::values::hashing::fnv1a(&encoded));
    let with = pay_at(BookingId(7), "simponi-1", Some(Timestamp(1)));
    assert_ne!(with.fingerprint(), now.fingerprint(), "paid_at is part of the request");
}

// ---------------------------------------------------------------------------------------------------------------
// 2. No refund for a booking's own accepted payment; 3. a late payment for a purged booking is not lost.

#[test]
fn a_late_payment_for_a_purged_booking_is_recorded_for_refund_once() {
    let fixture = Fixture::new();
    let booking = purged_booking(&fixture);
    assert!(fixture.book.booking(booking.booking_id).is_none());
    let at = wib(wednesday(), 13, 0);
    let late = fixture.run(&pay(booking.booking_id, "simponi-late"), at);
    assert_eq!(late.outcome, Err(Rejection::BookingPurged { booking_id: booking.booking_id }));
    assert!(late.log_position.is_some(), "the refund is a logged fact");
    let refunds = fixture.book.list_refunds(Some(&office_id()), 0, 10).0;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].reason, RefundReason::BookingPurged);
    assert_eq!(refunds[0].payment_reference.to_string(), "simponi-late");
    assert_eq!(refunds[0].office_id, office_id());
    let again = fixture.run(&pay(booking.booking_id, "simponi-late"), at.plus_ms(1));
    assert_eq!(again.outcome, late.outcome);
    assert_eq!(again.log_position, None, "a re-delivery records nothing");
    assert_eq!(fixture.book.list_refunds(None, 0, 10).0.len(), 1);
    assert_eq!(fixture.book.office_stats(&office_id()).expect("stats").counters.refunds_total, 1);
    fixture.assert_rebuilds();
}

#[test]
fn a_purged_booking_s_own_payment_redelivered_records_nothing() {
    let fixture = Fixture::new();
    let booking = purged_booking(&fixture);
    let reference = format!("pay-{}", booking.booking_id.0);
    let again = fixture.run(&pay(booking.booking_id, &reference), wib(wednesday(), 13, 0));
    assert_eq!(again.outcome, Ok(Reply::PaymentRepeated { booking: None }));
    assert!(fixture.book.list_refunds(None, 0, 10).0.is_empty());
    fixture.assert_rebuilds();
}

#[test]
fn a_payment_for_a_booking_that_never_existed_is_not_found() {
    let fixture = Fixture::new();
    purged_booking(&fixture);
    let unknown = fixture.run(&pay(BookingId(999), "simponi-x"), wib(wednesday(), 13, 0));
    assert_eq!(unknown.outcome, Err(Rejection::BookingNotFound(BookingId(999))));
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Refunds are covered by retention.

#[test]
fn refunds_and_what_is_kept_of_purged_bookings_are_forgotten_a_year_after_the_appointment() {
    let fixture = Fixture::new();
    let booking = purged_booking(&fixture);
    fixture.run(&pay(booking.booking_id, "simponi-late"), wib(wednesday(), 13, 0));
    let live = fixture.held(regular(tuesday()), adult(2), now());
    fixture.run(&pay(live.booking_id, "simponi-a"), now());
    fixture.run(&pay(live.booking_id, "simponi-b"), now());
    assert_eq!(fixture.book.list_refunds(None, 0, 10).0.len(), 2);
    let within = purge(monday().plus_days(PURGED_BOOKINGS_KEPT_DAYS));
    fixture.run(&within, wib(wednesday(), 14, 0));
    assert_eq!(fixture.book.list_refunds(None, 0, 10).0.len(), 2, "kept a year after the appointment");
    let past = purge(monday().plus_days(PURGED_BOOKINGS_KEPT_DAYS + 1));
    fixture.run(&past, wib(wednesday(), 14, 0));
    let refunds = fixture.book.list_refunds(None, 0, 10).0;
    assert_eq!(refunds.len(), 1, "the purged booking's refund is forgotten, the live one's kept: {refunds:?}");
    assert_eq!(refunds[0].booking_id, live.booking_id);
    let forgotten = fixture.run(&pay(booking.booking_id, "simponi-late"), wib(wednesday(), 15, 0));
    assert_eq!(forgotten.outcome, Err(Rejection::BookingNotFound(booking.booking_id)));
    fixture.assert_rebuilds();
}

// ---------------------------------------------------------------------------------------------------------------
// 5. No-shows release the applicant.

#[test]
fn a_confirmed_booking_not_checked_in_by_the_end_of_its_session_is_a_no_show_and_releases_the_applicant() {
    let fixture = Fixture::new();
    let booking = fixture.confirmed(regular(monday()), adult(1), now());
    let end = wib(monday(), 10, 0);
    assert_eq!(booking.session_ends_at, end);
    let next_week = slot(monday().plus_days(7), morning(), Pool::Regular);
    let before = fixture.run(&hold(next_week.clone(), adult(1)), end.plus_ms(-1)).outcome;
    assert_eq!(before, Err(Rejection::ApplicantHasBooking { booking_id: booking.booking_id }));
    let late = fixture.run(&Command::CheckIn { booking_id: booking.booking_id }, end);
    assert_eq!(verdict(&late.outcome), "INVALID_STATE", "too late to check in once the session ended");
    assert!(fixture.book.due_no_shows(end.plus_ms(-1), 10).is_empty());
    assert_eq!(fixture.tick(end), vec![booking.booking_id]);
    let no_show = fixture.booking(booking.booking_id);
    assert_eq!(no_show.state, BookingState::NoShow);
    assert_eq!(no_show.updated_at, end, "stamped with the end of the session, whenever the ticker ran");
    assert_eq!(fixture.remaining(&regular(monday()), now()), SMALL.regular, "no longer holds a slot");
    let stats = fixture.book.office_stats(&office_id()).expect("stats");
    assert_eq!((stats.counters.no_shows_total, stats.confirmed), (1, 0));
    assert_eq!(verdict(&fixture.run(&hold(next_week, adult(1)), end.plus_ms(60_000)).outcome), "OK");
    assert!(fixture.book.due_no_shows(end.plus_ms(DAY_MS), 10).is_empty(), "once");
    fixture.assert_rebuilds();
}

#[test]
fn a_checked_in_or_rescheduled_booking_is_no_no_show_of_its_old_session() {
    let fixture = Fixture::new();
    let arrived = fixture.confirmed(regular(monday()), adult(1), now());
    fixture.run(&Command::CheckIn { booking_id: arrived.booking_id }, wib(monday(), 7, 45));
    let moved = fixture.confirmed(regular(monday()), adult(2), now());
    let rescheduled = Command::Reschedule { booking_id: moved.booking_id, date: tuesday(), session_id: late_morning() };
    fixture.run(&rescheduled, now());
    assert_eq!(fixture.booking(moved.booking_id).session_ends_at, wib(tuesday(), 12, 0));
    assert!(fixture.tick(wib(monday(), 23, 0)).is_empty());
    assert_eq!(fixture.tick(wib(tuesday(), 12, 0)), vec![moved.booking_id]);
    assert_eq!(fixture.booking(arrived.booking_id).state, BookingState::CheckedIn);
    fixture.assert_rebuilds();
}

#[test]
fn a_no_show_s_own_payment_redelivered_records_nothing_and_another_payment_is_refunded() {
    let fixture = Fixture::new();
    let booking = fixture.confirmed(regular(monday()), adult(1), now());
    fixture.tick(wib(monday(), 10, 0));
    let own = format!("pay-{}", booking.booking_id.0);
    let again = fixture.run(&pay(booking.booking_id, &own), wib(monday(), 11, 0)).outcome;
    assert!(
        matches!(again, Ok(Reply::PaymentRepeated { booking: Some(ref read) }) if read.state == BookingState::NoShow)
    );
    let other = fixture.run(&pay(booking.booking_id, "simponi-2"), wib(monday(), 11, 0)).outcome;
    assert_eq!(other, Err(Rejection::AlreadyPaid { booking_id: booking.booking_id }));
}

// ---------------------------------------------------------------------------------------------------------------
// 7. Booking numbers and payment codes are never reused.

#[test]
fn booking_numbers_continue_after_a_purge_and_a_restart_from_an_image() {
    let fixture = Fixture::new();
    let kept = fixture.held(regular(tuesday()), adult(1), now());
    let highest = fixture.held(regular(monday()), adult(2), now());
    fixture.run(&Command::Cancel { booking_id: highest.booking_id }, now());
    fixture.run(&purge(tuesday()), wib(wednesday(), 12, 0));
    assert!(fixture.book.booking(highest.booking_id).is_none());
    let image = fixture.book.image(0);
    // The restarted book is unkeyed like the first one, so it draws the same numbers again: both are refused, the
    // kept booking's because it is present and the purged one's because what is kept of it names it.
    let restarted = loaded(rules(), image);
    let log = VecLog::default();
    let next = restarted.execute(
        &request("after-restart"),
        &hold(regular(wednesday().plus_days(5)), adult(3)),
        wib(wednesday(), 12, 0),
        &log,
    );
    let next = held_ids(&next.outcome)[0];
    assert_ne!(next, highest.booking_id, "a purged booking's number is not handed out again");
    assert_ne!(next, kept.booking_id);
    fixture.assert_rebuilds();
}

// ---------------------------------------------------------------------------------------------------------------
// 8. Schedules respect working days.

#[test]
fn a_schedule_over_a_whole_week_opens_only_the_working_days() {
    let fixture = Fixture::new();
    let rule = ScheduleRule {
        first_date: saturday().plus_days(-5),
        last_date: saturday().plus_days(1),
        release_at: now().plus_ms(-HOUR_MS),
        sessions: None,
        waiting_room: false,
    };
    let set = fixture.run(&Command::SetSchedule { office_id: office_id(), rule }, now());
    assert_eq!(set.outcome, Ok(Reply::ScheduleSet { dates_scheduled: 5 }), "Monday to Friday only");
    let weekend = fixture.run(&hold(regular(saturday()), adult(1)), now()).outcome;
    assert_eq!(weekend, Err(Rejection::SessionNotFound { date: saturday(), session_id: morning() }));
    let listed = fixture
        .book
        .availability(
            &office_id(),
            crate::domain::catalogue::office::ServiceType::NewPassport,
            saturday(),
            saturday().plus_days(1),
            now(),
        )
        .expect("availability");
    assert!(listed.is_empty(), "{listed:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// 9. Changing session times moves what depends on them, or is refused.

fn moved_morning(start: i32) -> SessionTemplate {
    SessionTemplate {
        session_id: morning(),
        starts_at: time(start, 0),
        ends_at: time(start + 2, 0),
        capacities: vec![(Pool::Regular, SMALL.regular), (Pool::Priority, SMALL.priority)],
    }
}

#[test]
fn moving_a_session_with_bookings_to_come_is_refused_with_their_count() {
    let fixture = Fixture::new();
    fixture.confirmed(regular(monday()), adult(1), now());
    fixture.held(regular(tuesday()), adult(2), now());
    let cancelled = fixture.held(slot(tuesday(), late_morning(), Pool::Regular), adult(3), now());
    fixture.run(&Command::Cancel { booking_id: cancelled.booking_id }, now());
    let mut later = office_settings(office_id(), SMALL);
    later.sessions[0] = moved_morning(9);
    later.sessions[1].starts_at = time(11, 0);
    later.sessions[1].ends_at = time(13, 0);
    let refused = fixture.run(&Command::UpsertOffice(later), now());
    assert_eq!(refused.outcome, Err(Rejection::SessionsHaveBookings { bookings: 2 }));
    let mut zone = office_settings(office_id(), SMALL);
    zone.time_zone = "Asia/Makassar".into();
    let refused = fixture.run(&Command::UpsertOffice(zone), now());
    assert_eq!(refused.outcome, Err(Rejection::SessionsHaveBookings { bookings: 2 }), "a new zone moves them all");
    let mut untouched = office_settings(office_id(), SMALL);
    untouched.sessions[1].starts_at = time(10, 30);
    let ok = fixture.run(&Command::UpsertOffice(untouched), now());
    let expected = Ok(Reply::OfficeUpserted { created: false });
    assert_eq!(ok.outcome, expected, "the late morning has only a cancelled booking");
    let by_schedule = ScheduleRule {
        first_date: monday(),
        last_date: monday(),
        release_at: now(),
        sessions: Some(vec![moved_morning(9)]),
        waiting_room: false,
    };
    let refused = fixture.run(&Command::SetSchedule { office_id: office_id(), rule: by_schedule }, now());
    assert_eq!(refused.outcome, Err(Rejection::SessionsHaveBookings { bookings: 1 }));
    fixture.assert_rebuilds();
}

#[test]
fn past_days_do_not_stop_a_new_plan() {
    let fixture = Fixture::new();
    let booking = fixture.confirmed(regular(monday()), adult(1), now());
    fixture.run(&Command::CheckIn { booking_id: booking.booking_id }, wib(monday(), 7, 30));
    let mut later = office_settings(office_id(), SMALL);
    later.sessions[0] = moved_morning(9);
    later.working_weekdays = vec![2, 3, 4, 5];
    let ok = fixture.run(&Command::UpsertOffice(later), wib(tuesday(), 7, 0));
    assert_eq!(ok.outcome, Ok(Reply::OfficeUpserted { created: false }), "Monday is history");
    assert_eq!(fixture.booking(booking.booking_id).state, BookingState::CheckedIn);
    fixture.assert_rebuilds();
}

// ---------------------------------------------------------------------------------------------------------------
// 10. Schedule rules for the past do not pile up.

fn one_day_schedule(on: Date) -> Command {
    let rule = ScheduleRule { first_date: on, last_date: on, release_at: now(), sessions: None, waiting_room: false };
    Command::SetSchedule { office_id: office_id(), rule }
}

#[test]
fn schedules_whose_dates_have_passed_do_not_count_against_the_limit() {
    let fixture = Fixture::new();
    let first = monday();
    for offset in 0..SCHEDULES_PER_OFFICE_MAX as i32 {
        let set = fixture.book.execute(
            &request(&format!("schedule-{offset}")),
            &one_day_schedule(first.plus_days(offset)),
            now(),
            &fixture.log,
        );
        assert_eq!(verdict(&set.outcome), "OK", "schedule {offset}");
    }
    let full = fixture.run(&one_day_schedule(first.plus_days(2_000)), now());
    assert_eq!(full.outcome, Err(Rejection::LimitReached { limit: "schedules_per_office_max".into() }));
    let month_later = wib(first.plus_days(30), 9, 0);
    let room = fixture.run(&one_day_schedule(first.plus_days(2_000)), month_later);
    assert_eq!(verdict(&room.outcome), "OK", "30 days have passed: their schedules are gone");
    let office = fixture.book.office(&office_id()).expect("office");
    assert_eq!(office.rules.len(), SCHEDULES_PER_OFFICE_MAX - 30 + 1);
    fixture.assert_rebuilds();
}

#[test]
fn the_office_s_own_plan_returns_for_dates_whose_schedule_was_dropped() {
    let fixture = Fixture::new();
    fixture.run(&one_day_schedule(monday()), now());
    let release = fixture.book.office(&office_id()).expect("office").plan(monday()).expect("plan").release_at;
    assert_eq!(release, now());
    fixture.run(&one_day_schedule(wednesday()), wib(tuesday(), 9, 0));
    let office = fixture.book.office(&office_id()).expect("office");
    assert_eq!(office.rules.len(), 1, "Monday's schedule is gone");
    let _: Timestamp = office.plan(monday()).expect("Monday is still a working day").release_at;
}
