//! A short smoke run of every scenario against a server the load generator spawns itself (`--spawn`), asserting the
//! correctness counts and that calls succeeded, not speed. Each run lasts a few seconds with small numbers, so the
//! whole file stays well under a minute in a debug build.
//!
//! The server binary is `antrean` beside the test executable's directory (`target/debug/deps/../antrean`):
//! `cargo test --workspace` builds it because the antrean package has integration tests. When it is missing (e.g.
//! `cargo test -p loadtest` alone), it is built once with `cargo build --bin antrean` from the workspace root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The antrean binary of this build profile, built when missing.
fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
        let binary = profile_dir.join(format!("antrean{}", std::env::consts::EXE_SUFFIX));
        if !binary.is_file() {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
            let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            build.current_dir(workspace).args(["build", "--bin", "antrean"]);
            if profile_dir.file_name().is_some_and(|name| name == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("cannot run cargo build --bin antrean");
            assert!(status.success(), "cargo build --bin antrean failed");
        }
        assert!(binary.is_file(), "no server binary at {}", binary.display());
        binary
    })
}

/// Runs `loadtest SCENARIO --spawn ARGS... --json FILE` and returns its exit code, output and report.
fn run(scenario: &str, args: &[&str]) -> (i32, String, Value) {
    // Tests run in parallel and two of them run the same scenario: each run needs a report file of its own.
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let json = std::env::temp_dir().join(format!("loadtest-smoke-{scenario}-{}-{run}.json", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg(scenario)
        .arg("--spawn")
        .arg("--server-bin")
        .arg(server_binary())
        .args(["--quiet", "--seed", "7", "--json"])
        .arg(&json)
        .args(args)
        .output()
        .expect("cannot run loadtest");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| panic!("{scenario}: no JSON report\n{text}"));
    let _ = std::fs::remove_file(&json);
    (output.status.code().unwrap_or(-1), text, report)
}

/// Asserts a clean run: exit 0, every correctness count 0, and at least `ok_min` OK calls of `rpc`.
fn assert_clean(scenario: &str, args: &[&str], rpc: &str, ok_min: u64) -> Value {
    let (code, text, report) = run(scenario, args);
    assert_eq!(code, 0, "{scenario} exited with {code}\n{text}");
    let correctness = &report["correctness"];
    for count in ["overbooked", "lost", "unterminated", "inversions", "admission_order_inversions"] {
        assert_eq!(correctness[count], 0, "{scenario}: {count}\n{text}");
    }
    let ok = report["rpcs"][rpc]["codes"]["OK"].as_u64().unwrap_or(0);
    assert!(ok >= ok_min, "{scenario}: {ok} OK {rpc} calls, expected at least {ok_min}\n{text}");
    report
}

#[test]
fn ping() {
    let (code, text, report) = run("ping", &["--duration", "2s", "--concurrency", "8"]);
    assert_eq!(code, 0, "{text}");
    assert!(report["rpcs"]["Health/Check"]["codes"]["OK"].as_u64().unwrap_or(0) > 10, "{text}");
}

#[test]
fn hold() {
    let report = assert_clean("hold", &["--duration", "2s", "--concurrency", "8", "--slots", "3000"], "Hold", 10);
    assert_eq!(report["checked"], true);
    // The bimodality field is reported for every RPC and for all calls, as a share.
    for slow_share in [&report["slow_share"], &report["rpcs"]["Hold"]["slow_share"]] {
        let share = slow_share.as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&share), "slow_share {slow_share}");
    }
    assert!(report["rpcs"]["Hold"]["latency_ms"]["p999"].as_f64().is_some());
}

#[test]
fn lifecycle() {
    let args = ["--duration", "2s", "--concurrency", "8", "--slots", "2000", "--payment-window", "1s"];
    assert_clean("lifecycle", &args, "Hold", 10);
}

