//! [`ClusterError`]: everything that can go wrong between antrean and NATS JetStream, typed so the layers above can
//! decide: a fenced append deposes the writer, an unavailable cluster is retried, a refusal is reported.

use super::batch::BatchError;

/// The result of a cluster operation.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// An error talking to NATS JetStream.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Could not connect to any of the configured NATS servers, or the connection options are unusable.
    #[error("cannot connect to NATS: {detail}")]
    Connect {
        /// What the client said.
        detail: String,
    },
    /// The server is older than 2.11, which does not enforce `Nats-Expected-Last-Subject-Sequence` against racing
    /// writers on a replicated stream (it checks only what the leader has stored; fixed by nats-server PR #6194) and
    /// ignores newer headers and settings silently.
    #[error("nats-server {version} is too old: antrean needs 2.11 or later, whose streams refuse racing writers")]
    ServerTooOld {
        /// The version the server announced.
        version: String,
    },
    /// The append was refused because the office's subject has moved on since the writer last appended (JetStream
    /// error 10071, or 10164 from a leader with the other append still in flight): another writer took the office. The writer is deposed and must stop serving the office.
    #[error("append to office {office} fenced: its log no longer ends at subject sequence {expected}")]
    Fenced {
        /// The office.
        office: String,
        /// The last subject sequence the writer expected.
        expected: u64,
    },
    /// The office's lease is held by another node, or was lost since it was taken (its revision moved on or it
    /// expired): the holder is deposed.
    #[error("lease on office {office} is not ours: {detail}")]
    LeaseLost {
        /// The office.
        office: String,
        /// What was found.
        detail: String,
    },
    /// No answer in time, no responders (a stream electing a leader, a server down), or a lost connection. The outcome
    /// of an append is then unknown: retry with the same message id, which JetStream stores at most once.
    #[error("NATS JetStream unavailable: {detail}")]
    Unavailable {
        /// What happened.
        detail: String,
    },
    /// JetStream refused the request with an error code other than a fence (a batch over the stream's size limit,
    /// a configuration conflict, ...).
    #[error("NATS JetStream refused: {description} (error code {code})")]
    Refused {
        /// The JetStream error code, as in nats-server's errors.json.
        code: u64,
        /// The server's description.
        description: String,
    },
    /// A batch larger than the streams accept (`LogOptions::batch_bytes_max`); nothing was sent.
    #[error("log batch of {bytes} bytes exceeds the {bytes_max}-byte limit")]
    BatchTooLarge {
        /// The encoded batch's size.
        bytes: u64,
        /// The limit.
        bytes_max: u32,
    },
    /// A message of an office's log is not a valid batch, or its positions do not follow the previous batch's.
    #[error("office {office} log at stream sequence {stream_sequence}: {source}")]
    Corrupt {
        /// The office.
        office: String,
        /// The stream sequence of the bad message.
        stream_sequence: u64,
        /// What is wrong.
        source: BatchError,
    },
    /// An office's log, read back after a snapshot (or from its start), does not continue it: it was purged below the
    /// replay's start or a batch is missing. The take-over tries an older snapshot.
    #[error("office {office} log: {source}")]
    Gap {
        /// The office.
        office: String,
        /// Where the hole is.
        source: super::continuity::Gap,
    },
    /// Any other client error (stream or bucket management, decoding a server answer).
    #[error("NATS JetStream: {detail}")]
    Other {
        /// What the client said.
        detail: String,
    },
}

impl ClusterError {
    /// Whether trying the same operation again later may succeed (the cluster was unavailable, not refusing).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, ClusterError::Unavailable { .. })
    }

    /// Any client error, by its message.
    pub(crate) fn other(error: impl std::fmt::Display) -> ClusterError {
        ClusterError::Other { detail: error.to_string() }
    }
}
