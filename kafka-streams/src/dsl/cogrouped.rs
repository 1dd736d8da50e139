//! [`CogroupedKStream`]: several grouped streams aggregated into one table.

use std::marker::PhantomData;
use std::sync::Arc;

use kafka_client::serde::DefaultSerde;

use super::internals::lock;
use super::internals::session_ops::{MergeFn, SessionWindowAggregate};
use super::internals::sliding_ops::{InitialFn, SlidingWindowAggregate};
use super::internals::stream_ops::PassThrough;
use super::internals::table_ops::*;
use super::internals::window_ops::WindowAggregate;
use super::internals::SharedBuilder;
use super::ktable::{add_store, finish_aggregate};
use super::options::{default_serde, SharedSerde};
use super::windowed_aggregation::SegmentedStoreOptions;
use super::{
    Change, EmitStrategy, KGroupedStream, KTable, Materialized, SessionWindows, SlidingWindows,
    TimeWindows,
};
use crate::processor::internal::factory;
use crate::processor::Data;
use crate::windowed::Windowed;

/// The initializer shared by the aggregators of a cogrouped aggregation.
pub(super) type SharedInitializer<VA> = Arc<dyn Fn() -> VA + Send + Sync>;

/// How a cogrouped aggregation is windowed: the processor each grouped stream gets
/// (Kafka's `CogroupedStreamAggregateBuilder.build` variants), always emitting on
/// window update, as in Kafka.
pub(super) enum CogroupWindowing<K, VA> {
    /// Per key (`KStreamAggregate`).
    Unwindowed,
    /// Per key and time window (`KStreamWindowAggregate`).
    Time(TimeWindows),
    /// Per key and sliding window (`KStreamSlidingWindowAggregate`).
    Sliding(SlidingWindows),
    /// Per key and session, merging sessions with the merger
    /// (`KStreamSessionWindowAggregate`).
    Session(SessionWindows, MergeFn<K, VA>),
}

/// Adds one grouped stream's aggregate node, for the store, its index among the
/// grouped streams, the initializer and the windowing; returns the node.
type CogroupPart<K, VA> =
    Box<dyn FnOnce(&str, usize, SharedInitializer<VA>, &CogroupWindowing<K, VA>) -> usize>;

/// Several grouped streams aggregated into one table (Kafka's `CogroupedKStream`).
pub struct CogroupedKStream<K, VA> {
    pub(super) builder: SharedBuilder,
    pub(super) key_serde: SharedSerde<K>,
    pub(super) parts: Vec<CogroupPart<K, VA>>,
}

