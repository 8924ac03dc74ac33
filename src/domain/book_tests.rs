//! Behaviour tests of the quota book: one rule per test, named for what it proves.

use super::testkit::*;
use crate::domain::bookings::booking::BookingState;
use crate::domain::bookings::refund::RefundReason;
use crate::domain::bookings::rules::BookRules;
use crate::domain::catalogue::office::{Pool, ScheduleRule, ServiceType};
use crate::domain::messages::command::Command;
use crate::domain::messages::rejection::Rejection;
use crate::domain::messages::reply::Reply;
use crate::domain::state::reads::SessionState;
use crate::domain::state::shard::ShardKey;
use crate::domain::values::ids::BookingId;
use crate::domain::values::time::Timestamp;

fn regular(on: crate::domain::values::time::Date) -> crate::domain::bookings::booking::SlotRef {
    slot(on, morning(), Pool::Regular)
}

fn cancel(booking_id: BookingId) -> Command {
    Command::Cancel { booking_id }
}

fn check_in(booking_id: BookingId) -> Command {
    Command::CheckIn { booking_id }
}

fn reschedule(
    booking_id: BookingId,
    date: crate::domain::values::time::Date,
    session_id: crate::domain::values::ids::SessionId,
) -> Command {
    Command::Reschedule { booking_id, date, session_id }
}

fn close(date: crate::domain::values::time::Date, reopen: bool) -> Command {
    Command::CloseDate { office_id: office_id(), date, reason: "hari libur".into(), reopen }
}

fn states(
    fixture: &Fixture,
    at: Timestamp,
    on: crate::domain::values::time::Date,
) -> Vec<(String, Pool, SessionState)> {
    let sessions = fixture.book.availability(&office_id(), ServiceType::NewPassport, on, on, at).expect("query");
    sessions
        .iter()
        .flat_map(|session| session.pools.iter().map(|pool| (session.session_id.to_string(), pool.pool, pool.state)))
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Holding and paying.

#[test]
fn hold_then_confirm() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(monday()), adult(1), now());
    assert_eq!(booking.state, BookingState::AwaitingPayment);
    assert_ne!(booking.booking_id, BookingId(1), "booking numbers are drawn, not counted");
    assert_eq!(booking.payment_code_text().len(), 15);
    assert_eq!(fixture.remaining(&regular(monday()), now()), SMALL.regular - 1);
    let paid = fixture.run(&pay(booking.booking_id, "simponi-1"), now().plus_ms(60_000));
    match paid.outcome {
        Ok(Reply::Paid { booking: paid, revived: false, in_grace: false }) => {
            assert_eq!(paid.state, BookingState::Confirmed);
            assert_eq!(paid.payment_reference.map(|reference| reference.to_string()), Some("simponi-1".into()));
        }
        other => panic!("expected a payment, got {other:?}"),
    }
    assert!(paid.log_position.is_some());
    assert_eq!(fixture.remaining(&regular(monday()), now()), SMALL.regular - 1, "a confirmed booking keeps its slot");
    assert!(fixture.book.due_expiries(now().plus_ms(DAY_MS), 10).is_empty(), "a paid booking never expires");
}

#[test]
fn hold_before_the_release_instant_is_not_yet_open_with_opens_at_the_release() {
    let release = release_of(wednesday());
    let fixture = Fixture::new();
    let refused = fixture.run(&hold(regular(wednesday()), adult(1)), release.plus_ms(-1));
    assert_eq!(refused.outcome, Err(Rejection::NotYetOpen { opens_at: release }));
    assert_eq!(refused.log_position, None, "a refusal is not logged");
    let held = fixture.run(&hold(regular(wednesday()), adult(1)), release);
    assert_eq!(crate::domain::testkit::verdict(&held.outcome), "OK", "bookable at exactly the release instant");
}

#[test]
fn hold_when_every_slot_is_taken_is_session_full() {
    let steps: Vec<_> = (1..=4).map(|serial| (hold(regular(monday()), adult(serial)), now())).collect();
    let fixture = check(&steps, &["OK", "OK", "OK", "SESSION_FULL"]);
    let refused = fixture.run(&hold(regular(monday()), adult(9)), now());
    assert_eq!(refused.outcome, Err(Rejection::SessionFull { remaining: 0 }));
    assert_eq!(
        verdict(&fixture.run(&hold(slot(monday(), late_morning(), Pool::Regular), adult(9)), now()).outcome),
        "OK"
    );
}

#[test]
fn closed_date_refuses_holds_and_still_lists_its_bookings() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(tuesday()), adult(1), now());
    let closed = fixture.run(&close(tuesday(), false), now());
    assert_eq!(closed.outcome, Ok(Reply::DateClosed { bookings_affected: 1 }));
    let refused = fixture.run(&hold(regular(tuesday()), adult(2)), now());
    assert_eq!(refused.outcome, Err(Rejection::DateClosed { reason: "hari libur".into() }));
    let (listed, more) = fixture.book.list_bookings(&office_id(), tuesday(), None, 10).expect("list");
    assert_eq!(listed, vec![booking.clone()]);
    assert!(!more);
    assert_eq!(fixture.booking(booking.booking_id).state, BookingState::AwaitingPayment, "closing changes no booking");
    assert_eq!(verdict(&fixture.run(&close(tuesday(), true), now()).outcome), "OK");
    assert_eq!(verdict(&fixture.run(&hold(regular(tuesday()), adult(2)), now()).outcome), "OK", "reopened");
    fixture.assert_rebuilds();
}

#[test]
fn second_hold_by_the_same_applicant_names_the_first_booking() {
    let fixture = Fixture::new();
    let first = fixture.held(regular(monday()), adult(1), now());
    let elsewhere = slot(tuesday(), late_morning(), Pool::Regular);
    let refused = fixture.run(&hold(elsewhere, adult(1)), now());
    assert_eq!(refused.outcome, Err(Rejection::ApplicantHasBooking { booking_id: first.booking_id }));
    assert_eq!(fixture.book.find_bookings(adult(1).nik).len(), 1);
}