#[test]
fn spike_through_the_waiting_room() {
    // Holds nobody pays lapse at their (1 s) payment deadline: the spawned server runs without the 15-minute
    // settlement grace (see `spike::spawned_server_args`), so their slots come back to the waiting room within the
    // run and every user gets a final answer before it ends.
    let args =
        ["--users", "300", "--slots", "60", "--arrival-window", "3s", "--duration", "8s", "--payment-window", "1s"];
    let report = assert_clean("spike", &args, "Join", 300);
    let server_args = report["server_args"].to_string();
    assert!(server_args.contains("--config="), "the spike's server runs without a settlement grace: {server_args}");
    let counters = &report["counters"];
    assert!(counters["users_held"].as_u64().unwrap_or(0) >= 60, "{counters}");
    // Every user has a final answer: booked, told the slots are gone, or left; and nobody polled.
    let answers = &report["waiting_room"];
    assert_eq!(answers["none"], 0, "{answers}");
    let answered: u64 = ["booked", "sold_out", "left"].iter().map(|name| answers[name].as_u64().unwrap_or(0)).sum();
    assert_eq!(answered, 300, "{answers}");
    assert!(report["rpcs"].get("Join(poll)").is_none(), "no polling Joins");
}

#[test]
fn spike_without_the_waiting_room() {
    let args = ["--no-waiting-room", "--users", "200", "--slots", "60", "--arrival-window", "3s", "--duration", "5s"];
    assert_clean("spike", &args, "Hold", 60);
}

#[test]
fn soak() {
    let args = ["--duration", "2s", "--concurrency", "8", "--slots", "600", "--payment-window", "1s"];
    let report = assert_clean("soak", &args, "GetAvailability", 10);
    // The spawned server's memory is in the report.
    let memory = &report["server_memory"];
    assert!(memory["rss_after_mib"].as_f64().unwrap_or(0.0) > 0.0, "{memory}");
    assert!(memory["rss_peak_mib"].as_f64() >= memory["rss_after_mib"].as_f64(), "{memory}");
}

#[test]
fn refusals() {
    let report = assert_clean("refusals", &["--duration", "2s", "--concurrency", "8"], "Hold", 0);
    let counters = &report["counters"];
    assert!(counters["refused_not_yet_open"].as_u64().unwrap_or(0) > 10, "{counters}");
    assert!(counters["refused_session_full"].as_u64().unwrap_or(0) > 10, "{counters}");
    assert!(counters.get("holds_ok_unexpected").is_none(), "{counters}");
}

