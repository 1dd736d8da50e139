//! [`SlidingWindowedKStream`]: a grouped stream aggregated over sliding windows, per
//! key (Kafka's `SlidingWindowedKStream`, which Kafka types as a `TimeWindowedKStream`).

use std::sync::Arc;
use std::time::Duration;

use kafka_client::serde::DefaultSerde;

use super::internals::sliding_ops::{InitialFn, SlidingWindowAggregate};
use super::internals::table_ops::AggFn;
use super::internals::window_ops::timestamped_serde;
use super::options::{default_serde, SharedSerde};
use super::windowed_aggregation::{WindowStoreResult, WindowedAggregation};
use super::{EmitStrategy, KGroupedStream, KTable, Materialized, SlidingWindows};
use crate::processor::internal::factory;
use crate::processor::Data;
use crate::state::WindowStoreBuilder;
use crate::windowed::serdes::TimeWindowedSerde;
use crate::windowed::Windowed;

/// A [`KGroupedStream`] windowed by [`SlidingWindows`]
/// ([`KGroupedStream::windowed_by_sliding`]). Its aggregations give a
/// `KTable<Windowed<K>, _>` kept in a window store (RocksDB or in memory, logged to a
/// `compact,delete` changelog), updated as Kafka's `KStreamSlidingWindowAggregate`
/// does:
/// - windows exist only where records are: each record has a left window
///   `[ts - time difference, ts]` and, when later records of its key come within the
///   time difference, a right window `[ts + 1, ts + 1 + time difference]`; both bounds
///   are inclusive, and a window holds the records whose timestamps differ by at most
///   the time difference;
/// - a record creates its own windows and updates every existing window it falls in;
///   each update goes downstream, stamped with the largest timestamp in the window;
/// - records before the time difference (whose left window would start before the
///   epoch) share the window `[0, time difference]`, as in Kafka;
/// - a window closes when stream time passes its end plus the grace period; a record
///   whose windows have all closed is dropped, and each closed window a record is not
///   added to is logged and counted in the task's `dropped-records`
///   (`MetricsSnapshot::skipped_records`).
///
/// Updates go downstream through the window store's record cache (the default), which
/// folds a window's updates between commits and sends each window's latest once per
/// commit (or when evicted); with `Materialized::with_caching_disabled`, every update
/// at once.
///
/// The store keeps each window under its start, and the table's keys go out with the
/// time-windowed serde of window size = the time difference (Kafka's
/// `TimeWindowedSerializer` bytes: key, then start), so a reader rebuilds the window
/// end as Kafka's `TimeWindowedDeserializer` of that size does:
///
/// ```
/// use std::time::Duration;
/// use kafka_client::serde::{BigEndian, OptionSerde};
/// use kafka_streams::dsl::{Produced, SlidingWindows, StreamsBuilder};
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, f64>("plant01")
///     .group_by_key()
///     .windowed_by_sliding(
///         SlidingWindows::of_time_difference_and_grace(
///             Duration::from_secs(60),
///             Duration::from_secs(10),
///         )
///         .unwrap(),
///     )
///     .count()
///     .to_stream()
///     .to_with(
///         "plant01-readings-within-a-minute",
///         Produced::as_("within-a-minute").with_value_serializer(OptionSerde(BigEndian)),
///     );
/// builder.build().unwrap();
/// ```
pub struct SlidingWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SlidingWindows,
    emit: EmitStrategy,
}

impl<K: Data, V: Data> SlidingWindowedKStream<K, V> {
    pub(super) fn new(grouped: KGroupedStream<K, V>, windows: SlidingWindows) -> Self {
        SlidingWindowedKStream {
            grouped,
            windows,
            emit: EmitStrategy::default(),
        }
    }

    /// When the aggregations built from here send their results downstream (Kafka's
    /// `SlidingWindowedKStream.emitStrategy`, since Kafka 3.3): on every update (the
    /// default), or one final result per window once it closes, with
    /// [`EmitStrategy::on_window_close`].
    ///
    /// With on-window-close, a window `[start, end]` goes downstream once stream time
    /// minus the grace period passes its end; closed windows are looked for after a
    /// record (not an early one, before the time difference, nor a dropped one, as in
    /// Kafka), at most once per emit interval of wall-clock time (every record in the
    /// test driver), and go out by window start, then by key bytes, with the window's
    /// largest timestamp and the headers of the record that closed it. As in Kafka,
    /// the store then has no record cache and reads windows back to its latest start
    /// minus the retention (Kafka's time-ordered window store).
    ///
    /// The last emitted close time is kept across restarts (see
    /// [`TimeWindowedKStream::emit_strategy`](super::TimeWindowedKStream::emit_strategy)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_streams::dsl::{EmitStrategy, SlidingWindows, StreamsBuilder};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, f64>("plant01")
    ///     .group_by_key()
    ///     .windowed_by_sliding(
    ///         SlidingWindows::of_time_difference_and_grace(
    ///             Duration::from_secs(60),
    ///             Duration::from_secs(10),
    ///         )
    ///         .unwrap(),
    ///     )
    ///     .emit_strategy(EmitStrategy::on_window_close())
    ///     .count();
    /// builder.build().unwrap();
    /// ```
    pub fn emit_strategy(mut self, strategy: EmitStrategy) -> Self {
        self.emit = strategy;
        self
    }

