//! Tables and aggregations: [`KTable`], [`KGroupedStream`], [`KGroupedTable`],
//! [`CogroupedKStream`] and [`Materialized`] (Kafka Streams' `KTable`,
//! `KGroupedStream`, `KGroupedTable`, `CogroupedKStream`, `Materialized`).
//!
//! A table flows between its nodes as a stream of [`Change`]s: the new value of a key
//! and the value it replaces (`new: None` is a delete, forwarded downstream as a
//! tombstone). Old values are always sent, so a [`KGroupedTable`] can subtract a row
//! from the group it leaves before adding it to the group it joins.
//!
//! Aggregations keep their result in a [`TypedKeyValueStore`] built from the
//! [`Materialized`] options (RocksDB or in-memory, logged to
//! `<application.id>-<store>-changelog` unless logging is disabled, with a record
//! cache unless caching is disabled). Without a cache each update is forwarded
//! downstream as it happens; with one (the default), updates are folded per key and
//! forwarded when the cache writes them through: at each commit, or on eviction when
//! `statestore.cache.max.bytes` is reached (Kafka's behaviour).

use std::marker::PhantomData;
use std::sync::Arc;

use kafka_client::serde::{DefaultSerde, Deserializer, SerdeContext, SerdeError, Serializer};

use super::ops::PassThrough;
use super::options::{default_serde, SharedSerde};
use super::{lock, KStream, SharedBuilder};
use crate::processor::internal::factory;
use crate::processor::{Data, Processor, ProcessorContext, ProcessorError, Record};
use crate::state::{FlushQueue, KeyValueStoreBuilder, StoreKind, TypedKeyValueStore};

/// An update of one table row (Kafka's `Change`): the new value (`None`: the key was
/// deleted) and the value it replaced (`None`: the key was absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    /// The new value; `None` deletes the key.
    pub new: Option<V>,
    /// The previous value, if any.
    pub old: Option<V>,
}

/// How an aggregation or table is kept in a state store (Kafka's `Materialized`):
/// store name, serdes, store kind, logging and caching.
///
/// Defaults, as in Kafka Streams: a generated name, the types' default serdes, RocksDB,
/// logging and caching enabled.
///
/// ```
/// use kafka_streams::dsl::Materialized;
/// let m = Materialized::<String, i64>::as_("word-counts").in_memory().with_logging_disabled();
/// ```
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key: Option<SharedSerde<K>>,
    pub(crate) value: Option<SharedSerde<V>>,
    pub(crate) kind: StoreKind,
    pub(crate) logging: bool,
    pub(crate) changelog_configs: Vec<(String, String)>,
    pub(crate) caching: bool,
}

impl<K, V> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            name: None,
            key: None,
            value: None,
            kind: StoreKind::RocksDb,
            logging: true,
            changelog_configs: Vec::new(),
            caching: true,
        }
    }
}

impl<K, V> Materialized<K, V> {
    /// A store named `name` (queryable under that name).
    pub fn as_(name: impl Into<String>) -> Self {
        Materialized {
            name: Some(name.into()),
            ..Self::default()
        }
    }

    /// Stores keys with this serde.
    pub fn with_key_serde(mut self, serde: SharedSerde<K>) -> Self {
        self.key = Some(serde);
        self
    }

    /// Stores values with this serde.
    pub fn with_value_serde(mut self, serde: SharedSerde<V>) -> Self {
        self.value = Some(serde);
        self
    }

    /// Keeps the store in memory (rebuilt from the changelog on restart).
    pub fn in_memory(mut self) -> Self {
        self.kind = StoreKind::InMemory;
        self
    }

    /// Selects the store kind.
    pub fn with_store_kind(mut self, kind: StoreKind) -> Self {
        self.kind = kind;
        self
    }

    /// Does not log the store to a changelog topic.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }

    /// Logs the store to `<application.id>-<store>-changelog` (the default).
    pub fn with_logging_enabled(mut self) -> Self {
        self.logging = true;
        self
    }

