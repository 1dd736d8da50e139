//! [`StreamTask`]: one sub-topology on one partition number. The only code that runs
//! processors; the stream threads and the test driver both drive it.
//!
//! A task
//! - owns a fresh instance of each processor of its sub-topology, and its state
//!   stores;
//! - buffers its input partitions' records in its [`PartitionGroup`], decoded by
//!   each partition's [`RecordDeserializer`], and processes them in timestamp order
//!   (the head with the smallest timestamp first, waiting for an empty input up to
//!   `max.task.idle.ms`), advancing **stream time** (the largest timestamp
//!   processed);
//! - sends sink output to the [`RecordCollector`];
//! - runs stream-time and wall-clock punctuations;
//! - remembers, per input partition, the next offset to commit.
//!
//! With `trace_context` on, each step (a record, a punctuation, a commit's cache
//! flush) runs in a `tracing` span whose W3C trace context its output records carry
//! (see `trace.rs`).
//!
//! Its state follows Kafka's `StreamTask`: `Created` → `Restoring` (stores open,
//! changelogs being replayed; input buffered, nothing processed) → `Running` →
//! `Closed`.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use kafka_client::serde::BoxError;
use kafka_client::trace_context::TraceHeaders;
use kafka_client::TopicPartition;

use super::commit::{CommitOffsets, OffsetAndMetadata};
use super::handlers::{ErrorContext, HandlerResponse, ProductionErrorContext};
use super::metrics::{StreamsMetrics, TaskMetrics};
use super::offset_metadata::{merge_committed, TopicPartitionMetadata, UNKNOWN_PARTITION_TIME};
use super::partition_group::{FetchedLags, PartitionGroup};
use super::record_collector::{EncodedRecord, RecordCollector};
use super::record_deserializer::{Blocker, RawRecord, RecordDeserializer};
use super::state_manager::ProcessorStateManager;
use super::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::processor::internal::{ContextCore, ErasedProcessor, ErasedRecord, Punctuators};
use crate::processor::metadata::ProcessorMetadata;
use crate::processor::{PunctuationType, PunctuatorId, RecordMetadata, TaskId};
use crate::state::StoreContext;
use crate::topology::codec::{EncodeError, SinkCodec};
use crate::topology::{NodeKindDef, SubTopology, Topology};

/// What every task of a client shares.
pub(crate) struct TaskEnv {
    pub application_id: String,
    pub config: StreamsConfig,
    pub blocker: Blocker,
    pub metrics: Arc<StreamsMetrics>,
    /// The application's shared RocksDB memory budget.
    pub rocksdb: crate::state::RocksDbMemory,
    /// The instance's process id (see `process_id.rs`): under exactly-once, part of
    /// each stream thread's `transactional.id`.
    pub process_id: String,
    /// The client's global stores, set once they are open (before any task starts).
    pub globals: std::sync::OnceLock<super::global::GlobalStoreMap>,
}

impl TaskEnv {
    /// The context task `task`'s stores are opened with (active or standby): the
    /// application id, the state directory and the shared RocksDB memory.
    pub fn store_context(&self, task: TaskId) -> StoreContext {
        StoreContext::new(
            self.application_id.clone(),
            self.config.state_dir.clone(),
            task,
        )
        .with_rocksdb(self.rocksdb.clone())
    }

    /// The global stores as processors see them, once set.
    pub fn global_stores(&self) -> Option<&dyn crate::processor::internal::GlobalStores> {
        self.globals
            .get()
            .map(|g| g as &dyn crate::processor::internal::GlobalStores)
    }
}

/// Lifecycle of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskState {
    Created,
    Restoring,
    Running,
    Closed,
}

enum RuntimeKind {
    Source,
    Processor(Box<dyn ErasedProcessor>),
    Sink {
        topic: Option<String>,
        codec: Arc<dyn SinkCodec>,
    },
}

struct RuntimeNode {
    name: String,
    kind: RuntimeKind,
    children: Vec<usize>,
    child_names: Vec<String>,
    stores: Vec<String>,
}

/// A source of the task: the node its records enter, and how they are decoded.
struct SourceInput {
    node: usize,
    deserializer: RecordDeserializer,
}

enum Step {
    Process(ErasedRecord),
    Punctuate(PunctuatorId, i64),
    /// Forward what the node's store caches wrote through (at commit).
    Flush,
}