    /// Counts the records per key and window.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::default())
    }

    /// [`SlidingWindowedKStream::count`] into the store `materialized` describes.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.aggregate_inner(
            "KSTREAM-AGGREGATE-",
            Arc::new(|_, _, agg: Option<i64>| agg.unwrap_or(0) + 1),
            Arc::new(|| Some(0)),
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

    /// [`SlidingWindowedKStream::reduce`] into the store `materialized` describes.
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
            // Kafka's reduce starts new windows from null.
            Arc::new(|| None),
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

    /// [`SlidingWindowedKStream::aggregate`] into the store `materialized` describes,
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
        let initializer = Arc::new(initializer);
        let init = initializer.clone();
        self.aggregate_inner(
            "KSTREAM-AGGREGATE-",
            Arc::new(move |k, v, agg: Option<VA>| {
                aggregator(k, v, agg.unwrap_or_else(|| initializer()))
            }),
            Arc::new(move || Some(init())),
            materialized,
            None,
        )
    }

    fn aggregate_inner<VA: Data>(
        &self,
        prefix: &str,
        agg: AggFn<K, V, VA>,
        initial: InitialFn<VA>,
        mut materialized: Materialized<K, VA>,
        default_value: Option<SharedSerde<VA>>,
    ) -> KTable<Windowed<K>, VA> {
        let emit = self.emit;
        // Kafka's `SlidingWindowStoreMaterializer`: no cache with emit-final.
        materialized.caching &= emit == EmitStrategy::OnWindowUpdate;
        let aggregation =
            WindowedAggregation::new(&self.grouped, prefix, &materialized, default_value);
        let windows = self.windows;
        let store = aggregation.store.clone();
        aggregation
            .with_window_close_delay(windows.grace_ms())
            .finish(
                prefix,
                &materialized,
                sliding_window_store(windows, materialized.retention, emit),
                sliding_windowed_key(windows),
                factory(move || {
                    SlidingWindowAggregate::new(&store, windows, agg.clone(), initial.clone(), emit)
                }),
            )
    }
}

/// The builder of a sliding-window aggregation's store (Kafka's
/// `SlidingWindowStoreMaterializer`): a new record may need the windows back to
/// `ts - 2 * time difference` (to find the previous record's right window), so the
/// default retention is twice the time difference plus grace, and a shorter one is
/// refused. Emitting final results, it reads as Kafka's time-ordered store.
pub(super) fn sliding_window_store<K: Data, VA: Data>(
    windows: SlidingWindows,
    retention: Option<Duration>,
    emit: EmitStrategy,
) -> impl FnOnce(String, SharedSerde<K>, SharedSerde<VA>) -> WindowStoreResult<K, VA> {
    move |name, key, value| {
        let difference = windows.time_difference_ms();
        let needed = difference
            .saturating_mul(2)
            .saturating_add(windows.grace_ms());
        let retention = retention.unwrap_or_else(|| Duration::from_millis(needed.unsigned_abs()));
        if retention.as_millis() < u128::from(needed.unsigned_abs()) {
            return Err(format!(
                "the retention period of the window store {name} must be no smaller than 2 * time difference plus the grace period; got time difference=[{difference}], grace=[{}], retention=[{}]",
                windows.grace_ms(),
                retention.as_millis()
            ));
        }
        let builder = WindowStoreBuilder::with_serdes(
            name,
            retention,
            Duration::from_millis(difference.unsigned_abs()),
            key,
            timestamped_serde(value),
        )
        .map_err(|e| e.to_string())?;
        Ok(if emit == EmitStrategy::OnWindowClose {
            builder.with_time_ordered_reads()
        } else {
            builder
        })
    }
}

/// The windowed-key serde of a sliding-window table: time-windowed keys of window
/// size = the time difference, as Kafka writes sliding results.
pub(super) fn sliding_windowed_key<K: Data>(
    windows: SlidingWindows,
) -> impl FnOnce(SharedSerde<K>) -> Result<SharedSerde<Windowed<K>>, String> {
    move |key| {
        TimeWindowedSerde::new(
            key,
            Duration::from_millis(windows.time_difference_ms().unsigned_abs()),
        )
        .map(|serde| Arc::new(serde) as SharedSerde<Windowed<K>>)
        .map_err(|e| e.to_string())
    }
}
