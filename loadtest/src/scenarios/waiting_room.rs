//! The spike's waiting-room gate: a user joins the office's line (`Join`, measured from the arrival instant), follows
//! the ticket on a `Watch` stream, which the server pushes to whenever the line moves, and is handed an admission
//! token for `Hold`. Nobody polls: a user's only calls are one `Join` (retried on failure), a stream (opened again if
//! it breaks), the hold, and `Leave` when the user gives up.
//!
//! Every user ends with a final answer, kept with when it came:
//!
//! * `booked`: admitted and held a slot (paid or walked away afterwards);
//! * `sold_out`: told SOLD_OUT (on joining, or on the stream): no slot can reach the ticket; the user stops watching;
//! * `left`: admitted but found no slot in any session, and gave the turn back;
//! * `expired`, `refused`: the ticket ended otherwise, or the Join never got through;
//! * none: still waiting when the load stopped (`users_left_at_deadline`). These are `unterminated`.
//!
//! From the observations the gate also checks the order:
//!
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
//! Each Join is measured twice: `Join` from the instant the user arrived (the open loop's timetable, what the user
//! waits), and the pseudo-RPC `journey:join-from-send` (kept out of the call totals like every `journey:`) from the
//! instant the load generator sent it. The difference is the load generator's
//! own lateness (its one pinned core busy with other users' answers), which is no wait the server caused.
//!
//! This module decides nothing about booking: the spike journey holds, pays or walks away.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::client::{outcome_of, system_time};
use crate::driver::{Call, now};
use crate::proto::{self, TicketState};
use crate::random;
use crate::recorder::Outcome;
use crate::scenarios::spike::{Admission, Gate};
use crate::scenarios::steps::Steps;

/// The pseudo-RPC measuring a Join from the instant it was sent (`Join` measures it from the user's arrival).
pub const JOIN_FROM_SEND: &str = "journey:join-from-send";

/// Join failures (overload, deadline) of one user before the user gives up.
const JOIN_FAILURES_MAX: u32 = 5;
/// First pause before a failed Join is sent again; doubled at each failure (jittered up to twice as long).
const JOIN_RETRY_BASE: Duration = Duration::from_millis(250);
/// First pause before a Watch stream that could not be opened, or broke, is opened again; doubled up to 2 s.
const WATCH_RETRY_BASE: Duration = Duration::from_millis(100);

const STREAM_OFFICE: u64 = 0x3a1;

/// A user's final answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Booked,
    SoldOut,
    Left,
    Expired,
    Refused,
}

/// What was seen of one user's ticket, in microseconds since the gate was made.
#[derive(Clone, Debug, Default)]
struct Sighting {
    ticket_id: String,
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
    /// The final answer and when it came.
    answer: Option<(Answer, u64)>,
}

/// The waiting-room counts of one spike.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WaitingRoomVerdict {
    /// Users without a final answer at the end.
    pub unterminated: u64,
    /// First come, first served violations among tickets that joined after the release instant.
    pub inversions: u64,
    /// Tickets admitted while a ticket with an earlier place was still waiting (whole line).
    pub admission_order_inversions: u64,
    /// Every user's final answer, and how early SOLD_OUT came.
    pub answers: Answers,
}

/// Final answers of a spike's users.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Answers {
    /// Users who arrived.
    pub users: u64,
    /// Admitted and held a slot.
    pub booked: u64,
    /// Told SOLD_OUT.
    pub sold_out: u64,
    /// Admitted, found no slot, gave the turn back.
    pub left: u64,
    /// The ticket expired (idle or the admission lapsed) before the user could act.
    pub expired: u64,
    /// The Join never got through.
    pub refused: u64,
    /// No final answer when the load stopped.
    pub none: u64,
    /// Of the SOLD_OUT answers, those given to users whose Join was sent before the release instant (in the draw,
    /// unless the server answered after the draw).
    pub sold_out_in_draw: u64,
    /// From the release instant (the draw) to the last SOLD_OUT answer, in ms.
    pub draw_to_last_sold_out_ms: u64,
    /// From the release instant to the SOLD_OUT answer of users in the draw: median and 99th percentile, in ms.
    pub draw_to_sold_out_in_draw_p50_ms: u64,
    /// See `draw_to_sold_out_in_draw_p50_ms`.
    pub draw_to_sold_out_in_draw_p99_ms: u64,
    /// Watch streams opened, and messages they carried.
    pub watch_streams: u64,
    /// See `watch_streams`.
    pub watch_messages: u64,
}

