//! Joins of a [`KStream`] with a [`KTable`] and with a [`GlobalKTable`] (Kafka's
//! `KStream.join(KTable)`, `leftJoin(KTable)`, `join(GlobalKTable, keySelector)`,
//! `leftJoin(GlobalKTable, keySelector)`, with [`Joined`]).
//!
//! A stream record looks the table up when it arrives; table updates produce no
//! output. The result keeps the stream record's key and timestamp.
//!
//! **Co-partitioning.** A stream-table join runs in the tasks that hold the table's
//! store, so the stream and the table's source topic must have the same partition
//! count; the runtime checks it at start and fails naming the topics and their counts
//! ([`StreamsError::CoPartitioning`](crate::error::StreamsError::CoPartitioning)). When
//! the stream's key was changed upstream (`map`, `select_key`...), the join first
//! repartitions the stream through `<name>-repartition`, sized like the table's
//! source topic. A join with a [`GlobalKTable`] needs neither: every instance holds
//! the whole table.
//!
//! Keys and values are typed, so a record with a null key or value never reaches the
//! join as it does in Kafka: the source's deserializer refuses it (the
//! deserialization handler decides). Versioned tables (Kafka's grace period for
//! stream-table joins) are not supported.

use std::sync::Arc;

use super::internals::lock;
use super::internals::table_join_ops::{
    KeySelector, StreamGlobalTableJoin, StreamTableJoin, StreamTableJoiner,
};
use kafka_client::serde::DefaultSerde;

use super::options::{default_serde, SharedSerde};
use super::{GlobalKTable, KStream, KTable};
use crate::processor::internal::factory;
use crate::processor::Data;

/// Options of a stream-table join (Kafka's `Joined`): the serdes of the repartition
/// topic the join adds when the stream's key changed upstream, and the name of the
/// join processor (which also names that topic: `<name>-repartition`).
pub struct Joined<K, V, VO> {
    pub(crate) key: Option<SharedSerde<K>>,
    pub(crate) value: Option<SharedSerde<V>>,
    pub(crate) other_value: Option<SharedSerde<VO>>,
    pub(crate) name: Option<String>,
}

impl<K, V, VO> Default for Joined<K, V, VO> {
    fn default() -> Self {
        Joined {
            key: None,
            value: None,
            other_value: None,
            name: None,
        }
    }
}

impl<K, V, VO> Joined<K, V, VO> {
    /// The given serdes of the key, the stream's value and the table's value.
    pub fn with(key: SharedSerde<K>, value: SharedSerde<V>, other_value: SharedSerde<VO>) -> Self {
        Joined {
            key: Some(key),
            value: Some(value),
            other_value: Some(other_value),
            name: None,
        }
    }

    /// A join processor named `name`.
    pub fn as_(name: impl Into<String>) -> Self {
        Joined {
            name: Some(name.into()),
            ..Joined::default()
        }
    }

    /// Names the join processor (and its repartition topic).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The key serde of the repartition topic.
    pub fn with_key_serde(mut self, serde: SharedSerde<K>) -> Self {
        self.key = Some(serde);
        self
    }

    /// The stream value serde of the repartition topic.
    pub fn with_value_serde(mut self, serde: SharedSerde<V>) -> Self {
        self.value = Some(serde);
        self
    }

