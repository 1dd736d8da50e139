//! The record cache in front of window and session stores (Kafka's
//! `CachingWindowStore` and `CachingSessionStore`).
//!
//! The same [`NamedCache`] as the key-value [`CachingStore`](super::cache), keyed by
//! the stores' binary keys (Kafka's `key ‖ window start ‖ seqnum` and
//! `key ‖ session end ‖ session start`): between commits, repeated updates of a
//! window or session fold into one; entries leave on eviction (over the thread's
//! [`CacheBudget`]) or on flush, are written to the inner store (and so to the
//! changelog below it), and are handed to the [`CacheFlushListener`] with the binary
//! key, which the typed layer decodes
//! ([`TypedWindowStore::decode_flushed`](super::TypedWindowStore::decode_flushed)).
//!
//! Reads merge the cached entries with the inner store's, in the inner store's order:
//! by window start (or session end, then start) for one key, and segment by segment,
//! then by binary key, across keys.

use std::ops::Bound;

use super::cache::{
    caching_restorable_store, CacheBudget, CacheFlushListener, NamedCache, WriteThrough,
};
use super::error::StateResult;
use super::key_value::{KeyValue, KeyValueIter, MergeIter};
use super::restorable::{ChangelogPartition, RestorableStore, RestoreRecord};
use super::segments::{session_key, window_key, KeySchema, TIMESTAMP_SIZE};
use super::session_store::{
    time_first_session_key, ReadOnlySessionStore, SessionEntry, SessionIter, SessionStore,
};
use super::window_store::{
    ReadOnlyWindowStore, WindowEntry, WindowEntryIter, WindowFetchIter, WindowStore,
};

/// Cached entries to merge: `(sort key, value or cached delete)`.
type Pending = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// The merged entries of an inner iterator (already mapped to sort keys) and the
/// cached ones, both in the same order.
fn merged<'a>(stored: KeyValueIter<'a>, pending: Pending, ascending: bool) -> KeyValueIter<'a> {
    Box::new(MergeIter::ordered(stored, pending.into_iter(), ascending))
}

/// Folds writes between commits in front of a window store (Kafka's
/// `CachingWindowStore`).
pub(crate) struct CachingWindowStore {
    inner: Box<dyn WindowStore>,
    cache: NamedCache,
    segment_interval_ms: i64,
}

impl CachingWindowStore {
    /// Wraps `inner` (segmented by `segment_interval_ms`), charging cached entries to
    /// `budget`.
    pub(crate) fn new(
        inner: Box<dyn WindowStore>,
        budget: CacheBudget,
        segment_interval_ms: i64,
    ) -> Self {
        CachingWindowStore {
            inner,
            cache: NamedCache::keeping_clean_entries(budget),
            segment_interval_ms: segment_interval_ms.max(1),
        }
    }

    /// The sort key of a window across keys, as the inner store orders it: segment,
    /// then binary key.
    fn segment_order_key(&self, binary: &[u8], start: i64) -> Vec<u8> {
        let mut key = Vec::with_capacity(TIMESTAMP_SIZE + binary.len());
        key.extend_from_slice(&(start / self.segment_interval_ms).to_be_bytes());
        key.extend_from_slice(binary);
        key
    }

