//! What a retry gets back: request records remember the bookings an answer named by id, so a retry gets the same
//! bookings, the same kind of reply and flags, and each booking as it is now (as it was when purged, once purged).

use super::testkit::*;
use crate::domain::bookings::booking::BookingState;
use crate::domain::catalogue::office::Pool;
use crate::domain::messages::command::Command;
use crate::domain::messages::reply::Reply;

#[test]
fn a_retried_hold_gets_its_booking_as_it_is_now_after_the_payment() {
    let fixture = Fixture::new();
    let id = request("hold-then-pay");
    let command = hold(slot(monday(), morning(), Pool::Regular), adult(1));
    let first = fixture.run_as(&id, &command, now());
    let booking_id = held_ids(&first.outcome)[0];
    fixture.run(&pay(booking_id, "simponi-1"), now());
    let retry = fixture.run_as(&id, &command, now().plus_ms(60_000));
    assert!(retry.repeated);
    assert_eq!(retry.log_position, first.log_position, "the first answer's record");
    let Ok(Reply::Held { bookings, group_id: None }) = &retry.outcome else { panic!("a hold's answer: {retry:?}") };
    assert_eq!(bookings, &[fixture.booking(booking_id)], "the same booking, as it is now");
    assert_eq!(bookings[0].state, BookingState::Confirmed);
    assert_eq!(fixture.book.sizes().0, 1, "nothing held twice");
    fixture.assert_rebuilds();
}

#[test]
fn a_retried_hold_whose_booking_was_purged_gets_it_as_it_was_purged() {
    let fixture = Fixture::new();
    let id = request("hold-then-purge");
    let command = hold_group(slot(monday(), morning(), Pool::Regular), vec![adult(1), adult(2)]);
    let first = fixture.run_as(&id, &command, now());
    let [cancelled, kept] = held_ids(&first.outcome)[..] else { panic!("two bookings: {first:?}") };
    fixture.run(&pay(kept, "simponi-1"), now());
    fixture.run(&Command::Cancel { booking_id: cancelled }, now());
    let as_purged = fixture.booking(cancelled);
    let purge = Command::PurgeBookings { before: tuesday() };
    // An operator may purge finished bookings of days still to come: within the retention window of the hold.
    assert_eq!(fixture.run(&purge, now().plus_ms(1_000)).outcome, Ok(Reply::Purged { bookings_purged: 1 }));
    assert!(fixture.book.booking(cancelled).is_none());
    fixture.assert_rebuilds();

    let retry = fixture.run_as(&id, &command, now().plus_ms(2_000));
    assert!(retry.repeated, "answered from memory, not decided again: {retry:?}");
    let Ok(Reply::Held { bookings, group_id: Some(_) }) = &retry.outcome else { panic!("a hold's answer: {retry:?}") };
    assert_eq!(bookings, &[as_purged, fixture.booking(kept)], "the purged one as it was, the other as it is");
    assert_eq!(fixture.book.sizes().0, 1, "nothing held again");
}

#[test]
fn request_records_keep_booking_ids_not_copies_of_the_bookings() {
    let fixture = Fixture::with(rules(), Capacities { regular: 200, priority: 0 });
    for serial in 1..=200 {
        let held = fixture.run(&hold(slot(monday(), morning(), Pool::Regular), adult(serial)), now());
        assert_eq!(verdict(&held.outcome), "OK");
    }
    let image = fixture.book.image(0);
    let encoded_bytes = |encoded: Result<Vec<u8>, postcard::Error>| encoded.expect("encodes").len();
    let bookings = encoded_bytes(postcard::to_stdvec(&image.bookings));
    let requests = encoded_bytes(postcard::to_stdvec(&image.requests));
    // A record is its request id, fingerprint, time and a booking number: a fraction of the booking it names.
    assert!(requests * 2 < bookings, "request records take {requests} bytes, bookings {bookings}");
}