enum Failure {
    /// A processor's error: goes to the processing handler.
    Processor { node: String, error: BoxError },
    /// Fatal: production said fail, or an internal error.
    Fatal(StreamsError),
}

/// One task.
pub(crate) struct StreamTask {
    id: TaskId,
    state: TaskState,
    nodes: Vec<RuntimeNode>,
    /// The input queues, one per input partition.
    group: PartitionGroup,
    /// Per input partition (same index as in `group`): its source.
    inputs: Vec<SourceInput>,
    stream_time: i64,
    punctuators: Punctuators,
    /// The task's stores, their changelogs and checkpoints.
    state_manager: ProcessorStateManager,
    pending: Vec<(usize, ErasedRecord)>,
    stack: Vec<(usize, ErasedRecord)>,
    commit_needed: bool,
    /// Timestamp of the record being processed (stamped on changelog records).
    current_timestamp: i64,
    /// Records forwarded between nodes so far (tells whether a flush moved anything).
    forwarded: u64,
    /// The wall-clock time of the latest processing step.
    wall_clock: i64,
    /// What the processors keep across restarts (Kafka's `ProcessorMetadata`):
    /// committed with every input offset, read back when the task is created again.
    processor_metadata: ProcessorMetadata,
    /// The trace context of the running step's span, which its output records carry.
    trace: Option<TraceHeaders>,
    /// Whether a record or punctuation ran since the last commit: only then may the
    /// caches hold something, and the commit's flush get a span.
    stepped_since_commit: bool,
    env: Arc<TaskEnv>,
    /// The task's metrics (process latency, end-to-end latency, dropped records,
    /// lags, store latencies).
    metrics: Arc<TaskMetrics>,
}

