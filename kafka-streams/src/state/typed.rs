//! The typed outer layer processors use (Kafka's `MeteredKeyValueStore`): it turns keys
//! and values into bytes with kafka-client's serdes, the one codec path of the SDK, and
//! hands them to the byte-level stack below (caching → logging → RocksDB or memory).
//!
//! The serdes are told the store's changelog topic as their topic (as Kafka does, even
//! when logging is disabled), so a schema-registry serde registers the changelog's
//! subject.
//!
//! Ranges are in the order of the serialized keys: UTF-8 strings sort as strings, and
//! big-endian numbers as unsigned numbers (negative numbers after positive ones), as in
//! Kafka Streams.

use std::any::Any;
use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::Arc;

use kafka_client::serde::{MessageField, Serde, SerdeContext};
use kafka_client::Headers;

use super::builder::{KeyValueStoreSpec, StoreContext};
use super::cache::CacheFlushListener;
use super::error::{StateError, StateResult};
use super::key_value::KeyValueStore;
use super::restorable::{ChangelogPartition, RestorableStore, RestoreRecord};
use super::value_and_timestamp::ValueAndTimestamp;
use super::StateStore;

/// An iterator over typed entries, in the order of the serialized keys.
pub type TypedIter<'a, K, V> = Box<dyn Iterator<Item = StateResult<(K, V)>> + 'a>;

/// Typed read-only queries: what interactive queries expose for a key-value store
/// (Kafka's `ReadOnlyKeyValueStore<K, V>`).
pub trait QueryableKeyValueStore<K, V> {
    /// The value of `key`, if any.
    fn get(&self, key: &K) -> StateResult<Option<V>>;

    /// The entries with keys between `from` and `to`, in the order of the serialized
    /// keys.
    fn range(&self, from: Bound<&K>, to: Bound<&K>) -> StateResult<TypedIter<'_, K, V>>;

    /// Every entry, in the order of the serialized keys.
    fn all(&self) -> StateResult<TypedIter<'_, K, V>>;

    /// An estimate of the number of keys.
    fn approximate_num_entries(&self) -> StateResult<u64>;
}

enum Stack {
    /// Built but not yet initialised by the task.
    Unopened(KeyValueStoreSpec),
    Open(Box<dyn KeyValueStore>),
    Closed,
}

/// A typed key-value store over a byte-level store stack.
///
/// Processors reach it with
/// `context.state_store::<TypedKeyValueStore<K, V>>(name)`.
pub struct TypedKeyValueStore<K, V> {
    codec: Codec<K, V>,
    stack: Stack,
    changelog: Option<ChangelogPartition>,
    _types: PhantomData<fn() -> (K, V)>,
}

/// The serdes of a typed store (key-value, window or session), with the store name
/// and the topic its errors name: keys borrowed where the serde allows, so a read or
/// update copies nothing.
pub(super) struct Codec<K, V> {
    pub(super) name: String,
    pub(super) serde_topic: String,
    pub(super) key_serde: Arc<dyn Serde<K>>,
    pub(super) value_serde: Arc<dyn Serde<V>>,
    pub(super) headers: Headers,
}

