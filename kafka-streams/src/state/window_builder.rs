//! Building window and session store stacks: [`WindowStoreBuilder`] and
//! [`SessionStoreBuilder`] (Kafka's `WindowStoreBuilder` and `SessionStoreBuilder`
//! over `Stores.persistentWindowStore` / `persistentSessionStore` and their in-memory
//! counterparts).
//!
//! A builder makes an unopened typed store per task; [`StateStore::init`] assembles,
//! from the inside out:
//!
//! ```text
//! TypedWindowStore<K, V> | TypedSessionStore<K, V>    serdes
//!   └ CachingWindowStore | CachingSessionStore         if caching is enabled
//!       └ ChangeLoggingWindowStore | …SessionStore     if logging is enabled
//!           └ SegmentedWindowStore | SegmentedSessionStore on RocksDB or in memory
//! ```
//!
//! The record cache (Kafka's `CachingWindowStore` and `CachingSessionStore`) is off by
//! default, as in Kafka's store builders; the DSL's windowed aggregations enable it
//! unless their `Materialized` disables caching.
//!
//! The changelog topic is created with `cleanup.policy=compact,delete` and
//! `retention.ms` = the store's retention plus
//! `windowstore.changelog.additional.retention.ms` (default one day), unless the user's
//! logging configs set `retention.ms` (Kafka's `WindowedChangelogTopicConfig`).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use kafka_client::serde::{DefaultSerde, Serde};

use super::builder::{StoreContext, StoreKind};
use super::error::{StateError, StateResult};
use super::logging::ChangelogWriter;
use super::metered::{MeteredSessionStore, MeteredWindowStore};
use super::restorable::{changelog_topic, ChangelogPartition};
use super::segments::default_segment_interval_ms;
use super::session_store::{SegmentedSessionStore, SessionStore};
use super::window_cache::{CachingSessionStore, CachingWindowStore};
use super::window_logging::{ChangeLoggingSessionStore, ChangeLoggingWindowStore};
use super::window_store::{SegmentedWindowStore, WindowStore};
use super::window_typed::{TypedSessionStore, TypedWindowStore};
use super::{StateStore, StoreBuilder};
use crate::common::TaskId;

/// Kafka's default `windowstore.changelog.additional.retention.ms`: one day, added to
/// a window or session store's retention for its changelog's `retention.ms`, to allow
/// for clock drift.
pub const DEFAULT_WINDOWSTORE_CHANGELOG_ADDITIONAL_RETENTION_MS: i64 = 86_400_000;

/// How to assemble one window or session store stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentedStoreSpec {
    /// Store name.
    pub name: String,
    /// The inner store.
    pub kind: StoreKind,
    /// Whether writes are logged to `<application.id>-<name>-changelog`.
    pub logging: bool,
    /// Whether a record cache folds writes between commits.
    pub caching: bool,
    /// Whether window reads reach back to the latest window start minus the retention
    /// (Kafka's time-ordered window store, of emit-final aggregations) instead of one
    /// millisecond less far.
    pub time_ordered_reads: bool,
    /// How long windows (by start) or sessions (by end) are kept, in milliseconds.
    pub retention_ms: i64,
    /// The segment interval, in milliseconds.
    pub segment_interval_ms: i64,
    /// Keeps every value put, even several for one key and window start (Kafka's
    /// `retainDuplicates`, for the window stores of stream-stream joins).
    pub retain_duplicates: bool,
}

/// An opened byte-level stack of type `S`.
pub(crate) struct OpenedSegmentedStore<S: ?Sized> {
    /// The outermost byte-level layer.
    pub store: Box<S>,
    /// The changelog partition, if logging is enabled.
    pub changelog: Option<ChangelogPartition>,
    /// The topic the serdes are told: the changelog topic name.
    pub serde_topic: String,
}

