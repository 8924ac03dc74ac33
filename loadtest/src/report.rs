//! The end-of-run report: built from the recorder's summary, the driver's figures and the correctness check, printed
//! as a table and optionally written as JSON. Pseudo-RPCs named `journey:...` (a user's whole journey) are listed
//! but kept out of the totals.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::check::Correctness;
use crate::cli::Pacing;
use crate::driver::DriverStats;
use crate::pinning::Pinning;
use crate::recorder::{LATENCY_SIGFIG, LatencyMs, SLOW_FACTOR, Summary, latency_histogram, slow_share};
use crate::scenarios::fixture::Fixture;

/// Prefix of pseudo-RPCs that measure a journey, not a call.
pub const JOURNEY_PREFIX: &str = "journey:";

/// The whole report, as written to `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: &'static str,
    /// Server address.
    pub target: String,
    /// Whether the load generator started the server.
    pub spawned: bool,
    /// The CPUs of the server and of the load generator, and the load generator's worker threads.
    pub pinning: Pinning,
    /// Seed of the run.
    pub seed: u64,
    /// Id of the run, in every id it created.
    pub run_id: String,
    /// Closed loop (tasks) or open loop (rate).
    pub pacing: Pacing,
    /// Closed-loop tasks, when closed loop.
    pub concurrency: Option<usize>,
    /// Open-loop calls per second, when open loop.
    pub rate: Option<f64>,
    /// HTTP/2 connections.
    pub connections: usize,
    /// Further HTTP/2 connections that carry only long-lived streams (Watch), [`crate::client::STREAMS_PER_CONNECTION`]
    /// each.
    pub stream_connections: usize,
    /// Planned load duration in seconds.
    pub duration_s: f64,
    /// From the start of the load to the end of its drain, in seconds.
    pub elapsed_s: f64,
    /// Measured calls (all RPCs, journeys excluded).
    pub calls: u64,
    /// Journeys started by the driver.
    pub started: u64,
    /// Open-loop calls not sent because too many were in flight.
    pub dropped: u64,
    /// Calls still running when the drain gave up.
    pub abandoned_in_flight: u64,
    /// Measured calls per second.
    pub throughput_per_s: f64,
    /// Latency of all measured calls.
    pub latency_ms: LatencyMs,
    /// Share of all measured calls (0 to 1) slower than `SLOW_FACTOR` (10) times their median: a second latency mode.
    pub slow_share: f64,
    /// Failed calls by status code, all RPCs.
    pub errors: BTreeMap<String, u64>,
    /// Per RPC.
    pub rpcs: BTreeMap<String, RpcReport>,
    /// Scenario counters (users held, holds refused as full, late payments revived, ...).
    pub counters: BTreeMap<String, u64>,
    /// Whether the correctness check ran.
    pub checked: bool,
    /// The correctness counts.
    pub correctness: Correctness,
    /// The quota created.
    pub fixture: Option<FixtureReport>,
    /// The server's memory per waiting ticket (`tickets`).
    pub memory: Option<crate::scenarios::tickets::MemoryReport>,
    /// The server's memory per booking (`memory`).
    pub booking_memory: Option<crate::scenarios::memory::BookingMemory>,
    /// The kill, the restart and what came back (`recovery`).
    pub recovery: Option<crate::scenarios::recovery::RecoveryReport>,
    /// Holds through a cluster: counts, the unavailability window of a failover, lost and overbooked (`cluster`).
    pub cluster: Option<crate::scenarios::cluster::ClusterReport>,
    /// Every user's final answer through the waiting room, and how early SOLD_OUT came (`spike`).
    pub waiting_room: Option<crate::scenarios::waiting_room::Answers>,
    /// What was measured, when not antrean (`compare-redis`, `compare-postgres`).
    pub system: Option<String>,
    /// Arguments the spawned server was started with (besides address and data directory).
    pub server_args: Vec<String>,
    /// The server's resident memory before and after the load, when its process id is known.
    pub server_memory: Option<ServerMemory>,
    /// Per second of the run.
    pub series: Vec<SeriesPoint>,
    /// Per second of the run for each RPC, seconds in which it completed no call left out.
    pub rpc_series: BTreeMap<String, Vec<SeriesPoint>>,
}

