//! The suppression buffer (Kafka's `InMemoryTimeOrderedKeyValueChangeBuffer`): the
//! store behind `KTable::suppress`, holding each key's latest table update ordered by
//! its buffer time.
//!
//! - A key keeps the buffer time of its first buffered update; later updates replace
//!   its value and record context but not its place in the order (Kafka's `cleanPut`).
//! - Its value remembers the `prior` value (the old value of the first buffered
//!   update, i.e. what downstream last saw), and the old and new values of the latest
//!   update, which is what an eviction emits.
//! - It lives in memory. With logging enabled, the keys changed since the last commit
//!   are written to `<application.id>-<store>-changelog` (compacted) when the store is
//!   flushed, i.e. at each commit, before offsets are committed (Kafka's dirty keys);
//!   an evicted key is written as a tombstone. On start the state manager restores
//!   the buffer from the beginning of that changelog through [`RestorableStore`], as
//!   for any in-memory store, so a restart neither loses a buffered update nor emits
//!   an evicted one again.
//! - Its size in bytes is Kafka's estimate (`computeRecordSize`): 8 for the buffer
//!   time, the key bytes, the prior, old (unless it is the prior) and new value
//!   bytes, and the record context (timestamp, offset, topic, partition, headers).
//!
//! Changelog value layout (this library's own; Kafka's buffer changelog is only ever
//! read back by the buffer that wrote it): buffer time (i64), record timestamp (i64),
//! offset (i64), partition (i32), topic and headers, then the prior, old and new
//! values, each as an i32 length (`-1`: null; `-2`, old only: same as prior) and bytes.
//! All integers are big-endian.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;

use kafka_client::serde::Serde;
use kafka_client::{Header, Headers};

use super::builder::StoreContext;
use super::error::{StateError, StateResult};
use super::logging::ChangelogWriter;
use super::restorable::{changelog_topic, ChangelogPartition, RestorableStore, RestoreRecord};
use super::typed::Codec;
use super::{StateStore, StoreBuilder};
use crate::common::TaskId;

/// Where and when a buffered update was read (Kafka's `ProcessorRecordContext`): an
/// eviction is emitted with this timestamp and these headers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct BufferedRecordContext {
    /// The update's timestamp.
    pub timestamp: i64,
    /// Input offset (`-1` when unknown).
    pub offset: i64,
    /// Input topic (empty when unknown).
    pub topic: String,
    /// Input partition (`-1` when unknown).
    pub partition: i32,
    /// The update's headers.
    pub headers: Headers,
}

impl BufferedRecordContext {
    /// Kafka's `ProcessorRecordContext.residentMemorySizeEstimate`.
    fn size_estimate(&self) -> i64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.chars().count() + h.value.as_ref().map_or(0, Vec::len))
            .sum();
        (8 + 8 + self.topic.chars().count() + 4 + headers) as i64
    }
}

/// A buffered key's latest update, in bytes (Kafka's `BufferValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct BufferValue {
    prior: Option<Vec<u8>>,
    old: Option<Vec<u8>>,
    /// The old value is the prior one (the key's first buffered update): counted once.
    old_is_prior: bool,
    new: Option<Vec<u8>>,
    context: BufferedRecordContext,
}

