//! The `antrean` binary: flags and configuration, logging, the metrics exporter and signals, then `server::run`.

#![forbid(unsafe_code)]

use antrean::config::{Config, DEMO_CONFIG, Fsync, LogFormat};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Fair, durable passport-appointment booking over gRPC. With no flags, serves the embedded demo configuration on
/// 127.0.0.1:50051 with data in ./data.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (default: the embedded demo configuration; see config/antrean.toml).
    #[arg(long, env = "ANTREAN_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// gRPC listen address; overrides server.listen.
    #[arg(long, env = "ANTREAN_LISTEN")]
    listen: Option<SocketAddr>,
    /// Prometheus /metrics listen address, or "" to disable; overrides server.metrics_listen.
    #[arg(long, env = "ANTREAN_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Data directory (log and snapshots); overrides storage.data_dir.
    #[arg(long, env = "ANTREAN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Durability: always (answer after fdatasync), batch, or none (benchmarks only); overrides storage.fsync.
    #[arg(long, env = "ANTREAN_FSYNC", value_enum)]
    fsync: Option<Fsync>,
    /// Most requests served at once; overrides server.in_flight_requests_max.
    #[arg(long, env = "ANTREAN_IN_FLIGHT_REQUESTS_MAX")]
    in_flight_requests_max: Option<u32>,
    /// Log format: text or json; overrides server.log_format.
    #[arg(long, env = "ANTREAN_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Start even if the middle of the log is corrupt, dropping every record after the corruption (copy the data
    /// directory first).
    #[arg(long, env = "ANTREAN_ACCEPT_LOG_TRUNCATION")]
    accept_log_truncation: bool,
    /// Allow serving plain text (no TLS) on an address other hosts can reach; tokens and NIKs then cross the network
    /// unencrypted. Loopback addresses never need it.
    #[arg(long, env = "ANTREAN_INSECURE")]
    insecure: bool,
    /// Allow serving with no [[callers]] configured on an address other hosts can reach: every call, admin calls and
    /// full NIKs included, is then open to anyone who can connect. Loopback addresses never need it.
    #[arg(long, env = "ANTREAN_ALLOW_ANONYMOUS")]
    allow_anonymous: bool,
    /// Demo: release the next week of kanim-pontianak (7 to 13 days ahead) this many seconds after start, behind a
    /// waiting room, to try the opening moment locally.
    #[arg(long, value_name = "SECONDS")]
    demo_release_in: Option<u64>,
    #[command(subcommand)]
    command: Option<Action>,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Validates a configuration file and exits: 0 when valid, 1 with the bad field named otherwise.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
    /// Prints the embedded default configuration.
    PrintConfig,
    /// Reads a caller's bearer token from standard input and prints the SHA-256 to put in `token_sha256`.
    HashToken,
    /// Checks a published draw (a JSON file from `get-draw`): the secret matches the commitment published before the
    /// draw, and the order recomputes from the secret and the list. Exits 0 when it does, 1 with the reason otherwise.
    VerifyDraw {
        /// The draw file.
        file: PathBuf,
    },
    /// Fetches a line's published draw from a server (every page of WaitingRoomService.GetDraw, which needs no
    /// credentials) and prints it as the JSON file `verify-draw` and scripts/verify_draw.py read.
    GetDraw {
        /// The server, e.g. http://127.0.0.1:50051.
        #[arg(long)]
        target: String,
        /// The office.
        #[arg(long)]
        office_id: String,
        /// The line's release instant: RFC 3339 (2026-12-01T00:00:00Z) or milliseconds since the Unix epoch.
        #[arg(long)]
        release_at: String,
        /// Write the file here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    let text = match &cli.config {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
        None => DEMO_CONFIG.to_owned(),
    };
    let mut config: Config = toml::from_str(&text).map_err(antrean::config::ConfigError::from)?;
    if let Some(listen) = cli.listen {
        config.server.listen = listen.to_string();
    }
    if let Some(metrics_listen) = &cli.metrics_listen {
        config.server.metrics_listen.clone_from(metrics_listen);
    }
    if let Some(data_dir) = &cli.data_dir {
        config.storage.data_dir.clone_from(data_dir);
    }
    if let Some(fsync) = cli.fsync {
        config.storage.fsync = fsync;
    }
    if let Some(in_flight) = cli.in_flight_requests_max {
        config.server.in_flight_requests_max = in_flight;
    }
    if let Some(format) = cli.log_format {
        config.server.log_format = format;
    }
    config.storage.accept_log_truncation |= cli.accept_log_truncation;
    config.demo_release_in_seconds = cli.demo_release_in;
    config.validate()?;
    let listen: SocketAddr = config.server.listen.parse()?;
    antrean::tls::check_listen(listen, config.server.tls.as_ref(), cli.insecure).map_err(anyhow::Error::msg)?;
    antrean::tls::check_open_access(listen, !config.callers.is_empty(), cli.allow_anonymous)
        .map_err(anyhow::Error::msg)?;
    if let Some(metrics_listen) = metrics_address(&config)? {
        antrean::tls::check_metrics_listen(metrics_listen, cli.insecure).map_err(anyhow::Error::msg)?;
    }
    Ok(config)
}

