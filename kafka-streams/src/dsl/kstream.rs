//! [`KStream`]: a typed record stream and its stateless operators.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use kafka_client::serde::{DefaultSerde, Deserializer, Serializer};

use super::internals::stream_ops as ops;
use super::internals::{lock, SharedBuilder};
use super::options::{
    default_serde, Branched, Named, Printed, Produced, Repartitioned, SharedSerde,
};
use crate::processor::internal::{factory, ProcessorFactory};
use crate::processor::{Data, Processor};
use crate::topology::codec::{TypedSink, TypedSource};

/// A stream of records with keys `K` and values `V` (Kafka's `KStream`).
///
/// Operators take `&self`, so one stream can feed several downstream branches.
pub struct KStream<K, V> {
    pub(crate) builder: SharedBuilder,
    pub(crate) node: usize,
    pub(super) key_serde: Option<SharedSerde<K>>,
    pub(super) value_serde: Option<SharedSerde<V>>,
    repartition_required: bool,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            builder: self.builder.clone(),
            node: self.node,
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            repartition_required: self.repartition_required,
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn new(
        builder: SharedBuilder,
        node: usize,
        key_serde: Option<SharedSerde<K>>,
        value_serde: Option<SharedSerde<V>>,
        repartition_required: bool,
    ) -> Self {
        KStream {
            builder,
            node,
            key_serde,
            value_serde,
            repartition_required,
        }
    }

    /// Name of the node that produces this stream.
    pub fn node_name(&self) -> String {
        lock(&self.builder).graph.node_name(self.node).to_owned()
    }

    /// Gives the node that produces this stream an explicit name (Kafka's `Named`
    /// argument): `stream.filter(..).named("drop-negative")`. Must be called before
    /// anything is attached to the stream.
    pub fn named(self, name: impl Into<String>) -> Self {
        lock(&self.builder).graph.rename(self.node, name.into());
        self
    }

    /// Whether the key was changed upstream since the stream was read or
    /// repartitioned, so that a grouping or join must repartition first.
    pub fn repartition_required(&self) -> bool {
        self.repartition_required
    }

    fn add<K2: Data, V2: Data>(
        &self,
        prefix: &str,
        name: Option<String>,
        factory: ProcessorFactory,
        key_serde: Option<SharedSerde<K2>>,
        value_serde: Option<SharedSerde<V2>>,
        key_changed: bool,
    ) -> KStream<K2, V2> {
        let mut inner = lock(&self.builder);
        let name = name.unwrap_or_else(|| inner.new_name(prefix));
        let node = inner.graph.add_processor(name, factory, &[self.node]);
        if key_changed {
            inner.graph.set_key_changing(node);
        }
        drop(inner);
        KStream::new(
            self.builder.clone(),
            node,
            key_serde,
            value_serde,
            self.repartition_required || key_changed,
        )
    }

    /// Marks the node producing this stream as forwarding its input's types unchanged
    /// (a repartition below it may move above it: `merge.repartition.topics`).
    fn type_preserving(self) -> Self {
        lock(&self.builder).graph.set_type_preserving(self.node);
        self
    }