impl SegmentedStoreSpec {
    fn changelog(&self, context: &StoreContext) -> (Option<ChangelogPartition>, String) {
        let topic = changelog_topic(&context.application_id, &self.name);
        let changelog = self.logging.then(|| ChangelogPartition {
            topic: topic.clone(),
            partition: context.task.partition,
        });
        (changelog, topic)
    }

    fn writer(&self, context: &StoreContext) -> StateResult<Arc<dyn ChangelogWriter>> {
        context.required_changelog_writer(&self.name)
    }

    /// Opens a window store stack for the task of `context`.
    pub fn open_window(
        &self,
        context: &StoreContext,
    ) -> StateResult<OpenedSegmentedStore<dyn WindowStore>> {
        let (changelog, serde_topic) = self.changelog(context);
        let mut segmented = match self.kind {
            StoreKind::RocksDb => SegmentedWindowStore::open(
                &context.location(&self.name),
                changelog.clone(),
                &context.rocksdb,
                self.retention_ms,
                self.segment_interval_ms,
            )?,
            StoreKind::InMemory => SegmentedWindowStore::in_memory(
                self.name.clone(),
                changelog.clone(),
                self.retention_ms,
                self.segment_interval_ms,
            )?,
        };
        if self.time_ordered_reads {
            segmented.set_time_ordered_reads();
        }
        let mut store: Box<dyn WindowStore> = match self.retain_duplicates {
            true => Box::new(segmented.with_retain_duplicates()),
            false => Box::new(segmented),
        };
        if let Some(changelog) = &changelog {
            store = Box::new(
                ChangeLoggingWindowStore::new(store, changelog.clone(), self.writer(context)?)
                    .retaining_duplicates(self.retain_duplicates),
            );
        }
        if self.caching && !self.retain_duplicates {
            store = Box::new(CachingWindowStore::new(
                store,
                context.cache_budget.clone(),
                self.segment_interval_ms,
            ));
        }
        if let Some(registry) = &context.store_metrics {
            store = Box::new(MeteredWindowStore::new(
                store,
                registry.register(&self.name),
            ));
        }
        Ok(OpenedSegmentedStore {
            store,
            changelog,
            serde_topic,
        })
    }

    /// Opens a session store stack for the task of `context`.
    pub fn open_session(
        &self,
        context: &StoreContext,
    ) -> StateResult<OpenedSegmentedStore<dyn SessionStore>> {
        let (changelog, serde_topic) = self.changelog(context);
        let mut store: Box<dyn SessionStore> = match self.kind {
            StoreKind::RocksDb => Box::new(SegmentedSessionStore::open(
                &context.location(&self.name),
                changelog.clone(),
                &context.rocksdb,
                self.retention_ms,
                self.segment_interval_ms,
            )?),
            StoreKind::InMemory => Box::new(SegmentedSessionStore::in_memory(
                self.name.clone(),
                changelog.clone(),
                self.retention_ms,
                self.segment_interval_ms,
            )?),
        };
        if let Some(changelog) = &changelog {
            store = Box::new(ChangeLoggingSessionStore::new(
                store,
                changelog.clone(),
                self.writer(context)?,
            ));
        }
        if self.caching {
            store = Box::new(CachingSessionStore::new(
                store,
                context.cache_budget.clone(),
            ));
        }
        if let Some(registry) = &context.store_metrics {
            store = Box::new(MeteredSessionStore::new(
                store,
                registry.register(&self.name),
            ));
        }
        Ok(OpenedSegmentedStore {
            store,
            changelog,
            serde_topic,
        })
    }
}

/// A duration in milliseconds, as the `i64` Kafka's configs hold.
fn millis(store: &str, what: &str, duration: Duration) -> StateResult<i64> {
    i64::try_from(duration.as_millis()).map_err(|_| StateError::Config {
        store: store.to_owned(),
        reason: format!("{what} of {duration:?} does not fit in i64 milliseconds"),
    })
}