#[test]
fn group_hold_is_all_or_nothing() {
    let fixture = Fixture::new();
    let family: Vec<_> = (1..=4).map(adult).collect();
    let logged = fixture.log.len();
    let refused = fixture.run(&hold_group(regular(monday()), family.clone()), now());
    assert_eq!(refused.outcome, Err(Rejection::SessionFull { remaining: 3 }));
    assert_eq!(fixture.log.len(), logged, "nothing logged");
    assert_eq!(fixture.remaining(&regular(monday()), now()), 3, "nothing taken");
    assert!(family.iter().all(|member| fixture.book.find_bookings(member.nik).is_empty()));

    let held = fixture.run(&hold_group(regular(monday()), family[..3].to_vec()), now());
    let Ok(Reply::Held { bookings, group_id: Some(group_id) }) = held.outcome else {
        panic!("expected a group hold, got {:?}", held.outcome)
    };
    assert_eq!(bookings.len(), 3);
    assert!(bookings.iter().all(|booking| booking.group_id == Some(group_id)), "one group id for all");
    assert_eq!(group_id.0, bookings[0].booking_id.0, "the group is numbered like its first booking");
    let applicants: Vec<_> = bookings.iter().map(|booking| booking.applicant.clone()).collect();
    assert_eq!(applicants, family[..3].to_vec(), "bookings in applicant order");
    assert_eq!(fixture.remaining(&regular(monday()), now()), 0);
    fixture.assert_rebuilds();
}

#[test]
fn group_hold_with_one_member_already_booked_takes_nothing() {
    let fixture = Fixture::new();
    let first = fixture.held(slot(tuesday(), morning(), Pool::Regular), adult(2), now());
    let refused = fixture.run(&hold_group(regular(monday()), vec![adult(1), adult(2), adult(3)]), now());
    assert_eq!(refused.outcome, Err(Rejection::ApplicantHasBooking { booking_id: first.booking_id }));
    assert_eq!(fixture.remaining(&regular(monday()), now()), 3);
    assert!(fixture.book.find_bookings(adult(1).nik).is_empty());
}

#[test]
fn group_hold_naming_one_applicant_twice_is_invalid() {
    // Without this check both bookings pass the per-applicant limit and the applicant ends with two active bookings.
    let fixture = Fixture::new();
    let refused = fixture.run(&hold_group(regular(monday()), vec![adult(1), adult(2), adult(1)]), now());
    match refused.outcome {
        Err(Rejection::Invalid(violations)) => assert_eq!(violations[0].field, "applicants[2].nik"),
        other => panic!("expected an invalid group, got {other:?}"),
    }
    assert_eq!(fixture.remaining(&regular(monday()), now()), 3);
}

#[test]
fn payment_deadline_is_the_payment_window_after_the_hold() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(monday()), adult(1), now());
    assert_eq!(booking.payment_deadline, now().plus_ms(PAYMENT_WINDOW_MS));
    assert_eq!(booking.session_starts_at, wib(monday(), 8, 0));
}

#[test]
fn payment_deadline_is_never_after_the_session_starts() {
    let fixture = Fixture::new();
    let at = wib(monday(), 7, 0);
    let booking = fixture.held(regular(monday()), adult(1), at);
    assert_eq!(booking.payment_deadline, wib(monday(), 8, 0), "min(now + 2 h, session start)");
    let later = fixture.held(slot(monday(), late_morning(), Pool::Regular), adult(2), at);
    assert_eq!(later.payment_deadline, at.plus_ms(PAYMENT_WINDOW_MS));
}

#[test]
fn hold_keeps_its_slot_through_the_settlement_grace_then_expires_and_the_slot_returns() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(monday()), adult(1), now());
    let deadline = booking.payment_deadline;
    assert!(fixture.book.due_expiries(deadline.plus_ms(-1), 10).is_empty());
    assert!(fixture.book.expire(booking.booking_id, deadline.plus_ms(-1), &fixture.log).is_none());
    assert_eq!(fixture.book.due_expiries(deadline, 10), vec![booking.booking_id]);
    let (overdue, _) = fixture.book.expire(booking.booking_id, deadline, &fixture.log).expect("due");
    let settles_until = deadline.plus_ms(SETTLEMENT_GRACE_MS);
    assert_eq!(overdue.state, BookingState::AwaitingPayment, "still holding its slot");
    assert_eq!(overdue.settlement_deadline, Some(settles_until));
    assert_eq!(fixture.remaining(&regular(monday()), deadline), 2, "nobody else can take the slot yet");
    assert_eq!(verdict(&fixture.run(&hold(regular(monday()), adult(1)), deadline).outcome), "APPLICANT_HAS_BOOKING");
    assert!(fixture.book.due_expiries(settles_until.plus_ms(-1), 10).is_empty());
    let (expired, _) = fixture.book.expire(booking.booking_id, settles_until, &fixture.log).expect("due again");
    assert_eq!(expired.state, BookingState::Expired);
    assert_eq!(expired.settlement_deadline, None);
    assert_eq!(expired.updated_at, settles_until, "expired at the end of the grace, whenever the ticker ran");
    assert_eq!(fixture.remaining(&regular(monday()), settles_until), 3, "the slot returns");
    assert!(fixture.book.due_expiries(deadline.plus_ms(DAY_MS), 10).is_empty());
    assert!(fixture.book.expire(booking.booking_id, deadline.plus_ms(DAY_MS), &fixture.log).is_none(), "once");
    let again = fixture.run(&hold(regular(monday()), adult(1)), settles_until).outcome;
    assert_eq!(verdict(&again), "OK", "may book again");
    fixture.assert_rebuilds();
}

