//! Snapshot files: an opaque payload holding the state after every record up to a log position.
//!
//! Owns writing a snapshot atomically, keeping the newest two, and loading the newest valid one (falling back to the
//! older when the newest fails its checks). It must not interpret payloads and must not delete log segments; see
//! `prune_segments` for that.
//!
//! # Naming and durability
//!
//! A snapshot is named `snap-{position:020}.snap`. It is written as `snap-{position:020}.snap.tmp`, fsynced, renamed,
//! and the directory fsynced, so a file under the final name is complete unless the medium corrupts it later.
//!
//! # Format (integers little-endian)
//!
//! ```text
//! offset  size  field
//! 0       8     magic, the bytes "ANTRSNP\0"
//! 8       2     format version, u16, currently 1
//! 10      2     reserved, u16, written as 0 and ignored by version 1 readers
//! 12      8     position, u64: the snapshot holds the effect of every record up to and including it
//! 20      8     payload length in bytes, u64
//! 28      4     crc32c of the payload, u32
//! 32      4     crc32c of bytes 0..32, u32
//! 36      len   payload, opaque bytes; the file ends exactly here
//! ```

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::error::io_error;
use super::error::{Result, StorageError};
use super::file::{create_private_dir_all, create_private_file, sync_directory};
use super::segment::directory_file_names;
use super::sink::LogPosition;

/// Bytes in a snapshot header.
pub const SNAPSHOT_HEADER_BYTES: u64 = 36;

/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u16 = 1;

/// How many snapshots are kept: the newest, and one to fall back to.
pub const SNAPSHOTS_KEPT: usize = 2;

const SNAPSHOT_MAGIC: [u8; 8] = *b"ANTRSNP\0";
const SNAPSHOT_PREFIX: &str = "snap-";
const SNAPSHOT_SUFFIX: &str = ".snap";
const TEMPORARY_SUFFIX: &str = ".tmp";
const WRITE_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// A snapshot written by [`write_snapshot`] or [`SnapshotWriter::finish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The position it covers.
    pub position: LogPosition,
    /// Its file.
    pub path: PathBuf,
    /// Payload length.
    pub payload_bytes: u64,
    /// Older snapshots deleted to keep only [`SNAPSHOTS_KEPT`].
    pub deleted: Vec<PathBuf>,
    /// Position of the oldest snapshot still kept. Pass this to `prune_segments`, so that falling back to that
    /// snapshot still finds the log after it.
    pub oldest_kept_position: LogPosition,
}

/// A snapshot read by [`load_latest_snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedSnapshot {
    /// The position it covers; replay the log after it.
    pub position: LogPosition,
    /// The payload.
    pub payload: Vec<u8>,
    /// Its file.
    pub path: PathBuf,
    /// Newer snapshots that failed their checks and were skipped, newest first, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Writes `payload` as the snapshot at `position` in `dir`, durably, then deletes all but the newest two snapshots.
pub fn write_snapshot(dir: &Path, position: LogPosition, payload: &[u8]) -> Result<SnapshotInfo> {
    let mut writer = SnapshotWriter::create(dir, position)?;
    writer.write_all(payload).map_err(|source| StorageError::io("write", &writer.temporary_path, source))?;
    writer.finish()
}

/// Streams a snapshot payload to disk without holding it in memory. Write the payload through [`std::io::Write`],
/// then call [`SnapshotWriter::finish`]; dropping it unfinished leaves a `.tmp` file that the next write removes.
pub struct SnapshotWriter {
    dir: PathBuf,
    position: LogPosition,
    temporary_path: PathBuf,
    file: BufWriter<File>,
    payload_bytes: u64,
    payload_checksum: u32,
}

impl SnapshotWriter {
    /// Starts the snapshot at `position` in `dir`, creating the directory if needed.
    pub fn create(dir: &Path, position: LogPosition) -> Result<SnapshotWriter> {
        create_private_dir_all(dir).map_err(|source| StorageError::io("create directory", dir, source))?;
        let temporary_path = dir.join(format!("{}{TEMPORARY_SUFFIX}", snapshot_file_name(position)));
        let file = create_private_file(&temporary_path)
            .map_err(|source| StorageError::io("create", &temporary_path, source))?;
        let mut file = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        let placeholder = [0u8; SNAPSHOT_HEADER_BYTES as usize];
        file.write_all(&placeholder).map_err(|source| StorageError::io("write", &temporary_path, source))?;
        Ok(SnapshotWriter {
            dir: dir.to_owned(),
            position,
            temporary_path,
            file,
            payload_bytes: 0,
            payload_checksum: 0,
        })
    }

