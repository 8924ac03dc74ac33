//! The quota book: the allocation state machine. Holds every office's days, bookings and applicants in lock shards,
//! decides each command under the locks of exactly the shards it touches, applies the resulting event, and hands the
//! event to the log before the locks are released, so log order agrees with the order of every pair of conflicting
//! changes.
//!
//! Architecture invariant: no I/O, no clock, no randomness. Time is the `now` argument; the log is the [`EventLog`]
//! trait the caller implements.

use super::access::{Exclusive, Guards, ShardAccess};
use super::answers::first_answer;
use super::applied::Applied;
use super::apply;
use super::numbers::BookingNumbers;
use super::remembered::RememberedOutcome;
use super::shard::day_key;
use super::shard::{DayKey, OrdSet, RequestRecord, Shard, ShardKey};
use crate::domain::bookings::amend;
use crate::domain::bookings::booking::{Booking, BookingState, SlotRef};
use crate::domain::bookings::decide;
use crate::domain::bookings::rules::BookRules;
use crate::domain::catalogue::office::{Catalog, Office, Pool};
use crate::domain::messages::command::Command;
use crate::domain::messages::event::{Event, Stamp};
use crate::domain::messages::rejection::Rejection;
use crate::domain::messages::reply::{Outcome, Reply};
use crate::domain::values::ids::{BookingId, RequestId};
use crate::domain::values::time::Timestamp;
use crate::domain::waiting_room;
use crate::domain::waiting_room::admission::waiting_room_for;
use crate::domain::waiting_room::decide::{Decision, JoinWish};
use crate::domain::waiting_room::room::TicketId;
use crate::domain::waiting_room::room::{WaitingRooms, next_ticket_id as waiting_room_next_ticket_id};
use crate::limits::SHARD_COUNT;
use parking_lot::{Mutex, RwLock};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the quota book sends its events. Called with shard locks held: it must not block.
pub trait EventLog {
    /// Appends `event` and returns its log position.
    fn append(&self, event: &Event) -> u64;
}

/// The result of executing a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    /// The answer.
    pub outcome: Outcome,
    /// Log position the answer depends on: wait until it is durable before answering. `None` when nothing was logged
    /// (a refusal, or a no-op).
    pub log_position: Option<u64>,
    /// The answer is a remembered one (a retry).
    pub repeated: bool,
}

impl Execution {
    fn refused(rejection: Rejection) -> Execution {
        Execution { outcome: Err(rejection), log_position: None, repeated: false }
    }
}

/// The allocation state machine.
pub struct QuotaBook {
    rules: BookRules,
    shards: Box<[Mutex<Arc<Shard>>]>,
    catalog: RwLock<Arc<Catalog>>,
    /// Waiting rooms. Locked after shard locks, never before.
    pub(crate) waiting_rooms: Mutex<WaitingRooms>,
    pub(crate) next_ticket_id: AtomicU64,
    booking_numbers: BookingNumbers,
    bookings_count: AtomicU64,
    requests_count: AtomicU64,
}

/// A consistent copy of the whole state at one log position, taken without copying: shards are shared until written.
pub struct Capture {
    /// The shards.
    pub shards: Vec<Arc<Shard>>,
    /// The waiting rooms.
    pub waiting_rooms: Vec<Arc<crate::domain::waiting_room::room::WaitingRoom>>,
    /// The catalogue.
    pub catalog: Arc<Catalog>,
    /// The log position the capture reflects exactly.
    pub log_position: u64,
    /// The next ticket number: kept, so that numbers of lines already ended are never handed out again.
    pub next_ticket_id: u64,
}

impl QuotaBook {
    /// An empty book.
    #[must_use]
    pub fn new(rules: BookRules) -> QuotaBook {
        QuotaBook {
            rules,
            shards: (0..SHARD_COUNT).map(|_| Mutex::new(Arc::new(Shard::default()))).collect(),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            waiting_rooms: Mutex::new(WaitingRooms::new()),
            next_ticket_id: AtomicU64::new(1),
            booking_numbers: BookingNumbers::default(),
            bookings_count: AtomicU64::new(0),
            requests_count: AtomicU64::new(0),
        }
    }

