//! `[cluster]` is validated like every other section: `check-config` accepts a good one and names a bad field, and
//! the server refuses to start with one (cluster mode is not wired to the engine yet) instead of silently running as
//! a single node.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const CLUSTER: &str = "[cluster]\nnode_name = \"node-1\"\nnats_urls = [\"nats://127.0.0.1:4222\", \
                       \"nats://127.0.0.1:4223\"]\noffices = [\"kanim-batam\"]\n";

fn config_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("antrean.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs the binary with `args`; it must exit by itself within 10 s.
fn antrean(args: &[&std::ffi::OsStr]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_antrean"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run antrean");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("antrean did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn check_config_accepts_a_cluster_section_and_says_so() {
    let temp = tempfile::tempdir().expect("temp dir");
    let config = config_file(temp.path(), CLUSTER);

    let output = antrean(&["check-config".as_ref(), config.as_os_str()]);

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("cluster node node-1 over 2 NATS servers"), "stdout: {stdout}");
}

#[test]
fn check_config_names_a_bad_cluster_field() {
    let temp = tempfile::tempdir().expect("temp dir");
    for (from, to, field) in [
        ("\"nats://127.0.0.1:4223\"", "\"http://127.0.0.1:4223\"", "cluster.nats_urls[1]"),
        ("offices = [\"kanim-batam\"]", "offices = \"some\"", "cluster.offices"),
        ("node_name = \"node-1\"", "node_name = \"\"", "cluster.node_name"),
        ("[cluster]\n", "[cluster]\nlease_ttl_ms = 10\n", "cluster.lease_ttl_ms"),
        ("[cluster]\n", "[cluster]\nsync = \"always\"\n", "sync"),
    ] {
        let config = config_file(temp.path(), &CLUSTER.replace(from, to));

        let output = antrean(&["check-config".as_ref(), config.as_os_str()]);

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{to}: stderr: {stderr}");
        assert!(stderr.contains(field), "{to}: stderr: {stderr}");
    }
}

#[test]
fn the_server_refuses_to_start_with_a_cluster_section_it_cannot_serve_yet() {
    let temp = tempfile::tempdir().expect("temp dir");
    let config = config_file(temp.path(), CLUSTER);
    let data_dir = temp.path().join("data");

    let output = antrean(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--metrics-listen".as_ref(),
        "".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("cluster mode is not built yet"), "stderr: {stderr}");
    assert!(!data_dir.exists(), "it must stop before touching the data directory");
}