    /// Logs the store to its changelog (as [`with_logging_enabled`](Self::with_logging_enabled)),
    /// creating the topic with `configs` on top of `cleanup.policy=compact` (Kafka's
    /// `withLoggingEnabled(config)`).
    ///
    /// ```
    /// use kafka_streams::dsl::Materialized;
    /// let m = Materialized::<String, i64>::as_("counts")
    ///     .with_logging_config([("segment.ms", "60000"), ("min.cleanable.dirty.ratio", "0.1")]);
    /// ```
    pub fn with_logging_config<N: Into<String>, V2: Into<String>>(
        mut self,
        configs: impl IntoIterator<Item = (N, V2)>,
    ) -> Self {
        self.logging = true;
        self.changelog_configs
            .extend(configs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Writes every update straight through to the store and changelog.
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching = false;
        self
    }

    /// Folds updates in the record cache between commits (the default).
    pub fn with_caching_enabled(mut self) -> Self {
        self.caching = true;
        self
    }
}

/// Adds the store `name` described by `m` to the topology.
fn add_store<K: Data, V: Data>(
    builder: &SharedBuilder,
    m: &Materialized<K, V>,
    name: &str,
    key: SharedSerde<K>,
    value: SharedSerde<V>,
) {
    let mut b = KeyValueStoreBuilder::with_serdes(name, key, value).with_kind(m.kind);
    b = if m.logging {
        b.with_logging_enabled(m.changelog_configs.iter().cloned())
    } else {
        b.with_logging_disabled()
    };
    b = if m.caching {
        b.with_caching_enabled()
    } else {
        b.with_caching_disabled()
    };
    lock(builder).topology.add_store(Arc::new(b));
}

/// Forwards a table's updates as Kafka's `TimestampedTupleForwarder` does: at once
/// when its store has no record cache; otherwise when the cache writes them through
/// (on eviction, or at commit), folded per key, stamped with the stream time.
struct TupleForwarder {
    store: String,
    queue: Option<FlushQueue>,
}

impl TupleForwarder {
    fn new(store: &str) -> Self {
        TupleForwarder {
            store: store.to_owned(),
            queue: None,
        }
    }

    /// Listens to the store's cache, if it has one.
    fn init<K: Data, V: Data>(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let store = ctx.required_store::<TypedKeyValueStore<K, V>>(&self.store)?;
        let queue = FlushQueue::new();
        if store.set_flush_listener(Box::new(queue.clone()), true)? {
            self.queue = Some(queue);
        }
        Ok(())
    }

    fn maybe_forward<K: Data, V: Data>(
        &self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Change<V>>,
    ) {
        if self.queue.is_none() {
            ctx.forward(record);
        }
    }

    /// Forwards what the cache wrote through since the last call.
    fn flush<K: Data, V: Data>(
        &self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let Some(queue) = &self.queue else {
            return Ok(());
        };
        let entries = queue.drain();
        if entries.is_empty() {
            return Ok(());
        }
        let timestamp = ctx.current_stream_time_ms().max(0);
        let store = ctx.required_store::<TypedKeyValueStore<K, V>>(&self.store)?;
        let updates = entries
            .iter()
            .map(|e| store.decode_flushed(e))
            .collect::<Result<Vec<_>, _>>()?;
        for (key, new, old) in updates {
            ctx.forward(Record::new(key, Change { new, old }, timestamp));
        }
        Ok(())
    }
}

/// The general aggregation step: `(key, value, current aggregate) → new aggregate`.
type AggFn<K, V, VA> = Arc<dyn Fn(&K, &V, Option<VA>) -> VA + Send + Sync>;

/// Aggregates a grouped stream into a store (Kafka's `KStreamAggregate` /
/// `KStreamReduce`).
struct StreamAggregate<K, V, VA> {
    store: String,
    agg: AggFn<K, V, VA>,
    forwarder: TupleForwarder,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, K, Change<VA>> for StreamAggregate<K, V, VA> {
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        self.forwarder.init(ctx)
    }

    fn flush(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        self.forwarder.flush(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        let store = ctx.required_store::<TypedKeyValueStore<K, VA>>(&self.store)?;
        let (old, new) = store.update_with(&record.key, |old| {
            (self.agg)(&record.key, &record.value, old.clone())
        })?;
        let change = Change {
            new: Some(new),
            old,
        };
        self.forwarder.maybe_forward(ctx, record.with_value(change));
        Ok(())
    }
}

/// Materializes a source topic as a table (Kafka's `KTableSource`): a null value
/// deletes the key and is forwarded as a tombstone.
struct TableSource<K, V> {
    store: String,
    forwarder: TupleForwarder,
    _t: PhantomData<fn(K, V)>,
}

impl<K: Data, V: Data> Processor<K, Option<V>, K, Change<V>> for TableSource<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), ProcessorError> {
        self.forwarder.init(ctx)
    }

