//! `topology.optimization`: the rewrites [`StreamsBuilder::build_with`] applies to the
//! logical graph before it writes the topology (Kafka's
//! `InternalStreamsBuilder.buildAndOptimizeTopology`).
//!
//! - `reuse.ktable.source.topics`: a table read straight from a topic keeps that topic
//!   as its store's changelog ([`Topology::source_table_stores`]).
//! - `merge.repartition.topics`: the automatic repartition topics downstream of one
//!   key-changing operation become a single repartition topic placed right after it
//!   (Kafka's `maybeOptimizeRepartitionOperations`).
//! - `single.store.self.join` is Kafka's rewrite of stream-stream self-joins; this
//!   library has no stream-stream joins yet, so building with it is an error rather
//!   than a silent no-op.
//!
//! [`StreamsBuilder::build_with`]: crate::dsl::StreamsBuilder::build_with
//! [`Topology::source_table_stores`]: super::Topology::source_table_stores

use std::collections::BTreeMap;

use super::graph::{GraphNodeKind, LogicalGraph};
use crate::error::{Result, StreamsError};

/// `topology.optimization` (Kafka's `StreamsConfig.TOPOLOGY_OPTIMIZATION_CONFIG`): the
/// rewrites applied when the topology is built with
/// [`StreamsBuilder::build_with`](crate::dsl::StreamsBuilder::build_with). Default
/// [`TopologyOptimization::NONE`].
///
/// - `reuse.ktable.source.topics` ([`TopologyOptimization::REUSE_KTABLE_SOURCE_TOPICS`]): the store of a table read
///   with [`StreamsBuilder::table`](crate::dsl::StreamsBuilder::table) (or
///   `table_with`, logging enabled) uses its input topic as its changelog instead of
///   `<application.id>-<store>-changelog`:
///   - no changelog topic is created and no changelog records are written for it;
///   - its changelog partition (for restores, checkpoints and the
///     [`StateRestoreListener`](crate::state::StateRestoreListener)) is the input
///     partition of its task, and its checkpoint is the input offset it reflects at
///     each commit;
///   - it is restored from that partition up to the group's committed offset, not the
///     log end: the records after it are processed again.
///
///   Restoring copies the topic's bytes into the store, so the table's serdes must be
///   symmetric (Kafka documents the same requirement).
/// - `merge.repartition.topics` ([`TopologyOptimization::MERGE_REPARTITION_TOPICS`]): groupings (and, later, joins)
///   below the same key-changing operation (`map`, `select_key`, `flat_map`,
///   `process`) share one repartition topic, inserted right after that operation and
///   named after the first of the topics it replaces. Type-preserving operations in
///   between (`filter`, `filter_not`, `peek`, branches) move below it. Explicit
///   [`KStream::repartition`](crate::dsl::KStream::repartition) topics and table
///   re-groupings are never merged.
/// - `single.store.self.join` is parsed (Kafka configurations carry over) but
///   building with it fails: this library has no stream-stream joins yet.
/// - [`TopologyOptimization::ALL`] is every rewrite this library implements: the two
///   above.
///
/// ```
/// use kafka_streams::topology::TopologyOptimization;
///
/// assert_eq!(TopologyOptimization::parse("all").unwrap(), TopologyOptimization::ALL);
/// let listed =
///     TopologyOptimization::parse("reuse.ktable.source.topics, merge.repartition.topics").unwrap();
/// assert_eq!(listed, TopologyOptimization::ALL);
/// assert!(!TopologyOptimization::parse("none").unwrap().reuses_ktable_source_topics());
/// assert!(TopologyOptimization::parse("all,none").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TopologyOptimization {
    reuse_ktable_source_topics: bool,
    merge_repartition_topics: bool,
    single_store_self_join: bool,
}

impl TopologyOptimization {
    /// `none`: no rewrite (the default).
    pub const NONE: Self = TopologyOptimization {
        reuse_ktable_source_topics: false,
        merge_repartition_topics: false,
        single_store_self_join: false,
    };

    /// `all`: every rewrite this library implements (`reuse.ktable.source.topics` and
    /// `merge.repartition.topics`).
    pub const ALL: Self = TopologyOptimization {
        reuse_ktable_source_topics: true,
        merge_repartition_topics: true,
        single_store_self_join: false,
    };

    /// `reuse.ktable.source.topics`: source tables use their input topic as changelog.
    pub const REUSE_KTABLE_SOURCE_TOPICS: Self = TopologyOptimization {
        reuse_ktable_source_topics: true,
        merge_repartition_topics: false,
        single_store_self_join: false,
    };

    /// `merge.repartition.topics`: one repartition topic per key-changing operation.
    pub const MERGE_REPARTITION_TOPICS: Self = TopologyOptimization {
        reuse_ktable_source_topics: false,
        merge_repartition_topics: true,
        single_store_self_join: false,
    };

    /// The values Kafka accepts besides `none` and `all`.
    const NAMED: [&'static str; 3] = [
        "reuse.ktable.source.topics",
        "merge.repartition.topics",
        "single.store.self.join",
    ];

