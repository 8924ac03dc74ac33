//! Keeps a [`Directory`] live: publishes this node's card in [`NODES_BUCKET`], then follows that bucket and the lease
//! bucket with KV watches, for as long as the process runs. A lost connection or watch is opened again after a pause;
//! meanwhile the directory keeps what it knew (an owner it heard of drops out once its lease could have expired).
//!
//! It only reads the lease bucket: taking, renewing and fencing leases stay in `lease.rs` and the engine's partition
//! task, untouched by routing.

use super::connect::{NatsConnection, connect};
use super::directory::{DIRECTORY_ENTRIES_MAX, Directory, NODE_CARD_BYTES_MAX, NODES_BUCKET, NodeCard};
use super::error::{ClusterError, Result};
use super::options::NatsConnectOptions;
use super::placement::LEASE_BUCKET;
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::StorageType;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_stream::StreamExt;

/// Pause before connecting or watching again after a failure (and while the lease bucket does not exist yet).
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// Publishes `directory`'s own card and follows the cluster's cards and leases, forever (run it in a task of its own).
/// `changed` is called after every change the watches bring (to publish the directory's size).
pub async fn keep_directory(
    options: NatsConnectOptions,
    replicas: usize,
    directory: Arc<Directory>,
    changed: impl Fn(&Directory) + Send + Sync,
) {
    let mut told = false;
    loop {
        match watch_once(&options, replicas, &directory, &changed).await {
            Ok(()) => tracing::warn!("the cluster directory watch ended; opening it again"),
            Err(error) if !told => {
                tracing::warn!(%error, "cannot follow the cluster directory yet; trying again every second");
                told = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(WATCH_RETRY).await;
    }
}

/// One connection's worth of watching: returns when a watch ends or fails.
async fn watch_once(
    options: &NatsConnectOptions,
    replicas: usize,
    directory: &Arc<Directory>,
    changed: &(impl Fn(&Directory) + Send + Sync),
) -> Result<()> {
    let connection = connect(options).await?;
    let nodes = open_nodes_bucket(&connection, replicas).await?;
    nodes.put(&directory.own().node_name, directory.own().encode().into()).await.map_err(ClusterError::other)?;
    let leases = connection.jetstream.get_key_value(LEASE_BUCKET).await.map_err(ClusterError::other)?;
    let mut card_watch = nodes.watch_all().await.map_err(ClusterError::other)?;
    let mut lease_watch = leases.watch_all().await.map_err(ClusterError::other)?;
    // The watches deliver every current value first, but an empty bucket delivers nothing to say it is complete: read
    // both buckets whole once (after the watches started, so nothing written in between is missed) before saying the
    // directory is loaded.
    if !directory.is_loaded() {
        load(&nodes, directory, apply_card).await?;
        load(&leases, directory, apply_lease).await?;
        directory.mark_loaded();
        changed(directory);
    }
    tracing::info!("following the cluster directory");
    loop {
        tokio::select! {
            entry = card_watch.next() => match entry {
                Some(Ok(entry)) => apply_card(directory, &entry),
                Some(Err(error)) => return Err(ClusterError::other(error)),
                None => return Ok(()),
            },
            entry = lease_watch.next() => match entry {
                Some(Ok(entry)) => apply_lease(directory, &entry),
                Some(Err(error)) => return Err(ClusterError::other(error)),
                None => return Ok(()),
            },
        }
        changed(directory);
    }
}

/// Opens [`NODES_BUCKET`], creating it (no expiry: a card says how to reach a node, not whether it is alive; the
/// leases say that) if it is missing.
async fn open_nodes_bucket(connection: &NatsConnection, replicas: usize) -> Result<kv::Store> {
    if let Ok(store) = connection.jetstream.get_key_value(NODES_BUCKET).await {
        return Ok(store);
    }
    let config = kv::Config {
        bucket: NODES_BUCKET.to_owned(),
        description: "antrean: one card per node (partition, address, offices), for routing calls".to_owned(),
        history: 1,
        max_value_size: NODE_CARD_BYTES_MAX as i32,
        storage: StorageType::File,
        num_replicas: replicas,
        ..kv::Config::default()
    };
    connection.jetstream.create_key_value(config).await.map_err(ClusterError::other)
}

/// Reads every entry of `store` (at most [`DIRECTORY_ENTRIES_MAX`]) into `directory` with `apply`.
async fn load(store: &kv::Store, directory: &Directory, apply: fn(&Directory, &kv::Entry)) -> Result<()> {
    let keys = store.keys().await.map_err(ClusterError::other)?;
    let keys: Vec<String> =
        keys.take(DIRECTORY_ENTRIES_MAX).collect::<std::result::Result<_, _>>().await.map_err(ClusterError::other)?;
    for key in keys {
        if let Some(entry) = store.entry(&key).await.map_err(ClusterError::other)? {
            apply(directory, &entry);
        }
    }
    Ok(())
}

fn apply_card(directory: &Directory, entry: &kv::Entry) {
    if entry.operation != kv::Operation::Put {
        directory.remove_card(&entry.key);
        return;
    }
    match NodeCard::decode(&entry.value) {
        Some(card) if card.node_name == entry.key => {
            if !directory.put_card(card) {
                tracing::warn!(node = %entry.key, "the cluster directory is full; this node's card is ignored");
            }
        }
        _ => tracing::warn!(node = %entry.key, "a node card that is not one; ignored"),
    }
}

fn apply_lease(directory: &Directory, entry: &kv::Entry) {
    if entry.operation != kv::Operation::Put {
        directory.remove_lease(&entry.key);
        return;
    }
    // How old the write is, by the server's stamp: an entry read when the watch opens may be most of a TTL old.
    let now_nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos() as i128);
    let age_nanos = (now_nanos - entry.created.unix_timestamp_nanos()).clamp(0, i128::from(u64::MAX));
    let age = Duration::from_nanos(age_nanos as u64);
    let Some(written_at) = Instant::now().checked_sub(age) else {
        // Older than this machine's monotonic clock: long expired.
        directory.remove_lease(&entry.key);
        return;
    };
    let holder = String::from_utf8_lossy(&entry.value);
    if !directory.put_lease(&entry.key, &holder, written_at) {
        tracing::warn!(partition = %entry.key, "the cluster directory is full; this lease is ignored");
    }
}
