//! Configuration: one TOML file (an embedded demo file by default), checked field by field before anything starts.
//!
//! `validate` names the first bad field and why, so an operator can fix a file without reading code. Unknown fields
//! are refused: a typo must not silently fall back to a default, least of all a durability setting. Settings with a
//! fixed set of values are enums ([`Fsync`], [`LogFormat`]), so a misspelt value is refused while parsing.
//!
//! Units: every duration's name ends in its unit. A duration that can sensibly be shorter than a second is in
//! milliseconds (`_ms`: the tick, fsync batching, call deadlines, the drain); one measured in minutes, hours or days is
//! in seconds (`_seconds`: retention, windows, lifetimes, snapshot age). The stem matches the rule it sets:
//! `ticket_idle_ttl_seconds` here is `BookRules::ticket_idle_ttl_ms` in the domain.

use crate::domain::{
    BookRules, OfficeId, OfficeSettings, Pool, ServiceType, SessionId, SessionTemplate, TimeOfDay, validate_settings,
};
use crate::limits::{AMENDMENTS_MAX, OFFICES_MAX, WAITING_ROOM_ADMISSIONS_PER_SECOND_MAX};
use crate::storage::{FsyncMode, WalOptions};
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Smallest `storage.snapshot_every_log_bytes`: below a few records' worth, the service would do little but snapshot.
const SNAPSHOT_EVERY_LOG_BYTES_MIN: u64 = 4096;
/// Largest `storage.snapshot_every_log_bytes` (16 GiB): beyond it a start after a crash replays for minutes.
const SNAPSHOT_EVERY_LOG_BYTES_MAX: u64 = 16 * 1024 * 1024 * 1024;

/// The embedded demo configuration: real offices, usable at once.
pub const DEMO_CONFIG: &str = include_str!("../config/antrean.toml");

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not valid TOML, or a field of the wrong type, or an unknown field.
    #[error("{source}")]
    Parse {
        /// What the parser said (it names the line and field).
        #[from]
        source: toml::de::Error,
    },
    /// A field with a value that cannot work.
    #[error("invalid configuration: {field}: {reason}")]
    Invalid {
        /// Path of the field, e.g. `offices[2].time_zone`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid { field: field.into(), reason: reason.into() })
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Network, limits and logging.
    pub server: ServerConfig,
    /// Data directory and durability.
    pub storage: StorageConfig,
    /// Booking policy.
    pub booking: BookingConfig,
    /// Offices that seed an empty data directory.
    pub offices: Vec<OfficeConfig>,
    /// Who may call, with which roles; none configured means everything is open (local demo only).
    pub callers: Vec<crate::auth::CallerConfig>,
    /// Limits on holds per caller, account and applicant.
    pub anti_hoarding: crate::auth::AntiHoardingConfig,
    /// `[cluster]`: keep the offices' logs on NATS JetStream. Absent (the default): one node, local log.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// Set by `--demo-release-in`: put the demo office's next release this many seconds after start, behind a
    /// waiting room. Not a file setting.
    #[serde(skip)]
    pub demo_release_in_seconds: Option<u64>,
}

/// `storage.fsync`: when an answer may be released relative to fdatasync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Answer after the fdatasync that covers the call's record (the default).
    #[default]
    Always,
    /// fdatasync at most every `fsync_batch_interval_ms`, still answering only after the sync that covers the call.
    Batch,
    /// Never fdatasync: a crash can lose acknowledged calls. Benchmarks only.
    None,
}

/// `server.log_format`: how log lines are written to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object a line, for log pipelines.
    Json,
}

/// Deserializes a field, prefixing a refusal with the field's path, so a bad enum value names the field like
/// `validate` does (the TOML parser only shows the line).
fn named_field<'de, D: Deserializer<'de>, T: Deserialize<'de>>(path: &str, deserializer: D) -> Result<T, D::Error> {
    T::deserialize(deserializer).map_err(|error| serde::de::Error::custom(format!("{path}: {error}")))
}

