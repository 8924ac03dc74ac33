//! The command line: flags, their defaults and limits, and the checks that refuse an unsafe or unbounded run.
//!
//! This module owns parsing and validation only; it must not open connections or start anything.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

use crate::pinning::CpuList;

/// Longest run accepted, whatever `--duration` says.
pub const DURATION_MAX: Duration = Duration::from_secs(10 * 60);
/// Most calls one run may start, whatever `--max-requests` says.
pub const REQUESTS_MAX: u64 = 20_000_000;
/// Most closed-loop tasks.
pub const CONCURRENCY_MAX: usize = 10_000;
/// Highest open-loop rate in calls per second.
pub const RATE_MAX: f64 = 1_000_000.0;
/// Most HTTP/2 connections to the server.
pub const CONNECTIONS_MAX: usize = 64;
/// Most simulated users in `spike`.
pub const USERS_MAX: u64 = 1_000_000;
/// Most slots a run may create.
pub const SLOTS_MAX: u64 = 10_000_000;
/// Most offices a run may create.
pub const OFFICES_MAX: u32 = 100;
/// Most dates per office; the test offices allow booking 60 days ahead.
pub const DAYS_MAX: u32 = 59;
/// Most Watch streams a spike keeps open (the server's own limit is 50,000).
pub const WATCHERS_MAX: usize = 40_000;
/// Most open-loop calls in flight at once.
pub const OUTSTANDING_MAX: usize = 100_000;
/// Most holds `memory` and `recovery` make (every one is tracked and read back).
pub const HOLDS_MAX: u64 = crate::check::LEDGER_MAX as u64;
/// Most nodes of `cluster`.
pub const NODES_MAX: usize = 16;
/// Longest settle pause of `memory`.
pub const SETTLE_MAX: Duration = Duration::from_secs(120);

/// A load scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// `grpc.health.v1.Health/Check`: the ceiling of the gRPC stack.
    Ping,
    /// Holds only, on a fresh quota.
    Hold,
    /// Hold then confirm, cancel or abandon, with late payments.
    Lifecycle,
    /// Many users arrive around a release instant for few slots.
    Spike,
    /// Steady mixed load of reads, holds, confirms and cancels.
    Soak,
    /// Holds that must be refused: half on dates not open yet, half on full sessions (the cost of saying no).
    Refusals,
    /// Joins `--users` tickets to a waiting room that does not open during the run, and reports the server's memory
    /// per waiting ticket (VmRSS before and after, from /proc).
    Tickets,
    /// The "hold one slot" workload against Redis with a Lua script (the usual flash-sale design), `--target` a
    /// Redis server; `--redis-appendfsync` sets its durability.
    CompareRedis,
    /// The "hold one slot" workload against PostgreSQL (conditional UPDATE in a transaction), `--target` a
    /// PostgreSQL server; `--pg-synchronous-commit` sets its durability.
    ComparePostgres,
    /// Makes `--holds` holds (none refused) and reports the server's memory per booking (VmRSS before, after and
    /// after `--settle`, from /proc), then reads every booking back.
    Memory,
    /// Makes `--holds` holds, kills the spawned server with SIGKILL, starts it again on the same data directory and
    /// port, and reports the time from exec to SERVING and whether every acknowledged booking came back.
    Recovery,
    /// Holds against the running nodes of a cluster (`--nodes`), each sent to whichever node serves (a call refused
    /// UNAVAILABLE is sent again to the next node after its RetryInfo hint); reports throughput, the unavailability
    /// window of a failover and lost and overbooked after a check. `--kill-owner-after` kills the serving node.
    Cluster,
}

impl Scenario {
    /// The lowercase name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Ping => "ping",
            Scenario::Hold => "hold",
            Scenario::Lifecycle => "lifecycle",
            Scenario::Spike => "spike",
            Scenario::Soak => "soak",
            Scenario::Refusals => "refusals",
            Scenario::Tickets => "tickets",
            Scenario::CompareRedis => "compare-redis",
            Scenario::ComparePostgres => "compare-postgres",
            Scenario::Memory => "memory",
            Scenario::Recovery => "recovery",
            Scenario::Cluster => "cluster",
        }
    }

    /// Whether the scenario talks to antrean (the others drive Redis or PostgreSQL).
    pub fn is_antrean(self) -> bool {
        !matches!(self, Scenario::CompareRedis | Scenario::ComparePostgres)
    }
}

