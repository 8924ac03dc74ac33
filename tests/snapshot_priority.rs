//! The snapshot thread runs at the lowest CPU priority, so that encoding a large image on a saturated core takes the
//! time calls leave, never the time they need.

mod common;

use common::Server;
use std::time::{Duration, Instant};

/// The nice value of the server's thread named `antrean-snapshot` (thread names are cut to 15 bytes), if it runs.
fn snapshot_thread_nice(pid: u32) -> Option<i32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's threads");
    tasks.filter_map(Result::ok).map(|task| task.path()).find_map(|task| {
        let name = std::fs::read_to_string(task.join("comm")).ok()?;
        if name.trim_end() != "antrean-snapsho" {
            return None;
        }
        let stat = std::fs::read_to_string(task.join("stat")).ok()?;
        // After "pid (name)" come the fields from the third on; the nice value is the 19th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        fields.get(19 - 3)?.parse().ok()
    })
}

#[test]
fn the_snapshot_thread_runs_at_the_lowest_priority() {
    // Run it at nice 0 to see it fail without the change: a test run that is itself niced to 19 starts the server,
    // and every one of its threads, at 19 already.
    let server = Server::start();
    let pid = server.child.as_ref().expect("running").id();
    // The thread starts after recovery and lowers its own priority first thing: look until it has, or a generous
    // while has passed (this is not a measure of speed).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut nice = snapshot_thread_nice(pid);
    while nice != Some(19) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        nice = snapshot_thread_nice(pid);
    }
    assert_eq!(nice, Some(19), "the snapshot thread's nice value");
}
