//! Stream-stream joins in the test driver: the topology Kafka builds (`describe()`
//! compared with Kafka 4.1's own output), repartitioning before a join and the size of
//! its topic, changelogged stores, dropped late records, and left/outer results held
//! back until their window closes. Record-by-record equality with Kafka's
//! `TopologyTestDriver` is checked by the `stream-join` scenarios of the conformance
//! test.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_client::serde::StringSerde;
use kafka_client::ClientConfig;
use kafka_streams::dsl::{Consumed, JoinWindows, KStream, StreamJoined, StreamsBuilder};
use kafka_streams::runtime::StreamsConfig;
use kafka_streams::test_driver::TopologyTestDriver;

type R = Result<(), Box<dyn std::error::Error>>;

fn windows() -> JoinWindows {
    JoinWindows::of_time_difference_and_grace(Duration::from_secs(5), Duration::from_secs(1))
        .expect("valid windows")
}

fn inputs(builder: &StreamsBuilder) -> (KStream<String, String>, KStream<String, String>) {
    (
        builder.stream_with("left", Consumed::with(StringSerde, StringSerde)),
        builder.stream_with("right", Consumed::with(StringSerde, StringSerde)),
    )
}

fn concat(a: &String, b: &String) -> String {
    format!("{a}{b}")
}

// The expected texts below are Kafka 4.1.1's `Topology.describe()` of the same DSL
// calls (printed with its jars), verbatim.

#[test]
fn an_inner_join_is_described_as_kafka_describes_it() -> R {
    let builder = StreamsBuilder::new();
    let (left, right) = inputs(&builder);
    left.join(&right, concat, windows()).to("out");
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [left])
      --> KSTREAM-WINDOWED-0000000002
    Source: KSTREAM-SOURCE-0000000001 (topics: [right])
      --> KSTREAM-WINDOWED-0000000003
    Processor: KSTREAM-WINDOWED-0000000002 (stores: [KSTREAM-JOINTHIS-0000000004-store])
      --> KSTREAM-JOINTHIS-0000000004
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-WINDOWED-0000000003 (stores: [KSTREAM-JOINOTHER-0000000005-store])
      --> KSTREAM-JOINOTHER-0000000005
      <-- KSTREAM-SOURCE-0000000001
    Processor: KSTREAM-JOINOTHER-0000000005 (stores: [KSTREAM-JOINTHIS-0000000004-store])
      --> KSTREAM-MERGE-0000000006
      <-- KSTREAM-WINDOWED-0000000003
    Processor: KSTREAM-JOINTHIS-0000000004 (stores: [KSTREAM-JOINOTHER-0000000005-store])
      --> KSTREAM-MERGE-0000000006
      <-- KSTREAM-WINDOWED-0000000002
    Processor: KSTREAM-MERGE-0000000006 (stores: [])
      --> KSTREAM-SINK-0000000007
      <-- KSTREAM-JOINTHIS-0000000004, KSTREAM-JOINOTHER-0000000005
    Sink: KSTREAM-SINK-0000000007 (topic: out)
      <-- KSTREAM-MERGE-0000000006

";
    assert_eq!(builder.build()?.describe().to_string(), expected);
    Ok(())
}

