//! Cluster mode: owning one partition of the cluster log. Take its lease (waiting while another node holds it), replay
//! its subject, open the engine on a [`JetStreamLog`], append an [`Event::OwnerChanged`] with the fence, then serve
//! while the lease is renewed in the background; stop serving the moment the lease is lost, cannot be renewed in
//! time, or an append is fenced.
//!
//! Also opens the partition's NIK claims (`nik_claims.rs`) and runs their reconciler while the partition is owned.
//!
//! Owns the lease keeper task and the [`ServingGate`] the gRPC layer consults on every call. It must not route calls
//! or decide bookings. Snapshots are not written in this mode (the log says so, [`LogStore::keeps_snapshots`]): every
//! take-over replays the subject from its start.

use super::nik_claim_state::NikClaims;
use super::nik_claims::keep_reconciling;
use super::{Clock, Engine, EngineOptions, EngineSeams, RecoveryReport};
use crate::cluster::{
    ClusterConfig, ClusterError, JetStreamLog, Lease, LeaseBucket, NikClaimBucket, NikHasher, OfficeLog, OfficeWriter,
    PartitionLogObserver, connect, nik_claim_secret, read_records,
};
use crate::domain::{BookRules, Event, OfficeId};
use crate::metrics as names;
use crate::storage::{LogStore, StorageError};
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
    let claims = open_nik_claims(cluster, &connection, &partition).await?;
    loop {
        let lease = wait_for_lease(&bucket, &partition).await;
        gate.serve_until(lease.written_at + bucket.options().serve_for());
        let mut keeper = LeaseKeeper::start(bucket.clone(), lease.clone(), Arc::clone(&gate));
        let attempt = tokio::select! {
            attempt = take_over(cluster, &log, &partition, lease.epoch, rules.clone(), options.clone(),
                Arc::clone(&clock), seams.clone()) => attempt,
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

/// Replays the partition's log, opens the engine on it and appends the fenced [`Event::OwnerChanged`].
#[allow(clippy::too_many_arguments)]
async fn take_over(
    cluster: &ClusterConfig,
    log: &OfficeLog,
    partition: &OfficeId,
    epoch: u64,
    rules: BookRules,
    options: EngineOptions,
    clock: Arc<dyn Clock>,
    seams: EngineSeams,
) -> super::Result<TakenOver> {
    log.ensure_office(partition).await?;
    let mut lined_up = None;
    for _ in 0..REPLAY_ATTEMPTS_MAX {
        let records = read_records(log, partition).await?;
        let writer = OfficeWriter::open(log.clone(), partition.clone(), epoch).await?;
        let replayed_to = records.last().map_or(0, |(position, _)| position.0);
        // A deposed owner may have appended between the replay and the fence read: read again.
        if writer.next_position().0 == replayed_to + 1 {
            lined_up = Some((records, writer));
            break;
        }
    }
    let Some((records, writer)) = lined_up else {
        return Err(ClusterError::Unavailable { detail: "the log kept moving during the replay".into() }.into());
    };
    let previous_owner = !records.is_empty();
    let observer: Arc<dyn PartitionLogObserver> = Arc::new(Observer { partition: partition.to_string() });
    let retry_for = cluster.lease_options().serve_for();
    let jetstream_log = Arc::new(JetStreamLog::start(writer, cluster.batch_bytes_max, retry_for, Some(observer)));
    let sink: Arc<dyn LogStore> = Arc::clone(&jetstream_log) as Arc<dyn LogStore>;
    let (engine, report) =
        tokio::task::spawn_blocking(move || Engine::open_on_log(rules, options, clock, seams, records, sink))
            .await
            .map_err(|error| ClusterError::Other { detail: format!("replay task: {error}") })??;
    let engine = Arc::new(engine);
    engine.append_owner_changed(epoch).await?;
    tracing::info!(partition = %partition, epoch, records_replayed = report.records_replayed, "partition taken over");
    Ok((engine, report, jetstream_log, previous_owner))
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
