//! Running the service: bind, recover (health NOT_SERVING meanwhile), serve, run the background work, and on SIGTERM
//! or Ctrl-C drain in-flight calls within a bounded time, write a final snapshot and close the log.

use crate::auth::layer::AuthLayer;
use crate::auth::{AntiHoardingConfig, Callers, HoldLimiter};
use crate::config::Config;
use crate::engine::{Engine, EngineOptions, SystemClock};
use crate::grpc::EngineHandle;
use crate::grpc::admin::AdminApi;
use crate::grpc::booking::BookingApi;
use crate::grpc::overload::OverloadLayer;
use crate::grpc::waiting_room::WaitingRoomApi;
use crate::limits::GRPC_MESSAGE_BYTES_MAX;
use crate::metrics as names;
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::booking_service_server::BookingServiceServer;
use crate::proto::waiting_room_service_server::WaitingRoomServiceServer;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tonic_health::ServingStatus;
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

/// Serves on `listener` until `shutdown` resolves, then drains and stops.
pub async fn run(config: Config, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let local =
        listener.local_addr().map_err(|source| ServerError::Io { context: "listener address".into(), source })?;
    let (reporter, health) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;
    let handle = EngineHandle::default();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let callers = Arc::new(Callers::new(&config.callers));
    let hold_limiter = if callers.is_open() {
        tracing::warn!(
            "no [[callers]] configured: every call is allowed without credentials and holds are not rate-limited \
             (local demo only)"
        );
        Arc::new(HoldLimiter::new(&AntiHoardingConfig::unlimited()))
    } else {
        Arc::new(HoldLimiter::new(&config.anti_hoarding))
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
    let (stop_serving, serving_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &config.server.tls {
        builder = builder.tls_config(tls.server_config()?)?;
        let mutual = tls.client_ca_path.is_some();
        tracing::info!(mutual, "serving TLS{}", if mutual { " and requiring client certificates" } else { "" });
    }
    let server = builder
        .timeout(Duration::from_millis(config.server.request_timeout_ms))
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(Some(1024))
        .layer(OverloadLayer::new(
            config.server.in_flight_requests_max as usize,
            config.server.caller_requests_per_second_max,
        ))
        .layer(AuthLayer::new(callers))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(booking)
        .add_service(admin)
        .add_service(waiting_room)
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
            let _ = serving_stopped.await;
        });
    let server = tokio::spawn(server);
    tracing::info!(listen = %local, "antrean listening (NOT_SERVING until recovery finishes)");

    let engine = Arc::new(open_engine(&config).await?);
    handle.set(Arc::clone(&engine));
    let stop = Arc::new(AtomicBool::new(false));
    let background = spawn_background(&engine, &config, &stop);
    set_health(&reporter, ServingStatus::Serving).await;
    tracing::info!(listen = %local, "serving");

    shutdown.await;
    tracing::info!("draining: refusing new calls, finishing in-flight ones");
    set_health(&reporter, ServingStatus::NotServing).await;
    let _ = stop_serving.send(());
    let drain = Duration::from_millis(config.server.drain_timeout_ms);
    match tokio::time::timeout(drain, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("drained"),
        Ok(Ok(Err(error))) => tracing::error!(%error, "server stopped with an error"),
        Ok(Err(error)) => tracing::error!(%error, "server task failed"),
        Err(_) => tracing::warn!(drain_ms = drain.as_millis() as u64, "drain timed out; stopping anyway"),
    }
    stop.store(true, Ordering::Release);
    background.stop().await;
    let runtime = tokio::runtime::Handle::current();
    let closing = Arc::clone(&engine);
    tokio::task::spawn_blocking(move || -> Result<(), ServerError> {
        closing.snapshot(&runtime)?;
        closing.close_log()?;
        Ok(())
    })
    .await
    .map_err(|error| ServerError::Io { context: "final snapshot".into(), source: std::io::Error::other(error) })??;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn open_engine(config: &Config) -> Result<Engine, ServerError> {
    let options = EngineOptions {
        data_dir: config.storage.data_dir.clone(),
        wal: config.wal_options().map_err(crate::engine::EngineError::from)?,
        accept_log_truncation: config.storage.accept_log_truncation,
        snapshot_every_records: config.storage.snapshot_every_records,
        snapshot_every: Duration::from_secs(config.storage.snapshot_every_seconds),
        expiry_tick: Duration::from_millis(config.booking.expiry_tick_ms),
    };
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
    let seeded = engine.seed_offices(&config.office_settings()?).await;
    if seeded > 0 {
        tracing::info!(offices = seeded, "seeded offices from the configuration");
    }
    if let Some(seconds) = config.demo_release_in_seconds {
        crate::demo::demo_release(&engine, seconds).await;
    }
    Ok(engine)
}

/// Background work, stopped together.
struct Background {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    snapshotter: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    async fn stop(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
        if let Some(thread) = self.snapshotter.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

fn spawn_background(engine: &Arc<Engine>, config: &Config, stop: &Arc<AtomicBool>) -> Background {
    let ticker_engine = Arc::clone(engine);
    let tick = Duration::from_millis(config.booking.expiry_tick_ms);
    let expiry = tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            ticker_engine.run_tick().await;
        }
    });
    let gauge_engine = Arc::clone(engine);
    let data_dir = config.storage.data_dir.clone();
    let gauges = tokio::spawn(async move {
        let started = Instant::now();
        let mut interval = tokio::time::interval(Duration::from_secs(5));
        loop {
            interval.tick().await;
            publish_gauges(&gauge_engine, &data_dir, started);
        }
    });
    let snapshot_engine = Arc::clone(engine);
    let snapshot_stop = Arc::clone(stop);
    let runtime = tokio::runtime::Handle::current();
    let snapshotter = std::thread::Builder::new()
        .name("antrean-snapshot".into())
        .spawn(move || {
            while !snapshot_stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(250));
                if snapshot_engine.snapshot_due()
                    && let Err(error) = snapshot_engine.snapshot(&runtime)
                {
                    tracing::error!(%error, "snapshot failed");
                }
            }
        })
        .ok();
    Background { tasks: vec![expiry, gauges], snapshotter }
}

