//! Running the service, and only that: wiring the services, their layers, health and reflection onto a listener, then
//! [`run`]: start (health NOT_SERVING) -> recover -> serve -> on SIGTERM or Ctrl-C drain in-flight calls within a
//! bounded time -> final snapshot and close the log.
//!
//! What runs beside the calls (ticker, snapshots, gauges) is the engine's [`Background`]; this module starts it after
//! recovery and stops it after the drain.

use crate::auth::layer::Auth;
use crate::auth::{AntiHoardingConfig, Callers, HoldLimiter};
use crate::call_layer::CallLayer;
use crate::config::Config;
use crate::engine::background::Background;
use crate::engine::partition::{ServingGate, take_partition};
use crate::engine::{Engine, EngineOptions, EngineSeams, SystemClock};
use crate::grpc::EngineHandle;
use crate::grpc::admin::AdminApi;
use crate::grpc::booking::BookingApi;
use crate::grpc::coalesced_writes::CoalescedWrites;
use crate::grpc::codec::MessageLimit;
use crate::grpc::overload::{CallerRate, Overload};
use crate::grpc::partition_gate::PartitionGate;
use crate::grpc::routing::Route;
use crate::grpc::waiting_room::WaitingRoomApi;
use crate::limits::{GRPC_MESSAGE_BYTES_MAX, HTTP2_KEEPALIVE_INTERVAL_SECONDS, HTTP2_STREAMS_PER_CONNECTION_MAX};
use crate::metrics as names;
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::booking_service_server::BookingServiceServer;
use crate::proto::waiting_room_service_server::WaitingRoomServiceServer;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Recovery or the log failed.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// Binding or serving failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The gRPC transport failed.
    #[error("grpc transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A TLS certificate, key or client CA file could not be read.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Reflection could not be set up.
    #[error("grpc reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// The names health reports on, besides the whole server ("").
const SERVICE_NAMES: [&str; 4] =
    ["", "antrean.v1.BookingService", "antrean.v1.AdminService", "antrean.v1.WaitingRoomService"];

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for name in SERVICE_NAMES {
        reporter.set_service_status(name, status).await;
    }
    metrics::gauge!(names::READY).set(if status == ServingStatus::Serving { 1.0 } else { 0.0 });
}

