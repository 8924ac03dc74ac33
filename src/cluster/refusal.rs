//! Turning what JetStream answers into [`ClusterError`] by error code, in one place.
//!
//! async-nats 0.50 maps only error 10071 to `PublishErrorKind::WrongLastSequence`; every other refusal arrives as
//! `Other` with the server's error inside (among them 10164, the leader's "wrong last sequence" for racing writers,
//! seen in `tests/cluster_log.rs`), and "no responders" while a stream elects a leader arrives as
//! `StreamNotFound`. So the code decides, never the client's kind alone.

use super::error::ClusterError;
use async_nats::jetstream;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};

/// JetStream error 10071: the subject's last sequence is not the one the append expected (the fence).
pub const WRONG_LAST_SEQUENCE: u64 = 10071;
/// JetStream error 10164, also "wrong last sequence": the stream leader refuses an append whose fence another append
/// still in flight (proposed, not yet applied) already moved (the check nats-server 2.11 added for racing writers).
pub const WRONG_LAST_SEQUENCE_IN_FLIGHT: u64 = 10164;
/// JetStream error 10008: the JetStream cluster is not available (no meta leader, not enough peers).
pub const CLUSTER_NOT_AVAILABLE: u64 = 10008;
/// JetStream error 10041: a general Raft failure (a proposal lost with a leader change).
pub const RAFT_GENERAL: u64 = 10041;

/// The error for a JetStream refusal with `code` of an append to `office` that expected `expected`.
#[must_use]
pub fn classify_refusal(code: u64, description: &str, office: &str, expected: u64) -> ClusterError {
    match code {
        WRONG_LAST_SEQUENCE | WRONG_LAST_SEQUENCE_IN_FLIGHT => {
            ClusterError::Fenced { office: office.to_owned(), expected }
        }
        CLUSTER_NOT_AVAILABLE | RAFT_GENERAL => {
            ClusterError::Unavailable { detail: format!("{description} (error code {code})") }
        }
        _ => ClusterError::Refused { code, description: description.to_owned() },
    }
}

/// The error for a failed publish of an append to `office` that expected `expected`.
pub fn classify_publish(error: &PublishError, office: &str, expected: u64) -> ClusterError {
    match error.kind() {
        PublishErrorKind::WrongLastSequence => ClusterError::Fenced { office: office.to_owned(), expected },
        PublishErrorKind::StreamNotFound => ClusterError::Unavailable {
            detail: format!("no stream answered for office {office}: a leader election, or its subject is not bound"),
        },
        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe | PublishErrorKind::MaxAckPending => {
            ClusterError::Unavailable { detail: error.to_string() }
        }
        PublishErrorKind::MaxPayloadExceeded | PublishErrorKind::WrongLastMessageId | PublishErrorKind::Other => {
            match jetstream_error(error) {
                Some(server) => classify_refusal(server.error_code().0, &server.to_string(), office, expected),
                None => ClusterError::other(error),
            }
        }
    }
}

/// The server's JetStream error behind a client error, when there is one.
pub fn jetstream_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a jetstream::Error> {
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        if let Some(server) = current.downcast_ref::<jetstream::Error>() {
            return Some(server);
        }
        cause = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_wrong_last_sequence_is_a_fence() {
        for code in [10071, 10164] {
            let fenced = classify_refusal(code, "wrong last sequence", "kanim-batam", 3);
            assert!(matches!(fenced, ClusterError::Fenced { ref office, expected: 3 } if office == "kanim-batam"));
        }
        let too_large = classify_refusal(10054, "message size exceeds maximum allowed", "kanim-batam", 3);
        assert!(matches!(too_large, ClusterError::Refused { code: 10054, .. }), "{too_large}");
        assert!(!too_large.is_retryable());
        let other = classify_refusal(10163, "some other refusal", "k", 1);
        assert!(matches!(other, ClusterError::Refused { code: 10163, .. }), "{other}");
    }

    #[test]
    fn a_cluster_without_quorum_is_worth_retrying() {
        for code in [CLUSTER_NOT_AVAILABLE, RAFT_GENERAL] {
            assert!(classify_refusal(code, "jetstream cluster not available", "k", 1).is_retryable());
        }
    }
}
