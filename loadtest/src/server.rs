//! `--spawn`: runs the server binary as a child process on a free loopback port with a fresh data directory, on the
//! CPUs of `--server-cpus` when given, waits until it answers a health check, and stops it (SIGTERM, then SIGKILL) at
//! the end. For `recovery` it also kills the server with SIGKILL and starts it again on the same data directory and
//! port, timing exec to SERVING.
//!
//! This module owns the child's life only; it must not call the booking API.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Serialize;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::pinning::{CpuList, pin_current_thread};

/// How long the server may take to answer after it was started.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of the server's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 30;

/// How often readiness is polled after the first start.
const READY_POLL: Duration = Duration::from_millis(100);
/// How often readiness is polled after a restart: every few milliseconds, so exec-to-SERVING is measured to within
/// that.
const RESTART_POLL: Duration = Duration::from_millis(2);

/// What to run: the binary, its extra arguments and the CPUs it may use.
#[derive(Clone, Debug)]
pub struct ServerCommand {
    /// The server binary.
    pub binary: PathBuf,
    /// Extra arguments after `--listen`, `--data-dir` and `--metrics-listen`.
    pub extra_args: Vec<String>,
    /// The CPUs the server runs on (`--server-cpus`); all when `None`.
    pub cpus: Option<CpuList>,
}

/// A server started by the load generator.
pub struct SpawnedServer {
    child: tokio::process::Child,
    /// Where it listens.
    pub address: SocketAddr,
    /// The temporary directory holding its data directory and log.
    pub work_dir: PathBuf,
    data_dir: PathBuf,
    command: ServerCommand,
    keep: bool,
}

/// What a kill and restart found and took (`recovery`).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Restart {
    /// The data directory at the instant of the kill.
    pub data_at_kill: DataDirFacts,
    /// Process id of the server that was killed.
    pub killed_pid: u32,
    /// Process id of the restarted server.
    pub restarted_pid: u32,
    /// From exec of the restarted server to its first accepted connection, in milliseconds.
    pub exec_to_listening_ms: f64,
    /// From exec of the restarted server to its health service answering SERVING, in milliseconds.
    pub exec_to_serving_ms: f64,
}

/// What lies in a data directory: log segments under `wal/` and snapshots under `snapshots/`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct DataDirFacts {
    /// Files in `wal/`.
    pub wal_segments: u64,
    /// Bytes of the files in `wal/`.
    pub wal_bytes: u64,
    /// Files in `snapshots/`.
    pub snapshots: u64,
    /// Bytes of the files in `snapshots/`.
    pub snapshot_bytes: u64,
}

/// When a starting server first took a connection and answered SERVING.
struct Readiness {
    listening_at: Instant,
    serving_at: Instant,
}

/// The default server binary: `antrean` in the directory of this executable.
pub fn default_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    let dir = exe.parent().context("this executable has no parent directory")?;
    Ok(dir.join(format!("antrean{}", std::env::consts::EXE_SUFFIX)))
}

/// Starts the server of `command` with `--listen 127.0.0.1:PORT --data-dir DIR --metrics-listen ""` (unless its
/// extra arguments name `--metrics-listen`) and its extra arguments, on its CPUs, and waits until it answers.
pub async fn spawn(command: ServerCommand, keep: bool) -> anyhow::Result<SpawnedServer> {
    if !command.binary.is_file() {
        bail!(
            "server binary {} not found; build it (cargo build --release --bin antrean) or pass --server-bin",
            command.binary.display()
        );
    }
    let address = free_loopback_port()?;
    let work_dir = unique_temp_dir()?;
    let data_dir = work_dir.join("data");
    // Private, as the server requires of a data directory that already exists (it holds NIKs and names).
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let (child, _) = start(&command, address, &data_dir, &work_dir)?;
    let mut server = SpawnedServer { child, address, work_dir, data_dir, command, keep };
    if let Err(error) = server.wait_ready(READY_POLL).await.map(|_| ()) {
        let tail = server.log_tail();
        server.keep = true;
        server.stop().await;
        bail!("{error:#}\n--- server log tail ---\n{tail}");
    }
    Ok(server)
}

/// Starts one server process, its output appended to `server.log` in `work_dir`; returns it with the instant of exec.
fn start(
    command: &ServerCommand,
    address: SocketAddr,
    data_dir: &Path,
    work_dir: &Path,
) -> anyhow::Result<(tokio::process::Child, Instant)> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(work_dir.join("server.log"))
        .context("cannot open the server log")?;
    let mut process = tokio::process::Command::new(&command.binary);
    process.arg("--listen").arg(address.to_string()).arg("--data-dir").arg(data_dir);
    // No Prometheus exporter unless asked for: its default port may be taken by another server on the machine.
    if !command.extra_args.iter().any(|arg| arg.starts_with("--metrics-listen")) {
        process.arg("--metrics-listen").arg("");
    }
    process
        .args(&command.extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    let exec = |process: &mut tokio::process::Command| {
        let exec_at = Instant::now();
        let child = process.spawn().with_context(|| format!("cannot start {}", command.binary.display()))?;
        Ok((child, exec_at))
    };
    let Some(cpus) = &command.cpus else {
        return exec(&mut process);
    };
    // A child inherits the CPU mask of the thread that forks it: fork from a thread pinned to the server's CPUs, so
    // the server is pinned from its first instruction (and this process's own threads keep theirs). The thread
    // enters the runtime so that tokio can watch the child.
    let runtime = tokio::runtime::Handle::current();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                pin_current_thread(cpus)?;
                let _runtime = runtime.enter();
                exec(&mut process)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the thread starting the server panicked"))?
    })
}

