//! What the cluster layer needs to know: how to reach NATS, how the office logs are laid out in streams, and how
//! long a lease lasts. Built by `config` from the `[cluster]` section and validated there; passed explicitly, never
//! a hidden default for durability.

use std::path::PathBuf;
use std::time::Duration;

/// How this node reaches the NATS cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsConnectOptions {
    /// Server URLs (`nats://host:port` or `tls://host:port`); the client reconnects among them.
    pub urls: Vec<String>,
    /// A NATS credentials file (JWT and NKey seed), when the servers require one.
    pub credentials_file: Option<PathBuf>,
    /// TLS to the servers, when they require it.
    pub tls: Option<NatsTlsOptions>,
    /// This node's name: the NATS connection name and the value written into the leases it holds.
    pub node_name: String,
    /// How long one JetStream request (an append's acknowledgement, a read) may take before it counts as unavailable.
    pub request_timeout: Duration,
}

/// TLS towards the NATS servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsTlsOptions {
    /// PEM file of the certificate authorities that sign the servers' certificates; the system roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain and key of this node, when the servers verify clients.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

/// How the office logs are laid out in JetStream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Streams the offices are spread over (`ANTREAN_LOG_0`, `ANTREAN_LOG_1`, ...). Each stream's leader orders its
    /// appends, so a few streams spread the work over the servers; an office stays in the stream it hashes to.
    pub stream_count: u32,
    /// Copies of each stream (3 for a cluster that survives the loss of one server; 1 only for a single test server).
    pub replicas: usize,
    /// Largest batch body; the streams refuse bigger messages (error 10054). At most the servers' `max_payload`.
    pub batch_bytes_max: u32,
    /// How long JetStream remembers a message id, so a retried append of unknown outcome is stored once.
    pub duplicate_window: Duration,
}

/// How long a lease on an office lasts and how often its holder renews it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseOptions {
    /// A lease not renewed for this long expires and another node may take the office. It is the KV bucket's
    /// `max_age`, so every node of a cluster must use the same value.
    pub ttl: Duration,
    /// How often the holder renews; well under the TTL, so one slow renewal does not lose the office.
    pub renew_every: Duration,
}

impl LeaseOptions {
    /// How long after its last successful renewal a holder may still act as the owner: the TTL less one renewal
    /// period, so it stops before another node can have taken the office, even if its last renewal was slow.
    #[must_use]
    pub fn serve_for(&self) -> Duration {
        self.ttl.saturating_sub(self.renew_every)
    }
}
