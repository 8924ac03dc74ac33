//! [`OfficeLog`]: each office's log on a JetStream subject. Appends one batch per message with its fence, reads the
//! last batch and replays the subject in order.
//!
//! Owns the log streams (created on first use) and the binding of each office's subject to its stream. It must not
//! decide who may write: the caller passes the fence (the subject sequence it last saw) and the epoch from its lease.
//! Reads go to the stream leader (`STREAM.MSG.GET`), never a direct get, which a lagging replica may answer.

use super::batch::{self, BatchHeader, DecodedBatch};
use super::connect::NatsConnection;
use super::error::{ClusterError, Result};
use super::options::LogOptions;
use super::placement::{log_subject, stream_index, stream_name};
use super::refusal::classify_publish;
use crate::domain::OfficeId;
use crate::storage::LogPosition;
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, LastRawMessageErrorKind, PurgeErrorKind, RetentionPolicy, StorageType,
};
use async_nats::jetstream::{self, ErrorCode};

/// Stream configuration changes (binding a new office's subject) tried before giving up: concurrent binders on other
/// nodes can overwrite each other's change, which the next round sees and repairs.
const BIND_ATTEMPTS_MAX: u32 = 10;
/// How often, and how many times, to look for a new stream's leader before calling the cluster unavailable.
const LEADER_WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(50);
const LEADER_WAIT_POLLS_MAX: u32 = 200;

/// What JetStream said about a stored batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The stream sequence of the batch's message: the fence for the office's next append.
    pub stream_sequence: u64,
    /// True when JetStream had already stored a message with this id (a retry of an append that had succeeded).
    pub duplicate: bool,
}

/// One batch of an office's log, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayedBatch {
    /// Its stream sequence.
    pub stream_sequence: u64,
    /// Its header and records.
    pub batch: DecodedBatch,
}

/// The last batch of an office's log, or where an empty log starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogEnd {
    /// Stream sequence of the office's last message, 0 when it has none: the fence for the next append.
    pub last_subject_sequence: u64,
    /// The last batch's header, `None` for an empty log.
    pub last_batch: Option<BatchHeader>,
}

impl LogEnd {
    /// The position the next record will take.
    #[must_use]
    pub fn next_position(&self) -> LogPosition {
        self.last_batch.map_or(LogPosition(1), |header| LogPosition(header.last_position().0 + 1))
    }
}

/// The office logs of one cluster, over one NATS connection.
#[derive(Clone, Debug)]
pub struct OfficeLog {
    jetstream: jetstream::Context,
    options: LogOptions,
}

impl OfficeLog {
    /// The office logs reached through `connection`, laid out per `options`.
    #[must_use]
    pub fn new(connection: &NatsConnection, options: LogOptions) -> OfficeLog {
        OfficeLog { jetstream: connection.jetstream.clone(), options }
    }

    /// The layout in use.
    #[must_use]
    pub fn options(&self) -> &LogOptions {
        &self.options
    }

    /// Creates the office's stream if it is missing and binds the office's subject to it, then waits for the stream
    /// to have a leader. Idempotent; call it before the first append to an office.
    ///
    /// A stream's subject list is replaced whole by an update, so two nodes binding different offices at the same
    /// moment can undo each other's binding. Each binder reads the list again until its subject is in it; an office
    /// whose binding another node undid later gets "no responders" ([`ClusterError::Unavailable`]) on append, and
    /// binding it again repairs it. Unbinding never deletes stored messages.
    pub async fn ensure_office(&self, office: &OfficeId) -> Result<()> {
        let name = stream_name(stream_index(office, self.options.stream_count));
        let subject = log_subject(office);
        for _ in 0..BIND_ATTEMPTS_MAX {
            let subjects = match self.jetstream.get_stream(&name).await {
                Ok(mut stream) => {
                    let info =
                        stream.info().await.map_err(|error| ClusterError::Unavailable { detail: error.to_string() })?;
                    info.config.subjects.clone()
                }
                Err(error) if is_code(&error, ErrorCode::STREAM_NOT_FOUND) => {
                    match self.jetstream.create_stream(self.stream_config(&name, vec![subject.clone()])).await {
                        Ok(_) => return self.wait_for_leader(&name).await,
                        // Another node created it first: read what it made on the next round.
                        Err(error) if is_code(&error, ErrorCode::STREAM_NAME_EXIST) => continue,
                        Err(error) => return Err(unavailable_or_other(&error)),
                    }
                }
                Err(error) => return Err(unavailable_or_other(&error)),
            };
            if subjects.contains(&subject) {
                return self.wait_for_leader(&name).await;
            }
            let mut bound = subjects;
            bound.push(subject.clone());
            bound.sort();
            self.jetstream
                .update_stream(self.stream_config(&name, bound))
                .await
                .map_err(|error| unavailable_or_other(&error))?;
        }
        Err(ClusterError::Unavailable { detail: format!("could not bind {subject} to stream {name}") })
    }