impl StreamTask {
    /// A task of `sub` for partition `partition`, reading the resolved topics of its
    /// sources.
    pub fn new(
        topology: &Topology,
        sub: &SubTopology,
        partition: i32,
        env: Arc<TaskEnv>,
    ) -> Result<Self> {
        let id = TaskId {
            subtopology: sub.id,
            partition,
        };
        let local: HashMap<usize, usize> =
            sub.nodes.iter().enumerate().map(|(l, &g)| (g, l)).collect();
        let mut nodes = Vec::with_capacity(sub.nodes.len());
        let mut group = PartitionGroup::new(id, env.config.max_task_idle_ms);
        let mut inputs = Vec::new();
        for (l, &g) in sub.nodes.iter().enumerate() {
            let def = &topology.nodes[g];
            let kind = match &def.kind {
                NodeKindDef::Source { topics, codec } => {
                    for t in topics {
                        let topic = topology.resolve_topic(&env.application_id, t);
                        group.add_partition(TopicPartition::new(topic, partition));
                        inputs.push(SourceInput {
                            node: l,
                            deserializer: RecordDeserializer::new(codec.clone(), def.name.clone()),
                        });
                    }
                    RuntimeKind::Source
                }
                NodeKindDef::Processor { factory } => RuntimeKind::Processor(factory()),
                NodeKindDef::Sink { topic, codec } => RuntimeKind::Sink {
                    topic: topic
                        .as_ref()
                        .map(|t| topology.resolve_topic(&env.application_id, t)),
                    codec: codec.clone(),
                },
            };
            let children = def
                .children
                .iter()
                .map(|c| {
                    local.get(c).copied().ok_or_else(|| {
                        StreamsError::Internal(format!(
                            "child of {} is outside sub-topology {}",
                            def.name, sub.id
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let child_names = def
                .children
                .iter()
                .map(|&c| topology.nodes[c].name.clone())
                .collect();
            nodes.push(RuntimeNode {
                name: def.name.clone(),
                kind,
                children,
                child_names,
                stores: def.stores.clone(),
            });
        }
        let state_manager = ProcessorStateManager::for_subtopology(topology, sub, id, &env)?;
        Ok(StreamTask {
            id,
            state: TaskState::Created,
            nodes,
            group,
            inputs,
            stream_time: i64::MIN,
            punctuators: Punctuators::default(),
            state_manager,
            pending: Vec::new(),
            stack: Vec::new(),
            commit_needed: false,
            current_timestamp: 0,
            forwarded: 0,
            wall_clock: 0,
            processor_metadata: ProcessorMetadata::default(),
            trace: None,
            stepped_since_commit: false,
            env,
            metrics: Arc::new(TaskMetrics::new(id)),
        })
    }

    /// The task's metrics.
    pub fn metrics(&self) -> &Arc<TaskMetrics> {
        &self.metrics
    }

    /// The input partitions of the task.
    pub fn partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.group.partitions()
    }

    /// Turns waiting for empty inputs off (`max.task.idle.ms` = -1): the test driver
    /// hands every record to its task before processing, so there is nothing to
    /// wait for.
    pub fn disable_idling(&mut self) {
        self.group
            .set_max_task_idle_ms(super::partition_group::MAX_TASK_IDLE_MS_DISABLED);
    }

    /// The consumer reached the end of input partition `topic`/`partition` at
    /// `offset`: the task has every record before it (its lag is known).
    pub fn reached_end(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(i) = self.group.index_of(topic, partition) {
            self.group.reached_end(i, offset);
        }
    }

    /// The next offset the task expects from input partition `topic`/`partition`,
    /// once known.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.group
            .index_of(topic, partition)
            .and_then(|i| self.group.position(i))
    }

    /// Stream time (largest processed timestamp; `i64::MIN` before the first).
    pub fn stream_time(&self) -> i64 {
        self.stream_time
    }

    /// Shares `budget` (the stream thread's) between this task's caching stores;
    /// before [`StreamTask::init_stores`].
    pub fn set_cache_budget(&mut self, budget: crate::state::CacheBudget) {
        self.state_manager.set_cache_budget(budget);
    }

    /// Whether the task owns store `name`.
    pub fn has_store(&self, name: &str) -> bool {
        self.state_manager.has_store(name)
    }

    /// Store `name`, untyped (for interactive queries).
    pub fn store_dyn_mut(&mut self, name: &str) -> Option<&mut dyn crate::state::StateStore> {
        self.state_manager.store_dyn_mut(name)
    }

    /// The store `name` of this task, if it is of type `S`.
    pub fn store_mut<S: crate::state::StateStore>(&mut self, name: &str) -> Option<&mut S> {
        self.state_manager.store_mut(name)
    }

    /// The task's stores and their changelogs (for restoring them).
    pub fn state_manager_mut(&mut self) -> &mut ProcessorStateManager {
        &mut self.state_manager
    }

    /// Opens the stores and initializes the processors: [`StreamTask::init_stores`]
    /// then [`StreamTask::complete_restoration`], for callers that restore nothing
    /// (the test driver).
    pub fn initialize(&mut self, wall_clock: i64) -> Result<()> {
        self.init_stores()?;
        self.complete_restoration(wall_clock)
    }

    /// Whether the task is restoring its stores (it buffers input but processes
    /// nothing, and its stores cannot be queried).
    pub fn is_restoring(&self) -> bool {
        self.state == TaskState::Restoring
    }

    /// Whether the task is processing.
    pub fn is_running(&self) -> bool {
        self.state == TaskState::Running
    }

    /// Takes the processor metadata committed with the task's input offsets (the
    /// metadata string of each partition, empty when it has none): the largest value
    /// per key. Before [`StreamTask::complete_restoration`], which hands it to the
    /// processors. Unreadable metadata is skipped with a warning.
    pub fn init_processor_metadata<'a>(
        &mut self,
        committed: impl IntoIterator<Item = (&'a TopicPartition, &'a [u8])>,
    ) {
        self.processor_metadata = merge_committed(self.id, committed);
        if !self.processor_metadata.is_empty() {
            tracing::debug!(task = %self.id, metadata = ?self.processor_metadata, "processor metadata read from the committed offsets");
        }
    }

    /// Opens the stores (Kafka's `initializeIfNeeded`): the task is then `Restoring`
    /// until [`StreamTask::complete_restoration`].
    pub fn init_stores(&mut self) -> Result<()> {
        if self.state != TaskState::Created {
            return Ok(());
        }
        let context = self
            .env
            .store_context(self.id)
            .with_store_metrics(self.metrics.stores.clone());
        self.state_manager.init_stores(context)?;
        self.state = TaskState::Restoring;
        Ok(())
    }

    /// The stores are restored: initializes the processors (which may schedule
    /// punctuations and read the restored stores) and starts processing.
    pub fn complete_restoration(&mut self, wall_clock: i64) -> Result<()> {
        if self.state != TaskState::Restoring {
            return Ok(());
        }
        let Self {
            nodes,
            pending,
            punctuators,
            state_manager,
            stream_time,
            id,
            env,
            processor_metadata,
            metrics,
            ..
        } = self;
        let stores = state_manager.stores_mut();
        for (idx, node) in nodes.iter_mut().enumerate() {
            let RuntimeNode {
                name,
                kind,
                children,
                child_names,
                stores: allowed,
            } = node;
            if let RuntimeKind::Processor(p) = kind {
                let core = ContextCore {
                    node: idx,
                    node_name: name,
                    children,
                    child_names,
                    allowed_stores: allowed,
                    pending,
                    punctuators,
                    stores,
                    metadata: None,
                    stream_time: *stream_time,
                    wall_clock,
                    task_id: *id,
                    application_id: &env.application_id,
                    dropped_records: &metrics.dropped,
                    windowed_emit_interval_ms: env.config.windowed_emit_interval_ms(),
                    globals: env.global_stores(),
                    outer_join_emit_interval_ms: env.config.outer_join_emit_interval_ms(),
                    processor_metadata,
                };
                p.init(core).map_err(|source| StreamsError::Processing {
                    node: name.clone(),
                    task: id.to_string(),
                    origin: None,
                    source,
                })?;
            }
        }
        pending.clear();
        if self.env.config.processing_guarantee.is_exactly_once() {
            // From now on the stores take writes of transactions that may abort: a
            // crash must find no checkpoint, so that they are wiped and restored
            // (Kafka deletes the checkpoint file at task init under exactly-once).
            self.state_manager.remove_checkpoints()?;
        }
        self.state = TaskState::Running;
        tracing::debug!(task = %self.id, "task initialized");
        Ok(())
    }

    /// Buffers a consumed record (deserializing it; poison records go through the
    /// deserialization handler).
    pub fn add_record(
        &mut self,
        raw: RawRecord<'_>,
        collector: &mut dyn RecordCollector,
    ) -> Result<()> {
        let Some(qi) = self.group.index_of(raw.topic, raw.partition) else {
            return Err(StreamsError::Internal(format!(
                "task {} got a record of topic {} partition {} offset {}, which it does not read",
                self.id, raw.topic, raw.partition, raw.offset
            )));
        };
        let record = self.inputs[qi].deserializer.deserialize(
            &raw,
            self.group.partition_time(qi),
            self.id,
            &self.env,
            collector,
        )?;
        self.group.push(qi, record, raw.offset);
        Ok(())
    }

    /// `true` when the task reads a single partition, so there is no choice of
    /// which buffered record goes next.
    pub fn reads_one_partition(&self) -> bool {
        self.group.len() == 1
    }

    /// Processes the record its partition group picks (the buffered record with the
    /// smallest timestamp, once the group is ready). `false` when nothing was
    /// buffered, or the group waits for an empty input (see `partition_group.rs`).
    pub fn process_one(
        &mut self,
        collector: &mut dyn RecordCollector,
        wall_clock: i64,
        lags: &dyn FetchedLags,
    ) -> Result<bool> {
        if self.state != TaskState::Running {
            return Ok(false);
        }
        self.wall_clock = wall_clock;
        let Some(next) = self.group.next_record(wall_clock, lags) else {
            return Ok(false);
        };
        if next.enforced {
            self.env.metrics.enforced_processing();
        }
        let qi = next.queue;
        let queued = next.queued;
        let source = self.inputs[qi].node;
        self.commit_needed = true;
        let Some(record) = queued.record else {
            return Ok(true);
        };
        let mut metadata = std::mem::replace(
            self.group.metadata_mut(qi),
            RecordMetadata {
                topic: String::new(),
                partition: -1,
                offset: -1,
            },
        );
        metadata.offset = queued.offset;
        self.stream_time = self.stream_time.max(record.timestamp);
        self.current_timestamp = record.timestamp;
        let timestamp = record.timestamp;
        let started = Instant::now();
        self.stepped_since_commit = true;
        let step = super::trace::process(
            self.env.config.trace_context,
            self.id,
            &metadata,
            &record.headers,
        );
        self.trace = step.headers;
        let result = step.span.in_scope(|| {
            self.run(
                source,
                Step::Process(record),
                Some(&metadata),
                collector,
                wall_clock,
            )
        });
        self.trace = None;
        *self.group.metadata_mut(qi) = metadata;
        result?;
        self.metrics
            .record_processed(started, timestamp, wall_clock);
        self.env.metrics.processed();
        Ok(true)
    }

    /// Processes the buffered records, until the partition group has none or waits
    /// for an empty input.
    pub fn process_all(
        &mut self,
        collector: &mut dyn RecordCollector,
        wall_clock: i64,
        lags: &dyn FetchedLags,
    ) -> Result<usize> {
        let mut n = 0;
        while self.process_one(collector, wall_clock, lags)? {
            n += 1;
            self.maybe_punctuate(
                PunctuationType::StreamTime,
                self.stream_time,
                collector,
                wall_clock,
            )?;
        }
        Ok(n)
    }

    /// Runs the punctuations of `kind` due at `time`. `true` if any ran.
    pub fn maybe_punctuate(
        &mut self,
        kind: PunctuationType,
        time: i64,
        collector: &mut dyn RecordCollector,
        wall_clock: i64,
    ) -> Result<bool> {
        if self.state != TaskState::Running || time == i64::MIN {
            return Ok(false);
        }
        self.wall_clock = wall_clock;
        let due = self.punctuators.due(kind, time);
        let mut ran = false;
        for (id, node) in due {
            if self.punctuators.is_cancelled(id) {
                continue;
            }
            self.current_timestamp = time.max(0);
            self.stepped_since_commit = true;
            let step = super::trace::punctuate(self.env.config.trace_context, self.id, kind, time);
            self.trace = step.headers;
            let result = step.span.in_scope(|| {
                self.run(node, Step::Punctuate(id, time), None, collector, wall_clock)
            });
            self.trace = None;
            result?;
            self.env.metrics.punctuated();
            ran = true;
        }
        Ok(ran)
    }

    /// Runs `step` at node `start` and everything it forwards, depth-first; failures
    /// go to the processing handler.
    fn run(
        &mut self,
        start: usize,
        step: Step,
        metadata: Option<&RecordMetadata>,
        collector: &mut dyn RecordCollector,
        wall_clock: i64,
    ) -> Result<()> {
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.drive(start, step, metadata, collector, wall_clock)
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_owned());
            Err(Failure::Processor {
                node: "<panicked processor>".to_owned(),
                error: format!("panicked: {message}").into(),
            })
        });
        self.stack.clear();
        self.pending.clear();
        self.send_changelog(collector)?;
        match result {
            Ok(()) => Ok(()),
            Err(Failure::Fatal(e)) => Err(e),
            Err(Failure::Processor { node, error }) => {
                let context = ErrorContext {
                    task: self.id,
                    node: node.clone(),
                    topic: metadata.map(|m| m.topic.clone()),
                    partition: metadata.map(|m| m.partition),
                    offset: metadata.map(|m| m.offset),
                };
                match self.env.config.processing_handler.handle(&context, &error) {
                    HandlerResponse::Continue => {
                        self.env.metrics.processing_error_skipped();
                        Ok(())
                    }
                    HandlerResponse::Fail => Err(StreamsError::Processing {
                        node,
                        task: self.id.to_string(),
                        origin: metadata.map(|m| Box::new(m.clone())),
                        source: error,
                    }),
                }
            }
        }
    }

