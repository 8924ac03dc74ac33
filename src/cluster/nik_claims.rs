//! [`NikClaimBucket`]: the one cross-partition rule (one active booking per NIK, or the configured limit) needs every
//! NIK's active bookings in one partition. The KV bucket `antrean_nik_claims` holds one key per NIK that has (or is
//! about to have) active bookings, named by the keyed hash of `nik_hash.rs`, whose value is the partition that may
//! hold them. A partition creates the key before it holds for the NIK; another partition finding it refuses.
//!
//! Only the writes decide (create, update and delete with the revision read), as for leases: a claim touched by a hold
//! moves to a new revision, so a release that read the older one fails instead of deleting a claim just used. This
//! module does not know when a NIK's bookings end: the engine decides when to take and when to give back.
//!
//! The hashing key comes from `cluster.nik_claim_secret_file` (32 bytes or more; the first 32 are used), the same file
//! on every node. Without it, a random secret is created once in the bucket `antrean_nik_claim_secret` and read by every
//! node: the claims are then still never NIKs in clear, but whoever can read both buckets could test guesses.

use super::connect::NatsConnection;
use super::error::{ClusterError, Result};
use super::nik_hash::NIK_CLAIM_SECRET_BYTES;
use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use async_nats::jetstream::stream::StorageType;
use tokio_stream::StreamExt;

/// The claims bucket.
pub const NIK_CLAIMS_BUCKET: &str = "antrean_nik_claims";
/// The bucket of the generated secret, used when no secret file is configured.
pub const NIK_CLAIM_SECRET_BUCKET: &str = "antrean_nik_claim_secret";
/// Largest message of a claim: a partition id as the value. The server counts the headers too, and a delete with its
/// expected revision carries more header bytes than a partition id has (64 refused every release).
const CLAIM_MESSAGE_BYTES_MAX: i32 = 1_024;
/// Attempts at a claim whose key changes under us (deleted or touched between our create and read).
const CLAIM_ATTEMPTS_MAX: u32 = 4;

/// What taking a claim found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimTaken {
    /// The claim was free: it is now this partition's.
    Created,
    /// It was already this partition's (and is touched, so a release racing with us fails).
    Ours,
    /// Another partition has it: the NIK's active bookings live there.
    Elsewhere,
}

/// A claim of this partition, as read: deleting it needs this revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnClaim {
    /// The claim key.
    pub key: String,
    /// Its revision when read.
    pub revision: u64,
}

/// The claims bucket as seen by one partition.
#[derive(Clone)]
pub struct NikClaimBucket {
    store: kv::Store,
    partition: String,
}

impl std::fmt::Debug for NikClaimBucket {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("NikClaimBucket").field("partition", &self.partition).finish()
    }
}

fn unavailable(error: impl std::fmt::Display) -> ClusterError {
    ClusterError::Unavailable { detail: error.to_string() }
}

impl NikClaimBucket {
    /// Opens the claims bucket for `partition`, creating it (with `replicas` copies, no expiry) if it is missing.
    pub async fn open(connection: &NatsConnection, partition: &str, replicas: usize) -> Result<NikClaimBucket> {
        let config = kv::Config {
            bucket: NIK_CLAIMS_BUCKET.to_owned(),
            description: "antrean: keyed hash of a NIK -> the partition that holds its active bookings".to_owned(),
            history: 1,
            max_value_size: CLAIM_MESSAGE_BYTES_MAX,
            storage: StorageType::File,
            num_replicas: replicas,
            ..kv::Config::default()
        };
        let store = match connection.jetstream.get_key_value(NIK_CLAIMS_BUCKET).await {
            Ok(store) => store,
            Err(_) => connection.jetstream.create_key_value(config).await.map_err(ClusterError::other)?,
        };
        Ok(NikClaimBucket { store, partition: partition.to_owned() })
    }

    /// Takes the claim `key` for this partition, or finds it another's.
    pub async fn take(&self, key: &str) -> Result<ClaimTaken> {
        for _ in 0..CLAIM_ATTEMPTS_MAX {
            match self.store.create(key, self.partition.clone().into()).await {
                Ok(_) => return Ok(ClaimTaken::Created),
                Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {}
                Err(error) => return Err(unavailable(error)),
            }
            let Some(entry) = self.store.entry(key).await.map_err(unavailable)? else { continue };
            if entry.operation != kv::Operation::Put {
                continue;
            }
            if entry.value.as_ref() != self.partition.as_bytes() {
                return Ok(ClaimTaken::Elsewhere);
            }
            match self.store.update(key, self.partition.clone().into(), entry.revision).await {
                Ok(_) => return Ok(ClaimTaken::Ours),
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => {}
                Err(error) => return Err(unavailable(error)),
            }
        }
        Err(unavailable(format!("the claim kept changing over {CLAIM_ATTEMPTS_MAX} attempts")))
    }

