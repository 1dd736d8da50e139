//! The change-logging decorators of window and session stores (Kafka's
//! `ChangeLoggingWindowBytesStore` and `ChangeLoggingSessionBytesStore`).
//!
//! Every write also goes to the store's changelog, keyed as Kafka keys it:
//! - window stores: `WindowKeySchema.toStoreKeyBinary(key, window start, seqnum)`,
//!   i.e. `key ‖ start (8 bytes) ‖ seqnum (4 bytes)`, seqnum 0 unless the store
//!   retains duplicates;
//! - session stores: `SessionKeySchema.toBinary`, `key ‖ end (8) ‖ start (8)`.
//!
//! Deletes (a window put with no value, a removed session) are tombstones. These keys
//! are the inner stores' binary keys, so restoring feeds them back unchanged through
//! [`RestorableStore::restore_batch`], unlogged.

use std::sync::Arc;

use super::error::{StateError, StateResult};
use super::key_value::BatchEntry;
use super::logging::ChangelogWriter;
use super::restorable::{ChangelogPartition, RestorableStore, RestoreRecord};
use super::segments::{session_key, window_key};
use super::session_store::{ReadOnlySessionStore, SessionIter, SessionStore};
use super::window_store::{
    next_seqnum, put_each, ReadOnlyWindowStore, WindowEntryIter, WindowFetchIter, WindowStore,
};

/// Sends one changelog record, naming store, topic and partition on failure.
fn log(
    writer: &dyn ChangelogWriter,
    store: &str,
    changelog: &ChangelogPartition,
    key: &[u8],
    value: Option<&[u8]>,
) -> StateResult<()> {
    writer
        .send(&changelog.topic, changelog.partition, key, value)
        .map_err(|source| StateError::Changelog {
            store: store.to_owned(),
            topic: changelog.topic.clone(),
            partition: changelog.partition,
            source,
        })
}

/// Logs every write of the inner window store to its changelog partition.
pub(crate) struct ChangeLoggingWindowStore {
    inner: Box<dyn WindowStore>,
    changelog: ChangelogPartition,
    writer: Arc<dyn ChangelogWriter>,
    /// The inner store retains duplicates: each put is logged under the next sequence
    /// number, counted here as the inner store counts it (Kafka's
    /// `maybeUpdateSeqnumForDups`).
    retain_duplicates: bool,
    seqnum: u32,
}

impl ChangeLoggingWindowStore {
    /// Wraps `inner`, logging to `changelog` through `writer`.
    pub fn new(
        inner: Box<dyn WindowStore>,
        changelog: ChangelogPartition,
        writer: Arc<dyn ChangelogWriter>,
    ) -> Self {
        ChangeLoggingWindowStore {
            inner,
            changelog,
            writer,
            retain_duplicates: false,
            seqnum: 0,
        }
    }

    /// Logs puts under sequence numbers, for an inner store retaining duplicates.
    pub fn retaining_duplicates(mut self, retain_duplicates: bool) -> Self {
        self.retain_duplicates = retain_duplicates;
        self
    }
}

impl ReadOnlyWindowStore for ChangeLoggingWindowStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn fetch_window(&self, key: &[u8], window_start: i64) -> StateResult<Option<Vec<u8>>> {
        self.inner.fetch_window(key, window_start)
    }

    fn fetch(&self, key: &[u8], time_from: i64, time_to: i64) -> StateResult<WindowFetchIter<'_>> {
        self.inner.fetch(key, time_from, time_to)
    }

    fn backward_fetch(
        &self,
        key: &[u8],
        time_from: i64,
        time_to: i64,
    ) -> StateResult<WindowFetchIter<'_>> {
        self.inner.backward_fetch(key, time_from, time_to)
    }

    fn fetch_all(&self, time_from: i64, time_to: i64) -> StateResult<WindowEntryIter<'_>> {
        self.inner.fetch_all(time_from, time_to)
    }

    fn backward_fetch_all(&self, time_from: i64, time_to: i64) -> StateResult<WindowEntryIter<'_>> {
        self.inner.backward_fetch_all(time_from, time_to)
    }

    fn all(&self) -> StateResult<WindowEntryIter<'_>> {
        self.inner.all()
    }

    fn backward_all(&self) -> StateResult<WindowEntryIter<'_>> {
        self.inner.backward_all()
    }
}

