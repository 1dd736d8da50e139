//! `describe()`: Kafka Streams' `TopologyDescription` text, Graphviz DOT and Mermaid.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use super::{NodeKindDef, Topology};

/// The kind of a node, with what it reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// Reads topics.
    Source {
        /// Topics (logical names).
        topics: Vec<String>,
    },
    /// Runs a processor.
    Processor {
        /// Stores it uses.
        stores: Vec<String>,
    },
    /// Writes a topic.
    Sink {
        /// The topic, `None` when a topic extractor chooses per record.
        topic: Option<String>,
    },
}

/// One node of a [`SubtopologyDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDescription {
    /// Node name.
    pub name: String,
    /// What it is.
    pub kind: NodeKind,
    /// Child node names, in Kafka's description order.
    pub successors: Vec<String>,
    /// Parent node names, in Kafka's description order.
    pub predecessors: Vec<String>,
    size: usize,
}

/// One sub-topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtopologyDescription {
    /// Sub-topology number.
    pub id: usize,
    /// Nodes, ordered like Kafka Streams (larger sub-trees first, then by name).
    pub nodes: Vec<NodeDescription>,
}

/// A printable description of a topology (Kafka's `TopologyDescription`).
///
/// `Display` gives Kafka Streams' text format:
///
/// ```text
/// Topologies:
///    Sub-topology: 0
///     Source: KSTREAM-SOURCE-0000000000 (topics: [input])
///       --> KSTREAM-FILTER-0000000001
///     Processor: KSTREAM-FILTER-0000000001 (stores: [])
///       --> KSTREAM-SINK-0000000002
///       <-- KSTREAM-SOURCE-0000000000
///     Sink: KSTREAM-SINK-0000000002 (topic: output)
///       <-- KSTREAM-FILTER-0000000001
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    /// Sub-topologies, by number.
    pub subtopologies: Vec<SubtopologyDescription>,
    /// Global stores and the topics they copy, `(store, topic)`.
    pub global_stores: Vec<(String, String)>,
    /// Stores whose changelog is their source topic (`reuse.ktable.source.topics`),
    /// `(store, topic)`. Not part of the printed text, which stays Kafka's: Kafka's
    /// description does not show changelogs either.
    pub source_topic_changelogs: Vec<(String, String)>,
    internal_topics: Vec<String>,
}

fn order(a: &(usize, &str), b: &(usize, &str)) -> std::cmp::Ordering {
    // Kafka's NODE_COMPARATOR: larger sub-tree first, then by name.
    b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1))
}

pub(super) fn describe(topology: &Topology) -> TopologyDescription {
    let nodes = &topology.nodes;
    let mut sizes: Vec<Option<usize>> = vec![None; nodes.len()];
    fn size_of(i: usize, nodes: &[super::NodeDef], sizes: &mut [Option<usize>]) -> usize {
        if let Some(s) = sizes[i] {
            return s;
        }
        let mut s = 1;
        for &c in &nodes[i].children {
            s += size_of(c, nodes, sizes);
        }
        sizes[i] = Some(s);
        s
    }
    for i in 0..nodes.len() {
        size_of(i, nodes, &mut sizes);
    }
    let size = |i: usize| sizes[i].unwrap_or(1);
    let subtopologies = topology
        .subtopologies
        .iter()
        .map(|sub| {
            let neighbours = KafkaNeighbourOrder::of(nodes, &sub.nodes);
            let names = |idxs: &[usize]| -> Vec<String> {
                idxs.iter().map(|&i| nodes[i].name.clone()).collect()
            };
            let mut descs: Vec<NodeDescription> = sub
                .nodes
                .iter()
                .map(|&i| {
                    let n = &nodes[i];
                    let kind = match &n.kind {
                        NodeKindDef::Source { topics, .. } => NodeKind::Source {
                            topics: topics.clone(),
                        },
                        NodeKindDef::Processor { .. } => NodeKind::Processor {
                            stores: java_hash_set_order(&n.stores),
                        },
                        NodeKindDef::Sink { topic, .. } => NodeKind::Sink {
                            topic: topic.clone(),
                        },
                    };
                    NodeDescription {
                        name: n.name.clone(),
                        kind,
                        successors: names(neighbours.successors(i)),
                        predecessors: names(neighbours.predecessors(i)),
                        size: size(i),
                    }
                })
                .collect();
            descs.sort_by(|a, b| order(&(a.size, &a.name), &(b.size, &b.name)));
            SubtopologyDescription {
                id: sub.id,
                nodes: descs,
            }
        })
        .collect();
    TopologyDescription {
        subtopologies,
        global_stores: topology
            .global_stores
            .iter()
            .map(|(store, g)| (store.clone(), g.topic.clone()))
            .collect(),
        source_topic_changelogs: topology
            .source_tables
            .iter()
            .map(|(store, topic)| (store.clone(), topic.clone()))
            .collect(),
        internal_topics: topology.internal_topics.keys().cloned().collect(),
    }
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

impl fmt::Display for NodeDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            NodeKind::Source { topics } => write!(
                f,
                "Source: {} (topics: [{}])\n      --> {}",
                self.name,
                topics.join(", "),
                names(&self.successors)
            ),
            NodeKind::Processor { stores } => write!(
                f,
                "Processor: {} (stores: [{}])\n      --> {}\n      <-- {}",
                self.name,
                stores.join(", "),
                names(&self.successors),
                names(&self.predecessors)
            ),
            NodeKind::Sink { topic } => {
                match topic {
                    Some(t) => write!(f, "Sink: {} (topic: {t})", self.name)?,
                    None => write!(f, "Sink: {} (extractor: per-record topic)", self.name)?,
                }
                write!(f, "\n      <-- {}", names(&self.predecessors))
            }
        }
    }
}

