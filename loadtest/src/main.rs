//! `loadtest`: drives one load scenario against an antrean server, then checks the server's state against what it
//! was told, and reports throughput, latency, errors and correctness. Exits with 2 when a correctness count is not 0.
//!
//! Layout:
//! - `cli`: flags, limits, the loopback-only rule;
//! - `server`: `--spawn`, the server as a child process (and its kill and restart for `recovery`);
//! - `pinning`: `--server-cpus` and `--client-cpus`, CPU affinity read back for the report;
//! - `client`: channels, typed clients, status mapping; `proto`: the generated client;
//! - `nik`: valid, distinct applicants; `calendar`, `random`: dates and seeded choices;
//! - `driver`: closed and open loop; `recorder`: histograms and series; `progress`: the bar;
//! - `scenarios`: `ping`, `hold`, `lifecycle`, `spike`, `soak` and their shared steps and fixture;
//! - `scenarios`: also `cluster` (holds through whichever node of a cluster serves, across a failover),
//!   `refusals` (holds that must be refused), `tickets` (memory per waiting ticket), `memory`
//!   (memory per booking), `recovery` (kill -9 and restart) and the spike's waiting-room gate;
//! - `compare`: the same hold workload against Redis (Lua) and PostgreSQL, for `compare/run.sh`;
//! - `check`: correctness; `report`: table and JSON; `plot`: SVG.

mod calendar;
mod check;
mod cli;
mod client;
mod compare;
mod driver;
mod nik;
mod pinning;
mod plot;
mod progress;
mod proto;
mod random;
mod recorder;
mod report;
mod scenarios;
mod server;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;

