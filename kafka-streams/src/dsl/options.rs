//! Per-operation options: serdes, names, timestamp extractors, partition counts
//! (Kafka Streams' `Consumed`, `Produced`, `Repartitioned`, `Named`, `Branched`,
//! `Printed`).

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};

use kafka_client::serde::{DefaultSerde, Serde, Serializer};

use crate::topology::TimestampExtractor;

/// A serde usable for both directions, shared between tasks.
pub type SharedSerde<T> = Arc<dyn Serde<T>>;

/// Formats a key and value for printing.
pub(crate) type KeyValueMapper<K, V> = Arc<dyn Fn(&K, &V) -> String + Send + Sync>;

pub(crate) fn default_serde<T: DefaultSerde>() -> SharedSerde<T> {
    Arc::new(T::default_serde())
}

/// An explicit node name (Kafka's `Named`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named(pub(crate) String);

impl Named {
    /// The name `name`.
    pub fn as_(name: impl Into<String>) -> Self {
        Named(name.into())
    }
}

/// How a source topic is read: serdes, timestamp extractor, node name (Kafka's
/// `Consumed`).
pub struct Consumed<K, V> {
    pub(crate) key: SharedSerde<K>,
    pub(crate) value: SharedSerde<V>,
    pub(crate) extractor: Option<TimestampExtractor<K, V>>,
    pub(crate) name: Option<String>,
}

impl<K: 'static, V: 'static> Consumed<K, V> {
    /// Reads keys and values with these serdes.
    pub fn with(key: impl Serde<K> + 'static, value: impl Serde<V> + 'static) -> Self {
        Consumed {
            key: Arc::new(key),
            value: Arc::new(value),
            extractor: None,
            name: None,
        }
    }

    /// Default serdes, and this name for the source node.
    pub fn as_(name: impl Into<String>) -> Self
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        Self::default().with_name(name)
    }

    /// Names the source node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Reads event time with `extractor(key, value, record_timestamp, partition_time)`
    /// instead of the record's timestamp.
    pub fn with_timestamp_extractor(
        mut self,
        extractor: impl Fn(&K, &V, i64, i64) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.extractor = Some(Arc::new(extractor));
        self
    }
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Consumed<K, V> {
    fn default() -> Self {
        Consumed {
            key: default_serde(),
            value: default_serde(),
            extractor: None,
            name: None,
        }
    }
}

/// How a stream is written to a topic: serializers, node name (Kafka's `Produced`).
///
/// A serializer not given here is taken from the stream (the serdes it was read with,
/// when its types did not change), else [`KStream::to`](crate::dsl::KStream::to) uses the
/// type's [`DefaultSerde`]; with [`KStream::to_with`](crate::dsl::KStream::to_with)
/// a missing serializer is a topology error reported by `build()`.
pub struct Produced<K, V> {
    pub(crate) key: Option<Arc<dyn Serializer<K>>>,
    pub(crate) value: Option<Arc<dyn Serializer<V>>>,
    pub(crate) name: Option<String>,
}

impl<K: 'static, V: 'static> Produced<K, V> {
    /// Writes keys and values with these serializers.
    pub fn with(key: impl Serializer<K> + 'static, value: impl Serializer<V> + 'static) -> Self {
        Produced {
            key: Some(Arc::new(key)),
            value: Some(Arc::new(value)),
            name: None,
        }
    }

    /// Only names the sink node.
    pub fn as_(name: impl Into<String>) -> Self {
        Produced {
            key: None,
            value: None,
            name: Some(name.into()),
        }
    }

    /// Names the sink node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the key serializer.
    pub fn with_key_serializer(mut self, key: impl Serializer<K> + 'static) -> Self {
        self.key = Some(Arc::new(key));
        self
    }

    /// Sets the value serializer.
    pub fn with_value_serializer(mut self, value: impl Serializer<V> + 'static) -> Self {
        self.value = Some(Arc::new(value));
        self
    }
}