impl BufferValue {
    /// Kafka's `computeRecordSize` for this value under `key`.
    fn record_size(&self, key: &[u8]) -> i64 {
        let len = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::len) as i64;
        let old = if self.old_is_prior { 0 } else { len(&self.old) };
        8 + key.len() as i64
            + len(&self.prior)
            + old
            + len(&self.new)
            + self.context.size_estimate()
    }

    fn encode(&self, buffer_time: i64) -> Vec<u8> {
        fn bytes(out: &mut Vec<u8>, value: Option<&[u8]>) {
            match value {
                Some(v) => {
                    out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    out.extend_from_slice(v);
                }
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&buffer_time.to_be_bytes());
        out.extend_from_slice(&self.context.timestamp.to_be_bytes());
        out.extend_from_slice(&self.context.offset.to_be_bytes());
        out.extend_from_slice(&self.context.partition.to_be_bytes());
        bytes(&mut out, Some(self.context.topic.as_bytes()));
        out.extend_from_slice(&(self.context.headers.len() as i32).to_be_bytes());
        for header in self.context.headers.iter() {
            bytes(&mut out, Some(header.key.as_bytes()));
            bytes(&mut out, header.value.as_deref());
        }
        bytes(&mut out, self.prior.as_deref());
        if self.old_is_prior {
            out.extend_from_slice(&(-2i32).to_be_bytes());
        } else {
            bytes(&mut out, self.old.as_deref());
        }
        bytes(&mut out, self.new.as_deref());
        out
    }

    /// The buffer time and value of a changelog record; `Err` says what is wrong.
    fn decode(data: &[u8]) -> Result<(i64, BufferValue), String> {
        let mut reader = Reader(data);
        let buffer_time = reader.i64()?;
        let timestamp = reader.i64()?;
        let offset = reader.i64()?;
        let partition = reader.i32()?;
        let topic = reader.string()?;
        let count = reader.i32()?;
        let mut headers = Headers::new();
        for _ in 0..count.max(0) {
            let key = reader.string()?;
            let value = reader.bytes()?;
            headers.push(Header { key, value });
        }
        let prior = reader.bytes()?;
        let (old, old_is_prior) = match reader.i32()? {
            -2 => (prior.clone(), true),
            len => (reader.sized(len)?, false),
        };
        let new = reader.bytes()?;
        if !reader.0.is_empty() {
            return Err(format!("{} trailing bytes", reader.0.len()));
        }
        Ok((
            buffer_time,
            BufferValue {
                prior,
                old,
                old_is_prior,
                new,
                context: BufferedRecordContext {
                    timestamp,
                    offset,
                    topic,
                    partition,
                    headers,
                },
            },
        ))
    }
}

/// Reads the changelog value layout.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "truncated: {n} bytes needed, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i64(&mut self) -> Result<i64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(b))
    }

    fn i32(&mut self) -> Result<i32, String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(i32::from_be_bytes(b))
    }

    fn sized(&mut self, len: i32) -> Result<Option<Vec<u8>>, String> {
        match len {
            -1 => Ok(None),
            len if len >= 0 => Ok(Some(self.take(len as usize)?.to_vec())),
            other => Err(format!("invalid length {other}")),
        }
    }

    fn bytes(&mut self) -> Result<Option<Vec<u8>>, String> {
        let len = self.i32()?;
        self.sized(len)
    }

    fn string(&mut self) -> Result<String, String> {
        let bytes = self.bytes()?.unwrap_or_default();
        String::from_utf8(bytes).map_err(|e| format!("invalid UTF-8: {e}"))
    }
}

/// One buffered update leaving the buffer (Kafka's `TimeOrderedKeyValueBuffer.Eviction`):
/// the key, the new and old values of its latest update, and that update's context.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Eviction<K, V> {
    pub key: K,
    pub new: Option<V>,
    pub old: Option<V>,
    pub context: BufferedRecordContext,
}