    /// Writes the header, fsyncs, renames into place, fsyncs the directory and deletes all but the newest two.
    pub fn finish(self) -> Result<SnapshotInfo> {
        let SnapshotWriter { dir, position, temporary_path, file, payload_bytes, payload_checksum } = self;
        let temporary = temporary_path.as_path();
        let mut file = file.into_inner().map_err(|error| io_error("write", temporary)(error.into_error()))?;
        let header = encode_snapshot_header(position, payload_bytes, payload_checksum);
        file.seek(SeekFrom::Start(0)).map_err(io_error("seek", temporary))?;
        file.write_all(&header).map_err(io_error("write", temporary))?;
        file.sync_all().map_err(io_error("fsync", temporary))?;
        drop(file);
        let path = dir.join(snapshot_file_name(position));
        std::fs::rename(temporary, &path).map_err(io_error("rename", temporary))?;
        sync_directory(&dir)?;
        let (deleted, oldest_kept_position) = delete_old_snapshots(&dir)?;
        tracing::info!(path = %path.display(), position = position.0, payload_bytes, "snapshot written");
        Ok(SnapshotInfo { position, path, payload_bytes, deleted, oldest_kept_position })
    }
}

impl Write for SnapshotWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(bytes)?;
        self.payload_checksum = crc32c::crc32c_append(self.payload_checksum, &bytes[..written]);
        self.payload_bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Loads the newest snapshot in `dir` that passes its checks, skipping (with a warning) newer ones that fail them.
/// Returns None if there is no snapshot; an error if snapshots exist but none is valid, or on an unknown version.
pub fn load_latest_snapshot(dir: &Path) -> Result<Option<LoadedSnapshot>> {
    let snapshots = list_snapshots(dir)?;
    let mut skipped = Vec::new();
    for (position, path) in snapshots.iter().rev() {
        match read_snapshot(path, *position) {
            Ok(payload) => {
                return Ok(Some(LoadedSnapshot { position: *position, payload, path: path.clone(), skipped }));
            }
            Err(StorageError::CorruptSnapshot { path, detail }) => {
                tracing::warn!(path = %path.display(), reason = %detail, "skipping corrupt snapshot, trying an older one");
                skipped.push((path, detail));
            }
            Err(error) => return Err(error),
        }
    }
    match skipped.into_iter().next() {
        None => Ok(None),
        Some((path, detail)) => {
            Err(StorageError::CorruptSnapshot { path, detail: format!("{detail}; no older snapshot is valid either") })
        }
    }
}

/// `payload` framed as a snapshot file frames it (header, then payload), in memory: the same bytes
/// [`write_snapshot`] would put in the file, for a snapshot kept somewhere other than a local file (the cluster's
/// object store).
#[must_use]
pub fn frame_snapshot(position: LogPosition, payload: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(SNAPSHOT_HEADER_BYTES as usize + payload.len());
    framed.extend_from_slice(&encode_snapshot_header(position, payload.len() as u64, crc32c::crc32c(payload)));
    framed.extend_from_slice(payload);
    framed
}

/// Checks bytes made by [`frame_snapshot`] (or read from a snapshot file) and returns the position and payload;
/// `name` says where they came from, for the error. A damaged frame is [`StorageError::CorruptSnapshot`].
pub fn unframe_snapshot<'bytes>(name: &str, framed: &'bytes [u8]) -> Result<(LogPosition, &'bytes [u8])> {
    let path = Path::new(name);
    let corrupt = |detail: String| StorageError::CorruptSnapshot { path: path.to_owned(), detail };
    let Some(header) = framed.first_chunk::<36>() else {
        return Err(corrupt(format!("{} bytes, shorter than the header", framed.len())));
    };
    let fields = decode_snapshot_header(path, header)?;
    let payload = &framed[SNAPSHOT_HEADER_BYTES as usize..];
    if payload.len() as u64 != fields.payload_bytes {
        return Err(corrupt(format!("payload of {} bytes, header says {}", payload.len(), fields.payload_bytes)));
    }
    if crc32c::crc32c(payload) != fields.payload_checksum {
        return Err(corrupt("payload checksum mismatch".to_owned()));
    }
    Ok((fields.position, payload))
}