use crate::cli::{Cli, target_uri};
use crate::client::{BearerToken, Clients};
use crate::pinning::Pinning;
use crate::report::RunFacts;
use crate::scenarios::Context;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = cli.validate() {
        eprintln!("loadtest: {error:#}");
        return ExitCode::from(64);
    }
    // Pinned before the runtime exists, so that every thread it starts inherits the CPUs.
    if let Some(cpus) = &cli.client_cpus
        && let Err(error) = pinning::pin_current_thread(cpus)
    {
        eprintln!("loadtest: {error:#}");
        return ExitCode::FAILURE;
    }
    // Tokio's default worker count is the CPUs this process may use, so a pinned client gets one worker per CPU.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let pinning = Pinning {
        server_cpus: cli.server_cpus.as_ref().map(ToString::to_string),
        client_cpus: cli.client_cpus.as_ref().map(ToString::to_string),
        client_cpus_allowed: pinning::allowed_cpus(std::process::id()).ok(),
        client_worker_threads: runtime.metrics().num_workers(),
        ..Pinning::default()
    };
    match runtime.block_on(run(cli, pinning)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(error) => {
            eprintln!("loadtest: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything; `Ok(false)` when a correctness count is not zero.
async fn run(mut cli: Cli, mut pinning: Pinning) -> anyhow::Result<bool> {
    let seed = cli
        .seed
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |time| time.as_nanos() as u64));
    let run_id = run_id(seed);
    if !cli.scenario.is_antrean() {
        return run_compare(cli, seed, run_id, pinning).await;
    }
    let mut spawned = None;
    let target = if cli.scenario == cli::Scenario::Cluster {
        // The quota is created through the node serving now; the calls go to every node.
        let token = BearerToken::new(cli.token.as_deref())?;
        cli.nodes[scenarios::cluster::serving_node(&cli.nodes, &token).await?].clone()
    } else if cli.spawn {
        let binary = match &cli.server_bin {
            Some(path) => path.clone(),
            None => server::default_binary()?,
        };
        cli.server_args = scenarios::spike::spawned_server_args(cli.scenario, &cli.server_args)?;
        let command =
            server::ServerCommand { binary, extra_args: cli.server_args.clone(), cpus: cli.server_cpus.clone() };
        let server = server::spawn(command.clone(), cli.keep_data).await?;
        let address = server.address.to_string();
        if !cli.quiet {
            eprintln!("spawned {} on {address} (work dir {})", command.binary.display(), server.work_dir.display());
        }
        if let Some(pid) = server.pid() {
            pinning.server_cpus_allowed = pinning::allowed_cpus(pid).ok();
            pinning.server_threads = pinning::thread_count(pid).ok();
        }
        spawned = Some(Arc::new(tokio::sync::Mutex::new(server)));
        address
    } else {
        cli.target.clone()
    };
    if !cli.quiet {
        eprintln!("pinning: {}", pinning.describe());
    }
    let server_pid = match &spawned {
        Some(server) => server.lock().await.pid(),
        None => cli.server_pid,
    };
    let result = run_against(cli, &target, Run { seed, run_id, server_pid, spawned: spawned.clone(), pinning }).await;
    if let Some(server) = spawned {
        let mut server = server.lock().await;
        if !server.is_running() {
            eprintln!("warning: the spawned server exited during the run; log tail:\n{}", server.log_tail());
        }
        server.stop().await;
    }
    result
}

/// What one run against antrean is given besides the command line.
struct Run {
    seed: u64,
    run_id: String,
    server_pid: Option<u32>,
    spawned: Option<Arc<tokio::sync::Mutex<server::SpawnedServer>>>,
    pinning: Pinning,
}

async fn run_against(cli: Cli, target: &str, run: Run) -> anyhow::Result<bool> {
    let Run { seed, run_id, server_pid, spawned, pinning } = run;
    let token = BearerToken::new(cli.token.as_deref())?;
    // Only the spike's waiting room keeps streams open (its Watch streams, at most `--watchers-max`).
    let streams = if cli.scenario == cli::Scenario::Spike && !cli.no_waiting_room { cli.watchers_max } else { 0 };
    let clients =
        Arc::new(Clients::connect(&target_uri(target), cli.connections, streams, cli.call_timeout, token).await?);
    let facts = RunFacts {
        scenario: cli.scenario.name(),
        target: target.to_string(),
        spawned: spawned.is_some(),
        pinning,
        seed,
        run_id: run_id.clone(),
        pacing: cli.pacing(),
        connections: cli.connections,
        duration_s: cli.duration().as_secs_f64(),
    };
    let (json, plot, no_check, quiet) = (cli.json.clone(), cli.plot.clone(), cli.no_check, cli.quiet);
    let server_args = if spawned.is_some() { cli.server_args.clone() } else { Vec::new() };
    let rss_before = server_pid.and_then(|pid| scenarios::tickets::resident_bytes(pid).ok());
    let context = Context { cli, clients: clients.clone(), seed, run_id, server_pid, spawned };
    let mut outcome = scenarios::run(&context).await?;
    let mut correctness = match (&outcome.fixture, no_check) {
        (Some(_), false) if outcome.correctness.is_some() => outcome.correctness.take(),
        (Some(fixture), false) => {
            if !quiet {
                eprintln!(
                    "checking {} bookings and the sessions of {} offices ...",
                    outcome.ledger.len(),
                    fixture.offices.len()
                );
            }
            Some(check::run(&clients, fixture, &outcome.ledger).await)
        }
        _ => None,
    };
    if let (Some(correctness), Some(verdict)) = (correctness.as_mut(), outcome.waiting_room.as_ref()) {
        correctness.unterminated = verdict.unterminated;
        correctness.inversions = verdict.inversions;
        correctness.admission_order_inversions = verdict.admission_order_inversions;
    }
    let summary = outcome.recorder.summary();
    let mut report = report::build(facts, &summary, &outcome.driver, correctness, outcome.fixture.as_deref());
    report.memory = outcome.memory;
    report.booking_memory = outcome.booking_memory;
    report.recovery = outcome.recovery;
    report.cluster = outcome.cluster;
    report.server_args = server_args;
    report.stream_connections = clients.stream_connections();
    let rss_after = server_pid.and_then(|pid| scenarios::tickets::resident_bytes(pid).ok());
    if let (Some((before, _)), Some((after, peak))) = (rss_before, rss_after) {
        let mib = scenarios::tickets::mib;
        report.server_memory = Some(report::ServerMemory {
            rss_before_mib: mib(before),
            rss_after_mib: mib(after),
            rss_peak_mib: mib(peak),
        });
    }
    report.waiting_room = outcome.waiting_room.map(|verdict| verdict.answers);
    write_report(&report, json.as_deref(), plot.as_deref())
}

/// Prints the table, writes the JSON and the plot when asked; `Ok(false)` when a correctness count is not zero.
fn write_report(
    report: &report::Report,
    json: Option<&std::path::Path>,
    plot: Option<&std::path::Path>,
) -> anyhow::Result<bool> {
    print!("{}", report::table(report));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = plot {
        plot::write_svg(report, path)?;
    }
    Ok(!report.correctness.failed())
}

/// Runs `compare-redis` or `compare-postgres` against `--target`.
async fn run_compare(cli: Cli, seed: u64, run_id: String, pinning: Pinning) -> anyhow::Result<bool> {
    let facts = RunFacts {
        scenario: cli.scenario.name(),
        target: cli.target.clone(),
        spawned: false,
        pinning,
        seed,
        run_id: run_id.clone(),
        pacing: cli.pacing(),
        connections: cli.connections,
        duration_s: cli.duration().as_secs_f64(),
    };
    let run = match cli.scenario {
        cli::Scenario::CompareRedis => compare::redis(&cli, &run_id).await?,
        _ => compare::postgres(&cli, &run_id).await?,
    };
    let summary = run.recorder.summary();
    let mut report = report::build(facts, &summary, &run.driver, Some(run.correctness), None);
    report.system = Some(run.system);
    write_report(&report, cli.json.as_deref(), cli.plot.as_deref())
}

/// A short lowercase id for the run, used in office ids and request ids.
fn run_id(seed: u64) -> String {
    let mut value =
        random::mix(seed, 0x1d, SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |time| time.as_nanos() as u64));
    let mut id = String::new();
    for _ in 0..8 {
        id.push(char::from_digit((value % 36) as u32, 36).expect("digit"));
        value /= 36;
    }
    id
}
