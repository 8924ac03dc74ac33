//! The waiting room in front of a quota release: tickets, the fair order, admissions and their tokens.
//!
//! People who join before the release instant are put in a random order when it comes (the verifiable draw of
//! `draw.rs`, from the line's logged secret and the closed list, so the order is decided once and replays
//! identically); later arrivals are first come, first served.
//! The engine decides when to admit, expire or take back admissions from what it observes (slots remaining, who
//! stopped watching) and records it as an event; applying those events is pure, like every other change.
//!
//! A waiting ticket reads as sold out while the tickets waiting ahead of it ask for every slot that could still come
//! to the line (free now, held awaiting payment, or on dates closed for now or not yet in the booking window): the
//! line keeps one boundary, recomputed at each step, instead of a state per ticket, so telling a hundred thousand
//! people costs one number. Party sizes count: an admission budgets the slots of its whole party.

use super::draw::{DrawEntry, DrawSecret, draw_order};
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
    /// No slot can reach the ticket now: the tickets waiting ahead of it need every slot that could still come to the
    /// line. Never stored: a waiting ticket reads so while it is past the line's reachable boundary
    /// ([`WaitingRoom::shown_state`]), keeps its place, and reads as waiting again if slots come back.
    SoldOut = 3,
    /// Admitted but did not hold in time, or stopped watching.
    Expired = 4,
    /// Held a slot.
    Booked = 5,
    /// Left.
    Left = 6,
}