/// The file name of the snapshot at `position`.
#[must_use]
pub fn snapshot_file_name(position: LogPosition) -> String {
    format!("{SNAPSHOT_PREFIX}{:020}{SNAPSHOT_SUFFIX}", position.0)
}

/// Snapshots in `dir`, oldest first.
fn list_snapshots(dir: &Path) -> Result<Vec<(LogPosition, PathBuf)>> {
    let mut snapshots: Vec<_> = directory_file_names(dir)?
        .into_iter()
        .filter_map(|name| parse_snapshot_file_name(&name).map(|position| (position, dir.join(name))))
        .collect();
    snapshots.sort();
    Ok(snapshots)
}

/// Deletes snapshots beyond the newest [`SNAPSHOTS_KEPT`] and stale temporary files. Returns what was deleted and
/// the oldest position kept.
fn delete_old_snapshots(dir: &Path) -> Result<(Vec<PathBuf>, LogPosition)> {
    let snapshots = list_snapshots(dir)?;
    let surplus = snapshots.len().saturating_sub(SNAPSHOTS_KEPT);
    let oldest_kept_position = snapshots[surplus].0;
    let mut deleted: Vec<PathBuf> = snapshots[..surplus].iter().map(|(_, path)| path.clone()).collect();
    for name in directory_file_names(dir)? {
        let stale = name.strip_suffix(TEMPORARY_SUFFIX).and_then(parse_snapshot_file_name);
        if stale.is_some() {
            deleted.push(dir.join(name));
        }
    }
    for path in &deleted {
        std::fs::remove_file(path).map_err(|source| StorageError::io("delete", path, source))?;
    }
    if !deleted.is_empty() {
        sync_directory(dir)?;
    }
    Ok((deleted, oldest_kept_position))
}

/// Reads and checks the snapshot at `path`, which its name says covers `position`, and returns its payload.
fn read_snapshot(path: &Path, position: LogPosition) -> Result<Vec<u8>> {
    let corrupt = |detail: String| StorageError::CorruptSnapshot { path: path.to_owned(), detail };
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let file_bytes = file.metadata().map_err(io_error("stat", path))?.len();
    let mut header = [0u8; SNAPSHOT_HEADER_BYTES as usize];
    if file_bytes < SNAPSHOT_HEADER_BYTES {
        return Err(corrupt(format!("file is {file_bytes} bytes, shorter than the header")));
    }
    file.read_exact(&mut header).map_err(io_error("read", path))?;
    let fields = decode_snapshot_header(path, &header)?;
    if fields.position != position {
        return Err(corrupt(format!("header names position {} but the file name {}", fields.position.0, position.0)));
    }
    if file_bytes != SNAPSHOT_HEADER_BYTES + fields.payload_bytes {
        return Err(corrupt(format!("file is {file_bytes} bytes, header says payload of {}", fields.payload_bytes)));
    }
    let capacity = usize::try_from(fields.payload_bytes).map_err(|_| corrupt("payload too large for memory".into()))?;
    let mut payload = Vec::with_capacity(capacity);
    file.take(fields.payload_bytes).read_to_end(&mut payload).map_err(io_error("read", path))?;
    if payload.len() != capacity {
        return Err(corrupt(format!("payload ends after {} of {} bytes", payload.len(), fields.payload_bytes)));
    }
    if crc32c::crc32c(&payload) != fields.payload_checksum {
        return Err(corrupt("payload checksum mismatch".to_owned()));
    }
    Ok(payload)
}

/// The fields of a valid header.
struct HeaderFields {
    position: LogPosition,
    payload_bytes: u64,
    payload_checksum: u32,
}

