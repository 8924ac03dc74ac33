//! Records every measured call: an HDR latency histogram and outcome counts per RPC, a per-second series of
//! completions and latencies for the plot (all calls, and each RPC's own, so a burst shows which calls waited), and
//! named scenario counters.
//!
//! Recording is sharded by worker thread so tasks on different threads do not contend on one lock; shards are
//! merged only when the run is summarised. This module must not talk to the server.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Lowest latency a histogram tracks, in microseconds.
pub const LATENCY_LOW_US: u64 = 1;
/// Highest latency a histogram tracks, in microseconds (60 s); longer ones are recorded as 60 s.
pub const LATENCY_HIGH_US: u64 = 60_000_000;
/// Significant digits of the per-RPC histograms.
pub const LATENCY_SIGFIG: u8 = 3;
/// Significant digits of the per-second histograms (coarser: there is one per second per shard).
pub const SERIES_SIGFIG: u8 = 2;
/// Most shards; more threads share shards.
const SHARDS_MAX: usize = 16;
/// Most seconds in the per-second series (a run lasts at most 10 minutes plus its drain).
pub const SERIES_SECONDS_MAX: usize = 15 * 60;
/// A call is slow when it takes more than this many times its RPC's median. A stall that hits some calls and spares
/// the rest (a timer, a pause, a lock held by background work) gives latency a second mode far above the median; the
/// share of calls in it is one number, where percentiles only show it once it passes their quantile.
pub const SLOW_FACTOR: u64 = 10;

/// The outcome of one call: a gRPC status code name and, for rejections, the server's reason when it gave one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Status code name, e.g. `OK`, `FAILED_PRECONDITION`.
    pub code: &'static str,
    /// Machine-readable reason, e.g. `SESSION_FULL`.
    pub reason: Option<String>,
}

impl Outcome {
    /// The outcome of a successful call.
    pub const OK: Outcome = Outcome { code: "OK", reason: None };

    /// Whether the call succeeded.
    pub fn is_ok(&self) -> bool {
        self.code == "OK"
    }
}

/// Statistics of one RPC, merged over shards.
#[derive(Clone, Debug)]
pub struct RpcStats {
    /// Latency of every answered or failed call, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Calls by status code name.
    pub codes: BTreeMap<&'static str, u64>,
    /// Calls by `CODE/REASON` for answers that carried a reason.
    pub reasons: BTreeMap<String, u64>,
}

impl RpcStats {
    fn new() -> RpcStats {
        RpcStats { latency_us: latency_histogram(LATENCY_SIGFIG), codes: BTreeMap::new(), reasons: BTreeMap::new() }
    }

    fn merge(&mut self, other: &RpcStats) {
        self.latency_us.add(&other.latency_us).expect("histograms share bounds");
        for (code, count) in &other.codes {
            *self.codes.entry(code).or_default() += count;
        }
        for (reason, count) in &other.reasons {
            *self.reasons.entry(reason.clone()).or_default() += count;
        }
    }

    /// Number of calls recorded.
    pub fn calls(&self) -> u64 {
        self.latency_us.len()
    }
}

/// Completions during one second of the run.
#[derive(Clone, Debug)]
pub struct SecondStats {
    /// Calls that completed in this second.
    pub calls: u64,
    /// Of which failed (any code but OK).
    pub errors: u64,
    /// Their latency in microseconds.
    pub latency_us: Histogram<u64>,
}

impl SecondStats {
    fn new() -> SecondStats {
        SecondStats { calls: 0, errors: 0, latency_us: latency_histogram(SERIES_SIGFIG) }
    }
}

#[derive(Default)]
struct Shard {
    rpcs: BTreeMap<&'static str, RpcStats>,
    series: Vec<Option<SecondStats>>,
    rpc_series: BTreeMap<&'static str, Vec<Option<SecondStats>>>,
}

/// Notes a completion in `second` of `series`, growing it as needed.
fn note_second(series: &mut Vec<Option<SecondStats>>, second: usize, ok: bool, latency_us: u64) {
    if series.len() <= second {
        series.resize_with(second + 1, || None);
    }
    let point = series[second].get_or_insert_with(SecondStats::new);
    point.calls += 1;
    point.errors += u64::from(!ok);
    point.latency_us.saturating_record(latency_us);
}

/// Adds the seconds of `shard` to `merged`.
fn merge_series(merged: &mut Vec<SecondStats>, shard: &[Option<SecondStats>]) {
    if merged.len() < shard.len() {
        merged.resize_with(shard.len(), SecondStats::new);
    }
    for (second, point) in shard.iter().enumerate() {
        if let Some(point) = point {
            let into = &mut merged[second];
            into.calls += point.calls;
            into.errors += point.errors;
            into.latency_us.add(&point.latency_us).expect("histograms share bounds");
        }
    }
}