impl<K: Data, VA: Data> CogroupedKStream<K, VA> {
    /// Adds another grouped stream (same key type) with its aggregator.
    pub fn cogroup<V: Data, A>(mut self, grouped: &KGroupedStream<K, V>, aggregator: A) -> Self
    where
        A: Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
    {
        let grouped = grouped.clone();
        let aggregator = Arc::new(aggregator);
        self.parts
            .push(Box::new(move |store, index, init, windowing| {
                let source = grouped.stream.repartition_if_required(
                    Some(format!("{store}-{index}")),
                    grouped.key_serde.clone(),
                    grouped.value_serde.clone(),
                );
                let s = store.to_owned();
                let initial = init.clone();
                let agg: AggFn<K, V, VA> = Arc::new(move |k, v, a: Option<VA>| {
                    aggregator(k, v, a.unwrap_or_else(|| init()))
                });
                let processor = match windowing {
                    CogroupWindowing::Unwindowed => factory(move || StreamAggregate {
                        store: s.clone(),
                        agg: agg.clone(),
                        forwarder: TupleForwarder::new(&s),
                    }),
                    CogroupWindowing::Time(windows) => {
                        let windows = *windows;
                        factory(move || {
                            WindowAggregate::new(
                                &s,
                                windows,
                                agg.clone(),
                                EmitStrategy::OnWindowUpdate,
                            )
                        })
                    }
                    CogroupWindowing::Sliding(windows) => {
                        let windows = *windows;
                        let initial: InitialFn<VA> = Arc::new(move || Some(initial()));
                        factory(move || {
                            SlidingWindowAggregate::new(
                                &s,
                                windows,
                                agg.clone(),
                                initial.clone(),
                                EmitStrategy::OnWindowUpdate,
                            )
                        })
                    }
                    CogroupWindowing::Session(windows, merge) => {
                        let (windows, merge) = (*windows, merge.clone());
                        factory(move || {
                            SessionWindowAggregate::new(
                                &s,
                                windows,
                                agg.clone(),
                                merge.clone(),
                                EmitStrategy::OnWindowUpdate,
                            )
                        })
                    }
                };
                let mut inner = lock(&grouped.stream.builder);
                let name = inner.new_name("COGROUPKSTREAM-AGGREGATE-");
                let node = inner.graph.add_processor(name, processor, &[source.node]);
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
        let node = self.add_parts(&store, Arc::new(initializer), &CogroupWindowing::Unwindowed);
        KTable {
            builder,
            node,
            key_serde: Some(key),
            value_serde: Some(value),
            store: Some(store),
        }
    }

    /// Adds every grouped stream's aggregate node and the merge node they all feed
    /// (Kafka's `KTablePassThrough`); returns the merge node.
    fn add_parts(
        self,
        store: &str,
        init: SharedInitializer<VA>,
        windowing: &CogroupWindowing<K, VA>,
    ) -> usize {
        let mut parents = Vec::new();
        for (i, part) in self.parts.into_iter().enumerate() {
            parents.push(part(store, i, init.clone(), windowing));
        }
        let mut inner = lock(&self.builder);
        let name = inner.new_name("COGROUPKSTREAM-MERGE-");
        if matches!(windowing, CogroupWindowing::Unwindowed) {
            inner.graph.add_processor(
                name,
                factory(|| PassThrough::<K, Change<VA>>(PhantomData)),
                &parents,
            )
        } else {
            inner.graph.add_processor(
                name,
                factory(|| PassThrough::<Windowed<K>, Change<VA>>(PhantomData)),
                &parents,
            )
        }
    }

    /// A windowed cogrouped aggregation (Kafka's `TimeWindowedCogroupedKStream`,
    /// `SlidingWindowedCogroupedKStream` and `SessionWindowedCogroupedKStream`
    /// `aggregate`): one window or session store, named by `materialized` or
    /// `COGROUPKSTREAM-AGGREGATE-STATE-STORE-<n>`, made by `store_builder` from the key
    /// and value serdes; each grouped stream's aggregate node writes to it, and a
    /// merge node passes their updates on. Problems are recorded in the graph, so
    /// that building the topology fails with them.
    pub(super) fn aggregate_windowed<B: SegmentedStoreOptions>(
        self,
        init: SharedInitializer<VA>,
        windowing: CogroupWindowing<K, VA>,
        materialized: Materialized<K, VA>,
        store_builder: impl FnOnce(String, SharedSerde<K>, SharedSerde<VA>) -> Result<B, String>,
        windowed_key: impl FnOnce(SharedSerde<K>) -> Result<SharedSerde<Windowed<K>>, String>,
    ) -> KTable<Windowed<K>, VA> {
        let builder = self.builder.clone();
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| lock(&builder).new_name("COGROUPKSTREAM-AGGREGATE-STATE-STORE-"));
        let key = materialized
            .key
            .clone()
            .unwrap_or_else(|| self.key_serde.clone());
        let value = materialized.value.clone();
        let windowed_key = windowed_key(key.clone());
        let built = match (&value, &windowed_key) {
            (Some(value), Ok(_)) => store_builder(store.clone(), key, value.clone()),
            (None, _) => Err(format!(
                "windowed store {store} has no value serde: give one with Materialized::with_value_serde"
            )),
            (_, Err(e)) => Err(format!("windowed store {store}: its windowed key serde: {e}")),
        };
        match built {
            Ok(b) => lock(&builder)
                .graph
                .add_store(Arc::new(b.materialized_as(&materialized))),
            Err(e) => lock(&builder).graph.error(e),
        }
        // How long after their end windows close, for `suppress(until_window_closes)`
        // below (Kafka finds it on the parts' window aggregates through the merge).
        let close_delay = match &windowing {
            CogroupWindowing::Unwindowed => None,
            CogroupWindowing::Time(windows) => Some(windows.grace_ms()),
            CogroupWindowing::Sliding(windows) => Some(windows.grace_ms()),
            CogroupWindowing::Session(windows, _) => Some(
                windows
                    .inactivity_gap_ms()
                    .saturating_add(windows.grace_ms()),
            ),
        };
        let node = self.add_parts(&store, init, &windowing);
        if let Some(delay) = close_delay {
            lock(&builder).graph.set_window_close_delay(node, delay);
        }
        KTable {
            builder,
            node,
            key_serde: windowed_key.ok(),
            value_serde: value,
            store: Some(store),
        }
    }
}