    fn flush(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        self.forwarder.flush(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Option<V>>,
    ) -> Result<(), ProcessorError> {
        let store = ctx.required_store::<TypedKeyValueStore<K, V>>(&self.store)?;
        let old = match &record.value {
            Some(v) => {
                let old = store.get(&record.key)?;
                store.put(&record.key, v)?;
                old
            }
            None => store.delete(&record.key)?,
        };
        let new = record.value.clone();
        if new.is_none() && old.is_none() {
            return Ok(()); // deleting an absent key changes nothing
        }
        self.forwarder
            .maybe_forward(ctx, record.with_value(Change { new, old }));
        Ok(())
    }
}

type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Kafka's `KTableFilter`: a row that stops matching becomes a delete.
struct TableFilter<K, V> {
    f: Predicate<K, V>,
    keep_when: bool,
}

impl<K: Data, V: Data> Processor<K, Change<V>> for TableFilter<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let keep = |v: &Option<V>| match v {
            Some(v) if (self.f)(&record.key, v) == self.keep_when => Some(v.clone()),
            _ => None,
        };
        let new = keep(&record.value.new);
        let old = keep(&record.value.old);
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        ctx.forward(record.with_value(Change { new, old }));
        Ok(())
    }
}

type ValueMapper<K, V, V2> = Arc<dyn Fn(&K, &V) -> V2 + Send + Sync>;

/// Kafka's `KTableMapValues`.
struct TableMapValues<K, V, V2> {
    f: ValueMapper<K, V, V2>,
}

impl<K: Data, V: Data, V2: Data> Processor<K, Change<V>, K, Change<V2>>
    for TableMapValues<K, V, V2>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let new = record.value.new.as_ref().map(|v| (self.f)(&record.key, v));
        let old = record.value.old.as_ref().map(|v| (self.f)(&record.key, v));
        ctx.forward(record.with_value(Change { new, old }));
        Ok(())
    }
}

/// Kafka's `KTableMapValues` feeding `toStream()`: the new value, `None` for deletes.
struct ToStream<K, V>(PhantomData<fn(K, V)>);

impl<K: Data, V: Data> Processor<K, Change<V>, K, Option<V>> for ToStream<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let new = record.value.new.clone();
        ctx.forward(record.with_value(new));
        Ok(())
    }
}

type KeyValueSelector<K, V, K2, V2> = Arc<dyn Fn(&K, &V) -> (K2, V2) + Send + Sync>;

/// Kafka's `KTableRepartitionMap`: the old row is sent to its group as a subtraction,
/// the new row to its group as an addition.
struct TableRepartitionMap<K, V, K2, V2> {
    f: KeyValueSelector<K, V, K2, V2>,
}

impl<K: Data, V: Data, K2: Data, V2: Data> Processor<K, Change<V>, K2, Change<V2>>
    for TableRepartitionMap<K, V, K2, V2>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        if let Some(old) = &record.value.old {
            let (k2, v2) = (self.f)(&record.key, old);
            ctx.forward(Record {
                key: k2,
                value: Change {
                    new: None,
                    old: Some(v2),
                },
                timestamp: record.timestamp,
                headers: record.headers.clone(),
            });
        }
        if let Some(new) = &record.value.new {
            let (k2, v2) = (self.f)(&record.key, new);
            ctx.forward(Record {
                key: k2,
                value: Change {
                    new: Some(v2),
                    old: None,
                },
                timestamp: record.timestamp,
                headers: record.headers.clone(),
            });
        }
        Ok(())
    }
}

type TableAggFn<K, V, VA> = Arc<dyn Fn(&K, &V, Option<VA>) -> Option<VA> + Send + Sync>;

/// Kafka's `KTableAggregate` / `KTableReduce`: subtract the old row, add the new one.
/// A result of `None` deletes the group's key (and forwards a tombstone).
struct TableAggregate<K, V, VA> {
    store: String,
    add: TableAggFn<K, V, VA>,
    sub: TableAggFn<K, V, VA>,
    forwarder: TupleForwarder,
}

