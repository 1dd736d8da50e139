//! Windowed cogrouped streams: [`TimeWindowedCogroupedKStream`],
//! [`SlidingWindowedCogroupedKStream`] and [`SessionWindowedCogroupedKStream`] (Kafka's
//! `CogroupedKStream.windowedBy(..)`).
//!
//! Every grouped stream of the cogroup is aggregated, with its own aggregator, into
//! one window or session store per key and window, as the windowed aggregations of a
//! single grouped stream do (same windows, grace, late-record dropping, retention,
//! record cache and windowed-key serdes); their updates go downstream through one
//! merge node. As in Kafka, they emit on every window update.

use std::sync::Arc;

use kafka_client::serde::DefaultSerde;

use super::cogrouped::CogroupWindowing;
use super::internals::session_ops::MergeFn;
use super::options::default_serde;
use super::session_windowed::{session_store, session_windowed_key};
use super::sliding_windowed::{sliding_window_store, sliding_windowed_key};
use super::time_windowed::{time_window_store, time_windowed_key};
use super::{
    CogroupedKStream, EmitStrategy, KTable, Materialized, SessionWindows, SlidingWindows,
    TimeWindows,
};
use crate::processor::Data;
use crate::windowed::Windowed;

impl<K: Data, VA: Data> CogroupedKStream<K, VA> {
    /// Windows the cogrouped streams by tumbling or hopping time windows (Kafka's
    /// `CogroupedKStream.windowedBy(Windows)`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_streams::dsl::{StreamsBuilder, TimeWindows};
    ///
    /// let builder = StreamsBuilder::new();
    /// let clicks = builder.stream::<String, i64>("clicks").group_by_key();
    /// let views = builder.stream::<String, i64>("views").group_by_key();
    /// clicks
    ///     .cogroup(|_, clicks, total: i64| total + 10 * clicks)
    ///     .cogroup(&views, |_, views, total| total + views)
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)).unwrap())
    ///     .aggregate(|| 0);
    /// builder.build().unwrap();
    /// ```
    pub fn windowed_by(self, windows: TimeWindows) -> TimeWindowedCogroupedKStream<K, VA> {
        TimeWindowedCogroupedKStream {
            cogrouped: self,
            windows,
        }
    }

    /// Windows the cogrouped streams by sliding windows (Kafka's
    /// `CogroupedKStream.windowedBy(SlidingWindows)`).
    pub fn windowed_by_sliding(
        self,
        windows: SlidingWindows,
    ) -> SlidingWindowedCogroupedKStream<K, VA> {
        SlidingWindowedCogroupedKStream {
            cogrouped: self,
            windows,
        }
    }

    /// Windows the cogrouped streams by sessions (Kafka's
    /// `CogroupedKStream.windowedBy(SessionWindows)`).
    pub fn windowed_by_session(
        self,
        windows: SessionWindows,
    ) -> SessionWindowedCogroupedKStream<K, VA> {
        SessionWindowedCogroupedKStream {
            cogrouped: self,
            windows,
        }
    }
}

/// Cogrouped streams windowed by [`TimeWindows`] (Kafka's
/// `TimeWindowedCogroupedKStream`): each record updates every window containing it
/// that has not closed, through its own stream's aggregator.
pub struct TimeWindowedCogroupedKStream<K, VA> {
    cogrouped: CogroupedKStream<K, VA>,
    windows: TimeWindows,
}

impl<K: Data, VA: Data> TimeWindowedCogroupedKStream<K, VA> {
    /// Aggregates each window from `initializer()`, into a window store with the
    /// aggregate type's default serde.
    pub fn aggregate<I>(self, initializer: I) -> KTable<Windowed<K>, VA>
    where
        VA: DefaultSerde,
        I: Fn() -> VA + Send + Sync + 'static,
    {
        let materialized = Materialized::default().with_value_serde(default_serde::<VA>());
        self.aggregate_with(initializer, materialized)
    }

