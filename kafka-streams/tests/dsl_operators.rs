//! Every stateless operator through the TopologyTestDriver, with exact outputs, and
//! explicit names checked in `describe()`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use kafka_client::serde::{Json, StringSerde};
use kafka_streams::dsl::{
    Branched, Consumed, Named, Printed, Produced, Repartitioned, StreamsBuilder,
};
use kafka_streams::test_driver::{TestRecord, TopologyTestDriver};
use kafka_streams::topology::NodeKind;

type R = anyhow::Result<()>;

fn s(x: &str) -> String {
    x.to_string()
}

fn kv(k: &str, v: i64) -> (String, i64) {
    (s(k), v)
}

#[test]
fn filter_and_filter_not_with_names() -> R {
    let builder = StreamsBuilder::new();
    let input = builder.stream_with::<String, i64>("in", Consumed::as_("readings"));
    input
        .filter(|_, v| *v > 0)
        .named("positive")
        .to_with("pos", Produced::as_("pos-sink"));
    input
        .filter_not(|_, v| *v > 0)
        .named("not-positive")
        .to("nonpos");
    let topology = builder.build()?;
    assert_eq!(
        topology.describe().to_string(),
        "Topologies:
   Sub-topology: 0
    Source: readings (topics: [in])
      --> not-positive, positive
    Processor: not-positive (stores: [])
      --> KSTREAM-SINK-0000000002
      <-- readings
    Processor: positive (stores: [])
      --> pos-sink
      <-- readings
    Sink: KSTREAM-SINK-0000000002 (topic: nonpos)
      <-- not-positive
    Sink: pos-sink (topic: pos)
      <-- positive

"
    );
    let driver = TopologyTestDriver::new(topology)?;
    let input = driver.create_input_topic::<String, i64>("in");
    let pos = driver.create_output_topic::<String, i64>("pos");
    let nonpos = driver.create_output_topic::<String, i64>("nonpos");
    input.pipe_key_value_list(vec![kv("a", 1), kv("b", -2), kv("c", 0), kv("d", 5)])?;
    assert_eq!(pos.read_key_values_to_list()?, vec![kv("a", 1), kv("d", 5)]);
    assert_eq!(
        nonpos.read_key_values_to_list()?,
        vec![kv("b", -2), kv("c", 0)]
    );
    Ok(())
}

#[test]
fn map_map_values_and_select_key() -> R {
    let builder = StreamsBuilder::new();
    let input = builder.stream::<String, i64>("in");
    input
        .map(|k, v| (v, format!("{k}:{v}")))
        .named("swap")
        .to("mapped");
    input.map_values(|v| v * 10).named("times-ten").to("values");
    input
        .map_values_with_key(|k, v| format!("{k}={v}"))
        .to("with-key");
    input
        .select_key(|_, v| if v % 2 == 0 { s("even") } else { s("odd") })
        .named("even")
        .to("rekeyed");
    let topology = builder.build()?;
    let d = topology.describe();
    for name in ["swap", "times-ten", "even"] {
        assert!(
            matches!(
                d.node(name).map(|n| &n.kind),
                Some(NodeKind::Processor { .. })
            ),
            "{name} missing in {d}"
        );
    }
    assert!(d.node("KSTREAM-MAPVALUES-0000000005").is_some(), "{d}");

    let driver = TopologyTestDriver::new(topology)?;
    let input = driver.create_input_topic::<String, i64>("in");
    input.pipe_key_value_list(vec![kv("a", 1), kv("b", 2)])?;
    assert_eq!(
        driver
            .create_output_topic::<i64, String>("mapped")
            .read_key_values_to_list()?,
        vec![(1, s("a:1")), (2, s("b:2"))]
    );
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("values")
            .read_key_values_to_list()?,
        vec![kv("a", 10), kv("b", 20)]
    );
    assert_eq!(
        driver
            .create_output_topic::<String, String>("with-key")
            .read_values_to_list()?,
        vec![s("a=1"), s("b=2")]
    );
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("rekeyed")
            .read_key_values_to_list()?,
        vec![kv("odd", 1), kv("even", 2)]
    );
    Ok(())
}

