//! The spike's waiting-room gate: a user joins the office's line (`Join`, measured from the arrival instant), waits
//! for their turn, and is handed an admission token for `Hold`.
//!
//! Waiting is bounded in time and in server resources: a user near the front of the line (fewer than
//! `--watchers-max` ahead) follows it on a `Watch` stream when one of `--watchers-max` stream places is free; everyone
//! else asks again with `Join` (which returns the same ticket) at a pace that follows the ticket's `ahead` and
//! `estimated_wait`. A user still waiting when the load stops leaves the line, so every ticket ends.
//!
//! After the load, every ticket is read again from the server (`Join` once more) until it is terminal or
//! [`TERMINAL_WAIT_MAX`] has passed, and the observations are checked:
//!
//! * `unterminated`: tickets still WAITING or ADMITTED at the end.
//! * `inversions` (first come, first served after the release instant): a ticket whose Join was answered with a place
//!   in the order (so it joined after the draw) before another one's Join was sent must come first: a later place, or
//!   being still seen waiting after the later joiner was seen admitted, is an inversion.
//! * `admission_order_inversions` (the whole line, lottery included): a ticket seen waiting after a ticket with a
//!   later place was seen admitted.
//!
//! Only certain orders count: "seen waiting" takes the instant the question was sent (the server answered later),
//! "seen admitted" the instant the answer arrived (the server decided earlier), and a Watch message counts as sent
//! when the stream was opened.
//!
//! This module decides nothing about booking: the spike journey holds, pays or walks away.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;

use crate::client::system_time;
use crate::driver::{Call, now};
use crate::proto::{self, TicketState};
use crate::random;
use crate::scenarios::spike::{Admission, Gate};
use crate::scenarios::steps::Steps;

/// How long the final read waits for tickets to end (SOLD_OUT, EXPIRED) before counting them as unterminated.
pub const TERMINAL_WAIT_MAX: Duration = Duration::from_secs(20);
/// Pause between the final reads of tickets not yet terminal.
const TERMINAL_POLL: Duration = Duration::from_millis(500);
/// Calls in flight during the final read.
const FINAL_READ_CONCURRENCY: usize = 64;
/// Shortest pause between two `Join` polls of one user.
const POLL_MIN: Duration = Duration::from_millis(100);
/// Longest pause between two `Join` polls of one user (also bounds how late a user learns of SOLD_OUT).
const POLL_MAX: Duration = Duration::from_secs(3);
/// Polls before the draw are spread over this long after the release instant, so they do not all land at once.
const RELEASE_SPREAD: Duration = Duration::from_secs(1);
/// Admissions per second assumed before the line has admitted anyone (the server admits up to 2,000 per 100 ms).
const ASSUMED_ADMISSIONS_PER_S: f64 = 5_000.0;
/// Join failures (overload, deadline) of one user before the user gives up.
const JOIN_FAILURES_MAX: u32 = 5;
/// First pause before a failed Join is sent again; doubled at each failure (jittered up to twice as long).
const JOIN_RETRY_BASE: Duration = Duration::from_millis(250);

const STREAM_OFFICE: u64 = 0x3a1;
const STREAM_JITTER: u64 = 0x3a2;

/// What was seen of one user's ticket, in microseconds since the gate was made.
#[derive(Clone, Debug, Default)]
struct Sighting {
    ticket_id: String,
    office: usize,
    /// The place in the order from the Join answer, kept only when the Join was sent after the release instant (so
    /// the ticket certainly joined after the draw and is first come, first served); 0 otherwise.
    joined_position: u64,
    /// The place in the order as last seen (0 before the draw).
    position: u64,
    join_sent_us: u64,
    join_received_us: u64,
    /// Latest send instant of a question answered WAITING.
    last_waiting_sent_us: Option<u64>,
    /// Earliest answer saying ADMITTED or BOOKED.
    admitted_received_us: Option<u64>,
    /// Last state seen.
    state: i32,
}

/// The waiting-room counts of one spike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitingRoomVerdict {
    /// Tickets not terminal at the end.
    pub unterminated: u64,
    /// First come, first served violations among tickets that joined after the release instant.
    pub inversions: u64,
    /// Tickets admitted while a ticket with an earlier place was still waiting (whole line).
    pub admission_order_inversions: u64,
}