impl SpawnedServer {
    /// Retries a health check every `poll` until the server answers SERVING (or UNIMPLEMENTED: no health service) or
    /// [`START_TIMEOUT`].
    async fn wait_ready(&mut self, poll: Duration) -> anyhow::Result<Readiness> {
        let deadline = Instant::now() + START_TIMEOUT;
        let endpoint = Endpoint::from_shared(format!("http://{}", self.address))?
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2));
        let mut channel = None;
        let mut listening_at = None;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited during start-up with {status}");
            }
            if channel.is_none() {
                channel = endpoint.connect().await.ok();
                if channel.is_some() {
                    listening_at.get_or_insert_with(Instant::now);
                }
            }
            if let Some(open) = &channel {
                let answer = HealthClient::new(open.clone()).check(HealthCheckRequest { service: String::new() }).await;
                let listening_at = listening_at.unwrap_or_else(Instant::now);
                match answer {
                    // A server still recovering answers NOT_SERVING: wait for SERVING.
                    Ok(response) if response.get_ref().status() == ServingStatus::Serving => {
                        return Ok(Readiness { listening_at, serving_at: Instant::now() });
                    }
                    Ok(_) => {}
                    Err(status) if status.code() == tonic::Code::Unimplemented => {
                        return Ok(Readiness { listening_at, serving_at: Instant::now() });
                    }
                    Err(_) => channel = None,
                }
            }
            if Instant::now() >= deadline {
                bail!("the server did not answer on {} within {}s", self.address, START_TIMEOUT.as_secs());
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Kills the server with SIGKILL, starts the same binary with the same arguments, data directory, port and CPUs,
    /// and waits until it answers SERVING, timing that from exec.
    pub async fn kill_and_restart(&mut self) -> anyhow::Result<Restart> {
        let killed_pid = self.child.id().context("the server is not running")?;
        let data_at_kill = DataDirFacts::read(&self.data_dir)?;
        // SIGKILL: no shutdown path runs, as in a crash.
        self.child.start_kill().context("cannot kill the server")?;
        self.child.wait().await.context("cannot wait for the killed server")?;
        let (child, exec_at) = start(&self.command, self.address, &self.data_dir, &self.work_dir)?;
        self.child = child;
        let restarted_pid = self.child.id().context("the restarted server has no process id")?;
        let readiness = self.wait_ready(RESTART_POLL).await.map_err(|error| {
            self.keep = true;
            anyhow::anyhow!("{error:#}\n--- server log tail ---\n{}", self.log_tail())
        })?;
        let since_exec = |instant: Instant| instant.saturating_duration_since(exec_at).as_secs_f64() * 1000.0;
        Ok(Restart {
            data_at_kill,
            killed_pid,
            restarted_pid,
            exec_to_listening_ms: since_exec(readiness.listening_at),
            exec_to_serving_ms: since_exec(readiness.serving_at),
        })
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
    pub async fn stop(&mut self) {
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

impl DataDirFacts {
    /// Counts the files of `data_dir/wal` and `data_dir/snapshots` (a missing directory counts as empty).
    pub fn read(data_dir: &Path) -> anyhow::Result<DataDirFacts> {
        let (wal_segments, wal_bytes) = files_in(&data_dir.join("wal"))?;
        let (snapshots, snapshot_bytes) = files_in(&data_dir.join("snapshots"))?;
        Ok(DataDirFacts { wal_segments, wal_bytes, snapshots, snapshot_bytes })
    }
}

/// The number and total size of the regular files directly in `dir`.
fn files_in(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", dir.display())),
    };
    let (mut count, mut bytes) = (0, 0);
    for entry in entries {
        let metadata = entry?.metadata()?;
        if metadata.is_file() {
            count += 1;
            bytes += metadata.len();
        }
    }
    Ok((count, bytes))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_facts_count_files() {
        let dir = unique_temp_dir().unwrap();
        assert_eq!(DataDirFacts::read(&dir).unwrap().wal_segments, 0);
        std::fs::create_dir_all(dir.join("wal")).unwrap();
        std::fs::create_dir_all(dir.join("snapshots")).unwrap();
        std::fs::write(dir.join("wal/wal-1.log"), [0u8; 10]).unwrap();
        std::fs::write(dir.join("wal/wal-2.log"), [0u8; 5]).unwrap();
        std::fs::write(dir.join("snapshots/snap-1.snap"), [0u8; 7]).unwrap();
        let facts = DataDirFacts::read(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((facts.wal_segments, facts.wal_bytes, facts.snapshots, facts.snapshot_bytes), (2, 15, 1, 7));
    }
}
