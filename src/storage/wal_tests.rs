//! Tests of the writer through its public face: append, wait, close, then recover from disk and compare.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::storage::{FaultPlan, FaultyFileOpener, collect_log, list_segments};

fn options(dir: &Path, fsync: FsyncMode) -> WalOptions {
    WalOptions {
        dir: dir.to_owned(),
        segment_bytes_max: 1024 * 1024,
        fsync,
        batch_records_max: 1024,
        batch_bytes_max: 1024 * 1024,
        record_bytes_max: 4096,
    }
}

/// Recovers `options.dir` and opens the log after it, with faults injected per `plan`.
fn open(options: &WalOptions, plan: &Arc<FaultPlan>) -> Wal {
    let (report, _) = collect_log(&options.dir, LogPosition(0), false).unwrap();
    let opener = Arc::new(FaultyFileOpener::new(Arc::clone(plan)));
    Wal::open_with_files(options.clone(), &report, None, opener).unwrap()
}

fn payload(position: u64) -> Vec<u8> {
    format!("payload {position:05}").into_bytes()
}

async fn append_and_wait(wal: &Wal, count: u64) -> Vec<LogPosition> {
    let mut positions = Vec::new();
    for _ in 0..count {
        let next = wal.last_position().0 + 1;
        positions.push(wal.append(payload(next)));
    }
    wal.wait_durable(*positions.last().unwrap()).await.unwrap();
    positions
}

fn recovered(dir: &Path) -> Vec<(LogPosition, Vec<u8>)> {
    collect_log(dir, LogPosition(0), false).unwrap().1
}

#[tokio::test]
async fn appended_records_are_durable_in_order_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path(), FsyncMode::Always);
    let wal = open(&options, &FaultPlan::new());
    let positions = append_and_wait(&wal, 100).await;
    assert_eq!(positions, (1..=100).map(LogPosition).collect::<Vec<_>>());
    assert_eq!((wal.durable_position(), wal.last_position()), (LogPosition(100), LogPosition(100)));
    wal.close().unwrap();
    drop(wal);

    let wal = open(&options, &FaultPlan::new());
    assert_eq!(wal.append(payload(101)), LogPosition(101));
    wal.wait_durable(LogPosition(101)).await.unwrap();
    wal.close().unwrap();
    let records = recovered(dir.path());
    assert_eq!(records.len(), 101);
    assert!(
        records
            .iter()
            .enumerate()
            .all(|(index, (position, bytes))| { position.0 == index as u64 + 1 && *bytes == payload(position.0) })
    );
}

#[tokio::test]
async fn segments_roll_at_the_size_limit_and_read_back_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions { segment_bytes_max: 512, record_bytes_max: 64, ..options(dir.path(), FsyncMode::Always) };
    let wal = open(&options, &FaultPlan::new());
    append_and_wait(&wal, 200).await;
    let stats = wal.stats();
    wal.close().unwrap();
    let segments = list_segments(dir.path()).unwrap();
    assert!(segments.len() > 5, "{} segments", segments.len());
    assert_eq!(stats.segments_created, segments.len() as u64 - 1);
    for segment in &segments {
        assert!(std::fs::metadata(&segment.path).unwrap().len() <= 512);
    }
    let records = recovered(dir.path());
    assert_eq!(records.len(), 200);
    assert!(records.iter().all(|(position, bytes)| *bytes == payload(position.0)));
}

#[tokio::test]
async fn fsync_failure_fails_pending_and_later_waiters_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let wal = open(&options(dir.path(), FsyncMode::Always), &plan);
    append_and_wait(&wal, 1).await;
    plan.fail_sync_at(plan.syncs() + 1);
    let pending = wal.append(payload(2));
    let error = wal.wait_durable(pending).await.unwrap_err();
    assert!(matches!(error, StorageError::LogFailed { operation: "fsync", .. }), "{error}");
    let later = wal.append(payload(3));
    assert!(matches!(wal.wait_durable(later).await, Err(StorageError::LogFailed { .. })));
    assert!(wal.wait_durable(LogPosition(1)).await.is_ok(), "records made durable before stay durable");
    assert_eq!(wal.durable_position(), LogPosition(1));
    assert!(matches!(wal.close(), Err(StorageError::LogFailed { .. })));
}

