//! The topology: a plain graph of named source, processor and sink nodes, split into
//! sub-topologies at topics (repartition topics in particular).
//!
//! The DSL ([`crate::dsl`]) writes nodes here; the runtime and the test driver read
//! them to build tasks. A [`Topology`] is immutable once built and is shared by every
//! task of every stream thread.
//!
//! - Nodes connected by parent/child edges (or sharing a state store) form one
//!   **sub-topology**; a topic written by one sub-topology's sink and read by another's
//!   source is where they split.
//! - **Internal topics** (repartition topics) are recorded by their logical name,
//!   `<name>-repartition`; the runtime prefixes the application id:
//!   `<application.id>-<name>-repartition`.
//! - [`Topology::describe`] gives a [`TopologyDescription`], printed like Kafka Streams'
//!   `TopologyDescription` and rendered as Graphviz DOT or Mermaid.

pub(crate) mod codec;
mod describe;
pub(crate) mod graph;
mod optimize;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use codec::{TimestampExtractor, TopicNameExtractor};
pub use describe::{NodeDescription, NodeKind, SubtopologyDescription, TopologyDescription};
pub use optimize::TopologyOptimization;

use crate::error::{Result, StreamsError};
use crate::processor::internal::ProcessorFactory;
use crate::state::StoreBuilder;
use codec::{SinkCodec, SourceCodec};

#[derive(Clone)]
pub(crate) enum NodeKindDef {
    Source {
        topics: Vec<String>,
        codec: Arc<dyn SourceCodec>,
    },
    Processor {
        factory: ProcessorFactory,
    },
    Sink {
        /// `None` when a topic extractor picks the topic per record.
        topic: Option<String>,
        codec: Arc<dyn SinkCodec>,
    },
}

#[derive(Clone)]
pub(crate) struct NodeDef {
    pub name: String,
    pub kind: NodeKindDef,
    pub parents: Vec<usize>,
    pub children: Vec<usize>,
    pub stores: Vec<String>,
}

/// An internal topic the application owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    /// Logical name, e.g. `my-repartition`; the broker topic is
    /// `<application.id>-<logical name>`.
    pub name: String,
    /// Partition count; `None` means "as many as the largest of
    /// [`InternalTopic::sized_from`]".
    pub partitions: Option<i32>,
    /// The source topics (logical names) of the sub-topology that writes it: without
    /// an explicit count it gets as many partitions as the largest of them (Kafka's
    /// repartition topic sizing from upstream sources).
    pub sized_from: Vec<String>,
}

/// A sub-topology: connected nodes that run together in one task per partition.
#[derive(Debug, Clone)]
pub(crate) struct SubTopology {
    pub id: usize,
    /// Node indices, in insertion order.
    pub nodes: Vec<usize>,
    /// Logical source topic names.
    pub source_topics: Vec<String>,
    /// Stores used by its processors.
    pub stores: Vec<String>,
}

/// A global store: a full, read-only copy of `topic` on every instance.
#[derive(Clone)]
pub(crate) struct GlobalStoreDef {
    pub topic: String,
    pub builder: Arc<dyn StoreBuilder>,
}

