//! The change-logging decorator: every write also goes to the store's changelog topic.
//!
//! Records leave only through the [`ChangelogWriter`] trait; the runtime implements it
//! over its record collector (the producer of the task, so changelog records share the
//! task's transaction under exactly-once), and the test driver with an in-memory list.
//! Deletes are sent as tombstones (null values), so that compaction removes the key
//! from the changelog too (the witness-protection case).
//!
//! The writer is expected to stamp each record with the timestamp of the input record
//! being processed, as Kafka does; the state layer knows nothing of records. A
//! timestamped store's records are the exception, as in Kafka's
//! `ChangeLoggingTimestampedKeyValueBytesStore`: their value is logged without its
//! 8-byte timestamp, which becomes the record's timestamp
//! ([`ChangelogWriter::send_with_timestamp`]); restoring puts it back in front.

use std::ops::Bound;
use std::sync::{Arc, Mutex};

use kafka_client::serde::BoxError;

use super::error::{StateError, StateResult};
use super::key_value::{BatchEntry, KeyValueIter, KeyValueStore, ReadOnlyKeyValueStore};
use super::restorable::{ChangelogPartition, RestorableStore, RestoreRecord};

/// Where changelog records go (the runtime's record collector).
pub trait ChangelogWriter: Send + Sync {
    /// Sends one changelog record; `value` `None` is a tombstone.
    ///
    /// It may only enqueue the record: the commit path flushes the producer after the
    /// stores, before committing offsets.
    fn send(
        &self,
        topic: &str,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), BoxError>;

    /// Sends one changelog record stamped with `timestamp` (a timestamped store's row
    /// timestamp) instead of the input record's. Writers that cannot stamp records
    /// send it as [`send`](Self::send) does.
    fn send_with_timestamp(
        &self,
        topic: &str,
        partition: i32,
        key: &[u8],
        value: &[u8],
        timestamp: i64,
    ) -> Result<(), BoxError> {
        let _ = timestamp;
        self.send(topic, partition, key, Some(value))
    }
}

/// A changelog record as kept by [`RecordingChangelogWriter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoggedRecord {
    /// Changelog topic.
    pub topic: String,
    /// Changelog partition.
    pub partition: i32,
    /// Key.
    pub key: Vec<u8>,
    /// Value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// The record's timestamp when the store gives one (a timestamped store's row
    /// timestamp); `None`: the input record's.
    pub timestamp: Option<i64>,
}

/// A [`ChangelogWriter`] that keeps every record in memory, for tests and the test
/// driver. Clones share the same list.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordingChangelogWriter {
    records: Arc<Mutex<Vec<LoggedRecord>>>,
}

impl RecordingChangelogWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, record: LoggedRecord) {
        match self.records.lock() {
            Ok(mut records) => records.push(record),
            Err(poisoned) => poisoned.into_inner().push(record),
        }
    }

    /// Removes and returns the records sent so far.
    pub fn take(&self) -> Vec<LoggedRecord> {
        match self.records.lock() {
            Ok(mut records) => std::mem::take(&mut *records),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

impl ChangelogWriter for RecordingChangelogWriter {
    fn send(
        &self,
        topic: &str,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), BoxError> {
        self.push(LoggedRecord {
            topic: topic.to_owned(),
            partition,
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
            timestamp: None,
        });
        Ok(())
    }

    fn send_with_timestamp(
        &self,
        topic: &str,
        partition: i32,
        key: &[u8],
        value: &[u8],
        timestamp: i64,
    ) -> Result<(), BoxError> {
        self.push(LoggedRecord {
            topic: topic.to_owned(),
            partition,
            key: key.to_vec(),
            value: Some(value.to_vec()),
            timestamp: Some(timestamp),
        });
        Ok(())
    }
}

/// Logs every write of the inner store to its changelog partition (Kafka's
/// `ChangeLoggingKeyValueBytesStore`). Restoring goes to the inner store unlogged.
pub(crate) struct ChangeLoggingStore {
    inner: Box<dyn KeyValueStore>,
    changelog: ChangelogPartition,
    writer: Arc<dyn ChangelogWriter>,
    /// Whether values are `ValueAndTimestamp` bytes, logged as the plain value
    /// stamped with the row's timestamp.
    timestamped: bool,
}

impl ChangeLoggingStore {
    /// Wraps `inner`, logging to `changelog` through `writer`.
    pub fn new(
        inner: Box<dyn KeyValueStore>,
        changelog: ChangelogPartition,
        writer: Arc<dyn ChangelogWriter>,
    ) -> Self {
        ChangeLoggingStore {
            inner,
            changelog,
            writer,
            timestamped: false,
        }
    }

    /// The store's values are `ValueAndTimestamp` bytes (Kafka's
    /// `ChangeLoggingTimestampedKeyValueBytesStore`).
    pub fn timestamped(mut self) -> Self {
        self.timestamped = true;
        self
    }

    fn log(&self, key: &[u8], value: Option<&[u8]>) -> StateResult<()> {
        let (topic, partition) = (&self.changelog.topic, self.changelog.partition);
        let stamped = match value {
            Some(value) if self.timestamped => value.split_first_chunk::<8>(),
            _ => None,
        };
        match stamped {
            Some((timestamp, raw)) => self.writer.send_with_timestamp(
                topic,
                partition,
                key,
                raw,
                i64::from_be_bytes(*timestamp),
            ),
            None => self.writer.send(topic, partition, key, value),
        }
        .map_err(|source| StateError::Changelog {
            store: self.inner.name().to_owned(),
            topic: self.changelog.topic.clone(),
            partition: self.changelog.partition,
            source,
        })
    }
}

impl ReadOnlyKeyValueStore for ChangeLoggingStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.inner.get(key)
    }

    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> StateResult<KeyValueIter<'_>> {
        self.inner.range(from, to)
    }

    fn approximate_num_entries(&self) -> StateResult<u64> {
        self.inner.approximate_num_entries()
    }
}

