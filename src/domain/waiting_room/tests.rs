//! The waiting room against its promises: a draw that replays from its seed, first come first served after the release
//! instant, admissions that never outrun the slots bookable now (party sizes counted), nobody admitted ahead of an
//! earlier ticket still in line, honest early SOLD_OUT, rejoins after a ticket ended, lines that follow a moved
//! release and survive a closure, single-use admission tokens bound to one applicant and one party, `ahead` equal to a
//! naive count, lines that end and take their tickets with them, and rooms that rebuild exactly from the log and from
//! an image. The last property test runs random histories against a naive reference model of the line.

use super::book::{Advanced, TicketView};
use super::decide::JoinWish;
use super::draw::DrawSecret;
use super::event::WaitingRoomEvent;
use super::room::{Ticket, TicketId, TicketState, WaitingRoom, WaitingRoomKey, admission_token};
use super::step::Supply;
use crate::domain::bookings::booking::{Applicant, BookingState};
use crate::domain::bookings::rules::BookRules;
use crate::domain::catalogue::office::{Pool, ScheduleRule, ServiceType};
use crate::domain::messages::command::{Command, HoldCommand};
use crate::domain::messages::event::Event;
use crate::domain::messages::rejection::Rejection;
use crate::domain::messages::reply::Reply;
use crate::domain::state::book::Execution;
use crate::domain::testkit::*;
use crate::domain::values::ids::{AccountId, BookingId, SessionId};
use crate::domain::values::time::{Date, Timestamp};
use crate::limits::JOINS_PER_APPLICANT_PER_ROOM_MAX;
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

/// Friday 11 December 2026: the second date of two-date lines.
fn friday() -> Date {
    date(2026, 12, 11)
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
        // These tests let holds lapse at their payment deadline; the settlement grace has tests of its own.
        payment_settlement_grace_ms: 0,
        ..BookRules::default()
    }
}

/// A quota book with the test office and a waiting room in front of Thursday's (and maybe Friday's) release.
struct Line {
    fixture: Fixture,
}

impl Line {
    fn new(rules: BookRules, capacities: Capacities) -> Line {
        Line::with_dates(rules, capacities, thursday(), thursday())
    }

    fn with_dates(rules: BookRules, capacities: Capacities, first: Date, last: Date) -> Line {
        let line = Line { fixture: Fixture::with(rules, capacities) };
        let set = line.schedule(first, last, release(), true, now());
        let dates = last.days_since(first) + 1;
        assert_eq!(set.outcome, Ok(Reply::ScheduleSet { dates_scheduled: dates }));
        assert_eq!(line.key(), WaitingRoomKey { office_id: office_id(), release_at: release() });
        line
    }

    fn schedule(&self, first: Date, last: Date, release_at: Timestamp, waiting_room: bool, at: Timestamp) -> Execution {
        let rule = ScheduleRule { first_date: first, last_date: last, release_at, sessions: None, waiting_room };
        self.fixture.run(&Command::SetSchedule { office_id: office_id(), rule }, at)
    }

    fn close(&self, on: Date, reopen: bool, at: Timestamp) {
        let close = Command::CloseDate { office_id: office_id(), date: on, reason: "hari libur".into(), reopen };
        assert_eq!(verdict(&self.fixture.run(&close, at).outcome), "OK");
    }

    /// The office's only line.
    fn key(&self) -> WaitingRoomKey {
        let keys = self.fixture.book.waiting_room_keys();
        assert_eq!(keys.len(), 1, "one line: {keys:?}");
        keys[0].clone()
    }

    fn try_join(
        &self,
        applicant: &Applicant,
        party_size: u8,
        dates: Option<(Date, Date)>,
        at: Timestamp,
    ) -> Result<TicketView, Rejection> {
        let office_id = office_id();
        let wish = JoinWish {
            office_id: &office_id,
            service: ServiceType::NewPassport,
            nik: applicant.nik,
            party_size,
            dates,
        };
        self.fixture.book.join(&unique_request(), wish, at, &self.fixture.log).map(|(view, _)| view)
    }

    fn join(&self, applicant: &Applicant, at: Timestamp) -> TicketView {
        self.try_join(applicant, 1, None, at).unwrap_or_else(|rejection| panic!("join refused: {rejection:?}"))
    }

    fn leave(&self, ticket_id: TicketId, at: Timestamp) -> TicketView {
        let left = self.fixture.book.leave(&unique_request(), ticket_id, at, &self.fixture.log);
        left.expect("leaves").0
    }

    /// Moves the line on with the slots the book reports, as the engine's ticker does.
    fn advance(&self, at: Timestamp) -> Option<Advanced> {
        self.advance_idle(&[], at)
    }

    fn advance_idle(&self, idle: &[TicketId], at: Timestamp) -> Option<Advanced> {
        let supply = self.fixture.book.supply(&self.key(), at);
        self.advance_with(supply, idle, at)
    }

    fn advance_with(&self, supply: Supply, idle: &[TicketId], at: Timestamp) -> Option<Advanced> {
        self.fixture.book.advance_waiting_room(&self.key(), supply, idle, at, &self.fixture.log)
    }

    fn room(&self) -> WaitingRoom {
        let key = self.key();
        WaitingRoom::clone(self.fixture.book.waiting_rooms.lock()[&key].as_ref())
    }

    fn ticket(&self, ticket_id: TicketId) -> Ticket {
        self.room().tickets[&ticket_id].clone()
    }

    fn shown(&self, ticket_id: TicketId, at: Timestamp) -> TicketState {
        self.fixture.book.ticket(ticket_id, at).expect("ticket").ticket.state
    }

    fn hold(
        &self,
        applicant: &Applicant,
        session: SessionId,
        pool: Pool,
        token: Option<u64>,
        at: Timestamp,
    ) -> Execution {
        self.hold_on(thursday(), vec![applicant.clone()], session, pool, token, at)
    }

    fn hold_on(
        &self,
        on: Date,
        applicants: Vec<Applicant>,
        session: SessionId,
        pool: Pool,
        token: Option<u64>,
        at: Timestamp,
    ) -> Execution {
        let group = applicants.len() > 1;
        let hold = HoldCommand {
            slot: slot(on, session, pool),
            service: ServiceType::NewPassport,
            applicants,
            account_id: AccountId::parse("account-1").expect("id"),
            group,
            admission_token: token,
        };
        self.fixture.run(&Command::Hold(hold), at)
    }

