//! The storage layer's one error type.
//!
//! Owns every way the log and snapshot files can fail: I/O, corruption, files from another format version, invalid
//! options, and the fatal "log failed" state. It must not know about the domain or about gRPC status codes; the layers
//! above map these variants to their own errors.

use std::path::{Path, PathBuf};

/// Result alias used throughout the storage layer.
pub type Result<T> = std::result::Result<T, StorageError>;

/// Everything that can go wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system call on a file or directory failed.
    #[error("{operation} failed on {path}: {source}")]
    Io {
        /// What was being attempted, e.g. "open", "read", "rename".
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The log writer hit a write or fsync error and stopped. This is fatal: the log accepts no more records and the
    /// process must restart and recover from disk.
    #[error("log failed during {operation} of {segment}: {detail}; the log accepts no more records")]
    LogFailed {
        /// The failed step: "write", "fsync" or "roll".
        operation: &'static str,
        /// The segment file being written.
        segment: PathBuf,
        /// The operating-system error text.
        detail: String,
    },

    /// The data directory lets other users read, write or enter it; it holds full NIKs and names in plain text.
    #[error(
        "data directory {path} is open to other users (mode {mode:o}) and holds personal data: run `chmod 700 {path}` \
         (or give the data directory to the server's user alone)"
    )]
    NotPrivate {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The log was closed before this record was made durable.
    #[error("log is closed")]
    LogClosed,

    /// A log segment holds bytes that are not a valid record where one is required.
    #[error("corrupt log in {segment} at byte offset {offset}: {detail}")]
    CorruptLog {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the first bad byte within the segment file.
        offset: u64,
        /// What is wrong.
        detail: String,
    },

    /// A segment file does not start with the segment magic.
    #[error("{segment} is not an antrean log segment (bad magic)")]
    NotASegment {
        /// The offending file.
        segment: PathBuf,
    },

    /// A segment was written by a build with a different format version.
    #[error("segment {segment} has format version {version}; this build reads {supported}")]
    UnsupportedSegmentVersion {
        /// The offending file.
        segment: PathBuf,
        /// Version found in the header.
        version: u16,
        /// Version this build reads.
        supported: u16,
    },

    /// The newest snapshot covers records the log no longer has, or the log starts after the snapshot ends.
    #[error("log does not continue snapshot at position {snapshot_position}: {detail}")]
    LogSnapshotMismatch {
        /// Position the snapshot covers up to.
        snapshot_position: u64,
        /// What is missing.
        detail: String,
    },

    /// A snapshot file fails its checks.
    #[error("corrupt snapshot {path}: {detail}")]
    CorruptSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// A snapshot was written by a build with a different format version.
    #[error("snapshot {path} has format version {version}; this build reads {supported}")]
    UnsupportedSnapshotVersion {
        /// The offending file.
        path: PathBuf,
        /// Version found in the header.
        version: u16,
        /// Version this build reads.
        supported: u16,
    },

    /// An option is out of range.
    #[error("invalid storage option {field}: {reason}")]
    InvalidOptions {
        /// The option's field name.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
}

impl StorageError {
    /// Builds an [`StorageError::Io`] for `operation` on `path`.
    pub fn io(operation: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io { operation, path: path.into(), source }
    }
}

/// A `map_err` adapter: `file.sync_all().map_err(io_error("fsync", &path))`.
pub(crate) fn io_error<'a>(
    operation: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::io(operation, path, source)
}
