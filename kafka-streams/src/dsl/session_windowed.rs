//! [`SessionWindowedKStream`]: a grouped stream cut into sessions of activity, to
//! aggregate per key and session (Kafka's `SessionWindowedKStream`).

use std::sync::Arc;
use std::time::Duration;

use kafka_client::serde::DefaultSerde;

use super::internals::session_ops::{MergeFn, SessionWindowAggregate};
use super::internals::table_ops::AggFn;
use super::options::{default_serde, SharedSerde};
use super::windowed_aggregation::WindowedAggregation;
use super::{EmitStrategy, KGroupedStream, KTable, Materialized, SessionWindows};
use crate::processor::internal::factory;
use crate::processor::Data;
use crate::state::SessionStoreBuilder;
use crate::windowed::serdes::SessionWindowedSerde;
use crate::windowed::Windowed;

/// A [`KGroupedStream`] windowed by [`SessionWindows`]
/// ([`KGroupedStream::windowed_by_session`]). Its aggregations give a
/// `KTable<Windowed<K>, _>` keyed by session, kept in a session store (RocksDB or in
/// memory, logged to a `compact,delete` changelog), and update it as Kafka's
/// `KStreamSessionWindowAggregate` does:
/// - a record at `t` joins every session of its key that ends at or after
///   `t - gap` and starts at or before `t + gap`: their aggregates are merged (with
///   the session merger of [`aggregate`](Self::aggregate)), the record is aggregated
///   in, and the merged session spans them all and `t`;
/// - each session merged away goes downstream as a deletion (a tombstone once
///   written to a topic), then the merged session; each is stamped with its end;
/// - a record whose merged session ends before stream time minus the gap and the
///   grace period is dropped and logged.
///
/// Updates go downstream through the session store's record cache (the default),
/// which folds a session's updates between commits and sends each session's latest
/// (or its removal) once per commit or when evicted; with
/// `Materialized::with_caching_disabled`, every update at once. The store
/// keeps sessions that ended within its retention (default: gap plus grace, as in
/// Kafka) of the latest session end it holds; only those can still merge.
///
/// The table's keys go out with its session-windowed key serde (Kafka's
/// `SessionWindowedSerializer` bytes: key, end, start), so a sink only needs the value
/// serializer:
///
/// ```
/// use std::time::Duration;
/// use kafka_client::serde::{BigEndian, OptionSerde};
/// use kafka_streams::dsl::{Produced, SessionWindows, StreamsBuilder};
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("badge-swipes")
///     .group_by_key()
///     .windowed_by_session(
///         SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(300)).unwrap(),
///     )
///     .count()
///     .to_stream()
///     .to_with(
///         "swipes-per-visit",
///         Produced::as_("per-visit").with_value_serializer(OptionSerde(BigEndian)),
///     );
/// builder.build().unwrap();
/// ```
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
    emit: EmitStrategy,
}

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    pub(super) fn new(grouped: KGroupedStream<K, V>, windows: SessionWindows) -> Self {
        SessionWindowedKStream {
            grouped,
            windows,
            emit: EmitStrategy::default(),
        }
    }

    /// When the aggregations built from here send their results downstream (Kafka's
    /// `SessionWindowedKStream.emitStrategy`): on every update, merged-away sessions
    /// as tombstones (the default), or one final result per session once it closes,
    /// with [`EmitStrategy::on_window_close`].
    ///
    /// With on-window-close, a session goes downstream once stream time minus the
    /// inactivity gap and the grace period passes its end (no later record can merge
    /// with it any more), stamped with its end; no tombstones go out, since merged-away
    /// sessions never were. Closed sessions are looked for after every record
    /// (dropped ones too, as in Kafka), at most once per emit interval of wall-clock
    /// time (every record in the test driver), and go out by end, then key bytes,
    /// then start (Kafka's time-ordered session store), with the headers of the record
    /// that closed them. As in Kafka, the store then has no record cache.
    ///
    /// The last emitted close time is kept across restarts (see
    /// [`TimeWindowedKStream::emit_strategy`](super::TimeWindowedKStream::emit_strategy)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_streams::dsl::{EmitStrategy, SessionWindows, StreamsBuilder};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by_session(
    ///         SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(300))
    ///             .unwrap(),
    ///     )
    ///     .emit_strategy(EmitStrategy::on_window_close())
    ///     .count();
    /// builder.build().unwrap();
    /// ```
    pub fn emit_strategy(mut self, strategy: EmitStrategy) -> Self {
        self.emit = strategy;
        self
    }

    /// Counts the records per key and session; merged sessions add their counts.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::default())
    }

    /// [`SessionWindowedKStream::count`] into the store `materialized` describes.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.grouped.burn_count_store_name(&materialized);
        self.aggregate_inner(
            "KSTREAM-AGGREGATE-",
            Arc::new(|_, _, agg: Option<i64>| agg.unwrap_or(0) + 1),
            Arc::new(|_, merged: Option<i64>, session: &i64| merged.unwrap_or(0) + session),
            materialized,
            Some(default_serde::<i64>()),
        )
    }

    /// Combines the values of each key and session with `reducer(aggregate, value)`;
    /// a session's first value is its initial aggregate, and merged sessions are
    /// combined with `reducer(earlier, later)` too.
    pub fn reduce<F>(&self, reducer: F) -> KTable<Windowed<K>, V>
    where
        F: Fn(V, &V) -> V + Send + Sync + 'static,
    {
        self.reduce_with(reducer, Materialized::default())
    }

    /// [`SessionWindowedKStream::reduce`] into the store `materialized` describes.
    pub fn reduce_with<F>(
        &self,
        reducer: F,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V>
    where
        F: Fn(V, &V) -> V + Send + Sync + 'static,
    {
        let reducer = Arc::new(reducer);
        let merge_reducer = reducer.clone();
        let value = self.grouped.value_serde.clone();
        self.aggregate_inner(
            "KSTREAM-REDUCE-",
            Arc::new(move |_, v: &V, agg: Option<V>| match agg {
                Some(a) => reducer(a, v),
                None => v.clone(),
            }),
            // Kafka merges with the reduce aggregator, the session's value in the
            // place of the record's.
            Arc::new(move |_, merged: Option<V>, session: &V| match merged {
                Some(m) => merge_reducer(m, session),
                None => session.clone(),
            }),
            materialized,
            Some(value),
        )
    }

    /// Aggregates the values of each key and session from `initializer()` with
    /// `aggregator(key, value, aggregate)`; when a record joins sessions, their
    /// aggregates are combined with `session_merger(key, aggregate, session's
    /// aggregate)`, starting from `initializer()` (Kafka's `Merger`).
    pub fn aggregate<VA, I, A, M>(
        &self,
        initializer: I,
        aggregator: A,
        session_merger: M,
    ) -> KTable<Windowed<K>, VA>
    where
        VA: Data + DefaultSerde,
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        M: Fn(&K, VA, &VA) -> VA + Send + Sync + 'static,
    {
        let m = Materialized::default().with_value_serde(default_serde::<VA>());
        self.aggregate_with(initializer, aggregator, session_merger, m)
    }

    /// [`SessionWindowedKStream::aggregate`] into the store `materialized` describes,
    /// which must give the value serde when `VA` has no default one.
    pub fn aggregate_with<VA, I, A, M>(
        &self,
        initializer: I,
        aggregator: A,
        session_merger: M,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        VA: Data,
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, &V, VA) -> VA + Send + Sync + 'static,
        M: Fn(&K, VA, &VA) -> VA + Send + Sync + 'static,
    {
        let initializer = Arc::new(initializer);
        let merge_initializer = initializer.clone();
        self.aggregate_inner(
            "KSTREAM-AGGREGATE-",
            Arc::new(move |k, v, agg: Option<VA>| {
                aggregator(k, v, agg.unwrap_or_else(|| initializer()))
            }),
            Arc::new(move |k, merged: Option<VA>, session: &VA| {
                session_merger(k, merged.unwrap_or_else(|| merge_initializer()), session)
            }),
            materialized,
            None,
        )
    }

    fn aggregate_inner<VA: Data>(
        &self,
        prefix: &str,
        agg: AggFn<K, V, VA>,
        merge: MergeFn<K, VA>,
        mut materialized: Materialized<K, VA>,
        default_value: Option<SharedSerde<VA>>,
    ) -> KTable<Windowed<K>, VA> {
        let emit = self.emit;
        // Kafka's `SessionStoreMaterializer`: no cache with emit-final.
        materialized.caching &= emit == EmitStrategy::OnWindowUpdate;
        let aggregation =
            WindowedAggregation::new(&self.grouped, prefix, &materialized, default_value);
        let windows = self.windows;
        let store = aggregation.store.clone();
        // A session closes its gap plus grace after its end (Kafka's
        // `SessionWindows.inactivityGap() + gracePeriodMs()` for suppress).
        let gap_and_grace = windows
            .inactivity_gap_ms()
            .saturating_add(windows.grace_ms());
        aggregation.with_window_close_delay(gap_and_grace).finish(
            prefix,
            &materialized,
            session_store(windows, materialized.retention),
            session_windowed_key,
            factory(move || {
                SessionWindowAggregate::new(&store, windows, agg.clone(), merge.clone(), emit)
            }),
        )
    }
}