/// What window and session store builders share: the spec, the logging configs and
/// the changelog's additional retention.
#[derive(Debug, Clone)]
struct SegmentedBuilderParts {
    spec: SegmentedStoreSpec,
    changelog_configs: BTreeMap<String, String>,
    additional_retention_ms: i64,
}

impl SegmentedBuilderParts {
    fn new(name: String, retention: Duration) -> StateResult<Self> {
        let retention_ms = millis(&name, "the retention period", retention)?;
        Ok(SegmentedBuilderParts {
            spec: SegmentedStoreSpec {
                segment_interval_ms: default_segment_interval_ms(retention_ms),
                name,
                kind: StoreKind::RocksDb,
                logging: true,
                caching: false,
                time_ordered_reads: false,
                retention_ms,
                retain_duplicates: false,
            },
            changelog_configs: BTreeMap::new(),
            additional_retention_ms: DEFAULT_WINDOWSTORE_CHANGELOG_ADDITIONAL_RETENTION_MS,
        })
    }

    fn changelog_topic(&self, application_id: &str) -> Option<String> {
        self.spec
            .logging
            .then(|| changelog_topic(application_id, &self.spec.name))
    }

    /// Kafka's `WindowedChangelogTopicConfig.properties`.
    fn changelog_topic_configs(&self) -> BTreeMap<String, String> {
        let mut configs =
            BTreeMap::from([("cleanup.policy".to_owned(), "compact,delete".to_owned())]);
        configs.extend(self.changelog_configs.clone());
        if !self.changelog_configs.contains_key("retention.ms") {
            let retention = self
                .spec
                .retention_ms
                .checked_add(self.additional_retention_ms)
                .unwrap_or(i64::MAX);
            configs.insert("retention.ms".to_owned(), retention.to_string());
        }
        configs
    }

    fn set_additional_retention(&mut self, additional: Duration) -> StateResult<()> {
        self.additional_retention_ms = millis(
            &self.spec.name,
            "windowstore.changelog.additional.retention.ms",
            additional,
        )?;
        Ok(())
    }

    fn extend_configs<N: Into<String>, V: Into<String>>(
        &mut self,
        configs: impl IntoIterator<Item = (N, V)>,
    ) {
        self.spec.logging = true;
        self.changelog_configs
            .extend(configs.into_iter().map(|(k, v)| (k.into(), v.into())));
    }
}

