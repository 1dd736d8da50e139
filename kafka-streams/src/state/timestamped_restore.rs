//! Restoring a timestamped key-value store from its changelog, which holds plain
//! values.
//!
//! A [`TimestampedKeyValueStore`](super::TimestampedKeyValueStore) keeps Kafka's
//! `ValueAndTimestamp` bytes (the 8-byte timestamp, then the value); its changelog (its
//! own, or the input topic of a source table that reuses it) holds the plain value
//! with the row's timestamp as the record's. As Kafka's
//! `RecordConverters.rawValueToTimestampedValue`, each restored value gets its
//! record's timestamp in front.

use std::ops::Bound;

use super::cache::CacheFlushListener;
use super::error::StateResult;
use super::key_value::{BatchEntry, KeyValueIter, KeyValueStore, ReadOnlyKeyValueStore};
use super::restorable::{ChangelogPartition, RestorableStore, RestoreRecord};

/// Puts the record timestamp in front of every value restored into the inner store;
/// everything else goes to the inner store unchanged.
pub(crate) struct TimestampingRestoreStore {
    inner: Box<dyn KeyValueStore>,
}

impl TimestampingRestoreStore {
    /// Wraps `inner`, a store of timestamped values.
    pub fn new(inner: Box<dyn KeyValueStore>) -> Self {
        TimestampingRestoreStore { inner }
    }
}

impl ReadOnlyKeyValueStore for TimestampingRestoreStore {
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

impl KeyValueStore for TimestampingRestoreStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> StateResult<()> {
        self.inner.put(key, value)
    }

    fn delete(&mut self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.inner.delete(key)
    }

    fn put_all(&mut self, entries: &[BatchEntry]) -> StateResult<()> {
        self.inner.put_all(entries)
    }

    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.inner.put_if_absent(key, value)
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

impl RestorableStore for TimestampingRestoreStore {
    fn changelog(&self) -> Option<&ChangelogPartition> {
        self.inner.changelog()
    }

    fn checkpointed_offset(&self) -> Option<i64> {
        self.inner.checkpointed_offset()
    }

    fn restore_batch(&mut self, records: &[RestoreRecord<'_>]) -> StateResult<()> {
        let stamped: Vec<Option<Vec<u8>>> = records
            .iter()
            .map(|r| {
                r.value.map(|value| {
                    let mut bytes = Vec::with_capacity(8 + value.len());
                    bytes.extend_from_slice(&r.timestamp.to_be_bytes());
                    bytes.extend_from_slice(value);
                    bytes
                })
            })
            .collect();
        let records: Vec<RestoreRecord<'_>> = records
            .iter()
            .zip(&stamped)
            .map(|(r, value)| RestoreRecord {
                key: r.key,
                value: value.as_deref(),
                offset: r.offset,
                timestamp: r.timestamp,
            })
            .collect();
        self.inner.restore_batch(&records)
    }

    fn checkpoint(&mut self, next_offset: i64) -> StateResult<()> {
        self.inner.checkpoint(next_offset)
    }

    fn remove_checkpoint(&mut self) -> StateResult<()> {
        self.inner.remove_checkpoint()
    }

    fn set_flush_listener(
        &mut self,
        listener: Box<dyn CacheFlushListener>,
        send_old_values: bool,
    ) -> bool {
        self.inner.set_flush_listener(listener, send_old_values)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::state::logging::ChangeLoggingStore;
    use crate::state::{InMemoryStore, RecordingChangelogWriter};

    /// A timestamped store's stack: logging over the restore conversion.
    fn logged(writer: &RecordingChangelogWriter) -> ChangeLoggingStore {
        ChangeLoggingStore::new(
            Box::new(TimestampingRestoreStore::new(Box::new(InMemoryStore::new(
                "s",
            )))),
            ChangelogPartition {
                topic: "app-s-changelog".into(),
                partition: 0,
            },
            Arc::new(writer.clone()),
        )
        .timestamped()
    }

    fn stamped(timestamp: i64, value: &[u8]) -> Vec<u8> {
        let mut bytes = timestamp.to_be_bytes().to_vec();
        bytes.extend_from_slice(value);
        bytes
    }

    #[test]
    fn restoring_the_logged_records_rebuilds_the_rows_with_their_timestamps() {
        let writer = RecordingChangelogWriter::new();
        let mut store = logged(&writer);
        store.put(b"a", &stamped(50, b"1")).unwrap();
        store.put(b"b", &stamped(7, b"2")).unwrap();
        store.put(b"a", &stamped(60, b"3")).unwrap();
        store.delete(b"b").unwrap();
        let original: Vec<_> = store.all().unwrap().map(Result::unwrap).collect();

        // What a changelog reader hands back: each record's value and timestamp (a
        // tombstone's is the input record's, here unknown).
        let changelog = writer.take();
        let records: Vec<_> = changelog
            .iter()
            .enumerate()
            .map(|(offset, r)| RestoreRecord {
                key: &r.key,
                value: r.value.as_deref(),
                offset: offset as i64,
                timestamp: r.timestamp.unwrap_or(-1),
            })
            .collect();
        let mut restored = logged(&writer);
        restored.restore_batch(&records).unwrap();
        let rebuilt: Vec<_> = restored.all().unwrap().map(Result::unwrap).collect();
        assert_eq!(rebuilt, original);
        assert_eq!(rebuilt, vec![(b"a".to_vec(), stamped(60, b"3"))]);
        assert!(writer.take().is_empty(), "restoring logs nothing");
    }

    #[test]
    fn restored_values_get_their_record_timestamp_in_front() {
        let mut store = TimestampingRestoreStore::new(Box::new(InMemoryStore::new("s")));
        store
            .restore_batch(&[
                RestoreRecord {
                    key: b"a",
                    value: Some(b"x"),
                    offset: 3,
                    timestamp: 0x0102,
                },
                RestoreRecord {
                    key: b"b",
                    value: None,
                    offset: 4,
                    timestamp: 7,
                },
            ])
            .unwrap();
        assert_eq!(
            store.get(b"a").unwrap(),
            Some(b"\0\0\0\0\0\0\x01\x02x".to_vec())
        );
        assert_eq!(store.get(b"b").unwrap(), None);
        // Writes of the processors are already timestamped.
        store.put(b"c", b"raw").unwrap();
        assert_eq!(store.get(b"c").unwrap(), Some(b"raw".to_vec()));
        assert_eq!(store.checkpointed_offset(), Some(5));
    }
}
