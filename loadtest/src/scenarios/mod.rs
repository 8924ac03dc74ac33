//! The scenarios and what they share: the run context, the load phase with its progress bar, and the result handed
//! to the check and the report. Each scenario module sets up its quota, then drives its journey.

pub mod bulk_holds;
pub mod cluster;
pub mod fixture;
pub mod hold;
pub mod late_payments;
pub mod lifecycle;
pub mod memory;
pub mod ping;
pub mod recovery;
pub mod refusals;
pub mod soak;
pub mod spike;
pub mod steps;
pub mod tickets;
pub mod waiting_room;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::check::{Correctness, Ledger};
use crate::cli::{Cli, Pacing, Scenario};
use crate::client::Clients;
use crate::driver::{self, Call, DriverStats, Plan, Timetable};
use crate::nik::ApplicantGenerator;
use crate::progress::Progress;
use crate::recorder::Recorder;
use crate::server::SpawnedServer;
use fixture::{Fixture, FixtureSpec, ReleaseAt};
use steps::Steps;

/// What every scenario gets.
pub struct Context {
    /// The command line.
    pub cli: Cli,
    /// Connections to the server.
    pub clients: Arc<Clients>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Short id of this run, in every id it creates.
    pub run_id: String,
    /// The server's process id when known (`--spawn` or `--server-pid`), to read its memory.
    pub server_pid: Option<u32>,
    /// The server this process started (`--spawn`), for `recovery` to kill and restart.
    pub spawned: Option<Arc<tokio::sync::Mutex<SpawnedServer>>>,
}

/// What a scenario leaves for the check and the report.
pub struct ScenarioRun {
    /// Measurements of the load phase.
    pub recorder: Arc<Recorder>,
    /// What the driver did.
    pub driver: DriverStats,
    /// The quota created, if any (`ping` creates none).
    pub fixture: Option<Arc<Fixture>>,
    /// Bookings answered OK.
    pub ledger: Arc<Ledger>,
    /// The waiting room's counts (`spike` through the waiting room).
    pub waiting_room: Option<waiting_room::WaitingRoomVerdict>,
    /// The server's memory per waiting ticket (`tickets`).
    pub memory: Option<tickets::MemoryReport>,
    /// The server's memory per booking (`memory`).
    pub booking_memory: Option<memory::BookingMemory>,
    /// The kill and restart (`recovery`).
    pub recovery: Option<recovery::RecoveryReport>,
    /// Holds through a cluster, its unavailability window and its check (`cluster`).
    pub cluster: Option<cluster::ClusterReport>,
    /// The correctness check, when the scenario ran it itself (`recovery`: against the restarted server).
    pub correctness: Option<Correctness>,
}

impl ScenarioRun {
    /// A run with its measurements, quota and ledger, and nothing scenario-specific.
    pub fn new(
        recorder: Arc<Recorder>,
        driver: DriverStats,
        fixture: Option<Arc<Fixture>>,
        ledger: Arc<Ledger>,
    ) -> ScenarioRun {
        ScenarioRun {
            recorder,
            driver,
            fixture,
            ledger,
            waiting_room: None,
            memory: None,
            booking_memory: None,
            recovery: None,
            cluster: None,
            correctness: None,
        }
    }
}

/// Runs the scenario named on the command line.
pub async fn run(context: &Context) -> anyhow::Result<ScenarioRun> {
    match context.cli.scenario {
        Scenario::Ping => ping::run(context).await,
        Scenario::Hold => hold::run(context).await,
        Scenario::Lifecycle => lifecycle::run(context).await,
        Scenario::Spike => spike::run(context).await,
        Scenario::Soak => soak::run(context).await,
        Scenario::Refusals => refusals::run(context).await,
        Scenario::Tickets => tickets::run(context).await,
        Scenario::Memory => memory::run(context).await,
        Scenario::Recovery => recovery::run(context).await,
        Scenario::Cluster => cluster::run(context).await,
        Scenario::CompareRedis | Scenario::ComparePostgres => {
            unreachable!("the comparison scenarios do not talk to antrean")
        }
    }
}

