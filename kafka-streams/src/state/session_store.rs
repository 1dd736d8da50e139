//! The byte-level session store contract ([`SessionStore`]) and its segmented
//! implementation on RocksDB or in memory ([`SegmentedSessionStore`]).
//!
//! A session store keeps one value (the session's aggregate) per key and session
//! `[start, end]`, both bounds inclusive (Kafka's `SessionStore<Bytes, byte[]>`).
//! Sessions are segmented by their end; a session whose end lies more than the
//! retention before the largest session end seen is expired. See
//! [`segments`](super::segments) for the layout.

use super::error::StateResult;
use super::restorable::{ChangelogPartition, RestorableStore, RestoreRecord};
use super::rocks::{RocksDbMemory, RocksDbStore, StoreLocation};
use super::segments::{session_key, Backend, KeySchema, SegmentedBytesStore};

/// A session of a session store, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    /// The record key's bytes.
    pub key: Vec<u8>,
    /// The session start (inclusive), in milliseconds.
    pub start: i64,
    /// The session end (inclusive), in milliseconds.
    pub end: i64,
    /// The aggregate's bytes.
    pub value: Vec<u8>,
}

/// Sessions, segment by segment (by session end), then by key bytes, session end and
/// session start (Kafka's order for RocksDB session stores).
pub type SessionIter<'a> = Box<dyn Iterator<Item = StateResult<SessionEntry>> + 'a>;

/// Read-only access to a session store, over bytes (Kafka's `ReadOnlySessionStore`).
pub trait ReadOnlySessionStore {
    /// The store's name.
    fn name(&self) -> &str;

    /// The sessions of `key` that end at or after `earliest_session_end` and start at
    /// or before `latest_session_start`: those a record at a time `t` may merge with,
    /// queried with `t - gap` and `t + gap` (Kafka's `findSessions`).
    fn find_sessions(
        &self,
        key: &[u8],
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> StateResult<SessionIter<'_>>;

    /// As [`find_sessions`](Self::find_sessions), in reverse order.
    fn backward_find_sessions(
        &self,
        key: &[u8],
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> StateResult<SessionIter<'_>>;

    /// Every session of `key` within retention (`find_sessions(key, 0, i64::MAX)`).
    fn fetch(&self, key: &[u8]) -> StateResult<SessionIter<'_>> {
        self.find_sessions(key, 0, i64::MAX)
    }

    /// As [`fetch`](Self::fetch), in reverse order.
    fn backward_fetch(&self, key: &[u8]) -> StateResult<SessionIter<'_>> {
        self.backward_find_sessions(key, 0, i64::MAX)
    }

    /// The aggregate of exactly the session `[start, end]` of `key`, if any (Kafka's
    /// `fetchSession`).
    fn fetch_session(&self, key: &[u8], start: i64, end: i64) -> StateResult<Option<Vec<u8>>>;
}

/// A session store over bytes (Kafka's `SessionStore<Bytes, byte[]>`): the inner
/// stores and the change-logging decorator implement it. Restoring and checkpointing
/// are the [`RestorableStore`] supertrait.
pub trait SessionStore: ReadOnlySessionStore + RestorableStore + Send {
    /// Sets the aggregate of the session `[start, end]` of `key`; `None` removes it.
    /// A session that ended before the store's retention is not written.
    fn put(&mut self, key: &[u8], start: i64, end: i64, value: Option<&[u8]>) -> StateResult<()>;