#[test]
fn a_ticker_that_was_down_through_the_whole_grace_expires_at_its_end_in_one_step() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(monday()), adult(1), now());
    let late = booking.payment_deadline.plus_ms(DAY_MS);
    let (expired, _) = fixture.book.expire(booking.booking_id, late, &fixture.log).expect("due");
    assert_eq!(expired.state, BookingState::Expired);
    assert_eq!(expired.updated_at, booking.payment_deadline.plus_ms(SETTLEMENT_GRACE_MS));
    fixture.assert_rebuilds();
}

#[test]
fn without_a_settlement_grace_a_hold_expires_at_its_deadline() {
    let fixture = Fixture::with(BookRules { payment_settlement_grace_ms: 0, ..rules() }, SMALL);
    let booking = fixture.held(regular(monday()), adult(1), now());
    let (expired, _) = fixture.book.expire(booking.booking_id, booking.payment_deadline, &fixture.log).expect("due");
    assert_eq!(expired.state, BookingState::Expired);
    assert_eq!(expired.updated_at, booking.payment_deadline);
}

#[test]
fn the_settlement_grace_never_runs_past_the_session_start() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(monday()), adult(1), wib(monday(), 7, 0));
    assert_eq!(booking.payment_deadline, wib(monday(), 8, 0), "the deadline is the session start");
    let (expired, _) = fixture.book.expire(booking.booking_id, booking.payment_deadline, &fixture.log).expect("due");
    assert_eq!(expired.state, BookingState::Expired, "no grace: the slot is of no use once the session starts");
    let other = fixture.held(slot(monday(), late_morning(), Pool::Regular), adult(2), wib(monday(), 7, 50));
    assert_eq!(other.payment_deadline, wib(monday(), 9, 50));
    let (overdue, _) = fixture.book.expire(other.booking_id, wib(monday(), 9, 50), &fixture.log).expect("due");
    assert_eq!(overdue.settlement_deadline, Some(wib(monday(), 10, 0)), "cut at the start of 10:00-12:00");
}

#[test]
fn due_expiries_are_soonest_first_and_bounded() {
    let fixture = Fixture::new();
    let ids: Vec<_> = (1..=3)
        .map(|serial| fixture.held(regular(monday()), adult(serial), now().plus_ms(i64::from(3 - serial))))
        .map(|booking| booking.booking_id)
        .collect();
    let due = fixture.book.due_expiries(now().plus_ms(DAY_MS), 2);
    assert_eq!(due, vec![ids[2], ids[1]]);
}

#[test]
fn late_payment_revives_the_booking_when_its_slot_is_still_free() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(monday()), adult(1), now());
    fixture.lapse(&booking);
    let late = fixture.run(&pay(booking.booking_id, "simponi-late"), booking.payment_deadline.plus_ms(HOUR_MS));
    match late.outcome {
        Ok(Reply::Paid { booking: revived, revived: true, in_grace: false }) => {
            assert_eq!(revived.state, BookingState::Confirmed);
        }
        other => panic!("expected a revival, got {other:?}"),
    }
    assert_eq!(fixture.remaining(&regular(monday()), now()), 2);
    assert_eq!(fixture.book.office_stats(&office_id()).expect("stats").counters.revivals_total, 1);
    fixture.assert_rebuilds();
}

#[test]
fn late_payment_before_the_ticker_ran_confirms_the_slot_it_still_holds() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(monday()), adult(1), now());
    let late = fixture.run(&pay(booking.booking_id, "simponi-late"), booking.payment_deadline.plus_ms(1));
    assert!(matches!(late.outcome, Ok(Reply::Paid { revived: true, .. })), "{:?}", late.outcome);
    assert!(fixture.book.due_expiries(now().plus_ms(DAY_MS), 10).is_empty());
}

#[test]
fn late_payment_is_refused_and_refunded_when_the_slot_is_gone() {
    let fixture = Fixture::with(rules(), Capacities { regular: 1, priority: 1 });
    let lapsed = fixture.held(regular(monday()), adult(1), now());
    let expired_at = fixture.lapse(&lapsed);
    let taker = fixture.held(regular(monday()), adult(2), expired_at);
    let at = lapsed.payment_deadline.plus_ms(HOUR_MS);
    let late = fixture.run(&pay(lapsed.booking_id, "simponi-late"), at);
    assert_eq!(late.outcome, Err(Rejection::PaymentExpired { booking_id: lapsed.booking_id }));
    assert!(late.log_position.is_some(), "the refund is a logged fact");
    assert_eq!(fixture.booking(lapsed.booking_id).state, BookingState::Expired);
    assert_eq!(fixture.booking(taker.booking_id).state, BookingState::AwaitingPayment);
    let (refunds, more) = fixture.book.list_refunds(Some(&office_id()), 0, 10);
    assert!(!more);
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].booking_id, lapsed.booking_id);
    assert_eq!(refunds[0].reason, RefundReason::PaymentExpired);
    assert_eq!(refunds[0].recorded_at, at);
    assert_eq!(refunds[0].payment_reference.to_string(), "simponi-late");
    fixture.assert_rebuilds();
}

#[test]
fn late_payment_is_refused_when_the_applicant_has_booked_again() {
    let fixture = Fixture::new();
    let lapsed = fixture.held(regular(monday()), adult(1), now());
    let expired_at = fixture.lapse(&lapsed);
    fixture.held(regular(tuesday()), adult(1), expired_at);
    let late = fixture.run(&pay(lapsed.booking_id, "simponi-late"), expired_at);
    assert_eq!(late.outcome, Err(Rejection::PaymentExpired { booking_id: lapsed.booking_id }));
}

#[test]
fn late_payment_after_the_session_started_is_refused() {
    let fixture = Fixture::new();
    let lapsed = fixture.held(regular(monday()), adult(1), now());
    fixture.lapse(&lapsed);
    let late = fixture.run(&pay(lapsed.booking_id, "simponi-late"), wib(monday(), 8, 0));
    assert_eq!(late.outcome, Err(Rejection::PaymentExpired { booking_id: lapsed.booking_id }));
}

