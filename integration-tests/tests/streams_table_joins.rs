//! Joins with tables against the broker named by `KAFKA_BOOTSTRAP_SERVERS`: a
//! foreign-key join of tables with different partition counts runs end to end through
//! its subscription and response topics (sized like the foreign and the primary
//! table), following foreign-key changes and tombstones; a stream-table join of topics
//! that are not co-partitioned fails at start, naming the topics and their counts; a
//! stream rekeyed before a table join is repartitioned into as many partitions as the
//! table's topic.

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::{
    block_on, config, create_topic, read_to_end, unique_name, wait_for_partitions, wait_until,
    DEADLINE,
};
use kafka_client::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use kafka_client::serde::{OptionSerde, StringSerde};
use kafka_streams::dsl::{Produced, StreamsBuilder};
use kafka_streams::error::StreamsError;
use kafka_streams::runtime::{KafkaStreams, State, StreamsConfig};

fn topic(prefix: &str, partitions: i32) -> String {
    let name = unique_name(prefix);
    block_on(create_topic(&name, partitions));
    name
}

/// Produces `(key, value)` records (`None`: a tombstone), partitioned by murmur2 of the
/// key as Kafka's clients and the streams runtime do, so that the foreign-key join's
/// subscription topic lines up with the foreign table's topic.
fn produce(topic: &str, records: &[(&str, Option<&str>)]) {
    let producer: BaseProducer = config()
        .set("partitioner", "murmur2_random")
        .to_rdkafka()
        .create()
        .expect("producer");
    for (key, value) in records {
        let mut record: BaseRecord<'_, str, str> = BaseRecord::to(topic).key(*key);
        if let Some(v) = value {
            record = record.payload(*v);
        }
        producer.send(record).map_err(|(e, _)| e).expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// The latest value per key of `topic` (tombstones remove the key).
fn table_of(topic: &str) -> BTreeMap<String, String> {
    read_to_end(topic)
        .0
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect()
}

fn expect_table(topic: &str, expected: &[(&str, &str)]) {
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wait_until(&format!("{topic} to hold {expected:?}"), || {
        table_of(topic) == expected
    });
}

/// Starts `topology` as application `app` and waits until it runs; the state
/// directory lives as long as the returned guard.
fn start_running(
    topology: kafka_streams::Topology,
    app: &str,
) -> (KafkaStreams, tempfile::TempDir) {
    let state_dir = tempfile::tempdir().expect("state dir");
    let streams = KafkaStreams::new(
        topology,
        StreamsConfig::new(app, config())
            .state_dir(state_dir.path())
            .commit_interval(Duration::from_millis(100)),
    )
    .expect("streams");
    streams.start().expect("start");
    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "streams did not reach RUNNING: {:?}",
        streams.error()
    );
    (streams, state_dir)
}

#[test]
fn a_foreign_key_join_runs_through_its_subscription_and_response_topics() {
    // Sensors (3 partitions) name their machine (2 partitions): no co-partitioning.
    let sensors = topic("fk-sensors", 3);
    let machines = topic("fk-machines", 2);
    let out = topic("fk-sensor-halls", 1);
    produce(&machines, &[("m1", Some("hall-a")), ("m2", Some("hall-b"))]);
    produce(
        &sensors,
        &[
            ("temp-1", Some("m1/temp")),
            ("pressure-1", Some("m1/pressure")),
            ("temp-2", Some("m2/temp")),
            ("temp-3", Some("m3/temp")),
        ],
    );

    let builder = StreamsBuilder::new();
    let sensor_table = builder.table::<String, String>(&sensors);
    let machine_table = builder.table::<String, String>(&machines);
    sensor_table
        .join_foreign_key(
            &machine_table,
            |v: &String| v.split('/').next().unwrap_or_default().to_owned(),
            |sensor, hall| format!("{sensor}@{hall}"),
        )
        .to_stream()
        .to_with(&out, Produced::with(StringSerde, OptionSerde(StringSerde)));
    let topology = builder.build().expect("topology");
    let internal: Vec<String> = topology.internal_topics().map(|t| t.name.clone()).collect();
    let app = unique_name("fk-join-app");
    let (streams, _state_dir) = start_running(topology, &app);

    // The internal topics exist, sized like the tables they line up with.
    for name in &internal {
        let partitions = if name.contains("-SUBSCRIPTION-REGISTRATION-") {
            2
        } else {
            3
        };
        assert!(name.ends_with("-topic"), "{name}");
        block_on(wait_for_partitions(&format!("{app}-{name}"), partitions));
    }

    expect_table(
        &out,
        &[
            ("temp-1", "m1/temp@hall-a"),
            ("pressure-1", "m1/pressure@hall-a"),
            ("temp-2", "m2/temp@hall-b"),
        ],
    );

    // A foreign-key change, a new foreign row, a deleted foreign row and a deleted
    // sensor.
    produce(&sensors, &[("temp-1", Some("m2/temp"))]);
    produce(&machines, &[("m3", Some("hall-c"))]);
    produce(&machines, &[("m1", None)]);
    produce(&sensors, &[("temp-2", None)]);
    expect_table(
        &out,
        &[("temp-1", "m2/temp@hall-b"), ("temp-3", "m3/temp@hall-c")],
    );
    assert!(streams.close_timeout(DEADLINE), "close");
}

#[test]
fn a_stream_table_join_of_topics_not_co_partitioned_fails_at_start_naming_them() {
    let readings = topic("join-readings", 2);
    let units = topic("join-units", 3);
    let builder = StreamsBuilder::new();
    let unit_table = builder.table::<String, String>(&units);
    builder
        .stream::<String, String>(&readings)
        .join_table(&unit_table, |reading, unit| format!("{reading} {unit}"))
        .to(&unique_name("join-out"));
    let state_dir = tempfile::tempdir().expect("state dir");
    let streams = KafkaStreams::new(
        builder.build().expect("topology"),
        StreamsConfig::new(unique_name("copartition-app"), config()).state_dir(state_dir.path()),
    )
    .expect("streams");
    streams.start().expect("start");
    wait_until("the client fails", || streams.state() == State::Error);
    let error = streams.error().expect("the error that stopped the client");
    match error.as_ref() {
        StreamsError::CoPartitioning { topics, counts, .. } => {
            let found: BTreeMap<&str, i32> = topics
                .iter()
                .map(String::as_str)
                .zip(counts.iter().copied())
                .collect();
            assert_eq!(
                found,
                BTreeMap::from([(readings.as_str(), 2), (units.as_str(), 3)])
            );
        }
        other => panic!("expected a co-partitioning error, got {other}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&readings)
            && message.contains(&units)
            && (message.contains("[3, 2]") || message.contains("[2, 3]")),
        "{message}"
    );
    assert!(streams.close_timeout(DEADLINE), "close");
}

#[test]
fn a_stream_rekeyed_before_a_table_join_is_repartitioned_into_as_many_partitions_as_the_table() {
    // Readings (2 partitions) keyed by machine, value "<sensor>=<reading>"; sensor
    // units (4 partitions) keyed by sensor.
    let readings = topic("rekey-readings", 2);
    let units = topic("rekey-units", 4);
    let out = topic("rekey-labelled", 1);
    produce(&units, &[("temp-1", Some("°C")), ("pres-1", Some("mbar"))]);

    let builder = StreamsBuilder::new();
    let unit_table = builder
        .table_with::<String, String>(&units, kafka_streams::dsl::Materialized::as_("units-store"));
    builder
        .stream::<String, String>(&readings)
        .select_key(|_, v| v.split('=').next().unwrap_or_default().to_owned())
        .join_table(&unit_table, |reading, unit| format!("{reading} {unit}"))
        .to(&out);
    let topology = builder.build().expect("topology");
    let repartition: Vec<String> = topology.internal_topics().map(|t| t.name.clone()).collect();
    assert_eq!(repartition.len(), 1, "{repartition:?}");
    let app = unique_name("rekey-join-app");
    let (streams, _state_dir) = start_running(topology, &app);
    // Sized like the table's topic, not like the readings' topic upstream of it.
    block_on(wait_for_partitions(&format!("{app}-{}", repartition[0]), 4));
    // The table holds both units before any reading is joined with it.
    wait_until("the units table to hold both sensors", || {
        streams
            .store::<String, String>("units-store")
            .and_then(|s| s.all())
            .is_ok_and(|rows| rows.len() == 2)
    });
    produce(
        &readings,
        &[
            ("m1", Some("temp-1=850")),
            ("m2", Some("pres-1=1013")),
            ("m1", Some("hum-9=40")),
        ],
    );
    expect_table(
        &out,
        &[("temp-1", "temp-1=850 °C"), ("pres-1", "pres-1=1013 mbar")],
    );
    assert!(streams.close_timeout(DEADLINE), "close");
}