/// Takes a ticket, follows it, returns the admission token.
pub struct WaitingRoomGate {
    origin: Instant,
    /// The release instant, in microseconds after `origin`.
    release_us: u64,
    seed: u64,
    watch_places: Arc<Semaphore>,
    sightings: Mutex<HashMap<u64, Sighting>>,
    streams: Mutex<(u64, u64)>,
}

impl WaitingRoomGate {
    /// A gate for a line released at `release_at`, letting at most `watchers_max` users watch at once (the others
    /// wait for a place: they do not poll).
    pub fn new(seed: u64, watchers_max: usize, release_at: SystemTime) -> WaitingRoomGate {
        let origin = now();
        let until_release = release_at.duration_since(SystemTime::now()).unwrap_or_default();
        WaitingRoomGate {
            origin,
            release_us: until_release.as_micros() as u64,
            seed,
            watch_places: Arc::new(Semaphore::new(watchers_max)),
            sightings: Mutex::new(HashMap::new()),
            streams: Mutex::new((0, 0)),
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

    fn answer(&self, user: u64, answer: Answer) {
        let at = self.us(now());
        let mut sightings = self.sightings.lock().expect("sightings poisoned");
        let sighting = sightings.entry(user).or_default();
        sighting.answer.get_or_insert((answer, at));
    }

    async fn wait_turn(&self, steps: &Steps, user: u64, call: Call) -> Admission {
        let office = self.office_of(steps, user);
        let mut ticket = match self.first_join(steps, office, user, call).await {
            Ok(ticket) => ticket,
            Err(reason) => {
                self.answer(user, Answer::Refused);
                return Admission::Refused { reason };
            }
        };
        loop {
            let (answer, reason) = match ticket.state() {
                TicketState::Admitted => return Admission::Admitted { token: ticket.admission_token },
                TicketState::Waiting => match self.follow(steps, user, &ticket.ticket_id, call.deadline).await {
                    Some(next) => {
                        ticket = next;
                        continue;
                    }
                    None => return self.give_up(steps, user, &ticket.ticket_id).await,
                },
                TicketState::SoldOut => (Answer::SoldOut, "users_sold_out"),
                TicketState::Expired => (Answer::Expired, "users_ticket_expired"),
                TicketState::Booked => (Answer::Booked, "users_ticket_already_booked"),
                TicketState::Left => (Answer::Left, "users_ticket_left"),
                TicketState::Unspecified => (Answer::Expired, "users_ticket_unspecified"),
            };
            self.answer(user, answer);
            return Admission::Refused { reason };
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
            let (started, sent) = (if attempt == 0 { call.due } else { now() }, now());
            let joined = steps.join("Join", office, user, 1000 + attempt, started).await;
            let outcome = joined.as_ref().map_or_else(outcome_of, |_| Outcome::OK);
            steps.recorder.record(JOIN_FROM_SEND, sent, &outcome);
            match joined {
                Ok(ticket) => {
                    let received = now();
                    let after_release = first_sent_wall >= system_time(ticket.release_at.as_ref());
                    let sighting = Sighting {
                        ticket_id: ticket.ticket_id.clone(),
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

    /// Follows a waiting ticket on a Watch stream until it is no longer waiting; `None` at the deadline. A stream
    /// that cannot be opened (no place, overload) or breaks is opened again after a pause.
    async fn follow(&self, steps: &Steps, user: u64, ticket_id: &str, deadline: Instant) -> Option<proto::Ticket> {
        let place =
            tokio::time::timeout_at(deadline.into(), self.watch_places.clone().acquire_owned()).await.ok()?.ok()?;
        let mut failures = 0u32;
        loop {
            if now() >= deadline {
                return None;
            }
            let opened = now();
            if let Ok(mut stream) = steps.watch(ticket_id).await {
                self.streams.lock().expect("streams poisoned").0 += 1;
                loop {
                    let message = tokio::time::timeout_at(deadline.into(), stream.message()).await;
                    let Ok(Ok(Some(response))) = message else { break };
                    self.streams.lock().expect("streams poisoned").1 += 1;
                    let ticket = response.ticket.unwrap_or_default();
                    self.sight(user, &ticket, opened, now());
                    if ticket.state() != TicketState::Waiting {
                        drop(place);
                        return Some(ticket);
                    }
                }
            }
            failures += 1;
            steps.recorder.count("watch_reopened", 1);
            let base = (WATCH_RETRY_BASE * 2u32.pow(failures.min(4))).min(Duration::from_secs(2));
            let pause = crate::scenarios::backoff(self.seed, user * 64 + u64::from(failures % 64), base);
            crate::scenarios::sleep_before(now() + pause, deadline).await;
        }
    }

    async fn give_up(&self, steps: &Steps, user: u64, ticket_id: &str) -> Admission {
        let sent = now();
        if let Ok(ticket) = steps.leave(user, ticket_id).await {
            self.sight(user, &ticket, sent, now());
        }
        Admission::Refused { reason: "users_left_at_deadline" }
    }

    /// Every user's final answer, and the order checked from what was seen.
    pub fn verdict(&self, steps: &Steps) -> WaitingRoomVerdict {
        let sightings: Vec<Sighting> = self.sightings.lock().expect("sightings poisoned").values().cloned().collect();
        let (watch_streams, watch_messages) = *self.streams.lock().expect("streams poisoned");
        let mut answers =
            Answers { users: sightings.len() as u64, watch_streams, watch_messages, ..Answers::default() };
        let mut sold_out_after_draw_ms: Vec<u64> = Vec::new();
        for sighting in &sightings {
            let Some((answer, at_us)) = sighting.answer else {
                answers.none += 1;
                continue;
            };
            match answer {
                Answer::Booked => answers.booked += 1,
                Answer::Left => answers.left += 1,
                Answer::Expired => answers.expired += 1,
                Answer::Refused => answers.refused += 1,
                Answer::SoldOut => {
                    answers.sold_out += 1;
                    let after_draw_ms = at_us.saturating_sub(self.release_us) / 1000;
                    answers.draw_to_last_sold_out_ms = answers.draw_to_last_sold_out_ms.max(after_draw_ms);
                    if sighting.join_sent_us < self.release_us {
                        answers.sold_out_in_draw += 1;
                        sold_out_after_draw_ms.push(after_draw_ms);
                    }
                }
            }
        }
        sold_out_after_draw_ms.sort_unstable();
        let percentile = |share: f64| {
            let index = ((sold_out_after_draw_ms.len() as f64 * share).ceil() as usize).saturating_sub(1);
            sold_out_after_draw_ms.get(index).copied().unwrap_or(0)
        };
        answers.draw_to_sold_out_in_draw_p50_ms = percentile(0.50);
        answers.draw_to_sold_out_in_draw_p99_ms = percentile(0.99);
        for (name, count) in [
            ("answers_booked", answers.booked),
            ("answers_sold_out", answers.sold_out),
            ("answers_left", answers.left),
            ("answers_expired", answers.expired),
            ("answers_refused", answers.refused),
            ("answers_none", answers.none),
        ] {
            steps.recorder.count(name, count);
        }
        WaitingRoomVerdict {
            unterminated: answers.none,
            inversions: fifo_inversions(&sightings),
            admission_order_inversions: admission_order_inversions(&sightings),
            answers,
        }
    }
}

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
                if let Some(sighting) = self.sightings.lock().expect("sightings poisoned").get_mut(&user) {
                    sighting.state = TicketState::Booked as i32;
                }
                self.answer(user, Answer::Booked);
                return;
            }
            // Admitted but no slot after all: give the turn back so the ticket ends.
            let sent = now();
            if let Ok(ticket) = steps.leave(user, &ticket_id).await {
                self.sight(user, &ticket, sent, now());
            }
            self.answer(user, Answer::Left);
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
