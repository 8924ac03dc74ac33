//! The data directory holds full NIKs and names in plain text: the server creates it and everything in it for its
//! own user only (directories 0700, files 0600, whatever the umask), and refuses to start on a data directory other
//! users can read.

#[path = "common/api.rs"]
mod api;
mod common;

use common::{Options, Server, applicant, create_office, hold_request, test_office};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

const OFFICE: &str = "kanim-private";

/// Every directory and file under `root` (and `root` itself) with its permission bits.
fn modes(root: &Path) -> Vec<(String, bool, u32)> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::metadata(&path).expect("metadata");
        found.push((path.display().to_string(), metadata.is_dir(), metadata.permissions().mode() & 0o777));
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                pending.push(entry.expect("entry").path());
            }
        }
    }
    found
}

/// Issue 13, item 7: after serving and a clean shutdown (log segments and a final snapshot on disk), the data
/// directory and its subdirectories are 0700 and every file is 0600, although the parent directory is 0755.
#[tokio::test]
async fn the_data_directory_and_its_files_are_for_the_server_user_only() {
    let parent = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod parent");
    let data_dir = parent.path().join("data");
    let mut server = Server::start_in(&data_dir, &Options::default());
    let (mut booking, mut admin) = server.clients().await;
    create_office(&mut admin, test_office(OFFICE, 5, 3600)).await;
    api::hold(&mut booking, hold_request(OFFICE, 1, applicant(1))).await;
    let status = tokio::task::spawn_blocking(move || server.terminate()).await.expect("join");
    assert!(status.success(), "{status:?}");

    let found = modes(&data_dir);
    assert!(found.iter().any(|(path, _, _)| path.ends_with(".snap")), "a final snapshot: {found:?}");
    assert!(found.iter().any(|(path, _, _)| path.ends_with(".log")), "a log segment: {found:?}");
    for (path, is_dir, mode) in &found {
        let expected = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, expected, "{path} is {mode:o}, not {expected:o}");
    }
}

/// Issue 13, item 7: a data directory other users may read or enter is refused at start, naming the directory and
/// the fix.
#[test]
fn a_data_directory_other_users_can_read_is_refused() {
    let parent = tempfile::tempdir().expect("temp dir");
    let data_dir = parent.path().join("data");
    std::fs::create_dir(&data_dir).expect("create");
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let output = Command::new(env!("CARGO_BIN_EXE_antrean"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "", "--data-dir"])
        .arg(&data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let child_id = output.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut output = output;
    while output.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = output.kill();
            panic!("antrean {child_id} started on a data directory others can read");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = output.wait_with_output().expect("output");
    assert!(!output.status.success(), "{:?}", output.status);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&data_dir.display().to_string()) && stderr.contains("chmod 700"), "{stderr}");
    assert_eq!(std::fs::metadata(&data_dir).expect("metadata").permissions().mode() & 0o777, 0o755, "left as it was");
}
