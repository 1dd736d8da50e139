//! Aggregations and tables through the TopologyTestDriver, with exact expected tables:
//! count, reduce, aggregate, cogroup, KTable group_by with a subtractor, and tombstones
//! that remove a key from a table, its store and its changelog and are forwarded
//! downstream (the witness-protection case).

use std::collections::BTreeMap;

use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::state::StoreKind;
use kafka_streams::test_driver::TopologyTestDriver;

type R = anyhow::Result<()>;

fn s(x: &str) -> String {
    x.to_string()
}

fn table<V: Clone>(entries: &[(&str, V)]) -> Vec<(String, V)> {
    entries.iter().map(|(k, v)| (s(k), v.clone())).collect()
}

/// Word count, the canonical example: `group_by` repartitions, `count` keeps the
/// counts in a RocksDB store logged to its changelog.
#[test]
fn word_count_counts_exactly_and_logs_every_update() -> R {
    let builder = StreamsBuilder::new();
    let counts = builder
        .stream::<String, String>("lines")
        .flat_map_values(|line| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone())
        .count_with(Materialized::as_("word-counts"));
    assert_eq!(counts.queryable_store_name(), Some("word-counts"));
    counts.to_stream().to("word-counts-out");
    let topology = builder.build()?;
    let text = topology.describe().to_string();
    assert!(text.contains("(stores: [word-counts])"), "{text}");
    assert!(
        text.contains("Sink: word-counts-repartition-sink (topic: word-counts-repartition)"),
        "{text}"
    );
    assert_eq!(topology.subtopology_count(), 2);

    let driver = TopologyTestDriver::new(topology)?;
    let input = driver.create_input_topic::<String, String>("lines");
    let output = driver.create_output_topic::<String, Option<i64>>("word-counts-out");
    input.pipe_input(s("l1"), s("the cat"))?;
    input.pipe_input(s("l2"), s("The dog the end"))?;
    // The store's record cache folds the updates of one commit (the driver commits
    // after each piped record): the second line's two "the" arrive as one update.
    assert_eq!(
        output.read_key_values_to_list()?,
        vec![
            (s("the"), Some(1)),
            (s("cat"), Some(1)),
            (s("dog"), Some(1)),
            (s("the"), Some(3)),
            (s("end"), Some(1)),
        ]
    );
    let store = driver
        .key_value_store::<String, i64>("word-counts")
        .ok_or_else(|| anyhow::anyhow!("no word-counts store"))?;
    assert_eq!(
        store.all()?,
        table(&[("cat", 1), ("dog", 1), ("end", 1), ("the", 3)])
    );
    assert_eq!(store.get(&s("the"))?, Some(3));
    assert_eq!(store.get(&s("bird"))?, None);

    // The changelog holds the latest count of every word (the cache folds updates
    // between commits; the driver commits after each piped record).
    let changelog =
        driver.create_output_topic::<String, i64>("topology-test-driver-word-counts-changelog");
    let latest: BTreeMap<String, i64> = changelog.read_key_values_to_list()?.into_iter().collect();
    assert_eq!(
        latest.into_iter().collect::<Vec<_>>(),
        table(&[("cat", 1), ("dog", 1), ("end", 1), ("the", 3)])
    );
    Ok(())
}

#[test]
fn reduce_keeps_the_maximum_per_key_in_memory_without_logging() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("readings")
        .group_by_key()
        .reduce_with(
            |max, v| max.max(*v),
            Materialized::as_("max-per-sensor")
                .in_memory()
                .with_logging_disabled()
                .with_caching_disabled(),
        )
        .to_stream()
        .to("max-out");
    let topology = builder.build()?;
    assert_eq!(
        topology.subtopology_count(),
        1,
        "no repartition for group_by_key"
    );
    let driver = TopologyTestDriver::new(topology)?;
    let input = driver.create_input_topic::<String, i64>("readings");
    let output = driver.create_output_topic::<String, Option<i64>>("max-out");
    input.pipe_key_value_list([
        (s("s1"), 5),
        (s("s2"), 7),
        (s("s1"), 3),
        (s("s1"), 9),
        (s("s2"), -1),
    ])?;
    assert_eq!(
        output.read_key_values_to_list()?,
        vec![
            (s("s1"), Some(5)),
            (s("s2"), Some(7)),
            (s("s1"), Some(5)),
            (s("s1"), Some(9)),
            (s("s2"), Some(7)),
        ]
    );
    let store = driver
        .key_value_store::<String, i64>("max-per-sensor")
        .ok_or_else(|| anyhow::anyhow!("no store"))?;
    assert_eq!(store.all()?, table(&[("s1", 9), ("s2", 7)]));
    assert!(
        !driver
            .produced_topics()
            .keys()
            .any(|t| t.ends_with("-changelog")),
        "logging disabled: {:?}",
        driver.produced_topics()
    );
    Ok(())
}

