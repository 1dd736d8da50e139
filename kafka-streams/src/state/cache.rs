//! The record cache decorator (`statestore.cache.max.bytes`).
//!
//! Between commits, repeated updates to a key are folded in the cache: only the latest
//! value reaches the inner store, the changelog and the downstream processors. Entries
//! leave the cache in two ways, both writing them through to the inner store in
//! least-recently-written order and handing them to the [`CacheFlushListener`] (Kafka's
//! cache flush listener, which a KTable uses to emit its updates):
//! - **eviction**, when the bytes held by all the caches sharing a [`CacheBudget`] exceed
//!   it: the cache being written to evicts its oldest entries until the total fits;
//! - **flush**, on commit ([`KeyValueStore::flush`]), which empties the cache before the
//!   inner store is flushed.
//!
//! One [`CacheBudget`] is shared by the stores of a stream thread (Kafka's `ThreadCache`:
//! the runtime gives each thread `statestore.cache.max.bytes / num.stream.threads`). A
//! budget of zero bytes disables folding: every write goes straight through.
//!
//! Closing a store discards its unflushed entries: a clean close commits (flushes)
//! first, and a dirty close must not write anything.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::error::StateResult;
use super::key_value::{
    range_is_empty, BatchEntry, KeyValueIter, KeyValueStore, MergeIter, ReadOnlyKeyValueStore,
};
use super::restorable::{ChangelogPartition, RestorableStore, RestoreRecord};

/// Bytes charged for each cached entry on top of its key and value (map nodes, order
/// index, bookkeeping), like Kafka's `LRUCacheEntry` overhead.
pub(crate) const CACHE_ENTRY_OVERHEAD: usize = 64;

#[derive(Debug)]
struct BudgetInner {
    max_bytes: usize,
    used: AtomicUsize,
}

/// A byte budget shared by several caching stores (Kafka's per-thread `ThreadCache`
/// size). Clones share the same budget.
#[derive(Debug, Clone)]
pub struct CacheBudget {
    inner: Arc<BudgetInner>,
}