impl fmt::Display for SubtopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Sub-topology: {}", self.id)?;
        for node in &self.nodes {
            writeln!(f, "    {node}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Topologies:")?;
        for sub in &self.subtopologies {
            writeln!(f, "   {sub}")?;
        }
        for (store, topic) in &self.global_stores {
            writeln!(
                f,
                "   Global store: {store} (topic: {topic}; will not generate tasks)"
            )?;
        }
        Ok(())
    }
}

/// Topics in the order they were first met (their ids).
fn by_id(topics: &BTreeMap<String, usize>) -> Vec<(usize, &str)> {
    let mut v: Vec<(usize, &str)> = topics.iter().map(|(t, &id)| (id, t.as_str())).collect();
    v.sort();
    v
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
}

impl TopologyDescription {
    /// Every node, in description order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeDescription> {
        self.subtopologies.iter().flat_map(|s| s.nodes.iter())
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&NodeDescription> {
        self.nodes().find(|n| n.name == name)
    }

    /// Logical names of the internal topics.
    pub fn internal_topics(&self) -> &[String] {
        &self.internal_topics
    }

    /// Topics (read or written) and stores, with stable ids for the renderings.
    fn topics_and_stores(&self) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
        let mut topics = BTreeMap::new();
        let mut stores = BTreeMap::new();
        for node in self.nodes() {
            match &node.kind {
                NodeKind::Source { topics: ts } => {
                    for t in ts {
                        let n = topics.len();
                        topics.entry(t.clone()).or_insert(n);
                    }
                }
                NodeKind::Sink { topic: Some(t) } => {
                    let n = topics.len();
                    topics.entry(t.clone()).or_insert(n);
                }
                NodeKind::Processor { stores: ss } => {
                    for s in ss {
                        let n = stores.len();
                        stores.entry(s.clone()).or_insert(n);
                    }
                }
                NodeKind::Sink { topic: None } => {}
            }
        }
        (topics, stores)
    }

    fn is_internal(&self, topic: &str) -> bool {
        self.internal_topics.iter().any(|t| t == topic)
    }

    /// Graphviz DOT: sub-topologies are clusters, topics are ellipses outside them
    /// (internal topics dashed), stores are cylinders attached to their processors.
    /// Render with `dot -Tsvg`.
    pub fn to_dot(&self) -> String {
        let (topics, stores) = self.topics_and_stores();
        let mut out = String::from(
            "digraph topology {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n",
        );
        for (id, topic) in by_id(&topics) {
            let style = if self.is_internal(topic) {
                "dashed,filled"
            } else {
                "filled"
            };
            let _ = writeln!(
                out,
                "  topic_{id} [label=\"{}\", shape=ellipse, style=\"{style}\", fillcolor=\"#fff2cc\"];",
                dot_escape(topic)
            );
        }
        for sub in &self.subtopologies {
            let _ = writeln!(
                out,
                "  subgraph cluster_{} {{\n    label=\"Sub-topology: {}\";\n    style=rounded;",
                sub.id, sub.id
            );
            for node in &sub.nodes {
                let shape = match node.kind {
                    NodeKind::Source { .. } => "invhouse",
                    NodeKind::Processor { .. } => "box",
                    NodeKind::Sink { .. } => "house",
                };
                let _ = writeln!(out, "    \"{}\" [shape={shape}];", dot_escape(&node.name));
                if let NodeKind::Processor { stores: ss } = &node.kind {
                    for s in ss {
                        let _ = writeln!(
                            out,
                            "    store_{} [label=\"{}\", shape=cylinder, style=filled, fillcolor=\"#dae8fc\"];",
                            stores[s],
                            dot_escape(s)
                        );
                    }
                }
            }
            out.push_str("  }\n");
        }
        for node in self.nodes() {
            let name = dot_escape(&node.name);
            match &node.kind {
                NodeKind::Source { topics: ts } => {
                    for t in ts {
                        let _ = writeln!(out, "  topic_{} -> \"{name}\";", topics[t]);
                    }
                }
                NodeKind::Sink { topic: Some(t) } => {
                    let _ = writeln!(out, "  \"{name}\" -> topic_{};", topics[t]);
                }
                NodeKind::Processor { stores: ss } => {
                    for s in ss {
                        let _ = writeln!(
                            out,
                            "  \"{name}\" -> store_{} [dir=both, style=dotted];",
                            stores[s]
                        );
                    }
                }
                NodeKind::Sink { topic: None } => {}
            }
            for succ in &node.successors {
                let _ = writeln!(out, "  \"{name}\" -> \"{}\";", dot_escape(succ));
            }
        }
        out.push_str("}\n");
        out
    }

    /// Mermaid flowchart: sub-topologies are subgraphs, topics are parallelograms,
    /// stores are cylinders linked to their processors with dotted lines.
    pub fn to_mermaid(&self) -> String {
        let (topics, stores) = self.topics_and_stores();
        let mut ids: BTreeMap<&str, String> = BTreeMap::new();
        for (n, node) in self.nodes().enumerate() {
            ids.insert(&node.name, format!("n{n}"));
        }
        let mut out = String::from("flowchart TB\n");
        for (id, topic) in by_id(&topics) {
            let _ = writeln!(out, "    t{id}[/\"{}\"/]", mermaid_escape(topic));
        }
        for sub in &self.subtopologies {
            let _ = writeln!(
                out,
                "    subgraph sub{}[\"Sub-topology: {}\"]",
                sub.id, sub.id
            );
            for node in &sub.nodes {
                let id = &ids[node.name.as_str()];
                let label = mermaid_escape(&node.name);
                match &node.kind {
                    NodeKind::Source { .. } => {
                        let _ = writeln!(out, "        {id}>\"{label}\"]");
                    }
                    NodeKind::Processor { stores: ss } => {
                        let _ = writeln!(out, "        {id}[\"{label}\"]");
                        for s in ss {
                            let _ = writeln!(
                                out,
                                "        s{}[(\"{}\")]",
                                stores[s],
                                mermaid_escape(s)
                            );
                        }
                    }
                    NodeKind::Sink { .. } => {
                        let _ = writeln!(out, "        {id}[[\"{label}\"]]");
                    }
                }
            }
            out.push_str("    end\n");
        }
        for node in self.nodes() {
            let id = &ids[node.name.as_str()];
            match &node.kind {
                NodeKind::Source { topics: ts } => {
                    for t in ts {
                        let _ = writeln!(out, "    t{} --> {id}", topics[t]);
                    }
                }
                NodeKind::Sink { topic: Some(t) } => {
                    let _ = writeln!(out, "    {id} --> t{}", topics[t]);
                }
                NodeKind::Processor { stores: ss } => {
                    for s in ss {
                        let _ = writeln!(out, "    {id} -.- s{}", stores[s]);
                    }
                }
                NodeKind::Sink { topic: None } => {}
            }
            for succ in &node.successors {
                if let Some(sid) = ids.get(succ.as_str()) {
                    let _ = writeln!(out, "    {id} --> {sid}");
                }
            }
        }
        out
    }
}