/// Builds a typed window store for each task (Kafka's `WindowStoreBuilder` over
/// `Stores.persistentWindowStore(name, retention, window size, false)`).
///
/// Defaults: RocksDB, logging enabled, segment interval `max(retention / 2, 60 s)`,
/// caching disabled (as Kafka's `Stores.windowStoreBuilder`), no duplicates retained
/// ([`WindowStoreBuilder::with_retain_duplicates`]).
///
/// ```
/// use std::time::Duration;
/// use kafka_streams::state::WindowStoreBuilder;
/// let counts = WindowStoreBuilder::<String, i64>::new(
///     "counts-per-minute",
///     Duration::from_secs(3600),
///     Duration::from_secs(60),
/// )?
/// .with_logging_enabled([("min.insync.replicas", "2")]);
/// # Ok::<(), kafka_streams::state::StateError>(())
/// ```
pub struct WindowStoreBuilder<K, V> {
    parts: SegmentedBuilderParts,
    window_size_ms: i64,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: DefaultSerde, V: DefaultSerde> WindowStoreBuilder<K, V> {
    /// A builder for `name` keeping windows of `window_size` for `retention`, with the
    /// types' default serdes.
    ///
    /// Fails, as Kafka's `Stores.persistentWindowStore` does, if the retention is
    /// smaller than the window size.
    pub fn new(
        name: impl Into<String>,
        retention: Duration,
        window_size: Duration,
    ) -> StateResult<Self> {
        Self::with_serdes(
            name,
            retention,
            window_size,
            Arc::new(K::default_serde()),
            Arc::new(V::default_serde()),
        )
    }
}

impl<K, V> WindowStoreBuilder<K, V> {
    /// A builder for `name` with explicit serdes (of the plain key: the store adds
    /// the window start itself).
    pub fn with_serdes(
        name: impl Into<String>,
        retention: Duration,
        window_size: Duration,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> StateResult<Self> {
        let parts = SegmentedBuilderParts::new(name.into(), retention)?;
        let window_size_ms = millis(&parts.spec.name, "the window size", window_size)?;
        if window_size_ms > parts.spec.retention_ms {
            return Err(StateError::Config {
                store: parts.spec.name.clone(),
                reason: format!(
                    "the retention period of the window store must be no smaller than its window size; got size=[{window_size_ms}], retention=[{}]",
                    parts.spec.retention_ms
                ),
            });
        }
        Ok(WindowStoreBuilder {
            parts,
            window_size_ms,
            key_serde,
            value_serde,
            _types: PhantomData,
        })
    }

    /// Keeps the store in memory instead of RocksDB.
    pub fn in_memory(self) -> Self {
        self.with_kind(StoreKind::InMemory)
    }

    /// Selects the inner store.
    pub fn with_kind(mut self, kind: StoreKind) -> Self {
        self.parts.spec.kind = kind;
        self
    }

    /// Stops logging to the changelog: the store is not restored after a failure.
    pub fn with_logging_disabled(mut self) -> Self {
        self.parts.spec.logging = false;
        self
    }

    /// Folds writes in the record cache between commits (Kafka's
    /// `withCachingEnabled`): repeated updates reach the inner store, the changelog
    /// and the flush listener once per commit or eviction. Not for a store retaining
    /// duplicates, whose puts never replace one another (as in Kafka, which caches
    /// no such store): with duplicates retained the cache is not used.
    pub fn with_caching_enabled(mut self) -> Self {
        self.parts.spec.caching = true;
        self
    }

    /// Writes every update straight through (the default).
    pub fn with_caching_disabled(mut self) -> Self {
        self.parts.spec.caching = false;
        self
    }

    /// Keeps every value put, even several for one key and window start, each under
    /// its own sequence number (Kafka's `retainDuplicates`, which stream-stream joins
    /// use); putting no value then writes nothing.
    pub fn with_retain_duplicates(mut self) -> Self {
        self.parts.spec.retain_duplicates = true;
        self
    }

    /// Logs to the changelog (the default), whose topic is created with `configs` on
    /// top of `cleanup.policy=compact,delete` and the computed `retention.ms` (which
    /// a `retention.ms` among `configs` replaces).
    pub fn with_logging_enabled<N: Into<String>, V2: Into<String>>(
        mut self,
        configs: impl IntoIterator<Item = (N, V2)>,
    ) -> Self {
        self.parts.extend_configs(configs);
        self
    }

    /// Sets `windowstore.changelog.additional.retention.ms`, added to the retention
    /// for the changelog's `retention.ms` (default one day).
    pub fn with_changelog_additional_retention(
        mut self,
        additional: Duration,
    ) -> StateResult<Self> {
        self.parts.set_additional_retention(additional)?;
        Ok(self)
    }

    /// Reads windows back to the latest window start minus the retention, as Kafka's
    /// time-ordered window store (which its emit-final sliding aggregations use)
    /// does, where its default store stops one millisecond later.
    pub(crate) fn with_time_ordered_reads(mut self) -> Self {
        self.parts.spec.time_ordered_reads = true;
        self
    }

    /// The retention period in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        self.parts.spec.retention_ms
    }

    /// The window size in milliseconds.
    pub fn window_size_ms(&self) -> i64 {
        self.window_size_ms
    }

