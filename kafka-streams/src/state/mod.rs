//! State stores: the handle processors use, how a task owns its stores, and the
//! key-value, window and session stores themselves.
//!
//! What is fixed by the contract:
//! - a task owns one instance of each store connected to its processors, built by a
//!   [`StoreBuilder`] when the task is created and opened by [`StateStore::init`];
//! - the single commit path flushes every store of a task **before** the producer is
//!   flushed and the offsets are committed ([`StateStore::flush`]);
//! - stores are closed when their task closes.
//!
//! # Stores are decorators over bytes
//! As in Kafka Streams, a key-value store is a stack in which only the outer layer
//! knows types ([`KeyValueStoreBuilder`] assembles it):
//!
//! ```text
//! TypedKeyValueStore<K, V>   serdes: kafka-client's Serializer / Deserializer
//!   └ CachingStore           record cache: folds updates between commits, evicts
//!                            over budget, forwards updates to a CacheFlushListener
//!       └ ChangeLoggingStore every put/delete → ChangelogWriter (deletes = tombstones)
//!           └ RocksDbStore   <state.dir>/<application.id>/<task>/<store>
//!             | InMemoryStore
//! ```
//! Every layer implements the byte-level [`KeyValueStore`]; interactive queries use
//! the read-only halves ([`ReadOnlyKeyValueStore`], [`QueryableKeyValueStore`]). The
//! caching and change-logging layers are internal: [`KeyValueStoreBuilder`] adds them.
//!
//! The DSL's tables and aggregations keep a timestamp per row
//! ([`TimestampedKeyValueStore`], Kafka's `TimestampedKeyValueStore`): the store's
//! bytes are the 8-byte timestamp then the value, which the cache carries as they are
//! (its flushed updates are stamped with the row's timestamp); the changelog holds the
//! plain value with the row's timestamp as the record's, and restoring puts it back in
//! front. Queries read such a store's plain values, as Kafka's `keyValueStore()`.
//!
//! # Window and session stores
//! Built the same way by [`WindowStoreBuilder`] and [`SessionStoreBuilder`]:
//!
//! ```text
//! TypedWindowStore<K, V> | TypedSessionStore<K, V>        serdes
//!   └ caching layer           record cache keyed by binary windowed key
//!       └ change-logging layer    changelog key = Kafka's binary windowed key
//!           └ SegmentedWindowStore | SegmentedSessionStore     RocksDB or in memory
//! ```
//! The byte-level contracts are [`WindowStore`] (a value per key and window start)
//! and [`SessionStore`] (a value per key and session `[start, end]`), with read-only
//! halves for queries; both require [`RestorableStore`], so the state manager restores
//! and checkpoints them as it does key-value stores. Data is segmented by time and
//! expired segments are dropped whole; their changelogs are created with
//! `cleanup.policy=compact,delete` and `retention.ms` = retention +
//! `windowstore.changelog.additional.retention.ms`. Their record cache is the
//! key-value one's, and, as Kafka's, keeps flushed entries readable (clean) until
//! evicted.
//!
//! # Persistence is its own trait
//! Restoring, checkpointing and the cache's flush listener are [`RestorableStore`],
//! not part of [`KeyValueStore`] (which requires it): the runtime's state manager
//! restores and checkpoints every store kind (key-value, window and session stores)
//! through it, reached with [`StateStore::persistence`], and the decorators pass
//! it to the inner store. The changelog topic's name and configs come from the
//! [`StoreBuilder`] (`cleanup.policy=compact` for key-value stores, `compact,delete`
//! with a retention for window and session stores), since topics are created before
//! any store is built.
//!
//! This module knows nothing of tasks' threads, consumers or rdkafka: changelog records
//! leave through the [`ChangelogWriter`] trait, which the runtime implements over its
//! record collector.
//!
//! # Commit, checkpoint and restore (what the runtime calls)
//! 1. `prepare_commit`: [`StateStore::flush`] on every store: the cache writes its
//!    folded updates through (to the inner store, the changelog writer and the flush
//!    listener), then the inner store syncs.
//! 2. Flush the producer; commit offsets (or the transaction).
//! 3. `post_commit`: [`RestorableStore::checkpoint`] with one past the last changelog
//!    offset the store's records got (from the producer's delivery reports), or, for a
//!    store whose changelog is its task's input topic
//!    ([`StoreContext::source_topic_changelog`]), the input offset just committed. RocksDB
//!    stores keep it in a metadata column family, never ahead of the data.
//! 4. On assignment: [`StateStore::init`], then read
//!    [`RestorableStore::checkpointed_offset`] (`None` = from the beginning: no
//!    checkpoint, or missing/corrupt state that was wiped), seek the restore consumer
//!    there, and feed [`RestorableStore::restore_batch`] until the changelog's end (for
//!    an input-topic changelog: the group's committed offset), reporting progress to
//!    `tracing` and the user's [`StateRestoreListener`].
//! 5. Under exactly-once, once restored and before processing:
//!    [`RestorableStore::remove_checkpoint`]; then checkpoint only on a clean close, so
//!    a crash mid-transaction leaves no checkpoint and the state is wiped and rebuilt.
//!
//! # What is public
//! The store traits, builders, typed stores and configs are; the decorators and the
//! checkpoint file are the crate's own, so a user cannot stack them differently:
//!
//! ```compile_fail
//! use kafka_streams::state::CachingStore;
//! ```
//! ```compile_fail
//! use kafka_streams::state::ChangeLoggingStore;
//! ```
//! ```compile_fail
//! use kafka_streams::state::CheckpointFile;
//! ```
//!
//! # Memory
//! All RocksDB stores of an application share one [`RocksDbMemory`] (block cache with
//! index, filter and memtable memory charged to it); each stream thread's caching
//! stores share one [`CacheBudget`].