    /// The windows of `key` starting in `[from, to]`, merged with the cache.
    fn key_windows(
        &self,
        key: &[u8],
        from: i64,
        to: i64,
        forward: bool,
    ) -> StateResult<WindowFetchIter<'_>> {
        let stored = if forward {
            self.inner.fetch(key, from, to)?
        } else {
            self.inner.backward_fetch(key, from, to)?
        };
        let from = from.max(0);
        if self.cache.len() == 0 || to < from {
            return Ok(stored);
        }
        let mut pending: Pending = self
            .cache
            .range(
                Bound::Included(&window_key(key, from, 0)),
                Bound::Included(&window_key(key, to, u32::MAX)),
            )
            .filter(|(binary, _)| KeySchema::Window.key_of(binary) == Some(key))
            .filter_map(|(binary, value)| {
                let start = KeySchema::Window.segment_timestamp(binary)?;
                (from..=to)
                    .contains(&start)
                    .then(|| (start.to_be_bytes().to_vec(), value.map(<[u8]>::to_vec)))
            })
            .collect();
        if !forward {
            pending.reverse();
        }
        let stored: KeyValueIter<'_> = Box::new(stored.map(|item| {
            let (start, value) = item?;
            Ok((start.to_be_bytes().to_vec(), value))
        }));
        Ok(Box::new(merged(stored, pending, forward).map(|item| {
            let (start, value) = item?;
            Ok((start_of(&start), value))
        })))
    }

    /// `stored` (every key's windows starting in `[from, to]`) merged with the cache.
    fn all_windows<'a>(
        &'a self,
        stored: WindowEntryIter<'a>,
        from: i64,
        to: i64,
        forward: bool,
    ) -> WindowEntryIter<'a> {
        if self.cache.len() == 0 || to < from.max(0) {
            return stored;
        }
        let from = from.max(0);
        let mut pending: Pending = self
            .cache
            .range(Bound::Unbounded, Bound::Unbounded)
            .filter_map(|(binary, value)| {
                let start = KeySchema::Window.segment_timestamp(binary)?;
                (from..=to).contains(&start).then(|| {
                    (
                        self.segment_order_key(binary, start),
                        value.map(<[u8]>::to_vec),
                    )
                })
            })
            .collect();
        pending.sort_unstable_by(|a, b| {
            if forward {
                a.0.cmp(&b.0)
            } else {
                b.0.cmp(&a.0)
            }
        });
        let stored: KeyValueIter<'a> = Box::new(stored.map(move |item| {
            let WindowEntry { key, start, value } = item?;
            Ok((
                self.segment_order_key(&window_key(&key, start, 0), start),
                value,
            ))
        }));
        Box::new(merged(stored, pending, forward).map(|item| {
            let (ordered, value) = item?;
            let binary = ordered.get(TIMESTAMP_SIZE..).unwrap_or(&[]);
            Ok(WindowEntry {
                key: KeySchema::Window.key_of(binary).unwrap_or(&[]).to_vec(),
                start: KeySchema::Window.segment_timestamp(binary).unwrap_or(0),
                value,
            })
        }))
    }

    fn maybe_evict(&mut self) -> StateResult<()> {
        let count = self.cache.eviction_count();
        self.write_through(WriteThrough::Evict(count))
    }

    fn write_through(&mut self, which: WriteThrough) -> StateResult<()> {
        self.cache.write_through(
            which,
            self.inner.as_mut(),
            |inner, binary| {
                let (key, start) = split_window_key(binary);
                inner.fetch_window(key, start)
            },
            |inner, batch| inner.put_all(batch),
        )
    }
}

/// A window start from its 8 big-endian bytes.
fn start_of(bytes: &[u8]) -> i64 {
    bytes.try_into().map(i64::from_be_bytes).unwrap_or_default()
}

/// The key and window start of a binary window key this layer made.
pub(crate) fn split_window_key(binary: &[u8]) -> (&[u8], i64) {
    (
        KeySchema::Window.key_of(binary).unwrap_or(&[]),
        KeySchema::Window.segment_timestamp(binary).unwrap_or(0),
    )
}

