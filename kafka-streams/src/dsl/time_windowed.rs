//! [`TimeWindowedKStream`]: a grouped stream cut into tumbling or hopping time
//! windows, to aggregate per key and window (Kafka's `TimeWindowedKStream`).

use std::sync::Arc;
use std::time::Duration;

use kafka_client::serde::DefaultSerde;

use super::internals::table_ops::AggFn;
use super::internals::window_ops::{timestamped_serde, WindowAggregate};
use super::options::{default_serde, SharedSerde};
use super::windowed_aggregation::{WindowStoreResult, WindowedAggregation};
use super::{EmitStrategy, KGroupedStream, KTable, Materialized, TimeWindows};
use crate::processor::internal::factory;
use crate::processor::Data;
use crate::state::WindowStoreBuilder;
use crate::windowed::serdes::TimeWindowedSerde;
use crate::windowed::Windowed;

/// A [`KGroupedStream`] windowed by [`TimeWindows`]
/// ([`KGroupedStream::windowed_by`]). Its aggregations give a
/// `KTable<Windowed<K>, _>` kept in a window store (RocksDB or in memory, logged to a
/// `compact,delete` changelog), and update it as Kafka's `KStreamWindowAggregate` does:
/// - a record updates every window containing it (one for tumbling windows, up to
///   `size / advance` for hopping ones), and each update goes downstream, stamped
///   with the largest timestamp in the window;
/// - a window closes when stream time passes its end plus the grace period; a record
///   only for closed windows is dropped and logged.
///
/// Updates go downstream as in Kafka, unless [`TimeWindowedKStream::emit_strategy`]
/// asks for final results only: through the window store's record cache (the
/// default), which folds a window's updates between commits and sends each window's
/// latest once per commit (or when evicted, over `statestore.cache.max.bytes`); with
/// `Materialized::with_caching_disabled`, every update at once.
///
/// Each record dropped for a closed window counts once per closed window it falls
/// in, in the task's `dropped-records` (`MetricsSnapshot::skipped_records`).
///
/// The table's keys go out with its windowed-key serde (Kafka's
/// `TimeWindowedSerializer` bytes), so a sink only needs the value serializer:
///
/// ```
/// use std::time::Duration;
/// use kafka_client::serde::{BigEndian, OptionSerde};
/// use kafka_streams::dsl::{Produced, StreamsBuilder, TimeWindows};
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, f64>("plant01")
///     .group_by_key()
///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)).unwrap())
///     .count()
///     .to_stream()
///     .to_with(
///         "plant01-readings-per-minute",
///         Produced::as_("per-minute").with_value_serializer(OptionSerde(BigEndian)),
///     );
/// builder.build().unwrap();
/// ```
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
    emit: EmitStrategy,
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    pub(super) fn new(grouped: KGroupedStream<K, V>, windows: TimeWindows) -> Self {
        TimeWindowedKStream {
            grouped,
            windows,
            emit: EmitStrategy::default(),
        }
    }

    /// When the aggregations built from here send their results downstream (Kafka's
    /// `TimeWindowedKStream.emitStrategy`): on every update (the default), or one
    /// final result per window once it closes, with
    /// [`EmitStrategy::on_window_close`].
    ///
    /// With on-window-close, a window's result goes downstream once stream time
    /// passes its end plus the grace period; closed windows are looked for when a
    /// record arrives, at most once per second of wall-clock time (as in Kafka; every
    /// record in the test driver), and go out by window start, then by key bytes. The
    /// result carries the window's largest timestamp and the headers of the record
    /// that closed it. See [`EmitStrategy`] for the windows a jump of stream time
    /// takes out of the store before they are emitted.
    ///
    /// As in Kafka, the close time up to which finals went out is kept across
    /// restarts: it is committed with the task's input offsets (in the offset-commit
    /// metadata, Kafka Streams' format) and read back when the task starts again, so
    /// a restart emits no final twice. Under at-least-once, finals emitted after the
    /// last commit before a crash go out again (with the records processed again);
    /// under exactly-once they were never committed.
    pub fn emit_strategy(mut self, strategy: EmitStrategy) -> Self {
        self.emit = strategy;
        self
    }

    /// Counts the records per key and window.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::default())
    }

    /// [`TimeWindowedKStream::count`] into the store `materialized` describes.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.grouped.burn_count_store_name(&materialized);
        self.aggregate_inner(
            "KSTREAM-AGGREGATE-",
            Arc::new(|_, _, agg: Option<i64>| agg.unwrap_or(0) + 1),
            materialized,
            Some(default_serde::<i64>()),
        )
    }

    /// Combines the values of each key and window with `reducer(aggregate, value)`;
    /// a window's first value is its initial aggregate.
    pub fn reduce<F>(&self, reducer: F) -> KTable<Windowed<K>, V>
    where
        F: Fn(V, &V) -> V + Send + Sync + 'static,
    {
        self.reduce_with(reducer, Materialized::default())
    }

    /// [`TimeWindowedKStream::reduce`] into the store `materialized` describes.
    pub fn reduce_with<F>(
        &self,
        reducer: F,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V>
    where
        F: Fn(V, &V) -> V + Send + Sync + 'static,
    {
        let value = self.grouped.value_serde.clone();
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

    /// Aggregates the values of each key and window from `initializer()` with
    /// `aggregator(key, value, aggregate)`.
    pub fn aggregate<VA, I, A>(&self, initializer: I, aggregator: A) -> KTable<Windowed<K>, VA>
    where
        VA: Data + DefaultSerde,
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
    {
        let m = Materialized::default().with_value_serde(default_serde::<VA>());
        self.aggregate_with(initializer, aggregator, m)
    }

    /// [`TimeWindowedKStream::aggregate`] into the store `materialized` describes,
    /// which must give the value serde when `VA` has no default one.
    pub fn aggregate_with<VA, I, A>(
        &self,
        initializer: I,
        aggregator: A,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
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
    ) -> KTable<Windowed<K>, VA> {
        let aggregation =
            WindowedAggregation::new(&self.grouped, prefix, &materialized, default_value);
        let windows = self.windows;
        let store = aggregation.store.clone();
        let emit = self.emit;
        aggregation
            .with_window_close_delay(windows.grace_ms())
            .finish(
                prefix,
                &materialized,
                time_window_store(windows, materialized.retention),
                time_windowed_key(windows),
                factory(move || WindowAggregate::new(&store, windows, agg.clone(), emit)),
            )
    }
}

/// The builder of a time-windowed aggregation's store (Kafka's
/// `TimeWindowedKStreamImpl.materialize`): windows of `windows`' size kept for
/// `retention` (default: size plus grace, as in Kafka; a shorter one is refused).
pub(super) fn time_window_store<K: Data, VA: Data>(
    windows: TimeWindows,
    retention: Option<Duration>,
) -> impl FnOnce(String, SharedSerde<K>, SharedSerde<VA>) -> WindowStoreResult<K, VA> {
    move |name, key, value| {
        let size_and_grace = windows.size_ms().saturating_add(windows.grace_ms());
        let retention =
            retention.unwrap_or_else(|| Duration::from_millis(size_and_grace.unsigned_abs()));
        // A shorter retention would expire windows that may still take records within
        // the grace period.
        if retention.as_millis() < u128::from(size_and_grace.unsigned_abs()) {
            return Err(format!(
                "the retention period of the window store {name} must be no smaller than its window size plus the grace period; got size=[{}], grace=[{}], retention=[{}]",
                windows.size_ms(),
                windows.grace_ms(),
                retention.as_millis()
            ));
        }
        WindowStoreBuilder::with_serdes(
            name,
            retention,
            Duration::from_millis(windows.size_ms().unsigned_abs()),
            key,
            timestamped_serde(value),
        )
        .map_err(|e| e.to_string())
    }
}

/// The windowed-key serde of a time-windowed table (Kafka's `TimeWindowedSerde` with
/// the window size).
pub(super) fn time_windowed_key<K: Data>(
    windows: TimeWindows,
) -> impl FnOnce(SharedSerde<K>) -> Result<SharedSerde<Windowed<K>>, String> {
    move |key| {
        TimeWindowedSerde::new(key, Duration::from_millis(windows.size_ms().unsigned_abs()))
            .map(|serde| Arc::new(serde) as SharedSerde<Windowed<K>>)
            .map_err(|e| e.to_string())
    }
}