    /// Keeps the records for which `predicate` is true.
    pub fn filter<F>(&self, predicate: F) -> KStream<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        let f = Arc::new(predicate);
        self.add(
            "KSTREAM-FILTER-",
            None,
            factory(move || ops::Filter {
                f: f.clone(),
                keep_when: true,
                _t: PhantomData,
            }),
            self.key_serde.clone(),
            self.value_serde.clone(),
            false,
        )
        .type_preserving()
    }

    /// Drops the records for which `predicate` is true.
    pub fn filter_not<F>(&self, predicate: F) -> KStream<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        let f = Arc::new(predicate);
        self.add(
            "KSTREAM-FILTER-",
            None,
            factory(move || ops::Filter {
                f: f.clone(),
                keep_when: false,
                _t: PhantomData,
            }),
            self.key_serde.clone(),
            self.value_serde.clone(),
            false,
        )
        .type_preserving()
    }

    /// Replaces key and value; marks the stream for repartitioning.
    pub fn map<K2: Data, V2: Data, F>(&self, mapper: F) -> KStream<K2, V2>
    where
        F: Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    {
        let f = Arc::new(mapper);
        self.add(
            "KSTREAM-MAP-",
            None,
            factory(move || ops::Map {
                f: f.clone(),
                _t: PhantomData,
            }),
            None,
            None,
            true,
        )
    }

    /// Replaces the value.
    pub fn map_values<V2: Data, F>(&self, mapper: F) -> KStream<K, V2>
    where
        F: Fn(V) -> V2 + Send + Sync + 'static,
    {
        self.map_values_with_key(move |_, v| mapper(v))
    }

    /// Replaces the value, seeing the key.
    pub fn map_values_with_key<V2: Data, F>(&self, mapper: F) -> KStream<K, V2>
    where
        F: Fn(&K, V) -> V2 + Send + Sync + 'static,
    {
        let f = Arc::new(mapper);
        self.add(
            "KSTREAM-MAPVALUES-",
            None,
            factory(move || ops::MapValues {
                f: f.clone(),
                _t: PhantomData,
            }),
            self.key_serde.clone(),
            None,
            false,
        )
    }

    /// Replaces each record by zero or more records; marks the stream for
    /// repartitioning.
    pub fn flat_map<K2: Data, V2: Data, I, F>(&self, mapper: F) -> KStream<K2, V2>
    where
        F: Fn(K, V) -> I + Send + Sync + 'static,
        I: IntoIterator<Item = (K2, V2)> + 'static,
    {
        let f = Arc::new(mapper);
        self.add(
            "KSTREAM-FLATMAP-",
            None,
            factory(move || ops::FlatMap {
                f: f.clone(),
                _t: PhantomData,
            }),
            None,
            None,
            true,
        )
    }

    /// Replaces each value by zero or more values, keeping the key.
    pub fn flat_map_values<V2: Data, I, F>(&self, mapper: F) -> KStream<K, V2>
    where
        F: Fn(V) -> I + Send + Sync + 'static,
        I: IntoIterator<Item = V2> + 'static,
    {
        self.flat_map_values_with_key(move |_, v| mapper(v))
    }

    /// Replaces each value by zero or more values, seeing the key.
    pub fn flat_map_values_with_key<V2: Data, I, F>(&self, mapper: F) -> KStream<K, V2>
    where
        F: Fn(&K, V) -> I + Send + Sync + 'static,
        I: IntoIterator<Item = V2> + 'static,
    {
        let f = Arc::new(mapper);
        self.add(
            "KSTREAM-FLATMAPVALUES-",
            None,
            factory(move || ops::FlatMapValues {
                f: f.clone(),
                _t: PhantomData,
            }),
            self.key_serde.clone(),
            None,
            false,
        )
    }

    /// Sets a new key computed from key and value; marks the stream for
    /// repartitioning.
    pub fn select_key<K2: Data, F>(&self, selector: F) -> KStream<K2, V>
    where
        F: Fn(&K, &V) -> K2 + Send + Sync + 'static,
    {
        let f = Arc::new(selector);
        self.add(
            "KSTREAM-KEY-SELECT-",
            None,
            factory(move || ops::SelectKey {
                f: f.clone(),
                _t: PhantomData,
            }),
            None,
            self.value_serde.clone(),
            true,
        )
    }

    /// Calls `action` on each record and passes it on unchanged.
    pub fn peek<F>(&self, action: F) -> KStream<K, V>
    where
        F: Fn(&K, &V) + Send + Sync + 'static,
    {
        let f = Arc::new(action);
        self.add(
            "KSTREAM-PEEK-",
            None,
            factory(move || ops::Peek {
                f: f.clone(),
                forward: true,
                _t: PhantomData,
            }),
            self.key_serde.clone(),
            self.value_serde.clone(),
            false,
        )
        .type_preserving()
    }

    /// Calls `action` on each record; the stream ends here.
    pub fn foreach<F>(&self, action: F)
    where
        F: Fn(&K, &V) + Send + Sync + 'static,
    {
        self.foreach_named(action, None);
    }

    /// [`KStream::foreach`] with an explicit node name.
    pub fn foreach_named<F>(&self, action: F, named: Option<Named>)
    where
        F: Fn(&K, &V) + Send + Sync + 'static,
    {
        let f = Arc::new(action);
        let _: KStream<K, V> = self.add(
            "KSTREAM-FOREACH-",
            named.map(|n| n.0),
            factory(move || ops::Peek {
                f: f.clone(),
                forward: false,
                _t: PhantomData,
            }),
            None,
            None,
            false,
        );
    }

    /// Prints each record as `[label]: key, value`; the stream ends here.
    pub fn print(&self, printed: Printed<K, V>) {
        let Printed {
            target,
            label,
            mapper,
            name,
        } = printed;
        let _: KStream<K, V> = self.add(
            "KSTREAM-PRINTER-",
            name,
            factory(move || ops::Print {
                target: target.clone(),
                label: label.clone(),
                mapper: mapper.clone(),
            }),
            None,
            None,
            false,
        );
    }

    /// One stream of the records of both streams.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let mut inner = lock(&self.builder);
        if !Arc::ptr_eq(&self.builder, &other.builder) {
            inner
                .graph
                .error("merge of streams from two different StreamsBuilders".into());
        }
        let name = inner.new_name("KSTREAM-MERGE-");
        let f: ProcessorFactory = factory(|| ops::PassThrough::<K, V>(PhantomData));
        let node = inner.graph.add_processor(name, f, &[self.node, other.node]);
        drop(inner);
        KStream::new(
            self.builder.clone(),
            node,
            self.key_serde.clone().or_else(|| other.key_serde.clone()),
            self.value_serde
                .clone()
                .or_else(|| other.value_serde.clone()),
            self.repartition_required || other.repartition_required,
        )
    }

    /// Splits the stream into named branches (Kafka's `split()`): a record goes to the
    /// first branch whose predicate matches, else to the default branch.
    ///
    /// ```
    /// use kafka_streams::dsl::{Branched, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// let branches = builder
    ///     .stream::<String, i64>("readings")
    ///     .split_named("by-sign-")
    ///     .branch(|_, v| *v < 0, Branched::as_("negative"))
    ///     .default_branch(Branched::as_("other"));
    /// branches["by-sign-negative"].to("negative");
    /// branches["by-sign-other"].to("other");
    /// ```
    pub fn split(&self) -> BranchedKStream<K, V> {
        self.split_inner(None)
    }

    /// [`KStream::split`] with an explicit name, which also prefixes branch names.
    pub fn split_named(&self, name: impl Into<String>) -> BranchedKStream<K, V> {
        self.split_inner(Some(name.into()))
    }

    fn split_inner(&self, name: Option<String>) -> BranchedKStream<K, V> {
        let spec: Arc<Mutex<BranchSpec<K, V>>> = Arc::new(Mutex::new(BranchSpec {
            predicates: Vec::new(),
            default: None,
        }));
        let s = spec.clone();
        let f: ProcessorFactory = factory(move || {
            let spec = s.lock().unwrap_or_else(|e| e.into_inner());
            ops::Branch {
                predicates: spec.predicates.clone(),
                default: spec.default.clone(),
            }
        });
        let splitter = self
            .add::<K, V>(
                "KSTREAM-BRANCH-",
                name,
                f,
                self.key_serde.clone(),
                self.value_serde.clone(),
                false,
            )
            .type_preserving();
        let prefix = splitter.node_name();
        BranchedKStream {
            splitter,
            prefix,
            spec,
            branches: HashMap::new(),
            count: 0,
        }
    }

    /// Writes the stream to `topic` with the stream's serdes, else the types'
    /// default serdes.
    pub fn to(&self, topic: &str)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let produced = Produced {
            key: None,
            value: None,
            name: None,
        };
        self.sink(Some(topic.to_owned()), None, self.fill_defaults(produced));
    }

    /// Writes the stream to `topic` as `produced` says.
    pub fn to_with(&self, topic: &str, produced: Produced<K, V>) {
        self.sink(Some(topic.to_owned()), None, produced);
    }

    /// Writes each record to the topic `extractor(key, value)` chooses, with the
    /// stream's serdes, else the types' default serdes. The topics must exist.
    pub fn to_dynamic<F>(&self, extractor: F)
    where
        K: DefaultSerde,
        V: DefaultSerde,
        F: Fn(&K, &V) -> String + Send + Sync + 'static,
    {
        let produced = Produced {
            key: None,
            value: None,
            name: None,
        };
        self.sink(
            None,
            Some(Arc::new(extractor)),
            self.fill_defaults(produced),
        );
    }

    /// [`KStream::to_dynamic`] as `produced` says.
    pub fn to_dynamic_with<F>(&self, extractor: F, produced: Produced<K, V>)
    where
        F: Fn(&K, &V) -> String + Send + Sync + 'static,
    {
        self.sink(None, Some(Arc::new(extractor)), produced);
    }

    fn fill_defaults(&self, mut produced: Produced<K, V>) -> Produced<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        if produced.key.is_none() && self.key_serde.is_none() {
            produced.key = Some(Arc::new(K::default_serde()));
        }
        if produced.value.is_none() && self.value_serde.is_none() {
            produced.value = Some(Arc::new(V::default_serde()));
        }
        produced
    }

    fn sink(
        &self,
        topic: Option<String>,
        extractor: Option<crate::topology::TopicNameExtractor<K, V>>,
        produced: Produced<K, V>,
    ) {
        let mut inner = lock(&self.builder);
        let name = match produced.name {
            Some(n) => n,
            None => inner.new_name("KSTREAM-SINK-"),
        };
        // The stream's serdes serve as serializers as they are (the same objects, so
        // their zero-copy `serialize_borrowed` is kept).
        let key: Option<Arc<dyn Serializer<K>>> = produced
            .key
            .or_else(|| self.key_serde.clone().map(|s| s as Arc<dyn Serializer<K>>));
        let value: Option<Arc<dyn Serializer<V>>> = produced.value.or_else(|| {
            self.value_serde
                .clone()
                .map(|s| s as Arc<dyn Serializer<V>>)
        });
        let (key, value) = match (key, value) {
            (Some(k), Some(v)) => (k, v),
            (k, _) => {
                let which = if k.is_none() { "key" } else { "value" };
                inner.graph.error(format!(
                    "sink {name} has no {which} serializer: give one with Produced::with"
                ));
                return;
            }
        };
        inner.graph.add_sink(
            name,
            topic,
            Arc::new(TypedSink {
                key,
                value,
                extractor,
            }),
            &[self.node],
        );
    }

    /// Writes the stream through an internal repartition topic and reads it back, so
    /// records are partitioned by their current key. This splits the topology into
    /// two sub-topologies. Serdes: the stream's, else the types' defaults.
    pub fn repartition(&self) -> KStream<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.repartition_with(Repartitioned::default())
    }

    /// [`KStream::repartition`] as `repartitioned` says (name, partition count,
    /// serdes). Without serdes there and on the stream, uses the types' defaults.
    pub fn repartition_with(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let key = repartitioned
            .key
            .clone()
            .or_else(|| self.key_serde.clone())
            .unwrap_or_else(default_serde::<K>);
        let value = repartitioned
            .value
            .clone()
            .or_else(|| self.value_serde.clone())
            .unwrap_or_else(default_serde::<V>);
        self.repartition_through(
            repartitioned.name,
            repartitioned.partitions,
            key,
            value,
            false,
        )
    }

    /// Repartitions with explicit serdes, for key and value types without a default
    /// serde.
    pub fn repartition_with_serdes(
        &self,
        repartitioned: Repartitioned<K, V>,
        key: SharedSerde<K>,
        value: SharedSerde<V>,
    ) -> KStream<K, V> {
        self.repartition_through(
            repartitioned.name,
            repartitioned.partitions,
            key,
            value,
            false,
        )
    }

    /// Inserts a repartition topic when a key-changing operation happened upstream
    /// (Kafka's automatic repartitioning before a grouping or join); otherwise
    /// returns this stream. `name` names the repartition topic. The optimizer may
    /// merge it with others below the same key-changing operation.
    pub(crate) fn repartition_if_required(
        &self,
        name: Option<String>,
        key: SharedSerde<K>,
        value: SharedSerde<V>,
    ) -> KStream<K, V> {
        if self.repartition_required {
            self.repartition_through(name, None, key, value, true)
        } else {
            self.clone()
        }
    }

    /// Adds a repartition node (`optimizable`: an automatic one, which
    /// `merge.repartition.topics` may merge or move).
    pub(crate) fn repartition_through(
        &self,
        name: Option<String>,
        partitions: Option<i32>,
        key: SharedSerde<K>,
        value: SharedSerde<V>,
        optimizable: bool,
    ) -> KStream<K, V> {
        let mut inner = lock(&self.builder);
        let base = name.unwrap_or_else(|| inner.new_name("KSTREAM-REPARTITION-"));
        let sink = Arc::new(TypedSink {
            key: key.clone() as Arc<dyn Serializer<K>>,
            value: value.clone() as Arc<dyn Serializer<V>>,
            extractor: None,
        });
        let source = Arc::new(TypedSource {
            key: key.clone() as Arc<dyn Deserializer<K>>,
            value: value.clone() as Arc<dyn Deserializer<V>>,
            extractor: None,
        });
        let node =
            inner
                .graph
                .add_repartition(base, partitions, sink, source, self.node, optimizable);
        drop(inner);
        KStream::new(self.builder.clone(), node, Some(key), Some(value), false)
    }

    /// Groups the records by their key, to aggregate (Kafka's `groupByKey`). Serdes:
    /// the stream's, else the types' defaults (used by the repartition topic and the
    /// store). If the key changed upstream, the aggregation repartitions first.
    pub fn group_by_key(&self) -> super::KGroupedStream<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let key = self.key_serde.clone().unwrap_or_else(default_serde::<K>);
        let value = self.value_serde.clone().unwrap_or_else(default_serde::<V>);
        super::KGroupedStream::new(self.clone(), key, value)
    }

    /// [`KStream::group_by_key`] with explicit serdes, for types without a default
    /// serde.
    pub fn group_by_key_with_serdes(
        &self,
        key: SharedSerde<K>,
        value: SharedSerde<V>,
    ) -> super::KGroupedStream<K, V> {
        super::KGroupedStream::new(self.clone(), key, value)
    }

    /// Groups the records by a new key computed from key and value (Kafka's
    /// `groupBy`); the aggregation repartitions through `<store>-repartition`.
    pub fn group_by<K2, F>(&self, selector: F) -> super::KGroupedStream<K2, V>
    where
        K2: Data + DefaultSerde,
        V: DefaultSerde,
        F: Fn(&K, &V) -> K2 + Send + Sync + 'static,
    {
        self.select_key(selector).group_by_key()
    }

    /// Runs a custom [`Processor`] on each record; `supplier` makes one instance per
    /// task. The key may change, so the stream is marked for repartitioning.
    pub fn process<K2: Data, V2: Data, P, S>(&self, supplier: S) -> KStream<K2, V2>
    where
        P: Processor<K, V, K2, V2> + 'static,
        S: Fn() -> P + Send + Sync + 'static,
    {
        self.process_with_stores(supplier, &[])
    }

    /// [`KStream::process`] with access to the named state stores (added with
    /// [`StreamsBuilder::add_state_store`](crate::dsl::StreamsBuilder::add_state_store)).
    pub fn process_with_stores<K2: Data, V2: Data, P, S>(
        &self,
        supplier: S,
        stores: &[&str],
    ) -> KStream<K2, V2>
    where
        P: Processor<K, V, K2, V2> + 'static,
        S: Fn() -> P + Send + Sync + 'static,
    {
        let stream: KStream<K2, V2> = self.add(
            "KSTREAM-PROCESSOR-",
            None,
            factory(supplier),
            None,
            None,
            true,
        );
        let mut inner = lock(&self.builder);
        for store in stores {
            inner.graph.connect_store(stream.node, store);
        }
        drop(inner);
        stream
    }
}

