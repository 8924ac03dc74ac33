//! `cluster`: holds against a cluster of antrean nodes that are already running (`--nodes`), through whichever node
//! serves the offices, as a client of a cluster does: a call refused UNAVAILABLE (a standby, a deposed owner, a node
//! that is down) or left unanswered is sent again, with the same request id, to the next node after the RetryInfo
//! hint, until a node answers it or [`GIVE_UP_AFTER`] has passed. With `--kill-owner-after` the load generator kills
//! the node serving at that moment with SIGKILL (its pid from `--node-pids`); a script may kill it instead.
//!
//! Reports, besides the usual figures, the acknowledged holds per second and the unavailability window: the longest
//! time between two acknowledged holds of one office (a failover shows as that gap), and, when it killed the owner, the
//! time from the kill to the first acknowledged hold after it. Then the usual check runs through the node serving at
//! the end: every acknowledged booking must be there (`lost`) and no session pool above its capacity (`overbooked`).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::check::{self, Ledger};
use crate::cli::target_uri;
use crate::client::{BearerToken, Clients, outcome_of};
use crate::driver::Call;
use crate::random;
use crate::recorder::Outcome;
use crate::scenarios::fixture::ReleaseAt;
use crate::scenarios::steps::{Steps, is_session_full};
use crate::scenarios::{Context, ScenarioRun, new_recorder};

/// How long one hold may go unanswered by every node before it is given up (counted as unresolved).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
/// How long to wait for a node to say SERVING, at the start and before the check.
pub const SERVING_WAIT: Duration = Duration::from_secs(60);
/// Pause before the next node when a refusal carries no RetryInfo.
const RETRY_PAUSE_DEFAULT: Duration = Duration::from_millis(100);
/// Longest pause before the next node, whatever the hint says.
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);
/// Random stream of the session choice.
const STREAM_UNIT: u64 = 0xc105;

/// The owner the load generator killed.
#[derive(Clone, Debug, Serialize)]
pub struct KilledOwner {
    /// Its address.
    pub node: String,
    /// Its process id.
    pub pid: u32,
    /// Seconds from the start of the load to the kill.
    pub at_s: f64,
}

/// What the cluster did under load.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterReport {
    /// The nodes, as given.
    pub nodes: Vec<String>,
    /// Holds answered OK.
    pub holds_acknowledged: u64,
    /// Holds refused because the session was full.
    pub holds_session_full: u64,
    /// Holds refused otherwise (not expected).
    pub holds_refused_otherwise: u64,
    /// Holds no node answered within [`GIVE_UP_AFTER`].
    pub holds_unresolved: u64,
    /// Calls sent again to another node (refused UNAVAILABLE, or unanswered).
    pub resent_elsewhere: u64,
    /// Acknowledged holds per second over the load.
    pub acknowledged_per_s: f64,
    /// The owner killed by `--kill-owner-after`, if any.
    pub killed_owner: Option<KilledOwner>,
    /// Seconds from that kill to the first hold another node acknowledged after it.
    pub kill_to_first_acknowledged_s: Option<f64>,
    /// The longest time between two acknowledged holds of one office (or from the last one to the end of the load), in
    /// seconds: the unavailability window.
    pub unavailability_window_s: f64,
    /// The office of that window.
    pub window_office: Option<String>,
    /// Seconds from the start of the load to the start of that window.
    pub window_started_at_s: Option<f64>,
    /// The node serving at the end, that the check read.
    pub checked_through: String,
    /// Acknowledged bookings the serving node no longer has (or has in an unexplained state): must be 0.
    pub lost: u64,
    /// Session pools above capacity or with inconsistent counts: must be 0.
    pub overbooked: u64,
}