/// The server's resident memory (from `/proc/PID/status`) around the load.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ServerMemory {
    /// VmRSS before the scenario started, in MiB.
    pub rss_before_mib: f64,
    /// VmRSS after the load and the correctness check, in MiB.
    pub rss_after_mib: f64,
    /// VmHWM (the peak resident size) at the end, in MiB.
    pub rss_peak_mib: f64,
}

/// One RPC's figures.
#[derive(Clone, Debug, Serialize)]
pub struct RpcReport {
    /// Calls.
    pub calls: u64,
    /// Calls per second over the run.
    pub throughput_per_s: f64,
    /// Latency percentiles.
    pub latency_ms: LatencyMs,
    /// Share of the calls (0 to 1) slower than `SLOW_FACTOR` (10) times this RPC's median: a second latency mode.
    pub slow_share: f64,
    /// Calls by status code.
    pub codes: BTreeMap<String, u64>,
    /// Calls by `CODE/REASON`.
    pub reasons: BTreeMap<String, u64>,
}

/// The quota a run created.
#[derive(Clone, Debug, Serialize)]
pub struct FixtureReport {
    /// Office ids.
    pub offices: Vec<String>,
    /// Dates per office.
    pub dates: usize,
    /// Total slots.
    pub slots: u64,
    /// Payment window in seconds.
    pub payment_window_s: u64,
}

/// One second of the run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SeriesPoint {
    /// Seconds since the start.
    pub second: usize,
    /// Calls completed.
    pub calls: u64,
    /// Of which failed.
    pub errors: u64,
    /// Median latency in ms.
    pub p50_ms: f64,
    /// 99th percentile latency in ms.
    pub p99_ms: f64,
}

/// What the report is built from besides the measurements.
pub struct RunFacts {
    /// Scenario name.
    pub scenario: &'static str,
    /// Server address.
    pub target: String,
    /// Whether the server was spawned.
    pub spawned: bool,
    /// How the run was pinned.
    pub pinning: Pinning,
    /// Seed.
    pub seed: u64,
    /// Run id.
    pub run_id: String,
    /// Pacing.
    pub pacing: Pacing,
    /// Connections.
    pub connections: usize,
    /// Planned duration in seconds.
    pub duration_s: f64,
}