    /// Every key's sessions ending from `earliest_session_end` to
    /// `latest_session_end` (inclusive), ordered by Kafka's time-first session key
    /// bytes (`end ‖ key ‖ start`): what on-window-close session aggregations emit
    /// (Kafka's time-ordered session store's `findSessions(earliestEnd, latestEnd)`).
    /// They are read from every live segment, without the retention bound of
    /// [`find_sessions`](ReadOnlySessionStore::find_sessions), as in Kafka.
    ///
    /// The default fails, as Kafka's stores that are not time-ordered do: such a store
    /// cannot back a session aggregation that emits on window close.
    fn find_sessions_ending_between(
        &self,
        earliest_session_end: i64,
        latest_session_end: i64,
    ) -> StateResult<SessionIter<'_>> {
        let _ = (earliest_session_end, latest_session_end);
        Err(super::StateError::Config {
            store: self.name().to_owned(),
            reason: "the session store cannot read sessions across keys by end time, which emitting on window close needs".into(),
        })
    }

    /// Removes the session `[start, end]` of `key` (when merging sessions).
    fn remove(&mut self, key: &[u8], start: i64, end: i64) -> StateResult<()> {
        self.put(key, start, end, None)
    }

    /// Makes every write so far durable.
    fn flush(&mut self) -> StateResult<()>;

    /// Releases the store's resources; using it afterwards fails with
    /// [`StateError::NotOpen`](super::StateError::NotOpen).
    fn close(&mut self) -> StateResult<()>;

    /// Whether the data survives the process.
    fn persistent(&self) -> bool;
}

/// A session store segmented by session end, in RocksDB (Kafka's
/// `RocksDBSessionStore`) or in memory (the role of Kafka's `InMemorySessionStore`,
/// with the same layout and order as on RocksDB).
#[derive(Debug)]
pub struct SegmentedSessionStore {
    inner: SegmentedBytesStore,
}

impl SegmentedSessionStore {
    /// Opens (creating if needed) the store at `location`, logged to `changelog`
    /// (`None`: logging disabled), keeping sessions that ended within `retention_ms`
    /// in segments of `segment_interval_ms`.
    pub fn open(
        location: &StoreLocation,
        changelog: Option<ChangelogPartition>,
        memory: &RocksDbMemory,
        retention_ms: i64,
        segment_interval_ms: i64,
    ) -> StateResult<Self> {
        super::segments::validate_segmentation(&location.store, retention_ms, segment_interval_ms)?;
        let rocks = RocksDbStore::open(location, changelog, memory)?;
        Ok(SegmentedSessionStore {
            inner: SegmentedBytesStore::new(
                KeySchema::Session,
                retention_ms,
                segment_interval_ms,
                Backend::RocksDb(Box::new(rocks)),
            )?,
        })
    }

    /// An empty store held in memory; rebuilt from its changelog on every start.
    pub fn in_memory(
        name: impl Into<String>,
        changelog: Option<ChangelogPartition>,
        retention_ms: i64,
        segment_interval_ms: i64,
    ) -> StateResult<Self> {
        Ok(SegmentedSessionStore {
            inner: SegmentedBytesStore::new(
                KeySchema::Session,
                retention_ms,
                segment_interval_ms,
                Backend::Memory {
                    name: name.into(),
                    map: Default::default(),
                    checkpoint: None,
                    changelog,
                    open: true,
                },
            )?,
        })
    }

    /// Number of live segments.
    pub fn segment_count(&self) -> usize {
        self.inner.segment_count()
    }

    /// The largest session end put or restored (`-1` before any).
    pub fn observed_stream_time(&self) -> i64 {
        self.inner.observed_stream_time()
    }

    fn sessions<'a>(
        &'a self,
        key: &[u8],
        earliest_end: i64,
        latest_start: i64,
        forward: bool,
    ) -> StateResult<SessionIter<'a>> {
        let actual_from = self.inner.read_from(earliest_end);
        // Sessions are segmented by end, and any end from `actual_from` on may belong
        // to a session starting early enough (Kafka's `segmentsToSearch`).
        let (first, last) = self.inner.segment_range(actual_from, i64::MAX);
        let bounds = (
            session_key(key, 0, actual_from),
            session_key(key, latest_start.max(0), i64::MAX),
        );
        let wanted = key.to_vec();
        let iter = self
            .inner
            .scan(first, last, Some(bounds), forward, move |binary| {
                KeySchema::Session.key_of(binary) == Some(wanted.as_slice())
                    && KeySchema::session_bounds(binary)
                        .is_some_and(|(start, end)| end >= actual_from && start <= latest_start)
            });
        Ok(Box::new(iter.map(|item| -> StateResult<SessionEntry> {
            let (binary, value) = item?;
            let (start, end) = KeySchema::session_bounds(&binary).unwrap_or((0, 0));
            let key = KeySchema::Session.key_of(&binary).unwrap_or(&[]).to_vec();
            Ok(SessionEntry {
                key,
                start,
                end,
                value,
            })
        })))
    }
}