fn publish_gauges(engine: &Engine, data_dir: &Path, started: Instant) {
    metrics::gauge!(names::UPTIME_SECONDS).set(started.elapsed().as_secs_f64());
    for office_id in engine.book().catalog().offices.keys() {
        if let Ok(stats) = engine.book().office_stats(office_id) {
            let office = office_id.to_string();
            metrics::gauge!(names::SLOTS_REMAINING, "office" => office.clone()).set(stats.remaining as f64);
            metrics::gauge!(names::HOLDS_ACTIVE, "office" => office).set(stats.active_holds as f64);
        }
    }
    let mut depths: std::collections::BTreeMap<String, (u64, u64)> = std::collections::BTreeMap::new();
    for (key, waiting, admitted) in engine.book().room_depths() {
        let depth = depths.entry(key.office_id.to_string()).or_default();
        depth.0 += waiting;
        depth.1 += u64::from(admitted);
    }
    for (office, (waiting, admitted)) in depths {
        metrics::gauge!(names::WAITING_ROOM_TICKETS, "office" => office.clone(), "state" => "waiting")
            .set(waiting as f64);
        metrics::gauge!(names::WAITING_ROOM_TICKETS, "office" => office, "state" => "admitted").set(admitted as f64);
    }
    if let Some((free, total)) = disk_space(data_dir) {
        metrics::gauge!(names::DATA_DIR_FREE_BYTES).set(free as f64);
        metrics::gauge!(names::DATA_DIR_TOTAL_BYTES).set(total as f64);
    }
}

/// Free and total bytes of the file system holding `path`.
fn disk_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid NUL-terminated string and `stats` points to writable memory of the right type; the
    // result is read only when statvfs reports success.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    let block = stats.f_frsize as u64;
    Some((stats.f_bavail as u64 * block, stats.f_blocks as u64 * block))
}

/// Binds the gRPC listener.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Io { context: format!("cannot listen on {address}"), source })
}
