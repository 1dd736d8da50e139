//! The runtime: [`KafkaStreams`], stream threads, tasks and the single commit path.
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
//!   (see `commit.rs`: flush stores → flush producer → commit offsets).
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
//! - Interactive queries (`query.rs`): [`KafkaStreams::store`] reads the local
//!   tasks' stores under their threads' locks; a restoring store answers
//!   "migrating". [`KafkaStreams::query_metadata_for_key`] finds the instance owning
//!   a key through `<application.id>-streams-metadata`, where each thread publishes
//!   its partitions (`membership.rs`).

mod commit;
mod config;
pub(crate) mod global;
pub mod handlers;
mod membership;
mod metrics;
pub(crate) mod partition_group;
mod query;
mod record_collector;
mod record_deserializer;
mod restore;
mod streams;
pub(crate) mod task;
mod task_manager;
mod thread;
mod topics;

pub(crate) use commit::{commit_tasks, OffsetCommitter};
pub use config::{HostInfo, StreamsConfig, TopicCreator, TopologyOptimization};
pub use metrics::{MetricsSnapshot, StreamsMetrics};
pub use query::ReadOnlyKeyValueStore;
pub(crate) use record_collector::{EncodedRecord, RecordCollector};
pub(crate) use record_deserializer::{Blocker, RawRecord};
pub use streams::{KafkaStreams, KeyQueryMetadata, State, StreamsMetadata};
