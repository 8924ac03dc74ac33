//! Errors of the engine layer: start-up failures and a failed log. Business refusals are not errors: they are
//! [`crate::domain::Rejection`] values.

use std::path::PathBuf;

/// What can go wrong below the domain.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The log or a snapshot could not be read or written.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// A log record or snapshot did not decode.
    #[error(transparent)]
    Decode(#[from] super::codec::DecodeError),
    /// A snapshot image could not be loaded.
    #[error(transparent)]
    Image(#[from] crate::domain::ImageError),
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Recovered state breaks an invariant: the log and the code disagree.
    #[error("recovered state violates an invariant: {violation}")]
    Invariant {
        /// The violation.
        violation: String,
    },
    /// Cluster mode: NATS JetStream could not be reached, or refused the partition's log or lease.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// The engine's result type.
pub type Result<T> = std::result::Result<T, EngineError>;