#[test]
fn the_same_payment_twice_changes_nothing_and_its_answer_is_remembered() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(monday()), adult(1), now());
    fixture.run(&pay(booking.booking_id, "simponi-1"), now());
    let id = request("redelivery-1");
    let again = fixture.run_as(&id, &pay(booking.booking_id, "simponi-1"), now().plus_ms(HOUR_MS));
    let Ok(Reply::PaymentRepeated { booking: Some(read) }) = &again.outcome else {
        panic!("expected the payment recognised, got {:?}", again.outcome)
    };
    assert_eq!(read.state, BookingState::Confirmed);
    assert!(again.log_position.is_some(), "logged, so that the answer is remembered");
    assert!(fixture.book.list_refunds(None, 0, 10).0.is_empty(), "nothing refunded");
    fixture.run(&cancel(booking.booking_id), now().plus_ms(2 * HOUR_MS));
    let retry = fixture.run_as(&id, &pay(booking.booking_id, "simponi-1"), now().plus_ms(3 * HOUR_MS));
    let Ok(Reply::PaymentRepeated { booking: Some(now_read) }) = &retry.outcome else {
        panic!("expected the first answer again, got {:?}", retry.outcome)
    };
    assert_eq!(now_read.booking_id, booking.booking_id, "the retry gets the first answer's booking");
    assert_eq!(now_read.state, BookingState::Cancelled, "as it is now: it changed since");
    assert!(retry.repeated);
    fixture.assert_rebuilds();
}

#[test]
fn a_booking_s_own_payment_redelivered_after_cancellation_records_no_refund() {
    let fixture = Fixture::new();
    let booking = fixture.confirmed(regular(monday()), adult(1), now());
    fixture.run(&cancel(booking.booking_id), now());
    let reference = format!("pay-{}", booking.booking_id.0);
    let again = fixture.run(&pay(booking.booking_id, &reference), now().plus_ms(HOUR_MS));
    match again.outcome {
        Ok(Reply::PaymentRepeated { booking: Some(read) }) => assert_eq!(read.state, BookingState::Cancelled),
        other => panic!("expected the payment recognised, got {other:?}"),
    }
    assert!(fixture.book.list_refunds(None, 0, 10).0.is_empty(), "the accepted payment is not refunded");
    let other = fixture.run(&pay(booking.booking_id, "simponi-other"), now().plus_ms(HOUR_MS));
    assert_eq!(other.outcome, Err(Rejection::PaidAfterCancellation { booking_id: booking.booking_id }));
    assert_eq!(fixture.book.list_refunds(None, 0, 10).0.len(), 1, "another payment is");
    fixture.assert_rebuilds();
}

#[test]
fn a_different_payment_for_a_paid_booking_is_already_paid_and_refunded() {
    let fixture = Fixture::new();
    let booking = fixture.confirmed(regular(monday()), adult(1), now());
    let second = fixture.run(&pay(booking.booking_id, "simponi-2"), now());
    assert_eq!(second.outcome, Err(Rejection::AlreadyPaid { booking_id: booking.booking_id }));
    let refunds = fixture.book.list_refunds(None, 0, 10).0;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].reason, RefundReason::DuplicatePayment);
    let kept = fixture.booking(booking.booking_id).payment_reference.map(|reference| reference.to_string());
    assert_eq!(kept, Some(format!("pay-{}", booking.booking_id.0)), "the first payment stands");
}

#[test]
fn a_payment_for_a_cancelled_booking_is_refunded() {
    let fixture = Fixture::new();
    let booking = fixture.held(regular(monday()), adult(1), now());
    fixture.run(&cancel(booking.booking_id), now());
    let paid = fixture.run(&pay(booking.booking_id, "simponi-1"), now());
    assert_eq!(crate::domain::testkit::verdict(&paid.outcome), "INVALID_STATE");
    assert_eq!(fixture.book.list_refunds(None, 0, 10).0[0].reason, RefundReason::Cancelled);
    assert_eq!(fixture.booking(booking.booking_id).state, BookingState::Cancelled);
}

// ---------------------------------------------------------------------------------------------------------------
// Cancelling, rescheduling, checking in.

#[test]
fn cancel_frees_the_slot() {
    let fixture = Fixture::new();
    let booking = fixture.confirmed(regular(monday()), adult(1), now());
    let cancelled = fixture.run(&cancel(booking.booking_id), now());
    assert!(matches!(&cancelled.outcome, Ok(Reply::Booking(b)) if b.state == BookingState::Cancelled));
    assert_eq!(fixture.remaining(&regular(monday()), now()), 3);
    let again = fixture.run(&cancel(booking.booking_id), now());
    assert_eq!(verdict(&again.outcome), "INVALID_STATE");
    assert_eq!(verdict(&fixture.run(&hold(regular(monday()), adult(1)), now()).outcome), "OK", "may book again");
}

#[test]
fn unknown_booking_is_booking_not_found() {
    let fixture = Fixture::new();
    assert_eq!(fixture.run(&cancel(BookingId(77)), now()).outcome, Err(Rejection::BookingNotFound(BookingId(77))));
}