/// The order in which Kafka prints each node's successors and predecessors.
///
/// Kafka keeps them in sets sorted by its node comparator (larger sub-tree first,
/// then by name), but inserts into them while it computes the sub-tree sizes: it
/// connects the nodes in the iteration order of a `HashMap` of their names, and each
/// connection adds the child's size so far to its ancestors. So a neighbour is placed
/// by the sizes at the moment it was added; two predecessors of equal final size, such
/// as the two join processors above a join's merge node, come out in the order that
/// gives. This replays that process.
struct KafkaNeighbourOrder {
    successors: BTreeMap<usize, Vec<usize>>,
    predecessors: BTreeMap<usize, Vec<usize>>,
}

impl KafkaNeighbourOrder {
    fn of(nodes: &[super::NodeDef], members: &[usize]) -> Self {
        let mut order = members.to_vec();
        let buckets = java_hash_buckets(members.len(), 12);
        order.sort_by(|&a, &b| {
            java_bucket(&nodes[a].name, buckets)
                .cmp(&java_bucket(&nodes[b].name, buckets))
                .then_with(|| nodes[a].name.cmp(&nodes[b].name))
        });
        let mut sizes: BTreeMap<usize, usize> = members.iter().map(|&m| (m, 1)).collect();
        let mut replay = KafkaNeighbourOrder {
            successors: BTreeMap::new(),
            predecessors: BTreeMap::new(),
        };
        for &node in &order {
            for &parent in &nodes[node].parents {
                if !sizes.contains_key(&parent) {
                    continue;
                }
                Self::insert(&mut replay.predecessors, node, parent, nodes, &sizes);
                Self::insert(&mut replay.successors, parent, node, nodes, &sizes);
                let delta = sizes[&node];
                replay.add_size(parent, delta, &mut sizes);
            }
        }
        replay
    }

