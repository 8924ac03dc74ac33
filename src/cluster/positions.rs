//! [`BatchSequences`]: which stream sequence holds which log positions, for the batches a partition's owner has seen
//! (replayed at take-over, then appended), so that a snapshot at a position can say where a replay after it starts.
//!
//! Owns a bounded record of recent batches and nothing else: no I/O. A batch older than the record is forgotten; a
//! position it cannot place is answered `None`, never guessed (the snapshot is then skipped).

use crate::storage::LogPosition;
use std::collections::VecDeque;

/// Batches remembered: a snapshot looks up the batch of the position it captured a moment before (the encoding of the
/// image in between), so only the newest batches are ever asked for; 65,536 of them outlast seconds of the busiest
/// group commit, at 24 bytes each (1.5 MiB).
pub const BATCH_SEQUENCES_MAX: usize = 65_536;

/// One batch: the positions it holds and its stream sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSequence {
    /// Position of its first record.
    pub first_position: LogPosition,
    /// Position of its last record.
    pub last_position: LogPosition,
    /// Its stream sequence.
    pub stream_sequence: u64,
}

/// The newest batches of a partition's log, in position order, at most `capacity`.
#[derive(Debug)]
pub struct BatchSequences {
    batches: VecDeque<BatchSequence>,
    capacity: usize,
}

impl Default for BatchSequences {
    fn default() -> BatchSequences {
        BatchSequences::with_capacity(BATCH_SEQUENCES_MAX)
    }
}

impl BatchSequences {
    /// An empty record of at most `capacity` batches (at least 1).
    #[must_use]
    pub fn with_capacity(capacity: usize) -> BatchSequences {
        BatchSequences { batches: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// Records the next batch. A batch that does not follow on from the last one recorded (a gap or an overlap, which
    /// a correct caller never gives) clears the record first, so a lookup never spans a hole.
    pub fn record(&mut self, batch: BatchSequence) {
        debug_assert!(batch.first_position <= batch.last_position);
        let follows = self.batches.back().is_none_or(|last| {
            last.last_position.0 + 1 == batch.first_position.0 && last.stream_sequence < batch.stream_sequence
        });
        if !follows {
            self.batches.clear();
        }
        if self.batches.len() == self.capacity {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
    }

    /// The stream sequence of the batch that holds `position`, if it is recorded.
    #[must_use]
    pub fn sequence_of(&self, position: LogPosition) -> Option<u64> {
        let index = self.batches.partition_point(|batch| batch.last_position < position);
        self.batches.get(index).filter(|batch| batch.first_position <= position).map(|batch| batch.stream_sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: u64, last: u64, stream_sequence: u64) -> BatchSequence {
        BatchSequence { first_position: LogPosition(first), last_position: LogPosition(last), stream_sequence }
    }

    #[test]
    fn a_position_is_found_in_the_batch_that_holds_it() {
        let mut record = BatchSequences::default();
        record.record(batch(1, 3, 10));
        record.record(batch(4, 4, 17));
        record.record(batch(5, 9, 18));

        let found: Vec<Option<u64>> = (0..=10).map(|position| record.sequence_of(LogPosition(position))).collect();

        let expected = [None, Some(10), Some(10), Some(10), Some(17), Some(18), Some(18), Some(18), Some(18), Some(18)];
        assert_eq!(found[..10], expected);
        assert_eq!(found[10], None, "not appended yet");
    }

    #[test]
    fn the_oldest_batches_are_forgotten_beyond_the_capacity() {
        let mut record = BatchSequences::with_capacity(2);
        for (first, sequence) in [(1, 5), (2, 6), (3, 9)] {
            record.record(batch(first, first, sequence));
        }

        assert_eq!(record.sequence_of(LogPosition(1)), None, "forgotten, not guessed");
        assert_eq!(record.sequence_of(LogPosition(2)), Some(6));
        assert_eq!(record.sequence_of(LogPosition(3)), Some(9));
    }

    #[test]
    fn a_batch_that_does_not_follow_on_clears_what_came_before() {
        let mut record = BatchSequences::default();
        record.record(batch(1, 2, 3));
        record.record(batch(5, 6, 9));

        assert_eq!(record.sequence_of(LogPosition(1)), None, "nothing is answered across the hole");
        assert_eq!(record.sequence_of(LogPosition(6)), Some(9));
    }
}