struct BranchSpec<K, V> {
    predicates: Vec<(ops::Predicate<K, V>, String)>,
    default: Option<String>,
}

/// The branches of a [`KStream::split`] being defined (Kafka's `BranchedKStream`).
pub struct BranchedKStream<K, V> {
    splitter: KStream<K, V>,
    prefix: String,
    spec: Arc<Mutex<BranchSpec<K, V>>>,
    branches: HashMap<String, KStream<K, V>>,
    count: usize,
}

impl<K: Data, V: Data> BranchedKStream<K, V> {
    fn add_branch(&mut self, branched: Branched, index: usize) -> String {
        let child = match branched.0 {
            Some(n) => format!("{}{n}", self.prefix),
            None => format!("{}{index}", self.prefix),
        };
        let stream = self
            .splitter
            .add::<K, V>(
                "KSTREAM-BRANCHCHILD-",
                Some(child.clone()),
                factory(|| ops::PassThrough::<K, V>(PhantomData)),
                self.splitter.key_serde.clone(),
                self.splitter.value_serde.clone(),
                false,
            )
            .type_preserving();
        self.branches.insert(child.clone(), stream);
        child
    }

    /// Adds a branch for the records matching `predicate` (and no earlier branch).
    pub fn branch<F>(mut self, predicate: F, branched: Branched) -> Self
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        self.count += 1;
        let child = self.add_branch(branched, self.count);
        self.spec
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .predicates
            .push((Arc::new(predicate), child));
        self
    }

    /// Adds the default branch (records matching no predicate) and returns every
    /// branch, keyed by `<split name><branch name>`.
    pub fn default_branch(mut self, branched: Branched) -> HashMap<String, KStream<K, V>> {
        let child = self.add_branch(branched, 0);
        self.spec.lock().unwrap_or_else(|e| e.into_inner()).default = Some(child);
        self.branches
    }

    /// Returns every branch; records matching no predicate are dropped.
    pub fn no_default_branch(self) -> HashMap<String, KStream<K, V>> {
        self.branches
    }
}