impl ReadOnlyWindowStore for CachingWindowStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn fetch_window(&self, key: &[u8], window_start: i64) -> StateResult<Option<Vec<u8>>> {
        if window_start >= 0 {
            if let Some(cached) = self.cache.get(&window_key(key, window_start, 0)) {
                return Ok(cached.map(<[u8]>::to_vec));
            }
        }
        self.inner.fetch_window(key, window_start)
    }

    fn fetch(&self, key: &[u8], time_from: i64, time_to: i64) -> StateResult<WindowFetchIter<'_>> {
        self.key_windows(key, time_from, time_to, true)
    }

    fn backward_fetch(
        &self,
        key: &[u8],
        time_from: i64,
        time_to: i64,
    ) -> StateResult<WindowFetchIter<'_>> {
        self.key_windows(key, time_from, time_to, false)
    }

    fn fetch_all(&self, time_from: i64, time_to: i64) -> StateResult<WindowEntryIter<'_>> {
        let stored = self.inner.fetch_all(time_from, time_to)?;
        Ok(self.all_windows(stored, time_from, time_to, true))
    }

    fn backward_fetch_all(&self, time_from: i64, time_to: i64) -> StateResult<WindowEntryIter<'_>> {
        let stored = self.inner.backward_fetch_all(time_from, time_to)?;
        Ok(self.all_windows(stored, time_from, time_to, false))
    }

    fn all(&self) -> StateResult<WindowEntryIter<'_>> {
        let stored = self.inner.all()?;
        Ok(self.all_windows(stored, 0, i64::MAX, true))
    }

    fn backward_all(&self) -> StateResult<WindowEntryIter<'_>> {
        let stored = self.inner.backward_all()?;
        Ok(self.all_windows(stored, 0, i64::MAX, false))
    }
}

impl WindowStore for CachingWindowStore {
    fn put(&mut self, key: &[u8], window_start: i64, value: Option<&[u8]>) -> StateResult<()> {
        if window_start < 0 {
            // The inner store reports the negative start.
            return self.inner.put(key, window_start, value);
        }
        self.cache.insert(&window_key(key, window_start, 0), value);
        self.maybe_evict()
    }

    fn put_all(&mut self, entries: &[super::BatchEntry]) -> StateResult<()> {
        for (binary, value) in entries {
            self.cache.insert(binary, value.as_deref());
        }
        self.maybe_evict()
    }

    fn expired_records(&self) -> u64 {
        self.inner.expired_records()
    }

    fn flush(&mut self) -> StateResult<()> {
        self.write_through(WriteThrough::Flush)?;
        self.inner.flush()
    }

    fn close(&mut self) -> StateResult<()> {
        self.cache.discard();
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
        let stored = self.inner.fetch_all_closed_windows(time_from, time_to)?;
        Ok(self.all_windows(stored, time_from, time_to, true))
    }
}

/// Folds writes between commits in front of a session store (Kafka's
/// `CachingSessionStore`). A removed session is a cached delete, so a session removed
/// and put again before a flush (a record merging into a session without widening
/// it) leaves as one update.
pub(crate) struct CachingSessionStore {
    inner: Box<dyn SessionStore>,
    cache: NamedCache,
}

/// The sort key of one key's session, as the inner store orders them: end, then
/// start.
fn session_order_key(start: i64, end: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 * TIMESTAMP_SIZE);
    key.extend_from_slice(&end.to_be_bytes());
    key.extend_from_slice(&start.to_be_bytes());
    key
}

/// The key, start and end of a binary session key this layer made.
pub(crate) fn split_session_key(binary: &[u8]) -> (&[u8], i64, i64) {
    let (start, end) = KeySchema::session_bounds(binary).unwrap_or((0, 0));
    (KeySchema::Session.key_of(binary).unwrap_or(&[]), start, end)
}

impl CachingSessionStore {
    /// Wraps `inner`, charging cached entries to `budget`.
    pub(crate) fn new(inner: Box<dyn SessionStore>, budget: CacheBudget) -> Self {
        CachingSessionStore {
            inner,
            cache: NamedCache::keeping_clean_entries(budget),
        }
    }

