//! Snapshots of a partition in the JetStream object store, on a real 3-server NATS JetStream cluster: the owner,
//! configured to snapshot every few records, stores several snapshots while it books; the bucket keeps at most two of
//! the partition and the subject is purged below the older (a replay from its start is refused as a hole). Then the
//! owner is killed (-9), with a damaged object named as the newest snapshot: the standby skips it, loads the real
//! newest, replays only the records after it (fewer than the log holds), and serves every acknowledged booking;
//! retried request ids return their first answers, and the live state is the one the snapshot and the log after it
//! give.

#[path = "common/api.rs"]
mod api;
#[path = "common/cluster_state.rs"]
mod cluster_state;
mod common;

use antrean::cluster::{
    ClusterConfig, ClusterError, OfficeLog, SnapshotBucket, connect, read_records, snapshot_object_name,
};
use antrean::proto::{self, booking_service_client::BookingServiceClient};
use antrean::storage::LogPosition;
use common::nats::NatsCluster;
use common::{Options, Server, applicant, create_office, hold_request, metric, test_office};
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

const OFFICE: &str = "kanim-snapshots";
const PARTITION: &str = "snapshots";
/// The default lease, so that a loaded test machine does not lose it under the test's calls (with a 3 s lease, 2 of
/// about 50 runs during heavy builds failed on a call that hung to its 60 s server deadline; a lost lease, which leaves
/// a call waiting on the failed log, is the suspect, not proven). The standby waits it out after the kill.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// A snapshot after this many records: a handful of holds each.
const SNAPSHOT_EVERY_RECORDS: u64 = 8;
/// Rounds of holds before the owner is killed, each followed by a snapshot: the third stored makes the owner delete the
/// first and purge the subject.
const ROUNDS: u32 = 4;
/// Holds per round: more records than a snapshot waits for.
const HOLDS_PER_ROUND: u32 = 10;
/// Regular slots of each session: room for every hold over the days booked.
const CAPACITY: u32 = 20;
/// The holds are spread over this many days from tomorrow.
const DAYS: i32 = 3;
/// Generous: snapshots, purges and a take-over on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(120);

/// The configuration of node `name`.
fn node_config(name: &str, urls: &[String]) -> String {
    let urls: Vec<String> = urls.iter().map(|url| format!("\"{url}\"")).collect();
    format!(
        "[server]\nrequest_timeout_ms = 60000\n[storage]\nsnapshot_every_records = {SNAPSHOT_EVERY_RECORDS}\n\
         [cluster]\nnode_name = \"{name}\"\nnats_urls = [{}]\noffices = \"all\"\npartition = \"{PARTITION}\"\n\
         forward_calls = false\nlease_ttl_ms = {}\nlease_renew_every_ms = 2000\nrequest_timeout_ms = 1000\n",
        urls.join(", "),
        LEASE_TTL.as_millis()
    )
}

/// Starts node `name` with its log (at `info`) in `logs`; returns it and its metrics port.
fn start_node(name: &str, urls: &[String], logs: &Path) -> (Server, u16) {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let args = vec![format!("--metrics-listen=127.0.0.1:{metrics_port}")];
    let options = Options { args, config: Some(node_config(name, urls)) };
    let log = logs.join(format!("{name}.log"));
    let server = Server::start_logging(&logs.join(name).join("data"), &options, Some((&log, "info,async_nats=warn")));
    (server, metrics_port)
}

/// The nodes' log lines about snapshots, take-overs and failures, for a failed assertion.
fn node_logs(logs: &Path) -> String {
    let mut lines = String::new();
    for entry in std::fs::read_dir(logs).expect("the logs directory").flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines().filter(|line| {
            ["snapshot", "taken over", "take over", "WARN", "ERROR"].iter().any(|word| line.contains(word))
        }) {
            lines.push_str(&format!("{}: {line}\n", entry.file_name().to_string_lossy()));
        }
    }
    lines
}

/// The `[cluster]` section the test reads the partition with.
fn reader_config(urls: &[String]) -> ClusterConfig {
    toml::from_str(node_config("reader", urls).split("[cluster]\n").nth(1).expect("section")).expect("cluster section")
}

async fn health(server: &Server) -> Option<i32> {
    let channel = Channel::from_shared(format!("http://{}", server.address)).expect("uri").connect().await.ok()?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
    client.check(request).await.ok().map(|response| response.into_inner().status)
}

/// The value of `name{partition="snapshots"}` on the node's `/metrics`.
async fn partition_metric(port: u16, name: &str) -> f64 {
    metric(port, name, &[&format!("partition=\"{PARTITION}\"")]).await
}