impl<K, V> Codec<K, V> {
    pub(super) fn ctx(&self, field: MessageField) -> SerdeContext<'_> {
        SerdeContext::new(&self.serde_topic, field, &self.headers)
    }

    pub(super) fn error(
        &self,
        field: &'static str,
        direction: &'static str,
        source: kafka_client::serde::SerdeError,
    ) -> StateError {
        StateError::Serde {
            store: self.name.clone(),
            topic: self.serde_topic.clone(),
            field,
            direction,
            source: Box::new(source),
        }
    }

    pub(super) fn key_bytes<'k>(&self, key: &'k K) -> StateResult<Cow<'k, [u8]>> {
        self.key_serde
            .serialize_borrowed(key, &self.ctx(MessageField::Key))
            .map_err(|e| self.error("key", "serialize", e))?
            .ok_or_else(|| StateError::NullBytes {
                store: self.name.clone(),
                field: "key",
            })
    }

    pub(super) fn value_bytes<'v>(&self, value: &'v V) -> StateResult<Option<Cow<'v, [u8]>>> {
        self.value_serde
            .serialize_borrowed(value, &self.ctx(MessageField::Value))
            .map_err(|e| self.error("value", "serialize", e))
    }

    pub(super) fn key(&self, bytes: &[u8]) -> StateResult<K> {
        self.key_serde
            .deserialize(Some(bytes), &self.ctx(MessageField::Key))
            .map_err(|e| self.error("key", "deserialize", e))
    }

    pub(super) fn value(&self, bytes: &[u8]) -> StateResult<V> {
        self.value_serde
            .deserialize(Some(bytes), &self.ctx(MessageField::Value))
            .map_err(|e| self.error("value", "deserialize", e))
    }
}

impl<K: 'static, V: 'static> TypedKeyValueStore<K, V> {
    /// A typed view of an already open byte store. `serde_topic` is the topic the serdes
    /// are told (normally the changelog topic, see
    /// [`changelog_topic`](super::changelog_topic)).
    pub fn new(
        inner: Box<dyn KeyValueStore>,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        serde_topic: impl Into<String>,
    ) -> Self {
        TypedKeyValueStore {
            codec: Codec {
                name: inner.name().to_owned(),
                serde_topic: serde_topic.into(),
                key_serde,
                value_serde,
                headers: Headers::new(),
            },
            stack: Stack::Open(inner),
            changelog: None,
            _types: PhantomData,
        }
    }

