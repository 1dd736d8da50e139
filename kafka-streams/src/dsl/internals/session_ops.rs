//! The processor behind session-windowed aggregations (Kafka's
//! `KStreamSessionWindowAggregate`).

use std::sync::Arc;

use super::table_ops::AggFn;
use super::windowed_forward::{EmitFinalTracker, SessionTupleForwarder};
use crate::dsl::{Change, EmitStrategy, SessionWindows};
use crate::processor::{Data, Processor, ProcessorContext, ProcessorError, Record};
use crate::state::TypedSessionStore;
use crate::windowed::{Window, Windowed};

/// Merges a session's aggregate into the aggregate of the sessions merged so far
/// (`None` before the first): `merge(key, merged, session)`. For `aggregate` it is the
/// user's session merger applied to the initializer's value first, as Kafka starts
/// from `initializer()`; for `count` a sum; for `reduce` the reducer.
pub(crate) type MergeFn<K, VA> = Arc<dyn Fn(&K, Option<VA>, &VA) -> VA + Send + Sync>;

/// Aggregates a grouped stream per key and session (Kafka's
/// `KStreamSessionWindowAggregate`). A record at `t` merges with every session of its
/// key that ends at or after `t - gap` and starts at or before `t + gap`:
/// - the merged sessions' aggregates are merged, then the record is aggregated in;
/// - when that changes the window (anything but a lone `[t, t]`), each merged session
///   is removed from the store and its deletion goes downstream (new value `None`,
///   stamped with its end), then the merged session is put and goes downstream,
///   stamped with its end (with a record cache: when the cache writes them through,
///   so a session removed and put again before that goes once, as an update);
/// - a record whose merged session ends before stream time minus gap minus grace is
///   dropped and logged.
pub(crate) struct SessionWindowAggregate<K, V, VA> {
    store: String,
    windows: SessionWindows,
    agg: AggFn<K, V, VA>,
    merge: MergeFn<K, VA>,
    /// The largest timestamp seen by this processor (Kafka's `observedStreamTime`).
    observed_stream_time: i64,
    forwarder: SessionTupleForwarder,
    emit: EmitStrategy,
    emit_tracker: EmitFinalTracker,
}

impl<K: Data, V: Data, VA: Data> SessionWindowAggregate<K, V, VA> {
    pub(crate) fn new(
        store: &str,
        windows: SessionWindows,
        agg: AggFn<K, V, VA>,
        merge: MergeFn<K, VA>,
        emit: EmitStrategy,
    ) -> Self {
        SessionWindowAggregate {
            store: store.to_owned(),
            windows,
            agg,
            merge,
            observed_stream_time: -1,
            forwarder: SessionTupleForwarder::new(store),
            emit,
            emit_tracker: EmitFinalTracker::new(store),
        }
    }

    /// Sends downstream every session that closed since the last emit (Kafka's
    /// `maybeForwardFinalResult` for sessions): those ending from the last emit's close
    /// time to just before `window_close_time` (a session's end is inclusive), by end,
    /// then key bytes, then start, each stamped with its end and carrying the headers
    /// of `record`.
    fn maybe_forward_final_results(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Record<K, V>,
        window_close_time: i64,
    ) -> Result<(), ProcessorError> {
        if !self.emit_tracker.should_emit_final(ctx, window_close_time) {
            return Ok(());
        }
        let upper = window_close_time.saturating_sub(1);
        let lower = self
            .emit_tracker
            .last_emit_window_close_time()
            .unwrap_or(0)
            .max(0);
        if upper < 0 || upper < lower {
            // No session closed since the last emit.
            return Ok(());
        }
        let store = ctx.required_store::<TypedSessionStore<K, VA>>(&self.store)?;
        let closed = store
            .find_sessions_ending_between(lower, upper)?
            .collect::<Result<Vec<_>, _>>()?;
        for (key, start, end, value) in closed {
            let window = Window::new(start, end)
                .map_err(|e| format!("session store {}: stored session: {e}", self.store))?;
            ctx.forward(Record {
                key: Windowed::new(key, window),
                value: Change {
                    new: Some(value),
                    old: None,
                },
                timestamp: end,
                headers: record.headers.clone(),
            });
        }
        self.emit_tracker.emitted(ctx, window_close_time);
        Ok(())
    }

