//! The processor behind [`KTable::suppress`](crate::dsl::KTable::suppress) (Kafka's
//! `KTableSuppressProcessorSupplier.KTableSuppressProcessor`).

use std::marker::PhantomData;
use std::sync::Arc;

use crate::dsl::{Change, SuppressionBufferFullError};
use crate::processor::{Data, Processor, ProcessorContext, ProcessorError, Record};
use crate::state::{BufferedRecordContext, Eviction, TimeOrderedKeyValueBuffer};

/// What a buffered update's buffer time is (Kafka's `TimeDefinitions`).
pub(crate) enum BufferTime<K> {
    /// The record's timestamp (`untilTimeLimit`).
    Record,
    /// The end of the key's window (`untilWindowCloses`).
    WindowEnd(Arc<dyn Fn(&K) -> i64 + Send + Sync>),
}

impl<K> Clone for BufferTime<K> {
    fn clone(&self) -> Self {
        match self {
            BufferTime::Record => BufferTime::Record,
            BufferTime::WindowEnd(f) => BufferTime::WindowEnd(f.clone()),
        }
    }
}

/// The suppression's settings, resolved when the topology is built (Kafka's
/// `SuppressedInternal`).
#[derive(Clone)]
pub(crate) struct SuppressSettings<K> {
    /// The buffer store.
    pub store: String,
    pub max_records: u64,
    pub max_bytes: u64,
    /// Whether a full buffer fails the task (Kafka's `SHUT_DOWN`) rather than emitting
    /// its oldest updates early (`EMIT`).
    pub shut_down_when_full: bool,
    /// How long after its buffer time an update is emitted, in stream time (the time
    /// limit, or the window close delay).
    pub suppress_duration_ms: i64,
    pub buffer_time: BufferTime<K>,
    /// Final results drop deletes (a window's result is never deleted); a time limit
    /// forwards them.
    pub safe_to_drop_tombstones: bool,
}

/// Buffers a table's updates per key and forwards each key's latest one once stream
/// time (the largest timestamp this processor has seen, which starts over on restart
/// as in Kafka) has passed its buffer time plus the suppression duration, stamped with
/// the latest update's timestamp and headers; forwards early, or fails the task, when
/// the buffer is over its record or byte limit.
pub(crate) struct TableSuppress<K, V> {
    settings: SuppressSettings<K>,
    /// Kafka's `observedStreamTime`.
    observed_stream_time: i64,
    _values: PhantomData<fn(V)>,
}

impl<K: Data, V: Data> TableSuppress<K, V> {
    pub(crate) fn new(settings: SuppressSettings<K>) -> Self {
        TableSuppress {
            settings,
            observed_stream_time: -1,
            _values: PhantomData,
        }
    }

    fn over_capacity(&self, buffer: &TimeOrderedKeyValueBuffer<K, V>) -> bool {
        buffer.num_records() as u64 > self.settings.max_records
            || buffer.buffer_size().max(0) as u64 > self.settings.max_bytes
    }

    fn emit(&self, ctx: &mut ProcessorContext<'_, K, Change<V>>, eviction: Eviction<K, V>) {
        if eviction.new.is_none() && self.settings.safe_to_drop_tombstones {
            return;
        }
        ctx.forward(Record {
            key: eviction.key,
            value: Change {
                new: eviction.new,
                old: eviction.old,
            },
            timestamp: eviction.context.timestamp,
            headers: eviction.context.headers,
        });
    }

    /// Kafka's `enforceConstraints`: emits what has expired, then handles a full buffer.
    fn enforce_constraints(
        &self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let expiry_time = self
            .observed_stream_time
            .saturating_sub(self.settings.suppress_duration_ms);
        let store = &self.settings.store;
        loop {
            let buffer = ctx.required_store::<TimeOrderedKeyValueBuffer<K, V>>(store)?;
            if buffer.num_records() == 0 || buffer.min_timestamp() > expiry_time {
                break;
            }
            match buffer.evict_oldest()? {
                Some(eviction) => self.emit(ctx, eviction),
                None => break,
            }
        }
        let buffer = ctx.required_store::<TimeOrderedKeyValueBuffer<K, V>>(store)?;
        if !self.over_capacity(buffer) {
            return Ok(());
        }
        if self.settings.shut_down_when_full {
            let (records, bytes) = (buffer.num_records() as u64, buffer.buffer_size());
            return Err(Box::new(SuppressionBufferFullError {
                node: ctx.node_name().to_owned(),
                store: store.clone(),
                task: ctx.task_id().to_string(),
                records,
                max_records: self.settings.max_records,
                bytes,
                max_bytes: self.settings.max_bytes,
            }));
        }
        loop {
            let buffer = ctx.required_store::<TimeOrderedKeyValueBuffer<K, V>>(store)?;
            if !self.over_capacity(buffer) {
                return Ok(());
            }
            match buffer.evict_oldest()? {
                Some(eviction) => self.emit(ctx, eviction),
                None => return Ok(()),
            }
        }
    }
}

impl<K: Data, V: Data> Processor<K, Change<V>, K, Change<V>> for TableSuppress<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        self.observed_stream_time = self.observed_stream_time.max(record.timestamp);
        let buffer_time = match &self.settings.buffer_time {
            BufferTime::Record => record.timestamp,
            BufferTime::WindowEnd(window_end) => window_end(&record.key),
        };
        let (topic, partition, offset) = match ctx.record_metadata() {
            Some(m) => (m.topic.clone(), m.partition, m.offset),
            None => (String::new(), -1, -1),
        };
        let context = BufferedRecordContext {
            timestamp: record.timestamp,
            offset,
            topic,
            partition,
            headers: record.headers,
        };
        let buffer = ctx.required_store::<TimeOrderedKeyValueBuffer<K, V>>(&self.settings.store)?;
        buffer.put(
            buffer_time,
            &record.key,
            record.value.new.as_ref(),
            record.value.old.as_ref(),
            context,
        )?;
        self.enforce_constraints(ctx)
    }
}
