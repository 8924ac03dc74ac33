//! The same "hold one slot" workload as `hold`, against the usual alternatives, measured by the same driver and
//! recorder so the figures compare: one hot row with a large `remaining`, every call one new applicant.
//!
//! * `compare-redis`: a Lua script (the flash-sale design) that checks `remaining > 0`, decrements it and adds the
//!   applicant to a set, atomically; `--redis-appendfsync` is set with `CONFIG SET` first (`always`: an fsync before
//!   replying, batched per event-loop turn; `no`: in memory, the OS flushes when it likes). `--connections`
//!   multiplexed connections, taken round-robin.
//! * `compare-postgres`: `BEGIN; UPDATE sessions SET remaining = remaining - 1 WHERE id = $1 AND remaining > 0;
//!   INSERT INTO bookings ...; COMMIT` on a pool of as many connections as callers, with `synchronous_commit` set per
//!   connection from `--pg-synchronous-commit`.
//!
//! After the load each store is checked like antrean: `overbooked` when the counter went below zero or the bookings
//! outnumber the slots taken; `lost` when bookings answered OK are missing. Loopback targets only, like every run.
//! This module must not touch antrean.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};

use crate::check::Correctness;
use crate::cli::Cli;
use crate::driver::{self, Call, DriverStats, Plan};
use crate::recorder::{Outcome, Recorder};

/// The Redis key of the hot row's remaining slots.
const REDIS_REMAINING_KEY: &str = "antrean-compare:session:1:remaining";
/// The Redis set of applicants holding a slot.
const REDIS_HOLDERS_KEY: &str = "antrean-compare:session:1:holders";

/// Holds one slot: 1 held, 0 full, -1 the applicant already holds one.
const HOLD_SCRIPT: &str = r"
local remaining = tonumber(redis.call('GET', KEYS[1]))
if remaining == nil or remaining <= 0 then return 0 end
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return -1 end
redis.call('DECR', KEYS[1])
return 1
";

/// What a comparison run leaves for the report.
pub struct CompareRun {
    /// Measurements.
    pub recorder: Arc<Recorder>,
    /// What the driver did.
    pub driver: DriverStats,
    /// The store checked afterwards.
    pub correctness: Correctness,
    /// The store and its durability mode, e.g. `redis appendfsync=always`.
    pub system: String,
}

/// Closed or open loop as the flags say.
fn plan(cli: &Cli) -> Plan {
    match cli.pacing() {
        crate::cli::Pacing::Closed { tasks } => Plan::Closed { tasks },
        crate::cli::Pacing::Open { rate_per_s, outstanding_max } => {
            Plan::Open { timetable: driver::Timetable::Rate(rate_per_s), outstanding_max }
        }
        crate::cli::Pacing::Arrivals { .. } => unreachable!("arrivals are spike's"),
    }
}

fn host_port(target: &str) -> String {
    target.split_once("://").map_or(target, |(_, rest)| rest).trim_end_matches('/').to_string()
}

