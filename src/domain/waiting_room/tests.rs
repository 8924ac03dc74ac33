//! The waiting room against its promises: a draw that replays from its seed, first come first served after the release
//! instant, admissions that never outrun the slots, tickets that always end, single-use admission tokens bound to one
//! applicant, `ahead` equal to a naive count, and rooms that rebuild exactly from the log and from an image.

use super::book::{Advanced, Supply, TicketView};
use super::room::{Ticket, TicketId, TicketState, WaitingRoom, WaitingRoomKey, admission_token};
use crate::domain::bookings::booking::{Applicant, BookingState};
use crate::domain::bookings::rules::BookRules;
use crate::domain::catalogue::office::{Pool, ScheduleRule, ServiceType};
use crate::domain::messages::command::{Command, HoldCommand};
use crate::domain::messages::rejection::Rejection;
use crate::domain::messages::reply::Reply;
use crate::domain::state::book::Execution;
use crate::domain::testkit::*;
use crate::domain::values::ids::{AccountId, BookingId, SessionId};
use crate::domain::values::time::{Date, Timestamp};
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::{BTreeMap, BTreeSet};

/// How long before the release instant the test line opens.
const PRE_OPEN_MS: i64 = HOUR_MS;
/// How long an admission lasts in the test line.
const ADMISSION_TTL_MS: i64 = 60_000;

/// Thursday 10 December 2026: the date put behind the test line.
fn thursday() -> Date {
    date(2026, 12, 10)
}

/// The test line's release instant: Tuesday 1 December 2026, 12:00 WIB, two hours after [`now`].
fn release() -> Timestamp {
    now().plus_ms(2 * HOUR_MS)
}

fn room_rules(admission_factor_percent: u32) -> BookRules {
    BookRules {
        waiting_room_pre_open_ms: PRE_OPEN_MS,
        admission_ttl_ms: ADMISSION_TTL_MS,
        admission_factor_percent,
        ..BookRules::default()
    }
}

/// A quota book with the test office and a waiting room in front of Thursday's release.
struct Line {
    fixture: Fixture,
    key: WaitingRoomKey,
}

impl Line {
    fn new(rules: BookRules, capacities: Capacities) -> Line {
        let fixture = Fixture::with(rules, capacities);
        let rule = ScheduleRule {
            first_date: thursday(),
            last_date: thursday(),
            release_at: release(),
            sessions: None,
            waiting_room: true,
        };
        let set = fixture.run(&Command::SetSchedule { office_id: office_id(), rule }, now());
        assert_eq!(set.outcome, Ok(Reply::ScheduleSet { dates_scheduled: 1 }));
        let key = WaitingRoomKey { office_id: office_id(), release_at: release() };
        assert_eq!(fixture.book.waiting_room_keys(), vec![key.clone()]);
        Line { fixture, key }
    }

    fn join(&self, applicant: &Applicant, at: Timestamp) -> TicketView {
        let log = &self.fixture.log;
        match self.fixture.book.join(&unique_request(), &office_id(), ServiceType::NewPassport, applicant.nik, at, log)
        {
            Ok((view, _)) => view,
            Err(rejection) => panic!("join refused: {rejection:?}"),
        }
    }

    /// Moves the line on with the slots the book reports, as the engine's ticker does.
    fn advance(&self, at: Timestamp) -> Option<Advanced> {
        let supply = self.fixture.book.supply(&self.key);
        self.advance_with(supply, &[], at)
    }

    fn advance_with(&self, supply: Supply, idle: &[TicketId], at: Timestamp) -> Option<Advanced> {
        self.fixture.book.advance_waiting_room(&self.key, supply, idle, at, &self.fixture.log)
    }

    fn room(&self) -> WaitingRoom {
        WaitingRoom::clone(self.fixture.book.waiting_rooms.lock()[&self.key].as_ref())
    }

    fn ticket(&self, ticket_id: TicketId) -> Ticket {
        self.room().tickets[&ticket_id].clone()
    }

    fn hold(
        &self,
        applicant: &Applicant,
        session: SessionId,
        pool: Pool,
        token: Option<u64>,
        at: Timestamp,
    ) -> Execution {
        let hold = HoldCommand {
            slot: slot(thursday(), session, pool),
            service: ServiceType::NewPassport,
            applicants: vec![applicant.clone()],
            account_id: AccountId::parse("account-1").expect("id"),
            group: false,
            admission_token: token,
        };
        self.fixture.run(&Command::Hold(hold), at)
    }

    /// Checks the room's own bookkeeping, and that replaying the log and loading the image rebuild it.
    fn assert_rebuilds(&self) {
        assert_room_consistent(&self.room());
        self.fixture.assert_rebuilds();
        let events = self.fixture.log.events();
        let replayed = replayed(self.fixture.book.rules().clone(), &events);
        let loaded = loaded(self.fixture.book.rules().clone(), self.fixture.book.image(0));
        let at = release().plus_ms(1);
        for ticket_id in self.room().tickets.keys() {
            let view = self.fixture.book.ticket(*ticket_id, at);
            assert_eq!(replayed.ticket(*ticket_id, at), view, "replayed view of {ticket_id}");
            assert_eq!(loaded.ticket(*ticket_id, at), view, "loaded view of {ticket_id}");
        }
        for book in [&replayed, &loaded] {
            assert_room_consistent(&book.waiting_rooms.lock()[&self.key]);
        }
    }
}

/// An applicant who may use either pool (an elder), distinct per serial.
fn person(serial: u16) -> Applicant {
    elder(serial)
}

fn sessions() -> [SessionId; 2] {
    [morning(), late_morning()]
}