use std::any::Any;
use std::collections::BTreeMap;

use crate::common::TaskId;
use crate::error::Result;

mod builder;
mod cache;
// No runtime path writes the per-task `.checkpoint` file yet (RocksDB stores keep their
// checkpoint inside the database); kept, and tested, for stores without transactional
// metadata.
#[cfg_attr(not(test), allow(dead_code))]
mod checkpoint;
mod error;
mod key_value;
mod logging;
mod memory;
mod metered;
mod restorable;
mod restore;
mod rocks;
mod segments;
mod session_store;
mod suppression_buffer;
mod timestamped_restore;
mod typed;
mod value_and_timestamp;
mod window_builder;
mod window_cache;
mod window_logging;
mod window_store;
mod window_typed;

#[cfg(test)]
mod tests;

// The public surface: what users implement (`StateStore`, `StoreBuilder`,
// `RestorableStore`, the byte-level `KeyValueStore`, `WindowStore` and `SessionStore`
// of a custom inner store), query (`ReadOnlyKeyValueStore`, `QueryableKeyValueStore`,
// `TypedKeyValueStore`, the read-only and `Queryable…` window and session traits and
// the typed stores),
// build (`KeyValueStoreBuilder`, `WindowStoreBuilder`, `SessionStoreBuilder`,
// `StoreKind`) and configure (RocksDB memory and options, cache sizes), the restore
// listener and the errors. The concrete inner stores (`RocksDbStore`, `InMemoryStore`,
// `SegmentedWindowStore`, `SegmentedSessionStore`) are public as Kafka's `Stores`
// suppliers make them available: to build a custom stack on, or to open a task's
// state offline.
pub use builder::{KeyValueStoreBuilder, StoreContext, StoreKind, DEFAULT_CACHE_MAX_BYTES};
pub use cache::{CacheBudget, CacheFlushListener, FlushedEntry};
pub use error::{StateError, StateResult};
pub use key_value::{BatchEntry, KeyValue, KeyValueIter, KeyValueStore, ReadOnlyKeyValueStore};
pub use logging::ChangelogWriter;
pub use memory::InMemoryStore;
pub use metered::{LatencySnapshot, LatencyStat, StoreLatencies, StoreMetricsRegistry};
pub use restorable::{changelog_topic, ChangelogPartition, RestorableStore, RestoreRecord};
pub use restore::{StateRestoreListener, StoreRestoreProgress};
pub use rocks::{
    RocksDbConfigSetter, RocksDbMemory, RocksDbMemoryConfig, RocksDbStore, StoreLocation,
    StoreRecovery, ValueFormat,
};
pub use segments::default_segment_interval_ms;
pub use session_store::{
    ReadOnlySessionStore, SegmentedSessionStore, SessionEntry, SessionIter, SessionStore,
};
pub(crate) use typed::queryable_key_value_store;
pub use typed::{QueryableKeyValueStore, TimestampedKeyValueStore, TypedIter, TypedKeyValueStore};
pub(crate) use value_and_timestamp::TimestampedSerde;
pub use value_and_timestamp::ValueAndTimestamp;
pub use window_builder::{
    SessionStoreBuilder, WindowStoreBuilder, DEFAULT_WINDOWSTORE_CHANGELOG_ADDITIONAL_RETENTION_MS,
};
pub use window_store::{
    ReadOnlyWindowStore, SegmentedWindowStore, WindowEntry, WindowEntryIter, WindowFetchIter,
    WindowStore,
};
pub use window_typed::{
    FlushedSession, FlushedWindow, QueryableSessionStore, QueryableWindowStore, TypedSessionIter,
    TypedSessionStore, TypedWindowFetchIter, TypedWindowIter, TypedWindowStore,
};