/// Runs `compare-redis`.
pub async fn redis(cli: &Cli, run_id: &str) -> anyhow::Result<CompareRun> {
    let url = format!("redis://{}/", host_port(&cli.target));
    let client = redis::Client::open(url.as_str()).with_context(|| format!("invalid Redis address {url}"))?;
    let mut connections = Vec::with_capacity(cli.connections);
    for _ in 0..cli.connections {
        connections.push(client.get_multiplexed_async_connection().await.context("cannot connect to Redis")?);
    }
    let mut admin = connections[0].clone();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg(&cli.redis_appendfsync)
        .query_async(&mut admin)
        .await
        .context("CONFIG SET appendfsync failed")?;
    let initial = cli.slots();
    let _: () = redis::cmd("DEL").arg(REDIS_REMAINING_KEY).arg(REDIS_HOLDERS_KEY).query_async(&mut admin).await?;
    let _: () = redis::cmd("SET").arg(REDIS_REMAINING_KEY).arg(initial).query_async(&mut admin).await?;
    let appendonly: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("appendonly").query_async(&mut admin).await?;
    let system =
        format!("redis appendfsync={} (appendonly={})", cli.redis_appendfsync, appendonly.get(1).map_or("?", |v| v));
    let script = Arc::new(redis::Script::new(HOLD_SCRIPT));
    let connections = Arc::new(connections);
    let recorder = crate::scenarios::new_recorder();
    let held = Arc::new(AtomicU64::new(0));
    let (journey_recorder, journey_held, run_id) = (recorder.clone(), held.clone(), run_id.to_string());
    let driver = driver::run(
        plan(cli),
        recorder.start(),
        cli.duration(),
        cli.max_requests,
        recorder.clone(),
        move |call: Call| {
            let mut connection = connections[call.index as usize % connections.len()].clone();
            let (script, recorder, held) = (script.clone(), journey_recorder.clone(), journey_held.clone());
            let applicant = format!("{run_id}-{}", call.index);
            async move {
                let answer: redis::RedisResult<i64> = script
                    .key(REDIS_REMAINING_KEY)
                    .key(REDIS_HOLDERS_KEY)
                    .arg(applicant)
                    .invoke_async(&mut connection)
                    .await;
                let outcome = match answer {
                    Ok(1) => {
                        held.fetch_add(1, Ordering::Relaxed);
                        Outcome::OK
                    }
                    Ok(0) => Outcome { code: "FAILED_PRECONDITION", reason: Some("SESSION_FULL".into()) },
                    Ok(_) => Outcome { code: "ALREADY_EXISTS", reason: None },
                    Err(_) => Outcome { code: "UNAVAILABLE", reason: None },
                };
                recorder.record("Hold", call.due, &outcome);
            }
        },
    )
    .await;
    let remaining: i64 = redis::cmd("GET").arg(REDIS_REMAINING_KEY).query_async(&mut admin).await?;
    let holders: u64 = redis::cmd("SCARD").arg(REDIS_HOLDERS_KEY).query_async(&mut admin).await?;
    let _: () = redis::cmd("DEL").arg(REDIS_REMAINING_KEY).arg(REDIS_HOLDERS_KEY).query_async(&mut admin).await?;
    let correctness = judge(initial, remaining, holders, held.load(Ordering::Relaxed));
    Ok(CompareRun { recorder, driver, correctness, system })
}

