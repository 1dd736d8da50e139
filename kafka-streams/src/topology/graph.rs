//! The logical graph the DSL builds (Kafka's `GraphNode` tree in
//! `InternalStreamsBuilder`): typed nodes that the optimize pass
//! ([`super::optimize`]) may rewrite before [`LogicalGraph::build`] writes them, in
//! build order, into the printable [`Topology`].
//!
//! A graph node is one DSL operation. Most become one topology node; a repartition
//! node becomes a sink, an internal topic and a source, which is what lets the
//! optimizer move or merge it as one unit.

use std::sync::Arc;

use super::codec::{SinkCodec, SourceCodec};
use super::optimize::{optimize, TopologyOptimization};
use super::{first_problem, Topology, TopologyBuilder};
use crate::error::Result;
use crate::processor::internal::ProcessorFactory;
use crate::state::StoreBuilder;

/// What a graph node does.
#[derive(Clone)]
pub(crate) enum GraphNodeKind {
    /// Reads topics.
    Source {
        topics: Vec<String>,
        codec: Arc<dyn SourceCodec>,
    },
    /// Runs a processor (stateless operator, aggregation, custom processor).
    Processor { factory: ProcessorFactory },
    /// The processor that materializes a table read straight from `topic` into
    /// `store` (Kafka's `TableSourceNode`); under `reuse.ktable.source.topics` the
    /// topic is the store's changelog.
    TableSource {
        factory: ProcessorFactory,
        store: String,
        /// `None` when the store's bytes may differ from the topic's (a value serde of
        /// its own, or logging disabled), so the topic cannot stand in as changelog.
        topic: Option<String>,
    },
    /// Writes a topic.
    Sink {
        topic: Option<String>,
        codec: Arc<dyn SinkCodec>,
    },
    /// Writes the stream to `<base>-repartition` and reads it back (Kafka's
    /// `OptimizableRepartitionNode` when `optimizable`, else an explicit
    /// `repartition()` or a table re-grouping, which the optimizer leaves alone).
    Repartition {
        base: String,
        partitions: Option<i32>,
        sink: Arc<dyn SinkCodec>,
        source: Arc<dyn SourceCodec>,
        optimizable: bool,
    },
}

/// One DSL operation.
#[derive(Clone)]
pub(crate) struct GraphNode {
    pub name: String,
    pub kind: GraphNodeKind,
    pub parents: Vec<usize>,
    pub children: Vec<usize>,
    pub stores: Vec<String>,
    /// Changes the key (`map`, `select_key`, `flat_map`, `process`): a grouping or
    /// join below needs a repartition topic.
    pub key_changing: bool,
    /// Forwards its input records' types unchanged (`filter`, `peek`, branches), so a
    /// repartition below may move above it.
    pub type_preserving: bool,
    /// Write order: `(node id, 0)`, or `(key-changer id, 1)` for a repartition the
    /// optimizer placed right after a key-changing node (Kafka's build priority).
    pub priority: (usize, u8),
    /// Spliced out by the optimizer.
    pub removed: bool,
}

/// The DSL's graph, before optimization.
#[derive(Clone, Default)]
pub(crate) struct LogicalGraph {
    pub nodes: Vec<GraphNode>,
    /// In the order added; the topology builder reports a name added twice.
    stores: Vec<Arc<dyn StoreBuilder>>,
    global_stores: Vec<(String, Arc<dyn StoreBuilder>)>,
    /// Internal topics written and read by plain sink and source nodes (a foreign-key
    /// join's subscription and response topics), sized when the client starts.
    internal_topics: Vec<String>,
    errors: Vec<String>,
    /// Set by the optimizer: table sources keep their topic as changelog.
    pub reuse_source_topics: bool,
    /// How long after its end a window of a windowed aggregation node closes: the
    /// grace period (plus the inactivity gap for sessions), for `suppress`.
    window_close_delays: std::collections::BTreeMap<usize, i64>,
}

impl LogicalGraph {
    fn push(&mut self, name: String, kind: GraphNodeKind, parents: &[usize]) -> usize {
        if name.is_empty() {
            self.errors.push("a node name must not be empty".into());
        }
        let id = self.nodes.len();
        self.nodes.push(GraphNode {
            name,
            kind,
            parents: parents.to_vec(),
            children: Vec::new(),
            stores: Vec::new(),
            key_changing: false,
            type_preserving: false,
            priority: (id, 0),
            removed: false,
        });
        for &p in parents {
            self.nodes[p].children.push(id);
        }
        id
    }

    /// Adds a source node reading `topics`.
    pub fn add_source(
        &mut self,
        name: String,
        topics: Vec<String>,
        codec: Arc<dyn SourceCodec>,
    ) -> usize {
        self.push(name, GraphNodeKind::Source { topics, codec }, &[])
    }