/// Takes a ticket, waits for the turn, returns the admission token.
pub struct WaitingRoomGate {
    origin: Instant,
    seed: u64,
    watch_places: Arc<Semaphore>,
    watchers_max: u64,
    sightings: Mutex<HashMap<u64, Sighting>>,
}

impl WaitingRoomGate {
    /// A gate letting at most `watchers_max` users watch at once.
    pub fn new(seed: u64, watchers_max: usize) -> WaitingRoomGate {
        WaitingRoomGate {
            origin: now(),
            seed,
            watch_places: Arc::new(Semaphore::new(watchers_max)),
            watchers_max: watchers_max as u64,
            sightings: Mutex::new(HashMap::new()),
        }
    }

    /// The office user `user` queues for (and later holds in): the token is valid for that office's dates only.
    pub fn office_of(&self, steps: &Steps, user: u64) -> usize {
        random::below(self.seed, STREAM_OFFICE, user, steps.fixture.offices.len() as u64) as usize
    }

    fn us(&self, instant: Instant) -> u64 {
        instant.saturating_duration_since(self.origin).as_micros() as u64
    }

    /// Notes an answer about `user`'s ticket to a question sent at `sent`, answered at `received`.
    fn sight(&self, user: u64, ticket: &proto::Ticket, sent: Instant, received: Instant) {
        let (sent_us, received_us) = (self.us(sent), self.us(received));
        let mut sightings = self.sightings.lock().expect("sightings poisoned");
        let Some(sighting) = sightings.get_mut(&user) else { return };
        note(sighting, ticket, sent_us, received_us);
    }

    async fn wait_turn(&self, steps: &Steps, user: u64, call: Call) -> Admission {
        let office = self.office_of(steps, user);
        let mut ticket = match self.first_join(steps, office, user, call).await {
            Ok(ticket) => ticket,
            Err(reason) => return Admission::Refused { reason },
        };
        let mut polls = 1u32;
        let mut failures = 0u32;
        loop {
            match ticket.state() {
                TicketState::Admitted => return Admission::Admitted { token: ticket.admission_token },
                TicketState::Waiting => {}
                TicketState::SoldOut => return Admission::Refused { reason: "users_sold_out" },
                TicketState::Expired => return Admission::Refused { reason: "users_ticket_expired" },
                TicketState::Booked => return Admission::Refused { reason: "users_ticket_already_booked" },
                TicketState::Left => return Admission::Refused { reason: "users_ticket_left" },
                TicketState::Unspecified => return Admission::Refused { reason: "users_ticket_unspecified" },
            }
            if now() >= call.deadline {
                return self.give_up(steps, user, &ticket.ticket_id).await;
            }
            if ticket.position > 0
                && ticket.ahead < self.watchers_max
                && let Ok(place) = self.watch_places.clone().try_acquire_owned()
            {
                let watched = self.watch(steps, user, &ticket.ticket_id, call.deadline).await;
                drop(place);
                if let Some(watched) = watched {
                    ticket = watched;
                    continue;
                }
            }
            let pause = self.poll_pause(&ticket, user, polls);
            if !crate::scenarios::sleep_before(now() + pause, call.deadline).await {
                continue;
            }
            let sent = now();
            match steps.join("Join(poll)", office, user, polls, sent).await {
                Ok(answer) => {
                    self.sight(user, &answer, sent, now());
                    ticket = answer;
                }
                Err(_) => {
                    failures += 1;
                    if failures >= JOIN_FAILURES_MAX {
                        return self.give_up(steps, user, &ticket.ticket_id).await;
                    }
                    let base = JOIN_RETRY_BASE * 2u32.pow(failures);
                    let pause = crate::scenarios::backoff(self.seed, user * 16 + u64::from(failures), base);
                    crate::scenarios::sleep_before(now() + pause, call.deadline).await;
                }
            }
            polls += 1;
        }
    }