/// Checks a room's derived bookkeeping against its tickets, and `ahead` against a naive count.
fn assert_room_consistent(room: &WaitingRoom) {
    let tickets: Vec<&Ticket> = room.tickets.values().collect();
    let waiting: Vec<&Ticket> = tickets.iter().copied().filter(|ticket| ticket.state == TicketState::Waiting).collect();
    let admitted: BTreeSet<(Timestamp, TicketId)> = tickets
        .iter()
        .filter(|ticket| ticket.state == TicketState::Admitted)
        .map(|ticket| (ticket.admission_expires_at, ticket.ticket_id))
        .collect();
    assert_eq!(room.admitted, admitted, "admitted set");
    assert_eq!(room.admitted_now as usize, admitted.len(), "admitted count");
    assert_eq!(room.by_nik.len(), tickets.len(), "one ticket per applicant");
    for ticket in &tickets {
        assert_eq!(room.by_nik.get(&ticket.nik), Some(&ticket.ticket_id), "by_nik of {}", ticket.ticket_id);
        if ticket.admission_token != 0 {
            assert_eq!(ticket.admission_token, admission_token(room.seed, ticket.ticket_id));
            assert_eq!(room.by_token.get(&ticket.admission_token), Some(&ticket.ticket_id), "by_token");
        }
    }
    let orders: Vec<u64> = tickets.iter().map(|ticket| ticket.order).filter(|order| *order > 0).collect();
    let distinct: BTreeSet<u64> = orders.iter().copied().collect();
    assert_eq!(distinct.len(), orders.len(), "orders are distinct");
    assert!(orders.iter().all(|order| *order < room.next_order), "orders below next_order");
    if room.drawn {
        assert!(room.pre_open.is_empty(), "drawn, yet {} ticket(s) still wait for the draw", room.pre_open.len());
        assert!(waiting.iter().all(|ticket| ticket.order > 0), "every waiting ticket has a place after the draw");
    } else {
        assert!(tickets.iter().all(|ticket| ticket.order == 0), "no places before the draw");
        let pre_open: BTreeSet<TicketId> = room.pre_open.iter().copied().collect();
        let expected: BTreeSet<TicketId> = waiting.iter().map(|ticket| ticket.ticket_id).collect();
        assert_eq!(pre_open, expected, "pre-open joiners are the waiting tickets");
        assert_eq!(pre_open.len(), room.pre_open.len(), "no one twice in the draw");
    }
    for ticket in &waiting {
        let naive = if ticket.order == 0 {
            waiting.len() as u64 - 1
        } else {
            waiting.iter().filter(|other| other.order > 0 && other.order < ticket.order).count() as u64
        };
        assert_eq!(room.ahead(ticket), naive, "ahead of {} (order {})", ticket.ticket_id, ticket.order);
        if ticket.order > 0 {
            assert!(room.queue.contains(&ticket.ticket_id), "{} waits in the queue", ticket.ticket_id);
        }
    }
    assert_eq!(room.waiting(), waiting.len() as u64, "waiting count");
    if room.sold_out {
        assert!(waiting.is_empty(), "a sold-out line has no one waiting");
    }
}

/// Ticket ids by drawn order.
fn in_order(room: &WaitingRoom) -> Vec<TicketId> {
    let mut tickets: Vec<&Ticket> = room.tickets.values().filter(|ticket| ticket.order > 0).collect();
    tickets.sort_by_key(|ticket| ticket.order);
    tickets.iter().map(|ticket| ticket.ticket_id).collect()
}

fn waiting_ticket(number: u64, at: Timestamp) -> Ticket {
    Ticket {
        ticket_id: TicketId(number),
        nik: person(number as u16).nik,
        service: ServiceType::NewPassport,
        joined_at: at,
        state: TicketState::Waiting,
        order: 0,
        admission_token: 0,
        admission_expires_at: Timestamp(0),
    }
}

/// The order a room with `seed` draws for `count` pre-open joiners.
fn drawn_order(seed: u64, count: u64) -> Vec<TicketId> {
    let key = WaitingRoomKey { office_id: office_id(), release_at: release() };
    let mut room = WaitingRoom::new(key, seed, thursday(), thursday());
    for number in 1..=count {
        room.join(waiting_ticket(number, release().plus_ms(-60_000 + number as i64)));
    }
    room.draw_if_due(release());
    assert_room_consistent(&room);
    let order = in_order(&room);
    assert_eq!(room.queue.iter().copied().collect::<Vec<_>>(), order, "queue follows the drawn order");
    order
}

// ---------------------------------------------------------------------------------------------------------------
// The draw.

#[test]
fn the_draw_replays_from_its_seed_and_another_seed_draws_another_order() {
    let drawn = drawn_order(42, 50);
    assert_eq!(drawn, drawn_order(42, 50), "same joiners and seed");
    let sorted: BTreeSet<TicketId> = drawn.iter().copied().collect();
    assert_eq!(sorted, (1..=50).map(TicketId).collect(), "everyone who joined is drawn once");
    assert_ne!(drawn, (1..=50).map(TicketId).collect::<Vec<_>>(), "the draw shuffles");
    assert_ne!(drawn, drawn_order(43, 50), "another seed");
    assert_ne!(drawn, drawn_order(42 ^ (1 << 40), 50), "another seed in the high bits");
}

#[test]
fn every_order_of_three_joiners_is_about_equally_likely() {
    let mut counts: BTreeMap<Vec<TicketId>, u32> = BTreeMap::new();
    for seed in 0..6_000u64 {
        *counts.entry(drawn_order(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 3)).or_default() += 1;
    }
    assert_eq!(counts.len(), 6, "all six orders occur: {counts:?}");
    // 1,000 expected each; the standard deviation is about 29.
    assert!(counts.values().all(|count| (850..=1150).contains(count)), "{counts:?}");
}