/// Serves on `listener` until `shutdown` resolves, then drains and stops: start (health NOT_SERVING) -> recover ->
/// serve and run the background work -> drain -> final snapshot.
pub async fn run(config: Config, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let local =
        listener.local_addr().map_err(|source| ServerError::Io { context: "listener address".into(), source })?;
    let (reporter, health) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;
    let handle = EngineHandle::default();
    let gate = config.cluster.as_ref().map(|_| Arc::new(ServingGate::default()));
    let routing = match (&config.cluster, &gate) {
        (Some(cluster), Some(gate)) => Some(start_routing(cluster, local, Arc::clone(gate), handle.clone())?),
        _ => None,
    };
    let (stop_serving, serving_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = spawn_server(&config, &handle, gate.clone(), routing, health, listener, serving_stopped)?;
    tracing::info!(listen = %local, "antrean listening (NOT_SERVING until recovery finishes)");

    if let (Some(cluster), Some(gate)) = (config.cluster.clone(), gate) {
        let serving = (server, stop_serving);
        return serve_partition(&config, &cluster, &handle, gate, &reporter, serving, shutdown).await;
    }
    let engine = Arc::new(open_engine(&config).await?);
    handle.set(Arc::clone(&engine));
    let background = Background::start(&engine);
    set_health(&reporter, ServingStatus::Serving).await;
    tracing::info!(listen = %local, "serving");

    shutdown.await;
    tracing::info!("draining: refusing new calls, finishing in-flight ones");
    set_health(&reporter, ServingStatus::NotServing).await;
    let _ = stop_serving.send(());
    drain(server, Duration::from_millis(config.server.drain_timeout_ms)).await;
    background.stop().await;
    final_snapshot(engine).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// The gRPC server task and the sender that stops it.
type Serving = (JoinHandle<Result<(), tonic::transport::Error>>, tokio::sync::oneshot::Sender<()>);

/// Cluster mode: stands by (NOT_SERVING) until this node takes its partition's lease, replays the partition's log
/// from JetStream and serves; stops serving for good (NOT_SERVING, every call UNAVAILABLE with a retry hint) when
/// the lease is lost or an append is fenced, and waits for shutdown then. On shutdown while serving: drain, close the
/// log (every acknowledged append is stored), give the lease back. No final snapshot: the next owner loads the newest
/// one in the object store and replays the subject after it.
async fn serve_partition(
    config: &Config,
    cluster: &crate::cluster::ClusterConfig,
    handle: &EngineHandle,
    gate: Arc<ServingGate>,
    reporter: &HealthReporter,
    (server, stop_serving): Serving,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let drain_timeout = Duration::from_millis(config.server.drain_timeout_ms);
    handle.set_gate(Arc::clone(&gate));
    let failing_gate = Arc::clone(&gate);
    let on_log_failure: crate::engine::LogFailureHook = Arc::new(move |error| {
        failing_gate.depose();
        tracing::error!(%error, "partition log failed: this node no longer serves the partition");
    });
    let seams = EngineSeams {
        on_log_failure: Some(on_log_failure),
        // Booking ids name their partition, so calls by booking id go to it first (routing/decide.rs).
        booking_number_prefix: Some(crate::cluster::partition_mark(&cluster.partition)),
        ..EngineSeams::default()
    };
    let options = engine_options(config)?;
    let taking = take_partition(cluster, config.book_rules(), options, Arc::new(SystemClock), seams, Arc::clone(&gate));
    tokio::pin!(shutdown);
    let mut owned = tokio::select! {
        owned = taking => owned?,
        () = &mut shutdown => {
            tracing::info!("stopping before this node took its partition");
            let _ = stop_serving.send(());
            drain(server, drain_timeout).await;
            return Ok(());
        }
    };
    let engine = Arc::clone(&owned.engine);
    prepare(&engine, config).await?;
    handle.set(Arc::clone(&engine));
    let background = Background::start(&engine);
    set_health(reporter, ServingStatus::Serving).await;
    tracing::info!(partition = %cluster.partition, epoch = owned.epoch, "serving the partition");

    let deposed = tokio::select! {
        () = &mut shutdown => None,
        reason = owned.deposed(&gate) => Some(reason),
    };
    set_health(reporter, ServingStatus::NotServing).await;
    if let Some(reason) = deposed {
        // The background work may be waiting on the failed log forever (as a stopped process would): it is not
        // stopped, only left behind when the process exits.
        tracing::error!(partition = %cluster.partition, %reason, "deposed: NOT_SERVING until restarted");
        shutdown.await;
        let _ = stop_serving.send(());
        drain(server, drain_timeout).await;
        return Ok(());
    }
    tracing::info!("draining: refusing new calls, finishing in-flight ones");
    let _ = stop_serving.send(());
    drain(server, drain_timeout).await;
    background.stop().await;
    let closing = Arc::clone(&engine);
    tokio::task::spawn_blocking(move || closing.close_log()).await.map_err(|error| ServerError::Io {
        context: "closing the log".into(),
        source: std::io::Error::other(error),
    })??;
    owned.release().await;
    tracing::info!("stopped cleanly; partition lease released");
    Ok(())
}

/// Cluster mode: the node's directory (its own card: name, partition, the address other nodes reach it at, its
/// offices), kept live by a task of its own for the life of the process, and the routing layer over it.
fn start_routing(
    cluster: &crate::cluster::ClusterConfig,
    listening: SocketAddr,
    gate: Arc<ServingGate>,
    handle: EngineHandle,
) -> Result<CallLayer<Route>, ServerError> {
    let config_error = |field: String, reason: String| crate::config::ConfigError::Invalid { field, reason };
    let address = match &cluster.advertise_address {
        Some(address) => address.clone(),
        None if cluster.forward_calls && listening.ip().is_unspecified() => {
            let reason = "must be set when server.listen is an unspecified address and forward_calls is on".to_owned();
            return Err(config_error("cluster.advertise_address".into(), reason).into());
        }
        None => listening.to_string(),
    };
    let offices = cluster.owned_offices().map_err(|(field, reason)| config_error(field, reason))?;
    let card = crate::cluster::NodeCard::new(&cluster.node_name, &cluster.partition, &address, &offices);
    tracing::info!(advertise_address = %address, forward_calls = cluster.forward_calls, "cluster routing");
    let directory = Arc::new(crate::cluster::Directory::new(card, cluster.lease_options().ttl));
    let published = |directory: &crate::cluster::Directory| {
        let (nodes, partitions, owned) = directory.size();
        metrics::gauge!(names::CLUSTER_DIRECTORY_NODES).set(nodes as f64);
        metrics::gauge!(names::CLUSTER_DIRECTORY_PARTITIONS).set(partitions as f64);
        metrics::gauge!(names::CLUSTER_DIRECTORY_OWNED_PARTITIONS).set(owned as f64);
    };
    tokio::spawn(crate::cluster::keep_directory(
        cluster.connect_options(),
        cluster.replicas as usize,
        Arc::clone(&directory),
        published,
    ));
    Ok(Route::layer(directory, gate, handle, cluster.forward_calls))
}

/// Builds the services and their layers and serves them on `listener` in a task of their own until `serving_stopped`
/// resolves (or its sender is dropped).
fn spawn_server(
    config: &Config,
    handle: &EngineHandle,
    gate: Option<Arc<ServingGate>>,
    routing: Option<CallLayer<Route>>,
    health: HealthServer<impl Health>,
    listener: TcpListener,
    serving_stopped: tokio::sync::oneshot::Receiver<()>,
) -> Result<JoinHandle<Result<(), tonic::transport::Error>>, ServerError> {
    // Reflection describes every service served here, the standard health service included, as grpc-go servers do:
    // `grpcurl list` shows it and `grpcurl describe grpc.health.v1.Health` resolves.
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let callers = Arc::new(Callers::new(&config.callers));
    let hold_limiter = if callers.is_open() {
        tracing::warn!(
            "no [[callers]] configured: every call is allowed without credentials and holds are not rate-limited \
             (local demo only)"
        );
        Arc::new(HoldLimiter::new(&AntiHoardingConfig::unlimited()))
    } else {
        let booking = crate::auth::Role::Booking.name();
        let booking_callers =
            config.callers.iter().filter(|caller| caller.roles.iter().any(|role| role == booking)).count();
        if booking_callers < 2 && config.anti_hoarding.caller_session_share_percent > 0 {
            tracing::info!("one booking caller: anti_hoarding.caller_session_share_percent does not apply");
        }
        Arc::new(HoldLimiter::new(&config.anti_hoarding).shared_by(booking_callers))
    };
    let booking = BookingServiceServer::new(BookingApi::new(handle.clone(), hold_limiter))
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let waiting_room = WaitingRoomServiceServer::new(WaitingRoomApi::new(handle.clone()))
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let admin = AdminServiceServer::new(AdminApi::new(handle.clone()))
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &config.server.tls {
        builder = builder.tls_config(tls.server_config()?)?;
        let mutual = tls.client_ca_path.is_some();
        tracing::info!(mutual, "serving TLS{}", if mutual { " and requiring client certificates" } else { "" });
    }
    let server = builder
        .timeout(Duration::from_millis(config.server.request_timeout_ms))
        .http2_keepalive_interval(Some(Duration::from_secs(HTTP2_KEEPALIVE_INTERVAL_SECONDS)))
        .max_concurrent_streams(Some(HTTP2_STREAMS_PER_CONNECTION_MAX))
        // Outermost first: shed overload and measure every call, then identify the caller, then count its rate
        // against that identity (not against header bytes a client can vary); then answer an oversized message
        // RESOURCE_EXHAUSTED; in cluster mode, route the call to the node that can answer it (here, or forwarded), and
        // innermost answer a call in flight here UNAVAILABLE once this node is deposed.
        .layer(Overload::layer(config.server.in_flight_requests_max as usize))
        .layer(Auth::layer(callers))
        .layer(CallerRate::layer(config.server.caller_requests_per_second_max))
        .layer(MessageLimit::layer())
        // A single node has no gate: `option_layer` leaves the layer out rather than box every call to pass it on.
        .layer(tower::util::option_layer(routing))
        .layer(tower::util::option_layer(gate.map(PartitionGate::layer)))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(booking)
        .add_service(admin)
        .add_service(waiting_room)
        // TCP_NODELAY on every accepted socket: with Nagle on, a small answer written while an earlier one is not yet
        // acknowledged waits for the client's delayed ACK (40 ms on Linux), which stalled about one call in ten under
        // a mixed load. The builder's `tcp_nodelay` does not apply to an incoming stream we hand it, so set it here.
        // The answers ready together then leave in one write (`grpc/coalesced_writes.rs`), not one write each.
        .serve_with_incoming_shutdown(incoming(listener), async {
            let _ = serving_stopped.await;
        });
    Ok(tokio::spawn(server))
}

/// The accepted connections of `listener`: TCP_NODELAY set, writes coalesced.
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<CoalescedWrites<tokio::net::TcpStream>>> {
    use tokio_stream::StreamExt as _;
    TcpIncoming::from(listener).with_nodelay(Some(true)).map(|accepted| accepted.map(CoalescedWrites::new))
}

/// Waits up to `drain` for the server task to finish the calls in flight; past it, stops waiting (the calls still
/// running are cut off when the process exits).
async fn drain(server: JoinHandle<Result<(), tonic::transport::Error>>, drain: Duration) {
    match tokio::time::timeout(drain, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("drained"),
        Ok(Ok(Err(error))) => tracing::error!(%error, "server stopped with an error"),
        Ok(Err(error)) => tracing::error!(%error, "server task failed"),
        Err(_) => tracing::warn!(drain_ms = drain.as_millis() as u64, "drain timed out; stopping anyway"),
    }
}

/// Writes the final snapshot and closes the log, off the runtime threads (both block on file I/O).
async fn final_snapshot(engine: Arc<Engine>) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || -> Result<(), ServerError> {
        engine.snapshot(&runtime)?;
        engine.close_log()?;
        Ok(())
    })
    .await
    .map_err(|error| ServerError::Io { context: "final snapshot".into(), source: std::io::Error::other(error) })?
}

