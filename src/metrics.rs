//! Metric names, in one place, and the exporter set-up.
//!
//! Conventions (Prometheus): `antrean_` prefix, base units in the name, counters end in `_total`, labels from closed
//! sets only (method, code, office id from the catalogue, outcome); never a booking id, applicant or date.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::net::SocketAddr;

/// RPCs answered, by `method` and gRPC `code`.
pub const GRPC_REQUESTS_TOTAL: &str = "antrean_grpc_requests_total";
/// RPC latency, by `method`.
pub const GRPC_REQUEST_DURATION_SECONDS: &str = "antrean_grpc_request_duration_seconds";
/// RPCs refused for overload before any work, by `method` and `reason`.
pub const GRPC_REQUESTS_SHED_TOTAL: &str = "antrean_grpc_requests_shed_total";
/// RPCs being served.
pub const GRPC_IN_FLIGHT_REQUESTS: &str = "antrean_grpc_in_flight_requests";
/// Hold attempts, by `office` and `outcome`.
pub const HOLDS_TOTAL: &str = "antrean_holds_total";
/// Payments, by `office` and `outcome` (`confirmed`, `honoured_in_grace`, `revived`, `repeated`, `refused_expired`,
/// `duplicate`, `refused_refunded`, `refused`).
pub const PAYMENTS_TOTAL: &str = "antrean_payments_total";
/// Cancellations, by `office`.
pub const CANCELLATIONS_TOTAL: &str = "antrean_cancellations_total";
/// Expired holds, by `office`.
pub const EXPIRIES_TOTAL: &str = "antrean_expiries_total";
/// Confirmed bookings not checked in by the end of their session, by `office`.
pub const NO_SHOWS_TOTAL: &str = "antrean_no_shows_total";
/// Check-ins, by `office`.
pub const CHECK_INS_TOTAL: &str = "antrean_check_ins_total";
/// Reschedules, by `office`.
pub const RESCHEDULES_TOTAL: &str = "antrean_reschedules_total";
/// Counter: amendments by office and outcome (`amended`, `repeated`, or the refusal's label, e.g.
/// `amendment_pool_full`, `amendment_not_allowed`, `invalid`).
pub const AMENDMENTS_TOTAL: &str = "antrean_amendments_total";
/// Duration of one background pass, by `pass` (`tick`, `gauges`, `snapshot`): the ticker's expiries, no-shows,
/// request forgetting and waiting-room steps; the gauge pass; one snapshot.
pub const BACKGROUND_PASS_SECONDS: &str = "antrean_background_pass_seconds";
/// Time the quota book held every shard lock at once, by `operation` (`admin`, `forget_requests`, `capture`): while
/// it lasts no request can change anything.
pub const ALL_SHARDS_LOCKED_SECONDS: &str = "antrean_all_shards_locked_seconds";
/// Refunds recorded (a payment that came too late, twice, or for a cancelled booking), by `office` and `reason`
/// (`payment_expired`, `duplicate_payment`, `cancelled`).
pub const REFUNDS_RECORDED_TOTAL: &str = "antrean_refunds_recorded_total";
/// Free slots on dates with bookings, by `office`.
pub const SLOTS_REMAINING: &str = "antrean_slots_remaining";
/// Holds awaiting payment, by `office`.
pub const HOLDS_ACTIVE: &str = "antrean_holds_active";
/// Tickets in waiting rooms, by `office` and `state` (waiting, admitted).
pub const WAITING_ROOM_TICKETS: &str = "antrean_waiting_room_tickets";
/// Tickets admitted from waiting rooms, by `office`.
pub const WAITING_ROOM_ADMISSIONS_TOTAL: &str = "antrean_waiting_room_admissions_total";
/// Time waited in a waiting room until admission, by `office`.
pub const WAITING_ROOM_WAIT_SECONDS: &str = "antrean_waiting_room_wait_seconds";
/// Time from append to durable, per call.
pub const WAL_APPEND_SECONDS: &str = "antrean_wal_append_seconds";
/// fdatasync latency.
pub const WAL_FSYNC_SECONDS: &str = "antrean_wal_fsync_seconds";
/// Records per group commit.
pub const WAL_BATCH_RECORDS: &str = "antrean_wal_batch_records";
/// Bytes written to the log.
pub const WAL_BYTES_TOTAL: &str = "antrean_wal_bytes_total";
/// 1 once the log has failed.
pub const WAL_FAILED: &str = "antrean_wal_failed";
/// Snapshot duration.
pub const SNAPSHOT_DURATION_SECONDS: &str = "antrean_snapshot_duration_seconds";
/// Size of the last snapshot.
pub const SNAPSHOT_BYTES: &str = "antrean_snapshot_bytes";
/// When the last snapshot succeeded.
pub const SNAPSHOT_LAST_SUCCESS_TIMESTAMP_SECONDS: &str = "antrean_snapshot_last_success_timestamp_seconds";
/// How long recovery took at start.
pub const RECOVERY_DURATION_SECONDS: &str = "antrean_recovery_duration_seconds";
/// Log records replayed at start.
pub const RECOVERY_RECORDS_REPLAYED: &str = "antrean_recovery_records_replayed";
/// Free bytes on the data directory's file system.
pub const DATA_DIR_FREE_BYTES: &str = "antrean_data_dir_free_bytes";
/// Size of the data directory's file system.
pub const DATA_DIR_TOTAL_BYTES: &str = "antrean_data_dir_total_bytes";
/// 1 when serving.
pub const READY: &str = "antrean_ready";
/// Seconds since start.
pub const UPTIME_SECONDS: &str = "antrean_uptime_seconds";
/// Always 1, labelled with `version`.
pub const BUILD_INFO: &str = "antrean_build_info";
/// Calls refused by authentication or authorization, by `reason` (`missing_credentials`, `invalid_token`,
/// `unknown_certificate`, `role`, `office`).
pub const AUTH_REFUSALS_TOTAL: &str = "antrean_auth_refusals_total";
/// Holds refused by an anti-hoarding limit, by `scope` (`caller`, `account`, `applicant`, `tracked_keys`,
/// `session_share`).
pub const HOARDING_REFUSALS_TOTAL: &str = "antrean_hoarding_refusals_total";
/// Holds that left a caller, account or applicant at 80% or more of an anti-hoarding limit, by `scope` (as above, but
/// `tracked_keys`): callers near their share of a session show up as `scope="session_share"`.
pub const HOARDING_NEAR_LIMIT_TOTAL: &str = "antrean_hoarding_near_limit_total";

