//! How windowed aggregations forward their updates when their store has a record
//! cache (Kafka's `TimestampedTupleForwarder` with a `TimestampedCacheFlushListener`
//! for window stores, a `SessionCacheFlushListener` for session stores): not as they
//! happen, but when the cache writes them through (on eviction, or at commit), folded
//! per window or session.

use crate::dsl::Change;
use crate::processor::{Data, Headers, ProcessorContext, ProcessorError, Record};
use crate::state::{FlushQueue, TypedSessionStore, TypedWindowStore, ValueAndTimestamp};
use crate::windowed::{Window, Windowed};

/// Forwards a window store's updates: at once when it has no cache, else as the cache
/// writes them through, each stamped with the timestamp kept with its value (the
/// largest in the window, as without a cache).
pub(crate) struct WindowTupleForwarder {
    store: String,
    queue: Option<FlushQueue>,
}

impl WindowTupleForwarder {
    pub(crate) fn new(store: &str) -> Self {
        WindowTupleForwarder {
            store: store.to_owned(),
            queue: None,
        }
    }

    /// Listens to the store's cache, if it has one.
    pub(crate) fn init<K: Data, VA: Data>(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        let store =
            ctx.required_store::<TypedWindowStore<K, ValueAndTimestamp<VA>>>(&self.store)?;
        let queue = FlushQueue::new();
        if store.set_flush_listener(Box::new(queue.clone()), true)? {
            self.queue = Some(queue);
        }
        Ok(())
    }

    /// Whether updates wait for the cache to write them through.
    pub(crate) fn cached(&self) -> bool {
        self.queue.is_some()
    }

    /// Forwards what the cache wrote through since the last call.
    pub(crate) fn flush<K: Data, VA: Data>(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        let Some(queue) = &self.queue else {
            return Ok(());
        };
        let entries = queue.drain();
        if entries.is_empty() {
            return Ok(());
        }
        let fallback_timestamp = ctx.current_stream_time_ms().max(0);
        let store =
            ctx.required_store::<TypedWindowStore<K, ValueAndTimestamp<VA>>>(&self.store)?;
        let size = store.window_size_ms();
        let updates = entries
            .iter()
            .map(|e| store.decode_flushed(e))
            .collect::<Result<Vec<_>, _>>()?;
        for (key, start, new, old) in updates {
            let timestamp = new.as_ref().map_or(fallback_timestamp, |v| v.timestamp);
            let window = Window::from_checked_bounds(start, start.saturating_add(size));
            ctx.forward(Record::new(
                Windowed::new(key, window),
                Change {
                    new: new.map(|v| v.value),
                    old: old.map(|v| v.value),
                },
                timestamp,
            ));
        }
        Ok(())
    }
}

/// Forwards a session store's updates: at once when it has no cache, else as the
/// cache writes them through, each stamped with its session's end (Kafka's
/// `SessionCacheFlushListener`); a removed session goes as a tombstone.
pub(crate) struct SessionTupleForwarder {
    store: String,
    queue: Option<FlushQueue>,
}

impl SessionTupleForwarder {
    pub(crate) fn new(store: &str) -> Self {
        SessionTupleForwarder {
            store: store.to_owned(),
            queue: None,
        }
    }

    /// Listens to the store's cache, if it has one.
    pub(crate) fn init<K: Data, VA: Data>(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        let store = ctx.required_store::<TypedSessionStore<K, VA>>(&self.store)?;
        let queue = FlushQueue::new();
        if store.set_flush_listener(Box::new(queue.clone()), true)? {
            self.queue = Some(queue);
        }
        Ok(())
    }

    /// Forwards `record` unless the cache will.
    pub(crate) fn maybe_forward<K: Data, VA: Data>(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: Record<Windowed<K>, Change<VA>>,
    ) {
        if self.queue.is_none() {
            ctx.forward(record);
        }
    }

    /// Forwards what the cache wrote through since the last call.
    pub(crate) fn flush<K: Data, VA: Data>(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        let Some(queue) = &self.queue else {
            return Ok(());
        };
        let entries = queue.drain();
        if entries.is_empty() {
            return Ok(());
        }
        let store = ctx.required_store::<TypedSessionStore<K, VA>>(&self.store)?;
        let updates = entries
            .iter()
            .map(|e| store.decode_flushed(e))
            .collect::<Result<Vec<_>, _>>()?;
        for (key, start, end, new, old) in updates {
            let window = Window::new(start, end)
                .map_err(|e| format!("session store {}: flushed session: {e}", self.store))?;
            ctx.forward(Record::new(
                Windowed::new(key, window),
                Change { new, old },
                end,
            ));
        }
        Ok(())
    }
}

