//! The waiting room in front of a quota release: tickets, the fair order, admissions and their tokens.
//!
//! People who join before the release instant are put in a random order when it comes (a seeded Fisher-Yates shuffle
//! over ChaCha8, so the order is decided once and replays identically); later arrivals are first come, first served.
//! The engine decides when to admit, expire or declare a line sold out from what it observes (slots remaining, who
//! stopped watching) and records it as an event; applying those events is pure, like every other change.

use crate::domain::catalogue::office::ServiceType;
use crate::domain::values::ids::OfficeId;
use crate::domain::values::nik::Nik;
use crate::domain::values::time::{Date, Timestamp};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;

/// Every waiting room, by line. WaitingRooms are shared with snapshots until written (`Arc::make_mut`).
pub type WaitingRooms = BTreeMap<WaitingRoomKey, Arc<WaitingRoom>>;

/// The next ticket number after every ticket in `rooms`.
#[must_use]
pub fn next_ticket_id(rooms: &WaitingRooms) -> u64 {
    let highest = rooms.values().filter_map(|room| room.tickets.keys().next_back()).map(|ticket_id| ticket_id.0).max();
    highest.map_or(1, |highest| highest + 1)
}

/// A place in line, numbered by the server. Spelled `TK` and ten digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TicketId(pub u64);

impl TicketId {
    /// What a well-formed value looks like.
    pub const RULE: &'static str = "'TK' followed by 10 digits";

    /// The id, or `None` when `text` is not `TK` and ten digits.
    #[must_use]
    pub fn parse(text: &str) -> Option<TicketId> {
        let digits = text.strip_prefix("TK")?;
        let valid = digits.len() == 10 && digits.bytes().all(|byte| byte.is_ascii_digit());
        valid.then(|| digits.parse().ok().map(TicketId)).flatten()
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "TK{:010}", self.0)
    }
}

/// Which line: an office's release instant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WaitingRoomKey {
    /// The office.
    pub office_id: OfficeId,
    /// The release instant the line waits for.
    pub release_at: Timestamp,
}

/// Where a ticket is. Numbers mirror `antrean.v1.TicketState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TicketState {
    /// In line.
    Waiting = 1,
    /// May hold with its token until it expires.
    Admitted = 2,
    /// No slot left for it.
    SoldOut = 3,
    /// Admitted but did not hold in time, or stopped watching.
    Expired = 4,
    /// Held a slot.
    Booked = 5,
    /// Left.
    Left = 6,
}

impl TicketState {
    /// No further change can happen.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        !matches!(self, TicketState::Waiting | TicketState::Admitted)
    }
}

/// One applicant's place in one line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The ticket.
    pub ticket_id: TicketId,
    /// Whose.
    pub nik: Nik,
    /// The service wanted.
    pub service: ServiceType,
    /// When it joined.
    pub joined_at: Timestamp,
    /// Where it is.
    pub state: TicketState,
    /// 1-based place in the order, once drawn.
    pub order: u64,
    /// Admission token (0 until admitted).
    pub admission_token: u64,
    /// The token is valid until then.
    pub admission_expires_at: Timestamp,
}

impl Ticket {
    /// The token as callers send it.
    #[must_use]
    pub fn token_text(&self) -> String {
        format!("AT{:016x}", self.admission_token)
    }
}

/// Parses an admission token as sent by callers.
#[must_use]
pub fn parse_token(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("AT")?;
    (digits.len() == 16).then(|| u64::from_str_radix(digits, 16).ok()).flatten()
}

/// Counts of waiting tickets by order, for `ahead` in O(log n). Derived from the tickets: not part of the state.
#[derive(Clone, Debug, Default)]
pub struct WaitingIndex(Vec<i64>);

impl PartialEq for WaitingIndex {
    /// Always equal: the index is derived from the tickets, which are compared.
    fn eq(&self, _other: &WaitingIndex) -> bool {
        true
    }
}

impl Eq for WaitingIndex {}

impl WaitingIndex {
    /// Adds `delta` at `order`. The tree must already cover `order` (`WaitingRoom::place` grows it by rebuilding).
    fn add(&mut self, order: u64, delta: i64) {
        let mut index = order as usize;
        debug_assert!(index < self.0.len(), "waiting index too small for order {order}");
        while index < self.0.len() {
            self.0[index] += delta;
            index += index & index.wrapping_neg();
        }
    }

