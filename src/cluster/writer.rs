//! [`OfficeWriter`]: the one writer of an office's log, as its lease holder sees it. Keeps the fence (the stream
//! sequence of the office's last batch) and the next position, and stops for good once fenced.

use super::error::{ClusterError, Result};
use super::log::{Appended, OfficeLog};
use crate::domain::OfficeId;
use crate::storage::LogPosition;

/// What an append stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Position of the batch's first record.
    pub first_position: LogPosition,
    /// Position of its last record.
    pub last_position: LogPosition,
    /// Its stream sequence and whether JetStream had it already.
    pub appended: Appended,
}

/// Appends to one office's log under one epoch.
#[derive(Debug)]
pub struct OfficeWriter {
    log: OfficeLog,
    office: OfficeId,
    epoch: u64,
    fence: u64,
    next_position: LogPosition,
    deposed: bool,
}

impl OfficeWriter {
    /// Starts writing `office`'s log under `epoch` (the revision of the lease just taken): binds the office's subject
    /// and reads where its log ends from the stream leader. The caller replays the log before serving.
    pub async fn open(log: OfficeLog, office: OfficeId, epoch: u64) -> Result<OfficeWriter> {
        log.ensure_office(&office).await?;
        let end = log.end(&office).await?;
        if let Some(last) = end.last_batch
            && last.epoch > epoch
        {
            return Err(ClusterError::Fenced { office: office.to_string(), expected: end.last_subject_sequence });
        }
        Ok(OfficeWriter {
            log,
            office,
            epoch,
            fence: end.last_subject_sequence,
            next_position: end.next_position(),
            deposed: false,
        })
    }

    /// The office.
    #[must_use]
    pub fn office(&self) -> &OfficeId {
        &self.office
    }

    /// The epoch written into every batch.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The stream sequence the next append expects to be the office's last.
    #[must_use]
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// The position the next record takes.
    #[must_use]
    pub fn next_position(&self) -> LogPosition {
        self.next_position
    }

    /// Appends `payloads` as one batch at the next positions, fenced. On [`ClusterError::Unavailable`] nothing
    /// moves: calling again with the same payloads resends the same message id and fence, which stores the batch at
    /// most once. On [`ClusterError::Fenced`] the writer is deposed and refuses every later append without asking.
    pub async fn append(&mut self, payloads: &[Vec<u8>]) -> Result<Written> {
        if self.deposed {
            return Err(ClusterError::Fenced { office: self.office.to_string(), expected: self.fence });
        }
        let first_position = self.next_position;
        let result = self.log.append(&self.office, self.epoch, first_position, payloads, self.fence).await;
        let appended = match result {
            Ok(appended) => appended,
            Err(error) => {
                self.deposed |= matches!(error, ClusterError::Fenced { .. });
                return Err(error);
            }
        };
        let count = payloads.len() as u64;
        self.fence = appended.stream_sequence;
        self.next_position = LogPosition(first_position.0 + count);
        Ok(Written { first_position, last_position: LogPosition(first_position.0 + count - 1), appended })
    }
}