#[test]
fn an_outer_join_is_described_as_kafka_describes_it() -> R {
    let builder = StreamsBuilder::new();
    let (left, right) = inputs(&builder);
    left.outer_join(
        &right,
        |a: Option<&String>, b: Option<&String>| format!("{a:?}{b:?}"),
        windows(),
    )
    .to("out");
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [left])
      --> KSTREAM-WINDOWED-0000000002
    Source: KSTREAM-SOURCE-0000000001 (topics: [right])
      --> KSTREAM-WINDOWED-0000000003
    Processor: KSTREAM-WINDOWED-0000000002 (stores: [KSTREAM-OUTERTHIS-0000000004-store])
      --> KSTREAM-OUTERTHIS-0000000004
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-WINDOWED-0000000003 (stores: [KSTREAM-OUTEROTHER-0000000005-store])
      --> KSTREAM-OUTEROTHER-0000000005
      <-- KSTREAM-SOURCE-0000000001
    Processor: KSTREAM-OUTEROTHER-0000000005 (stores: [KSTREAM-OUTERTHIS-0000000004-store, KSTREAM-OUTERSHARED-0000000004-store])
      --> KSTREAM-MERGE-0000000006
      <-- KSTREAM-WINDOWED-0000000003
    Processor: KSTREAM-OUTERTHIS-0000000004 (stores: [KSTREAM-OUTEROTHER-0000000005-store, KSTREAM-OUTERSHARED-0000000004-store])
      --> KSTREAM-MERGE-0000000006
      <-- KSTREAM-WINDOWED-0000000002
    Processor: KSTREAM-MERGE-0000000006 (stores: [])
      --> KSTREAM-SINK-0000000007
      <-- KSTREAM-OUTERTHIS-0000000004, KSTREAM-OUTEROTHER-0000000005
    Sink: KSTREAM-SINK-0000000007 (topic: out)
      <-- KSTREAM-MERGE-0000000006

";
    assert_eq!(builder.build()?.describe().to_string(), expected);
    Ok(())
}

#[test]
fn a_named_left_join_names_processors_and_stores_as_kafka_does() -> R {
    let builder = StreamsBuilder::new();
    let (left, right) = inputs(&builder);
    left.left_join_with(
        &right,
        |a: &String, b: Option<&String>| format!("{a}{b:?}"),
        windows(),
        StreamJoined::as_("readings").with_name("correlate"),
    )
    .to("out");
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [left])
      --> correlate-this-windowed
    Source: KSTREAM-SOURCE-0000000001 (topics: [right])
      --> correlate-other-windowed
    Processor: correlate-other-windowed (stores: [readings-outer-other-join-store])
      --> correlate-outer-other-join
      <-- KSTREAM-SOURCE-0000000001
    Processor: correlate-this-windowed (stores: [readings-this-join-store])
      --> correlate-this-join
      <-- KSTREAM-SOURCE-0000000000
    Processor: correlate-outer-other-join (stores: [readings-this-join-store, readings-left-shared-join-store])
      --> correlate-merge
      <-- correlate-other-windowed
    Processor: correlate-this-join (stores: [readings-left-shared-join-store, readings-outer-other-join-store])
      --> correlate-merge
      <-- correlate-this-windowed
    Processor: correlate-merge (stores: [])
      --> KSTREAM-SINK-0000000007
      <-- correlate-this-join, correlate-outer-other-join
    Sink: KSTREAM-SINK-0000000007 (topic: out)
      <-- correlate-merge

";
    assert_eq!(builder.build()?.describe().to_string(), expected);
    Ok(())
}

