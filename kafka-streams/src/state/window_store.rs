//! The byte-level window store contract ([`WindowStore`]) and its segmented
//! implementation on RocksDB or in memory ([`SegmentedWindowStore`]).
//!
//! A window store keeps one value per key and window start (Kafka's
//! `WindowStore<Bytes, byte[]>`). Time bounds of reads are inclusive on both ends and
//! refer to window starts. Records older than the store's retention (relative to the
//! largest window start it has seen) are neither written nor read back; see
//! [`segments`](super::segments) for the layout and expiry.
//!
//! A put replaces the value of its key and window, and every binary key carries
//! sequence number 0; unless the store retains duplicates (Kafka's
//! `retainDuplicates`, for stream-stream joins): then every put adds a value under the
//! next sequence number, and a put of no value writes nothing.

use super::error::{StateError, StateResult};
use super::key_value::BatchEntry;
use super::restorable::{ChangelogPartition, RestorableStore, RestoreRecord};
use super::rocks::{RocksDbMemory, RocksDbStore, StoreLocation};
use super::segments::{window_key, Backend, KeySchema, SegmentedBytesStore};

/// An entry of a window store, as stored: key bytes, window start and value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowEntry {
    /// The record key's bytes.
    pub key: Vec<u8>,
    /// The window start (inclusive), in milliseconds.
    pub start: i64,
    /// The value's bytes.
    pub value: Vec<u8>,
}

/// The windows of one key: `(window start, value bytes)`, ordered by window start.
pub type WindowFetchIter<'a> = Box<dyn Iterator<Item = StateResult<(i64, Vec<u8>)>> + 'a>;

/// Entries of several keys, segment by segment and by key bytes then window start
/// within a segment (Kafka's order for RocksDB window stores).
pub type WindowEntryIter<'a> = Box<dyn Iterator<Item = StateResult<WindowEntry>> + 'a>;

/// Read-only access to a window store, over bytes (Kafka's `ReadOnlyWindowStore`):
/// what interactive queries may do.
pub trait ReadOnlyWindowStore {
    /// The store's name.
    fn name(&self) -> &str;

    /// The value of `key` in the window starting at `window_start`, if any (Kafka's
    /// `fetch(key, time)`).
    fn fetch_window(&self, key: &[u8], window_start: i64) -> StateResult<Option<Vec<u8>>>;

    /// The windows of `key` starting between `time_from` and `time_to` (both
    /// inclusive), oldest first.
    fn fetch(&self, key: &[u8], time_from: i64, time_to: i64) -> StateResult<WindowFetchIter<'_>>;

    /// As [`fetch`](Self::fetch), newest first.
    fn backward_fetch(
        &self,
        key: &[u8],
        time_from: i64,
        time_to: i64,
    ) -> StateResult<WindowFetchIter<'_>>;

    /// Every key's windows starting between `time_from` and `time_to` (inclusive).
    fn fetch_all(&self, time_from: i64, time_to: i64) -> StateResult<WindowEntryIter<'_>>;

    /// As [`fetch_all`](Self::fetch_all), in reverse order.
    fn backward_fetch_all(&self, time_from: i64, time_to: i64) -> StateResult<WindowEntryIter<'_>>;

    /// Every entry within retention.
    fn all(&self) -> StateResult<WindowEntryIter<'_>>;

    /// As [`all`](Self::all), in reverse order.
    fn backward_all(&self) -> StateResult<WindowEntryIter<'_>>;
}

/// A window store over bytes (Kafka's `WindowStore<Bytes, byte[]>`): the inner stores
/// and the change-logging decorator implement it. Restoring and checkpointing are the
/// [`RestorableStore`] supertrait, as for key-value stores.
pub trait WindowStore: ReadOnlyWindowStore + RestorableStore + Send {
    /// Sets the value of `key` in the window starting at `window_start`; `None`
    /// deletes it. A window older than the store's retention is not written.
    fn put(&mut self, key: &[u8], window_start: i64, value: Option<&[u8]>) -> StateResult<()>;

    /// Applies several writes, in order, keyed by Kafka's binary window keys
    /// (`key ‖ window start ‖ seqnum`, as the changelog is keyed); `None` deletes.
    /// Stores that can write a batch at once (RocksDB) do so: the record cache writes
    /// its folded windows through with it.
    fn put_all(&mut self, entries: &[BatchEntry]) -> StateResult<()> {
        put_each(self, entries)
    }

    /// Makes every write so far durable.
    fn flush(&mut self) -> StateResult<()>;