/// Load generator for antrean: drives one scenario against a server, then checks the server's state.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about)]
pub struct Cli {
    /// The scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Address of a running server, host:port or http://host:port; loopback only unless --allow-non-loopback.
    #[arg(long, default_value = "127.0.0.1:50051", conflicts_with = "spawn")]
    pub target: String,
    /// Start the server binary on a free loopback port with a fresh data directory, and stop it at the end.
    #[arg(long)]
    pub spawn: bool,
    /// Server binary for --spawn; default: `antrean` next to this binary.
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// Extra argument for the spawned server (repeatable), e.g. --server-arg=--fsync --server-arg=batch.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Keep the spawned server's data directory and log.
    #[arg(long)]
    pub keep_data: bool,
    /// Bearer token sent as `authorization: Bearer TOKEN` when the server has callers configured (needs the booking,
    /// payment and admin roles); default: $ANTREAN_TOKEN.
    #[arg(long, env = "ANTREAN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Allow a target that is not on a loopback address.
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// How long to generate load, e.g. 10s, 500ms, 2m (at most 10m); spike's default covers its arrivals.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Closed loop: this many tasks, each sending its next call when the previous one returns (default 64).
    #[arg(long, conflicts_with = "rate")]
    pub concurrency: Option<usize>,
    /// Open loop: this many calls per second on a fixed timetable.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: calls in flight at most; a call that finds no room is counted as dropped.
    #[arg(long, default_value_t = 10_000)]
    pub max_outstanding: usize,
    /// Start at most this many calls (scenario journeys).
    #[arg(long, default_value_t = 5_000_000)]
    pub max_requests: u64,
    /// Number of HTTP/2 connections (tonic channels) to the server.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Deadline of each call.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub call_timeout: Duration,
    /// Users in spike.
    #[arg(long, default_value_t = 10_000)]
    pub users: u64,
    /// Total slots the scenario creates (default: 1000 for spike, 100000 otherwise).
    #[arg(long)]
    pub slots: Option<u64>,
    /// Offices the scenario creates (default: 4, spike 1).
    #[arg(long)]
    pub offices: Option<u32>,
    /// Bookable dates per office, from tomorrow on.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Spike: users arrive spread over this window, starting 2 s before the release instant.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub arrival_window: Duration,
    /// Payment window of the test offices (default: 5s for lifecycle, spike and soak; 2h for hold).
    #[arg(long, value_parser = parse_duration)]
    pub payment_window: Option<Duration>,
    /// Spike: no waiting room; everyone holds directly once the dates open (the gate of the first version).
    #[arg(long)]
    pub no_waiting_room: bool,
    /// Spike: most Watch streams open at once; other waiting users wait for a place, they never poll (the server
    /// allows 50,000 streams).
    #[arg(long, default_value_t = WATCHERS_MAX)]
    pub watchers_max: usize,
    /// Process id of the server behind --target, for `tickets` and `memory` to read its memory (with --spawn it is
    /// known).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Run the spawned server on these CPUs only, e.g. `1` or `0-1` (as `taskset -c`); needs --spawn.
    #[arg(long, value_name = "LIST", requires = "spawn")]
    pub server_cpus: Option<CpuList>,
    /// Run the load generator (all its threads) on these CPUs only, e.g. `0`.
    #[arg(long, value_name = "LIST")]
    pub client_cpus: Option<CpuList>,
    /// memory, recovery: how many holds to make, spread so that none is refused.
    #[arg(long, default_value_t = 10_000)]
    pub holds: u64,
    /// memory: pause after the last hold before the memory is read again, so allocations settle.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub settle: Duration,
    /// compare-redis: the `appendfsync` mode set with CONFIG SET before the run (always, everysec or no).
    #[arg(long, default_value = "always")]
    pub redis_appendfsync: String,
    /// compare-postgres: `synchronous_commit` of every connection (on or off).
    #[arg(long, default_value = "on")]
    pub pg_synchronous_commit: String,
    /// compare-postgres: the user to connect as.
    #[arg(long, default_value = "postgres")]
    pub pg_user: String,
    /// cluster: the nodes' addresses (host:port), comma-separated, e.g. 127.0.0.1:50061,127.0.0.1:50062.
    #[arg(long, value_delimiter = ',', value_name = "ADDRESSES")]
    pub nodes: Vec<String>,
    /// cluster: the nodes' process ids, in the order of --nodes, for --kill-owner-after.
    #[arg(long, value_delimiter = ',', value_name = "PIDS")]
    pub node_pids: Vec<u32>,
    /// cluster: this long after the load starts, kill the node serving with SIGKILL (a failover under load).
    #[arg(long, value_parser = parse_duration, requires = "node_pids")]
    pub kill_owner_after: Option<Duration>,
    /// Skip the correctness check against the server after the load.
    #[arg(long)]
    pub no_check: bool,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write throughput and latency per second as an SVG chart to this file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Seed of every random choice (applicants, sessions, outcomes); default: from the clock.
    #[arg(long)]
    pub seed: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// How calls are paced.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum Pacing {
    /// `tasks` tasks, each sending its next call when the previous one returns.
    Closed {
        /// Number of tasks.
        tasks: usize,
    },
    /// Calls scheduled at `rate_per_s` per second, whatever the answers do.
    Open {
        /// Calls per second.
        rate_per_s: f64,
        /// Calls in flight at most.
        outstanding_max: usize,
    },
    /// `spike`: each user arrives once, at a random instant of the arrival window.
    Arrivals {
        /// Number of users.
        users: u64,
        /// The arrival window in seconds.
        window_s: f64,
    },
}