#[test]
fn a_self_join_is_described_as_kafka_describes_it() -> R {
    let builder = StreamsBuilder::new();
    let (left, _) = inputs(&builder);
    left.join(&left, concat, windows()).to("out");
    let text = builder.build()?.describe().to_string();
    // Kafka numbers from 0 without the unused `right` source: compare the shape.
    for line in [
        "--> KSTREAM-WINDOWED-0000000002, KSTREAM-WINDOWED-0000000003",
        "Processor: KSTREAM-JOINOTHER-0000000005 (stores: [KSTREAM-JOINTHIS-0000000004-store])",
        "Processor: KSTREAM-JOINTHIS-0000000004 (stores: [KSTREAM-JOINOTHER-0000000005-store])",
        "<-- KSTREAM-JOINTHIS-0000000004, KSTREAM-JOINOTHER-0000000005",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    Ok(())
}

/// A self-join after a key change repartitions once, both sides reading the one
/// repartition topic, with Kafka's numbers for the join's nodes (Kafka 4.1.1's
/// description of the same calls without the unused `right` source has
/// `KSTREAM-WINDOWED-0000000008` and `-0000000009` below its repartition source).
#[test]
fn a_rekeyed_self_join_repartitions_once() -> R {
    let builder = StreamsBuilder::new();
    let (left, _) = inputs(&builder);
    let rekeyed = left.select_key(|_, v: &String| v.clone());
    rekeyed.join(&rekeyed, concat, windows()).to("out");
    let topology = builder.build()?;
    let internal: Vec<String> = topology.internal_topics().map(|t| t.name.clone()).collect();
    assert_eq!(
        internal,
        vec!["KSTREAM-KEY-SELECT-0000000002-repartition".to_owned()]
    );
    let text = topology.describe().to_string();
    assert!(
        text.contains(
            "Source: KSTREAM-KEY-SELECT-0000000002-repartition-source (topics: [KSTREAM-KEY-SELECT-0000000002-repartition])
      --> KSTREAM-WINDOWED-0000000009, KSTREAM-WINDOWED-0000000010"
        ),
        "{text}"
    );
    let driver = TopologyTestDriver::new(topology)?;
    let input = driver.create_input_topic_with::<String, String>("left", StringSerde, StringSerde);
    input.pipe_input_at("x".into(), "a".into(), 100)?;
    let out = driver.create_output_topic_with::<String, String>("out", StringSerde, StringSerde);
    assert_eq!(
        out.read_key_values_to_list()?,
        vec![("a".to_owned(), "aa".to_owned())]
    );
    Ok(())
}

/// A key change before a join: the re-keyed side goes through a repartition topic
/// (named after the key-changing node, as in Kafka) sized like the other side's topic,
/// and the join's nodes carry Kafka's numbers. (This library's repartition has no
/// null-key filter node and names its sink and source after the topic; Kafka's are
/// `KSTREAM-FILTER-0000000004`, `KSTREAM-SINK-0000000003` and
/// `KSTREAM-SOURCE-0000000005`; and Kafka indents the second sub-topology's header by
/// two spaces, not three.)
#[test]
fn a_rekeyed_join_input_is_repartitioned_to_the_other_inputs_partition_count() -> R {
    let builder = StreamsBuilder::new();
    let (left, right) = inputs(&builder);
    left.select_key(|_, v: &String| v.clone())
        .join(&right, concat, windows())
        .to("out");
    let topology = builder.build()?;
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [left])
      --> KSTREAM-KEY-SELECT-0000000002
    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])
      --> KSTREAM-KEY-SELECT-0000000002-repartition-sink
      <-- KSTREAM-SOURCE-0000000000
    Sink: KSTREAM-KEY-SELECT-0000000002-repartition-sink (topic: KSTREAM-KEY-SELECT-0000000002-repartition)
      <-- KSTREAM-KEY-SELECT-0000000002

   Sub-topology: 1
    Source: KSTREAM-KEY-SELECT-0000000002-repartition-source (topics: [KSTREAM-KEY-SELECT-0000000002-repartition])
      --> KSTREAM-WINDOWED-0000000006
    Source: KSTREAM-SOURCE-0000000001 (topics: [right])
      --> KSTREAM-WINDOWED-0000000007
    Processor: KSTREAM-WINDOWED-0000000006 (stores: [KSTREAM-JOINTHIS-0000000008-store])
      --> KSTREAM-JOINTHIS-0000000008
      <-- KSTREAM-KEY-SELECT-0000000002-repartition-source
    Processor: KSTREAM-WINDOWED-0000000007 (stores: [KSTREAM-JOINOTHER-0000000009-store])
      --> KSTREAM-JOINOTHER-0000000009
      <-- KSTREAM-SOURCE-0000000001
    Processor: KSTREAM-JOINOTHER-0000000009 (stores: [KSTREAM-JOINTHIS-0000000008-store])
      --> KSTREAM-MERGE-0000000010
      <-- KSTREAM-WINDOWED-0000000007
    Processor: KSTREAM-JOINTHIS-0000000008 (stores: [KSTREAM-JOINOTHER-0000000009-store])
      --> KSTREAM-MERGE-0000000010
      <-- KSTREAM-WINDOWED-0000000006
    Processor: KSTREAM-MERGE-0000000010 (stores: [])
      --> KSTREAM-SINK-0000000011
      <-- KSTREAM-JOINTHIS-0000000008, KSTREAM-JOINOTHER-0000000009
    Sink: KSTREAM-SINK-0000000011 (topic: out)
      <-- KSTREAM-MERGE-0000000010