fn storage_fsync<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Fsync, D::Error> {
    named_field("storage.fsync", deserializer)
}

fn server_log_format<'de, D: Deserializer<'de>>(deserializer: D) -> Result<LogFormat, D::Error> {
    named_field("server.log_format", deserializer)
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// gRPC listen address.
    pub listen: String,
    /// Prometheus listen address; empty disables it.
    pub metrics_listen: String,
    /// Most requests served at once.
    pub in_flight_requests_max: u32,
    /// Most calls per second from one caller (bearer token, or peer IP address when there is none).
    pub caller_requests_per_second_max: u32,
    /// Deadline for requests that bring none, in milliseconds.
    pub request_timeout_ms: u64,
    /// Drain time on shutdown, in milliseconds.
    pub drain_timeout_ms: u64,
    /// `text` or `json`.
    #[serde(deserialize_with = "server_log_format")]
    pub log_format: LogFormat,
    /// tracing EnvFilter directives.
    pub log_filter: String,
    /// `[server.tls]`: serve TLS (and require client certificates when a client CA is set).
    pub tls: Option<crate::tls::TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: "127.0.0.1:50051".into(),
            metrics_listen: "127.0.0.1:9090".into(),
            in_flight_requests_max: 4096,
            caller_requests_per_second_max: 100_000,
            request_timeout_ms: 5_000,
            drain_timeout_ms: 10_000,
            log_format: LogFormat::Text,
            log_filter: "info".into(),
            tls: None,
        }
    }
}

/// `[storage]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// `always`, `batch` or `none`.
    #[serde(deserialize_with = "storage_fsync")]
    pub fsync: Fsync,
    /// Interval of `batch` mode, in milliseconds.
    pub fsync_batch_interval_ms: u64,
    /// Largest segment file.
    pub segment_bytes_max: u64,
    /// Most records per group commit.
    pub batch_records_max: u32,
    /// Most bytes per group commit.
    pub batch_bytes_max: u64,
    /// Snapshot after this many records.
    pub snapshot_every_records: u64,
    /// Snapshot once the log written since the last snapshot passes this many bytes: what a start after a crash must
    /// replay stays bounded whatever the records' sizes.
    pub snapshot_every_log_bytes: u64,
    /// Snapshot after this many seconds.
    pub snapshot_every_seconds: u64,
    /// Start despite mid-log corruption, dropping what follows it.
    pub accept_log_truncation: bool,
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            data_dir: PathBuf::from("./data"),
            fsync: Fsync::Always,
            fsync_batch_interval_ms: 2,
            segment_bytes_max: 64 * 1024 * 1024,
            batch_records_max: 8192,
            batch_bytes_max: 8 * 1024 * 1024,
            snapshot_every_records: 1_000_000,
            snapshot_every_log_bytes: 64 * 1024 * 1024,
            snapshot_every_seconds: 300,
            accept_log_truncation: false,
        }
    }
}

/// `[booking]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BookingConfig {
    /// See [`BookRules::applicant_active_bookings_max`].
    pub applicant_active_bookings_max: u32,
    /// See [`BookRules::payment_settlement_grace_ms`], in seconds.
    pub payment_settlement_grace_seconds: u64,
    /// See [`BookRules::reschedules_max`].
    pub reschedules_max: u32,
    /// See [`BookRules::reschedule_days_before_min`].
    pub reschedule_days_before_min: i32,
    /// See [`BookRules::amendments_max`].
    pub amendments_max: u32,
    /// Request-id memory, in seconds.
    pub request_retention_seconds: u64,
    /// See [`BookRules::requests_max`].
    pub requests_max: u64,
    /// See [`BookRules::bookings_max`].
    pub bookings_max: u64,
    /// Expiry ticker period, in milliseconds.
    pub expiry_tick_ms: u64,
    /// How long before a release instant its waiting room opens, in seconds.
    pub waiting_room_pre_open_seconds: u64,
    /// How long an admitted applicant has to hold, in seconds.
    pub admission_ttl_seconds: u64,
    /// Admitted-but-not-booked tickets at most at remaining slots times this percentage.
    pub admission_factor_percent: u32,
    /// A waiting ticket nobody watches for this long expires, in seconds. Was `ticket_idle_seconds`, still accepted.
    #[serde(alias = "ticket_idle_seconds")]
    pub ticket_idle_ttl_seconds: u64,
    /// Most tickets in one waiting room.
    pub tickets_per_room_max: u64,
    /// Most tickets one waiting room admits per second.
    pub admissions_per_second_max: u32,
}

