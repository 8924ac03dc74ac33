//! Writing and loading a snapshot of about 100 MB, the size of a state holding 1,000,000 bookings.
//!
//! Writing includes the fsync of the file and of the directory; loading includes the checksum. The snapshot lives in
//! a temporary directory on the disk that holds `TMPDIR`.

use std::time::Duration;

use antrean::storage::{LogPosition, load_latest_snapshot, write_snapshot};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PAYLOAD_BYTES: usize = 100 * 1024 * 1024;

/// Incompressible-looking bytes, so no layer can shortcut the work.
fn payload() -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..PAYLOAD_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn snapshot_write_and_load(criterion: &mut Criterion) {
    let payload = payload();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut group = criterion.benchmark_group("snapshot_100_mb");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Bytes(PAYLOAD_BYTES as u64));
    let mut position = 0;
    group.bench_function("write", |bencher| {
        bencher.iter(|| {
            position += 1;
            write_snapshot(dir.path(), LogPosition(position), &payload).expect("write snapshot")
        });
    });
    group.bench_function("load", |bencher| {
        bencher.iter(|| load_latest_snapshot(dir.path()).expect("load snapshot").expect("a snapshot exists"));
    });
    group.finish();
}

criterion_group!(benches, snapshot_write_and_load);
criterion_main!(benches);