impl Cli {
    /// Checks every flag against its limit and the target against the loopback rule.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.duration.is_some_and(|duration| duration.is_zero() || duration > DURATION_MAX) {
            bail!("--duration must be between 1ms and {}s", DURATION_MAX.as_secs());
        }
        if self.max_requests == 0 || self.max_requests > REQUESTS_MAX {
            bail!("--max-requests must be between 1 and {REQUESTS_MAX}");
        }
        if self.concurrency.is_some_and(|tasks| tasks == 0 || tasks > CONCURRENCY_MAX) {
            bail!("--concurrency must be between 1 and {CONCURRENCY_MAX}");
        }
        if self.rate.is_some_and(|rate| !(rate > 0.0 && rate <= RATE_MAX)) {
            bail!("--rate must be above 0 and at most {RATE_MAX}");
        }
        if self.max_outstanding == 0 || self.max_outstanding > OUTSTANDING_MAX {
            bail!("--max-outstanding must be between 1 and {OUTSTANDING_MAX}");
        }
        if self.connections == 0 || self.connections > CONNECTIONS_MAX {
            bail!("--connections must be between 1 and {CONNECTIONS_MAX}");
        }
        if self.users == 0 || self.users > USERS_MAX {
            bail!("--users must be between 1 and {USERS_MAX}");
        }
        if self.slots() == 0 || self.slots() > SLOTS_MAX {
            bail!("--slots must be between 1 and {SLOTS_MAX}");
        }
        if self.offices() == 0 || self.offices() > OFFICES_MAX {
            bail!("--offices must be between 1 and {OFFICES_MAX}");
        }
        if self.days == 0 || self.days > DAYS_MAX {
            bail!("--days must be between 1 and {DAYS_MAX}");
        }
        if self.arrival_window > DURATION_MAX / 2 {
            bail!("--arrival-window must be at most {}s", DURATION_MAX.as_secs() / 2);
        }
        let window = self.payment_window();
        if window < Duration::from_secs(1) || window > Duration::from_secs(7 * 24 * 3600) {
            bail!("--payment-window must be between 1s and 7 days");
        }
        if self.watchers_max > WATCHERS_MAX {
            bail!("--watchers-max must be at most {WATCHERS_MAX}");
        }
        if !["always", "everysec", "no"].contains(&self.redis_appendfsync.as_str()) {
            bail!("--redis-appendfsync must be always, everysec or no");
        }
        if !["on", "off"].contains(&self.pg_synchronous_commit.as_str()) {
            bail!("--pg-synchronous-commit must be on or off");
        }
        if self.holds == 0 || self.holds > HOLDS_MAX {
            bail!("--holds must be between 1 and {HOLDS_MAX}");
        }
        if self.settle > SETTLE_MAX {
            bail!("--settle must be at most {}s", SETTLE_MAX.as_secs());
        }
        match self.scenario {
            Scenario::Memory if !self.spawn && self.server_pid.is_none() => {
                bail!("memory reads the server's memory from /proc: use --spawn, or --server-pid with --target")
            }
            Scenario::Recovery if !self.spawn => {
                bail!("recovery kills and restarts the server: it needs --spawn")
            }
            Scenario::Cluster => self.validate_cluster()?,
            _ => {}
        }
        if self.spawn && !self.scenario.is_antrean() {
            bail!("--spawn starts antrean; {} needs --target", self.scenario.name());
        }
        if !self.spawn {
            check_target(&self.target, self.allow_non_loopback)?;
        }
        if self.scenario != Scenario::Cluster && !(self.nodes.is_empty() && self.kill_owner_after.is_none()) {
            bail!("--nodes and --kill-owner-after belong to the cluster scenario");
        }
        Ok(())
    }

    /// The cluster scenario's flags: 2 to [`NODES_MAX`] nodes on loopback, a pid for each when it kills the owner.
    fn validate_cluster(&self) -> anyhow::Result<()> {
        if self.spawn {
            bail!("cluster drives running nodes (--nodes); it does not spawn them");
        }
        if !(2..=NODES_MAX).contains(&self.nodes.len()) {
            bail!("cluster needs --nodes with 2 to {NODES_MAX} addresses");
        }
        for node in &self.nodes {
            check_target(node, self.allow_non_loopback)?;
        }
        if let Some(after) = self.kill_owner_after {
            if self.node_pids.len() != self.nodes.len() {
                bail!("--kill-owner-after needs --node-pids with one pid per node, in the order of --nodes");
            }
            if after >= self.duration() {
                bail!("--kill-owner-after must come before the end of --duration");
            }
        }
        Ok(())
    }

    /// The pacing chosen by `--concurrency` or `--rate`.
    pub fn pacing(&self) -> Pacing {
        if self.scenario == Scenario::Spike {
            return Pacing::Arrivals { users: self.users, window_s: self.arrival_window.as_secs_f64() };
        }
        match self.rate {
            Some(rate_per_s) => Pacing::Open { rate_per_s, outstanding_max: self.max_outstanding },
            None => Pacing::Closed { tasks: self.concurrency.unwrap_or(64) },
        }
    }

    /// How long load is generated.
    pub fn duration(&self) -> Duration {
        let default = match self.scenario {
            // Arrivals start at setup and the release is 2 s later; leave time for unpaid holds to lapse and their
            // slots to go round again. The run ends earlier when every user has an answer.
            Scenario::Spike => self.arrival_window + Duration::from_secs(60),
            // Stop once `--users` tickets have joined or `--holds` holds were made.
            Scenario::Tickets | Scenario::Memory | Scenario::Recovery => Duration::from_secs(300),
            _ => Duration::from_secs(10),
        };
        self.duration.unwrap_or(default).min(DURATION_MAX)
    }

    /// Total slots the scenario creates.
    pub fn slots(&self) -> u64 {
        self.slots.unwrap_or(match self.scenario {
            Scenario::Spike => 1_000,
            // One hot row with room for every hold of the run.
            Scenario::CompareRedis | Scenario::ComparePostgres => SLOTS_MAX,
            _ => 100_000,
        })
    }

    /// Offices the scenario creates.
    pub fn offices(&self) -> u32 {
        self.offices.unwrap_or(match self.scenario {
            Scenario::Spike | Scenario::Tickets | Scenario::Refusals => 1,
            _ => 4,
        })
    }

    /// Payment window of the test offices.
    pub fn payment_window(&self) -> Duration {
        self.payment_window.unwrap_or(match self.scenario {
            Scenario::Hold | Scenario::Ping | Scenario::Refusals | Scenario::Tickets => Duration::from_secs(7200),
            // No hold may lapse before the check reads it through the node serving at the end.
            Scenario::Cluster => Duration::from_secs(7200),
            // No hold may lapse before it is read back.
            Scenario::Memory | Scenario::Recovery => Duration::from_secs(7200),
            Scenario::CompareRedis | Scenario::ComparePostgres => Duration::from_secs(7200),
            _ => Duration::from_secs(5),
        })
    }
}