fn seconds_to_ms(seconds: u64) -> i64 {
    seconds.saturating_mul(1000).min(i64::MAX as u64) as i64
}

impl Default for BookingConfig {
    fn default() -> BookingConfig {
        let rules = BookRules::default();
        BookingConfig {
            applicant_active_bookings_max: rules.applicant_active_bookings_max,
            payment_settlement_grace_seconds: (rules.payment_settlement_grace_ms / 1000) as u64,
            reschedules_max: rules.reschedules_max,
            reschedule_days_before_min: rules.reschedule_days_before_min,
            amendments_max: rules.amendments_max,
            request_retention_seconds: (rules.request_retention_ms / 1000) as u64,
            requests_max: rules.requests_max,
            bookings_max: rules.bookings_max,
            expiry_tick_ms: 100,
            waiting_room_pre_open_seconds: (rules.waiting_room_pre_open_ms / 1000) as u64,
            admission_ttl_seconds: (rules.admission_ttl_ms / 1000) as u64,
            admission_factor_percent: rules.admission_factor_percent,
            ticket_idle_ttl_seconds: (rules.ticket_idle_ttl_ms / 1000) as u64,
            tickets_per_room_max: rules.tickets_per_room_max,
            admissions_per_second_max: rules.admissions_per_second_max,
        }
    }
}

/// `[[offices]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficeConfig {
    /// Office id.
    pub office_id: String,
    /// Display name.
    pub display_name: String,
    /// City.
    #[serde(default)]
    pub city: String,
    /// Province.
    #[serde(default)]
    pub province: String,
    /// IANA time zone.
    pub time_zone: String,
    /// `NEW_PASSPORT`, `REPLACEMENT`.
    pub services: Vec<String>,
    /// ISO weekdays.
    #[serde(default = "weekdays")]
    pub working_weekdays: Vec<i8>,
    /// Payment window, in seconds.
    #[serde(default = "payment_window")]
    pub payment_window_seconds: i64,
    /// Booking horizon, in days.
    #[serde(default = "horizon")]
    pub booking_horizon_days: i32,
    /// Release lead, in days.
    #[serde(default = "horizon")]
    pub release_days_before: i32,
    /// Release time, `HH:MM` local.
    #[serde(default = "midnight")]
    pub release_time: String,
    /// Sessions of a working day.
    pub sessions: Vec<SessionConfig>,
}

fn weekdays() -> Vec<i8> {
    vec![1, 2, 3, 4, 5]
}
fn payment_window() -> i64 {
    7_200
}
fn horizon() -> i32 {
    30
}
fn midnight() -> String {
    "00:00".into()
}

/// `[[offices.sessions]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Session id.
    pub session_id: String,
    /// `HH:MM` local.
    pub starts_at: String,
    /// `HH:MM` local.
    pub ends_at: String,
    /// Regular pool capacity.
    #[serde(default)]
    pub regular: u32,
    /// Express pool capacity.
    #[serde(default)]
    pub express: u32,
    /// Priority pool capacity.
    #[serde(default)]
    pub priority: u32,
}

