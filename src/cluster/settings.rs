//! `[cluster]`: the settings of a node that keeps its offices' logs on NATS JetStream, checked field by field, and
//! the options they give the rest of this module. The section is absent in single-node mode (the default).

use super::options::{LeaseOptions, LogOptions, NatsConnectOptions, NatsTlsOptions};
use crate::domain::OfficeId;
use crate::limits::LOG_RECORD_BYTES_MAX;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Most NATS server URLs.
const NATS_URLS_MAX: usize = 16;
/// Most log streams.
const LOG_STREAMS_MAX: u32 = 64;
/// Smallest batch limit: one record of the largest size must fit, with its frame and the batch header.
const BATCH_BYTES_MIN: u32 = LOG_RECORD_BYTES_MAX + 16 + super::batch::BATCH_HEADER_BYTES as u32;
/// Largest batch limit: NATS's own `max_payload` ceiling is 64 MiB, and big messages stall a stream's replication.
const BATCH_BYTES_MAX: u32 = 8 * 1024 * 1024;

/// `[cluster]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster: letters, digits, `-` and `_`, at most 64.
    pub node_name: String,
    /// NATS server URLs, `nats://host:port` or `tls://host:port`.
    pub nats_urls: Vec<String>,
    /// A NATS credentials file (`.creds`), when the servers require one.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// `[cluster.tls]`: TLS to the NATS servers.
    #[serde(default)]
    pub tls: Option<NatsTlsConfig>,
    /// The offices this node may own: `"all"` or a list of office ids.
    pub offices: OfficeSelection,
    /// The partition this node serves: the name of its log (subject `antrean.log.<partition>`) and of its lease. Nodes
    /// configured with the same partition stand in for each other: one owns it, the others wait. Same rule as an
    /// office id; `"all"` when left out.
    #[serde(default = "default_partition")]
    pub partition: String,
    /// The gRPC address other nodes forward calls to (`host:port`); the address the node listens on when left out.
    #[serde(default)]
    pub advertise_address: Option<String>,
    /// Whether a call for an office of another partition (or for this node's partition while another node owns it)
    /// is forwarded to the partition's owner, so every node serves the whole API (the default). Off: such a call is
    /// refused with where to go instead (see README, "Routing").
    #[serde(default = "default_forward_calls")]
    pub forward_calls: bool,
    /// Streams the office logs are spread over; fixed for the life of a cluster.
    #[serde(default = "default_log_streams")]
    pub log_streams: u32,
    /// Copies of each stream and of the lease bucket: 3 survives the loss of one NATS server.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// Largest batch of records in one JetStream message, in bytes; at most the servers' `max_payload`.
    #[serde(default = "default_batch_bytes_max")]
    pub batch_bytes_max: u32,
    /// A lease not renewed for this long expires, in milliseconds; every node must use the same value.
    #[serde(default = "default_lease_ttl_ms")]
    pub lease_ttl_ms: u64,
    /// How often a holder renews its leases, in milliseconds; at most a third of the TTL.
    #[serde(default = "default_lease_renew_every_ms")]
    pub lease_renew_every_ms: u64,
    /// Longest wait for one JetStream answer, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How long JetStream remembers a batch's message id to store a retried append once, in seconds.
    #[serde(default = "default_duplicate_window_seconds")]
    pub duplicate_window_seconds: u64,
}

/// `[cluster.tls]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTlsConfig {
    /// PEM CA certificate(s) that sign the servers' certificates; the system roots when left out.
    #[serde(default)]
    pub ca_path: Option<PathBuf>,
    /// PEM certificate chain of this node, when the servers verify clients.
    #[serde(default)]
    pub client_cert_path: Option<PathBuf>,
    /// PEM private key of this node.
    #[serde(default)]
    pub client_key_path: Option<PathBuf>,
}

/// `cluster.offices`: `"all"`, or the office ids this node may own.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OfficeSelection {
    /// A word; only `"all"` is valid.
    Word(String),
    /// Office ids.
    Listed(Vec<String>),
}

/// Which offices a node may own, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedOffices {
    /// Any office.
    All,
    /// These offices.
    Only(Vec<OfficeId>),
}

fn default_partition() -> String {
    "all".to_owned()
}
fn default_forward_calls() -> bool {
    true
}
fn default_log_streams() -> u32 {
    4
}
fn default_replicas() -> u32 {
    3
}
fn default_batch_bytes_max() -> u32 {
    1024 * 1024
}
fn default_lease_ttl_ms() -> u64 {
    10_000
}
fn default_lease_renew_every_ms() -> u64 {
    2_000
}
fn default_request_timeout_ms() -> u64 {
    5_000
}
fn default_duplicate_window_seconds() -> u64 {
    120
}

type Invalid = (String, String);

