//! The processor behind sliding-window aggregations (Kafka's
//! `KStreamSlidingWindowAggregate`).

use std::collections::HashSet;
use std::sync::Arc;

use super::table_ops::AggFn;
use super::windowed_forward::{forward_closed_windows, EmitFinalTracker, WindowTupleForwarder};
use crate::dsl::{Change, EmitStrategy, SlidingWindows};
use crate::processor::{Data, Processor, ProcessorContext, ProcessorError, Record};
use crate::state::{TypedWindowStore, ValueAndTimestamp};
use crate::windowed::{Window, Windowed};

type SlidingStore<K, VA> = TypedWindowStore<K, ValueAndTimestamp<VA>>;

/// The aggregate of a new window, before its first record.
pub(crate) type InitialFn<VA> = Arc<dyn Fn() -> Option<VA> + Send + Sync>;

/// Aggregates a grouped stream per key over sliding windows (Kafka's
/// `KStreamSlidingWindowAggregate`). Windows exist only where records are: each record
/// has a left window `[ts - time difference, ts]` (ending at it) and, when later
/// records fall within the time difference after it, a right window
/// `[ts + 1, ts + 1 + time difference]` (starting just after it). A record creates its
/// own windows (from the aggregates of the neighbouring windows, without re-reading
/// records), the right window of the previous record if it is missing, and updates
/// every existing window it falls in. The store keeps each window under its start;
/// both bounds are inclusive.
///
/// Records at timestamps below the time difference, whose left windows would start
/// before the epoch, share the window `[0, time difference]` instead (Kafka's
/// `processEarly`).
///
/// A record whose left and right windows have both closed (`ts + time difference`
/// before stream time minus grace) is dropped; an update of a closed window is
/// skipped. Each is logged with the record's topic, partition and offset and counted
/// in the task's `dropped-records`, as in Kafka.
///
/// With [`EmitStrategy::OnWindowUpdate`] every update goes downstream, stamped with the
/// largest timestamp in the window: at once without a record cache, else as the cache
/// writes it through, folded. With [`EmitStrategy::OnWindowClose`] none does; after
/// each record (except early and dropped ones, as in Kafka), the windows whose end
/// (inclusive) passed the close time since the last emit are read from the store and
/// go downstream once each, as for time windows.
pub(crate) struct SlidingWindowAggregate<K, V, VA> {
    store: String,
    windows: SlidingWindows,
    /// `agg(key, value, aggregate)`.
    agg: AggFn<K, V, VA>,
    /// The aggregate a new window starts from (Kafka's initializer; `None` for
    /// reduce, whose initializer gives null). It is the old value of the window's
    /// first update, as in Kafka.
    initial: InitialFn<VA>,
    /// The largest timestamp seen by this processor (Kafka's `observedStreamTime`).
    observed_stream_time: i64,
    forwarder: WindowTupleForwarder,
    emit: EmitStrategy,
    emit_tracker: EmitFinalTracker,
}

/// What the windows of a record's key around its timestamp told (Kafka's
/// `createWindows` arguments).
struct Neighbours<VA> {
    /// The starts of the windows read.
    starts: HashSet<i64>,
    /// The aggregate of the latest window the record falls in (before the record): the
    /// records after it, for its right window.
    right_aggregate: Option<ValueAndTimestamp<VA>>,
    /// The aggregate of the latest window ending before the record.
    left_aggregate: Option<ValueAndTimestamp<VA>>,
    left_window_exists: bool,
    right_window_exists: bool,
    /// The timestamp of the latest record before this one, when its right window may
    /// have to be created.
    previous_record_timestamp: Option<i64>,
}

impl<VA> Default for Neighbours<VA> {
    fn default() -> Self {
        Neighbours {
            starts: HashSet::new(),
            right_aggregate: None,
            left_aggregate: None,
            left_window_exists: false,
            right_window_exists: false,
            previous_record_timestamp: None,
        }
    }
}