    fn sessions(
        &self,
        key: &[u8],
        earliest_end: i64,
        latest_start: i64,
        forward: bool,
    ) -> StateResult<SessionIter<'_>> {
        let stored = if forward {
            self.inner.find_sessions(key, earliest_end, latest_start)?
        } else {
            self.inner
                .backward_find_sessions(key, earliest_end, latest_start)?
        };
        if self.cache.len() == 0 {
            return Ok(stored);
        }
        let mut pending: Pending = self
            .cache
            .range(
                Bound::Included(&session_key(key, 0, earliest_end.max(0))),
                Bound::Included(&session_key(key, i64::MAX, i64::MAX)),
            )
            .filter(|(binary, _)| KeySchema::Session.key_of(binary) == Some(key))
            .filter_map(|(binary, value)| {
                let (start, end) = KeySchema::session_bounds(binary)?;
                (end >= earliest_end && start <= latest_start)
                    .then(|| (session_order_key(start, end), value.map(<[u8]>::to_vec)))
            })
            .collect();
        if !forward {
            pending.reverse();
        }
        let stored: KeyValueIter<'_> = Box::new(stored.map(|item| -> StateResult<KeyValue> {
            let SessionEntry {
                start, end, value, ..
            } = item?;
            Ok((session_order_key(start, end), value))
        }));
        let key = key.to_vec();
        Ok(Box::new(merged(stored, pending, forward).map(
            move |item| {
                let (ordered, value) = item?;
                let end = start_of(ordered.get(..TIMESTAMP_SIZE).unwrap_or(&[]));
                let start = start_of(ordered.get(TIMESTAMP_SIZE..).unwrap_or(&[]));
                Ok(SessionEntry {
                    key: key.clone(),
                    start,
                    end,
                    value,
                })
            },
        )))
    }

    fn maybe_evict(&mut self) -> StateResult<()> {
        let count = self.cache.eviction_count();
        self.write_through(WriteThrough::Evict(count))
    }

    fn write_through(&mut self, which: WriteThrough) -> StateResult<()> {
        self.cache.write_through(
            which,
            self.inner.as_mut(),
            |inner, binary| {
                let (key, start, end) = split_session_key(binary);
                inner.fetch_session(key, start, end)
            },
            |inner, batch| {
                for (binary, value) in batch {
                    let (key, start, end) = split_session_key(binary);
                    inner.put(key, start, end, value.as_deref())?;
                }
                Ok(())
            },
        )
    }
}

impl ReadOnlySessionStore for CachingSessionStore {
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
        if start >= 0 && end >= 0 {
            if let Some(cached) = self.cache.get(&session_key(key, start, end)) {
                return Ok(cached.map(<[u8]>::to_vec));
            }
        }
        self.inner.fetch_session(key, start, end)
    }
}

impl SessionStore for CachingSessionStore {
    fn put(&mut self, key: &[u8], start: i64, end: i64, value: Option<&[u8]>) -> StateResult<()> {
        if start < 0 || end < 0 {
            // The inner store reports the negative bound.
            return self.inner.put(key, start, end, value);
        }
        self.cache.insert(&session_key(key, start, end), value);
        self.maybe_evict()
    }

    fn flush(&mut self) -> StateResult<()> {
        self.write_through(WriteThrough::Flush)?;
        self.inner.flush()
    }

    fn close(&mut self) -> StateResult<()> {
        self.cache.discard();
        self.inner.close()
    }

    fn persistent(&self) -> bool {
        self.inner.persistent()
    }

    /// The inner store's sessions merged with the cached ones, in time-first key order.
    fn find_sessions_ending_between(
        &self,
        earliest_session_end: i64,
        latest_session_end: i64,
    ) -> StateResult<SessionIter<'_>> {
        let stored = self
            .inner
            .find_sessions_ending_between(earliest_session_end, latest_session_end)?;
        if self.cache.len() == 0 {
            return Ok(stored);
        }
        let mut pending: Pending = self
            .cache
            .range(Bound::Unbounded, Bound::Unbounded)
            .filter_map(|(binary, value)| {
                let (key, start, end) = split_session_key(binary);
                (earliest_session_end..=latest_session_end)
                    .contains(&end)
                    .then(|| {
                        (
                            time_first_session_key(key, start, end),
                            value.map(<[u8]>::to_vec),
                        )
                    })
            })
            .collect();
        pending.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let stored: KeyValueIter<'_> = Box::new(stored.map(|item| -> StateResult<KeyValue> {
            let SessionEntry {
                key,
                start,
                end,
                value,
            } = item?;
            Ok((time_first_session_key(&key, start, end), value))
        }));
        Ok(Box::new(merged(stored, pending, true).map(|item| {
            let (ordered, value) = item?;
            let end = start_of(ordered.get(..TIMESTAMP_SIZE).unwrap_or(&[]));
            let rest = ordered.get(TIMESTAMP_SIZE..).unwrap_or(&[]);
            let split = rest.len().saturating_sub(TIMESTAMP_SIZE);
            Ok(SessionEntry {
                key: rest[..split].to_vec(),
                start: start_of(&rest[split..]),
                end,
                value,
            })
        })))
    }
}