    /// A store the task opens later through [`StateStore::init`].
    pub(crate) fn unopened(
        spec: KeyValueStoreSpec,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        TypedKeyValueStore {
            codec: Codec {
                name: spec.name.clone(),
                serde_topic: String::new(),
                key_serde,
                value_serde,
                headers: Headers::new(),
            },
            stack: Stack::Unopened(spec),
            changelog: None,
            _types: PhantomData,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.codec.name
    }

    /// The changelog partition the store logs to, once initialised with logging.
    pub fn changelog(&self) -> Option<&ChangelogPartition> {
        self.changelog.as_ref()
    }

    /// The byte-level store below the serdes (for restore, checkpoints and queries).
    pub fn bytes(&self) -> StateResult<&dyn KeyValueStore> {
        match &self.stack {
            Stack::Open(inner) => Ok(inner.as_ref()),
            Stack::Unopened(_) => Err(self.not_open("not initialized")),
            Stack::Closed => Err(self.not_open("closed")),
        }
    }

    /// The byte-level store below the serdes, mutably.
    pub fn bytes_mut(&mut self) -> StateResult<&mut dyn KeyValueStore> {
        match &mut self.stack {
            Stack::Open(inner) => Ok(inner.as_mut()),
            Stack::Unopened(_) => Err(StateError::NotOpen {
                store: self.codec.name.clone(),
                state: "not initialized",
            }),
            Stack::Closed => Err(StateError::NotOpen {
                store: self.codec.name.clone(),
                state: "closed",
            }),
        }
    }

    fn not_open(&self, state: &'static str) -> StateError {
        StateError::NotOpen {
            store: self.codec.name.clone(),
            state,
        }
    }

    /// Sets `key` to `value`. A value the serde turns into null (e.g. `None` of an
    /// `Option`) deletes the key, as in Kafka.
    pub fn put(&mut self, key: &K, value: &V) -> StateResult<()> {
        let key = self.codec.key_bytes(key)?;
        match self.codec.value_bytes(value)? {
            Some(value) => self.bytes_mut()?.put(&key, &value),
            None => self.bytes_mut()?.delete(&key).map(|_| ()),
        }
    }

    /// Replaces the value of `key` with `update(old)` (an aggregation step),
    /// serializing the key once for the read and the write; returns the old and the
    /// new value. A new value the serde turns into null deletes the key, as
    /// [`put`](Self::put) does.
    pub fn update_with(
        &mut self,
        key: &K,
        update: impl FnOnce(&Option<V>) -> V,
    ) -> StateResult<(Option<V>, V)> {
        let key = self.codec.key_bytes(key)?;
        let old = match self.bytes()?.get(&key)? {
            Some(value) => Some(self.codec.value(&value)?),
            None => None,
        };
        let new = update(&old);
        match self.codec.value_bytes(&new)? {
            Some(value) => self.bytes_mut()?.put(&key, &value)?,
            None => {
                self.bytes_mut()?.delete(&key)?;
            }
        }
        Ok((old, new))
    }

    /// Sets `key` to `value` unless it has a value; returns the existing value.
    pub fn put_if_absent(&mut self, key: &K, value: &V) -> StateResult<Option<V>> {
        let key = self.codec.key_bytes(key)?;
        let value = self
            .codec
            .value_bytes(value)?
            .ok_or_else(|| StateError::NullBytes {
                store: self.codec.name.clone(),
                field: "value",
            })?;
        match self.bytes_mut()?.put_if_absent(&key, &value)? {
            Some(existing) => Ok(Some(self.codec.value(&existing)?)),
            None => Ok(None),
        }
    }

    /// Deletes `key` (a tombstone in the changelog), returning its previous value.
    pub fn delete(&mut self, key: &K) -> StateResult<Option<V>> {
        let key = self.codec.key_bytes(key)?;
        match self.bytes_mut()?.delete(&key)? {
            Some(old) => Ok(Some(self.codec.value(&old)?)),
            None => Ok(None),
        }
    }

    /// Decodes an update the record cache wrote through: the key, the new value
    /// (`None`: deleted) and the value it replaced.
    pub fn decode_flushed(
        &self,
        entry: &super::FlushedEntry,
    ) -> StateResult<(K, Option<V>, Option<V>)> {
        let key = self.codec.key(&entry.key)?;
        let new = entry
            .new_value
            .as_deref()
            .map(|v| self.codec.value(v))
            .transpose()?;
        let old = entry
            .old_value
            .as_deref()
            .map(|v| self.codec.value(v))
            .transpose()?;
        Ok((key, new, old))
    }

    /// The bytes `key` is stored under (what [`FlushedEntry::key`](super::FlushedEntry)
    /// holds).
    pub fn serialized_key(&self, key: &K) -> StateResult<Vec<u8>> {
        Ok(self.codec.key_bytes(key)?.into_owned())
    }

    /// Sets the listener of the updates the record cache writes through, with the
    /// previous values if `send_old_values`. Returns `false` if the store has no cache.
    pub fn set_flush_listener(
        &mut self,
        listener: Box<dyn CacheFlushListener>,
        send_old_values: bool,
    ) -> StateResult<bool> {
        Ok(self
            .bytes_mut()?
            .set_flush_listener(listener, send_old_values))
    }

    fn typed_iter<'a>(&'a self, iter: super::KeyValueIter<'a>) -> TypedIter<'a, K, V> {
        Box::new(iter.map(move |item| {
            let (k, v) = item?;
            Ok((self.codec.key(&k)?, self.codec.value(&v)?))
        }))
    }

    fn bound_bytes(&self, bound: Bound<&K>) -> StateResult<Bound<Vec<u8>>> {
        Ok(match bound {
            Bound::Included(k) => Bound::Included(self.codec.key_bytes(k)?.into_owned()),
            Bound::Excluded(k) => Bound::Excluded(self.codec.key_bytes(k)?.into_owned()),
            Bound::Unbounded => Bound::Unbounded,
        })
    }
}

fn as_ref_bound(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(b) => Bound::Included(b.as_slice()),
        Bound::Excluded(b) => Bound::Excluded(b.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl<K: 'static, V: 'static> TypedKeyValueStore<K, V> {
    /// The value of `key`, if any.
    pub fn get(&self, key: &K) -> StateResult<Option<V>> {
        let key = self.codec.key_bytes(key)?;
        match self.bytes()?.get(&key)? {
            Some(value) => Ok(Some(self.codec.value(&value)?)),
            None => Ok(None),
        }
    }

    /// The entries with keys between `from` and `to`, in the order of the serialized
    /// keys.
    pub fn range(&self, from: Bound<&K>, to: Bound<&K>) -> StateResult<TypedIter<'_, K, V>> {
        let from = self.bound_bytes(from)?;
        let to = self.bound_bytes(to)?;
        let iter = self
            .bytes()?
            .range(as_ref_bound(&from), as_ref_bound(&to))?;
        Ok(self.typed_iter(iter))
    }

    /// Every entry, in the order of the serialized keys.
    pub fn all(&self) -> StateResult<TypedIter<'_, K, V>> {
        let iter = self.bytes()?.all()?;
        Ok(self.typed_iter(iter))
    }

    /// An estimate of the number of keys.
    pub fn approximate_num_entries(&self) -> StateResult<u64> {
        self.bytes()?.approximate_num_entries()
    }
}

impl<K, V, S: QueryableKeyValueStore<K, V> + ?Sized> QueryableKeyValueStore<K, V> for &S {
    fn get(&self, key: &K) -> StateResult<Option<V>> {
        (**self).get(key)
    }