#[test]
fn aggregate_sums_and_counts_per_key() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("readings")
        .group_by_key()
        .aggregate_with(
            || s("0:0"),
            |_, v, agg: String| {
                let (sum, n) = agg.split_once(':').unwrap_or(("0", "0"));
                let sum: i64 = sum.parse().unwrap_or(0);
                let n: i64 = n.parse().unwrap_or(0);
                format!("{}:{}", sum + v, n + 1)
            },
            Materialized::as_("sum-count")
                .with_value_serde(std::sync::Arc::new(kafka_client::serde::StringSerde))
                .with_store_kind(StoreKind::RocksDb),
        );
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic::<String, i64>("readings");
    input.pipe_key_value_list([(s("a"), 10), (s("b"), 1), (s("a"), 20), (s("a"), -5)])?;
    let store = driver
        .key_value_store::<String, String>("sum-count")
        .ok_or_else(|| anyhow::anyhow!("no store"))?;
    assert_eq!(store.all()?, vec![(s("a"), s("25:3")), (s("b"), s("1:1"))]);
    Ok(())
}

#[test]
fn cogroup_aggregates_two_streams_into_one_table() -> R {
    let builder = StreamsBuilder::new();
    let clicks = builder.stream::<String, i64>("clicks").group_by_key();
    let views = builder.stream::<String, i64>("views").group_by_key();
    clicks
        .cogroup(|_, v, agg: i64| agg + 100 * v)
        .cogroup(&views, |_, v, agg: i64| agg + v)
        .aggregate_with(
            || 0,
            Materialized::as_("engagement").with_value_serde(std::sync::Arc::new(
                <i64 as kafka_client::serde::DefaultSerde>::default_serde(),
            )),
        )
        .to_stream()
        .to("engagement-out");
    let topology = builder.build()?;
    assert_eq!(
        topology.subtopology_count(),
        1,
        "shared store joins the streams"
    );
    let driver = TopologyTestDriver::new(topology)?;
    let clicks_in = driver.create_input_topic::<String, i64>("clicks");
    let views_in = driver.create_input_topic::<String, i64>("views");
    let output = driver.create_output_topic::<String, Option<i64>>("engagement-out");
    clicks_in.pipe_input(s("u1"), 1)?;
    views_in.pipe_input(s("u1"), 5)?;
    views_in.pipe_input(s("u2"), 3)?;
    clicks_in.pipe_input(s("u1"), 2)?;
    assert_eq!(
        output.read_key_values_to_list()?,
        vec![
            (s("u1"), Some(100)),
            (s("u1"), Some(105)),
            (s("u2"), Some(3)),
            (s("u1"), Some(305)),
        ]
    );
    let store = driver
        .key_value_store::<String, i64>("engagement")
        .ok_or_else(|| anyhow::anyhow!("no store"))?;
    assert_eq!(store.all()?, table(&[("u1", 305), ("u2", 3)]));
    Ok(())
}

