//! Store latencies (Kafka's `MeteredKeyValueStore` and `MeteredWindowStore` and their
//! `put-latency-avg`, `get-latency-avg`, `fetch-latency-avg`, `delete-latency-avg` …
//! metrics): the outermost byte-level layer of a key-value or window stack times each
//! operation and keeps count, total and maximum.
//!
//! The counters are written by the one stream thread that owns the store and read by
//! whoever takes a metrics snapshot. A single writer needs no read-modify-write: each
//! update is a relaxed load and a relaxed store (plain moves on common CPUs), so the
//! hot path pays two clock readings and a few moves per operation.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cache::CacheFlushListener;
use super::error::StateResult;
use super::key_value::{BatchEntry, KeyValueIter, KeyValueStore, ReadOnlyKeyValueStore};
use super::restorable::{ChangelogPartition, RestorableStore, RestoreRecord};
use super::session_store::{ReadOnlySessionStore, SessionIter, SessionStore};
use super::window_store::{ReadOnlyWindowStore, WindowEntryIter, WindowFetchIter, WindowStore};

/// Count, total and maximum of one kind of timed operation, written by one thread.
#[derive(Debug, Default)]
pub struct LatencyStat {
    count: AtomicU64,
    total_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

/// A copy of a [`LatencyStat`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Operations timed (Kafka's `…-total`, e.g. `put-total`).
    pub count: u64,
    /// Their summed duration.
    pub total: Duration,
    /// The longest one (Kafka's `…-latency-max`).
    pub max: Duration,
}

impl LatencySnapshot {
    /// The mean duration (Kafka's `…-latency-avg`); zero before the first operation.
    pub fn avg(&self) -> Duration {
        match u32::try_from(self.count) {
            Ok(0) => Duration::ZERO,
            Ok(n) => self.total / n,
            Err(_) => Duration::from_secs_f64(self.total.as_secs_f64() / self.count as f64),
        }
    }
}

impl LatencyStat {
    /// Records one operation that took `elapsed`. Only the owning thread may call it
    /// (see the module docs).
    pub fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let add = |c: &AtomicU64, n: u64| {
            c.store(
                c.load(Ordering::Relaxed).saturating_add(n),
                Ordering::Relaxed,
            )
        };
        add(&self.count, 1);
        add(&self.total_nanos, nanos);
        if nanos > self.max_nanos.load(Ordering::Relaxed) {
            self.max_nanos.store(nanos, Ordering::Relaxed);
        }
    }

    /// Records the time since `started`.
    pub fn record_since(&self, started: Instant) {
        self.record(started.elapsed());
    }

    /// A copy of the figures.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            count: self.count.load(Ordering::Relaxed),
            total: Duration::from_nanos(self.total_nanos.load(Ordering::Relaxed)),
            max: Duration::from_nanos(self.max_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// The latencies of one store of one task.
#[derive(Debug)]
pub struct StoreLatencies {
    /// The store's name.
    pub store: String,
    /// `put`, `put_if_absent` and each entry of `put_all` (Kafka's `put-latency`;
    /// a batch is timed whole and counted once per entry); a window store's `put`
    /// and `put_all` likewise.
    pub put: LatencyStat,
    /// `get` of a key-value store (Kafka's `get-latency`); the fetch of one window of
    /// a window store (Kafka's `fetch-latency`).
    pub get: LatencyStat,
    /// `delete` (Kafka's `delete-latency`).
    pub delete: LatencyStat,
}

impl StoreLatencies {
    fn new(store: &str) -> Self {
        StoreLatencies {
            store: store.to_owned(),
            put: LatencyStat::default(),
            get: LatencyStat::default(),
            delete: LatencyStat::default(),
        }
    }
}

/// Where a task's stores register their latencies when they open (the task's metrics
/// hold the other end). Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct StoreMetricsRegistry(Arc<Mutex<Vec<Arc<StoreLatencies>>>>);

impl StoreMetricsRegistry {
    /// The latencies of `store`: registered now, or the ones it had (a store opened
    /// again keeps counting).
    pub fn register(&self, store: &str) -> Arc<StoreLatencies> {
        let mut stores = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = stores.iter().find(|s| s.store == store) {
            return existing.clone();
        }
        let latencies = Arc::new(StoreLatencies::new(store));
        stores.push(latencies.clone());
        latencies
    }

    /// The registered stores, in registration order.
    pub fn stores(&self) -> Vec<Arc<StoreLatencies>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The timing layer (Kafka's `MeteredKeyValueStore`, over bytes): every operation
/// goes to the inner stack; puts, gets and deletes are timed.
pub(crate) struct MeteredKeyValueStore {
    inner: Box<dyn KeyValueStore>,
    latencies: Arc<StoreLatencies>,
}

impl MeteredKeyValueStore {
    pub(crate) fn new(inner: Box<dyn KeyValueStore>, latencies: Arc<StoreLatencies>) -> Self {
        MeteredKeyValueStore { inner, latencies }
    }
}

impl ReadOnlyKeyValueStore for MeteredKeyValueStore {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        timed(&self.latencies.get, || self.inner.get(key))
    }
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> StateResult<KeyValueIter<'_>> {
        self.inner.range(from, to)
    }
    fn all(&self) -> StateResult<KeyValueIter<'_>> {
        self.inner.all()
    }
    fn approximate_num_entries(&self) -> StateResult<u64> {
        self.inner.approximate_num_entries()
    }
}