#[test]
fn the_same_history_draws_the_same_order_in_another_book() {
    let orders: Vec<Vec<TicketId>> = (0..2)
        .map(|_| {
            let line = Line::new(room_rules(100), SMALL);
            for serial in 0..30 {
                line.join(&person(serial), release().plus_ms(-PRE_OPEN_MS + i64::from(serial)));
            }
            line.advance(release());
            in_order(&line.room())
        })
        .collect();
    assert_eq!(orders[0].len(), 30);
    assert_eq!(orders[0], orders[1]);
}

#[test]
fn a_join_stamped_before_the_release_but_applied_after_the_draw_still_gets_a_place() {
    let line = Line::new(room_rules(100), SMALL);
    let early = line.join(&person(1), release().plus_ms(-5_000));
    line.advance(release().plus_ms(50));
    assert_eq!(line.ticket(early.ticket.ticket_id).state, TicketState::Admitted);
    // The engine reads its clock before it takes the rooms lock, so a join can carry an instant just before the
    // release yet be applied after the ticker made the draw.
    let late = line.join(&person(2), release().plus_ms(-1));
    assert_room_consistent(&line.room());
    assert_eq!(line.ticket(late.ticket.ticket_id).order, 2, "placed after the drawn joiners");
    line.advance(release().plus_ms(150));
    assert_eq!(line.ticket(late.ticket.ticket_id).state, TicketState::Admitted, "and admitted in turn");
    line.assert_rebuilds();
}

// ---------------------------------------------------------------------------------------------------------------
// Joining.

#[test]
fn joining_needs_an_open_line_and_joining_again_returns_the_same_ticket() {
    let line = Line::new(room_rules(100), SMALL);
    let opens_at = release().plus_ms(-PRE_OPEN_MS);
    let refused = line.fixture.book.join(
        &unique_request(),
        &office_id(),
        ServiceType::NewPassport,
        person(1).nik,
        opens_at.plus_ms(-1),
        &line.fixture.log,
    );
    assert_eq!(refused.map(|_| ()), Err(Rejection::NotYetOpen { opens_at }));
    let other = crate::domain::values::ids::OfficeId::parse("kanim-other").expect("id");
    let refused = line.fixture.book.join(
        &unique_request(),
        &other,
        ServiceType::NewPassport,
        person(1).nik,
        opens_at,
        &line.fixture.log,
    );
    assert_eq!(refused.map(|_| ()), Err(Rejection::NoWaitingRoom(other)));

    let first = line.join(&person(1), opens_at);
    assert_eq!((first.ticket.order, first.ahead, first.ticket.state), (0, 0, TicketState::Waiting));
    assert_eq!(first.estimated_wait_ms, PRE_OPEN_MS, "until the release instant");
    let logged = line.fixture.log.len();
    let again = line.fixture.book.join(
        &unique_request(),
        &office_id(),
        ServiceType::NewPassport,
        person(1).nik,
        opens_at.plus_ms(5),
        &line.fixture.log,
    );
    let (again, position) = again.expect("joins");
    assert_eq!((again.ticket.ticket_id, position, line.fixture.log.len()), (first.ticket.ticket_id, None, logged));
    let second = line.join(&person(2), opens_at.plus_ms(10));
    assert_eq!(second.ahead, 1, "before the draw: everyone else in the draw");
    line.assert_rebuilds();
}

#[test]
fn join_and_leave_are_idempotent_by_request_id_and_replay_remembers_them() {
    let line = Line::new(room_rules(100), SMALL);
    let at = release().plus_ms(-1_000);
    let book = &line.fixture.book;
    let log = &line.fixture.log;
    let join_id = request("join-1");
    let nik = person(1).nik;
    let (first, position) = book.join(&join_id, &office_id(), ServiceType::NewPassport, nik, at, log).expect("joins");
    assert!(position.is_some(), "a new ticket is logged");
    let (retried, position) =
        book.join(&join_id, &office_id(), ServiceType::NewPassport, nik, at.plus_ms(5), log).expect("retry");
    assert_eq!(retried.ticket.ticket_id, first.ticket.ticket_id);
    assert!(position.is_some(), "a retry waits for the first answer's record to be durable");
    let reused = book.join(&join_id, &office_id(), ServiceType::NewPassport, person(2).nik, at, log);
    assert_eq!(reused.map(|_| ()), Err(Rejection::RequestIdReused), "same id, another applicant");

    let leave_id = request("leave-1");
    let (left, _) = book.leave(&leave_id, first.ticket.ticket_id, at.plus_ms(10), log).expect("leaves");
    assert_eq!(left.ticket.state, TicketState::Left);
    let (again, _) = book.leave(&leave_id, first.ticket.ticket_id, at.plus_ms(20), log).expect("retry");
    assert_eq!(again.ticket.state, TicketState::Left);
    let reused = book.join(&leave_id, &office_id(), ServiceType::NewPassport, nik, at, log);
    assert_eq!(reused.map(|_| ()), Err(Rejection::RequestIdReused), "a leave's id is not a join's");

    let replayed = replayed(room_rules(100), &log.events());
    let (after_restart, position) = replayed
        .join(&join_id, &office_id(), ServiceType::NewPassport, nik, at.plus_ms(30), &VecLog::default())
        .expect("retry after a restart");
    assert_eq!(after_restart.ticket.ticket_id, first.ticket.ticket_id, "the first answer survives replay");
    assert_eq!(position, None, "a replayed record is already durable");
    line.assert_rebuilds();
}