// Crate-internal (the decorators are not re-exported at all): the queue the DSL's
// tables drain cache flushes from, the changelog writer tasks collect records in, and
// restore progress reporting for the runtime.
pub(crate) use cache::FlushQueue;
pub(crate) use logging::RecordingChangelogWriter;
pub(crate) use restore::RestoreProgress;
pub(crate) use suppression_buffer::{
    BufferedRecordContext, Eviction, TimeOrderedKeyValueBuffer, TimeOrderedKeyValueBufferBuilder,
};
// The decoders of bytes other processes wrote, for the fuzz targets (`crate::fuzzing`).
pub(crate) use checkpoint::{CheckpointEntry, CheckpointFile};
pub(crate) use segments::{session_key, window_key};
pub(crate) use suppression_buffer::{
    changelog_value_round_trips, restore_and_evict_all, sample_changelog_values,
};

/// The parts of the [RocksDB crate](https://docs.rs/rocksdb) that a
/// [`RocksDbConfigSetter`] is handed: its signature takes RocksDB's own option types,
/// so users need them, at the version the stores are built with, to write one. Nothing
/// else of RocksDB is part of this crate's API.
pub mod rocksdb {
    pub use ::rocksdb::{BlockBasedOptions, Options};
}

/// A store owned by one task (Kafka's `StateStore`).
pub trait StateStore: Send + 'static {
    /// The store's name, unique in the topology.
    fn name(&self) -> &str;

    /// Makes every write so far durable (called by the commit path first).
    fn flush(&mut self) -> Result<()>;

    /// Releases the store's resources (called when the task closes).
    fn close(&mut self) -> Result<()>;

    /// Whether the store keeps its data on disk.
    fn persistent(&self) -> bool {
        false
    }

    /// The store as `Any`, so a processor can reach its concrete type.
    fn as_any_mut(&mut self) -> &mut dyn Any;

    /// Opens the store for its task (Kafka's `StateStore.init`): called once by the
    /// task after [`StoreBuilder::build`] and before any processor uses it. Stores built
    /// already open need not override it.
    fn init(&mut self, context: &StoreContext) -> Result<()> {
        let _ = context;
        Ok(())
    }

    /// How the store is restored and checkpointed ([`RestorableStore`]), for the
    /// state manager; `None` for stores that keep no changelog (or are not open).
    fn persistence(&mut self) -> Option<&mut dyn RestorableStore> {
        None
    }

    /// The byte-level key-value store, for global stores, which apply their topic's
    /// records to it directly; `None` for stores that are not key-value stores over
    /// bytes.
    fn byte_store(&mut self) -> Option<&mut dyn KeyValueStore> {
        None
    }
}

/// Makes a task's instance of a store (Kafka's `StoreBuilder`).
pub trait StoreBuilder: Send + Sync + 'static {
    /// Name of the stores it builds.
    fn name(&self) -> &str;

    /// A new store for `task`.
    fn build(&self, task: TaskId) -> Result<Box<dyn StateStore>>;

    /// Whether the stores it builds keep their data on disk, under `state.dir`
    /// (Kafka's `StoreBuilder` answers through its stores' `persistent()`): an
    /// instance with such stores locks its state directory.
    fn persistent(&self) -> bool {
        false
    }

    /// The changelog topic of the stores it builds, if they are logged
    /// (`<application.id>-<store>-changelog`), for creating it as a compacted topic.
    /// The runtime creates none for a source table reusing its input topic.
    fn changelog_topic(&self, application_id: &str) -> Option<String> {
        let _ = application_id;
        None
    }

    /// The topic configs its changelog topic is created with: `cleanup.policy=compact`
    /// for key-value stores (Kafka's `UnwindowedChangelogTopicConfig`), overlaid with
    /// what the user gave (Kafka's `withLoggingEnabled(config)`).
    fn changelog_topic_configs(&self) -> BTreeMap<String, String> {
        compacted_topic_configs()
    }
}

/// `cleanup.policy=compact`: the configs of a topic that keeps each key's latest
/// record (key-value changelogs, the metadata topic).
pub(crate) fn compacted_topic_configs() -> BTreeMap<String, String> {
    BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())])
}