/// People keyed by id with their city; count people per city. Moving a person
/// subtracts them from the old city; deleting them (tombstone) subtracts them too.
#[test]
fn ktable_group_by_with_subtractor_moves_rows_between_groups() -> R {
    let builder = StreamsBuilder::new();
    let people = builder.table::<String, String>("people");
    people
        .group_by(|_, city| (city.clone(), 1_i64))
        .reduce_with(
            |a, v| a + v,
            |a, v| a - v,
            Materialized::as_("people-per-city"),
        )
        .to_stream()
        .to("people-per-city-out");
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic::<String, Option<String>>("people");
    let output = driver.create_output_topic::<String, Option<i64>>("people-per-city-out");
    input.pipe_input(s("p1"), Some(s("Bern")))?;
    input.pipe_input(s("p2"), Some(s("Bern")))?;
    input.pipe_input(s("p1"), Some(s("Basel")))?;
    input.pipe_input(s("p2"), None)?;
    assert_eq!(
        output.read_key_values_to_list()?,
        vec![
            (s("Bern"), Some(1)),
            (s("Bern"), Some(2)),
            (s("Bern"), Some(1)),
            (s("Basel"), Some(1)),
            (s("Bern"), Some(0)),
        ]
    );
    let store = driver
        .key_value_store::<String, i64>("people-per-city")
        .ok_or_else(|| anyhow::anyhow!("no store"))?;
    assert_eq!(store.all()?, table(&[("Basel", 1), ("Bern", 0)]));
    Ok(())
}

/// A row that changes but stays in its group updates the group once (Kafka's
/// `KTableRepartitionMap` sends old and new in one record when the group key is the
/// same), so downstream sees one update, not a subtraction and then an addition.
#[test]
fn ktable_group_by_update_within_one_group_emits_one_result() -> R {
    let builder = StreamsBuilder::new();
    builder
        .table::<String, i64>("readings")
        .group_by(|sensor, reading| (sensor[..1].to_string(), *reading))
        .reduce(|a, v| a + v, |a, v| a - v)
        .to_stream()
        .to("sum-per-plant");
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic::<String, Option<i64>>("readings");
    let output = driver.create_output_topic::<String, Option<i64>>("sum-per-plant");
    input.pipe_input(s("a1"), Some(5))?;
    input.pipe_input(s("a2"), Some(7))?;
    input.pipe_input(s("a1"), Some(6))?;
    input.pipe_input(s("b1"), Some(1))?;
    assert_eq!(
        output.read_key_values_to_list()?,
        vec![
            (s("a"), Some(5)),
            (s("a"), Some(12)),
            (s("a"), Some(13)),
            (s("b"), Some(1)),
        ]
    );
    Ok(())
}

#[test]
fn ktable_group_by_count_and_aggregate_with_subtractor() -> R {
    let builder = StreamsBuilder::new();
    let people = builder.table::<String, String>("people");
    let by_city = people.group_by(|id, city| (city.clone(), id.clone()));
    by_city.count_with(Materialized::as_("count-per-city"));
    by_city.aggregate_with(
        String::new,
        |_, id, agg: String| {
            if agg.is_empty() {
                id.clone()
            } else {
                format!("{agg},{id}")
            }
        },
        |_, id, agg: String| {
            agg.split(',')
                .filter(|x| x != id)
                .collect::<Vec<_>>()
                .join(",")
        },
        Materialized::as_("ids-per-city"),
    );
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic::<String, Option<String>>("people");
    input.pipe_input(s("p1"), Some(s("Bern")))?;
    input.pipe_input(s("p2"), Some(s("Bern")))?;
    input.pipe_input(s("p3"), Some(s("Zug")))?;
    input.pipe_input(s("p1"), Some(s("Zug")))?;
    let counts = driver
        .key_value_store::<String, i64>("count-per-city")
        .ok_or_else(|| anyhow::anyhow!("no store"))?;
    assert_eq!(counts.all()?, table(&[("Bern", 1), ("Zug", 2)]));
    let ids = driver
        .key_value_store::<String, String>("ids-per-city")
        .ok_or_else(|| anyhow::anyhow!("no store"))?;
    assert_eq!(
        ids.all()?,
        vec![(s("Bern"), s("p2")), (s("Zug"), s("p3,p1"))]
    );
    Ok(())
}