    /// Checks the rooms' own bookkeeping, and that replaying the log and loading the image rebuild them.
    fn assert_rebuilds(&self) {
        for room in self.fixture.book.waiting_rooms.lock().values() {
            assert_room_consistent(room);
        }
        self.fixture.assert_rebuilds();
        let events = self.fixture.log.events();
        let replayed = replayed(self.fixture.book.rules().clone(), &events);
        let loaded = loaded(self.fixture.book.rules().clone(), self.fixture.book.image(0));
        let at = release().plus_ms(1);
        let rooms: Vec<WaitingRoom> =
            self.fixture.book.waiting_rooms.lock().values().map(|room| WaitingRoom::clone(room)).collect();
        for ticket_id in rooms.iter().flat_map(|room| room.tickets.keys()) {
            let view = self.fixture.book.ticket(*ticket_id, at);
            assert_eq!(replayed.ticket(*ticket_id, at), view, "replayed view of {ticket_id}");
            assert_eq!(loaded.ticket(*ticket_id, at), view, "loaded view of {ticket_id}");
        }
        for book in [&replayed, &loaded] {
            for room in book.waiting_rooms.lock().values() {
                assert_room_consistent(room);
            }
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

/// Checks a room's derived bookkeeping against its tickets, `ahead` against a naive count, and the order promise:
/// every admitted ticket is ahead of every ticket still waiting.
fn assert_room_consistent(room: &WaitingRoom) {
    let tickets: Vec<&Ticket> = room.tickets.values().collect();
    let waiting: Vec<&Ticket> = tickets.iter().copied().filter(|ticket| ticket.state == TicketState::Waiting).collect();
    let admitted_tickets: Vec<&Ticket> =
        tickets.iter().copied().filter(|ticket| ticket.state == TicketState::Admitted).collect();
    let admitted: BTreeSet<(Timestamp, TicketId)> =
        admitted_tickets.iter().map(|ticket| (ticket.admission_expires_at, ticket.ticket_id)).collect();
    assert_eq!(room.admitted, admitted, "admitted set");
    let claims: u32 = admitted_tickets.iter().map(|ticket| u32::from(ticket.admitted_party)).sum();
    assert_eq!(room.admitted_slots, claims, "admitted slots");
    let tokens: BTreeMap<u64, TicketId> =
        admitted_tickets.iter().map(|ticket| (ticket.admission_token, ticket.ticket_id)).collect();
    assert_eq!(room.by_token, tokens, "tokens of the admitted tickets");
    for ticket in &admitted_tickets {
        assert_eq!(ticket.admission_token, admission_token(room.seed, ticket.ticket_id));
        assert!((1..=ticket.party_size).contains(&ticket.admitted_party), "admitted party of {}", ticket.ticket_id);
    }
    let mut by_nik: BTreeMap<_, Vec<&Ticket>> = BTreeMap::new();
    for ticket in &tickets {
        assert_ne!(ticket.state, TicketState::SoldOut, "sold out is never stored");
        by_nik.entry(ticket.nik).or_default().push(ticket);
    }
    assert_eq!(room.by_nik.len(), by_nik.len(), "one latest ticket per applicant");
    for (nik, mine) in &by_nik {
        let latest = mine.last().expect("at least one");
        assert_eq!(room.by_nik.get(nik), Some(&latest.ticket_id), "by_nik names the latest ticket");
        let attempts: Vec<u8> = mine.iter().map(|ticket| ticket.attempt).collect();
        assert_eq!(attempts, (1..=mine.len() as u8).collect::<Vec<_>>(), "attempts of {nik:?}");
        assert!(mine[..mine.len() - 1].iter().all(|ticket| ticket.state.has_ended()), "only the latest is in line");
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
    let queued: Vec<u64> = room.queue.iter().map(|ticket_id| room.tickets[ticket_id].order).collect();
    assert!(queued.windows(2).all(|pair| pair[0] < pair[1]), "the queue is in order: {queued:?}");
    assert_eq!(room.waiting(), waiting.len() as u64, "waiting count");
    let last_admitted = admitted_tickets.iter().map(|ticket| ticket.order).max();
    let first_waiting = waiting.iter().map(|ticket| ticket.order).filter(|order| *order > 0).min();
    if let (Some(last_admitted), Some(first_waiting)) = (last_admitted, first_waiting) {
        assert!(last_admitted < first_waiting, "admitted {last_admitted} while {first_waiting} still waits");
    }
    let mut in_order: Vec<&&Ticket> = waiting.iter().filter(|ticket| ticket.order > 0).collect();
    in_order.sort_by_key(|ticket| ticket.order);
    let shown: Vec<bool> = in_order.iter().map(|ticket| room.shown_state(ticket) == TicketState::SoldOut).collect();
    assert!(shown.windows(2).all(|pair| pair[0] <= pair[1]), "sold out is a tail of the line: {shown:?}");
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
        party_size: 1,
        admitted_party: 0,
        attempt: 1,
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

fn admitted(room: &WaitingRoom) -> Vec<Ticket> {
    room.tickets.values().filter(|ticket| ticket.state == TicketState::Admitted).cloned().collect()
}

fn applicant_of(ticket: &Ticket) -> Applicant {
    (0..2_000).map(person).find(|applicant| applicant.nik == ticket.nik).expect("a test applicant")
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

/// The order a room committed to `secret` draws for `count` pre-open joiners.
fn verifiable_order(secret: [u8; 32], count: u64) -> Vec<TicketId> {
    let key = WaitingRoomKey { office_id: office_id(), release_at: release() };
    let mut room = WaitingRoom::new(key, 42, thursday(), thursday());
    room.draw.secret = Some(DrawSecret(secret));
    for number in 1..=count {
        room.join(waiting_ticket(number, release().plus_ms(-60_000 + number as i64)));
    }
    room.draw_if_due(release());
    assert_room_consistent(&room);
    in_order(&room)
}

#[test]
fn a_committed_line_draws_the_published_order_which_verifies_and_replays() {
    let line = Line::new(room_rules(100), Capacities { regular: 2, priority: 2 });
    let key = line.key();
    let secret = DrawSecret([9; 32]);
    let position = line.fixture.book.commit_draw(&key, secret, &line.fixture.log);
    assert!(position.is_some(), "the line commits");
    assert_eq!(line.fixture.book.commit_draw(&key, DrawSecret([8; 32]), &line.fixture.log), None, "once");
    let tickets: Vec<TicketView> =
        (0..20).map(|serial| line.join(&person(serial), release().plus_ms(-1000 + i64::from(serial)))).collect();
    assert!(tickets.iter().all(|view| view.draw_commitment == Some(secret.commitment())));
    assert!(tickets.iter().all(|view| view.receipt == Some(secret.receipt(view.ticket.ticket_id.0))));

    let before = line.fixture.book.published_draw(&key, 0, 1000).expect("the line");
    assert_eq!((before.drawn, before.secret, before.pre_open_total), (false, None, 20));
    assert!(before.pre_open.is_empty() && before.order.is_empty(), "nothing to verify before the draw");
    assert_eq!(before.commitment, Some(secret.commitment()));

    line.advance(release());
    let late = line.join(&person(30), release().plus_ms(5));
    let after = line.fixture.book.published_draw(&key, 0, 1000).expect("the line");
    assert_eq!(after.secret, Some(secret.0));
    assert_eq!(after.order, in_order(&line.room())[..20].to_vec(), "the published order is the line's");
    let order: Vec<u64> = after.order.iter().map(|ticket_id| ticket_id.0).collect();
    let verified = crate::domain::waiting_room::draw::verify(&secret.commitment(), &secret.0, &after.pre_open, &order);
    assert_eq!(verified, Ok(()));
    assert_eq!(after.later.iter().map(|entry| entry.ticket_number).collect::<Vec<_>>(), [late.ticket.ticket_id.0]);
    assert_eq!(after.figures.tickets_at_draw, 20);
    assert_eq!(after.figures.admitted, 4, "two sessions of two slots");

    // Pages: the same lists, a few entries at a time.
    let paged: Vec<TicketId> =
        (0..4).flat_map(|page| line.fixture.book.published_draw(&key, page * 6, 6).expect("the line").order).collect();
    assert_eq!(paged, after.order);
    line.assert_rebuilds();
}

#[test]
fn every_order_of_three_joiners_is_about_equally_likely_in_the_verifiable_draw() {
    let mut counts: BTreeMap<Vec<TicketId>, u32> = BTreeMap::new();
    for serial in 0..6_000u32 {
        let mut secret = [0u8; 32];
        secret[..4].copy_from_slice(&serial.to_le_bytes());
        *counts.entry(verifiable_order(secret, 3)).or_default() += 1;
    }
    assert_eq!(counts.len(), 6, "all six orders occur: {counts:?}");
    assert!(counts.values().all(|count| (850..=1150).contains(count)), "{counts:?}");
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
// Joining, leaving, joining again.

#[test]
fn joining_needs_an_open_line_and_joining_again_returns_the_same_ticket() {
    let line = Line::new(room_rules(100), SMALL);
    let opens_at = release().plus_ms(-PRE_OPEN_MS);
    let refused = line.try_join(&person(1), 1, None, opens_at.plus_ms(-1));
    assert_eq!(refused.map(|_| ()), Err(Rejection::NotYetOpen { opens_at }));
    let other = crate::domain::values::ids::OfficeId::parse("kanim-other").expect("id");
    let wish = JoinWish {
        office_id: &other,
        service: ServiceType::NewPassport,
        nik: person(1).nik,
        party_size: 1,
        dates: None,
    };
    let refused = line.fixture.book.join(&unique_request(), wish, opens_at, &line.fixture.log);
    assert_eq!(refused.map(|_| ()), Err(Rejection::OfficeNotFound(other)));

    let first = line.join(&person(1), opens_at);
    assert_eq!((first.ticket.order, first.ahead, first.ticket.state), (0, 0, TicketState::Waiting));
    assert_eq!((first.ticket.party_size, first.ticket.attempt), (1, 1));
    assert_eq!(first.estimated_wait_ms, PRE_OPEN_MS, "until the release instant");
    let logged = line.fixture.log.len();
    let again = line.join(&person(1), opens_at.plus_ms(5));
    assert_eq!((again.ticket.ticket_id, line.fixture.log.len()), (first.ticket.ticket_id, logged));
    let second = line.join(&person(2), opens_at.plus_ms(10));
    assert_eq!(second.ahead, 1, "before the draw: everyone else in the draw");
    for party_size in [0, 6] {
        let refused = line.try_join(&person(3), party_size, None, opens_at);
        assert!(matches!(refused, Err(Rejection::Invalid(_))), "party of {party_size}: {refused:?}");
    }
    line.assert_rebuilds();
}

#[test]
fn join_and_leave_are_idempotent_by_request_id_and_replay_remembers_them() {
    let line = Line::new(room_rules(100), SMALL);
    let at = release().plus_ms(-1_000);
    let book = &line.fixture.book;
    let log = &line.fixture.log;
    let office_id = office_id();
    let wish = |serial: u16| JoinWish {
        office_id: &office_id,
        service: ServiceType::NewPassport,
        nik: person(serial).nik,
        party_size: 1,
        dates: None,
    };
    let join_id = request("join-1");
    let (first, position) = book.join(&join_id, wish(1), at, log).expect("joins");
    assert!(position.is_some(), "a new ticket is logged");
    let (retried, position) = book.join(&join_id, wish(1), at.plus_ms(5), log).expect("retry");
    assert_eq!(retried.ticket.ticket_id, first.ticket.ticket_id);
    assert!(position.is_some(), "a retry waits for the first answer's record to be durable");
    let reused = book.join(&join_id, wish(2), at, log);
    assert_eq!(reused.map(|_| ()), Err(Rejection::RequestIdReused), "same id, another applicant");

    let leave_id = request("leave-1");
    let (left, _) = book.leave(&leave_id, first.ticket.ticket_id, at.plus_ms(10), log).expect("leaves");
    assert_eq!(left.ticket.state, TicketState::Left);
    let (again, _) = book.leave(&leave_id, first.ticket.ticket_id, at.plus_ms(20), log).expect("retry");
    assert_eq!(again.ticket.state, TicketState::Left);
    let reused = book.join(&leave_id, wish(1), at, log);
    assert_eq!(reused.map(|_| ()), Err(Rejection::RequestIdReused), "a leave's id is not a join's");
    let (retried, _) = book.join(&join_id, wish(1), at.plus_ms(25), log).expect("retry after leaving");
    assert_eq!(retried.ticket.ticket_id, first.ticket.ticket_id, "a retry is not a new join");

    let replayed = replayed(room_rules(100), &log.events());
    let (after_restart, position) =
        replayed.join(&join_id, wish(1), at.plus_ms(30), &VecLog::default()).expect("retry after a restart");
    assert_eq!(after_restart.ticket.ticket_id, first.ticket.ticket_id, "the first answer survives replay");
    assert_eq!(position, None, "a replayed record is already durable");
    line.assert_rebuilds();
}

#[test]
fn a_full_line_refuses_new_tickets() {
    let line = Line::new(BookRules { tickets_per_room_max: 2, ..room_rules(100) }, SMALL);
    line.join(&person(1), release());
    line.join(&person(2), release());
    let refused = line.try_join(&person(3), 1, None, release());
    assert_eq!(refused.map(|_| ()), Err(Rejection::LimitReached { limit: "tickets_per_room_max".into() }));
}

#[test]
fn joining_after_a_ticket_ended_gives_a_new_ticket_at_the_back_of_the_line() {
    let line = Line::new(room_rules(100), Capacities { regular: 1, priority: 0 });
    let at = release().plus_ms(-10_000);
    let first = line.join(&person(1), at);
    for serial in 2..=4 {
        line.join(&person(serial), at);
    }
    line.leave(first.ticket.ticket_id, at.plus_ms(1));
    let again = line.join(&person(1), at.plus_ms(2));
    assert_ne!(again.ticket.ticket_id, first.ticket.ticket_id, "a new ticket, not the dead one");
    assert_eq!((again.ticket.state, again.ticket.attempt), (TicketState::Waiting, 2));
    assert_eq!(line.fixture.book.ticket(first.ticket.ticket_id, at).expect("kept").ticket.state, TicketState::Left);
    line.advance(release());
    let late = line.join(&person(9), release().plus_ms(5));
    let rejoined = line.ticket(again.ticket.ticket_id);
    assert!(rejoined.order < late.ticket.order, "the rejoin was drawn with the others, before later arrivals");

    // After the draw a rejoin goes to the back: behind everyone already in line.
    let admitted_now = admitted(&line.room());
    let waiting: Vec<Ticket> =
        line.room().tickets.values().filter(|ticket| ticket.state == TicketState::Waiting).cloned().collect();
    let quitter = waiting.iter().find(|ticket| ticket.nik != person(9).nik).expect("someone waits").clone();
    line.leave(quitter.ticket_id, release().plus_ms(10));
    let back = line.join(&applicant_of(&quitter), release().plus_ms(20));
    assert!(back.ticket.order > late.ticket.order, "behind every later arrival");
    assert!(!admitted_now.is_empty());
    line.assert_rebuilds();
}

#[test]
fn joining_again_works_after_an_idle_expiry_a_lapsed_admission_and_a_lapsed_hold() {
    let line = Line::new(room_rules(100), Capacities { regular: 1, priority: 0 });
    let at = release().plus_ms(-1_000);
    let idle = line.join(&person(1), at);
    let lapsing = line.join(&person(2), at);
    line.advance_idle(&[idle.ticket.ticket_id], release());
    assert_eq!(line.ticket(idle.ticket.ticket_id).state, TicketState::Expired);
    assert_eq!(line.ticket(lapsing.ticket.ticket_id).state, TicketState::Admitted);
    // The app crashed for two minutes: the ticket expired; joining again gives a place at the back.
    let back = line.join(&person(1), release().plus_ms(10));
    assert_eq!((back.ticket.state, back.ticket.attempt), (TicketState::Waiting, 2));
    line.advance(release().plus_ms(ADMISSION_TTL_MS));
    assert_eq!(line.ticket(lapsing.ticket.ticket_id).state, TicketState::Expired, "the admission lapsed");
    let back_again = line.join(&person(2), release().plus_ms(ADMISSION_TTL_MS + 1));
    assert_eq!(back_again.ticket.state, TicketState::Waiting, "a lapsed admission does not lock anyone out");

    // The unpaid hold of an admitted ticket expires: the applicant may queue again.
    let holder = admitted(&line.room()).pop().expect("someone was admitted in turn");
    let at = release().plus_ms(ADMISSION_TTL_MS + 100);
    let held = line.hold(&applicant_of(&holder), morning(), Pool::Regular, Some(holder.admission_token), at);
    let booking_id = held_ids(&held.outcome)[0];
    let refused = line.try_join(&applicant_of(&holder), 1, None, at.plus_ms(1));
    assert_eq!(refused.map(|_| ()), Err(Rejection::ApplicantHasBooking { booking_id }), "a booked applicant waits");
    let lapsed = line.fixture.booking(booking_id).payment_deadline;
    line.fixture.tick(lapsed);
    let rejoined = line.join(&applicant_of(&holder), lapsed.plus_ms(1));
    assert_eq!(rejoined.ticket.state, TicketState::Waiting, "after the hold lapsed");
    line.assert_rebuilds();
}

#[test]
fn rejoins_are_bounded() {
    let line = Line::new(room_rules(100), SMALL);
    let at = release().plus_ms(-1_000);
    for attempt in 1..=JOINS_PER_APPLICANT_PER_ROOM_MAX {
        let ticket = line.join(&person(1), at);
        assert_eq!(usize::from(ticket.ticket.attempt), attempt);
        line.leave(ticket.ticket.ticket_id, at);
    }
    let refused = line.try_join(&person(1), 1, None, at);
    assert_eq!(refused.map(|_| ()), Err(Rejection::LimitReached { limit: "joins_per_applicant_max".into() }));
    line.assert_rebuilds();
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
    let admitted = admitted(&line.room());
    (line, admitted)
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
    let left = line.leave(admitted[0].ticket_id, at);
    assert_eq!((left.ticket.state, line.room().admitted.len()), (TicketState::Left, 5));
    let refused =
        line.hold(&applicant_of(&admitted[0]), morning(), Pool::Regular, Some(admitted[0].admission_token), at);
    assert_eq!(refused.outcome, Err(Rejection::AdmissionRequired));
    let logged = line.fixture.log.len();
    line.leave(admitted[0].ticket_id, at);
    assert_eq!(line.fixture.log.len(), logged, "leaving twice logs nothing");
    line.advance(at);
    assert_eq!(line.room().admitted.len(), 6, "the freed admission goes to the next in line");
    line.assert_rebuilds();
}

// ---------------------------------------------------------------------------------------------------------------
// Parties.

#[test]
fn an_admission_counts_its_whole_party_and_its_token_holds_no_more() {
    let line = Line::new(room_rules(100), Capacities { regular: 4, priority: 0 });
    let at = release().plus_ms(-1_000);
    let family = line.try_join(&person(1), 3, None, at).expect("a party of three").ticket.ticket_id;
    for (serial, party) in [(2, 2), (3, 1), (4, 4), (5, 1)] {
        line.try_join(&person(serial), party, None, at).expect("joins");
    }
    line.advance(release());
    let room = line.room();
    // Eight slots: admissions take parties from the front while they fit, and nobody behind a party that does not
    // fit is admitted ahead of it.
    let mut wanted = 8u8;
    let mut expected = BTreeSet::new();
    for ticket_id in in_order(&room) {
        let party = room.tickets[&ticket_id].party_size;
        if party > wanted {
            break;
        }
        wanted -= party;
        expected.insert(ticket_id);
    }
    let admitted: BTreeSet<TicketId> = admitted(&room).iter().map(|ticket| ticket.ticket_id).collect();
    assert_eq!(admitted, expected);
    assert_eq!(u64::from(room.admitted_slots), u64::from(8 - wanted));

    let family = line.ticket(family);
    if family.state == TicketState::Admitted {
        assert_eq!(family.admitted_party, 3);
        let members = vec![person(1), person(101), person(102), person(103)];
        let at = release().plus_ms(100);
        let token = Some(family.admission_token);
        let four = line.hold_on(thursday(), members.clone(), morning(), Pool::Regular, token, at);
        assert!(matches!(four.outcome, Err(Rejection::Invalid(_))), "four on a token for three: {:?}", four.outcome);
        let two = line.hold_on(thursday(), members[..2].to_vec(), morning(), Pool::Regular, token, at);
        assert_eq!(held_ids(&two.outcome).len(), 2, "fewer than the party is fine");
        assert_eq!(line.ticket(family.ticket_id).state, TicketState::Booked, "the token is used up");
    }
    line.assert_rebuilds();
}

#[test]
fn a_party_larger_than_the_whole_line_takes_what_there_is_instead_of_stalling_it() {
    let line = Line::new(room_rules(100), Capacities { regular: 1, priority: 0 });
    let family = line.try_join(&person(1), 5, None, release().plus_ms(-1_000)).expect("a family of five");
    line.advance(release());
    let ticket = line.ticket(family.ticket.ticket_id);
    assert_eq!((ticket.state, ticket.admitted_party), (TicketState::Admitted, 2), "two slots behind the line");
    let view = line.fixture.book.ticket(ticket.ticket_id, release()).expect("view");
    assert_eq!((view.ticket.party_size, view.ticket.admitted_party), (5, 2));
    line.assert_rebuilds();
}

// ---------------------------------------------------------------------------------------------------------------
// Rescheduling.

#[test]
fn rescheduling_into_a_waiting_room_date_needs_an_admission() {
    let (line, _) = admitted_line(10);
    let at = release().plus_ms(1_000);
    let booking = line.fixture.held(slot(monday(), morning(), Pool::Regular), person(700), at);
    let moved = line
        .fixture
        .run(&Command::Reschedule { booking_id: booking.booking_id, date: thursday(), session_id: morning() }, at);
    assert_eq!(moved.outcome, Err(Rejection::AdmissionRequired), "jumped the line");
}

#[test]
fn a_booking_moves_within_its_own_release_without_a_new_admission() {
    let line = Line::with_dates(room_rules(100), SMALL, thursday(), friday());
    line.join(&person(1), release().plus_ms(-1_000));
    line.advance(release());
    let ticket = admitted(&line.room()).pop().expect("admitted");
    let at = release().plus_ms(1_000);
    let held = line.hold(&applicant_of(&ticket), morning(), Pool::Regular, Some(ticket.admission_token), at);
    let booking_id = held_ids(&held.outcome)[0];
    let paid = line.fixture.run(&pay(booking_id, "pay-own"), at);
    assert_eq!(verdict(&paid.outcome), "OK");
    let moved = line.fixture.run(&Command::Reschedule { booking_id, date: friday(), session_id: morning() }, at);
    assert_eq!(verdict(&moved.outcome), "OK", "{:?}", moved.outcome);
    // The office closes Friday: the booking moves back to Thursday although its one reschedule is used.
    line.close(friday(), false, at);
    let back = line.fixture.run(&Command::Reschedule { booking_id, date: thursday(), session_id: late_morning() }, at);
    assert_eq!(verdict(&back.outcome), "OK", "{:?}", back.outcome);
    line.assert_rebuilds();
}

// ---------------------------------------------------------------------------------------------------------------
// Admissions follow the slots; SOLD_OUT is told early and honestly.

#[test]
fn admissions_count_holds_that_land_after_the_slots_were_read() {
    let line = Line::new(room_rules(100), Capacities { regular: 1, priority: 0 });
    for serial in 1..=4 {
        line.join(&person(serial), release().plus_ms(-1_000));
    }
    line.advance(release());
    let admitted = admitted(&line.room());
    assert_eq!(admitted.len(), 2, "one slot in each session");
    // The engine reads the slots, then moves the line under the rooms lock: a hold can land in between.
    let at = release().plus_ms(100);
    let read = line.fixture.book.supply(&line.key(), at);
    let held = line.hold(&applicant_of(&admitted[0]), morning(), Pool::Regular, Some(admitted[0].admission_token), at);
    assert_eq!(held_ids(&held.outcome).len(), 1);
    line.advance_with(read, &[], at);
    let remaining = line.fixture.book.supply(&line.key(), at).remaining;
    assert!(
        u64::from(line.room().admitted_slots) <= remaining,
        "{} admitted and not booked for {remaining} slot(s)",
        line.room().admitted_slots
    );
    // The other way round: the admissions were read before the hold, the slots after it. Nothing is taken back.
    let skewed = Supply { remaining, admitted: read.admitted, ..read };
    line.advance_with(skewed, &[], at.plus_ms(1));
    assert_eq!(line.ticket(admitted[1].ticket_id).state, TicketState::Admitted, "no admission taken back for nothing");
    line.assert_rebuilds();
}

#[test]
fn a_late_payment_does_not_take_back_a_slot_the_line_waits_for() {
    let line = Line::new(room_rules(100), Capacities { regular: 1, priority: 0 });
    for serial in 1..=3 {
        line.join(&person(serial), release().plus_ms(-1_000));
    }
    line.advance(release());
    let lapse = |ticket: &Ticket, at: Timestamp| {
        let held = line.hold(&applicant_of(ticket), morning(), Pool::Regular, Some(ticket.admission_token), at);
        let booking = held_ids(&held.outcome)[0];
        let deadline = line.fixture.booking(booking).payment_deadline;
        line.fixture.tick(deadline);
        (booking, deadline)
    };
    let first = admitted(&line.room()).into_iter().min_by_key(|ticket| ticket.order).expect("admitted");
    let (booking, deadline) = lapse(&first, release().plus_ms(1_000));
    // The slot went back to the line, where the third ticket waits for it.
    line.advance(deadline);
    let third = admitted(&line.room()).into_iter().max_by_key(|ticket| ticket.order).expect("admitted in turn");
    let late = line.fixture.run(&pay(booking, "late-1"), deadline.plus_ms(1_000));
    assert_eq!(late.outcome, Err(Rejection::PaymentExpired { booking_id: booking }), "refunded, not revived");
    // Once nobody is in line any more, a late payment whose slot is free revives its booking as before.
    let (booking, deadline) = lapse(&third, deadline.plus_ms(2_000));
    for ticket in line.room().tickets.values().filter(|ticket| !ticket.state.has_ended()) {
        line.leave(ticket.ticket_id, deadline);
    }
    let late = line.fixture.run(&pay(booking, "late-3"), deadline.plus_ms(1_000));
    assert!(matches!(late.outcome, Ok(Reply::Paid { revived: true, .. })), "{:?}", late.outcome);
    line.assert_rebuilds();
}

#[test]
fn tickets_no_slot_can_reach_read_sold_out_at_the_draw_and_come_back_first_when_slots_do() {
    let line = Line::new(room_rules(100), Capacities { regular: 1, priority: 0 });
    for serial in 1..=6 {
        line.join(&person(serial), release().plus_ms(-1_000));
    }
    line.advance(release());
    let order = in_order(&line.room());
    let shown: Vec<TicketState> = order.iter().map(|ticket_id| line.shown(*ticket_id, release())).collect();
    // Two slots: two admitted; the two behind them could still get a slot if both admissions went unused; the rest
    // read sold out at once, with their places.
    let expected = [TicketState::Admitted, TicketState::Admitted, TicketState::Waiting, TicketState::Waiting];
    assert_eq!(&shown[..4], &expected);
    assert_eq!(&shown[4..], &[TicketState::SoldOut, TicketState::SoldOut]);
    let view = line.fixture.book.ticket(order[5], release()).expect("view");
    assert_eq!((view.ticket.order, view.ahead), (6, 3), "a sold-out ticket keeps its place");

    // Both admitted hold and pay: nothing can come back, everyone left reads sold out.
    let at = release().plus_ms(1_000);
    for (ticket_id, session) in order[..2].iter().zip(sessions()) {
        let ticket = line.ticket(*ticket_id);
        let held = line.hold(&applicant_of(&ticket), session, Pool::Regular, Some(ticket.admission_token), at);
        let booking_id = held_ids(&held.outcome)[0];
        assert_eq!(verdict(&line.fixture.run(&pay(booking_id, &format!("pay-{booking_id}")), at).outcome), "OK");
    }
    line.advance(at);
    assert!(order[2..].iter().all(|ticket_id| line.shown(*ticket_id, at) == TicketState::SoldOut));
    // A cancellation brings a slot back: the earliest sold-out ticket is admitted, not a newcomer.
    let newcomer = line.join(&person(50), at.plus_ms(1));
    assert_eq!(newcomer.ticket.state, TicketState::SoldOut, "joining a sold-out line reads sold out at once");
    let image = line.fixture.book.image(0);
    let paid = image.bookings.iter().find(|booking| booking.state == BookingState::Confirmed).expect("paid");
    let cancelled = line.fixture.run(&Command::Cancel { booking_id: paid.booking_id }, at.plus_ms(2));
    assert_eq!(verdict(&cancelled.outcome), "OK");
    line.advance(at.plus_ms(3));
    assert_eq!(line.shown(order[2], at), TicketState::Admitted, "the earliest in line comes back first");
    assert_eq!(line.shown(order[3], at), TicketState::Waiting, "next, should that admission go unused");
    assert_eq!(line.shown(order[4], at), TicketState::SoldOut);
    assert_eq!(line.shown(newcomer.ticket.ticket_id, at), TicketState::SoldOut);
    line.assert_rebuilds();
}

#[test]
fn every_ticket_ends_or_reads_sold_out_once_the_slots_are_gone() {
    let (line, _) = admitted_line(25);
    let mut at = release();
    let mut serial_payment = 0;
    // Each round: some admitted holders book and pay, others let their admission lapse.
    for round in 0..20 {
        let room = line.room();
        for (index, ticket) in admitted(&room).iter().enumerate() {
            if (index + round) % 3 == 2 {
                continue;
            }
            let booked = sessions().into_iter().find_map(|session| {
                let outcome =
                    line.hold(&applicant_of(ticket), session, Pool::Regular, Some(ticket.admission_token), at).outcome;
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
    }
    let room = line.room();
    let states: BTreeMap<TicketId, TicketState> =
        room.tickets.values().map(|ticket| (ticket.ticket_id, room.shown_state(ticket))).collect();
    assert!(states.values().all(|state| state.has_ended() || *state == TicketState::SoldOut), "{states:?}");
    let booked = states.values().filter(|state| **state == TicketState::Booked).count();
    assert_eq!(booked, 6, "every regular slot went to someone in line (the priority pool is not behind it)");
    assert!(states.values().any(|state| *state == TicketState::SoldOut), "someone was still waiting: {states:?}");
    assert!(!states.values().any(|state| *state == TicketState::Left));
    let late = line.join(&person(99), at);
    assert_eq!(late.ticket.state, TicketState::SoldOut, "joining a sold-out line reads sold out at once");
    line.assert_rebuilds();
}

#[test]
fn the_line_counts_only_slots_that_can_be_booked_now_and_later_ones_only_for_reach() {
    // One line over Monday 7 to Thursday 10 December and Wednesday 13 January (beyond the 30-day window), looked at
    // on Tuesday 8 December at 09:00: Monday is past and Tuesday's morning session has started.
    let line = Line::with_dates(room_rules(100), SMALL, monday(), thursday());
    let far = date(2027, 1, 13);
    assert_eq!(verdict(&line.schedule(far, far, release(), true, now()).outcome), "OK");
    line.close(wednesday(), false, now());
    let at = wib(tuesday(), 9, 0);
    let supply = line.fixture.book.supply(&line.key(), at);
    // Tuesday late morning (3) + Thursday (6) bookable; Wednesday closed (6) and 13 January (6) may come later.
    assert_eq!((supply.remaining, supply.awaiting, supply.later), (9, 0, 12));
    for serial in 1..=40 {
        line.join(&person(serial), release().plus_ms(-1_000));
    }
    line.advance(at);
    let room = line.room();
    assert_eq!(room.admitted.len(), 9, "admitted only for slots a hold can take");
    let sold_out = room.tickets.values().filter(|ticket| room.shown_state(ticket) == TicketState::SoldOut).count();
    assert_eq!(sold_out, 40 - 9 - 21, "the 21 slots that could still come keep 21 waiting");
    line.assert_rebuilds();
}

#[test]
fn estimated_wait_follows_the_measured_admission_rate() {
    let line = Line::new(room_rules(100), Capacities { regular: 3, priority: 0 });
    for serial in 1..=20 {
        line.join(&person(serial), release().plus_ms(-1_000));
    }
    line.advance(release());
    // Six admitted at once; then one slot comes free every ten seconds as admitted tickets let theirs lapse.
    let mut at = release();
    for _ in 0..3 {
        let first = admitted(&line.room()).into_iter().min_by_key(|ticket| ticket.order).expect("admitted");
        line.leave(first.ticket_id, at.plus_ms(1));
        at = at.plus_ms(10_000);
        line.advance(at);
    }
    let room = line.room();
    let waiting = room.tickets.values().filter(|ticket| room.shown_state(ticket) == TicketState::Waiting);
    let last = waiting.max_by_key(|ticket| ticket.order).expect("someone waits");
    let view = line.fixture.book.ticket(last.ticket_id, at).expect("view");
    // 9 admissions over 30 s: about 3.3 s each.
    let expected = 30_000.0 / 9.0 * view.ahead as f64;
    assert!((view.estimated_wait_ms as f64 - expected).abs() <= expected * 0.05, "{view:?} vs {expected}");
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
                room.admit(ticket_id, 1, release(), release().plus_ms(ADMISSION_TTL_MS));
            }
        }
        if number % 13 == 0 {
            let latest = admitted(&room).into_iter().max_by_key(|ticket| ticket.order);
            if let Some(latest) = latest {
                room.revoke(latest.ticket_id);
            }
        }
        assert_room_consistent(&room);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// A line through the office's changes: a moved release, a closed date, older releases, the end.

#[test]
fn a_moved_release_takes_the_line_along_and_everyone_keeps_their_place() {
    let line = Line::with_dates(room_rules(100), Capacities { regular: 1, priority: 0 }, thursday(), friday());
    let at = release().plus_ms(-1_000);
    let tickets: Vec<TicketId> = (1..=6).map(|serial| line.join(&person(serial), at).ticket.ticket_id).collect();
    let later = release().plus_ms(30 * 60_000);
    assert_eq!(verdict(&line.schedule(thursday(), friday(), later, true, at).outcome), "OK");
    assert_eq!(line.key().release_at, later, "the line follows its dates to the new instant");
    line.advance(release());
    assert!(!line.room().drawn, "not drawn at the old instant");
    let views: Vec<TicketView> =
        tickets.iter().map(|ticket_id| line.fixture.book.ticket(*ticket_id, release()).expect("kept")).collect();
    assert!(views.iter().all(|view| view.ticket.state == TicketState::Waiting && view.room.release_at == later));
    line.advance(later);
    let room = line.room();
    assert_eq!(room.admitted.len(), 4, "four slots over the two dates");
    assert!(tickets.iter().all(|ticket_id| line.shown(*ticket_id, later) != TicketState::Expired));
    line.assert_rebuilds();
}

#[test]
fn a_date_closed_for_a_moment_takes_admissions_back_and_reopening_gives_them_back_first() {
    let line = Line::new(room_rules(100), Capacities { regular: 1, priority: 0 });
    for serial in 1..=5 {
        line.join(&person(serial), release().plus_ms(-1_000));
    }
    line.advance(release());
    let first_two: BTreeSet<TicketId> = admitted(&line.room()).iter().map(|ticket| ticket.ticket_id).collect();
    assert_eq!(first_two.len(), 2);
    let at = release().plus_ms(1_000);
    line.close(thursday(), false, at);
    line.advance(at);
    let room = line.room();
    assert!(room.admitted.is_empty(), "admissions taken back: nothing can be booked now");
    let shown: Vec<TicketState> =
        in_order(&room).iter().map(|ticket_id| room.shown_state(&room.tickets[ticket_id])).collect();
    // The closed date's two slots may come back: the two at the front keep waiting for them, not told sold out.
    assert_eq!(&shown[..2], &[TicketState::Waiting, TicketState::Waiting]);
    assert!(first_two.iter().all(|ticket_id| room.tickets[ticket_id].order <= 2), "the front of the line");
    line.close(thursday(), true, at.plus_ms(1_000));
    line.advance(at.plus_ms(1_000));
    let again: BTreeSet<TicketId> = admitted(&line.room()).iter().map(|ticket| ticket.ticket_id).collect();
    assert_eq!(again, first_two, "the same two, at the front of the line, are admitted again");
    line.assert_rebuilds();
}

#[test]
fn a_join_naming_dates_joins_the_line_that_gates_them() {
    let line = Line::new(room_rules(100), Capacities { regular: 1, priority: 0 });
    let older = line.key();
    let newer_release = release().plus_ms(HOUR_MS);
    assert_eq!(verdict(&line.schedule(friday(), friday(), newer_release, true, now()).outcome), "OK");
    let at = newer_release.plus_ms(-1_000);
    let plain = line.try_join(&person(1), 1, None, at).expect("joins");
    assert_eq!(plain.room.release_at, newer_release, "without dates: the office's latest open line");
    let thursday_only = line.try_join(&person(2), 1, Some((thursday(), thursday())), at).expect("joins");
    assert_eq!(thursday_only.room, older, "Thursday is behind the older release");
    let refused = line.try_join(&person(3), 1, Some((monday(), monday())), at);
    assert_eq!(refused.map(|_| ()), Err(Rejection::NoWaitingRoom(office_id())), "Monday is behind no line");
    line.fixture.book.advance_waiting_room(&older, line.fixture.book.supply(&older, at), &[], at, &line.fixture.log);
    let ticket = line.fixture.book.ticket(thursday_only.ticket.ticket_id, at).expect("ticket").ticket;
    assert_eq!(ticket.state, TicketState::Admitted, "the older line still admits for its free slots");
    let held = line.hold(&person(2), morning(), Pool::Regular, Some(ticket.admission_token), at);
    assert_eq!(held_ids(&held.outcome).len(), 1);
}

#[test]
fn a_line_ends_when_its_dates_are_gone_and_its_ticket_numbers_are_not_handed_out_again() {
    let line = Line::new(room_rules(100), SMALL);
    let key = line.key();
    let joined: Vec<TicketId> =
        (1..=5).map(|serial| line.join(&person(serial), release().plus_ms(-1_000)).ticket.ticket_id).collect();
    assert!(line.fixture.book.finished_waiting_rooms(release()).is_empty(), "Thursday is still to come");
    let friday_morning = wib(friday(), 8, 0);
    assert_eq!(line.fixture.book.finished_waiting_rooms(friday_morning), vec![key.clone()]);
    let (_, dropped) = line.fixture.book.finish_waiting_room(&key, friday_morning, &line.fixture.log).expect("ends");
    assert_eq!(dropped, joined, "the tickets that went with it");
    assert!(line.fixture.book.waiting_room_keys().is_empty(), "dropped with its tickets");
    assert!(joined.iter().all(|ticket_id| line.fixture.book.ticket(*ticket_id, friday_morning).is_none()));
    line.fixture.assert_rebuilds();
    // Another line later: ticket numbers continue, after a restart from the image too.
    let reloaded = loaded(room_rules(100), line.fixture.book.image(0));
    let next_release = wib(friday(), 12, 0);
    let rule = ScheduleRule {
        first_date: date(2026, 12, 18),
        last_date: date(2026, 12, 18),
        release_at: next_release,
        sessions: None,
        waiting_room: true,
    };
    let log = VecLog::default();
    let set = reloaded.execute(
        &request("schedule-2"),
        &Command::SetSchedule { office_id: office_id(), rule },
        friday_morning,
        &log,
    );
    assert_eq!(verdict(&set.outcome), "OK");
    let office_id = office_id();
    let wish = JoinWish {
        office_id: &office_id,
        service: ServiceType::NewPassport,
        nik: person(1).nik,
        party_size: 1,
        dates: None,
    };
    let (view, _) = reloaded.join(&request("join-after"), wish, next_release, &log).expect("joins");
    assert!(view.ticket.ticket_id > *joined.iter().max().expect("joined"), "{} reused a number", view.ticket.ticket_id);
}

#[test]
fn purging_bookings_takes_ended_lines_with_their_tickets() {
    let line = Line::new(room_rules(100), SMALL);
    line.join(&person(1), release().plus_ms(-1_000));
    let purge = line.fixture.run(&Command::PurgeBookings { before: friday() }, wib(date(2026, 12, 12), 9, 0));
    assert_eq!(verdict(&purge.outcome), "OK");
    assert!(line.fixture.book.waiting_room_keys().is_empty());
    line.fixture.assert_rebuilds();
}

// ---------------------------------------------------------------------------------------------------------------
// Random histories.

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
                    let before = line.room();
                    let in_line = before.by_nik.get(&person(serial).nik).is_some_and(|ticket_id| {
                        !before.tickets[ticket_id].state.has_ended()
                    });
                    let Ok(view) = line.try_join(&person(serial), 1, None, stamped) else { continue };
                    if !in_line {
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
                        line.leave(ticket_id, clock);
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
}

fn unique_request() -> crate::domain::values::ids::RequestId {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    request(&format!("wr-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
}

// ---------------------------------------------------------------------------------------------------------------
// Random histories against a reference model.

/// What the model expects of one ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Expected {
    nik: crate::domain::values::nik::Nik,
    party: u8,
    attempt: u8,
    state: TicketState,
    claim: u8,
    expires_at: Timestamp,
}

/// One operation of a random history, at the instant the one before left the clock.
#[derive(Clone, Debug)]
enum Op {
    /// An applicant joins (or joins again) for a party; the join is stamped `lag_ms` earlier.
    Join { serial: u16, party: u8, lag_ms: i64 },
    /// A ticket leaves.
    Leave(Index),
    /// The ticker moves the line with the slots the book reports; `idle` tickets stopped watching.
    Advance { idle: Vec<Index> },
    /// The line moves with made-up slot figures.
    AdvanceWith { remaining: u64, awaiting: u64, later: u64 },
    /// An admitted ticket holds for itself and `members - 1` family members with its token.
    Hold { ticket: Index, members: u8, late_morning: bool },
    /// Someone holds with another ticket's token, or with none.
    HoldForeign { ticket: Index, with_token: bool },
    /// A held booking is paid.
    Pay(Index),
    /// A booking is cancelled.
    Cancel(Index),
    /// Time passes; the ticker expires unpaid holds.
    Wait { ms: i64 },
    /// The office moves the release instant of the line's dates by `minutes`.
    MoveRelease { minutes: i64 },
    /// The office closes (or reopens) Thursday or Friday.
    Close { friday: bool, reopen: bool },
}

fn op(random_supply: bool) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..30u16, prop_oneof![4 => Just(1u8), 1 => 2..=5u8], prop_oneof![3 => Just(0i64), 1 => 0..2_000i64])
            .prop_map(|(serial, party, lag_ms)| Op::Join { serial, party, lag_ms }),
        1 => any::<Index>().prop_map(Op::Leave),
        4 => proptest::collection::vec(any::<Index>(), 0..3).prop_map(|idle| Op::Advance { idle }),
        3 => (0..25u64, 0..4u64, 0..6u64).prop_map(move |(remaining, awaiting, later)| {
            if random_supply { Op::AdvanceWith { remaining, awaiting, later } } else { Op::Advance { idle: Vec::new() } }
        }),
        5 => (any::<Index>(), prop_oneof![3 => Just(1u8), 1 => 1..=5u8], any::<bool>())
            .prop_map(|(ticket, members, late_morning)| Op::Hold { ticket, members, late_morning }),
        1 => (any::<Index>(), any::<bool>()).prop_map(|(ticket, with_token)| Op::HoldForeign { ticket, with_token }),
        2 => any::<Index>().prop_map(Op::Pay),
        1 => any::<Index>().prop_map(Op::Cancel),
        1 => prop_oneof![Just(ADMISSION_TTL_MS), 0..150 * 60_000i64].prop_map(|ms| Op::Wait { ms }),
        1 => prop_oneof![-20..0i64, 1..40i64].prop_map(|minutes| Op::MoveRelease { minutes }),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(friday, reopen)| Op::Close { friday, reopen }),
    ]
}

#[test]
fn a_line_admits_at_its_pace_however_many_slots_are_free() {
    let rules = BookRules { admissions_per_second_max: 1_000, ..room_rules(100) };
    let line = Line::new(rules, Capacities { regular: 1, priority: 0 });
    for serial in 0..400 {
        line.join(&person(serial), release().plus_ms(-1_000));
    }
    // Slots enough for everyone: only the pace holds admissions back.
    let plenty = Supply { remaining: 10_000, ..Supply::default() };
    let admitted_at = |after_release_ms: i64| {
        let step = line.advance_with(plenty, &[], release().plus_ms(after_release_ms));
        step.map_or(0, |advanced| advanced.waited_ms.len())
    };
    assert_eq!(admitted_at(0), 100, "the draw's step admits one window's worth (1,000 a second for 100 ms)");
    assert_eq!(admitted_at(100), 100, "the next tick as much again");
    assert_eq!(admitted_at(130), 30, "a step 30 ms after the last admits 30 ms' worth");
    assert_eq!(admitted_at(130), 0, "a second step in the same millisecond admits nobody");
    assert_eq!(admitted_at(5_000), 100, "a quiet spell is not made up in one burst");
    assert_eq!(admitted(&line.room()).len(), 330);
    let mut order: Vec<u64> = admitted(&line.room()).iter().map(|ticket| ticket.order).collect();
    order.sort_unstable();
    assert_eq!(order, (1..=330).collect::<Vec<u64>>(), "from the front of the line, in order");
    line.assert_rebuilds();
}

/// A line over Thursday and Friday run side by side with its reference model.
struct ModelRun {
    line: Line,
    clock: Timestamp,
    factor_percent: u32,
    /// The line's admissions per second, low enough that the pace decides some steps.
    pace_per_second: u32,
    /// When a step last admitted someone.
    last_admitting_step: Option<Timestamp>,
    release_at: Timestamp,
    tickets: BTreeMap<TicketId, Expected>,
    latest: BTreeMap<crate::domain::values::nik::Nik, TicketId>,
    payments: u64,
    family: u16,
}

impl ModelRun {
    fn new(capacities: Capacities, factor_percent: u32) -> ModelRun {
        let pace_per_second = 30;
        let rules = BookRules { admissions_per_second_max: pace_per_second, ..room_rules(factor_percent) };
        let line = Line::with_dates(rules, capacities, thursday(), friday());
        ModelRun {
            line,
            clock: release().plus_ms(-30 * 60_000),
            factor_percent,
            pace_per_second,
            last_admitting_step: None,
            release_at: release(),
            tickets: BTreeMap::new(),
            latest: BTreeMap::new(),
            payments: 0,
            family: 0,
        }
    }

    fn ids(&self, state: Option<TicketState>) -> Vec<TicketId> {
        let matching = self.tickets.iter().filter(|(_, ticket)| state.is_none_or(|state| ticket.state == state));
        matching.map(|(ticket_id, _)| *ticket_id).collect()
    }

    fn bookings(&self, active: bool) -> Vec<BookingId> {
        let image = self.line.fixture.book.image(0);
        let wanted =
            |state: BookingState| if active { state.is_active() } else { state == BookingState::AwaitingPayment };
        image.bookings.iter().filter(|booking| wanted(booking.state)).map(|booking| booking.booking_id).collect()
    }

    fn has_active_booking(&self, nik: crate::domain::values::nik::Nik) -> bool {
        let image = self.line.fixture.book.image(0);
        image.applicants.iter().any(|(each, record)| *each == nik && !record.active().is_empty())
    }

    fn run(&mut self, op: &Op) {
        let at = self.clock;
        match op {
            Op::Join { serial, party, lag_ms } => self.join(*serial, *party, at.plus_ms(-lag_ms)),
            Op::Leave(pick) => {
                let ids = self.ids(None);
                if !ids.is_empty() {
                    let ticket_id = ids[pick.index(ids.len())];
                    let view = self.line.leave(ticket_id, at);
                    let expected = &mut self.tickets.get_mut(&ticket_id).expect("modelled");
                    if !expected.state.has_ended() {
                        expected.state = TicketState::Left;
                        expected.claim = 0;
                    }
                    assert_eq!(view.ticket.state, expected.state);
                }
            }
            Op::Advance { idle } => {
                let ids = self.ids(None);
                let idle: Vec<TicketId> = if ids.is_empty() {
                    Vec::new()
                } else {
                    idle.iter().map(|pick| ids[pick.index(ids.len())]).collect()
                };
                let supply = self.line.fixture.book.supply(&self.line.key(), at);
                assert_eq!(supply, self.naive_supply(at), "the book's supply against a naive count");
                self.step(supply, &idle, true);
            }
            Op::AdvanceWith { remaining, awaiting, later } => {
                let supply = Supply { remaining: *remaining, awaiting: *awaiting, later: *later, admitted: 0 };
                self.step(supply, &[], false);
            }
            Op::Hold { ticket, members, late_morning } => self.hold(*ticket, *members, *late_morning, at),
            Op::HoldForeign { ticket, with_token } => {
                let ids = self.ids(None);
                if !ids.is_empty() {
                    let ticket = self.line.ticket(ids[ticket.index(ids.len())]);
                    self.family += 1;
                    let stranger = person(1_000 + self.family);
                    let token = with_token.then_some(ticket.admission_token);
                    let outcome = self.line.hold(&stranger, morning(), Pool::Regular, token, at).outcome;
                    assert!(outcome.is_err(), "a hold without its own token: {outcome:?}");
                }
            }
            Op::Pay(pick) => {
                let awaiting = self.bookings(false);
                if !awaiting.is_empty() {
                    self.payments += 1;
                    let booking_id = awaiting[pick.index(awaiting.len())];
                    self.line.fixture.run(&pay(booking_id, &format!("pay-{}", self.payments)), at);
                }
            }
            Op::Cancel(pick) => {
                let active = self.bookings(true);
                if !active.is_empty() {
                    let booking_id = active[pick.index(active.len())];
                    assert_eq!(verdict(&self.line.fixture.run(&Command::Cancel { booking_id }, at).outcome), "OK");
                }
            }
            Op::Wait { ms } => {
                self.clock = at.plus_ms(*ms);
                self.line.fixture.tick(self.clock);
            }
            Op::MoveRelease { minutes } => {
                let moved = self.release_at.plus_ms(minutes * 60_000);
                assert_eq!(verdict(&self.line.schedule(thursday(), friday(), moved, true, at).outcome), "OK");
                self.release_at = moved;
                assert_eq!(self.line.key().release_at, moved, "the line follows its dates");
            }
            Op::Close { friday: on_friday, reopen } => {
                self.line.close(if *on_friday { friday() } else { thursday() }, *reopen, at);
            }
        }
        self.clock = self.clock.plus_ms(1_000);
        self.check();
    }

    fn join(&mut self, serial: u16, party: u8, stamped: Timestamp) {
        let applicant = person(serial);
        let outcome = self.line.try_join(&applicant, party, None, stamped);
        let office = self.line.fixture.book.office(&office_id()).expect("office");
        let opens_at = self.release_at.plus_ms(-PRE_OPEN_MS);
        let previous = self.latest.get(&applicant.nik).map(|ticket_id| (*ticket_id, self.tickets[ticket_id].clone()));
        let expected = if office.today(stamped) > friday() {
            Err(Rejection::NoWaitingRoom(office_id()))
        } else if stamped < opens_at {
            Err(Rejection::NotYetOpen { opens_at })
        } else {
            match &previous {
                Some((ticket_id, ticket)) if !ticket.state.has_ended() => Ok(Some(*ticket_id)),
                _ if self.has_active_booking(applicant.nik) => Err(Rejection::ApplicantHasBooking {
                    booking_id: self
                        .line
                        .fixture
                        .book
                        .image(0)
                        .applicants
                        .iter()
                        .find(|(nik, _)| *nik == applicant.nik)
                        .expect("known")
                        .1
                        .active()[0],
                }),
                Some((_, ticket)) if usize::from(ticket.attempt) >= JOINS_PER_APPLICANT_PER_ROOM_MAX => {
                    Err(Rejection::LimitReached { limit: "joins_per_applicant_max".into() })
                }
                _ => Ok(None),
            }
        };
        match (expected, outcome) {
            (Err(expected), outcome) => assert_eq!(outcome.map(|_| ()), Err(expected)),
            (Ok(Some(ticket_id)), outcome) => assert_eq!(outcome.expect("joins").ticket.ticket_id, ticket_id),
            (Ok(None), outcome) => {
                let view = outcome.expect("a new ticket");
                assert!(!self.tickets.contains_key(&view.ticket.ticket_id), "a new ticket id");
                let attempt = previous.map_or(1, |(_, ticket)| ticket.attempt + 1);
                let expected = Expected {
                    nik: applicant.nik,
                    party,
                    attempt,
                    state: TicketState::Waiting,
                    claim: 0,
                    expires_at: Timestamp(0),
                };
                self.tickets.insert(view.ticket.ticket_id, expected);
                self.latest.insert(applicant.nik, view.ticket.ticket_id);
            }
        }
    }

    fn hold(&mut self, pick: Index, members: u8, late_morning: bool, at: Timestamp) {
        let admitted = self.ids(Some(TicketState::Admitted));
        if admitted.is_empty() {
            return;
        }
        let ticket_id = admitted[pick.index(admitted.len())];
        let ticket = self.line.ticket(ticket_id);
        let mut applicants = vec![applicant_of(&ticket)];
        for _ in 1..members {
            self.family += 1;
            applicants.push(person(1_000 + self.family));
        }
        let session = if late_morning { late_morning_session() } else { morning() };
        let outcome =
            self.line.hold_on(thursday(), applicants, session, Pool::Regular, Some(ticket.admission_token), at);
        let expected = self.tickets.get_mut(&ticket_id).expect("modelled");
        if outcome.outcome.is_ok() {
            assert!(members <= expected.claim, "held {members} on an admission for {}", expected.claim);
            assert!(at < expected.expires_at, "held with a lapsed token");
            expected.state = TicketState::Booked;
            expected.claim = 0;
        } else if members <= expected.claim && at < expected.expires_at {
            assert_ne!(outcome.outcome, Err(Rejection::AdmissionRequired), "a valid token was refused");
        }
    }

    /// Every slot behind the line, counted the naive way: availability per session, bookings from the image.
    fn naive_supply(&self, at: Timestamp) -> Supply {
        let book = &self.line.fixture.book;
        let office = book.office(&office_id()).expect("office");
        let image = book.image(0);
        let room = self.line.room();
        let mut supply = Supply { admitted: u64::from(room.admitted_slots), ..Supply::default() };
        for on in [thursday(), friday()] {
            let Some(plan) = office.plan(on) else { continue };
            if on < office.today(at) || !plan.waiting_room || plan.release_at != room.key.release_at {
                continue;
            }
            let sessions = book.availability(&office_id(), ServiceType::NewPassport, on, on, at).expect("availability");
            for session in sessions {
                let template =
                    plan.sessions.iter().find(|each| each.session_id == session.session_id).expect("planned");
                if at >= office.session_start(on, template) {
                    continue;
                }
                for pool in session.pools.iter().filter(|pool| pool.pool != Pool::Priority) {
                    supply.awaiting += image
                        .bookings
                        .iter()
                        .filter(|booking| booking.state == BookingState::AwaitingPayment)
                        .filter(|booking| booking.slot == slot(on, session.session_id.clone(), pool.pool))
                        .count() as u64;
                    if plan.closed.is_none() && at >= plan.release_at {
                        supply.remaining += u64::from(pool.remaining);
                    } else {
                        supply.later += u64::from(pool.remaining);
                    }
                }
            }
        }
        supply
    }

    /// Moves the line on and checks the step against the model's own decision.
    fn step(&mut self, supply: Supply, idle: &[TicketId], real: bool) {
        let at = self.clock;
        let before = self.line.room();
        let logged = self.line.fixture.log.len();
        self.line.advance_with(supply, idle, at);
        let after = self.line.room();
        let stepped = self.line.fixture.log.len() > logged;
        let order = |ticket_id: &TicketId| after.tickets[ticket_id].order;
        if at < self.release_at {
            assert!(!stepped, "a line does not move before its release instant");
            return;
        }
        // The model's decision: lapsed admissions and idle waiting tickets expire; admissions beyond the budget are
        // taken back, latest first; then parties from the front of the line while they fit.
        let budget = (supply.remaining * u64::from(self.factor_percent)).div_ceil(100);
        let claim = |expected: &Expected| u64::from(expected.claim);
        let lapsed: BTreeSet<TicketId> = self
            .tickets
            .iter()
            .filter(|(_, ticket)| ticket.state == TicketState::Admitted && ticket.expires_at <= at)
            .map(|(ticket_id, _)| *ticket_id)
            .collect();
        let idle: BTreeSet<TicketId> =
            idle.iter().copied().filter(|ticket_id| self.tickets[ticket_id].state == TicketState::Waiting).collect();
        let mut kept: u64 = self
            .tickets
            .iter()
            .filter(|(ticket_id, ticket)| ticket.state == TicketState::Admitted && !lapsed.contains(ticket_id))
            .map(|(_, ticket)| claim(ticket))
            .sum();
        let mut still: Vec<TicketId> =
            self.ids(Some(TicketState::Admitted)).into_iter().filter(|ticket_id| !lapsed.contains(ticket_id)).collect();
        still.sort_by_key(|ticket_id| std::cmp::Reverse(order(ticket_id)));
        let mut revoked = Vec::new();
        for ticket_id in still {
            if kept <= budget {
                break;
            }
            kept -= claim(&self.tickets[&ticket_id]);
            revoked.push(ticket_id);
        }
        let mut waiting: Vec<TicketId> = self
            .ids(Some(TicketState::Waiting))
            .into_iter()
            .filter(|ticket_id| !idle.contains(ticket_id))
            .chain(revoked.iter().copied())
            .collect();
        waiting.sort_by_key(order);
        let mut admitted: Vec<(TicketId, u8)> = Vec::new();
        let mut wanted = budget.saturating_sub(kept);
        // The pace: the rate over the time since the last admitting step, a tenth of a second at most.
        let paced_ms = self.last_admitting_step.map_or(100, |last| at.ms_since(last).clamp(0, 100));
        let allowance = (u64::from(self.pace_per_second) * paced_ms as u64).div_ceil(1000) as usize;
        if revoked.is_empty() && wanted > 0 && allowance > 0 {
            for ticket_id in waiting.iter().filter(|ticket_id| !revoked.contains(ticket_id)) {
                if admitted.len() == allowance {
                    break;
                }
                let party = self.tickets[ticket_id].party;
                if u64::from(party) <= wanted {
                    admitted.push((*ticket_id, party));
                    wanted -= u64::from(party);
                } else {
                    if kept == 0 && admitted.is_empty() {
                        admitted.push((*ticket_id, wanted as u8));
                    }
                    break;
                }
                if wanted == 0 {
                    break;
                }
            }
        }
        let potential = supply.remaining + supply.awaiting + supply.later;
        match self.line.fixture.log.events().pop() {
            Some(Event::WaitingRoom(WaitingRoomEvent::Stepped {
                admitted: logged_admitted,
                expired,
                revoked: logged_revoked,
                potential: logged_potential,
                ..
            })) if stepped => {
                assert_eq!(logged_admitted, admitted, "admissions");
                let expected_expired: BTreeSet<TicketId> = lapsed.union(&idle).copied().collect();
                assert_eq!(expired.into_iter().collect::<BTreeSet<_>>(), expected_expired, "expiries");
                assert_eq!(logged_revoked, revoked, "admissions taken back");
                assert_eq!(logged_potential, potential);
            }
            other => {
                assert!(!stepped, "an unexpected event {other:?}");
                let nothing = lapsed.is_empty() && idle.is_empty() && revoked.is_empty() && admitted.is_empty();
                assert!(nothing && before.drawn, "the line should have moved");
            }
        }
        for ticket_id in lapsed.iter().chain(&idle) {
            let expected = self.tickets.get_mut(ticket_id).expect("modelled");
            expected.state = TicketState::Expired;
            expected.claim = 0;
        }
        for ticket_id in &revoked {
            let expected = self.tickets.get_mut(ticket_id).expect("modelled");
            (expected.state, expected.claim) = (TicketState::Waiting, 0);
        }
        for (ticket_id, party) in &admitted {
            let expected = self.tickets.get_mut(ticket_id).expect("modelled");
            (expected.state, expected.claim) = (TicketState::Admitted, *party);
            expected.expires_at = at.plus_ms(ADMISSION_TTL_MS);
        }
        if !admitted.is_empty() {
            self.last_admitting_step = Some(at);
        }
        // Invariant 5: what is admitted and not yet booked fits the slots bookable now, times the factor.
        assert!(u64::from(after.admitted_slots) <= budget, "{} admitted slots, budget {budget}", after.admitted_slots);
        if real {
            let now_budget = (self.naive_supply(at).remaining * u64::from(self.factor_percent)).div_ceil(100);
            assert!(u64::from(after.admitted_slots) <= now_budget, "invariant 5 after the step");
        }
        self.check_boundary(potential);
    }

    /// The waiting tickets that read sold out are exactly those the model cannot reach with `potential` slots.
    fn check_boundary(&self, potential: u64) {
        let room = self.line.room();
        let mut waiting: Vec<&Ticket> =
            room.tickets.values().filter(|ticket| ticket.state == TicketState::Waiting && ticket.order > 0).collect();
        waiting.sort_by_key(|ticket| ticket.order);
        let mut ahead = 0u64;
        for ticket in waiting {
            let reachable = ahead < potential;
            let shown = room.shown_state(ticket);
            assert_eq!(
                shown == TicketState::SoldOut,
                !reachable,
                "ticket {} with {ahead} slots ahead",
                ticket.ticket_id
            );
            ahead += u64::from(ticket.party_size);
        }
    }

    /// The line agrees with the model ticket by ticket.
    fn check(&self) {
        let room = self.line.room();
        assert_room_consistent(&room);
        let actual: BTreeMap<TicketId, Expected> = room
            .tickets
            .values()
            .map(|ticket| {
                let claim = if ticket.state == TicketState::Admitted { ticket.admitted_party } else { 0 };
                let expires_at =
                    if ticket.state == TicketState::Admitted { ticket.admission_expires_at } else { Timestamp(0) };
                let expected = Expected {
                    nik: ticket.nik,
                    party: ticket.party_size,
                    attempt: ticket.attempt,
                    state: ticket.state,
                    claim,
                    expires_at,
                };
                (ticket.ticket_id, expected)
            })
            .collect();
        let modelled: BTreeMap<TicketId, Expected> = self
            .tickets
            .iter()
            .map(|(ticket_id, ticket)| {
                let admitted = ticket.state == TicketState::Admitted;
                let expires_at = if admitted { ticket.expires_at } else { Timestamp(0) };
                (*ticket_id, Expected { expires_at, ..ticket.clone() })
            })
            .collect();
        assert_eq!(actual, modelled, "the line against the model");
    }

    /// Reopens the dates, pays what is held, and books with every admission until nobody is left in line.
    fn drain(&mut self) {
        self.line.close(thursday(), true, self.clock);
        self.line.close(friday(), true, self.clock);
        for _ in 0..300 {
            for booking_id in self.bookings(false) {
                self.payments += 1;
                self.line.fixture.run(&pay(booking_id, &format!("pay-{}", self.payments)), self.clock);
            }
            self.clock = self.clock.max(self.release_at).plus_ms(ADMISSION_TTL_MS);
            let supply = self.line.fixture.book.supply(&self.line.key(), self.clock);
            self.step(supply, &[], true);
            for ticket_id in self.ids(Some(TicketState::Admitted)) {
                let ticket = self.line.ticket(ticket_id);
                for session in sessions() {
                    let held = self.line.hold(
                        &applicant_of(&ticket),
                        session,
                        Pool::Regular,
                        Some(ticket.admission_token),
                        self.clock,
                    );
                    if held.outcome.is_ok() {
                        let expected = self.tickets.get_mut(&ticket_id).expect("modelled");
                        (expected.state, expected.claim) = (TicketState::Booked, 0);
                        break;
                    }
                }
            }
            self.check();
            let room = self.line.room();
            if room.admitted.is_empty()
                && room.tickets.values().all(|ticket| room.shown_state(ticket) != TicketState::Waiting)
            {
                return;
            }
        }
        let room = self.line.room();
        let open: Vec<(TicketId, TicketState)> = room
            .tickets
            .values()
            .map(|ticket| (ticket.ticket_id, room.shown_state(ticket)))
            .filter(|(_, state)| matches!(state, TicketState::Waiting | TicketState::Admitted))
            .collect();
        panic!("tickets never answered: {open:?}");
    }
}

fn late_morning_session() -> SessionId {
    late_morning()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_line_follows_its_reference_model(
        regular in 1..4u32,
        priority in 0..3u32,
        factor_percent in prop_oneof![Just(50u32), Just(100u32), Just(200u32)],
        ops in proptest::collection::vec(op(false), 1..80),
    ) {
        let mut run = ModelRun::new(Capacities { regular, priority }, factor_percent);
        for op in &ops {
            run.run(op);
        }
        run.line.assert_rebuilds();
        run.drain();
        run.line.assert_rebuilds();
    }

    #[test]
    fn each_step_admits_within_the_slot_figures_it_is_given(
        factor_percent in prop_oneof![Just(50u32), Just(100u32), Just(150u32), Just(300u32)],
        ops in proptest::collection::vec(op(true), 1..60),
    ) {
        let mut run = ModelRun::new(SMALL, factor_percent);
        for op in &ops {
            run.run(op);
        }
        run.line.assert_rebuilds();
    }
}