/// Parses `250ms`, `10s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().with_context(|| format!("invalid duration {text:?}"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => bail!("invalid duration unit in {text:?}; use ms, s, m or h"),
    };
    if !(0.0..=365.0 * 24.0 * 3600.0).contains(&seconds) {
        bail!("duration {text:?} out of range");
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Turns `host:port` or `http://host:port` into a URI for tonic.
pub fn target_uri(target: &str) -> String {
    if target.contains("://") { target.to_string() } else { format!("http://{target}") }
}

/// Refuses a target whose host is not a loopback address (127.0.0.0/8, ::1, localhost) unless `allow` is set.
pub fn check_target(target: &str, allow: bool) -> anyhow::Result<()> {
    let host = target_host(target).with_context(|| format!("cannot read a host in --target {target:?}"))?;
    if allow || is_loopback_host(&host) {
        return Ok(());
    }
    bail!(
        "refusing to load non-loopback target {host:?}: load tests run against 127.0.0.0/8, ::1 or localhost only; \
         pass --allow-non-loopback if you own that server and mean it"
    )
}

/// The host part of `host:port`, `[v6]:port` or `scheme://host:port/...`.
fn target_host(target: &str) -> Option<String> {
    let rest = target.split_once("://").map_or(target, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split_once(']')?.0
    } else if authority.matches(':').count() > 1 {
        authority // a bare IPv6 address without port
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_pass() {
        for target in [
            "127.0.0.1:50051",
            "127.1.2.3:1",
            "localhost:50051",
            "LOCALHOST:1",
            "http://127.0.0.1:50051",
            "[::1]:50051",
            "http://[::1]:50051/",
            "::1",
        ] {
            check_target(target, false).unwrap_or_else(|error| panic!("{target}: {error}"));
        }
    }

    #[test]
    fn other_targets_are_refused_unless_allowed() {
        for target in ["10.0.0.1:50051", "example.com:443", "http://192.168.1.2:1", "[2001:db8::1]:50051", "0.0.0.0:1"]
        {
            let error = check_target(target, false).unwrap_err().to_string();
            assert!(error.contains("--allow-non-loopback"), "{target}: {error}");
            check_target(target, true).unwrap();
        }
        assert!(check_target("", false).is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn duration_is_capped_and_validated() {
        let cli = Cli::parse_from(["loadtest", "ping", "--duration", "11m"]);
        assert!(cli.validate().is_err());
        let cli = Cli::parse_from(["loadtest", "ping", "--target", "10.1.1.1:5"]);
        assert!(cli.validate().is_err());
        let cli = Cli::parse_from(["loadtest", "hold", "--rate", "100"]);
        cli.validate().unwrap();
        assert!(matches!(cli.pacing(), Pacing::Open { .. }));
    }

    #[test]
    fn memory_and_recovery_need_a_server_they_can_see() {
        assert!(Cli::parse_from(["loadtest", "memory"]).validate().unwrap_err().to_string().contains("--spawn"));
        Cli::parse_from(["loadtest", "memory", "--server-pid", "1"]).validate().unwrap();
        Cli::parse_from(["loadtest", "memory", "--spawn"]).validate().unwrap();
        let error = Cli::parse_from(["loadtest", "recovery", "--server-pid", "1"]).validate().unwrap_err();
        assert!(error.to_string().contains("--spawn"), "{error}");
        Cli::parse_from(["loadtest", "recovery", "--spawn", "--holds", "5"]).validate().unwrap();
        assert!(Cli::parse_from(["loadtest", "recovery", "--spawn", "--holds", "0"]).validate().is_err());
    }

    #[test]
    fn cluster_needs_nodes_and_a_pid_for_each_to_kill_the_owner() {
        let parse = |extra: &[&str]| Cli::parse_from([&["loadtest", "cluster"], extra].concat()).validate();
        assert!(parse(&[]).unwrap_err().to_string().contains("--nodes"));
        assert!(parse(&["--nodes", "127.0.0.1:1"]).is_err(), "one node is no cluster");
        parse(&["--nodes", "127.0.0.1:1,127.0.0.1:2"]).unwrap();
        assert!(parse(&["--nodes", "127.0.0.1:1,10.0.0.1:2"]).is_err(), "loopback only");
        let kill = ["--nodes", "127.0.0.1:1,127.0.0.1:2", "--kill-owner-after", "5s", "--duration", "20s"];
        assert!(parse(&[&kill[..], &["--node-pids", "10"]].concat()).is_err(), "a pid per node");
        parse(&[&kill[..], &["--node-pids", "10,11"]].concat()).unwrap();
        assert!(parse(&["--nodes", "127.0.0.1:1,127.0.0.1:2", "--spawn"]).is_err());
        assert!(Cli::parse_from(["loadtest", "hold", "--nodes", "127.0.0.1:1"]).validate().is_err());
    }

    #[test]
    fn pinning_flags_parse() {
        let cli = Cli::parse_from(["loadtest", "ping", "--spawn", "--server-cpus", "1", "--client-cpus", "0"]);
        assert_eq!(cli.server_cpus.unwrap().to_string(), "1");
        assert_eq!(cli.client_cpus.unwrap().to_string(), "0");
        // The server can only be pinned when the load generator starts it.
        assert!(Cli::try_parse_from(["loadtest", "ping", "--server-cpus", "1"]).is_err());
        assert!(Cli::try_parse_from(["loadtest", "ping", "--client-cpus", "1-0"]).is_err());
    }
}