/// Waits until `probe` says yes, at most [`PATIENCE`]; shows the nodes' logs (in `logs`) if it never does.
async fn eventually<F, Fut>(what: &str, logs: &Path, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !probe().await {
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}; the nodes said:\n{}", node_logs(logs));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_bound_the_subject_and_a_take_over_starts_from_the_newest_good_one() {
    let nats = NatsCluster::start(false);
    let urls = nats.urls();
    let config = reader_config(&urls);
    let partition = config.partition_id().expect("partition");
    let connection = connect(&config.connect_options()).await.expect("connect");
    let log = OfficeLog::new(&connection, config.log_options());

    let logs = tempfile::tempdir().expect("a directory for the nodes' logs");
    let logs = logs.path();
    let (mut node_a, metrics_a) = start_node("node-a", &urls, logs);
    let (mut booking_a, mut admin_a) = node_a.clients().await;
    let (node_b, metrics_b) = start_node("node-b", &urls, logs);
    create_office(&mut admin_a, test_office(OFFICE, CAPACITY, 3_600)).await;
    let mut acknowledged: Vec<(proto::HoldRequest, proto::Booking)> = Vec::new();
    for round in 1..=ROUNDS {
        for serial in (round - 1) * HOLDS_PER_ROUND + 1..=round * HOLDS_PER_ROUND {
            let days = 1 + (serial as i32 % DAYS);
            let request = proto::HoldRequest {
                account_id: format!("account-{serial}"),
                ..hold_request(OFFICE, days, applicant(serial))
            };
            let booked = api::hold(&mut booking_a, request.clone()).await;
            acknowledged.push((request, booked));
        }
        // The owner stores a snapshot after each round (more often when one is taken in the middle of a round).
        eventually(&format!("snapshot {round} stored"), logs, || async {
            partition_metric(metrics_a, "antrean_cluster_snapshots_stored_total").await >= f64::from(round)
        })
        .await;
    }

    // The bucket keeps two of the partition, and the subject was purged below the older one.
    let bucket = SnapshotBucket::open(&connection, config.replicas as usize).await.expect("the snapshot bucket");
    eventually("at most two snapshots kept", logs, || async {
        bucket.list(&partition).await.expect("list").len() <= 2
    })
    .await;
    assert!(partition_metric(metrics_a, "antrean_cluster_snapshot_bytes").await > 0.0);
    assert!(partition_metric(metrics_a, "antrean_cluster_log_purged_messages_total").await > 0.0);
    let batches = log.replay(&partition, 0).await.expect("read the subject");
    let first = batches.first().expect("the subject holds the log after the older snapshot");
    assert!(first.batch.header.first_position.0 > 1, "the subject was purged: it starts at {:?}", first.batch.header);
    assert!(first.stream_sequence > 1, "the subject's first message moved past sequence 1");
    let from_start = read_records(&log, &partition).await.expect_err("a replay from the start has a hole");
    assert!(matches!(from_start, ClusterError::Gap { .. }), "{from_start}");

    // A damaged object named as the newest snapshot (past the log's end), then kill -9 of the owner: the standby skips
    // the damaged one and starts from the real newest.
    let kept = bucket.list(&partition).await.expect("list");
    let newest = kept.last().expect("a snapshot").clone();
    let written = log.end(&partition).await.expect("the log's end").next_position().0 - 1;
    let damaged_at = LogPosition(written + 1_000);
    bucket.put(&partition, damaged_at, newest.replay_from_stream_sequence, b"not a snapshot").await.expect("put");
    node_a.kill();
    let killed_at = Instant::now();
    eventually("the standby serves", logs, || async { health(&node_b).await == Some(ServingStatus::Serving as i32) })
        .await;
    eprintln!("the standby served {:?} after the kill", killed_at.elapsed());
    let loaded_position = partition_metric(metrics_b, "antrean_cluster_takeover_snapshot_position").await;
    let replayed = partition_metric(metrics_b, "antrean_cluster_takeover_records_replayed").await;
    eprintln!("{written} records written; the standby loaded the snapshot at {loaded_position}, replayed {replayed}");
    assert!(loaded_position >= newest.position.0 as f64, "the newest good snapshot was loaded");
    assert!(loaded_position < damaged_at.0 as f64, "the damaged object was not");
    assert!(replayed < written as f64, "records replayed ({replayed}) < records written ({written})");
    assert!(loaded_position + replayed >= written as f64, "the snapshot and the records after it cover the log");

    // Every acknowledged booking is there; a retried request id gets its first answer; the live state is the snapshot
    // and the log after it.
    let mut booking_b = BookingServiceClient::new(node_b.channel().await);
    for (request, first) in &acknowledged {
        let read = api::get_booking(&mut booking_b, &first.booking_id).await.expect("acknowledged booking readable");
        assert_eq!(read.booking_id, first.booking_id);
        let retried = api::hold(&mut booking_b, request.clone()).await;
        assert_eq!(retried, *first, "a retried request id returns its first answer");
    }
    bucket.delete(&snapshot_object_name(&partition, damaged_at)).await.expect("delete the damaged object");
    let (replayed_book, covered) = cluster_state::replayed_partition(&config).await;
    assert!(covered as u64 >= written, "the snapshot and the log after it cover every record");
    let (mut booking, mut admin) = node_b.clients().await;
    cluster_state::assert_live_state_is_the_replay(&replayed_book, &mut booking, &mut admin, OFFICE, 1..=DAYS).await;
}
