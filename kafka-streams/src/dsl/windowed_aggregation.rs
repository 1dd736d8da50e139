//! What the windowed aggregations ([`TimeWindowedKStream`](super::TimeWindowedKStream)
//! and [`SessionWindowedKStream`](super::SessionWindowedKStream)) share: the store and
//! serdes resolved from their [`Materialized`], the window or session store added to
//! the topology, the aggregate node connected to it, and the `KTable<Windowed<K>, _>`
//! they give.

use std::sync::Arc;

use super::internals::{lock, SharedBuilder};
use super::options::SharedSerde;
use super::{KGroupedStream, KTable, Materialized};
use crate::processor::internal::ProcessorFactory;
use crate::processor::Data;
use crate::state::{
    SessionStoreBuilder, StoreBuilder, StoreKind, ValueAndTimestamp, WindowStoreBuilder,
};
use crate::windowed::Windowed;

/// The builder of a windowed aggregation's window store (values kept with their
/// timestamps), or why it cannot be made.
pub(super) type WindowStoreResult<K, VA> =
    Result<WindowStoreBuilder<K, ValueAndTimestamp<VA>>, String>;

/// The options a [`Materialized`] sets on the builder of a windowed store: its kind,
/// its changelog and its record cache.
pub(super) trait SegmentedStoreOptions: StoreBuilder + Sized {
    /// The builder of a store of `kind`.
    fn of_kind(self, kind: StoreKind) -> Self;

    /// The builder of a store logged to its changelog (topic created with `configs`),
    /// or not logged.
    fn logged(self, enabled: bool, configs: &[(String, String)]) -> Self;

    /// The builder of a store with a record cache, or without.
    fn cached(self, enabled: bool) -> Self;

    /// The builder with `materialized`'s kind, logging and caching.
    fn materialized_as<K, V>(self, materialized: &Materialized<K, V>) -> Self {
        self.of_kind(materialized.kind)
            .logged(materialized.logging, &materialized.changelog_configs)
            .cached(materialized.caching)
    }
}

impl<K: 'static, V: 'static> SegmentedStoreOptions for WindowStoreBuilder<K, V> {
    fn of_kind(self, kind: StoreKind) -> Self {
        self.with_kind(kind)
    }

    fn cached(self, enabled: bool) -> Self {
        if enabled {
            self.with_caching_enabled()
        } else {
            self.with_caching_disabled()
        }
    }

    fn logged(self, enabled: bool, configs: &[(String, String)]) -> Self {
        if enabled {
            self.with_logging_enabled(configs.iter().cloned())
        } else {
            self.with_logging_disabled()
        }
    }
}

impl<K: 'static, V: 'static> SegmentedStoreOptions for SessionStoreBuilder<K, V> {
    fn of_kind(self, kind: StoreKind) -> Self {
        self.with_kind(kind)
    }

    fn cached(self, enabled: bool) -> Self {
        if enabled {
            self.with_caching_enabled()
        } else {
            self.with_caching_disabled()
        }
    }

    fn logged(self, enabled: bool, configs: &[(String, String)]) -> Self {
        if enabled {
            self.with_logging_enabled(configs.iter().cloned())
        } else {
            self.with_logging_disabled()
        }
    }
}

/// A windowed aggregation being added to the topology: its store's name and serdes,
/// and the node it aggregates.
pub(super) struct WindowedAggregation<K, VA> {
    builder: SharedBuilder,
    /// The store's name: `materialized`'s, or `<prefix>STATE-STORE-<n>`.
    pub(super) store: String,
    /// The node whose records are aggregated: the grouped stream, or the repartition
    /// topic's source when its key changed upstream.
    source: usize,
    key: SharedSerde<K>,
    value: Option<SharedSerde<VA>>,
    /// How long after their end the windows close, for `suppress` below.
    window_close_delay_ms: Option<i64>,
}