    /// Appends one batch to `office`'s log, fenced: JetStream stores it only if the office's last message is still at
    /// stream sequence `expected_last_subject_sequence` (0: the office has none). Its id is
    /// [`batch::message_id`], so sending the same batch again after an unknown outcome stores it once.
    ///
    /// Errors: [`ClusterError::Fenced`] when another writer appended since (this writer is deposed),
    /// [`ClusterError::Unavailable`] when the outcome is unknown (retry the same batch with the same fence),
    /// [`ClusterError::BatchTooLarge`], or another refusal by code.
    pub async fn append(
        &self,
        office: &OfficeId,
        epoch: u64,
        first_position: LogPosition,
        payloads: &[Vec<u8>],
        expected_last_subject_sequence: u64,
    ) -> Result<Appended> {
        let body = batch::encode_batch(epoch, first_position, payloads);
        let bytes_max = self.options.batch_bytes_max;
        if body.len() > bytes_max as usize {
            return Err(ClusterError::BatchTooLarge { bytes: body.len() as u64, bytes_max });
        }
        let publish = PublishMessage::build()
            .payload(body.into())
            .message_id(batch::message_id(office.as_str(), epoch, first_position))
            .expected_last_subject_sequence(expected_last_subject_sequence);
        let classify = |error: &_| classify_publish(error, office.as_str(), expected_last_subject_sequence);
        let ack = self.jetstream.send_publish(log_subject(office), publish).await.map_err(|error| classify(&error))?;
        let ack = ack.await.map_err(|error| classify(&error))?;
        Ok(Appended { stream_sequence: ack.sequence, duplicate: ack.duplicate })
    }

    /// Where `office`'s log ends, read from the stream leader.
    pub async fn end(&self, office: &OfficeId) -> Result<LogEnd> {
        let stream = self.stream(office).await?;
        match stream.get_last_raw_message_by_subject(&log_subject(office)).await {
            Ok(message) => {
                let header = batch::decode_batch_header(&message.payload).map_err(|source| ClusterError::Corrupt {
                    office: office.to_string(),
                    stream_sequence: message.sequence,
                    source,
                })?;
                Ok(LogEnd { last_subject_sequence: message.sequence, last_batch: Some(header) })
            }
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => {
                Ok(LogEnd { last_subject_sequence: 0, last_batch: None })
            }
            Err(error) => Err(unavailable_or_other(&error)),
        }
    }

    /// Reads `office`'s batches stored after stream sequence `after_stream_sequence` (0: from the start), in order,
    /// up to the end the leader reports when the replay starts. Checks that positions follow on from batch to batch.
    ///
    /// One leader request per batch (`next_by_subject`): simple and consistent, about a millisecond a batch on
    /// loopback; a snapshot in the object store is what keeps a take-over's replay short (`partition.rs`).
    pub async fn replay(&self, office: &OfficeId, after_stream_sequence: u64) -> Result<Vec<ReplayedBatch>> {
        let end = self.end(office).await?;
        let stream = self.stream(office).await?;
        let subject = log_subject(office);
        let mut batches: Vec<ReplayedBatch> = Vec::new();
        let mut next_sequence = after_stream_sequence + 1;
        while next_sequence <= end.last_subject_sequence {
            let message = stream
                .raw_message_builder()
                .sequence(next_sequence)
                .next_by_subject(subject.clone())
                .send()
                .await
                .map_err(|error| unavailable_or_other(&error))?;
            let corrupt = |source| ClusterError::Corrupt {
                office: office.to_string(),
                stream_sequence: message.sequence,
                source,
            };
            let decoded = batch::decode_batch(&message.payload).map_err(corrupt)?;
            if let Some(previous) = batches.last() {
                let due = previous.batch.header.last_position().0 + 1;
                if decoded.header.first_position.0 != due {
                    return Err(corrupt(batch::BatchError {
                        detail: format!(
                            "batch starts at position {} where {due} was due",
                            decoded.header.first_position.0
                        ),
                    }));
                }
            }
            next_sequence = message.sequence + 1;
            batches.push(ReplayedBatch { stream_sequence: message.sequence, batch: decoded });
        }
        Ok(batches)
    }