    /// Waiting tickets with order below `order`.
    fn before(&self, order: u64) -> u64 {
        let mut index = (order as usize).saturating_sub(1).min(self.0.len().saturating_sub(1));
        let mut sum = 0;
        while index > 0 {
            sum += self.0[index];
            index -= index & index.wrapping_neg();
        }
        sum.max(0) as u64
    }
}

/// One line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingRoom {
    /// Which line.
    pub key: WaitingRoomKey,
    /// Seed of the draw and of admission tokens.
    pub seed: u64,
    /// First date behind this line.
    pub first_date: Date,
    /// Last date behind this line.
    pub last_date: Date,
    /// Admitted tickets by token expiry, soonest first.
    pub admitted: BTreeSet<(Timestamp, TicketId)>,
    /// Tickets by id.
    pub tickets: BTreeMap<TicketId, Ticket>,
    /// Tickets by applicant: one per applicant.
    pub by_nik: BTreeMap<Nik, TicketId>,
    /// Tickets by admission token.
    pub by_token: BTreeMap<u64, TicketId>,
    /// Joined before the release instant, in join order, until the draw.
    pub pre_open: Vec<TicketId>,
    /// The draw has been made.
    pub drawn: bool,
    /// Tickets in order that may still be waiting; admitted, expired or departed ones are skipped when reached.
    pub queue: VecDeque<TicketId>,
    /// Next order number.
    pub next_order: u64,
    /// Tickets admitted and not yet booked or expired.
    pub admitted_now: u32,
    /// Tickets admitted so far.
    pub admitted_total: u64,
    /// First admission, for the admission rate.
    pub first_admitted_at: Option<Timestamp>,
    /// The line was declared sold out.
    pub sold_out: bool,
    /// Derived index of waiting tickets by order.
    #[serde(skip)]
    pub index: WaitingIndex,
}

impl WaitingRoom {
    /// An empty line for `key`.
    #[must_use]
    pub fn new(key: WaitingRoomKey, seed: u64, first_date: Date, last_date: Date) -> WaitingRoom {
        WaitingRoom {
            key,
            seed,
            first_date,
            last_date,
            admitted: BTreeSet::new(),
            tickets: BTreeMap::new(),
            by_nik: BTreeMap::new(),
            by_token: BTreeMap::new(),
            pre_open: Vec::new(),
            drawn: false,
            queue: VecDeque::new(),
            next_order: 1,
            admitted_now: 0,
            admitted_total: 0,
            first_admitted_at: None,
            sold_out: false,
            index: WaitingIndex::default(),
        }
    }

    /// Rebuilds the derived index (after loading, or when it grows).
    pub fn reindex(&mut self) {
        let size = (self.next_order as usize + 1).next_power_of_two();
        self.index = WaitingIndex(vec![0; size]);
        let waiting: Vec<u64> = self
            .tickets
            .values()
            .filter(|ticket| ticket.state == TicketState::Waiting && ticket.order > 0)
            .map(|ticket| ticket.order)
            .collect();
        for order in waiting {
            self.index.add(order, 1);
        }
    }

    fn place(&mut self, ticket_id: TicketId) {
        let order = self.next_order;
        self.next_order += 1;
        if order as usize >= self.index.0.len() {
            // Grow before the ticket gets its order, so the rebuild does not count it too.
            self.reindex();
        }
        if let Some(ticket) = self.tickets.get_mut(&ticket_id) {
            ticket.order = order;
            if ticket.state == TicketState::Waiting {
                self.index.add(order, 1);
            }
        }
        self.queue.push_back(ticket_id);
    }

    /// Makes the draw if it is due at `at` and not made yet: shuffles the pre-open joiners with the room's seed.
    pub fn draw_if_due(&mut self, at: Timestamp) {
        if self.drawn || at < self.key.release_at {
            return;
        }
        self.drawn = true;
        let mut order = std::mem::take(&mut self.pre_open);
        // The schedule's seed alone could be computed by anyone who knows the schedule; mixing in every pre-open
        // joiner's ticket, identity and millisecond of joining makes the order unknowable until the instant, yet
        // still fixed by the log.
        let mut entropy = self.seed;
        for ticket in order.iter().filter_map(|ticket_id| self.tickets.get(ticket_id)) {
            let mut bytes = ticket.ticket_id.0.to_le_bytes().to_vec();
            bytes.extend_from_slice(&ticket.nik.value().to_le_bytes());
            bytes.extend_from_slice(&ticket.joined_at.0.to_le_bytes());
            entropy = entropy.rotate_left(5) ^ crate::domain::values::hashing::fnv1a(&bytes);
        }
        let mut random = ChaCha8Rng::seed_from_u64(entropy);
        for last in (1..order.len()).rev() {
            let pick = (random.next_u64() % (last as u64 + 1)) as usize;
            order.swap(last, pick);
        }
        for ticket_id in order {
            self.place(ticket_id);
        }
    }

