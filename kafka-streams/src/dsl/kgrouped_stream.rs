//! [`KGroupedStream`]: a stream grouped by key, to aggregate.

use std::sync::Arc;

use kafka_client::serde::DefaultSerde;

use super::internals::lock;
use super::internals::table_ops::*;
use super::ktable::finish_aggregate;
use super::options::{default_serde, SharedSerde};
use super::{CogroupedKStream, KStream, KTable, Materialized};
use crate::processor::internal::factory;
use crate::processor::Data;

/// A stream grouped by key, to aggregate (Kafka's `KGroupedStream`). Made by
/// [`KStream::group_by_key`] and [`KStream::group_by`]; if the key changed upstream,
/// the aggregation first repartitions through `<store>-repartition`.
pub struct KGroupedStream<K, V> {
    pub(super) stream: KStream<K, V>,
    pub(super) key_serde: SharedSerde<K>,
    pub(super) value_serde: SharedSerde<V>,
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
        self.burn_count_store_name(&materialized);
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

    /// Kafka's `count` of a grouped or windowed stream uses up one store name when
    /// its `Materialized` names none (kept in Kafka for topology compatibility), so
    /// the nodes after it get Kafka's numbers.
    pub(super) fn burn_count_store_name(&self, materialized: &Materialized<K, i64>) {
        if materialized.name.is_none() {
            lock(&self.stream.builder).new_name("KSTREAM-AGGREGATE-STATE-STORE-");
        }
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

    /// Cuts the grouped stream into tumbling or hopping time windows, to aggregate per
    /// key and window (Kafka's `windowedBy(TimeWindows)`).
    pub fn windowed_by(&self, windows: super::TimeWindows) -> super::TimeWindowedKStream<K, V> {
        super::TimeWindowedKStream::new(self.clone(), windows)
    }

    /// Cuts the grouped stream into sessions of activity, to aggregate per key and
    /// session (Kafka's `windowedBy(SessionWindows)`; a method of its own here, as Rust
    /// has no overloading).
    pub fn windowed_by_session(
        &self,
        windows: super::SessionWindows,
    ) -> super::SessionWindowedKStream<K, V> {
        super::SessionWindowedKStream::new(self.clone(), windows)
    }

    /// Aggregates the grouped stream over sliding windows, per key (Kafka's
    /// `windowedBy(SlidingWindows)`; a method of its own here, as Rust has no
    /// overloading): windows of the time difference, both bounds inclusive, that
    /// slide with the records.
    pub fn windowed_by_sliding(
        &self,
        windows: super::SlidingWindows,
    ) -> super::SlidingWindowedKStream<K, V> {
        super::SlidingWindowedKStream::new(self.clone(), windows)
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