impl<K: Data, V: Data, VA: Data> Processor<K, Change<V>, K, Change<VA>>
    for TableAggregate<K, V, VA>
{
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        self.forwarder.init(ctx)
    }

    fn flush(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        self.forwarder.flush(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let store = ctx.required_store::<TypedKeyValueStore<K, VA>>(&self.store)?;
        let prev = store.get(&record.key)?;
        let mut agg = prev.clone();
        if let Some(old) = &record.value.old {
            agg = (self.sub)(&record.key, old, agg);
        }
        if let Some(new) = &record.value.new {
            agg = (self.add)(&record.key, new, agg);
        }
        match &agg {
            Some(a) => store.put(&record.key, a)?,
            None => {
                store.delete(&record.key)?;
            }
        }
        if agg.is_none() && prev.is_none() {
            return Ok(());
        }
        self.forwarder.maybe_forward(
            ctx,
            record.with_value(Change {
                new: agg,
                old: prev,
            }),
        );
        Ok(())
    }
}

/// The wire format of [`Change`]s on a table's repartition topic: one flag byte
/// (`1` = addition, `0` = subtraction), one presence byte, then the value's bytes.
pub(crate) struct ChangeSerde<V>(pub SharedSerde<V>);

impl<V> Serializer<Change<V>> for ChangeSerde<V> {
    fn serialize(
        &self,
        data: &Change<V>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let (flag, value) = match (&data.new, &data.old) {
            (Some(v), _) => (1u8, v),
            (None, Some(v)) => (0u8, v),
            (None, None) => return Ok(None),
        };
        let bytes = Serializer::<V>::serialize(&*self.0, value, ctx)?;
        let mut out = Vec::with_capacity(2 + bytes.as_ref().map_or(0, Vec::len));
        out.push(flag);
        match bytes {
            Some(b) => {
                out.push(1);
                out.extend_from_slice(&b);
            }
            None => out.push(0),
        }
        Ok(Some(out))
    }
}

impl<V> Deserializer<Change<V>> for ChangeSerde<V> {
    fn deserialize(
        &self,
        data: Option<&[u8]>,
        ctx: &SerdeContext<'_>,
    ) -> Result<Change<V>, SerdeError> {
        let Some(data) = data else {
            return Ok(Change {
                new: None,
                old: None,
            });
        };
        let (&flag, rest) = data
            .split_first()
            .ok_or_else(|| SerdeError::custom("empty table repartition record"))?;
        let (&present, rest) = rest
            .split_first()
            .ok_or_else(|| SerdeError::custom("truncated table repartition record"))?;
        let value = Deserializer::<V>::deserialize(&*self.0, (present == 1).then_some(rest), ctx)?;
        Ok(if flag == 1 {
            Change {
                new: Some(value),
                old: None,
            }
        } else {
            Change {
                new: None,
                old: Some(value),
            }
        })
    }
}