    /// A book from captured parts (snapshot loading). Ticket numbers continue after `next_ticket_id` and after every
    /// ticket in `rooms`.
    #[must_use]
    pub fn from_parts(
        rules: BookRules,
        shards: Vec<Shard>,
        catalog: Catalog,
        rooms: WaitingRooms,
        next_ticket_id: u64,
    ) -> QuotaBook {
        assert_eq!(shards.len(), SHARD_COUNT, "a book has exactly SHARD_COUNT shards");
        let bookings: usize = shards.iter().map(|shard| shard.bookings.len()).sum();
        let requests: usize = shards.iter().map(|shard| shard.requests.len()).sum();
        QuotaBook {
            rules,
            shards: shards.into_iter().map(|shard| Mutex::new(Arc::new(shard))).collect(),
            catalog: RwLock::new(Arc::new(catalog)),
            next_ticket_id: AtomicU64::new(next_ticket_id.max(waiting_room_next_ticket_id(&rooms))),
            waiting_rooms: Mutex::new(rooms),
            booking_numbers: BookingNumbers::default(),
            bookings_count: AtomicU64::new(bookings as u64),
            requests_count: AtomicU64::new(requests as u64),
        }
    }

    /// Keys the stream booking numbers are drawn from (see `numbers.rs`): once, before serving. A book nobody keys
    /// draws from a fixed key, which only tests should do.
    pub fn key_booking_numbers(&self, key: [u8; 32]) {
        self.booking_numbers.set_key(key);
    }

    /// Prefixes the booking numbers this book draws (see `numbers.rs`): once, before serving. Replay does not need
    /// it: the log records every number.
    pub fn prefix_booking_numbers(&self, prefix: u8) {
        self.booking_numbers.set_prefix(prefix);
    }

    /// The policy knobs.
    #[must_use]
    pub fn rules(&self) -> &BookRules {
        &self.rules
    }

