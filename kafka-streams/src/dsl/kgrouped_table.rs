//! [`KGroupedTable`]: a table re-grouped by a new key, to aggregate.

use std::sync::Arc;

use kafka_client::serde::DefaultSerde;

use super::internals::table_ops::*;
use super::internals::{lock, SharedBuilder};
use super::ktable::finish_aggregate;
use super::options::{default_serde, SharedSerde};
use super::{Change, KStream, KTable, Materialized};
use crate::processor::internal::factory;
use crate::processor::Data;

/// A table re-grouped by [`KTable::group_by`], to aggregate (Kafka's `KGroupedTable`).
pub struct KGroupedTable<K, V> {
    pub(super) builder: SharedBuilder,
    pub(super) node: usize,
    pub(super) key_serde: SharedSerde<K>,
    pub(super) value_serde: SharedSerde<V>,
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
            Arc::new(|_, _, agg: Option<i64>| agg.unwrap_or(0) + 1),
            Arc::new(|_, _, agg: i64| agg - 1),
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
            Arc::new(move |_, v: &V, agg: Option<V>| match agg {
                Some(a) => adder(a, v),
                None => v.clone(),
            }),
            Arc::new(move |_, v: &V, agg: V| subtractor(agg, v)),
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
        self.aggregate_inner(
            "KTABLE-AGGREGATE-",
            Arc::new(move |k, v, agg: Option<VA>| adder(k, v, agg.unwrap_or_else(|| init()))),
            Arc::new(move |k, v, agg: VA| subtractor(k, v, agg)),
            materialized,
            Some(default_serde::<VA>()),
        )
    }

    fn aggregate_inner<VA: Data>(
        &self,
        prefix: &str,
        add: TableAggFn<K, V, VA>,
        sub: TableSubFn<K, V, VA>,
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
            false,
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
