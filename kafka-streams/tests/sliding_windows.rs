//! Sliding-window aggregations through the test driver: reduce and aggregate per key
//! over sliding windows (both bounds inclusive), out-of-order and late records, the
//! window store they keep (queryable, logged to a changelog) and its retention rule.
//! Kafka Streams' own output for sliding counts is checked by the conformance test
//! (conformance/scenarios.txt, `sliding-count`).

use std::sync::Arc;
use std::time::Duration;

use kafka_client::serde::{BigEndian, OptionSerde, StringSerde};
use kafka_streams::dsl::{
    Consumed, Materialized, Produced, SlidingWindows, StreamsBuilder, TimeWindowedSerde, Windowed,
};
use kafka_streams::state::{TypedWindowStore, ValueAndTimestamp};
use kafka_streams::test_driver::TopologyTestDriver;

type R = anyhow::Result<()>;

const DIFFERENCE: Duration = Duration::from_millis(10);

/// A window's key, start, end, value and timestamp, as read from an output topic.
type Output<V> = (String, i64, i64, V, i64);

fn read_windows<V: 'static>(
    driver: &TopologyTestDriver,
    topic: &str,
    value_serde: impl kafka_client::serde::Serde<V> + 'static,
) -> anyhow::Result<Vec<Output<V>>> {
    // Sliding results are written with the time-windowed serde of window size = the
    // time difference, so the end read back is start + difference, as in Kafka.
    let out = driver.create_output_topic_with::<Windowed<String>, V>(
        topic,
        TimeWindowedSerde::new(StringSerde, DIFFERENCE)?,
        value_serde,
    );
    Ok(out
        .read_records_to_list()?
        .into_iter()
        .map(|r| {
            let window = r.key.window;
            (
                r.key.key,
                window.start(),
                window.end(),
                r.value,
                r.timestamp,
            )
        })
        .collect())
}

fn window<V>(start: i64, value: V, timestamp: i64) -> Output<V> {
    ("a".to_owned(), start, start + 10, value, timestamp)
}

#[test]
fn reduce_and_aggregate_over_sliding_windows() -> R {
    let builder = StreamsBuilder::new();
    let readings = builder
        .stream_with::<String, i64>("readings", Consumed::with(StringSerde, BigEndian))
        .group_by_key()
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            DIFFERENCE,
            Duration::from_millis(5),
        )?);
    readings
        .reduce_with(|a, b| a.max(*b), Materialized::as_("max-per-window"))
        .to_stream()
        .to_with(
            "max",
            Produced::as_("max-sink").with_value_serializer(OptionSerde(BigEndian)),
        );
    // The values of each window in the order they were added, to show which records
    // each window holds.
    readings
        .aggregate_with(
            String::new,
            |_, v, trail: String| format!("{trail}{v};"),
            Materialized::as_("trail-per-window").with_value_serde(Arc::new(StringSerde)),
        )
        .to_stream()
        .to_with(
            "trail",
            Produced::as_("trail-sink").with_value_serializer(OptionSerde(StringSerde)),
        );
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic_with::<String, i64>("readings", StringSerde, BigEndian);
    for (value, at) in [
        (5, 20),
        (3, 25),
        (7, 32),
        // Out of order, inside the windows of 25 and 32: updates them, creates its own
        // left window [18, 28] from [15, 25] and its right window [29, 39] from the
        // window of the records after it.
        (1, 28),
    ] {
        input.pipe_input_at("a".to_owned(), value, at)?;
    }
    assert_eq!(driver.metrics().skipped_records, 0);
    for (value, at) in [
        // Stream time 32, grace 5: windows ending before 27 are closed. Both windows
        // of a record at 10 end by 20: dropped.
        (9, 10),
        // Within grace: added to [18, 28]; its windows [15, 25] and [10, 20] are
        // closed and skipped.
        (4, 20),
    ] {
        input.pipe_input_at("a".to_owned(), value, at)?;
    }
    // Per aggregation: one dropped record and two skipped window updates (Kafka's
    // dropped-records counts both).
    assert_eq!(driver.metrics().skipped_records, 6);

    let trail = |s: &str| s.to_owned();
    assert_eq!(
        read_windows(&driver, "trail", StringSerde)?,
        vec![
            window(10, trail("5;"), 20),
            // 25 creates the right window of 20 and its own left window.
            window(21, trail("3;"), 25),
            window(15, trail("5;3;"), 25),
            window(26, trail("7;"), 32),
            window(22, trail("3;7;"), 32),
            // 28 updates the windows it falls in, newest first, then creates its own.
            window(26, trail("7;1;"), 32),
            window(22, trail("3;7;1;"), 32),
            window(21, trail("3;1;"), 28),
            window(18, trail("5;3;1;"), 28),
            window(29, trail("7;"), 32),
            window(18, trail("5;3;1;4;"), 28),
        ]
    );
    assert_eq!(
        read_windows::<i64>(&driver, "max", BigEndian)?,
        vec![
            window(10, 5, 20),
            window(21, 3, 25),
            window(15, 5, 25),
            window(26, 7, 32),
            window(22, 7, 32),
            window(26, 7, 32),
            window(22, 7, 32),
            window(21, 3, 28),
            window(18, 5, 28),
            window(29, 7, 32),
            window(18, 5, 28),
        ]
    );

    // The store keeps each window under its start, with its largest timestamp.
    let stored = driver.with_state_store::<TypedWindowStore<String, ValueAndTimestamp<String>>, _>(
        "trail-per-window",
        |store| -> anyhow::Result<_> {
            let a = "a".to_owned();
            let mut windows = Vec::new();
            for entry in store.fetch(&a, 0, 100)? {
                let (start, value) = entry?;
                windows.push((start, value.value, value.timestamp));
            }
            let backward = store
                .backward_fetch(&a, 20, 26)?
                .map(|entry| entry.map(|(start, _)| start))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((windows, backward, store.fetch_window(&a, 29)?))
        },
    );
    let (windows, backward, right_of_28) = stored
        .transpose()?
        .expect("the store trail-per-window exists");
    assert_eq!(
        windows,
        vec![
            (10, trail("5;"), 20),
            (15, trail("5;3;"), 25),
            (18, trail("5;3;1;4;"), 28),
            (21, trail("3;1;"), 28),
            (22, trail("3;7;1;"), 32),
            (26, trail("7;1;"), 32),
            (29, trail("7;"), 32),
        ]
    );
    assert_eq!(backward, vec![26, 22, 21]);
    assert_eq!(
        right_of_28,
        Some(ValueAndTimestamp {
            value: trail("7;"),
            timestamp: 32
        })
    );
    // Every window written went to the changelog.
    let produced = driver.produced_topics();
    assert_eq!(
        produced.get("topology-test-driver-trail-per-window-changelog"),
        Some(&11),
        "{produced:?}"
    );
    Ok(())
}