fn engine_options(config: &Config) -> Result<EngineOptions, ServerError> {
    Ok(EngineOptions {
        data_dir: config.storage.data_dir.clone(),
        wal: config.wal_options().map_err(crate::engine::EngineError::from)?,
        accept_log_truncation: config.storage.accept_log_truncation,
        snapshot_every_records: config.storage.snapshot_every_records,
        snapshot_every_log_bytes: config.storage.snapshot_every_log_bytes,
        snapshot_every: Duration::from_secs(config.storage.snapshot_every_seconds),
        expiry_tick: Duration::from_millis(config.booking.expiry_tick_ms),
    })
}

async fn open_engine(config: &Config) -> Result<Engine, ServerError> {
    let options = engine_options(config)?;
    let rules = config.book_rules();
    tracing::info!(data_dir = %options.data_dir.display(), "replaying wal");
    let (engine, report) = tokio::task::spawn_blocking(move || Engine::open(rules, options, Arc::new(SystemClock)))
        .await
        .map_err(|error| ServerError::Io { context: "recovery".into(), source: std::io::Error::other(error) })??;
    tracing::info!(
        elapsed_ms = report.duration.as_millis() as u64,
        snapshot_position = report.snapshot_position,
        records_replayed = report.records_replayed,
        last_position = report.log.last_position.0,
        "recovery complete"
    );
    prepare(&engine, config).await?;
    Ok(engine)
}

/// Seeds the configured offices the catalogue lacks (in cluster mode only those of this node's `cluster.offices`),
/// and schedules the demo release if asked.
async fn prepare(engine: &Engine, config: &Config) -> Result<(), ServerError> {
    let mut offices = config.office_settings()?;
    if let Some(Ok(crate::cluster::OwnedOffices::Only(owned))) =
        config.cluster.as_ref().map(crate::cluster::ClusterConfig::owned_offices)
    {
        offices.retain(|office| owned.contains(&office.office_id));
    }
    let seeded = engine.seed_offices(&offices).await;
    if seeded > 0 {
        tracing::info!(offices = seeded, "seeded offices from the configuration");
    }
    if let Some(seconds) = config.demo_release_in_seconds {
        crate::demo::demo_release(engine, seconds).await;
    }
    Ok(())
}

/// Binds the gRPC listener.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Io { context: format!("cannot listen on {address}"), source })
}
