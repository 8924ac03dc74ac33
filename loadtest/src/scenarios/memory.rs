//! `memory`: the server's resident memory per booking. Sets up a quota with room for exactly `--holds` holds, waits
//! for the server to settle and reads its VmRSS (/proc/PID/status), makes the holds (none refused: see
//! `bulk_holds`), reads VmRSS at once and again after `--settle`, and reports
//! `bytes_per_booking = (settled - before) / holds acknowledged`. The check that follows reads every acknowledged
//! booking back with `GetBooking` (`lost`) and every session pool (`overbooked`). Needs the server's process id:
//! known with `--spawn`, else `--server-pid`.

use std::time::Duration;

use anyhow::bail;
use serde::Serialize;

use crate::scenarios::tickets::resident_bytes;
use crate::scenarios::{Context, ScenarioRun, bulk_holds};

/// Pause after setup before the first reading, so the setup's allocations settle.
const SETUP_SETTLE: Duration = Duration::from_secs(1);

/// The server's memory before and after the holds.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BookingMemory {
    /// Holds answered OK: bookings the server now keeps.
    pub holds_acknowledged: u64,
    /// Holds answered with an error (none expected).
    pub holds_not_acknowledged: u64,
    /// Server VmRSS after setup, before the holds, in bytes.
    pub rss_before_bytes: u64,
    /// Server VmRSS right after the last hold was answered, in bytes.
    pub rss_after_bytes: u64,
    /// Server VmRSS after the settle pause, in bytes.
    pub rss_settled_bytes: u64,
    /// Server VmHWM (peak resident) after the settle pause, in bytes.
    pub rss_peak_bytes: u64,
    /// The settle pause, in seconds.
    pub settle_s: f64,
    /// (settled - before) / holds acknowledged.
    pub bytes_per_booking: f64,
    /// (after - before) / holds acknowledged, before the pause.
    pub bytes_per_booking_unsettled: f64,
}

/// Runs `memory`.
pub async fn run(context: &Context) -> anyhow::Result<ScenarioRun> {
    let Some(pid) = context.server_pid else {
        bail!("memory needs the server's process id: use --spawn or --server-pid");
    };
    let fixture = bulk_holds::create_fixture(context).await?;
    tokio::time::sleep(SETUP_SETTLE).await;
    let (rss_before_bytes, _) = resident_bytes(pid)?;
    let holds = bulk_holds::hold_all(context, fixture.clone()).await;
    let (rss_after_bytes, _) = resident_bytes(pid)?;
    tokio::time::sleep(context.cli.settle).await;
    let (rss_settled_bytes, rss_peak_bytes) = resident_bytes(pid)?;
    let per_booking = |rss: u64| rss.saturating_sub(rss_before_bytes) as f64 / holds.acknowledged.max(1) as f64;
    let memory = BookingMemory {
        holds_acknowledged: holds.acknowledged,
        holds_not_acknowledged: holds.not_acknowledged,
        rss_before_bytes,
        rss_after_bytes,
        rss_settled_bytes,
        rss_peak_bytes,
        settle_s: context.cli.settle.as_secs_f64(),
        bytes_per_booking: per_booking(rss_settled_bytes),
        bytes_per_booking_unsettled: per_booking(rss_after_bytes),
    };
    if !context.cli.quiet {
        eprintln!("{}", describe(&memory));
    }
    Ok(ScenarioRun {
        booking_memory: Some(memory),
        ..ScenarioRun::new(holds.recorder, holds.driver, Some(fixture), holds.ledger)
    })
}

/// One line for the text report.
pub fn describe(memory: &BookingMemory) -> String {
    let mib = crate::scenarios::tickets::mib;
    format!(
        "booking memory: {} holds acknowledged ({} not); server VmRSS {:.1} MiB -> {:.1} MiB, {:.1} MiB after {:.1}s \
         (peak {:.1} MiB): {:.0} bytes per booking ({:.0} before the pause)",
        memory.holds_acknowledged,
        memory.holds_not_acknowledged,
        mib(memory.rss_before_bytes),
        mib(memory.rss_after_bytes),
        mib(memory.rss_settled_bytes),
        memory.settle_s,
        mib(memory.rss_peak_bytes),
        memory.bytes_per_booking,
        memory.bytes_per_booking_unsettled
    )
}