    /// The table's value serde (kept for Kafka's API; the table's store has its own).
    pub fn with_other_value_serde(mut self, serde: SharedSerde<VO>) -> Self {
        self.other_value = Some(serde);
        self
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Joins each record with the table's row of the same key (Kafka's
    /// `join(KTable, ValueJoiner)`): records without a row are dropped.
    ///
    /// ```
    /// use kafka_streams::dsl::StreamsBuilder;
    /// let builder = StreamsBuilder::new();
    /// let units = builder.table::<String, String>("sensor-units");
    /// builder
    ///     .stream::<String, f64>("readings")
    ///     .join_table(&units, |reading, unit| format!("{reading} {unit}"))
    ///     .to("labelled-readings");
    /// assert_eq!(builder.build().unwrap().copartition_groups().count(), 1);
    /// ```
    pub fn join_table<VT: Data, VR: Data, F>(
        &self,
        table: &KTable<K, VT>,
        joiner: F,
    ) -> KStream<K, VR>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        F: Fn(&V, &VT) -> VR + Send + Sync + 'static,
    {
        self.join_table_with(table, joiner, self.default_joined())
    }

    /// [`KStream::join_table`] with [`Joined`] options, for types without a default
    /// serde: a stream whose key changed upstream is repartitioned with the serdes of
    /// `joined`, else the stream's (the build fails without either).
    pub fn join_table_with<VT: Data, VR: Data, F>(
        &self,
        table: &KTable<K, VT>,
        joiner: F,
        joined: Joined<K, V, VT>,
    ) -> KStream<K, VR>
    where
        F: Fn(&V, &VT) -> VR + Send + Sync + 'static,
    {
        self.stream_table_join(
            table,
            StreamTableJoiner::Inner(Arc::new(move |_: &K, v: &V, t: &VT| joiner(v, t))),
            joined,
        )
    }

    /// Joins each record with the table's row of the same key, if any (Kafka's
    /// `leftJoin(KTable, ValueJoiner)`): every record gives one result.
    pub fn left_join_table<VT: Data, VR: Data, F>(
        &self,
        table: &KTable<K, VT>,
        joiner: F,
    ) -> KStream<K, VR>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        F: Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    {
        self.left_join_table_with(table, joiner, self.default_joined())
    }

    /// The serdes a join repartitions with by default: the stream's, else the types'
    /// default serdes.
    fn default_joined<VT>(&self) -> Joined<K, V, VT>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        Joined {
            key: Some(self.key_serde.clone().unwrap_or_else(default_serde::<K>)),
            value: Some(self.value_serde.clone().unwrap_or_else(default_serde::<V>)),
            ..Joined::default()
        }
    }

    /// [`KStream::left_join_table`] with [`Joined`] options (serdes as in
    /// [`KStream::join_table_with`]).
    pub fn left_join_table_with<VT: Data, VR: Data, F>(
        &self,
        table: &KTable<K, VT>,
        joiner: F,
        joined: Joined<K, V, VT>,
    ) -> KStream<K, VR>
    where
        F: Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    {
        self.stream_table_join(
            table,
            StreamTableJoiner::Left(Arc::new(move |_: &K, v: &V, t: Option<&VT>| joiner(v, t))),
            joined,
        )
    }