#[test]
fn a_full_line_refuses_new_tickets() {
    let line = Line::new(BookRules { tickets_per_room_max: 2, ..room_rules(100) }, SMALL);
    line.join(&person(1), release());
    line.join(&person(2), release());
    let refused = line.fixture.book.join(
        &unique_request(),
        &office_id(),
        ServiceType::NewPassport,
        person(3).nik,
        release(),
        &line.fixture.log,
    );
    assert_eq!(refused.map(|_| ()), Err(Rejection::LimitReached { limit: "tickets_per_room_max".into() }));
}

// ---------------------------------------------------------------------------------------------------------------
// Admission tokens.

/// A line with `count` tickets joined before the release instant and drawn and admitted at the release instant.
fn admitted_line(count: u16) -> (Line, Vec<Ticket>) {
    let line = Line::new(room_rules(100), SMALL);
    for serial in 1..=count {
        line.join(&person(serial), release().plus_ms(-1_000));
    }
    line.advance(release());
    let admitted: Vec<Ticket> =
        line.room().tickets.values().filter(|ticket| ticket.state == TicketState::Admitted).cloned().collect();
    (line, admitted)
}

fn applicant_of(ticket: &Ticket) -> Applicant {
    (0..2_000).map(person).find(|applicant| applicant.nik == ticket.nik).expect("a test applicant")
}

#[test]
fn a_hold_on_a_waiting_room_date_needs_a_valid_admission_token() {
    let (line, admitted) = admitted_line(12);
    assert_eq!(admitted.len(), 6, "two sessions of 3 regular slots (the priority pool is not behind the line)");
    let waiting = line.room().tickets.values().find(|ticket| ticket.state == TicketState::Waiting).cloned();
    let waiting = waiting.expect("two still wait");
    let at = release().plus_ms(1_000);
    let refused = |applicant: &Applicant, token: Option<u64>| {
        let outcome = line.hold(applicant, morning(), Pool::Regular, token, at).outcome;
        assert_eq!(outcome, Err(Rejection::AdmissionRequired), "token {token:?}");
    };
    refused(&applicant_of(&admitted[0]), None);
    refused(&applicant_of(&admitted[0]), Some(admitted[0].admission_token ^ 1));
    refused(&applicant_of(&waiting), Some(admission_token(line.room().seed, waiting.ticket_id)));
    refused(&person(500), Some(admitted[0].admission_token));
    refused(&applicant_of(&admitted[1]), Some(admitted[0].admission_token));
    let early = line.hold(
        &applicant_of(&admitted[0]),
        morning(),
        Pool::Regular,
        Some(admitted[0].admission_token),
        release().plus_ms(-1),
    );
    assert_eq!(early.outcome, Err(Rejection::NotYetOpen { opens_at: release() }));

    let held = line.hold(&applicant_of(&admitted[0]), morning(), Pool::Regular, Some(admitted[0].admission_token), at);
    assert_eq!(held_ids(&held.outcome).len(), 1);
    assert_eq!(line.ticket(admitted[0].ticket_id).state, TicketState::Booked);
    // Dates outside the line need no token.
    let monday_slot = slot(monday(), morning(), Pool::Regular);
    assert_eq!(verdict(&line.fixture.run(&hold(monday_slot, person(600)), at).outcome), "OK");
    line.assert_rebuilds();
}

#[test]
fn an_admission_token_is_single_use() {
    let (line, admitted) = admitted_line(3);
    let ticket = &admitted[0];
    let at = release().plus_ms(1_000);
    let held = line.hold(&applicant_of(ticket), morning(), Pool::Regular, Some(ticket.admission_token), at);
    let booking_id = held_ids(&held.outcome)[0];
    let cancelled = line.fixture.run(&Command::Cancel { booking_id }, at.plus_ms(1));
    assert_eq!(verdict(&cancelled.outcome), "OK");
    let again =
        line.hold(&applicant_of(ticket), late_morning(), Pool::Regular, Some(ticket.admission_token), at.plus_ms(2));
    assert_eq!(again.outcome, Err(Rejection::AdmissionRequired));
    assert_eq!(line.ticket(ticket.ticket_id).state, TicketState::Booked);
    line.assert_rebuilds();
}

#[test]
fn an_admission_token_expires() {
    let (line, admitted) = admitted_line(3);
    let expires_at = release().plus_ms(ADMISSION_TTL_MS);
    assert!(admitted.iter().all(|ticket| ticket.admission_expires_at == expires_at));
    let late =
        line.hold(&applicant_of(&admitted[0]), morning(), Pool::Regular, Some(admitted[0].admission_token), expires_at);
    assert_eq!(late.outcome, Err(Rejection::AdmissionRequired), "refused at the expiry instant, before the line moves");
    let in_time = line.hold(
        &applicant_of(&admitted[1]),
        morning(),
        Pool::Regular,
        Some(admitted[1].admission_token),
        expires_at.plus_ms(-1),
    );
    assert_eq!(held_ids(&in_time.outcome).len(), 1);
    line.advance(expires_at);
    assert_eq!(line.ticket(admitted[0].ticket_id).state, TicketState::Expired);
    assert_eq!(line.ticket(admitted[1].ticket_id).state, TicketState::Booked);
    assert_eq!(line.ticket(admitted[2].ticket_id).state, TicketState::Expired);
    let after =
        line.hold(&applicant_of(&admitted[2]), morning(), Pool::Regular, Some(admitted[2].admission_token), expires_at);
    assert_eq!(after.outcome, Err(Rejection::AdmissionRequired));
    line.assert_rebuilds();
}

