//! The DSL: [`StreamsBuilder`] and [`KStream`], the part of the library most
//! applications touch.
//!
//! ```
//! use kafka_streams::dsl::StreamsBuilder;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream::<String, i64>("plant01")
//!     .filter(|_sensor, value| *value >= 0)
//!     .map_values(|value| value * 10)
//!     .to("plant01-decimetres");
//! let topology = builder.build().unwrap();
//! assert_eq!(
//!     topology.describe().to_string(),
//!     "Topologies:
//!    Sub-topology: 0
//!     Source: KSTREAM-SOURCE-0000000000 (topics: [plant01])
//!       --> KSTREAM-FILTER-0000000001
//!     Processor: KSTREAM-FILTER-0000000001 (stores: [])
//!       --> KSTREAM-MAPVALUES-0000000002
//!       <-- KSTREAM-SOURCE-0000000000
//!     Processor: KSTREAM-MAPVALUES-0000000002 (stores: [])
//!       --> KSTREAM-SINK-0000000003
//!       <-- KSTREAM-FILTER-0000000001
//!     Sink: KSTREAM-SINK-0000000003 (topic: plant01-decimetres)
//!       <-- KSTREAM-MAPVALUES-0000000002
//!
//! "
//! );
//! ```
//!
//! Each call adds a node to the topology. Nodes get Kafka Streams' generated names
//! (`KSTREAM-FILTER-0000000001`: the operator and a counter of nodes built so far),
//! so names are deterministic; [`KStream::named`], [`Consumed::with_name`],
//! [`Produced::as_`] and friends give explicit ones.
//!
//! Serdes come from kafka-client's `Serializer`/`Deserializer` traits: explicit ones
//! in [`Consumed`], [`Produced`] and [`Repartitioned`], or the type's
//! [`DefaultSerde`] as the application-wide
//! default. A stream remembers the serdes it was read with while its key or value
//! type does not change.

//! Files: the public face is one file per type Kafka users know ([`KStream`],
//! [`KTable`], [`KGroupedStream`], [`KGroupedTable`], [`CogroupedKStream`],
//! [`Materialized`], the window definitions [`TimeWindows`], [`SlidingWindows`] and
//! [`SessionWindows`], and the option structs); the processors they add to the graph
//! live in `internals/` (Kafka's `kstream/internals`).

mod cogrouped;
mod cogrouped_windowed;
mod emit_strategy;
mod foreign_key_join;
pub(crate) mod internals;
mod join_windows;
mod kgrouped_stream;
mod kgrouped_table;
mod kstream;
mod kstream_join;
mod kstream_table_join;
mod ktable;
mod ktable_join;
mod materialized;
pub(crate) mod options;
mod session_windowed;
mod sliding_windowed;
mod stream_joined;
mod suppressed;
mod time_windowed;
mod windowed_aggregation;
mod windows;

use std::sync::{Arc, Mutex};

use kafka_client::serde::{DefaultSerde, Deserializer};

pub use cogrouped::CogroupedKStream;
pub use cogrouped_windowed::{
    SessionWindowedCogroupedKStream, SlidingWindowedCogroupedKStream, TimeWindowedCogroupedKStream,
};
pub use emit_strategy::EmitStrategy;
pub use join_windows::JoinWindows;
pub use kgrouped_stream::KGroupedStream;
pub use kgrouped_table::KGroupedTable;
pub use kstream::{BranchedKStream, KStream};
pub use kstream_table_join::Joined;
pub use ktable::{Change, KTable};
pub use materialized::Materialized;
pub use session_windowed::SessionWindowedKStream;
pub use sliding_windowed::SlidingWindowedKStream;
pub use stream_joined::StreamJoined;
pub use suppressed::{
    BufferConfig, BufferFullStrategy, EagerBufferConfig, EmitEarly, ShutDown, StrictBufferConfig,
    Suppressed, SuppressionBufferFullError,
};
pub use time_windowed::TimeWindowedKStream;
pub use windows::{SessionWindows, SlidingWindows, TimeWindows};

pub use crate::windowed::serdes::{
    SessionWindowedDeserializer, SessionWindowedSerde, SessionWindowedSerializer,
    TimeWindowedDeserializer, TimeWindowedSerde, TimeWindowedSerializer, WindowedKeyError,
};
pub use crate::windowed::{Window, WindowError, Windowed};

