//! How windowed aggregations forward their updates when their store has a record
//! cache (Kafka's `TimestampedTupleForwarder` with a `TimestampedCacheFlushListener`
//! for window stores, a `SessionCacheFlushListener` for session stores): not as they
//! happen, but when the cache writes them through (on eviction, or at commit), folded
//! per window or session.

use crate::dsl::Change;
use crate::processor::{Data, ProcessorContext, ProcessorError, Record};
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
