//! A bad configuration stops the binary before it serves, naming the field; `check-config` says the same without
//! starting. `[cluster]` is validated like every other section; a cluster node whose NATS servers cannot be reached
//! stops with an error instead of silently running as a single node.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BAD_FSYNC: &str = "[storage]\nfsync = \"sometimes\"\n";
/// A valid `[cluster]` section, naming NATS servers that are not running.
const CLUSTER: &str = "[cluster]\nnode_name = \"node-1\"\nnats_urls = [\"nats://127.0.0.1:4222\", \
                       \"nats://127.0.0.1:4223\"]\noffices = [\"kanim-batam\"]\n";

/// Writes `text` as a configuration file in `dir`.
fn config_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("antrean.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs the binary with `args` to completion; it must exit by itself within 10 s (it must not start serving).
fn antrean(args: &[&std::ffi::OsStr]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_antrean"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run antrean");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!("antrean did not exit; stdout: {}", String::from_utf8_lossy(&output.stdout));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Starts the server on `config` and `data_dir` (any free port, no metrics listener) and waits for it to exit.
fn serve(config: &Path, data_dir: &Path) -> Output {
    antrean(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--metrics-listen".as_ref(),
        "".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ])
}

#[test]
fn starting_with_an_invalid_config_exits_non_zero_naming_the_field() {
    let temp = tempfile::tempdir().expect("temp dir");
    let config = config_file(temp.path(), BAD_FSYNC);
    let data_dir = temp.path().join("data");

    let output = serve(&config, &data_dir);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exit status {:?}", output.status);
    assert!(stderr.contains("storage.fsync"), "stderr: {stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"), "it must not start serving");
}

#[test]
fn check_config_accepts_the_shipped_configuration() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/antrean.toml");

    let output = antrean(&["check-config".as_ref(), shipped.as_os_str()]);

    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("valid"));
}

#[test]
fn check_config_refuses_a_bad_file_with_status_1_naming_the_field() {
    let temp = tempfile::tempdir().expect("temp dir");
    let config = config_file(temp.path(), BAD_FSYNC);

    let output = antrean(&["check-config".as_ref(), config.as_os_str()]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("storage.fsync"), "stderr: {stderr}");
}

#[test]
fn check_config_names_an_unknown_field() {
    let temp = tempfile::tempdir().expect("temp dir");
    let config = config_file(temp.path(), "[storage]\nfsynk = \"always\"\n");

    let output = antrean(&["check-config".as_ref(), config.as_os_str()]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("fsynk"), "stderr: {stderr}");
}

#[test]
fn check_config_accepts_amendments_max_up_to_its_limit_and_names_it_beyond() {
    let temp = tempfile::tempdir().expect("temp dir");
    let good = config_file(temp.path(), "[booking]\namendments_max = 10\n");
    let output = antrean(&["check-config".as_ref(), good.as_os_str()]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));

    let bad = config_file(temp.path(), "[booking]\namendments_max = 11\n");
    let output = antrean(&["check-config".as_ref(), bad.as_os_str()]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("booking.amendments_max"), "stderr: {stderr}");
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
fn a_cluster_node_whose_nats_servers_cannot_be_reached_stops_instead_of_serving_alone() {
    let temp = tempfile::tempdir().expect("temp dir");
    let unreachable = format!("nats://127.0.0.1:{}", free_port());
    let text = CLUSTER.replace("\"nats://127.0.0.1:4222\", \"nats://127.0.0.1:4223\"", &format!("\"{unreachable}\""));
    let config = config_file(temp.path(), &format!("{text}request_timeout_ms = 500\n"));
    let data_dir = temp.path().join("data");

    let output = serve(&config, &data_dir);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.contains("cannot connect to NATS"), "stderr: {stderr}");
    assert!(!data_dir.join("wal").exists(), "a cluster node keeps no local log");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}