    /// Purges `office`'s messages at stream sequences below `below` (the message at `below` stays), the other offices'
    /// messages in the stream untouched; returns how many were purged. The caller must know that no replay it would
    /// ever do starts below `below` (a kept snapshot covers them).
    pub async fn purge_below(&self, office: &OfficeId, below: u64) -> Result<u64> {
        let stream = self.stream(office).await?;
        match stream.purge().filter(log_subject(office)).sequence(below).await {
            Ok(purged) => Ok(purged.purged),
            Err(error) => match error.kind() {
                PurgeErrorKind::JetStream(server) => {
                    Err(ClusterError::Refused { code: server.error_code().0, description: server.to_string() })
                }
                _ => Err(ClusterError::Unavailable { detail: format!("purge: {error}") }),
            },
        }
    }

    /// Waits (a bounded time) until the stream has a leader, so the first append to a new stream is not lost to "no
    /// responders" while its replicas elect one.
    async fn wait_for_leader(&self, name: &str) -> Result<()> {
        for _ in 0..LEADER_WAIT_POLLS_MAX {
            let info = match self.jetstream.get_stream(name).await {
                Ok(mut stream) => stream.info().await.ok().cloned(),
                Err(_) => None,
            };
            if info.and_then(|info| info.cluster).and_then(|cluster| cluster.leader).is_some() {
                return Ok(());
            }
            tokio::time::sleep(LEADER_WAIT_POLL).await;
        }
        Err(ClusterError::Unavailable { detail: format!("stream {name} has no leader") })
    }

    async fn stream(&self, office: &OfficeId) -> Result<jetstream::stream::Stream> {
        let name = stream_name(stream_index(office, self.options.stream_count));
        self.jetstream.get_stream(&name).await.map_err(|error| unavailable_or_other(&error))
    }

    fn stream_config(&self, name: &str, subjects: Vec<String>) -> StreamConfig {
        StreamConfig {
            name: name.to_owned(),
            subjects,
            storage: StorageType::File,
            num_replicas: self.options.replicas,
            retention: RetentionPolicy::Limits,
            // A log never drops what it acknowledged to make room: a full stream refuses new appends instead.
            discard: DiscardPolicy::New,
            max_message_size: i32::try_from(self.options.batch_bytes_max).unwrap_or(i32::MAX),
            duplicate_window: self.options.duplicate_window,
            deny_delete: true,
            ..StreamConfig::default()
        }
    }
}

/// The JetStream refusal inside a client error kind that can carry one.
trait ServerRefusal {
    /// The server's error, when the server refused (rather than not answering).
    fn refusal(&self) -> Option<jetstream::Error>;
}

impl ServerRefusal for async_nats::error::Error<GetStreamErrorKind> {
    fn refusal(&self) -> Option<jetstream::Error> {
        match self.kind() {
            GetStreamErrorKind::JetStream(server) => Some(server),
            _ => None,
        }
    }
}

impl ServerRefusal for async_nats::error::Error<CreateStreamErrorKind> {
    fn refusal(&self) -> Option<jetstream::Error> {
        match self.kind() {
            CreateStreamErrorKind::JetStream(server) => Some(server),
            _ => None,
        }
    }
}

impl ServerRefusal for async_nats::error::Error<LastRawMessageErrorKind> {
    fn refusal(&self) -> Option<jetstream::Error> {
        match self.kind() {
            LastRawMessageErrorKind::JetStream(server) => Some(server),
            _ => None,
        }
    }
}

/// Whether a client error is the server refusing with `code`.
fn is_code(error: &impl ServerRefusal, code: ErrorCode) -> bool {
    error.refusal().is_some_and(|server| server.error_code() == code)
}

/// A client error that carries no server refusal is the cluster not answering; one that does is reported as such.
fn unavailable_or_other<E: ServerRefusal + std::fmt::Display>(error: &E) -> ClusterError {
    match error.refusal() {
        Some(server) => ClusterError::Refused { code: server.error_code().0, description: server.to_string() },
        None => ClusterError::Unavailable { detail: error.to_string() },
    }
}