/// Builds the report.
pub fn build(
    facts: RunFacts,
    summary: &Summary,
    driver: &DriverStats,
    correctness: Option<Correctness>,
    fixture: Option<&Fixture>,
) -> Report {
    let elapsed_s = driver.elapsed_s.max(1e-9);
    let mut all: Histogram<u64> = latency_histogram(LATENCY_SIGFIG);
    let mut errors = BTreeMap::new();
    let mut rpcs = BTreeMap::new();
    for (name, stats) in &summary.rpcs {
        if !name.starts_with(JOURNEY_PREFIX) {
            all.add(&stats.latency_us).expect("histograms share bounds");
            for (code, count) in stats.codes.iter().filter(|(code, _)| **code != "OK") {
                *errors.entry(code.to_string()).or_insert(0) += count;
            }
        }
        let report = RpcReport {
            calls: stats.calls(),
            throughput_per_s: stats.calls() as f64 / elapsed_s,
            latency_ms: LatencyMs::of(&stats.latency_us),
            slow_share: slow_share(&stats.latency_us),
            codes: stats.codes.iter().map(|(code, count)| (code.to_string(), *count)).collect(),
            reasons: stats.reasons.clone(),
        };
        rpcs.insert(name.to_string(), report);
    }
    let series = summary.series.iter().enumerate().map(|(second, point)| series_point(second, point)).collect();
    let rpc_series = summary
        .rpc_series
        .iter()
        .map(|(name, seconds)| {
            let points = seconds.iter().enumerate().filter(|(_, point)| point.calls > 0);
            (name.to_string(), points.map(|(second, point)| series_point(second, point)).collect())
        })
        .collect();
    Report {
        scenario: facts.scenario,
        target: facts.target,
        spawned: facts.spawned,
        pinning: facts.pinning,
        seed: facts.seed,
        run_id: facts.run_id,
        pacing: facts.pacing,
        concurrency: match facts.pacing {
            Pacing::Closed { tasks } => Some(tasks),
            Pacing::Open { .. } | Pacing::Arrivals { .. } => None,
        },
        rate: match facts.pacing {
            Pacing::Open { rate_per_s, .. } => Some(rate_per_s),
            Pacing::Closed { .. } | Pacing::Arrivals { .. } => None,
        },
        connections: facts.connections,
        duration_s: facts.duration_s,
        elapsed_s: driver.elapsed_s,
        calls: all.len(),
        started: driver.started,
        dropped: summary.dropped,
        abandoned_in_flight: driver.abandoned_in_flight,
        throughput_per_s: all.len() as f64 / elapsed_s,
        latency_ms: LatencyMs::of(&all),
        slow_share: slow_share(&all),
        errors,
        rpcs,
        counters: summary.counters.iter().map(|(name, count)| (name.to_string(), *count)).collect(),
        checked: correctness.is_some(),
        correctness: correctness.unwrap_or_default(),
        fixture: fixture.map(|fixture| FixtureReport {
            offices: fixture.offices.clone(),
            dates: fixture.dates.len(),
            slots: fixture.slots(),
            payment_window_s: fixture.payment_window.as_secs(),
        }),
        memory: None,
        booking_memory: None,
        recovery: None,
        cluster: None,
        waiting_room: None,
        system: None,
        stream_connections: 0,
        server_args: Vec::new(),
        server_memory: None,
        series,
        rpc_series,
    }
}

fn series_point(second: usize, point: &crate::recorder::SecondStats) -> SeriesPoint {
    let latency = LatencyMs::of(&point.latency_us);
    SeriesPoint { second, calls: point.calls, errors: point.errors, p50_ms: latency.p50, p99_ms: latency.p99 }
}