impl<K: Data, VA: Data> WindowedAggregation<K, VA> {
    /// Names the store and repartitions the grouped stream if its key changed
    /// upstream (Kafka names the repartition topic after the store); the key serde is
    /// `materialized`'s or the grouped stream's, the value serde `materialized`'s or
    /// `default_value`.
    pub(super) fn new<V: Data>(
        grouped: &KGroupedStream<K, V>,
        prefix: &str,
        materialized: &Materialized<K, VA>,
        default_value: Option<SharedSerde<VA>>,
    ) -> Self {
        let builder = grouped.stream.builder.clone();
        let store = materialized
            .name
            .clone()
            .unwrap_or_else(|| lock(&builder).new_name(&format!("{prefix}STATE-STORE-")));
        let source = grouped.stream.repartition_if_required(
            Some(store.clone()),
            grouped.key_serde.clone(),
            grouped.value_serde.clone(),
        );
        let key = materialized
            .key
            .clone()
            .unwrap_or_else(|| grouped.key_serde.clone());
        let value = materialized.value.clone().or(default_value);
        WindowedAggregation {
            builder,
            store,
            source: source.node,
            key,
            value,
            window_close_delay_ms: None,
        }
    }

    /// Records, for `KTable::suppress(until_window_closes)` below, that the windows
    /// close `delay_ms` after their end (Kafka reads it from the aggregation's window
    /// definition: the grace period, plus the inactivity gap for sessions).
    pub(super) fn with_window_close_delay(mut self, delay_ms: i64) -> Self {
        self.window_close_delay_ms = Some(delay_ms);
        self
    }

    /// Adds the store that `store_builder` makes from the store name and the key and
    /// value serdes (with `materialized`'s kind and logging), and the aggregate node
    /// (`<prefix><n>`, running `processor`) connected to it. The table's keys are
    /// written with `windowed_key`, made from the key serde.
    ///
    /// Each problem (no value serde, a windowed key serde or store that cannot be
    /// made) is recorded in the graph, so that building the topology fails with it.
    pub(super) fn finish<B: SegmentedStoreOptions>(
        self,
        prefix: &str,
        materialized: &Materialized<K, VA>,
        store_builder: impl FnOnce(String, SharedSerde<K>, SharedSerde<VA>) -> Result<B, String>,
        windowed_key: impl FnOnce(SharedSerde<K>) -> Result<SharedSerde<Windowed<K>>, String>,
        processor: ProcessorFactory,
    ) -> KTable<Windowed<K>, VA> {
        let WindowedAggregation {
            builder,
            store,
            source,
            key,
            value,
            window_close_delay_ms,
        } = self;
        let windowed_key = windowed_key(key.clone());
        let mut inner = lock(&builder);
        let (value, windowed_key) = match (value, windowed_key) {
            (Some(value), Ok(windowed_key)) => (value, windowed_key),
            (value, windowed_key) => {
                if value.is_none() {
                    inner.graph.error(format!(
                        "windowed store {store} has no value serde: give one with Materialized::with_value_serde"
                    ));
                }
                if let Err(e) = windowed_key {
                    inner.graph.error(format!(
                        "windowed store {store}: its windowed key serde: {e}"
                    ));
                }
                drop(inner);
                return KTable {
                    builder,
                    node: source,
                    key_serde: None,
                    value_serde: None,
                    store: None,
                };
            }
        };
        match store_builder(store.clone(), key, value.clone()) {
            Ok(b) => inner
                .graph
                .add_store(Arc::new(b.materialized_as(materialized))),
            Err(e) => inner.graph.error(e),
        }
        let name = inner.new_name(prefix);
        let node = inner.graph.add_processor(name, processor, &[source]);
        inner.graph.connect_store(node, &store);
        if let Some(delay) = window_close_delay_ms {
            inner.graph.set_window_close_delay(node, delay);
        }
        drop(inner);
        KTable {
            builder,
            node,
            key_serde: Some(windowed_key),
            value_serde: Some(value),
            store: Some(store),
        }
    }
}
