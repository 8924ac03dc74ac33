//! The cluster log: each office's log on NATS JetStream, and the leases that say which node writes it.
//!
//! Owns everything antrean says to NATS: the connection (and its version check), the log streams and the binding of
//! each office's subject (`antrean.log.<office_id>`) to one of them, the batch format of a message, fenced appends,
//! reading an office's log back in order, and one lease per office in a KV bucket. It must not know what a record
//! means (payloads are the engine's encoded events, opaque here) nor decide anything about bookings; it depends on
//! `storage` (the record frame, positions) and `domain` (office ids) only.
//!
//! The engine writes a partition's log through [`JetStreamLog`] (a partition's log is named like an office's, by an
//! id of the same form). The [`Directory`] says which partition serves which office and which node owns each
//! partition now (`grpc/routing/` forwards calls by it). [`NikClaimBucket`] keeps the one cross-partition rule: a NIK's
//! active bookings live in the one partition that holds its claim. [`SnapshotBucket`] keeps each partition's
//! snapshots in the object store, so a take-over replays only the log after the newest one.
//!
//! # Layout
//!
//! - `error.rs`: [`ClusterError`], one variant per thing a caller decides on (fenced, lease lost, unavailable, ...).
//! - `options.rs`: [`NatsConnectOptions`], [`LogOptions`], [`LeaseOptions`].
//! - `connect.rs`: [`connect`] and the nats-server version check (2.11 or later).
//! - `placement.rs`: subject, stream and lease key of an office; a partition's mark in its booking numbers.
//! - `batch.rs`: one message = one batch: header (epoch, first position), then record frames as `storage` frames
//!   them; the message id `office/epoch/first_position`.
//! - `refusal.rs`: JetStream answers to [`ClusterError`], by error code.
//! - `log.rs`: [`OfficeLog`]: streams, fenced appends, the end of a log, replay.
//! - `lease.rs`: [`LeaseBucket`]: acquire, renew, release, holder.
//! - `directory.rs`: [`Directory`], offices to partitions to owners, from [`NodeCard`]s and leases (no I/O).
//! - `directory_watch.rs`: [`keep_directory`]: publishes this node's card in `antrean_nodes`, follows the cards and
//!   the leases with KV watches.
//! - `settings.rs`: [`ClusterConfig`], the `[cluster]` section, validated, and the options it gives.
//! - `nik_hash.rs`: [`NikHasher`], a NIK's claim key: HMAC-SHA256 under the cluster's secret, never the NIK.
//! - `nik_claims.rs`: [`NikClaimBucket`]: take, read, release claims in `antrean_nik_claims`; the secret's source.
//! - `writer.rs`: [`OfficeWriter`]: the lease holder's appends, its fence and next position.
//! - `partition_log.rs`: [`JetStreamLog`], the engine's log on a partition's subject: group commit into fenced
//!   batches, durable on PubAck; keeping snapshots (store, keep two, purge below the older); [`read_records_after`]
//!   for the replay at take-over.
//! - `positions.rs`: [`BatchSequences`], which stream sequence holds which positions (bounded, no I/O).
//! - `continuity.rs`: [`records_after`], the records that continue a snapshot, or the [`Gap`] (no I/O).
//! - `snapshots.rs`: [`SnapshotBucket`], the snapshots in the object store bucket `antrean_snapshots`.

mod batch;
mod connect;
mod continuity;
mod directory;
mod directory_watch;
mod error;
mod lease;
mod log;
mod nik_claims;
mod nik_hash;
mod options;
mod partition_log;
mod placement;
mod positions;
mod refusal;
mod settings;
mod snapshots;
mod writer;

pub use batch::{
    BATCH_FORMAT_VERSION, BATCH_HEADER_BYTES, BATCH_MAGIC, BatchError, BatchHeader, DecodedBatch, decode_batch,
    decode_batch_header, encode_batch, message_id,
};
pub use connect::{NATS_SERVER_VERSION_MIN, NatsConnection, check_server_version, connect};
pub use continuity::{Gap, records_after};
pub use directory::{DIRECTORY_ENTRIES_MAX, Directory, NODE_CARD_BYTES_MAX, NODES_BUCKET, NodeCard};
pub use directory_watch::keep_directory;
pub use error::{ClusterError, Result};
pub use lease::{Lease, LeaseBucket, LeaseHolder, NODE_NAME_BYTES_MAX};
pub use log::{Appended, LogEnd, OfficeLog, ReplayedBatch};
pub use nik_claims::{
    ClaimTaken, NIK_CLAIM_SECRET_BUCKET, NIK_CLAIMS_BUCKET, NikClaimBucket, OwnClaim, nik_claim_secret,
};
pub use nik_hash::{NIK_CLAIM_SECRET_BYTES, NikHasher};
pub use options::{LeaseOptions, LogOptions, NatsConnectOptions, NatsTlsOptions};
pub use partition_log::{
    JetStreamLog, PartitionLogObserver, ReadBack, SnapshotKeeping, read_records, read_records_after,
};
pub use placement::{
    LEASE_BUCKET, LOG_STREAM_PREFIX, LOG_SUBJECT_PREFIX, lease_key, log_subject, partition_mark, stream_index,
    stream_name,
};
pub use positions::{BATCH_SEQUENCES_MAX, BatchSequence, BatchSequences};
pub use refusal::{WRONG_LAST_SEQUENCE, WRONG_LAST_SEQUENCE_IN_FLIGHT, classify_refusal};
pub use settings::{ClusterConfig, NatsTlsConfig, OfficeSelection, OwnedOffices};
pub use snapshots::{
    SNAPSHOT_BUCKET, SNAPSHOT_OBJECT_BYTES_MAX, SNAPSHOT_OBJECTS_LISTED_MAX, SnapshotBucket, StoredSnapshot,
    snapshot_object_name,
};
pub use writer::{OfficeWriter, Written};