    /// Releases the store's resources; using it afterwards fails with
    /// [`StateError::NotOpen`](super::StateError::NotOpen).
    fn close(&mut self) -> StateResult<()>;

    /// Whether the data survives the process.
    fn persistent(&self) -> bool;

    /// How many puts were not written because their window had expired.
    fn expired_records(&self) -> u64;

    /// Every key's windows starting between `time_from` and `time_to` (inclusive), as
    /// [`fetch_all`](ReadOnlyWindowStore::fetch_all) but reaching back to the latest
    /// window start put minus the retention (one millisecond further): the bound of
    /// Kafka's time-ordered window store, from which its on-window-close aggregations
    /// read the windows that closed. The default is `fetch_all`'s bound.
    fn fetch_all_closed_windows(
        &self,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<WindowEntryIter<'_>> {
        self.fetch_all(time_from, time_to)
    }
}

/// Puts each entry of a batch keyed by binary window keys through
/// [`WindowStore::put`], in order.
pub(crate) fn put_each<S: WindowStore + ?Sized>(
    store: &mut S,
    entries: &[BatchEntry],
) -> StateResult<()> {
    for (binary, value) in entries {
        let key = KeySchema::Window.key_of(binary);
        let start = KeySchema::Window.segment_timestamp(binary);
        let (Some(key), Some(start)) = (key, start) else {
            return Err(StateError::Config {
                store: store.name().to_owned(),
                reason: format!(
                    "binary window key of {} bytes is shorter than its 12-byte suffix",
                    binary.len()
                ),
            });
        };
        store.put(key, start, value.as_deref())?;
    }
    Ok(())
}

/// A window store segmented by time, in RocksDB (Kafka's `RocksDBWindowStore`) or in
/// memory (the role of Kafka's `InMemoryWindowStore`, with the same segmented layout
/// and order as on RocksDB).
#[derive(Debug)]
pub struct SegmentedWindowStore {
    inner: SegmentedBytesStore,
    retain_duplicates: bool,
    /// The sequence number of the last duplicate put (Kafka's `seqnum`).
    seqnum: u32,
}

impl SegmentedWindowStore {
    /// Opens (creating if needed) the store at `location`, logged to `changelog`
    /// (`None`: logging disabled), keeping `retention_ms` of windows in segments of
    /// `segment_interval_ms` (see
    /// [`default_segment_interval_ms`](super::default_segment_interval_ms)).
    ///
    /// Opening recovers as the key-value [`RocksDbStore`] does: unusable state is
    /// wiped and restored from the beginning of the changelog.
    pub fn open(
        location: &StoreLocation,
        changelog: Option<ChangelogPartition>,
        memory: &RocksDbMemory,
        retention_ms: i64,
        segment_interval_ms: i64,
    ) -> StateResult<Self> {
        super::segments::validate_segmentation(&location.store, retention_ms, segment_interval_ms)?;
        let rocks = RocksDbStore::open(location, changelog, memory)?;
        Ok(SegmentedWindowStore {
            inner: SegmentedBytesStore::new(
                KeySchema::Window,
                retention_ms,
                segment_interval_ms,
                Backend::RocksDb(Box::new(rocks)),
            )?,
            retain_duplicates: false,
            seqnum: 0,
        })
    }

    /// An empty store held in memory, named `name`, logged to `changelog` (`None`:
    /// logging disabled); rebuilt from its changelog on every start.
    pub fn in_memory(
        name: impl Into<String>,
        changelog: Option<ChangelogPartition>,
        retention_ms: i64,
        segment_interval_ms: i64,
    ) -> StateResult<Self> {
        Ok(SegmentedWindowStore {
            inner: SegmentedBytesStore::new(
                KeySchema::Window,
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
            retain_duplicates: false,
            seqnum: 0,
        })
    }

    /// Reads back to the latest window start minus the retention, as Kafka's
    /// time-ordered window store, instead of one millisecond less far.
    pub(crate) fn set_time_ordered_reads(&mut self) {
        self.inner.set_time_ordered_reads();
    }

    /// The store retaining duplicates (Kafka's `retainDuplicates`): each put adds its
    /// value under the next sequence number; a put of no value writes nothing.
    pub fn with_retain_duplicates(mut self) -> Self {
        self.retain_duplicates = true;
        self
    }

    /// Number of live segments: stays bounded (about `retention / segment interval +
    /// 1`) however long stream time advances.
    pub fn segment_count(&self) -> usize {
        self.inner.segment_count()
    }

    /// The retention period in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        self.inner.retention_ms()
    }