    async fn first_join(
        &self,
        steps: &Steps,
        office: usize,
        user: u64,
        call: Call,
    ) -> Result<proto::Ticket, &'static str> {
        // A retry may find the ticket an earlier attempt created: the join happened after the first send.
        let (first_sent, first_sent_wall) = (now(), SystemTime::now());
        for attempt in 0..JOIN_FAILURES_MAX {
            let started = if attempt == 0 { call.due } else { now() };
            match steps.join("Join", office, user, 1000 + attempt, started).await {
                Ok(ticket) => {
                    let received = now();
                    let after_release = first_sent_wall >= system_time(ticket.release_at.as_ref());
                    let sighting = Sighting {
                        ticket_id: ticket.ticket_id.clone(),
                        office,
                        joined_position: if after_release { ticket.position } else { 0 },
                        join_sent_us: self.us(first_sent),
                        join_received_us: self.us(received),
                        ..Sighting::default()
                    };
                    let mut sightings = self.sightings.lock().expect("sightings poisoned");
                    let entry = sightings.entry(user).or_insert(sighting);
                    note(entry, &ticket, self.us(first_sent), self.us(received));
                    return Ok(ticket);
                }
                Err(_) if now() < call.deadline => {
                    // Overload or deadline: back off exponentially so retries do not feed the overload.
                    let base = JOIN_RETRY_BASE * 2u32.pow(attempt);
                    tokio::time::sleep(crate::scenarios::backoff(self.seed, user * 16 + u64::from(attempt), base))
                        .await;
                }
                Err(_) => break,
            }
        }
        Err("users_join_failed")
    }

    /// Follows the ticket on a Watch stream until it is no longer waiting; `None` when the stream could not be
    /// opened or ended early (the caller polls instead).
    async fn watch(&self, steps: &Steps, user: u64, ticket_id: &str, deadline: Instant) -> Option<proto::Ticket> {
        let opened = now();
        let mut stream = steps.watch(ticket_id).await.ok()?;
        steps.recorder.count("watch_streams", 1);
        let mut last = None;
        loop {
            let message = tokio::time::timeout_at(deadline.into(), stream.message()).await;
            let Ok(Ok(Some(response))) = message else { return last };
            let ticket = response.ticket.unwrap_or_default();
            self.sight(user, &ticket, opened, now());
            let waiting = ticket.state() == TicketState::Waiting;
            last = Some(ticket);
            if !waiting {
                return last;
            }
        }
    }

    /// How long to wait before asking again: until shortly after the release instant before the draw, then about
    /// half the estimated wait, within [`POLL_MIN`, `POLL_MAX`], with jitter.
    fn poll_pause(&self, ticket: &proto::Ticket, user: u64, poll: u32) -> Duration {
        let jitter = random::unit(self.seed, STREAM_JITTER, user * 1024 + u64::from(poll));
        if ticket.position == 0 {
            let release_at = system_time(ticket.release_at.as_ref());
            let until_release = release_at.duration_since(SystemTime::now()).unwrap_or_default();
            return until_release + RELEASE_SPREAD.mul_f64(jitter) + POLL_MIN;
        }
        let estimate = ticket
            .estimated_wait
            .map_or(Duration::ZERO, |wait| Duration::new(wait.seconds.max(0) as u64, wait.nanos.max(0) as u32));
        let estimate = if estimate.is_zero() {
            Duration::from_secs_f64(ticket.ahead as f64 / ASSUMED_ADMISSIONS_PER_S)
        } else {
            estimate
        };
        (estimate / 2).clamp(POLL_MIN, POLL_MAX).mul_f64(0.75 + 0.5 * jitter)
    }

    async fn give_up(&self, steps: &Steps, user: u64, ticket_id: &str) -> Admission {
        let sent = now();
        if let Ok(ticket) = steps.leave(user, ticket_id).await {
            self.sight(user, &ticket, sent, now());
        }
        Admission::Refused { reason: "users_left_at_deadline" }
    }

    /// Reads every ticket again until all are terminal or [`TERMINAL_WAIT_MAX`] passed, then checks the order. For
    /// the first half of that time the reads only wait for the server to end tickets (SOLD_OUT, EXPIRED); after it,
    /// tickets still open (their users gave up but `Leave` failed under load, or the drain cut their journey short)
    /// are left on their users' behalf, counted as `tickets_left_after_run`.
    pub async fn verdict(&self, steps: &Arc<Steps>) -> WaitingRoomVerdict {
        let started = now();
        let mut pending: Vec<u64> = self.sightings.lock().expect("sightings poisoned").keys().copied().collect();
        pending.sort_unstable();
        let mut round = 0u32;
        loop {
            let leave = now() >= started + TERMINAL_WAIT_MAX / 2;
            self.read_again(steps, &pending, round, leave).await;
            {
                let sightings = self.sightings.lock().expect("sightings poisoned");
                pending.retain(|user| sightings.get(user).is_some_and(|sighting| !is_terminal(sighting.state)));
            }
            if pending.is_empty() || now() >= started + TERMINAL_WAIT_MAX {
                break;
            }
            tokio::time::sleep(TERMINAL_POLL).await;
            round += 1;
        }
        let sightings: Vec<Sighting> = self.sightings.lock().expect("sightings poisoned").values().cloned().collect();
        for (state, name) in [
            (TicketState::Booked, "tickets_booked"),
            (TicketState::SoldOut, "tickets_sold_out"),
            (TicketState::Expired, "tickets_expired"),
            (TicketState::Left, "tickets_left"),
            (TicketState::Waiting, "tickets_waiting_at_end"),
            (TicketState::Admitted, "tickets_admitted_at_end"),
        ] {
            let count = sightings.iter().filter(|sighting| sighting.state == state as i32).count() as u64;
            steps.recorder.count(name, count);
        }
        WaitingRoomVerdict {
            unterminated: pending.len() as u64,
            inversions: fifo_inversions(&sightings),
            admission_order_inversions: admission_order_inversions(&sightings),
        }
    }

    async fn read_again(&self, steps: &Arc<Steps>, users: &[u64], round: u32, leave: bool) {
        let places = Arc::new(Semaphore::new(FINAL_READ_CONCURRENCY));
        let mut set = tokio::task::JoinSet::new();
        for &user in users {
            let (office, ticket_id) = {
                let sightings = self.sightings.lock().expect("sightings poisoned");
                (sightings[&user].office, sightings[&user].ticket_id.clone())
            };
            let place = places.clone().acquire_owned().await.expect("semaphore open");
            let steps = steps.clone();
            set.spawn(async move {
                let sent = now();
                let answer = if leave {
                    steps.recorder.count("tickets_left_after_run", 1);
                    steps.leave(user, &ticket_id).await
                } else {
                    steps.join("Join(final read)", office, user, 100_000 + round, sent).await
                };
                drop(place);
                (user, sent, answer, now())
            });
            while let Some(done) = set.try_join_next() {
                self.take_final_read(done.expect("final read task"));
            }
        }
        while let Some(done) = set.join_next().await {
            self.take_final_read(done.expect("final read task"));
        }
    }

    fn take_final_read(&self, (user, sent, answer, received): FinalRead) {
        if let Ok(ticket) = answer {
            self.sight(user, &ticket, sent, received);
        }
    }
}

