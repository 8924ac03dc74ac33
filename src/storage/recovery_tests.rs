//! Tests of `read_log`: segments are built byte by byte here, without the writer, so every damage is exact.

use std::path::{Path, PathBuf};

use super::*;
use crate::storage::record::encode_record;
use crate::storage::segment::create_segment;

fn payload(position: u64) -> Vec<u8> {
    format!("record number {position}").into_bytes()
}

/// Writes a segment holding records `first..first + count` and returns its path and each frame's start offset.
fn write_segment(dir: &Path, first: u64, count: u64) -> (PathBuf, Vec<u64>) {
    let path = create_segment(dir, LogPosition(first), false).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let mut starts = Vec::new();
    for position in first..first + count {
        starts.push(bytes.len() as u64);
        encode_record(&mut bytes, LogPosition(position), &payload(position));
    }
    std::fs::write(&path, bytes).unwrap();
    (path, starts)
}

fn positions(records: &[(LogPosition, Vec<u8>)]) -> Vec<u64> {
    records.iter().map(|(position, _)| position.0).collect()
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn empty_directory_is_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let (report, records) = collect_log(dir.path(), LogPosition(0), false).unwrap();
    assert!(records.is_empty());
    assert_eq!((report.last_position, report.tail, report.truncation), (LogPosition(0), None, None));
}

#[test]
fn reads_across_segments_and_skips_records_up_to_after() {
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), 1, 4);
    write_segment(dir.path(), 5, 3);
    let (report, records) = collect_log(dir.path(), LogPosition(0), false).unwrap();
    assert_eq!(positions(&records), [1, 2, 3, 4, 5, 6, 7]);
    assert!(records.iter().all(|(position, bytes)| *bytes == payload(position.0)));
    assert_eq!((report.last_position, report.segments_read), (LogPosition(7), 2));
    let (report, records) = collect_log(dir.path(), LogPosition(5), false).unwrap();
    assert_eq!(positions(&records), [6, 7]);
    assert_eq!((report.records_delivered, report.last_position), (2, LogPosition(7)));
}

#[test]
fn cut_at_every_offset_inside_the_last_record_recovers_the_records_before_it() {
    let source = tempfile::tempdir().unwrap();
    let (path, starts) = write_segment(source.path(), 1, 5);
    let full = std::fs::read(&path).unwrap();
    let last_start = *starts.last().unwrap();
    for cut in last_start + 1..full.len() as u64 {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join(path.file_name().unwrap());
        std::fs::write(&copy, &full[..cut as usize]).unwrap();
        let (report, records) = collect_log(dir.path(), LogPosition(0), false).unwrap();
        assert_eq!(positions(&records), [1, 2, 3, 4], "cut at {cut}");
        let truncation = report.truncation.expect("a truncation is reported");
        assert_eq!((truncation.offset, truncation.bytes_removed), (last_start, cut - last_start), "cut at {cut}");
        assert!(!truncation.mid_log);
        assert_eq!(std::fs::metadata(&copy).unwrap().len(), last_start, "file cut at the last good record");
        assert_eq!(report.tail.unwrap().length_bytes, last_start);
        let (again, _) = collect_log(dir.path(), LogPosition(0), false).unwrap();
        assert_eq!(again.truncation, None, "a repaired log reads clean");
    }
}

#[test]
fn corrupt_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (path, starts) = write_segment(dir.path(), 1, 3);
    flip_byte(&path, starts[2] + 20);
    let (report, records) = collect_log(dir.path(), LogPosition(0), false).unwrap();
    assert_eq!(positions(&records), [1, 2]);
    assert!(report.truncation.unwrap().reason.contains("checksum"));
}

#[test]
fn flipped_byte_with_valid_records_after_is_refused_unless_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (path, starts) = write_segment(dir.path(), 1, 5);
    flip_byte(&path, starts[1] + 18);
    let error = collect_log(dir.path(), LogPosition(0), false).unwrap_err();
    let StorageError::CorruptLog { segment, offset, .. } = &error else { panic!("unexpected {error}") };
    assert_eq!((segment, *offset), (&path, starts[1]));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), starts[4] + 16 + payload(5).len() as u64, "nothing cut");

    let (report, records) = collect_log(dir.path(), LogPosition(0), true).unwrap();
    assert_eq!(positions(&records), [1]);
    let truncation = report.truncation.unwrap();
    assert!(truncation.mid_log);
    assert_eq!(truncation.offset, starts[1]);
    assert_eq!(report.last_position, LogPosition(1));
}

#[test]
fn corrupt_length_field_with_records_after_is_mid_log() {
    let dir = tempfile::tempdir().unwrap();
    let (path, starts) = write_segment(dir.path(), 1, 4);
    flip_byte(&path, starts[1] + 2);
    assert!(matches!(collect_log(dir.path(), LogPosition(0), false), Err(StorageError::CorruptLog { .. })));
}