    /// The largest window start put or restored (`-1` before any).
    pub fn observed_stream_time(&self) -> i64 {
        self.inner.observed_stream_time()
    }

    /// Puts not written because their window had expired.
    pub fn expired_records(&self) -> u64 {
        self.inner.expired_records()
    }

    fn entries<'a>(
        &'a self,
        from: i64,
        to: i64,
        forward: bool,
    ) -> StateResult<WindowEntryIter<'a>> {
        self.entries_from(self.inner.read_from(from), to, forward)
    }

    /// The entries from window start `actual_from` (already bounded by retention) to
    /// `to`.
    fn entries_from<'a>(
        &'a self,
        actual_from: i64,
        to: i64,
        forward: bool,
    ) -> StateResult<WindowEntryIter<'a>> {
        if to < actual_from {
            return Ok(Box::new(std::iter::empty()));
        }
        let (first, last) = self.inner.segment_range(actual_from, to);
        let iter = self.inner.scan(first, last, None, forward, move |binary| {
            KeySchema::Window
                .segment_timestamp(binary)
                .is_some_and(|start| (actual_from..=to).contains(&start))
        });
        Ok(Box::new(iter.map(|item| -> StateResult<WindowEntry> {
            let (binary, value) = item?;
            Ok(window_entry(binary, value))
        })))
    }

    fn key_windows<'a>(
        &'a self,
        key: &[u8],
        from: i64,
        to: i64,
        forward: bool,
    ) -> StateResult<WindowFetchIter<'a>> {
        let actual_from = self.inner.read_from(from);
        if to < actual_from {
            return Ok(Box::new(std::iter::empty()));
        }
        let (first, last) = self.inner.segment_range(actual_from, to);
        let bounds = (
            window_key(key, actual_from, 0),
            window_key(key, to, u32::MAX),
        );
        let wanted = key.to_vec();
        let iter = self
            .inner
            .scan(first, last, Some(bounds), forward, move |binary| {
                KeySchema::Window.key_of(binary) == Some(wanted.as_slice())
                    && KeySchema::Window
                        .segment_timestamp(binary)
                        .is_some_and(|start| (actual_from..=to).contains(&start))
            });
        Ok(Box::new(iter.map(|item| -> StateResult<(i64, Vec<u8>)> {
            let (binary, value) = item?;
            let start = KeySchema::Window.segment_timestamp(&binary).unwrap_or(0);
            Ok((start, value))
        })))
    }
}

/// The sequence number after `seqnum`, within Kafka's 31 bits.
pub(crate) fn next_seqnum(seqnum: u32) -> u32 {
    seqnum.wrapping_add(1) & 0x7FFF_FFFF
}

/// Splits a binary window key (already checked by the scan's filter).
fn window_entry(binary: Vec<u8>, value: Vec<u8>) -> WindowEntry {
    let start = KeySchema::Window.segment_timestamp(&binary).unwrap_or(0);
    let key = KeySchema::Window.key_of(&binary).unwrap_or(&[]).to_vec();
    WindowEntry { key, start, value }
}

impl ReadOnlyWindowStore for SegmentedWindowStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn fetch_window(&self, key: &[u8], window_start: i64) -> StateResult<Option<Vec<u8>>> {
        if window_start < 0 {
            return Ok(None);
        }
        self.inner.get(&window_key(key, window_start, 0))
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
        self.entries(time_from, time_to, true)
    }

    fn backward_fetch_all(&self, time_from: i64, time_to: i64) -> StateResult<WindowEntryIter<'_>> {
        self.entries(time_from, time_to, false)
    }

    fn all(&self) -> StateResult<WindowEntryIter<'_>> {
        self.entries(0, i64::MAX, true)
    }

    fn backward_all(&self) -> StateResult<WindowEntryIter<'_>> {
        self.entries(0, i64::MAX, false)
    }
}

impl WindowStore for SegmentedWindowStore {
    fn put(&mut self, key: &[u8], window_start: i64, value: Option<&[u8]>) -> StateResult<()> {
        if !self.retain_duplicates {
            return self.inner.put(&window_key(key, window_start, 0), value);
        }
        let Some(value) = value else {
            return Ok(());
        };
        self.seqnum = next_seqnum(self.seqnum);
        self.inner
            .put(&window_key(key, window_start, self.seqnum), Some(value))
    }

    fn expired_records(&self) -> u64 {
        self.inner.expired_records()
    }