impl Context {
    /// The driver plan of `--concurrency` / `--rate`.
    pub fn plan(&self) -> Plan {
        match self.cli.pacing() {
            Pacing::Closed { tasks } => Plan::Closed { tasks },
            Pacing::Open { rate_per_s, outstanding_max } => {
                Plan::Open { timetable: Timetable::Rate(rate_per_s), outstanding_max }
            }
            Pacing::Arrivals { .. } => unreachable!("spike builds its own plan from its arrivals"),
        }
    }

    /// The quota described by the flags, opening `release` after setup, without a waiting room.
    pub fn fixture_spec(&self, release: ReleaseAt) -> FixtureSpec {
        FixtureSpec {
            offices: self.cli.offices(),
            days: self.cli.days,
            slots: self.cli.slots(),
            payment_window: self.cli.payment_window(),
            release_after_setup: release,
            waiting_room: false,
        }
    }

    /// Creates the quota described by the flags, opening `release` after setup.
    pub async fn create_fixture(&self, release: ReleaseAt) -> anyhow::Result<Arc<Fixture>> {
        self.create_fixture_from(&self.fixture_spec(release), &self.run_id).await
    }

    /// Creates the quota of `spec` with office ids `lt-<id>-<k>`.
    pub async fn create_fixture_from(&self, spec: &FixtureSpec, id: &str) -> anyhow::Result<Arc<Fixture>> {
        let fixture = fixture::create(&self.clients, id, spec).await?;
        if !self.cli.quiet {
            eprintln!(
                "fixture: {} offices x {} dates x {} sessions = {} slots, payment window {}s{}",
                fixture.offices.len(),
                fixture.dates.len(),
                fixture::SESSIONS.len(),
                fixture.slots(),
                fixture.payment_window.as_secs(),
                if fixture.waiting_room { ", behind a waiting room" } else { "" }
            );
        }
        Ok(Arc::new(fixture))
    }

    /// The steps of a journey against `fixture`, measured by `recorder`.
    pub fn steps(&self, fixture: Arc<Fixture>, recorder: Arc<Recorder>, ledger: Arc<Ledger>) -> Arc<Steps> {
        Arc::new(Steps {
            clients: self.clients.clone(),
            recorder,
            ledger,
            fixture,
            run_id: self.run_id.clone(),
            // The run id goes in so that runs against the same server never share applicants (the server allows one
            // active booking per applicant); every other choice depends on the seed alone.
            applicants: ApplicantGenerator::new(crate::random::mix(self.seed, 0xa991, id_number(&self.run_id))),
        })
    }

    /// Runs the load phase: `call` paced by `plan` for the run's duration, with a progress bar.
    pub async fn drive<F, Fut>(&self, plan: Plan, recorder: Arc<Recorder>, call: F) -> DriverStats
    where
        F: Fn(Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let duration = self.cli.duration();
        let progress = Progress::start(self.cli.scenario.name(), duration, recorder.clone(), self.cli.quiet);
        let stats = driver::run(plan, recorder.start(), duration, self.cli.max_requests, recorder, call).await;
        progress.finish();
        stats
    }
}

/// The run id as a number.
fn id_number(run_id: &str) -> u64 {
    run_id.bytes().fold(0u64, |value, byte| value.wrapping_mul(131).wrapping_add(u64::from(byte)))
}

/// A recorder starting now.
pub fn new_recorder() -> Arc<Recorder> {
    Arc::new(Recorder::new(driver::now()))
}

/// Sleeps until `until` unless that is after `deadline`; returns false when the deadline came first.
pub async fn sleep_before(until: Instant, deadline: Instant) -> bool {
    if until >= deadline {
        tokio::time::sleep_until(deadline.into()).await;
        return false;
    }
    tokio::time::sleep_until(until.into()).await;
    true
}

/// A short pause with jitter in `[base, 2 * base)`, derived from `(seed, index)`.
pub fn backoff(seed: u64, index: u64, base: Duration) -> Duration {
    base.mul_f64(1.0 + crate::random::unit(seed, 0xbac, index))
}
