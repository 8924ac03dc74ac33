//! Crash consistency through the real binary: concurrent holds, payments and cancellations, a SIGKILL at a random
//! instant, a restart on the same data directory, and then the promises checked:
//!
//! - every call answered OK survives, in the state its last acknowledged call left it in;
//! - no session holds more active bookings than its capacity, and availability agrees with the bookings listed;
//! - re-sending an acknowledged request id returns the first answer.
//!
//! Calls cut off by the crash have an unknown outcome: after the restart they are re-sent with the same request id and
//! whatever comes back must be consistent with the rules. The schedule of calls and kill delays comes from a seeded
//! RNG (override with `ANTREAN_CRASH_SEED`); a failure prints the seed.

mod common;

use antrean::proto::{self, booking_service_client::BookingServiceClient};
use common::{Options, Server, applicant, create_office, jakarta_date, request_id, test_office};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Code, Status};

const OFFICE: &str = "kanim-crash";
/// Regular slots per session.
const CAPACITY: u32 = 15;
/// Priority slots of the first session (never booked here, so always all remaining).
const PRIORITY_CAPACITY: u32 = 2;
/// Dates booked, in days from today.
const DAYS: [i32; 3] = [1, 2, 3];
const SESSIONS: [&str; 2] = ["1300-1500", "1500-1700"];
const TASKS: usize = 8;
const CYCLES: u64 = 4;
/// A call that takes longer than this is treated like one cut off by the crash.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A change request, kept so it can be re-sent byte for byte.
#[derive(Clone, Debug)]
enum Call {
    Hold(proto::HoldRequest),
    Confirm(proto::ConfirmPaymentRequest),
    Cancel(proto::CancelRequest),
}

impl Call {
    async fn send(&self, client: &mut BookingServiceClient<Channel>) -> Result<proto::Booking, Status> {
        let call = async {
            let booking = match self {
                Call::Hold(request) => client.hold(request.clone()).await?.into_inner().booking,
                Call::Confirm(request) => client.confirm_payment(request.clone()).await?.into_inner().booking,
                Call::Cancel(request) => client.cancel(request.clone()).await?.into_inner().booking,
            };
            Ok(booking.expect("an OK answer carries the booking"))
        };
        tokio::time::timeout(CALL_TIMEOUT, call).await.unwrap_or_else(|_| Err(Status::deadline_exceeded("timeout")))
    }

    fn request_id(&self) -> &str {
        match self {
            Call::Hold(request) => &request.request_id,
            Call::Confirm(request) => &request.request_id,
            Call::Cancel(request) => &request.request_id,
        }
    }
}

/// A call answered OK, with its answer.
#[derive(Clone, Debug)]
struct Acknowledged {
    call: Call,
    answer: proto::Booking,
}

/// What one traffic task saw.
#[derive(Debug, Default)]
struct TaskRecord {
    /// Calls answered OK, in the order they were answered.
    acknowledged: Vec<Acknowledged>,
    /// Holds refused because the session was full (a definite answer).
    refused_full: u64,
    /// The call cut off by the crash, if any: its outcome is unknown.
    unknown: Option<Call>,
}

/// Whether a status is a definite answer from the engine (the call was decided), as opposed to a transport failure
/// whose outcome is unknown.
fn definite(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::ResourceExhausted
    )
}

fn is_active(state: i32) -> bool {
    [proto::BookingState::AwaitingPayment, proto::BookingState::Confirmed, proto::BookingState::CheckedIn]
        .iter()
        .any(|active| *active as i32 == state)
}

fn state_name(state: i32) -> String {
    proto::BookingState::try_from(state).map_or_else(|_| format!("state {state}"), |state| format!("{state:?}"))
}

/// What the test knows: the last acknowledged answer for every booking.
#[derive(Default)]
struct Model {
    bookings: BTreeMap<String, proto::Booking>,
    /// Every acknowledged call, to re-send.
    acknowledged: Vec<Acknowledged>,
}

impl Model {
    fn record(&mut self, acknowledged: Acknowledged) {
        self.bookings.insert(acknowledged.answer.booking_id.clone(), acknowledged.answer.clone());
        self.acknowledged.push(acknowledged);
    }