    /// Adds a ticket (the decision that it is new was made by the caller).
    pub fn join(&mut self, ticket: Ticket) {
        let ticket_id = ticket.ticket_id;
        let at = ticket.joined_at;
        self.by_nik.insert(ticket.nik, ticket_id);
        self.tickets.insert(ticket_id, ticket);
        // A join stamped just before the release instant can be applied after the draw (its clock was read before the
        // lock): it is then too late for the draw and takes the next place.
        if at < self.key.release_at && !self.drawn {
            self.pre_open.push(ticket_id);
        } else {
            self.draw_if_due(at);
            self.place(ticket_id);
        }
    }

    /// Moves a ticket to `state`, keeping counts and the index in step.
    pub fn set_state(&mut self, ticket_id: TicketId, state: TicketState) {
        let Some(ticket) = self.tickets.get_mut(&ticket_id) else { return };
        let from = ticket.state;
        if from == state {
            return;
        }
        ticket.state = state;
        let order = ticket.order;
        if from == TicketState::Waiting && order > 0 {
            self.index.add(order, -1);
        }
        if from == TicketState::Waiting && order == 0 {
            self.pre_open.retain(|each| *each != ticket_id);
        }
        if from == TicketState::Admitted {
            self.admitted_now -= 1;
            let expires_at = ticket_expiry(&self.tickets, ticket_id);
            self.admitted.remove(&(expires_at, ticket_id));
        }
        if state == TicketState::Admitted {
            self.admitted_now += 1;
        }
    }

    /// The next `count` waiting tickets in order.
    #[must_use]
    pub fn next_waiting(&self, count: usize) -> Vec<TicketId> {
        self.queue
            .iter()
            .filter(|ticket_id| self.tickets.get(ticket_id).is_some_and(|ticket| ticket.state == TicketState::Waiting))
            .take(count)
            .copied()
            .collect()
    }

    /// Admits `ticket_id` until `expires_at`, with a token derived from the seed so replay gives the same token.
    pub fn admit(&mut self, ticket_id: TicketId, at: Timestamp, expires_at: Timestamp) {
        let token = admission_token(self.seed, ticket_id);
        self.set_state(ticket_id, TicketState::Admitted);
        if let Some(ticket) = self.tickets.get_mut(&ticket_id) {
            ticket.admission_token = token;
            ticket.admission_expires_at = expires_at;
        }
        self.admitted.insert((expires_at, ticket_id));
        self.by_token.insert(token, ticket_id);
        self.admitted_total += 1;
        self.first_admitted_at.get_or_insert(at);
        while self
            .queue
            .front()
            .is_some_and(|front| self.tickets.get(front).is_none_or(|ticket| ticket.state != TicketState::Waiting))
        {
            self.queue.pop_front();
        }
    }

    /// Waiting tickets ahead of `ticket` (before the draw: everyone else in the draw).
    #[must_use]
    pub fn ahead(&self, ticket: &Ticket) -> u64 {
        if ticket.order == 0 {
            return self.pre_open.len().saturating_sub(1) as u64;
        }
        self.index.before(ticket.order)
    }

    /// Tickets still waiting.
    #[must_use]
    pub fn waiting(&self) -> u64 {
        self.pre_open.len() as u64 + self.index.before(self.next_order)
    }
}

fn ticket_expiry(tickets: &BTreeMap<TicketId, Ticket>, ticket_id: TicketId) -> Timestamp {
    tickets.get(&ticket_id).map_or(Timestamp(0), |ticket| ticket.admission_expires_at)
}

/// A token for `ticket_id`: SplitMix64 of the seed and ticket, never 0.
#[must_use]
pub fn admission_token(seed: u64, ticket_id: TicketId) -> u64 {
    let mut mixed = seed ^ ticket_id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (mixed ^ (mixed >> 31)).max(1)
}