    fn drive(
        &mut self,
        start: usize,
        step: Step,
        metadata: Option<&RecordMetadata>,
        collector: &mut dyn RecordCollector,
        wall_clock: i64,
    ) -> Result<(), Failure> {
        let Self {
            nodes,
            pending,
            stack,
            punctuators,
            state_manager,
            stream_time,
            id,
            env,
            forwarded,
            processor_metadata,
            trace,
            metrics: task_metrics,
            ..
        } = self;
        let stores = state_manager.stores_mut();
        let mut next = Some((start, step));
        while let Some((idx, step)) = next.take() {
            let RuntimeNode {
                name,
                kind,
                children,
                child_names,
                stores: allowed,
            } = &mut nodes[idx];
            macro_rules! core {
                () => {
                    ContextCore {
                        node: idx,
                        node_name: name,
                        children,
                        child_names,
                        allowed_stores: allowed,
                        pending: &mut *pending,
                        punctuators: &mut *punctuators,
                        stores: &mut *stores,
                        metadata,
                        stream_time: *stream_time,
                        wall_clock,
                        task_id: *id,
                        application_id: &env.application_id,
                        dropped_records: &task_metrics.dropped,
                        windowed_emit_interval_ms: env.config.windowed_emit_interval_ms(),
                        globals: env.global_stores(),
                        outer_join_emit_interval_ms: env.config.outer_join_emit_interval_ms(),
                        processor_metadata: &mut *processor_metadata,
                    }
                };
            }
            match (kind, step) {
                (RuntimeKind::Source, Step::Process(record)) => {
                    if let Some((&last, rest)) = children.split_last() {
                        for &c in rest {
                            pending.push((c, record.clone()));
                        }
                        pending.push((last, record));
                    }
                }
                (RuntimeKind::Processor(p), Step::Process(record)) => {
                    let c = core!();
                    p.process(c, record).map_err(|error| Failure::Processor {
                        node: name.clone(),
                        error,
                    })?;
                    if !allowed.is_empty() {
                        // Updates a cache evicted while processing go out now.
                        let c = core!();
                        p.flush(c).map_err(|error| Failure::Processor {
                            node: name.clone(),
                            error,
                        })?;
                    }
                }
                (RuntimeKind::Processor(p), Step::Flush) => {
                    let c = core!();
                    p.flush(c).map_err(|error| Failure::Processor {
                        node: name.clone(),
                        error,
                    })?;
                }
                (_, Step::Flush) => {}
                (RuntimeKind::Processor(p), Step::Punctuate(pid, ts)) => {
                    let c = core!();
                    p.punctuate(c, pid, ts)
                        .map_err(|error| Failure::Processor {
                            node: name.clone(),
                            error,
                        })?;
                }
                (RuntimeKind::Sink { topic, codec }, Step::Process(record)) => {
                    match codec.encode(&record, topic.as_deref(), &env.blocker) {
                        Ok(encoded) => {
                            let encoded = EncodedRecord {
                                topic: encoded.topic,
                                partition: None,
                                key: encoded.key,
                                value: encoded.value,
                                timestamp: record.timestamp,
                                headers: super::trace::stamp(&record.headers, trace.as_ref()),
                            };
                            collector
                                .send(encoded, name, metadata)
                                .map_err(Failure::Fatal)?;
                            env.metrics.produced();
                        }
                        Err(EncodeError::Serde { topic, source }) => {
                            let context = ProductionErrorContext {
                                topic: topic.clone(),
                                node: name.clone(),
                                origin: metadata.cloned(),
                            };
                            let reason = format!("serialization failed: {source}");
                            match env.config.production_handler.handle(&context, &reason) {
                                HandlerResponse::Continue => env.metrics.production_error_skipped(),
                                HandlerResponse::Fail => {
                                    return Err(Failure::Fatal(StreamsError::Production {
                                        topic,
                                        node: name.clone(),
                                        origin: metadata.map(|m| Box::new(m.clone())),
                                        reason,
                                        retriable: false,
                                    }))
                                }
                            }
                        }
                        Err(EncodeError::Internal(msg)) => {
                            return Err(Failure::Fatal(StreamsError::Internal(format!(
                                "sink {name}: {msg}"
                            ))))
                        }
                    }
                }
                (_, Step::Punctuate(..)) => {
                    return Err(Failure::Fatal(StreamsError::Internal(format!(
                        "punctuation scheduled on non-processor node {name}"
                    ))))
                }
            }
            // Depth-first, in forwarding order: the first forwarded record is on top.
            *forwarded += pending.len() as u64;
            next = if pending.len() == 1 {
                // The common chain (one child): no detour through the stack.
                pending.pop()
            } else {
                stack.extend(pending.drain(..).rev());
                stack.pop()
            }
            .map(|(i, r)| (i, Step::Process(r)));
        }
        Ok(())
    }

