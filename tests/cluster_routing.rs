//! Routing in a cluster of two partitions on a real 3-server NATS JetStream cluster: node `west-a` owns partition
//! `west` (office kanim-west), `east-b` owns `east` (kanim-east), `west-c` stands by for `west`. Every node serves the
//! whole API: calls through a node that does not own an office are forwarded to its owner (and land there), a retried
//! request id returns its first answer through any node, lists gather both partitions, and when the owner of `west` is
//! killed, calls through the other nodes are UNAVAILABLE with a retry hint until the standby takes over, then succeed.

#[path = "common/api.rs"]
mod api;
mod common;

use antrean::cluster::partition_mark;
use antrean::domain::BookingId;
use antrean::proto::{self, admin_service_client::AdminServiceClient, booking_service_client::BookingServiceClient};
use common::nats::NatsCluster;
use common::{Options, Server, applicant, hold_request, metric, reason, request_id, test_office};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const WEST: &str = "kanim-west";
const EAST: &str = "kanim-east";
const LEASE_TTL: Duration = Duration::from_secs(3);
/// Generous: the directory of a fresh node, a take-over, or a first connection may take a while on a busy machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// The configuration of node `name`, serving `partition` with `offices`.
fn config(name: &str, partition: &str, offices: &[&str], urls: &[String]) -> String {
    let quoted = |items: &[&str]| items.iter().map(|item| format!("\"{item}\"")).collect::<Vec<_>>().join(", ");
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    format!(
        "[server]\nrequest_timeout_ms = 60000\n[cluster]\nnode_name = \"{name}\"\nnats_urls = [{}]\n\
         offices = [{}]\npartition = \"{partition}\"\nforward_calls = true\nlease_ttl_ms = {}\n\
         lease_renew_every_ms = 500\nrequest_timeout_ms = 1000\n",
        quoted(&urls),
        quoted(offices),
        LEASE_TTL.as_millis()
    )
}

/// Starts node `name`; returns it and its metrics port.
fn start_node(name: &str, partition: &str, offices: &[&str], urls: &[String]) -> (Server, u16) {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let args = vec![format!("--metrics-listen=127.0.0.1:{metrics_port}")];
    (Server::start_with(Options { args, config: Some(config(name, partition, offices, urls)) }), metrics_port)
}

/// A channel to `server`, serving or not (a standby says NOT_SERVING but routes).
async fn connect(server: &Server) -> Channel {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(channel) = Channel::from_shared(format!("http://{}", server.address)).expect("uri").connect().await {
            return channel;
        }
        assert!(Instant::now() < deadline, "cannot connect to {}", server.address);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A request marked as forwarded: the node answers it from its own partition only, never sending it on. This is how
/// the test asks "does this node itself hold it?".
fn answered_here<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("antrean-forwarded-by", "test".parse().expect("metadata"));
    request
}

/// Repeats `call` until it succeeds; every failure on the way must be UNAVAILABLE with a retry hint. Returns the
/// answer and how many failures there were.
async fn until_answered<T, F, Fut>(what: &str, mut call: F) -> (T, usize)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + PATIENCE;
    let mut failures = 0;
    loop {
        match call().await {
            Ok(answer) => return (answer, failures),
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
                assert!(status.get_details_retry_info().is_some(), "{what}: no retry hint in {status:?}");
                failures += 1;
            }
        }
        assert!(Instant::now() < deadline, "{what}: no answer within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_office_through(admin: &mut AdminServiceClient<Channel>, office_id: &str) {
    let request =
        proto::UpsertOfficeRequest { request_id: request_id("office"), office: Some(test_office(office_id, 6, 3_600)) };
    // The node may have read the directory before the owner's node published its card (both start at once): until
    // that card arrives the office is in no partition it knows of. Wait for it, then create.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let Err(status) = admin.clone().upsert_office(request.clone()).await else { return };
        let card_missing =
            status.code() == Code::FailedPrecondition && reason(&status).as_deref() == Some("OFFICE_NOT_IN_CLUSTER");
        if !card_missing {
            break;
        }
        assert!(Instant::now() < deadline, "{office_id} never found its partition: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until_answered("create the office (the directory may still be learning)", || {
        let mut admin = admin.clone();
        let request = request.clone();
        async move { admin.upsert_office(request).await }
    })
    .await;
}