impl WindowStore for ChangeLoggingWindowStore {
    /// Writes, then logs, as Kafka does: a write of an expired window is logged too
    /// (restoring skips it again).
    fn put(&mut self, key: &[u8], window_start: i64, value: Option<&[u8]>) -> StateResult<()> {
        self.inner.put(key, window_start, value)?;
        let seqnum = match (self.retain_duplicates, value) {
            (false, _) => 0,
            // The inner store wrote nothing: nothing to log.
            (true, None) => return Ok(()),
            (true, Some(_)) => {
                self.seqnum = next_seqnum(self.seqnum);
                self.seqnum
            }
        };
        log(
            self.writer.as_ref(),
            self.inner.name(),
            &self.changelog,
            &window_key(key, window_start, seqnum),
            value,
        )
    }

    /// Writes the batch, then logs each write under its binary key; a store
    /// retaining duplicates puts (and logs) them one by one, each under its next
    /// sequence number.
    fn put_all(&mut self, entries: &[BatchEntry]) -> StateResult<()> {
        if self.retain_duplicates {
            return put_each(self, entries);
        }
        self.inner.put_all(entries)?;
        for (binary, value) in entries {
            log(
                self.writer.as_ref(),
                self.inner.name(),
                &self.changelog,
                binary,
                value.as_deref(),
            )?;
        }
        Ok(())
    }

    fn expired_records(&self) -> u64 {
        self.inner.expired_records()
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

    fn fetch_all_closed_windows(
        &self,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<WindowEntryIter<'_>> {
        self.inner.fetch_all_closed_windows(time_from, time_to)
    }
}

impl RestorableStore for ChangeLoggingWindowStore {
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

/// Logs every write of the inner session store to its changelog partition.
pub(crate) struct ChangeLoggingSessionStore {
    inner: Box<dyn SessionStore>,
    changelog: ChangelogPartition,
    writer: Arc<dyn ChangelogWriter>,
}

impl ChangeLoggingSessionStore {
    /// Wraps `inner`, logging to `changelog` through `writer`.
    pub fn new(
        inner: Box<dyn SessionStore>,
        changelog: ChangelogPartition,
        writer: Arc<dyn ChangelogWriter>,
    ) -> Self {
        ChangeLoggingSessionStore {
            inner,
            changelog,
            writer,
        }
    }
}

impl ReadOnlySessionStore for ChangeLoggingSessionStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn find_sessions(
        &self,
        key: &[u8],
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> StateResult<SessionIter<'_>> {
        self.inner
            .find_sessions(key, earliest_session_end, latest_session_start)
    }

    fn backward_find_sessions(
        &self,
        key: &[u8],
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> StateResult<SessionIter<'_>> {
        self.inner
            .backward_find_sessions(key, earliest_session_end, latest_session_start)
    }