/// When an on-window-close aggregation looks for closed windows (Kafka's
/// `shouldEmitFinal` with its `TimeTracker`): not before the next emit time (which each
/// look pushes one emit interval past now, whether or not it finds anything), and only
/// when the window close time moved since the last emit.
///
/// The last emit's close time is also the task's processor metadata under the store's
/// name (as in Kafka), committed with the task's offsets and read back when the task
/// is created again, so a restart does not emit the same finals again.
#[derive(Debug)]
pub(crate) struct EmitFinalTracker {
    /// The processor metadata key: the aggregation's store name.
    store: String,
    /// The window close time up to which final results went downstream (Kafka's
    /// `lastEmitWindowCloseTime`); `None` before the first emit.
    last_emit_window_close_time: Option<i64>,
    /// The wall-clock time before which closed windows are not looked for.
    next_time_to_emit: i64,
}

impl EmitFinalTracker {
    /// A tracker for the aggregation over `store`.
    pub(crate) fn new(store: &str) -> Self {
        EmitFinalTracker {
            store: store.to_owned(),
            last_emit_window_close_time: None,
            next_time_to_emit: 0,
        }
    }

    /// Takes the last emit's close time from the task's processor metadata (what the
    /// task committed before a restart), if there is one (Kafka's processor `init`).
    pub(crate) fn init<K, V>(&mut self, ctx: &ProcessorContext<'_, K, V>) {
        if let Some(close_time) = ctx.processor_metadata_for_key(&self.store) {
            self.last_emit_window_close_time = Some(close_time);
        }
    }

    /// Whether to look for windows closed by `window_close_time` now.
    pub(crate) fn should_emit_final<K, V>(
        &mut self,
        ctx: &ProcessorContext<'_, K, V>,
        window_close_time: i64,
    ) -> bool {
        let now = ctx.current_system_time_ms();
        if now < self.next_time_to_emit {
            return false;
        }
        self.next_time_to_emit = now.saturating_add(ctx.windowed_emit_interval_ms());
        self.last_emit_window_close_time
            .is_none_or(|last| last < window_close_time)
    }

    /// The close time of the last emit, if any.
    pub(crate) fn last_emit_window_close_time(&self) -> Option<i64> {
        self.last_emit_window_close_time
    }

    /// Records that the windows closed by `window_close_time` went downstream, in the
    /// task's processor metadata too.
    pub(crate) fn emitted<K, V>(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        window_close_time: i64,
    ) {
        self.last_emit_window_close_time = Some(window_close_time);
        ctx.add_processor_metadata_key_value(&self.store, window_close_time);
    }
}

/// Sends downstream the final result of every window of `store` starting from `lower`
/// to `upper` (inclusive; Kafka's `fetchAndEmit`): by window start, then key bytes
/// (the order of Kafka's time-ordered window store), each stamped with its own
/// timestamp and carrying `headers` (the record that moved stream time's).
pub(crate) fn forward_closed_windows<K: Data, VA: Data>(
    ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    store: &str,
    lower: i64,
    upper: i64,
    headers: &Headers,
) -> Result<(), ProcessorError> {
    let store = ctx.required_store::<TypedWindowStore<K, ValueAndTimestamp<VA>>>(store)?;
    let size = store.window_size_ms();
    let mut closed = store
        .fetch_all_closed_windows(lower, upper)?
        .collect::<Result<Vec<_>, _>>()?;
    // The store gives each segment by key bytes then window start; a stable sort by
    // window start gives Kafka's order (start, then key bytes), since windows with one
    // start share a segment.
    closed.sort_by_key(|(_, start, _)| *start);
    for (key, start, aggregate) in closed {
        let window = Window::from_checked_bounds(start, start.saturating_add(size));
        ctx.forward(Record {
            key: Windowed::new(key, window),
            value: Change {
                new: Some(aggregate.value),
                old: None,
            },
            timestamp: aggregate.timestamp,
            headers: headers.clone(),
        });
    }
    Ok(())
}
