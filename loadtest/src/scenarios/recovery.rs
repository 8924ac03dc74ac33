//! `recovery`: what a crash costs. Makes `--holds` holds (none refused: see `bulk_holds`) against the server this
//! process spawned, notes what lies in its data directory (log segments under `wal/`, snapshots under `snapshots/`),
//! kills it with SIGKILL (no shutdown path runs), starts the same binary on the same data directory, port and CPUs,
//! and times exec to the health service answering SERVING (polled every few milliseconds). Then, on new connections
//! to the restarted server, the check reads every acknowledged booking back with `GetBooking` (`lost`: an
//! acknowledged booking missing or in another state) and every session pool (`overbooked`). Needs `--spawn`.

use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;

use crate::check;
use crate::cli::target_uri;
use crate::client::{BearerToken, Clients};
use crate::scenarios::tickets::resident_bytes;
use crate::scenarios::{Context, ScenarioRun, bulk_holds};
use crate::server::Restart;

/// The crash and what came back.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RecoveryReport {
    /// Holds answered OK before the kill.
    pub holds_acknowledged: u64,
    /// Holds answered with an error (none expected).
    pub holds_not_acknowledged: u64,
    /// The data directory at the kill, and the restart's timings.
    #[serde(flatten)]
    pub restart: Restart,
    /// Acknowledged bookings read back from the restarted server.
    pub bookings_checked: u64,
    /// Acknowledged bookings the restarted server does not have, or has in a state the last answer does not explain.
    pub lost: u64,
    /// Server VmRSS once it answered SERVING again, in bytes.
    pub rss_after_restart_bytes: u64,
}

/// Runs `recovery`.
pub async fn run(context: &Context) -> anyhow::Result<ScenarioRun> {
    let spawned = context.spawned.clone().context("recovery kills and restarts the server: it needs --spawn")?;
    let fixture = bulk_holds::create_fixture(context).await?;
    let holds = bulk_holds::hold_all(context, fixture.clone()).await;
    if !context.cli.quiet {
        eprintln!("{} holds acknowledged; killing the server with SIGKILL and starting it again", holds.acknowledged);
    }
    let (restart, address) = {
        let mut server = spawned.lock().await;
        (server.kill_and_restart().await?, server.address)
    };
    let (rss_after_restart_bytes, _) = resident_bytes(restart.restarted_pid)?;
    // New connections: the old ones went down with the killed server.
    let token = BearerToken::new(context.cli.token.as_deref())?;
    let clients = Clients::connect(
        &target_uri(&address.to_string()),
        context.cli.connections,
        0,
        context.cli.call_timeout,
        token,
    )
    .await?;
    if !context.cli.quiet {
        eprintln!("checking {} bookings on the restarted server ...", holds.ledger.len());
    }
    let correctness = check::run(&clients, &fixture, &holds.ledger).await;
    let report = RecoveryReport {
        holds_acknowledged: holds.acknowledged,
        holds_not_acknowledged: holds.not_acknowledged,
        restart,
        bookings_checked: correctness.bookings_checked,
        lost: correctness.lost,
        rss_after_restart_bytes,
    };
    if !context.cli.quiet {
        eprintln!("{}", describe(&report));
    }
    Ok(ScenarioRun {
        recovery: Some(report),
        correctness: Some(correctness),
        ..ScenarioRun::new(holds.recorder, holds.driver, Some(fixture), Arc::clone(&holds.ledger))
    })
}

/// One line for the text report.
pub fn describe(report: &RecoveryReport) -> String {
    let data = &report.restart.data_at_kill;
    format!(
        "recovery: {} holds acknowledged ({} not); at the kill the log held {} bytes in {} segments, {} snapshots \
         ({} bytes); exec to listening {:.1} ms, exec to SERVING {:.1} ms; {} acknowledged bookings checked, lost {}; server \
         VmRSS {:.1} MiB after the restart",
        report.holds_acknowledged,
        report.holds_not_acknowledged,
        data.wal_bytes,
        data.wal_segments,
        data.snapshots,
        data.snapshot_bytes,
        report.restart.exec_to_listening_ms,
        report.restart.exec_to_serving_ms,
        report.bookings_checked,
        report.lost,
        crate::scenarios::tickets::mib(report.rss_after_restart_bytes)
    )
}