/// A table: the latest value per key (Kafka's `KTable`).
pub struct KTable<K, V> {
    builder: SharedBuilder,
    node: usize,
    key_serde: Option<SharedSerde<K>>,
    value_serde: Option<SharedSerde<V>>,
    store: Option<String>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            builder: self.builder.clone(),
            node: self.node,
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            store: self.store.clone(),
        }
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// The name of the store holding this table, if it is materialized (queryable).
    pub fn queryable_store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// Name of the node that produces this table.
    pub fn node_name(&self) -> String {
        lock(&self.builder).topology.node_name(self.node).to_owned()
    }

    fn add<V2: Data>(
        &self,
        prefix: &str,
        f: crate::processor::internal::ProcessorFactory,
        value_serde: Option<SharedSerde<V2>>,
    ) -> KTable<K, V2> {
        let mut inner = lock(&self.builder);
        let name = inner.new_name(prefix);
        let node = inner.topology.add_processor(name, f, &[self.node]);
        drop(inner);
        KTable {
            builder: self.builder.clone(),
            node,
            key_serde: self.key_serde.clone(),
            value_serde,
            store: None,
        }
    }

    /// Keeps the rows for which `predicate` is true; a row that stops matching is
    /// deleted downstream.
    pub fn filter<F>(&self, predicate: F) -> KTable<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        self.filter_inner(Arc::new(predicate), true)
    }

    /// Drops the rows for which `predicate` is true.
    pub fn filter_not<F>(&self, predicate: F) -> KTable<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        self.filter_inner(Arc::new(predicate), false)
    }

    fn filter_inner(&self, f: Predicate<K, V>, keep_when: bool) -> KTable<K, V> {
        self.add(
            "KTABLE-FILTER-",
            factory(move || TableFilter {
                f: f.clone(),
                keep_when,
            }),
            self.value_serde.clone(),
        )
    }

    /// Replaces each row's value.
    pub fn map_values<V2: Data, F>(&self, mapper: F) -> KTable<K, V2>
    where
        F: Fn(&V) -> V2 + Send + Sync + 'static,
    {
        self.map_values_with_key(move |_, v| mapper(v))
    }

    /// Replaces each row's value, seeing the key.
    pub fn map_values_with_key<V2: Data, F>(&self, mapper: F) -> KTable<K, V2>
    where
        F: Fn(&K, &V) -> V2 + Send + Sync + 'static,
    {
        let f: ValueMapper<K, V, V2> = Arc::new(mapper);
        self.add(
            "KTABLE-MAPVALUES-",
            factory(move || TableMapValues { f: f.clone() }),
            None,
        )
    }

    /// The table's changelog stream: each update's new value, `None` for a delete
    /// (written to a topic as a tombstone).
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let mut inner = lock(&self.builder);
        let name = inner.new_name("KTABLE-TOSTREAM-");
        let f = factory(|| ToStream::<K, V>(PhantomData));
        let node = inner.topology.add_processor(name, f, &[self.node]);
        drop(inner);
        KStream::new(
            self.builder.clone(),
            node,
            self.key_serde.clone(),
            None,
            false,
        )
    }

    /// Re-groups the table by a new key (Kafka's `KTable.groupBy`), through a
    /// repartition topic. Aggregations of the result subtract a row from its old group
    /// when it moves or is deleted.
    pub fn group_by<K2, V2, F>(&self, selector: F) -> KGroupedTable<K2, V2>
    where
        K2: Data + DefaultSerde,
        V2: Data + DefaultSerde,
        F: Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    {
        let f: KeyValueSelector<K, V, K2, V2> = Arc::new(selector);
        let mut inner = lock(&self.builder);
        let name = inner.new_name("KTABLE-SELECT-");
        let node = inner.topology.add_processor(
            name,
            factory(move || TableRepartitionMap { f: f.clone() }),
            &[self.node],
        );
        drop(inner);
        KGroupedTable {
            builder: self.builder.clone(),
            node,
            key_serde: default_serde::<K2>(),
            value_serde: default_serde::<V2>(),
        }
    }
}

/// A table re-grouped by [`KTable::group_by`], to aggregate (Kafka's `KGroupedTable`).
pub struct KGroupedTable<K, V> {
    builder: SharedBuilder,
    node: usize,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
}

