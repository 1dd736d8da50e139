//! Errors of the state layer.
//!
//! Every variant names the store involved, and where it applies the task, the path on
//! disk and the changelog topic, partition and offset, so that a log line is enough to
//! find the files or records concerned. [`StateError`] converts into
//! [`StreamsError::State`](crate::error::StreamsError::State), keeping its full text.

use std::path::PathBuf;

use kafka_client::serde::{BoxError, SerdeError};

use crate::error::StreamsError;

/// The result type of the state layer.
pub type StateResult<T> = std::result::Result<T, StateError>;

/// An error of a state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// RocksDB failed (open, read, write, flush).
    #[error("RocksDB failed while {operation} store {store} of task {task} at {}: {source}", .path.display())]
    RocksDb {
        /// Store name.
        store: String,
        /// Task id, `<sub-topology>_<partition>`.
        task: String,
        /// Directory of the store.
        path: PathBuf,
        /// What was being done ("opening", "writing", "reading the checkpoint").
        operation: &'static str,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
    /// A file-system operation on the state directory failed.
    #[error("I/O error while {operation} {} (store {store}): {source}", .path.display())]
    Io {
        /// Store name (or `*` for a file shared by the stores of a task).
        store: String,
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("creating the directory", "renaming the checkpoint").
        operation: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A checkpoint (file or RocksDB metadata) could not be parsed.
    #[error("corrupt checkpoint of store {store} at {}: {reason}", .path.display())]
    CorruptCheckpoint {
        /// Store name (or `*` for a task's checkpoint file).
        store: String,
        /// The checkpoint file, or the store directory for RocksDB metadata.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A key or value could not be turned into bytes or back.
    #[error(
        "store {store}: failed to {direction} the {field} (changelog topic {topic}): {source}"
    )]
    Serde {
        /// Store name.
        store: String,
        /// The changelog topic name used as the serde's topic.
        topic: String,
        /// `key` or `value`.
        field: &'static str,
        /// `serialize` or `deserialize`.
        direction: &'static str,
        /// The serde's error (boxed to keep the error small).
        source: Box<SerdeError>,
    },
    /// A serializer returned null for a key, or for a value being put.
    #[error(
        "store {store}: the serializer returned null for a {field}; use delete() to remove a key"
    )]
    NullBytes {
        /// Store name.
        store: String,
        /// `key` or `value`.
        field: &'static str,
    },
    /// The changelog writer refused a record.
    #[error(
        "store {store}: failed to send to changelog topic {topic} partition {partition}: {source}"
    )]
    Changelog {
        /// Store name.
        store: String,
        /// Changelog topic.
        topic: String,
        /// Changelog partition.
        partition: i32,
        /// The writer's error.
        source: BoxError,
    },
    /// A restore batch went backwards or named the wrong changelog position.
    #[error("store {store}: invalid restore of changelog topic {topic} partition {partition} at offset {offset}: {reason}")]
    Restore {
        /// Store name.
        store: String,
        /// Changelog topic.
        topic: String,
        /// Changelog partition.
        partition: i32,
        /// Offset of the offending record.
        offset: i64,
        /// What is wrong.
        reason: String,
    },
    /// The store was used before `init`, or after `close`.
    #[error("store {store} is {state}")]
    NotOpen {
        /// Store name.
        store: String,
        /// `not initialized` or `closed`.
        state: &'static str,
    },
    /// The store is being restored or has moved to another instance; query again later.
    #[error("store {store} is not queryable now: {reason}")]
    NotQueryable {
        /// Store name.
        store: String,
        /// Why (`restoring`, `migrating`).
        reason: String,
    },
    /// The store's configuration is invalid.
    #[error("store {store}: invalid configuration: {reason}")]
    Config {
        /// Store name.
        store: String,
        /// What is wrong.
        reason: String,
    },
}

impl StateError {
    /// The name of the store involved.
    pub fn store(&self) -> &str {
        match self {
            StateError::RocksDb { store, .. }
            | StateError::Io { store, .. }
            | StateError::CorruptCheckpoint { store, .. }
            | StateError::Serde { store, .. }
            | StateError::NullBytes { store, .. }
            | StateError::Changelog { store, .. }
            | StateError::Restore { store, .. }
            | StateError::NotOpen { store, .. }
            | StateError::NotQueryable { store, .. }
            | StateError::Config { store, .. } => store,
        }
    }

    /// Whether the error means the store's files are damaged, so that the store must be
    /// wiped and restored from the beginning of its changelog.
    pub fn is_corruption(&self) -> bool {
        match self {
            StateError::CorruptCheckpoint { .. } => true,
            StateError::RocksDb { source, .. } => source.kind() == rocksdb::ErrorKind::Corruption,
            _ => false,
        }
    }
}

impl From<StateError> for StreamsError {
    fn from(err: StateError) -> Self {
        StreamsError::State {
            store: err.store().to_owned(),
            reason: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_into_streams_error_keeping_store_and_details() {
        let err = StateError::Restore {
            store: "counts".into(),
            topic: "app-counts-changelog".into(),
            partition: 2,
            offset: 17,
            reason: "offset went backwards".into(),
        };
        assert_eq!(err.store(), "counts");
        assert!(!err.is_corruption());
        let streams: StreamsError = err.into();
        match &streams {
            StreamsError::State { store, reason } => {
                assert_eq!(store, "counts");
                assert!(
                    reason.contains("app-counts-changelog partition 2"),
                    "{reason}"
                );
                assert!(reason.contains("offset 17"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn error_stays_small() {
        assert!(std::mem::size_of::<StateError>() <= 128);
    }

    #[test]
    fn corrupt_checkpoint_is_corruption() {
        let err = StateError::CorruptCheckpoint {
            store: "s".into(),
            path: PathBuf::from("/tmp/x/.checkpoint"),
            reason: "bad line".into(),
        };
        assert!(err.is_corruption());
        assert!(err.to_string().contains("/tmp/x/.checkpoint"));
    }
}