/// A built, immutable topology.
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) stores: BTreeMap<String, Arc<dyn StoreBuilder>>,
    pub(crate) global_stores: BTreeMap<String, GlobalStoreDef>,
    pub(crate) internal_topics: BTreeMap<String, InternalTopic>,
    pub(crate) subtopologies: Vec<SubTopology>,
    /// Logged stores of tables read straight from a topic that use it as their
    /// changelog (`reuse.ktable.source.topics`), by store name, with that topic.
    pub(crate) source_tables: BTreeMap<String, String>,
    /// Topics that must have the same partition count, with the sub-topology that
    /// needs it: the source topics of each sub-topology that reads more than one (its
    /// task `n` reads partition `n` of each).
    pub(crate) copartition_groups: Vec<(usize, Vec<String>)>,
    /// The optimizations it was built with.
    pub(crate) optimization: TopologyOptimization,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl Topology {
    /// The description of the topology: print it (`{}`) in Kafka Streams' format, or
    /// render it with [`TopologyDescription::to_dot`] /
    /// [`TopologyDescription::to_mermaid`].
    pub fn describe(&self) -> TopologyDescription {
        describe::describe(self)
    }

    /// The internal topics, by logical name (without the application id prefix).
    pub fn internal_topics(&self) -> impl Iterator<Item = &InternalTopic> {
        self.internal_topics.values()
    }

    /// The external topics the topology reads (internal topics excluded).
    pub fn source_topics(&self) -> BTreeSet<String> {
        self.subtopologies
            .iter()
            .flat_map(|s| s.source_topics.iter())
            .filter(|t| !self.internal_topics.contains_key(*t))
            .cloned()
            .collect()
    }

    /// The global stores and the topics they copy, by store name.
    pub fn global_stores(&self) -> impl Iterator<Item = (&str, &str)> {
        self.global_stores
            .iter()
            .map(|(name, g)| (name.as_str(), g.topic.as_str()))
    }

    /// The stores that use their input topic as changelog, with that topic, by store
    /// name: under [`TopologyOptimization::REUSE_KTABLE_SOURCE_TOPICS`], the stores of
    /// tables read straight from a topic with
    /// [`StreamsBuilder::table`](crate::dsl::StreamsBuilder::table) or `table_with`
    /// (logging enabled). Without that optimization they are logged to
    /// `<application.id>-<store>-changelog` like any other store, and this is empty.
    ///
    /// ```
    /// use kafka_streams::dsl::{Materialized, StreamsBuilder};
    /// use kafka_streams::topology::TopologyOptimization;
    /// let builder = StreamsBuilder::new();
    /// builder.table_with::<String, String>("plants", Materialized::as_("plants-latest"));
    /// let optimized = builder.build_with(TopologyOptimization::ALL).unwrap();
    /// assert_eq!(
    ///     optimized.source_table_stores().collect::<Vec<_>>(),
    ///     vec![("plants-latest", "plants")]
    /// );
    /// assert_eq!(builder.build().unwrap().source_table_stores().count(), 0);
    /// ```
    pub fn source_table_stores(&self) -> impl Iterator<Item = (&str, &str)> {
        self.source_tables
            .iter()
            .map(|(store, topic)| (store.as_str(), topic.as_str()))
    }

    /// The optimizations it was built with
    /// ([`StreamsBuilder::build_with`](crate::dsl::StreamsBuilder::build_with)).
    pub fn optimization(&self) -> TopologyOptimization {
        self.optimization
    }

    /// Groups of topics (logical names) that must have the same partition count.
    pub fn copartition_groups(&self) -> impl Iterator<Item = &[String]> {
        self.copartition_groups
            .iter()
            .map(|(_, topics)| topics.as_slice())
    }

    /// The partition count of every internal topic, by logical name, when the source
    /// topics have the counts in `source_partitions` (by topic name; other topics are
    /// ignored). What the application creates on start:
    ///
    /// 1. an explicit count ([`Repartitioned::with_number_of_partitions`](crate::dsl::Repartitioned)),
    ///    else the largest count among the source topics of the sub-topology that writes
    ///    the topic (upstream internal topics first);
    /// 2. then, as Kafka's `CopartitionedTopicsEnforcer`, every internal topic without
    ///    an explicit count in a co-partition group (the inputs of a join) gets the
    ///    count of the group's other source topics (the largest, when they differ,
    ///    which the start then reports), or the largest of the group's internal
    ///    topics when it reads only internal topics.
    ///
    /// A topic whose upstream counts are unknown is left out.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use std::time::Duration;
    /// use kafka_streams::dsl::{JoinWindows, StreamsBuilder};
    ///
    /// let builder = StreamsBuilder::new();
    /// let readings = builder.stream::<String, String>("readings"); // 8 partitions
    /// let machines = builder.stream::<String, String>("machines"); // 3 partitions
    /// let windows = JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(5)).unwrap();
    /// readings
    ///     .select_key(|_, machine: &String| machine.clone())
    ///     .join(&machines, |r: &String, m: &String| format!("{r}@{m}"), windows)
    ///     .to("joined");
    /// let topology = builder.build().unwrap();
    /// let sources = BTreeMap::from([("readings".to_owned(), 8), ("machines".to_owned(), 3)]);
    /// assert_eq!(
    ///     topology.internal_topic_partitions(&sources),
    ///     BTreeMap::from([("KSTREAM-KEY-SELECT-0000000002-repartition".to_owned(), 3)])
    /// );
    /// ```
    pub fn internal_topic_partitions(
        &self,
        source_partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, i32> {
        let is_internal = |t: &String| self.internal_topics.contains_key(t);
        let mut sized: BTreeMap<String, i32> = BTreeMap::new();
        for _ in 0..=self.subtopologies.len() {
            for (name, internal) in &self.internal_topics {
                if sized.contains_key(name) {
                    continue;
                }
                let count = internal.partitions.or_else(|| {
                    let upstream: Option<Vec<i32>> = internal
                        .sized_from
                        .iter()
                        .map(|t| match is_internal(t) {
                            true => sized.get(t).copied(),
                            false => source_partitions.get(t).copied(),
                        })
                        .collect();
                    upstream.and_then(|v| v.into_iter().max())
                });
                if let Some(count) = count {
                    sized.insert(name.clone(), count);
                }
            }
        }
        for (_, group) in &self.copartition_groups {
            let external = group
                .iter()
                .filter(|t| !is_internal(t))
                .filter_map(|t| source_partitions.get(t).copied())
                .max();
            let count =
                external.or_else(|| group.iter().filter_map(|t| sized.get(t).copied()).max());
            let Some(count) = count else {
                continue;
            };
            for topic in group {
                if self
                    .internal_topics
                    .get(topic)
                    .is_some_and(|t| t.partitions.is_none())
                {
                    sized.insert(topic.clone(), count);
                }
            }
        }
        sized
    }

    /// The topic (as the broker names it) that serves as the changelog of `store`:
    /// its input topic when it is a source table's store and the topology reuses
    /// source topics; `None` when the store has its own changelog or none.
    pub(crate) fn source_changelog_topic(
        &self,
        application_id: &str,
        store: &str,
    ) -> Option<String> {
        self.source_tables
            .get(store)
            .map(|topic| self.resolve_topic(application_id, topic))
    }

    /// The sub-topology whose tasks own store `store`, if it is a (non-global) store.
    pub(crate) fn subtopology_of_store(&self, store: &str) -> Option<&SubTopology> {
        self.subtopologies
            .iter()
            .find(|s| s.stores.iter().any(|n| n == store))
    }

    /// Number of sub-topologies.
    pub fn subtopology_count(&self) -> usize {
        self.subtopologies.len()
    }

    /// The broker topic for a logical topic name: internal topics get the
    /// `<application_id>-` prefix, others are unchanged.
    pub fn resolve_topic(&self, application_id: &str, topic: &str) -> String {
        if self.internal_topics.contains_key(topic) {
            format!("{application_id}-{topic}")
        } else {
            topic.to_owned()
        }
    }
}

/// Accumulates the physical nodes, in build order; the logical graph
/// ([`graph::LogicalGraph`]) writes into it.
#[derive(Default)]
pub(crate) struct TopologyBuilder {
    nodes: Vec<NodeDef>,
    stores: BTreeMap<String, Arc<dyn StoreBuilder>>,
    global_stores: BTreeMap<String, GlobalStoreDef>,
    internal_topics: BTreeMap<String, InternalTopic>,
    source_tables: BTreeMap<String, String>,
    errors: Vec<String>,
}

impl TopologyBuilder {
    fn check_name(&mut self, name: &str) -> bool {
        if name.is_empty() {
            self.errors.push("a node name must not be empty".into());
            return false;
        }
        if self.nodes.iter().any(|n| n.name == name) {
            self.errors.push(format!(
                "node name {name} is used twice; names must be unique"
            ));
            return false;
        }
        true
    }

    fn push(&mut self, name: String, kind: NodeKindDef, parents: &[usize]) -> usize {
        self.check_name(&name);
        let idx = self.nodes.len();
        self.nodes.push(NodeDef {
            name,
            kind,
            parents: parents.to_vec(),
            children: Vec::new(),
            stores: Vec::new(),
        });
        for &p in parents {
            self.nodes[p].children.push(idx);
        }
        idx
    }

    pub fn add_source(
        &mut self,
        name: String,
        topics: Vec<String>,
        codec: Arc<dyn SourceCodec>,
    ) -> usize {
        if topics.is_empty() {
            self.errors.push(format!("source {name} has no topic"));
        }
        for t in &topics {
            let taken = self.nodes.iter().any(|n| match &n.kind {
                NodeKindDef::Source { topics, .. } => topics.contains(t),
                _ => false,
            });
            if taken {
                self.errors.push(format!(
                    "topic {t} is read by two source nodes; read it once and share the stream"
                ));
            }
        }
        self.push(name, NodeKindDef::Source { topics, codec }, &[])
    }

    pub fn add_processor(
        &mut self,
        name: String,
        factory: ProcessorFactory,
        parents: &[usize],
    ) -> usize {
        self.push(name, NodeKindDef::Processor { factory }, parents)
    }

    pub fn add_sink(
        &mut self,
        name: String,
        topic: Option<String>,
        codec: Arc<dyn SinkCodec>,
        parents: &[usize],
    ) -> usize {
        self.push(name, NodeKindDef::Sink { topic, codec }, parents)
    }

    pub fn add_internal_topic(&mut self, name: String, partitions: Option<i32>) {
        if let Some(p) = partitions {
            if p < 1 {
                self.errors.push(format!(
                    "internal topic {name} needs at least one partition, got {p}"
                ));
            }
        }
        self.internal_topics.insert(
            name.clone(),
            InternalTopic {
                name,
                partitions,
                sized_from: Vec::new(),
            },
        );
    }

    pub fn add_store(&mut self, builder: Arc<dyn StoreBuilder>) {
        let name = builder.name().to_owned();
        if self.stores.insert(name.clone(), builder).is_some() {
            self.errors
                .push(format!("state store {name} is added twice"));
        }
    }

    /// Adds a global store copying `topic` (Kafka's `addGlobalStore`).
    pub fn add_global_store(&mut self, topic: String, builder: Arc<dyn StoreBuilder>) {
        let name = builder.name().to_owned();
        if self.stores.contains_key(&name) || self.global_stores.contains_key(&name) {
            self.errors
                .push(format!("state store {name} is added twice"));
        }
        let read = self.nodes.iter().any(|n| match &n.kind {
            NodeKindDef::Source { topics, .. } => topics.contains(&topic),
            _ => false,
        }) || self.global_stores.values().any(|g| g.topic == topic);
        if read {
            self.errors.push(format!(
                "topic {topic} of global store {name} is already read by the topology"
            ));
        }
        self.global_stores
            .insert(name, GlobalStoreDef { topic, builder });
    }

    /// Records that logged store `store` holds the table of `topic` as read, record for
    /// record (Kafka's `connectSourceStoreAndTopic`), so `topic` can be its changelog.
    pub fn add_source_table(&mut self, store: &str, topic: &str) {
        self.source_tables
            .insert(store.to_owned(), topic.to_owned());
    }

    pub fn connect_store(&mut self, node: usize, store: &str) {
        if !self.stores.contains_key(store) {
            self.errors.push(format!(
                "processor {} uses state store {store}, which was not added",
                self.nodes[node].name
            ));
        }
        self.nodes[node].stores.push(store.to_owned());
    }

    pub fn build(self, optimization: TopologyOptimization) -> Result<Topology> {
        first_problem(&self.errors)?;
        let subtopologies = split(&self.nodes);
        let mut internal_topics = self.internal_topics;
        for topic in internal_topics.values_mut() {
            topic.sized_from = writer_sources(&self.nodes, &subtopologies, &topic.name);
        }
        let copartition_groups = subtopologies
            .iter()
            .filter(|s| s.source_topics.len() > 1)
            .map(|s| (s.id, s.source_topics.clone()))
            .collect();
        Ok(Topology {
            nodes: self.nodes,
            stores: self.stores,
            global_stores: self.global_stores,
            internal_topics,
            subtopologies,
            source_tables: self.source_tables,
            copartition_groups,
            optimization,
        })
    }
}

/// The first problem found while building, if any, and how many more there were.
fn first_problem(errors: &[String]) -> Result<()> {
    let Some(first) = errors.first() else {
        return Ok(());
    };
    let more = errors.len() - 1;
    Err(StreamsError::Topology(if more == 0 {
        first.clone()
    } else {
        format!("{first} (and {more} more problems)")
    }))
}

/// The source topics of the sub-topology whose sink writes `topic`.
fn writer_sources(nodes: &[NodeDef], subtopologies: &[SubTopology], topic: &str) -> Vec<String> {
    subtopologies
        .iter()
        .find(|s| {
            s.nodes.iter().any(|&n| {
                matches!(&nodes[n].kind, NodeKindDef::Sink { topic: Some(t), .. } if t == topic)
            })
        })
        .map(|s| s.source_topics.clone())
        .unwrap_or_default()
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Connected components of the node graph (edges and shared stores), numbered in
/// the order of their first node.
fn split(nodes: &[NodeDef]) -> Vec<SubTopology> {
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    let union = |parent: &mut Vec<usize>, a: usize, b: usize| {
        let (ra, rb) = (find(parent, a), find(parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    };
    let mut store_owner: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for &c in &node.children {
            union(&mut parent, i, c);
        }
        for s in &node.stores {
            match store_owner.get(s.as_str()) {
                Some(&o) => union(&mut parent, i, o),
                None => {
                    store_owner.insert(s, i);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..nodes.len() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(i);
    }
    groups
        .into_values()
        .enumerate()
        .map(|(id, members)| {
            let mut source_topics = Vec::new();
            let mut stores = BTreeSet::new();
            for &m in &members {
                if let NodeKindDef::Source { topics, .. } = &nodes[m].kind {
                    source_topics.extend(topics.iter().cloned());
                }
                stores.extend(nodes[m].stores.iter().cloned());
            }
            SubTopology {
                id,
                nodes: members,
                source_topics,
                stores: stores.into_iter().collect(),
            }
        })
        .collect()
}
