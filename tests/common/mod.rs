//! Black-box test harness: starts the real `antrean` binary on a free loopback port with its own data directory, and
//! gives tests generated gRPC clients. The server is killed when the handle drops.

#![allow(dead_code)]

pub mod nats;

use antrean::proto::admin_service_client::AdminServiceClient;
use antrean::proto::booking_service_client::BookingServiceClient;
use antrean::proto::{self, Applicant, Date, Office, PoolCapacity, SessionTemplate, TimeOfDay};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// A running server.
pub struct Server {
    /// The child process; `None` once it was stopped or killed.
    pub child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// Its data directory (kept across restarts of the same test).
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// How to start a server.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// A configuration file's text (written next to the data directory).
    pub config: Option<String>,
}

impl Server {
    /// Starts a server with a fresh data directory.
    pub fn start() -> Server {
        Server::start_with(Options::default())
    }

    /// Starts a server with `options` and a fresh data directory.
    pub fn start_with(options: Options) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        let mut server = Server::start_in(&data_dir, &options);
        server._temp = Some(temp);
        server
    }

    /// Starts a server on `data_dir` (which may hold an earlier run's state).
    pub fn start_in(data_dir: &Path, options: &Options) -> Server {
        Server::start_logging(data_dir, options, None)
    }

    /// Starts a server on `data_dir` whose log output (standard error) goes to `log` at the `RUST_LOG` filter `filter`
    /// (appended to, so a restart adds to it), or to the test's standard error at `warn` when `log` is `None`.
    pub fn start_logging(data_dir: &Path, options: &Options, log: Option<(&Path, &str)>) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_antrean"));
        command.args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
        if !options.args.iter().any(|arg| arg.starts_with("--metrics-listen")) {
            command.args(["--metrics-listen", ""]);
        }
        command
            .args(&options.args)
            .env("RUST_LOG", log.map_or("warn", |(_, filter)| filter))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(match log {
                Some((path, _)) => Stdio::from(
                    std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open the log file"),
                ),
                None => Stdio::inherit(),
            });
        if let Some(config) = &options.config {
            let path = data_dir.with_extension("toml");
            std::fs::create_dir_all(path.parent().expect("parent")).expect("config dir");
            std::fs::write(&path, config).expect("write config");
            command.arg("--config").arg(path);
        }
        let mut child = command.spawn().expect("start antrean");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read listening line");
        let address = line
            .split_whitespace()
            .find(|word| word.starts_with("127.0.0.1:"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Server { child: Some(child), address, data_dir: data_dir.to_owned(), _temp: None }
    }

    /// A connected channel, once the server is serving (health SERVING), waiting at most 30 s.
    pub async fn channel(&self) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(channel) = Channel::from_shared(format!("http://{}", self.address)).expect("uri").connect().await
            {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
                let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
                if let Ok(response) = health.check(request).await
                    && response.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                {
                    return channel;
                }
            }
            assert!(Instant::now() < deadline, "server at {} did not become ready", self.address);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Booking and admin clients.
    pub async fn clients(&self) -> (BookingServiceClient<Channel>, AdminServiceClient<Channel>) {
        let channel = self.channel().await;
        (BookingServiceClient::new(channel.clone()), AdminServiceClient::new(channel))
    }

    /// Sends SIGTERM and waits for the exit status (at most 30 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM)
            .expect("send SIGTERM to the server");
        wait_with_deadline(&mut child, Duration::from_secs(30))
    }

    /// Kills the process with SIGKILL (a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

static UNIQUE: AtomicU64 = AtomicU64::new(1);

/// A request id unique within this test process.
pub fn request_id(tag: &str) -> String {
    format!("{tag}-{}-{}", std::process::id(), UNIQUE.fetch_add(1, Ordering::Relaxed))
}

/// The date `days` after today in Asia/Jakarta.
pub fn jakarta_date(days: i32) -> Date {
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::get("Asia/Jakarta").expect("zone"));
    let date = now.date().checked_add(jiff::Span::new().days(days)).expect("date");
    Date { year: i32::from(date.year()), month: i32::from(date.month()), day: i32::from(date.day()) }
}

/// A valid applicant number `serial` (distinct serials give distinct NIKs), born 17 August 1985.
pub fn applicant(serial: u32) -> Applicant {
    assert!(serial < 10_000_000, "serial fits 4 digits of serial plus 3 of region");
    let region = 317_101 + serial / 10_000;
    Applicant {
        nik: format!("{region:06}170885{:04}", serial % 10_000),
        full_name: format!("Applicant {serial}"),
        birth_date: Some(Date { year: 1985, month: 8, day: 17 }),
        has_disability: false,
    }
}

/// An office open every day, one session "1300-1500" with `capacity` regular slots (and 2 priority), every date in
/// the 30-day window already released, and the given payment window.
pub fn test_office(office_id: &str, capacity: u32, payment_window_seconds: i64) -> Office {
    Office {
        office_id: office_id.to_owned(),
        display_name: format!("Test office {office_id}"),
        time_zone: "Asia/Jakarta".into(),
        services: vec![proto::ServiceType::NewPassport as i32, proto::ServiceType::Replacement as i32],
        sessions: vec![
            SessionTemplate {
                session_id: "1300-1500".into(),
                starts_at: Some(TimeOfDay { hours: 13, minutes: 0 }),
                ends_at: Some(TimeOfDay { hours: 15, minutes: 0 }),
                capacities: vec![
                    PoolCapacity { pool: proto::Pool::Regular as i32, capacity },
                    PoolCapacity { pool: proto::Pool::Priority as i32, capacity: 2 },
                ],
            },
            SessionTemplate {
                session_id: "1500-1700".into(),
                starts_at: Some(TimeOfDay { hours: 15, minutes: 0 }),
                ends_at: Some(TimeOfDay { hours: 17, minutes: 0 }),
                capacities: vec![PoolCapacity { pool: proto::Pool::Regular as i32, capacity }],
            },
        ],
        working_weekdays: (1..=7).collect(),
        payment_window_seconds,
        booking_horizon_days: 30,
        release_days_before: 30,
        release_time: Some(TimeOfDay { hours: 0, minutes: 0 }),
        city: "Batam".into(),
        province: "Kepulauan Riau".into(),
    }
}

/// Creates `office` through the admin API.
pub async fn create_office(admin: &mut AdminServiceClient<Channel>, office: Office) {
    admin
        .upsert_office(proto::UpsertOfficeRequest { request_id: request_id("office"), office: Some(office) })
        .await
        .expect("create office");
}

/// A hold request for `applicant` in the test office's first session `days` from today.
pub fn hold_request(office_id: &str, days: i32, applicant: Applicant) -> proto::HoldRequest {
    proto::HoldRequest {
        request_id: request_id("hold"),
        office_id: office_id.to_owned(),
        service: proto::ServiceType::NewPassport as i32,
        date: Some(jakarta_date(days)),
        session_id: "1300-1500".into(),
        pool: proto::Pool::Regular as i32,
        applicant: Some(applicant),
        account_id: "account-1".into(),
        admission_token: String::new(),
    }
}

/// The `ErrorInfo.reason` of a status, if any.
pub fn reason(status: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt;
    status.get_error_details().error_info().map(|info| info.reason.clone())
}

/// The sum of the samples of `name` on the node's `/metrics` whose labels include every one of `labels`.
pub async fn metric(port: u16, name: &str, labels: &[&str]) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect to /metrics");
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("response");
    body.lines()
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && labels.iter().all(|label| series.contains(label))
        })
        .map(|(_, value)| value.parse::<f64>().expect("a number"))
        .sum()
}
