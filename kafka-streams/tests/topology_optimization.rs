//! `topology.optimization`: every value the config accepts either changes the built
//! topology (its `describe()`) or is rejected at build time, and an optimized
//! topology computes what the plain one computes.

use kafka_client::serde::StringSerde;
use kafka_client::ClientConfig;
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::runtime::StreamsConfig;
use kafka_streams::test_driver::TopologyTestDriver;
use kafka_streams::topology::{NodeKind, Topology, TopologyOptimization};
use kafka_streams::StreamsError;

type R = anyhow::Result<()>;

/// Words keyed by themselves (a key change), filtered, then counted and
/// concatenated: two groupings below one key-changing operation.
fn two_groupings() -> StreamsBuilder {
    let builder = StreamsBuilder::new();
    let words = builder
        .stream::<String, String>("sentences")
        .flat_map_values(|line: String| line.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .select_key(|_, word| word.clone())
        .filter(|word, _| !word.is_empty());
    words
        .group_by_key()
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .to("counts-out");
    words
        .group_by_key()
        .reduce_with(|a, b| format!("{a}+{b}"), Materialized::as_("joined"))
        .to_stream()
        .to("joined-out");
    builder
}

fn internal_topics(topology: &Topology) -> Vec<String> {
    topology.internal_topics().map(|t| t.name.clone()).collect()
}

/// The single predecessor of node `name` in the description.
fn predecessor(topology: &Topology, name: &str) -> Vec<String> {
    topology
        .describe()
        .subtopologies
        .iter()
        .flat_map(|s| s.nodes.iter())
        .find(|n| n.name == name)
        .map(|n| n.predecessors.clone())
        .unwrap_or_default()
}

#[test]
fn merge_repartition_topics_leaves_one_topic_right_after_the_key_change() -> R {
    let builder = two_groupings();
    let plain = builder.build()?;
    let merged = builder.build_with(TopologyOptimization::MERGE_REPARTITION_TOPICS)?;

    assert_ne!(plain.describe(), merged.describe());
    assert_ne!(plain.describe().to_string(), merged.describe().to_string());
    assert_eq!(
        internal_topics(&plain),
        vec![
            "counts-repartition".to_owned(),
            "joined-repartition".to_owned()
        ]
    );
    // Named after the first topic it replaces, as Kafka does.
    assert_eq!(
        internal_topics(&merged),
        vec!["counts-repartition".to_owned()]
    );
    assert_eq!(plain.subtopology_count(), 3);
    assert_eq!(merged.subtopology_count(), 2);

    // Unoptimized: the filter feeds both repartition sinks. Merged: the single sink
    // hangs off the key-changing node, and the filter runs after the topic.
    assert_eq!(
        predecessor(&plain, "counts-repartition-sink"),
        vec!["KSTREAM-FILTER-0000000003".to_owned()]
    );
    assert_eq!(
        predecessor(&merged, "counts-repartition-sink"),
        vec!["KSTREAM-KEY-SELECT-0000000002".to_owned()]
    );
    assert_eq!(
        predecessor(&merged, "KSTREAM-FILTER-0000000003"),
        vec!["counts-repartition-source".to_owned()]
    );
    let text = merged.describe().to_string();
    assert!(!text.contains("joined-repartition"), "{text}");
    // `all` includes it.
    assert_eq!(
        builder.build_with(TopologyOptimization::ALL)?.describe(),
        merged.describe()
    );
    Ok(())
}

/// The counts and the concatenations the topology writes.
type Outputs = (Vec<(String, i64)>, Vec<String>);

fn counts_and_joins(topology: Topology) -> anyhow::Result<Outputs> {
    let driver = TopologyTestDriver::new(topology)?;
    let input = driver.create_input_topic::<String, String>("sentences");
    for line in ["a b a", "", "c a b", "b"] {
        input.pipe_input("k".to_owned(), line.to_owned())?;
    }
    let counts = driver
        .create_output_topic::<String, i64>("counts-out")
        .read_key_values_to_list()?;
    let joined = driver
        .create_output_topic::<String, String>("joined-out")
        .read_values_to_list()?;
    Ok((counts, joined))
}

#[test]
fn the_merged_topology_computes_what_the_plain_one_does() -> R {
    let builder = two_groupings();
    let plain = counts_and_joins(builder.build()?)?;
    let merged = counts_and_joins(builder.build_with(TopologyOptimization::ALL)?)?;
    assert_eq!(plain, merged);
    let mut last = std::collections::BTreeMap::new();
    for (word, count) in &merged.0 {
        last.insert(word.clone(), *count);
    }
    let expected: std::collections::BTreeMap<String, i64> = [("a", 3), ("b", 3), ("c", 1)]
        .map(|(w, c)| (w.to_owned(), c))
        .into();
    assert_eq!(last, expected);
    Ok(())
}

#[test]
fn explicit_repartitions_and_value_changes_are_not_merged() -> R {
    // An explicit repartition() is the user's choice (Kafka's unoptimizable
    // repartition node), and a map_values between the key change and the grouping
    // changes the types the topic would carry: neither moves.
    let builder = StreamsBuilder::new();
    let keyed = builder
        .stream::<String, String>("in")
        .select_key(|_, v| v.clone());
    keyed.repartition().group_by_key().count();
    keyed.map_values(|v| v.len() as i64).group_by_key().count();
    let plain = builder.build()?;
    let merged = builder.build_with(TopologyOptimization::MERGE_REPARTITION_TOPICS)?;
    assert_eq!(plain.describe(), merged.describe());
    assert_eq!(internal_topics(&plain).len(), 2);
    Ok(())
}

#[test]
fn reuse_ktable_source_topics_makes_the_input_topic_the_changelog() -> R {
    let builder = StreamsBuilder::new();
    builder
        .table_with::<String, String>("plants", Materialized::as_("plants-latest"))
        .to_stream()
        .to("plants-out");
    let plain = builder.build()?;
    let reused = builder.build_with(TopologyOptimization::REUSE_KTABLE_SOURCE_TOPICS)?;
    assert_ne!(plain.describe(), reused.describe());
    assert!(plain.describe().source_topic_changelogs.is_empty());
    assert_eq!(
        reused.describe().source_topic_changelogs,
        vec![("plants-latest".to_owned(), "plants".to_owned())]
    );
    // The nodes themselves are Kafka's either way.
    assert_eq!(
        plain.describe().subtopologies,
        reused.describe().subtopologies
    );
    Ok(())
}

#[test]
fn single_store_self_join_is_rejected_at_build_time() {
    let builder = two_groupings();
    let config = StreamsConfig::new("app", ClientConfig::new("localhost:9092"))
        .set("topology.optimization", "single.store.self.join")
        .expect("Kafka's value parses");
    let err = builder
        .build_with(config.get_topology_optimization())
        .expect_err("not implemented, so rejected");
    assert!(matches!(err, StreamsError::Topology(_)), "{err}");
    assert!(err.to_string().contains("single.store.self.join"), "{err}");
}

#[test]
fn every_accepted_value_changes_the_topology_or_is_rejected() -> R {
    // A topology where both implemented rewrites apply.
    let builder = two_groupings();
    builder.table_with::<String, String>("plants", Materialized::as_("plants-latest"));
    let plain = builder.build()?.describe();
    for value in [
        "all",
        "reuse.ktable.source.topics",
        "merge.repartition.topics",
        "reuse.ktable.source.topics,merge.repartition.topics",
        "single.store.self.join",
        "merge.repartition.topics,single.store.self.join",
    ] {
        let optimization = TopologyOptimization::parse(value)?;
        match builder.build_with(optimization) {
            Ok(topology) => assert_ne!(topology.describe(), plain, "{value}"),
            Err(err) => {
                assert!(optimization.single_store_self_join(), "{value}: {err}");
            }
        }
    }
    Ok(())
}

#[test]
fn the_repartition_topic_is_sized_from_the_sources_of_its_writer() -> R {
    let builder = two_groupings();
    let topology = builder.build_with(TopologyOptimization::ALL)?;
    let topic = topology
        .internal_topics()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no repartition topic"))?;
    assert_eq!(topic.partitions, None);
    assert_eq!(topic.sized_from, vec!["sentences".to_owned()]);
    // Co-partitioning: a merged stream of two topics must read them alike.
    let builder = StreamsBuilder::new();
    let a = builder.stream_with::<String, String>(
        "left",
        kafka_streams::dsl::Consumed::with(StringSerde, StringSerde),
    );
    let b = builder.stream::<String, String>("right");
    a.merge(&b).to("both");
    let topology = builder.build()?;
    let groups: Vec<Vec<String>> = topology
        .copartition_groups()
        .map(<[String]>::to_vec)
        .collect();
    assert_eq!(groups, vec![vec!["left".to_owned(), "right".to_owned()]]);
    let kinds: Vec<bool> = topology
        .describe()
        .subtopologies
        .iter()
        .flat_map(|s| s.nodes.iter())
        .map(|n| matches!(n.kind, NodeKind::Source { .. }))
        .collect();
    assert_eq!(kinds.iter().filter(|s| **s).count(), 2);
    Ok(())
}

#[test]
fn the_merged_topology_prints_like_kafkas() -> R {
    // Kafka's optimized shape: the repartition right after the key change, the filter
    // and both aggregations behind it. (Kafka's repartition also has a null-key filter
    // node before its sink, which this library's repartition does not add, optimized
    // or not.)
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [sentences])
      --> KSTREAM-FLATMAPVALUES-0000000001
    Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])
      --> KSTREAM-KEY-SELECT-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])
      --> counts-repartition-sink
      <-- KSTREAM-FLATMAPVALUES-0000000001
    Sink: counts-repartition-sink (topic: counts-repartition)
      <-- KSTREAM-KEY-SELECT-0000000002

   Sub-topology: 1
    Source: counts-repartition-source (topics: [counts-repartition])
      --> KSTREAM-FILTER-0000000003
    Processor: KSTREAM-FILTER-0000000003 (stores: [])
      --> KSTREAM-AGGREGATE-0000000004, KSTREAM-REDUCE-0000000007
      <-- counts-repartition-source
    Processor: KSTREAM-AGGREGATE-0000000004 (stores: [counts])
      --> KTABLE-TOSTREAM-0000000005
      <-- KSTREAM-FILTER-0000000003
    Processor: KSTREAM-REDUCE-0000000007 (stores: [joined])
      --> KTABLE-TOSTREAM-0000000008
      <-- KSTREAM-FILTER-0000000003
    Processor: KTABLE-TOSTREAM-0000000005 (stores: [])
      --> KSTREAM-SINK-0000000006
      <-- KSTREAM-AGGREGATE-0000000004
    Processor: KTABLE-TOSTREAM-0000000008 (stores: [])
      --> KSTREAM-SINK-0000000009
      <-- KSTREAM-REDUCE-0000000007
    Sink: KSTREAM-SINK-0000000006 (topic: counts-out)
      <-- KTABLE-TOSTREAM-0000000005
    Sink: KSTREAM-SINK-0000000009 (topic: joined-out)
      <-- KTABLE-TOSTREAM-0000000008

";
    let merged = two_groupings().build_with(TopologyOptimization::ALL)?;
    assert_eq!(merged.describe().to_string(), expected);
    Ok(())
}

#[test]
fn a_topology_built_with_other_optimizations_than_configured_is_rejected() -> R {
    let builder = StreamsBuilder::new();
    builder.table::<String, String>("plants");
    let config = || StreamsConfig::new("app", ClientConfig::new("localhost:9092"));
    // `none` (the default) runs whatever the topology was built with.
    TopologyTestDriver::with_config(builder.build_with(TopologyOptimization::ALL)?, config())?;
    let all = config().topology_optimization(TopologyOptimization::ALL);
    TopologyTestDriver::with_config(builder.build_with(TopologyOptimization::ALL)?, all)?;
    let all = config().topology_optimization(TopologyOptimization::ALL);
    let err = TopologyTestDriver::with_config(builder.build()?, all)
        .err()
        .ok_or_else(|| anyhow::anyhow!("a mismatch must be rejected"))?;
    assert!(err.to_string().contains("build_with"), "{err}");
    Ok(())
}
