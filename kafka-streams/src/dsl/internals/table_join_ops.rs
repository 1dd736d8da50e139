//! The processors of joins with tables (Kafka's `KStreamKTableJoinProcessor`,
//! `KStreamGlobalKTableJoin`, `KTableKTableInnerJoin` / `LeftJoin` / `RightJoin` /
//! `OuterJoin` and `KTableKTableJoinMerger`), and the value getters they read the
//! other side with (Kafka's `KTableValueGetter`).

use std::sync::Arc;

use crate::dsl::Change;
use crate::processor::internal::StoreAccess;
use crate::processor::{Data, Processor, ProcessorContext, ProcessorError, Record};
use crate::state::TypedKeyValueStore;

use super::table_ops::TupleForwarder;

/// Reads a key's current value from the stores the getter names.
pub(crate) type GetFn<K, V> =
    Arc<dyn Fn(&mut StoreAccess<'_>, &K) -> Result<Option<V>, ProcessorError> + Send + Sync>;

/// How to read a table's current value for a key from inside another processor
/// (Kafka's `KTableValueGetterSupplier`): the stores it reads (which the reading
/// processor must be connected to) and the read itself. A table with a store reads
/// it; a filter or map-values result reads its parent's getter and applies itself; an
/// unmaterialized join result reads both sides.
pub(crate) struct ValueGetter<K, V> {
    pub stores: Vec<String>,
    pub get: GetFn<K, V>,
}

impl<K, V> Clone for ValueGetter<K, V> {
    fn clone(&self) -> Self {
        ValueGetter {
            stores: self.stores.clone(),
            get: self.get.clone(),
        }
    }
}

impl<K: Data, V: Data> ValueGetter<K, V> {
    /// Reads the key-value store `store` (Kafka's `KTableMaterializedValueGetter`).
    pub fn from_store(store: &str) -> Self {
        let name = store.to_owned();
        ValueGetter {
            stores: vec![store.to_owned()],
            get: Arc::new(move |stores, key| {
                Ok(stores
                    .required::<TypedKeyValueStore<K, V>>(&name)?
                    .get(key)?)
            }),
        }
    }

    /// This getter's value passed through `f` (`None`: the row is absent).
    pub fn map<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> Option<V2> + Send + Sync + 'static,
    ) -> ValueGetter<K, V2> {
        let parent = self.get.clone();
        ValueGetter {
            stores: self.stores.clone(),
            get: Arc::new(move |stores, key| Ok(parent(stores, key)?.and_then(|v| f(key, v)))),
        }
    }
}

/// A joiner of a stream record with a table row.
pub(crate) type KeyedInnerJoiner<K, V, VT, VR> = Arc<dyn Fn(&K, &V, &VT) -> VR + Send + Sync>;
/// A joiner of a stream record with a table row, if any.
pub(crate) type KeyedLeftJoiner<K, V, VT, VR> =
    Arc<dyn Fn(&K, &V, Option<&VT>) -> VR + Send + Sync>;
/// Picks a global table's key from a stream record.
pub(crate) type KeySelector<K, V, KG> = Arc<dyn Fn(&K, &V) -> KG + Send + Sync>;
/// Joins two rows.
pub(crate) type InnerJoiner<V1, V2, VR> = Arc<dyn Fn(&V1, &V2) -> VR + Send + Sync>;
/// Joins a row with the other side's row, if any.
pub(crate) type LeftJoiner<V1, V2, VR> = Arc<dyn Fn(&V1, Option<&V2>) -> VR + Send + Sync>;
/// Joins a row, if any, with the other side's row.
pub(crate) type RightJoiner<V1, V2, VR> = Arc<dyn Fn(Option<&V1>, &V2) -> VR + Send + Sync>;
/// Joins two rows, either absent.
pub(crate) type OuterJoiner<V1, V2, VR> = Arc<dyn Fn(Option<&V1>, Option<&V2>) -> VR + Send + Sync>;