#[test]
fn damage_in_an_earlier_segment_is_refused_and_accepting_deletes_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (first, starts) = write_segment(dir.path(), 1, 3);
    let (second, _) = write_segment(dir.path(), 4, 3);
    let length = std::fs::metadata(&first).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&first).unwrap().set_len(length - 1).unwrap();
    let error = collect_log(dir.path(), LogPosition(0), false).unwrap_err();
    assert!(matches!(&error, StorageError::CorruptLog { segment, .. } if *segment == first), "{error}");

    let (report, records) = collect_log(dir.path(), LogPosition(0), true).unwrap();
    assert_eq!(positions(&records), [1, 2]);
    assert_eq!(report.truncation.unwrap().segments_deleted, vec![second.clone()]);
    assert!(!second.exists());
    assert_eq!(report.tail.unwrap().length_bytes, starts[2]);
}

#[test]
fn gap_between_segments_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), 1, 3);
    let (second, _) = write_segment(dir.path(), 5, 2);
    let error = collect_log(dir.path(), LogPosition(0), false).unwrap_err();
    assert!(error.to_string().contains("continues at 4"), "{error}");
    let (report, records) = collect_log(dir.path(), LogPosition(0), true).unwrap();
    assert_eq!(positions(&records), [1, 2, 3]);
    assert!(!second.exists());
    assert_eq!(report.last_position, LogPosition(3));
}

#[test]
fn record_with_wrong_position_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_segment(dir.path(), 1, 2);
    let mut bytes = std::fs::read(&path).unwrap();
    encode_record(&mut bytes, LogPosition(7), b"out of order");
    std::fs::write(&path, bytes).unwrap();
    let error = collect_log(dir.path(), LogPosition(0), false).unwrap_err();
    assert!(error.to_string().contains("position 7"), "{error}");
}

#[test]
fn foreign_and_future_segments_are_refused_even_when_accepting_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_segment(dir.path(), 1, 2);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8] = 3;
    // A segment from another build has a header checksum of its own.
    let header_checksum = crc32c::crc32c(&bytes[0..20]);
    bytes[20..24].copy_from_slice(&header_checksum.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let error = collect_log(dir.path(), LogPosition(0), true).unwrap_err();
    assert!(error.to_string().contains("has format version 3; this build reads 1"), "{error}");
    bytes[0] = b'Z';
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(collect_log(dir.path(), LogPosition(0), true), Err(StorageError::NotASegment { .. })));
}

#[test]
fn log_must_reach_and_continue_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), 5, 3);
    let error = collect_log(dir.path(), LogPosition(2), false).unwrap_err();
    assert!(matches!(error, StorageError::LogSnapshotMismatch { snapshot_position: 2, .. }), "{error}");
    let error = collect_log(dir.path(), LogPosition(9), false).unwrap_err();
    assert!(error.to_string().contains("ends at position 7"), "{error}");
    let (report, records) = collect_log(dir.path(), LogPosition(4), false).unwrap();
    assert_eq!((records.len(), report.last_position), (3, LogPosition(7)));
}

#[test]
fn header_only_segment_continues_at_its_first_position() {
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), 1, 3);
    write_segment(dir.path(), 4, 0);
    let (report, records) = collect_log(dir.path(), LogPosition(0), false).unwrap();
    assert_eq!((records.len(), report.last_position), (3, LogPosition(3)));
    assert_eq!(report.tail.unwrap().first_position, LogPosition(4));
}

#[test]
fn callback_errors_stop_the_read() {
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), 1, 5);
    let mut seen = 0;
    let result = read_log(dir.path(), LogPosition(0), false, |position, _| {
        seen += 1;
        if position.0 == 3 { Err(StorageError::LogClosed) } else { Ok(()) }
    });
    assert!(matches!(result, Err(StorageError::LogClosed)));
    assert_eq!(seen, 3);
}

/// Found by the simulator (`sim/regressions.txt`): a bit flipped in a segment's version field was taken for a segment
/// from another build, refused even when the operator accepts truncation.
#[test]
fn a_flipped_bit_in_a_segment_version_is_damage_the_operator_may_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_segment(dir.path(), 1, 2);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[9] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let refused = collect_log(dir.path(), LogPosition(0), false).unwrap_err();
    assert!(matches!(refused, StorageError::CorruptLog { offset: 0, .. }), "{refused}");
    let (report, records) = collect_log(dir.path(), LogPosition(0), true).unwrap();
    assert_eq!((report.last_position, records.len()), (LogPosition(0), 0));
}