#[test]
fn tickets() {
    let report = assert_clean("tickets", &["--users", "500", "--concurrency", "8"], "Join", 500);
    assert_eq!(report["memory"]["tickets"], 500);
    assert!(report["memory"]["rss_after_bytes"].as_u64().unwrap_or(0) > 0);
    assert!(report["memory"]["rss_after_end_bytes"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn memory() {
    let report = assert_clean("memory", &["--holds", "300", "--concurrency", "8", "--settle", "1s"], "Hold", 300);
    let memory = &report["booking_memory"];
    assert_eq!(memory["holds_acknowledged"], 300, "{memory}");
    assert_eq!(memory["holds_not_acknowledged"], 0, "{memory}");
    assert!(memory["rss_before_bytes"].as_u64().unwrap_or(0) > 0, "{memory}");
    assert!(memory["rss_settled_bytes"].as_u64().unwrap_or(0) > 0, "{memory}");
    assert!(memory["bytes_per_booking"].as_f64().is_some(), "{memory}");
    // Every acknowledged hold was read back.
    assert_eq!(report["correctness"]["bookings_checked"], 300, "{}", report["correctness"]);
}

#[test]
fn recovery() {
    let report = assert_clean("recovery", &["--holds", "300", "--concurrency", "8"], "Hold", 300);
    let recovery = &report["recovery"];
    assert_eq!(recovery["holds_acknowledged"], 300, "{recovery}");
    assert_eq!(recovery["bookings_checked"], 300, "{recovery}");
    assert_eq!(recovery["lost"], 0, "{recovery}");
    assert_ne!(recovery["killed_pid"], recovery["restarted_pid"], "{recovery}");
    assert!(recovery["exec_to_serving_ms"].as_f64().unwrap_or(0.0) > 0.0, "{recovery}");
    // What lay in the data directory at the kill.
    assert!(recovery["data_at_kill"]["wal_bytes"].as_u64().unwrap_or(0) > 0, "{recovery}");
    assert!(recovery["data_at_kill"]["snapshots"].as_u64().is_some(), "{recovery}");
}

#[test]
fn pinning_is_applied_and_reported() {
    // The first CPU this process may use, so the test runs wherever it is allowed to.
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let allowed = status.lines().find_map(|line| line.strip_prefix("Cpus_allowed_list:")).expect("Cpus_allowed_list");
    let cpu = allowed.trim().split([',', '-']).next().expect("a CPU").to_string();
    let args = ["--duration", "1s", "--concurrency", "4", "--server-cpus", &cpu, "--client-cpus", &cpu];
    let (code, text, report) = run("ping", &args);
    assert_eq!(code, 0, "{text}");
    let pinning = &report["pinning"];
    assert_eq!(pinning["server_cpus"], cpu.as_str(), "{pinning}");
    assert_eq!(pinning["client_cpus"], cpu.as_str(), "{pinning}");
    // What the kernel allows, read back: the pinning took effect on both processes.
    assert_eq!(pinning["server_cpus_allowed"], cpu.as_str(), "{pinning}");
    assert_eq!(pinning["client_cpus_allowed"], cpu.as_str(), "{pinning}");
    assert_eq!(pinning["client_worker_threads"], 1, "{pinning}");
    assert!(text.contains(&format!("pinning: server cpus {cpu}, client cpus {cpu}")), "{text}");

    let (code, text, report) = run("ping", &["--duration", "1s", "--concurrency", "4"]);
    assert_eq!(code, 0, "{text}");
    assert!(report["pinning"]["server_cpus"].is_null(), "{}", report["pinning"]);
    assert!(report["pinning"]["client_worker_threads"].as_u64().unwrap_or(0) >= 1, "{}", report["pinning"]);
    assert!(text.contains("pinning: unpinned"), "{text}");
}

/// `cluster` through `scripts/cluster-failover-bench.sh` with this build's binaries: 3 nats-server and 3 antrean nodes
/// of one partition with a 3 s lease, the owner killed 3 s into a 10 s run. Holds are acknowledged again after the
/// kill (each call is resent to the next node until the standby that took over answers it), and the check through the
/// node serving at the end finds every acknowledged booking and no pool overbooked.
#[test]
fn cluster_failover() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let json = std::env::temp_dir().join(format!("loadtest-smoke-cluster-{}.json", std::process::id()));
    let output = Command::new("bash")
        .current_dir(workspace)
        .arg("scripts/cluster-failover-bench.sh")
        .arg(&json)
        .args(["--seed", "7"])
        .env("ANTREAN_BIN", server_binary())
        .env("LOADTEST_BIN", env!("CARGO_BIN_EXE_loadtest"))
        .env("BENCH_DURATION", "10s")
        .env("BENCH_KILL_OWNER_AFTER", "3s")
        .env("BENCH_CONCURRENCY", "4")
        .env("BENCH_LEASE_TTL_MS", "3000")
        .output()
        .expect("cannot run scripts/cluster-failover-bench.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the cluster bench failed\n{text}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON report")).expect("JSON");
    let _ = std::fs::remove_file(&json);
    let cluster = &report["cluster"];
    assert_eq!(cluster["lost"], 0, "{text}");
    assert_eq!(cluster["overbooked"], 0, "{text}");
    assert!(cluster["killed_owner"]["pid"].as_u64().is_some(), "the owner was killed\n{text}");
    assert!(cluster["kill_to_first_acknowledged_s"].as_f64().is_some(), "no hold acknowledged after the kill\n{text}");
    assert!(cluster["holds_acknowledged"].as_u64().unwrap_or(0) > 10, "{text}");
    assert!(report["correctness"]["bookings_checked"].as_u64().unwrap_or(0) > 10, "{text}");
}