impl CacheBudget {
    /// A budget of `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        CacheBudget {
            inner: Arc::new(BudgetInner {
                max_bytes,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// The budget in bytes.
    pub fn max_bytes(&self) -> usize {
        self.inner.max_bytes
    }

    /// Bytes currently held by the caches sharing the budget.
    pub fn used_bytes(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    fn add(&self, bytes: usize) {
        self.inner.used.fetch_add(bytes, Ordering::Relaxed);
    }

    fn release(&self, bytes: usize) {
        self.inner.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn over(&self) -> bool {
        self.used_bytes() > self.inner.max_bytes
    }
}

/// An update leaving the cache, handed to the [`CacheFlushListener`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushedEntry {
    /// The key.
    pub key: Vec<u8>,
    /// The folded new value; `None` is a delete (to forward as a tombstone).
    pub new_value: Option<Vec<u8>>,
    /// The value the inner store held before, when old values are requested
    /// ([`RestorableStore::set_flush_listener`](super::RestorableStore::set_flush_listener)), else `None`.
    pub old_value: Option<Vec<u8>>,
}

/// Receives the updates the cache writes through (Kafka's `CacheFlushListener`).
///
/// Called after the update is in the inner store (and logged to the changelog).
pub trait CacheFlushListener: Send {
    /// One update leaving the cache.
    fn apply(&mut self, entry: FlushedEntry);

    /// A delete of a key the inner store never had left the cache: nothing was
    /// written and nothing is to be forwarded. For listeners that keep something per
    /// pending delete (the deleting record's timestamp) and must let it go.
    fn dropped(&mut self, _key: &[u8]) {}
}

impl<F: FnMut(FlushedEntry) + Send> CacheFlushListener for F {
    fn apply(&mut self, entry: FlushedEntry) {
        self(entry)
    }
}

/// A listener that queues the flushed updates for a processor or the runtime to drain
/// and forward (a Rust listener cannot hold the processor context). Clones share the
/// queue.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlushQueue {
    shared: Arc<FlushQueueInner>,
}

#[derive(Debug, Default)]
struct FlushQueueInner {
    entries: Mutex<VecDeque<FlushedEntry>>,
    /// Whether `entries` may hold something. Processors drain after every record,
    /// and the queue is almost always empty then: this spares that lock.
    queued: AtomicBool,
    /// Whether to keep the keys of [`CacheFlushListener::dropped`] deletes.
    tracks_dropped: bool,
    dropped: Mutex<Vec<Vec<u8>>>,
    /// Whether `dropped` may hold something (as `queued`).
    dropped_queued: AtomicBool,
}

impl FlushQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue that also keeps the keys of deletes the cache dropped
    /// ([`FlushQueue::drain_dropped`]).
    pub fn tracking_dropped() -> Self {
        FlushQueue {
            shared: Arc::new(FlushQueueInner {
                tracks_dropped: true,
                ..FlushQueueInner::default()
            }),
        }
    }

    /// Removes and returns the keys of the deletes the cache dropped without a write.
    pub fn drain_dropped(&self) -> Vec<Vec<u8>> {
        if !self.shared.dropped_queued.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut dropped = match self.shared.dropped.lock() {
            Ok(dropped) => dropped,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.shared.dropped_queued.store(false, Ordering::Release);
        std::mem::take(&mut *dropped)
    }

    /// Removes and returns the queued updates, oldest first.
    pub fn drain(&self) -> Vec<FlushedEntry> {
        if !self.shared.queued.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut queue = match self.shared.entries.lock() {
            Ok(queue) => queue,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.shared.queued.store(false, Ordering::Release);
        queue.drain(..).collect()
    }
}

impl CacheFlushListener for FlushQueue {
    fn apply(&mut self, entry: FlushedEntry) {
        let mut queue = match self.shared.entries.lock() {
            Ok(queue) => queue,
            Err(poisoned) => poisoned.into_inner(),
        };
        queue.push_back(entry);
        // Under the lock, so a drain that clears the flag has taken this entry.
        self.shared.queued.store(true, Ordering::Release);
    }

    fn dropped(&mut self, key: &[u8]) {
        if !self.shared.tracks_dropped {
            return;
        }
        let mut dropped = match self.shared.dropped.lock() {
            Ok(dropped) => dropped,
            Err(poisoned) => poisoned.into_inner(),
        };
        dropped.push(key.to_vec());
        self.shared.dropped_queued.store(true, Ordering::Release);
    }
}

#[derive(Debug)]
struct CacheEntry {
    /// The key, shared with the sorted set and the write-order queue.
    key: CachedKey,
    value: Option<Vec<u8>>,
    size: usize,
    /// Not yet written to the inner store (a cache keeping clean entries keeps them
    /// after flushing, for reads, until evicted).
    dirty: bool,
}

/// A cached key, shared by its entry, the sorted set and its positions in the write
/// order. It carries the sequence number of the key's latest write, so telling a
/// live write-order position from a stale one needs no map lookup.
#[derive(Debug, Clone)]
struct CachedKey(Arc<KeyCell>);

#[derive(Debug)]
struct KeyCell {
    bytes: Box<[u8]>,
    /// The latest write's sequence number; [`EVICTED`] once the key left the cache
    /// (a later write of the same key gets a new cell).
    latest: AtomicU64,
}

/// `KeyCell::latest` of a key no longer cached.
const EVICTED: u64 = u64::MAX;

impl CachedKey {
    fn new(bytes: &[u8], seq: u64) -> Self {
        CachedKey(Arc::new(KeyCell {
            bytes: bytes.into(),
            latest: AtomicU64::new(seq),
        }))
    }

    fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// Whether the write with sequence number `seq` is this key's latest, cached one.
    fn is_latest(&self, seq: u64) -> bool {
        // Relaxed: the cell is only written and read by the store's owner.
        self.0.latest.load(Ordering::Relaxed) == seq
    }

    fn set_latest(&self, seq: u64) {
        self.0.latest.store(seq, Ordering::Relaxed);
    }
}

impl std::borrow::Borrow<[u8]> for CachedKey {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

impl PartialEq for CachedKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for CachedKey {}

impl std::hash::Hash for CachedKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes, so lookups by `&[u8]` find it.
        self.bytes().hash(state);
    }
}

impl PartialOrd for CachedKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CachedKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes().cmp(other.bytes())
    }
}