#[test]
fn reschedule_moves_the_booking_atomically() {
    let fixture = Fixture::new();
    let booking = fixture.confirmed(regular(monday()), adult(1), now());
    let to = slot(tuesday(), late_morning(), Pool::Regular);
    let moved = fixture.run(&reschedule(booking.booking_id, tuesday(), late_morning()), now());
    let Ok(Reply::Booking(moved)) = moved.outcome else { panic!("expected a reschedule, got {:?}", moved.outcome) };
    assert_eq!(moved.slot, to);
    assert_eq!(moved.state, BookingState::Confirmed);
    assert_eq!(moved.reschedules_used, 1);
    assert_eq!(moved.session_starts_at, wib(tuesday(), 10, 0));
    assert_eq!(fixture.remaining(&regular(monday()), now()), 3, "old slot freed");
    assert_eq!(fixture.remaining(&to, now()), 2, "new slot taken");
    assert!(fixture.book.list_bookings(&office_id(), monday(), None, 10).expect("list").0.is_empty());
    assert_eq!(fixture.book.list_bookings(&office_id(), tuesday(), None, 10).expect("list").0, vec![moved]);
    fixture.assert_rebuilds();
}

#[test]
fn reschedule_is_allowed_once() {
    let fixture = Fixture::new();
    let booking = fixture.confirmed(regular(monday()), adult(1), now());
    assert_eq!(verdict(&fixture.run(&reschedule(booking.booking_id, tuesday(), morning()), now()).outcome), "OK");
    let again = fixture.run(&reschedule(booking.booking_id, monday(), morning()), now());
    assert_eq!(verdict(&again.outcome), "RESCHEDULE_NOT_ALLOWED");
    assert_eq!(fixture.booking(booking.booking_id).slot, regular(tuesday()));
}

#[test]
fn reschedule_is_allowed_until_the_day_before_and_not_on_the_day() {
    let fixture = Fixture::new();
    let eve = fixture.confirmed(regular(tuesday()), adult(1), now());
    let on_the_day = fixture.confirmed(regular(tuesday()), adult(2), now());
    let last_minute = wib(monday(), 23, 59);
    let moved = fixture.run(&reschedule(eve.booking_id, tuesday(), late_morning()), last_minute);
    assert_eq!(verdict(&moved.outcome), "OK", "H-1 is still allowed");
    let refused = fixture.run(&reschedule(on_the_day.booking_id, tuesday(), late_morning()), wib(tuesday(), 0, 0));
    assert_eq!(verdict(&refused.outcome), "RESCHEDULE_NOT_ALLOWED");
}

#[test]
fn reschedule_into_a_full_session_changes_nothing() {
    let fixture = Fixture::with(rules(), Capacities { regular: 1, priority: 1 });
    let booking = fixture.confirmed(regular(monday()), adult(1), now());
    fixture.held(slot(monday(), late_morning(), Pool::Regular), adult(2), now());
    let before = fixture.book.image(0);
    let logged = fixture.log.len();
    let refused = fixture.run(&reschedule(booking.booking_id, monday(), late_morning()), now());
    assert_eq!(refused.outcome, Err(Rejection::SessionFull { remaining: 0 }));
    assert_eq!(fixture.log.len(), logged);
    assert_eq!(fixture.book.image(0), before, "no change at all");
}

#[test]
fn reschedule_of_a_hold_keeps_its_deadline_and_moves_its_expiry() {
    let fixture = Fixture::new();
    let at = wib(monday(), 7, 0);
    let booking = fixture.held(slot(tuesday(), morning(), Pool::Regular), adult(1), now());
    let moved = fixture.run(&reschedule(booking.booking_id, tuesday(), late_morning()), now().plus_ms(HOUR_MS));
    let Ok(Reply::Booking(moved)) = moved.outcome else { panic!("expected a reschedule") };
    assert_eq!(moved.payment_deadline, booking.payment_deadline);
    assert_eq!(fixture.book.due_expiries(booking.payment_deadline, 10), vec![booking.booking_id]);
    fixture.lapse(&booking);
    assert_eq!(fixture.remaining(&slot(tuesday(), late_morning(), Pool::Regular), at), 3);
    fixture.assert_rebuilds();
}

#[test]
fn check_in_only_on_the_appointment_day() {
    let fixture = Fixture::new();
    let booking = fixture.confirmed(regular(monday()), adult(1), now());
    let unpaid = fixture.held(regular(monday()), adult(2), now());
    let day_before = fixture.run(&check_in(booking.booking_id), wib(monday(), 0, 0).plus_ms(-1));
    assert_eq!(verdict(&day_before.outcome), "INVALID_STATE");
    let early = wib(monday(), 7, 30);
    assert_eq!(verdict(&fixture.run(&check_in(unpaid.booking_id), early).outcome), "INVALID_STATE", "unpaid");
    let arrived = fixture.run(&check_in(booking.booking_id), early);
    assert!(matches!(&arrived.outcome, Ok(Reply::Booking(b)) if b.state == BookingState::CheckedIn));
    assert_eq!(fixture.remaining(&regular(monday()), now()), 1, "a checked-in booking keeps its slot");
    let twice = fixture.run(&check_in(booking.booking_id), early);
    assert_eq!(verdict(&twice.outcome), "INVALID_STATE");
    assert_eq!(verdict(&fixture.run(&hold(regular(tuesday()), adult(1)), early).outcome), "OK", "no longer active");
    fixture.assert_rebuilds();
}

// ---------------------------------------------------------------------------------------------------------------
// Idempotency.

#[test]
fn retry_with_the_same_request_id_returns_the_identical_outcome_and_creates_nothing() {
    let fixture = Fixture::new();
    let id = request("client-retry-1");
    let command = hold(regular(monday()), adult(1));
    let first = fixture.run_as(&id, &command, now());
    let logged = fixture.log.len();
    let retry = fixture.run_as(&id, &command, now().plus_ms(60_000));
    assert_eq!(retry.outcome, first.outcome);
    assert_eq!(retry.log_position, first.log_position, "wait for the same record to be durable");
    assert!(retry.repeated && !first.repeated);
    assert_eq!(fixture.log.len(), logged);
    assert_eq!(fixture.remaining(&regular(monday()), now()), 2);
    assert_eq!(fixture.book.sizes().0, 1);
}