impl Config {
    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// The embedded demo configuration.
    #[must_use]
    pub fn demo() -> Config {
        Config::parse(DEMO_CONFIG).expect("the embedded configuration is valid (a unit test checks it)")
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.listen.parse::<SocketAddr>().or_else(|_| invalid("server.listen", "must be an IP:port address"))?;
        if !self.server.metrics_listen.is_empty() {
            let parsed = self.server.metrics_listen.parse::<SocketAddr>();
            parsed.or_else(|_| invalid("server.metrics_listen", "must be an IP:port address or empty"))?;
        }
        if !(1..=1_000_000).contains(&self.server.in_flight_requests_max) {
            return invalid("server.in_flight_requests_max", "must be between 1 and 1000000");
        }
        if self.server.caller_requests_per_second_max == 0 {
            return invalid("server.caller_requests_per_second_max", "must be at least 1");
        }
        if self.server.request_timeout_ms == 0 {
            return invalid("server.request_timeout_ms", "must be at least 1");
        }
        self.wal_options().map_err(|error| match error {
            crate::storage::StorageError::InvalidOptions { field, reason } => {
                ConfigError::Invalid { field: format!("storage.{field}"), reason }
            }
            other => ConfigError::Invalid { field: "storage".into(), reason: other.to_string() },
        })?;
        if !(SNAPSHOT_EVERY_LOG_BYTES_MIN..=SNAPSHOT_EVERY_LOG_BYTES_MAX)
            .contains(&self.storage.snapshot_every_log_bytes)
        {
            return invalid(
                "storage.snapshot_every_log_bytes",
                format!("must be between {SNAPSHOT_EVERY_LOG_BYTES_MIN} and {SNAPSHOT_EVERY_LOG_BYTES_MAX}"),
            );
        }
        if self.storage.snapshot_every_records == 0 || self.storage.snapshot_every_seconds == 0 {
            return invalid("storage.snapshot_every_records", "snapshot intervals must be at least 1");
        }
        self.validate_booking()?;
        self.validate_security()?;
        if self.offices.len() > OFFICES_MAX {
            return invalid("offices", format!("at most {OFFICES_MAX} offices"));
        }
        let mut seen = std::collections::HashSet::new();
        for (index, office) in self.offices.iter().enumerate() {
            let settings = office.settings(&format!("offices[{index}]"))?;
            if !seen.insert(settings.office_id.clone()) {
                return invalid(format!("offices[{index}].office_id"), "duplicate office id");
            }
        }
        Ok(())
    }

    fn validate_booking(&self) -> Result<(), ConfigError> {
        let booking = &self.booking;
        if !(1..=100).contains(&booking.applicant_active_bookings_max) {
            return invalid("booking.applicant_active_bookings_max", "must be between 1 and 100");
        }
        if booking.payment_settlement_grace_seconds > 86_400 {
            return invalid("booking.payment_settlement_grace_seconds", "must be between 0 and 86400");
        }
        if !(0..=365).contains(&booking.reschedule_days_before_min) {
            return invalid("booking.reschedule_days_before_min", "must be between 0 and 365");
        }
        if booking.amendments_max > AMENDMENTS_MAX {
            return invalid("booking.amendments_max", format!("must be between 0 and {AMENDMENTS_MAX}"));
        }
        if booking.request_retention_seconds == 0 || booking.requests_max == 0 || booking.bookings_max == 0 {
            return invalid("booking.request_retention_seconds", "retention and maxima must be at least 1");
        }
        if !(1..=WAITING_ROOM_ADMISSIONS_PER_SECOND_MAX).contains(&booking.admissions_per_second_max) {
            return invalid(
                "booking.admissions_per_second_max",
                format!("must be between 1 and {WAITING_ROOM_ADMISSIONS_PER_SECOND_MAX}"),
            );
        }
        if !(1..=1000).contains(&booking.admission_factor_percent) {
            return invalid("booking.admission_factor_percent", "must be between 1 and 1000");
        }
        if booking.admission_ttl_seconds == 0
            || booking.ticket_idle_ttl_seconds == 0
            || booking.tickets_per_room_max == 0
        {
            return invalid(
                "booking.admission_ttl_seconds",
                "admission and idle times and the ticket maximum must be at least 1",
            );
        }
        if !(1..=60_000).contains(&booking.expiry_tick_ms) {
            return invalid("booking.expiry_tick_ms", "must be between 1 and 60000");
        }
        Ok(())
    }

