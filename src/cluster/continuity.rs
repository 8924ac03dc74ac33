//! [`records_after`]: the records that continue a state at a log position, taken from batches read back from a
//! partition's subject, or why they do not continue it (a hole: the subject was purged below them, a batch is missing).
//!
//! Owns the continuity rule a take-over must check before serving a state: the first record after the snapshot is
//! position + 1, or the log ends at the position. Pure: no I/O.

use super::batch::DecodedBatch;
use crate::storage::{LogPosition, LogRecords};

/// Why batches do not continue a state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the log does not continue the state at position {after}: {detail}")]
pub struct Gap {
    /// The position the state was at.
    pub after: u64,
    /// What was found instead.
    pub detail: String,
}

/// The records of `batches` (read in stream order from where a replay after `after` starts; consecutive batches are
/// already checked to follow on) with positions above `after`, in order. The first of them must be at `after + 1`;
/// when none is above, the last batch must end exactly at `after`. With no batches at all only `after` 0 (an empty
/// log) is continued: a snapshot's own batch is never purged, so an empty read means it was lost.
pub fn records_after(after: LogPosition, batches: Vec<DecodedBatch>) -> Result<LogRecords, Gap> {
    let gap = |detail: String| Err(Gap { after: after.0, detail });
    let Some(first_batch) = batches.first() else {
        return if after.0 == 0 { Ok(Vec::new()) } else { gap("no batch holds it or follows it".into()) };
    };
    if first_batch.header.first_position.0 > after.0 + 1 {
        let first = first_batch.header.first_position.0;
        return gap(format!("the first batch read starts at position {first}"));
    }
    let last = batches.last().map_or(0, |batch| batch.header.last_position().0);
    if last < after.0 {
        return gap(format!("the log read ends at position {last}"));
    }
    let mut records = Vec::new();
    for batch in batches {
        let first = batch.header.first_position.0;
        records.extend((first..).map(LogPosition).zip(batch.payloads).filter(|(position, _)| *position > after));
    }
    debug_assert!(records.first().is_none_or(|(position, _)| position.0 == after.0 + 1));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::batch::BatchHeader;

    /// A batch of records `first..=last`, each payload its position as text.
    fn batch(first: u64, last: u64) -> DecodedBatch {
        let payloads = (first..=last).map(|position| position.to_string().into_bytes()).collect();
        let header =
            BatchHeader { epoch: 1, first_position: LogPosition(first), record_count: (last - first + 1) as u32 };
        DecodedBatch { header, payloads }
    }

    fn positions(records: &LogRecords) -> Vec<u64> {
        records
            .iter()
            .map(|(position, payload)| {
                assert_eq!(payload, position.0.to_string().as_bytes());
                position.0
            })
            .collect()
    }

    #[test]
    fn records_up_to_the_snapshot_are_skipped_and_the_rest_follow_on() {
        let records = records_after(LogPosition(5), vec![batch(4, 6), batch(7, 8)]).expect("continues");

        assert_eq!(positions(&records), [6, 7, 8]);
    }

    #[test]
    fn a_log_that_ends_at_the_snapshot_continues_it_with_nothing() {
        let records = records_after(LogPosition(6), vec![batch(4, 6)]).expect("continues");

        assert!(records.is_empty());
    }

    #[test]
    fn a_replay_from_the_start_begins_at_position_one() {
        assert_eq!(positions(&records_after(LogPosition(0), vec![batch(1, 2)]).expect("from 1")), [1, 2]);
        assert_eq!(records_after(LogPosition(0), vec![]), Ok(vec![]), "an empty log");

        let purged = records_after(LogPosition(0), vec![batch(40, 41)]).expect_err("the start was purged");

        assert!(purged.detail.contains("starts at position 40"), "{purged}");
    }

    #[test]
    fn a_hole_after_the_snapshot_is_refused() {
        let purged_past = records_after(LogPosition(5), vec![batch(7, 8)]).expect_err("position 6 is missing");
        assert_eq!(purged_past.after, 5);

        let short = records_after(LogPosition(9), vec![batch(4, 6)]).expect_err("the log ends before the snapshot");
        assert!(short.detail.contains("ends at position 6"), "{short}");

        let nothing = records_after(LogPosition(9), vec![]).expect_err("the snapshot's own batch is gone");
        assert!(nothing.detail.contains("no batch"), "{nothing}");
    }
}