/// A stream-table joiner: inner joins join matches only, left joins every record.
pub(crate) enum StreamTableJoiner<K, V, VT, VR> {
    Inner(KeyedInnerJoiner<K, V, VT, VR>),
    Left(KeyedLeftJoiner<K, V, VT, VR>),
}

impl<K, V, VT, VR> Clone for StreamTableJoiner<K, V, VT, VR> {
    fn clone(&self) -> Self {
        match self {
            StreamTableJoiner::Inner(f) => StreamTableJoiner::Inner(f.clone()),
            StreamTableJoiner::Left(f) => StreamTableJoiner::Left(f.clone()),
        }
    }
}

impl<K, V, VT, VR> StreamTableJoiner<K, V, VT, VR> {
    /// The result for a stream record and the table's row, if the join has one.
    fn join(&self, key: &K, value: &V, found: Option<&VT>) -> Option<VR> {
        match (self, found) {
            (StreamTableJoiner::Inner(f), Some(t)) => Some(f(key, value, t)),
            (StreamTableJoiner::Inner(_), None) => None,
            (StreamTableJoiner::Left(f), t) => Some(f(key, value, t)),
        }
    }
}

/// Kafka's `KStreamKTableJoinProcessor`: each stream record looks the table up by
/// its key; a match (or, in a left join, any record) is joined and forwarded with the
/// stream record's timestamp. Table updates never reach this processor.
pub(crate) struct StreamTableJoin<K, V, VT, VR> {
    pub table: ValueGetter<K, VT>,
    pub joiner: StreamTableJoiner<K, V, VT, VR>,
}

impl<K: Data, V: Data, VT: Data, VR: Data> Processor<K, V, K, VR>
    for StreamTableJoin<K, V, VT, VR>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        let found = (self.table.get)(&mut ctx.store_access(), &record.key)?;
        if let Some(joined) = self.joiner.join(&record.key, &record.value, found.as_ref()) {
            ctx.forward(record.with_value(joined));
        }
        Ok(())
    }
}

/// Kafka's `KStreamGlobalKTableJoin`: each stream record looks up the global store at
/// the key `key_selector` picks from it.
pub(crate) struct StreamGlobalTableJoin<K, V, KG, VG, VR> {
    pub store: String,
    pub key_selector: KeySelector<K, V, KG>,
    pub joiner: StreamTableJoiner<K, V, VG, VR>,
}

impl<K: Data, V: Data, KG: Data, VG: Data, VR: Data> Processor<K, V, K, VR>
    for StreamGlobalTableJoin<K, V, KG, VG, VR>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        let table_key = (self.key_selector)(&record.key, &record.value);
        let found = ctx
            .store_access()
            .with_global::<TypedKeyValueStore<KG, VG>, _>(&self.store, |s| s.get(&table_key))??;
        if let Some(joined) = self.joiner.join(&record.key, &record.value, found.as_ref()) {
            ctx.forward(record.with_value(joined));
        }
        Ok(())
    }
}

/// One side's view of a table-table join: its joiner, taking this side's value then
/// the other side's, and so which rows must exist.
pub(crate) enum SideJoiner<V1, V2, VR> {
    /// Both rows must exist (Kafka's `KTableKTableInnerJoin`, both sides).
    Inner(InnerJoiner<V1, V2, VR>),
    /// This row must exist (the left table of a left join: `KTableKTableLeftJoin`).
    Left(LeftJoiner<V1, V2, VR>),
    /// The other row must exist, this one may be absent (the right table of a left
    /// join: `KTableKTableRightJoin`).
    Right(RightJoiner<V1, V2, VR>),
    /// Either may be absent, not both (`KTableKTableOuterJoin`, both sides).
    Outer(OuterJoiner<V1, V2, VR>),
}