/// Witness protection: a tombstone for a person removes them from the source table,
/// its store and changelog, from a derived table, and is forwarded downstream.
#[test]
fn tombstone_removes_key_everywhere_and_is_forwarded() -> R {
    let builder = StreamsBuilder::new();
    let addresses = builder
        .table_with::<String, String>("person-addresses", Materialized::as_("current-address"));
    addresses.to_stream().to("addresses-out");
    addresses
        .map_values(|a| a.to_uppercase())
        .filter(|_, a| !a.is_empty())
        .to_stream()
        .to("addresses-upper-out");
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic::<String, Option<String>>("person-addresses");
    let out = driver.create_output_topic::<String, Option<String>>("addresses-out");
    let upper = driver.create_output_topic::<String, Option<String>>("addresses-upper-out");
    input.pipe_input(s("alice"), Some(s("Main St 1")))?;
    input.pipe_input(s("bob"), Some(s("Elm St 2")))?;
    input.pipe_input(s("alice"), Some(s("Oak St 3")))?;
    input.pipe_input(s("alice"), None)?;

    let store = driver
        .key_value_store::<String, String>("current-address")
        .ok_or_else(|| anyhow::anyhow!("no store"))?;
    assert_eq!(store.get(&s("alice"))?, None);
    assert_eq!(store.all()?, vec![(s("bob"), s("Elm St 2"))]);
    assert_eq!(
        out.read_key_values_to_list()?,
        vec![
            (s("alice"), Some(s("Main St 1"))),
            (s("bob"), Some(s("Elm St 2"))),
            (s("alice"), Some(s("Oak St 3"))),
            (s("alice"), None),
        ]
    );
    assert_eq!(
        upper.read_key_values_to_list()?,
        vec![
            (s("alice"), Some(s("MAIN ST 1"))),
            (s("bob"), Some(s("ELM ST 2"))),
            (s("alice"), Some(s("OAK ST 3"))),
            (s("alice"), None),
        ]
    );
    // The changelog ends with a tombstone for alice, so compaction removes her.
    let changelog = driver.create_output_topic::<String, Option<String>>(
        "topology-test-driver-current-address-changelog",
    );
    let records = changelog.read_key_values_to_list()?;
    assert_eq!(records.last(), Some(&(s("alice"), None)));
    let latest: BTreeMap<String, Option<String>> = records.into_iter().collect();
    assert_eq!(
        latest.into_iter().collect::<Vec<_>>(),
        vec![(s("alice"), None), (s("bob"), Some(s("Elm St 2")))]
    );
    Ok(())
}

#[test]
fn ktable_filter_not_turns_rows_that_start_matching_into_deletes() -> R {
    let builder = StreamsBuilder::new();
    builder
        .table::<String, i64>("levels")
        .filter_not(|_, v| *v < 0)
        .to_stream()
        .to("non-negative");
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic::<String, Option<i64>>("levels");
    let output = driver.create_output_topic::<String, Option<i64>>("non-negative");
    input.pipe_input(s("t1"), Some(4))?;
    input.pipe_input(s("t2"), Some(-1))?;
    input.pipe_input(s("t1"), Some(-3))?;
    assert_eq!(
        output.read_key_values_to_list()?,
        vec![(s("t1"), Some(4)), (s("t1"), None)]
    );
    Ok(())
}

#[test]
fn global_table_in_the_driver_applies_updates_and_tombstones() {
    let builder = StreamsBuilder::new();
    let plants = builder.global_table_with::<String, Option<String>>(
        "sensor-metadata",
        Materialized::as_("sensor-metadata"),
    );
    builder.stream::<String, i64>("plant01").to("plant01-copy");
    let topology = builder.build().unwrap();
    assert!(
        topology
            .describe()
            .to_string()
            .contains("Global store: sensor-metadata (topic: sensor-metadata"),
        "{}",
        topology.describe()
    );
    assert_eq!(plants.topic(), "sensor-metadata");
    let driver = TopologyTestDriver::new(topology).unwrap();
    let input = driver.create_input_topic::<String, Option<String>>("sensor-metadata");
    input
        .pipe_input("s1".into(), Some("hall A".into()))
        .unwrap();
    input
        .pipe_input("s2".into(), Some("hall B".into()))
        .unwrap();
    input
        .pipe_input("s1".into(), Some("hall C".into()))
        .unwrap();
    input.pipe_input("s2".into(), None).unwrap();
    let store = driver
        .key_value_store::<String, Option<String>>(plants.store_name())
        .unwrap();
    assert_eq!(
        store.all().unwrap(),
        vec![("s1".to_string(), Some("hall C".to_string()))]
    );
}