fn encode_snapshot_header(position: LogPosition, payload_bytes: u64, payload_checksum: u32) -> [u8; 36] {
    let mut header = [0u8; SNAPSHOT_HEADER_BYTES as usize];
    header[0..8].copy_from_slice(&SNAPSHOT_MAGIC);
    header[8..10].copy_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&position.0.to_le_bytes());
    header[20..28].copy_from_slice(&payload_bytes.to_le_bytes());
    header[28..32].copy_from_slice(&payload_checksum.to_le_bytes());
    let header_checksum = crc32c::crc32c(&header[0..32]);
    header[32..36].copy_from_slice(&header_checksum.to_le_bytes());
    header
}

fn decode_snapshot_header(path: &Path, header: &[u8; 36]) -> Result<HeaderFields> {
    let corrupt = |detail: &str| StorageError::CorruptSnapshot { path: path.to_owned(), detail: detail.to_owned() };
    if header[0..8] != SNAPSHOT_MAGIC {
        return Err(corrupt("bad magic"));
    }
    let u64_at = |offset: usize| u64::from_le_bytes(header[offset..offset + 8].try_into().expect("slice of 8"));
    let u32_at = |offset: usize| u32::from_le_bytes(header[offset..offset + 4].try_into().expect("slice of 4"));
    // The checksum first: a flipped bit in the version field is damage (skip to the older snapshot), not a snapshot
    // from another build (refuse to start), which has a valid checksum.
    if crc32c::crc32c(&header[0..32]) != u32_at(32) {
        return Err(corrupt("header checksum mismatch"));
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version != SNAPSHOT_FORMAT_VERSION {
        let supported = SNAPSHOT_FORMAT_VERSION;
        return Err(StorageError::UnsupportedSnapshotVersion { path: path.to_owned(), version, supported });
    }
    Ok(HeaderFields { position: LogPosition(u64_at(12)), payload_bytes: u64_at(20), payload_checksum: u32_at(28) })
}

fn parse_snapshot_file_name(name: &str) -> Option<LogPosition> {
    let digits = name.strip_prefix(SNAPSHOT_PREFIX)?.strip_suffix(SNAPSHOT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogPosition)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(seed: u8, bytes: usize) -> Vec<u8> {
        (0..bytes).map(|index| (index as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    fn snapshot_positions(dir: &Path) -> Vec<u64> {
        list_snapshots(dir).unwrap().iter().map(|(position, _)| position.0).collect()
    }

    fn damage(path: &Path, offset: u64) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[offset as usize] ^= 0x01;
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn write_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_latest_snapshot(dir.path()).unwrap(), None);
        let info = write_snapshot(dir.path(), LogPosition(42), &payload(1, 100_000)).unwrap();
        assert_eq!(info.path, dir.path().join("snap-00000000000000000042.snap"));
        assert_eq!(std::fs::metadata(&info.path).unwrap().len(), SNAPSHOT_HEADER_BYTES + 100_000);
        assert_eq!(info.oldest_kept_position, LogPosition(42));
        let loaded = load_latest_snapshot(dir.path()).unwrap().unwrap();
        assert_eq!((loaded.position, loaded.payload, loaded.skipped), (LogPosition(42), payload(1, 100_000), vec![]));
    }

    #[test]
    fn streamed_snapshot_equals_one_shot_snapshot() {
        let (one, streamed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let bytes = payload(7, 50_000);
        let one_path = write_snapshot(one.path(), LogPosition(3), &bytes).unwrap().path;
        let mut writer = SnapshotWriter::create(streamed.path(), LogPosition(3)).unwrap();
        for chunk in bytes.chunks(333) {
            writer.write_all(chunk).unwrap();
        }
        let streamed_path = writer.finish().unwrap().path;
        assert_eq!(std::fs::read(one_path).unwrap(), std::fs::read(streamed_path).unwrap());
    }

    #[test]
    fn keeps_the_newest_two() {
        let dir = tempfile::tempdir().unwrap();
        for position in [10, 20] {
            assert!(write_snapshot(dir.path(), LogPosition(position), b"x").unwrap().deleted.is_empty());
        }
        std::fs::write(dir.path().join("snap-00000000000000000005.snap.tmp"), b"abandoned").unwrap();
        let info = write_snapshot(dir.path(), LogPosition(30), b"y").unwrap();
        assert_eq!(info.deleted.len(), 2, "the oldest snapshot and the abandoned temporary file");
        assert_eq!(info.oldest_kept_position, LogPosition(20));
        assert_eq!(snapshot_positions(dir.path()), [20, 30]);
        assert_eq!(directory_file_names(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn corrupt_newest_falls_back_to_the_older() {
        for offset in [3, 14, SNAPSHOT_HEADER_BYTES + 500] {
            let dir = tempfile::tempdir().unwrap();
            write_snapshot(dir.path(), LogPosition(10), &payload(1, 1000)).unwrap();
            let newest = write_snapshot(dir.path(), LogPosition(20), &payload(2, 1000)).unwrap().path;
            damage(&newest, offset);
            let loaded = load_latest_snapshot(dir.path()).unwrap().unwrap();
            assert_eq!((loaded.position, loaded.payload), (LogPosition(10), payload(1, 1000)), "offset {offset}");
            assert_eq!(loaded.skipped.len(), 1);
            assert_eq!(loaded.skipped[0].0, newest);
        }
    }

    #[test]
    fn truncated_newest_falls_back_and_all_corrupt_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let older = write_snapshot(dir.path(), LogPosition(10), &payload(1, 1000)).unwrap().path;
        let newest = write_snapshot(dir.path(), LogPosition(20), &payload(2, 1000)).unwrap().path;
        std::fs::OpenOptions::new().write(true).open(&newest).unwrap().set_len(900).unwrap();
        assert_eq!(load_latest_snapshot(dir.path()).unwrap().unwrap().position, LogPosition(10));
        damage(&older, SNAPSHOT_HEADER_BYTES);
        let error = load_latest_snapshot(dir.path()).unwrap_err();
        assert!(matches!(error, StorageError::CorruptSnapshot { .. }), "{error}");
    }

    #[test]
    fn unknown_version_is_refused_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), LogPosition(10), b"old").unwrap();
        let newest = write_snapshot(dir.path(), LogPosition(20), b"new").unwrap().path;
        let mut bytes = std::fs::read(&newest).unwrap();
        bytes[8] = 2;
        // A snapshot from another build has a header checksum of its own.
        let header_checksum = crc32c::crc32c(&bytes[0..32]);
        bytes[32..36].copy_from_slice(&header_checksum.to_le_bytes());
        std::fs::write(&newest, bytes).unwrap();
        let error = load_latest_snapshot(dir.path()).unwrap_err();
        assert!(error.to_string().ends_with("has format version 2; this build reads 1"), "{error}");
    }

    #[test]
    fn a_framed_snapshot_is_the_file_and_every_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = payload(5, 300);
        let path = write_snapshot(dir.path(), LogPosition(9), &bytes).unwrap().path;
        let framed = frame_snapshot(LogPosition(9), &bytes);
        assert_eq!(framed, std::fs::read(path).unwrap(), "the same bytes as the file");
        assert_eq!(unframe_snapshot("x", &framed).unwrap(), (LogPosition(9), bytes.as_slice()));
        for index in 0..framed.len() {
            let mut damaged = framed.clone();
            damaged[index] ^= 0x04;
            assert!(unframe_snapshot("x", &damaged).is_err(), "flipped byte {index} went unnoticed");
        }
        for length in [0, 35, 36, framed.len() - 1] {
            assert!(unframe_snapshot("x", &framed[..length]).is_err(), "cut at {length} went unnoticed");
        }
    }

    /// Found by the simulator (`sim/regressions.txt`): a bit flipped in the newest snapshot's version field made the
    /// start refused, although the older snapshot was intact.
    #[test]
    fn a_flipped_bit_in_the_version_is_damage_and_falls_back() {
        for bit in [0, 2, 10] {
            let dir = tempfile::tempdir().unwrap();
            write_snapshot(dir.path(), LogPosition(10), b"old").unwrap();
            let newest = write_snapshot(dir.path(), LogPosition(20), b"new").unwrap().path;
            let mut bytes = std::fs::read(&newest).unwrap();
            bytes[8 + bit / 8] ^= 1 << (bit % 8);
            std::fs::write(&newest, bytes).unwrap();
            let loaded = load_latest_snapshot(dir.path()).unwrap().unwrap();
            assert_eq!((loaded.position, loaded.payload.as_slice()), (LogPosition(10), &b"old"[..]), "bit {bit}");
        }
    }
}
