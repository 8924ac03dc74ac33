//! Cluster mode: owning one partition of the cluster log. Take its lease (waiting while another node holds it), load
//! its newest snapshot from the object store and replay its subject after it, open the engine on a [`JetStreamLog`],
//! append an [`Event::OwnerChanged`] with the fence, then serve while the lease is renewed in the background; stop
//! serving the moment the lease is lost, cannot be renewed in time, or an append is fenced.
//!
//! Also opens the partition's NIK claims (`nik_claims.rs`) and runs their reconciler while the partition is owned.
//!
//! Owns the lease keeper task and the [`ServingGate`] the gRPC layer consults on every call. It must not route calls
//! or decide bookings. The engine's snapshotter keeps snapshots through the log ([`LogStore::save_snapshot`]: the
//! object store, two kept, the subject purged below the older one while the gate is open). A take-over tries the
//! newest snapshot, then the older, then the subject from its start, and serves only a state whose log continues it
//! (`cluster::records_after`); if none does, the attempt fails and the lease is given back.

use super::nik_claim_state::NikClaims;
use super::nik_claims::keep_reconciling;
use super::{Clock, Engine, EngineOptions, EngineSeams, RecoveryReport};
use crate::cluster::{
    ClusterConfig, ClusterError, JetStreamLog, Lease, LeaseBucket, NikClaimBucket, NikHasher, OfficeLog, OfficeWriter,
    PartitionLogObserver, ReadBack, SnapshotBucket, SnapshotKeeping, StoredSnapshot, connect, nik_claim_secret,
    read_records_after,
};
use crate::domain::{BookRules, Event, OfficeId};
use crate::metrics as names;
use crate::storage::{self, LogPosition, LogStore, StorageError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Pause between attempts to take a partition that another node holds, or after a failed take-over.
const TAKE_OVER_RETRY: Duration = Duration::from_millis(500);
/// Pause before renewing again after a renewal whose outcome was unknown.
const RENEW_RETRY: Duration = Duration::from_millis(200);
/// Attempts to line the replay up with the log's end before giving the lease back and starting again.
const REPLAY_ATTEMPTS_MAX: u32 = 3;

/// Whether this node may answer for its partition: only while its lease is known good and nothing was fenced.
/// Checked on every call, so a node that was paused past its lease refuses even before its keeper wakes up.
#[derive(Debug)]
pub struct ServingGate {
    base: Instant,
    /// Nanoseconds after `base` until which the lease is known good; 0 before the lease is taken.
    serve_until_nanos: AtomicU64,
    deposed: AtomicBool,
    /// Becomes true when deposed, for calls in flight to stop waiting on a log that will never answer.
    deposed_signal: watch::Sender<bool>,
}

impl Default for ServingGate {
    fn default() -> ServingGate {
        ServingGate {
            base: Instant::now(),
            serve_until_nanos: AtomicU64::new(0),
            deposed: AtomicBool::new(false),
            deposed_signal: watch::Sender::new(false),
        }
    }
}

impl ServingGate {
    /// Whether calls may be answered now.
    #[must_use]
    pub fn may_serve(&self) -> bool {
        !self.deposed.load(Ordering::Acquire)
            && (self.base.elapsed().as_nanos() as u64) < self.serve_until_nanos.load(Ordering::Acquire)
    }

    /// Stops serving for good (this process never serves the partition again).
    pub fn depose(&self) {
        self.deposed.store(true, Ordering::Release);
        self.deposed_signal.send_replace(true);
    }

    /// Resolves once [`ServingGate::depose`] was called.
    pub fn wait_deposed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.deposed_signal.subscribe();
        async move {
            if receiver.wait_for(|deposed| *deposed).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Whether [`ServingGate::depose`] was called.
    #[must_use]
    pub fn is_deposed(&self) -> bool {
        self.deposed.load(Ordering::Acquire)
    }

    fn serve_until(&self, until: Instant) {
        let nanos = until.saturating_duration_since(self.base).as_nanos() as u64;
        self.serve_until_nanos.store(nanos, Ordering::Release);
    }
}

/// A partition this node owns and serves.
pub struct OwnedPartition {
    /// The engine, serving the partition.
    pub engine: Arc<Engine>,
    /// What the replay found.
    pub report: RecoveryReport,
    /// The lease's epoch.
    pub epoch: u64,
    log: Arc<JetStreamLog>,
    keeper: LeaseKeeper,
    bucket: LeaseBucket,
    partition: OfficeId,
    /// The NIK claim reconciler, stopped with the partition.
    reconciler: tokio::task::AbortHandle,
}

impl OwnedPartition {
    /// Resolves when this node must stop serving the partition (lease lost or not renewed in time, or the log
    /// failed), with why; the log is failed and `gate` deposed by then.
    pub async fn deposed(&mut self, gate: &ServingGate) -> String {
        let reason = tokio::select! {
            reason = self.keeper.lost() => reason,
            reason = self.log.wait_failed() => reason,
        };
        gate.depose();
        self.reconciler.abort();
        self.log.fail(&reason);
        let partition = self.partition.to_string();
        metrics::counter!(names::CLUSTER_DEPOSED_TOTAL, "partition" => partition.clone()).increment(1);
        metrics::gauge!(names::CLUSTER_LEASES_HELD, "partition" => partition).set(0.0);
        reason
    }

    /// Gives the lease back (after the engine closed its log), so a standby need not wait for the TTL.
    pub async fn release(self) {
        self.reconciler.abort();
        let partition = self.partition.to_string();
        if let Some(lease) = self.keeper.stop().await
            && let Err(error) = self.bucket.release(&lease).await
        {
            tracing::warn!(%error, "could not release the partition lease; it expires by itself");
        }
        metrics::gauge!(names::CLUSTER_LEASES_HELD, "partition" => partition).set(0.0);
    }
}

/// Takes `cluster`'s partition: connects to NATS, waits for the lease (as long as another node holds it), replays the
/// subject, opens the engine and appends its fenced [`Event::OwnerChanged`]. `gate` is opened while the lease holds.
pub async fn take_partition(
    cluster: &ClusterConfig,
    rules: BookRules,
    options: EngineOptions,
    clock: Arc<dyn Clock>,
    seams: EngineSeams,
    gate: Arc<ServingGate>,
) -> super::Result<OwnedPartition> {
    let partition = cluster
        .partition_id()
        .map_err(|(field, reason)| ClusterError::Other { detail: format!("{field}: {reason}") })?;
    let connection = connect(&cluster.connect_options()).await?;
    tracing::info!(server_version = %connection.server_version, partition = %partition, "connected to NATS");
    let bucket =
        LeaseBucket::open(&connection, &cluster.node_name, cluster.lease_options(), cluster.replicas as usize).await?;
    let log = OfficeLog::new(&connection, cluster.log_options());
    let snapshots = SnapshotBucket::open(&connection, cluster.replicas as usize).await?;
    let claims = open_nik_claims(cluster, &connection, &partition).await?;
    loop {
        let lease = wait_for_lease(&bucket, &partition).await;
        gate.serve_until(lease.written_at + bucket.options().serve_for());
        let mut keeper = LeaseKeeper::start(bucket.clone(), lease.clone(), Arc::clone(&gate));
        let attempt = tokio::select! {
            attempt = take_over(cluster, &log, &snapshots, &partition, lease.epoch, rules.clone(), options.clone(),
                Arc::clone(&clock), seams.clone(), Arc::clone(&gate)) => attempt,
            reason = keeper.lost() => Err(ClusterError::LeaseLost { office: partition.to_string(), detail: reason }.into()),
        };
        match attempt {
            Ok((engine, report, jetstream_log, previous_owner)) => {
                let name = partition.to_string();
                metrics::gauge!(names::CLUSTER_LEASES_HELD, "partition" => name.clone()).set(1.0);
                if previous_owner {
                    metrics::counter!(names::CLUSTER_FAILOVERS_TOTAL, "partition" => name).increment(1);
                }
                engine.attach_nik_claims(claims);
                let every = Duration::from_millis(cluster.nik_claim_reconcile_every_ms);
                let (serving, stopping) = (Arc::clone(&gate), Arc::clone(&gate));
                let reconciler = tokio::spawn(keep_reconciling(
                    Arc::downgrade(&engine),
                    move || serving.may_serve(),
                    move || stopping.is_deposed(),
                    every,
                ))
                .abort_handle();
                return Ok(OwnedPartition {
                    engine,
                    report,
                    epoch: lease.epoch,
                    log: jetstream_log,
                    keeper,
                    bucket,
                    partition,
                    reconciler,
                });
            }
            Err(error) => {
                tracing::warn!(%error, partition = %partition, "take-over failed; giving the lease back and trying again");
                if let Some(lease) = keeper.stop().await {
                    let _ = bucket.release(&lease).await;
                }
                tokio::time::sleep(TAKE_OVER_RETRY).await;
            }
        }
    }
}

/// The claims bucket as `partition` uses it, keyed with the cluster's NIK claim secret.
async fn open_nik_claims(
    cluster: &ClusterConfig,
    connection: &crate::cluster::NatsConnection,
    partition: &OfficeId,
) -> super::Result<Arc<NikClaims>> {
    let replicas = cluster.replicas as usize;
    let secret = nik_claim_secret(connection, cluster.nik_claim_secret_file.as_deref(), replicas).await?;
    let bucket = NikClaimBucket::open(connection, partition.as_str(), replicas).await?;
    Ok(Arc::new(NikClaims::new(bucket, NikHasher::new(secret), partition.to_string())))
}

/// Waits until this node holds the partition's lease.
async fn wait_for_lease(bucket: &LeaseBucket, partition: &OfficeId) -> Lease {
    let mut told = false;
    loop {
        match bucket.acquire(partition).await {
            Ok(lease) => {
                tracing::info!(partition = %partition, epoch = lease.epoch, "partition lease taken");
                return lease;
            }
            Err(error) => {
                if !told {
                    tracing::info!(%error, partition = %partition, "standing by (NOT_SERVING) until the lease is free");
                    told = true;
                }
                tokio::time::sleep(TAKE_OVER_RETRY).await;
            }
        }
    }
}

type TakenOver = (Arc<Engine>, RecoveryReport, Arc<JetStreamLog>, bool);

/// Where the engine is opened from: a snapshot's image and the records after it, read under a writer lined up with the
/// log's end.
struct Opened {
    engine: Engine,
    report: RecoveryReport,
    log: Arc<JetStreamLog>,
    previous_owner: bool,
}

/// Opens the engine on the partition's newest usable snapshot and the log after it (falling back to the older one,
/// then to the subject from its start), and appends the fenced [`Event::OwnerChanged`].
#[allow(clippy::too_many_arguments)]
async fn take_over(
    cluster: &ClusterConfig,
    log: &OfficeLog,
    snapshots: &SnapshotBucket,
    partition: &OfficeId,
    epoch: u64,
    rules: BookRules,
    options: EngineOptions,
    clock: Arc<dyn Clock>,
    seams: EngineSeams,
    gate: Arc<ServingGate>,
) -> super::Result<TakenOver> {
    log.ensure_office(partition).await?;
    let stored = snapshots.list(partition).await.unwrap_or_else(|error| {
        tracing::warn!(%error, partition = %partition, "cannot list the partition's snapshots; replaying from the start");
        Vec::new()
    });
    let starts = stored.into_iter().rev().map(Some).chain([None]);
    let mut failure = None;
    for start in starts {
        let attempt = open_from(cluster, log, snapshots, partition, epoch, start.as_ref(), Arc::clone(&gate), || {
            (rules.clone(), options.clone(), Arc::clone(&clock), seams.clone())
        })
        .await;
        match attempt {
            Ok(opened) => return finish_take_over(opened, partition, epoch).await,
            Err(error) => {
                let snapshot = start.as_ref().map_or("none (the subject from its start)", |start| start.name.as_str());
                tracing::warn!(%error, partition = %partition, snapshot, "cannot take over from this start");
                failure = Some(error);
            }
        }
    }
    Err(failure.expect("the replay from the start is always tried"))
}

/// Appends the fenced [`Event::OwnerChanged`] on the opened engine and publishes what the take-over loaded.
async fn finish_take_over(opened: Opened, partition: &OfficeId, epoch: u64) -> super::Result<TakenOver> {
    let Opened { engine, report, log, previous_owner } = opened;
    let engine = Arc::new(engine);
    engine.append_owner_changed(epoch).await?;
    let name = partition.to_string();
    metrics::gauge!(names::CLUSTER_TAKEOVER_RECORDS_REPLAYED, "partition" => name.clone())
        .set(report.records_replayed as f64);
    metrics::gauge!(names::CLUSTER_TAKEOVER_SNAPSHOT_POSITION, "partition" => name)
        .set(report.snapshot_position.unwrap_or(0) as f64);
    tracing::info!(partition = %partition, epoch, snapshot_position = report.snapshot_position,
        records_replayed = report.records_replayed, "partition taken over");
    Ok((engine, report, log, previous_owner))
}

/// Opens the engine from `start` (a snapshot, or the subject's first record): loads and checks the snapshot, reads the
/// log after it and checks that it continues it, lines the read up with the log's end under a new writer, and opens
/// the engine on the image and those records. Any failure (the object unreadable or damaged, a hole after it, an image
/// that does not decode) is an error: the caller tries an older start.
#[allow(clippy::too_many_arguments)]
async fn open_from(
    cluster: &ClusterConfig,
    log: &OfficeLog,
    snapshots: &SnapshotBucket,
    partition: &OfficeId,
    epoch: u64,
    start: Option<&StoredSnapshot>,
    gate: Arc<ServingGate>,
    engine_inputs: impl Fn() -> (BookRules, EngineOptions, Arc<dyn Clock>, EngineSeams),
) -> super::Result<Opened> {
    let (after, image) = match start {
        Some(snapshot) => {
            let framed = snapshots.load(snapshot).await?;
            let (position, image) = storage::unframe_snapshot(&snapshot.name, &framed)?;
            if position != snapshot.position {
                let detail = format!("{} holds position {}", snapshot.name, position.0);
                return Err(ClusterError::Other { detail }.into());
            }
            (position, Some(image.to_vec()))
        }
        None => (LogPosition(0), None),
    };
    let from_sequence = start.map_or(1, |snapshot| snapshot.replay_from_stream_sequence);
    let (read, writer) = read_lined_up(log, partition, epoch, after, from_sequence).await?;
    let previous_owner = writer.next_position().0 > 1;
    let observer: Arc<dyn PartitionLogObserver> = Arc::new(Observer { partition: partition.to_string() });
    let retry_for = cluster.lease_options().serve_for();
    let keeping =
        SnapshotKeeping { bucket: snapshots.clone(), log: log.clone(), may_prune: Arc::new(move || gate.may_serve()) };
    let jetstream_log = Arc::new(
        JetStreamLog::start(writer, cluster.batch_bytes_max, retry_for, Some(observer))
            .with_snapshots(keeping, read.batches),
    );
    let sink: Arc<dyn LogStore> = Arc::clone(&jetstream_log) as Arc<dyn LogStore>;
    let (rules, options, clock, seams) = engine_inputs();
    let records = read.records;
    let (engine, report) = tokio::task::spawn_blocking(move || {
        let snapshot = image.as_deref().map(|image| (after, image));
        Engine::open_on_log(rules, options, clock, seams, snapshot, records, sink)
    })
    .await
    .map_err(|error| ClusterError::Other { detail: format!("replay task: {error}") })??;
    Ok(Opened { engine, report, log: jetstream_log, previous_owner })
}

/// Reads the log after position `after` from stream sequence `from_sequence` on, then opens a writer at the log's end;
/// again (a few times) while a deposed owner appended between the two.
async fn read_lined_up(
    log: &OfficeLog,
    partition: &OfficeId,
    epoch: u64,
    after: LogPosition,
    from_sequence: u64,
) -> super::Result<(ReadBack, OfficeWriter)> {
    for _ in 0..REPLAY_ATTEMPTS_MAX {
        let read = read_records_after(log, partition, after, from_sequence).await?;
        let writer = OfficeWriter::open(log.clone(), partition.clone(), epoch).await?;
        let replayed_to = read.records.last().map_or(after.0, |(position, _)| position.0);
        // A deposed owner may have appended between the replay and the fence read: read again.
        if writer.next_position().0 == replayed_to + 1 {
            return Ok((read, writer));
        }
    }
    Err(ClusterError::Unavailable { detail: "the log kept moving during the replay".into() }.into())
}

impl Engine {
    /// Appends [`Event::OwnerChanged`] and waits for it: fenced on the log's end, so once it is stored no earlier
    /// owner can append again.
    async fn append_owner_changed(&self, epoch: u64) -> Result<(), StorageError> {
        let position = self.log.append(super::codec::encode_event(&Event::OwnerChanged { epoch }));
        self.log.wait_durable(position).await
    }
}

/// The lease renewal task of an owned partition.
struct LeaseKeeper {
    lost: watch::Receiver<Option<String>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Option<Lease>>,
}

impl LeaseKeeper {
    fn start(bucket: LeaseBucket, lease: Lease, gate: Arc<ServingGate>) -> LeaseKeeper {
        let (lost_sender, lost) = watch::channel(None);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(keep_lease(bucket, lease, gate, lost_sender, stopped));
        LeaseKeeper { lost, stop: Some(stop), task }
    }

    /// Resolves when the lease is lost, with why.
    async fn lost(&mut self) -> String {
        match self.lost.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops renewing; the lease, if it is still ours.
    async fn stop(mut self) -> Option<Lease> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.ok().flatten()
    }
}

/// Renews `lease` every renewal period until told to stop (returns the lease) or it is lost (returns `None` after
/// saying why on `lost`). A renewal whose outcome is unknown is retried until the lease could have expired.
async fn keep_lease(
    bucket: LeaseBucket,
    mut lease: Lease,
    gate: Arc<ServingGate>,
    lost: watch::Sender<Option<String>>,
    mut stopped: oneshot::Receiver<()>,
) -> Option<Lease> {
    let options = bucket.options();
    let partition = lease.office.to_string();
    let renewals = |outcome: &'static str| {
        metrics::counter!(names::CLUSTER_LEASE_RENEWALS_TOTAL, "partition" => partition.clone(), "outcome" => outcome)
            .increment(1);
    };
    loop {
        let wait = lease.renew_in(&options, Instant::now());
        tokio::select! {
            _ = &mut stopped => return Some(lease),
            () = tokio::time::sleep(wait) => {}
        }
        match bucket.renew(&mut lease).await {
            Ok(()) => {
                renewals("renewed");
                gate.serve_until(lease.written_at + options.serve_for());
            }
            Err(error @ ClusterError::Unavailable { .. }) if lease.may_serve(&options, Instant::now()) => {
                renewals("unavailable");
                tracing::warn!(%error, "lease renewal outcome unknown; trying again");
                tokio::time::sleep(RENEW_RETRY).await;
            }
            Err(error) => {
                renewals("lost");
                tracing::error!(%error, "partition lease lost: no longer serving it");
                gate.depose();
                let _ = lost.send(Some(error.to_string()));
                return None;
            }
        }
    }
}

/// Publishes the partition log's appends and fenced refusals.
struct Observer {
    partition: String,
}

impl PartitionLogObserver for Observer {
    fn batch_appended(&self, _records: usize, elapsed: Duration) {
        metrics::histogram!(names::CLUSTER_APPEND_SECONDS, "partition" => self.partition.clone())
            .record(elapsed.as_secs_f64());
    }

    fn append_fenced(&self) {
        metrics::counter!(names::CLUSTER_FENCED_REFUSALS_TOTAL, "partition" => self.partition.clone()).increment(1);
    }

    fn snapshot_stored(&self, _position: LogPosition, bytes: u64) {
        metrics::counter!(names::CLUSTER_SNAPSHOTS_STORED_TOTAL, "partition" => self.partition.clone()).increment(1);
        metrics::gauge!(names::CLUSTER_SNAPSHOT_BYTES, "partition" => self.partition.clone()).set(bytes as f64);
    }

    fn log_purged(&self, messages: u64) {
        metrics::counter!(names::CLUSTER_LOG_PURGED_MESSAGES_TOTAL, "partition" => self.partition.clone())
            .increment(messages);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_only_while_a_lease_is_known_good_and_never_again_once_deposed() {
        let gate = ServingGate::default();
        assert!(!gate.may_serve(), "no lease yet");

        gate.serve_until(Instant::now() + Duration::from_secs(60));
        assert!(gate.may_serve());

        gate.serve_until(Instant::now());
        assert!(!gate.may_serve(), "the lease could have expired");

        gate.serve_until(Instant::now() + Duration::from_secs(60));
        gate.depose();
        assert!(!gate.may_serve() && gate.is_deposed(), "a deposed node never serves again");
    }
}