    /// Adds a processor node below `parents`.
    pub fn add_processor(
        &mut self,
        name: String,
        factory: ProcessorFactory,
        parents: &[usize],
    ) -> usize {
        self.push(name, GraphNodeKind::Processor { factory }, parents)
    }

    /// Adds the processor materializing the table of `topic` into `store`.
    pub fn add_table_source(
        &mut self,
        name: String,
        factory: ProcessorFactory,
        store: String,
        topic: Option<String>,
        parent: usize,
    ) -> usize {
        let id = self.push(
            name,
            GraphNodeKind::TableSource {
                factory,
                store: store.clone(),
                topic,
            },
            &[parent],
        );
        self.connect_store(id, &store);
        id
    }

    /// Adds a sink node below `parents`.
    pub fn add_sink(
        &mut self,
        name: String,
        topic: Option<String>,
        codec: Arc<dyn SinkCodec>,
        parents: &[usize],
    ) -> usize {
        self.push(name, GraphNodeKind::Sink { topic, codec }, parents)
    }

    /// Adds a repartition through `<base>-repartition` below `parent`; records go on
    /// from the node it returns (the repartition source).
    pub fn add_repartition(
        &mut self,
        base: String,
        partitions: Option<i32>,
        sink: Arc<dyn SinkCodec>,
        source: Arc<dyn SourceCodec>,
        parent: usize,
        optimizable: bool,
    ) -> usize {
        // A partition count below one is reported when the topic is written out.
        self.push(
            format!("{base}-repartition-source"),
            GraphNodeKind::Repartition {
                base,
                partitions,
                sink,
                source,
                optimizable,
            },
            &[parent],
        )
    }

    /// Marks node `id` as changing the key.
    pub fn set_key_changing(&mut self, id: usize) {
        self.nodes[id].key_changing = true;
    }

    /// Marks node `id` as forwarding its input types unchanged.
    pub fn set_type_preserving(&mut self, id: usize) {
        self.nodes[id].type_preserving = true;
    }

    /// Gives node `idx` another name (only before it has children).
    pub fn rename(&mut self, idx: usize, name: String) {
        if !self.nodes[idx].children.is_empty() {
            let old = self.nodes[idx].name.clone();
            self.errors.push(format!(
                "node {old} cannot be renamed to {name} after operators were added to it"
            ));
            return;
        }
        if name.is_empty() {
            self.errors.push("a node name must not be empty".into());
            return;
        }
        self.nodes[idx].name = name;
    }

    /// The name of node `idx`.
    pub fn node_name(&self, idx: usize) -> &str {
        &self.nodes[idx].name
    }

    /// Records a problem found while building; `build` reports the first.
    pub fn error(&mut self, message: String) {
        self.errors.push(message);
    }

    /// Adds a state store.
    pub fn add_store(&mut self, builder: Arc<dyn StoreBuilder>) {
        self.stores.push(builder);
    }

    /// Adds a global store copying `topic`.
    pub fn add_global_store(&mut self, topic: String, builder: Arc<dyn StoreBuilder>) {
        self.global_stores.push((topic, builder));
    }

    /// Records that node `node` is a windowed aggregation whose windows close `delay_ms`
    /// after their end (Kafka's grace period, plus the gap for session windows).
    pub fn set_window_close_delay(&mut self, node: usize, delay_ms: i64) {
        self.window_close_delays.insert(node, delay_ms);
    }

    /// The window close delay that `suppress(until_window_closes)` below `node` waits
    /// (Kafka's `GraphGraceSearchUtil.findAndVerifyWindowGrace`): that of the nearest
    /// windowed aggregation upstream, the largest over several parents; an error
    /// naming the chain of nodes walked when a path upstream reaches a source without
    /// one.
    pub fn window_close_delay(&self, node: usize) -> Result<i64, String> {
        self.find_window_close_delay(node, "")
    }

    fn find_window_close_delay(&self, node: usize, chain: &str) -> Result<i64, String> {
        if let Some(delay) = self.window_close_delays.get(&node) {
            return Ok(*delay);
        }
        let name = &self.nodes[node].name;
        let chain = if chain.is_empty() {
            name.clone()
        } else {
            format!("{name}->{chain}")
        };
        let parents = &self.nodes[node].parents;
        if parents.is_empty() {
            return Err(format!(
                "Window close time is only defined for windowed computations. Got [{chain}]."
            ));
        }
        parents.iter().try_fold(i64::MIN, |delay, &parent| {
            Ok(delay.max(self.find_window_close_delay(parent, &chain)?))
        })
    }