impl<K: Data, V: Data, VA: Data> SlidingWindowAggregate<K, V, VA> {
    pub(crate) fn new(
        store: &str,
        windows: SlidingWindows,
        agg: AggFn<K, V, VA>,
        initial: InitialFn<VA>,
        emit: EmitStrategy,
    ) -> Self {
        SlidingWindowAggregate {
            store: store.to_owned(),
            windows,
            agg,
            initial,
            observed_stream_time: -1,
            forwarder: WindowTupleForwarder::new(store),
            emit,
            emit_tracker: EmitFinalTracker::new(store),
        }
    }

    /// A new window's aggregate at `timestamp` (Kafka's
    /// `ValueAndTimestamp.make(initializer.apply(), timestamp)`).
    fn new_window(&self, timestamp: i64) -> Option<ValueAndTimestamp<VA>> {
        (self.initial)().map(|value| ValueAndTimestamp { value, timestamp })
    }

    /// Sends downstream the final result of every window that closed since the last
    /// emit (Kafka's `maybeForwardFinalResult` for sliding windows): the windows
    /// starting from just after the last emit's range up to `window_close_time -
    /// difference - 1` (both bounds of a sliding window are inclusive).
    fn maybe_forward_final_results(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Record<K, V>,
        window_close_time: i64,
    ) -> Result<(), ProcessorError> {
        if !self.emit_tracker.should_emit_final(ctx, window_close_time) {
            return Ok(());
        }
        let difference = self.time_difference();
        let upper = window_close_time
            .saturating_sub(difference)
            .saturating_sub(1);
        if upper < 0 {
            // No window has closed yet.
            return Ok(());
        }
        let lower = self
            .emit_tracker
            .last_emit_window_close_time()
            .map_or(0, |last| last.saturating_sub(difference).max(0));
        forward_closed_windows(ctx, &self.store, lower, upper, &record.headers)?;
        self.emit_tracker.emitted(ctx, window_close_time);
        Ok(())
    }

    fn time_difference(&self) -> i64 {
        self.windows.time_difference_ms()
    }

    /// The windows of `key` starting from `from` to `to` (inclusive), newest first
    /// when `backward`.
    fn read_windows(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        key: &K,
        from: i64,
        to: i64,
        backward: bool,
    ) -> Result<Vec<(i64, ValueAndTimestamp<VA>)>, ProcessorError> {
        let store = ctx.required_store::<SlidingStore<K, VA>>(&self.store)?;
        let iter = if backward {
            store.backward_fetch(key, from, to)?
        } else {
            store.fetch(key, from, to)?
        };
        Ok(iter.collect::<Result<Vec<_>, _>>()?)
    }

    /// Logs and counts a record skipped for a closed window `[start, end]` (Kafka's
    /// `logSkippedRecordForExpiredWindow`).
    fn skip_expired(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        timestamp: i64,
        start: i64,
        end: i64,
        close_time: i64,
    ) {
        let origin = ctx.record_metadata().map(|m| m.to_string());
        tracing::warn!(
            store = %self.store,
            record = origin.as_deref().unwrap_or("unknown"),
            timestamp,
            window_start = start,
            window_end = end,
            close_time,
            stream_time = self.observed_stream_time,
            "skipping record for expired window"
        );
        ctx.record_dropped();
    }

    /// Adds `record` to the window starting at `start` whose aggregate is `current`
    /// (`None`: none, for reduce's new windows), stores it and sends the update downstream, unless the
    /// window has closed (Kafka's `updateWindowAndForward`).
    fn update_window(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Record<K, V>,
        start: i64,
        current: Option<ValueAndTimestamp<VA>>,
        close_time: i64,
    ) -> Result<(), ProcessorError> {
        let end = start.saturating_add(self.time_difference());
        if end < close_time {
            self.skip_expired(ctx, record.timestamp, start, end, close_time);
            return Ok(());
        }
        let (old, timestamp) = match current {
            Some(current) => (Some(current.value), record.timestamp.max(current.timestamp)),
            None => (None, record.timestamp),
        };
        let new = (self.agg)(&record.key, &record.value, old.clone());
        let store = ctx.required_store::<SlidingStore<K, VA>>(&self.store)?;
        store.put(
            &record.key,
            start,
            &ValueAndTimestamp {
                value: new.clone(),
                timestamp,
            },
        )?;
        self.forward(ctx, record, start, old, new, timestamp);
        Ok(())
    }