/// Cluster mode: partitions whose lease this node holds and serves (0 or 1 today), by `partition`.
pub const CLUSTER_LEASES_HELD: &str = "antrean_cluster_leases_held";
/// Cluster mode: lease renewals, by `partition` and `outcome` (`renewed`, `unavailable`, `lost`).
pub const CLUSTER_LEASE_RENEWALS_TOTAL: &str = "antrean_cluster_lease_renewals_total";
/// Cluster mode: appends refused by the fence (another node wrote the partition's log since), by `partition`.
pub const CLUSTER_FENCED_REFUSALS_TOTAL: &str = "antrean_cluster_fenced_refusals_total";
/// Cluster mode: time from a batch's first send to its PubAck, by `partition`.
pub const CLUSTER_APPEND_SECONDS: &str = "antrean_cluster_append_seconds";
/// Cluster mode: take-overs by this node of a partition another owner had written, by `partition`.
pub const CLUSTER_FAILOVERS_TOTAL: &str = "antrean_cluster_failovers_total";
/// Cluster mode: times this node stopped serving a partition it owned (lease lost or append fenced), by `partition`.
pub const CLUSTER_DEPOSED_TOTAL: &str = "antrean_cluster_deposed_total";
/// Calls this node forwarded to another node, by `target` (node name) and `outcome` (ok, not_found, unavailable,
/// unreachable, deadline, refused, denied, exhausted, error).
pub const CLUSTER_FORWARDED_CALLS_TOTAL: &str = "antrean_cluster_forwarded_calls_total";
/// NIK claims by partition and outcome: `created`, `refused` (another partition has it), `released` (its NIK's last
/// active booking ended), `reconciled` (given back by the reconciler), `unavailable` (the bucket did not answer), `conflict` (a late payment
/// revived a booking whose NIK another partition claims).
pub const CLUSTER_NIK_CLAIMS_TOTAL: &str = "antrean_cluster_nik_claims_total";
/// Node cards this node's cluster directory knows.
pub const CLUSTER_DIRECTORY_NODES: &str = "antrean_cluster_directory_nodes";
/// Partitions this node's cluster directory knows.
pub const CLUSTER_DIRECTORY_PARTITIONS: &str = "antrean_cluster_directory_partitions";
/// Partitions with a live owner, as this node's cluster directory sees them.
pub const CLUSTER_DIRECTORY_OWNED_PARTITIONS: &str = "antrean_cluster_directory_owned_partitions";