    fn validate_security(&self) -> Result<(), ConfigError> {
        let tls = self.server.tls.as_ref().map_or(Ok(()), crate::tls::TlsConfig::validate);
        let cluster = self.cluster.as_ref().map_or(Ok(()), crate::cluster::ClusterConfig::validate);
        let checks = [tls, crate::auth::validate_callers(&self.callers), self.anti_hoarding.validate(), cluster];
        match checks.into_iter().find_map(Result::err) {
            Some((field, reason)) => invalid(field, reason),
            None => self.validate_advertised(),
        }
    }

    /// A node that forwards calls must be reachable: with `server.listen` on an unspecified address (`0.0.0.0`) the
    /// address other nodes use has to be given; and it must not serve TLS, which forwarding does not speak yet.
    fn validate_advertised(&self) -> Result<(), ConfigError> {
        let Some(cluster) = &self.cluster else { return Ok(()) };
        let unspecified = self.server.listen.parse::<SocketAddr>().is_ok_and(|address| address.ip().is_unspecified());
        if cluster.forward_calls && cluster.advertise_address.is_none() && unspecified {
            return invalid("cluster.advertise_address", "must be set when server.listen is 0.0.0.0 or [::]");
        }
        if cluster.forward_calls && self.server.tls.is_some() {
            // Forwarding dials other nodes in plain HTTP/2, which a node serving TLS would refuse: every forwarded
            // call would fail at run time. Say so at start instead.
            return invalid(
                "cluster.forward_calls",
                "cannot be used with [server.tls] yet (nodes forward in plain HTTP/2): set forward_calls = false, \
                 and callers are told which node owns an office (OFFICE_NOT_IN_PARTITION)",
            );
        }
        Ok(())
    }

    /// The write-ahead log options.
    pub fn wal_options(&self) -> Result<WalOptions, crate::storage::StorageError> {
        let storage = &self.storage;
        let fsync = match storage.fsync {
            Fsync::Always => FsyncMode::Always,
            Fsync::Batch => FsyncMode::Batch { interval_ms: storage.fsync_batch_interval_ms },
            Fsync::None => FsyncMode::None,
        };
        let options = WalOptions {
            dir: storage.data_dir.join("wal"),
            segment_bytes_max: storage.segment_bytes_max,
            fsync,
            batch_records_max: storage.batch_records_max,
            batch_bytes_max: storage.batch_bytes_max,
            record_bytes_max: crate::limits::LOG_RECORD_BYTES_MAX,
        };
        options.validate()?;
        Ok(options)
    }

    /// The booking rules.
    #[must_use]
    pub fn book_rules(&self) -> BookRules {
        let booking = &self.booking;
        BookRules {
            applicant_active_bookings_max: booking.applicant_active_bookings_max,
            payment_settlement_grace_ms: seconds_to_ms(booking.payment_settlement_grace_seconds),
            reschedules_max: booking.reschedules_max,
            reschedule_days_before_min: booking.reschedule_days_before_min,
            amendments_max: booking.amendments_max,
            request_retention_ms: seconds_to_ms(booking.request_retention_seconds),
            requests_max: booking.requests_max,
            bookings_max: booking.bookings_max,
            waiting_room_pre_open_ms: seconds_to_ms(booking.waiting_room_pre_open_seconds),
            admission_ttl_ms: seconds_to_ms(booking.admission_ttl_seconds),
            admission_factor_percent: booking.admission_factor_percent,
            ticket_idle_ttl_ms: seconds_to_ms(booking.ticket_idle_ttl_seconds),
            tickets_per_room_max: booking.tickets_per_room_max,
            admissions_per_second_max: booking.admissions_per_second_max,
        }
    }

    /// The offices as domain settings (already validated).
    pub fn office_settings(&self) -> Result<Vec<OfficeSettings>, ConfigError> {
        self.offices.iter().enumerate().map(|(index, office)| office.settings(&format!("offices[{index}]"))).collect()
    }
}

