//! [`EmitStrategy`]: when a windowed aggregation sends its results downstream (Kafka's
//! `EmitStrategy`).

/// When a windowed aggregation emits its results (Kafka's `EmitStrategy`), set with
/// [`TimeWindowedKStream::emit_strategy`](super::TimeWindowedKStream::emit_strategy),
/// [`SlidingWindowedKStream::emit_strategy`](super::SlidingWindowedKStream::emit_strategy)
/// or [`SessionWindowedKStream::emit_strategy`](super::SessionWindowedKStream::emit_strategy).
///
/// - [`EmitStrategy::on_window_update`] (the default): every update of a window goes
///   downstream as it happens.
/// - [`EmitStrategy::on_window_close`]: a window's single, final result goes
///   downstream once stream time passes the window's end plus the grace period. As in
///   Kafka, closed windows are looked for when a record arrives, at most once per
///   second of wall-clock time (the internal
///   `__emit.interval.ms.kstreams.windowed.aggregation__`; 0 in the test driver), and
///   the windows closed since the last emit go out together, by window start and then
///   by key bytes. They are read from the window store, so a window that has left the
///   store's retention by then (stream time jumped past it) is never emitted, as in
///   Kafka: a retention longer than size plus grace (`Materialized::with_retention`)
///   keeps them.
///
/// ```
/// use std::time::Duration;
/// use kafka_streams::dsl::{EmitStrategy, StreamsBuilder, TimeWindows};
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, f64>("plant01")
///     .group_by_key()
///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)).unwrap())
///     .emit_strategy(EmitStrategy::on_window_close())
///     .count();
/// builder.build().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EmitStrategy {
    /// Every update of a window goes downstream (Kafka's `ON_WINDOW_UPDATE`).
    #[default]
    OnWindowUpdate,
    /// One final result per window, once it closes (Kafka's `ON_WINDOW_CLOSE`).
    OnWindowClose,
}

impl EmitStrategy {
    /// Emit every update of a window (Kafka's `EmitStrategy.onWindowUpdate()`).
    pub fn on_window_update() -> Self {
        EmitStrategy::OnWindowUpdate
    }

    /// Emit a window's final result once it closes (Kafka's
    /// `EmitStrategy.onWindowClose()`).
    pub fn on_window_close() -> Self {
        EmitStrategy::OnWindowClose
    }
}