    /// The segment interval in milliseconds.
    pub fn segment_interval_ms(&self) -> i64 {
        self.parts.spec.segment_interval_ms
    }
}

impl<K: 'static, V: 'static> StoreBuilder for WindowStoreBuilder<K, V> {
    fn name(&self) -> &str {
        &self.parts.spec.name
    }

    fn persistent(&self) -> bool {
        self.parts.spec.kind == StoreKind::RocksDb
    }

    fn build(&self, _task: TaskId) -> crate::Result<Box<dyn StateStore>> {
        Ok(Box::new(TypedWindowStore::unopened(
            self.parts.spec.clone(),
            self.window_size_ms,
            self.key_serde.clone(),
            self.value_serde.clone(),
        )))
    }

    fn changelog_topic(&self, application_id: &str) -> Option<String> {
        self.parts.changelog_topic(application_id)
    }

    /// `cleanup.policy=compact,delete` and `retention.ms` = retention +
    /// `windowstore.changelog.additional.retention.ms`, overlaid with the user's
    /// configs (Kafka's `WindowedChangelogTopicConfig`).
    fn changelog_topic_configs(&self) -> BTreeMap<String, String> {
        self.parts.changelog_topic_configs()
    }
}

/// Builds a typed session store for each task (Kafka's `SessionStoreBuilder` over
/// `Stores.persistentSessionStore(name, retention)`).
///
/// Defaults: RocksDB, logging enabled, segment interval `max(retention / 2, 60 s)`,
/// caching disabled.
///
/// ```
/// use std::time::Duration;
/// use kafka_streams::state::SessionStoreBuilder;
/// let sessions =
///     SessionStoreBuilder::<String, i64>::new("visits", Duration::from_secs(3600))?;
/// # Ok::<(), kafka_streams::state::StateError>(())
/// ```
pub struct SessionStoreBuilder<K, V> {
    parts: SegmentedBuilderParts,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: DefaultSerde, V: DefaultSerde> SessionStoreBuilder<K, V> {
    /// A builder for `name` keeping sessions that ended within `retention`, with the
    /// types' default serdes.
    pub fn new(name: impl Into<String>, retention: Duration) -> StateResult<Self> {
        Self::with_serdes(
            name,
            retention,
            Arc::new(K::default_serde()),
            Arc::new(V::default_serde()),
        )
    }
}

impl<K, V> SessionStoreBuilder<K, V> {
    /// A builder for `name` with explicit serdes (of the plain key).
    pub fn with_serdes(
        name: impl Into<String>,
        retention: Duration,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> StateResult<Self> {
        Ok(SessionStoreBuilder {
            parts: SegmentedBuilderParts::new(name.into(), retention)?,
            key_serde,
            value_serde,
            _types: PhantomData,
        })
    }

    /// Keeps the store in memory instead of RocksDB.
    pub fn in_memory(self) -> Self {
        self.with_kind(StoreKind::InMemory)
    }

    /// Selects the inner store.
    pub fn with_kind(mut self, kind: StoreKind) -> Self {
        self.parts.spec.kind = kind;
        self
    }

    /// Stops logging to the changelog.
    pub fn with_logging_disabled(mut self) -> Self {
        self.parts.spec.logging = false;
        self
    }

    /// Folds writes in the record cache between commits (Kafka's
    /// `withCachingEnabled`): repeated updates reach the inner store, the changelog
    /// and the flush listener once per commit or eviction.
    pub fn with_caching_enabled(mut self) -> Self {
        self.parts.spec.caching = true;
        self
    }

    /// Writes every update straight through (the default).
    pub fn with_caching_disabled(mut self) -> Self {
        self.parts.spec.caching = false;
        self
    }

    /// Logs to the changelog (the default), whose topic is created with `configs` on
    /// top of `cleanup.policy=compact,delete` and the computed `retention.ms`.
    pub fn with_logging_enabled<N: Into<String>, V2: Into<String>>(
        mut self,
        configs: impl IntoIterator<Item = (N, V2)>,
    ) -> Self {
        self.parts.extend_configs(configs);
        self
    }

    /// Sets `windowstore.changelog.additional.retention.ms` (default one day).
    pub fn with_changelog_additional_retention(
        mut self,
        additional: Duration,
    ) -> StateResult<Self> {
        self.parts.set_additional_retention(additional)?;
        Ok(self)
    }

    /// The retention period in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        self.parts.spec.retention_ms
    }

