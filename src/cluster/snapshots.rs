//! [`SnapshotBucket`]: the partitions' snapshots in the JetStream object store bucket [`SNAPSHOT_BUCKET`], so that
//! whichever node takes a partition over finds them.
//!
//! Owns the bucket (created on first use with the cluster's replica count), the naming of its objects and what an
//! object says besides its bytes. It must not interpret a snapshot (the engine's image, opaque here), nor decide which
//! snapshots to keep or when to purge the log (`partition_log.rs` does).
//!
//! # Objects
//!
//! An object is named `<partition>/<position, 20 digits>` (`failover/00000000000000001200`), so a partition's
//! objects sort by position. Its bytes are the engine's image framed exactly as a local snapshot file
//! (`storage::frame_snapshot`: magic, version, position, payload length and crc32c, header crc32c, then the payload).
//! Its metadata holds `replay-from-stream-sequence`: the stream sequence of the log message (batch) that holds the
//! snapshot's position; a replay after the snapshot reads the subject from that message on and skips the records up
//! to the position. The object store's own SHA-256 digest is checked on every read as well.

use super::connect::NatsConnection;
use super::error::{ClusterError, Result};
use crate::domain::OfficeId;
use crate::storage::LogPosition;
use async_nats::jetstream::object_store::{self, ObjectMetadata, ObjectStore};
use async_nats::jetstream::stream::StorageType;
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio_stream::StreamExt;

/// The object store bucket of the partitions' snapshots.
pub const SNAPSHOT_BUCKET: &str = "antrean_snapshots";
/// Largest snapshot object read back: far above any image of a national service's offices (a few hundred MiB), and a
/// bound on what a corrupt object's size could make a take-over allocate.
pub const SNAPSHOT_OBJECT_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;
/// Most objects of one partition looked at in a listing: two are kept, a few more can be left by a node that stopped
/// between storing one and deleting the oldest.
pub const SNAPSHOT_OBJECTS_LISTED_MAX: usize = 64;
/// Longest a store, a listing, a read or a delete may take before it counts as failed (a hung transfer must not stall
/// the snapshot thread or a take-over for good).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts to open the bucket, and the pause between them (10 s in all: a stream's leader election).
const OPEN_ATTEMPTS_MAX: u32 = 40;
const OPEN_RETRY: Duration = Duration::from_millis(250);
/// The metadata key of the stream sequence a replay after the snapshot starts from.
const REPLAY_FROM_KEY: &str = "replay-from-stream-sequence";

/// A snapshot object of a partition, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// The object's name.
    pub name: String,
    /// The log position the snapshot covers.
    pub position: LogPosition,
    /// The stream sequence of the message holding `position`: a replay after the snapshot starts there.
    pub replay_from_stream_sequence: u64,
    /// The object's size in bytes (the framed image).
    pub bytes: u64,
}

/// The snapshot bucket, over one NATS connection.
#[derive(Clone)]
pub struct SnapshotBucket {
    store: ObjectStore,
}

impl std::fmt::Debug for SnapshotBucket {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SnapshotBucket").finish_non_exhaustive()
    }
}

/// The name of `partition`'s snapshot at `position`.
#[must_use]
pub fn snapshot_object_name(partition: &OfficeId, position: LogPosition) -> String {
    format!("{partition}/{:020}", position.0)
}

/// The position in `name` if it names one of `partition`'s snapshots.
fn parse_object_name(partition: &OfficeId, name: &str) -> Option<LogPosition> {
    let digits = name.strip_prefix(partition.as_str())?.strip_prefix('/')?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogPosition)
}

/// `future`, failed as unavailable after [`TRANSFER_TIMEOUT`].
async fn within<T>(what: &str, future: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(TRANSFER_TIMEOUT, future).await.unwrap_or_else(|_| {
        Err(ClusterError::Unavailable { detail: format!("{what}: no answer in {TRANSFER_TIMEOUT:?}") })
    })
}

fn unavailable(what: &str) -> impl Fn(&dyn std::fmt::Display) -> ClusterError + '_ {
    move |error| ClusterError::Unavailable { detail: format!("{what}: {error}") }
}