/// The dirty entries of one caching store (Kafka's `NamedCache`): folded writes by
/// key, in key order (for ranges) and in write order (for eviction and flushing),
/// charged to a shared [`CacheBudget`], with the listener that the entries written
/// through are handed to. The key-value, window and session caching stores are this
/// cache in front of their own inner store.
pub(crate) struct NamedCache {
    budget: CacheBudget,
    /// Point reads and writes, the hot path, go through a hash map: on a sorted map,
    /// key comparisons cost more than all the rest of an update.
    entries: HashMap<CachedKey, CacheEntry>,
    /// The cached keys in order, for ranges; changed only when a key enters or
    /// leaves the cache.
    sorted: BTreeSet<CachedKey>,
    /// Write order, oldest first: (sequence number, key). A rewritten key is pushed
    /// again and its older position left behind, stale (its sequence number is no
    /// longer the key's latest): an update of a hot key then costs one map lookup
    /// and no allocation. Stale positions are dropped when they reach the front, or
    /// all at once when they outnumber the live ones.
    order: VecDeque<(u64, CachedKey)>,
    next_seq: u64,
    bytes: usize,
    listener: Option<Box<dyn CacheFlushListener>>,
    send_old_values: bool,
    /// Whether flushed entries stay, clean, until evicted (Kafka's `ThreadCache`,
    /// which is a read cache too), instead of leaving the cache.
    keep_clean: bool,
    /// Number of dirty entries.
    dirty: usize,
}

/// Which entries leave the cache's dirty state in a write-through.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WriteThrough {
    /// Every dirty entry (a commit's flush); they stay cached, clean, if the cache
    /// keeps clean entries.
    Flush,
    /// The `n` oldest entries, dirty or clean, leave the cache (over budget).
    Evict(usize),
}

impl NamedCache {
    /// An empty cache charging its entries to `budget`, whose entries leave it when
    /// flushed.
    pub(crate) fn new(budget: CacheBudget) -> Self {
        NamedCache {
            budget,
            entries: HashMap::new(),
            sorted: BTreeSet::new(),
            order: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
            listener: None,
            send_old_values: false,
            keep_clean: false,
            dirty: 0,
        }
    }

    /// An empty cache whose flushed entries stay, clean, for reads until evicted, as
    /// in Kafka's `ThreadCache`. Window and session stores need it: their inner
    /// stores stop returning windows that fell out of retention, while Kafka's cache
    /// still returns them as long as they are cached, and aggregations read them.
    pub(crate) fn keeping_clean_entries(budget: CacheBudget) -> Self {
        let mut cache = Self::new(budget);
        cache.keep_clean = true;
        cache
    }

    /// Bytes this cache holds.
    #[cfg(test)]
    pub(crate) fn cached_bytes(&self) -> usize {
        self.bytes
    }

    /// Number of cached keys, clean or dirty.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Number of keys with an unflushed update.
    #[cfg(test)]
    pub(crate) fn dirty_len(&self) -> usize {
        self.dirty
    }