";
    assert_eq!(topology.describe().to_string(), expected);
    let groups: Vec<Vec<String>> = topology
        .copartition_groups()
        .map(<[String]>::to_vec)
        .collect();
    assert_eq!(
        groups,
        vec![vec![
            "right".to_owned(),
            "KSTREAM-KEY-SELECT-0000000002-repartition".to_owned()
        ]]
    );
    // Sized like `right`, not like `left` (which the sub-topology writing it reads).
    let sources = BTreeMap::from([("left".to_owned(), 6), ("right".to_owned(), 4)]);
    assert_eq!(
        topology.internal_topic_partitions(&sources),
        BTreeMap::from([("KSTREAM-KEY-SELECT-0000000002-repartition".to_owned(), 4)])
    );
    Ok(())
}

/// Both inputs re-keyed, with a name: the repartition topics are `<name>-left` and
/// `<name>-right`, and both get the larger count of their upstream topics.
#[test]
fn two_rekeyed_inputs_repartition_through_named_topics_of_one_size() -> R {
    let builder = StreamsBuilder::new();
    let (left, right) = inputs(&builder);
    let by_value = |_: &String, v: &String| v.clone();
    left.select_key(by_value)
        .join_with(
            &right.select_key(by_value),
            concat,
            windows(),
            StreamJoined::default().with_name("pairs"),
        )
        .to("out");
    let topology = builder.build()?;
    let sources = BTreeMap::from([("left".to_owned(), 2), ("right".to_owned(), 5)]);
    assert_eq!(
        topology.internal_topic_partitions(&sources),
        BTreeMap::from([
            ("pairs-left-repartition".to_owned(), 5),
            ("pairs-right-repartition".to_owned(), 5)
        ])
    );
    Ok(())
}

fn driver_with_join(
    join: impl FnOnce(&KStream<String, String>, &KStream<String, String>),
) -> Result<TopologyTestDriver, Box<dyn std::error::Error>> {
    let builder = StreamsBuilder::new();
    let (left, right) = inputs(&builder);
    join(&left, &right);
    let config = StreamsConfig::new("joins", ClientConfig::new("unused:9092"));
    Ok(TopologyTestDriver::with_config(builder.build()?, config)?)
}

#[test]
fn the_join_stores_are_changelogged_and_late_records_are_counted_as_dropped() -> R {
    let driver = driver_with_join(|left, right| {
        left.left_join_with(
            right,
            |a: &String, b: Option<&String>| format!("{a}+{b:?}"),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(10))
                .expect("valid windows"),
            StreamJoined::as_("pairs"),
        )
        .to("out");
    })?;
    let left = driver.create_input_topic_with::<String, String>("left", StringSerde, StringSerde);
    let right = driver.create_input_topic_with::<String, String>("right", StringSerde, StringSerde);
    left.pipe_input_at("a".into(), "L1".into(), 1_000)?;
    right.pipe_input_at("b".into(), "R1".into(), 500_000)?;
    // Older than the right store's retention (20 ms) by far, in an expired segment: not
    // buffered, counted as dropped; it still finds its partner in the left store.
    right.pipe_input_at("a".into(), "R2".into(), 1_005)?;
    assert_eq!(driver.metrics().skipped_records, 1);
    let out = driver.create_output_topic_with::<String, String>("out", StringSerde, StringSerde);
    let values: Vec<String> = out.read_values_to_list()?;
    // L1's window closed at stream time 500000: it came out alone, then R2 found it.
    assert_eq!(
        values,
        vec!["L1+None".to_owned(), "L1+Some(\"R2\")".to_owned()]
    );

    let produced = driver.produced_topics();
    for store in [
        "pairs-this-join-store",
        "pairs-outer-other-join-store",
        "pairs-left-shared-join-store",
    ] {
        let topic = format!("joins-{store}-changelog");
        assert!(produced.contains_key(&topic), "{topic} not in {produced:?}");
    }
    Ok(())
}

