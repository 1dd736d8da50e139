//! Table-table joins (Kafka's `KTable.join`, `leftJoin`, `outerJoin`, with or
//! without `Materialized`).
//!
//! Both tables must be co-partitioned (checked at start, like a stream-table join).
//! An update on either side looks up the other side's current row and forwards the
//! join result's new value and the old one it replaces ([`Change`]), so a downstream
//! aggregation subtracts the old result; a tombstone on either side deletes the join
//! result where the join kind says the row is gone. Each side is a processor
//! (`KTABLE-JOINTHIS-` / `KTABLE-JOINOTHER-`) feeding the merger (`KTABLE-MERGE-`),
//! which keeps the result in a store when the join is materialized (queryable under
//! its name).
//!
//! A table read by a join must be readable by key: a table with a store, or a
//! filter / map-values / join result of one (read through its parent, as Kafka's
//! value getters do).
//!
//! Unlike Kafka, whose table stores keep each row's timestamp, a result carries the
//! timestamp of the update that caused it (Kafka's is the later of the two rows').

use std::marker::PhantomData;
use std::sync::Arc;

use super::internals::lock;
use super::internals::table_join_ops::{SideJoiner, TableJoinMerger, TableTableJoin, ValueGetter};
use super::internals::table_ops::TupleForwarder;
use super::ktable::add_store;
use super::{KTable, Materialized};
use crate::processor::internal::factory;
use crate::processor::Data;

impl<K: Data, V: Data> KTable<K, V> {
    /// How a join reads this table by key, if it can.
    pub(crate) fn value_getter(&self) -> Option<ValueGetter<K, V>> {
        if let Some(store) = &self.store {
            return Some(ValueGetter::from_store(store));
        }
        lock(&self.builder)
            .value_getters
            .get(&self.node)
            .and_then(|g| g.clone().downcast::<ValueGetter<K, V>>().ok())
            .map(|g| (*g).clone())
    }

    /// Records how `table` (a child of this table without a store) is read by key:
    /// this table's getter passed through `f`.
    pub(crate) fn derive_value_getter<V2: Data>(
        &self,
        table: &KTable<K, V2>,
        f: impl Fn(&K, V) -> Option<V2> + Send + Sync + 'static,
    ) {
        if let Some(getter) = self.value_getter() {
            let derived = getter.map(f);
            lock(&self.builder)
                .value_getters
                .insert(table.node, Arc::new(derived));
        }
    }

    /// Records why the join of this table with `other` cannot be built (the build
    /// reports it) and returns a stand-in for its result.
    pub(super) fn failed_join<KO, VO, VR>(
        &self,
        other: &KTable<KO, VO>,
        what: &str,
        why: &str,
    ) -> KTable<K, VR> {
        let mut inner = lock(&self.builder);
        let message = format!(
            "{what} of {} with {}: {why}",
            inner.graph.node_name(self.node),
            inner.graph.node_name(other.node)
        );
        inner.graph.error(message);
        drop(inner);
        KTable {
            builder: self.builder.clone(),
            node: self.node,
            key_serde: self.key_serde.clone(),
            value_serde: None,
            store: None,
        }
    }

    /// Joins with `other` on the key (Kafka's `KTable.join`): a row for each key in
    /// both tables.
    ///
    /// ```
    /// use kafka_streams::dsl::StreamsBuilder;
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table::<String, String>("sensor-names");
    /// let units = builder.table::<String, String>("sensor-units");
    /// names
    ///     .join(&units, |name, unit| format!("{name} ({unit})"))
    ///     .to_stream()
    ///     .to("sensor-labels");
    /// builder.build().unwrap();
    /// ```
    pub fn join<VO: Data, VR: Data, F>(&self, other: &KTable<K, VO>, joiner: F) -> KTable<K, VR>
    where
        F: Fn(&V, &VO) -> VR + Send + Sync + 'static,
    {
        let (this, reversed) = inner_joiners(joiner);
        self.table_join(other, this, reversed, None)
    }

    /// [`KTable::join`] kept in the store `materialized` describes (queryable; it
    /// needs a value serde).
    pub fn join_materialized<VO: Data, VR: Data, F>(
        &self,
        other: &KTable<K, VO>,
        joiner: F,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        F: Fn(&V, &VO) -> VR + Send + Sync + 'static,
    {
        let (this, reversed) = inner_joiners(joiner);
        self.table_join(other, this, reversed, Some(materialized))
    }

    /// Joins with `other` on the key, keeping every row of this table (Kafka's
    /// `KTable.leftJoin`): the joiner sees `None` where `other` has no row.
    pub fn left_join<VO: Data, VR: Data, F>(
        &self,
        other: &KTable<K, VO>,
        joiner: F,
    ) -> KTable<K, VR>
    where
        F: Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        let (this, reversed) = left_joiners(joiner);
        self.table_join(other, this, reversed, None)
    }

    /// [`KTable::left_join`] kept in the store `materialized` describes.
    pub fn left_join_materialized<VO: Data, VR: Data, F>(
        &self,
        other: &KTable<K, VO>,
        joiner: F,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        F: Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        let (this, reversed) = left_joiners(joiner);
        self.table_join(other, this, reversed, Some(materialized))
    }