    /// The cached value of `key`: `None` when the key is not cached, `Some(None)` for
    /// a cached delete.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.entries.get(key).map(|e| e.value.as_deref())
    }

    /// The cached entries whose keys lie between `from` and `to`, ascending (`None`
    /// values are cached deletes).
    pub(crate) fn range<'a>(
        &'a self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> impl DoubleEndedIterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        self.sorted.range::<[u8], _>((from, to)).filter_map(|k| {
            self.entries
                .get(k.bytes())
                .map(|e| (k.bytes(), e.value.as_deref()))
        })
    }

    /// Sets the listener of the entries written through; with `send_old_values`, each
    /// carries the inner store's previous value.
    pub(crate) fn set_listener(
        &mut self,
        listener: Box<dyn CacheFlushListener>,
        send_old_values: bool,
    ) {
        self.listener = Some(listener);
        self.send_old_values = send_old_values;
    }

    /// Caches a write of `key` (`None`: a delete), folding it into an earlier one.
    pub(crate) fn insert(&mut self, key: &[u8], value: Option<&[u8]>) {
        let size = key.len() + value.map_or(0, <[u8]>::len) + CACHE_ENTRY_OVERHEAD;
        let seq = self.next_seq;
        self.next_seq += 1;
        let (shared, old_size) = match self.entries.get_mut(key) {
            Some(existing) => {
                match (&mut existing.value, value) {
                    // Reuse the buffer: hot keys are rewritten with same-sized values.
                    (Some(buffer), Some(value)) => {
                        buffer.clear();
                        buffer.extend_from_slice(value);
                    }
                    (slot, value) => *slot = value.map(<[u8]>::to_vec),
                }
                existing.key.set_latest(seq);
                if !existing.dirty {
                    existing.dirty = true;
                    self.dirty += 1;
                }
                let old_size = std::mem::replace(&mut existing.size, size);
                (existing.key.clone(), old_size)
            }
            None => {
                let shared = CachedKey::new(key, seq);
                self.sorted.insert(shared.clone());
                self.entries.insert(
                    shared.clone(),
                    CacheEntry {
                        key: shared.clone(),
                        value: value.map(<[u8]>::to_vec),
                        size,
                        dirty: true,
                    },
                );
                self.dirty += 1;
                (shared, 0)
            }
        };
        self.release(old_size);
        self.order.push_back((seq, shared));
        self.bytes += size;
        self.budget.add(size);
        if self.order.len() > 2 * self.entries.len() + 64 {
            self.order.retain(|(seq, key)| key.is_latest(*seq));
        }
    }

    fn release(&mut self, size: usize) {
        self.bytes -= size;
        self.budget.release(size);
    }

    /// Drops `key` from the cache without writing it anywhere.
    pub(crate) fn remove(&mut self, key: &[u8]) {
        if let Some(entry) = self.entries.remove(key) {
            if entry.dirty {
                self.dirty -= 1;
            }
            entry.key.set_latest(EVICTED);
            self.sorted.remove(key);
            self.release(entry.size);
        }
    }

    /// The cached entries' keys, least recently written first.
    fn oldest(&self) -> impl Iterator<Item = &CachedKey> {
        self.order
            .iter()
            .filter(|(seq, key)| key.is_latest(*seq))
            .map(|(_, key)| key)
    }

    /// How many of the oldest entries to write through for the shared budget to fit
    /// again (0 when it fits).
    pub(crate) fn eviction_count(&self) -> usize {
        if !self.budget.over() {
            return 0;
        }
        let mut freed = 0;
        let excess = self.budget.used_bytes() - self.budget.max_bytes();
        let mut count = 0;
        for key in self.oldest() {
            if freed >= excess {
                break;
            }
            freed += self.entries.get(key.bytes()).map_or(0, |e| e.size);
            count += 1;
        }
        count
    }

    /// Writes the dirty entries among `which` through and hands them to the listener;
    /// only then (so a failed write loses nothing) drops `which` from the cache, or,
    /// for a flush of a cache keeping clean entries, marks them clean.
    ///
    /// `stored` reads `inner`'s value of a cached key (for old values, and to skip
    /// deletes of keys `inner` never had); `write` applies the entries, oldest first.
    pub(crate) fn write_through<S: ?Sized>(
        &mut self,
        which: WriteThrough,
        inner: &mut S,
        stored: impl Fn(&S, &[u8]) -> StateResult<Option<Vec<u8>>>,
        write: impl FnOnce(&mut S, &[BatchEntry]) -> StateResult<()>,
    ) -> StateResult<()> {
        let leaving: Vec<CachedKey> = match which {
            WriteThrough::Flush if self.dirty == 0 => return Ok(()),
            WriteThrough::Flush => self
                .oldest()
                .filter(|key| self.entries.get(key.bytes()).is_some_and(|e| e.dirty))
                .cloned()
                .collect(),
            WriteThrough::Evict(0) => return Ok(()),
            WriteThrough::Evict(count) => self.oldest().take(count).cloned().collect(),
        };
        let mut batch: Vec<BatchEntry> = Vec::with_capacity(leaving.len());
        let mut olds: Vec<Option<Vec<u8>>> = Vec::with_capacity(leaving.len());
        let listening = self.listener.is_some();
        let mut dropped: Vec<Vec<u8>> = Vec::new();
        for key in &leaving {
            let Some(entry) = self.entries.get(key.bytes()).filter(|e| e.dirty) else {
                continue;
            };
            let new_value = entry.value.clone();
            let old_value = if listening && (new_value.is_none() || self.send_old_values) {
                stored(inner, key.bytes())?
            } else {
                None
            };
            if listening && new_value.is_none() && old_value.is_none() {
                // Deleting a key the inner store never had: nothing to write or forward.
                dropped.push(key.bytes().to_vec());
                continue;
            }
            batch.push((key.bytes().to_vec(), new_value));
            olds.push(old_value);
        }
        write(inner, &batch)?;
        match which {
            WriteThrough::Flush if self.keep_clean => {
                for key in &leaving {
                    if let Some(entry) = self.entries.get_mut(key.bytes()) {
                        entry.dirty = false;
                    }
                }
                self.dirty = 0;
            }
            _ => {
                for key in &leaving {
                    self.remove(key.bytes());
                }
            }
        }
        // What left the cache led the write order: its positions are stale now.
        while let Some((seq, key)) = self.order.front() {
            if key.is_latest(*seq) {
                break;
            }
            self.order.pop_front();
        }
        let send_old_values = self.send_old_values;
        if let Some(listener) = self.listener.as_mut() {
            for ((key, new_value), old_value) in batch.into_iter().zip(olds) {
                listener.apply(FlushedEntry {
                    key,
                    new_value,
                    old_value: if send_old_values { old_value } else { None },
                });
            }
            for key in &dropped {
                listener.dropped(key);
            }
        }
        Ok(())
    }

    /// Forgets every entry, unwritten (a store closing: a clean close has flushed).
    pub(crate) fn discard(&mut self) {
        self.budget.release(self.bytes);
        self.bytes = 0;
        self.entries.clear();
        self.sorted.clear();
        self.order.clear();
        self.dirty = 0;
    }
}