impl ReadOnlySessionStore for SegmentedSessionStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn find_sessions(
        &self,
        key: &[u8],
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> StateResult<SessionIter<'_>> {
        self.sessions(key, earliest_session_end, latest_session_start, true)
    }

    fn backward_find_sessions(
        &self,
        key: &[u8],
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> StateResult<SessionIter<'_>> {
        self.sessions(key, earliest_session_end, latest_session_start, false)
    }

    fn fetch_session(&self, key: &[u8], start: i64, end: i64) -> StateResult<Option<Vec<u8>>> {
        if start < 0 || end < 0 {
            return Ok(None);
        }
        self.inner.get(&session_key(key, start, end))
    }
}

impl SessionStore for SegmentedSessionStore {
    fn put(&mut self, key: &[u8], start: i64, end: i64, value: Option<&[u8]>) -> StateResult<()> {
        if start > end {
            return Err(super::StateError::Config {
                store: self.inner.name().to_owned(),
                reason: format!("session start {start} is after its end {end}"),
            });
        }
        self.inner.put(&session_key(key, start, end), value)
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
        let earliest = earliest_session_end.max(0);
        if latest_session_end < earliest {
            return Ok(Box::new(std::iter::empty()));
        }
        let (first, last) = self.inner.segment_range(earliest, latest_session_end);
        let mut sessions = self
            .inner
            .scan(first, last, None, true, move |binary| {
                KeySchema::Session
                    .segment_timestamp(binary)
                    .is_some_and(|end| (earliest..=latest_session_end).contains(&end))
            })
            .map(|item| {
                let (binary, value) = item?;
                let (start, end) = KeySchema::session_bounds(&binary).unwrap_or((0, 0));
                let key = KeySchema::Session.key_of(&binary).unwrap_or(&[]).to_vec();
                Ok(SessionEntry {
                    key,
                    start,
                    end,
                    value,
                })
            })
            .collect::<StateResult<Vec<_>>>()?;
        sessions.sort_by_cached_key(|s| time_first_session_key(&s.key, s.start, s.end));
        Ok(Box::new(sessions.into_iter().map(Ok)))
    }
}

/// Kafka's `TimeFirstSessionKeySchema.toBinary`: end, then key, then start; the order
/// of its time-ordered session store.
pub(crate) fn time_first_session_key(key: &[u8], start: i64, end: i64) -> Vec<u8> {
    let mut binary = Vec::with_capacity(key.len() + 16);
    binary.extend_from_slice(&end.to_be_bytes());
    binary.extend_from_slice(key);
    binary.extend_from_slice(&start.to_be_bytes());
    binary
}

