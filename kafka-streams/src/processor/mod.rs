//! The Processor API: custom processors with a context that forwards records, reads
//! record metadata and headers, schedules punctuations and reaches state stores.
//!
//! Every DSL operator is itself a [`Processor`]; a custom one is added to a stream with
//! [`KStream::process`](crate::dsl::KStream::process). A processor instance belongs to
//! one task (one sub-topology and one partition), so it needs no locking; the
//! `supplier` closure given to `process` makes one instance per task.
//!
//! ## Lifecycle
//! [`Processor::init`] once when the task starts (schedule punctuations there),
//! [`Processor::process`] for each record, [`Processor::punctuate`] when a scheduled
//! punctuation fires, [`Processor::close`] when the task closes (rebalance or
//! shutdown).
//!
//! ## Forwarding
//! [`ProcessorContext::forward`] sends a record to every child node;
//! [`ProcessorContext::forward_to`] to the child with that name. Records flow
//! depth-first, in the order they were forwarded, as in Kafka Streams.
//!
//! ## Punctuation
//! [`ProcessorContext::schedule`] takes an interval and a [`PunctuationType`]:
//! - [`PunctuationType::StreamTime`] fires as the task's stream time (the largest
//!   record timestamp seen) passes each interval. The first one fires on the first
//!   record; later ones are aligned to multiples of the interval.
//! - [`PunctuationType::WallClockTime`] fires as the system clock (or the test
//!   driver's clock) passes each interval from the time of scheduling.
//!
//! Each firing calls [`Processor::punctuate`] with the schedule's [`PunctuatorId`].
//! [`Cancellable::cancel`] stops a schedule.
//!
//! ```
//! use std::time::Duration;
//! use kafka_streams::processor::{
//!     Processor, ProcessorContext, ProcessorError, PunctuationType, PunctuatorId, Record,
//! };
//!
//! /// Counts records and emits the count every 10 s of stream time.
//! #[derive(Default)]
//! struct Counter { seen: i64 }
//!
//! impl Processor<String, String, String, i64> for Counter {
//!     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), ProcessorError> {
//!         ctx.schedule(Duration::from_secs(10), PunctuationType::StreamTime);
//!         Ok(())
//!     }
//!     fn process(
//!         &mut self,
//!         _ctx: &mut ProcessorContext<'_, String, i64>,
//!         _record: Record<String, String>,
//!     ) -> Result<(), ProcessorError> {
//!         self.seen += 1;
//!         Ok(())
//!     }
//!     fn punctuate(
//!         &mut self,
//!         ctx: &mut ProcessorContext<'_, String, i64>,
//!         _id: PunctuatorId,
//!         timestamp: i64,
//!     ) -> Result<(), ProcessorError> {
//!         ctx.forward(Record::new("count".to_string(), self.seen, timestamp));
//!         Ok(())
//!     }
//! }
//! ```

pub(crate) mod internal;
pub(crate) mod metadata;

use std::any::Any;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use kafka_client::serde::BoxError;
pub use kafka_client::Headers;

pub use crate::common::{RecordMetadata, TaskId};
use crate::state::StateStore;
use internal::{ContextCore, ErasedRecord};

/// The error a processor returns: any error type.
pub type ProcessorError = BoxError;

/// What a key or value type must be to flow through a topology: owned, cloneable
/// (a record forwarded to several children is cloned) and sendable to a stream thread.
pub trait Data: Clone + Send + 'static {}

impl<T: Clone + Send + 'static> Data for T {}

