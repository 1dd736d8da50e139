//! Joins with tables in the test driver: stream-table joins through filtered and
//! mapped tables, table-table joins feeding an aggregation (old results subtracted),
//! materialized joins queryable, stream-global-table joins, and the co-partitioning
//! the topology asks for. Record-by-record equality with Kafka Streams is in the
//! conformance test (`conformance/scenarios.txt`).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_client::serde::{OptionSerde, StringSerde};
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::test_driver::TopologyTestDriver;

fn pipe(driver: &TopologyTestDriver, topic: &str, records: &[(&str, Option<&str>, i64)]) {
    let input = driver.create_input_topic_with::<String, Option<String>>(
        topic,
        StringSerde,
        OptionSerde(StringSerde),
    );
    for (key, value, ts) in records {
        input
            .pipe_input_at((*key).to_owned(), value.map(str::to_owned), *ts)
            .unwrap();
    }
}

fn output(driver: &TopologyTestDriver, topic: &str) -> Vec<(String, Option<String>, i64)> {
    driver
        .create_output_topic_with::<String, Option<String>>(
            topic,
            StringSerde,
            OptionSerde(StringSerde),
        )
        .read_records_to_list()
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

#[test]
fn a_stream_joins_a_filtered_and_mapped_table_through_its_value_getter() {
    let builder = StreamsBuilder::new();
    // Neither the filter nor the map-values result has a store: the join reads the
    // source table's store and applies both.
    let units = builder
        .table::<String, String>("units")
        .filter(|_, unit| unit != "hidden")
        .map_values(|unit| unit.to_uppercase());
    builder
        .stream::<String, String>("readings")
        .left_join_table(&units, |reading, unit: Option<&String>| {
            format!("{reading} {}", unit.map_or("?", String::as_str))
        })
        .to("out");
    let topology = builder.build().unwrap();
    assert_eq!(
        topology.copartition_groups().collect::<Vec<_>>(),
        [["units".to_owned(), "readings".to_owned()]]
    );
    let driver = TopologyTestDriver::new(topology).unwrap();
    pipe(
        &driver,
        "units",
        &[
            ("t1", s("celsius").as_deref(), 1),
            ("t2", Some("hidden"), 2),
        ],
    );
    pipe(
        &driver,
        "readings",
        &[
            ("t1", Some("21"), 3),
            ("t2", Some("5"), 4),
            ("t3", Some("7"), 5),
        ],
    );
    assert_eq!(
        output(&driver, "out"),
        [
            ("t1".to_owned(), s("21 CELSIUS"), 3),
            ("t2".to_owned(), s("5 ?"), 4),
            ("t3".to_owned(), s("7 ?"), 5),
        ]
    );
}

#[test]
fn a_table_join_feeds_an_aggregation_that_subtracts_old_results() {
    let builder = StreamsBuilder::new();
    let machines = builder.table::<String, String>("machine-hall");
    let status = builder.table::<String, String>("machine-status");
    // Machines per (hall, status): a machine changing status or hall moves between
    // groups; a deleted machine leaves its group.
    machines
        .join(&status, |hall, status| format!("{hall}/{status}"))
        .group_by(|_, hall_status| (hall_status.clone(), 1_i64))
        .count_with(Materialized::as_("per-hall-status").with_caching_disabled())
        .to_stream()
        .to_with(
            "counts",
            kafka_streams::dsl::Produced::with(
                StringSerde,
                OptionSerde(kafka_client::serde::BigEndian),
            ),
        );
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    pipe(
        &driver,
        "machine-hall",
        &[("m1", Some("a"), 1), ("m2", Some("a"), 2)],
    );
    pipe(
        &driver,
        "machine-status",
        &[("m1", Some("up"), 3), ("m2", Some("up"), 4)],
    );
    pipe(&driver, "machine-status", &[("m1", Some("down"), 5)]);
    pipe(&driver, "machine-hall", &[("m2", Some("b"), 6)]);
    pipe(&driver, "machine-hall", &[("m1", None, 7)]);
    let store = driver
        .key_value_store::<String, i64>("per-hall-status")
        .unwrap();
    let counts: BTreeMap<String, i64> = store.all().unwrap().into_iter().collect();
    assert_eq!(
        counts,
        BTreeMap::from([
            ("a/up".to_owned(), 0),
            ("a/down".to_owned(), 0),
            ("b/up".to_owned(), 1),
        ])
    );
}

#[test]
fn a_materialized_table_join_is_queryable_and_deletes_on_tombstones() {
    let builder = StreamsBuilder::new();
    let left = builder.table::<String, String>("left");
    let right = builder.table::<String, String>("right");
    let joined = left.outer_join_materialized(
        &right,
        |l, r| {
            format!(
                "{}+{}",
                l.map_or("-", String::as_str),
                r.map_or("-", String::as_str)
            )
        },
        Materialized::as_("joined").with_value_serde(Arc::new(StringSerde)),
    );
    assert_eq!(joined.queryable_store_name(), Some("joined"));
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    pipe(
        &driver,
        "left",
        &[("a", Some("l1"), 1), ("b", Some("l2"), 2)],
    );
    pipe(&driver, "right", &[("a", Some("r1"), 3)]);
    pipe(&driver, "left", &[("b", None, 4)]);
    let store = driver.key_value_store::<String, String>("joined").unwrap();
    assert_eq!(store.get(&"a".to_owned()).unwrap(), s("l1+r1"));
    assert_eq!(
        store.get(&"b".to_owned()).unwrap(),
        None,
        "both sides gone: deleted"
    );
    pipe(&driver, "left", &[("a", None, 5)]);
    assert_eq!(store.get(&"a".to_owned()).unwrap(), s("-+r1"));
}

#[test]
fn a_join_of_a_join_result_reads_both_sides() {
    let builder = StreamsBuilder::new();
    let a = builder.table::<String, String>("a");
    let b = builder.table::<String, String>("b");
    let c = builder.table::<String, String>("c");
    // The first join result has no store: the second join reads it through the
    // value getters of `a` and `b`.
    a.join(&b, |x, y| format!("{x}{y}"))
        .left_join(&c, |xy, z: Option<&String>| {
            format!("{xy}{}", z.map_or("_", String::as_str))
        })
        .to_stream()
        .to_with(
            "out",
            kafka_streams::dsl::Produced::with(StringSerde, OptionSerde(StringSerde)),
        );
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    pipe(&driver, "c", &[("k", Some("3"), 1)]);
    pipe(&driver, "a", &[("k", Some("1"), 2)]);
    pipe(&driver, "b", &[("k", Some("2"), 3)]);
    pipe(&driver, "c", &[("k", Some("4"), 4)]);
    pipe(&driver, "b", &[("k", None, 5)]);
    assert_eq!(
        output(&driver, "out"),
        [
            ("k".to_owned(), s("123"), 3),
            ("k".to_owned(), s("124"), 4),
            ("k".to_owned(), None, 5),
        ]
    );
}

#[test]
fn a_stream_joins_a_global_table_without_co_partitioning() {
    let builder = StreamsBuilder::new();
    let sensors = builder.global_table::<String, String>("sensors");
    builder
        .stream::<String, String>("readings")
        .join_global(
            &sensors,
            |_, v| v.split('=').next().unwrap_or_default().to_owned(),
            |v, loc| format!("{v}@{loc}"),
        )
        .to("out");
    let topology = builder.build().unwrap();
    assert_eq!(topology.copartition_groups().count(), 0);
    let driver = TopologyTestDriver::new(topology).unwrap();
    pipe(&driver, "sensors", &[("temp-1", Some("hall-a"), 1)]);
    pipe(
        &driver,
        "readings",
        &[("m1", Some("temp-1=20"), 2), ("m1", Some("temp-2=5"), 3)],
    );
    assert_eq!(
        output(&driver, "out"),
        [("m1".to_owned(), s("temp-1=20@hall-a"), 2)]
    );
}

#[test]
fn a_foreign_key_join_runs_through_its_subscription_and_response_topics() {
    let builder = StreamsBuilder::new();
    // sensor → "<machine>/<kind>"; machine → hall
    let sensors = builder.table::<String, String>("sensors");
    let machines = builder.table::<String, String>("machines");
    let located = sensors.join_foreign_key_materialized(
        &machines,
        |v: &String| v.split('/').next().unwrap_or_default().to_owned(),
        |sensor, hall| format!("{sensor}@{hall}"),
        Materialized::as_("sensor-halls").with_value_serde(Arc::new(StringSerde)),
    );
    assert_eq!(located.queryable_store_name(), Some("sensor-halls"));
    let topology = builder.build().unwrap();
    let topics: Vec<String> = topology.internal_topics().map(|t| t.name.clone()).collect();
    assert_eq!(topics.len(), 2, "{topics:?}");
    assert!(topics.iter().any(
        |t| t.starts_with("KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-") && t.ends_with("-topic")
    ));
    assert!(topics
        .iter()
        .any(|t| t.starts_with("KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-") && t.ends_with("-topic")));
    // The subscription topic is co-partitioned with the machines, the response topic
    // with the sensors.
    let groups: Vec<Vec<String>> = topology
        .copartition_groups()
        .map(<[String]>::to_vec)
        .collect();
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert!(groups.iter().any(|g| g.contains(&"machines".to_owned())));
    assert!(groups.iter().any(|g| g.contains(&"sensors".to_owned())));

    let driver = TopologyTestDriver::new(topology).unwrap();
    pipe(
        &driver,
        "sensors",
        &[
            ("temp-1", Some("m1/temp"), 1),
            ("temp-2", Some("m2/temp"), 2),
        ],
    );
    pipe(&driver, "machines", &[("m1", Some("hall-a"), 3)]);
    let store = driver
        .key_value_store::<String, String>("sensor-halls")
        .unwrap();
    assert_eq!(
        store.get(&"temp-1".to_owned()).unwrap(),
        s("m1/temp@hall-a")
    );
    assert_eq!(
        store.get(&"temp-2".to_owned()).unwrap(),
        None,
        "m2 is unknown"
    );
    // temp-1 moves to m2, then m2 appears: the result follows the new foreign key.
    pipe(&driver, "sensors", &[("temp-1", Some("m2/temp"), 4)]);
    assert_eq!(store.get(&"temp-1".to_owned()).unwrap(), None);
    pipe(
        &driver,
        "machines",
        &[("m2", Some("hall-b"), 5), ("m1", Some("hall-c"), 6)],
    );
    assert_eq!(
        store.get(&"temp-1".to_owned()).unwrap(),
        s("m2/temp@hall-b")
    );
    assert_eq!(
        store.get(&"temp-2".to_owned()).unwrap(),
        s("m2/temp@hall-b")
    );
    // A deleted machine deletes its sensors' results.
    pipe(&driver, "machines", &[("m2", None, 7)]);
    assert_eq!(store.all().unwrap(), Vec::<(String, String)>::new());
}