caching_restorable_store!(CachingWindowStore);
caching_restorable_store!(CachingSessionStore);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::state::cache::{FlushQueue, CACHE_ENTRY_OVERHEAD};
    use crate::state::logging::RecordingChangelogWriter;
    use crate::state::session_store::SegmentedSessionStore;
    use crate::state::window_logging::{ChangeLoggingSessionStore, ChangeLoggingWindowStore};
    use crate::state::window_store::SegmentedWindowStore;

    const RETENTION: i64 = 100;
    const SEGMENT: i64 = 50;

    fn changelog() -> ChangelogPartition {
        ChangelogPartition {
            topic: "app-w-changelog".into(),
            partition: 0,
        }
    }

    fn cached_windows(
        budget: &CacheBudget,
    ) -> (CachingWindowStore, RecordingChangelogWriter, FlushQueue) {
        let writer = RecordingChangelogWriter::new();
        let inner = SegmentedWindowStore::in_memory("w", Some(changelog()), RETENTION, SEGMENT)
            .expect("segmentation is valid");
        let logged =
            ChangeLoggingWindowStore::new(Box::new(inner), changelog(), Arc::new(writer.clone()));
        let mut store = CachingWindowStore::new(Box::new(logged), budget.clone(), SEGMENT);
        let queue = FlushQueue::new();
        assert!(store.set_flush_listener(Box::new(queue.clone()), true));
        (store, writer, queue)
    }

    fn cached_sessions(
        budget: &CacheBudget,
    ) -> (CachingSessionStore, RecordingChangelogWriter, FlushQueue) {
        let writer = RecordingChangelogWriter::new();
        let inner = SegmentedSessionStore::in_memory("s", Some(changelog()), RETENTION, SEGMENT)
            .expect("segmentation is valid");
        let logged =
            ChangeLoggingSessionStore::new(Box::new(inner), changelog(), Arc::new(writer.clone()));
        let mut store = CachingSessionStore::new(Box::new(logged), budget.clone());
        let queue = FlushQueue::new();
        assert!(store.set_flush_listener(Box::new(queue.clone()), true));
        (store, writer, queue)
    }

    fn starts(iter: WindowFetchIter<'_>) -> Vec<(i64, Vec<u8>)> {
        iter.collect::<StateResult<_>>().expect("reads succeed")
    }

    fn entries(iter: WindowEntryIter<'_>) -> Vec<(Vec<u8>, i64, Vec<u8>)> {
        iter.map(|e| e.map(|e| (e.key, e.start, e.value)))
            .collect::<StateResult<_>>()
            .expect("reads succeed")
    }

    #[test]
    fn window_updates_fold_until_flush_then_go_to_the_changelog_and_the_listener() -> StateResult<()>
    {
        let budget = CacheBudget::new(1 << 20);
        let (mut store, writer, queue) = cached_windows(&budget);
        for count in 1u8..=5 {
            store.put(b"a", 10, Some(&[count]))?;
        }
        store.put(b"b", 10, Some(b"x"))?;
        store.put(b"a", 20, Some(b"y"))?;
        assert_eq!(store.fetch_window(b"a", 10)?, Some(vec![5]));
        assert!(
            writer.take().is_empty(),
            "nothing is logged before the flush"
        );
        assert!(queue.drain().is_empty());

        store.flush()?;
        let logged: Vec<_> = writer
            .take()
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect();
        assert_eq!(
            logged,
            vec![
                (window_key(b"a", 10, 0), Some(vec![5])),
                (window_key(b"b", 10, 0), Some(b"x".to_vec())),
                (window_key(b"a", 20, 0), Some(b"y".to_vec())),
            ],
            "one record per window, in write order, keyed by Kafka's binary window key"
        );
        let flushed = queue.drain();
        assert_eq!(flushed.len(), 3);
        assert_eq!(flushed[0].key, window_key(b"a", 10, 0));
        assert_eq!(flushed[0].old_value, None);

        // The next flush carries the old value from the store.
        store.put(b"a", 10, Some(&[6]))?;
        store.flush()?;
        let flushed = queue.drain();
        assert_eq!(flushed.len(), 1, "only dirty windows are written again");
        assert_eq!(flushed[0].old_value, Some(vec![5]));
        assert_eq!(flushed[0].new_value, Some(vec![6]));
        assert_eq!(writer.take().len(), 1);
        Ok(())
    }

    #[test]
    fn window_reads_merge_cached_and_stored_windows_in_store_order() -> StateResult<()> {
        let budget = CacheBudget::new(1 << 20);
        let (mut store, _writer, _queue) = cached_windows(&budget);
        store.put(b"a", 0, Some(b"0"))?;
        store.put(b"a", 60, Some(b"60"))?;
        store.put(b"b", 10, Some(b"b10"))?;
        store.flush()?;
        // Dirty: a new window of a, an update of a stored one, one of another key
        // spanning two segments.
        store.put(b"a", 30, Some(b"30"))?;
        store.put(b"a", 60, Some(b"60'"))?;
        store.put(b"ab", 55, Some(b"ab55"))?;
        assert_eq!(
            starts(store.fetch(b"a", 0, 100)?),
            vec![
                (0, b"0".to_vec()),
                (30, b"30".to_vec()),
                (60, b"60'".to_vec())
            ]
        );
        assert_eq!(
            starts(store.backward_fetch(b"a", 10, 60)?),
            vec![(60, b"60'".to_vec()), (30, b"30".to_vec())]
        );
        // Segment by segment (interval 50), then by binary key.
        assert_eq!(
            entries(store.fetch_all(0, 100)?),
            vec![
                (b"a".to_vec(), 0, b"0".to_vec()),
                (b"a".to_vec(), 30, b"30".to_vec()),
                (b"b".to_vec(), 10, b"b10".to_vec()),
                (b"a".to_vec(), 60, b"60'".to_vec()),
                (b"ab".to_vec(), 55, b"ab55".to_vec()),
            ]
        );
        let mut backward = entries(store.backward_all()?);
        backward.reverse();
        assert_eq!(backward, entries(store.all()?));
        // A cached delete hides the stored window.
        store.put(b"a", 0, None)?;
        assert_eq!(store.fetch_window(b"a", 0)?, None);
        assert_eq!(starts(store.fetch(b"a", 0, 0)?), vec![]);
        Ok(())
    }

    #[test]
    fn flushed_windows_stay_readable_after_the_store_expired_them() -> StateResult<()> {
        let budget = CacheBudget::new(1 << 20);
        let (mut store, _writer, _queue) = cached_windows(&budget);
        store.put(b"a", 0, Some(b"old"))?;
        store.flush()?;
        store.put(b"a", 500, Some(b"new"))?;
        store.flush()?;
        // The store alone no longer returns the window (500 - retention > 0); Kafka's
        // cache still holds it, clean, and so does ours.
        assert_eq!(store.inner.fetch_window(b"a", 0)?, None);
        assert_eq!(store.fetch_window(b"a", 0)?, Some(b"old".to_vec()));
        assert_eq!(store.cache.dirty_len(), 0);
        Ok(())
    }

    #[test]
    fn over_budget_the_oldest_windows_are_evicted_through() -> StateResult<()> {
        let entry = window_key(b"a", 0, 0).len() + 1 + CACHE_ENTRY_OVERHEAD;
        let budget = CacheBudget::new(2 * entry + 1);
        let (mut store, writer, queue) = cached_windows(&budget);
        store.put(b"a", 0, Some(b"1"))?;
        store.put(b"a", 10, Some(b"2"))?;
        assert!(writer.take().is_empty());
        store.put(b"a", 20, Some(b"3"))?;
        let logged = writer.take();
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0].key, window_key(b"a", 0, 0));
        assert_eq!(queue.drain().len(), 1);
        assert!(budget.used_bytes() <= budget.max_bytes());
        assert_eq!(
            starts(store.fetch(b"a", 0, 20)?),
            vec![(0, b"1".to_vec()), (10, b"2".to_vec()), (20, b"3".to_vec())]
        );
        store.close()?;
        assert_eq!(budget.used_bytes(), 0, "closing releases the budget");
        Ok(())
    }

    #[test]
    fn a_session_removed_and_put_again_before_a_flush_leaves_as_one_update() -> StateResult<()> {
        let budget = CacheBudget::new(1 << 20);
        let (mut store, writer, queue) = cached_sessions(&budget);
        store.put(b"a", 0, 10, Some(b"2"))?;
        store.put(b"a", 30, 30, Some(b"1"))?;
        store.flush()?;
        writer.take();
        queue.drain();

        // A record inside [0, 10]: removed, then put again with a new aggregate.
        store.remove(b"a", 0, 10)?;
        store.put(b"a", 0, 10, Some(b"3"))?;
        // A record at 20 merging [0, 10] and [30, 30] into [0, 30].
        store.remove(b"a", 0, 10)?;
        store.remove(b"a", 30, 30)?;
        store.put(b"a", 0, 30, Some(b"5"))?;
        let found: Vec<_> = store
            .find_sessions(b"a", 0, 100)?
            .map(|s| s.map(|s| (s.start, s.end, s.value)))
            .collect::<StateResult<_>>()?;
        assert_eq!(found, vec![(0, 30, b"5".to_vec())]);
        assert_eq!(store.fetch_session(b"a", 0, 10)?, None);

        store.flush()?;
        let flushed: Vec<_> = queue
            .drain()
            .into_iter()
            .map(|e| {
                let (_, start, end) = split_session_key(&e.key);
                (start, end, e.new_value, e.old_value)
            })
            .collect();
        assert_eq!(
            flushed,
            vec![
                (0, 10, None, Some(b"2".to_vec())),
                (30, 30, None, Some(b"1".to_vec())),
                (0, 30, Some(b"5".to_vec()), None),
            ]
        );
        assert_eq!(writer.take().len(), 3);
        let stored: Vec<_> = store
            .inner
            .fetch(b"a")?
            .map(|s| s.map(|s| (s.start, s.end)))
            .collect::<StateResult<_>>()?;
        assert_eq!(stored, vec![(0, 30)]);
        Ok(())
    }

    #[test]
    fn session_reads_merge_in_end_then_start_order_both_ways() -> StateResult<()> {
        let budget = CacheBudget::new(1 << 20);
        let (mut store, _writer, _queue) = cached_sessions(&budget);
        store.put(b"a", 0, 5, Some(b"s1"))?;
        store.put(b"a", 40, 45, Some(b"s3"))?;
        store.flush()?;
        store.put(b"a", 20, 25, Some(b"s2"))?;
        store.put(b"b", 20, 25, Some(b"other"))?;
        let bounds = |iter: SessionIter<'_>| -> StateResult<Vec<(i64, i64)>> {
            iter.map(|s| s.map(|s| (s.start, s.end))).collect()
        };
        assert_eq!(
            bounds(store.find_sessions(b"a", 0, 100)?)?,
            vec![(0, 5), (20, 25), (40, 45)]
        );
        assert_eq!(
            bounds(store.backward_find_sessions(b"a", 6, 100)?)?,
            vec![(40, 45), (20, 25)]
        );
        assert_eq!(bounds(store.find_sessions(b"a", 0, 19)?)?, vec![(0, 5)]);
        Ok(())
    }
}