#[test]
fn select_key_with_explicit_serde_and_timestamps_headers_kept() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .select_key(|k, v| format!("{k}-{v}"))
        .to("out");
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic::<String, i64>("in");
    let headers = kafka_client::Headers::new().with("trace", "t1");
    input.pipe_record(TestRecord::new(s("a"), 7, 1234).with_headers(headers.clone()))?;
    let out = driver.create_output_topic::<String, i64>("out");
    assert_eq!(
        out.read_records_to_list()?,
        vec![TestRecord::new(s("a-7"), 7, 1234).with_headers(headers)]
    );
    Ok(())
}

#[test]
fn flat_map_and_flat_map_values() -> R {
    let builder = StreamsBuilder::new();
    let lines = builder.stream::<String, String>("lines");
    lines
        .flat_map_values(|line| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .named("words")
        .to("words");
    lines
        .flat_map(|k, line| {
            line.split_whitespace()
                .map(|w| (w.to_owned(), k.clone()))
                .collect::<Vec<_>>()
        })
        .named("word-to-line")
        .to("by-word");
    let topology = builder.build()?;
    assert!(topology.describe().node("words").is_some());
    assert!(topology.describe().node("word-to-line").is_some());
    let driver = TopologyTestDriver::new(topology)?;
    let input = driver.create_input_topic::<String, String>("lines");
    input.pipe_input(s("l1"), s("hello big world"))?;
    input.pipe_input(s("l2"), s(""))?;
    input.pipe_input(s("l3"), s("bye"))?;
    assert_eq!(
        driver
            .create_output_topic::<String, String>("words")
            .read_key_values_to_list()?,
        vec![
            (s("l1"), s("hello")),
            (s("l1"), s("big")),
            (s("l1"), s("world")),
            (s("l3"), s("bye"))
        ]
    );
    assert_eq!(
        driver
            .create_output_topic::<String, String>("by-word")
            .read_key_values_to_list()?,
        vec![
            (s("hello"), s("l1")),
            (s("big"), s("l1")),
            (s("world"), s("l1")),
            (s("bye"), s("l3"))
        ]
    );
    Ok(())
}

#[test]
fn split_with_named_and_default_branches() -> R {
    let builder = StreamsBuilder::new();
    let branches = builder
        .stream::<String, i64>("in")
        .split_named("split-")
        .branch(|_, v| *v < 0, Branched::as_("negative"))
        .branch(|_, v| *v == 0, Branched::unnamed())
        .default_branch(Branched::as_("positive"));
    let mut names: Vec<_> = branches.keys().cloned().collect();
    names.sort();
    assert_eq!(names, vec!["split-2", "split-negative", "split-positive"]);
    branches["split-negative"].to("neg");
    branches["split-2"].to("zero");
    branches["split-positive"].to("pos");
    let topology = builder.build()?;
    let d = topology.describe();
    assert_eq!(
        d.node("split-").map(|n| n.successors.clone()),
        Some(vec![s("split-2"), s("split-negative"), s("split-positive")])
    );
    let driver = TopologyTestDriver::new(topology)?;
    let input = driver.create_input_topic::<String, i64>("in");
    input.pipe_key_value_list(vec![kv("a", -1), kv("b", 0), kv("c", 3), kv("d", -4)])?;
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("neg")
            .read_key_values_to_list()?,
        vec![kv("a", -1), kv("d", -4)]
    );
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("zero")
            .read_key_values_to_list()?,
        vec![kv("b", 0)]
    );
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("pos")
            .read_key_values_to_list()?,
        vec![kv("c", 3)]
    );
    Ok(())
}

#[test]
fn split_without_default_drops_unmatched_and_generates_names() -> R {
    let builder = StreamsBuilder::new();
    let branches = builder
        .stream::<String, i64>("in")
        .split()
        .branch(|_, v| *v > 10, Branched::unnamed())
        .no_default_branch();
    assert_eq!(
        branches.keys().cloned().collect::<Vec<_>>(),
        vec![s("KSTREAM-BRANCH-00000000011")]
    );
    branches["KSTREAM-BRANCH-00000000011"].to("big");
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic::<String, i64>("in");
    input.pipe_key_value_list(vec![kv("a", 5), kv("b", 50)])?;
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("big")
            .read_key_values_to_list()?,
        vec![kv("b", 50)]
    );
    Ok(())
}