/// Restores from changelog records keyed by Kafka's binary session keys
/// (`key ‖ end ‖ start`), as the change-logging layer writes them.
impl RestorableStore for SegmentedSessionStore {
    fn changelog(&self) -> Option<&ChangelogPartition> {
        self.inner.changelog()
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
    use crate::state::rocks::RocksDbMemoryConfig;

    const GAP: i64 = 5_000;

    fn both(dir: &std::path::Path, retention: i64) -> Vec<SegmentedSessionStore> {
        let location = StoreLocation {
            state_dir: dir.to_path_buf(),
            application_id: "app".into(),
            task: "0_0".into(),
            store: "sessions".into(),
        };
        let memory = RocksDbMemory::with_config(RocksDbMemoryConfig::default());
        vec![
            SegmentedSessionStore::open(&location, None, &memory, retention, 60_000).unwrap(),
            SegmentedSessionStore::in_memory("sessions", None, retention, 60_000).unwrap(),
        ]
    }

    fn bounds(iter: SessionIter<'_>) -> Vec<(i64, i64)> {
        iter.map(|s| s.map(|s| (s.start, s.end)))
            .collect::<StateResult<_>>()
            .unwrap()
    }

    #[test]
    fn find_sessions_returns_what_a_record_merges_with() {
        let dir = tempfile::tempdir().unwrap();
        for mut store in both(dir.path(), 600_000) {
            // Sessions of "k": [0, 10s], [20s, 30s], [100s, 100s] (another segment);
            // a session of "k\0", sharing the byte range of "k"'s sessions.
            store.put(b"k", 0, 10_000, Some(b"a")).unwrap();
            store.put(b"k", 20_000, 30_000, Some(b"b")).unwrap();
            store.put(b"k", 100_000, 100_000, Some(b"c")).unwrap();
            store.put(b"k\0", 12_000, 14_000, Some(b"x")).unwrap();
            // A record at 14s merges with sessions ending at or after 9s and starting
            // at or before 19s: only the first.
            let t = 14_000;
            assert_eq!(
                bounds(store.find_sessions(b"k", t - GAP, t + GAP).unwrap()),
                vec![(0, 10_000)]
            );
            // A record at 15s bridges the first two (bounds inclusive: end 10s =
            // 15s - 5s, start 20s = 15s + 5s).
            let t = 15_000;
            assert_eq!(
                bounds(store.find_sessions(b"k", t - GAP, t + GAP).unwrap()),
                vec![(0, 10_000), (20_000, 30_000)]
            );
            assert_eq!(
                bounds(
                    store
                        .backward_find_sessions(b"k", t - GAP, t + GAP)
                        .unwrap()
                ),
                vec![(20_000, 30_000), (0, 10_000)]
            );
            assert_eq!(
                bounds(store.fetch(b"k").unwrap()),
                vec![(0, 10_000), (20_000, 30_000), (100_000, 100_000)]
            );
            assert_eq!(
                bounds(store.backward_fetch(b"k").unwrap()),
                vec![(100_000, 100_000), (20_000, 30_000), (0, 10_000)]
            );
            assert_eq!(bounds(store.fetch(b"k\0").unwrap()), vec![(12_000, 14_000)]);
            assert!(bounds(store.fetch(b"j").unwrap()).is_empty());

            // Merging: remove both, put the merged session.
            store.remove(b"k", 0, 10_000).unwrap();
            store.remove(b"k", 20_000, 30_000).unwrap();
            store.put(b"k", 0, 30_000, Some(b"ab")).unwrap();
            let merged: Vec<SessionEntry> = store
                .find_sessions(b"k", 10_000, 20_000)
                .unwrap()
                .collect::<StateResult<_>>()
                .unwrap();
            assert_eq!(
                merged,
                vec![SessionEntry {
                    key: b"k".to_vec(),
                    start: 0,
                    end: 30_000,
                    value: b"ab".to_vec()
                }]
            );
            assert_eq!(
                store.fetch_session(b"k", 0, 30_000).unwrap(),
                Some(b"ab".to_vec())
            );
            assert_eq!(store.fetch_session(b"k", 0, 10_000).unwrap(), None);
            assert!(store.put(b"k", 5, 4, Some(b"bad")).is_err());
        }
    }

    #[test]
    fn sessions_expire_by_end() {
        let dir = tempfile::tempdir().unwrap();
        for mut store in both(dir.path(), 60_000) {
            store.put(b"k", 0, 1_000, Some(b"old")).unwrap();
            // A long session is found by its end, however early it started.
            store.put(b"long", 0, 200_000, Some(b"long")).unwrap();
            assert_eq!(
                bounds(store.find_sessions(b"long", 150_000, 150_000).unwrap()),
                vec![(0, 200_000)]
            );
            // Stream time 200s already expired segment 0 (ends before 140s).
            assert_eq!(store.segment_count(), 1);
            assert!(bounds(store.fetch(b"k").unwrap()).is_empty());
            store.put(b"k", 300_000, 300_000, Some(b"new")).unwrap();
            // Stream time 300s, retention 60s: segments before (240s / 60s) = 4 go.
            assert_eq!(store.segment_count(), 1);
            assert_eq!(store.inner.stored_segment_count().unwrap(), 1);
            assert_eq!(bounds(store.fetch(b"k").unwrap()), vec![(300_000, 300_000)]);
            assert!(bounds(store.fetch(b"long").unwrap()).is_empty());
            assert_eq!(store.observed_stream_time(), 300_000);
            store.put(b"k", 100_000, 120_000, Some(b"late")).unwrap();
            assert_eq!(store.fetch_session(b"k", 100_000, 120_000).unwrap(), None);
        }
    }
}
