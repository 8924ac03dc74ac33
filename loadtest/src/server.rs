//! `--spawn`: runs the server binary as a child process on a free loopback port with a fresh data directory,
//! waits until it answers a health check, and stops it (SIGTERM, then SIGKILL) at the end.
//!
//! This module owns the child's life only; it must not call the booking API.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long the server may take to answer after it was started.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of the server's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 30;

/// A server started by the load generator.
pub struct SpawnedServer {
    child: tokio::process::Child,
    /// Where it listens.
    pub address: SocketAddr,
    /// The temporary directory holding its data directory and log.
    pub work_dir: PathBuf,
    keep: bool,
}

/// The default server binary: `antrean` in the directory of this executable.
pub fn default_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    let dir = exe.parent().context("this executable has no parent directory")?;
    Ok(dir.join(format!("antrean{}", std::env::consts::EXE_SUFFIX)))
}

/// Starts `binary` with `--listen 127.0.0.1:PORT --data-dir DIR --metrics-listen ""` (unless `extra_args` names
/// `--metrics-listen`) and `extra_args`, and waits until it answers.
pub async fn spawn(binary: &Path, extra_args: &[String], keep: bool) -> anyhow::Result<SpawnedServer> {
    if !binary.is_file() {
        bail!(
            "server binary {} not found; build it (cargo build --release --bin antrean) or pass --server-bin",
            binary.display()
        );
    }
    let address = free_loopback_port()?;
    let work_dir = unique_temp_dir()?;
    let data_dir = work_dir.join("data");
    // Private, as the server requires of a data directory that already exists (it holds NIKs and names).
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let log = std::fs::File::create(work_dir.join("server.log")).context("cannot create the server log")?;
    let mut command = tokio::process::Command::new(binary);
    command.arg("--listen").arg(address.to_string()).arg("--data-dir").arg(&data_dir);
    // No Prometheus exporter unless asked for: its default port may be taken by another server on the machine.
    if !extra_args.iter().any(|arg| arg.starts_with("--metrics-listen")) {
        command.arg("--metrics-listen").arg("");
    }
    let child = command
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let mut server = SpawnedServer { child, address, work_dir, keep };
    if let Err(error) = server.wait_ready().await {
        let tail = server.log_tail();
        server.keep = true;
        server.stop().await;
        bail!("{error:#}\n--- server log tail ---\n{tail}");
    }
    Ok(server)
}

impl SpawnedServer {
    /// Retries a health check until the server answers SERVING (or UNIMPLEMENTED: no health service) or [`START_TIMEOUT`].
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let endpoint = Endpoint::from_shared(format!("http://{}", self.address))?
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2));
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited during start-up with {status}");
            }
            if let Ok(channel) = endpoint.connect().await {
                let answer = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;
                match answer {
                    // A server still recovering answers NOT_SERVING: wait for SERVING.
                    Ok(response) if response.get_ref().status() == ServingStatus::Serving => return Ok(()),
                    Ok(_) => {}
                    Err(status) if status.code() == tonic::Code::Unimplemented => return Ok(()),
                    Err(_) => {}
                }
            }
            if Instant::now() >= deadline {
                bail!("the server did not answer on {} within {}s", self.address, START_TIMEOUT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.work_dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the server is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the server: SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; removes its directory unless kept.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // No signal crate: the `kill` utility sends SIGTERM so the server can shut down cleanly.
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
        if self.keep {
            eprintln!("server data and log kept in {}", self.work_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.work_dir);
        }
    }
}

fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free loopback port")?;
    Ok(listener.local_addr()?)
}

fn unique_temp_dir() -> anyhow::Result<PathBuf> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let dir = std::env::temp_dir().join(format!("antrean-loadtest-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