#[test]
fn merge_interleaves_by_timestamp_within_a_task() -> R {
    let builder = StreamsBuilder::new();
    let a = builder.stream::<String, i64>("a");
    let b = builder.stream::<String, i64>("b");
    a.merge(&b).named("merged").to("out");
    let topology = builder.build()?;
    let d = topology.describe();
    let merged = d.node("merged").expect("merge node");
    assert_eq!(
        merged.predecessors,
        vec![
            s("KSTREAM-SOURCE-0000000000"),
            s("KSTREAM-SOURCE-0000000001")
        ]
    );
    assert_eq!(topology.subtopology_count(), 1);
    let driver = TopologyTestDriver::new(topology)?;
    let ia = driver.create_input_topic::<String, i64>("a");
    let ib = driver.create_input_topic::<String, i64>("b");
    ia.pipe_input_at(s("x"), 1, 10)?;
    ib.pipe_input_at(s("y"), 2, 5)?;
    ia.pipe_input_at(s("z"), 3, 20)?;
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("out")
            .read_key_values_to_list()?,
        vec![kv("x", 1), kv("y", 2), kv("z", 3)]
    );
    Ok(())
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn peek_foreach_and_print() -> R {
    let peeked = Arc::new(Mutex::new(Vec::new()));
    let each = Arc::new(Mutex::new(Vec::new()));
    let buf = SharedBuf::default();
    let builder = StreamsBuilder::new();
    let input = builder.stream::<String, i64>("in");
    let p = peeked.clone();
    input
        .peek(move |k, v| p.lock().unwrap().push((k.clone(), *v)))
        .named("peeker")
        .to("out");
    let e = each.clone();
    input.foreach_named(
        move |k, v| e.lock().unwrap().push(format!("{k}/{v}")),
        Some(Named::as_("each")),
    );
    input.print(
        Printed::to_writer(buf.clone())
            .with_label("dbg")
            .with_name("printer"),
    );
    input.print(Printed::to_writer_with(
        buf.clone(),
        |k: &String, v: &i64| format!("{k} -> {v}"),
    ));
    let topology = builder.build()?;
    let d = topology.describe();
    for name in ["peeker", "each", "printer"] {
        assert!(d.node(name).is_some(), "{name} missing in {d}");
    }
    assert_eq!(d.node("each").map(|n| n.successors.len()), Some(0));
    let driver = TopologyTestDriver::new(topology)?;
    let input = driver.create_input_topic::<String, i64>("in");
    input.pipe_key_value_list(vec![kv("a", 1), kv("b", 2)])?;
    assert_eq!(*peeked.lock().unwrap(), vec![kv("a", 1), kv("b", 2)]);
    assert_eq!(*each.lock().unwrap(), vec![s("a/1"), s("b/2")]);
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("out")
            .read_key_values_to_list()?,
        vec![kv("a", 1), kv("b", 2)]
    );
    let printed = String::from_utf8(buf.0.lock().unwrap().clone())?;
    assert_eq!(
        printed,
        "[dbg]: \"a\", 1\n[KSTREAM-PRINTER-0000000003]: a -> 1\n[dbg]: \"b\", 2\n[KSTREAM-PRINTER-0000000003]: b -> 2\n"
    );
    Ok(())
}

#[test]
fn to_with_topic_chosen_per_record() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .to_dynamic(|k, _| format!("sensor-{k}"));
    let topology = builder.build()?;
    assert!(topology
        .describe()
        .to_string()
        .contains("Sink: KSTREAM-SINK-0000000001 (extractor: per-record topic)"));
    let driver = TopologyTestDriver::new(topology)?;
    let input = driver.create_input_topic::<String, i64>("in");
    input.pipe_key_value_list(vec![kv("t", 1), kv("p", 2), kv("t", 3)])?;
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("sensor-t")
            .read_values_to_list()?,
        vec![1, 3]
    );
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("sensor-p")
            .read_values_to_list()?,
        vec![2]
    );
    Ok(())
}