impl<K: Data, V: Data> KGroupedTable<K, V> {
    /// Counts the rows per group.
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::default())
    }

    /// [`KGroupedTable::count`] into the store `materialized` describes.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate_inner(
            "KTABLE-AGGREGATE-",
            Arc::new(|_, _, agg: Option<i64>| Some(agg.unwrap_or(0) + 1)),
            Arc::new(|_, _, agg: Option<i64>| Some(agg.unwrap_or(0) - 1)),
            materialized,
            Some(default_serde::<i64>()),
        )
    }

    /// Combines the rows of each group with `adder`; `subtractor` takes a row out when
    /// it leaves the group.
    pub fn reduce<A, S>(&self, adder: A, subtractor: S) -> KTable<K, V>
    where
        A: Fn(V, &V) -> V + Send + Sync + 'static,
        S: Fn(V, &V) -> V + Send + Sync + 'static,
    {
        self.reduce_with(adder, subtractor, Materialized::default())
    }

    /// [`KGroupedTable::reduce`] into the store `materialized` describes.
    pub fn reduce_with<A, S>(
        &self,
        adder: A,
        subtractor: S,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V>
    where
        A: Fn(V, &V) -> V + Send + Sync + 'static,
        S: Fn(V, &V) -> V + Send + Sync + 'static,
    {
        let value = self.value_serde.clone();
        self.aggregate_inner(
            "KTABLE-REDUCE-",
            Arc::new(move |_, v: &V, agg: Option<V>| {
                Some(match agg {
                    Some(a) => adder(a, v),
                    None => v.clone(),
                })
            }),
            // As Kafka's KTableReduce: nothing to subtract from an absent aggregate.
            Arc::new(move |_, v: &V, agg: Option<V>| agg.map(|a| subtractor(a, v))),
            materialized,
            Some(value),
        )
    }

    /// Aggregates the rows of each group from `initializer()`: `adder` adds a row,
    /// `subtractor` takes out a row that left the group.
    pub fn aggregate<VA, I, A, S>(&self, initializer: I, adder: A, subtractor: S) -> KTable<K, VA>
    where
        VA: Data + DefaultSerde,
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        S: Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
    {
        self.aggregate_with(initializer, adder, subtractor, Materialized::default())
    }

    /// [`KGroupedTable::aggregate`] into the store `materialized` describes (which must
    /// give a value serde if `VA` has no default one).
    pub fn aggregate_with<VA, I, A, S>(
        &self,
        initializer: I,
        adder: A,
        subtractor: S,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA>
    where
        VA: Data + DefaultSerde,
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        S: Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
    {
        let init = Arc::new(initializer);
        let init2 = init.clone();
        self.aggregate_inner(
            "KTABLE-AGGREGATE-",
            Arc::new(move |k, v, agg: Option<VA>| Some(adder(k, v, agg.unwrap_or_else(|| init())))),
            Arc::new(move |k, v, agg: Option<VA>| {
                Some(subtractor(k, v, agg.unwrap_or_else(|| init2())))
            }),
            materialized,
            Some(default_serde::<VA>()),
        )
    }

    fn aggregate_inner<VA: Data>(
        &self,
        prefix: &str,
        add: TableAggFn<K, V, VA>,
        sub: TableAggFn<K, V, VA>,
        materialized: Materialized<K, VA>,
        default_value: Option<SharedSerde<VA>>,
    ) -> KTable<K, VA> {
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| lock(&self.builder).new_name(&format!("{prefix}STATE-STORE-")));
        // Always repartition: the new key decides the task.
        let grouped: KStream<K, Change<V>> =
            KStream::new(self.builder.clone(), self.node, None, None, false);
        let change_serde: SharedSerde<Change<V>> = Arc::new(ChangeSerde(self.value_serde.clone()));
        let source = grouped.repartition_through(
            Some(store.clone()),
            None,
            self.key_serde.clone(),
            change_serde,
        );
        let key = materialized
            .key
            .clone()
            .unwrap_or_else(|| self.key_serde.clone());
        let value = materialized.value.clone().or(default_value);
        let s = store.clone();
        finish_aggregate(
            &self.builder,
            &[source.node],
            prefix,
            &store,
            &materialized,
            key,
            value,
            factory(move || TableAggregate {
                store: s.clone(),
                add: add.clone(),
                sub: sub.clone(),
                forwarder: TupleForwarder::new(&s),
            }),
        )
    }
}

/// Adds the aggregation's store and processor (connected to it) and returns the
/// resulting table.
#[allow(clippy::too_many_arguments)]
fn finish_aggregate<K: Data, VA: Data>(
    builder: &SharedBuilder,
    parents: &[usize],
    prefix: &str,
    store: &str,
    materialized: &Materialized<K, VA>,
    key: SharedSerde<K>,
    value: Option<SharedSerde<VA>>,
    f: crate::processor::internal::ProcessorFactory,
) -> KTable<K, VA> {
    match &value {
        Some(v) => add_store(builder, materialized, store, key.clone(), v.clone()),
        None => lock(builder).topology.error(format!(
            "state store {store} has no value serde: give one with Materialized::with_value_serde"
        )),
    }
    let mut inner = lock(builder);
    let name = inner.new_name(prefix);
    let node = inner.topology.add_processor(name, f, parents);
    if value.is_some() {
        inner.topology.connect_store(node, store);
    }
    drop(inner);
    KTable {
        builder: builder.clone(),
        node,
        key_serde: Some(key),
        value_serde: value,
        store: Some(store.to_owned()),
    }
}

/// A stream grouped by key, to aggregate (Kafka's `KGroupedStream`). Made by
/// [`KStream::group_by_key`] and [`KStream::group_by`]; if the key changed upstream,
/// the aggregation first repartitions through `<store>-repartition`.
pub struct KGroupedStream<K, V> {
    stream: KStream<K, V>,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
}