/// A record flowing through a topology (Kafka Streams' `api.Record`).
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// Key.
    pub key: K,
    /// Value.
    pub value: V,
    /// Timestamp in milliseconds since the epoch (event time).
    pub timestamp: i64,
    /// Headers.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record with no headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record {
            key,
            value,
            timestamp,
            headers: Headers::new(),
        }
    }

    /// The same record with another key.
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record {
            key,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record with another value.
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record {
            key: self.key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record with another timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// The same record with other headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}

/// Which clock drives a punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// The task's stream time: the largest timestamp of the records it processed.
    StreamTime,
    /// The system clock (the test driver's mock clock in tests).
    WallClockTime,
}

/// Identifies a punctuation schedule of a processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PunctuatorId(pub(crate) u64);

impl PunctuatorId {
    /// The numeric id (unique within a task).
    pub fn get(&self) -> u64 {
        self.0
    }
}

/// Cancels a scheduled punctuation (Kafka's `Cancellable`).
#[derive(Debug, Clone)]
pub struct Cancellable {
    id: PunctuatorId,
    cancelled: Arc<AtomicBool>,
}

impl Cancellable {
    pub(crate) fn new(id: PunctuatorId, cancelled: Arc<AtomicBool>) -> Self {
        Cancellable { id, cancelled }
    }

    /// The schedule's id, passed to [`Processor::punctuate`].
    pub fn id(&self) -> PunctuatorId {
        self.id
    }

    /// Stops the schedule; it never fires again.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether [`Cancellable::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// A custom processor: records in with types `KIn, VIn`, records out with types
/// `KOut, VOut` (Kafka's `api.Processor`).
pub trait Processor<KIn, VIn, KOut = KIn, VOut = VIn>: Send {
    /// Called once when the task starts, before any record.
    fn init(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessorError> {
        let _ = ctx;
        Ok(())
    }

    /// Processes one record.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        record: Record<KIn, VIn>,
    ) -> Result<(), ProcessorError>;

    /// Called when a punctuation scheduled with [`ProcessorContext::schedule`] fires;
    /// `timestamp` is the stream time or wall-clock time that triggered it.
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        id: PunctuatorId,
        timestamp: i64,
    ) -> Result<(), ProcessorError> {
        let _ = (ctx, id, timestamp);
        Ok(())
    }

    /// Called after each record this processor processed, and at every commit once
    /// the task's stores have been flushed: the moment to forward what a record cache
    /// wrote through (the DSL's tables forward their updates here when their store is
    /// cached, as Kafka's cache flush listeners do). Most processors need nothing.
    fn flush(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessorError> {
        let _ = ctx;
        Ok(())
    }

    /// Called once when the task closes.
    fn close(&mut self) -> Result<(), ProcessorError> {
        Ok(())
    }
}

/// What a processor can do while processing: forward, read metadata, schedule,
/// reach stores (Kafka's `api.ProcessorContext`).
pub struct ProcessorContext<'a, K, V> {
    pub(crate) core: ContextCore<'a>,
    _types: PhantomData<fn(K, V)>,
}

impl<'a, K, V> ProcessorContext<'a, K, V> {
    pub(crate) fn new(core: ContextCore<'a>) -> Self {
        ProcessorContext {
            core,
            _types: PhantomData,
        }
    }

    /// Name of the node this processor runs as.
    pub fn node_name(&self) -> &str {
        self.core.node_name
    }

    /// The task this processor instance belongs to.
    pub fn task_id(&self) -> TaskId {
        self.core.task_id
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        self.core.application_id
    }

    /// Topic, partition and offset of the input record being processed; `None` in a
    /// punctuation.
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.core.metadata
    }

    /// The task's stream time: the largest record timestamp it has processed
    /// (`i64::MIN` before the first).
    pub fn current_stream_time_ms(&self) -> i64 {
        self.core.stream_time
    }

    /// The wall-clock time in milliseconds (the mock clock in the test driver).
    pub fn current_system_time_ms(&self) -> i64 {
        self.core.wall_clock
    }

    /// Names of this node's children, in the order they were added.
    pub fn child_names(&self) -> &[String] {
        self.core.child_names
    }

    /// Schedules a punctuation every `interval`; see the module docs for when each
    /// type fires. Returns the handle that cancels it.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> Cancellable {
        let interval_ms = i64::try_from(interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        self.core
            .punctuators
            .schedule(self.core.node, interval_ms, kind, self.core.wall_clock)
    }

    /// The state store named `name`, if it is connected to this processor and is of
    /// type `S`.
    pub fn state_store<S: StateStore>(&mut self, name: &str) -> Option<&mut S> {
        if !self.core.allowed_stores.iter().any(|s| s == name) {
            return None;
        }
        self.core
            .stores
            .get_mut(name)
            .and_then(|store| (store.as_any_mut() as &mut dyn Any).downcast_mut::<S>())
    }

    /// Counts one record this processor dropped (Kafka's task-level `dropped-records`
    /// sensor, read back as the runtime's `MetricsSnapshot::skipped_records`); the
    /// processor logs why, with the record's topic, partition and offset.
    pub(crate) fn record_dropped(&self) {
        self.core.dropped_records.fetch_add(1, Ordering::Relaxed);
    }

    /// The least wall-clock time between two looks for closed windows of an
    /// on-window-close windowed aggregation, from the configuration (Kafka's internal
    /// `__emit.interval.ms.kstreams.windowed.aggregation__`).
    pub(crate) fn windowed_emit_interval_ms(&self) -> i64 {
        self.core.windowed_emit_interval_ms
    }

    /// The task's processor metadata under `key` (Kafka's
    /// `processorMetadataForKey`): restored from the committed offsets when the task
    /// was created, or set since by [`ProcessorContext::add_processor_metadata_key_value`].
    pub(crate) fn processor_metadata_for_key(&self, key: &str) -> Option<i64> {
        self.core.processor_metadata.get(key)
    }

    /// Sets the task's processor metadata `key` to `value` (Kafka's
    /// `addProcessorMetadataKeyValue`); it is committed with the task's next offsets.
    pub(crate) fn add_processor_metadata_key_value(&mut self, key: &str, value: i64) {
        self.core.processor_metadata.put(key, value);
    }

    /// The least wall-clock time between two looks for closed windows of a left or
    /// outer stream-stream join, from the configuration (Kafka's internal
    /// `__emit.interval.ms.kstreams.outer.join.spurious.results.fix__`).
    pub(crate) fn outer_join_emit_interval_ms(&self) -> i64 {
        self.core.outer_join_emit_interval_ms
    }

    /// The stores this node may use, for the DSL's table value getters (which read a
    /// table's store from a join processor of other types).
    pub(crate) fn store_access(&mut self) -> internal::StoreAccess<'_> {
        internal::StoreAccess {
            node_name: self.core.node_name,
            allowed_stores: self.core.allowed_stores,
            stores: &mut *self.core.stores,
            globals: self.core.globals,
        }
    }

    /// State store `name` as `S`, or an error naming the store and this node (for
    /// the DSL's processors, which are always connected to their stores).
    pub(crate) fn required_store<S: StateStore>(
        &mut self,
        name: &str,
    ) -> Result<&mut S, ProcessorError> {
        // The node name outlives this borrow of the context: no copy per record.
        let node = self.core.node_name;
        self.state_store(name).ok_or_else(|| {
            format!("state store {name} is not connected to node {node} (or has other types)")
                .into()
        })
    }
}

impl<K: Data, V: Data> ProcessorContext<'_, K, V> {
    /// Forwards `record` to every child node.
    pub fn forward(&mut self, record: Record<K, V>) {
        let children = self.core.children;
        match children.len() {
            0 => {}
            1 => self
                .core
                .pending
                .push((children[0], ErasedRecord::from_record(record))),
            n => {
                for &child in &children[..n - 1] {
                    self.core
                        .pending
                        .push((child, ErasedRecord::from_record(record.clone())));
                }
                self.core
                    .pending
                    .push((children[n - 1], ErasedRecord::from_record(record)));
            }
        }
    }

    /// Forwards `record` to the child named `child` only. Returns an error naming the
    /// children when there is no such child.
    pub fn forward_to(&mut self, child: &str, record: Record<K, V>) -> Result<(), ProcessorError> {
        match self.core.child_names.iter().position(|c| c == child) {
            Some(i) => {
                self.core
                    .pending
                    .push((self.core.children[i], ErasedRecord::from_record(record)));
                Ok(())
            }
            None => Err(format!(
                "node {} has no child named {child} (children: {:?})",
                self.core.node_name, self.core.child_names
            )
            .into()),
        }
    }
}