#[test]
fn count_keeps_keys_apart_and_shares_the_early_window() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>("events", Consumed::with(StringSerde, StringSerde))
        .group_by_key()
        .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(
            DIFFERENCE,
        )?)
        .count()
        .to_stream()
        .to_with(
            "counts",
            Produced::as_("counts-sink").with_value_serializer(OptionSerde(BigEndian)),
        );
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input =
        driver.create_input_topic_with::<String, String>("events", StringSerde, StringSerde);
    for (key, at) in [("a", 3), ("b", 4), ("a", 8), ("a", 18)] {
        input.pipe_input_at(key.to_owned(), "e".to_owned(), at)?;
    }
    let with_key =
        |key: &str, start: i64, count: i64, at: i64| (key.to_owned(), start, start + 10, count, at);
    assert_eq!(
        read_windows(&driver, "counts", BigEndian)?,
        vec![
            // Records before the time difference share [0, 10].
            with_key("a", 0, 1, 3),
            with_key("b", 0, 1, 4),
            // 8 creates the right window of 3 ([4, 14]) and joins [0, 10].
            with_key("a", 4, 1, 8),
            with_key("a", 0, 2, 8),
            // 18 is in the right window of 8 ([9, 19]), and its left window [8, 18]
            // holds 8 and 18; [4, 14] does not take it.
            with_key("a", 9, 1, 18),
            with_key("a", 8, 2, 18),
        ]
    );
    Ok(())
}

#[test]
fn updates_carry_old_values_as_in_kafka() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>("events", Consumed::with(StringSerde, StringSerde))
        .group_by_key()
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            DIFFERENCE,
            Duration::from_millis(20),
        )?)
        // Without a record cache, the processor's own old values go downstream (with
        // one, the old value is what the store held at the flush, as in Kafka).
        .count_with(Materialized::default().with_caching_disabled())
        // All windows of a key into one group, whose aggregate spells out what each
        // update subtracted (its old value) and added (its new value).
        .group_by(|windowed: &Windowed<String>, count: &i64| (windowed.key().clone(), *count))
        .aggregate_with(
            String::new,
            |_, count, ops: String| format!("{ops}+{count}"),
            |_, count, ops: String| format!("{ops}-{count}"),
            Materialized::as_("ops").with_value_serde(Arc::new(StringSerde)),
        );
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input =
        driver.create_input_topic_with::<String, String>("events", StringSerde, StringSerde);
    for at in [5, 20, 25] {
        input.pipe_input_at("a".to_owned(), "e".to_owned(), at)?;
    }
    let ops = driver
        .with_state_store::<kafka_streams::state::TypedKeyValueStore<String, String>, _>(
            "ops",
            |store| store.get(&"a".to_owned()),
        )
        .transpose()?
        .flatten()
        .ok_or_else(|| anyhow::anyhow!("the group a has an aggregate"))?;
    // As Kafka's `KStreamSlidingWindowAggregate`: a window created from scratch starts
    // from the initializer's aggregate, which is the old value of its first update
    // (0 for a count); a left window made from the previous window's aggregate has
    // that as its old value. 20 creates its left window [10, 20] (-0+1); 25 creates
    // the right window of 20, [21, 31] (-0+1), then its left window [15, 25] from
    // [10, 20] (-1+2). (The first update, into a group with no aggregate yet, is left
    // out: that is the table aggregation's business.)
    assert!(ops.ends_with("-0+1-0+1-1+2"), "{ops}");
    Ok(())
}

#[test]
fn a_retention_shorter_than_twice_the_difference_plus_grace_is_a_build_error() -> R {
    let windows = SlidingWindows::of_time_difference_and_grace(
        Duration::from_secs(60),
        Duration::from_secs(30),
    )?;
    let build = |retention: Duration| {
        let builder = StreamsBuilder::new();
        builder
            .stream_with::<String, i64>("readings", Consumed::with(StringSerde, BigEndian))
            .group_by_key()
            .windowed_by_sliding(windows)
            .count_with(Materialized::as_("sliding").with_retention(retention));
        builder.build()
    };
    // As Kafka: a record may need windows back to 2 * difference before it.
    let err = build(Duration::from_secs(149))
        .err()
        .ok_or_else(|| anyhow::anyhow!("149 s < 2 * 60 s + 30 s must be refused"))?;
    assert!(err.to_string().contains("window store sliding"), "{err}");
    assert!(err.to_string().contains("time difference=[60000]"), "{err}");
    build(Duration::from_secs(150))?;
    Ok(())
}
