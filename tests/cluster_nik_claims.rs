//! The one cross-office rule in a cluster of two partitions on a real 3-server NATS JetStream cluster: node `west-a`
//! owns partition `west` (office kanim-west), `east-b` owns `east` (kanim-east). An applicant with an active booking
//! in west is refused a hold in east with the rule's own reason, and gets it once the west booking is cancelled; a
//! retried request id still returns its first answer; the claims bucket holds keyed hashes, never a NIK.

#[path = "common/api.rs"]
mod api;
mod common;

use antrean::proto::{self, admin_service_client::AdminServiceClient};
use common::nats::NatsCluster;
use common::{Options, Server, applicant, hold_request, metric, request_id, test_office};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

const WEST: &str = "kanim-west";
const EAST: &str = "kanim-east";
/// Generous: a fresh node's directory, a take-over, or a first connection may take a while on a busy machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// Starts node `name`, serving `partition` with `office`; returns it and its metrics port.
fn start_node(name: &str, partition: &str, office: &str, urls: &[String]) -> (Server, u16) {
    let urls = urls.iter().map(|url| format!("\"{url}\"")).collect::<Vec<_>>().join(", ");
    let config = format!(
        "[server]\nrequest_timeout_ms = 60000\n[cluster]\nnode_name = \"{name}\"\nnats_urls = [{urls}]\n\
         offices = [\"{office}\"]\npartition = \"{partition}\"\nlease_ttl_ms = 3000\nlease_renew_every_ms = 500\n\
         request_timeout_ms = 1000\nnik_claim_reconcile_every_ms = 1000\n"
    );
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let args = vec![format!("--metrics-listen=127.0.0.1:{metrics_port}")];
    (Server::start_with(Options { args, config: Some(config) }), metrics_port)
}

/// Creates `office_id`, retrying while the directory is still learning who owns what.
async fn create_office(admin: &mut AdminServiceClient<Channel>, office_id: &str) {
    let request =
        proto::UpsertOfficeRequest { request_id: request_id("office"), office: Some(test_office(office_id, 6, 3_600)) };
    let deadline = Instant::now() + PATIENCE;
    while let Err(status) = admin.upsert_office(request.clone()).await {
        assert_eq!(status.code(), Code::Unavailable, "create {office_id}: {status:?}");
        assert!(Instant::now() < deadline, "create {office_id}: no answer within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The keys of the claims bucket, read straight from NATS.
async fn claim_keys(urls: &[String]) -> Vec<String> {
    let client = async_nats::connect(urls[0].as_str()).await.expect("connect to NATS");
    let store = async_nats::jetstream::new(client).get_key_value("antrean_nik_claims").await.expect("claims bucket");
    let keys = store.keys().await.expect("keys");
    keys.collect::<Result<Vec<_>, _>>().await.expect("list keys")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applicant_booked_at_one_office_is_refused_at_another_partitions_office_until_the_booking_ends() {
    let nats = NatsCluster::start(false);
    let urls = nats.urls();
    let (west, _) = start_node("west-a", "west", WEST, &urls);
    let (mut booking_west, mut admin_west) = west.clients().await;
    let (east, metrics_east) = start_node("east-b", "east", EAST, &urls);
    let (mut booking_east, mut admin_east) = east.clients().await;
    create_office(&mut admin_west, WEST).await;
    create_office(&mut admin_east, EAST).await;

    // Booked in west; a retry there is its first answer.
    let first = hold_request(WEST, 3, applicant(1));
    let held = api::hold(&mut booking_west, first.clone()).await;
    assert_eq!(api::hold(&mut booking_west, first.clone()).await.booking_id, held.booking_id, "a retry");

    // In east, the same NIK is refused with the rule's own status and reason, saying the booking is elsewhere.
    let refused = booking_east.hold(hold_request(EAST, 3, applicant(1))).await.expect_err("booked in west");
    let metadata = api::expect_reason(&refused, Code::AlreadyExists, "APPLICANT_HAS_BOOKING");
    assert_eq!(metadata.get("booked_elsewhere").map(String::as_str), Some("another_office"), "{metadata:?}");
    assert!(!metadata.contains_key("booking_id"), "west's booking is not east's to tell: {metadata:?}");
    assert!(metric(metrics_east, "antrean_cluster_nik_claims_total", &["outcome=\"refused\""]).await >= 1.0);
    let other = api::hold(&mut booking_east, hold_request(EAST, 3, applicant(2))).await;

    // The bucket names each claim by a keyed hash: never the NIK.
    let keys = claim_keys(&urls).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    for nik in [applicant(1).nik, applicant(2).nik] {
        assert!(keys.iter().all(|key| !key.contains(&nik) && !key.contains(&nik[10..])), "{keys:?} shows {nik}");
    }
    assert!(keys.iter().all(|key| key.len() == 64 && key.bytes().all(|byte| byte.is_ascii_hexdigit())), "{keys:?}");

    // Once the west booking is cancelled, east may book the applicant (and west no longer may).
    // A call by booking id needs the node's directory (it may be elsewhere): until the node has read it once the
    // answer is UNAVAILABLE with a retry hint, which a client retries.
    let deadline = Instant::now() + PATIENCE;
    while let Err(status) = api::cancel(&mut booking_west, &held.booking_id).await {
        assert_eq!(status.code(), Code::Unavailable, "cancel in west: {status:?}");
        assert!(Instant::now() < deadline, "cancel in west: no answer within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let moved = api::hold(&mut booking_east, hold_request(EAST, 4, applicant(1))).await;
    assert_eq!(moved.office_id, EAST);
    let back = booking_west.hold(hold_request(WEST, 5, applicant(1))).await.expect_err("booked in east now");
    api::expect_reason(&back, Code::AlreadyExists, "APPLICANT_HAS_BOOKING");

    // The first west request, retried, still answers as it first did (its booking, now cancelled), claim or not.
    let retried = api::hold(&mut booking_west, first).await;
    assert_eq!(
        (retried.booking_id.as_str(), retried.state),
        (held.booking_id.as_str(), proto::BookingState::Cancelled as i32)
    );
    assert_ne!(other.booking_id, moved.booking_id);
    drop((west, east));
}