#[test]
fn leaving_gives_up_the_admission() {
    let (line, admitted) = admitted_line(11);
    let at = release().plus_ms(1_000);
    let (left, _) =
        line.fixture.book.leave(&unique_request(), admitted[0].ticket_id, at, &line.fixture.log).expect("leaves");
    assert_eq!((left.ticket.state, line.room().admitted_now), (TicketState::Left, 5));
    let refused =
        line.hold(&applicant_of(&admitted[0]), morning(), Pool::Regular, Some(admitted[0].admission_token), at);
    assert_eq!(refused.outcome, Err(Rejection::AdmissionRequired));
    let logged = line.fixture.log.len();
    line.fixture
        .book
        .leave(&unique_request(), admitted[0].ticket_id, at, &line.fixture.log)
        .expect("leaving twice is fine");
    assert_eq!(line.fixture.log.len(), logged, "leaving twice logs nothing");
    line.advance(at);
    assert_eq!(line.room().admitted_now, 6, "the freed admission goes to the next in line");
    line.assert_rebuilds();
}

#[test]
fn rescheduling_into_a_waiting_room_date_needs_an_admission() {
    let (line, _) = admitted_line(10);
    let at = release().plus_ms(1_000);
    let booking = line.fixture.held(slot(monday(), morning(), Pool::Regular), person(700), at);
    let moved = line
        .fixture
        .run(&Command::Reschedule { booking_id: booking.booking_id, date: thursday(), session_id: morning() }, at);
    assert!(moved.outcome.is_err(), "jumped the line: {:?}", moved.outcome);
}

// ---------------------------------------------------------------------------------------------------------------
// Admissions follow the slots.

#[test]
fn admissions_count_holds_that_land_after_the_slots_were_read() {
    let line = Line::new(room_rules(100), Capacities { regular: 1, priority: 0 });
    for serial in 1..=4 {
        line.join(&person(serial), release().plus_ms(-1_000));
    }
    line.advance(release());
    let admitted: Vec<Ticket> =
        line.room().tickets.values().filter(|ticket| ticket.state == TicketState::Admitted).cloned().collect();
    assert_eq!(admitted.len(), 2, "one slot in each session");
    // The engine reads the slots, then moves the line under the rooms lock: a hold can land in between.
    let read = line.fixture.book.supply(&line.key);
    let at = release().plus_ms(100);
    let held = line.hold(&applicant_of(&admitted[0]), morning(), Pool::Regular, Some(admitted[0].admission_token), at);
    assert_eq!(held_ids(&held.outcome).len(), 1);
    line.advance_with(read, &[], at);
    let remaining = line.fixture.book.supply(&line.key).remaining;
    assert!(
        u64::from(line.room().admitted_now) <= remaining,
        "{} admitted and not booked for {remaining} slot(s)",
        line.room().admitted_now
    );
    line.assert_rebuilds();
}

#[test]
fn every_ticket_ends_once_the_slots_are_gone() {
    let (line, _) = admitted_line(25);
    let mut at = release();
    let mut serial_payment = 0;
    // Each round: some admitted holders book and pay, others let their admission lapse.
    for round in 0..20 {
        let room = line.room();
        for (index, ticket) in room.tickets.values().filter(|ticket| ticket.state == TicketState::Admitted).enumerate()
        {
            if (index + round) % 3 == 2 {
                continue;
            }
            let booked = sessions().into_iter().map(|session| (session, Pool::Regular)).find_map(|(session, pool)| {
                let outcome = line.hold(&applicant_of(ticket), session, pool, Some(ticket.admission_token), at).outcome;
                outcome.ok()
            });
            if let Some(Reply::Held { bookings, .. }) = booked {
                serial_payment += 1;
                let paid = line.fixture.run(&pay(bookings[0].booking_id, &format!("pay-{serial_payment}")), at);
                assert_eq!(verdict(&paid.outcome), "OK");
            }
        }
        at = at.plus_ms(ADMISSION_TTL_MS);
        line.advance(at);
        assert_room_consistent(&line.room());
        if line.room().tickets.values().all(|ticket| ticket.state.is_terminal()) {
            break;
        }
    }
    let room = line.room();
    let states: BTreeMap<TicketId, TicketState> =
        room.tickets.values().map(|ticket| (ticket.ticket_id, ticket.state)).collect();
    assert!(states.values().all(|state| state.is_terminal()), "{states:?}");
    let booked = states.values().filter(|state| **state == TicketState::Booked).count();
    assert_eq!(booked, 6, "every regular slot went to someone in line (the priority pool is not behind it)");
    assert!(room.sold_out);
    assert!(states.values().any(|state| *state == TicketState::SoldOut), "someone was still waiting: {states:?}");
    assert!(!states.values().any(|state| *state == TicketState::Left));
    let late = line.join(&person(99), at);
    assert_eq!(late.ticket.state, TicketState::SoldOut, "joining a sold-out line ends at once");
    line.assert_rebuilds();
}

