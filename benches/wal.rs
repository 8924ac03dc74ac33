//! Append throughput of the write-ahead log with an fsync after every batch.
//!
//! Each iteration appends N records of 100 bytes from one task and then awaits durability of the last, so N is the
//! most records one fsync can cover. Throughput is reported in records per second. The log lives in a temporary
//! directory on the disk that holds `TMPDIR`: the figures measure that disk's fsync latency.

use std::hint::black_box;
use std::time::Duration;

use antrean::storage::{FsyncMode, LogPosition, LogSink, Wal, WalOptions, collect_log};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const PAYLOAD_BYTES: usize = 100;

fn open_wal(dir: &std::path::Path) -> Wal {
    let options = WalOptions {
        dir: dir.to_owned(),
        segment_bytes_max: 64 * 1024 * 1024,
        fsync: FsyncMode::Always,
        batch_records_max: 4096,
        batch_bytes_max: 4 * 1024 * 1024,
        record_bytes_max: 4096,
    };
    let (report, _) = collect_log(dir, LogPosition(0), false).expect("recover empty log");
    Wal::open(options, &report, None).expect("open log")
}

fn append_then_await_durable(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut group = criterion.benchmark_group("wal_append_fsync_always");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for records_per_wait in [1u64, 16, 256] {
        let dir = tempfile::tempdir().expect("temporary directory");
        let wal = open_wal(dir.path());
        let payload = vec![0xA5u8; PAYLOAD_BYTES];
        group.throughput(Throughput::Elements(records_per_wait));
        group.bench_with_input(BenchmarkId::from_parameter(records_per_wait), &records_per_wait, |bencher, &count| {
            bencher.iter(|| {
                runtime.block_on(async {
                    let mut last = LogPosition(0);
                    for _ in 0..count {
                        last = wal.append(black_box(payload.clone()));
                    }
                    wal.wait_durable(last).await.expect("durable");
                });
            });
        });
        let stats = wal.stats();
        wal.close().expect("close log");
        eprintln!(
            "records_per_wait={records_per_wait}: {} records in {} batches, {} fsyncs, mean fsync {} us",
            stats.records,
            stats.batches,
            stats.fsyncs,
            stats.fsync_nanos_total / stats.fsyncs.max(1) / 1000
        );
    }
    group.finish();
}

criterion_group!(benches, append_then_await_durable);
criterion_main!(benches);
