//! A burst of holds during a failover: a few tasks hold slots of a small office, each with its own request ids and
//! applicants, through whichever node serves. A call a node refuses UNAVAILABLE (a standby, a deposed owner), or that
//! gets no answer (a killed or paused node), is sent again with the same request id to the next node after the
//! RetryInfo hint, as a client would, until some node answers it. Every answer is recorded.
//!
//! Declare it beside the harness with `#[path = "common/burst.rs"] mod burst;`.

#![allow(dead_code)]

use crate::common::{applicant, hold_request};
use antrean::proto::{self, booking_service_client::BookingServiceClient};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

/// The sessions a burst holds in, as (days from today, session id): few, so that they fill up during a test.
pub const TARGETS: [(i32, &str); 6] =
    [(1, "1300-1500"), (1, "1500-1700"), (2, "1300-1500"), (2, "1500-1700"), (4, "1300-1500"), (4, "1500-1700")];
/// How long one request may go unanswered by every node before the test fails (a failover takes seconds).
const ANSWER_WAIT: Duration = Duration::from_secs(120);
/// Deadline of one attempt: a paused node must not hold a task for long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before trying the next node when the refusal carries no RetryInfo.
const RETRY_PAUSE_DEFAULT: Duration = Duration::from_millis(100);
/// Longest pause before trying the next node, whatever the hint says.
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);
/// Pause between one task's answered holds, so a burst stays a burst and not a flood of a 2-core machine.
const HOLD_PAUSE: Duration = Duration::from_millis(20);

/// Applicant serials of bursts start here, each hold taking the next (distinct applicants across the whole test).
static NEXT_SERIAL: AtomicU32 = AtomicU32::new(10_000);

/// A request and the answer some node gave it.
#[derive(Clone, Debug)]
pub struct Answered {
    /// The request as sent (retries resend it unchanged).
    pub request: proto::HoldRequest,
    /// The booking, or the refusal's code and `ErrorInfo.reason`.
    pub answer: Result<proto::Booking, (Code, String)>,
    /// When the answer came.
    pub answered_at: Instant,
}

/// The longest time between two answers that booked a slot, and when it began (a failover's unavailability window).
pub fn longest_gap(answers: &[Answered]) -> (Duration, Option<Instant>) {
    let mut times: Vec<Instant> =
        answers.iter().filter(|answered| answered.answer.is_ok()).map(|answered| answered.answered_at).collect();
    times.sort();
    times
        .windows(2)
        .map(|pair| (pair[1] - pair[0], Some(pair[0])))
        .max_by_key(|(gap, _)| *gap)
        .unwrap_or((Duration::ZERO, None))
}

/// A running burst.
pub struct Burst {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Answered>>>,
}

impl Burst {
    /// Starts `tasks` tasks holding slots of `office` through the nodes at `addresses` (`127.0.0.1:PORT`).
    pub fn start(office: &str, addresses: &[String], tasks: usize) -> Burst {
        let channels: Arc<Vec<Channel>> = Arc::new(
            addresses
                .iter()
                .map(|address| {
                    Endpoint::from_shared(format!("http://{address}"))
                        .expect("uri")
                        .connect_timeout(ATTEMPT_TIMEOUT)
                        .timeout(ATTEMPT_TIMEOUT)
                        .connect_lazy()
                })
                .collect(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let serving = Arc::new(AtomicUsize::new(0));
        let tasks = (0..tasks)
            .map(|task| {
                let (channels, stop, answered, serving) =
                    (Arc::clone(&channels), Arc::clone(&stop), Arc::clone(&answered), Arc::clone(&serving));
                let office = office.to_owned();
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    let mut round = task;
                    while !stop.load(Ordering::Relaxed) {
                        let (days, session) = TARGETS[round % TARGETS.len()];
                        round += 1;
                        let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
                        let request = proto::HoldRequest {
                            session_id: session.to_owned(),
                            ..hold_request(&office, days, applicant(serial))
                        };
                        answers.push(hold_through_any(&channels, &serving, request).await);
                        answered.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(HOLD_PAUSE).await;
                    }
                    answers
                })
            })
            .collect();
        Burst { stop, answered, tasks }
    }

    /// Holds answered so far (booked, or refused because the session is full: decided by the cluster either way).
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }

    /// Waits until `more` holds beyond `since` are answered, failing after `limit`.
    pub async fn wait_answered(&self, since: usize, more: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.answered() < since + more {
            assert!(
                Instant::now() < deadline,
                "the burst got {} of {more} more holds answered",
                self.answered() - since
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the tasks once their current request is answered, and returns every answer.
    pub async fn finish(self) -> Vec<Answered> {
        self.stop.store(true, Ordering::Relaxed);
        let mut answers = Vec::new();
        for task in self.tasks {
            answers.extend(task.await.expect("burst task"));
        }
        answers
    }
}

/// Sends `request` to the node last seen serving, then to the others in turn, until one answers.
async fn hold_through_any(channels: &[Channel], serving: &AtomicUsize, request: proto::HoldRequest) -> Answered {
    let started = Instant::now();
    let mut node = serving.load(Ordering::Relaxed);
    loop {
        let mut client = BookingServiceClient::new(channels[node].clone());
        let status = match client.hold(request.clone()).await {
            Ok(response) => {
                serving.store(node, Ordering::Relaxed);
                let booking = response.into_inner().booking.expect("a hold answers a booking");
                return Answered { request, answer: Ok(booking), answered_at: Instant::now() };
            }
            Err(status) => status,
        };
        if !is_retried_elsewhere(status.code()) {
            serving.store(node, Ordering::Relaxed);
            let reason = status.get_error_details().error_info().map(|info| info.reason.clone()).unwrap_or_default();
            return Answered { request, answer: Err((status.code(), reason)), answered_at: Instant::now() };
        }
        assert!(
            started.elapsed() < ANSWER_WAIT,
            "no node answered hold {} within {ANSWER_WAIT:?}: {status:?}",
            request.request_id
        );
        let hint = status.get_error_details().retry_info().and_then(|info| info.retry_delay);
        tokio::time::sleep(hint.unwrap_or(RETRY_PAUSE_DEFAULT).min(RETRY_PAUSE_MAX)).await;
        node = (node + 1) % channels.len();
    }
}

/// Whether a call ending with `code` may not have been decided by the cluster (no node, a standby, a deposed owner, no
/// answer in time): the client sends it again elsewhere with the same request id.
fn is_retried_elsewhere(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted)
}