#[tokio::test]
async fn short_write_fails_the_log_and_recovery_cuts_the_torn_record() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let wal = open(&options(dir.path(), FsyncMode::Always), &plan);
    append_and_wait(&wal, 3).await;
    plan.fail_write_at(plan.writes() + 1);
    let torn = wal.append(payload(4));
    assert!(matches!(wal.wait_durable(torn).await, Err(StorageError::LogFailed { operation: "write", .. })));
    drop(wal);
    let (report, records) = collect_log(dir.path(), LogPosition(0), false).unwrap();
    assert_eq!(records.len(), 3);
    assert!(!report.truncation.unwrap().mid_log);
}

#[tokio::test]
async fn batch_mode_releases_waiters_only_after_an_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    plan.fail_sync_at(1);
    let wal = open(&options(dir.path(), FsyncMode::Batch { interval_ms: 5 }), &plan);
    let position = wal.append(payload(1));
    assert!(wal.wait_durable(position).await.is_err(), "the write alone must not release the waiter");
    assert_eq!(wal.durable_position(), LogPosition(0));
}

#[tokio::test]
async fn batch_mode_makes_everything_durable() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let wal = open(&options(dir.path(), FsyncMode::Batch { interval_ms: 2 }), &plan);
    for _ in 0..5 {
        append_and_wait(&wal, 20).await;
    }
    assert!(plan.syncs() >= 1);
    wal.close().unwrap();
    assert_eq!(recovered(dir.path()).len(), 100);
}

#[tokio::test]
async fn fsync_mode_none_never_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let wal = open(&options(dir.path(), FsyncMode::None), &plan);
    append_and_wait(&wal, 50).await;
    wal.close().unwrap();
    assert_eq!(plan.syncs(), 0);
    assert_eq!(recovered(dir.path()).len(), 50);
}

#[tokio::test]
async fn acknowledged_records_survive_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let wal = open(&options(dir.path(), FsyncMode::Always), &plan);
    append_and_wait(&wal, 40).await;
    drop(wal);
    plan.simulate_power_loss(0).unwrap();
    assert_eq!(recovered(dir.path()).len(), 40);
}

#[tokio::test]
async fn power_cut_without_fsync_recovers_a_clean_prefix() {
    for unsynced_bytes_kept in [0, 1, 17, 100, 333] {
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let wal = open(&options(dir.path(), FsyncMode::None), &plan);
        append_and_wait(&wal, 40).await;
        drop(wal);
        plan.simulate_power_loss(unsynced_bytes_kept).unwrap();
        let records = recovered(dir.path());
        let expected: Vec<_> =
            (1..=records.len() as u64).map(|position| (LogPosition(position), payload(position))).collect();
        assert_eq!(records, expected, "kept {unsynced_bytes_kept} unsynced bytes");
        assert!(records.len() < 40);
    }
}

#[test]
fn many_concurrent_tasks_get_unique_contiguous_positions_and_all_records_survive() {
    for fsync in [FsyncMode::Always, FsyncMode::None] {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let options = options(dir.path(), fsync);
        let wal: Arc<dyn LogSink> = Arc::new(open(&options, &FaultPlan::new()));
        let written: BTreeMap<LogPosition, Vec<u8>> = runtime.block_on(async {
            let tasks: Vec<_> = (0..200)
                .map(|task| {
                    let wal = Arc::clone(&wal);
                    tokio::spawn(async move {
                        let mut mine = Vec::new();
                        for index in 0..25 {
                            let bytes = format!("task {task} record {index}").into_bytes();
                            let position = wal.append(bytes.clone());
                            wal.wait_durable(position).await.unwrap();
                            assert!(wal.durable_position() >= position);
                            mine.push((position, bytes));
                        }
                        mine
                    })
                })
                .collect();
            let mut written = BTreeMap::new();
            for task in tasks {
                for (position, bytes) in task.await.unwrap() {
                    assert!(written.insert(position, bytes).is_none(), "position {position:?} given twice");
                }
            }
            written
        });
        assert_eq!(written.keys().copied().collect::<Vec<_>>(), (1..=5000).map(LogPosition).collect::<Vec<_>>());
        drop(wal);
        assert_eq!(recovered(dir.path()), written.into_iter().collect::<Vec<_>>(), "{fsync:?}");
    }
}

/// Segment files that note the name of every thread that writes to them.
#[derive(Default)]
struct WritingThreads(Arc<parking_lot::Mutex<Vec<String>>>);

struct NotedFile {
    file: Box<dyn crate::storage::LogFile>,
    threads: Arc<parking_lot::Mutex<Vec<String>>>,
}