/// The test's offices `booking` lists: gathered from every partition, or with `here` only the node's own partition's.
async fn office_ids(booking: &mut BookingServiceClient<Channel>, here: bool) -> Vec<String> {
    let request = proto::ListOfficesRequest {};
    let request = if here { answered_here(request) } else { tonic::Request::new(request) };
    let listed = booking.list_offices(request).await.expect("list offices").into_inner();
    let mut ids: Vec<String> = listed.offices.into_iter().map(|office| office.office_id).collect();
    ids.retain(|id| id == WEST || id == EAST);
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_every_office_by_forwarding_and_a_killed_owners_calls_resume_on_its_standby() {
    let nats = NatsCluster::start(false);
    let urls = nats.urls();
    let (mut west_a, _) = start_node("west-a", "west", &[WEST], &urls);
    let (mut booking_a, mut admin_a) = west_a.clients().await;
    let (east_b, metrics_b) = start_node("east-b", "east", &[EAST], &urls);
    let (mut booking_b, mut admin_b) = east_b.clients().await;
    let (west_c, _) = start_node("west-c", "west", &[WEST], &urls);
    let channel_c = connect(&west_c).await;
    let mut booking_c = BookingServiceClient::new(channel_c);

    // Each office is created through the node that does not own it, and lands in its owner.
    create_office_through(&mut admin_b, WEST).await;
    create_office_through(&mut admin_a, EAST).await;
    assert_eq!(office_ids(&mut booking_a, true).await, [WEST], "west's office is in west-a");
    assert_eq!(office_ids(&mut booking_b, true).await, [EAST], "east's office is in east-b");
    let nowhere = proto::UpsertOfficeRequest {
        request_id: request_id("office"),
        office: Some(test_office("kanim-nowhere", 6, 3_600)),
    };
    let refused = admin_a.upsert_office(nowhere).await.expect_err("no partition serves kanim-nowhere");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused).as_deref(), Some("OFFICE_NOT_IN_CLUSTER"));

    // Hold, read and pay for a west booking through east-b; it lives in west-a.
    let request = hold_request(WEST, 3, applicant(1));
    let held = api::hold(&mut booking_b, request.clone()).await;
    let read = api::get_booking(&mut booking_b, &held.booking_id).await.expect("read through east-b");
    assert_eq!(read.booking_id, held.booking_id);
    let paid = api::pay(&mut booking_b, &held.booking_id, "SIMPONI-1").await.expect("pay through east-b");
    let confirmed = paid.booking.expect("booking").state;
    let get = proto::GetBookingRequest { booking_id: held.booking_id.clone() };
    let in_owner = booking_a.get_booking(answered_here(get.clone())).await.expect("west-a holds the booking");
    assert_eq!(in_owner.into_inner().booking.expect("booking").state, confirmed, "paid in the owner");
    let not_in_b = booking_b.get_booking(answered_here(get.clone())).await.expect_err("east-b does not hold it");
    assert_eq!(not_in_b.code(), Code::NotFound);

    // A retried request id returns its first answer, through the owner or another node; the standby forwards too.
    assert_eq!(api::hold(&mut booking_a, request.clone()).await.booking_id, held.booking_id);
    let (through_c, _) = until_answered("retry the hold through west-c (its directory may still be loading)", || {
        let mut booking = booking_c.clone();
        let request = request.clone();
        async move { booking.hold(request).await }
    })
    .await;
    assert_eq!(through_c.into_inner().booking.expect("booking").booking_id, held.booking_id);
    let through_standby = api::get_booking(&mut booking_c, &held.booking_id).await.expect("read through west-c");
    assert_eq!(through_standby.state, confirmed);
    let east_held = api::hold(&mut booking_a, hold_request(EAST, 3, applicant(2))).await;
    assert_eq!(api::get_booking(&mut booking_c, &east_held.booking_id).await.expect("east's booking").office_id, EAST);
    // Booking ids carry their partition's mark, so a call by booking id asks that partition first.
    let mark = |id: &str| BookingId::parse(id).expect("a booking id").prefix();
    assert_eq!(mark(&held.booking_id), partition_mark("west"), "{}", held.booking_id);
    assert_eq!(mark(&east_held.booking_id), partition_mark("east"), "{}", east_held.booking_id);

    // Lists gather both partitions, through any node.
    for booking in [&mut booking_a, &mut booking_b, &mut booking_c] {
        assert_eq!(office_ids(booking, false).await, [EAST, WEST]);
    }
    let nik = applicant(1).nik;
    let found = booking_b.find_bookings(proto::FindBookingsRequest { nik }).await.expect("find").into_inner();
    assert_eq!(
        found.bookings.iter().map(|booking| booking.booking_id.as_str()).collect::<Vec<_>>(),
        [held.booking_id.as_str()]
    );

    // What an SRE sees on east-b: calls it forwarded to west-a, and a directory of 3 nodes in 2 partitions, both owned.
    let forwarded =
        metric(metrics_b, "antrean_cluster_forwarded_calls_total", &["target=\"west-a\"", "outcome=\"ok\""]);
    assert!(forwarded.await >= 3.0, "hold, read and pay were forwarded");
    api::poll(PATIENCE, "east-b's directory gauges", || async {
        let nodes = metric(metrics_b, "antrean_cluster_directory_nodes", &[]).await;
        let partitions = metric(metrics_b, "antrean_cluster_directory_partitions", &[]).await;
        let owned = metric(metrics_b, "antrean_cluster_directory_owned_partitions", &[]).await;
        (nodes, partitions, owned).eq(&(3.0, 2.0, 2.0)).then_some(())
    })
    .await;

    // kill -9 of west's owner: calls for west through east-b are UNAVAILABLE with a retry hint until west-c has taken
    // over, then answered, with every acknowledged change.
    west_a.kill();
    let (after, failures) = until_answered("read west's booking through east-b after the kill", || {
        let mut booking = booking_b.clone();
        let id = held.booking_id.clone();
        async move { api::get_booking(&mut booking, &id).await }
    })
    .await;
    assert!(failures >= 1, "the owner was killed: at least the first call finds nobody to answer it");
    assert_eq!(after.state, confirmed, "the standby serves the paid booking");
    let (retried, _) = until_answered("retry the hold through east-b", || {
        let mut booking = booking_b.clone();
        let request = request.clone();
        async move { booking.hold(request).await }
    })
    .await;
    assert_eq!(retried.into_inner().booking.expect("booking").booking_id, held.booking_id, "its first answer");
    let newer = api::hold(&mut booking_b, hold_request(WEST, 3, applicant(3))).await;
    let in_standby = booking_c.get_booking(answered_here(proto::GetBookingRequest { booking_id: newer.booking_id }));
    assert!(in_standby.await.is_ok(), "the new owner, west-c, holds the new booking");
    drop(nats);
}
