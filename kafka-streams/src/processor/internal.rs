//! Type-erased records and processors: how typed DSL nodes run inside a task that
//! does not know their types.
//!
//! A typed [`Processor`] is wrapped in an [`Adapter`] implementing [`ErasedProcessor`];
//! keys and values travel between nodes as [`ErasedValue`]s and are downcast back
//! at the next typed node. The DSL guarantees the types line up; a mismatch is an
//! internal error, never a panic.

use std::any::Any;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Moves the value out of `slot` as a `U`, when `T` is `U` (the check is on
/// types, resolved at compile time).
fn take_as<T: 'static, U: 'static>(slot: &mut Option<T>) -> Option<U> {
    (slot as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
}

/// A key or value of erased type. The types most topologies carry (strings,
/// bytes, `i64` counts, unit) are held inline and the others boxed: every node
/// erases the records it forwards, and two heap allocations per hop were the
/// largest cost of a stateless pipeline.
pub(crate) enum ErasedValue {
    String(String),
    Bytes(Vec<u8>),
    I64(i64),
    Unit,
    /// Any other type `T`, as a `Some(T)` (so taking it out needs no extra box).
    Boxed(Box<dyn AnyValue>),
}

impl ErasedValue {
    pub fn new<T: Data>(value: T) -> Self {
        let mut slot = Some(value);
        if let Some(v) = take_as::<T, String>(&mut slot) {
            return ErasedValue::String(v);
        }
        if let Some(v) = take_as::<T, Vec<u8>>(&mut slot) {
            return ErasedValue::Bytes(v);
        }
        if let Some(v) = take_as::<T, i64>(&mut slot) {
            return ErasedValue::I64(v);
        }
        if let Some(()) = take_as::<T, ()>(&mut slot) {
            return ErasedValue::Unit;
        }
        ErasedValue::Boxed(Box::new(slot))
    }

    /// The value as a `T`; `None` when it is of another type.
    pub fn into_typed<T: Data>(self) -> Option<T> {
        match self {
            ErasedValue::String(v) => take_as(&mut Some(v)),
            ErasedValue::Bytes(v) => take_as(&mut Some(v)),
            ErasedValue::I64(v) => take_as(&mut Some(v)),
            ErasedValue::Unit => take_as(&mut Some(())),
            ErasedValue::Boxed(b) => b.into_any().downcast::<Option<T>>().ok().and_then(|b| *b),
        }
    }

    /// A reference to the value as a `T`; `None` when it is of another type.
    pub fn as_typed<T: 'static>(&self) -> Option<&T> {
        match self {
            ErasedValue::String(v) => (v as &dyn Any).downcast_ref(),
            ErasedValue::Bytes(v) => (v as &dyn Any).downcast_ref(),
            ErasedValue::I64(v) => (v as &dyn Any).downcast_ref(),
            ErasedValue::Unit => (&() as &dyn Any).downcast_ref(),
            ErasedValue::Boxed(b) => b
                .as_any()
                .downcast_ref::<Option<T>>()
                .and_then(Option::as_ref),
        }
    }
}

impl Clone for ErasedValue {
    fn clone(&self) -> Self {
        match self {
            ErasedValue::String(v) => ErasedValue::String(v.clone()),
            ErasedValue::Bytes(v) => ErasedValue::Bytes(v.clone()),
            ErasedValue::I64(v) => ErasedValue::I64(*v),
            ErasedValue::Unit => ErasedValue::Unit,
            ErasedValue::Boxed(b) => ErasedValue::Boxed(b.clone_box()),
        }
    }
}

/// A record whose key and value types are erased.
#[derive(Clone)]
pub(crate) struct ErasedRecord {
    pub key: ErasedValue,
    pub value: ErasedValue,
    pub timestamp: i64,
    pub headers: Headers,
}

fn mismatch<T>(field: &str) -> String {
    format!(
        "{field} is not of type {} (topology type mismatch)",
        std::any::type_name::<T>()
    )
}

impl ErasedRecord {
    pub fn from_record<K: Data, V: Data>(record: Record<K, V>) -> Self {
        ErasedRecord {
            key: ErasedValue::new(record.key),
            value: ErasedValue::new(record.value),
            timestamp: record.timestamp,
            headers: record.headers,
        }
    }

    /// Back to a typed record; `Err` names what did not match.
    pub fn into_record<K: Data, V: Data>(self) -> Result<Record<K, V>, String> {
        let key = self
            .key
            .into_typed::<K>()
            .ok_or_else(|| mismatch::<K>("key"))?;
        let value = self
            .value
            .into_typed::<V>()
            .ok_or_else(|| mismatch::<V>("value"))?;
        Ok(Record {
            key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        })
    }

    /// Typed references to key and value.
    pub fn parts<K: 'static, V: 'static>(&self) -> Result<(&K, &V), String> {
        let key = self
            .key
            .as_typed::<K>()
            .ok_or_else(|| mismatch::<K>("key"))?;
        let value = self
            .value
            .as_typed::<V>()
            .ok_or_else(|| mismatch::<V>("value"))?;
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
    /// The task's count of records a processor dropped (Kafka's task-level
    /// `dropped-records` sensor), owned by the runtime's metrics: a plain counter, so
    /// processors record drops without knowing the runtime.
    pub dropped_records: &'a AtomicU64,
    /// The least wall-clock time between two looks for closed windows of an
    /// on-window-close windowed aggregation (Kafka's internal
    /// `__emit.interval.ms.kstreams.windowed.aggregation__`).
    pub windowed_emit_interval_ms: i64,
    /// The least wall-clock time between two looks for closed windows of a left or
    /// outer stream-stream join (Kafka's internal
    /// `__emit.interval.ms.kstreams.outer.join.spurious.results.fix__`).
    pub outer_join_emit_interval_ms: i64,
    /// The client's global stores, once opened (joins with a `GlobalKTable` read them).
    pub globals: Option<&'a dyn GlobalStores>,
    /// The task's processor metadata, committed with its offsets.
    pub processor_metadata: &'a mut super::metadata::ProcessorMetadata,
}

/// The global stores of a client, by store name (Kafka's global state manager as seen
/// from a task's processors): a runtime type behind a trait, so processors reach them
/// without knowing the runtime.
pub(crate) trait GlobalStores: Send + Sync {
    /// Runs `f` on global store `name` (locked while `f` runs); `false` when there is
    /// no such store.
    fn with_store(&self, name: &str, f: &mut dyn FnMut(&mut dyn StateStore)) -> bool;
}

/// The stores a node may use, with its name for errors: what a table's value getter
/// needs to read a store from whichever processor it runs in.
pub(crate) struct StoreAccess<'s> {
    pub node_name: &'s str,
    pub allowed_stores: &'s [String],
    pub stores: &'s mut StoreMap,
    pub globals: Option<&'s dyn GlobalStores>,
}

impl StoreAccess<'_> {
    /// State store `name` as `S`, or an error naming the store and the node.
    pub fn required<S: StateStore>(&mut self, name: &str) -> Result<&mut S, ProcessorError> {
        let node = self.node_name;
        if !self.allowed_stores.iter().any(|s| s == name) {
            return Err(format!("state store {name} is not connected to node {node}").into());
        }
        self.stores
            .get_mut(name)
            .and_then(|store| (store.as_any_mut() as &mut dyn Any).downcast_mut::<S>())
            .ok_or_else(|| {
                format!("state store {name} of node {node} is missing or has other types").into()
            })
    }

    /// Runs `f` on global store `name` as `S`, or returns an error naming the store.
    pub fn with_global<S: StateStore, R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut S) -> R,
    ) -> Result<R, ProcessorError> {
        let node = self.node_name;
        let globals = self
            .globals
            .ok_or_else(|| format!("node {node} reads global store {name}, but none is open"))?;
        let mut f = Some(f);
        let mut result = None;
        let mut typed = false;
        let found = globals.with_store(name, &mut |store| {
            if let Some(s) = (store.as_any_mut() as &mut dyn Any).downcast_mut::<S>() {
                typed = true;
                if let Some(f) = f.take() {
                    result = Some(f(s));
                }
            }
        });
        match (found, typed, result) {
            (true, true, Some(r)) => Ok(r),
            (false, ..) => {
                Err(format!("node {node} reads global store {name}, which does not exist").into())
            }
            _ => Err(format!("global store {name} read by node {node} has other types").into()),
        }
    }
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

    fn round_trip<T: Data + PartialEq + std::fmt::Debug>(value: T) {
        let erased = ErasedValue::new(value.clone());
        assert_eq!(erased.as_typed::<T>(), Some(&value));
        assert_eq!(erased.clone().into_typed::<T>().as_ref(), Some(&value));
        assert!(erased.as_typed::<Option<T>>().is_none());
        assert!(erased.into_typed::<Option<T>>().is_none());
    }

    #[test]
    fn erased_values_keep_their_type_inline_or_boxed() {
        #[derive(Debug, Clone, PartialEq)]
        struct Reading {
            celsius: f64,
        }
        round_trip("text".to_string());
        round_trip(vec![1_u8, 2, 3]);
        round_trip(-4_i64);
        round_trip(());
        round_trip(Some("tombstone-able".to_string()));
        round_trip(None::<String>);
        round_trip(Reading { celsius: 21.5 });
        assert!(matches!(
            ErasedValue::new("a".to_string()),
            ErasedValue::String(_)
        ));
        assert!(matches!(ErasedValue::new(7_i64), ErasedValue::I64(_)));
        assert!(matches!(ErasedValue::new(7_i32), ErasedValue::Boxed(_)));
        // Inline and boxed types never pass for one another.
        assert!(ErasedValue::new(7_i32).as_typed::<i64>().is_none());
        assert!(ErasedValue::new(7_i64).into_typed::<i32>().is_none());
        assert!(ErasedValue::new(vec![1_u8]).as_typed::<String>().is_none());
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