    /// Joins with `other` on the key, keeping every row of either table (Kafka's
    /// `KTable.outerJoin`): the joiner sees `None` for the side without a row.
    pub fn outer_join<VO: Data, VR: Data, F>(
        &self,
        other: &KTable<K, VO>,
        joiner: F,
    ) -> KTable<K, VR>
    where
        F: Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        let (this, reversed) = outer_joiners(joiner);
        self.table_join(other, this, reversed, None)
    }

    /// [`KTable::outer_join`] kept in the store `materialized` describes.
    pub fn outer_join_materialized<VO: Data, VR: Data, F>(
        &self,
        other: &KTable<K, VO>,
        joiner: F,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        F: Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        let (this, reversed) = outer_joiners(joiner);
        self.table_join(other, this, reversed, Some(materialized))
    }

    /// Kafka's `KTableImpl.doJoin`: the two side processors and the merger.
    fn table_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        this_joiner: SideJoiner<V, VO, VR>,
        other_joiner: SideJoiner<VO, V, VR>,
        materialized: Option<Materialized<K, VR>>,
    ) -> KTable<K, VR> {
        let this_getter = self.value_getter();
        let other_getter = other.value_getter();
        let mut inner = lock(&self.builder);
        if !Arc::ptr_eq(&self.builder, &other.builder) {
            inner
                .graph
                .error("join of two tables from two different StreamsBuilders".into());
        }
        let store = materialized.as_ref().map(|m| {
            m.name
                .clone()
                .unwrap_or_else(|| inner.new_name("KTABLE-MERGE-STATE-STORE-"))
        });
        let merge_name = inner.new_name("KTABLE-MERGE-");
        let (Some(this_getter), Some(other_getter)) = (this_getter, other_getter) else {
            drop(inner);
            return self.failed_join(
                other,
                &format!("table join {merge_name}"),
                "both tables must be readable by key (materialized, or a filter, map-values or \
                 join of a materialized table)",
            );
        };
        let this_name = inner.new_name("KTABLE-JOINTHIS-");
        let other_name = inner.new_name("KTABLE-JOINOTHER-");
        let (g, j) = (other_getter.clone(), this_joiner.clone());
        let join_this = inner.graph.add_processor(
            this_name,
            factory(move || TableTableJoin {
                other: g.clone(),
                joiner: j.clone(),
            }),
            &[self.node],
        );
        for s in &other_getter.stores {
            inner.graph.connect_store(join_this, s);
        }
        let (g, j) = (this_getter.clone(), other_joiner);
        let join_other = inner.graph.add_processor(
            other_name,
            factory(move || TableTableJoin {
                other: g.clone(),
                joiner: j.clone(),
            }),
            &[other.node],
        );
        for s in &this_getter.stores {
            inner.graph.connect_store(join_other, s);
        }
        drop(inner);

        let key_serde = materialized
            .as_ref()
            .and_then(|m| m.key.clone())
            .or_else(|| self.key_serde.clone());
        let value_serde = materialized.as_ref().and_then(|m| m.value.clone());
        if let (Some(m), Some(store)) = (&materialized, &store) {
            match (&key_serde, &value_serde) {
                (Some(k), Some(v)) => add_store(&self.builder, m, store, k.clone(), v.clone()),
                (k, _) => {
                    let which = if k.is_none() { "key" } else { "value" };
                    lock(&self.builder).graph.error(format!(
                        "state store {store} of join {merge_name} has no {which} serde: give \
                         one with Materialized::with_{which}_serde"
                    ));
                }
            }
        }
        let s = store.clone();
        let mut inner = lock(&self.builder);
        let merger = inner.graph.add_processor(
            merge_name,
            factory(move || TableJoinMerger::<K, VR> {
                store: s.clone(),
                forwarder: s.as_deref().map(TupleForwarder::new),
                _t: PhantomData,
            }),
            &[join_this, join_other],
        );
        if let Some(store) = &store {
            inner.graph.connect_store(merger, store);
        }
        drop(inner);
        let result = KTable {
            builder: self.builder.clone(),
            node: merger,
            key_serde,
            value_serde,
            store: store.clone(),
        };
        if store.is_none() {
            let (g1, g2) = (this_getter.get, other_getter.get);
            let mut stores = this_getter.stores;
            stores.extend(other_getter.stores);
            let getter = ValueGetter::<K, VR> {
                stores,
                get: Arc::new(move |stores, key| {
                    let this = g1(stores, key)?;
                    let other = g2(stores, key)?;
                    Ok(this_joiner.result(this.as_ref(), other.as_ref()))
                }),
            };
            lock(&self.builder)
                .value_getters
                .insert(merger, Arc::new(getter));
        }
        result
    }
}

type Sides<V, VO, VR> = (SideJoiner<V, VO, VR>, SideJoiner<VO, V, VR>);

fn inner_joiners<V: Data, VO: Data, VR: Data>(
    joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
) -> Sides<V, VO, VR> {
    let f = Arc::new(joiner);
    let r = f.clone();
    (
        SideJoiner::Inner(f),
        SideJoiner::Inner(Arc::new(move |o: &VO, t: &V| r(t, o))),
    )
}

fn left_joiners<V: Data, VO: Data, VR: Data>(
    joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
) -> Sides<V, VO, VR> {
    let f = Arc::new(joiner);
    let r = f.clone();
    (
        SideJoiner::Left(f),
        SideJoiner::Right(Arc::new(move |o: Option<&VO>, t: &V| r(t, o))),
    )
}

fn outer_joiners<V: Data, VO: Data, VR: Data>(
    joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
) -> Sides<V, VO, VR> {
    let f = Arc::new(joiner);
    let r = f.clone();
    (
        SideJoiner::Outer(f),
        SideJoiner::Outer(Arc::new(move |o: Option<&VO>, t: Option<&V>| r(t, o))),
    )
}
