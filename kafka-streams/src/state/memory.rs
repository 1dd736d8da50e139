//! The in-memory key-value store: a `BTreeMap` of bytes.
//!
//! Its data dies with the process, so it never trusts a checkpoint from an earlier run:
//! after opening, [`RestorableStore::checkpointed_offset`](super::RestorableStore::checkpointed_offset) is `None` and the runtime
//! restores it from the beginning of its changelog (as Kafka does for in-memory stores).
//! Within the run it remembers the offset it has reached, so a restore that is
//! interrupted and resumed skips what it has already applied.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::error::{StateError, StateResult};
use super::key_value::{
    range_is_empty, BatchEntry, KeyValueIter, KeyValueStore, ReadOnlyKeyValueStore,
};
use super::restorable::{RestorableStore, RestoreRecord};

/// A key-value store held in memory (Kafka's `InMemoryKeyValueStore`).
#[derive(Debug)]
pub struct InMemoryStore {
    name: String,
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    checkpoint: Option<i64>,
    open: bool,
}

impl InMemoryStore {
    /// An empty store named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        InMemoryStore {
            name: name.into(),
            map: BTreeMap::new(),
            checkpoint: None,
            open: true,
        }
    }

    fn check_open(&self) -> StateResult<()> {
        if self.open {
            Ok(())
        } else {
            Err(StateError::NotOpen {
                store: self.name.clone(),
                state: "closed",
            })
        }
    }
}

impl ReadOnlyKeyValueStore for InMemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.check_open()?;
        Ok(self.map.get(key).cloned())
    }

    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> StateResult<KeyValueIter<'_>> {
        self.check_open()?;
        if range_is_empty(from, to) {
            return Ok(Box::new(std::iter::empty()));
        }
        let iter = self
            .map
            .range::<[u8], _>((from, to))
            .map(|(k, v)| Ok((k.clone(), v.clone())));
        Ok(Box::new(iter))
    }

    fn approximate_num_entries(&self) -> StateResult<u64> {
        self.check_open()?;
        Ok(self.map.len() as u64)
    }
}

impl KeyValueStore for InMemoryStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> StateResult<()> {
        self.check_open()?;
        self.map.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.check_open()?;
        Ok(self.map.remove(key))
    }

    fn put_all(&mut self, entries: &[BatchEntry]) -> StateResult<()> {
        self.check_open()?;
        for (key, value) in entries {
            match value {
                Some(value) => {
                    self.map.insert(key.clone(), value.clone());
                }
                None => {
                    self.map.remove(key);
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> StateResult<()> {
        self.check_open()
    }

    fn close(&mut self) -> StateResult<()> {
        self.open = false;
        self.map.clear();
        Ok(())
    }

    fn persistent(&self) -> bool {
        false
    }
}

impl RestorableStore for InMemoryStore {
    fn checkpointed_offset(&self) -> Option<i64> {
        self.checkpoint
    }

    fn restore_batch(&mut self, records: &[RestoreRecord<'_>]) -> StateResult<()> {
        self.check_open()?;
        let from = self.checkpoint.unwrap_or(i64::MIN);
        let mut last = None;
        for record in records.iter().filter(|r| r.offset >= from) {
            match record.value {
                Some(value) => {
                    self.map.insert(record.key.to_vec(), value.to_vec());
                }
                None => {
                    self.map.remove(record.key);
                }
            }
            last = Some(record.offset);
        }
        if let Some(last) = last {
            self.checkpoint = Some(last.saturating_add(1));
        }
        Ok(())
    }

    fn checkpoint(&mut self, next_offset: i64) -> StateResult<()> {
        self.check_open()?;
        self.checkpoint = Some(next_offset);
        Ok(())
    }

    fn remove_checkpoint(&mut self) -> StateResult<()> {
        self.checkpoint = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(iter: KeyValueIter<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
        iter.collect::<StateResult<_>>().unwrap()
    }

    #[test]
    fn put_get_delete_range() {
        let mut store = InMemoryStore::new("s");
        for k in [b"c", b"a", b"b", b"d"] {
            store.put(k, k).unwrap();
        }
        assert_eq!(store.get(b"a").unwrap(), Some(b"a".to_vec()));
        assert_eq!(store.delete(b"d").unwrap(), Some(b"d".to_vec()));
        assert_eq!(store.delete(b"d").unwrap(), None);
        let keys: Vec<_> = collect(
            store
                .range(Bound::Excluded(b"a"), Bound::Included(b"c"))
                .unwrap(),
        )
        .into_iter()
        .map(|(k, _)| k)
        .collect();
        assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
        assert!(collect(
            store
                .range(Bound::Included(b"c"), Bound::Included(b"a"))
                .unwrap()
        )
        .is_empty());
        assert_eq!(store.approximate_num_entries().unwrap(), 3);
    }

    #[test]
    fn restore_skips_already_applied_and_closed_store_fails() {
        let mut store = InMemoryStore::new("s");
        assert_eq!(store.checkpointed_offset(), None);
        store
            .restore_batch(&[
                RestoreRecord {
                    key: b"k",
                    value: Some(b"1"),
                    offset: 0,
                    timestamp: -1,
                },
                RestoreRecord {
                    key: b"k",
                    value: Some(b"2"),
                    offset: 1,
                    timestamp: -1,
                },
            ])
            .unwrap();
        assert_eq!(store.checkpointed_offset(), Some(2));
        // Redelivered offset 1 must not overwrite the later state.
        store
            .restore_batch(&[
                RestoreRecord {
                    key: b"k",
                    value: Some(b"old"),
                    offset: 1,
                    timestamp: -1,
                },
                RestoreRecord {
                    key: b"k",
                    value: None,
                    offset: 2,
                    timestamp: -1,
                },
            ])
            .unwrap();
        assert_eq!(store.get(b"k").unwrap(), None);
        assert_eq!(store.checkpointed_offset(), Some(3));
        store.close().unwrap();
        assert!(matches!(store.get(b"k"), Err(StateError::NotOpen { .. })));
    }
}
