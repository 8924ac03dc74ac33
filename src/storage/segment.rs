//! Log segment files: their names, their header, creating them, listing them and deleting those a snapshot covers.
//!
//! Owns everything about a segment except the records inside it (see `record.rs`). It must not decide when to roll
//! (the writer does) or how to recover a damaged segment (recovery does).
//!
//! # Naming
//!
//! A segment is named `wal-{first_position:020}.log`, the zero-padded position of the first record it holds (or will
//! hold), so names sort in log order. A segment is created under the name `wal-{first_position:020}.log.tmp`, its
//! header written and fsynced, then renamed and the directory fsynced, so a segment file never has a torn header.
//!
//! # Header (24 bytes, integers little-endian)
//!
//! ```text
//! offset  size  field
//! 0       8     magic, the bytes "ANTRWAL\0"
//! 8       2     format version, u16, currently 1
//! 10      2     reserved, u16, written as 0 and ignored by version 1 readers
//! 12      8     first position, u64, equal to the position in the file name
//! 20      4     crc32c, u32, of bytes 0..20
//! ```
//!
//! Record frames follow the header back to back until the end of the file. A segment never holds more than
//! `segment_bytes_max` bytes; the writer's options guarantee that the largest record fits in an empty segment.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::io_error;
use super::error::{Result, StorageError};
use super::file::{create_private_file, sync_directory};
use super::sink::LogPosition;

/// Bytes in a segment header.
pub const SEGMENT_HEADER_BYTES: u64 = 24;

/// The segment format version this build writes and reads.
pub const SEGMENT_FORMAT_VERSION: u16 = 1;

const SEGMENT_MAGIC: [u8; 8] = *b"ANTRWAL\0";
const SEGMENT_PREFIX: &str = "wal-";
const SEGMENT_SUFFIX: &str = ".log";
const TEMPORARY_SUFFIX: &str = ".tmp";

/// A segment file found in the log directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    /// Position of the first record the segment holds, taken from its name.
    pub first_position: LogPosition,
    /// Full path of the file.
    pub path: PathBuf,
}

/// What [`prune_segments`] deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Segments deleted, oldest first.
    pub deleted: Vec<PathBuf>,
}

/// The file name of the segment whose first record is `first_position`.
#[must_use]
pub fn segment_file_name(first_position: LogPosition) -> String {
    format!("{SEGMENT_PREFIX}{:020}{SEGMENT_SUFFIX}", first_position.0)
}

/// Lists the segments in `dir`, oldest first. A missing directory has no segments.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>> {
    let mut segments = Vec::new();
    for name in directory_file_names(dir)? {
        if let Some(first_position) = parse_segment_file_name(&name) {
            segments.push(SegmentFile { first_position, path: dir.join(name) });
        }
    }
    segments.sort_by_key(|segment| segment.first_position);
    Ok(segments)
}

/// Deletes every segment whose records all have positions at or below `snapshot_position`, that is every segment
/// followed by a segment starting at or below `snapshot_position + 1`. The newest segment, which the writer appends
/// to, is never deleted.
///
/// Pass the position of the OLDEST snapshot still kept, so that falling back to it at start-up still finds its log.
pub fn prune_segments(dir: &Path, snapshot_position: LogPosition) -> Result<PruneReport> {
    let segments = list_segments(dir)?;
    let mut report = PruneReport::default();
    for pair in segments.windows(2) {
        let (segment, next) = (&pair[0], &pair[1]);
        if next.first_position.0 > snapshot_position.0.saturating_add(1) {
            break;
        }
        std::fs::remove_file(&segment.path).map_err(|source| StorageError::io("delete", &segment.path, source))?;
        report.deleted.push(segment.path.clone());
    }
    if !report.deleted.is_empty() {
        sync_directory(dir)?;
        tracing::info!(segments_deleted = report.deleted.len(), snapshot_position = snapshot_position.0, "pruned log");
    }
    Ok(report)
}

/// Creates the segment for `first_position` in `dir` with its header, atomically, and returns its path. When `sync`
/// is false (fsync mode `None`) nothing is fsynced.
pub(crate) fn create_segment(dir: &Path, first_position: LogPosition, sync: bool) -> Result<PathBuf> {
    let path = dir.join(segment_file_name(first_position));
    if path.exists() {
        let source = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
        return Err(StorageError::io("create segment", path, source));
    }
    let temporary = dir.join(format!("{}{TEMPORARY_SUFFIX}", segment_file_name(first_position)));
    let mut file = create_private_file(&temporary).map_err(io_error("create", &temporary))?;
    file.write_all(&encode_segment_header(first_position)).map_err(io_error("write", &temporary))?;
    if sync {
        file.sync_all().map_err(io_error("fsync", &temporary))?;
    }
    drop(file);
    std::fs::rename(&temporary, &path).map_err(io_error("rename", &temporary))?;
    if sync {
        sync_directory(dir)?;
    }
    Ok(path)
}

/// Deletes segment files left half-created by a crash during [`create_segment`]. Returns how many were deleted.
pub(crate) fn delete_temporary_segments(dir: &Path) -> Result<u32> {
    let mut deleted = 0;
    for name in directory_file_names(dir)? {
        let is_temporary = name
            .strip_suffix(TEMPORARY_SUFFIX)
            .is_some_and(|segment_name| parse_segment_file_name(segment_name).is_some());
        if is_temporary {
            let path = dir.join(name);
            std::fs::remove_file(&path).map_err(|source| StorageError::io("delete", &path, source))?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// The header of a segment starting at `first_position`.
pub(crate) fn encode_segment_header(first_position: LogPosition) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..10].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&first_position.0.to_le_bytes());
    let checksum = crc32c::crc32c(&header[0..20]);
    header[20..24].copy_from_slice(&checksum.to_le_bytes());
    header
}

