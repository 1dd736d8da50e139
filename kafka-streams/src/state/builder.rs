//! Building a task's store stack: [`KeyValueStoreBuilder`] (Kafka's
//! `Stores.keyValueStoreBuilder`) and the [`StoreContext`] a task opens stores with.
//!
//! A builder makes an unopened [`TypedKeyValueStore`] per task; the task then calls
//! [`StateStore::init`](super::StateStore::init) with a [`StoreContext`] carrying what
//! only the runtime knows (application id, state directory, the task's changelog writer,
//! the thread's cache budget and the application's RocksDB memory). Opening assembles,
//! from the inside out:
//!
//! ```text
//! TypedKeyValueStore<K, V>      serdes (only this layer knows the types)
//!   └ MeteredKeyValueStore      if the context has store metrics (timing)
//!     └ CachingStore            if caching is enabled
//!       └ ChangeLoggingStore    if logging is enabled, to a changelog of its own
//!           └ RocksDbStore | InMemoryStore
//! ```
//!
//! A logged store whose context names a source-topic changelog
//! ([`StoreContext::source_topic_changelog`]) has no `ChangeLoggingStore`: the topic it
//! is built from is its changelog, for restores and checkpoints.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use kafka_client::serde::{DefaultSerde, Serde};

use super::cache::{CacheBudget, CachingStore};
use super::error::{StateError, StateResult};
use super::key_value::KeyValueStore;
use super::logging::{ChangeLoggingStore, ChangelogWriter};
use super::memory::InMemoryStore;
use super::metered::{MeteredKeyValueStore, StoreMetricsRegistry};
use super::restorable::{changelog_topic, ChangelogPartition};
use super::rocks::{RocksDbMemory, RocksDbMemoryConfig, RocksDbStore, StoreLocation, ValueFormat};
use super::timestamped_restore::TimestampingRestoreStore;
use super::typed::TypedKeyValueStore;
use super::value_and_timestamp::ValueAndTimestamp;
use super::{StateStore, StoreBuilder};
use crate::common::TaskId;

/// Default record cache per stream thread when the runtime gives none: Kafka's default
/// `statestore.cache.max.bytes` (10 MiB).
pub const DEFAULT_CACHE_MAX_BYTES: usize = 10 << 20;

/// Which inner store a builder makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// [`RocksDbStore`] (for windows and sessions, a
    /// [`SegmentedWindowStore`](super::SegmentedWindowStore) or
    /// [`SegmentedSessionStore`](super::SegmentedSessionStore) on RocksDB), persistent
    /// (the default).
    RocksDb,
    /// [`InMemoryStore`] (or a segmented window or session store in memory), rebuilt
    /// from the changelog on every start.
    InMemory,
}

/// What a task gives its stores when it opens them (Kafka's `StateStoreContext`).
#[derive(Clone)]
pub struct StoreContext {
    /// The `application.id`.
    pub application_id: String,
    /// The `state.dir`.
    pub state_dir: PathBuf,
    /// The task opening the store; its partition is the changelog partition.
    pub task: TaskId,
    /// Where changelog records go (the task's record collector). Required by stores
    /// with logging enabled.
    pub changelog_writer: Option<Arc<dyn ChangelogWriter>>,
    /// The stream thread's record-cache budget, shared by its caching stores.
    pub cache_budget: CacheBudget,
    /// The application's shared RocksDB memory.
    pub rocksdb: RocksDbMemory,
    /// The directory under `<state.dir>/<application.id>` in place of the task id
    /// (`global` for global stores).
    pub directory: Option<String>,
    /// The topic that is the store's changelog instead of
    /// `<application.id>-<store>-changelog`: the input topic of a source table under
    /// `topology.optimization` `reuse.ktable.source.topics`. A logged store is then
    /// opened without the change-logging layer (the topic already holds every write),
    /// and its changelog partition is this topic's partition of the task.
    pub source_topic_changelog: Option<String>,
    /// Where the stores register their operation latencies (the task's metrics):
    /// a key-value stack then gets a timing layer on top.
    pub store_metrics: Option<StoreMetricsRegistry>,
}

impl fmt::Debug for StoreContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreContext")
            .field("application_id", &self.application_id)
            .field("state_dir", &self.state_dir)
            .field("task", &self.task)
            .field("changelog_writer", &self.changelog_writer.is_some())
            .field("cache_budget", &self.cache_budget)
            .field("rocksdb", &self.rocksdb)
            .field("directory", &self.directory)
            .field("source_topic_changelog", &self.source_topic_changelog)
            .field("store_metrics", &self.store_metrics.is_some())
            .finish()
    }
}

impl StoreContext {
    /// A context with no changelog writer, a [`DEFAULT_CACHE_MAX_BYTES`] cache budget
    /// and default RocksDB memory; the runtime replaces those with the shared ones.
    pub fn new(
        application_id: impl Into<String>,
        state_dir: impl Into<PathBuf>,
        task: TaskId,
    ) -> Self {
        StoreContext {
            application_id: application_id.into(),
            state_dir: state_dir.into(),
            task,
            changelog_writer: None,
            cache_budget: CacheBudget::new(DEFAULT_CACHE_MAX_BYTES),
            rocksdb: RocksDbMemory::with_config(RocksDbMemoryConfig::default()),
            directory: None,
            source_topic_changelog: None,
            store_metrics: None,
        }
    }