/// Shared by all tasks of a run.
pub struct Recorder {
    start: Instant,
    shards: Vec<Mutex<Shard>>,
    counters: Mutex<BTreeMap<&'static str, u64>>,
    calls: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
}

/// Everything recorded, merged.
#[derive(Debug)]
pub struct Summary {
    /// Per RPC, by name.
    pub rpcs: BTreeMap<&'static str, RpcStats>,
    /// Per second since the start; seconds without completions are zero.
    pub series: Vec<SecondStats>,
    /// The same per RPC, by name.
    pub rpc_series: BTreeMap<&'static str, Vec<SecondStats>>,
    /// Named scenario counters.
    pub counters: BTreeMap<&'static str, u64>,
    /// Open-loop calls that could not be sent because too many were in flight.
    pub dropped: u64,
}

impl Recorder {
    /// A recorder whose per-second series counts from `start`.
    pub fn new(start: Instant) -> Recorder {
        let threads = std::thread::available_parallelism().map_or(4, |count| count.get());
        let shards = (0..threads.clamp(1, SHARDS_MAX)).map(|_| Mutex::new(Shard::default())).collect();
        Recorder {
            start,
            shards,
            counters: Mutex::new(BTreeMap::new()),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// When the per-second series starts.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Records a call of `rpc` that was due (or sent) at `started` and has just completed with `outcome`.
    pub fn record(&self, rpc: &'static str, started: Instant, outcome: &Outcome) {
        let now = Instant::now();
        let latency_us = clamp_latency_us(now.saturating_duration_since(started));
        let second = now.saturating_duration_since(self.start).as_secs() as usize;
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !outcome.is_ok() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut shard = self.shards[shard_index(self.shards.len())].lock().expect("recorder shard poisoned");
        let stats = shard.rpcs.entry(rpc).or_insert_with(RpcStats::new);
        stats.latency_us.saturating_record(latency_us);
        *stats.codes.entry(outcome.code).or_default() += 1;
        if let Some(reason) = &outcome.reason {
            *stats.reasons.entry(format!("{}/{}", outcome.code, reason)).or_default() += 1;
        }
        if second < SERIES_SECONDS_MAX {
            note_second(&mut shard.series, second, outcome.is_ok(), latency_us);
            note_second(shard.rpc_series.entry(rpc).or_default(), second, outcome.is_ok(), latency_us);
        }
    }

    /// Adds `amount` to the scenario counter `name`.
    pub fn count(&self, name: &'static str, amount: u64) {
        *self.counters.lock().expect("counters poisoned").entry(name).or_default() += amount;
    }

    /// Counts an open-loop call that was not sent.
    pub fn drop_call(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls recorded so far, errors among them, and dropped calls (cheap; for the progress bar).
    pub fn progress(&self) -> (u64, u64, u64) {
        (self.calls.load(Ordering::Relaxed), self.errors.load(Ordering::Relaxed), self.dropped.load(Ordering::Relaxed))
    }

    /// Merges all shards.
    pub fn summary(&self) -> Summary {
        let mut rpcs: BTreeMap<&'static str, RpcStats> = BTreeMap::new();
        let mut series: Vec<SecondStats> = Vec::new();
        let mut rpc_series: BTreeMap<&'static str, Vec<SecondStats>> = BTreeMap::new();
        for shard in &self.shards {
            let shard = shard.lock().expect("recorder shard poisoned");
            for (name, stats) in &shard.rpcs {
                rpcs.entry(name).or_insert_with(RpcStats::new).merge(stats);
            }
            merge_series(&mut series, &shard.series);
            for (name, seconds) in &shard.rpc_series {
                merge_series(rpc_series.entry(name).or_default(), seconds);
            }
        }
        Summary {
            rpcs,
            series,
            rpc_series,
            counters: self.counters.lock().expect("counters poisoned").clone(),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Latency percentiles of a histogram, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl LatencyMs {
    /// The percentiles of a histogram of microseconds; zeros when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> LatencyMs {
        if histogram.is_empty() {
            return LatencyMs::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencyMs {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1000.0,
        }
    }
}

/// The share of the calls in a histogram of microseconds (0 to 1) that took more than [`SLOW_FACTOR`] times its
/// median; 0 when it is empty.
pub fn slow_share(histogram: &Histogram<u64>) -> f64 {
    if histogram.is_empty() {
        return 0.0;
    }
    let threshold_us = histogram.value_at_quantile(0.50).saturating_mul(SLOW_FACTOR);
    if threshold_us >= histogram.max() {
        return 0.0;
    }
    let slow = histogram.count_between(histogram.next_non_equivalent(threshold_us), histogram.max());
    slow as f64 / histogram.len() as f64
}

/// An empty latency histogram over [`LATENCY_LOW_US`, `LATENCY_HIGH_US`].
pub fn latency_histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(LATENCY_LOW_US, LATENCY_HIGH_US, sigfig).expect("valid histogram bounds")
}

/// A duration as whole microseconds within the histogram bounds.
pub fn clamp_latency_us(duration: Duration) -> u64 {
    (duration.as_micros().min(u128::from(LATENCY_HIGH_US)) as u64).max(LATENCY_LOW_US)
}

fn shard_index(shards: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<Option<usize>> = const { Cell::new(None) };
    }
    INDEX.with(|index| {
        let value = index.get().unwrap_or_else(|| {
            let value = NEXT.fetch_add(1, Ordering::Relaxed);
            index.set(Some(value));
            value
        });
        value % shards
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut histogram = latency_histogram(LATENCY_SIGFIG);
        for ms in 1..=1000u64 {
            histogram.record(ms * 1000).unwrap();
        }
        let latency = LatencyMs::of(&histogram);
        let close = |value: f64, expected: f64| (value - expected).abs() <= expected * 0.002 + 0.001;
        assert!(close(latency.p50, 500.0), "{latency:?}");
        assert!(close(latency.p90, 900.0), "{latency:?}");
        assert!(close(latency.p99, 990.0), "{latency:?}");
        assert!(close(latency.p999, 999.0), "{latency:?}");
        assert!(close(latency.max, 1000.0), "{latency:?}");
        assert!(close(latency.mean, 500.5), "{latency:?}");
    }

    #[test]
    fn slow_share_counts_the_calls_far_above_the_median() {
        let mut bimodal = latency_histogram(LATENCY_SIGFIG);
        bimodal.record_n(2_000, 900).unwrap();
        bimodal.record_n(44_000, 100).unwrap();
        assert!((slow_share(&bimodal) - 0.10).abs() < 1e-9, "{}", slow_share(&bimodal));
        let mut uniform = latency_histogram(LATENCY_SIGFIG);
        for ms in 1..=1000u64 {
            uniform.record(ms * 1000).unwrap();
        }
        assert_eq!(slow_share(&uniform), 0.0, "max is only twice the median");
        let mut tail = latency_histogram(LATENCY_SIGFIG);
        tail.record_n(1_000, 99).unwrap();
        tail.record(10_000).unwrap();
        tail.record(10_020).unwrap();
        assert!((slow_share(&tail) - 1.0 / 101.0).abs() < 1e-9, "exactly 10x the median is not slow");
        assert_eq!(slow_share(&latency_histogram(LATENCY_SIGFIG)), 0.0);
    }

    #[test]
    fn latencies_are_clamped_to_the_bounds() {
        assert_eq!(clamp_latency_us(Duration::ZERO), 1);
        assert_eq!(clamp_latency_us(Duration::from_secs(3600)), LATENCY_HIGH_US);
        assert_eq!(LatencyMs::of(&latency_histogram(3)), LatencyMs::default());
    }

    #[test]
    fn recorder_counts_codes_reasons_and_seconds() {
        let start = Instant::now();
        let recorder = Recorder::new(start);
        recorder.record("Hold", start, &Outcome::OK);
        recorder.record("Hold", start, &Outcome { code: "FAILED_PRECONDITION", reason: Some("SESSION_FULL".into()) });
        recorder.record("Cancel", start, &Outcome::OK);
        recorder.drop_call();
        recorder.count("users", 3);
        let summary = recorder.summary();
        let hold = &summary.rpcs["Hold"];
        assert_eq!(hold.calls(), 2);
        assert_eq!(hold.codes["OK"], 1);
        assert_eq!(hold.reasons["FAILED_PRECONDITION/SESSION_FULL"], 1);
        assert_eq!(summary.series.iter().map(|point| point.calls).sum::<u64>(), 3);
        assert_eq!(summary.series.iter().map(|point| point.errors).sum::<u64>(), 1);
        assert_eq!(summary.dropped, 1);
        assert_eq!(summary.counters["users"], 3);
        assert_eq!(recorder.progress(), (3, 1, 1));
    }
}
