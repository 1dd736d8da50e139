//! The processor behind time-windowed aggregations (Kafka's `KStreamWindowAggregate`).

use std::sync::Arc;

use super::table_ops::AggFn;
use super::windowed_forward::{forward_closed_windows, EmitFinalTracker, WindowTupleForwarder};
use crate::dsl::options::SharedSerde;
use crate::dsl::{Change, EmitStrategy, TimeWindows};
use crate::processor::{Data, Processor, ProcessorContext, ProcessorError, Record};
use crate::state::{TimestampedSerde, TypedWindowStore, ValueAndTimestamp};
use crate::windowed::Windowed;

/// Aggregates a grouped stream per key and time window (Kafka's
/// `KStreamWindowAggregate`): each record updates every window containing it that is
/// not closed yet (its end after stream time minus the grace period); a record only
/// for closed windows is dropped, logged and counted in the task's `dropped-records`.
///
/// With [`EmitStrategy::OnWindowUpdate`] every update goes downstream: at once without
/// a record cache, else as the cache writes it through, folded per window. With
/// [`EmitStrategy::OnWindowClose`] none does; instead, after each record, the windows
/// that closed since the last emit are read from the store and go downstream once
/// each, by window start then key bytes (the order of Kafka's time-ordered window
/// store, which it uses for this strategy), at most once per emit interval of
/// wall-clock time (Kafka's internal
/// `__emit.interval.ms.kstreams.windowed.aggregation__`: 1 s by default, 0 in the test
/// driver), since each look is a range scan of the store.
pub(crate) struct WindowAggregate<K, V, VA> {
    pub(crate) store: String,
    pub(crate) windows: TimeWindows,
    pub(crate) agg: AggFn<K, V, VA>,
    pub(crate) emit: EmitStrategy,
    /// The largest timestamp seen by this processor (Kafka's `observedStreamTime`).
    pub(crate) observed_stream_time: i64,
    /// When to look for closed windows.
    pub(crate) emit_tracker: EmitFinalTracker,
    pub(crate) forwarder: WindowTupleForwarder,
}

impl<K: Data, V: Data, VA: Data> WindowAggregate<K, V, VA> {
    pub(crate) fn new(
        store: &str,
        windows: TimeWindows,
        agg: AggFn<K, V, VA>,
        emit: EmitStrategy,
    ) -> Self {
        WindowAggregate {
            store: store.to_owned(),
            windows,
            agg,
            emit,
            observed_stream_time: -1,
            emit_tracker: EmitFinalTracker::new(store),
            forwarder: WindowTupleForwarder::new(store),
        }
    }

    /// Sends downstream the final result of every window that closed since the last
    /// emit (Kafka's `maybeForwardFinalResult` for time windows): the windows starting
    /// from just after the last emit's range up to `window_close_time - size`.
    fn maybe_forward_final_results(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Record<K, V>,
        window_close_time: i64,
    ) -> Result<(), ProcessorError> {
        if !self.emit_tracker.should_emit_final(ctx, window_close_time) {
            return Ok(());
        }
        let size = self.windows.size_ms();
        // The latest window start whose window has closed (its end is exclusive).
        let upper = window_close_time.saturating_sub(size);
        if upper < 0 {
            // No window has closed yet.
            return Ok(());
        }
        let lower = match self.emit_tracker.last_emit_window_close_time() {
            None => 0,
            Some(last) => {
                let lower = last.saturating_sub(size).max(0) + 1;
                // Nothing to scan when the new range holds no window start the last
                // one did not cover.
                if self.windows.windows_for(upper) == self.windows.windows_for(lower - 1) {
                    return Ok(());
                }
                lower
            }
        };
        forward_closed_windows(ctx, &self.store, lower, upper, &record.headers)?;
        self.emit_tracker.emitted(ctx, window_close_time);
        Ok(())
    }
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, Windowed<K>, Change<VA>>
    for WindowAggregate<K, V, VA>
{
    /// Listens to the store's cache when updates are emitted (final results are read
    /// from the store, through the cache, instead: as Kafka, no flush listener then).
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        if self.emit == EmitStrategy::OnWindowUpdate {
            self.forwarder.init(ctx)?;
        } else {
            self.emit_tracker.init(ctx);
        }
        Ok(())
    }

    fn flush(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        self.forwarder.flush(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        let timestamp = record.timestamp;
        self.observed_stream_time = self.observed_stream_time.max(timestamp);
        let close_time = self.observed_stream_time - self.windows.grace_ms();
        for window in self.windows.windows_for(timestamp) {
            if window.end() <= close_time {
                let origin = ctx.record_metadata().map(|m| m.to_string());
                tracing::warn!(
                    store = %self.store,
                    record = origin.as_deref().unwrap_or("unknown"),
                    timestamp,
                    window_start = window.start(),
                    window_end = window.end(),
                    close_time,
                    "skipping record for expired window"
                );
                // As Kafka: once per closed window the record falls in.
                ctx.record_dropped();
                continue;
            }
            let store =
                ctx.required_store::<TypedWindowStore<K, ValueAndTimestamp<VA>>>(&self.store)?;
            let old = store.fetch_window(&record.key, window.start())?;
            let (old, new_timestamp) = match old {
                Some(t) => (Some(t.value), timestamp.max(t.timestamp)),
                None => (None, timestamp),
            };
            let new = (self.agg)(&record.key, &record.value, old.clone());
            store.put(
                &record.key,
                window.start(),
                &ValueAndTimestamp {
                    value: new.clone(),
                    timestamp: new_timestamp,
                },
            )?;
            if self.emit == EmitStrategy::OnWindowUpdate && !self.forwarder.cached() {
                ctx.forward(Record {
                    key: Windowed::new(record.key.clone(), window),
                    value: Change {
                        new: Some(new),
                        old,
                    },
                    timestamp: new_timestamp,
                    headers: record.headers.clone(),
                });
            }
        }
        if self.emit == EmitStrategy::OnWindowClose {
            self.maybe_forward_final_results(ctx, &record, close_time)?;
        }
        Ok(())
    }
}

/// The serde of a windowed store's values: the aggregate's serde under a timestamp.
pub(crate) fn timestamped_serde<VA: 'static>(
    value: SharedSerde<VA>,
) -> SharedSerde<ValueAndTimestamp<VA>> {
    Arc::new(TimestampedSerde(value))
}