impl<K: Data, V: Data> Clone for KGroupedStream<K, V> {
    fn clone(&self) -> Self {
        KGroupedStream {
            stream: self.stream.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    pub(crate) fn new(
        stream: KStream<K, V>,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
    ) -> Self {
        KGroupedStream {
            stream,
            key_serde,
            value_serde,
        }
    }

    /// Counts the records per key.
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::default())
    }

    /// [`KGroupedStream::count`] into the store `materialized` describes.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate_inner(
            "KSTREAM-AGGREGATE-",
            Arc::new(|_, _, agg: Option<i64>| agg.unwrap_or(0) + 1),
            materialized,
            Some(default_serde::<i64>()),
        )
    }

    /// Combines the values of each key with `reducer(aggregate, value)`; the first
    /// value of a key is its initial aggregate.
    pub fn reduce<F>(&self, reducer: F) -> KTable<K, V>
    where
        F: Fn(V, &V) -> V + Send + Sync + 'static,
    {
        self.reduce_with(reducer, Materialized::default())
    }

    /// [`KGroupedStream::reduce`] into the store `materialized` describes.
    pub fn reduce_with<F>(&self, reducer: F, materialized: Materialized<K, V>) -> KTable<K, V>
    where
        F: Fn(V, &V) -> V + Send + Sync + 'static,
    {
        let value = self.value_serde.clone();
        self.aggregate_inner(
            "KSTREAM-REDUCE-",
            Arc::new(move |_, v: &V, agg: Option<V>| match agg {
                Some(a) => reducer(a, v),
                None => v.clone(),
            }),
            materialized,
            Some(value),
        )
    }

    /// Aggregates the values of each key from `initializer()` with
    /// `aggregator(key, value, aggregate)`.
    pub fn aggregate<VA, I, A>(&self, initializer: I, aggregator: A) -> KTable<K, VA>
    where
        VA: Data + DefaultSerde,
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
    {
        let m = Materialized::default().with_value_serde(default_serde::<VA>());
        self.aggregate_with(initializer, aggregator, m)
    }

    /// [`KGroupedStream::aggregate`] into the store `materialized` describes, which
    /// must give the value serde ([`Materialized::with_value_serde`]) when `VA` has no
    /// default one.
    pub fn aggregate_with<VA, I, A>(
        &self,
        initializer: I,
        aggregator: A,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA>
    where
        VA: Data,
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
    {
        self.aggregate_inner(
            "KSTREAM-AGGREGATE-",
            Arc::new(move |k, v, agg: Option<VA>| {
                aggregator(k, v, agg.unwrap_or_else(&initializer))
            }),
            materialized,
            None,
        )
    }

    fn aggregate_inner<VA: Data>(
        &self,
        prefix: &str,
        agg: AggFn<K, V, VA>,
        materialized: Materialized<K, VA>,
        default_value: Option<SharedSerde<VA>>,
    ) -> KTable<K, VA> {
        let builder = self.stream.builder.clone();
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| lock(&builder).new_name(&format!("{prefix}STATE-STORE-")));
        let source = self.stream.repartition_if_required(
            Some(store.clone()),
            self.key_serde.clone(),
            self.value_serde.clone(),
        );
        let key = materialized
            .key
            .clone()
            .unwrap_or_else(|| self.key_serde.clone());
        let value = materialized.value.clone().or(default_value);
        let s = store.clone();
        finish_aggregate(
            &builder,
            &[source.node],
            prefix,
            &store,
            &materialized,
            key,
            value,
            factory(move || StreamAggregate {
                store: s.clone(),
                agg: agg.clone(),
                forwarder: TupleForwarder::new(&s),
            }),
        )
    }

    /// Starts a cogrouped aggregation (Kafka's `cogroup`): several grouped streams with
    /// the same key update one aggregate, each with its own aggregator.
    pub fn cogroup<VA: Data, A>(&self, aggregator: A) -> CogroupedKStream<K, VA>
    where
        A: Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
    {
        CogroupedKStream {
            builder: self.stream.builder.clone(),
            key_serde: self.key_serde.clone(),
            parts: Vec::new(),
        }
        .cogroup(self, aggregator)
    }
}

type CogroupPart<VA> = Box<dyn FnOnce(&str, usize, Arc<dyn Fn() -> VA + Send + Sync>) -> usize>;