impl crate::storage::FileOpener for WritingThreads {
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn crate::storage::LogFile>> {
        let file = crate::storage::StdFileOpener.open_append(path)?;
        Ok(Box::new(NotedFile { file, threads: Arc::clone(&self.0) }))
    }
}

impl crate::storage::LogFile for NotedFile {
    fn write_all_at_end(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.threads.lock().push(std::thread::current().name().unwrap_or("unnamed").to_owned());
        self.file.write_all_at_end(bytes)
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }
    fn set_len(&mut self, length_bytes: u64) -> std::io::Result<()> {
        self.file.set_len(length_bytes)
    }
}

#[test]
fn with_fsync_none_the_waiting_caller_writes_its_record_before_it_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (report, _) = collect_log(dir.path(), LogPosition(0), false).unwrap();
    let opener = WritingThreads::default();
    let threads = Arc::clone(&opener.0);
    let wal = Wal::open_with_files(options(dir.path(), FsyncMode::None), &report, None, Arc::new(opener)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let caller = std::thread::current().name().unwrap().to_owned();
    runtime.block_on(async {
        let position = wal.append(payload(1));
        wal.wait_durable(position).await.unwrap();
    });
    assert_eq!(*threads.lock(), [caller], "written by the caller, not handed to another thread");
    assert_eq!(recovered(dir.path()), [(LogPosition(1), payload(1))], "in the file before the answer");
    wal.close().unwrap();
}

#[test]
fn with_fsync_none_calls_ready_together_share_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(open(&options(dir.path(), FsyncMode::None), &FaultPlan::new()));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let calls: Vec<_> = (1..=50)
            .map(|position| {
                let wal = Arc::clone(&wal);
                tokio::spawn(async move {
                    let position = wal.append(payload(position));
                    wal.wait_durable(position).await
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
    });
    let stats = wal.stats();
    assert_eq!((stats.records, stats.batches), (50, 1), "the first caller to resume writes every ready record");
    wal.close().unwrap();
    assert_eq!(recovered(dir.path()).len(), 50);
}

#[tokio::test]
async fn with_fsync_none_a_failed_write_fails_every_waiter_and_the_log_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let wal = open(&options(dir.path(), FsyncMode::None), &plan);
    append_and_wait(&wal, 3).await;
    plan.fail_write_at(plan.writes() + 1);
    let torn = wal.append(payload(4));
    let behind = wal.append(payload(5));
    assert!(matches!(wal.wait_durable(torn).await, Err(StorageError::LogFailed { operation: "write", .. })));
    assert!(matches!(wal.wait_durable(behind).await, Err(StorageError::LogFailed { .. })));
    let later = wal.append(payload(6));
    assert!(matches!(wal.wait_durable(later).await, Err(StorageError::LogFailed { .. })));
    assert_eq!(wal.durable_position(), LogPosition(3));
    assert!(matches!(wal.close(), Err(StorageError::LogFailed { .. })));
    drop(wal);
    // The torn write kept half of the batch of records 4 and 5: whatever of it is whole may come back, unanswered.
    let records = recovered(dir.path());
    assert!((3..=4).contains(&records.len()) && records.iter().all(|(position, bytes)| *bytes == payload(position.0)));
}

#[test]
fn with_fsync_none_close_writes_what_nobody_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions { batch_records_max: 4, ..options(dir.path(), FsyncMode::None) };
    let wal = open(&options, &FaultPlan::new());
    for position in 1..=10 {
        wal.append(payload(position));
    }
    wal.close().unwrap();
    assert_eq!(wal.durable_position(), LogPosition(10));
    assert_eq!(wal.stats().batches, 3, "batch limits hold for callers' writes too");
    assert_eq!(recovered(dir.path()).len(), 10);
}

#[tokio::test]
async fn appends_after_close_are_refused_and_close_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(&options(dir.path(), FsyncMode::Always), &FaultPlan::new());
    let before = wal.append(payload(1));
    wal.close().unwrap();
    wal.wait_durable(before).await.unwrap();
    let after = wal.append(payload(2));
    assert!(matches!(wal.wait_durable(after).await, Err(StorageError::LogClosed)));
    wal.close().unwrap();
    assert_eq!(recovered(dir.path()).len(), 1);
}

#[derive(Default)]
struct CountingObserver {
    batches: AtomicU64,
    records: AtomicU64,
    synced_batches: AtomicU64,
}