    fn range(&self, from: Bound<&K>, to: Bound<&K>) -> StateResult<TypedIter<'_, K, V>> {
        (**self).range(from, to)
    }

    fn all(&self) -> StateResult<TypedIter<'_, K, V>> {
        (**self).all()
    }

    fn approximate_num_entries(&self) -> StateResult<u64> {
        (**self).approximate_num_entries()
    }
}

/// A key-value store whose rows carry a timestamp (Kafka's `TimestampedKeyValueStore`):
/// the store of every DSL table, aggregation and materialized join, so that results
/// computed from stored rows get Kafka's timestamps. Its bytes, changelog included,
/// are the [`ValueAndTimestamp`] layout (the 8-byte timestamp, then the value), as the
/// timestamped window stores'.
pub type TimestampedKeyValueStore<K, V> = TypedKeyValueStore<K, ValueAndTimestamp<V>>;

/// A timestamped store's rows without their timestamps: what Kafka's `keyValueStore()`
/// query type returns for a timestamped store.
struct PlainValues<'a, K, V>(&'a TimestampedKeyValueStore<K, V>);

impl<K: 'static, V: 'static> QueryableKeyValueStore<K, V> for PlainValues<'_, K, V> {
    fn get(&self, key: &K) -> StateResult<Option<V>> {
        Ok(self.0.get(key)?.map(|row| row.value))
    }

    fn range(&self, from: Bound<&K>, to: Bound<&K>) -> StateResult<TypedIter<'_, K, V>> {
        Ok(Box::new(
            self.0
                .range(from, to)?
                .map(|entry| entry.map(|(k, row)| (k, row.value))),
        ))
    }

    fn all(&self) -> StateResult<TypedIter<'_, K, V>> {
        Ok(Box::new(
            self.0
                .all()?
                .map(|entry| entry.map(|(k, row)| (k, row.value))),
        ))
    }

    fn approximate_num_entries(&self) -> StateResult<u64> {
        self.0.approximate_num_entries()
    }
}

/// `store` read as a key-value store of `K` to `V`: a [`TypedKeyValueStore<K, V>`], or
/// a [`TimestampedKeyValueStore<K, V>`] read without its timestamps. `None` for any
/// other store.
pub(crate) fn queryable_key_value_store<K: 'static, V: 'static>(
    store: &dyn Any,
) -> Option<Box<dyn QueryableKeyValueStore<K, V> + '_>> {
    if let Some(plain) = store.downcast_ref::<TypedKeyValueStore<K, V>>() {
        return Some(Box::new(plain));
    }
    store
        .downcast_ref::<TimestampedKeyValueStore<K, V>>()
        .map(|stamped| Box::new(PlainValues(stamped)) as Box<dyn QueryableKeyValueStore<K, V>>)
}