    /// Parses a `topology.optimization` value as Kafka does: `none`, `all`, or a
    /// comma-separated list of optimization names (`none` and `all` stand alone).
    pub fn parse(value: &str) -> Result<Self> {
        let bad = |why: String| {
            StreamsError::Config(format!(
                "topology.optimization={value}: {why}; expected none, all, or a comma-separated list of {}",
                Self::NAMED.join(", ")
            ))
        };
        let names: Vec<&str> = value.split(',').map(str::trim).collect();
        let alone = names.iter().any(|n| *n == "none" || *n == "all");
        if alone && names.len() > 1 {
            return Err(bad("none and all cannot be combined with others".into()));
        }
        let mut parsed = Self::NONE;
        for name in names {
            match name {
                "none" => {}
                "all" => parsed = Self::ALL,
                "reuse.ktable.source.topics" => parsed.reuse_ktable_source_topics = true,
                "merge.repartition.topics" => parsed.merge_repartition_topics = true,
                "single.store.self.join" => parsed.single_store_self_join = true,
                other => return Err(bad(format!("unknown optimization {other:?}"))),
            }
        }
        Ok(parsed)
    }

    /// Whether source tables use their input topic as their changelog.
    pub fn reuses_ktable_source_topics(&self) -> bool {
        self.reuse_ktable_source_topics
    }

    /// Whether automatic repartition topics below one key-changing operation merge.
    pub fn merges_repartition_topics(&self) -> bool {
        self.merge_repartition_topics
    }

    /// Whether `single.store.self.join` was asked for (building with it fails).
    pub fn single_store_self_join(&self) -> bool {
        self.single_store_self_join
    }
}

/// Applies `optimization` to `graph` in place; an optimization this library does not
/// implement is an error.
pub(crate) fn optimize(graph: &mut LogicalGraph, optimization: TopologyOptimization) -> Result<()> {
    if optimization.single_store_self_join {
        return Err(StreamsError::Topology(
            "topology.optimization single.store.self.join is not supported: this library \
             has no stream-stream joins yet; use none, all, reuse.ktable.source.topics or \
             merge.repartition.topics"
                .into(),
        ));
    }
    if optimization.merge_repartition_topics {
        merge_repartition_topics(graph);
    }
    graph.reuse_source_topics = optimization.reuse_ktable_source_topics;
    Ok(())
}

/// The key-changing node above repartition node `rep`, and the child of that node
/// on the way down to `rep`, when only type-preserving single-parent nodes lie
/// between (so a repartition right after the key-changer carries the same types).
fn key_changing_ancestor(graph: &LogicalGraph, rep: usize) -> Option<(usize, usize)> {
    let mut child = rep;
    loop {
        let [parent] = graph.nodes[child].parents[..] else {
            return None;
        };
        let node = &graph.nodes[parent];
        if node.key_changing {
            return Some((parent, child));
        }
        if !node.type_preserving {
            return None;
        }
        child = parent;
    }
}

/// Kafka's `maybeOptimizeRepartitionOperations`: for each key-changing node with
/// optimizable repartition nodes below it, one new repartition node (named after the
/// first) becomes the key-changer's child, the path below moves under it, and the old
/// repartition nodes are spliced out.
fn merge_repartition_topics(graph: &mut LogicalGraph) {
    let mut groups: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    for id in 0..graph.nodes.len() {
        let node = &graph.nodes[id];
        if node.removed {
            continue;
        }
        if let GraphNodeKind::Repartition {
            optimizable: true, ..
        } = node.kind
        {
            if let Some((key_changer, child)) = key_changing_ancestor(graph, id) {
                groups.entry(key_changer).or_default().push((id, child));
            }
        }
    }
    for (key_changer, reps) in groups {
        let Some(&(first, _)) = reps.first() else {
            continue;
        };
        let merged = graph.copy_repartition(first, key_changer);
        for (rep, child) in reps {
            if !graph.nodes[merged].children.contains(&child) {
                graph.unlink(key_changer, child);
                graph.link(merged, child);
            }
            graph.splice_out(rep);
        }
        graph.link(key_changer, merged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafkas_values() {
        assert_eq!(
            TopologyOptimization::parse("none").unwrap(),
            TopologyOptimization::NONE
        );
        assert_eq!(TopologyOptimization::default(), TopologyOptimization::NONE);
        let all = TopologyOptimization::parse("all").unwrap();
        assert!(all.reuses_ktable_source_topics() && all.merges_repartition_topics());
        assert!(!all.single_store_self_join());
        assert_eq!(
            TopologyOptimization::parse(" reuse.ktable.source.topics , merge.repartition.topics")
                .unwrap(),
            TopologyOptimization::ALL
        );
        assert_eq!(
            TopologyOptimization::parse("merge.repartition.topics").unwrap(),
            TopologyOptimization::MERGE_REPARTITION_TOPICS
        );
        assert!(TopologyOptimization::parse("single.store.self.join")
            .unwrap()
            .single_store_self_join());
        for bad in ["all,none", "none,merge.repartition.topics", "reuse", ""] {
            let err = TopologyOptimization::parse(bad).unwrap_err().to_string();
            assert!(err.contains("topology.optimization"), "{err}");
        }
    }
}