    fn stream_table_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: StreamTableJoiner<K, V, VT, VR>,
        joined: Joined<K, V, VT>,
    ) -> KStream<K, VR> {
        let left = matches!(joiner, StreamTableJoiner::Left(_));
        let stream = if self.repartition_required() {
            let key = joined.key.clone().or_else(|| self.key_serde.clone());
            let value = joined.value.clone().or_else(|| self.value_serde.clone());
            match (key, value) {
                (Some(key), Some(value)) => {
                    let base = joined.name.clone().unwrap_or_else(|| self.node_name());
                    self.repartition_if_required(Some(base), key, value)
                }
                _ => {
                    let message = format!(
                        "the join of {} with a table repartitions the stream (its key changed \
                         upstream) and needs its key and value serdes: give them with Joined::with",
                        self.node_name()
                    );
                    lock(&self.builder).graph.error(message);
                    self.clone()
                }
            }
        } else {
            self.clone()
        };
        let mut inner = lock(&self.builder);
        if !Arc::ptr_eq(&self.builder, &table.builder) {
            inner
                .graph
                .error("join of a stream and a table from two different StreamsBuilders".into());
        }
        let name = joined.name.unwrap_or_else(|| {
            inner.new_name(if left {
                "KSTREAM-LEFTJOIN-"
            } else {
                "KSTREAM-JOIN-"
            })
        });
        drop(inner);
        let Some(getter) = table.value_getter() else {
            let message = format!(
                "join {name}: table {} cannot be read by key; materialize it first",
                table.node_name()
            );
            lock(&self.builder).graph.error(message);
            return KStream::new(
                self.builder.clone(),
                stream.node,
                stream.key_serde,
                None,
                false,
            );
        };
        let mut inner = lock(&self.builder);
        let stores = getter.stores.clone();
        let node = inner.graph.add_processor(
            name,
            factory(move || StreamTableJoin {
                table: getter.clone(),
                joiner: joiner.clone(),
            }),
            &[stream.node],
        );
        for store in &stores {
            inner.graph.connect_store(node, store);
        }
        drop(inner);
        KStream::new(
            self.builder.clone(),
            node,
            stream.key_serde.clone(),
            None,
            false,
        )
    }

    /// Joins each record with the global table's row at the key `key_selector` picks
    /// from it (Kafka's `join(GlobalKTable, KeyValueMapper, ValueJoiner)`): records
    /// without a row are dropped. No co-partitioning or repartitioning is needed.
    ///
    /// ```
    /// use kafka_streams::dsl::StreamsBuilder;
    /// let builder = StreamsBuilder::new();
    /// let sensors = builder.global_table::<String, String>("sensor-locations");
    /// builder
    ///     .stream::<String, String>("readings")
    ///     // key: machine id; value: "<sensor id>:<reading>"
    ///     .join_global(
    ///         &sensors,
    ///         |_machine, value| value.split(':').next().unwrap_or_default().to_owned(),
    ///         |value, location| format!("{value}@{location}"),
    ///     )
    ///     .to("located-readings");
    /// builder.build().unwrap();
    /// ```
    pub fn join_global<KG: Data, VG: Data, VR: Data, S, F>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_selector: S,
        joiner: F,
    ) -> KStream<K, VR>
    where
        S: Fn(&K, &V) -> KG + Send + Sync + 'static,
        F: Fn(&V, &VG) -> VR + Send + Sync + 'static,
    {
        self.global_table_join(
            table,
            Arc::new(key_selector),
            StreamTableJoiner::Inner(Arc::new(move |_: &K, v: &V, t: &VG| joiner(v, t))),
        )
    }

    /// Joins each record with the global table's row at the key `key_selector` picks,
    /// if any (Kafka's `leftJoin(GlobalKTable, KeyValueMapper, ValueJoiner)`).
    pub fn left_join_global<KG: Data, VG: Data, VR: Data, S, F>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_selector: S,
        joiner: F,
    ) -> KStream<K, VR>
    where
        S: Fn(&K, &V) -> KG + Send + Sync + 'static,
        F: Fn(&V, Option<&VG>) -> VR + Send + Sync + 'static,
    {
        self.global_table_join(
            table,
            Arc::new(key_selector),
            StreamTableJoiner::Left(Arc::new(move |_: &K, v: &V, t: Option<&VG>| joiner(v, t))),
        )
    }

    fn global_table_join<KG: Data, VG: Data, VR: Data>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_selector: KeySelector<K, V, KG>,
        joiner: StreamTableJoiner<K, V, VG, VR>,
    ) -> KStream<K, VR> {
        let left = matches!(joiner, StreamTableJoiner::Left(_));
        let mut inner = lock(&self.builder);
        let name = inner.new_name(if left {
            "KSTREAM-LEFTJOIN-"
        } else {
            "KSTREAM-JOIN-"
        });
        let store = table.store_name().to_owned();
        let node = inner.graph.add_processor(
            name,
            factory(move || StreamGlobalTableJoin {
                store: store.clone(),
                key_selector: key_selector.clone(),
                joiner: joiner.clone(),
            }),
            &[self.node],
        );
        drop(inner);
        KStream::new(
            self.builder.clone(),
            node,
            self.key_serde.clone(),
            None,
            self.repartition_required(),
        )
    }
}
