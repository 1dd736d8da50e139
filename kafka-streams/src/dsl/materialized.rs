//! [`Materialized`]: how an aggregation or table is kept in a state store.

use super::options::SharedSerde;
use crate::state::StoreKind;

/// How an aggregation or table is kept in a state store (Kafka's `Materialized`):
/// store name, serdes, store kind, logging and caching.
///
/// Defaults, as in Kafka Streams: a generated name, the types' default serdes, RocksDB,
/// logging and caching enabled.
///
/// ```
/// use kafka_streams::dsl::Materialized;
/// let m = Materialized::<String, i64>::as_("word-counts").in_memory().with_logging_disabled();
/// ```
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key: Option<SharedSerde<K>>,
    pub(crate) value: Option<SharedSerde<V>>,
    pub(crate) kind: StoreKind,
    pub(crate) logging: bool,
    pub(crate) changelog_configs: Vec<(String, String)>,
    pub(crate) caching: bool,
    pub(crate) retention: Option<std::time::Duration>,
}

impl<K, V> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            name: None,
            key: None,
            value: None,
            kind: StoreKind::RocksDb,
            logging: true,
            changelog_configs: Vec::new(),
            caching: true,
            retention: None,
        }
    }
}

impl<K, V> Materialized<K, V> {
    /// How long a windowed store keeps windows (Kafka's `withRetention`); at least the
    /// window size plus the grace period, which is also the default. Only windowed
    /// aggregations use it.
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// A store named `name` (queryable under that name).
    pub fn as_(name: impl Into<String>) -> Self {
        Materialized {
            name: Some(name.into()),
            ..Self::default()
        }
    }

    /// Stores keys with this serde.
    pub fn with_key_serde(mut self, serde: SharedSerde<K>) -> Self {
        self.key = Some(serde);
        self
    }

    /// Stores values with this serde.
    pub fn with_value_serde(mut self, serde: SharedSerde<V>) -> Self {
        self.value = Some(serde);
        self
    }

    /// Keeps the store in memory (rebuilt from the changelog on restart).
    pub fn in_memory(mut self) -> Self {
        self.kind = StoreKind::InMemory;
        self
    }

    /// Selects the store kind.
    pub fn with_store_kind(mut self, kind: StoreKind) -> Self {
        self.kind = kind;
        self
    }

    /// Does not log the store to a changelog topic.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }

    /// Logs the store to `<application.id>-<store>-changelog` (the default).
    pub fn with_logging_enabled(mut self) -> Self {
        self.logging = true;
        self
    }

    /// Logs the store to its changelog (as [`with_logging_enabled`](Self::with_logging_enabled)),
    /// creating the topic with `configs` on top of `cleanup.policy=compact` (Kafka's
    /// `withLoggingEnabled(config)`).
    ///
    /// ```
    /// use kafka_streams::dsl::Materialized;
    /// let m = Materialized::<String, i64>::as_("counts")
    ///     .with_logging_config([("segment.ms", "60000"), ("min.cleanable.dirty.ratio", "0.1")]);
    /// ```
    pub fn with_logging_config<N: Into<String>, V2: Into<String>>(
        mut self,
        configs: impl IntoIterator<Item = (N, V2)>,
    ) -> Self {
        self.logging = true;
        self.changelog_configs
            .extend(configs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Writes every update straight through to the store and changelog.
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching = false;
        self
    }

    /// Folds updates in the record cache between commits (the default).
    pub fn with_caching_enabled(mut self) -> Self {
        self.caching = true;
        self
    }
}