#[test]
fn retry_of_a_refused_payment_returns_the_same_refusal_and_records_one_refund() {
    let fixture = Fixture::new();
    let booking = fixture.confirmed(regular(monday()), adult(1), now());
    let id = request("bank-callback-7");
    let first = fixture.run_as(&id, &pay(booking.booking_id, "simponi-2"), now());
    let retry = fixture.run_as(&id, &pay(booking.booking_id, "simponi-2"), now());
    assert_eq!(retry.outcome, first.outcome);
    assert!(retry.repeated);
    assert_eq!(fixture.book.list_refunds(None, 0, 10).0.len(), 1);
}

#[test]
fn the_same_request_id_for_a_different_command_is_request_id_reused() {
    let fixture = Fixture::new();
    let id = request("client-retry-2");
    fixture.run_as(&id, &hold(regular(monday()), adult(1)), now());
    let reused = fixture.run_as(&id, &hold(regular(monday()), adult(2)), now());
    assert_eq!(reused.outcome, Err(Rejection::RequestIdReused));
    let reused = fixture.run_as(&id, &cancel(BookingId(1)), now());
    assert_eq!(reused.outcome, Err(Rejection::RequestIdReused));
    assert!(fixture.book.find_bookings(adult(2).nik).is_empty());
}

#[test]
fn retry_of_a_refused_hold_is_decided_again() {
    let fixture = Fixture::with(rules(), Capacities { regular: 1, priority: 1 });
    let taker = fixture.held(regular(monday()), adult(1), now());
    let id = request("client-retry-3");
    let command = hold(regular(monday()), adult(2));
    assert_eq!(verdict(&fixture.run_as(&id, &command, now()).outcome), "SESSION_FULL");
    fixture.run(&cancel(taker.booking_id), now());
    let retry = fixture.run_as(&id, &command, now());
    assert_eq!(verdict(&retry.outcome), "OK");
    assert!(!retry.repeated);
}

#[test]
fn request_ids_are_forgotten_after_the_retention_window() {
    let fixture = Fixture::new();
    let retention = fixture.book.rules().request_retention_ms;
    let id = request("client-retry-4");
    let command = hold(regular(monday()), adult(1));
    let first = fixture.run_as(&id, &command, now());
    assert_eq!(fixture.book.forget_requests(now().plus_ms(retention), &fixture.log), None, "nothing is stale yet");
    assert!(fixture.run_as(&id, &command, now().plus_ms(retention - 1)).repeated, "remembered within the window");
    let forgotten = fixture.book.forget_requests(now().plus_ms(retention + 1), &fixture.log);
    assert_eq!(forgotten, Some(fixture.log.len() as u64));
    assert_eq!(fixture.book.sizes().1, 0, "the office upsert and the hold are forgotten");
    let later = fixture.run_as(&id, &command, now().plus_ms(retention + 1));
    assert!(!later.repeated);
    assert_eq!(later.outcome, Err(Rejection::ApplicantHasBooking { booking_id: held_ids(&first.outcome)[0] }));
    fixture.assert_rebuilds();
}

#[test]
fn a_request_id_past_the_window_is_decided_again_even_before_it_is_dropped() {
    let fixture = Fixture::new();
    let id = request("client-retry-5");
    fixture.run_as(&id, &hold(regular(monday()), adult(1)), now());
    let at = now().plus_ms(fixture.book.rules().request_retention_ms);
    let other = fixture.run_as(&id, &hold(regular(monday()), adult(2)), at);
    assert_eq!(verdict(&other.outcome), "OK", "an old id is free for a new command");
}

// ---------------------------------------------------------------------------------------------------------------
// Pools, offices, availability.

#[test]
fn priority_pool_is_for_the_old_the_young_and_the_disabled() {
    let fixture = Fixture::with(rules(), Capacities { regular: 3, priority: 3 });
    let priority = slot(monday(), morning(), Pool::Priority);
    for applicant in [elder(1), toddler(2), disabled(3)] {
        assert_eq!(verdict(&fixture.run(&hold(priority.clone(), applicant), now()).outcome), "OK");
    }
    let fixture = Fixture::new();
    match fixture.run(&hold(priority.clone(), adult(4)), now()).outcome {
        Err(Rejection::Invalid(violations)) => assert_eq!(violations[0].field, "applicant"),
        other => panic!("expected ineligible, got {other:?}"),
    }
    match fixture.run(&hold_group(priority.clone(), vec![elder(5), adult(6)]), now()).outcome {
        Err(Rejection::Invalid(violations)) => {
            let fields: Vec<_> = violations.iter().map(|violation| violation.field.as_str()).collect();
            assert_eq!(fields, ["applicants[1]"]);
        }
        other => panic!("expected ineligible, got {other:?}"),
    }
    assert_eq!(fixture.remaining(&priority, now()), SMALL.priority, "nothing taken");
}

#[test]
fn priority_age_limits_are_counted_on_the_appointment_date() {
    let fixture = Fixture::with(rules(), Capacities { regular: 3, priority: 5 });
    let priority = slot(monday(), morning(), Pool::Priority);
    let cases = [
        (date(1966, 12, 7), "OK"),               // 60 on the day
        (date(1966, 12, 8), "INVALID_ARGUMENT"), // 59 until the next day
        (date(2021, 12, 8), "OK"),               // still 4
        (date(2021, 12, 7), "INVALID_ARGUMENT"), // 5 on the day
    ];
    for (serial, (birth, expected)) in cases.into_iter().enumerate() {
        let applicant = applicant_born(serial as u16 + 1, birth, false, false);
        assert_eq!(verdict(&fixture.run(&hold(priority.clone(), applicant), now()).outcome), expected, "{birth}");
    }
}