/// The builder of a session aggregation's store (Kafka's `SessionStoreMaterializer`):
/// sessions kept for `retention` (default: the inactivity gap plus the grace period,
/// as in Kafka; a shorter one, which would expire sessions that may still merge or
/// take late records, is refused).
pub(super) fn session_store<K: Data, VA: Data>(
    windows: SessionWindows,
    retention: Option<Duration>,
) -> impl FnOnce(String, SharedSerde<K>, SharedSerde<VA>) -> Result<SessionStoreBuilder<K, VA>, String>
{
    move |name, key, value| {
        let gap_and_grace = windows
            .inactivity_gap_ms()
            .saturating_add(windows.grace_ms());
        let retention =
            retention.unwrap_or_else(|| Duration::from_millis(gap_and_grace.unsigned_abs()));
        if retention.as_millis() < u128::from(gap_and_grace.unsigned_abs()) {
            return Err(format!(
                "the retention period of the session store {name} must be no smaller than the session inactivity gap plus the grace period; got gap=[{}], grace=[{}], retention=[{}]",
                windows.inactivity_gap_ms(),
                windows.grace_ms(),
                retention.as_millis()
            ));
        }
        SessionStoreBuilder::with_serdes(name, retention, key, value).map_err(|e| e.to_string())
    }
}