    /// Active bookings known to be owned by nobody yet, split among the tasks of the next cycle.
    fn active_ids(&self) -> Vec<(String, i32)> {
        let mut active: Vec<_> = self
            .bookings
            .values()
            .filter(|booking| is_active(booking.state))
            .map(|booking| (booking.booking_id.clone(), booking.state))
            .collect();
        active.sort();
        active
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_calls_survive_sigkill_mid_traffic() {
    let seed: u64 = std::env::var("ANTREAN_CRASH_SEED").ok().and_then(|text| text.parse().ok()).unwrap_or(20_260_101);
    eprintln!("crash test seed {seed} (set ANTREAN_CRASH_SEED to replay)");
    let started = Instant::now();
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    // Small segments and frequent snapshots, so kills also land during segment rolls, snapshots and pruning.
    let options = Options {
        args: vec!["--fsync".into(), "always".into()],
        config: Some("[storage]\nsegment_bytes_max = 262400\nsnapshot_every_records = 250\n".into()),
    };
    let mut server = Server::start_in(&data_dir, &options);
    {
        let (_, mut admin) = server.clients().await;
        create_office(&mut admin, test_office(OFFICE, CAPACITY, 7200)).await;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut model = Model::default();
    for cycle in 0..CYCLES {
        let records = run_traffic(&server, &model, seed, cycle, rng.random_range(50..=400)).await;
        server.kill();
        let files = format!(
            "{} segments, {} snapshots",
            count_files(&data_dir.join("wal")),
            count_files(&data_dir.join("snapshots"))
        );
        server = Server::start_in(&data_dir, &options);
        let (mut client, _) = server.clients().await;
        let first_new = model.acknowledged.len();
        let (resolved, refused) = absorb(&mut client, &mut model, records).await;
        let summary = check_state(&mut client, &model).await;
        resend_acknowledged(&mut client, &model.acknowledged[first_new..], &model.bookings).await;
        eprintln!(
            "cycle {cycle}: {} acknowledged, {refused} refused full, {resolved} unknown outcomes retried; {files} at the \
             kill; {summary}",
            model.acknowledged.len() - first_new,
        );
    }
    // A clean stop writes a final snapshot; the state must load from it unchanged.
    assert!(server.terminate().success(), "clean shutdown");
    server = Server::start_in(&data_dir, &options);
    let (mut client, _) = server.clients().await;
    let summary = check_state(&mut client, &model).await;
    resend_acknowledged(&mut client, &model.acknowledged, &model.bookings).await;
    eprintln!("after clean restart: {summary}; {} acknowledged calls re-sent", model.acknowledged.len());
    let elapsed = started.elapsed();
    eprintln!("crash test took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(120), "the crash test must stay well under 2 minutes, took {elapsed:?}");
    drop(server);
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

/// Runs `TASKS` tasks of random traffic until the server is SIGKILLed `kill_after_ms` from now; returns what each saw.
async fn run_traffic(server: &Server, model: &Model, seed: u64, cycle: u64, kill_after_ms: u64) -> Vec<TaskRecord> {
    let active = model.active_ids();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        // Each task owns a disjoint set of bookings: the known active ones dealt round-robin, plus what it holds.
        let owned: Vec<(String, i32)> = active.iter().skip(task).step_by(TASKS).cloned().collect();
        let channel = server.channel().await;
        let task_seed = seed ^ (cycle << 32) ^ task as u64;
        let serial_base = 1 + (cycle as u32 * TASKS as u32 + task as u32) * 100_000;
        tasks.push(tokio::spawn(traffic(BookingServiceClient::new(channel), owned, task_seed, serial_base)));
    }
    tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
    // The kill happens in the test's process; the tasks notice by their calls failing.
    let mut records = Vec::new();
    // Our own child, not reaped yet, so the pid is still its own.
    let pid = rustix::process::Pid::from_child(server.child.as_ref().expect("running"));
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("send SIGKILL to the server");
    for task in tasks {
        let record = tokio::time::timeout(CALL_TIMEOUT * 2, task).await.expect("traffic task ends").expect("no panic");
        records.push(record);
    }
    records
}

/// One task's traffic: holds (a fresh applicant each), payments and cancellations of its own bookings, until a call
/// fails without a definite answer.
async fn traffic(
    mut client: BookingServiceClient<Channel>,
    mut owned: Vec<(String, i32)>,
    seed: u64,
    serial_base: u32,
) -> TaskRecord {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut record = TaskRecord::default();
    for serial in serial_base.. {
        assert!(serial < serial_base + 100_000, "a task makes fewer than 100000 calls");
        let awaiting: Vec<usize> =
            (0..owned.len()).filter(|index| owned[*index].1 == proto::BookingState::AwaitingPayment as i32).collect();
        let roll: f64 = rng.random();
        let call = if !awaiting.is_empty() && roll < 0.25 {
            let booking_id = owned[awaiting[rng.random_range(0..awaiting.len())]].0.clone();
            Call::Confirm(proto::ConfirmPaymentRequest {
                request_id: request_id("pay"),
                payment_reference: format!("PAY-{booking_id}"),
                booking_id,
                paid_at: None,
            })
        } else if !owned.is_empty() && roll < 0.45 {
            let booking_id = owned[rng.random_range(0..owned.len())].0.clone();
            Call::Cancel(proto::CancelRequest { request_id: request_id("cancel"), booking_id })
        } else {
            let mut request = common::hold_request(OFFICE, DAYS[rng.random_range(0..DAYS.len())], applicant(serial));
            request.session_id = SESSIONS[rng.random_range(0..SESSIONS.len())].into();
            Call::Hold(request)
        };
        match call.send(&mut client).await {
            Ok(answer) => {
                owned.retain(|(booking_id, _)| *booking_id != answer.booking_id);
                if is_active(answer.state) {
                    owned.push((answer.booking_id.clone(), answer.state));
                }
                record.acknowledged.push(Acknowledged { call, answer });
            }
            Err(status) if definite(&status) => {
                assert!(
                    matches!(call, Call::Hold(_)) && common::reason(&status).as_deref() == Some("SESSION_FULL"),
                    "unexpected refusal of {call:?}: {status:?}"
                );
                record.refused_full += 1;
            }
            Err(_) => {
                record.unknown = Some(call);
                break;
            }
        }
    }
    record
}

/// Folds the tasks' records into the model, re-sending each unknown-outcome call with its request id first. Returns
/// how many unknown outcomes were resolved and how many holds were refused as full.
async fn absorb(client: &mut BookingServiceClient<Channel>, model: &mut Model, records: Vec<TaskRecord>) -> (u64, u64) {
    let mut resolved = 0;
    let mut refused = 0;
    for record in records {
        refused += record.refused_full;
        for acknowledged in record.acknowledged {
            model.record(acknowledged);
        }
        let Some(call) = record.unknown else { continue };
        resolved += 1;
        match call.send(client).await {
            Ok(answer) => {
                if let Some(known) = model.bookings.get(&answer.booking_id) {
                    // A payment or cancellation of a booking this test owns: it moves forward from the last answer.
                    assert!(
                        !matches!(call, Call::Hold(_)),
                        "retried hold {} answered booking {} that already belongs to another acknowledged hold",
                        call.request_id(),
                        answer.booking_id
                    );
                    assert!(is_active(known.state), "{} changed after reaching {}", known.booking_id, known.state);
                }
                model.record(Acknowledged { call, answer });
            }
            Err(status) => {
                // A retried hold may find the session full now (its first try was lost in the crash); nothing else
                // this test sends may be refused.
                assert!(
                    matches!(call, Call::Hold(_)) && common::reason(&status).as_deref() == Some("SESSION_FULL"),
                    "retry after restart of {call:?} failed: {status:?}"
                );
            }
        }
    }
    (resolved, refused)
}

/// Checks (a) every acknowledged booking is there in its last acknowledged state, and nothing else is; (b) per session,
/// active bookings <= capacity and availability == capacity - active. Returns a one-line summary.
async fn check_state(client: &mut BookingServiceClient<Channel>, model: &Model) -> String {
    for expected in model.bookings.values() {
        let found = client
            .get_booking(proto::GetBookingRequest { booking_id: expected.booking_id.clone() })
            .await
            .unwrap_or_else(|status| panic!("acknowledged booking {} lost: {status:?}", expected.booking_id))
            .into_inner()
            .booking
            .expect("booking");
        assert_eq!(
            (state_name(found.state), &found.applicant, &found.date, &found.session_id),
            (state_name(expected.state), &expected.applicant, &expected.date, &expected.session_id),
            "booking {} after restart differs from its last acknowledged answer",
            expected.booking_id
        );
    }
    let mut listed = BTreeMap::new();
    let mut active: BTreeMap<(i32, String), u32> = BTreeMap::new();
    for day in DAYS {
        for booking in list_bookings(client, jakarta_date(day)).await {
            if is_active(booking.state) {
                *active.entry((day, booking.session_id.clone())).or_default() += 1;
            }
            assert!(listed.insert(booking.booking_id.clone(), booking).is_none(), "a booking is listed twice");
        }
    }
    let known: BTreeSet<&String> = model.bookings.keys().collect();
    let on_server: BTreeSet<&String> = listed.keys().collect();
    assert_eq!(on_server, known, "the server's bookings are exactly the acknowledged ones (after retries)");
    for (booking_id, booking) in &listed {
        assert_eq!(state_name(booking.state), state_name(model.bookings[booking_id].state), "{booking_id} listed");
    }
    check_availability(client, &active).await;
    let total_active: u32 = active.values().sum();
    format!("{} bookings, {total_active} active", listed.len())
}

async fn check_availability(client: &mut BookingServiceClient<Channel>, active: &BTreeMap<(i32, String), u32>) {
    let availability = client
        .get_availability(proto::GetAvailabilityRequest {
            office_id: OFFICE.into(),
            service: proto::ServiceType::NewPassport as i32,
            first_date: Some(jakarta_date(DAYS[0])),
            last_date: Some(jakarta_date(DAYS[DAYS.len() - 1])),
        })
        .await
        .expect("availability")
        .into_inner();
    let mut seen = 0;
    for day in DAYS {
        for session_id in SESSIONS {
            let session = availability
                .sessions
                .iter()
                .find(|session| session.date == Some(jakarta_date(day)) && session.session_id == session_id)
                .unwrap_or_else(|| panic!("availability lists day +{day} session {session_id}"));
            let taken = active.get(&(day, session_id.to_owned())).copied().unwrap_or(0);
            assert!(taken <= CAPACITY, "day +{day} session {session_id} oversold: {taken} active > {CAPACITY}");
            for pool in &session.pools {
                let (capacity, expected_remaining) = if pool.pool == proto::Pool::Regular as i32 {
                    (CAPACITY, CAPACITY - taken)
                } else {
                    (PRIORITY_CAPACITY, PRIORITY_CAPACITY)
                };
                assert_eq!(
                    (pool.capacity, pool.remaining),
                    (capacity, expected_remaining),
                    "day +{day} session {session_id} pool {}: capacity and remaining vs {taken} active bookings",
                    pool.pool
                );
            }
            seen += 1;
        }
    }
    assert_eq!(seen, DAYS.len() * SESSIONS.len());
}

async fn list_bookings(client: &mut BookingServiceClient<Channel>, date: proto::Date) -> Vec<proto::Booking> {
    let mut bookings = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_bookings(proto::ListBookingsRequest {
                office_id: OFFICE.into(),
                date: Some(date),
                page_size: 1000,
                page_token,
            })
            .await
            .expect("list bookings")
            .into_inner();
        bookings.extend(page.bookings);
        if page.next_page_token.is_empty() {
            return bookings;
        }
        page_token = page.next_page_token;
    }
}

/// (c) Re-sending an acknowledged request id returns the first answer and changes nothing: the same booking, as it is
/// now (its last acknowledged answer, in `last`).
async fn resend_acknowledged(
    client: &mut BookingServiceClient<Channel>,
    acknowledged: &[Acknowledged],
    last: &BTreeMap<String, proto::Booking>,
) {
    for Acknowledged { call, answer } in acknowledged {
        let again = call
            .send(client)
            .await
            .unwrap_or_else(|status| panic!("re-sent {} was refused: {status:?}", call.request_id()));
        assert_eq!(again.booking_id, answer.booking_id, "re-sent {} names another booking", call.request_id());
        let now = &last[&answer.booking_id];
        assert_eq!(&again, now, "re-sent {} does not return its booking as it is", call.request_id());
    }
}
