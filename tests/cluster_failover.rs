//! Failover of a partition between antrean nodes on a real 3-server NATS JetStream cluster, each under a burst of
//! holds sent through whichever node serves: the owner is killed, then the next owner is paused past its lease; in a
//! second test the nats-server leading the partition's stream is killed. Each time the standby takes over within the
//! lease TTL + 10 s (or the owner goes on after the election), every acknowledged booking is readable through the
//! serving node and a retried request id gets its first answer, no session holds more than its capacity, and the live
//! state is the one replaying the subject from its start gives; the paused owner, resumed, answers nothing more and its
//! late appends are not stored (the partition's log never goes back to an older epoch).

#[path = "common/api.rs"]
mod api;
#[path = "common/burst.rs"]
mod burst;
#[path = "common/cluster_state.rs"]
mod cluster_state;
mod common;

use antrean::cluster::{ClusterConfig, OfficeLog, connect, stream_index, stream_name};
use antrean::proto::{self, booking_service_client::BookingServiceClient};
use burst::Burst;
use common::nats::NatsCluster;
use common::{Options, Server, applicant, create_office, hold_request, jakarta_date, reason, test_office};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

const OFFICE: &str = "kanim-failover";
const PARTITION: &str = "failover";
const LEASE_TTL: Duration = Duration::from_secs(3);
/// Capacity of the test session's regular pool.
const CAPACITY: u32 = 6;
/// Tasks of a burst of holds.
const BURST_TASKS: usize = 3;
/// Burst answers before the failure is injected, and after the partition serves again.
const BURST_ANSWERS_BEFORE: usize = 5;
const BURST_ANSWERS_AFTER: usize = 5;
/// How long a burst may take to get those answers (a failover takes seconds; a loaded CI machine is slow).
const BURST_WAIT: Duration = Duration::from_secs(150);
/// The burst holds on dates from tomorrow to this many days ahead (see `burst::TARGETS`).
const BURST_DAYS: i32 = 4;

/// The `[cluster]` section of node `name`.
fn cluster_section(name: &str, urls: &[String], lease_ttl: Duration) -> String {
    let urls: Vec<String> = urls.iter().map(|url| format!("\"{url}\"")).collect();
    // The server's own request timeout must outlast a pause of the owner, so a call cut off by its deposition is
    // answered UNAVAILABLE rather than timed out. Forwarding is off: this test checks the serving gate itself (a
    // standby refuses); tests/cluster_routing.rs checks that a standby forwards to the owner when it is on.
    format!(
        "[server]\nrequest_timeout_ms = 60000\n[cluster]\nnode_name = \"{name}\"\nnats_urls = [{}]\noffices = \"all\"\npartition = \"{PARTITION}\"\nforward_calls = false\n\
         lease_ttl_ms = {}\nlease_renew_every_ms = 500\nrequest_timeout_ms = 1000\n",
        urls.join(", "),
        lease_ttl.as_millis()
    )
}

/// Starts node `name`; returns it and its metrics port.
fn start_node(name: &str, urls: &[String], lease_ttl: Duration) -> (Server, u16) {
    let metrics_port = free_port();
    let args = vec![format!("--metrics-listen=127.0.0.1:{metrics_port}")];
    (Server::start_with(Options { args, config: Some(cluster_section(name, urls, lease_ttl)) }), metrics_port)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// The value of the sample `name{partition="failover"}` on the node's `/metrics`, 0 when absent.
async fn metric(port: u16, name: &str) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect to /metrics");
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("response");
    let selector = format!("{name}{{partition=\"{PARTITION}\"}}");
    body.lines()
        .filter_map(|line| line.rsplit_once(' '))
        .find_map(|(series, value)| (series == selector).then(|| value.parse().expect("a number")))
        .unwrap_or(0.0)
}

async fn health(server: &Server) -> Option<i32> {
    let channel = Channel::from_shared(format!("http://{}", server.address)).expect("uri").connect().await.ok()?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
    client.check(request).await.ok().map(|response| response.into_inner().status)
}