/// The suppression buffer: see the [module documentation](self).
pub(crate) struct TimeOrderedKeyValueBuffer<K, V> {
    codec: Codec<K, V>,
    logging: bool,
    changelog: Option<ChangelogPartition>,
    writer: Option<Arc<dyn ChangelogWriter>>,
    /// Buffered values by (buffer time, key bytes): Kafka's `sortedMap`.
    sorted: BTreeMap<(i64, Vec<u8>), BufferValue>,
    /// Each buffered key's buffer time: Kafka's `index`.
    index: HashMap<Vec<u8>, i64>,
    /// Keys changed since the last flush, logged at the next one.
    dirty: BTreeSet<Vec<u8>>,
    bytes: i64,
    /// Within the run only: an in-memory buffer is restored from the beginning.
    checkpoint: Option<i64>,
    open: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: 'static, V: 'static> TimeOrderedKeyValueBuffer<K, V> {
    fn new(
        name: &str,
        logging: bool,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        TimeOrderedKeyValueBuffer {
            codec: Codec {
                name: name.to_owned(),
                serde_topic: String::new(),
                key_serde,
                value_serde,
                headers: Headers::new(),
            },
            logging,
            changelog: None,
            writer: None,
            sorted: BTreeMap::new(),
            index: HashMap::new(),
            dirty: BTreeSet::new(),
            bytes: 0,
            checkpoint: None,
            open: false,
            _types: PhantomData,
        }
    }

    fn check_open(&self) -> StateResult<()> {
        if self.open {
            Ok(())
        } else {
            Err(StateError::NotOpen {
                store: self.codec.name.clone(),
                state: "not open",
            })
        }
    }

    /// How many keys are buffered (Kafka's `numRecords`).
    pub fn num_records(&self) -> usize {
        self.sorted.len()
    }

    /// The buffer's estimated size in bytes (Kafka's `bufferSize`).
    pub fn buffer_size(&self) -> i64 {
        self.bytes
    }

    /// The earliest buffer time, `i64::MAX` when empty (Kafka's `minTimestamp`).
    pub fn min_timestamp(&self) -> i64 {
        self.sorted
            .keys()
            .next()
            .map_or(i64::MAX, |(time, _)| *time)
    }

    /// Buffers an update of `key` at `buffer_time` (Kafka's `put`): a key already
    /// buffered keeps its buffer time and prior value.
    pub fn put(
        &mut self,
        buffer_time: i64,
        key: &K,
        new: Option<&V>,
        old: Option<&V>,
        context: BufferedRecordContext,
    ) -> StateResult<()> {
        self.check_open()?;
        let key = self.codec.key_bytes(key)?.into_owned();
        let bytes = |v: Option<&V>| -> StateResult<Option<Vec<u8>>> {
            Ok(match v {
                Some(v) => self.codec.value_bytes(v)?.map(|b| b.into_owned()),
                None => None,
            })
        };
        let (new, old) = (bytes(new)?, bytes(old)?);
        let value = match self
            .index
            .get(&key)
            .and_then(|t| self.sorted.get(&(*t, key.clone())))
        {
            Some(buffered) => BufferValue {
                prior: buffered.prior.clone(),
                old,
                old_is_prior: false,
                new,
                context,
            },
            None => BufferValue {
                prior: old.clone(),
                old,
                old_is_prior: true,
                new,
                context,
            },
        };
        if self.logging {
            self.dirty.insert(key.clone());
        }
        self.clean_put(buffer_time, key, value);
        Ok(())
    }

    /// Kafka's `cleanPut`: a new key is placed at `buffer_time`; a buffered one keeps
    /// its place.
    fn clean_put(&mut self, buffer_time: i64, key: Vec<u8>, value: BufferValue) {
        let time = *self.index.entry(key.clone()).or_insert(buffer_time);
        let added = value.record_size(&key);
        if let Some(removed) = self.sorted.insert((time, key.clone()), value) {
            self.bytes -= removed.record_size(&key);
        }
        self.bytes += added;
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(time) = self.index.remove(key) {
            if let Some(removed) = self.sorted.remove(&(time, key.to_vec())) {
                self.bytes -= removed.record_size(key);
            }
        }
    }

    /// Removes and returns the update with the earliest buffer time (then smallest
    /// key bytes), if any: one step of Kafka's `evictWhile`.
    pub fn evict_oldest(&mut self) -> StateResult<Option<Eviction<K, V>>> {
        self.check_open()?;
        let Some(((_, key), value)) = self.sorted.pop_first() else {
            return Ok(None);
        };
        self.index.remove(&key);
        self.bytes -= value.record_size(&key);
        let eviction = Eviction {
            key: self.codec.key(&key)?,
            new: value
                .new
                .as_deref()
                .map(|b| self.codec.value(b))
                .transpose()?,
            old: value
                .old
                .as_deref()
                .map(|b| self.codec.value(b))
                .transpose()?,
            context: value.context,
        };
        if self.logging {
            self.dirty.insert(key);
        }
        Ok(Some(eviction))
    }

    fn log(&self, key: &[u8], value: Option<&[u8]>) -> StateResult<()> {
        let (Some(changelog), Some(writer)) = (&self.changelog, &self.writer) else {
            return Ok(());
        };
        writer
            .send(&changelog.topic, changelog.partition, key, value)
            .map_err(|source| StateError::Changelog {
                store: self.codec.name.clone(),
                topic: changelog.topic.clone(),
                partition: changelog.partition,
                source,
            })
    }
}

impl<K: 'static, V: 'static> StateStore for TimeOrderedKeyValueBuffer<K, V> {
    fn name(&self) -> &str {
        &self.codec.name
    }

    /// Logs the keys changed since the last flush: a buffered key's value, or a
    /// tombstone for an evicted one.
    fn flush(&mut self) -> crate::Result<()> {
        if !self.open {
            return Ok(());
        }
        for key in std::mem::take(&mut self.dirty) {
            let encoded = self
                .index
                .get(&key)
                .and_then(|time| Some((*time, self.sorted.get(&(*time, key.clone()))?)))
                .map(|(time, value)| value.encode(time));
            self.log(&key, encoded.as_deref())?;
        }
        Ok(())
    }