/// A table with a full copy of every partition of its topic on each instance
/// (Kafka's `GlobalKTable`); see [`StreamsBuilder::global_table`].
pub struct GlobalKTable<K, V> {
    store: String,
    topic: String,
    _types: std::marker::PhantomData<fn() -> (K, V)>,
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of its store, for interactive queries.
    pub fn store_name(&self) -> &str {
        &self.store
    }

    /// The topic it copies.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}
pub use options::{Branched, Consumed, Named, Printed, Produced, Repartitioned, SharedSerde};

use crate::error::Result;
use crate::processor::Data;
use crate::state::StoreBuilder;
use crate::topology::codec::TypedSource;
use crate::topology::graph::LogicalGraph;
use crate::topology::{Topology, TopologyOptimization};
use internals::{lock, BuilderInner, SharedBuilder};

/// Builds a [`Topology`] with the DSL (Kafka's `StreamsBuilder`).
pub struct StreamsBuilder {
    inner: SharedBuilder,
}

impl Default for StreamsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        StreamsBuilder {
            inner: Arc::new(Mutex::new(BuilderInner {
                graph: LogicalGraph::default(),
                index: 0,
                value_getters: Default::default(),
            })),
        }
    }

    /// A stream of `topic`, read with the default serdes of `K` and `V`.
    pub fn stream<K, V>(&self, topic: &str) -> KStream<K, V>
    where
        K: Data + DefaultSerde,
        V: Data + DefaultSerde,
    {
        self.stream_with(topic, Consumed::default())
    }

    /// A stream of `topic`, read as `consumed` says.
    pub fn stream_with<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        self.stream_from_topics(&[topic], consumed)
    }

    /// One stream of several topics (their records interleaved by timestamp within a
    /// task; the topics must have the same partition count).
    pub fn stream_from_topics<K: Data, V: Data>(
        &self,
        topics: &[&str],
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let mut inner = lock(&self.inner);
        let name = match consumed.name {
            Some(n) => n,
            None => inner.new_name("KSTREAM-SOURCE-"),
        };
        let codec = Arc::new(TypedSource {
            key: consumed.key.clone() as Arc<dyn Deserializer<K>>,
            value: consumed.value.clone() as Arc<dyn Deserializer<V>>,
            extractor: consumed.extractor,
        });
        let node = inner.graph.add_source(
            name,
            topics.iter().map(|t| (*t).to_owned()).collect(),
            codec,
        );
        drop(inner);
        KStream::new(
            self.inner.clone(),
            node,
            Some(consumed.key),
            Some(consumed.value),
            false,
        )
    }

    /// A table of `topic` (Kafka's `builder.table`): the latest value per key, read
    /// with the default serdes and kept in a store named
    /// `<topic>-STATE-STORE-<n>`. A null value deletes the key.
    ///
    /// The store is logged to `<application.id>-<store>-changelog`, or, under
    /// `topology.optimization` `reuse.ktable.source.topics`
    /// ([`TopologyOptimization`], built with [`StreamsBuilder::build_with`]), uses `topic`
    /// itself as its changelog.
    pub fn table<K, V>(&self, topic: &str) -> KTable<K, V>
    where
        K: Data + DefaultSerde,
        V: Data + DefaultSerde,
    {
        self.table_with(topic, Materialized::default())
    }

    /// [`StreamsBuilder::table`] kept in the store `materialized` describes.
    ///
    /// Values are read from `topic` with the default serde of `V` and stored with
    /// `materialized`'s value serde, if it has one. `topic` can serve as the store's
    /// changelog (`topology.optimization` `reuse.ktable.source.topics`) only when the
    /// store holds the topic's bytes: logging enabled and no value serde of its own;
    /// other tables keep a changelog topic of their own.
    pub fn table_with<K, V>(&self, topic: &str, materialized: Materialized<K, V>) -> KTable<K, V>
    where
        K: Data + DefaultSerde,
        V: Data + DefaultSerde,
    {
        let key = materialized
            .key
            .clone()
            .unwrap_or_else(options::default_serde::<K>);
        let value = materialized
            .value
            .clone()
            .unwrap_or_else(options::default_serde::<V>);
        let store = match &materialized.name {
            Some(n) => n.clone(),
            None => lock(&self.inner).new_name(&format!("{topic}-STATE-STORE-")),
        };
        let consumed: Consumed<K, Option<V>> = Consumed {
            key: key.clone(),
            value: options::default_serde::<Option<V>>(),
            extractor: None,
            name: None,
        };
        let source = self.stream_with(topic, consumed);
        // With logging on and no value serde of its own, the store holds the topic's
        // bytes (for symmetric serdes), so the topic can stand in for its changelog
        // (`reuse.ktable.source.topics`). Not with a value serde of its own: the topic
        // is read with the type's default one, so the store's bytes would differ.
        let reusable_topic =
            (materialized.logging && materialized.value.is_none()).then(|| topic.to_owned());
        KTable::from_source(
            self.inner.clone(),
            source.node,
            store,
            reusable_topic,
            &materialized,
            key,
            value,
        )
    }

    /// A [`GlobalKTable`] of `topic` (Kafka's `StreamsBuilder.globalTable`): every
    /// instance keeps a full copy of all its partitions, restored from the beginning on
    /// start, read-only, queryable with
    /// [`KafkaStreams::store`](crate::runtime::KafkaStreams::store).
    ///
    /// ```
    /// use kafka_streams::dsl::{Materialized, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// let plants = builder.global_table_with::<String, String>(
    ///     "plants",
    ///     Materialized::as_("plants-store"),
    /// );
    /// assert_eq!(plants.store_name(), "plants-store");
    /// ```
    pub fn global_table<K, V>(&self, topic: &str) -> GlobalKTable<K, V>
    where
        K: Data + DefaultSerde,
        V: Data + DefaultSerde,
    {
        self.global_table_with(topic, Materialized::default())
    }

    /// [`StreamsBuilder::global_table`] kept in the store `materialized` describes
    /// (its name, serdes and kind; a global store is never logged nor cached: its
    /// topic is its changelog).
    pub fn global_table_with<K, V>(
        &self,
        topic: &str,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V>
    where
        K: Data + DefaultSerde,
        V: Data + DefaultSerde,
    {
        let key = materialized
            .key
            .clone()
            .unwrap_or_else(options::default_serde::<K>);
        let value = materialized
            .value
            .clone()
            .unwrap_or_else(options::default_serde::<V>);
        let mut inner = lock(&self.inner);
        let store = match &materialized.name {
            Some(n) => n.clone(),
            None => inner.new_name(&format!("{topic}-STATE-STORE-")),
        };
        let builder = crate::state::KeyValueStoreBuilder::with_serdes(&store, key, value)
            .with_kind(materialized.kind)
            .with_logging_disabled()
            .with_caching_disabled();
        inner
            .graph
            .add_global_store(topic.to_owned(), Arc::new(builder));
        GlobalKTable {
            store,
            topic: topic.to_owned(),
            _types: std::marker::PhantomData,
        }
    }

    /// Adds a state store; connect it to processors with
    /// [`KStream::process_with_stores`].
    pub fn add_state_store(&self, store: impl StoreBuilder) {
        lock(&self.inner).graph.add_store(Arc::new(store));
    }

    /// The topology built so far, without optimizations, or the first problem found
    /// (duplicate names, missing serdes, unknown stores). The builder stays usable.
    pub fn build(&self) -> Result<Topology> {
        self.build_with(TopologyOptimization::NONE)
    }

    /// The topology built so far with `optimization` applied to its logical graph
    /// (Kafka's `StreamsBuilder.build(props)` with `topology.optimization`): see
    /// [`TopologyOptimization`] for the rewrites. An optimization this library does
    /// not implement is an error.
    ///
    /// ```
    /// use kafka_streams::dsl::StreamsBuilder;
    /// use kafka_streams::topology::TopologyOptimization;
    ///
    /// let builder = StreamsBuilder::new();
    /// let words = builder
    ///     .stream::<String, String>("lines")
    ///     .flat_map(|_, line: String| {
    ///         line.split(' ').map(|w| (w.to_owned(), 1i64)).collect::<Vec<_>>()
    ///     });
    /// words.group_by_key().count();
    /// words.group_by_key().reduce(|a, b| a + b);
    /// let plain = builder.build().unwrap();
    /// let merged = builder.build_with(TopologyOptimization::ALL).unwrap();
    /// assert_eq!(plain.internal_topics().count(), 2);
    /// assert_eq!(merged.internal_topics().count(), 1);
    /// ```
    pub fn build_with(&self, optimization: TopologyOptimization) -> Result<Topology> {
        lock(&self.inner).graph.build(optimization)
    }
}