    /// The current catalogue.
    #[must_use]
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().clone()
    }

    /// Executes a caller's command at `now`, logging its event through `log`.
    pub fn execute(&self, request_id: &RequestId, command: &Command, now: Timestamp, log: &impl EventLog) -> Execution {
        let mut stamp = Stamp { request_id: request_id.clone(), fingerprint: command.fingerprint(), at: now };
        loop {
            let decided = match command {
                Command::Hold(_) => self.execute_hold(command, stamp, log),
                Command::UpsertOffice(_)
                | Command::SetSchedule { .. }
                | Command::CloseDate { .. }
                | Command::PurgeBookings { .. } => self.execute_admin(command, stamp, log),
                Command::ConfirmPayment { .. }
                | Command::Cancel { .. }
                | Command::Reschedule { .. }
                | Command::CheckIn { .. }
                | Command::AmendBooking { .. } => self.execute_on_booking(command, stamp, log),
                Command::JoinWaitingRoom { .. } | Command::LeaveWaitingRoom { .. } => {
                    self.execute_waiting_room(command, stamp, log)
                }
            };
            // A first answer is remembered under the request id: answer it again, under the locks of the bookings it
            // names (which the command's own lock set need not include). If it was forgotten meanwhile, decide anew.
            match decided {
                Ok(execution) => return execution,
                Err(returned) => match self.answer_again(&returned) {
                    Some(execution) => return execution,
                    None => stamp = returned,
                },
            }
        }
    }

    /// A join or leave: the request id's shard (and the joiner's, to see their active bookings), then the waiting
    /// rooms (the lock order holds: shards first).
    fn execute_waiting_room(&self, command: &Command, stamp: Stamp, log: &impl EventLog) -> Decided {
        let mut indices = vec![stamp.request_id.shard_index()];
        if let Command::JoinWaitingRoom { nik, .. } = command {
            indices.push(nik.shard_index());
        }
        let mut guards = Guards::lock(&self.shards, indices);
        match self.remembered(&guards, &stamp) {
            Some(Known::Reused) => return Ok(Execution::refused(Rejection::RequestIdReused)),
            Some(Known::Answered(_)) => return Err(stamp),
            None => {}
        }
        if let Err(rejection) = self.check_room(0) {
            return Ok(Execution::refused(rejection));
        }
        let catalog = self.catalog();
        let mut rooms = self.waiting_rooms.lock();
        let decided = match command {
            Command::JoinWaitingRoom { office_id, service, nik, party_size, dates } => {
                let wish = JoinWish { office_id, service: *service, nik: *nik, party_size: *party_size, dates: *dates };
                let applicant = guards.shard(nik.shard_index()).applicants.get(nik);
                let new_ticket_id = || TicketId(self.next_ticket_id.fetch_add(1, Ordering::Relaxed));
                waiting_room::decide::join(&self.rules, &catalog, &rooms, applicant, wish, stamp, new_ticket_id)
            }
            Command::LeaveWaitingRoom { ticket_id } => waiting_room::decide::leave(&rooms, *ticket_id, stamp),
            _ => unreachable!("dispatched on waiting-room commands"),
        };
        Ok(match decided {
            Ok(Decision::Change(event)) => self.commit(&mut guards, Some(&mut rooms), catalog, *event, log),
            Ok(Decision::Unchanged(ticket_id)) => {
                Execution { outcome: Ok(Reply::Ticket { ticket_id }), log_position: None, repeated: false }
            }
            Err(rejection) => Execution::refused(rejection),
        })
    }

    fn execute_hold(&self, command: &Command, stamp: Stamp, log: &impl EventLog) -> Decided {
        let Command::Hold(hold) = command else { unreachable!("dispatched on Hold") };
        let wanted = hold.applicants.len() as u64;
        let (mut guards, first) = loop {
            // Random numbers, so a booking may have one already, or have had it (a purged booking's number, and the
            // payment code derived from it, is never handed out again): check under the locks, draw again if so.
            let first = self.booking_numbers.draw(wanted);
            let numbers = (0..wanted).map(|offset| BookingId(first.0 + offset));
            let mut indices = vec![stamp.request_id.shard_index(), day_key(&hold.slot).shard_index()];
            indices.extend(hold.applicants.iter().map(|applicant| applicant.nik.shard_index()));
            indices.extend(numbers.clone().map(|booking_id| booking_id.shard_index()));
            let guards = Guards::lock(&self.shards, indices);
            let taken = |booking_id: BookingId| {
                let shard = guards.shard(booking_id.shard_index());
                shard.bookings.contains_key(&booking_id) || shard.purged.contains_key(&booking_id)
            };
            if !numbers.clone().any(taken) {
                break (guards, first);
            }
        };
        match self.remembered(&guards, &stamp) {
            Some(Known::Reused) => return Ok(Execution::refused(Rejection::RequestIdReused)),
            Some(Known::Answered(_)) => return Err(stamp),
            None => {}
        }
        if let Err(rejection) = self.check_room(wanted) {
            return Ok(Execution::refused(rejection));
        }
        let catalog = self.catalog();
        let mut rooms = waiting_room_for(&catalog, &hold.slot).map(|_| self.waiting_rooms.lock());
        Ok(match decide::hold(&guards, &catalog, &self.rules, hold, stamp, first, rooms.as_deref()) {
            Ok(event) => self.commit(&mut guards, rooms.as_deref_mut(), catalog, event, log),
            Err(rejection) => Execution::refused(rejection),
        })
    }

    fn execute_on_booking(&self, command: &Command, stamp: Stamp, log: &impl EventLog) -> Decided {
        let booking_id = command.booking_id().expect("dispatched on booking commands");
        loop {
            // Peek at the booking to learn which other shards it needs, then lock them all and check nothing moved.
            let Some(peeked) = self.booking(booking_id) else {
                match self.execute_without_booking(command, &stamp, log) {
                    Some(Ok(execution)) => return Ok(execution),
                    Some(Err(AnsweredBefore)) => return Err(stamp),
                    None => continue,
                }
            };
            let mut indices = vec![
                stamp.request_id.shard_index(),
                booking_id.shard_index(),
                peeked.applicant.nik.shard_index(),
                day_key(&peeked.slot).shard_index(),
            ];
            if let Command::Reschedule { date, .. } = command {
                indices.push(DayKey { office_id: peeked.slot.office_id.clone(), date: *date }.shard_index());
            }
            let mut guards = Guards::lock(&self.shards, indices);
            match self.remembered(&guards, &stamp) {
                Some(Known::Reused) => return Ok(Execution::refused(Rejection::RequestIdReused)),
                Some(Known::Answered(_)) => return Err(stamp),
                None => {}
            }
            // A purge may have removed the booking since the peek: then it is decided again without it.
            let Some(booking) = guards.shard(booking_id.shard_index()).bookings.get(&booking_id).cloned() else {
                continue;
            };
            if booking.slot != peeked.slot {
                continue;
            }
            let catalog = self.catalog();
            let decided = match command {
                Command::ConfirmPayment { payment_reference, paid_at, .. } => {
                    // A lapsed booking behind a waiting room may come back only if nobody in line waits for the slot:
                    // the waiting rooms are locked after the shards (the lock order holds).
                    let rooms = waiting_room_for(&catalog, &booking.slot).map(|_| self.waiting_rooms.lock());
                    decide::confirm_payment(
                        &guards,
                        &catalog,
                        &self.rules,
                        &booking,
                        payment_reference,
                        *paid_at,
                        stamp,
                        rooms.as_deref(),
                    )
                }
                Command::Cancel { .. } => decide::cancel(&booking, stamp),
                Command::CheckIn { .. } => decide::check_in(&catalog, &booking, stamp),
                Command::Reschedule { date, session_id, .. } => {
                    decide::reschedule(&guards, &catalog, &self.rules, &booking, *date, session_id, stamp)
                }
                Command::AmendBooking { amendment, nik, .. } => {
                    // A booking leaving the priority pool moves to the regular pool of its session, which a waiting
                    // room may gate: its line is read under the rooms lock, taken after the shards (the lock order
                    // holds).
                    let regular = SlotRef { pool: Pool::Regular, ..booking.slot.clone() };
                    let behind_line =
                        booking.slot.pool == Pool::Priority && waiting_room_for(&catalog, &regular).is_some();
                    let rooms = behind_line.then(|| self.waiting_rooms.lock());
                    amend::amend(&guards, &catalog, &self.rules, &booking, amendment, *nik, stamp, rooms.as_deref())
                }
                _ => unreachable!("dispatched on booking commands"),
            };
            return Ok(match decided {
                Ok(event) => {
                    if let Err(rejection) = self.check_room(0) {
                        return Ok(Execution::refused(rejection));
                    }
                    self.commit(&mut guards, None, catalog, event, log)
                }
                Err(rejection) => Execution::refused(rejection),
            });
        }
    }

    /// A command naming a booking that is not in the book. A payment for a purged booking is recorded for refund (or
    /// recognised as the payment it had accepted); anything else is `BOOKING_NOT_FOUND`. `None` when the booking was
    /// purged between the caller's peek and now: the caller starts again.
    fn execute_without_booking(
        &self,
        command: &Command,
        stamp: &Stamp,
        log: &impl EventLog,
    ) -> Option<Result<Execution, AnsweredBefore>> {
        let booking_id = command.booking_id().expect("dispatched on booking commands");
        let is_payment = matches!(command, Command::ConfirmPayment { .. });
        let peeked = if is_payment {
            self.read_shard(booking_id.shard_index(), |shard| shard.purged.get(&booking_id).cloned())
        } else {
            None
        };
        let mut indices = vec![stamp.request_id.shard_index(), booking_id.shard_index()];
        if let Some(purged) = &peeked {
            indices.push(DayKey { office_id: purged.office_id.clone(), date: purged.date }.shard_index());
        }
        let mut guards = Guards::lock(&self.shards, indices);
        match self.remembered(&guards, stamp) {
            Some(Known::Reused) => return Some(Ok(Execution::refused(Rejection::RequestIdReused))),
            Some(Known::Answered(_)) => return Some(Err(AnsweredBefore)),
            None => {}
        }
        let shard = guards.shard(booking_id.shard_index());
        let purged = if is_payment { shard.purged.get(&booking_id).cloned() } else { None };
        if shard.bookings.contains_key(&booking_id)
            || purged.as_ref().map(|purged| &purged.office_id) != peeked.as_ref().map(|peeked| &peeked.office_id)
        {
            return None;
        }
        let (Some(purged), Command::ConfirmPayment { payment_reference, paid_at, .. }) = (purged, command) else {
            return Some(Ok(Execution::refused(Rejection::BookingNotFound(booking_id))));
        };
        Some(Ok(match decide::purged_payment(&guards, &purged, payment_reference, *paid_at, stamp.clone()) {
            Ok(event) => {
                if let Err(rejection) = self.check_room(0) {
                    return Some(Ok(Execution::refused(rejection)));
                }
                self.commit(&mut guards, None, self.catalog(), event, log)
            }
            Err(rejection) => Execution::refused(rejection),
        }))
    }

    fn execute_admin(&self, command: &Command, stamp: Stamp, log: &impl EventLog) -> Decided {
        let mut guards = Guards::lock(&self.shards, (0..SHARD_COUNT).collect());
        match self.remembered(&guards, &stamp) {
            Some(Known::Reused) => return Ok(Execution::refused(Rejection::RequestIdReused)),
            Some(Known::Answered(_)) => return Err(stamp),
            None => {}
        }
        if let Err(rejection) = self.check_room(0) {
            return Ok(Execution::refused(rejection));
        }
        let catalog = self.catalog();
        let mut rooms = self.waiting_rooms.lock();
        Ok(match crate::domain::catalogue::admin::decide(&guards, &catalog, command, stamp) {
            Ok(event) => self.commit(&mut guards, Some(&mut rooms), catalog, event, log),
            Err(rejection) => Execution::refused(rejection),
        })
    }

    /// Applies a decided event under the held locks, logs it, and remembers the answer.
    fn commit(
        &self,
        guards: &mut Guards<'_>,
        rooms: Option<&mut WaitingRooms>,
        catalog: Arc<Catalog>,
        event: Event,
        log: &impl EventLog,
    ) -> Execution {
        let mut catalog_after = catalog.clone();
        let applied = apply::apply(guards, &mut catalog_after, rooms, &event);
        if !Arc::ptr_eq(&catalog, &catalog_after) {
            *self.catalog.write() = catalog_after;
        }
        let position = log.append(&event);
        self.account(&applied);
        let Some((stamp, remembered)) = applied.answered else { unreachable!("caller commands always answer") };
        // The reply copies the bookings once, for the wire; the record keeps only their ids.
        let outcome = first_answer(&remembered, guards);
        remember(&self.requests_count, guards, stamp, remembered, position);
        Execution { outcome, log_position: Some(position), repeated: false }
    }

    fn account(&self, applied: &Applied) {
        self.bookings_count.fetch_add(applied.bookings_created, Ordering::Relaxed);
        self.bookings_count.fetch_sub(applied.bookings_purged, Ordering::Relaxed);
        self.requests_count.fetch_sub(applied.requests_forgotten, Ordering::Relaxed);
    }

    /// What is remembered under `stamp`'s request id within the retention window: a first answer to give again to
    /// a retry, or a different request (a reused id).
    fn remembered<'access>(&self, access: &'access impl ShardAccess, stamp: &Stamp) -> Option<Known<'access>> {
        let record = access.shard(stamp.request_id.shard_index()).requests.get(&stamp.request_id)?;
        if record.recorded_at.plus_ms(self.rules.request_retention_ms) <= stamp.at {
            return None;
        }
        if record.fingerprint != stamp.fingerprint {
            return Some(Known::Reused);
        }
        Some(Known::Answered(record))
    }

    /// Answers a retry: the first answer remembered under `stamp`'s request id, made again from the bookings it names
    /// as they are now (same bookings, same kind of reply and flags, current fields), read under the locks of the
    /// request id's shard and of the bookings'. `None` when nothing is remembered any more: the command is new.
    fn answer_again(&self, stamp: &Stamp) -> Option<Execution> {
        let request_shard = stamp.request_id.shard_index();
        loop {
            let named = |outcome: &RememberedOutcome| -> Vec<usize> {
                outcome.as_ref().map_or(Vec::new(), |answer| answer.booking_ids().map(|id| id.shard_index()).collect())
            };
            let mut indices = self.read_shard(request_shard, |shard| {
                shard.requests.get(&stamp.request_id).map(|record| named(&record.outcome))
            })?;
            indices.push(request_shard);
            let guards = Guards::lock(&self.shards, indices.clone());
            let record = match self.remembered(&guards, stamp)? {
                Known::Reused => return Some(Execution::refused(Rejection::RequestIdReused)),
                Known::Answered(record) => record,
            };
            if !named(&record.outcome).iter().all(|index| indices.contains(index)) {
                // Replaced since the look above (forgotten and the id used again): look again.
                continue;
            }
            let outcome = match &record.outcome {
                // A purge keeps whole the answers naming the bookings it deletes, so every booking is there; were one
                // not, the caller learns it was purged rather than the service stopping.
                Ok(answer) => {
                    super::answers::reply(answer, &guards).map_err(|booking_id| Rejection::BookingPurged { booking_id })
                }
                Err(rejection) => Err(rejection.clone()),
            };
            let log_position = (record.log_position > 0).then_some(record.log_position);
            return Some(Execution { outcome, log_position, repeated: true });
        }
    }

    fn check_room(&self, new_bookings: u64) -> Result<(), Rejection> {
        if self.requests_count.load(Ordering::Relaxed) >= self.rules.requests_max {
            return Err(Rejection::LimitReached { limit: "requests_max".into() });
        }
        if self.bookings_count.load(Ordering::Relaxed) + new_bookings > self.rules.bookings_max {
            return Err(Rejection::LimitReached { limit: "bookings_max".into() });
        }
        Ok(())
    }

    /// Moves on a hold whose payment deadline, or settlement grace, has passed at `now`: starts its settlement grace
    /// (the slot stays reserved) or expires it (the slot returns). Returns the booking as it is afterwards.
    pub fn expire(&self, booking_id: BookingId, now: Timestamp, log: &impl EventLog) -> Option<(Booking, u64)> {
        self.move_on(booking_id, log, |booking| {
            let due = booking.state == BookingState::AwaitingPayment && booking.hold_due_at() <= now;
            due.then(|| decide::lapse(&self.rules, booking, now))
        })
    }

    /// Bookings awaiting payment whose deadline or settlement grace has passed at `now`, soonest first, at most
    /// `limit`.
    #[must_use]
    pub fn due_expiries(&self, now: Timestamp, limit: usize) -> Vec<BookingId> {
        self.due(now, limit, |shard| &shard.deadlines)
    }

    /// Marks `booking_id` a no-show if it is confirmed and its session ended at or before `now`. Returns the booking.
    pub fn mark_no_show(&self, booking_id: BookingId, now: Timestamp, log: &impl EventLog) -> Option<(Booking, u64)> {
        self.move_on(booking_id, log, |booking| {
            let due = booking.state == BookingState::Confirmed && booking.session_ends_at <= now;
            due.then_some(Event::NoShow { booking_id, at: booking.session_ends_at })
        })
    }

    /// Confirmed bookings whose session ended at or before `now`, soonest first, at most `limit`.
    #[must_use]
    pub fn due_no_shows(&self, now: Timestamp, limit: usize) -> Vec<BookingId> {
        self.due(now, limit, |shard| &shard.session_ends)
    }

    /// Applies and logs the event `decide` makes of a booking, under the locks of the booking, its applicant and its
    /// day: the ticker's way of moving bookings on with time.
    fn move_on(
        &self,
        booking_id: BookingId,
        log: &impl EventLog,
        decide: impl FnOnce(&Booking) -> Option<Event>,
    ) -> Option<(Booking, u64)> {
        let peeked = self.booking(booking_id)?;
        let indices =
            vec![booking_id.shard_index(), peeked.applicant.nik.shard_index(), day_key(&peeked.slot).shard_index()];
        let mut guards = Guards::lock(&self.shards, indices);
        let booking = guards.shard(booking_id.shard_index()).bookings.get(&booking_id)?;
        if booking.slot != peeked.slot {
            return None;
        }
        let event = decide(booking)?;
        let mut catalog = self.catalog();
        apply::apply(&mut guards, &mut catalog, None, &event);
        let position = log.append(&event);
        Some((apply::booking(&guards, booking_id).clone(), position))
    }

    /// The first entries, at most `limit`, at or before `now` of one time index of every shard, soonest first.
    fn due(
        &self,
        now: Timestamp,
        limit: usize,
        index: impl Fn(&Shard) -> &OrdSet<(Timestamp, BookingId)>,
    ) -> Vec<BookingId> {
        let mut due = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            let ready = index(&shard).iter().take_while(|(at, _)| *at <= now);
            due.extend(ready.map(|(at, booking_id)| (*at, *booking_id)).take(limit));
        }
        due.sort_unstable();
        due.into_iter().take(limit).map(|(_, booking_id)| booking_id).collect()
    }

    /// Whether `request_id` has an answer remembered at `now`: a call with it is answered from memory (a retry) or
    /// refused (a reuse), never decided again.
    #[must_use]
    pub fn remembers(&self, request_id: &RequestId, now: Timestamp) -> bool {
        self.read_shard(request_id.shard_index(), |shard| {
            shard
                .requests
                .get(request_id)
                .is_some_and(|record| now < record.recorded_at.plus_ms(self.rules.request_retention_ms))
        })
    }

    /// Drops request records older than the retention window, if any. Returns the log position when something was
    /// logged.
    pub fn forget_requests(&self, now: Timestamp, log: &impl EventLog) -> Option<u64> {
        let recorded_before = now.plus_ms(-self.rules.request_retention_ms);
        let stale = self
            .shards
            .iter()
            .any(|shard| shard.lock().oldest_request().is_some_and(|oldest| oldest < recorded_before));
        if !stale {
            return None;
        }
        let mut guards = Guards::lock(&self.shards, (0..SHARD_COUNT).collect());
        let event = Event::RequestsForgotten { recorded_before };
        let mut catalog = self.catalog();
        let applied = apply::apply(&mut guards, &mut catalog, None, &event);
        self.account(&applied);
        Some(log.append(&event))
    }

    /// Applies a logged event during recovery, before serving. Needs `&mut self`: nothing else may run.
    pub fn replay(&mut self, event: &Event) {
        let mut catalog = self.catalog.get_mut().clone();
        let applied = apply::apply(
            &mut Exclusive::new(&mut self.shards),
            &mut catalog,
            Some(self.waiting_rooms.get_mut()),
            event,
        );
        *self.catalog.get_mut() = catalog;
        self.account(&applied);
        if let Some(highest) = applied.highest_ticket_id {
            self.next_ticket_id.fetch_max(highest.0 + 1, Ordering::Relaxed);
        }
        if let Some((stamp, outcome)) = applied.answered {
            remember(&self.requests_count, &mut Exclusive::new(&mut self.shards), stamp, outcome, 0);
        }
    }

    /// Captures the state for a snapshot. `log_position` is called while every shard is locked, so it reads the exact
    /// position the capture reflects.
    pub fn capture(&self, log_position: impl FnOnce() -> u64) -> Capture {
        let guards: Vec<_> = self.shards.iter().map(|shard| shard.lock()).collect();
        let rooms = self.waiting_rooms.lock();
        Capture {
            shards: guards.iter().map(|guard| Arc::clone(guard)).collect(),
            waiting_rooms: rooms.values().cloned().collect(),
            catalog: self.catalog(),
            log_position: log_position(),
            next_ticket_id: self.next_ticket_id.load(Ordering::Relaxed),
        }
    }

    /// One booking, copied.
    #[must_use]
    pub fn booking(&self, booking_id: BookingId) -> Option<Booking> {
        self.shards[booking_id.shard_index()].lock().bookings.get(&booking_id).cloned()
    }

    /// One booking, copied, with the caller that made it (`None` for bookings made before bookings had owners, and
    /// for holds whose request id names no caller).
    #[must_use]
    pub fn booking_with_owner(&self, booking_id: BookingId) -> Option<(Booking, Option<arcstr::ArcStr>)> {
        let shard = self.shards[booking_id.shard_index()].lock();
        let booking = shard.bookings.get(&booking_id)?.clone();
        Some((booking, shard.owners.get(&booking_id).cloned()))
    }

    /// Runs `read` on the shard at `index` under its lock.
    pub fn read_shard<T>(&self, index: usize, read: impl FnOnce(&Shard) -> T) -> T {
        read(&self.shards[index].lock())
    }

    /// Number of bookings and remembered requests.
    #[must_use]
    pub fn sizes(&self) -> (u64, u64) {
        (self.bookings_count.load(Ordering::Relaxed), self.requests_count.load(Ordering::Relaxed))
    }

    /// The office with `office_id`, if any.
    #[must_use]
    pub fn office(&self, office_id: &crate::domain::values::ids::OfficeId) -> Option<Office> {
        self.catalog().office(office_id).cloned()
    }
}

/// What a command's path made of it: its execution, or the stamp back when a first answer is remembered under its
/// request id (answered again by [`QuotaBook::answer_again`], under the locks of the bookings that answer names).
type Decided = Result<Execution, Stamp>;

/// A first answer is remembered under the request id (see [`Decided`]).
struct AnsweredBefore;

/// What is remembered under a request id.
enum Known<'access> {
    /// A first answer to the same request: a retry.
    Answered(&'access RequestRecord),
    /// A different request under the same id.
    Reused,
}

/// Remembers the first answer to a request, so a retry gets it again.
fn remember(
    count: &AtomicU64,
    access: &mut impl ShardAccess,
    stamp: Stamp,
    outcome: RememberedOutcome,
    log_position: u64,
) {
    let record = RequestRecord { fingerprint: stamp.fingerprint, recorded_at: stamp.at, outcome, log_position };
    if access.shard_mut(stamp.request_id.shard_index()).remember_request(stamp.request_id, record) {
        count.fetch_add(1, Ordering::Relaxed);
    }
}