/// Checks `cluster.advertise_address`: `host:port` with a port, and a host other nodes can reach (not `0.0.0.0`).
fn validate_advertise_address(address: &str) -> Result<(), Invalid> {
    let parsed = http::uri::Authority::try_from(address).ok().filter(|authority| {
        let host = authority.host();
        authority.port_u16().is_some_and(|port| port > 0) && !host.is_empty() && host != "0.0.0.0" && host != "[::]"
    });
    if parsed.is_none() || address.contains('@') {
        return invalid("advertise_address", "must be host:port that other nodes can reach (not 0.0.0.0, port not 0)");
    }
    Ok(())
}

fn invalid<T>(field: &str, reason: impl Into<String>) -> Result<T, Invalid> {
    Err((format!("cluster.{field}"), reason.into()))
}

impl ClusterConfig {
    /// Checks every field; the error is the first bad field's path and why.
    pub fn validate(&self) -> Result<(), Invalid> {
        let name = &self.node_name;
        let name_ok = name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if name.is_empty() || name.len() > super::lease::NODE_NAME_BYTES_MAX || !name_ok {
            return invalid("node_name", "must be 1 to 64 letters, digits, '-' or '_'");
        }
        if self.nats_urls.is_empty() || self.nats_urls.len() > NATS_URLS_MAX {
            return invalid("nats_urls", format!("must list 1 to {NATS_URLS_MAX} NATS server URLs"));
        }
        for (index, url) in self.nats_urls.iter().enumerate() {
            let scheme_ok = url.starts_with("nats://") || url.starts_with("tls://");
            if !scheme_ok || url.parse::<async_nats::ServerAddr>().is_err() {
                return invalid(&format!("nats_urls[{index}]"), "must be nats://host:port or tls://host:port");
            }
        }
        if self.credentials_file.as_ref().is_some_and(|path| path.as_os_str().is_empty()) {
            return invalid("credentials_file", "must name a NATS credentials file, or be left out");
        }
        if let Some(tls) = &self.tls
            && tls.client_cert_path.is_some() != tls.client_key_path.is_some()
        {
            return invalid("tls.client_key_path", "client_cert_path and client_key_path go together");
        }
        self.owned_offices()?;
        self.partition_id()?;
        if let Some(address) = &self.advertise_address {
            validate_advertise_address(address)?;
        }
        self.validate_numbers()
    }

    fn validate_numbers(&self) -> Result<(), Invalid> {
        if !(1..=LOG_STREAMS_MAX).contains(&self.log_streams) {
            return invalid("log_streams", format!("must be between 1 and {LOG_STREAMS_MAX}"));
        }
        if !(1..=5).contains(&self.replicas) {
            return invalid("replicas", "must be between 1 and 5 (3 survives the loss of one NATS server)");
        }
        if !(BATCH_BYTES_MIN..=BATCH_BYTES_MAX).contains(&self.batch_bytes_max) {
            return invalid("batch_bytes_max", format!("must be between {BATCH_BYTES_MIN} and {BATCH_BYTES_MAX}"));
        }
        if !(1_000..=300_000).contains(&self.lease_ttl_ms) {
            return invalid("lease_ttl_ms", "must be between 1000 and 300000");
        }
        if self.lease_renew_every_ms < 100 || self.lease_renew_every_ms.saturating_mul(3) > self.lease_ttl_ms {
            return invalid("lease_renew_every_ms", "must be at least 100 and at most a third of lease_ttl_ms");
        }
        if !(100..=60_000).contains(&self.request_timeout_ms) || self.request_timeout_ms >= self.lease_ttl_ms {
            return invalid("request_timeout_ms", "must be between 100 and 60000 and shorter than lease_ttl_ms");
        }
        if !(1..=86_400).contains(&self.duplicate_window_seconds) {
            return invalid("duplicate_window_seconds", "must be between 1 and 86400");
        }
        Ok(())
    }

    /// The offices this node may own.
    pub fn owned_offices(&self) -> Result<OwnedOffices, Invalid> {
        match &self.offices {
            OfficeSelection::Word(word) if word == "all" => Ok(OwnedOffices::All),
            OfficeSelection::Word(_) => invalid("offices", "must be \"all\" or a list of office ids"),
            OfficeSelection::Listed(ids) if ids.is_empty() => invalid("offices", "lists no office"),
            OfficeSelection::Listed(ids) => {
                let mut offices = Vec::with_capacity(ids.len());
                for (index, id) in ids.iter().enumerate() {
                    let Some(office) = OfficeId::parse(id) else {
                        return invalid(&format!("offices[{index}]"), OfficeId::RULE);
                    };
                    if offices.contains(&office) {
                        return invalid(&format!("offices[{index}]"), "duplicate office id");
                    }
                    offices.push(office);
                }
                Ok(OwnedOffices::Only(offices))
            }
        }
    }

    /// The partition's id (its log subject's last token and its lease key).
    pub fn partition_id(&self) -> Result<OfficeId, Invalid> {
        OfficeId::parse(&self.partition).map_or_else(|| invalid("partition", OfficeId::RULE), Ok)
    }

