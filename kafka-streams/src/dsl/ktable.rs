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

use kafka_client::serde::DefaultSerde;

use super::internals::table_ops::*;
use super::internals::{lock, SharedBuilder};
use super::options::{default_serde, SharedSerde};
use super::{KGroupedTable, KStream, Materialized};
use crate::processor::internal::factory;
use crate::processor::Data;
use crate::state::KeyValueStoreBuilder;

/// An update of one table row (Kafka's `Change`): the new value (`None`: the key was
/// deleted) and the value it replaced (`None`: the key was absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    /// The new value; `None` deletes the key.
    pub new: Option<V>,
    /// The previous value, if any.
    pub old: Option<V>,
}

/// Adds the store `name` described by `m` to the topology.
pub(super) fn add_store<K: Data, V: Data>(
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
    lock(builder).graph.add_store(Arc::new(b));
}

/// A table: the latest value per key (Kafka's `KTable`).
pub struct KTable<K, V> {
    pub(super) builder: SharedBuilder,
    pub(super) node: usize,
    pub(super) key_serde: Option<SharedSerde<K>>,
    pub(super) value_serde: Option<SharedSerde<V>>,
    pub(super) store: Option<String>,
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
        lock(&self.builder).graph.node_name(self.node).to_owned()
    }

    fn add<V2: Data>(
        &self,
        prefix: &str,
        f: crate::processor::internal::ProcessorFactory,
        value_serde: Option<SharedSerde<V2>>,
    ) -> KTable<K, V2> {
        let mut inner = lock(&self.builder);
        let name = inner.new_name(prefix);
        let node = inner.graph.add_processor(name, f, &[self.node]);
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
        let predicate = f.clone();
        let table = self.add(
            "KTABLE-FILTER-",
            factory(move || TableFilter {
                f: f.clone(),
                keep_when,
            }),
            self.value_serde.clone(),
        );
        self.derive_value_getter(&table, move |k, v| {
            (predicate(k, &v) == keep_when).then_some(v)
        });
        table
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
        let mapper = f.clone();
        let table = self.add(
            "KTABLE-MAPVALUES-",
            factory(move || TableMapValues { f: f.clone() }),
            None,
        );
        self.derive_value_getter(&table, move |k, v| Some(mapper(k, &v)));
        table
    }

    /// The table's changelog stream: each update's new value, `None` for a delete
    /// (written to a topic as a tombstone).
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let mut inner = lock(&self.builder);
        let name = inner.new_name("KTABLE-TOSTREAM-");
        let f = factory(|| ToStream::<K, V>(PhantomData));
        let node = inner.graph.add_processor(name, f, &[self.node]);
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
    /// when it moves or is deleted; a row that stays in its group updates it with one
    /// record (the keys are compared with `==`, as Kafka compares them with `equals`).
    pub fn group_by<K2, V2, F>(&self, selector: F) -> KGroupedTable<K2, V2>
    where
        K2: Data + DefaultSerde + PartialEq,
        V2: Data + DefaultSerde,
        F: Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    {
        let f: KeyValueSelector<K, V, K2, V2> = Arc::new(selector);
        let mut inner = lock(&self.builder);
        let name = inner.new_name("KTABLE-SELECT-");
        let node = inner.graph.add_processor(
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

/// Adds the aggregation's store and processor (connected to it) and returns the
/// resulting table.
#[allow(clippy::too_many_arguments)]
pub(super) fn finish_aggregate<K: Data, VA: Data>(
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
        None => lock(builder).graph.error(format!(
            "state store {store} has no value serde: give one with Materialized::with_value_serde"
        )),
    }
    let mut inner = lock(builder);
    let name = inner.new_name(prefix);
    let node = inner.graph.add_processor(name, f, parents);
    if value.is_some() {
        inner.graph.connect_store(node, store);
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

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn from_source(
        builder: SharedBuilder,
        source: usize,
        store: String,
        reusable_topic: Option<String>,
        materialized: &Materialized<K, V>,
        key: SharedSerde<K>,
        value: SharedSerde<V>,
    ) -> Self {
        add_store(&builder, materialized, &store, key.clone(), value.clone());
        let mut inner = lock(&builder);
        let name = inner.new_name("KTABLE-SOURCE-");
        let s = store.clone();
        let node = inner.graph.add_table_source(
            name,
            factory(move || TableSource::<K, V> {
                store: s.clone(),
                forwarder: TupleForwarder::new(&s),
                _t: PhantomData,
            }),
            store.clone(),
            reusable_topic,
            source,
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
