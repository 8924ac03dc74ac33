//! The snapshot thread runs at the lowest CPU priority, so that encoding a large image on a saturated core takes the
//! time calls leave, never the time they need.

mod common;

use common::Server;
use std::time::{Duration, Instant};

/// The nice value of the server's thread named `antrean-snapshot`, once it has started.
fn snapshot_thread_nice(pid: u32) -> i32 {
    let started = Instant::now();
    loop {
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's threads") {
            let task = task.expect("a thread").path();
            // Thread names are cut to 15 bytes.
            let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            if name.trim_end() == "antrean-snapsho" {
                let stat = std::fs::read_to_string(task.join("stat")).expect("the thread's stat");
                // After "pid (name)" come the fields from the third on; the nice value is the 19th.
                let fields: Vec<&str> = stat.rsplit_once(')').expect("stat has a name").1.split_whitespace().collect();
                return fields[19 - 3].parse().expect("a nice value");
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the snapshot thread never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_snapshot_thread_runs_at_the_lowest_priority() {
    // Run it at nice 0 to see it fail without the change: a test run that is itself niced to 19 starts the server,
    // and every one of its threads, at 19 already.
    let server = Server::start();
    let pid = server.child.as_ref().expect("running").id();
    assert_eq!(snapshot_thread_nice(pid), 19);
}