    fn close(&mut self) -> crate::Result<()> {
        self.open = false;
        self.sorted.clear();
        self.index.clear();
        self.dirty.clear();
        self.bytes = 0;
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn init(&mut self, context: &StoreContext) -> crate::Result<()> {
        let topic = changelog_topic(&context.application_id, &self.codec.name);
        if self.logging {
            self.writer = Some(context.required_changelog_writer(&self.codec.name)?);
            self.changelog = Some(ChangelogPartition {
                topic: topic.clone(),
                partition: context.task.partition,
            });
        }
        self.codec.serde_topic = topic;
        self.open = true;
        Ok(())
    }

    fn persistence(&mut self) -> Option<&mut dyn RestorableStore> {
        (self.open && self.logging).then_some(self as &mut dyn RestorableStore)
    }
}

impl<K: 'static, V: 'static> RestorableStore for TimeOrderedKeyValueBuffer<K, V> {
    fn changelog(&self) -> Option<&ChangelogPartition> {
        self.changelog.as_ref()
    }

    fn checkpointed_offset(&self) -> Option<i64> {
        self.checkpoint
    }

    fn restore_batch(&mut self, records: &[RestoreRecord<'_>]) -> StateResult<()> {
        self.check_open()?;
        let from = self.checkpoint.unwrap_or(i64::MIN);
        for record in records.iter().filter(|r| r.offset >= from) {
            self.remove(record.key);
            if let Some(data) = record.value {
                let (time, value) = BufferValue::decode(data).map_err(|reason| {
                    let changelog = self.changelog.clone().unwrap_or(ChangelogPartition {
                        topic: self.codec.serde_topic.clone(),
                        partition: -1,
                    });
                    StateError::Restore {
                        store: self.codec.name.clone(),
                        topic: changelog.topic,
                        partition: changelog.partition,
                        offset: record.offset,
                        reason: format!("undecodable suppression buffer record: {reason}"),
                    }
                })?;
                self.clean_put(time, record.key.to_vec(), value);
            }
            self.checkpoint = Some(record.offset.saturating_add(1));
        }
        Ok(())
    }

    fn checkpoint(&mut self, next_offset: i64) -> StateResult<()> {
        self.checkpoint = Some(next_offset);
        Ok(())
    }

    fn remove_checkpoint(&mut self) -> StateResult<()> {
        self.checkpoint = None;
        Ok(())
    }
}

/// Builds a task's [`TimeOrderedKeyValueBuffer`] (Kafka's
/// `InMemoryTimeOrderedKeyValueChangeBuffer.Builder`).
pub(crate) struct TimeOrderedKeyValueBufferBuilder<K, V> {
    name: String,
    logging: bool,
    changelog_configs: BTreeMap<String, String>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

impl<K, V> TimeOrderedKeyValueBufferBuilder<K, V> {
    /// A logged buffer named `name`; its changelog topic gets `changelog_configs` on
    /// top of `cleanup.policy=compact`, unless `logging` is off.
    pub fn new(
        name: impl Into<String>,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        logging: bool,
        changelog_configs: BTreeMap<String, String>,
    ) -> Self {
        TimeOrderedKeyValueBufferBuilder {
            name: name.into(),
            logging,
            changelog_configs,
            key_serde,
            value_serde,
        }
    }
}

impl<K: 'static, V: 'static> StoreBuilder for TimeOrderedKeyValueBufferBuilder<K, V> {
    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, _task: TaskId) -> crate::Result<Box<dyn StateStore>> {
        Ok(Box::new(TimeOrderedKeyValueBuffer::new(
            &self.name,
            self.logging,
            self.key_serde.clone(),
            self.value_serde.clone(),
        )))
    }

    fn changelog_topic(&self, application_id: &str) -> Option<String> {
        self.logging
            .then(|| changelog_topic(application_id, &self.name))
    }

