//! [`LeaseBucket`]: one lease per office in a JetStream KV bucket, so at most one node owns an office at a time.
//!
//! A node takes an office by creating the office's key (it fails while another node's lease lives); the revision it
//! gets is its **epoch**. It renews every `renew_every` by updating the key with the revision it last wrote, so a
//! renewal succeeds only if nobody wrote the key since. The bucket's `max_age` is the TTL: a lease not renewed for
//! that long disappears and another node can create it. A deposed holder learns it on its next renewal (the revision
//! moved on, or the key is gone) or on its next append (fenced, see `log.rs`). Leases are decided by the bucket
//! stream's leader, so they are as safe as the fence (nats-server 2.11 or later, checked at connect).

use super::connect::NatsConnection;
use super::error::{ClusterError, Result};
use super::options::LeaseOptions;
use super::placement::{LEASE_BUCKET, lease_key};
use crate::domain::OfficeId;
use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use async_nats::jetstream::stream::StorageType;
use std::time::{Duration, Instant};

/// Longest node name written into a lease.
pub const NODE_NAME_BYTES_MAX: usize = 64;
/// Largest message in the lease bucket. A value is a node name (at most [`NODE_NAME_BYTES_MAX`]), but the server
/// counts headers too, and a release (a delete with its expected revision) carries more header bytes than that: a
/// limit of 64 refused every release, so a node shutting down left its lease to expire instead of freeing it.
const LEASE_MESSAGE_BYTES_MAX: i32 = 1_024;

/// A lease this node holds on one office.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The office.
    pub office: OfficeId,
    /// The revision that created the lease: the holder's epoch, written into every batch it appends.
    pub epoch: u64,
    /// The revision of the holder's last write (creation or renewal): the next renewal must find it unchanged.
    pub revision: u64,
    /// When the last successful write was sent (taken before sending, so the lease is never thought younger than it
    /// is).
    pub written_at: Instant,
}

impl Lease {
    /// Whether the holder may still act as the office's owner at `now`: only until the TTL less one renewal period
    /// has passed since its last successful write, so it stops before anyone else can have taken over (another node
    /// can create the key only once the TTL has passed since that write reached the server, which is later still).
    #[must_use]
    pub fn may_serve(&self, options: &LeaseOptions, now: Instant) -> bool {
        now.saturating_duration_since(self.written_at) < options.serve_for()
    }

    /// How long until the lease is due for renewal at `now` (zero when overdue).
    #[must_use]
    pub fn renew_in(&self, options: &LeaseOptions, now: Instant) -> Duration {
        options.renew_every.saturating_sub(now.saturating_duration_since(self.written_at))
    }
}

/// Who holds an office's lease, as the bucket says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseHolder {
    /// The holder's node name.
    pub node_name: String,
    /// The lease's current revision.
    pub revision: u64,
}

/// The leases of a cluster, as seen from one node.
#[derive(Clone)]
pub struct LeaseBucket {
    store: kv::Store,
    node_name: String,
    options: LeaseOptions,
}

impl std::fmt::Debug for LeaseBucket {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LeaseBucket")
            .field("node_name", &self.node_name)
            .field("options", &self.options)
            .finish()
    }
}

impl LeaseBucket {
    /// Opens the lease bucket, creating it (with `replicas` copies and the TTL as `max_age`) if it is missing. An
    /// existing bucket with another TTL is refused: nodes must agree on when a lease expires.
    pub async fn open(
        connection: &NatsConnection,
        node_name: &str,
        options: LeaseOptions,
        replicas: usize,
    ) -> Result<LeaseBucket> {
        let config = kv::Config {
            bucket: LEASE_BUCKET.to_owned(),
            description: "antrean: one lease per office; the creating revision is the owner's epoch".to_owned(),
            history: 1,
            max_age: options.ttl,
            max_value_size: LEASE_MESSAGE_BYTES_MAX,
            storage: StorageType::File,
            num_replicas: replicas,
            ..kv::Config::default()
        };
        let store = match connection.jetstream.get_key_value(LEASE_BUCKET).await {
            Ok(store) => store,
            Err(_) => connection.jetstream.create_key_value(config).await.map_err(ClusterError::other)?,
        };
        let mut stream =
            connection.jetstream.get_stream(format!("KV_{LEASE_BUCKET}")).await.map_err(ClusterError::other)?;
        let stream_config = stream.info().await.map_err(ClusterError::other)?.config.clone();
        let max_age = stream_config.max_age;
        if stream_config.max_message_size < LEASE_MESSAGE_BYTES_MAX {
            // A bucket made by an earlier version refuses releases (see LEASE_MESSAGE_BYTES_MAX): widen it once.
            let widened =
                async_nats::jetstream::stream::Config { max_message_size: LEASE_MESSAGE_BYTES_MAX, ..stream_config };
            connection.jetstream.update_stream(widened).await.map_err(ClusterError::other)?;
        }
        if max_age != options.ttl {
            return Err(ClusterError::other(format!(
                "lease bucket {LEASE_BUCKET} expires leases after {max_age:?}, this node is configured for {:?}",
                options.ttl
            )));
        }
        Ok(LeaseBucket { store, node_name: node_name.to_owned(), options })
    }

