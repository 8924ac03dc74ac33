//! Where an office's log lives: its subject, its stream, its lease key. Pure naming, no I/O.
//!
//! An office's log is the subject `antrean.log.<office_id>`; the office lives in stream `ANTREAN_LOG_<k>` with
//! `k = crc32c(office_id) mod stream_count`, a function every node computes alike. Changing `stream_count` moves
//! offices between streams, so it is fixed for the life of a cluster. Office ids are lowercase letters, digits and
//! `-` (`domain::OfficeId`), valid as a subject token and as a KV key.

use crate::domain::OfficeId;

/// The prefix of every office log subject.
pub const LOG_SUBJECT_PREFIX: &str = "antrean.log";
/// The prefix of the log streams' names.
pub const LOG_STREAM_PREFIX: &str = "ANTREAN_LOG_";
/// The KV bucket that holds one lease per office.
pub const LEASE_BUCKET: &str = "antrean_leases";

/// The subject of an office's log.
#[must_use]
pub fn log_subject(office: &OfficeId) -> String {
    format!("{LOG_SUBJECT_PREFIX}.{}", office.as_str())
}

/// The index of the stream an office's log lives in.
///
/// # Panics
/// If `stream_count` is 0 (validated away by the configuration).
#[must_use]
pub fn stream_index(office: &OfficeId, stream_count: u32) -> u32 {
    assert!(stream_count > 0, "at least one log stream");
    crc32c::crc32c(office.as_str().as_bytes()) % stream_count
}

/// The name of the stream with index `index`.
#[must_use]
pub fn stream_name(index: u32) -> String {
    format!("{LOG_STREAM_PREFIX}{index}")
}

/// A partition's mark: the prefix of the booking numbers its owner draws (`domain::BookingId::prefix`), so a call by
/// booking id asks that partition first. A hash of the name, the same on every node; two partitions may share a mark
/// (then both are asked first), and numbers drawn before partitions marked them carry any mark: a hint, never the
/// only partition asked.
#[must_use]
pub fn partition_mark(partition: &str) -> u8 {
    (crc32c::crc32c(partition.as_bytes()) & 0xff) as u8
}

/// The lease key of an office in [`LEASE_BUCKET`].
#[must_use]
pub fn lease_key(office: &OfficeId) -> String {
    office.as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office(text: &str) -> OfficeId {
        OfficeId::parse(text).expect("valid office id")
    }

    #[test]
    fn names_follow_the_office() {
        let batam = office("kanim-batam");
        assert_eq!(log_subject(&batam), "antrean.log.kanim-batam");
        assert_eq!(lease_key(&batam), "kanim-batam");
        assert_eq!(stream_name(2), "ANTREAN_LOG_2");
    }

    #[test]
    fn a_partitions_mark_is_the_same_everywhere_and_marks_spread() {
        let marks: std::collections::HashSet<u8> =
            (0..64).map(|index| partition_mark(&format!("partition-{index}"))).collect();
        assert!(marks.len() > 48, "marks bunch: {} distinct of 64", marks.len());
        // Part of the data layout (numbers carry it): pin one value so a change cannot go unnoticed.
        assert_eq!(partition_mark("west"), (crc32c::crc32c(b"west") & 0xff) as u8);
    }

    #[test]
    fn offices_spread_over_the_streams_and_always_land_in_the_same_one() {
        let offices: Vec<OfficeId> = (0..120).map(|index| office(&format!("kanim-{index}"))).collect();
        let mut counts = [0u32; 4];
        for each in &offices {
            let index = stream_index(each, 4);
            assert_eq!(index, stream_index(each, 4));
            counts[index as usize] += 1;
        }
        assert!(counts.iter().all(|count| *count >= 15), "uneven spread: {counts:?}");
        // The placement is part of the cluster's data layout: pin one value so a change to it cannot go unnoticed.
        assert_eq!(stream_index(&office("kanim-batam"), 4), crc32c::crc32c(b"kanim-batam") % 4);
    }
}
