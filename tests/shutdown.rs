//! Graceful shutdown: SIGTERM drains, writes a final snapshot, exits 0, and a restart on the same data directory
//! answers as before (state and remembered request ids).

#[path = "common/api.rs"]
mod api;
mod common;

use antrean::proto;
use common::{Options, Server, applicant, create_office, hold_request, test_office};
use std::time::{Duration, Instant};

const OFFICE: &str = "kanim-shutdown";

/// How long a SIGTERM may take with idle clients connected: well inside the default 10 s drain timeout.
const EXIT_WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn sigterm_exits_cleanly_with_a_snapshot_and_a_restart_keeps_every_answer() {
    let mut server = Server::start();
    let (mut booking, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, 5, 7200)).await;
    let hold = hold_request(OFFICE, 1, applicant(1));
    let first_answer = api::hold(&mut booking, hold.clone()).await;
    let paid = api::pay(&mut booking, &first_answer.booking_id, "SIMPONI-1").await.expect("pay");
    let before = api::get_booking(&mut booking, &first_answer.booking_id).await.expect("read");
    assert_eq!(Some(&before), paid.booking.as_ref());

    let started = Instant::now();
    let (status, mut server) = tokio::task::spawn_blocking(move || (server.terminate(), server)).await.expect("join");
    let elapsed = started.elapsed();

    assert!(status.success(), "exit status {status:?}");
    assert!(elapsed < EXIT_WITHIN, "took {elapsed:?} to stop");
    let snapshots: Vec<_> = std::fs::read_dir(server.data_dir.join("snapshots"))
        .expect("snapshots directory")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".snap"))
        .collect();
    assert!(!snapshots.is_empty(), "a final snapshot was written");

    let restarted = Server::start_in(&server.data_dir, &Options::default());
    let (mut booking, _admin) = restarted.clients().await;
    let after = api::get_booking(&mut booking, &first_answer.booking_id).await.expect("read after restart");
    assert_eq!(after, before, "same booking, same state");
    assert_eq!(after.state, proto::BookingState::Confirmed as i32);
    let retried = api::hold(&mut booking, hold).await;
    assert_eq!(retried, after, "a retried request id returns the first answer's booking, as it is now");
    assert_eq!(retried.booking_id, first_answer.booking_id);
    // Keep the first handle (it owns the temporary directory) until the restarted server is done.
    drop(restarted);
    server.kill();
}
