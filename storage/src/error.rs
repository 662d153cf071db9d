//! Errors of the storage crate.

use std::io;

/// A stored record could not be decoded: the bytes on disk are not what this code wrote.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot decode {what}: {reason}")]
pub struct DecodeError {
    /// Which record type was being decoded.
    pub what: &'static str,
    /// What was wrong with the bytes.
    pub reason: String,
}

impl DecodeError {
    /// A decode failure of record `what`.
    pub fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self { what, reason: reason.into() }
    }
}

/// Everything that can go wrong below the Raft layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB failed (I/O error, corruption it detected, or a closed database).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A record on disk does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The store's invariants do not hold for what is on disk.
    #[error("corrupt store: {what}: {reason}")]
    Corruption {
        /// The structure that is inconsistent.
        what: &'static str,
        /// What was found.
        reason: String,
    },
    /// File I/O outside RocksDB (snapshots).
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The data directory holds a format this build does not read (or an unreadable `FORMAT`).
    #[error("data directory {dir}: {reason}")]
    Format {
        /// The data directory.
        dir: String,
        /// What was found, and what to do.
        reason: String,
    },
    /// A storage thread has stopped; the node is shutting down or a write failed before.
    #[error("storage writer stopped")]
    Closed,
}

impl StorageError {
    /// Whether the error says stored bytes are damaged (a failed checksum or a record that does
    /// not decode, in the segment log or in RocksDB), as opposed to a failure to read them.
    pub fn is_corruption(&self) -> bool {
        match self {
            StorageError::Corruption { .. } | StorageError::Decode(_) => true,
            StorageError::Rocks(e) => e.kind() == rocksdb::ErrorKind::Corruption,
            _ => false,
        }
    }
}

impl From<StorageError> for io::Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Io(e) => e,
            StorageError::Decode(e) => io::Error::new(io::ErrorKind::InvalidData, e),
            other => io::Error::other(other),
        }
    }
}

/// Result of storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