type FinalRead = (u64, Instant, Result<proto::Ticket, tonic::Status>, Instant);

fn note(sighting: &mut Sighting, ticket: &proto::Ticket, sent_us: u64, received_us: u64) {
    let state = ticket.state();
    sighting.state = state as i32;
    if ticket.position > 0 {
        sighting.position = ticket.position;
    }
    match state {
        TicketState::Waiting => {
            sighting.last_waiting_sent_us = Some(sighting.last_waiting_sent_us.unwrap_or(0).max(sent_us));
        }
        TicketState::Admitted | TicketState::Booked => {
            let earliest = sighting.admitted_received_us.map_or(received_us, |seen| seen.min(received_us));
            sighting.admitted_received_us = Some(earliest);
        }
        _ => {}
    }
}

fn is_terminal(state: i32) -> bool {
    !matches!(TicketState::try_from(state), Ok(TicketState::Waiting | TicketState::Admitted))
}

/// Tickets admitted while a ticket with an earlier place was certainly still waiting.
fn admission_order_inversions(sightings: &[Sighting]) -> u64 {
    let mut placed: Vec<&Sighting> = sightings.iter().filter(|sighting| sighting.position > 0).collect();
    placed.sort_unstable_by_key(|sighting| sighting.position);
    let mut latest_waiting_ahead = 0u64;
    let mut inversions = 0;
    for sighting in placed {
        if let Some(admitted) = sighting.admitted_received_us
            && latest_waiting_ahead > admitted
        {
            inversions += 1;
        }
        latest_waiting_ahead = latest_waiting_ahead.max(sighting.last_waiting_sent_us.unwrap_or(0));
    }
    inversions
}