/// The report as a human-readable table.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let pacing = match report.pacing {
        Pacing::Closed { tasks } => format!("closed loop, {tasks} tasks"),
        Pacing::Open { rate_per_s, outstanding_max } => {
            format!("open loop, {rate_per_s} calls/s, <= {outstanding_max} in flight")
        }
        Pacing::Arrivals { users, window_s } => format!("{users} users arriving over {window_s:.1}s"),
    };
    let _ = writeln!(
        out,
        "\n{}{} against {}{}: {pacing}, {} connections{}, {:.1}s (planned {:.1}s), seed {}",
        report.scenario,
        report.system.as_ref().map(|system| format!(" ({system})")).unwrap_or_default(),
        report.target,
        if report.spawned { " (spawned)" } else { "" },
        report.connections,
        if report.stream_connections > 0 {
            format!(" (+{} for streams)", report.stream_connections)
        } else {
            String::new()
        },
        report.elapsed_s,
        report.duration_s,
        report.seed
    );
    let _ = writeln!(out, "pinning: {}", report.pinning.describe());
    let _ = writeln!(
        out,
        "{:<24} {:>9} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}  codes",
        "rpc",
        "calls",
        "calls/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        format!(">{SLOW_FACTOR}x p50")
    );
    for (name, rpc) in &report.rpcs {
        let codes: Vec<String> = rpc.codes.iter().map(|(code, count)| format!("{code}={count}")).collect();
        let figures = row(name, rpc.calls, rpc.throughput_per_s, &rpc.latency_ms, rpc.slow_share);
        let _ = writeln!(out, "{figures}  {}", codes.join(" "));
    }
    let all =
        row("ALL (journeys excluded)", report.calls, report.throughput_per_s, &report.latency_ms, report.slow_share);
    let _ = writeln!(out, "{all}");
    let errors: Vec<String> = report.errors.iter().map(|(code, count)| format!("{code}={count}")).collect();
    let _ = writeln!(out, "errors by code: {}", if errors.is_empty() { "none".to_string() } else { errors.join(" ") });
    let reasons: Vec<String> = report
        .rpcs
        .iter()
        .flat_map(|(name, rpc)| rpc.reasons.iter().map(move |(reason, count)| format!("{name}:{reason}={count}")))
        .collect();
    if !reasons.is_empty() {
        let _ = writeln!(out, "rejection reasons: {}", reasons.join(" "));
    }
    if report.dropped > 0 || report.abandoned_in_flight > 0 {
        let _ = writeln!(
            out,
            "dropped (not sent, too many in flight): {}; abandoned in flight: {}",
            report.dropped, report.abandoned_in_flight
        );
    }
    let counters: Vec<String> = report.counters.iter().map(|(name, count)| format!("{name}={count}")).collect();
    if !counters.is_empty() {
        let _ = writeln!(out, "counters: {}", counters.join(" "));
    }
    if let Some(memory) = &report.server_memory {
        let _ = writeln!(
            out,
            "server memory: VmRSS {:.1} MiB before, {:.1} MiB after, peak {:.1} MiB",
            memory.rss_before_mib, memory.rss_after_mib, memory.rss_peak_mib
        );
    }
    if !report.server_args.is_empty() {
        let _ = writeln!(out, "server arguments: {}", report.server_args.join(" "));
    }
    let c = &report.correctness;
    if report.checked {
        let _ = writeln!(
            out,
            "correctness: overbooked={} lost={} unterminated={} inversions={} admission_order_inversions={} ({} bookings, {} pools checked; {} untracked; {} check errors)",
            c.overbooked,
            c.lost,
            c.unterminated,
            c.inversions,
            c.admission_order_inversions,
            c.bookings_checked,
            c.pools_checked,
            c.bookings_untracked,
            c.check_errors
        );
        for example in &c.examples {
            let _ = writeln!(out, "  {example}");
        }
    } else {
        let _ = writeln!(out, "correctness: not checked");
    }
    if let Some(answers) = &report.waiting_room {
        let _ = writeln!(
            out,
            "answers: {} users: booked={} sold_out={} left={} expired={} refused={} none={}; last SOLD_OUT {} ms after the draw ({} told in the draw: p50 {} ms, p99 {} ms); {} Watch streams, {} messages",
            answers.users,
            answers.booked,
            answers.sold_out,
            answers.left,
            answers.expired,
            answers.refused,
            answers.none,
            answers.draw_to_last_sold_out_ms,
            answers.sold_out_in_draw,
            answers.draw_to_sold_out_in_draw_p50_ms,
            answers.draw_to_sold_out_in_draw_p99_ms,
            answers.watch_streams,
            answers.watch_messages
        );
    }
    if let Some(memory) = &report.memory {
        let _ = writeln!(
            out,
            "memory: {} waiting tickets; server VmRSS {} -> {} bytes (peak {}): {:.0} bytes per ticket; {} bytes after the line ended ({:.0} per ticket remain)",
            memory.tickets,
            memory.rss_before_bytes,
            memory.rss_after_bytes,
            memory.rss_peak_bytes,
            memory.bytes_per_ticket,
            memory.rss_after_end_bytes,
            memory.bytes_per_ticket_after_end
        );
    }
    if let Some(memory) = &report.booking_memory {
        let _ = writeln!(out, "{}", crate::scenarios::memory::describe(memory));
    }
    if let Some(cluster) = &report.cluster {
        let _ = writeln!(out, "{}", crate::scenarios::cluster::describe(cluster));
    }
    if let Some(recovery) = &report.recovery {
        let _ = writeln!(out, "{}", crate::scenarios::recovery::describe(recovery));
    }
    out
}

fn row(name: &str, calls: u64, per_second: f64, latency: &LatencyMs, slow_share: f64) -> String {
    format!(
        "{name:<24} {calls:>9} {per_second:>10.1} {:>8.3} {:>8.3} {:>8.3} {:>9.3} {:>9.3} {:>8.2}%",
        latency.p50,
        latency.p90,
        latency.p99,
        latency.p999,
        latency.max,
        slow_share * 100.0
    )
}