    /// Times the stores' operations into `registry` (see [`StoreContext::store_metrics`]).
    pub fn with_store_metrics(mut self, registry: StoreMetricsRegistry) -> Self {
        self.store_metrics = Some(registry);
        self
    }

    /// Uses `topic`, the store's input topic, as its changelog (see
    /// [`StoreContext::source_topic_changelog`]).
    pub fn with_source_topic_changelog(mut self, topic: impl Into<String>) -> Self {
        self.source_topic_changelog = Some(topic.into());
        self
    }

    /// Keeps the stores in `<state.dir>/<application.id>/<directory>` instead of the
    /// task's directory.
    pub fn in_directory(mut self, directory: impl Into<String>) -> Self {
        self.directory = Some(directory.into());
        self
    }

    /// Sets the changelog writer.
    pub fn with_changelog_writer(mut self, writer: Arc<dyn ChangelogWriter>) -> Self {
        self.changelog_writer = Some(writer);
        self
    }

    /// Sets the record-cache budget.
    pub fn with_cache_budget(mut self, budget: CacheBudget) -> Self {
        self.cache_budget = budget;
        self
    }

    /// Sets the shared RocksDB memory.
    pub fn with_rocksdb(mut self, memory: RocksDbMemory) -> Self {
        self.rocksdb = memory;
        self
    }

    /// The changelog writer, which logged store `store` requires.
    pub(crate) fn required_changelog_writer(
        &self,
        store: &str,
    ) -> StateResult<Arc<dyn ChangelogWriter>> {
        self.changelog_writer
            .clone()
            .ok_or_else(|| StateError::Config {
                store: store.to_owned(),
                reason: "logging is enabled but the task gave no changelog writer".into(),
            })
    }

    /// Where `store` of this task lives on disk.
    pub fn location(&self, store: &str) -> StoreLocation {
        StoreLocation {
            state_dir: self.state_dir.clone(),
            application_id: self.application_id.clone(),
            task: self
                .directory
                .clone()
                .unwrap_or_else(|| self.task.to_string()),
            store: store.to_owned(),
        }
    }
}

/// How to assemble one key-value store stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyValueStoreSpec {
    /// Store name.
    pub name: String,
    /// The inner store.
    pub kind: StoreKind,
    /// Whether writes are logged to `<application.id>-<name>-changelog` (or, when the
    /// context names a [source-topic changelog](StoreContext::source_topic_changelog),
    /// restored from and checkpointed against that topic instead).
    pub logging: bool,
    /// Whether a record cache folds writes between commits.
    pub caching: bool,
    /// Whether the values are `ValueAndTimestamp` bytes (a
    /// [`TimestampedKeyValueStore`](super::TimestampedKeyValueStore)): as in Kafka,
    /// the changelog (its own, or a source topic) holds the plain value with the row's
    /// timestamp as the record's, which restoring puts back in front.
    pub timestamped: bool,
}

/// An opened byte-level stack.
pub(crate) struct OpenedStore {
    /// The outermost byte-level layer.
    pub store: Box<dyn KeyValueStore>,
    /// The changelog partition, if logging is enabled: of
    /// `<application.id>-<store>-changelog`, or of the source-topic changelog.
    pub changelog: Option<ChangelogPartition>,
    /// The topic the serdes are told: the changelog topic name (the source topic when
    /// it is the changelog, as in Kafka, so that the store's bytes are the topic's).
    pub serde_topic: String,
}

impl fmt::Debug for OpenedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedStore")
            .field("store", &self.store.name())
            .field("changelog", &self.changelog)
            .finish()
    }
}

impl KeyValueStoreSpec {
    /// Opens the stack for the task of `context`.
    pub fn open(&self, context: &StoreContext) -> StateResult<OpenedStore> {
        // A store without logging keeps no changelog at all, source topic or not.
        let source_changelog = context
            .source_topic_changelog
            .as_ref()
            .filter(|_| self.logging);
        let topic = match source_changelog {
            Some(source) => source.clone(),
            None => changelog_topic(&context.application_id, &self.name),
        };
        let changelog = self.logging.then(|| ChangelogPartition {
            topic: topic.clone(),
            partition: context.task.partition,
        });
        let mut store: Box<dyn KeyValueStore> = match self.kind {
            StoreKind::RocksDb => Box::new(RocksDbStore::open_with_format(
                &context.location(&self.name),
                changelog.clone(),
                &context.rocksdb,
                if self.timestamped {
                    ValueFormat::Timestamped
                } else {
                    ValueFormat::Plain
                },
            )?),
            StoreKind::InMemory => Box::new(InMemoryStore::new(self.name.clone())),
        };
        if changelog.is_some() && self.timestamped {
            store = Box::new(TimestampingRestoreStore::new(store));
        }
        if let Some(changelog) = changelog.as_ref().filter(|_| source_changelog.is_none()) {
            let writer = context.required_changelog_writer(&self.name)?;
            let logging = ChangeLoggingStore::new(store, changelog.clone(), writer);
            store = Box::new(if self.timestamped {
                logging.timestamped()
            } else {
                logging
            });
        }
        if self.caching {
            store = Box::new(CachingStore::new(store, context.cache_budget.clone()));
        }
        if let Some(registry) = &context.store_metrics {
            store = Box::new(MeteredKeyValueStore::new(
                store,
                registry.register(&self.name),
            ));
        }
        Ok(OpenedStore {
            store,
            changelog,
            serde_topic: topic,
        })
    }
}