#[test]
fn select_key_then_repartition_makes_two_subtopologies() -> R {
    let builder = StreamsBuilder::new();
    let rekeyed = builder
        .stream::<String, i64>("in")
        .select_key(|_, v| format!("k{}", v % 2));
    assert!(rekeyed.repartition_required());
    let repartitioned =
        rekeyed.repartition_with(Repartitioned::as_("by-parity").with_number_of_partitions(3));
    assert!(!repartitioned.repartition_required());
    repartitioned.map_values(|v| v * 100).to("out");
    let topology = builder.build()?;
    assert_eq!(
        topology.describe().to_string(),
        "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [in])
      --> KSTREAM-KEY-SELECT-0000000001
    Processor: KSTREAM-KEY-SELECT-0000000001 (stores: [])
      --> by-parity-repartition-sink
      <-- KSTREAM-SOURCE-0000000000
    Sink: by-parity-repartition-sink (topic: by-parity-repartition)
      <-- KSTREAM-KEY-SELECT-0000000001

   Sub-topology: 1
    Source: by-parity-repartition-source (topics: [by-parity-repartition])
      --> KSTREAM-MAPVALUES-0000000002
    Processor: KSTREAM-MAPVALUES-0000000002 (stores: [])
      --> KSTREAM-SINK-0000000003
      <-- by-parity-repartition-source
    Sink: KSTREAM-SINK-0000000003 (topic: out)
      <-- KSTREAM-MAPVALUES-0000000002

"
    );
    let internal: Vec<_> = topology.internal_topics().cloned().collect();
    assert_eq!(internal.len(), 1);
    assert_eq!(internal[0].name, "by-parity-repartition");
    assert_eq!(internal[0].partitions, Some(3));
    assert_eq!(
        topology.resolve_topic("my-app", "by-parity-repartition"),
        "my-app-by-parity-repartition"
    );

    let driver = TopologyTestDriver::new(topology)?;
    let input = driver.create_input_topic::<String, i64>("in");
    input.pipe_key_value_list(vec![kv("a", 1), kv("b", 2), kv("c", 3)])?;
    assert_eq!(
        driver
            .create_output_topic::<String, i64>("out")
            .read_key_values_to_list()?,
        vec![kv("k1", 100), kv("k0", 200), kv("k1", 300)]
    );
    // The records went through the internal topic, named with the application id.
    let repartition =
        driver.create_output_topic::<String, i64>("topology-test-driver-by-parity-repartition");
    assert_eq!(repartition.read_values_to_list()?, vec![1, 2, 3]);
    Ok(())
}

#[test]
fn grouping_repartitions_only_after_a_key_change() -> R {
    let builder = StreamsBuilder::new();
    let input = builder.stream::<String, i64>("in");
    input
        .group_by_key()
        .count_with(kafka_streams::dsl::Materialized::as_("same"));
    assert_eq!(builder.build()?.internal_topics().count(), 0);
    input
        .map(|k, v| (format!("{k}{v}"), v))
        .group_by_key()
        .count_with(kafka_streams::dsl::Materialized::as_("group"));
    let topology = builder.build()?;
    let topics: Vec<String> = topology.internal_topics().map(|t| t.name.clone()).collect();
    assert_eq!(topics, vec!["group-repartition".to_owned()]);
    assert_eq!(topology.subtopology_count(), 2);
    Ok(())
}

#[test]
fn generated_names_are_deterministic() -> R {
    let build = || -> anyhow::Result<String> {
        let builder = StreamsBuilder::new();
        let input = builder.stream::<String, Json<Vec<i64>>>("in");
        input
            .filter(|_, v| !v.is_empty())
            .flat_map_values(|v| v.0)
            .peek(|_, _| {})
            .to("out");
        input.map(|k, v| (k, v)).repartition().to("again");
        Ok(builder.build()?.describe().to_string())
    };
    let first = build()?;
    assert_eq!(first, build()?);
    assert!(
        first.contains("KSTREAM-FLATMAPVALUES-0000000002"),
        "{first}"
    );
    assert!(
        first.contains("KSTREAM-REPARTITION-0000000006-repartition-sink"),
        "{first}"
    );
    Ok(())
}

