//! [`StreamJoined`]: the names, serdes and stores of a stream-stream join (Kafka's
//! `StreamJoined`).

use std::collections::BTreeMap;

use super::options::SharedSerde;
use crate::state::StoreKind;

/// How a stream-stream join ([`KStream::join_with`](crate::dsl::KStream::join_with)
/// and its left and outer variants) names its processors and stores and serializes
/// what it buffers (Kafka's `StreamJoined`).
///
/// - [`StreamJoined::with_name`] names the processors (`<name>-this-windowed`,
///   `<name>-this-join`, `<name>-merge`, …) and the repartition topics
///   (`<name>-left-repartition`, `<name>-right-repartition`).
/// - [`StreamJoined::with_store_name`] names the stores: `<store name>-this-join-store`
///   and `<store name>-other-join-store` (`-outer-this-join-store` /
///   `-outer-other-join-store` on the outer sides), and the left or outer join's
///   `<store name>-left-shared-join-store` / `-outer-shared-join-store`. Without it the
///   stores take the generated processor names plus `-store`.
/// - Serdes not given here are the streams' own, else the types' defaults.
/// - The window stores are changelogged to `<application.id>-<store>-changelog` with
///   `cleanup.policy=delete` (they keep duplicates), unless logging is disabled.
///
/// ```
/// use kafka_streams::dsl::StreamJoined;
/// let joined = StreamJoined::<String, f64, f64>::as_("readings")
///     .with_name("temperature-pressure")
///     .with_logging_enabled([("min.insync.replicas", "2")]);
/// # let _ = joined;
/// ```
pub struct StreamJoined<K, V1, V2> {
    pub(crate) name: Option<String>,
    pub(crate) store_name: Option<String>,
    pub(crate) key: Option<SharedSerde<K>>,
    pub(crate) value: Option<SharedSerde<V1>>,
    pub(crate) other_value: Option<SharedSerde<V2>>,
    pub(crate) kind: StoreKind,
    pub(crate) logging: bool,
    pub(crate) log_config: BTreeMap<String, String>,
}

impl<K, V1, V2> Clone for StreamJoined<K, V1, V2> {
    fn clone(&self) -> Self {
        StreamJoined {
            name: self.name.clone(),
            store_name: self.store_name.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
            other_value: self.other_value.clone(),
            kind: self.kind,
            logging: self.logging,
            log_config: self.log_config.clone(),
        }
    }
}

impl<K, V1, V2> Default for StreamJoined<K, V1, V2> {
    fn default() -> Self {
        StreamJoined {
            name: None,
            store_name: None,
            key: None,
            value: None,
            other_value: None,
            kind: StoreKind::RocksDb,
            logging: true,
            log_config: BTreeMap::new(),
        }
    }
}

impl<K, V1, V2> StreamJoined<K, V1, V2> {
    /// Serdes for the key, this stream's values and the other stream's values (Kafka's
    /// `StreamJoined.with`).
    pub fn with(key: SharedSerde<K>, value: SharedSerde<V1>, other_value: SharedSerde<V2>) -> Self {
        StreamJoined {
            key: Some(key),
            value: Some(value),
            other_value: Some(other_value),
            ..Self::default()
        }
    }

    /// Stores named after `store_name` (Kafka's `StreamJoined.as`).
    pub fn as_(store_name: impl Into<String>) -> Self {
        Self::default().with_store_name(store_name)
    }

    /// Names the join's processors and repartition topics after `name` (Kafka's
    /// `withName`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Names the join's stores after `store_name` (Kafka's `withStoreName`).
    pub fn with_store_name(mut self, store_name: impl Into<String>) -> Self {
        self.store_name = Some(store_name.into());
        self
    }

    /// The key serde (Kafka's `withKeySerde`).
    pub fn with_key_serde(mut self, serde: SharedSerde<K>) -> Self {
        self.key = Some(serde);
        self
    }

    /// The serde of this stream's values (Kafka's `withValueSerde`).
    pub fn with_value_serde(mut self, serde: SharedSerde<V1>) -> Self {
        self.value = Some(serde);
        self
    }

    /// The serde of the other stream's values (Kafka's `withOtherValueSerde`).
    pub fn with_other_value_serde(mut self, serde: SharedSerde<V2>) -> Self {
        self.other_value = Some(serde);
        self
    }

    /// Keeps the stores in memory (the role of Kafka's `withDslStoreSuppliers` with
    /// in-memory suppliers).
    pub fn in_memory(self) -> Self {
        self.with_store_kind(StoreKind::InMemory)
    }

    /// Selects the inner stores.
    pub fn with_store_kind(mut self, kind: StoreKind) -> Self {
        self.kind = kind;
        self
    }

    /// Logs the stores to changelog topics created with `configs` (Kafka's
    /// `withLoggingEnabled`); the window stores' topics keep `cleanup.policy=delete`.
    pub fn with_logging_enabled<N: Into<String>, V: Into<String>>(
        mut self,
        configs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        self.logging = true;
        self.log_config
            .extend(configs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Does not log the stores: they are not restored after a failure (Kafka's
    /// `withLoggingDisabled`).
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self.log_config.clear();
        self
    }
}