/// Runs `compare-postgres`.
pub async fn postgres(cli: &Cli, run_id: &str) -> anyhow::Result<CompareRun> {
    let address = host_port(&cli.target);
    let (host, port) = address.rsplit_once(':').context("--target must be host:port")?;
    let config = format!("host={host} port={port} user={} dbname=postgres connect_timeout=5", cli.pg_user);
    let tasks = match cli.pacing() {
        crate::cli::Pacing::Closed { tasks } => tasks,
        _ => 64,
    };
    let mut pool = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (client, connection) =
            tokio_postgres::connect(&config, tokio_postgres::NoTls).await.context("cannot connect to PostgreSQL")?;
        tokio::spawn(connection);
        client.batch_execute(&format!("SET synchronous_commit = {}", cli.pg_synchronous_commit)).await?;
        pool.push(tokio::sync::Mutex::new(client));
    }
    let initial = cli.slots();
    {
        let admin = pool[0].lock().await;
        admin
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS compare_bookings; DROP TABLE IF EXISTS compare_sessions;
                 CREATE TABLE compare_sessions (id integer PRIMARY KEY, remaining bigint NOT NULL);
                 CREATE TABLE compare_bookings (id bigserial PRIMARY KEY, session_id integer NOT NULL, applicant text NOT NULL UNIQUE);
                 INSERT INTO compare_sessions VALUES (1, {initial});"
            ))
            .await
            .context("cannot create the comparison tables")?;
        let fsync: String = admin.query_one("SHOW fsync", &[]).await?.get(0);
        if fsync != "on" && cli.pg_synchronous_commit == "on" {
            bail!("the PostgreSQL server runs with fsync={fsync}: start it with fsync=on for a durable comparison");
        }
    }
    let system = format!("postgres synchronous_commit={}", cli.pg_synchronous_commit);
    let pool = Arc::new(pool);
    let recorder = crate::scenarios::new_recorder();
    let held = Arc::new(AtomicU64::new(0));
    let (journey_recorder, journey_held, run_id) = (recorder.clone(), held.clone(), run_id.to_string());
    let driver = driver::run(
        plan(cli),
        recorder.start(),
        cli.duration(),
        cli.max_requests,
        recorder.clone(),
        move |call: Call| {
            let (pool, recorder, held) = (pool.clone(), journey_recorder.clone(), journey_held.clone());
            let applicant = format!("{run_id}-{}", call.index);
            async move {
                let mut client = pool[call.index as usize % pool.len()].lock().await;
                let outcome = match hold_in_postgres(&mut client, &applicant).await {
                    Ok(true) => {
                        held.fetch_add(1, Ordering::Relaxed);
                        Outcome::OK
                    }
                    Ok(false) => Outcome { code: "FAILED_PRECONDITION", reason: Some("SESSION_FULL".into()) },
                    Err(_) => Outcome { code: "UNAVAILABLE", reason: None },
                };
                recorder.record("Hold", call.due, &outcome);
            }
        },
    )
    .await;
    let admin = fresh_client(&config).await?;
    let remaining: i64 = admin.query_one("SELECT remaining FROM compare_sessions WHERE id = 1", &[]).await?.get(0);
    let holders: i64 = admin.query_one("SELECT count(*) FROM compare_bookings", &[]).await?.get(0);
    admin.batch_execute("DROP TABLE compare_bookings; DROP TABLE compare_sessions;").await?;
    let correctness = judge(initial, remaining, holders as u64, held.load(Ordering::Relaxed));
    Ok(CompareRun { recorder, driver, correctness, system })
}

/// A fresh connection for the check (the pool's may still be held by calls the drain gave up on).
async fn fresh_client(config: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// One hold in one transaction; `false` when no slot is left.
async fn hold_in_postgres(client: &mut tokio_postgres::Client, applicant: &str) -> Result<bool, tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    let updated = transaction
        .execute("UPDATE compare_sessions SET remaining = remaining - 1 WHERE id = $1 AND remaining > 0", &[&1i32])
        .await?;
    if updated == 0 {
        transaction.rollback().await?;
        return Ok(false);
    }
    transaction
        .execute("INSERT INTO compare_bookings (session_id, applicant) VALUES ($1, $2)", &[&1i32, &applicant])
        .await?;
    transaction.commit().await?;
    Ok(true)
}

/// The store's state against what callers were told: `initial - remaining` slots taken, `holders` recorded,
/// `answered` holds answered OK.
fn judge(initial: u64, remaining: i64, holders: u64, answered: u64) -> Correctness {
    let mut correctness = Correctness { pools_checked: 1, bookings_checked: holders, ..Correctness::default() };
    let taken = initial as i64 - remaining;
    if remaining < 0 || holders as i64 != taken {
        correctness.overbooked = 1;
        correctness.examples.push(format!("remaining {remaining}, {holders} holders, {taken} taken of {initial}"));
    }
    if holders < answered {
        correctness.lost = answered - holders;
        correctness.examples.push(format!("{answered} holds answered OK but {holders} recorded"));
    }
    correctness
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_counts_overbooking_and_losses() {
        assert!(!judge(100, 90, 10, 10).failed());
        assert_eq!(judge(100, -1, 101, 101).overbooked, 1);
        assert_eq!(judge(100, 95, 5, 7).lost, 2);
        assert_eq!(host_port("http://127.0.0.1:16379/"), "127.0.0.1:16379");
    }
}