    /// [`aggregate`](Self::aggregate) into the store `materialized` describes (name,
    /// serdes, kind, logging, caching, retention: at least size plus grace), which
    /// must give the value serde when `VA` has no default one.
    pub fn aggregate_with<I>(
        self,
        initializer: I,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
    {
        let windows = self.windows;
        let retention = materialized.retention;
        self.cogrouped.aggregate_windowed(
            Arc::new(initializer),
            CogroupWindowing::Time(windows),
            materialized,
            time_window_store(windows, retention),
            time_windowed_key(windows),
        )
    }
}

/// Cogrouped streams windowed by [`SlidingWindows`] (Kafka's
/// `SlidingWindowedCogroupedKStream`): each record creates its own windows and updates
/// every existing window it falls in, through its own stream's aggregator.
pub struct SlidingWindowedCogroupedKStream<K, VA> {
    cogrouped: CogroupedKStream<K, VA>,
    windows: SlidingWindows,
}

impl<K: Data, VA: Data> SlidingWindowedCogroupedKStream<K, VA> {
    /// Aggregates each window from `initializer()`, into a window store with the
    /// aggregate type's default serde.
    pub fn aggregate<I>(self, initializer: I) -> KTable<Windowed<K>, VA>
    where
        VA: DefaultSerde,
        I: Fn() -> VA + Send + Sync + 'static,
    {
        let materialized = Materialized::default().with_value_serde(default_serde::<VA>());
        self.aggregate_with(initializer, materialized)
    }

    /// [`aggregate`](Self::aggregate) into the store `materialized` describes
    /// (retention: at least twice the time difference plus grace).
    pub fn aggregate_with<I>(
        self,
        initializer: I,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
    {
        let windows = self.windows;
        let retention = materialized.retention;
        self.cogrouped.aggregate_windowed(
            Arc::new(initializer),
            CogroupWindowing::Sliding(windows),
            materialized,
            sliding_window_store(windows, retention, EmitStrategy::OnWindowUpdate),
            sliding_windowed_key(windows),
        )
    }
}

/// Cogrouped streams windowed by [`SessionWindows`] (Kafka's
/// `SessionWindowedCogroupedKStream`): a record merges the sessions of its key within
/// the inactivity gap, their aggregates merged by the session merger, and is
/// aggregated in through its own stream's aggregator.
pub struct SessionWindowedCogroupedKStream<K, VA> {
    cogrouped: CogroupedKStream<K, VA>,
    windows: SessionWindows,
}

impl<K: Data, VA: Data> SessionWindowedCogroupedKStream<K, VA> {
    /// Aggregates each session from `initializer()`; `session_merger(key, aggregate,
    /// other)` combines the aggregates of merged sessions (starting from the
    /// initializer's, as Kafka). The store has the aggregate type's default serde.
    pub fn aggregate<I, M>(self, initializer: I, session_merger: M) -> KTable<Windowed<K>, VA>
    where
        VA: DefaultSerde,
        I: Fn() -> VA + Send + Sync + 'static,
        M: Fn(&K, VA, &VA) -> VA + Send + Sync + 'static,
    {
        let materialized = Materialized::default().with_value_serde(default_serde::<VA>());
        self.aggregate_with(initializer, session_merger, materialized)
    }

    /// [`aggregate`](Self::aggregate) into the store `materialized` describes
    /// (retention: at least the inactivity gap plus grace).
    pub fn aggregate_with<I, M>(
        self,
        initializer: I,
        session_merger: M,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
        M: Fn(&K, VA, &VA) -> VA + Send + Sync + 'static,
    {
        let windows = self.windows;
        let retention = materialized.retention;
        let initializer = Arc::new(initializer);
        let merge_initializer = initializer.clone();
        let merge: MergeFn<K, VA> = Arc::new(move |k, merged: Option<VA>, session: &VA| {
            session_merger(k, merged.unwrap_or_else(|| merge_initializer()), session)
        });
        self.cogrouped.aggregate_windowed(
            initializer,
            CogroupWindowing::Session(windows, merge),
            materialized,
            session_store(windows, retention),
            session_windowed_key,
        )
    }
}