impl<K: 'static, V: 'static> QueryableKeyValueStore<K, V> for TypedKeyValueStore<K, V> {
    fn get(&self, key: &K) -> StateResult<Option<V>> {
        TypedKeyValueStore::get(self, key)
    }

    fn range(&self, from: Bound<&K>, to: Bound<&K>) -> StateResult<TypedIter<'_, K, V>> {
        TypedKeyValueStore::range(self, from, to)
    }

    fn all(&self) -> StateResult<TypedIter<'_, K, V>> {
        TypedKeyValueStore::all(self)
    }

    fn approximate_num_entries(&self) -> StateResult<u64> {
        TypedKeyValueStore::approximate_num_entries(self)
    }
}

impl<K: 'static, V: 'static> StateStore for TypedKeyValueStore<K, V> {
    fn name(&self) -> &str {
        &self.codec.name
    }

    fn flush(&mut self) -> crate::Result<()> {
        Ok(self.bytes_mut()?.flush()?)
    }

    fn close(&mut self) -> crate::Result<()> {
        if let Stack::Open(inner) = &mut self.stack {
            inner.close()?;
        }
        self.stack = Stack::Closed;
        Ok(())
    }

    fn persistent(&self) -> bool {
        match &self.stack {
            Stack::Open(inner) => inner.persistent(),
            Stack::Unopened(spec) => spec.kind == super::StoreKind::RocksDb,
            Stack::Closed => false,
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn init(&mut self, context: &StoreContext) -> crate::Result<()> {
        if let Stack::Unopened(spec) = &self.stack {
            let opened = spec.open(context)?;
            self.codec.serde_topic = opened.serde_topic;
            self.changelog = opened.changelog;
            self.stack = Stack::Open(opened.store);
        }
        Ok(())
    }

    fn byte_store(&mut self) -> Option<&mut dyn KeyValueStore> {
        self.bytes_mut().ok()
    }

    fn persistence(&mut self) -> Option<&mut dyn RestorableStore> {
        match self.stack {
            Stack::Open(_) => Some(self),
            Stack::Unopened(_) | Stack::Closed => None,
        }
    }
}

/// Passes everything to the byte-level stack, except the changelog partition, which
/// the typed layer learnt when it opened the stack.
impl<K: 'static, V: 'static> RestorableStore for TypedKeyValueStore<K, V> {
    fn changelog(&self) -> Option<&ChangelogPartition> {
        self.changelog.as_ref()
    }

    fn checkpointed_offset(&self) -> Option<i64> {
        self.bytes().ok()?.checkpointed_offset()
    }

    fn restore_batch(&mut self, records: &[RestoreRecord<'_>]) -> StateResult<()> {
        self.bytes_mut()?.restore_batch(records)
    }

    fn checkpoint(&mut self, next_offset: i64) -> StateResult<()> {
        self.bytes_mut()?.checkpoint(next_offset)
    }

    fn remove_checkpoint(&mut self) -> StateResult<()> {
        self.bytes_mut()?.remove_checkpoint()
    }

    fn set_flush_listener(
        &mut self,
        listener: Box<dyn CacheFlushListener>,
        send_old_values: bool,
    ) -> bool {
        self.bytes_mut()
            .is_ok_and(|bytes| bytes.set_flush_listener(listener, send_old_values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::InMemoryStore;
    use kafka_client::serde::{BigEndian, OptionSerde, StringSerde};

    fn store() -> TypedKeyValueStore<String, i64> {
        TypedKeyValueStore::new(
            Box::new(InMemoryStore::new("counts")),
            Arc::new(StringSerde),
            Arc::new(BigEndian),
            "app-counts-changelog",
        )
    }

    #[test]
    fn typed_round_trip_and_range_in_key_order() {
        let mut s = store();
        s.put(&"kafka".to_string(), &3).unwrap();
        s.put(&"apache".to_string(), &1).unwrap();
        s.put(&"streams".to_string(), &2).unwrap();
        assert_eq!(s.get(&"kafka".to_string()).unwrap(), Some(3));
        assert_eq!(s.put_if_absent(&"kafka".to_string(), &9).unwrap(), Some(3));
        let all: Vec<_> = s.all().unwrap().collect::<StateResult<_>>().unwrap();
        assert_eq!(
            all,
            vec![
                ("apache".into(), 1),
                ("kafka".into(), 3),
                ("streams".into(), 2)
            ]
        );
        let some: Vec<_> = s
            .range(
                Bound::Excluded(&"apache".to_string()),
                Bound::Included(&"kafka".to_string()),
            )
            .unwrap()
            .collect::<StateResult<_>>()
            .unwrap();
        assert_eq!(some, vec![("kafka".to_string(), 3)]);
        assert_eq!(s.delete(&"kafka".to_string()).unwrap(), Some(3));
        assert_eq!(s.approximate_num_entries().unwrap(), 2);
        let queryable: &dyn QueryableKeyValueStore<String, i64> = &s;
        assert_eq!(queryable.get(&"apache".to_string()).unwrap(), Some(1));
    }

    #[test]
    fn undecodable_bytes_name_store_and_topic() {
        let mut s = store();
        s.bytes_mut().unwrap().put(b"bad", b"xyz").unwrap();
        let err = s.get(&"bad".to_string()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("counts"), "{text}");
        assert!(text.contains("app-counts-changelog"), "{text}");
        assert!(matches!(err, StateError::Serde { field: "value", .. }));
    }

    #[test]
    fn null_value_deletes() {
        let mut s: TypedKeyValueStore<String, Option<i64>> = TypedKeyValueStore::new(
            Box::new(InMemoryStore::new("latest")),
            Arc::new(StringSerde),
            Arc::new(OptionSerde(BigEndian)),
            "app-latest-changelog",
        );
        s.put(&"s1".into(), &Some(5)).unwrap();
        assert_eq!(s.get(&"s1".into()).unwrap(), Some(Some(5)));
        s.put(&"s1".into(), &None).unwrap();
        assert_eq!(s.get(&"s1".into()).unwrap(), None);
    }

    #[test]
    fn update_with_reads_old_and_writes_new() {
        let mut s = store();
        let key = "kafka".to_string();
        assert_eq!(
            s.update_with(&key, |old| old.unwrap_or(0) + 1).unwrap(),
            (None, 1)
        );
        assert_eq!(
            s.update_with(&key, |old| old.unwrap_or(0) + 1).unwrap(),
            (Some(1), 2)
        );
        assert_eq!(s.get(&key).unwrap(), Some(2));
        // A value the serde turns into null deletes, as `put` does.
        let mut latest: TypedKeyValueStore<String, Option<i64>> = TypedKeyValueStore::new(
            Box::new(InMemoryStore::new("latest")),
            Arc::new(StringSerde),
            Arc::new(OptionSerde(BigEndian)),
            "app-latest-changelog",
        );
        latest.put(&key, &Some(5)).unwrap();
        assert_eq!(
            latest.update_with(&key, |_| None).unwrap(),
            (Some(Some(5)), None)
        );
        assert_eq!(latest.get(&key).unwrap(), None);
    }

    #[test]
    fn closed_store_reports_not_open() {
        let mut s = store();
        StateStore::close(&mut s).unwrap();
        assert!(matches!(
            s.get(&"k".to_string()),
            Err(StateError::NotOpen {
                state: "closed",
                ..
            })
        ));
    }
}
