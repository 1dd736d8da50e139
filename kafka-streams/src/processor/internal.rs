//! Type-erased records and processors: how typed DSL nodes run inside a task that
//! does not know their types.
//!
//! A typed [`Processor`] is wrapped in an [`Adapter`] implementing [`ErasedProcessor`];
//! keys and values travel between nodes as `Box<dyn AnyValue>` and are downcast back
//! at the next typed node. The DSL guarantees the types line up; a mismatch is an
//! internal error, never a panic.

use std::any::Any;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kafka_client::Headers;

use super::{
    Cancellable, Data, Processor, ProcessorContext, ProcessorError, PunctuationType, PunctuatorId,
    Record, RecordMetadata, TaskId,
};
use crate::state::StateStore;

/// A key or value of any [`Data`] type.
pub(crate) trait AnyValue: Send {
    fn clone_box(&self) -> Box<dyn AnyValue>;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn as_any(&self) -> &dyn Any;
}

impl<T: Data> AnyValue for T {
    fn clone_box(&self) -> Box<dyn AnyValue> {
        Box::new(self.clone())
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A record whose key and value types are erased.
pub(crate) struct ErasedRecord {
    pub key: Box<dyn AnyValue>,
    pub value: Box<dyn AnyValue>,
    pub timestamp: i64,
    pub headers: Headers,
}

impl Clone for ErasedRecord {
    fn clone(&self) -> Self {
        ErasedRecord {
            key: self.key.clone_box(),
            value: self.value.clone_box(),
            timestamp: self.timestamp,
            headers: self.headers.clone(),
        }
    }
}

impl ErasedRecord {
    pub fn from_record<K: Data, V: Data>(record: Record<K, V>) -> Self {
        ErasedRecord {
            key: Box::new(record.key),
            value: Box::new(record.value),
            timestamp: record.timestamp,
            headers: record.headers,
        }
    }

    /// Back to a typed record; `Err` names what did not match.
    pub fn into_record<K: Data, V: Data>(self) -> Result<Record<K, V>, String> {
        let key = self.key.into_any().downcast::<K>().map_err(|_| {
            format!(
                "key is not of type {} (topology type mismatch)",
                std::any::type_name::<K>()
            )
        })?;
        let value = self.value.into_any().downcast::<V>().map_err(|_| {
            format!(
                "value is not of type {} (topology type mismatch)",
                std::any::type_name::<V>()
            )
        })?;
        Ok(Record {
            key: *key,
            value: *value,
            timestamp: self.timestamp,
            headers: self.headers,
        })
    }

    /// Typed references to key and value.
    pub fn parts<K: 'static, V: 'static>(&self) -> Result<(&K, &V), String> {
        let key = self.key.as_any().downcast_ref::<K>().ok_or_else(|| {
            format!(
                "key is not of type {} (topology type mismatch)",
                std::any::type_name::<K>()
            )
        })?;
        let value = self.value.as_any().downcast_ref::<V>().ok_or_else(|| {
            format!(
                "value is not of type {} (topology type mismatch)",
                std::any::type_name::<V>()
            )
        })?;
        Ok((key, value))
    }
}

/// The stores of a task, by name.
pub(crate) type StoreMap = BTreeMap<String, Box<dyn StateStore>>;

/// Everything a node sees while it runs; borrowed from its task.
pub(crate) struct ContextCore<'a> {
    pub node: usize,
    pub node_name: &'a str,
    pub children: &'a [usize],
    pub child_names: &'a [String],
    pub allowed_stores: &'a [String],
    pub pending: &'a mut Vec<(usize, ErasedRecord)>,
    pub punctuators: &'a mut Punctuators,
    pub stores: &'a mut StoreMap,
    pub metadata: Option<&'a RecordMetadata>,
    pub stream_time: i64,
    pub wall_clock: i64,
    pub task_id: TaskId,
    pub application_id: &'a str,
}

/// A processor with erased types.
pub(crate) trait ErasedProcessor: Send {
    fn init(&mut self, core: ContextCore<'_>) -> Result<(), ProcessorError>;
    fn process(
        &mut self,
        core: ContextCore<'_>,
        record: ErasedRecord,
    ) -> Result<(), ProcessorError>;
    fn punctuate(
        &mut self,
        core: ContextCore<'_>,
        id: PunctuatorId,
        timestamp: i64,
    ) -> Result<(), ProcessorError>;
    fn flush(&mut self, core: ContextCore<'_>) -> Result<(), ProcessorError>;
    fn close(&mut self) -> Result<(), ProcessorError>;
}

/// Makes a fresh processor for each task.
pub(crate) type ProcessorFactory = Arc<dyn Fn() -> Box<dyn ErasedProcessor> + Send + Sync>;

/// Wraps a typed processor.
pub(crate) struct Adapter<P, KIn, VIn, KOut, VOut> {
    inner: P,
    _types: PhantomData<fn(KIn, VIn, KOut, VOut)>,
}

impl<P, KIn, VIn, KOut, VOut> Adapter<P, KIn, VIn, KOut, VOut> {
    pub fn new(inner: P) -> Self {
        Adapter {
            inner,
            _types: PhantomData,
        }
    }
}

impl<P, KIn, VIn, KOut, VOut> ErasedProcessor for Adapter<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KIn: Data,
    VIn: Data,
    KOut: Data,
    VOut: Data,
{
    fn init(&mut self, core: ContextCore<'_>) -> Result<(), ProcessorError> {
        self.inner.init(&mut ProcessorContext::new(core))
    }

    fn process(
        &mut self,
        core: ContextCore<'_>,
        record: ErasedRecord,
    ) -> Result<(), ProcessorError> {
        let record = record.into_record::<KIn, VIn>()?;
        self.inner.process(&mut ProcessorContext::new(core), record)
    }

    fn punctuate(
        &mut self,
        core: ContextCore<'_>,
        id: PunctuatorId,
        timestamp: i64,
    ) -> Result<(), ProcessorError> {
        self.inner
            .punctuate(&mut ProcessorContext::new(core), id, timestamp)
    }

    fn flush(&mut self, core: ContextCore<'_>) -> Result<(), ProcessorError> {
        self.inner.flush(&mut ProcessorContext::new(core))
    }

    fn close(&mut self) -> Result<(), ProcessorError> {
        self.inner.close()
    }
}

/// Makes a factory from a typed processor supplier.
pub(crate) fn factory<P, KIn, VIn, KOut, VOut>(
    supplier: impl Fn() -> P + Send + Sync + 'static,
) -> ProcessorFactory
where
    P: Processor<KIn, VIn, KOut, VOut> + 'static,
    KIn: Data,
    VIn: Data,
    KOut: Data,
    VOut: Data,
{
    Arc::new(move || Box::new(Adapter::<P, KIn, VIn, KOut, VOut>::new(supplier())))
}

struct Schedule {
    id: PunctuatorId,
    node: usize,
    interval: i64,
    kind: PunctuationType,
    next: i64,
    cancelled: Arc<AtomicBool>,
}

/// The punctuation schedules of one task (Kafka's two `PunctuationQueue`s).
#[derive(Default)]
pub(crate) struct Punctuators {
    next_id: u64,
    schedules: Vec<Schedule>,
}

impl Punctuators {
    pub fn schedule(
        &mut self,
        node: usize,
        interval: i64,
        kind: PunctuationType,
        now_wall_clock: i64,
    ) -> Cancellable {
        let id = PunctuatorId(self.next_id);
        self.next_id += 1;
        let cancelled = Arc::new(AtomicBool::new(false));
        // As in Kafka Streams: stream-time schedules are aligned to 0, so the first
        // fires as soon as there is data; wall-clock ones first fire one interval
        // from now.
        let next = match kind {
            PunctuationType::StreamTime => 0,
            PunctuationType::WallClockTime => now_wall_clock.saturating_add(interval),
        };
        self.schedules.push(Schedule {
            id,
            node,
            interval,
            kind,
            next,
            cancelled: cancelled.clone(),
        });
        Cancellable::new(id, cancelled)
    }

    /// The schedules of `kind` due at `time`, earliest first, each advanced to its
    /// next firing time (skipping missed intervals, as Kafka does).
    pub fn due(&mut self, kind: PunctuationType, time: i64) -> Vec<(PunctuatorId, usize)> {
        self.schedules
            .retain(|s| !s.cancelled.load(Ordering::SeqCst));
        let mut due: Vec<(i64, PunctuatorId, usize)> = Vec::new();
        for s in self.schedules.iter_mut().filter(|s| s.kind == kind) {
            if s.next <= time {
                due.push((s.next, s.id, s.node));
                let mut next = s.next.saturating_add(s.interval);
                if time >= next {
                    let missed = (time - s.next) / s.interval;
                    next = s
                        .next
                        .saturating_add((missed + 1).saturating_mul(s.interval));
                }
                s.next = next;
            }
        }
        due.sort();
        due.into_iter().map(|(_, id, node)| (id, node)).collect()
    }

    /// Whether the schedule was cancelled (possibly by an earlier punctuation of the
    /// same round).
    pub fn is_cancelled(&self, id: PunctuatorId) -> bool {
        !self
            .schedules
            .iter()
            .any(|s| s.id == id && !s.cancelled.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erased_round_trip_and_mismatch() {
        let rec = ErasedRecord::from_record(Record::new("k".to_string(), 5_i64, 7));
        let copy = rec.clone();
        let back: Record<String, i64> = rec.into_record().unwrap();
        assert_eq!(back, Record::new("k".to_string(), 5, 7));
        let err = copy.into_record::<String, String>().unwrap_err();
        assert!(err.contains("value is not of type"), "{err}");
    }

    #[test]
    fn stream_time_schedule_aligns_and_skips_missed() {
        let mut p = Punctuators::default();
        let c = p.schedule(0, 10, PunctuationType::StreamTime, 0);
        assert_eq!(p.due(PunctuationType::StreamTime, 3), vec![(c.id(), 0)]);
        assert!(p.due(PunctuationType::StreamTime, 9).is_empty());
        assert_eq!(p.due(PunctuationType::StreamTime, 10).len(), 1);
        assert_eq!(p.due(PunctuationType::StreamTime, 35).len(), 1);
        assert!(p.due(PunctuationType::StreamTime, 39).is_empty());
        assert_eq!(p.due(PunctuationType::StreamTime, 40).len(), 1);
        assert!(p.due(PunctuationType::WallClockTime, 1000).is_empty());
        c.cancel();
        assert!(p.due(PunctuationType::StreamTime, 100).is_empty());
    }
}
