//! The runtime: [`KafkaStreams`], stream threads, tasks and the single commit path.
//!
//! Public: [`KafkaStreams`], [`StreamsConfig`] (with [`HostInfo`], [`TopicCreator`],
//! [`TopologyOptimization`]), the exception handlers ([`handlers`]), the client
//! [`State`] and its listener, [`MetricsSnapshot`], and the interactive-query types.
//! Everything else is internal.
//!
//! - A [`KafkaStreams`] client runs `num.stream.threads` stream threads. Each thread
//!   is a plain OS thread (like Kafka's `StreamThread`) with its own consumer (group
//!   id = `application.id`) and producer.
//! - Partitions are assigned with the `range` assignor, which gives the same partition
//!   number of every co-partitioned topic to the same thread; a thread groups its
//!   partitions into **tasks** `(sub-topology, partition)` and creates or closes them
//!   on rebalance (committing first).
//! - The thread loop: poll a batch, buffer it in the tasks, process in timestamp
//!   order, run punctuations, and every `commit.interval.ms` run the commit path
//!   (see `commit.rs`: flush stores → flush producer → commit offsets; under
//!   `processing.guarantee=exactly_once_v2` ([`ProcessingGuarantee`]) output, changelog
//!   writes and offsets are committed in one transaction per thread).
//! - On start, internal (repartition) topics are created as
//!   `<application.id>-<name>-repartition` with their partition counts, and
//!   co-partitioning is checked.
//! - A newly assigned task with logged stores is `Restoring`: its input partitions
//!   are paused while the thread's changelog reader (`restore.rs`) replays its
//!   changelogs from their checkpoints, a slice per loop iteration, so the thread's
//!   running tasks keep processing. The thread reports `RUNNING` once all its tasks
//!   run. Under `topology.optimization` `reuse.ktable.source.topics`
//!   ([`TopologyOptimization`]) a source table's changelog is its input topic,
//!   restored up to the committed offset.
//! - Global tables (`global.rs`): a global thread rebuilds every global store from
//!   its topic before the stream threads start, then keeps it current.
//! - Interactive queries (`query.rs`): [`KafkaStreams::store`] (key-value),
//!   [`KafkaStreams::window_store`] and [`KafkaStreams::session_store`] read the local
//!   tasks' stores under their threads' locks; a restoring store answers
//!   "migrating". [`KafkaStreams::query_metadata_for_key`] finds the instance owning
//!   a key through `<application.id>-streams-metadata`, where each thread publishes
//!   its partitions (`membership.rs`).
//!
//! ## Roles, one file each (Kafka's names)
//! A record's path from fetch to sink:
//! 1. `thread.rs` — `StreamThread`: polls the consumer, hands each record to its
//!    task (found through the thread's `TaskManager`), asks the tasks to process;
//! 2. `task.rs` — `StreamTask`: buffers the record in its partition group, then
//!    drives it through the sub-topology's nodes, encoding sink output;
//! 3. `record_deserializer.rs` — `RecordDeserializer`: bytes to a typed record (the
//!    source node's codec), or the deserialization handler (fail, skip, dead-letter);
//! 4. `partition_group.rs` — `PartitionGroup`: the task's input queues, the next
//!    record by timestamp, `max.task.idle.ms`;
//! 5. `record_collector.rs` — `RecordCollector`: sends the output to the producer.
//!
//! Around them: `task_manager.rs` (`TaskManager`: the tasks of an assignment),
//! `commit.rs` (the commit path), `restore.rs` (the changelog reader), `config.rs`
//! (settings, and every client's configuration), `topics.rs` (internal topics,
//! through kafka-client's admin client), `global.rs`, `query.rs`, `membership.rs`,
//! `streams.rs` (the client), `handlers.rs`, `metrics.rs`.
//!
//! Threads, tasks and their states stay inside the crate:
//!
//! ```compile_fail
//! use kafka_streams::runtime::ThreadState;
//! ```
//! ```compile_fail
//! use kafka_streams::runtime::GLOBAL_STATE_DIR;
//! ```

mod commit;
mod config;
mod duplicate_identity;
pub(crate) mod global;
pub mod handlers;
mod membership;
mod metrics;
#[cfg(feature = "metrics")]
pub mod metrics_export;
mod offset_metadata;
pub(crate) mod partition_group;
mod process_id;
mod query;
mod record_collector;
mod record_deserializer;
mod restore;
mod standby;
mod state_dir_lock;
mod state_manager;
mod streams;
pub(crate) mod task;
mod task_manager;
mod thread;
mod topics;
mod trace;

pub use crate::topology::TopologyOptimization;
pub(crate) use commit::{commit_tasks, CommitOffsets, OffsetCommitter};
pub use config::{
    HostInfo, ProcessingGuarantee, StreamsConfig, TopicCreator,
    MAIN_CONSUMER_PREFETCH_PER_PARTITION,
};
pub(crate) use metrics::{MetricsRestoreListener, StreamsMetrics, ThreadMetrics};
pub use metrics::{
    MetricsSnapshot, PartitionLag, StoreMetricsSnapshot, TaskMetricsSnapshot, ThreadMetricsSnapshot,
};
pub(crate) use process_id::random_uuid as random_process_id;
pub use query::{
    ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore, StoreQueryParameters,
};
pub(crate) use record_collector::{EncodedRecord, RecordCollector};
pub(crate) use record_deserializer::{Blocker, RawRecord};
pub use streams::{KafkaStreams, KeyQueryMetadata, State, StreamsMetadata};