    fn forward(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Record<K, V>,
        start: i64,
        old: Option<VA>,
        new: VA,
        timestamp: i64,
    ) {
        if self.emit == EmitStrategy::OnWindowClose || self.forwarder.cached() {
            // Final results go downstream once closed; the cache forwards updates when
            // it writes them through.
            return;
        }
        let end = start.saturating_add(self.time_difference());
        let window = Window::from_checked_bounds(start, end);
        // Only the key and headers are needed: cloning the whole record would copy its
        // value for every window updated.
        ctx.forward(Record {
            key: Windowed::new(record.key.clone(), window),
            value: Change {
                new: Some(new),
                old,
            },
            timestamp,
            headers: record.headers.clone(),
        });
    }

    /// Stores `aggregate` as the record's right window, unchanged: it holds exactly the
    /// records after it within the time difference (Kafka's
    /// `createCurrentRecordRightWindow`).
    fn create_right_window(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Record<K, V>,
        aggregate: ValueAndTimestamp<VA>,
    ) -> Result<(), ProcessorError> {
        let start = record.timestamp.saturating_add(1);
        let store = ctx.required_store::<SlidingStore<K, VA>>(&self.store)?;
        store.put(&record.key, start, &aggregate)?;
        self.forward(
            ctx,
            record,
            start,
            None,
            aggregate.value,
            aggregate.timestamp,
        );
        Ok(())
    }

    /// A record at or after the time difference: reads the key's windows from
    /// `ts - 2 * time difference` (the earliest start whose window's end could make it
    /// the previous record's) to `ts + 1` (its own right window), newest first, as
    /// Kafka does on stores with reverse iteration (all of its built-in ones).
    fn process_windows(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Record<K, V>,
        close_time: i64,
    ) -> Result<(), ProcessorError> {
        let ts = record.timestamp;
        let difference = self.time_difference();
        let from = ts.saturating_sub(difference.saturating_mul(2)).max(0);
        let to = ts.saturating_add(1);
        let mut found = Neighbours::default();
        for (start, aggregate) in self.read_windows(ctx, &record.key, from, to, true)? {
            found.starts.insert(start);
            let end = start.saturating_add(difference);
            if start == to {
                found.right_window_exists = true;
            } else if end > ts {
                if found.right_aggregate.is_none() {
                    found.right_aggregate = Some(aggregate.clone());
                }
                self.update_window(ctx, record, start, Some(aggregate), close_time)?;
            } else if end == ts {
                found.left_window_exists = true;
                let max_timestamp = aggregate.timestamp;
                self.update_window(ctx, record, start, Some(aggregate), close_time)?;
                if max_timestamp < ts {
                    found.previous_record_timestamp = Some(max_timestamp);
                } else {
                    // A record at this timestamp came before: every window of this
                    // record exists already.
                    return Ok(());
                }
            } else {
                found.previous_record_timestamp = Some(aggregate.timestamp);
                found.left_aggregate = Some(aggregate);
                break;
            }
        }
        self.create_windows(ctx, record, close_time, found)
    }