    /// Declares `topic` an internal topic (prefixed with the application id, created
    /// at start) that the topology writes with a sink and reads with a source.
    pub fn add_internal_topic(&mut self, topic: String) {
        self.internal_topics.push(topic);
    }

    /// Connects node `node` to store `store`.
    pub fn connect_store(&mut self, node: usize, store: &str) {
        self.nodes[node].stores.push(store.to_owned());
    }

    /// Links `parent` → `child`.
    pub(super) fn link(&mut self, parent: usize, child: usize) {
        if !self.nodes[parent].children.contains(&child) {
            self.nodes[parent].children.push(child);
        }
        if !self.nodes[child].parents.contains(&parent) {
            self.nodes[child].parents.push(parent);
        }
    }

    /// Removes the edge `parent` → `child`.
    pub(super) fn unlink(&mut self, parent: usize, child: usize) {
        self.nodes[parent].children.retain(|&c| c != child);
        self.nodes[child].parents.retain(|&p| p != parent);
    }

    /// Removes node `id`, connecting its parents to its children.
    pub(super) fn splice_out(&mut self, id: usize) {
        let parents = self.nodes[id].parents.clone();
        let children = self.nodes[id].children.clone();
        for &p in &parents {
            self.unlink(p, id);
        }
        for &c in &children {
            self.unlink(id, c);
            for &p in &parents {
                self.link(p, c);
            }
        }
        self.nodes[id].removed = true;
    }

    /// A new, unconnected copy of repartition node `id` (name, topic, serdes; no fixed
    /// partition count), written right after `after` (the key-changing node).
    pub(super) fn copy_repartition(&mut self, id: usize, after: usize) -> usize {
        let node = &self.nodes[id];
        let kind = match &node.kind {
            GraphNodeKind::Repartition {
                base, sink, source, ..
            } => GraphNodeKind::Repartition {
                base: base.clone(),
                partitions: None,
                sink: sink.clone(),
                source: source.clone(),
                optimizable: true,
            },
            other => other.clone(),
        };
        let name = node.name.clone();
        let new = self.push(name, kind, &[]);
        self.nodes[new].priority = (after, 1);
        new
    }

    /// Optimizes a copy of the graph and writes it into a [`Topology`].
    pub fn build(&self, optimization: TopologyOptimization) -> Result<Topology> {
        first_problem(&self.errors)?;
        let mut graph = self.clone();
        optimize(&mut graph, optimization)?;
        graph.write(optimization)
    }

    /// Writes the nodes in build order into the physical topology builder.
    fn write(self, optimization: TopologyOptimization) -> Result<Topology> {
        let mut builder = TopologyBuilder::default();
        for store in &self.stores {
            builder.add_store(store.clone());
        }
        for (topic, store) in &self.global_stores {
            builder.add_global_store(topic.clone(), store.clone());
        }
        for topic in &self.internal_topics {
            builder.add_internal_topic(topic.clone(), None);
        }
        let mut order: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].removed)
            .collect();
        order.sort_by_key(|&i| self.nodes[i].priority);
        let mut written: Vec<Option<usize>> = vec![None; self.nodes.len()];
        for id in order {
            let node = &self.nodes[id];
            let parents: Vec<usize> = node.parents.iter().filter_map(|&p| written[p]).collect();
            let idx = match &node.kind {
                GraphNodeKind::Source { topics, codec } => {
                    builder.add_source(node.name.clone(), topics.clone(), codec.clone())
                }
                GraphNodeKind::Processor { factory } => {
                    builder.add_processor(node.name.clone(), factory.clone(), &parents)
                }
                GraphNodeKind::TableSource {
                    factory,
                    store,
                    topic,
                } => {
                    if let (true, Some(topic)) = (self.reuse_source_topics, topic) {
                        builder.add_source_table(store, topic);
                    }
                    builder.add_processor(node.name.clone(), factory.clone(), &parents)
                }
                GraphNodeKind::Sink { topic, codec } => {
                    builder.add_sink(node.name.clone(), topic.clone(), codec.clone(), &parents)
                }
                GraphNodeKind::Repartition {
                    base,
                    partitions,
                    sink,
                    source,
                    ..
                } => {
                    let topic = format!("{base}-repartition");
                    builder.add_internal_topic(topic.clone(), *partitions);
                    builder.add_sink(
                        format!("{base}-repartition-sink"),
                        Some(topic.clone()),
                        sink.clone(),
                        &parents,
                    );
                    builder.add_source(node.name.clone(), vec![topic], source.clone())
                }
            };
            for store in &node.stores {
                builder.connect_store(idx, store);
            }
            written[id] = Some(idx);
        }
        builder.build(optimization)
    }
}