    fn fetch_session(&self, key: &[u8], start: i64, end: i64) -> StateResult<Option<Vec<u8>>> {
        self.inner.fetch_session(key, start, end)
    }
}

impl SessionStore for ChangeLoggingSessionStore {
    fn put(&mut self, key: &[u8], start: i64, end: i64, value: Option<&[u8]>) -> StateResult<()> {
        self.inner.put(key, start, end, value)?;
        log(
            self.writer.as_ref(),
            self.inner.name(),
            &self.changelog,
            &session_key(key, start, end),
            value,
        )
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

    fn find_sessions_ending_between(
        &self,
        earliest_session_end: i64,
        latest_session_end: i64,
    ) -> StateResult<SessionIter<'_>> {
        self.inner
            .find_sessions_ending_between(earliest_session_end, latest_session_end)
    }
}

impl RestorableStore for ChangeLoggingSessionStore {
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
    use crate::state::logging::{LoggedRecord, RecordingChangelogWriter};
    use crate::state::rocks::{RocksDbMemory, RocksDbMemoryConfig, StoreLocation};
    use crate::state::session_store::SegmentedSessionStore;
    use crate::state::window_store::{SegmentedWindowStore, WindowEntry};
    use crate::state::StateResult;

    fn changelog(topic: &str) -> ChangelogPartition {
        ChangelogPartition {
            topic: topic.into(),
            partition: 2,
        }
    }

    fn location(dir: &std::path::Path, store: &str) -> StoreLocation {
        StoreLocation {
            state_dir: dir.to_path_buf(),
            application_id: "app".into(),
            task: "0_2".into(),
            store: store.into(),
        }
    }

    fn memory() -> RocksDbMemory {
        RocksDbMemory::with_config(RocksDbMemoryConfig::default())
    }

    /// The logged records as restore records, at offsets from 0.
    fn as_restore(logged: &[LoggedRecord]) -> Vec<RestoreRecord<'_>> {
        logged
            .iter()
            .enumerate()
            .map(|(i, r)| RestoreRecord {
                key: &r.key,
                value: r.value.as_deref(),
                offset: i as i64,
            })
            .collect()
    }

    fn window_contents(store: &dyn WindowStore) -> Vec<WindowEntry> {
        store.all().unwrap().collect::<StateResult<_>>().unwrap()
    }

    #[test]
    fn window_changelog_keys_are_kafkas_and_restore_rebuilds_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let writer = RecordingChangelogWriter::new();
        let topic = "app-w-changelog";
        let mut store = ChangeLoggingWindowStore::new(
            Box::new(
                SegmentedWindowStore::open(
                    &location(dir.path(), "w"),
                    Some(changelog(topic)),
                    &memory(),
                    600_000,
                    60_000,
                )
                .unwrap(),
            ),
            changelog(topic),
            Arc::new(writer.clone()),
        );
        store.put(b"k", 60_000, Some(b"1")).unwrap();
        store.put(b"k", 60_000, Some(b"2")).unwrap();
        store.put(b"j", 120_000, Some(b"3")).unwrap();
        store.put(b"k", 180_000, Some(b"4")).unwrap();
        store.put(b"k", 180_000, None).unwrap();
        // Stream time 700s, retention 600s: the window at 60s is out of retention.
        store.put(b"k", 700_000, Some(b"5")).unwrap();
        let logged = writer.take();
        assert_eq!(logged.len(), 6);
        assert!(logged.iter().all(|r| r.topic == topic && r.partition == 2));
        let mut expected_key = b"k".to_vec();
        expected_key.extend_from_slice(&60_000i64.to_be_bytes());
        expected_key.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(logged[0].key, expected_key);
        assert_eq!(logged[0].value.as_deref(), Some(b"1".as_slice()));
        assert_eq!(logged[4].value, None, "a delete is a tombstone");

        // Restoring the changelog into fresh stores (RocksDB and memory) gives the
        // same content.
        let original = window_contents(&store);
        assert_eq!(
            original
                .iter()
                .map(|e| (e.key.as_slice(), e.start))
                .collect::<Vec<_>>(),
            vec![(b"j".as_slice(), 120_000), (b"k", 700_000)]
        );
        let records = as_restore(&logged);
        let fresh_dir = tempfile::tempdir().unwrap();
        let mut rocks = SegmentedWindowStore::open(
            &location(fresh_dir.path(), "w"),
            Some(changelog(topic)),
            &memory(),
            600_000,
            60_000,
        )
        .unwrap();
        let mut mem =
            SegmentedWindowStore::in_memory("w", Some(changelog(topic)), 600_000, 60_000).unwrap();
        for restored in [&mut rocks as &mut dyn WindowStore, &mut mem] {
            restored.restore_batch(&records[..3]).unwrap();
            restored.restore_batch(&records[3..]).unwrap();
            assert_eq!(restored.checkpointed_offset(), Some(6));
            assert_eq!(window_contents(restored), original);
        }
        // Restoring is not logged.
        assert!(writer.take().is_empty());

