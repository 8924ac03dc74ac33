//! Damage done to the data directory between a crash and the restart, and what recovery must then do about it, as
//! docs/formats.md says: a corrupt tail of the last segment is cut; damage followed by
//! valid records, or in a segment header, is refused unless the operator accepts truncation; a corrupt snapshot is
//! skipped for the older one, and with no valid older one the start is refused.

use antrean::storage::{self, Decoded, LogPosition, SEGMENT_HEADER_BYTES};
use std::path::Path;

/// What recovery must do after the damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Recover every acknowledged record (nothing on disk was damaged).
    Recover,
    /// Cut the torn or corrupt last record: recover exactly to `position`.
    CutTo {
        /// The last position kept.
        position: u64,
    },
    /// Refuse to start; restarted with `accept_log_truncation`, recover exactly to `accepted` (or refuse again when
    /// that is before the snapshot loaded, `None`).
    RefuseLog {
        /// The last position kept when the operator accepts the cut.
        accepted: Option<u64>,
    },
    /// Refuse to start for good (no valid snapshot): the history ends.
    RefuseForGood,
}

/// Flips one bit of one log segment, chosen by `pick`, and says what recovery must do. Returns `None` when there is
/// no segment.
pub fn flip_log_bit(wal_dir: &Path, snapshot_dir: &Path, pick: u64) -> Option<(String, Expect)> {
    let segments = storage::list_segments(wal_dir).ok()?;
    if segments.is_empty() {
        return None;
    }
    let index = (pick % segments.len() as u64) as usize;
    let segment = &segments[index];
    let mut bytes = std::fs::read(&segment.path).ok()?;
    if bytes.is_empty() {
        return None;
    }
    let offset = biased_offset(pick, bytes.len(), SEGMENT_HEADER_BYTES as usize);
    let is_last = index + 1 == segments.len();
    let (damaged_position, last_record_start) = record_at(&bytes, segment.first_position.0, offset);
    bytes[offset] ^= 1 << ((pick >> 8) % 8);
    std::fs::write(&segment.path, &bytes).ok()?;
    let newest_snapshot = newest_snapshot_position(snapshot_dir);
    let kept = damaged_position - 1;
    let expect = if is_last && offset as u64 >= SEGMENT_HEADER_BYTES && last_record_start {
        // Cutting below the newest snapshot would leave a log that does not continue it: refused, and accepting
        // truncation cannot help (only synced records are in a snapshot, so this is damage to the medium, not a tear).
        if kept >= newest_snapshot { Expect::CutTo { position: kept } } else { Expect::RefuseForGood }
    } else if offset < 8 {
        // A segment whose magic is wrong is a foreign file: refused even when the operator accepts truncation.
        Expect::RefuseForGood
    } else {
        // Accepting truncation cuts the log at the damage and deletes every later segment. When nothing of the log
        // is left, recovery starts from the snapshot alone; otherwise the log must still reach the snapshot.
        let nothing_left = index == 0 && (offset as u64) < SEGMENT_HEADER_BYTES;
        let accepted = if nothing_left { Some(newest_snapshot) } else { (kept >= newest_snapshot).then_some(kept) };
        Expect::RefuseLog { accepted }
    };
    let name = segment.path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    Some((format!("flipped a bit at byte {offset} of {name} (record {damaged_position})"), expect))
}

/// A byte of a file of `length` bytes: a quarter of the time in its header, a quarter in its last 64 bytes (where
/// the tail rules apply), else anywhere.
fn biased_offset(pick: u64, length: usize, header_bytes: usize) -> usize {
    let roll = pick >> 16;
    match (pick >> 40) % 4 {
        0 => (roll % header_bytes.min(length) as u64) as usize,
        1 => length - 1 - (roll % 64.min(length) as u64) as usize,
        _ => (roll % length as u64) as usize,
    }
}