    /// Kafka's `TreeSet.add` with the sizes of now: a binary search.
    fn insert(
        sets: &mut BTreeMap<usize, Vec<usize>>,
        owner: usize,
        item: usize,
        nodes: &[super::NodeDef],
        sizes: &BTreeMap<usize, usize>,
    ) {
        let set = sets.entry(owner).or_default();
        let key = |i: usize| (sizes.get(&i).copied().unwrap_or(1), nodes[i].name.as_str());
        match set.binary_search_by(|&probe| order(&key(probe), &key(item))) {
            Ok(_) => {}
            Err(at) => set.insert(at, item),
        }
    }

    /// Kafka's `updateSize`: adds `delta` to `node` and every ancestor connected so far.
    fn add_size(&self, node: usize, delta: usize, sizes: &mut BTreeMap<usize, usize>) {
        if let Some(size) = sizes.get_mut(&node) {
            *size += delta;
        }
        for &parent in self.predecessors(node) {
            self.add_size(parent, delta, sizes);
        }
    }

    fn successors(&self, node: usize) -> &[usize] {
        self.successors.get(&node).map_or(&[], Vec::as_slice)
    }

    fn predecessors(&self, node: usize) -> &[usize] {
        self.predecessors.get(&node).map_or(&[], Vec::as_slice)
    }
}

/// The bucket count of a Java `HashMap` / `HashSet` grown from the default 16 buckets
/// to hold `len` entries (it doubles past 3/4 full); `first_threshold` is 12 for the
/// default table.
fn java_hash_buckets(len: usize, first_threshold: usize) -> usize {
    let (mut buckets, mut threshold) = (16usize, first_threshold);
    while len > threshold {
        buckets *= 2;
        threshold *= 2;
    }
    buckets
}

/// The bucket of `name` in a Java hash table of `buckets` buckets: `String.hashCode()`
/// spread as `HashMap.hash` does.
fn java_bucket(name: &str, buckets: usize) -> usize {
    let hash = name.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let spread = (hash ^ ((hash as u32) >> 16) as i32) as u32 as usize;
    spread & (buckets - 1)
}

/// `names` in the order Kafka prints a processor's stores: the iteration order of the
/// Java `HashSet` it copies them into (buckets by `String.hashCode()`, spread as
/// `HashMap` does, ties in insertion order). Matters only for processors with several
/// stores, such as the join processors of left and outer stream-stream joins.
fn java_hash_set_order(names: &[String]) -> Vec<String> {
    // `new HashSet<>(c)`: a table of at least 16 buckets holding `c` at load factor 0.75.
    let wanted = (names.len() as f64 / 0.75) as usize + 1;
    let buckets = wanted.max(16).next_power_of_two();
    let mut ordered = names.to_vec();
    ordered.sort_by_key(|name| java_bucket(name, buckets));
    ordered
}