/// Among tickets that joined after the draw: a ticket whose Join was sent after another's Join was answered must
/// have a later place and must not be admitted while the earlier one is still waiting.
fn fifo_inversions(sightings: &[Sighting]) -> u64 {
    let after: Vec<&Sighting> = sightings.iter().filter(|sighting| sighting.joined_position > 0).collect();
    let mut by_answer = after.clone();
    by_answer.sort_unstable_by_key(|sighting| sighting.join_received_us);
    let mut by_question = after;
    by_question.sort_unstable_by_key(|sighting| sighting.join_sent_us);
    let (mut next, mut position_max, mut waiting_max) = (0, 0u64, 0u64);
    let mut inversions = 0;
    for later in by_question {
        while next < by_answer.len() && by_answer[next].join_received_us < later.join_sent_us {
            position_max = position_max.max(by_answer[next].joined_position);
            waiting_max = waiting_max.max(by_answer[next].last_waiting_sent_us.unwrap_or(0));
            next += 1;
        }
        let placed_before = position_max > later.joined_position;
        let admitted_before = later.admitted_received_us.is_some_and(|admitted| waiting_max > admitted);
        if placed_before || admitted_before {
            inversions += 1;
        }
    }
    inversions
}

impl Gate for WaitingRoomGate {
    fn admit<'a>(
        &'a self,
        steps: &'a Steps,
        user: u64,
        call: Call,
    ) -> Pin<Box<dyn Future<Output = Admission> + Send + 'a>> {
        Box::pin(self.wait_turn(steps, user, call))
    }

    fn office<'a>(&'a self, steps: &'a Steps, user: u64) -> Option<usize> {
        Some(self.office_of(steps, user))
    }

    fn finish<'a>(&'a self, steps: &'a Steps, user: u64, held: bool) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let ticket_id = self.sightings.lock().expect("sightings poisoned").get(&user).map(|s| s.ticket_id.clone());
            let Some(ticket_id) = ticket_id else { return };
            if held {
                // The hold's answer proves the admission; the ticket is BOOKED now.
                let mut sightings = self.sightings.lock().expect("sightings poisoned");
                if let Some(sighting) = sightings.get_mut(&user) {
                    sighting.state = TicketState::Booked as i32;
                }
                return;
            }
            // Admitted but no slot after all: give the turn back so the ticket ends.
            let sent = now();
            if let Ok(ticket) = steps.leave(user, &ticket_id).await {
                self.sight(user, &ticket, sent, now());
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sighting(
        joined_position: u64,
        position: u64,
        join: (u64, u64),
        waiting: Option<u64>,
        admitted: Option<u64>,
    ) -> Sighting {
        Sighting {
            joined_position,
            position,
            join_sent_us: join.0,
            join_received_us: join.1,
            last_waiting_sent_us: waiting,
            admitted_received_us: admitted,
            ..Sighting::default()
        }
    }

    #[test]
    fn first_come_first_served_is_checked_on_certain_orders_only() {
        // A joined (answered at 20) before B asked (30): A must come first.
        let a = sighting(5, 5, (10, 20), Some(100), Some(200));
        let b = sighting(6, 6, (30, 40), Some(90), Some(210));
        assert_eq!(fifo_inversions(&[a.clone(), b.clone()]), 0);
        // B got an earlier place than A.
        let b_ahead = sighting(4, 4, (30, 40), None, Some(210));
        assert_eq!(fifo_inversions(&[a.clone(), b_ahead]), 1);
        // B admitted (answer at 150) while A was still seen waiting (asked at 160).
        let a_waiting = sighting(5, 5, (10, 20), Some(160), Some(300));
        let b_early = sighting(6, 6, (30, 40), None, Some(150));
        assert_eq!(fifo_inversions(&[a_waiting.clone(), b_early.clone()]), 1);
        assert_eq!(admission_order_inversions(&[a_waiting, b_early]), 1);
        // Overlapping joins are not ordered: no verdict.
        let c = sighting(7, 7, (15, 50), None, None);
        let d = sighting(3, 3, (16, 45), None, None);
        assert_eq!(fifo_inversions(&[c, d]), 0);
        // Lottery tickets (joined before the draw) are out of the first-come check but in the line order.
        let e = sighting(0, 2, (1, 2), Some(500), None);
        let f = sighting(0, 9, (3, 4), None, Some(400));
        assert_eq!(fifo_inversions(&[e.clone(), f.clone()]), 0);
        assert_eq!(admission_order_inversions(&[e, f]), 1);
    }
}