impl Drop for NamedCache {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Folds writes between commits in front of the inner store (Kafka's
/// `CachingKeyValueStore`).
pub(crate) struct CachingStore {
    inner: Box<dyn KeyValueStore>,
    cache: NamedCache,
}

impl CachingStore {
    /// Wraps `inner`, charging cached entries to `budget`.
    pub fn new(inner: Box<dyn KeyValueStore>, budget: CacheBudget) -> Self {
        CachingStore {
            inner,
            cache: NamedCache::new(budget),
        }
    }

    /// Bytes this store's cache holds.
    #[cfg(test)]
    pub fn cached_bytes(&self) -> usize {
        self.cache.cached_bytes()
    }

    /// Number of keys with an unflushed update.
    #[cfg(test)]
    pub fn dirty_keys(&self) -> usize {
        self.cache.dirty_len()
    }

    /// Writes the oldest entries through until the shared budget fits again (or this
    /// cache is empty).
    fn maybe_evict(&mut self) -> StateResult<()> {
        let count = self.cache.eviction_count();
        self.write_through(WriteThrough::Evict(count))
    }

    /// Writes entries to the inner store and forwards them.
    fn write_through(&mut self, which: WriteThrough) -> StateResult<()> {
        self.cache.write_through(
            which,
            self.inner.as_mut(),
            |inner, key| inner.get(key),
            |inner, batch| inner.put_all(batch),
        )
    }
}

impl ReadOnlyKeyValueStore for CachingStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        match self.cache.get(key) {
            Some(value) => Ok(value.map(<[u8]>::to_vec)),
            None => self.inner.get(key),
        }
    }

    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> StateResult<KeyValueIter<'_>> {
        if range_is_empty(from, to) {
            return Ok(Box::new(std::iter::empty()));
        }
        let stored = self.inner.range(from, to)?;
        let pending = self
            .cache
            .range(from, to)
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)));
        Ok(Box::new(MergeIter::new(stored, pending)))
    }

    /// The inner store's estimate plus the cached values not yet written to it (some
    /// of which may update keys it already counts).
    fn approximate_num_entries(&self) -> StateResult<u64> {
        let cached = self
            .cache
            .range(Bound::Unbounded, Bound::Unbounded)
            .filter(|(_, v)| v.is_some())
            .count() as u64;
        Ok(self.inner.approximate_num_entries()?.saturating_add(cached))
    }
}

impl KeyValueStore for CachingStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> StateResult<()> {
        self.cache.insert(key, Some(value));
        self.maybe_evict()
    }

    fn delete(&mut self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        let old = self.get(key)?;
        self.cache.insert(key, None);
        self.maybe_evict()?;
        Ok(old)
    }

    fn put_all(&mut self, entries: &[BatchEntry]) -> StateResult<()> {
        for (key, value) in entries {
            self.cache.insert(key, value.as_deref());
        }
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
}