    /// One write for the whole batch (the record cache's flush); a store retaining
    /// duplicates puts them one by one, each under its next sequence number.
    fn put_all(&mut self, entries: &[BatchEntry]) -> StateResult<()> {
        if self.retain_duplicates {
            return put_each(self, entries);
        }
        self.inner.put_all(
            entries
                .iter()
                .map(|(key, value)| (key.as_slice(), value.as_deref())),
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

    fn fetch_all_closed_windows(
        &self,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<WindowEntryIter<'_>> {
        // Kafka's time-ordered store: `max(from, observedStreamTime - retention)`,
        // where the key-ordered one adds 1. A window starting there is still in a live
        // segment.
        let horizon = self
            .inner
            .observed_stream_time()
            .saturating_sub(self.inner.retention_ms());
        self.entries_from(time_from.max(horizon).max(0), time_to, true)
    }
}

/// Restores from changelog records keyed by Kafka's binary window keys
/// (`key ‖ start ‖ seqnum`), as the change-logging layer writes them.
impl RestorableStore for SegmentedWindowStore {
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

    const MINUTE: i64 = 60_000;

    fn rocks(dir: &std::path::Path, retention: i64) -> SegmentedWindowStore {
        let location = StoreLocation {
            state_dir: dir.to_path_buf(),
            application_id: "app".into(),
            task: "0_0".into(),
            store: "w".into(),
        };
        let memory = RocksDbMemory::with_config(RocksDbMemoryConfig::default());
        SegmentedWindowStore::open(
            &location,
            Some(ChangelogPartition {
                topic: "app-w-changelog".into(),
                partition: 0,
            }),
            &memory,
            retention,
            super::super::default_segment_interval_ms(retention),
        )
        .unwrap()
    }

    fn both(dir: &std::path::Path, retention: i64) -> Vec<SegmentedWindowStore> {
        vec![
            rocks(dir, retention),
            SegmentedWindowStore::in_memory(
                "w",
                None,
                retention,
                super::super::default_segment_interval_ms(retention),
            )
            .unwrap(),
        ]
    }

    fn starts(iter: WindowFetchIter<'_>) -> Vec<(i64, Vec<u8>)> {
        iter.collect::<StateResult<_>>().unwrap()
    }

    fn entries(iter: WindowEntryIter<'_>) -> Vec<(Vec<u8>, i64)> {
        iter.map(|e| e.map(|e| (e.key, e.start)))
            .collect::<StateResult<_>>()
            .unwrap()
    }

    #[test]
    fn a_batch_reads_back_as_the_same_puts_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let batch: Vec<BatchEntry> = vec![
            (window_key(b"a", 0, 0), Some(b"1".to_vec())),
            (window_key(b"b", MINUTE, 0), Some(b"2".to_vec())),
            (window_key(b"a", 2 * MINUTE, 0), Some(b"3".to_vec())),
            (window_key(b"b", MINUTE, 0), None),
            // Expires the segments of the first writes (retention 2 minutes).
            (window_key(b"c", 10 * MINUTE, 0), Some(b"4".to_vec())),
            (window_key(b"a", 9 * MINUTE, 0), Some(b"5".to_vec())),
        ];
        let mut one_by_one =
            SegmentedWindowStore::in_memory("w", None, 2 * MINUTE, MINUTE).unwrap();
        for (binary, value) in &batch {
            one_by_one
                .put_all(std::slice::from_ref(&(binary.clone(), value.clone())))
                .unwrap();
        }
        for mut store in both(dir.path(), 2 * MINUTE) {
            store.put_all(&batch).unwrap();
            let all = |s: &SegmentedWindowStore| {
                s.all()
                    .unwrap()
                    .map(|e| e.map(|e| (e.key, e.start, e.value)))
                    .collect::<StateResult<Vec<_>>>()
                    .unwrap()
            };
            assert_eq!(all(&store), all(&one_by_one));
            assert_eq!(
                all(&store),
                vec![
                    (b"a".to_vec(), 9 * MINUTE, b"5".to_vec()),
                    (b"c".to_vec(), 10 * MINUTE, b"4".to_vec()),
                ]
            );
            assert_eq!(store.observed_stream_time(), 10 * MINUTE);
        }
    }

    #[test]
    fn fetch_bounds_are_inclusive_and_backward_reverses() {
        let dir = tempfile::tempdir().unwrap();
        for mut store in both(dir.path(), 60 * MINUTE) {
            // Windows across two segments (interval 30 minutes), and keys that are
            // prefixes of each other, which share the byte range of a key's windows.
            for start in [0, 5 * MINUTE, 10 * MINUTE, 40 * MINUTE] {
                store.put(b"a", start, Some(&start.to_be_bytes())).unwrap();
                store.put(b"a\0", start, Some(b"other")).unwrap();
                store.put(b"", start, Some(b"empty")).unwrap();
            }
            let got = starts(store.fetch(b"a", 5 * MINUTE, 40 * MINUTE).unwrap());
            assert_eq!(
                got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
                vec![5 * MINUTE, 10 * MINUTE, 40 * MINUTE],
                "both bounds inclusive"
            );
            assert_eq!(got[0].1, (5 * MINUTE).to_be_bytes().to_vec());
            let back = starts(store.backward_fetch(b"a", 5 * MINUTE, 40 * MINUTE).unwrap());
            assert_eq!(
                back.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
                vec![40 * MINUTE, 10 * MINUTE, 5 * MINUTE]
            );
            assert!(starts(store.fetch(b"a", 6 * MINUTE, 9 * MINUTE).unwrap()).is_empty());
            assert!(starts(store.fetch(b"a", 9 * MINUTE, 6 * MINUTE).unwrap()).is_empty());
            assert_eq!(
                store.fetch_window(b"a", 10 * MINUTE).unwrap(),
                Some((10 * MINUTE).to_be_bytes().to_vec())
            );
            assert_eq!(store.fetch_window(b"a", 11 * MINUTE).unwrap(), None);
            assert_eq!(store.fetch_window(b"b", 10 * MINUTE).unwrap(), None);

            let all = entries(store.fetch_all(5 * MINUTE, 10 * MINUTE).unwrap());
            // In binary-key order within the segment, as in Kafka: keys that are
            // prefixes of others interleave with them.
            let mut expected: Vec<(Vec<u8>, i64)> = [b"".as_slice(), b"a", b"a\0"]
                .iter()
                .flat_map(|k| [(k.to_vec(), 5 * MINUTE), (k.to_vec(), 10 * MINUTE)])
                .collect();
            expected.sort_by_key(|(k, s)| window_key(k, *s, 0));
            assert_eq!(all, expected);
            let mut reversed = entries(store.backward_fetch_all(5 * MINUTE, 10 * MINUTE).unwrap());
            reversed.reverse();
            assert_eq!(reversed, all);
            let everything = entries(store.all().unwrap());
            assert_eq!(everything.len(), 12);
            // Segment by segment: the 40-minute windows come last.
            assert!(everything[9..].iter().all(|(_, s)| *s == 40 * MINUTE));
            let mut backward = entries(store.backward_all().unwrap());
            backward.reverse();
            assert_eq!(backward, everything);

            // A put of None deletes.
            store.put(b"a", 10 * MINUTE, None).unwrap();
            assert_eq!(store.fetch_window(b"a", 10 * MINUTE).unwrap(), None);
            assert_eq!(starts(store.fetch(b"a", 0, i64::MAX).unwrap()).len(), 3);
        }
    }

    #[test]
    fn closed_window_reads_reach_one_millisecond_further_back() {
        let dir = tempfile::tempdir().unwrap();
        for mut store in both(dir.path(), 10) {
            for start in [0, 10, 20] {
                store.put(b"a", start, Some(b"v")).unwrap();
            }
            // Latest start 20, retention 10: fetch_all reads from 11, Kafka's
            // time-ordered bound (what on-window-close emits read) from 10.
            assert_eq!(
                entries(store.fetch_all(0, 20).unwrap()),
                vec![(b"a".to_vec(), 20)]
            );
            assert_eq!(
                entries(store.fetch_all_closed_windows(0, 20).unwrap()),
                vec![(b"a".to_vec(), 10), (b"a".to_vec(), 20)]
            );
            assert!(entries(store.fetch_all_closed_windows(0, 9).unwrap()).is_empty());
        }
    }

    #[test]
    fn segments_stay_bounded_as_stream_time_advances() {
        let dir = tempfile::tempdir().unwrap();
        for mut store in both(dir.path(), 10 * MINUTE) {
            // Retention 10 minutes, segments of 5 minutes; one window per 10 s for
            // five hours of stream time.
            let mut max_segments = 0;
            for i in 0..1_800i64 {
                let start = i * 10_000;
                store
                    .put(format!("sensor-{}", i % 7).as_bytes(), start, Some(b"v"))
                    .unwrap();
                max_segments = max_segments.max(store.segment_count());
                if i % 100 == 0 {
                    let stored = store.inner.stored_segment_count().unwrap();
                    assert!(stored <= 3, "{stored} segments hold data at {start}");
                }
            }
            assert!(max_segments <= 3, "{max_segments} segments");
            // What the backend holds, not only the bookkeeping: expired segments
            // are gone from the data.
            assert!(store.inner.stored_segment_count().unwrap() <= 3);
            assert_eq!(store.observed_stream_time(), 1_799 * 10_000);
            // Only windows within retention are left: starts > 17_990_000 - 600_000.
            let left = entries(store.all().unwrap());
            assert!(left.iter().all(|(_, s)| *s > 1_799 * 10_000 - 10 * MINUTE));
            assert_eq!(left.len(), 60);
            // A window older than retention is not written.
            store.put(b"late", 0, Some(b"v")).unwrap();
            assert_eq!(store.expired_records(), 1);
            assert_eq!(store.fetch_window(b"late", 0).unwrap(), None);
        }
    }

    #[test]
    fn logged_data_without_checkpoint_is_wiped_on_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = rocks(dir.path(), 60 * MINUTE);
            store.put(b"k", 0, Some(b"0")).unwrap();
            store.checkpoint(1).unwrap();
            store.put(b"k", MINUTE, Some(b"1")).unwrap();
            // Exactly-once: the checkpoint goes when processing starts.
            store.remove_checkpoint().unwrap();
            store.close().unwrap();
        }
        let store = rocks(dir.path(), 60 * MINUTE);
        assert_eq!(store.checkpointed_offset(), None);
        assert_eq!(store.segment_count(), 0);
        assert!(entries(store.all().unwrap()).is_empty());
    }

    #[test]
    fn rocksdb_segments_are_found_again_on_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = rocks(dir.path(), 60 * MINUTE);
            store.put(b"k", 0, Some(b"0")).unwrap();
            store.put(b"k", 50 * MINUTE, Some(b"50")).unwrap();
            store.put(b"k", 70 * MINUTE, Some(b"70")).unwrap();
            assert_eq!(store.segment_count(), 3);
            store.checkpoint(3).unwrap();
            store.close().unwrap();
        }
        let store = rocks(dir.path(), 60 * MINUTE);
        assert_eq!(store.checkpointed_offset(), Some(3));
        assert_eq!(store.segment_count(), 3);
        // Observed stream time restarts at the newest segment's start (60 minutes),
        // so the window at 0 is already out of retention for reads.
        assert_eq!(store.observed_stream_time(), 60 * MINUTE);
        assert_eq!(
            starts(store.fetch(b"k", 0, i64::MAX).unwrap()),
            vec![(50 * MINUTE, b"50".to_vec()), (70 * MINUTE, b"70".to_vec())]
        );
    }

    #[test]
    fn a_store_retaining_duplicates_keeps_every_put_and_logs_each_under_its_own_seqnum() {
        use crate::state::logging::RecordingChangelogWriter;
        use crate::state::window_logging::ChangeLoggingWindowStore;
        use std::sync::Arc;

        let changelog = ChangelogPartition {
            topic: "app-w-changelog".into(),
            partition: 0,
        };
        let inner = SegmentedWindowStore::in_memory("w", Some(changelog.clone()), MINUTE, MINUTE)
            .unwrap()
            .with_retain_duplicates();
        let writer = RecordingChangelogWriter::new();
        let mut store =
            ChangeLoggingWindowStore::new(Box::new(inner), changelog, Arc::new(writer.clone()))
                .retaining_duplicates(true);
        store.put(b"k", 10, Some(b"a")).unwrap();
        store.put(b"k", 10, Some(b"b")).unwrap();
        // No value: nothing to keep, nothing written or logged.
        store.put(b"k", 10, None).unwrap();
        store.put(b"k", 12, Some(b"c")).unwrap();
        let found: Vec<(i64, Vec<u8>)> = store
            .fetch(b"k", 0, 20)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            found,
            vec![
                (10, b"a".to_vec()),
                (10, b"b".to_vec()),
                (12, b"c".to_vec())
            ]
        );
        let logged: Vec<Vec<u8>> = writer.take().into_iter().map(|r| r.key).collect();
        assert_eq!(
            logged,
            vec![
                window_key(b"k", 10, 1),
                window_key(b"k", 10, 2),
                window_key(b"k", 12, 3)
            ]
        );
    }
}