#[test]
fn build_errors_for_duplicate_names_and_missing_serdes() {
    let builder = StreamsBuilder::new();
    let input = builder.stream::<String, i64>("in");
    input.filter(|_, _| true).named("x").to("a");
    input.filter(|_, _| true).named("x").to("b");
    let err = builder.build().unwrap_err().to_string();
    assert!(err.contains("node name x is used twice"), "{err}");

    #[derive(Clone)]
    struct NoSerde;
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .map_values(|_| NoSerde)
        .to_with("out", Produced::as_("sink"));
    let err = builder.build().unwrap_err().to_string();
    assert!(err.contains("sink sink has no value serializer"), "{err}");

    let builder = StreamsBuilder::new();
    let store = || {
        kafka_streams::state::KeyValueStoreBuilder::with_serdes(
            "seen",
            std::sync::Arc::new(StringSerde),
            std::sync::Arc::new(StringSerde),
        )
    };
    builder.add_state_store(store());
    builder.add_state_store(store());
    let err = builder.build().unwrap_err().to_string();
    assert!(err.contains("state store seen is added twice"), "{err}");

    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .repartition_with(
            kafka_streams::dsl::Repartitioned::as_("none").with_number_of_partitions(0),
        )
        .to("out");
    let err = builder.build().unwrap_err().to_string();
    assert!(
        err.contains("internal topic none-repartition needs at least one partition"),
        "{err}"
    );
}

#[test]
fn carried_serdes_are_used_by_to() -> R {
    // Values read as JSON strings with an explicit serde are written with it too.
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, HashMap<String, i64>>(
            "in",
            Consumed::with(
                StringSerde,
                kafka_client::serde::JsonSerde::<HashMap<String, i64>>::new(),
            ),
        )
        .filter(|_, v| v.contains_key("t"))
        .to_with("out", Produced::as_("json-out"));
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic::<String, String>("in");
    input.pipe_input(s("k"), s(r#"{"t":1}"#))?;
    input.pipe_input(s("k"), s(r#"{"p":2}"#))?;
    let out = driver.create_output_topic::<String, String>("out");
    assert_eq!(out.read_values_to_list()?, vec![s(r#"{"t":1}"#)]);
    Ok(())
}

#[test]
fn dot_and_mermaid_renderings() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("plant01")
        .select_key(|_, v| v.to_string())
        .repartition_with(Repartitioned::as_("by-value"))
        .to("out");
    let d = builder.build()?.describe();
    let dot = d.to_dot();
    assert!(dot.starts_with("digraph topology {"), "{dot}");
    assert!(
        dot.contains("subgraph cluster_0 {") && dot.contains("subgraph cluster_1 {"),
        "{dot}"
    );
    assert!(dot.contains("label=\"Sub-topology: 1\""), "{dot}");
    assert!(
        dot.contains("[label=\"plant01\", shape=ellipse, style=\"filled\""),
        "{dot}"
    );
    assert!(
        dot.contains("[label=\"by-value-repartition\", shape=ellipse, style=\"dashed,filled\""),
        "{dot}"
    );
    assert!(
        dot.contains("\"by-value-repartition-sink\" -> topic_"),
        "{dot}"
    );
    let mermaid = d.to_mermaid();
    assert!(mermaid.starts_with("flowchart TB\n"), "{mermaid}");
    assert!(
        mermaid.contains("subgraph sub0[\"Sub-topology: 0\"]"),
        "{mermaid}"
    );
    assert!(mermaid.contains("[/\"plant01\"/]"), "{mermaid}");
    assert!(
        mermaid.contains("[[\"by-value-repartition-sink\"]]"),
        "{mermaid}"
    );
    Ok(())
}

#[test]
fn readme_shows_the_current_mermaid_rendering() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("plant01")
        .select_key(|_, v| v.to_string())
        .repartition_with(Repartitioned::as_("by-value"))
        .to("out");
    let mermaid = builder.build()?.describe().to_mermaid();
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(&format!("```mermaid\n{mermaid}```")),
        "README's example is stale; current rendering:\n{mermaid}"
    );
    Ok(())
}