/// The index of the first of `nodes` whose health service says SERVING, waiting up to [`SERVING_WAIT`].
pub async fn serving_node(nodes: &[String], token: &BearerToken) -> anyhow::Result<usize> {
    let deadline = Instant::now() + SERVING_WAIT;
    loop {
        for (index, node) in nodes.iter().enumerate() {
            if is_serving(node, token).await {
                return Ok(index);
            }
        }
        if Instant::now() > deadline {
            bail!("none of {nodes:?} said SERVING within {}s", SERVING_WAIT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn is_serving(node: &str, token: &BearerToken) -> bool {
    let Ok(clients) = Clients::connect(&target_uri(node), 1, 0, Duration::from_secs(2), token.clone()).await else {
        return false;
    };
    let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
    clients.health().check(request).await.is_ok_and(|response| {
        response.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    })
}

/// Runs `cluster`.
pub async fn run(context: &Context) -> anyhow::Result<ScenarioRun> {
    let cli = &context.cli;
    let token = BearerToken::new(cli.token.as_deref())?;
    let mut nodes = Vec::new();
    for node in &cli.nodes {
        let clients = Clients::connect(&target_uri(node), cli.connections, 0, cli.call_timeout, token.clone())
            .await
            .with_context(|| format!("cannot connect to node {node}"))?;
        nodes.push(clients);
    }
    let fixture = context.create_fixture(ReleaseAt::AlreadyOpen).await?;
    let ledger = Arc::new(Ledger::default());
    let recorder = new_recorder();
    let steps = context.steps(fixture.clone(), recorder.clone(), ledger.clone());
    let first_serving = serving_node(&cli.nodes, &token).await?;
    let shared = Arc::new(Shared::new(nodes, first_serving, fixture.offices.len()));
    let killer = cli.kill_owner_after.map(|after| {
        let (shared, addresses, pids) = (Arc::clone(&shared), cli.nodes.clone(), cli.node_pids.clone());
        tokio::spawn(async move { kill_owner(&shared, after, &addresses, &pids).await })
    });
    let seed = context.seed;
    let driver = {
        let shared = Arc::clone(&shared);
        context
            .drive(context.plan(), recorder.clone(), move |call: Call| {
                let (steps, shared) = (steps.clone(), Arc::clone(&shared));
                async move { hold_anywhere(&steps, &shared, seed, call).await }
            })
            .await
    };
    if let Some(killer) = killer {
        killer.await.context("owner killer")??;
    }
    let serving = serving_node(&cli.nodes, &token).await?;
    if !cli.quiet {
        eprintln!("checking {} bookings through {} ...", ledger.len(), cli.nodes[serving]);
    }
    let correctness = check::run(&shared.nodes[serving], &fixture, &ledger).await;
    let report = shared.report(&cli.nodes, &cli.nodes[serving], driver.elapsed_s, &fixture.offices, &correctness);
    if !cli.quiet {
        eprintln!("{}", describe(&report));
    }
    Ok(ScenarioRun {
        cluster: Some(report),
        correctness: Some(correctness),
        ..ScenarioRun::new(recorder, driver, Some(fixture), ledger)
    })
}

/// What the calls share: the nodes, which one served last, the counts and the gaps between acknowledgements.
struct Shared {
    nodes: Vec<Clients>,
    serving: AtomicUsize,
    start: Instant,
    acknowledged: AtomicU64,
    session_full: AtomicU64,
    refused_otherwise: AtomicU64,
    unresolved: AtomicU64,
    resent: AtomicU64,
    gaps: Mutex<Vec<OfficeGaps>>,
    kill: Mutex<KillState>,
}

#[derive(Clone, Copy, Default)]
struct OfficeGaps {
    last_acknowledged: Option<Instant>,
    longest: Duration,
    longest_started: Option<Instant>,
}

#[derive(Default)]
struct KillState {
    /// The owner killed, its index in `--nodes` and when.
    killed: Option<(KilledOwner, usize, Instant)>,
    first_acknowledged_after: Option<Duration>,
}

impl Shared {
    fn new(nodes: Vec<Clients>, serving: usize, offices: usize) -> Shared {
        Shared {
            nodes,
            serving: AtomicUsize::new(serving),
            start: Instant::now(),
            acknowledged: AtomicU64::new(0),
            session_full: AtomicU64::new(0),
            refused_otherwise: AtomicU64::new(0),
            unresolved: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            gaps: Mutex::new(vec![OfficeGaps::default(); offices]),
            kill: Mutex::new(KillState::default()),
        }
    }

    /// Notes a hold of office `office` acknowledged by node `node`, now.
    fn acknowledged(&self, office: usize, node: usize) {
        self.acknowledged.fetch_add(1, Ordering::Relaxed);
        let mut gaps = self.gaps.lock().expect("gaps poisoned");
        // Taken under the lock, so the instants of one office never go back.
        let now = Instant::now();
        let office = &mut gaps[office];
        if let Some(last) = office.last_acknowledged
            && now - last > office.longest
        {
            office.longest = now - last;
            office.longest_started = Some(last);
        }
        office.last_acknowledged = Some(now);
        drop(gaps);
        let mut kill = self.kill.lock().expect("kill poisoned");
        // An answer the killed node sent just before it died is no sign of the partition being back.
        if let Some((_, killed_node, killed_at)) = &kill.killed
            && *killed_node != node
            && kill.first_acknowledged_after.is_none()
        {
            kill.first_acknowledged_after = Some(now - *killed_at);
        }
    }

    fn report(
        &self,
        addresses: &[String],
        checked_through: &str,
        elapsed_s: f64,
        offices: &[String],
        correctness: &check::Correctness,
    ) -> ClusterReport {
        let end = self.start + Duration::from_secs_f64(elapsed_s);
        let mut gaps = self.gaps.lock().expect("gaps poisoned").clone();
        // An office that never came back is unavailable from its last acknowledged hold to the end of the load.
        for office in &mut gaps {
            if let Some(last) = office.last_acknowledged
                && end.saturating_duration_since(last) > office.longest
            {
                office.longest = end.saturating_duration_since(last);
                office.longest_started = Some(last);
            }
        }
        let widest = gaps.iter().enumerate().max_by_key(|(_, gaps)| gaps.longest);
        let kill = self.kill.lock().expect("kill poisoned");
        let acknowledged = self.acknowledged.load(Ordering::Relaxed);
        ClusterReport {
            nodes: addresses.to_vec(),
            holds_acknowledged: acknowledged,
            holds_session_full: self.session_full.load(Ordering::Relaxed),
            holds_refused_otherwise: self.refused_otherwise.load(Ordering::Relaxed),
            holds_unresolved: self.unresolved.load(Ordering::Relaxed),
            resent_elsewhere: self.resent.load(Ordering::Relaxed),
            acknowledged_per_s: if elapsed_s > 0.0 { acknowledged as f64 / elapsed_s } else { 0.0 },
            killed_owner: kill.killed.as_ref().map(|(owner, _, _)| owner.clone()),
            kill_to_first_acknowledged_s: kill.first_acknowledged_after.map(|gap| gap.as_secs_f64()),
            unavailability_window_s: widest.map_or(0.0, |(_, gaps)| gaps.longest.as_secs_f64()),
            window_office: widest
                .filter(|(_, gaps)| gaps.longest_started.is_some())
                .map(|(index, _)| offices[index].clone()),
            window_started_at_s: widest
                .and_then(|(_, gaps)| gaps.longest_started)
                .map(|started| (started - self.start).as_secs_f64()),
            checked_through: checked_through.to_string(),
            lost: correctness.lost,
            overbooked: correctness.overbooked,
        }
    }
}

/// One hold of a fresh applicant on a random session, sent to the node that served last, then to the others in turn.
async fn hold_anywhere(steps: &Steps, shared: &Shared, seed: u64, call: Call) {
    let units = &steps.fixture.units;
    let unit = &units[random::below(seed, STREAM_UNIT, call.index, units.len() as u64) as usize];
    let request = steps.hold_request(call.index, 0, unit, "");
    let mut node = shared.serving.load(Ordering::Relaxed);
    loop {
        let status = match shared.nodes[node].booking().hold(request.clone()).await {
            Ok(response) => {
                shared.serving.store(node, Ordering::Relaxed);
                steps.recorder.record("Hold", call.due, &Outcome::OK);
                steps.ledger.observe(&response.into_inner().booking.unwrap_or_default());
                shared.acknowledged(unit.office, node);
                return;
            }
            Err(status) => status,
        };
        if !is_resent_elsewhere(&status) {
            steps.recorder.record("Hold", call.due, &outcome_of(&status));
            let count = if is_session_full(&status) { &shared.session_full } else { &shared.refused_otherwise };
            count.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if call.due.elapsed() > GIVE_UP_AFTER {
            steps.recorder.record("Hold", call.due, &outcome_of(&status));
            shared.unresolved.fetch_add(1, Ordering::Relaxed);
            return;
        }
        shared.resent.fetch_add(1, Ordering::Relaxed);
        let hint = status.get_details_retry_info().and_then(|info| info.retry_delay);
        tokio::time::sleep(hint.unwrap_or(RETRY_PAUSE_DEFAULT).min(RETRY_PAUSE_MAX)).await;
        node = (node + 1) % shared.nodes.len();
    }
}

/// Whether the cluster may not have decided a call that ended with `status` (no node, a standby, a deposed owner, no
/// answer in time): it is sent again elsewhere with the same request id.
fn is_resent_elsewhere(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted
    )
}

/// Kills the node serving `after` the start of the load with SIGKILL.
async fn kill_owner(shared: &Shared, after: Duration, addresses: &[String], pids: &[u32]) -> anyhow::Result<()> {
    tokio::time::sleep_until((shared.start + after).into()).await;
    let owner = shared.serving.load(Ordering::Relaxed);
    let pid = pids[owner];
    let process = rustix::process::Pid::from_raw(pid as i32).context("a process id above 0")?;
    rustix::process::kill_process(process, rustix::process::Signal::KILL)
        .with_context(|| format!("cannot kill node {} (pid {pid})", addresses[owner]))?;
    let killed_at = Instant::now();
    let killed = KilledOwner { node: addresses[owner].clone(), pid, at_s: (killed_at - shared.start).as_secs_f64() };
    eprintln!("killed the owner {} (pid {pid}) with SIGKILL at {:.1}s", killed.node, killed.at_s);
    shared.kill.lock().expect("kill poisoned").killed = Some((killed, owner, killed_at));
    Ok(())
}

/// One line for the text report.
pub fn describe(report: &ClusterReport) -> String {
    let kill = match (&report.killed_owner, report.kill_to_first_acknowledged_s) {
        (Some(owner), Some(back)) => {
            format!(
                "; owner {} killed at {:.1}s, first hold acknowledged by another node {back:.2}s later",
                owner.node, owner.at_s
            )
        }
        (Some(owner), None) => {
            format!("; owner {} killed at {:.1}s, no hold acknowledged after it", owner.node, owner.at_s)
        }
        _ => String::new(),
    };
    format!(
        "cluster: {} holds acknowledged ({:.0}/s), {} session full, {} refused otherwise, {} unresolved, {} resent to \
         another node{kill}; unavailability window (longest gap between acknowledged holds of one office) {:.2}s; \
         checked through {}: lost {}, overbooked {}",
        report.holds_acknowledged,
        report.acknowledged_per_s,
        report.holds_session_full,
        report.holds_refused_otherwise,
        report.holds_unresolved,
        report.resent_elsewhere,
        report.unavailability_window_s,
        report.checked_through,
        report.lost,
        report.overbooked
    )
}