#[test]
fn left_join_results_wait_for_the_window_to_close_and_come_out_once() -> R {
    let driver = driver_with_join(|left, right| {
        left.left_join(
            right,
            |a: &String, b: Option<&String>| format!("{a}+{}", b.map_or("null", String::as_str)),
            JoinWindows::of_time_difference_and_grace(
                Duration::from_millis(10),
                Duration::from_millis(5),
            )
            .expect("valid windows"),
        )
        .to("out");
    })?;
    let left = driver.create_input_topic_with::<String, String>("left", StringSerde, StringSerde);
    let right = driver.create_input_topic_with::<String, String>("right", StringSerde, StringSerde);
    let out = driver.create_output_topic_with::<String, String>("out", StringSerde, StringSerde);
    left.pipe_input_at("a".into(), "L1".into(), 100)?;
    left.pipe_input_at("b".into(), "L2".into(), 100)?;
    // Stream time 115: a's and b's windows end at 110, plus 5 ms grace: still open.
    left.pipe_input_at("x".into(), "L3".into(), 115)?;
    assert!(out.read_records_to_list()?.is_empty());
    // Within grace, a finds its partner: no null-joined result for it, ever.
    right.pipe_input_at("a".into(), "R1".into(), 109)?;
    let joined = out.read_records_to_list()?;
    assert_eq!(
        joined
            .iter()
            .map(|r| (r.key.as_str(), r.value.as_str(), r.timestamp))
            .collect::<Vec<_>>(),
        vec![("a", "L1+R1", 109)]
    );
    // Stream time 116 closes b's window: b comes out once, at its own timestamp.
    right.pipe_input_at("y".into(), "R2".into(), 116)?;
    right.pipe_input_at("y".into(), "R3".into(), 200)?;
    let emitted: Vec<(String, String, i64)> = out
        .read_records_to_list()?
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    assert_eq!(
        emitted,
        vec![
            ("b".to_owned(), "L2+null".to_owned(), 100),
            ("x".to_owned(), "L3+null".to_owned(), 115)
        ]
    );
    Ok(())
}

#[test]
fn in_memory_unlogged_join_stores_give_the_same_results_and_no_changelog() -> R {
    let driver = driver_with_join(|left, right| {
        left.outer_join_with(
            right,
            |a: Option<&String>, b: Option<&String>| format!("{a:?}+{b:?}"),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(10))
                .expect("valid windows"),
            StreamJoined::as_("pairs")
                .in_memory()
                .with_logging_disabled(),
        )
        .to("out");
    })?;
    let left = driver.create_input_topic_with::<String, String>("left", StringSerde, StringSerde);
    let right = driver.create_input_topic_with::<String, String>("right", StringSerde, StringSerde);
    left.pipe_input_at("a".into(), "L1".into(), 100)?;
    right.pipe_input_at("a".into(), "R1".into(), 105)?;
    right.pipe_input_at("b".into(), "R2".into(), 106)?;
    left.pipe_input_at("c".into(), "L2".into(), 200)?;
    let out = driver.create_output_topic_with::<String, String>("out", StringSerde, StringSerde);
    let records: Vec<(String, String, i64)> = out
        .read_records_to_list()?
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    assert_eq!(
        records,
        vec![
            ("a".to_owned(), "Some(\"L1\")+Some(\"R1\")".to_owned(), 105),
            ("b".to_owned(), "None+Some(\"R2\")".to_owned(), 106),
        ]
    );
    let changelogs: Vec<String> = driver
        .produced_topics()
        .into_keys()
        .filter(|t| t.ends_with("-changelog"))
        .collect();
    assert!(changelogs.is_empty(), "{changelogs:?}");
    Ok(())
}
