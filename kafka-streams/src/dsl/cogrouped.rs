//! [`CogroupedKStream`]: several grouped streams aggregated into one table.

use std::marker::PhantomData;
use std::sync::Arc;

use kafka_client::serde::DefaultSerde;

use super::internals::lock;
use super::internals::stream_ops::PassThrough;
use super::internals::table_ops::*;
use super::internals::SharedBuilder;
use super::ktable::{add_store, finish_aggregate};
use super::options::{default_serde, SharedSerde};
use super::{Change, KGroupedStream, KTable, Materialized};
use crate::processor::internal::factory;
use crate::processor::Data;

type CogroupPart<VA> = Box<dyn FnOnce(&str, usize, Arc<dyn Fn() -> VA + Send + Sync>) -> usize>;

/// Several grouped streams aggregated into one table (Kafka's `CogroupedKStream`).
pub struct CogroupedKStream<K, VA> {
    pub(super) builder: SharedBuilder,
    pub(super) key_serde: SharedSerde<K>,
    pub(super) parts: Vec<CogroupPart<VA>>,
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
            let node = inner.graph.add_processor(
                name,
                factory(move || StreamAggregate {
                    store: s.clone(),
                    agg: agg.clone(),
                    forwarder: TupleForwarder::new(&s),
                }),
                &[source.node],
            );
            inner.graph.connect_store(node, store);
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
            lock(&builder).graph.error(format!(
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
        let node = inner.graph.add_processor(
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