/// The windowed-key serde of a session table (Kafka's `SessionWindowedSerde`).
pub(super) fn session_windowed_key<K: Data>(
    key: SharedSerde<K>,
) -> Result<SharedSerde<Windowed<K>>, String> {
    Ok(Arc::new(SessionWindowedSerde::new(key)) as SharedSerde<Windowed<K>>)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::common::TaskId;
    use crate::dsl::{Materialized, SessionWindows, StreamsBuilder};
    use crate::state::StoreBuilder;

    /// The builder of the session store `store` of a `count_with(materialized)` over
    /// sessions of a 5-minute gap and a 1-minute grace.
    fn session_store(materialized: Materialized<String, i64>) -> std::sync::Arc<dyn StoreBuilder> {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("visits")
            .group_by_key()
            .windowed_by_session(
                SessionWindows::of_inactivity_gap_and_grace(
                    Duration::from_secs(300),
                    Duration::from_secs(60),
                )
                .unwrap(),
            )
            .count_with(materialized);
        let topology = builder.build().unwrap();
        topology.stores.get("visits-per-session").unwrap().clone()
    }

    #[test]
    fn the_store_keeps_gap_plus_grace_and_logs_to_a_compact_delete_changelog() {
        let store = session_store(Materialized::as_("visits-per-session"));
        assert_eq!(
            store.changelog_topic("app").as_deref(),
            Some("app-visits-per-session-changelog")
        );
        // Retention gap + grace = 360 s, plus windowstore.changelog.additional.retention.ms.
        assert_eq!(
            store.changelog_topic_configs(),
            BTreeMap::from([
                ("cleanup.policy".to_owned(), "compact,delete".to_owned()),
                (
                    "retention.ms".to_owned(),
                    (360_000 + 86_400_000).to_string()
                ),
            ])
        );
        let task = TaskId {
            subtopology: 0,
            partition: 0,
        };
        assert!(store.build(task).unwrap().persistent());

        let tuned = session_store(
            Materialized::as_("visits-per-session")
                .with_retention(Duration::from_secs(3600))
                .in_memory(),
        );
        assert_eq!(
            tuned
                .changelog_topic_configs()
                .get("retention.ms")
                .map(String::as_str),
            Some("90000000")
        );
        assert!(!tuned.build(task).unwrap().persistent());

        let unlogged =
            session_store(Materialized::as_("visits-per-session").with_logging_disabled());
        assert_eq!(unlogged.changelog_topic("app"), None);
    }
}