    /// Removes the merged sessions, puts the merged one with the record aggregated in,
    /// and, when emitting updates, sends the removals and the new session downstream.
    fn aggregate(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Record<K, V>,
        merged: Vec<Session<VA>>,
        merged_agg: Option<VA>,
        merged_window: Window,
        new_window: Window,
    ) -> Result<(), ProcessorError> {
        let store = ctx.required_store::<TypedSessionStore<K, VA>>(&self.store)?;
        let removed = if merged_window == new_window {
            // Only a session `[t, t]` itself: the put below replaces it.
            Vec::new()
        } else {
            for session in &merged {
                store.remove(&record.key, session.window.start(), session.window.end())?;
            }
            merged
        };
        let new = (self.agg)(&record.key, &record.value, merged_agg);
        store.put(
            &record.key,
            merged_window.start(),
            merged_window.end(),
            &new,
        )?;
        if self.emit == EmitStrategy::OnWindowClose {
            return Ok(());
        }
        for session in removed {
            self.forwarder.maybe_forward(
                ctx,
                Record::new(
                    Windowed::new(record.key.clone(), session.window),
                    Change {
                        new: None,
                        old: Some(session.value),
                    },
                    session.window.end(),
                ),
            );
        }
        self.forwarder.maybe_forward(
            ctx,
            Record::new(
                Windowed::new(record.key.clone(), merged_window),
                Change {
                    new: Some(new),
                    old: None,
                },
                merged_window.end(),
            ),
        );
        Ok(())
    }
}

/// A session of the store, as merged: its window and aggregate.
struct Session<VA> {
    window: Window,
    value: VA,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, Windowed<K>, Change<VA>>
    for SessionWindowAggregate<K, V, VA>
{
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
        // A session window cannot start before the epoch (Kafka's `SessionWindow`
        // fails there too).
        let new_window = Window::new(timestamp, timestamp).map_err(|e| {
            format!(
                "session store {}: record ({}) cannot open a session: {e}",
                self.store,
                origin(ctx)
            )
        })?;
        self.observed_stream_time = self.observed_stream_time.max(timestamp);
        let gap = self.windows.inactivity_gap_ms();
        let close_time = self
            .observed_stream_time
            .saturating_sub(self.windows.grace_ms())
            .saturating_sub(gap);

        let mut merged: Vec<Session<VA>> = Vec::new();
        let mut merged_agg: Option<VA> = None;
        let mut merged_window = new_window;
        let store = ctx.required_store::<TypedSessionStore<K, VA>>(&self.store)?;
        for session in store.find_sessions(
            &record.key,
            timestamp.saturating_sub(gap),
            timestamp.saturating_add(gap),
        )? {
            let (_, start, end, value) = session?;
            let window = Window::new(start, end)
                .map_err(|e| format!("session store {}: stored session: {e}", self.store))?;
            merged_agg = Some((self.merge)(&record.key, merged_agg, &value));
            merged_window = Window::from_checked_bounds(
                merged_window.start().min(start),
                merged_window.end().max(end),
            );
            merged.push(Session { window, value });
        }

        if merged_window.end() < close_time {
            tracing::warn!(
                store = %self.store,
                record = %origin(ctx),
                timestamp,
                window_start = merged_window.start(),
                window_end = merged_window.end(),
                expiration = close_time,
                stream_time = self.observed_stream_time,
                "skipping record for expired session window"
            );
            ctx.record_dropped();
        } else {
            self.aggregate(ctx, &record, merged, merged_agg, merged_window, new_window)?;
        }
        // As Kafka: after every record, dropped or not.
        if self.emit == EmitStrategy::OnWindowClose {
            self.maybe_forward_final_results(ctx, &record, close_time)?;
        }
        Ok(())
    }
}

/// The input record's topic, partition and offset, for log lines and errors.
fn origin<K, V>(ctx: &ProcessorContext<'_, K, V>) -> String {
    ctx.record_metadata().map_or_else(
        || "topic, partition and offset unknown".to_owned(),
        |m| m.to_string(),
    )
}