/// Cluster mode: snapshots of a partition stored in the object store by this node, by `partition`.
pub const CLUSTER_SNAPSHOTS_STORED_TOTAL: &str = "antrean_cluster_snapshots_stored_total";
/// Cluster mode: bytes of the last snapshot object this node stored (framed image), by `partition`.
pub const CLUSTER_SNAPSHOT_BYTES: &str = "antrean_cluster_snapshot_bytes";
/// Cluster mode: messages of a partition's subject purged below its older kept snapshot, by `partition`.
pub const CLUSTER_LOG_PURGED_MESSAGES_TOTAL: &str = "antrean_cluster_log_purged_messages_total";
/// Cluster mode: log records this node replayed at its last take-over of a partition, after the snapshot it loaded
/// (from the first record without one), by `partition`.
pub const CLUSTER_TAKEOVER_RECORDS_REPLAYED: &str = "antrean_cluster_takeover_records_replayed";
/// Cluster mode: log position of the snapshot this node loaded at its last take-over of a partition (0: none, the
/// subject was replayed from its start), by `partition`.
pub const CLUSTER_TAKEOVER_SNAPSHOT_POSITION: &str = "antrean_cluster_takeover_snapshot_position";

/// Histogram buckets in seconds: 50 µs to 10 s, for everything from an in-memory refusal to a slow disk.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Buckets for records per batch.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

/// Starts the Prometheus exporter on `listen` (serving `/metrics`) and describes every metric.
pub fn install_exporter(listen: SocketAddr) -> Result<(), metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(WAL_BATCH_RECORDS.into()), BATCH_BUCKETS)?
        .install()?;
    describe();
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(())
}