    /// Commit, step 1 (Kafka's `prepareCommit`): flushes the task's stores, forwards
    /// what their record caches held back, and returns the offsets to commit (empty
    /// when nothing was processed since the last commit).
    pub fn prepare_commit(&mut self, collector: &mut dyn RecordCollector) -> Result<CommitOffsets> {
        // Processors of a task still restoring were not initialised: nothing to emit.
        let running = self.state == TaskState::Running;
        let store_nodes: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|_| running)
            .filter(|(_, n)| !n.stores.is_empty() && matches!(n.kind, RuntimeKind::Processor(_)))
            .map(|(i, _)| i)
            .collect();
        // What the caches held back goes out in a flush span; none when they hold
        // nothing (no root span per idle commit).
        let traced =
            self.env.config.trace_context && !store_nodes.is_empty() && self.stepped_since_commit;
        let step = super::trace::flush(traced, self.id);
        self.trace = step.headers.clone();
        let _entered = step.span.enter();
        let flushed = self.flush_caches(&store_nodes, collector);
        self.trace = None;
        flushed?;
        if !self.commit_needed {
            return Ok(CommitOffsets::new());
        }
        // Every partition committed carries the task's processor metadata (Kafka
        // writes it to each), so whichever were committed last, the largest value
        // per key read back is the latest.
        Ok(self
            .group
            .offsets_to_commit()
            .map(|(tp, offset)| {
                let partition_time = self
                    .group
                    .index_of(&tp.topic, tp.partition)
                    .map(|i| self.group.partition_time(i))
                    .filter(|&t| t != i64::MIN)
                    .unwrap_or(UNKNOWN_PARTITION_TIME);
                let metadata =
                    TopicPartitionMetadata::encode(partition_time, &self.processor_metadata);
                (tp.clone(), OffsetAndMetadata { offset, metadata })
            })
            .collect())
    }

    /// Flushes the stores and forwards what the caches of `store_nodes` held back.
    fn flush_caches(
        &mut self,
        store_nodes: &[usize],
        collector: &mut dyn RecordCollector,
    ) -> Result<()> {
        // A flushed update may be written to a cached store further down (a table
        // derived from a table); flush again until nothing moves, bounded by depth.
        for _ in 0..=store_nodes.len() {
            self.state_manager.flush()?;
            let before = self.forwarded;
            for &node in store_nodes {
                self.run(node, Step::Flush, None, collector, self.wall_clock)?;
            }
            if self.forwarded == before {
                break;
            }
        }
        self.send_changelog(collector)
    }

    /// Hands the changelog records the stores wrote to the collector, stamped with the
    /// timestamp of the record being processed and the running step's trace context.
    fn send_changelog(&mut self, collector: &mut dyn RecordCollector) -> Result<()> {
        self.state_manager
            .send_changelog(collector, self.current_timestamp, self.trace.as_ref())
    }

    /// Commit, last step (Kafka's `postCommit`): the offsets are committed; each
    /// logged store checkpoints one past the last changelog offset the producer
    /// acknowledged for it. A store whose changelog is an input partition of the task
    /// (a source table reusing its topic) checkpoints the offset just committed for
    /// that partition: the flushed store reflects every record before it.
    ///
    /// Under exactly-once, stores checkpoint only when the task closes next
    /// (`closing`), as Kafka writes its checkpoint file only on a clean close.
    pub fn post_commit(&mut self, collector: &dyn RecordCollector, closing: bool) -> Result<()> {
        self.commit_needed = false;
        self.stepped_since_commit = false;
        if self.env.config.processing_guarantee.is_exactly_once() && !closing {
            return Ok(());
        }
        let group = &self.group;
        self.state_manager.checkpoint(collector, |changelog| {
            // The offset just committed; before the first record is processed, the
            // checkpoint stays where restoring left it.
            group
                .next_offset_of(&changelog.topic, changelog.partition)
                .flatten()
        })
    }

    /// The task id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Closes processors and stores. The caller commits first.
    pub fn close(&mut self) {
        if self.state == TaskState::Closed {
            return;
        }
        for node in &mut self.nodes {
            if let RuntimeKind::Processor(p) = &mut node.kind {
                if let Err(error) = p.close() {
                    tracing::warn!(task = %self.id, node = %node.name, %error, "processor close failed");
                }
            }
        }
        self.state_manager.close();
        self.state = TaskState::Closed;
        tracing::debug!(task = %self.id, "task closed");
    }
}