    /// The segment interval in milliseconds.
    pub fn segment_interval_ms(&self) -> i64 {
        self.parts.spec.segment_interval_ms
    }
}

impl<K: 'static, V: 'static> StoreBuilder for SessionStoreBuilder<K, V> {
    fn name(&self) -> &str {
        &self.parts.spec.name
    }

    fn persistent(&self) -> bool {
        self.parts.spec.kind == StoreKind::RocksDb
    }

    fn build(&self, _task: TaskId) -> crate::Result<Box<dyn StateStore>> {
        Ok(Box::new(TypedSessionStore::unopened(
            self.parts.spec.clone(),
            self.key_serde.clone(),
            self.value_serde.clone(),
        )))
    }

    fn changelog_topic(&self, application_id: &str) -> Option<String> {
        self.parts.changelog_topic(application_id)
    }

    /// `cleanup.policy=compact,delete` and `retention.ms` = retention +
    /// `windowstore.changelog.additional.retention.ms`, overlaid with the user's
    /// configs (Kafka's `WindowedChangelogTopicConfig`).
    fn changelog_topic_configs(&self) -> BTreeMap<String, String> {
        self.parts.changelog_topic_configs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn window_changelog_is_compact_delete_with_retention_plus_a_day() {
        let builder = WindowStoreBuilder::<String, i64>::new(
            "counts",
            Duration::from_secs(3600),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(
            builder.changelog_topic("app").as_deref(),
            Some("app-counts-changelog")
        );
        assert_eq!(
            builder.changelog_topic_configs(),
            configs(&[
                ("cleanup.policy", "compact,delete"),
                ("retention.ms", "90000000"),
            ])
        );
        assert_eq!(builder.segment_interval_ms(), 1_800_000);
        assert_eq!(builder.window_size_ms(), 60_000);
        assert_eq!(builder.retention_ms(), 3_600_000);

        let tuned = builder
            .with_changelog_additional_retention(Duration::from_secs(60))
            .unwrap()
            .with_logging_enabled([("min.insync.replicas", "2")]);
        assert_eq!(
            tuned.changelog_topic_configs(),
            configs(&[
                ("cleanup.policy", "compact,delete"),
                ("min.insync.replicas", "2"),
                ("retention.ms", "3660000"),
            ])
        );
        // The user's retention.ms wins, as in Kafka.
        let explicit = tuned.with_logging_enabled([("retention.ms", "5")]);
        assert_eq!(
            explicit
                .changelog_topic_configs()
                .get("retention.ms")
                .map(String::as_str),
            Some("5")
        );
        assert_eq!(
            explicit.with_logging_disabled().changelog_topic("app"),
            None
        );
    }

    #[test]
    fn session_changelog_configs_and_validation() {
        let builder =
            SessionStoreBuilder::<String, i64>::new("visits", Duration::from_secs(60)).unwrap();
        assert_eq!(
            builder.changelog_topic_configs(),
            configs(&[
                ("cleanup.policy", "compact,delete"),
                ("retention.ms", "86460000"),
            ])
        );
        assert_eq!(builder.segment_interval_ms(), 60_000);
        assert_eq!(builder.retention_ms(), 60_000);
        let err = WindowStoreBuilder::<String, i64>::new(
            "counts",
            Duration::from_secs(60),
            Duration::from_secs(61),
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("no smaller than its window size"),
            "{err}"
        );
        assert!(SessionStoreBuilder::<String, i64>::new("x", Duration::MAX).is_err());
    }
}