/// The metrics listen address, or `None` when metrics are off.
fn metrics_address(config: &Config) -> anyhow::Result<Option<SocketAddr>> {
    let text = &config.server.metrics_listen;
    if text.is_empty() { Ok(None) } else { Ok(Some(text.parse()?)) }
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.server.log_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.server.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Action::CheckConfig { file }) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            match Config::parse(&text) {
                Ok(config) => {
                    let cluster = config.cluster.as_ref().map_or_else(String::new, |cluster| {
                        let forwarding =
                            if cluster.forward_calls { "forwarding calls" } else { "not forwarding calls" };
                        format!(
                            ", cluster node {} over {} NATS servers, partition {}, {forwarding}",
                            cluster.node_name,
                            cluster.nats_urls.len(),
                            cluster.partition
                        )
                    });
                    println!("{}: valid ({} offices{cluster})", file.display(), config.offices.len());
                    return Ok(());
                }
                Err(error) => {
                    eprintln!("{}: {error}", file.display());
                    std::process::exit(1);
                }
            }
        }
        Some(Action::PrintConfig) => {
            print!("{DEMO_CONFIG}");
            return Ok(());
        }
        Some(Action::HashToken) => return hash_token(),
        Some(Action::VerifyDraw { file }) => return verify_draw(file),
        Some(Action::GetDraw { target, office_id, release_at, output }) => {
            return get_draw(target, office_id, release_at, output.as_deref());
        }
        None => {}
    }
    let config = match load(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("antrean: {error:#}");
            std::process::exit(2);
        }
    };
    init_tracing(&config);
    warn_about_exposure(&cli, &config);
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(config))
}

/// Logs a warning for each way the operator chose to expose the server (the checks in `load` let them through).
fn warn_about_exposure(cli: &Cli, config: &Config) {
    let listen: Option<SocketAddr> = config.server.listen.parse().ok();
    let public = |address: Option<SocketAddr>| address.is_some_and(|address| !address.ip().is_loopback());
    if cli.insecure && config.server.tls.is_none() {
        tracing::warn!(listen = %config.server.listen, "--insecure: serving plain text; tokens and NIKs cross the network unencrypted");
    }
    if cli.insecure && public(metrics_address(config).ok().flatten()) {
        tracing::warn!(metrics_listen = %config.server.metrics_listen, "--insecure: /metrics is served in plain HTTP to other hosts");
    }
    if config.callers.is_empty() && public(listen) {
        tracing::warn!(listen = %config.server.listen, "--allow-anonymous: no [[callers]]; anyone who can connect may call everything");
    }
}

/// `antrean hash-token`: one token on standard input (a trailing newline is ignored), its hash on standard output.
fn hash_token() -> anyhow::Result<()> {
    use antrean::auth::token::{TOKEN_BYTES_MAX, TOKEN_BYTES_MIN, hash_token};
    use std::io::Read;
    let mut input = Vec::new();
    std::io::stdin().take(TOKEN_BYTES_MAX as u64 + 2).read_to_end(&mut input).context("cannot read standard input")?;
    let token = input.strip_suffix(b"\n").unwrap_or(&input);
    let token = token.strip_suffix(b"\r").unwrap_or(token);
    if token.is_empty() || token.len() > TOKEN_BYTES_MAX || token.iter().any(|byte| !byte.is_ascii_graphic()) {
        anyhow::bail!("a token is 1 to {TOKEN_BYTES_MAX} printable ASCII characters without spaces");
    }
    if token.len() < TOKEN_BYTES_MIN {
        eprintln!(
            "warning: tokens shorter than {TOKEN_BYTES_MIN} characters are guessable; use `openssl rand -hex 32`"
        );
    }
    println!("{}", hash_token(token).to_hex());
    Ok(())
}

/// `antrean verify-draw FILE`: 0 and a summary when the draw checks out, 1 and the reason when it does not.
fn verify_draw(file: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    match antrean::draw_file::verify_text(&text) {
        Ok(verified) => {
            println!(
                "{}: the draw verifies: the secret matches the commitment and the order of {} tickets recomputes \
                 (place 1: {})",
                file.display(),
                verified.tickets,
                verified.first.as_deref().unwrap_or("nobody")
            );
            Ok(())
        }
        Err(error) => {
            eprintln!("{}: {error}", file.display());
            std::process::exit(1);
        }
    }
}

/// `antrean get-draw`: the published draw as JSON, on standard output or in `output`.
fn get_draw(target: &str, office_id: &str, release_at: &str, output: Option<&std::path::Path>) -> anyhow::Result<()> {
    let release_at_ms = match release_at.parse::<i64>() {
        Ok(milliseconds) => milliseconds,
        Err(_) => release_at
            .parse::<jiff::Timestamp>()
            .with_context(|| format!("--release-at {release_at:?} is neither RFC 3339 nor milliseconds"))?
            .as_millisecond(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let file = runtime.block_on(antrean::draw_file::fetch(target, office_id, release_at_ms))?;
    let text = serde_json::to_string_pretty(&file)? + "\n";
    match output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    if let Some(address) = metrics_address(&config)? {
        match antrean::metrics::install_exporter(address) {
            Ok(()) => tracing::info!(%address, "metrics on http://{address}/metrics"),
            Err(error) => tracing::error!(%address, %error, "metrics exporter not started"),
        }
    }
    let address: SocketAddr = config.server.listen.parse()?;
    let listener = antrean::server::bind(address).await?;
    let local = listener.local_addr()?;
    if config.storage.fsync == Fsync::None {
        tracing::warn!("fsync = none: acknowledged calls can be lost on a crash; for benchmarks only");
    }
    println!("antrean listening on {local} (data in {})", config.storage.data_dir.display());
    antrean::server::run(config, listener, shutdown_signal()).await?;
    Ok(())
}