impl WalObserver for CountingObserver {
    fn batch_written(&self, records: u32, _bytes: u64, _write_nanos: u64, fsync_nanos: u64) {
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.records.fetch_add(u64::from(records), Ordering::SeqCst);
        self.synced_batches.fetch_add(u64::from(fsync_nanos > 0), Ordering::SeqCst);
    }
}

#[tokio::test]
async fn observer_and_stats_see_every_batch() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path(), FsyncMode::Always);
    let (report, _) = collect_log(dir.path(), LogPosition(0), false).unwrap();
    let observer = Arc::new(CountingObserver::default());
    let wal = Wal::open(options, &report, Some(observer.clone())).unwrap();
    for _ in 0..10 {
        append_and_wait(&wal, 7).await;
    }
    let stats = wal.stats();
    wal.close().unwrap();
    assert_eq!(observer.records.load(Ordering::SeqCst), 70);
    assert_eq!(stats.records, 70);
    assert_eq!(stats.batches, observer.batches.load(Ordering::SeqCst));
    assert_eq!(observer.synced_batches.load(Ordering::SeqCst), stats.batches, "fsync after every batch");
    assert!(stats.fsync_nanos_total > 0 && stats.fsyncs >= stats.batches);
}

#[test]
fn batch_limits_split_large_backlogs() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions { batch_records_max: 4, ..options(dir.path(), FsyncMode::Always) };
    let (report, _) = collect_log(dir.path(), LogPosition(0), false).unwrap();
    let wal = Wal::open(options, &report, None).unwrap();
    for position in 1..=100 {
        wal.append(payload(position));
    }
    wal.close().unwrap();
    let stats = wal.stats();
    assert_eq!(stats.records, 100);
    assert!(stats.batches >= 25, "{} batches for 100 records of at most 4", stats.batches);
}

#[test]
fn options_are_validated_and_a_changed_tail_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = options(dir.path(), FsyncMode::Always);
    let (report, _) = collect_log(dir.path(), LogPosition(0), false).unwrap();
    let bad = [
        WalOptions { record_bytes_max: 0, ..good.clone() },
        WalOptions { segment_bytes_max: 100, ..good.clone() },
        WalOptions { batch_records_max: 0, ..good.clone() },
        WalOptions { fsync: FsyncMode::Batch { interval_ms: 0 }, ..good.clone() },
        WalOptions { dir: dir.path().join("elsewhere"), ..good.clone() },
    ];
    for options in bad {
        assert!(matches!(Wal::open(options, &report, None), Err(StorageError::InvalidOptions { .. })));
    }
    Wal::open(good.clone(), &report, None).unwrap().close().unwrap();
    let (report, _) = collect_log(dir.path(), LogPosition(0), false).unwrap();
    let tail = report.tail.clone().unwrap();
    std::fs::OpenOptions::new().append(true).open(&tail.path).unwrap().set_len(tail.length_bytes + 3).unwrap();
    assert!(matches!(Wal::open(good, &report, None), Err(StorageError::CorruptLog { .. })));
}

#[test]
#[should_panic(expected = "exceeds record_bytes_max")]
fn oversized_append_is_a_programmer_error() {
    let dir = tempfile::tempdir().unwrap();
    let (report, _) = collect_log(dir.path(), LogPosition(0), false).unwrap();
    let wal = Wal::open(options(dir.path(), FsyncMode::None), &report, None).unwrap();
    wal.append(vec![0; 4097]);
}

#[tokio::test]
async fn pruning_after_a_snapshot_keeps_the_log_readable_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions { segment_bytes_max: 256, record_bytes_max: 64, ..options(dir.path(), FsyncMode::Always) };
    let wal = open(&options, &FaultPlan::new());
    append_and_wait(&wal, 60).await;
    let before = list_segments(dir.path()).unwrap();
    let report = crate::storage::prune_segments(dir.path(), LogPosition(30)).unwrap();
    let after = list_segments(dir.path()).unwrap();
    assert_eq!(before.len(), after.len() + report.deleted.len());
    assert!(!report.deleted.is_empty());
    assert!(after[0].first_position <= LogPosition(31), "the segment holding record 31 is kept");
    append_and_wait(&wal, 5).await;
    wal.close().unwrap();
    let (report, records) = collect_log(dir.path(), LogPosition(30), false).unwrap();
    assert_eq!(records.first().unwrap().0, LogPosition(31));
    assert_eq!((records.len(), report.last_position), (35, LogPosition(65)));
}
