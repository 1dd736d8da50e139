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

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::error::StateResult;
use super::key_value::{
    range_is_empty, BatchEntry, KeyValueIter, KeyValueStore, MergeIter, ReadOnlyKeyValueStore,
    RestoreRecord,
};

/// Bytes charged for each cached entry on top of its key and value (map nodes, order
/// index, bookkeeping), like Kafka's `LRUCacheEntry` overhead.
pub const CACHE_ENTRY_OVERHEAD: usize = 64;

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
    /// ([`KeyValueStore::set_flush_listener`]), else `None`.
    pub old_value: Option<Vec<u8>>,
}

/// Receives the updates the cache writes through (Kafka's `CacheFlushListener`).
///
/// Called after the update is in the inner store (and logged to the changelog).
pub trait CacheFlushListener: Send {
    /// One update leaving the cache.
    fn apply(&mut self, entry: FlushedEntry);
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
pub struct FlushQueue {
    entries: Arc<Mutex<VecDeque<FlushedEntry>>>,
}

impl FlushQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes and returns the queued updates, oldest first.
    pub fn drain(&self) -> Vec<FlushedEntry> {
        let mut queue = match self.entries.lock() {
            Ok(queue) => queue,
            Err(poisoned) => poisoned.into_inner(),
        };
        queue.drain(..).collect()
    }
}

impl CacheFlushListener for FlushQueue {
    fn apply(&mut self, entry: FlushedEntry) {
        match self.entries.lock() {
            Ok(mut queue) => queue.push_back(entry),
            Err(poisoned) => poisoned.into_inner().push_back(entry),
        }
    }
}

#[derive(Debug)]
struct CacheEntry {
    value: Option<Vec<u8>>,
    seq: u64,
    size: usize,
}

/// Folds writes between commits in front of the inner store (Kafka's
/// `CachingKeyValueStore`).
pub struct CachingStore {
    inner: Box<dyn KeyValueStore>,
    budget: CacheBudget,
    entries: BTreeMap<Vec<u8>, CacheEntry>,
    /// Write order: sequence number → key, oldest first.
    order: BTreeMap<u64, Vec<u8>>,
    next_seq: u64,
    bytes: usize,
    listener: Option<Box<dyn CacheFlushListener>>,
    send_old_values: bool,
}

impl CachingStore {
    /// Wraps `inner`, charging cached entries to `budget`.
    pub fn new(inner: Box<dyn KeyValueStore>, budget: CacheBudget) -> Self {
        CachingStore {
            inner,
            budget,
            entries: BTreeMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
            listener: None,
            send_old_values: false,
        }
    }

    /// Bytes this store's cache holds.
    pub fn cached_bytes(&self) -> usize {
        self.bytes
    }

    /// Number of keys with an unflushed update.
    pub fn dirty_keys(&self) -> usize {
        self.entries.len()
    }

    fn insert(&mut self, key: &[u8], value: Option<&[u8]>) {
        let size = key.len() + value.map_or(0, <[u8]>::len) + CACHE_ENTRY_OVERHEAD;
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = CacheEntry {
            value: value.map(<[u8]>::to_vec),
            seq,
            size,
        };
        match self.entries.get_mut(key) {
            Some(existing) => {
                self.order.remove(&existing.seq);
                let old_size = std::mem::replace(existing, entry).size;
                self.release(old_size);
            }
            None => {
                self.entries.insert(key.to_vec(), entry);
            }
        }
        self.order.insert(seq, key.to_vec());
        self.bytes += size;
        self.budget.add(size);
    }

    fn release(&mut self, size: usize) {
        self.bytes -= size;
        self.budget.release(size);
    }

    fn remove_entry(&mut self, key: &[u8]) {
        if let Some(entry) = self.entries.remove(key) {
            self.order.remove(&entry.seq);
            self.release(entry.size);
        }
    }

    /// Writes the oldest entries through until the shared budget fits again (or this
    /// cache is empty).
    fn maybe_evict(&mut self) -> StateResult<()> {
        if !self.budget.over() {
            return Ok(());
        }
        let mut freed = 0;
        let excess = self.budget.used_bytes() - self.budget.max_bytes();
        let mut count = 0;
        for key in self.order.values() {
            if freed >= excess {
                break;
            }
            freed += self.entries.get(key).map_or(0, |e| e.size);
            count += 1;
        }
        self.write_through(count)
    }

