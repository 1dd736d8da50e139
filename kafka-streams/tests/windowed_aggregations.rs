//! Time-windowed aggregations through the test driver: reduce and aggregate per key
//! and window, the window store they keep (queryable, logged to a changelog), and
//! the windowed keys they write. Kafka Streams' own output for the same inputs is
//! checked by the conformance test (conformance/scenarios.txt, `windowed-count`).

use std::time::Duration;

use kafka_client::serde::{BigEndian, OptionSerde, StringSerde};
use kafka_streams::dsl::{
    Consumed, Materialized, Produced, StreamsBuilder, TimeWindowedSerde, TimeWindows, Windowed,
};
use kafka_streams::state::{TypedWindowStore, ValueAndTimestamp};
use kafka_streams::test_driver::TopologyTestDriver;

type R = anyhow::Result<()>;

fn minute() -> Duration {
    Duration::from_secs(60)
}

#[test]
fn reduce_and_aggregate_per_key_and_window() -> R {
    let builder = StreamsBuilder::new();
    let readings = builder
        .stream_with::<String, i64>("readings", Consumed::with(StringSerde, BigEndian))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(minute())?);
    readings
        .reduce_with(|a, b| a.max(*b), Materialized::as_("max-per-minute"))
        .to_stream()
        .to_with(
            "max",
            Produced::as_("max-sink").with_value_serializer(OptionSerde(BigEndian)),
        );
    readings
        .aggregate_with(
            || 0_i64,
            |_, v, sum| sum + v,
            Materialized::as_("sum-per-minute")
                .with_value_serde(std::sync::Arc::new(BigEndian))
                .with_retention(Duration::from_secs(3600)),
        )
        .to_stream()
        .to_with(
            "sum",
            Produced::as_("sum-sink").with_value_serializer(OptionSerde(BigEndian)),
        );
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic_with::<String, i64>("readings", StringSerde, BigEndian);
    for (sensor, value, at) in [
        ("s1", 5, 1_000),
        ("s1", 9, 30_000),
        ("s2", 4, 40_000),
        ("s1", 7, 59_999),
        ("s1", 2, 60_000),
    ] {
        input.pipe_input_at(sensor.to_owned(), value, at)?;
    }

    let windowed = |topic: &str| -> anyhow::Result<Vec<(String, i64, i64, i64)>> {
        let out = driver.create_output_topic_with::<Windowed<String>, i64>(
            topic,
            TimeWindowedSerde::new(StringSerde, minute())?,
            BigEndian,
        );
        Ok(out
            .read_records_to_list()?
            .into_iter()
            .map(|r| (r.key.key, r.key.window.start(), r.value, r.timestamp))
            .collect())
    };
    assert_eq!(
        windowed("max")?,
        vec![
            ("s1".to_owned(), 0, 5, 1_000),
            ("s1".to_owned(), 0, 9, 30_000),
            ("s2".to_owned(), 0, 4, 40_000),
            ("s1".to_owned(), 0, 9, 59_999),
            ("s1".to_owned(), 60_000, 2, 60_000),
        ]
    );
    assert_eq!(
        windowed("sum")?,
        vec![
            ("s1".to_owned(), 0, 5, 1_000),
            ("s1".to_owned(), 0, 14, 30_000),
            ("s2".to_owned(), 0, 4, 40_000),
            ("s1".to_owned(), 0, 21, 59_999),
            ("s1".to_owned(), 60_000, 2, 60_000),
        ]
    );

    // The store answers window queries, and every update went to its changelog.
    let s1 = driver.with_state_store::<TypedWindowStore<String, ValueAndTimestamp<i64>>, _>(
        "sum-per-minute",
        |store| -> anyhow::Result<Vec<(i64, i64, i64)>> {
            let mut windows = Vec::new();
            for entry in store.fetch(&"s1".to_owned(), 0, 60_000)? {
                let (start, value) = entry?;
                windows.push((start, value.value, value.timestamp));
            }
            Ok(windows)
        },
    );
    assert_eq!(
        s1.transpose()?,
        Some(vec![(0, 21, 59_999), (60_000, 2, 60_000)])
    );
    let produced = driver.produced_topics();
    assert_eq!(
        produced.get("topology-test-driver-sum-per-minute-changelog"),
        Some(&5),
        "{produced:?}"
    );
    Ok(())
}

#[test]
fn a_retention_shorter_than_size_plus_grace_is_a_build_error() -> R {
    let windows = TimeWindows::of_size_and_grace(minute(), Duration::from_secs(30))?;
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, i64>("readings", Consumed::with(StringSerde, BigEndian))
        .group_by_key()
        .windowed_by(windows)
        .count_with(Materialized::as_("too-short").with_retention(Duration::from_secs(80)));
    let err = builder
        .build()
        .err()
        .ok_or_else(|| anyhow::anyhow!("80 s < 60 s + 30 s must be refused"))?;
    assert!(err.to_string().contains("window store too-short"), "{err}");
    assert!(err.to_string().contains("grace=[30000]"), "{err}");
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, i64>("readings", Consumed::with(StringSerde, BigEndian))
        .group_by_key()
        .windowed_by(windows)
        .count_with(Materialized::as_("enough").with_retention(Duration::from_secs(90)));
    builder.build()?;
    Ok(())
}