/// How a stream is repartitioned: name, partition count, serdes (Kafka's
/// `Repartitioned`).
pub struct Repartitioned<K, V> {
    pub(crate) key: Option<SharedSerde<K>>,
    pub(crate) value: Option<SharedSerde<V>>,
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<i32>,
}

impl<K: 'static, V: 'static> Repartitioned<K, V> {
    /// Repartition topic `<application.id>-<name>-repartition`, nodes
    /// `<name>-repartition-sink` and `<name>-repartition-source`.
    pub fn as_(name: impl Into<String>) -> Self {
        Repartitioned {
            key: None,
            value: None,
            name: Some(name.into()),
            partitions: None,
        }
    }

    /// These serdes for the repartition topic.
    pub fn with(key: impl Serde<K> + 'static, value: impl Serde<V> + 'static) -> Self {
        Repartitioned {
            key: Some(Arc::new(key)),
            value: Some(Arc::new(value)),
            name: None,
            partitions: None,
        }
    }

    /// A repartition topic with `partitions` partitions (default: as many as the
    /// largest source topic upstream).
    pub fn with_number_of_partitions(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// Names the repartition topic and its nodes.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<K: 'static, V: 'static> Default for Repartitioned<K, V> {
    fn default() -> Self {
        Repartitioned {
            key: None,
            value: None,
            name: None,
            partitions: None,
        }
    }
}

/// Names a branch of [`KStream::split`](crate::dsl::KStream::split) (Kafka's
/// `Branched`): the branch's node and map key are the split's name followed by this
/// name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Branched(pub(crate) Option<String>);

impl Branched {
    /// A branch named `name`.
    pub fn as_(name: impl Into<String>) -> Self {
        Branched(Some(name.into()))
    }

    /// A branch named by its position (1, 2, ...; 0 for the default branch).
    pub fn unnamed() -> Self {
        Branched(None)
    }
}

#[derive(Clone)]
pub(crate) enum PrintTarget {
    Stdout,
    Writer(Arc<Mutex<dyn Write + Send>>),
}

/// Where and how [`KStream::print`](crate::dsl::KStream::print) prints: lines
/// `[<label>]: <key>, <value>`, label defaulting to the node name (Kafka's
/// `Printed`).
pub struct Printed<K, V> {
    pub(crate) target: PrintTarget,
    pub(crate) label: Option<String>,
    pub(crate) mapper: KeyValueMapper<K, V>,
    pub(crate) name: Option<String>,
}

impl<K: fmt::Debug + 'static, V: fmt::Debug + 'static> Printed<K, V> {
    /// Prints to standard output, keys and values with `{:?}`.
    pub fn to_sysout() -> Self {
        Self::to_sysout_with(|k: &K, v: &V| format!("{k:?}, {v:?}"))
    }

    /// Prints to `writer` (a file, a buffer), keys and values with `{:?}`.
    pub fn to_writer(writer: impl Write + Send + 'static) -> Self {
        Self::to_writer_with(writer, |k: &K, v: &V| format!("{k:?}, {v:?}"))
    }
}

impl<K, V> Printed<K, V> {
    /// Prints `mapper(key, value)` to standard output.
    pub fn to_sysout_with(mapper: impl Fn(&K, &V) -> String + Send + Sync + 'static) -> Self {
        Printed {
            target: PrintTarget::Stdout,
            label: None,
            mapper: Arc::new(mapper),
            name: None,
        }
    }

    /// Prints `mapper(key, value)` to `writer`.
    pub fn to_writer_with(
        writer: impl Write + Send + 'static,
        mapper: impl Fn(&K, &V) -> String + Send + Sync + 'static,
    ) -> Self {
        Printed {
            target: PrintTarget::Writer(Arc::new(Mutex::new(writer))),
            label: None,
            mapper: Arc::new(mapper),
            name: None,
        }
    }

    /// The label between brackets.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Names the print node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}
