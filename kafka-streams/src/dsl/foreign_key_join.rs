//! Foreign-key table joins (Kafka's `KTable.join(other, foreignKeyExtractor,
//! joiner)` and `leftJoin`, KIP-213): each row of this table joins the row of `other`
//! whose key its foreign-key extractor picks from its value; the tables need not be
//! co-partitioned.
//!
//! The join runs as Kafka's does, through two internal topics:
//! `<application.id>-KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-<n>-topic` (this table's
//! rows subscribe to their foreign key, partitioned like `other`) and
//! `<application.id>-KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-<n>-topic` (foreign rows sent
//! back to their subscribers, partitioned like this table), with a changelogged
//! subscription store on `other`'s side. Responses carry the murmur3 hash of the
//! value they answer, and a response for a value that has changed since is dropped,
//! so a foreign-key change never leaves a result of the old foreign row. A tombstone
//! on either side deletes the results it ends (the left join keeps this table's rows
//! with `None` for a missing foreign row).
//!
//! Both tables need key and value serdes (this table's value serde computes the
//! hashes). The runtime's producer partitions the internal topics by murmur2 of the
//! serialized key (Kafka's default partitioner), so `other`'s and this table's topics
//! must be partitioned that way too; Kafka instead sends each response to the
//! partition its subscription came from. Like the other table joins, results carry
//! the timestamp of the update that caused them. The foreign-key extractor sees the
//! value only (not Kafka 4.1's key-and-value variant).

use std::marker::PhantomData;
use std::sync::Arc;

use kafka_client::serde::{Deserializer, OptionSerde, Serializer};

use super::internals::fk_join_ops::{
    ForeignKeyJoiner, ForeignTableJoin, ResponseJoin, ResponseWrapperSerde, SubscriptionReceive,
    SubscriptionSend, SubscriptionWrapperSerde, UnmaterializedTableSource,
};
use super::internals::lock;
use super::internals::table_ops::{TableSource, TupleForwarder};
use super::ktable::add_store;
use super::{KTable, Materialized};
use crate::processor::internal::factory;
use crate::processor::Data;
use crate::state::KeyValueStoreBuilder;
use crate::topology::codec::{TypedSink, TypedSource};

impl<K: Data, V: Data> KTable<K, V> {
    /// Joins each row with the row of `other` at the foreign key `extractor` picks from
    /// its value (Kafka's `join(KTable, Function, ValueJoiner)`): rows whose foreign
    /// row is missing have no result.
    ///
    /// ```
    /// use kafka_streams::dsl::StreamsBuilder;
    /// let builder = StreamsBuilder::new();
    /// // sensor id → "<machine id>:<sensor kind>"; machine id → hall
    /// let sensors = builder.table::<String, String>("sensors");
    /// let machines = builder.table::<String, String>("machines");
    /// sensors
    ///     .join_foreign_key(
    ///         &machines,
    ///         |sensor: &String| sensor.split(':').next().unwrap_or_default().to_owned(),
    ///         |sensor, hall| format!("{sensor} in {hall}"),
    ///     )
    ///     .to_stream()
    ///     .to("sensor-halls");
    /// let topology = builder.build().unwrap();
    /// assert_eq!(topology.internal_topics().count(), 2);
    /// ```
    pub fn join_foreign_key<KO: Data, VO: Data, VR: Data, E, F>(
        &self,
        other: &KTable<KO, VO>,
        extractor: E,
        joiner: F,
    ) -> KTable<K, VR>
    where
        E: Fn(&V) -> KO + Send + Sync + 'static,
        F: Fn(&V, &VO) -> VR + Send + Sync + 'static,
    {
        let joiner = ForeignKeyJoiner::Inner(Arc::new(joiner));
        self.foreign_key_join(other, Arc::new(extractor), joiner, None)
    }

    /// [`KTable::join_foreign_key`] kept in the store `materialized` describes
    /// (queryable; it needs a value serde).
    pub fn join_foreign_key_materialized<KO: Data, VO: Data, VR: Data, E, F>(
        &self,
        other: &KTable<KO, VO>,
        extractor: E,
        joiner: F,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        E: Fn(&V) -> KO + Send + Sync + 'static,
        F: Fn(&V, &VO) -> VR + Send + Sync + 'static,
    {
        let joiner = ForeignKeyJoiner::Inner(Arc::new(joiner));
        self.foreign_key_join(other, Arc::new(extractor), joiner, Some(materialized))
    }

    /// Joins each row with the row of `other` at its foreign key, if any (Kafka's
    /// `leftJoin(KTable, Function, ValueJoiner)`): every row has a result.
    pub fn left_join_foreign_key<KO: Data, VO: Data, VR: Data, E, F>(
        &self,
        other: &KTable<KO, VO>,
        extractor: E,
        joiner: F,
    ) -> KTable<K, VR>
    where
        E: Fn(&V) -> KO + Send + Sync + 'static,
        F: Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        let joiner = ForeignKeyJoiner::Left(Arc::new(joiner));
        self.foreign_key_join(other, Arc::new(extractor), joiner, None)
    }