impl KeyValueStore for ChangeLoggingStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> StateResult<()> {
        self.inner.put(key, value)?;
        self.log(key, Some(value))
    }

    fn delete(&mut self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        let old = self.inner.delete(key)?;
        self.log(key, None)?;
        Ok(old)
    }

    fn put_all(&mut self, entries: &[BatchEntry]) -> StateResult<()> {
        self.inner.put_all(entries)?;
        for (key, value) in entries {
            self.log(key, value.as_deref())?;
        }
        Ok(())
    }

    fn flush(&mut self) -> StateResult<()> {
        self.inner.flush()
    }

    fn close(&mut self) -> StateResult<()> {
        self.inner.close()
    }

    fn persistent(&self) -> bool {
        self.inner.persistent()
    }
}

impl RestorableStore for ChangeLoggingStore {
    fn changelog(&self) -> Option<&ChangelogPartition> {
        Some(&self.changelog)
    }

    fn checkpointed_offset(&self) -> Option<i64> {
        self.inner.checkpointed_offset()
    }

    fn restore_batch(&mut self, records: &[RestoreRecord<'_>]) -> StateResult<()> {
        self.inner.restore_batch(records)
    }

    fn checkpoint(&mut self, next_offset: i64) -> StateResult<()> {
        self.inner.checkpoint(next_offset)
    }

    fn remove_checkpoint(&mut self) -> StateResult<()> {
        self.inner.remove_checkpoint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::InMemoryStore;

    struct FailingWriter;
    impl ChangelogWriter for FailingWriter {
        fn send(&self, _: &str, _: i32, _: &[u8], _: Option<&[u8]>) -> Result<(), BoxError> {
            Err("producer fenced".into())
        }
    }

    fn changelog() -> ChangelogPartition {
        ChangelogPartition {
            topic: "app-s-changelog".into(),
            partition: 4,
        }
    }

    #[test]
    fn writes_are_logged_and_deletes_are_tombstones_but_restores_are_not() {
        let writer = RecordingChangelogWriter::new();
        let mut store = ChangeLoggingStore::new(
            Box::new(InMemoryStore::new("s")),
            changelog(),
            Arc::new(writer.clone()),
        );
        store.put(b"k", b"v").unwrap();
        assert_eq!(store.delete(b"k").unwrap(), Some(b"v".to_vec()));
        store
            .put_all(&[(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)])
            .unwrap();
        store
            .restore_batch(&[RestoreRecord {
                key: b"r",
                value: Some(b"x"),
                offset: 9,
                timestamp: -1,
            }])
            .unwrap();
        let logged = writer.take();
        let summary: Vec<_> = logged
            .iter()
            .map(|r| (r.key.clone(), r.value.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (b"k".to_vec(), Some(b"v".to_vec())),
                (b"k".to_vec(), None),
                (b"a".to_vec(), Some(b"1".to_vec())),
                (b"b".to_vec(), None),
            ]
        );
        assert!(logged
            .iter()
            .all(|r| r.topic == "app-s-changelog" && r.partition == 4));
        assert_eq!(store.get(b"r").unwrap(), Some(b"x".to_vec()));
        assert_eq!(store.checkpointed_offset(), Some(10));
    }

    #[test]
    fn timestamped_values_are_logged_plain_with_the_row_timestamp() {
        let writer = RecordingChangelogWriter::new();
        let mut store = ChangeLoggingStore::new(
            Box::new(InMemoryStore::new("s")),
            changelog(),
            Arc::new(writer.clone()),
        )
        .timestamped();
        let mut stamped = 42i64.to_be_bytes().to_vec();
        stamped.extend_from_slice(b"v");
        store.put(b"k", &stamped).unwrap();
        store.delete(b"k").unwrap();
        // The store keeps the timestamp; the changelog has it as the record's.
        store.put(b"j", &stamped).unwrap();
        assert_eq!(store.get(b"j").unwrap(), Some(stamped.clone()));
        let logged: Vec<_> = writer
            .take()
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect();
        assert_eq!(
            logged,
            vec![
                (b"k".to_vec(), Some(b"v".to_vec()), Some(42)),
                (b"k".to_vec(), None, None),
                (b"j".to_vec(), Some(b"v".to_vec()), Some(42)),
            ]
        );
    }

    #[test]
    fn writer_failure_names_store_topic_and_partition() {
        let mut store = ChangeLoggingStore::new(
            Box::new(InMemoryStore::new("s")),
            changelog(),
            Arc::new(FailingWriter),
        );
        let err = store.put(b"k", b"v").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("store s"), "{text}");
        assert!(text.contains("app-s-changelog partition 4"), "{text}");
        assert!(text.contains("producer fenced"), "{text}");
    }
}