/// Waits until `server` says SERVING, at most the lease TTL + 10 s after `since`.
async fn serving_within_lease(server: &Server, since: Instant) -> BookingServiceClient<Channel> {
    let limit = LEASE_TTL + Duration::from_secs(10);
    while health(server).await != Some(ServingStatus::Serving as i32) {
        assert!(since.elapsed() < limit, "the standby did not serve within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    BookingServiceClient::new(server.channel().await)
}

fn signal(server: &Server, signal: rustix::process::Signal) {
    let child = server.child.as_ref().expect("running");
    rustix::process::kill_process(rustix::process::Pid::from_child(child), signal).expect("signal the node");
}

/// Every acknowledged hold is readable through `booking`, and retrying its request id returns its first answer.
async fn acknowledged_holds_survive(
    booking: &mut BookingServiceClient<Channel>,
    acknowledged: &[(proto::HoldRequest, proto::Booking)],
) {
    for (request, first) in acknowledged {
        let read = api::get_booking(booking, &first.booking_id).await.expect("acknowledged booking readable");
        assert_eq!(read.booking_id, first.booking_id);
        let retried = api::hold(booking, request.clone()).await;
        assert_eq!(retried, *first, "a retried request id returns its first answer");
    }
}

/// Every burst answer is a booking or the refusal of a full session, and no session took more holds than it has slots.
#[track_caller]
fn burst_answers_are_sound(answers: &[burst::Answered]) -> Vec<(proto::HoldRequest, proto::Booking)> {
    let (gap, _) = burst::longest_gap(answers);
    let booked = answers.iter().filter(|answered| answered.answer.is_ok()).count();
    eprintln!("burst: {} answers, {booked} booked, longest time without a booking {gap:?}", answers.len());
    let mut taken: HashMap<(String, String), HashSet<String>> = HashMap::new();
    let mut acknowledged = Vec::new();
    for answered in answers {
        match &answered.answer {
            Ok(booking) => {
                let date = format!("{:?}", answered.request.date);
                taken.entry((date, booking.session_id.clone())).or_default().insert(booking.booking_id.clone());
                acknowledged.push((answered.request.clone(), booking.clone()));
            }
            Err((code, reason)) => assert_eq!(
                (*code, reason.as_str()),
                (Code::FailedPrecondition, "SESSION_FULL"),
                "a burst hold was refused otherwise than full"
            ),
        }
    }
    let booking_ids: HashSet<&str> = acknowledged.iter().map(|(_, booking)| booking.booking_id.as_str()).collect();
    assert_eq!(booking_ids.len(), acknowledged.len(), "two requests were answered with one booking");
    for ((date, session), ids) in &taken {
        assert!(ids.len() <= CAPACITY as usize, "{} holds acknowledged in session {session} of {date}", ids.len());
    }
    acknowledged
}

/// After a failover, through the node now serving: every acknowledged hold is readable and its retried request id gets
/// its first answer, no session holds more than its capacity, and the live state is what replaying the subject gives.
async fn state_after_failover(
    serving: &Server,
    urls: &[String],
    acknowledged: &[(proto::HoldRequest, proto::Booking)],
) {
    let (mut booking, mut admin) = serving.clients().await;
    acknowledged_holds_survive(&mut booking, acknowledged).await;
    for day in 1..=BURST_DAYS {
        for session in ["1300-1500", "1500-1700"] {
            let remaining = api::regular_remaining(&mut booking, OFFICE, jakarta_date(day), session).await;
            let live_taken = CAPACITY - remaining;
            let acknowledged_here = acknowledged
                .iter()
                .filter(|(request, held)| request.date == Some(jakarta_date(day)) && held.session_id == session)
                .count();
            // Every acknowledged hold is still active (the payment window is an hour), and nothing more was taken.
            assert!(
                live_taken as usize >= acknowledged_here,
                "day +{day} {session}: {live_taken} taken, {acknowledged_here} acknowledged"
            );
        }
    }
    let (replayed, records) = cluster_state::replayed_partition(&reader_config(urls)).await;
    assert!(records > 0, "the subject holds the partition's log");
    cluster_state::assert_live_state_is_the_replay(&replayed, &mut booking, &mut admin, OFFICE, 1..=BURST_DAYS).await;
}

/// The `[cluster]` section a test reads the partition's log with.
fn reader_config(urls: &[String]) -> ClusterConfig {
    toml::from_str(cluster_section("reader", urls, LEASE_TTL).split("[cluster]\n").nth(1).expect("section"))
        .expect("cluster section")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_without_losing_acknowledged_bookings_and_a_paused_owner_is_shut_out() {
    let nats = NatsCluster::start(false);
    let urls = nats.urls();

    // Node A takes the partition; node B stands by, NOT_SERVING.
    let (mut node_a, metrics_a) = start_node("node-a", &urls, LEASE_TTL);
    let (mut booking_a, mut admin_a) = node_a.clients().await;
    let (node_b, metrics_b) = start_node("node-b", &urls, LEASE_TTL);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(health(&node_b).await, Some(ServingStatus::NotServing as i32), "a standby does not serve");
    let refused = booking_a_hold_through(&node_b, 999).await.expect_err("a standby answers nothing");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    assert_eq!(metric(metrics_a, "antrean_cluster_leases_held").await, 1.0);
    assert_eq!(metric(metrics_b, "antrean_cluster_leases_held").await, 0.0);
    create_office(&mut admin_a, test_office(OFFICE, CAPACITY, 3_600)).await;
    let mut acknowledged = Vec::new();
    for serial in 1..=3 {
        let request = hold_request(OFFICE, 3, applicant(serial));
        let booked = api::hold(&mut booking_a, request.clone()).await;
        acknowledged.push((request, booked));
    }

    // kill -9 of the owner under a burst of holds: B takes over within the lease TTL + 10 s with every acknowledged
    // booking.
    let burst = Burst::start(OFFICE, &[node_a.address.clone(), node_b.address.clone()], BURST_TASKS);
    burst.wait_answered(0, BURST_ANSWERS_BEFORE, BURST_WAIT).await;
    node_a.kill();
    let killed_at = Instant::now();
    let answered_at_kill = burst.answered();
    let mut booking_b = serving_within_lease(&node_b, killed_at).await;
    burst.wait_answered(answered_at_kill, BURST_ANSWERS_AFTER, BURST_WAIT).await;
    let mut burst_acknowledged = burst_answers_are_sound(&burst.finish().await);
    acknowledged_holds_survive(&mut booking_b, &acknowledged).await;
    assert_eq!(metric(metrics_b, "antrean_cluster_leases_held").await, 1.0);
    assert_eq!(metric(metrics_b, "antrean_cluster_failovers_total").await, 1.0);
    assert!(metric(metrics_b, "antrean_cluster_append_seconds_count").await >= 1.0);
    let request = hold_request(OFFICE, 3, applicant(4));
    let booked = api::hold(&mut booking_b, request.clone()).await;
    acknowledged.push((request, booked));
    state_after_failover(&node_b, &urls, &burst_acknowledged).await;

    // SIGSTOP of the owner past its lease, under a burst of holds: C takes over; B, resumed, is shut out.
    let (node_c, metrics_c) = start_node("node-c", &urls, LEASE_TTL);
    let burst = Burst::start(OFFICE, &[node_b.address.clone(), node_c.address.clone()], BURST_TASKS);
    burst.wait_answered(0, BURST_ANSWERS_BEFORE, BURST_WAIT).await;
    let in_flight_request = hold_request(OFFICE, 3, applicant(5));
    let in_flight = {
        let mut client = booking_b.clone();
        let request = in_flight_request.clone();
        tokio::spawn(async move { client.hold(request).await.map(|response| response.into_inner().booking) })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    signal(&node_b, rustix::process::Signal::STOP);
    let stopped_at = Instant::now();
    let answered_at_stop = burst.answered();
    let mut booking_c = serving_within_lease(&node_c, stopped_at).await;
    assert!(stopped_at.elapsed() >= LEASE_TTL, "C served before B's lease could have expired");
    signal(&node_b, rustix::process::Signal::CONT);
    match tokio::time::timeout(Duration::from_secs(10), in_flight).await.expect("the paused owner's call ends") {
        Ok(Ok(answered)) => acknowledged.push((in_flight_request, answered.expect("booking"))),
        Ok(Err(status)) => {
            // Cut off by B's deposition: its outcome is unknown (the batch may have been stored before the pause), so
            // the client retries the same request id with the new owner, which answers from the log or books it now.
            assert_eq!(status.code(), Code::Unavailable, "a call cut off by deposition: {status:?}");
            let answered = api::hold(&mut booking_c, in_flight_request.clone()).await;
            acknowledged.push((in_flight_request, answered));
        }
        Err(error) => panic!("hold task: {error}"),
    }
    burst.wait_answered(answered_at_stop, BURST_ANSWERS_AFTER, BURST_WAIT).await;
    burst_acknowledged.extend(burst_answers_are_sound(&burst.finish().await));
    acknowledged_holds_survive(&mut booking_c, &acknowledged).await;
    state_after_failover(&node_c, &urls, &burst_acknowledged).await;

    let late = booking_a_hold_through(&node_b, 6).await.expect_err("the deposed owner answers nothing");
    assert_eq!(late.code(), Code::Unavailable, "{late:?}");
    assert_eq!(reason(&late).as_deref(), Some("PARTITION_NOT_SERVED"), "{late:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while health(&node_b).await != Some(ServingStatus::NotServing as i32) {
        assert!(Instant::now() < deadline, "the deposed owner still says SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(metrics_b, "antrean_cluster_leases_held").await, 0.0);
    assert_eq!(metric(metrics_b, "antrean_cluster_deposed_total").await, 1.0);
    assert_eq!(metric(metrics_c, "antrean_cluster_failovers_total").await, 1.0);

    // No overbooking: C fills the session to its capacity and not one slot further.
    let mut serial = 100;
    while (acknowledged.len() as u32) < CAPACITY {
        let request = hold_request(OFFICE, 3, applicant(serial));
        let booked = api::hold(&mut booking_c, request.clone()).await;
        acknowledged.push((request, booked));
        serial += 1;
    }
    let full = booking_c.hold(hold_request(OFFICE, 3, applicant(200))).await.expect_err("the session is full");
    assert_eq!(full.code(), Code::FailedPrecondition, "{full:?}");
    let remaining = api::regular_remaining(&mut booking_c, OFFICE, jakarta_date(3), "1300-1500").await;
    assert_eq!(remaining, 0);

    // The partition's log, read back from JetStream: epochs never go back (no late append of a deposed owner stored).
    let config = reader_config(&urls);
    let connection = connect(&config.connect_options()).await.expect("connect");
    let log = OfficeLog::new(&connection, config.log_options());
    let batches = log.replay(&config.partition_id().expect("partition"), 0).await.expect("replay");
    let epochs: Vec<u64> = batches.iter().map(|batch| batch.batch.header.epoch).collect();
    assert!(epochs.windows(2).all(|pair| pair[0] <= pair[1]), "a late append was stored: epochs {epochs:?}");
    let owners = epochs.windows(2).filter(|pair| pair[0] != pair[1]).count() + 1;
    assert_eq!(owners, 3, "A, B and C each wrote the log in turn: epochs {epochs:?}");
    drop(node_b);
}

/// kill -9 of the nats-server leading the partition's stream, under a burst of holds: appends stall while the two
/// servers left elect a leader, then go on (through the same owner, or a standby if the owner lost its lease in the
/// meantime), with no acknowledged booking lost, no session overbooked and the live state equal to the replayed log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_stalls_appends_for_an_election_and_loses_nothing() {
    let mut nats = NatsCluster::start(false);
    let urls = nats.urls();
    // The default lease TTL (10 s) outlasts an election, as in production.
    let lease_ttl = Duration::from_secs(10);
    let (node_a, _) = start_node("node-a", &urls, lease_ttl);
    let (_, mut admin_a) = node_a.clients().await;
    let (node_b, _) = start_node("node-b", &urls, lease_ttl);
    create_office(&mut admin_a, test_office(OFFICE, CAPACITY, 3_600)).await;

    let config = reader_config(&urls);
    let stream = stream_name(stream_index(&config.partition_id().expect("partition"), config.log_streams));
    let burst = Burst::start(OFFICE, &[node_a.address.clone(), node_b.address.clone()], BURST_TASKS);
    burst.wait_answered(0, BURST_ANSWERS_BEFORE, BURST_WAIT).await;
    let leader = nats.stream_leader(&stream).await;
    nats.kill(&leader);
    let answered_at_kill = burst.answered();
    burst.wait_answered(answered_at_kill, BURST_ANSWERS_AFTER, BURST_WAIT).await;
    let acknowledged = burst_answers_are_sound(&burst.finish().await);
    let new_leader = nats.stream_leader(&stream).await;
    assert_ne!(new_leader, leader, "the stream elected another leader");

    let serving = if health(&node_a).await == Some(ServingStatus::Serving as i32) { &node_a } else { &node_b };
    state_after_failover(serving, &nats.urls(), &acknowledged).await;
}
/// A hold for applicant `serial` sent to `server`, whatever it is doing.
async fn booking_a_hold_through(server: &Server, serial: u32) -> Result<proto::Booking, tonic::Status> {
    let channel = Channel::from_shared(format!("http://{}", server.address))
        .expect("uri")
        .connect()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let mut client = BookingServiceClient::new(channel);
    let request = hold_request(OFFICE, 3, applicant(serial));
    client.hold(request).await.map(|response| response.into_inner().booking.expect("booking"))
}