fn describe() {
    describe_counter!(GRPC_REQUESTS_TOTAL, "RPCs answered, by method and gRPC code");
    describe_histogram!(GRPC_REQUEST_DURATION_SECONDS, Unit::Seconds, "RPC latency by method");
    describe_counter!(GRPC_REQUESTS_SHED_TOTAL, "RPCs refused for overload, by method and reason");
    describe_gauge!(GRPC_IN_FLIGHT_REQUESTS, "RPCs being served");
    describe_counter!(HOLDS_TOTAL, "Hold attempts by office and outcome");
    describe_counter!(PAYMENTS_TOTAL, "Payments by office and outcome");
    describe_counter!(CANCELLATIONS_TOTAL, "Cancellations by office");
    describe_counter!(EXPIRIES_TOTAL, "Holds expired unpaid, by office");
    describe_counter!(CHECK_INS_TOTAL, "Check-ins by office");
    describe_counter!(RESCHEDULES_TOTAL, "Reschedules by office");
    describe_counter!(AMENDMENTS_TOTAL, "Amendments by office and outcome (amended, repeated, or why refused)");
    describe_counter!(NO_SHOWS_TOTAL, "Confirmed bookings not checked in by the end of their session, by office");
    describe_counter!(REFUNDS_RECORDED_TOTAL, "Refunds recorded, by office and reason");
    describe_gauge!(SLOTS_REMAINING, "Free slots on dates with bookings, by office");
    describe_gauge!(HOLDS_ACTIVE, "Holds awaiting payment, by office");
    describe_gauge!(WAITING_ROOM_TICKETS, "Tickets in waiting rooms, by office and state");
    describe_counter!(WAITING_ROOM_ADMISSIONS_TOTAL, "Tickets admitted from waiting rooms, by office");
    describe_histogram!(WAITING_ROOM_WAIT_SECONDS, Unit::Seconds, "Time in a waiting room until admission, by office");
    describe_histogram!(WAL_APPEND_SECONDS, Unit::Seconds, "Time from log append to durable");
    describe_histogram!(WAL_FSYNC_SECONDS, Unit::Seconds, "fdatasync latency");
    describe_histogram!(WAL_BATCH_RECORDS, "Records per group commit");
    describe_counter!(WAL_BYTES_TOTAL, Unit::Bytes, "Bytes written to the log");
    describe_gauge!(WAL_FAILED, "1 once the log has failed");
    describe_histogram!(BACKGROUND_PASS_SECONDS, Unit::Seconds, "Duration of one background pass, by pass");
    describe_histogram!(
        ALL_SHARDS_LOCKED_SECONDS,
        Unit::Seconds,
        "Time every shard lock was held at once (no request can change state meanwhile), by operation"
    );
    describe_histogram!(SNAPSHOT_DURATION_SECONDS, Unit::Seconds, "Snapshot duration");
    describe_gauge!(SNAPSHOT_BYTES, Unit::Bytes, "Size of the last snapshot payload");
    describe_gauge!(SNAPSHOT_LAST_SUCCESS_TIMESTAMP_SECONDS, Unit::Seconds, "When the last snapshot succeeded");
    describe_gauge!(RECOVERY_DURATION_SECONDS, Unit::Seconds, "Recovery duration at start");
    describe_gauge!(RECOVERY_RECORDS_REPLAYED, "Log records replayed at start");
    describe_gauge!(DATA_DIR_FREE_BYTES, Unit::Bytes, "Free bytes on the data directory's file system");
    describe_gauge!(DATA_DIR_TOTAL_BYTES, Unit::Bytes, "Size of the data directory's file system");
    describe_gauge!(READY, "1 when serving");
    describe_gauge!(CLUSTER_LEASES_HELD, "Partitions this node holds the lease of and serves");
    describe_counter!(CLUSTER_LEASE_RENEWALS_TOTAL, "Lease renewals by partition and outcome");
    describe_counter!(CLUSTER_FENCED_REFUSALS_TOTAL, "Appends refused by the fence, by partition");
    describe_histogram!(CLUSTER_APPEND_SECONDS, Unit::Seconds, "Partition log append to PubAck");
    describe_counter!(CLUSTER_FAILOVERS_TOTAL, "Take-overs of a partition another node had owned");
    describe_counter!(CLUSTER_DEPOSED_TOTAL, "Times this node stopped serving a partition it owned");
    describe_counter!(CLUSTER_FORWARDED_CALLS_TOTAL, "Calls forwarded to another node, by target node and outcome");
    describe_counter!(CLUSTER_NIK_CLAIMS_TOTAL, "NIK claims created, refused, released, reconciled, by partition");
    describe_gauge!(CLUSTER_DIRECTORY_NODES, "Node cards in this node's cluster directory");
    describe_gauge!(CLUSTER_DIRECTORY_PARTITIONS, "Partitions in this node's cluster directory");
    describe_gauge!(
        CLUSTER_DIRECTORY_OWNED_PARTITIONS,
        "Partitions with a live owner in this node's cluster directory"
    );
    describe_counter!(CLUSTER_SNAPSHOTS_STORED_TOTAL, "Partition snapshots stored in the object store");
    describe_gauge!(CLUSTER_SNAPSHOT_BYTES, Unit::Bytes, "Size of the last partition snapshot object stored");
    describe_counter!(CLUSTER_LOG_PURGED_MESSAGES_TOTAL, "Partition log messages purged below the older snapshot");
    describe_gauge!(CLUSTER_TAKEOVER_RECORDS_REPLAYED, "Log records replayed after the snapshot at the last take-over");
    describe_gauge!(CLUSTER_TAKEOVER_SNAPSHOT_POSITION, "Position of the snapshot loaded at the last take-over");
    describe_gauge!(UPTIME_SECONDS, Unit::Seconds, "Seconds since start");
    describe_gauge!(BUILD_INFO, "Always 1, labelled with the version");
    describe_counter!(
        AUTH_REFUSALS_TOTAL,
        "Calls refused by authentication or authorization, by reason (booking_not_visible is answered NOT_FOUND)"
    );
    describe_counter!(HOARDING_REFUSALS_TOTAL, "Holds refused by an anti-hoarding limit, by scope");
    describe_counter!(
        HOARDING_NEAR_LIMIT_TOTAL,
        "Holds that left a caller, account or applicant at 80% or more of an anti-hoarding limit, by scope"
    );
}

/// Turns the log writer's batch reports into metrics.
pub struct WalMetrics;

impl crate::storage::WalObserver for WalMetrics {
    fn batch_written(&self, records: u32, bytes: u64, _write_nanos: u64, fsync_nanos: u64) {
        metrics::histogram!(WAL_BATCH_RECORDS).record(f64::from(records));
        metrics::counter!(WAL_BYTES_TOTAL).increment(bytes);
        if fsync_nanos > 0 {
            metrics::histogram!(WAL_FSYNC_SECONDS).record(fsync_nanos as f64 / 1e9);
        }
    }

    fn deferred_sync(&self, fsync_nanos: u64) {
        metrics::histogram!(WAL_FSYNC_SECONDS).record(fsync_nanos as f64 / 1e9);
    }
}