/// The position of the record whose frame holds byte `offset` of an undamaged segment whose first record is
/// `first_position` (the first position for a byte of the header), and whether that frame is the segment's last.
fn record_at(bytes: &[u8], first_position: u64, offset: usize) -> (u64, bool) {
    let mut start = SEGMENT_HEADER_BYTES as usize;
    let mut position = first_position;
    if offset < start {
        return (first_position, false);
    }
    while let Decoded::Record { frame_bytes, .. } = storage::decode_record(&bytes[start..]) {
        let end = start + frame_bytes as usize;
        if offset < end {
            return (position, end >= bytes.len());
        }
        start = end;
        position += 1;
    }
    (position, true)
}

/// Flips one bit of the newest snapshot, chosen by `pick`. Returns `None` when there is no snapshot.
pub fn flip_snapshot_bit(snapshot_dir: &Path, wal_dir: &Path, pick: u64) -> Option<(String, Expect)> {
    let snapshots = snapshot_files(snapshot_dir);
    // With one snapshot only, the damage makes the start refused for good and ends the history: do that one time in
    // eight, so most histories go on.
    if snapshots.len() < 2 && !pick.is_multiple_of(8) {
        return None;
    }
    let (_, newest) = snapshots.last()?;
    let mut bytes = std::fs::read(newest).ok()?;
    let offset = biased_offset(pick, bytes.len(), storage::SNAPSHOT_HEADER_BYTES as usize);
    bytes[offset] ^= 1 << ((pick >> 8) % 8);
    std::fs::write(newest, &bytes).ok()?;
    // The older snapshot helps only when the log still reaches back to it (a truncation the operator accepted may
    // have deleted the segments after it).
    let log_starts_at = storage::list_segments(wal_dir).ok()?.first().map(|segment| segment.first_position.0);
    let reaches = |position: u64| log_starts_at.is_none_or(|first| first <= position + 1);
    let expect = if intact_older_snapshot(&snapshots[..snapshots.len() - 1]).is_some_and(reaches) {
        Expect::Recover
    } else {
        Expect::RefuseForGood
    };
    let name = newest.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    Some((format!("flipped a bit at byte {offset} of {name}"), expect))
}

/// The position of the newest of `older` that passes the snapshot checks (an earlier flip may have damaged it), read
/// through the storage layer from a copy.
fn intact_older_snapshot(older: &[(u64, std::path::PathBuf)]) -> Option<u64> {
    let copy = tempfile::tempdir().ok()?;
    for (_, path) in older {
        let name = path.file_name()?;
        std::fs::copy(path, copy.path().join(name)).ok()?;
    }
    storage::load_latest_snapshot(copy.path()).ok()?.map(|loaded| loaded.position.0)
}

/// Snapshot files under their final names, oldest first.
fn snapshot_files(snapshot_dir: &Path) -> Vec<(u64, std::path::PathBuf)> {
    let mut found: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(snapshot_dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter_map(|path| {
                    let name = path.file_name()?.to_str()?.to_owned();
                    let digits = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
                    Some((digits.parse().ok()?, path))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The position of the snapshot recovery will load (the newest valid one), 0 without one.
fn newest_snapshot_position(snapshot_dir: &Path) -> u64 {
    match storage::load_latest_snapshot(snapshot_dir) {
        Ok(Some(loaded)) => loaded.position.0,
        _ => 0,
    }
}

/// Writes the first `cut` bytes of a snapshot of `payload` at `position` under its temporary name, as a snapshotter
/// that died mid-write leaves it.
pub fn interrupted_snapshot(snapshot_dir: &Path, position: u64, payload: &[u8], cut: usize) -> std::io::Result<()> {
    use std::io::Write;
    let mut writer =
        storage::SnapshotWriter::create(snapshot_dir, LogPosition(position)).map_err(std::io::Error::other)?;
    writer.write_all(&payload[..cut.min(payload.len())])?;
    writer.flush()?;
    drop(writer);
    Ok(())
}