/// Validates the header at the start of `bytes`, the contents of `segment`, and returns the first position it names.
pub(crate) fn decode_segment_header(segment: &SegmentFile, bytes: &[u8]) -> Result<LogPosition> {
    let corrupt = |detail: String| StorageError::CorruptLog { segment: segment.path.clone(), offset: 0, detail };
    let Some(header) = bytes.get(..SEGMENT_HEADER_BYTES as usize) else {
        return Err(corrupt(format!("segment header is {} bytes, expected {SEGMENT_HEADER_BYTES}", bytes.len())));
    };
    if header[0..8] != SEGMENT_MAGIC {
        return Err(StorageError::NotASegment { segment: segment.path.clone() });
    }
    // The checksum first: a flipped bit in the version field is damage (cut when the operator accepts it), not a
    // segment from another build (always refused), which has a valid checksum.
    let stored_checksum = u32::from_le_bytes(header[20..24].try_into().expect("slice of 4"));
    if crc32c::crc32c(&header[0..20]) != stored_checksum {
        return Err(corrupt("segment header checksum mismatch".to_owned()));
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version != SEGMENT_FORMAT_VERSION {
        return Err(StorageError::UnsupportedSegmentVersion {
            segment: segment.path.clone(),
            version,
            supported: SEGMENT_FORMAT_VERSION,
        });
    }
    let first_position = LogPosition(u64::from_le_bytes(header[12..20].try_into().expect("slice of 8")));
    if first_position != segment.first_position {
        return Err(corrupt(format!(
            "header names first position {} but the file name names {}",
            first_position.0, segment.first_position.0
        )));
    }
    Ok(first_position)
}

/// The position named by a segment file name, or None if `name` is not a segment name.
fn parse_segment_file_name(name: &str) -> Option<LogPosition> {
    let digits = name.strip_prefix(SEGMENT_PREFIX)?.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogPosition)
}

/// Names of the entries in `dir` that are valid UTF-8; a missing directory has none.
pub(crate) fn directory_file_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StorageError::io("list directory", dir, source)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| StorageError::io("list directory", dir, source))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment_at(dir: &Path, first: u64) -> SegmentFile {
        let path = create_segment(dir, LogPosition(first), true).unwrap();
        SegmentFile { first_position: LogPosition(first), path }
    }

    fn check_header(segment: &SegmentFile, mutate: impl FnOnce(&mut Vec<u8>)) -> Result<LogPosition> {
        let mut bytes = std::fs::read(&segment.path).unwrap();
        mutate(&mut bytes);
        decode_segment_header(segment, &bytes)
    }

    #[test]
    fn names_sort_in_log_order_and_parse_back() {
        assert_eq!(segment_file_name(LogPosition(42)), "wal-00000000000000000042.log");
        assert_eq!(parse_segment_file_name("wal-00000000000000000042.log"), Some(LogPosition(42)));
        assert_eq!(parse_segment_file_name("wal-42.log"), None);
        assert_eq!(parse_segment_file_name("wal-00000000000000000042.log.tmp"), None);
    }

    #[test]
    fn created_header_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let segment = segment_at(dir.path(), 9);
        assert_eq!(std::fs::metadata(&segment.path).unwrap().len(), SEGMENT_HEADER_BYTES);
        assert_eq!(check_header(&segment, |_| {}).unwrap(), LogPosition(9));
        assert_eq!(list_segments(dir.path()).unwrap(), vec![segment]);
    }

    #[test]
    fn wrong_magic_version_and_checksum_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let segment = segment_at(dir.path(), 1);
        let error = check_header(&segment, |bytes| bytes[0] = b'X').unwrap_err();
        assert!(matches!(error, StorageError::NotASegment { .. }), "{error}");
        let other_build = |bytes: &mut Vec<u8>| {
            bytes[8] = 2;
            let header_checksum = crc32c::crc32c(&bytes[0..20]);
            bytes[20..24].copy_from_slice(&header_checksum.to_le_bytes());
        };
        let error = check_header(&segment, other_build).unwrap_err();
        assert!(error.to_string().ends_with("has format version 2; this build reads 1"), "{error}");
        let error = check_header(&segment, |bytes| bytes[13] ^= 1).unwrap_err();
        assert!(matches!(error, StorageError::CorruptLog { offset: 0, .. }), "{error}");
        let error = check_header(&segment, |bytes| bytes.truncate(10)).unwrap_err();
        assert!(matches!(error, StorageError::CorruptLog { .. }), "{error}");
    }

    #[test]
    fn prune_deletes_only_wholly_covered_segments_and_never_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for first in [1, 11, 21] {
            segment_at(dir.path(), first);
        }
        let firsts = |dir: &Path| -> Vec<u64> {
            list_segments(dir).unwrap().iter().map(|segment| segment.first_position.0).collect()
        };
        assert!(prune_segments(dir.path(), LogPosition(9)).unwrap().deleted.is_empty());
        assert_eq!(firsts(dir.path()), [1, 11, 21]);
        assert_eq!(prune_segments(dir.path(), LogPosition(10)).unwrap().deleted.len(), 1);
        assert_eq!(firsts(dir.path()), [11, 21]);
        assert_eq!(prune_segments(dir.path(), LogPosition(1000)).unwrap().deleted.len(), 1);
        assert_eq!(firsts(dir.path()), [21]);
    }

    #[test]
    fn temporary_segments_are_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wal-00000000000000000005.log.tmp"), b"torn").unwrap();
        std::fs::write(dir.path().join("unrelated.tmp"), b"keep").unwrap();
        assert_eq!(delete_temporary_segments(dir.path()).unwrap(), 1);
        assert!(dir.path().join("unrelated.tmp").exists());
    }
}