    /// The lease timing in use.
    #[must_use]
    pub fn options(&self) -> LeaseOptions {
        self.options
    }

    /// Takes the office if nobody holds it. [`ClusterError::LeaseLost`] names the holder otherwise.
    pub async fn acquire(&self, office: &OfficeId) -> Result<Lease> {
        let written_at = Instant::now();
        match self.store.create(lease_key(office), self.node_name.clone().into()).await {
            Ok(revision) => Ok(Lease { office: office.clone(), epoch: revision, revision, written_at }),
            Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {
                let holder = self.holder(office).await.ok().flatten();
                let detail = holder.map_or_else(
                    || "another node holds it".to_owned(),
                    |holder| format!("held by {} at revision {}", holder.node_name, holder.revision),
                );
                Err(ClusterError::LeaseLost { office: office.to_string(), detail })
            }
            Err(error) => Err(ClusterError::Unavailable { detail: error.to_string() }),
        }
    }

    /// Renews `lease`; on success its revision and write time move on. [`ClusterError::LeaseLost`] when the key was
    /// written by someone else or expired since: the holder is deposed and must stop serving the office.
    pub async fn renew(&self, lease: &mut Lease) -> Result<()> {
        let written_at = Instant::now();
        match self.store.update(lease_key(&lease.office), self.node_name.clone().into(), lease.revision).await {
            Ok(revision) => {
                lease.revision = revision;
                lease.written_at = written_at;
                Ok(())
            }
            Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => Err(ClusterError::LeaseLost {
                office: lease.office.to_string(),
                detail: format!("revision {} is no longer the lease's last write (expired or taken)", lease.revision),
            }),
            Err(error) => Err(ClusterError::Unavailable { detail: error.to_string() }),
        }
    }

    /// Gives the office up at once (on shutdown), if the lease is still ours; another node need not wait for the TTL.
    pub async fn release(&self, lease: &Lease) -> Result<()> {
        self.store
            .delete_expect_revision(lease_key(&lease.office), Some(lease.revision))
            .await
            .map_err(|error| ClusterError::LeaseLost { office: lease.office.to_string(), detail: error.to_string() })
    }

    /// Who holds the office now, if anyone (read from the bucket; informational, the writes decide).
    pub async fn holder(&self, office: &OfficeId) -> Result<Option<LeaseHolder>> {
        let entry = self
            .store
            .entry(lease_key(office))
            .await
            .map_err(|error| ClusterError::Unavailable { detail: error.to_string() })?;
        Ok(entry.filter(|entry| entry.operation == kv::Operation::Put).map(|entry| LeaseHolder {
            node_name: String::from_utf8_lossy(&entry.value).into_owned(),
            revision: entry.revision,
        }))
    }

    /// Whether the holder of `lease` may still act as the office's owner at `now` (see [`Lease::may_serve`]).
    #[must_use]
    pub fn may_serve(&self, lease: &Lease, now: Instant) -> bool {
        lease.may_serve(&self.options, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_stops_serving_one_renewal_period_before_its_lease_can_expire() {
        let options = LeaseOptions { ttl: Duration::from_secs(10), renew_every: Duration::from_secs(2) };
        let written_at = Instant::now();
        let office = OfficeId::parse("kanim-batam").expect("valid id");
        let lease = Lease { office, epoch: 5, revision: 9, written_at };
        assert!(lease.may_serve(&options, written_at));
        assert!(lease.may_serve(&options, written_at + Duration::from_millis(7_999)));
        assert!(!lease.may_serve(&options, written_at + Duration::from_secs(8)));
        assert!(!lease.may_serve(&options, written_at + Duration::from_secs(10)));
        assert_eq!(lease.renew_in(&options, written_at + Duration::from_millis(500)), Duration::from_millis(1_500));
        assert_eq!(lease.renew_in(&options, written_at + Duration::from_secs(3)), Duration::ZERO);
    }
}