/// Builds a typed key-value store for each task (Kafka's `KeyValueStoreBuilder`).
///
/// Defaults: RocksDB, logging enabled, caching disabled (the DSL enables caching for
/// its tables, as Kafka does).
///
/// ```
/// use kafka_streams::state::KeyValueStoreBuilder;
/// let counts = KeyValueStoreBuilder::<String, i64>::new("counts").with_caching_enabled();
/// ```
pub struct KeyValueStoreBuilder<K, V> {
    spec: KeyValueStoreSpec,
    changelog_configs: BTreeMap<String, String>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: DefaultSerde, V: DefaultSerde> KeyValueStoreBuilder<K, V> {
    /// A builder for `name` with the types' default serdes.
    pub fn new(name: impl Into<String>) -> Self {
        Self::with_serdes(
            name,
            Arc::new(K::default_serde()),
            Arc::new(V::default_serde()),
        )
    }
}

impl<K, V> KeyValueStoreBuilder<K, V> {
    /// A builder for `name` with explicit serdes.
    pub fn with_serdes(
        name: impl Into<String>,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        KeyValueStoreBuilder {
            spec: KeyValueStoreSpec {
                name: name.into(),
                kind: StoreKind::RocksDb,
                logging: true,
                caching: false,
                timestamped: false,
            },
            changelog_configs: BTreeMap::new(),
            key_serde,
            value_serde,
            _types: PhantomData,
        }
    }

    /// Keeps the store in memory instead of RocksDB.
    pub fn in_memory(mut self) -> Self {
        self.spec.kind = StoreKind::InMemory;
        self
    }

    /// Selects the inner store.
    pub fn with_kind(mut self, kind: StoreKind) -> Self {
        self.spec.kind = kind;
        self
    }

    /// Stops logging to the changelog: the store is not restored after a failure.
    pub fn with_logging_disabled(mut self) -> Self {
        self.spec.logging = false;
        self
    }

    /// Logs to the changelog (the default), whose topic is created with `configs`
    /// on top of `cleanup.policy=compact` (Kafka's `withLoggingEnabled(config)`),
    /// e.g. `segment.ms` or `min.cleanable.dirty.ratio`.
    ///
    /// ```
    /// use kafka_streams::state::KeyValueStoreBuilder;
    /// let counts = KeyValueStoreBuilder::<String, i64>::new("counts")
    ///     .with_logging_enabled([("min.cleanable.dirty.ratio", "0.1")]);
    /// ```
    pub fn with_logging_enabled<N: Into<String>, V2: Into<String>>(
        mut self,
        configs: impl IntoIterator<Item = (N, V2)>,
    ) -> Self {
        self.spec.logging = true;
        self.changelog_configs
            .extend(configs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Folds writes in the record cache between commits.
    pub fn with_caching_enabled(mut self) -> Self {
        self.spec.caching = true;
        self
    }

    /// Writes every update straight through.
    pub fn with_caching_disabled(mut self) -> Self {
        self.spec.caching = false;
        self
    }
}

impl<K, V> KeyValueStoreBuilder<K, ValueAndTimestamp<V>> {
    /// Marks the store's values as `ValueAndTimestamp` bytes (what the DSL's tables
    /// keep): logged as the plain value stamped with the row's timestamp, restored
    /// with the record's timestamp in front, as Kafka's timestamped stores.
    pub(crate) fn timestamped(mut self) -> Self {
        self.spec.timestamped = true;
        self
    }
}

impl<K: 'static, V: 'static> StoreBuilder for KeyValueStoreBuilder<K, V> {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn persistent(&self) -> bool {
        self.spec.kind == StoreKind::RocksDb
    }

    fn build(&self, _task: TaskId) -> crate::Result<Box<dyn StateStore>> {
        Ok(Box::new(TypedKeyValueStore::unopened(
            self.spec.clone(),
            self.key_serde.clone(),
            self.value_serde.clone(),
        )))
    }

    fn changelog_topic(&self, application_id: &str) -> Option<String> {
        self.spec
            .logging
            .then(|| changelog_topic(application_id, &self.spec.name))
    }

    fn changelog_topic_configs(&self) -> BTreeMap<String, String> {
        let mut configs = super::compacted_topic_configs();
        configs.extend(self.changelog_configs.clone());
        configs
    }
}