/// Several grouped streams aggregated into one table (Kafka's `CogroupedKStream`).
pub struct CogroupedKStream<K, VA> {
    builder: SharedBuilder,
    key_serde: SharedSerde<K>,
    parts: Vec<CogroupPart<VA>>,
}

impl<K: Data, VA: Data> CogroupedKStream<K, VA> {
    /// Adds another grouped stream (same key type) with its aggregator.
    pub fn cogroup<V: Data, A>(mut self, grouped: &KGroupedStream<K, V>, aggregator: A) -> Self
    where
        A: Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
    {
        let grouped = grouped.clone();
        let aggregator = Arc::new(aggregator);
        self.parts.push(Box::new(move |store, index, init| {
            let source = grouped.stream.repartition_if_required(
                Some(format!("{store}-{index}")),
                grouped.key_serde.clone(),
                grouped.value_serde.clone(),
            );
            let s = store.to_owned();
            let agg: AggFn<K, V, VA> =
                Arc::new(move |k, v, a: Option<VA>| aggregator(k, v, a.unwrap_or_else(|| init())));
            let mut inner = lock(&grouped.stream.builder);
            let name = inner.new_name("COGROUPKSTREAM-AGGREGATE-");
            let node = inner.topology.add_processor(
                name,
                factory(move || StreamAggregate {
                    store: s.clone(),
                    agg: agg.clone(),
                    forwarder: TupleForwarder::new(&s),
                }),
                &[source.node],
            );
            inner.topology.connect_store(node, store);
            node
        }));
        self
    }

    /// Aggregates from `initializer()` into a table.
    pub fn aggregate<I>(self, initializer: I) -> KTable<K, VA>
    where
        VA: DefaultSerde,
        I: Fn() -> VA + Send + Sync + 'static,
    {
        let m = Materialized::default().with_value_serde(default_serde::<VA>());
        self.aggregate_with(initializer, m)
    }

    /// [`CogroupedKStream::aggregate`] into the store `materialized` describes, which
    /// must give the value serde when `VA` has no default one.
    pub fn aggregate_with<I>(
        self,
        initializer: I,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
    {
        let builder = self.builder.clone();
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| lock(&builder).new_name("COGROUPKSTREAM-AGGREGATE-STATE-STORE-"));
        let key = materialized
            .key
            .clone()
            .unwrap_or_else(|| self.key_serde.clone());
        let Some(value) = materialized.value.clone() else {
            lock(&builder).topology.error(format!(
                "state store {store} has no value serde: give one with Materialized::with_value_serde"
            ));
            return finish_aggregate(
                &builder,
                &[],
                "COGROUPKSTREAM-MERGE-",
                &store,
                &materialized,
                key,
                None,
                factory(|| PassThrough::<K, Change<VA>>(PhantomData)),
            );
        };
        add_store(&builder, &materialized, &store, key.clone(), value.clone());
        let init: Arc<dyn Fn() -> VA + Send + Sync> = Arc::new(initializer);
        let mut parents = Vec::new();
        for (i, part) in self.parts.into_iter().enumerate() {
            parents.push(part(&store, i, init.clone()));
        }
        let mut inner = lock(&builder);
        let name = inner.new_name("COGROUPKSTREAM-MERGE-");
        let node = inner.topology.add_processor(
            name,
            factory(|| PassThrough::<K, Change<VA>>(PhantomData)),
            &parents,
        );
        drop(inner);
        KTable {
            builder,
            node,
            key_serde: Some(key),
            value_serde: Some(value),
            store: Some(store),
        }
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn from_source(
        builder: SharedBuilder,
        source: usize,
        store: String,
        materialized: &Materialized<K, V>,
        key: SharedSerde<K>,
        value: SharedSerde<V>,
    ) -> Self {
        add_store(&builder, materialized, &store, key.clone(), value.clone());
        let mut inner = lock(&builder);
        let name = inner.new_name("KTABLE-SOURCE-");
        let s = store.clone();
        let node = inner.topology.add_processor(
            name,
            factory(move || TableSource::<K, V> {
                store: s.clone(),
                forwarder: TupleForwarder::new(&s),
                _t: PhantomData,
            }),
            &[source],
        );
        inner.topology.connect_store(node, &store);
        drop(inner);
        KTable {
            builder,
            node,
            key_serde: Some(key),
            value_serde: Some(value),
            store: Some(store),
        }
    }
}