#[test]
fn upsert_office_that_would_leave_bookings_without_a_slot_is_refused() {
    let fixture = Fixture::new();
    fixture.confirmed(regular(monday()), adult(1), now());
    fixture.held(regular(monday()), adult(2), now());
    let catalog = fixture.book.catalog();
    let shrink = Command::UpsertOffice(office_settings(office_id(), Capacities { regular: 1, priority: 2 }));
    match fixture.run(&shrink, now()).outcome {
        Err(Rejection::Invalid(violations)) => assert_eq!(violations[0].field, "office.sessions"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(*fixture.book.catalog(), *catalog, "catalogue unchanged");
    let fit = Command::UpsertOffice(office_settings(office_id(), Capacities { regular: 2, priority: 2 }));
    assert_eq!(fixture.run(&fit, now()).outcome, Ok(Reply::OfficeUpserted { created: false }));
    assert_eq!(fixture.remaining(&regular(monday()), now()), 0);
    let mut no_mondays = office_settings(office_id(), SMALL);
    no_mondays.working_weekdays = vec![2, 3, 4, 5];
    assert_eq!(verdict(&fixture.run(&Command::UpsertOffice(no_mondays), now()).outcome), "INVALID_ARGUMENT");
    fixture.assert_rebuilds();
}

#[test]
fn availability_is_not_yet_open_open_full_or_closed() {
    let fixture = Fixture::new();
    let not_yet = states(&fixture, now(), wednesday());
    assert!(not_yet.iter().all(|(_, _, state)| *state == SessionState::NotYetOpen), "{not_yet:?}");
    let open = states(&fixture, now(), monday());
    assert_eq!(open.len(), 4, "two sessions, two pools");
    assert!(open.iter().all(|(_, _, state)| *state == SessionState::Open));
    for serial in 1..=3 {
        fixture.held(regular(monday()), adult(serial), now());
    }
    let full = states(&fixture, now(), monday());
    assert!(full.contains(&(morning().to_string(), Pool::Regular, SessionState::Full)));
    assert!(full.contains(&(morning().to_string(), Pool::Priority, SessionState::Open)));
    assert!(full.contains(&(late_morning().to_string(), Pool::Regular, SessionState::Open)));
    fixture.run(&close(tuesday(), false), now());
    assert!(states(&fixture, now(), tuesday()).iter().all(|(_, _, state)| *state == SessionState::Closed));
    let started = states(&fixture, wib(monday(), 8, 0), monday());
    assert!(started.contains(&(morning().to_string(), Pool::Regular, SessionState::Closed)));
    assert!(started.contains(&(late_morning().to_string(), Pool::Regular, SessionState::Open)));
    let weekend = fixture.book.availability(&office_id(), ServiceType::NewPassport, saturday(), saturday(), now());
    assert_eq!(weekend.expect("query"), vec![], "no sessions on days off");
}

#[test]
fn a_schedule_sets_the_release_instant_of_its_dates() {
    let fixture = Fixture::new();
    let release = wib(date(2026, 12, 4), 14, 0);
    let rule = ScheduleRule {
        first_date: monday(),
        last_date: wednesday(),
        release_at: release,
        sessions: None,
        waiting_room: false,
    };
    let set = fixture.run(&Command::SetSchedule { office_id: office_id(), rule }, now());
    assert_eq!(set.outcome, Ok(Reply::ScheduleSet { dates_scheduled: 3 }));
    let refused = fixture.run(&hold(regular(monday()), adult(1)), now());
    assert_eq!(refused.outcome, Err(Rejection::NotYetOpen { opens_at: release }));
    assert_eq!(verdict(&fixture.run(&hold(regular(monday()), adult(1)), release).outcome), "OK");
}

// ---------------------------------------------------------------------------------------------------------------
// Rebuilding the state.

/// A history that produces every kind of event.
fn eventful() -> Fixture {
    let fixture = Fixture::new();
    let paid = fixture.confirmed(regular(monday()), adult(1), now());
    let lapsed = fixture.held(regular(monday()), adult(2), now());
    let family =
        fixture.run(&hold_group(slot(tuesday(), late_morning(), Pool::Regular), vec![adult(3), adult(4)]), now());
    let family = held_ids(&family.outcome);
    fixture.run(&hold(slot(monday(), morning(), Pool::Priority), elder(5)), now());
    fixture.run(&pay(paid.booking_id, "simponi-duplicate"), now());
    fixture.run(&reschedule(paid.booking_id, tuesday(), morning()), now());
    fixture.run(&cancel(family[1]), now());
    fixture.run(&pay(family[1], "simponi-cancelled"), now());
    let expired_at = fixture.lapse(&lapsed);
    fixture.run(&pay(lapsed.booking_id, "simponi-late"), expired_at.plus_ms(1));
    fixture.run(&close(wednesday(), false), now());
    fixture.run(&Command::UpsertOffice(office_settings(office_id(), Capacities { regular: 4, priority: 2 })), now());
    let later = now().plus_ms(2 * DAY_MS);
    fixture.book.forget_requests(later, &fixture.log);
    fixture.run(&check_in(paid.booking_id), wib(tuesday(), 7, 0));
    fixture
}

#[test]
fn replaying_the_log_into_a_fresh_book_rebuilds_the_same_image() {
    let fixture = eventful();
    let replayed = replayed(rules(), &fixture.log.events());
    assert_same_image(&replayed.image(0), &fixture.book.image(0), "replay");
    assert_eq!(replayed.sizes(), fixture.book.sizes());
    assert!(replayed.check_invariants().is_ok());
}

#[test]
fn an_image_loads_back_into_the_same_image() {
    let fixture = eventful();
    let image = fixture.book.image(9);
    let loaded = loaded(rules(), image.clone());
    assert_same_image(&loaded.image(9), &image, "image round trip");
    assert_eq!(loaded.sizes(), fixture.book.sizes());
    assert_eq!(loaded.office_stats(&office_id()), fixture.book.office_stats(&office_id()));
}

#[test]
fn a_write_after_a_capture_copies_only_the_records_it_touches() {
    // A snapshot captures the state and encodes it while requests go on: a write afterwards must copy the records it
    // changes, not the whole shard it lands in (that copy once stalled every call for seconds after each snapshot).
    let fixture = Fixture::with(rules(), Capacities { regular: 300, priority: 2 });
    let bookings: Vec<_> = (1..=256).map(|serial| fixture.held(regular(monday()), adult(serial), now())).collect();
    let capture = fixture.book.capture(|| 0);
    let paid = &bookings[0];
    fixture.run(&pay(paid.booking_id, "simponi-after-capture"), now());

    let written = paid.booking_id.shard_index();
    assert!(bookings[1..].iter().any(|booking| booking.booking_id.shard_index() == written), "a neighbour to check");
    for booking in &bookings[1..] {
        let (booking_id, nik) = (booking.booking_id, booking.applicant.nik);
        let captured = &capture.shards[booking_id.shard_index()];
        let shared = fixture.book.read_shard(booking_id.shard_index(), |live| {
            std::ptr::eq(captured.bookings.get(&booking_id).expect("captured"), live.bookings.get(&booking_id).unwrap())
        });
        assert!(shared, "booking {booking_id} was copied by a payment for booking {}", paid.booking_id);
        let captured = &capture.shards[nik.shard_index()];
        let shared = fixture.book.read_shard(nik.shard_index(), |live| {
            std::ptr::eq(captured.applicants.get(&nik).expect("captured"), live.applicants.get(&nik).unwrap())
        });
        assert!(shared, "applicant {nik:?} was copied by a payment for booking {}", paid.booking_id);
    }
    // The day's ledger changed (one slot moved from awaiting to confirmed), but not its set of booking ids.
    let day = crate::domain::state::shard::day_key(&paid.slot);
    let captured = capture.shards[day.shard_index()].days.get(&day).expect("captured day");
    let shared = fixture.book.read_shard(day.shard_index(), |live| {
        let live = live.days.get(&day).expect("live day");
        assert_ne!(captured.sessions, live.sessions, "the payment changed the day's counts");
        std::ptr::eq(captured.booking_ids.iter().next().unwrap(), live.booking_ids.iter().next().unwrap())
    });
    assert!(shared, "the day's booking ids were copied by a payment");
    // The capture still holds the state it took.
    let before = capture.shards[written].bookings.get(&paid.booking_id).expect("captured").state;
    assert_eq!(
        (before, fixture.booking(paid.booking_id).state),
        (BookingState::AwaitingPayment, BookingState::Confirmed)
    );
}

#[test]
fn a_replayed_book_answers_retries_and_continues_like_the_live_one() {
    let fixture = Fixture::new();
    let id = request("client-retry-6");
    let command = hold(regular(monday()), adult(1));
    let first = fixture.run_as(&id, &command, now());
    let replayed = replayed(rules(), &fixture.log.events());
    let retry = replayed.execute(&id, &command, now(), &VecLog::default());
    assert_eq!(retry.outcome, first.outcome);
    assert!(retry.repeated);
    let next = replayed.execute(&request("next"), &hold(regular(monday()), adult(2)), now(), &VecLog::default());
    // The replayed book draws from the same (unkeyed) stream from its start, so its first draw is the number the live
    // book already gave: it is taken, and drawn again.
    assert_ne!(held_ids(&next.outcome)[0], held_ids(&first.outcome)[0], "a number already taken is drawn again");
}

#[test]
fn purging_deletes_finished_bookings_before_the_date_and_keeps_the_rest() {
    let fixture = Fixture::new();
    let cancelled = fixture.held(regular(monday()), adult(1), now());
    fixture.run(&cancel(cancelled.booking_id), now());
    let kept_active = fixture.confirmed(regular(monday()), adult(2), now());
    let later = fixture.held(regular(tuesday()), adult(3), now());
    fixture.run(&cancel(later.booking_id), now());
    let purge = Command::PurgeBookings { before: tuesday() };
    let outcome = fixture.run(&purge, now()).outcome;
    assert_eq!(outcome, Ok(Reply::Purged { bookings_purged: 1 }), "only the finished booking before Tuesday");
    assert!(fixture.book.booking(cancelled.booking_id).is_none());
    assert!(fixture.book.find_bookings(adult(1).nik).is_empty(), "the applicant's record goes with it");
    assert_eq!(fixture.booking(kept_active.booking_id).state, BookingState::Confirmed, "active bookings stay");
    assert_eq!(fixture.booking(later.booking_id).state, BookingState::Cancelled, "later dates stay");
    fixture.assert_invariants();
    fixture.assert_rebuilds();
}

#[test]
fn a_hold_belongs_to_the_caller_its_request_id_names_through_replay_images_and_purges() {
    let fixture = Fixture::new();
    let by_app = crate::domain::values::ids::RequestId::of_caller("app-backend", &request("hold-1"));
    let booking = held_ids(&fixture.run_as(&by_app, &hold(regular(monday()), adult(1)), now()).outcome)[0];
    let anonymous = fixture.held(regular(monday()), adult(2), now()).booking_id;
    let owner = |book: &crate::domain::state::book::QuotaBook, booking_id| {
        book.booking_with_owner(booking_id).and_then(|(_, owner)| owner).map(|owner| owner.to_string())
    };
    assert_eq!(owner(&fixture.book, booking).as_deref(), Some("app-backend"));
    assert_eq!(owner(&fixture.book, anonymous), None, "a request id that names no caller");
    fixture.assert_rebuilds();
    let image = fixture.book.image(0);
    assert_eq!(owner(&loaded(rules(), image), booking).as_deref(), Some("app-backend"), "snapshots keep owners");

    fixture.run(&cancel(booking), now());
    fixture.run(&Command::PurgeBookings { before: tuesday() }, now());
    assert!(fixture.book.image(0).owners.is_empty(), "an owner goes with its purged booking");
    fixture.assert_invariants();
}