impl TicketState {
    /// The ticket is over: nothing can happen to it any more, and its applicant may join again with a new ticket.
    #[must_use]
    pub fn has_ended(self) -> bool {
        matches!(self, TicketState::Expired | TicketState::Booked | TicketState::Left)
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
    /// Where it is (never [`TicketState::SoldOut`]: that is read from the line's boundary).
    pub state: TicketState,
    /// 1-based place in the order, once drawn.
    pub order: u64,
    /// Admission token (0 until admitted).
    pub admission_token: u64,
    /// The token is valid until then.
    pub admission_expires_at: Timestamp,
    /// Slots asked for: the applicant and the family members booked with them (1 to the group maximum).
    pub party_size: u8,
    /// Slots the admission may hold: the party size, or fewer when the whole line had less to offer (0 until admitted).
    pub admitted_party: u8,
    /// Which ticket of this applicant in this line it is: 1 for the first, one more for each join after a ticket ended.
    pub attempt: u8,
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

/// Waiting tickets and their parties by order, as two Fenwick trees: `ahead` and the reachable boundary in O(log n).
/// Derived from the tickets: not part of the state.
#[derive(Clone, Debug, Default)]
pub struct WaitingIndex {
    /// Waiting tickets.
    counts: Vec<i64>,
    /// Slots those tickets ask for.
    parties: Vec<i64>,
}

impl PartialEq for WaitingIndex {
    /// Always equal: the index is derived from the tickets, which are compared.
    fn eq(&self, _other: &WaitingIndex) -> bool {
        true
    }
}

impl Eq for WaitingIndex {}

impl WaitingIndex {
    fn with_size(size: usize) -> WaitingIndex {
        WaitingIndex { counts: vec![0; size], parties: vec![0; size] }
    }

    fn len(&self) -> usize {
        self.counts.len()
    }

    /// Adds `count` tickets asking for `party` slots at `order`. The trees must already cover `order`
    /// (`WaitingRoom::place` grows them by rebuilding).
    fn add(&mut self, order: u64, count: i64, party: i64) {
        let mut index = order as usize;
        debug_assert!(index < self.len(), "waiting index too small for order {order}");
        while index < self.len() {
            self.counts[index] += count;
            self.parties[index] += party;
            index += index & index.wrapping_neg();
        }
    }

    /// Waiting tickets with order below `order`.
    fn before(&self, order: u64) -> u64 {
        let mut index = (order as usize).saturating_sub(1).min(self.len().saturating_sub(1));
        let mut sum = 0;
        while index > 0 {
            sum += self.counts[index];
            index -= index & index.wrapping_neg();
        }
        sum.max(0) as u64
    }

    /// The smallest order whose waiting tickets, with every waiting ticket before it, ask for at least `need` slots
    /// (`need` > 0); `None` when all of them together ask for less.
    fn first_reaching(&self, need: u64) -> Option<u64> {
        let mut position = 0usize;
        let mut left = i64::try_from(need).unwrap_or(i64::MAX);
        // The trees' length is a power of two (index 0 unused): binary lifting from its half.
        let mut step = self.len() / 2;
        while step > 0 {
            let next = position + step;
            if next < self.len() && self.parties[next] < left {
                position = next;
                left -= self.parties[next];
            }
            step /= 2;
        }
        let order = position + 1;
        (order < self.len()).then_some(order as u64)
    }
}

/// A count kept for observers (Watch streams), not part of the state: always equal, never stored.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observed(pub u64);

impl PartialEq for Observed {
    fn eq(&self, _other: &Observed) -> bool {
        true
    }
}

impl Eq for Observed {}

/// How many recent admission samples a line keeps for its admission rate.
const RATE_SAMPLES_MAX: usize = 64;
/// How far back the admission rate looks, in milliseconds.
const RATE_WINDOW_MS: i64 = 60_000;

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
    /// Tickets by id, ended ones included (until the line ends).
    pub tickets: BTreeMap<TicketId, Ticket>,
    /// Each applicant's latest ticket.
    pub by_nik: BTreeMap<Nik, TicketId>,
    /// Admitted tickets by admission token.
    pub by_token: BTreeMap<u64, TicketId>,
    /// Joined before the release instant, in join order, until the draw.
    pub pre_open: Vec<TicketId>,
    /// The draw has been made.
    pub drawn: bool,
    /// Tickets in order that may still be waiting; admitted, expired or departed ones are skipped when reached.
    pub queue: VecDeque<TicketId>,
    /// Next order number.
    pub next_order: u64,
    /// Slots the admitted-and-not-yet-booked tickets may hold (the sum of their admitted parties).
    pub admitted_slots: u32,
    /// Tickets admitted so far.
    pub admitted_total: u64,
    /// First admission, for the admission rate.
    pub first_admitted_at: Option<Timestamp>,
    /// Recent steps that admitted someone: when, and how many had been admitted before that step.
    pub recent_admissions: VecDeque<(Timestamp, u64)>,
    /// Waiting tickets with an order below this are within reach of the slots; from it on they read as sold out.
    /// `u64::MAX` until a step says otherwise.
    pub reachable_before: u64,
    /// Derived index of waiting tickets by order.
    #[serde(skip)]
    pub index: WaitingIndex,
    /// Changes others can see (a ticket changed state, the line stepped or moved): Watch streams wake on it.
    #[serde(skip)]
    pub changes: Observed,
    /// The verifiable draw's secret and what the public figures need. Snapshots carry it beside the room
    /// (`Image::draws`), so the room's own encoding stays what version 3 images hold.
    #[serde(skip)]
    pub draw: DrawState,
}

/// A line's verifiable draw: its secret (from the log, revealed only after the draw) and the figures published with
/// it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawState {
    /// The secret committed to; `None` for a line whose draw was made by an earlier build (not verifiable).
    pub secret: Option<DrawSecret>,
    /// Tickets in line at the draw: they hold places 1 to this.
    pub drawn_tickets: u64,
    /// The first step after which no slot could come to the line any more (every slot behind it booked and paid).
    pub sold_out_at: Option<Timestamp>,
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
            admitted_slots: 0,
            admitted_total: 0,
            first_admitted_at: None,
            recent_admissions: VecDeque::new(),
            reachable_before: u64::MAX,
            index: WaitingIndex::default(),
            changes: Observed::default(),
            draw: DrawState::default(),
        }
    }

    /// Rebuilds the derived index (after loading, or when it grows).
    pub fn reindex(&mut self) {
        let size = (self.next_order as usize + 1).next_power_of_two();
        self.index = WaitingIndex::with_size(size);
        let waiting: Vec<(u64, u8)> = self
            .tickets
            .values()
            .filter(|ticket| ticket.state == TicketState::Waiting && ticket.order > 0)
            .map(|ticket| (ticket.order, ticket.party_size))
            .collect();
        for (order, party) in waiting {
            self.index.add(order, 1, i64::from(party));
        }
    }

    fn place(&mut self, ticket_id: TicketId) {
        let order = self.next_order;
        self.next_order += 1;
        if order as usize >= self.index.len() {
            // Grow before the ticket gets its order, so the rebuild does not count it too.
            self.reindex();
        }
        if let Some(ticket) = self.tickets.get_mut(&ticket_id) {
            ticket.order = order;
            if ticket.state == TicketState::Waiting {
                self.index.add(order, 1, i64::from(ticket.party_size));
            }
        }
        self.queue.push_back(ticket_id);
    }

    /// Makes the draw if it is due at `at` and not made yet: orders the pre-open joiners. With a committed secret the
    /// order is the verifiable draw (`draw.rs`); a line committed to nothing (scheduled by an earlier build) draws as
    /// earlier builds did, so their logs replay identically.
    pub fn draw_if_due(&mut self, at: Timestamp) {
        if self.drawn || at < self.key.release_at {
            return;
        }
        self.drawn = true;
        self.changes.0 += 1;
        let pre_open = std::mem::take(&mut self.pre_open);
        self.draw.drawn_tickets = pre_open.len() as u64;
        let order = match self.draw.secret {
            Some(secret) => self.verifiable_order(&secret, pre_open),
            None => self.legacy_order(pre_open),
        };
        for ticket_id in order {
            self.place(ticket_id);
        }
    }

    /// The pre-open tickets in canonical order (ascending ticket number) as the draw takes them.
    #[must_use]
    pub fn draw_entries(&self, secret: &DrawSecret, tickets: impl Iterator<Item = TicketId>) -> Vec<DrawEntry> {
        let mut entries: Vec<DrawEntry> = tickets
            .filter_map(|ticket_id| self.tickets.get(&ticket_id))
            .map(|ticket| DrawEntry {
                ticket_number: ticket.ticket_id.0,
                receipt: secret.receipt(ticket.ticket_id.0),
                joined_at_ms: ticket.joined_at.0,
            })
            .collect();
        entries.sort_unstable_by_key(|entry| entry.ticket_number);
        entries
    }

    fn verifiable_order(&self, secret: &DrawSecret, pre_open: Vec<TicketId>) -> Vec<TicketId> {
        let entries = self.draw_entries(secret, pre_open.into_iter());
        draw_order(&secret.0, &entries).into_iter().map(|index| TicketId(entries[index].ticket_number)).collect()
    }

    /// The draw of earlier builds: the schedule's seed mixed with every pre-open joiner's ticket, identity and
    /// millisecond of joining, then Fisher-Yates over ChaCha8 with a modulo pick.
    fn legacy_order(&self, mut order: Vec<TicketId>) -> Vec<TicketId> {
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
        order
    }

    /// Adds a ticket (the decision that it is new was made by the caller). It becomes its applicant's ticket in this
    /// line; an earlier, ended one stays readable by its id.
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

    /// Moves a ticket to `state`, keeping counts, indexes and the admitted set in step. An admitted ticket must have
    /// its token, expiry and admitted party set before it is moved to [`TicketState::Admitted`].
    pub fn set_state(&mut self, ticket_id: TicketId, state: TicketState) {
        debug_assert_ne!(state, TicketState::SoldOut, "sold out is read from the boundary, never stored");
        let Some(ticket) = self.tickets.get_mut(&ticket_id) else { return };
        let from = ticket.state;
        if from == state {
            return;
        }
        ticket.state = state;
        let (order, party, claim) = (ticket.order, i64::from(ticket.party_size), u32::from(ticket.admitted_party));
        let (token, expires_at) = (ticket.admission_token, ticket.admission_expires_at);
        match from {
            TicketState::Waiting if order > 0 => self.index.add(order, -1, -party),
            TicketState::Waiting => self.pre_open.retain(|each| *each != ticket_id),
            TicketState::Admitted => {
                self.admitted_slots -= claim;
                self.admitted.remove(&(expires_at, ticket_id));
                self.by_token.remove(&token);
            }
            _ => {}
        }
        match state {
            TicketState::Admitted => {
                self.admitted_slots += claim;
                self.admitted.insert((expires_at, ticket_id));
                self.by_token.insert(token, ticket_id);
            }
            TicketState::Waiting if order > 0 => self.index.add(order, 1, party),
            _ => {}
        }
        self.changes.0 += 1;
    }

    /// The next `count` waiting tickets in order.
    #[must_use]
    pub fn next_waiting(&self, count: usize) -> Vec<TicketId> {
        self.waiting_in_order().take(count).collect()
    }

    /// Waiting tickets in line order (sold-out ones included: they wait too).
    pub fn waiting_in_order(&self) -> impl Iterator<Item = TicketId> + '_ {
        self.queue
            .iter()
            .filter(|ticket_id| self.tickets.get(ticket_id).is_some_and(|ticket| ticket.state == TicketState::Waiting))
            .copied()
    }

    /// Admits `ticket_id` for `party` slots until `expires_at`, with a token derived from the seed so replay gives the
    /// same token.
    pub fn admit(&mut self, ticket_id: TicketId, party: u8, at: Timestamp, expires_at: Timestamp) {
        let token = admission_token(self.seed, ticket_id);
        let Some(ticket) = self.tickets.get_mut(&ticket_id) else { return };
        ticket.admission_token = token;
        ticket.admission_expires_at = expires_at;
        ticket.admitted_party = party;
        self.set_state(ticket_id, TicketState::Admitted);
        self.admitted_total += 1;
        self.first_admitted_at.get_or_insert(at);
        self.drop_departed_front();
    }

    /// Takes an admission back (the slots behind the line shrank below what was admitted): the ticket waits again at
    /// its own place, which is ahead of everyone still waiting, and its token stops working until it is admitted again.
    pub fn revoke(&mut self, ticket_id: TicketId) {
        let Some(ticket) = self.tickets.get(&ticket_id).filter(|ticket| ticket.state == TicketState::Admitted) else {
            return;
        };
        let order = ticket.order;
        self.set_state(ticket_id, TicketState::Waiting);
        if let Some(ticket) = self.tickets.get_mut(&ticket_id) {
            ticket.admission_token = 0;
            ticket.admitted_party = 0;
            ticket.admission_expires_at = Timestamp(0);
        }
        // Admissions go to the front of the queue, so an admitted ticket's order is below every queued one.
        let position = self.queue.iter().position(|queued| self.tickets.get(queued).is_some_and(|t| t.order > order));
        self.queue.insert(position.unwrap_or(self.queue.len()), ticket_id);
    }

    fn drop_departed_front(&mut self) {
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

    /// Tickets still waiting (sold-out ones included).
    #[must_use]
    pub fn waiting(&self) -> u64 {
        self.pre_open.len() as u64 + self.index.before(self.next_order)
    }

    /// The state a ticket's holder is shown: a waiting ticket past the reachable boundary is sold out.
    #[must_use]
    pub fn shown_state(&self, ticket: &Ticket) -> TicketState {
        let past_boundary = ticket.order > 0 && ticket.order >= self.reachable_before;
        if ticket.state == TicketState::Waiting && past_boundary { TicketState::SoldOut } else { ticket.state }
    }

    /// The reachable boundary for `potential` slots (every slot that could still come to the line): waiting tickets
    /// are within reach while the tickets waiting ahead of them ask for fewer slots than that, admitted ones left out
    /// (their admissions may go unused). `u64::MAX` before the draw or when everyone is within reach.
    #[must_use]
    pub fn boundary(&self, potential: u64) -> u64 {
        if !self.drawn {
            return u64::MAX;
        }
        if potential == 0 {
            return 0;
        }
        self.index.first_reaching(potential).map_or(u64::MAX, |order| order + 1)
    }

    /// Records that a step at `at` admitted someone, `before` having been admitted until then (for the rate).
    pub fn note_admissions(&mut self, at: Timestamp, before: u64) {
        self.recent_admissions.push_back((at, before));
        while self.recent_admissions.len() > RATE_SAMPLES_MAX
            || self.recent_admissions.front().is_some_and(|(sampled, _)| sampled.plus_ms(RATE_WINDOW_MS) < at)
        {
            self.recent_admissions.pop_front();
        }
    }

    /// Milliseconds per admission measured over the recent steps (at least one second long), or `None` before anyone
    /// was admitted.
    #[must_use]
    pub fn ms_per_admission(&self, now: Timestamp) -> Option<f64> {
        let (since, before) = *self.recent_admissions.front()?;
        let admitted = self.admitted_total.saturating_sub(before).max(1);
        Some(now.ms_since(since).max(1_000) as f64 / admitted as f64)
    }
}

/// A token for `ticket_id`: SplitMix64 of the seed and ticket, never 0.
#[must_use]
pub fn admission_token(seed: u64, ticket_id: TicketId) -> u64 {
    let mut mixed = seed ^ ticket_id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (mixed ^ (mixed >> 31)).max(1)
}