    fn changelog_topic_configs(&self) -> BTreeMap<String, String> {
        let mut configs = super::compacted_topic_configs();
        configs.extend(self.changelog_configs.clone());
        configs
    }
}

/// Restores an open, in-memory buffer of byte keys and values from `records`, then
/// evicts every update, as a restarted task would: the number of evictions. The way
/// into the changelog value decoder for the fuzz targets (`crate::fuzzing`).
pub(crate) fn restore_and_evict_all(records: &[RestoreRecord<'_>]) -> StateResult<usize> {
    let serde: Arc<dyn Serde<Vec<u8>>> = Arc::new(kafka_client::serde::BytesSerde);
    let mut buffer = TimeOrderedKeyValueBuffer::new("fuzz-buffer", true, serde.clone(), serde);
    buffer.open = true;
    buffer.restore_batch(records)?;
    let mut evicted = 0;
    while buffer.evict_oldest()?.is_some() {
        evicted += 1;
    }
    Ok(evicted)
}

/// Decodes a changelog value, encodes what it read and decodes that again: `None` when
/// `data` does not decode, else whether both reads agree (they must).
pub(crate) fn changelog_value_round_trips(data: &[u8]) -> Option<bool> {
    let (time, value) = BufferValue::decode(data).ok()?;
    Some(BufferValue::decode(&value.encode(time)) == Ok((time, value)))
}

/// Changelog values as the buffer writes them, for the fuzz targets' seed corpus.
pub(crate) fn sample_changelog_values() -> Vec<Vec<u8>> {
    let context = BufferedRecordContext {
        timestamp: 1_700_000_000_000,
        offset: 42,
        topic: "orders".into(),
        partition: 3,
        headers: Headers::new().with(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
    };
    let mut no_value_header = Headers::new();
    no_value_header.insert_null("flag");
    let first_update = BufferValue {
        prior: Some(b"old".to_vec()),
        old: Some(b"old".to_vec()),
        old_is_prior: true,
        new: Some(b"new".to_vec()),
        context: context.clone(),
    };
    let later_update = BufferValue {
        prior: None,
        old: Some(b"between".to_vec()),
        old_is_prior: false,
        new: None,
        context: BufferedRecordContext {
            headers: no_value_header,
            ..context
        },
    };
    let unknown_context = BufferValue {
        prior: None,
        old: None,
        old_is_prior: true,
        new: Some(Vec::new()),
        context: BufferedRecordContext {
            offset: -1,
            partition: -1,
            ..Default::default()
        },
    };
    vec![
        first_update.encode(1_700_000_000_000),
        later_update.encode(0),
        unknown_context.encode(-1),
    ]
}

#[cfg(test)]
mod tests {
    use kafka_client::serde::{BigEndian, StringSerde};

    use super::*;
    use crate::state::RecordingChangelogWriter;

    fn buffer(writer: &RecordingChangelogWriter) -> TimeOrderedKeyValueBuffer<String, i64> {
        let mut buffer = TimeOrderedKeyValueBuffer::new(
            "KTABLE-SUPPRESS-STATE-STORE-0000000001",
            true,
            Arc::new(StringSerde),
            Arc::new(BigEndian),
        );
        let task = TaskId {
            subtopology: 0,
            partition: 3,
        };
        let context = StoreContext::new("app", "/nonexistent", task)
            .with_changelog_writer(Arc::new(writer.clone()));
        buffer.init(&context).unwrap();
        buffer
    }

    #[test]
    fn builder_names_a_compacted_changelog_with_the_users_configs() {
        let builder = TimeOrderedKeyValueBufferBuilder::<String, i64>::new(
            "s",
            Arc::new(StringSerde),
            Arc::new(BigEndian),
            true,
            BTreeMap::from([("segment.ms".to_owned(), "1000".to_owned())]),
        );
        assert_eq!(
            builder.changelog_topic("app").as_deref(),
            Some("app-s-changelog")
        );
        assert_eq!(
            builder.changelog_topic_configs(),
            BTreeMap::from([
                ("cleanup.policy".to_owned(), "compact".to_owned()),
                ("segment.ms".to_owned(), "1000".to_owned()),
            ])
        );
        let unlogged = TimeOrderedKeyValueBufferBuilder::<String, i64>::new(
            "s",
            Arc::new(StringSerde),
            Arc::new(BigEndian),
            false,
            BTreeMap::new(),
        );
        assert_eq!(unlogged.changelog_topic("app"), None);
        let mut store = unlogged
            .build(TaskId {
                subtopology: 0,
                partition: 0,
            })
            .unwrap();
        store
            .init(&StoreContext::new(
                "app",
                "/nonexistent",
                TaskId {
                    subtopology: 0,
                    partition: 0,
                },
            ))
            .unwrap();
        assert!(store.persistence().is_none());
    }

    fn context(timestamp: i64) -> BufferedRecordContext {
        BufferedRecordContext {
            timestamp,
            offset: timestamp,
            topic: "input".into(),
            partition: 3,
            headers: Headers::new().with("h", b"v".to_vec()),
        }
    }

    #[test]
    fn keys_keep_their_first_buffer_time_and_evict_in_time_then_key_order() {
        let writer = RecordingChangelogWriter::new();
        let mut b = buffer(&writer);
        b.put(5, &"b".into(), Some(&1), None, context(5)).unwrap();
        b.put(3, &"a".into(), Some(&1), None, context(3)).unwrap();
        b.put(5, &"c".into(), Some(&1), None, context(5)).unwrap();
        // A later update of "b" replaces its value, not its buffer time.
        b.put(9, &"b".into(), Some(&2), Some(&1), context(9))
            .unwrap();
        assert_eq!(b.num_records(), 3);
        assert_eq!(b.min_timestamp(), 3);
        let order: Vec<_> = std::iter::from_fn(|| b.evict_oldest().unwrap())
            .map(|e| (e.key, e.new, e.old, e.context.timestamp))
            .collect();
        assert_eq!(
            order,
            vec![
                ("a".to_owned(), Some(1), None, 3),
                ("b".to_owned(), Some(2), Some(1), 9),
                ("c".to_owned(), Some(1), None, 5),
            ]
        );
        assert_eq!(b.buffer_size(), 0);
        assert_eq!(b.min_timestamp(), i64::MAX);
    }

    #[test]
    fn size_is_kafkas_estimate() {
        let writer = RecordingChangelogWriter::new();
        let mut b = buffer(&writer);
        // 8 (time) + 1 (key) + 8 (prior = old, counted once) + 8 (new)
        // + context: 8 + 8 + 5 ("input") + 4 + 1 + 1 (header "h" = "v").
        b.put(1, &"k".into(), Some(&2), Some(&1), context(1))
            .unwrap();
        assert_eq!(b.buffer_size(), 8 + 1 + 8 + 8 + 27);
        // Now prior (1) and old (2) are counted apart.
        b.put(1, &"k".into(), Some(&3), Some(&2), context(1))
            .unwrap();
        assert_eq!(b.buffer_size(), 8 + 1 + 8 + 8 + 8 + 27);
    }

    #[test]
    fn flush_logs_dirty_keys_and_restore_rebuilds_the_order() {
        let writer = RecordingChangelogWriter::new();
        let mut b = buffer(&writer);
        b.put(7, &"x".into(), Some(&1), None, context(7)).unwrap();
        b.put(4, &"y".into(), None, Some(&5), context(4)).unwrap();
        b.put(8, &"x".into(), Some(&2), Some(&1), context(8))
            .unwrap();
        b.put(2, &"z".into(), Some(&9), None, context(2)).unwrap();
        assert_eq!(b.evict_oldest().unwrap().unwrap().key, "z");
        StateStore::flush(&mut b).unwrap();
        let logged = writer.take();
        assert!(logged.iter().all(|r| r.topic
            == "app-KTABLE-SUPPRESS-STATE-STORE-0000000001-changelog"
            && r.partition == 3));
        // x, y and z changed: z was evicted, so it is a tombstone.
        assert_eq!(logged.len(), 3);
        assert_eq!(
            logged
                .iter()
                .find(|r| r.key == b"z")
                .map(|r| r.value.clone()),
            Some(None)
        );
        StateStore::flush(&mut b).unwrap();
        assert!(
            writer.take().is_empty(),
            "nothing changed since the last flush"
        );

        let mut restored = buffer(&writer);
        assert_eq!(restored.checkpointed_offset(), None);
        let records: Vec<_> = logged
            .iter()
            .enumerate()
            .map(|(offset, r)| RestoreRecord {
                key: &r.key,
                value: r.value.as_deref(),
                offset: offset as i64,
                timestamp: -1,
            })
            .collect();
        restored.restore_batch(&records).unwrap();
        assert_eq!(restored.checkpointed_offset(), Some(3));
        assert_eq!(restored.buffer_size(), b.buffer_size());
        let drain = |buf: &mut TimeOrderedKeyValueBuffer<String, i64>| {
            std::iter::from_fn(|| buf.evict_oldest().unwrap()).collect::<Vec<_>>()
        };
        let expected = drain(&mut b);
        assert_eq!(expected.len(), 2);
        assert_eq!(drain(&mut restored), expected);
        assert!(writer.take().is_empty(), "restoring logs nothing");
    }

    #[test]
    fn undecodable_changelog_record_names_store_and_offset() {
        let writer = RecordingChangelogWriter::new();
        let mut b = buffer(&writer);
        let err = b
            .restore_batch(&[RestoreRecord {
                key: b"k",
                value: Some(b"short"),
                offset: 41,
                timestamp: -1,
            }])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("KTABLE-SUPPRESS-STATE-STORE-0000000001"),
            "{err}"
        );
        assert!(err.contains("offset 41"), "{err}");
    }
}