    /// Creates the windows the record needs that do not exist yet: the previous
    /// record's right window (if the record falls in it), the record's left window and
    /// its right window (if later records fall in it) (Kafka's `createWindows`).
    fn create_windows(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Record<K, V>,
        close_time: i64,
        found: Neighbours<VA>,
    ) -> Result<(), ProcessorError> {
        let ts = record.timestamp;
        let difference = self.time_difference();
        if let Some(previous) = found.previous_record_timestamp {
            let start = previous.saturating_add(1);
            if !found.starts.contains(&start) && start.saturating_add(difference) >= ts {
                self.update_window(ctx, record, start, self.new_window(ts), close_time)?;
            }
        }
        if !found.left_window_exists {
            // The left window holds the records of the latest window ending before
            // this record when the previous record is within the time difference.
            let left_not_empty = found
                .previous_record_timestamp
                .is_some_and(|previous| ts.saturating_sub(difference) <= previous);
            let current = match found.left_aggregate {
                Some(left) if left_not_empty => Some(ValueAndTimestamp {
                    value: left.value,
                    timestamp: ts,
                }),
                _ => self.new_window(ts),
            };
            self.update_window(ctx, record, ts - difference, current, close_time)?;
        }
        if !found.right_window_exists {
            if let Some(right) = found.right_aggregate.filter(|r| r.timestamp > ts) {
                self.create_right_window(ctx, record, right)?;
            }
        }
        Ok(())
    }

    /// A record before the time difference (Kafka's `processEarly`): its left window
    /// would start before the epoch, so it goes in the window `[0, time difference]`,
    /// which holds every such record, and its right window is created or updated as
    /// for other records.
    fn process_early(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Record<K, V>,
        close_time: i64,
    ) -> Result<(), ProcessorError> {
        let ts = record.timestamp;
        let mut combined: Option<ValueAndTimestamp<VA>> = None;
        let mut found = Neighbours::default();
        for (start, aggregate) in self.read_windows(ctx, &record.key, 0, ts + 1, false)? {
            found.starts.insert(start);
            if start == 0 {
                // A previous record at or after this one already created this one's
                // right window, if needed.
                if aggregate.timestamp < ts {
                    found.previous_record_timestamp = Some(aggregate.timestamp);
                }
                combined = Some(aggregate);
            } else if start <= ts {
                found.right_aggregate = Some(aggregate.clone());
                self.update_window(ctx, record, start, Some(aggregate), close_time)?;
            } else {
                found.right_window_exists = true;
            }
        }
        // Without a window starting in (0, ts], the combined window holds only records
        // after this one when its latest record is after it.
        if found.right_aggregate.is_none() {
            found.right_aggregate = combined.clone().filter(|c| c.timestamp > ts);
        }
        if !found.right_window_exists {
            if let Some(right) = found.right_aggregate.filter(|r| r.timestamp > ts) {
                self.create_right_window(ctx, record, right)?;
            }
        }
        if let Some(previous) = found.previous_record_timestamp {
            let start = previous + 1;
            if !found.starts.contains(&start) {
                self.update_window(ctx, record, start, self.new_window(ts), close_time)?;
            }
        }
        let combined = combined.or_else(|| self.new_window(ts));
        self.update_window(ctx, record, 0, combined, close_time)
    }
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, Windowed<K>, Change<VA>>
    for SlidingWindowAggregate<K, V, VA>
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
        let ts = record.timestamp;
        if ts < 0 {
            // Sources drop records with negative timestamps; one from a processor
            // upstream has no window (Kafka fails on it too).
            return Err(format!(
                "sliding-window aggregation over store {}: record with negative timestamp {ts}",
                self.store
            )
            .into());
        }
        self.observed_stream_time = self.observed_stream_time.max(ts);
        let close_time = self
            .observed_stream_time
            .saturating_sub(self.windows.grace_ms());
        let difference = self.time_difference();
        let end = ts.saturating_add(difference);
        if end < close_time {
            // The record's left and right windows have both closed.
            self.skip_expired(ctx, ts, ts, end, close_time);
            return Ok(());
        }
        if ts < difference {
            // As Kafka: an early record does not look for closed windows.
            return self.process_early(ctx, &record, close_time);
        }
        self.process_windows(ctx, &record, close_time)?;
        if self.emit == EmitStrategy::OnWindowClose {
            self.maybe_forward_final_results(ctx, &record, close_time)?;
        }
        Ok(())
    }
}