    /// Writes the `count` oldest entries to the inner store, forwards them, and only
    /// then drops them from the cache (so a failed write loses nothing).
    fn write_through(&mut self, count: usize) -> StateResult<()> {
        if count == 0 {
            return Ok(());
        }
        let mut batch: Vec<BatchEntry> = Vec::with_capacity(count);
        let mut olds: Vec<Option<Vec<u8>>> = Vec::with_capacity(count);
        let mut skipped: Vec<Vec<u8>> = Vec::new();
        for key in self.order.values().take(count) {
            let new_value = self.entries.get(key).and_then(|e| e.value.clone());
            let old_value =
                if self.listener.is_some() && (new_value.is_none() || self.send_old_values) {
                    self.inner.get(key)?
                } else {
                    None
                };
            if self.listener.is_some() && new_value.is_none() && old_value.is_none() {
                // Deleting a key the inner store never had: nothing to write or forward.
                skipped.push(key.clone());
                continue;
            }
            batch.push((key.clone(), new_value));
            olds.push(old_value);
        }
        self.inner.put_all(&batch)?;
        for key in skipped {
            self.remove_entry(&key);
        }
        for ((key, new_value), old_value) in batch.into_iter().zip(olds) {
            self.remove_entry(&key);
            if let Some(listener) = self.listener.as_mut() {
                listener.apply(FlushedEntry {
                    key,
                    new_value,
                    old_value: if self.send_old_values {
                        old_value
                    } else {
                        None
                    },
                });
            }
        }
        Ok(())
    }

    fn discard(&mut self) {
        self.budget.release(self.bytes);
        self.bytes = 0;
        self.entries.clear();
        self.order.clear();
    }
}

impl Drop for CachingStore {
    fn drop(&mut self) {
        self.discard();
    }
}

impl ReadOnlyKeyValueStore for CachingStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        match self.entries.get(key) {
            Some(entry) => Ok(entry.value.clone()),
            None => self.inner.get(key),
        }
    }

    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> StateResult<KeyValueIter<'_>> {
        if range_is_empty(from, to) {
            return Ok(Box::new(std::iter::empty()));
        }
        let stored = self.inner.range(from, to)?;
        let pending = self
            .entries
            .range::<[u8], _>((from, to))
            .map(|(k, e)| (k.clone(), e.value.clone()));
        Ok(Box::new(MergeIter::new(stored, pending)))
    }

    /// The inner store's estimate plus the cached values not yet written to it (some
    /// of which may update keys it already counts).
    fn approximate_num_entries(&self) -> StateResult<u64> {
        let cached = self.entries.values().filter(|e| e.value.is_some()).count() as u64;
        Ok(self.inner.approximate_num_entries()?.saturating_add(cached))
    }
}

impl KeyValueStore for CachingStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> StateResult<()> {
        self.insert(key, Some(value));
        self.maybe_evict()
    }

    fn delete(&mut self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        let old = self.get(key)?;
        self.insert(key, None);
        self.maybe_evict()?;
        Ok(old)
    }

    fn put_all(&mut self, entries: &[BatchEntry]) -> StateResult<()> {
        for (key, value) in entries {
            self.insert(key, value.as_deref());
        }
        self.maybe_evict()
    }

    fn flush(&mut self) -> StateResult<()> {
        self.write_through(self.entries.len())?;
        self.inner.flush()
    }

    fn close(&mut self) -> StateResult<()> {
        self.discard();
        self.inner.close()
    }

    fn persistent(&self) -> bool {
        self.inner.persistent()
    }

    fn checkpointed_offset(&self) -> Option<i64> {
        self.inner.checkpointed_offset()
    }

    fn restore_batch(&mut self, records: &[RestoreRecord<'_>]) -> StateResult<()> {
        // The restored value supersedes anything cached (normally nothing: restoring
        // happens before processing).
        if !self.entries.is_empty() {
            for record in records {
                self.remove_entry(record.key);
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

    /// Sets the listener of the updates leaving the cache; with `send_old_values`, each
    /// carries the inner store's previous value (read before writing through).
    fn set_flush_listener(
        &mut self,
        listener: Box<dyn CacheFlushListener>,
        send_old_values: bool,
    ) -> bool {
        self.listener = Some(listener);
        self.send_old_values = send_old_values;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{
        ChangeLoggingStore, ChangelogPartition, InMemoryStore, RecordingChangelogWriter,
    };

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