    /// The claim `key` with its revision, when it is this partition's.
    pub async fn own(&self, key: &str) -> Result<Option<OwnClaim>> {
        let entry = self.store.entry(key).await.map_err(unavailable)?;
        Ok(entry
            .filter(|entry| entry.operation == kv::Operation::Put && entry.value.as_ref() == self.partition.as_bytes())
            .map(|entry| OwnClaim { key: key.to_owned(), revision: entry.revision }))
    }

    /// Deletes `claim` if it is still at the revision read; `Ok(false)` when it moved on (taken or touched since).
    pub async fn release(&self, claim: &OwnClaim) -> Result<bool> {
        match self.store.delete_expect_revision(&claim.key, Some(claim.revision)).await {
            Ok(()) => Ok(true),
            // Refused by the revision check: as `classify_refusal` notes, the leader's racing-writer refusal arrives as
            // `Other` carrying the same text.
            Err(error)
                if error.kind() == UpdateErrorKind::WrongLastRevision
                    || error.to_string().contains("wrong last sequence") =>
            {
                Ok(false)
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    /// Up to `limit` claim keys of any partition, skipping the first `skip` in the bucket's order; and whether the
    /// listing reached the end. The reconciler pages through the bucket with it, a bounded amount per pass.
    pub async fn keys_page(&self, skip: usize, limit: usize) -> Result<(Vec<String>, bool)> {
        let keys = self.store.keys().await.map_err(unavailable)?;
        let mut page: Vec<String> = Vec::with_capacity(limit.min(1024));
        let mut keys = keys.skip(skip);
        while page.len() < limit {
            match keys.next().await {
                Some(key) => page.push(key.map_err(unavailable)?),
                None => return Ok((page, true)),
            }
        }
        Ok((page, false))
    }
}

/// The cluster's NIK claim secret: the first 32 bytes of `secret_file` when given, else the secret in
/// [`NIK_CLAIM_SECRET_BUCKET`], created at random by the first node that needs it.
pub async fn nik_claim_secret(
    connection: &NatsConnection,
    secret_file: Option<&std::path::Path>,
    replicas: usize,
) -> Result<[u8; NIK_CLAIM_SECRET_BYTES]> {
    if let Some(path) = secret_file {
        let bytes = std::fs::read(path)
            .map_err(|error| ClusterError::other(format!("nik claim secret {}: {error}", path.display())))?;
        return secret_from(&bytes)
            .ok_or_else(|| ClusterError::other(format!("nik claim secret {}: fewer than 32 bytes", path.display())));
    }
    // A node started with a fresh cluster meets the bucket's stream while it elects its leader ("no responders"):
    // try again for a while rather than stopping the node.
    let deadline = std::time::Instant::now() + SECRET_FETCH_WAIT;
    loop {
        match generated_secret(connection, replicas).await {
            Err(error) if std::time::Instant::now() < deadline => {
                tracing::warn!(%error, "NIK claim secret not readable yet; trying again");
                tokio::time::sleep(SECRET_FETCH_RETRY).await;
            }
            outcome => return outcome,
        }
    }
}

/// How long a starting node keeps trying to read or create the generated NIK claim secret.
const SECRET_FETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// Pause between two attempts.
const SECRET_FETCH_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// The secret in [`NIK_CLAIM_SECRET_BUCKET`], created at random when the bucket has none.
async fn generated_secret(connection: &NatsConnection, replicas: usize) -> Result<[u8; NIK_CLAIM_SECRET_BYTES]> {
    let config = kv::Config {
        bucket: NIK_CLAIM_SECRET_BUCKET.to_owned(),
        description: "antrean: the generated key of the NIK claim hashes (set cluster.nik_claim_secret_file instead)"
            .to_owned(),
        history: 1,
        storage: StorageType::File,
        num_replicas: replicas,
        ..kv::Config::default()
    };
    let store = match connection.jetstream.get_key_value(NIK_CLAIM_SECRET_BUCKET).await {
        Ok(store) => store,
        Err(_) => connection.jetstream.create_key_value(config).await.map_err(ClusterError::other)?,
    };
    let fresh: [u8; NIK_CLAIM_SECRET_BYTES] = rand::random();
    match store.create("secret", hex::encode(fresh).into()).await {
        Ok(_) => return Ok(fresh),
        Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {}
        Err(error) => return Err(unavailable(error)),
    }
    let stored = store.get("secret").await.map_err(unavailable)?.unwrap_or_default();
    hex::decode(&stored)
        .ok()
        .and_then(|bytes| secret_from(&bytes))
        .ok_or_else(|| ClusterError::other(format!("{NIK_CLAIM_SECRET_BUCKET}: the stored secret is not 32 hex bytes")))
}

fn secret_from(bytes: &[u8]) -> Option<[u8; NIK_CLAIM_SECRET_BYTES]> {
    bytes.get(..NIK_CLAIM_SECRET_BYTES)?.try_into().ok()
}