fn time_of_day(field: &str, text: &str) -> Result<TimeOfDay, ConfigError> {
    let parsed = text.split_once(':').and_then(|(hours, minutes)| {
        let valid = hours.len() == 2 && minutes.len() == 2;
        valid.then(|| TimeOfDay::new(hours.parse().ok()?, minutes.parse().ok()?)).flatten()
    });
    parsed.map_or_else(|| invalid(field, "must be HH:MM, 00:00 to 23:59"), Ok)
}

impl OfficeConfig {
    /// The office as domain settings, or the first bad field under `path`.
    pub fn settings(&self, path: &str) -> Result<OfficeSettings, ConfigError> {
        let field = |name: &str| format!("{path}.{name}");
        let office_id =
            OfficeId::parse(&self.office_id).map_or_else(|| invalid(field("office_id"), OfficeId::RULE), Ok)?;
        let services = self
            .services
            .iter()
            .map(|name| match name.as_str() {
                "NEW_PASSPORT" => Ok(ServiceType::NewPassport),
                "REPLACEMENT" => Ok(ServiceType::Replacement),
                _ => invalid(field("services"), format!("unknown service {name:?} (NEW_PASSPORT, REPLACEMENT)")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let settings = OfficeSettings {
            office_id,
            display_name: self.display_name.clone(),
            time_zone: self.time_zone.clone(),
            city: self.city.clone(),
            province: self.province.clone(),
            services,
            sessions: self.session_templates(path)?,
            working_weekdays: self.working_weekdays.clone(),
            payment_window_ms: self.payment_window_seconds.saturating_mul(1000),
            booking_horizon_days: self.booking_horizon_days,
            release_days_before: self.release_days_before,
            release_time: time_of_day(&field("release_time"), &self.release_time)?,
        };
        match validate_settings(&settings, &format!("{path}.")).into_iter().next() {
            Some(violation) => invalid(violation.field, violation.description),
            None => Ok(settings),
        }
    }

    fn session_templates(&self, path: &str) -> Result<Vec<SessionTemplate>, ConfigError> {
        let mut templates = Vec::with_capacity(self.sessions.len());
        for (index, session) in self.sessions.iter().enumerate() {
            let field = |name: &str| format!("{path}.sessions[{index}].{name}");
            let session_id = SessionId::parse(&session.session_id)
                .map_or_else(|| invalid(field("session_id"), SessionId::RULE), Ok)?;
            let capacities = [
                (Pool::Regular, session.regular),
                (Pool::Express, session.express),
                (Pool::Priority, session.priority),
            ];
            templates.push(SessionTemplate {
                session_id,
                starts_at: time_of_day(&field("starts_at"), &session.starts_at)?,
                ends_at: time_of_day(&field("ends_at"), &session.ends_at)?,
                capacities: capacities.into_iter().filter(|(_, capacity)| *capacity > 0).collect(),
            });
        }
        templates.sort_by_key(|template| template.starts_at);
        Ok(templates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarding_node_listening_on_every_address_must_say_where_it_is_reached() {
        let cluster = "[cluster]\nnode_name = \"node-1\"\nnats_urls = [\"nats://127.0.0.1:4222\"]\noffices = \"all\"\n";
        // Forwarding is on by default.
        let open = format!("[server]\nlisten = \"0.0.0.0:50051\"\n{cluster}");
        let error = Config::parse(&open).expect_err("unreachable");
        assert!(error.to_string().contains("cluster.advertise_address"), "{error}");
        Config::parse(&format!("{open}advertise_address = \"10.0.0.7:50051\"\n")).expect("advertised");
        Config::parse(&format!("{open}forward_calls = false\n")).expect("not forwarding");
    }

    #[test]
    fn a_node_serving_tls_cannot_forward_yet() {
        let tls = "[server.tls]\ncert_path = \"/etc/antrean/cert.pem\"\nkey_path = \"/etc/antrean/key.pem\"\n";
        let cluster = "[cluster]\nnode_name = \"node-1\"\nnats_urls = [\"nats://127.0.0.1:4222\"]\noffices = \"all\"\n";
        let error = Config::parse(&format!("{tls}{cluster}")).expect_err("forwarding is on by default");
        assert!(error.to_string().contains("cluster.forward_calls"), "{error}");
        Config::parse(&format!("{tls}{cluster}forward_calls = false\n")).expect("not forwarding");
    }

    #[test]
    fn the_embedded_configuration_is_valid_and_has_real_offices() {
        let config = Config::parse(DEMO_CONFIG).expect("valid");
        assert!(config.offices.len() >= 10);
        let batam = config.offices.iter().find(|office| office.office_id == "kanim-batam").expect("batam");
        let daily: u32 =
            batam.sessions.iter().map(|session| session.regular + session.express + session.priority).sum();
        assert_eq!(daily, 285, "Batam runs 200 + 35 + 50 a day");
    }

    #[test]
    fn errors_name_the_field() {
        let error = Config::parse("[storage]\nfsync = \"sometimes\"\n").expect_err("bad fsync");
        assert!(error.to_string().contains("storage.fsync"), "{error}");
        let error = Config::parse("[server]\nlog_format = \"xml\"\n").expect_err("bad log format");
        assert!(error.to_string().contains("server.log_format"), "{error}");
        let error = Config::parse("[server]\nlisten = \"nowhere\"\n").expect_err("bad listen");
        assert!(error.to_string().contains("server.listen"), "{error}");
        let error = Config::parse("[server]\nlistn = \"127.0.0.1:1\"\n").expect_err("typo");
        assert!(error.to_string().contains("listn"), "{error}");
        let office = DEMO_CONFIG.replacen("time_zone = \"Asia/Jakarta\"", "time_zone = \"Asia/Atlantis\"", 1);
        let error = Config::parse(&office).expect_err("bad zone");
        assert!(error.to_string().contains("offices[0].time_zone"), "{error}");
    }

    #[test]
    fn the_settlement_grace_is_fifteen_minutes_unless_set_and_at_most_a_day() {
        assert_eq!(Config::demo().book_rules().payment_settlement_grace_ms, 900_000);
        let none = Config::parse("[booking]\npayment_settlement_grace_seconds = 0\n").expect("no grace is valid");
        assert_eq!(none.book_rules().payment_settlement_grace_ms, 0);
        let error = Config::parse("[booking]\npayment_settlement_grace_seconds = 86401\n").expect_err("too long");
        assert!(error.to_string().contains("booking.payment_settlement_grace_seconds"), "{error}");
    }

    #[test]
    fn the_log_between_snapshots_is_bounded_by_size_as_well_as_by_records() {
        assert_eq!(Config::demo().storage.snapshot_every_log_bytes, 64 * 1024 * 1024);
        let small = Config::parse("[storage]\nsnapshot_every_log_bytes = 4096\n").expect("4 KiB is valid");
        assert_eq!(small.storage.snapshot_every_log_bytes, 4096);
        for bad in ["0", "4095", "17179869185"] {
            let error = Config::parse(&format!("[storage]\nsnapshot_every_log_bytes = {bad}\n")).expect_err(bad);
            assert!(error.to_string().contains("storage.snapshot_every_log_bytes"), "{error}");
        }
    }

    #[test]
    fn enums_and_units_read_as_written_and_the_old_idle_name_still_works() {
        let config = Config::parse("[server]\nlog_format = \"json\"\n[storage]\nfsync = \"batch\"\n").expect("valid");
        assert_eq!((config.server.log_format, config.storage.fsync), (LogFormat::Json, Fsync::Batch));
        let renamed = Config::parse("[booking]\nticket_idle_ttl_seconds = 90\n").expect("valid");
        let old_name = Config::parse("[booking]\nticket_idle_seconds = 90\n").expect("still valid");
        assert_eq!(renamed.book_rules().ticket_idle_ttl_ms, 90_000);
        assert_eq!(old_name.book_rules(), renamed.book_rules());
    }
}