/// Implements [`RestorableStore`] for a caching store (fields `inner`, the store below,
/// and `cache`, its [`NamedCache`]): everything goes to the inner store, except the
/// flush listener, which the cache takes, and restored records, which supersede the
/// cached entries of their keys (normally there are none: restoring happens before
/// processing).
macro_rules! caching_restorable_store {
    ($store:ty) => {
        impl RestorableStore for $store {
            fn changelog(&self) -> Option<&ChangelogPartition> {
                self.inner.changelog()
            }

            fn checkpointed_offset(&self) -> Option<i64> {
                self.inner.checkpointed_offset()
            }

            fn restore_batch(&mut self, records: &[RestoreRecord<'_>]) -> StateResult<()> {
                if self.cache.len() > 0 {
                    for record in records {
                        self.cache.remove(record.key);
                    }
                }
                self.inner.restore_batch(records)
            }

            fn checkpoint(&mut self, next_offset: i64) -> StateResult<()> {
                self.inner.checkpoint(next_offset)
            }

            fn remove_checkpoint(&mut self) -> StateResult<()> {
                self.inner.remove_checkpoint()
            }

            /// Sets the listener of the entries leaving the cache (keyed by the inner
            /// store's binary keys); with `send_old_values`, each carries the inner
            /// store's previous value (read before writing through).
            fn set_flush_listener(
                &mut self,
                listener: Box<dyn CacheFlushListener>,
                send_old_values: bool,
            ) -> bool {
                self.cache.set_listener(listener, send_old_values);
                true
            }
        }
    };
}
pub(crate) use caching_restorable_store;

caching_restorable_store!(CachingStore);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state::logging::ChangeLoggingStore;
    use crate::state::{InMemoryStore, RecordingChangelogWriter};

    fn cached(budget: &CacheBudget) -> (CachingStore, RecordingChangelogWriter, FlushQueue) {
        let writer = RecordingChangelogWriter::new();
        let logged = ChangeLoggingStore::new(
            Box::new(InMemoryStore::new("s")),
            ChangelogPartition {
                topic: "app-s-changelog".into(),
                partition: 0,
            },
            Arc::new(writer.clone()),
        );
        let mut store = CachingStore::new(Box::new(logged), budget.clone());
        let queue = FlushQueue::new();
        store.set_flush_listener(Box::new(queue.clone()), true);
        (store, writer, queue)
    }

    #[test]
    fn folds_repeated_updates_until_flush() {
        let budget = CacheBudget::new(1 << 20);
        let (mut store, writer, queue) = cached(&budget);
        for i in 0..100u32 {
            store.put(b"word", &i.to_be_bytes()).unwrap();
        }
        store.put(b"other", b"x").unwrap();
        assert_eq!(
            store.get(b"word").unwrap(),
            Some(99u32.to_be_bytes().to_vec())
        );
        assert!(
            writer.take().is_empty(),
            "nothing reaches the changelog before flush"
        );
        assert!(queue.drain().is_empty());
        assert!(budget.used_bytes() > 0);
        store.flush().unwrap();
        let logged = writer.take();
        assert_eq!(logged.len(), 2, "100 updates fold into one per key");
        assert_eq!(logged[0].key, b"word");
        assert_eq!(logged[0].value, Some(99u32.to_be_bytes().to_vec()));
        let forwarded = queue.drain();
        assert_eq!(forwarded.len(), 2);
        assert_eq!(forwarded[0].old_value, None);
        assert_eq!(budget.used_bytes(), 0);
        assert_eq!(store.dirty_keys(), 0);

        // Old values come from the inner store on the next flush.
        store.put(b"word", b"new").unwrap();
        store.flush().unwrap();
        let forwarded = queue.drain();
        assert_eq!(forwarded[0].old_value, Some(99u32.to_be_bytes().to_vec()));
        assert_eq!(forwarded[0].new_value, Some(b"new".to_vec()));
    }

    /// A key put and deleted between two flushes never reaches the inner store: the
    /// listener is told the delete was dropped (so per-delete bookkeeping is let go)
    /// and nothing is forwarded.
    #[test]
    fn a_delete_of_a_key_never_written_through_is_reported_dropped() {
        let budget = CacheBudget::new(1 << 20);
        let writer = RecordingChangelogWriter::new();
        let logged = ChangeLoggingStore::new(
            Box::new(InMemoryStore::new("s")),
            ChangelogPartition {
                topic: "app-s-changelog".into(),
                partition: 0,
            },
            Arc::new(writer.clone()),
        );
        let mut store = CachingStore::new(Box::new(logged), budget.clone());
        let queue = FlushQueue::tracking_dropped();
        store.set_flush_listener(Box::new(queue.clone()), true);
        store.put(b"brief", b"1").unwrap();
        store.delete(b"brief").unwrap();
        store.put(b"kept", b"2").unwrap();
        store.flush().unwrap();
        assert_eq!(queue.drain_dropped(), vec![b"brief".to_vec()]);
        let forwarded: Vec<Vec<u8>> = queue.drain().into_iter().map(|e| e.key).collect();
        assert_eq!(forwarded, vec![b"kept".to_vec()]);
        assert!(queue.drain_dropped().is_empty());
        // A queue not tracking them keeps nothing.
        let (mut plain, _, untracked) = cached(&budget);
        plain.put(b"brief", b"1").unwrap();
        plain.delete(b"brief").unwrap();
        plain.flush().unwrap();
        assert!(untracked.drain_dropped().is_empty());
    }

    #[test]
    fn evicts_oldest_when_over_budget() {
        // Room for about two entries.
        let budget = CacheBudget::new(2 * (CACHE_ENTRY_OVERHEAD + 2) + 1);
        let (mut store, writer, queue) = cached(&budget);
        store.put(b"a", b"1").unwrap();
        store.put(b"b", b"2").unwrap();
        assert!(writer.take().is_empty());
        store.put(b"c", b"3").unwrap();
        let logged = writer.take();
        assert_eq!(logged.len(), 1);
        assert_eq!(
            logged[0].key, b"a",
            "the least recently written entry goes first"
        );
        assert_eq!(queue.drain()[0].key, b"a".to_vec());
        assert!(budget.used_bytes() <= budget.max_bytes());
        // Reads see evicted and cached entries alike.
        assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(b"c").unwrap(), Some(b"3".to_vec()));
    }

    #[test]
    fn zero_budget_writes_through() {
        let budget = CacheBudget::new(0);
        let (mut store, writer, queue) = cached(&budget);
        store.put(b"a", b"1").unwrap();
        store.put(b"a", b"2").unwrap();
        assert_eq!(writer.take().len(), 2);
        assert_eq!(queue.drain().len(), 2);
    }

    #[test]
    fn deletes_are_cached_tombstones_and_range_merges() {
        let budget = CacheBudget::new(1 << 20);
        let (mut store, writer, queue) = cached(&budget);
        store.put(b"a", b"1").unwrap();
        store.put(b"b", b"2").unwrap();
        store.put(b"c", b"3").unwrap();
        store.flush().unwrap();
        writer.take();
        queue.drain();
        assert_eq!(store.delete(b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(store.get(b"b").unwrap(), None);
        store.put(b"bb", b"22").unwrap();
        store.put(b"c", b"33").unwrap();
        let all: Vec<_> = store.all().unwrap().collect::<StateResult<_>>().unwrap();
        assert_eq!(
            all,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"bb".to_vec(), b"22".to_vec()),
                (b"c".to_vec(), b"33".to_vec()),
            ]
        );
        let ranged: Vec<_> = store
            .range(Bound::Excluded(b"a"), Bound::Excluded(b"c"))
            .unwrap()
            .collect::<StateResult<_>>()
            .unwrap();
        assert_eq!(ranged, vec![(b"bb".to_vec(), b"22".to_vec())]);
        // Deleting a key that never reached the inner store forwards nothing.
        store.put(b"tmp", b"x").unwrap();
        store.delete(b"tmp").unwrap();
        store.flush().unwrap();
        let logged = writer.take();
        assert!(logged.iter().any(|r| r.key == b"b" && r.value.is_none()));
        assert!(!logged.iter().any(|r| r.key == b"tmp"));
        let forwarded = queue.drain();
        let tomb = forwarded.iter().find(|e| e.key == b"b").unwrap();
        assert_eq!(tomb.new_value, None);
        assert_eq!(tomb.old_value, Some(b"2".to_vec()));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, u8),
        Delete(u8),
        Flush,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            2 => (0u8..6).prop_map(Op::Delete),
            1 => Just(Op::Flush),
        ]
    }

    proptest::proptest! {
        /// Against a plain model of the cache (entries in write order, one position
        /// per key; the oldest written through first when over budget): the same
        /// records reach the changelog in the same order, and point reads and
        /// ranges agree, however often keys are rewritten.
        #[test]
        fn matches_a_write_order_model(ops in proptest::collection::vec(op(), 1..300)) {
            let entry_size = CACHE_ENTRY_OVERHEAD + 2;
            let budget = CacheBudget::new(3 * entry_size);
            let (mut store, writer, _queue) = cached(&budget);
            let mut cached_model: Vec<(u8, Option<u8>)> = Vec::new();
            let mut inner: BTreeMap<u8, u8> = BTreeMap::new();
            let mut expected_log: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            let size = |v: &Option<u8>| 1 + usize::from(v.is_some()) + CACHE_ENTRY_OVERHEAD;
            type Model = Vec<(u8, Option<u8>)>;
            type Log = Vec<(Vec<u8>, Option<Vec<u8>>)>;
            fn write_through(n: usize, cached: &mut Model, inner: &mut BTreeMap<u8, u8>, log: &mut Log) {
                for (k, v) in cached.drain(..n) {
                    match v {
                        Some(v) => {
                            inner.insert(k, v);
                            log.push((vec![k], Some(vec![v])));
                        }
                        None => {
                            if inner.remove(&k).is_some() {
                                log.push((vec![k], None));
                            }
                        }
                    }
                }
            }
            for op in &ops {
                let written = match op {
                    Op::Put(k, v) => {
                        store.put(&[*k], &[*v]).unwrap();
                        Some((*k, Some(*v)))
                    }
                    Op::Delete(k) => {
                        store.delete(&[*k]).unwrap();
                        Some((*k, None))
                    }
                    Op::Flush => {
                        store.flush().unwrap();
                        let n = cached_model.len();
                        write_through(n, &mut cached_model, &mut inner, &mut expected_log);
                        None
                    }
                };
                if let Some((k, v)) = written {
                    cached_model.retain(|(key, _)| *key != k);
                    cached_model.push((k, v));
                    let used: usize = cached_model.iter().map(|(_, v)| size(v)).sum();
                    if used > budget.max_bytes() {
                        let excess = used - budget.max_bytes();
                        let (mut freed, mut n) = (0, 0);
                        for (_, v) in cached_model.iter() {
                            if freed >= excess {
                                break;
                            }
                            freed += size(v);
                            n += 1;
                        }
                        write_through(n, &mut cached_model, &mut inner, &mut expected_log);
                    }
                }
                let logged: Vec<_> = writer.take().into_iter().map(|r| (r.key, r.value)).collect();
                let expected: Vec<_> = std::mem::take(&mut expected_log);
                proptest::prop_assert_eq!(logged, expected, "after {:?}", op);
                for k in 0u8..6 {
                    let model = match cached_model.iter().find(|(key, _)| *key == k) {
                        Some((_, v)) => *v,
                        None => inner.get(&k).copied(),
                    };
                    proptest::prop_assert_eq!(store.get(&[k]).unwrap(), model.map(|v| vec![v]));
                }
                let mut view = inner.clone();
                for (k, v) in &cached_model {
                    match v {
                        Some(v) => view.insert(*k, *v),
                        None => view.remove(k),
                    };
                }
                let all: Vec<_> = store.all().unwrap().collect::<StateResult<_>>().unwrap();
                let expected: Vec<_> = view.iter().map(|(k, v)| (vec![*k], vec![*v])).collect();
                proptest::prop_assert_eq!(all, expected, "all() after {:?}", op);
                proptest::prop_assert_eq!(store.dirty_keys(), cached_model.len());
                proptest::prop_assert_eq!(store.cache.sorted.len(), store.cache.entries.len());
                proptest::prop_assert!(store.cache.order.len() <= 2 * store.cache.entries.len() + 65);
            }
        }
    }

    #[test]
    fn budget_is_shared_and_released_on_close_and_drop() {
        let budget = CacheBudget::new(1 << 20);
        let (mut one, _, _) = cached(&budget);
        let (mut two, _, _) = cached(&budget);
        one.put(b"k", b"v").unwrap();
        two.put(b"k", b"v").unwrap();
        assert_eq!(budget.used_bytes(), one.cached_bytes() + two.cached_bytes());
        one.close().unwrap();
        assert_eq!(budget.used_bytes(), two.cached_bytes());
        drop(two);
        assert_eq!(budget.used_bytes(), 0);
    }
}