    /// [`KTable::left_join_foreign_key`] kept in the store `materialized` describes.
    pub fn left_join_foreign_key_materialized<KO: Data, VO: Data, VR: Data, E, F>(
        &self,
        other: &KTable<KO, VO>,
        extractor: E,
        joiner: F,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        E: Fn(&V) -> KO + Send + Sync + 'static,
        F: Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        let joiner = ForeignKeyJoiner::Left(Arc::new(joiner));
        self.foreign_key_join(other, Arc::new(extractor), joiner, Some(materialized))
    }

    /// Kafka's `KTableImpl.doJoinOnForeignKey`.
    fn foreign_key_join<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        extractor: super::internals::fk_join_ops::ForeignKeyExtractor<V, KO>,
        joiner: ForeignKeyJoiner<V, VO, VR>,
        materialized: Option<Materialized<K, VR>>,
    ) -> KTable<K, VR> {
        let left = matches!(joiner, ForeignKeyJoiner::Left(_));
        let this_getter = self.value_getter();
        let other_getter = other.value_getter();
        let mut inner = lock(&self.builder);
        let result_store = materialized.as_ref().map(|m| {
            m.name
                .clone()
                .unwrap_or_else(|| inner.new_name("KTABLE-FK-JOIN-OUTPUT-STATE-STORE-"))
        });
        let serdes = (
            self.key_serde.clone(),
            self.value_serde.clone(),
            other.key_serde.clone(),
            other.value_serde.clone(),
        );
        let (
            (Some(key_serde), Some(value_serde), Some(fk_serde), Some(foreign_value_serde)),
            Some(this_getter),
            Some(other_getter),
        ) = (serdes, this_getter, other_getter)
        else {
            drop(inner);
            return self.failed_join(
                other,
                "foreign-key join",
                "both tables need key and value serdes and must be readable by key (materialized)",
            );
        };
        if !Arc::ptr_eq(&self.builder, &other.builder) {
            inner
                .graph
                .error("foreign-key join of two tables from two different StreamsBuilders".into());
        }

        // This side: subscriptions out.
        let subscription_topic = format!(
            "{}-topic",
            inner.new_name("KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-")
        );
        let send_name = inner.new_name("KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-");
        let (e, fk, vs, t) = (
            extractor,
            fk_serde.clone(),
            value_serde.clone(),
            subscription_topic.clone(),
        );
        let send = inner.graph.add_processor(
            send_name,
            factory(move || SubscriptionSend::<K, V, KO> {
                extractor: e.clone(),
                foreign_key_serde: fk.clone(),
                value_serde: vs.clone(),
                topic: t.clone(),
                left,
                _t: PhantomData,
            }),
            &[self.node],
        );
        let subscription_key = Arc::new(OptionSerde(fk_serde.clone()));
        let subscription_value = Arc::new(SubscriptionWrapperSerde(key_serde.clone()));
        let sink_name = inner.new_name("KTABLE-SINK-");
        inner.graph.add_internal_topic(subscription_topic.clone());
        inner.graph.add_sink(
            sink_name,
            Some(subscription_topic.clone()),
            Arc::new(TypedSink {
                key: subscription_key.clone() as Arc<dyn Serializer<Option<KO>>>,
                value: subscription_value.clone() as Arc<dyn Serializer<_>>,
                extractor: None,
            }),
            &[send],
        );

        // The other side: the subscription store, answered on subscription and on
        // foreign updates.
        let source_name = inner.new_name("KTABLE-SOURCE-");
        let subscriptions = inner.graph.add_source(
            source_name,
            vec![subscription_topic.clone()],
            Arc::new(TypedSource {
                key: subscription_key as Arc<dyn Deserializer<Option<KO>>>,
                value: subscription_value.clone() as Arc<dyn Deserializer<_>>,
                extractor: None,
            }),
        );
        let store = inner.new_name("KTABLE-FK-JOIN-SUBSCRIPTION-STATE-STORE-");
        inner.graph.add_store(Arc::new(
            KeyValueStoreBuilder::<Vec<u8>, _>::with_serdes(
                &store,
                Arc::new(kafka_client::serde::BytesSerde),
                subscription_value,
            )
            .with_caching_disabled(),
        ));
        let receive_name = inner.new_name("KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-");
        let (s, fk, pk, t, g) = (
            store.clone(),
            fk_serde.clone(),
            key_serde.clone(),
            subscription_topic.clone(),
            other_getter.clone(),
        );
        let receive = inner.graph.add_processor(
            receive_name,
            factory(move || SubscriptionReceive::<K, KO, VO> {
                store: s.clone(),
                foreign_key_serde: fk.clone(),
                primary_key_serde: pk.clone(),
                topic: t.clone(),
                foreign: g.clone(),
            }),
            &[subscriptions],
        );
        inner.graph.connect_store(receive, &store);
        for s in &other_getter.stores {
            inner.graph.connect_store(receive, s);
        }
        let foreign_name = inner.new_name("KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-");
        let (s, fk, t) = (store.clone(), fk_serde, subscription_topic.clone());
        let foreign = inner.graph.add_processor(
            foreign_name,
            factory(move || ForeignTableJoin::<K, KO, VO> {
                store: s.clone(),
                foreign_key_serde: fk.clone(),
                topic: t.clone(),
                _t: PhantomData,
            }),
            &[other.node],
        );
        inner.graph.connect_store(foreign, &store);

        // Responses back to this side.
        let response_topic = format!(
            "{}-topic",
            inner.new_name("KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-")
        );
        let response_value = Arc::new(ResponseWrapperSerde(foreign_value_serde));
        let sink_name = inner.new_name("KTABLE-SINK-");
        inner.graph.add_internal_topic(response_topic.clone());
        inner.graph.add_sink(
            sink_name,
            Some(response_topic.clone()),
            Arc::new(TypedSink {
                key: key_serde.clone() as Arc<dyn Serializer<K>>,
                value: response_value.clone() as Arc<dyn Serializer<_>>,
                extractor: None,
            }),
            &[receive, foreign],
        );
        let source_name = inner.new_name("KTABLE-SOURCE-");
        let responses = inner.graph.add_source(
            source_name,
            vec![response_topic],
            Arc::new(TypedSource {
                key: key_serde.clone() as Arc<dyn Deserializer<K>>,
                value: response_value as Arc<dyn Deserializer<_>>,
                extractor: None,
            }),
        );
        let resolver_name =
            inner.new_name("KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-RESOLVER-PROCESSOR-");
        let (g, vs, t) = (this_getter.clone(), value_serde, subscription_topic);
        let resolver = inner.graph.add_processor(
            resolver_name,
            factory(move || ResponseJoin::<K, V, VO, VR> {
                left_table: g.clone(),
                value_serde: vs.clone(),
                topic: t.clone(),
                joiner: joiner.clone(),
            }),
            &[responses],
        );
        for s in &this_getter.stores {
            inner.graph.connect_store(resolver, s);
        }

        // The result table.
        let output_name = inner.new_name("KTABLE-FK-JOIN-OUTPUT-");
        let output = match &result_store {
            Some(store) => {
                let s = store.clone();
                let node = inner.graph.add_processor(
                    output_name,
                    factory(move || TableSource::<K, VR> {
                        store: s.clone(),
                        forwarder: TupleForwarder::new(&s),
                        _t: PhantomData,
                    }),
                    &[resolver],
                );
                inner.graph.connect_store(node, store);
                node
            }
            None => inner.graph.add_processor(
                output_name,
                factory(|| UnmaterializedTableSource::<K, VR>(PhantomData)),
                &[resolver],
            ),
        };
        drop(inner);
        let value_serde = materialized.as_ref().and_then(|m| m.value.clone());
        if let (Some(m), Some(store)) = (&materialized, &result_store) {
            let key = m.key.clone().unwrap_or_else(|| key_serde.clone());
            match &value_serde {
                Some(v) => add_store(&self.builder, m, store, key, v.clone()),
                None => lock(&self.builder).graph.error(format!(
                    "state store {store} of a foreign-key join has no value serde: give one \
                     with Materialized::with_value_serde"
                )),
            }
        }
        KTable {
            builder: self.builder.clone(),
            node: output,
            key_serde: Some(key_serde),
            value_serde,
            store: result_store,
        }
    }
}