impl SnapshotBucket {
    /// Opens the bucket, creating it with `replicas` copies if it is missing. Tries a few times: a bucket another node
    /// has just created may not answer until its stream has elected a leader.
    pub async fn open(connection: &NatsConnection, replicas: usize) -> Result<SnapshotBucket> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match SnapshotBucket::open_once(connection, replicas).await {
                Ok(bucket) => return Ok(bucket),
                Err(error) if attempts < OPEN_ATTEMPTS_MAX => {
                    tracing::debug!(%error, "snapshot bucket not ready; trying again");
                    tokio::time::sleep(OPEN_RETRY).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn open_once(connection: &NatsConnection, replicas: usize) -> Result<SnapshotBucket> {
        let store = match connection.jetstream.get_object_store(SNAPSHOT_BUCKET).await {
            Ok(store) => store,
            Err(_) => {
                let config = object_store::Config {
                    bucket: SNAPSHOT_BUCKET.to_owned(),
                    description: Some("antrean: snapshots of each partition, the newest two".to_owned()),
                    storage: StorageType::File,
                    num_replicas: replicas,
                    ..object_store::Config::default()
                };
                connection.jetstream.create_object_store(config).await.map_err(ClusterError::other)?
            }
        };
        Ok(SnapshotBucket { store })
    }

    /// Stores `framed` (a framed image) as `partition`'s snapshot at `position`, replayed after from stream sequence
    /// `replay_from_stream_sequence`. The object is visible to a listing only once all its bytes are stored.
    pub async fn put(
        &self,
        partition: &OfficeId,
        position: LogPosition,
        replay_from_stream_sequence: u64,
        framed: &[u8],
    ) -> Result<StoredSnapshot> {
        let name = snapshot_object_name(partition, position);
        let metadata = ObjectMetadata {
            name: name.clone(),
            description: Some(format!("partition {partition} at log position {}", position.0)),
            metadata: HashMap::from([(REPLAY_FROM_KEY.to_owned(), replay_from_stream_sequence.to_string())]),
            ..ObjectMetadata::default()
        };
        let mut reader = framed;
        within("store the snapshot", async {
            self.store.put(metadata, &mut reader).await.map_err(|error| unavailable("store the snapshot")(&error))
        })
        .await?;
        Ok(StoredSnapshot { name, position, replay_from_stream_sequence, bytes: framed.len() as u64 })
    }

    /// `partition`'s snapshots, oldest first (at most [`SNAPSHOT_OBJECTS_LISTED_MAX`], the newest). An object whose
    /// metadata lacks its replay sequence is left out (logged): it cannot be replayed after.
    pub async fn list(&self, partition: &OfficeId) -> Result<Vec<StoredSnapshot>> {
        let mut snapshots = within("list the snapshots", async {
            let mut listing = self.store.list().await.map_err(|error| unavailable("list the snapshots")(&error))?;
            let mut snapshots = Vec::new();
            while let Some(info) = listing.next().await {
                let info = info.map_err(|error| unavailable("list the snapshots")(&error))?;
                let Some(position) = parse_object_name(partition, &info.name) else { continue };
                let replay_from = info.metadata.get(REPLAY_FROM_KEY).and_then(|sequence| sequence.parse().ok());
                let Some(replay_from_stream_sequence) = replay_from else {
                    tracing::warn!(object = %info.name, "snapshot object without its replay sequence; ignored");
                    continue;
                };
                snapshots.push(StoredSnapshot {
                    name: info.name.clone(),
                    position,
                    replay_from_stream_sequence,
                    bytes: info.size as u64,
                });
            }
            Ok(snapshots)
        })
        .await?;
        snapshots.sort_by_key(|snapshot| snapshot.position);
        let surplus = snapshots.len().saturating_sub(SNAPSHOT_OBJECTS_LISTED_MAX);
        snapshots.drain(..surplus);
        Ok(snapshots)
    }

    /// The bytes of `snapshot` (its framed image), digest-checked by the object store.
    pub async fn load(&self, snapshot: &StoredSnapshot) -> Result<Vec<u8>> {
        if snapshot.bytes > SNAPSHOT_OBJECT_BYTES_MAX {
            return Err(ClusterError::other(format!(
                "snapshot {} is {} bytes, more than {SNAPSHOT_OBJECT_BYTES_MAX}",
                snapshot.name, snapshot.bytes
            )));
        }
        let store = self.store.clone();
        let name = snapshot.name.clone();
        let capacity = usize::try_from(snapshot.bytes).unwrap_or(0);
        // The client's object reader unwraps a failed consumer creation (a panic): read on a task of its own, so such
        // a failure is an error here instead of the end of the take-over's task.
        let reading = tokio::spawn(async move {
            let mut object = store.get(&name).await.map_err(|error| unavailable("read the snapshot")(&error))?;
            let mut bytes = Vec::with_capacity(capacity);
            object.read_to_end(&mut bytes).await.map_err(|error| unavailable("read the snapshot")(&error))?;
            Ok(bytes)
        });
        within("read the snapshot", async { reading.await.map_err(|error| unavailable("read the snapshot")(&error))? })
            .await
    }

    /// Deletes the object `name`.
    pub async fn delete(&self, name: &str) -> Result<()> {
        within("delete a snapshot", async {
            self.store.delete(name).await.map_err(|error| unavailable("delete a snapshot")(&error))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_sort_by_position_and_belong_to_their_partition() {
        let partition = OfficeId::parse("failover").expect("id");
        let name = snapshot_object_name(&partition, LogPosition(1200));

        assert_eq!(name, "failover/00000000000000001200");
        assert_eq!(parse_object_name(&partition, &name), Some(LogPosition(1200)));
        assert!(snapshot_object_name(&partition, LogPosition(99)) < name);
        let other = OfficeId::parse("fail").expect("id");
        assert_eq!(parse_object_name(&other, &name), None, "another partition's prefix");
        assert_eq!(parse_object_name(&partition, "failover/12"), None);
    }
}