#[test]
fn ahead_counts_the_waiting_tickets_in_front_through_growth_and_departures() {
    let key = WaitingRoomKey { office_id: office_id(), release_at: release() };
    let mut room = WaitingRoom::new(key, 7, thursday(), thursday());
    for number in 1..=40 {
        room.join(waiting_ticket(number, release().plus_ms(-1_000)));
    }
    assert_room_consistent(&room);
    room.draw_if_due(release());
    for number in 41..=300 {
        room.join(waiting_ticket(number, release().plus_ms(number as i64)));
        if number % 7 == 0 {
            room.set_state(TicketId(number - 3), TicketState::Left);
        }
        if number % 11 == 0 {
            let next = room.next_waiting(2);
            for ticket_id in next {
                room.admit(ticket_id, release(), release().plus_ms(ADMISSION_TTL_MS));
            }
        }
        assert_room_consistent(&room);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Random histories.

/// One step of a random history, at the instant the step before left the clock, plus `delay_ms`.
#[derive(Clone, Debug)]
enum Step {
    /// An applicant joins; the join is stamped `lag_ms` earlier (the clock was read before the lock).
    Join { serial: u16, lag_ms: i64 },
    /// A ticket leaves.
    Leave(Index),
    /// The ticker moves the line with the slots the book reports; `idle` tickets stopped watching.
    Advance { idle: Vec<Index> },
    /// The line moves with made-up slot figures.
    AdvanceWith { remaining: u64, awaiting: u64 },
    /// An admitted ticket holds with its token.
    HoldAdmitted { ticket: Index, session: bool, priority: bool },
    /// Someone holds with another ticket's token, or with none.
    HoldForeign { ticket: Index, serial: u16, with_token: bool },
    /// A held booking is paid.
    Pay(Index),
    /// A booking is cancelled.
    Cancel(Index),
    /// Time passes; the ticker expires unpaid holds.
    Wait { ms: i64 },
}

fn step(random_supply: bool) -> impl Strategy<Value = Step> {
    let supply_weight = if random_supply { 3 } else { 0 };
    prop_oneof![
        6 => (0..40u16, prop_oneof![3 => Just(0i64), 1 => 0..2_000i64]).prop_map(|(serial, lag_ms)| Step::Join { serial, lag_ms }),
        1 => any::<Index>().prop_map(Step::Leave),
        3 => proptest::collection::vec(any::<Index>(), 0..3).prop_map(|idle| Step::Advance { idle }),
        supply_weight => (0..25u64, 0..4u64).prop_map(|(remaining, awaiting)| Step::AdvanceWith { remaining, awaiting }),
        5 => (any::<Index>(), any::<bool>(), any::<bool>()).prop_map(|(ticket, session, priority)| Step::HoldAdmitted { ticket, session, priority }),
        1 => (any::<Index>(), 0..60u16, any::<bool>()).prop_map(|(ticket, serial, with_token)| Step::HoldForeign { ticket, serial, with_token }),
        2 => any::<Index>().prop_map(Step::Pay),
        1 => any::<Index>().prop_map(Step::Cancel),
        1 => prop_oneof![Just(ADMISSION_TTL_MS), 0..150 * 60_000i64].prop_map(|ms| Step::Wait { ms }),
    ]
}

/// Runs a random history against a line and checks after every step. With `strict`, admissions must stay within the
/// slots at every instant (only real slot figures, factor at most 100 %); otherwise only each step's admissions are
/// bounded by the figures it was given.
struct History {
    line: Line,
    clock: Timestamp,
    factor_percent: u32,
    strict: bool,
    payments: u64,
}

impl History {
    fn new(capacities: Capacities, factor_percent: u32, strict: bool) -> History {
        let line = Line::new(room_rules(factor_percent), capacities);
        History { line, clock: release().plus_ms(-30 * 60_000), factor_percent, strict, payments: 0 }
    }

    fn tickets(&self, state: Option<TicketState>) -> Vec<Ticket> {
        let room = self.line.room();
        room.tickets.values().filter(|ticket| state.is_none_or(|state| ticket.state == state)).cloned().collect()
    }

    fn bookings(&self, active: bool) -> Vec<BookingId> {
        let image = self.line.fixture.book.image(0);
        image
            .bookings
            .iter()
            .filter(|booking| booking.slot.date == thursday())
            .filter(
                |booking| {
                    if active { booking.state.is_active() } else { booking.state == BookingState::AwaitingPayment }
                },
            )
            .map(|booking| booking.booking_id)
            .collect()
    }

    /// Admissions the slots allow: remaining times the factor, rounded up so the last slot is never stranded.
    fn budget(&self, supply: Supply) -> u64 {
        (supply.remaining * u64::from(self.factor_percent)).div_ceil(100)
    }

    fn run(&mut self, step: &Step) {
        let at = self.clock;
        match step {
            Step::Join { serial, lag_ms } => {
                let stamped = at.plus_ms(-lag_ms).max(release().plus_ms(-PRE_OPEN_MS));
                let before = self.line.room();
                let view = self.line.join(&person(*serial), stamped);
                if before.sold_out && !before.by_nik.contains_key(&person(*serial).nik) {
                    assert_eq!(view.ticket.state, TicketState::SoldOut, "joining a sold-out line ends at once");
                }
            }
            Step::Leave(pick) => {
                let tickets = self.tickets(None);
                if !tickets.is_empty() {
                    let ticket = &tickets[pick.index(tickets.len())];
                    let (view, _) = self
                        .line
                        .fixture
                        .book
                        .leave(&unique_request(), ticket.ticket_id, at, &self.line.fixture.log)
                        .expect("leaves");
                    let expected = if ticket.state.is_terminal() { ticket.state } else { TicketState::Left };
                    assert_eq!(view.ticket.state, expected);
                }
            }
            Step::Advance { idle } => {
                let tickets = self.tickets(None);
                let idle: Vec<TicketId> = if tickets.is_empty() {
                    Vec::new()
                } else {
                    idle.iter().map(|pick| tickets[pick.index(tickets.len())].ticket_id).collect()
                };
                let supply = self.line.fixture.book.supply(&self.line.key);
                self.advance(supply, &idle);
            }
            Step::AdvanceWith { remaining, awaiting } => {
                self.advance(Supply { remaining: *remaining, awaiting: *awaiting, ..Supply::default() }, &[]);
            }
            Step::HoldAdmitted { ticket, session, priority } => {
                let admitted = self.tickets(Some(TicketState::Admitted));
                if !admitted.is_empty() {
                    let ticket = &admitted[ticket.index(admitted.len())];
                    let session = sessions()[usize::from(*session)].clone();
                    let pool = if *priority { Pool::Priority } else { Pool::Regular };
                    let outcome =
                        self.line.hold(&applicant_of(ticket), session, pool, Some(ticket.admission_token), at).outcome;
                    let state = self.line.ticket(ticket.ticket_id).state;
                    match outcome {
                        Ok(_) if pool == Pool::Priority => {
                            assert_eq!(state, TicketState::Admitted, "the priority pool does not use the token");
                        }
                        Ok(_) => assert_eq!(state, TicketState::Booked),
                        Err(Rejection::ApplicantHasBooking { .. }) => assert_eq!(state, TicketState::Admitted),
                        Err(Rejection::AdmissionRequired) => {
                            assert!(ticket.admission_expires_at <= at, "a valid token was refused");
                            assert_eq!(state, TicketState::Admitted);
                        }
                        Err(Rejection::SessionFull { .. } | Rejection::Invalid(_)) => {
                            assert_eq!(state, TicketState::Admitted);
                        }
                        Err(other) => panic!("unexpected refusal {other:?}"),
                    }
                }
            }
            Step::HoldForeign { ticket, serial, with_token } => {
                let tickets = self.tickets(None);
                if !tickets.is_empty() {
                    let ticket = &tickets[ticket.index(tickets.len())];
                    let applicant = person(1_000 + serial);
                    let token = with_token.then_some(ticket.admission_token);
                    let outcome = self.line.hold(&applicant, morning(), Pool::Regular, token, at).outcome;
                    assert!(
                        matches!(
                            outcome,
                            Err(Rejection::AdmissionRequired
                                | Rejection::SessionFull { .. }
                                | Rejection::NotYetOpen { .. })
                        ),
                        "a hold without its own token: {outcome:?}"
                    );
                }
            }
            Step::Pay(pick) => {
                let awaiting = self.bookings(false);
                if !awaiting.is_empty() {
                    self.payments += 1;
                    let booking_id = awaiting[pick.index(awaiting.len())];
                    self.line.fixture.run(&pay(booking_id, &format!("pay-{}", self.payments)), at);
                }
            }
            Step::Cancel(pick) => {
                let active = self.bookings(true);
                if !active.is_empty() {
                    let booking_id = active[pick.index(active.len())];
                    assert_eq!(verdict(&self.line.fixture.run(&Command::Cancel { booking_id }, at).outcome), "OK");
                }
            }
            Step::Wait { ms } => {
                self.clock = at.plus_ms(*ms);
                self.line.fixture.tick(self.clock);
            }
        }
        self.clock = self.clock.plus_ms(1_000);
        self.check();
    }

    /// Moves the line at the clock with `supply` and checks the step against it.
    fn advance(&mut self, supply: Supply, idle: &[TicketId]) {
        let at = self.clock;
        let before = self.line.room();
        let lapsing = before.admitted.iter().filter(|(expires_at, _)| *expires_at <= at).count() as u64;
        let kept = u64::from(before.admitted_now) - lapsing;
        self.line.advance_with(supply, idle, at);
        let after = self.line.room();
        let admissions = after.admitted_total - before.admitted_total;
        assert!(
            admissions <= self.budget(supply).saturating_sub(kept),
            "admitted {admissions} with {kept} still admitted and a budget of {}",
            self.budget(supply)
        );
        assert!(u64::from(after.admitted_now) <= self.budget(supply).max(kept), "admitted-not-booked over budget");
        if at >= release() {
            assert!(after.drawn);
            assert!(after.admitted.iter().all(|(expires_at, _)| *expires_at > at), "lapsed admissions expire");
            let newly: Vec<u64> = after
                .tickets
                .values()
                .filter(|ticket| {
                    ticket.state == TicketState::Admitted
                        && before.tickets[&ticket.ticket_id].state == TicketState::Waiting
                })
                .map(|ticket| ticket.order)
                .collect();
            let first_waiting = after
                .tickets
                .values()
                .filter(|ticket| ticket.state == TicketState::Waiting)
                .map(|ticket| ticket.order)
                .min();
            if let (Some(last_admitted), Some(first_waiting)) = (newly.iter().max(), first_waiting) {
                assert!(last_admitted < &first_waiting, "admitted in queue order");
            }
            for ticket_id in idle {
                if before.tickets[ticket_id].state == TicketState::Waiting {
                    assert_eq!(after.tickets[ticket_id].state, TicketState::Expired, "idle tickets expire");
                }
            }
            let nothing_left = supply.remaining == 0 && supply.awaiting == 0 && kept == 0;
            if nothing_left {
                assert!(after.tickets.values().all(|ticket| ticket.state != TicketState::Waiting), "sold out");
            }
        }
    }

    fn check(&self) {
        let room = self.line.room();
        assert_room_consistent(&room);
        if self.strict {
            let supply = self.line.fixture.book.supply(&self.line.key);
            assert!(
                u64::from(room.admitted_now) <= self.budget(supply),
                "{} admitted and not booked, {} remaining at {} %",
                room.admitted_now,
                supply.remaining,
                self.factor_percent
            );
        }
    }

    /// Pays every held booking, then books with every admission until the line has moved everyone on.
    fn drain(&mut self) {
        for booking_id in self.bookings(false) {
            self.payments += 1;
            self.line.fixture.run(&pay(booking_id, &format!("pay-{}", self.payments)), self.clock);
        }
        for _ in 0..200 {
            self.clock = self.clock.max(release()).plus_ms(ADMISSION_TTL_MS);
            let supply = self.line.fixture.book.supply(&self.line.key);
            self.advance(supply, &[]);
            self.check();
            for ticket in self.tickets(Some(TicketState::Admitted)) {
                let slots = sessions().into_iter().map(|session| (session, Pool::Regular));
                for (session, pool) in slots {
                    let outcome = self
                        .line
                        .hold(&applicant_of(&ticket), session, pool, Some(ticket.admission_token), self.clock)
                        .outcome;
                    if let Ok(Reply::Held { bookings, .. }) = outcome {
                        self.payments += 1;
                        self.line
                            .fixture
                            .run(&pay(bookings[0].booking_id, &format!("pay-{}", self.payments)), self.clock);
                        break;
                    }
                }
            }
            if self.tickets(None).iter().all(|ticket| ticket.state.is_terminal()) {
                break;
            }
        }
        let open: Vec<(TicketId, TicketState)> = self
            .tickets(None)
            .into_iter()
            .filter(|ticket| !ticket.state.is_terminal())
            .map(|ticket| (ticket.ticket_id, ticket.state))
            .collect();
        let supply = self.line.fixture.book.supply(&self.line.key);
        assert!(open.is_empty(), "tickets that never ended with {supply:?}: {open:?}");
    }
}

/// Checks that tickets placed after the draw are in the order they were applied, and the draw holds exactly those who
/// joined before it and stayed.
fn check_orders(room: &WaitingRoom, drawn: &BTreeSet<TicketId>, after_draw: &[TicketId]) {
    let order = in_order(room);
    let (first, rest) = order.split_at(drawn.len().min(order.len()));
    assert_eq!(first.iter().copied().collect::<BTreeSet<_>>(), *drawn, "the draw holds the pre-open joiners");
    assert_eq!(rest, after_draw, "later joiners in arrival order");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn after_the_release_instant_it_is_first_come_first_served(
        start_before_ms in prop_oneof![3 => 0..5_000i64, 1 => 0..PRE_OPEN_MS - 2_000],
        steps in proptest::collection::vec(
            (0..3u8, 0..45u16, prop_oneof![4 => 0..500i64, 1 => 0..600_000i64], 0..2_000i64, any::<Index>()),
            1..60,
        ),
    ) {
        let line = Line::new(room_rules(100), SMALL);
        let mut clock = release().plus_ms(-start_before_ms);
        let mut pre_open: BTreeSet<TicketId> = BTreeSet::new();
        let mut drawn: Option<BTreeSet<TicketId>> = None;
        let mut after_draw: Vec<TicketId> = Vec::new();
        for (kind, serial, delay_ms, lag_ms, pick) in steps {
            clock = clock.plus_ms(delay_ms);
            match kind {
                0 => {
                    let stamped = clock.plus_ms(-lag_ms);
                    let known = line.room().by_nik.contains_key(&person(serial).nik);
                    let view = line.join(&person(serial), stamped);
                    if !known {
                        if drawn.is_none() && stamped >= release() {
                            drawn = Some(std::mem::take(&mut pre_open));
                        }
                        match &drawn {
                            None => { pre_open.insert(view.ticket.ticket_id); }
                            Some(_) => after_draw.push(view.ticket.ticket_id),
                        }
                    }
                }
                1 => {
                    let tickets: Vec<TicketId> = line.room().tickets.keys().copied().collect();
                    if !tickets.is_empty() {
                        let ticket_id = tickets[pick.index(tickets.len())];
                        line.fixture.book.leave(&unique_request(), ticket_id, clock, &line.fixture.log).expect("leaves");
                        pre_open.remove(&ticket_id);
                    }
                }
                _ => {
                    line.advance(clock);
                    if drawn.is_none() && clock >= release() {
                        drawn = Some(std::mem::take(&mut pre_open));
                    }
                }
            }
            let room = line.room();
            assert_room_consistent(&room);
            prop_assert_eq!(room.drawn, drawn.is_some());
            if let Some(drawn) = &drawn {
                check_orders(&room, drawn, &after_draw);
            }
        }
        line.assert_rebuilds();
    }

    #[test]
    fn admissions_stay_within_the_slots_and_every_ticket_ends(
        regular in 1..4u32,
        priority in 0..3u32,
        factor_percent in prop_oneof![Just(50u32), Just(100u32)],
        steps in proptest::collection::vec(step(false), 1..60),
    ) {
        let mut history = History::new(Capacities { regular, priority }, factor_percent, true);
        for step in &steps {
            history.run(step);
        }
        history.line.assert_rebuilds();
        history.drain();
        history.line.assert_rebuilds();
    }

    #[test]
    fn each_step_admits_within_the_slot_figures_it_is_given(
        factor_percent in prop_oneof![Just(50u32), Just(100u32), Just(150u32), Just(300u32)],
        steps in proptest::collection::vec(step(true), 1..60),
    ) {
        let mut history = History::new(SMALL, factor_percent, false);
        for step in &steps {
            history.run(step);
        }
        history.line.assert_rebuilds();
        history.drain();
        history.line.assert_rebuilds();
    }
}

/// A request id no other call in this test process uses.
fn unique_request() -> crate::domain::values::ids::RequestId {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    request(&format!("wr-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
}