    /// How to connect.
    #[must_use]
    pub fn connect_options(&self) -> NatsConnectOptions {
        NatsConnectOptions {
            urls: self.nats_urls.clone(),
            credentials_file: self.credentials_file.clone(),
            tls: self.tls.as_ref().map(|tls| NatsTlsOptions {
                ca_file: tls.ca_path.clone(),
                client_identity: tls.client_cert_path.clone().zip(tls.client_key_path.clone()),
            }),
            node_name: self.node_name.clone(),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
        }
    }

    /// The layout of the office logs.
    #[must_use]
    pub fn log_options(&self) -> LogOptions {
        LogOptions {
            stream_count: self.log_streams,
            replicas: self.replicas as usize,
            batch_bytes_max: self.batch_bytes_max,
            duplicate_window: Duration::from_secs(self.duplicate_window_seconds),
        }
    }

    /// The lease timing.
    #[must_use]
    pub fn lease_options(&self) -> LeaseOptions {
        LeaseOptions {
            ttl: Duration::from_millis(self.lease_ttl_ms),
            renew_every: Duration::from_millis(self.lease_renew_every_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ClusterConfig {
        toml::from_str(text).expect("parses")
    }

    const MINIMAL: &str = "node_name = \"node-1\"\nnats_urls = [\"nats://127.0.0.1:4222\"]\noffices = \"all\"\n";

    #[test]
    fn a_minimal_section_takes_the_defaults() {
        let config = parse(MINIMAL);
        config.validate().expect("valid");
        assert_eq!(config.owned_offices(), Ok(OwnedOffices::All));
        assert_eq!(config.lease_options().ttl, Duration::from_secs(10));
        assert_eq!(config.log_options().replicas, 3);
        assert_eq!(config.connect_options().node_name, "node-1");
        assert!(config.forward_calls && config.advertise_address.is_none());
        let advertised =
            parse(&format!("{MINIMAL}advertise_address = \"node-1.internal:50051\"\nforward_calls = false\n"));
        advertised.validate().expect("a host name and port are valid");
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            ("node_name = \"node-1\"", "node_name = \"node 1\"", "cluster.node_name"),
            ("[\"nats://127.0.0.1:4222\"]", "[]", "cluster.nats_urls"),
            ("[\"nats://127.0.0.1:4222\"]", "[\"http://x:1\"]", "cluster.nats_urls[0]"),
            ("offices = \"all\"", "offices = \"some\"", "cluster.offices"),
            ("offices = \"all\"", "offices = []", "cluster.offices"),
            ("offices = \"all\"", "offices = [\"kanim-batam\", \"Batam\"]", "cluster.offices[1]"),
            ("offices = \"all\"", "offices = [\"kanim-batam\", \"kanim-batam\"]", "cluster.offices[1]"),
            ("offices = \"all\"", "offices = \"all\"\npartition = \"Jawa Barat\"", "cluster.partition"),
            (
                "offices = \"all\"",
                "offices = \"all\"\nadvertise_address = \"0.0.0.0:50051\"",
                "cluster.advertise_address",
            ),
            ("offices = \"all\"", "offices = \"all\"\nadvertise_address = \"node-1\"", "cluster.advertise_address"),
            ("offices = \"all\"", "offices = \"all\"\nadvertise_address = \"node-1:0\"", "cluster.advertise_address"),
        ];
        for (from, to, field) in cases {
            let error = parse(&MINIMAL.replace(from, to)).validate().expect_err(to);
            assert_eq!(error.0, field, "{to}: {error:?}");
        }
        let numbers = [
            ("log_streams = 0", "cluster.log_streams"),
            ("replicas = 7", "cluster.replicas"),
            ("batch_bytes_max = 1024", "cluster.batch_bytes_max"),
            ("lease_ttl_ms = 500", "cluster.lease_ttl_ms"),
            ("lease_renew_every_ms = 5000", "cluster.lease_renew_every_ms"),
            ("request_timeout_ms = 20000", "cluster.request_timeout_ms"),
            ("duplicate_window_seconds = 0", "cluster.duplicate_window_seconds"),
            ("tls = { client_cert_path = \"a.pem\" }", "cluster.tls.client_key_path"),
        ];
        for (line, field) in numbers {
            let error = parse(&format!("{MINIMAL}{line}\n")).validate().expect_err(line);
            assert_eq!(error.0, field, "{line}: {error:?}");
        }
    }

    #[test]
    fn a_list_of_offices_and_tls_are_read() {
        let text = MINIMAL.replace("offices = \"all\"", "offices = [\"kanim-batam\"]")
            + "[tls]\nca_path = \"ca.pem\"\nclient_cert_path = \"node.pem\"\nclient_key_path = \"node.key\"\n";
        let config = parse(&text);
        config.validate().expect("valid");
        let batam = OfficeId::parse("kanim-batam").expect("valid id");
        assert_eq!(config.owned_offices(), Ok(OwnedOffices::Only(vec![batam])));
        let tls = config.connect_options().tls.expect("tls");
        assert_eq!(tls.client_identity, Some((PathBuf::from("node.pem"), PathBuf::from("node.key"))));
    }
}