        // The checkpoint survives reopening; the restored data too.
        rocks.close().unwrap();
        let reopened = SegmentedWindowStore::open(
            &location(fresh_dir.path(), "w"),
            Some(changelog(topic)),
            &memory(),
            600_000,
            60_000,
        )
        .unwrap();
        assert_eq!(reopened.checkpointed_offset(), Some(6));
        assert_eq!(window_contents(&reopened), original);
    }

    #[test]
    fn session_changelog_keys_are_kafkas_and_restore_rebuilds_the_store() {
        let writer = RecordingChangelogWriter::new();
        let topic = "app-s-changelog";
        let mut store = ChangeLoggingSessionStore::new(
            Box::new(
                SegmentedSessionStore::in_memory("s", Some(changelog(topic)), 600_000, 60_000)
                    .unwrap(),
            ),
            changelog(topic),
            Arc::new(writer.clone()),
        );
        store.put(b"k", 0, 10_000, Some(b"a")).unwrap();
        store.put(b"k", 20_000, 30_000, Some(b"b")).unwrap();
        store.remove(b"k", 0, 10_000).unwrap();
        store.remove(b"k", 20_000, 30_000).unwrap();
        store.put(b"k", 0, 30_000, Some(b"ab")).unwrap();
        let logged = writer.take();
        let mut expected_key = b"k".to_vec();
        expected_key.extend_from_slice(&10_000i64.to_be_bytes());
        expected_key.extend_from_slice(&0i64.to_be_bytes());
        assert_eq!(logged[0].key, expected_key, "key, then end, then start");
        assert_eq!(logged[2].key, expected_key);
        assert_eq!(logged[2].value, None);

        let dir = tempfile::tempdir().unwrap();
        let mut restored = SegmentedSessionStore::open(
            &location(dir.path(), "s"),
            Some(changelog(topic)),
            &memory(),
            600_000,
            60_000,
        )
        .unwrap();
        restored.restore_batch(&as_restore(&logged)).unwrap();
        let sessions = |s: &dyn SessionStore| -> Vec<(i64, i64, Vec<u8>)> {
            s.fetch(b"k")
                .unwrap()
                .map(|e| e.map(|e| (e.start, e.end, e.value)))
                .collect::<StateResult<_>>()
                .unwrap()
        };
        assert_eq!(sessions(&restored), vec![(0, 30_000, b"ab".to_vec())]);
        assert_eq!(sessions(&restored), sessions(&store));
        assert_eq!(restored.checkpointed_offset(), Some(5));
    }

    #[test]
    fn writer_failure_names_store_topic_and_partition() {
        struct Failing;
        impl ChangelogWriter for Failing {
            fn send(
                &self,
                _: &str,
                _: i32,
                _: &[u8],
                _: Option<&[u8]>,
            ) -> Result<(), kafka_client::serde::BoxError> {
                Err("producer fenced".into())
            }
        }
        let mut store = ChangeLoggingWindowStore::new(
            Box::new(SegmentedWindowStore::in_memory("w", None, 1_000, 60_000).unwrap()),
            changelog("app-w-changelog"),
            Arc::new(Failing),
        );
        let text = store.put(b"k", 0, Some(b"v")).unwrap_err().to_string();
        assert!(text.contains("store w"), "{text}");
        assert!(text.contains("app-w-changelog partition 2"), "{text}");
    }
}