impl KeyValueStore for MeteredKeyValueStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> StateResult<()> {
        timed(&self.latencies.put, || self.inner.put(key, value))
    }
    fn delete(&mut self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        timed(&self.latencies.delete, || self.inner.delete(key))
    }
    fn put_all(&mut self, entries: &[BatchEntry]) -> StateResult<()> {
        let started = Instant::now();
        let result = self.inner.put_all(entries);
        record_batch(&self.latencies.put, started, entries.len());
        result
    }
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> StateResult<Option<Vec<u8>>> {
        timed(&self.latencies.put, || self.inner.put_if_absent(key, value))
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

/// Hands the [`RestorableStore`] side of a timing layer to its inner store, untimed
/// (restores are reported by the restore listener and metrics instead).
macro_rules! restorable_through_inner {
    ($layer:ty) => {
        impl RestorableStore for $layer {
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
            fn set_flush_listener(
                &mut self,
                listener: Box<dyn CacheFlushListener>,
                send_old_values: bool,
            ) -> bool {
                self.inner.set_flush_listener(listener, send_old_values)
            }
        }
    };
}

restorable_through_inner!(MeteredKeyValueStore);
restorable_through_inner!(MeteredWindowStore);
restorable_through_inner!(MeteredSessionStore);

/// Runs `op`, timed into `stat`.
fn timed<T>(stat: &LatencyStat, op: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = op();
    stat.record_since(started);
    result
}

/// Records a batch that took the time since `started` as one sample per entry, so
/// the average stays per put.
fn record_batch(stat: &LatencyStat, started: Instant, entries: usize) {
    if entries > 0 {
        let per_entry = started.elapsed() / u32::try_from(entries).unwrap_or(u32::MAX);
        for _ in 0..entries {
            stat.record(per_entry);
        }
    }
}

/// The timing layer of a window store stack (Kafka's `MeteredWindowStore`, over
/// bytes): puts and single-window fetches are timed; range fetches go through.
pub(crate) struct MeteredWindowStore {
    inner: Box<dyn WindowStore>,
    latencies: Arc<StoreLatencies>,
}

impl MeteredWindowStore {
    pub(crate) fn new(inner: Box<dyn WindowStore>, latencies: Arc<StoreLatencies>) -> Self {
        MeteredWindowStore { inner, latencies }
    }
}

impl ReadOnlyWindowStore for MeteredWindowStore {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn fetch_window(&self, key: &[u8], window_start: i64) -> StateResult<Option<Vec<u8>>> {
        timed(&self.latencies.get, || {
            self.inner.fetch_window(key, window_start)
        })
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

impl WindowStore for MeteredWindowStore {
    fn put(&mut self, key: &[u8], window_start: i64, value: Option<&[u8]>) -> StateResult<()> {
        timed(&self.latencies.put, || {
            self.inner.put(key, window_start, value)
        })
    }
    fn put_all(&mut self, entries: &[BatchEntry]) -> StateResult<()> {
        let started = Instant::now();
        let result = self.inner.put_all(entries);
        record_batch(&self.latencies.put, started, entries.len());
        result
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
    fn expired_records(&self) -> u64 {
        self.inner.expired_records()
    }
    fn fetch_all_closed_windows(
        &self,
        time_from: i64,
        time_to: i64,
    ) -> StateResult<WindowEntryIter<'_>> {
        self.inner.fetch_all_closed_windows(time_from, time_to)
    }
}

/// The timing layer of a session store stack (Kafka's `MeteredSessionStore`, over
/// bytes): puts, removes and single-session fetches are timed; searches go through.
pub(crate) struct MeteredSessionStore {
    inner: Box<dyn SessionStore>,
    latencies: Arc<StoreLatencies>,
}

impl MeteredSessionStore {
    pub(crate) fn new(inner: Box<dyn SessionStore>, latencies: Arc<StoreLatencies>) -> Self {
        MeteredSessionStore { inner, latencies }
    }
}

impl ReadOnlySessionStore for MeteredSessionStore {
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
    fn fetch(&self, key: &[u8]) -> StateResult<SessionIter<'_>> {
        self.inner.fetch(key)
    }
    fn backward_fetch(&self, key: &[u8]) -> StateResult<SessionIter<'_>> {
        self.inner.backward_fetch(key)
    }
    fn fetch_session(&self, key: &[u8], start: i64, end: i64) -> StateResult<Option<Vec<u8>>> {
        timed(&self.latencies.get, || {
            self.inner.fetch_session(key, start, end)
        })
    }
}

impl SessionStore for MeteredSessionStore {
    fn put(&mut self, key: &[u8], start: i64, end: i64, value: Option<&[u8]>) -> StateResult<()> {
        // A put of nothing removes the session, as Kafka's `remove` does.
        let stat = match value {
            Some(_) => &self.latencies.put,
            None => &self.latencies.delete,
        };
        timed(stat, || self.inner.put(key, start, end, value))
    }
    fn find_sessions_ending_between(
        &self,
        earliest_session_end: i64,
        latest_session_end: i64,
    ) -> StateResult<SessionIter<'_>> {
        self.inner
            .find_sessions_ending_between(earliest_session_end, latest_session_end)
    }
    fn remove(&mut self, key: &[u8], start: i64, end: i64) -> StateResult<()> {
        timed(&self.latencies.delete, || {
            self.inner.remove(key, start, end)
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::InMemoryStore;

    #[test]
    fn puts_gets_and_deletes_are_timed() {
        let registry = StoreMetricsRegistry::default();
        let latencies = registry.register("counts");
        let mut store =
            MeteredKeyValueStore::new(Box::new(InMemoryStore::new("counts")), latencies);
        store.put(b"a", b"1").unwrap();
        store
            .put_all(&[(b"b".to_vec(), Some(b"2".to_vec())), (b"c".to_vec(), None)])
            .unwrap();
        assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(b"z").unwrap(), None);
        store.delete(b"a").unwrap();
        let stores = registry.stores();
        assert_eq!(stores.len(), 1);
        let s = &stores[0];
        assert_eq!(s.store, "counts");
        assert_eq!(s.put.snapshot().count, 3);
        assert_eq!(s.get.snapshot().count, 2);
        assert_eq!(s.delete.snapshot().count, 1);
        assert!(s.get.snapshot().total > Duration::ZERO);
        assert!(s.get.snapshot().max <= s.get.snapshot().total);
        // Opening the store again keeps its figures.
        assert!(Arc::ptr_eq(&registry.register("counts"), s));
    }

    #[test]
    fn session_puts_removes_and_fetches_are_timed() {
        use crate::state::session_store::SegmentedSessionStore;
        let registry = StoreMetricsRegistry::default();
        let inner = SegmentedSessionStore::in_memory("sessions", None, 60_000, 10_000).unwrap();
        let mut store = MeteredSessionStore::new(Box::new(inner), registry.register("sessions"));
        store.put(b"a", 0, 10, Some(b"1")).unwrap();
        store.put(b"b", 5, 20, Some(b"2")).unwrap();
        assert_eq!(
            store.fetch_session(b"a", 0, 10).unwrap(),
            Some(b"1".to_vec())
        );
        store.remove(b"a", 0, 10).unwrap();
        store.put(b"b", 5, 20, None).unwrap();
        assert_eq!(store.fetch_session(b"a", 0, 10).unwrap(), None);
        let s = &registry.stores()[0];
        assert_eq!(
            (
                s.put.snapshot().count,
                s.get.snapshot().count,
                s.delete.snapshot().count
            ),
            (2, 2, 2)
        );
    }

    #[test]
    fn averages() {
        let stat = LatencyStat::default();
        assert_eq!(stat.snapshot().avg(), Duration::ZERO);
        stat.record(Duration::from_micros(10));
        stat.record(Duration::from_micros(30));
        let s = stat.snapshot();
        assert_eq!(s.count, 2);
        assert_eq!(s.avg(), Duration::from_micros(20));
        assert_eq!(s.max, Duration::from_micros(30));
    }
}
