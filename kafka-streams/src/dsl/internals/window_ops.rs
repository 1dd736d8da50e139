//! The processor behind time-windowed aggregations (Kafka's `KStreamWindowAggregate`).

use std::sync::Arc;

use super::table_ops::AggFn;
use crate::dsl::options::SharedSerde;
use crate::dsl::{Change, TimeWindows};
use crate::processor::{Data, Processor, ProcessorContext, ProcessorError, Record};
use crate::state::{TimestampedSerde, TypedWindowStore, ValueAndTimestamp};
use crate::windowed::Windowed;

/// Aggregates a grouped stream per key and time window (Kafka's
/// `KStreamWindowAggregate`): each record updates every window containing it that is
/// not closed yet (its end after stream time minus the grace period); a record only
/// for closed windows is dropped and logged.
pub(crate) struct WindowAggregate<K, V, VA> {
    pub(crate) store: String,
    pub(crate) windows: TimeWindows,
    pub(crate) agg: AggFn<K, V, VA>,
    /// The largest timestamp seen by this processor (Kafka's `observedStreamTime`).
    pub(crate) observed_stream_time: i64,
}

impl<K: Data, V: Data, VA: Data> WindowAggregate<K, V, VA> {
    pub(crate) fn new(store: &str, windows: TimeWindows, agg: AggFn<K, V, VA>) -> Self {
        WindowAggregate {
            store: store.to_owned(),
            windows,
            agg,
            observed_stream_time: -1,
        }
    }
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, Windowed<K>, Change<VA>>
    for WindowAggregate<K, V, VA>
{
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
            let update = record
                .clone()
                .with_key(Windowed::new(record.key.clone(), window))
                .with_value(Change {
                    new: Some(new),
                    old,
                })
                .with_timestamp(new_timestamp);
            ctx.forward(update);
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
