//! `tickets`: the server's memory per waiting ticket, and whether it comes back when the line ends. Sets up one office
//! whose dates open only after the run, behind a waiting room (which is open already and is not drawn during the run),
//! reads the server's resident memory (VmRSS in /proc/PID/status), joins `--users` distinct applicants with `Join`
//! (closed loop, `--concurrency`), waits a moment, and reads it again. Then it ends the line (its dates are rescheduled
//! without a waiting room, so the server drops the line with its tickets) and reads the memory a third time. Needs the
//! server's process id: known with `--spawn`, else `--server-pid`.
//!
//! Every ticket joined is also counted by reading one back: the report's `memory.tickets` is what the server said.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::check::Ledger;
use crate::driver::{self, Call, Plan};
use crate::scenarios::fixture::{FixtureSpec, ReleaseAt};
use crate::scenarios::{Context, ScenarioRun, new_recorder};

/// Pause after the last join before memory is read again, so allocations settle.
const SETTLE: Duration = Duration::from_secs(2);
/// Readings of the memory, one a second, after the line was ended (it ends within a second or two; with a short
/// `request_retention_seconds` the joins' request ids are forgotten within this too).
const END_READINGS: u32 = 30;

/// The server's memory before and after the tickets joined.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct MemoryReport {
    /// Tickets that joined (Join answered OK).
    pub tickets: u64,
    /// Server VmRSS after setup, before the joins, in bytes.
    pub rss_before_bytes: u64,
    /// Server VmRSS after the joins, in bytes.
    pub rss_after_bytes: u64,
    /// Server VmHWM (peak resident) after the joins, in bytes.
    pub rss_peak_bytes: u64,
    /// (after - before) / tickets.
    pub bytes_per_ticket: f64,
    /// Server VmRSS once the line ended and was dropped with its tickets, in bytes. Request ids stay remembered for
    /// their retention (24 h by default), so a little more than before remains.
    pub rss_after_end_bytes: u64,
    /// (after_end - before) / tickets: what stays per ticket once its line ended.
    pub bytes_per_ticket_after_end: f64,
}

/// Runs `tickets`.
pub async fn run(context: &Context) -> anyhow::Result<ScenarioRun> {
    let Some(pid) = context.server_pid else {
        bail!("tickets needs the server's process id: use --spawn or --server-pid");
    };
    let spec = FixtureSpec {
        offices: 1,
        days: 1,
        slots: 3,
        waiting_room: true,
        ..context.fixture_spec(ReleaseAt::NOT_DURING_RUN)
    };
    let fixture = context.create_fixture_from(&spec, &context.run_id).await?;
    let ledger = Arc::new(Ledger::default());
    let recorder = new_recorder();
    let steps = context.steps(fixture.clone(), recorder.clone(), ledger.clone());
    tokio::time::sleep(SETTLE).await;
    let (rss_before_bytes, _) = resident_bytes(pid)?;
    let tasks = context.cli.concurrency.unwrap_or(64);
    let calls = context.cli.users.min(context.cli.max_requests);
    let progress =
        crate::progress::Progress::start("tickets", context.cli.duration(), recorder.clone(), context.cli.quiet);
    let journey_steps = steps.clone();
    let driver = driver::run(
        Plan::Closed { tasks },
        recorder.start(),
        context.cli.duration(),
        calls,
        recorder.clone(),
        move |call: Call| {
            let steps = journey_steps.clone();
            async move {
                let counter = match steps.join("Join", 0, call.index, 0, call.due).await {
                    Ok(_) => "tickets_joined",
                    Err(_) => "joins_failed",
                };
                steps.recorder.count(counter, 1);
            }
        },
    )
    .await;
    progress.finish();
    tokio::time::sleep(SETTLE).await;
    let (rss_after_bytes, rss_peak_bytes) = resident_bytes(pid)?;
    let tickets = recorder.summary().counters.get("tickets_joined").copied().unwrap_or(0);
    let bytes_per_ticket = rss_after_bytes.saturating_sub(rss_before_bytes) as f64 / tickets.max(1) as f64;
    crate::scenarios::fixture::end_waiting_room(&context.clients, &context.run_id, &fixture).await?;
    // The server ends lines about once a second, then gives the freed memory back: take the lowest reading while it
    // settles.
    let mut rss_after_end_bytes = u64::MAX;
    for _ in 0..END_READINGS {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_after_end_bytes = rss_after_end_bytes.min(resident_bytes(pid)?.0);
    }
    let bytes_per_ticket_after_end =
        rss_after_end_bytes.saturating_sub(rss_before_bytes) as f64 / tickets.max(1) as f64;
    let memory = MemoryReport {
        tickets,
        rss_before_bytes,
        rss_after_bytes,
        rss_peak_bytes,
        bytes_per_ticket,
        rss_after_end_bytes,
        bytes_per_ticket_after_end,
    };
    if !context.cli.quiet {
        eprintln!(
            "memory: {tickets} waiting tickets; server VmRSS {:.1} MiB -> {:.1} MiB (peak {:.1} MiB): {bytes_per_ticket:.0} bytes per ticket; after the line ended {:.1} MiB ({bytes_per_ticket_after_end:.0} bytes per ticket remain)",
            mib(rss_before_bytes),
            mib(rss_after_bytes),
            mib(rss_peak_bytes),
            mib(rss_after_end_bytes)
        );
    }
    Ok(ScenarioRun { memory: Some(memory), ..ScenarioRun::new(recorder, driver, Some(fixture), ledger) })
}

/// Bytes in MiB, for reports.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// VmRSS and VmHWM of process `pid`, in bytes.
pub fn resident_bytes(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line =
            status.lines().find(|line| line.starts_with(name)).with_context(|| format!("no {name} in {path}"))?;
        let kib: u64 = line.split_whitespace().nth(1).and_then(|value| value.parse().ok()).context("bad VmRSS line")?;
        Ok(kib * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_memory() {
        let (rss, peak) = resident_bytes(std::process::id()).unwrap();
        assert!(rss > 0 && peak >= rss);
    }
}
