//! The byte-level key-value store contract that every layer implements.
//!
//! Keys and values are opaque bytes ordered lexicographically (unsigned bytes, like
//! RocksDB's default comparator and Kafka's `Bytes`). Only the outermost, typed layer
//! ([`TypedKeyValueStore`](super::TypedKeyValueStore)) knows the key and value types.
//!
//! Reads and writes only: what the state manager needs to restore and checkpoint a
//! store is the [`RestorableStore`] supertrait, shared with the other store kinds.

use std::ops::Bound;

use super::error::StateResult;
use super::restorable::RestorableStore;

/// A key and its value, as stored.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// An iterator over the entries of a store, in ascending key order.
///
/// It borrows the store: drop it before writing again.
pub type KeyValueIter<'a> = Box<dyn Iterator<Item = StateResult<KeyValue>> + 'a>;

/// One write of a batch: `None` deletes the key.
pub type BatchEntry = (Vec<u8>, Option<Vec<u8>>);

/// Read-only access to a store: what interactive queries may do (Kafka's
/// `ReadOnlyKeyValueStore`, over bytes).
pub trait ReadOnlyKeyValueStore {
    /// The store's name.
    fn name(&self) -> &str;

    /// The value of `key`, if any.
    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>>;

    /// The entries whose keys lie between `from` and `to`, in ascending key order.
    ///
    /// Each bound may be inclusive, exclusive or unbounded. An empty or inverted range
    /// yields no entries.
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> StateResult<KeyValueIter<'_>>;

    /// Every entry, in ascending key order.
    fn all(&self) -> StateResult<KeyValueIter<'_>> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// An estimate of the number of keys (exact for in-memory stores; RocksDB's
    /// `rocksdb.estimate-num-keys`, which counts overwritten keys until compaction).
    fn approximate_num_entries(&self) -> StateResult<u64>;
}

/// A key-value store over bytes (Kafka's `KeyValueStore<Bytes, byte[]>`): the inner
/// stores and the caching and logging decorators all implement it.
///
/// Restoring, checkpointing and the cache's flush listener are not part of it: they are
/// the [`RestorableStore`] supertrait, which every store kind shares.
pub trait KeyValueStore: ReadOnlyKeyValueStore + RestorableStore + Send {
    /// Sets the value of `key`.
    fn put(&mut self, key: &[u8], value: &[u8]) -> StateResult<()>;

    /// Deletes `key`, returning its previous value.
    fn delete(&mut self, key: &[u8]) -> StateResult<Option<Vec<u8>>>;

    /// Applies several writes, in order (`None` deletes). Stores that can write a batch
    /// atomically (RocksDB) do so.
    fn put_all(&mut self, entries: &[BatchEntry]) -> StateResult<()> {
        for (key, value) in entries {
            match value {
                Some(value) => self.put(key, value)?,
                None => {
                    self.delete(key)?;
                }
            }
        }
        Ok(())
    }

    /// Sets the value of `key` unless it has one; returns the existing value, if any.
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> StateResult<Option<Vec<u8>>> {
        match self.get(key)? {
            Some(existing) => Ok(Some(existing)),
            None => {
                self.put(key, value)?;
                Ok(None)
            }
        }
    }

    /// Makes every write so far durable in this layer and the layers below it; the
    /// caching layer first writes its dirty entries through (and forwards them).
    fn flush(&mut self) -> StateResult<()>;

    /// Releases the store's resources. Using the store afterwards fails with
    /// [`StateError::NotOpen`](super::StateError::NotOpen).
    fn close(&mut self) -> StateResult<()>;

    /// Whether the data survives the process (RocksDB) or not (in memory).
    fn persistent(&self) -> bool;
}

/// Whether the range contains no key at all (inverted, or empty with an exclusive end).
pub(crate) fn range_is_empty(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

/// Merges a store's sorted entries with sorted pending writes that take precedence
/// (`None` pending values hide the key): how the caching layers answer range queries
/// (Kafka's `MergedSortedCacheKeyValueBytesStoreIterator` and its window and session
/// counterparts). Both sides are in ascending key order, or both descending.
pub(crate) struct MergeIter<'a, P>
where
    P: Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
{
    store: std::iter::Peekable<KeyValueIter<'a>>,
    pending: std::iter::Peekable<P>,
    ascending: bool,
}

impl<'a, P> MergeIter<'a, P>
where
    P: Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
{
    /// Merges two ascending sides.
    pub(crate) fn new(store: KeyValueIter<'a>, pending: P) -> Self {
        Self::ordered(store, pending, true)
    }

    /// Merges two sides sorted the same way: ascending, or descending.
    pub(crate) fn ordered(store: KeyValueIter<'a>, pending: P, ascending: bool) -> Self {
        MergeIter {
            store: store.peekable(),
            pending: pending.peekable(),
            ascending,
        }
    }
}

impl<P> Iterator for MergeIter<'_, P>
where
    P: Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
{
    type Item = StateResult<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_pending = match (self.store.peek(), self.pending.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.store.next(),
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(Ok((store_key, _))), Some((pending_key, _))) => {
                    if pending_key == store_key {
                        // The pending write shadows the stored value.
                        self.store.next();
                        true
                    } else {
                        (pending_key < store_key) == self.ascending
                    }
                }
            };
            if take_pending {
                match self.pending.next() {
                    Some((key, Some(value))) => return Some(Ok((key, value))),
                    Some((_, None)) => continue,
                    None => return None,
                }
            }
            return self.store.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_helpers() {
        let a: &[u8] = b"a";
        let b: &[u8] = b"b";
        assert!(range_is_empty(Bound::Included(b), Bound::Included(a)));
        assert!(range_is_empty(Bound::Included(a), Bound::Excluded(a)));
        assert!(!range_is_empty(Bound::Included(a), Bound::Included(a)));
        assert!(!range_is_empty(Bound::Unbounded, Bound::Excluded(a)));
        assert!(!range_is_empty(Bound::Excluded(a), Bound::Included(b)));
    }

    #[test]
    fn merge_prefers_pending_and_hides_tombstones() {
        let stored: Vec<StateResult<KeyValue>> = vec![
            Ok((b"a".to_vec(), b"1".to_vec())),
            Ok((b"b".to_vec(), b"2".to_vec())),
            Ok((b"d".to_vec(), b"4".to_vec())),
        ];
        let pending = vec![
            (b"b".to_vec(), Some(b"20".to_vec())),
            (b"c".to_vec(), Some(b"30".to_vec())),
            (b"d".to_vec(), None),
            (b"e".to_vec(), Some(b"50".to_vec())),
        ];
        let merged: Vec<KeyValue> =
            MergeIter::new(Box::new(stored.into_iter()), pending.into_iter())
                .collect::<StateResult<_>>()
                .unwrap();
        assert_eq!(
            merged,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"20".to_vec()),
                (b"c".to_vec(), b"30".to_vec()),
                (b"e".to_vec(), b"50".to_vec()),
            ]
        );
    }
}