impl<V1, V2, VR> Clone for SideJoiner<V1, V2, VR> {
    fn clone(&self) -> Self {
        match self {
            SideJoiner::Inner(f) => SideJoiner::Inner(f.clone()),
            SideJoiner::Left(f) => SideJoiner::Left(f.clone()),
            SideJoiner::Right(f) => SideJoiner::Right(f.clone()),
            SideJoiner::Outer(f) => SideJoiner::Outer(f.clone()),
        }
    }
}

impl<V1, V2, VR> SideJoiner<V1, V2, VR> {
    /// The join result of this side's row `this` and the other side's `other`, if the
    /// join has a row for them (Kafka's join value getters).
    pub fn result(&self, this: Option<&V1>, other: Option<&V2>) -> Option<VR> {
        match (self, this, other) {
            (SideJoiner::Inner(f), Some(t), Some(o)) => Some(f(t, o)),
            (SideJoiner::Left(f), Some(t), o) => Some(f(t, o)),
            (SideJoiner::Right(f), t, Some(o)) => Some(f(t, o)),
            (SideJoiner::Outer(f), t, o) if t.is_some() || o.is_some() => Some(f(t, o)),
            _ => None,
        }
    }
}

/// One side of a table-table join: an update of this table looks up the other table
/// and forwards the join result's new and old values (from this row's new and old
/// values), so that downstream aggregations can subtract the old result.
pub(crate) struct TableTableJoin<K, V1, V2, VR> {
    pub other: ValueGetter<K, V2>,
    pub joiner: SideJoiner<V1, V2, VR>,
}

impl<K: Data, V1: Data, V2: Data, VR: Data> Processor<K, Change<V1>, K, Change<VR>>
    for TableTableJoin<K, V1, V2, VR>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        record: Record<K, Change<V1>>,
    ) -> Result<(), ProcessorError> {
        let other = (self.other.get)(&mut ctx.store_access(), &record.key)?;
        let change = &record.value;
        // Which updates give no output, as each of Kafka's join processors decides.
        let skip = match &self.joiner {
            SideJoiner::Inner(_) | SideJoiner::Right(_) => other.is_none(),
            SideJoiner::Left(_) | SideJoiner::Outer(_) => {
                other.is_none() && change.new.is_none() && change.old.is_none()
            }
        };
        if skip {
            return Ok(());
        }
        let new = self.joiner.result(change.new.as_ref(), other.as_ref());
        let old = self.joiner.result(change.old.as_ref(), other.as_ref());
        // Kafka stamps the later of this record's and the other row's timestamps; our
        // key-value stores keep no timestamps, so the result carries this record's.
        ctx.forward(record.with_value(Change { new, old }));
        Ok(())
    }
}

/// Kafka's `KTableKTableJoinMerger`: both sides' results become one table, kept in
/// `store` when the join is materialized (and forwarded as its cache writes through).
pub(crate) struct TableJoinMerger<K, VR> {
    pub store: Option<String>,
    pub forwarder: Option<TupleForwarder>,
    pub _t: std::marker::PhantomData<fn(K, VR)>,
}

impl<K: Data, VR: Data> Processor<K, Change<VR>> for TableJoinMerger<K, VR> {
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
    ) -> Result<(), ProcessorError> {
        match &mut self.forwarder {
            Some(forwarder) => forwarder.init(ctx),
            None => Ok(()),
        }
    }

    fn flush(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
    ) -> Result<(), ProcessorError> {
        match &self.forwarder {
            Some(forwarder) => forwarder.flush(ctx),
            None => Ok(()),
        }
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        record: Record<K, Change<VR>>,
    ) -> Result<(), ProcessorError> {
        let (Some(store), Some(forwarder)) = (&self.store, &self.forwarder) else {
            ctx.forward(record);
            return Ok(());
        };
        let s = ctx.required_store::<TypedKeyValueStore<K, VR>>(store)?;
        match &record.value.new {
            Some(v) => s.put(&record.key, v)?,
            None => {
                s.delete(&record.key)?;
            }
        }
        forwarder.maybe_forward(ctx, record);
        Ok(())
    }
}
