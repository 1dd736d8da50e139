//! Windowed cogrouped aggregations through the test driver: one window or session
//! store fed by several grouped streams, queryable, with late records dropped and
//! counted, and the store's retention checked at build time. Kafka Streams' own output
//! for the same inputs is checked by the conformance test (conformance/scenarios.txt,
//! `cogrouped-windowed-aggregate`).

use std::sync::Arc;
use std::time::Duration;

use kafka_client::serde::{BigEndian, StringSerde};
use kafka_streams::dsl::{Consumed, Materialized, SessionWindows, StreamsBuilder, TimeWindows};
use kafka_streams::state::{TypedSessionStore, TypedWindowStore, ValueAndTimestamp};
use kafka_streams::test_driver::TopologyTestDriver;

type R = anyhow::Result<()>;

/// Clicks count 10 each and views 1 each, per key and window.
fn scores(builder: &StreamsBuilder) -> kafka_streams::dsl::CogroupedKStream<String, i64> {
    let clicks = builder
        .stream_with::<String, i64>("clicks", Consumed::with(StringSerde, BigEndian))
        .group_by_key();
    let views = builder
        .stream_with::<String, i64>("views", Consumed::with(StringSerde, BigEndian))
        .group_by_key();
    clicks
        .cogroup(|_, clicks: &i64, score: i64| score + 10 * clicks)
        .cogroup(&views, |_, views, score| score + views)
}

#[test]
fn time_windowed_cogroup_aggregates_both_streams_into_one_queryable_store() -> R {
    let builder = StreamsBuilder::new();
    scores(&builder)
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_millis(100),
            Duration::from_millis(10),
        )?)
        .aggregate_with(
            || 0,
            Materialized::as_("scores").with_value_serde(Arc::new(BigEndian)),
        );
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let clicks = driver.create_input_topic_with::<String, i64>("clicks", StringSerde, BigEndian);
    let views = driver.create_input_topic_with::<String, i64>("views", StringSerde, BigEndian);
    let u = || "u".to_owned();
    clicks.pipe_input_at(u(), 1, 5)?;
    views.pipe_input_at(u(), 3, 50)?;
    views.pipe_input_at(u(), 1, 150)?;
    clicks.pipe_input_at(u(), 2, 120)?;
    // Stream time 150, grace 10: the window [0, 100) closed at 110, so a late click
    // for it is dropped and counted.
    clicks.pipe_input_at(u(), 5, 99)?;
    assert_eq!(driver.metrics().skipped_records, 1);

    let windows = driver
        .with_state_store::<TypedWindowStore<String, ValueAndTimestamp<i64>>, _>(
            "scores",
            |store| -> anyhow::Result<Vec<(i64, i64, i64)>> {
                let mut windows = Vec::new();
                for entry in store.fetch(&u(), 0, 1_000)? {
                    let (start, value) = entry?;
                    windows.push((start, value.value, value.timestamp));
                }
                Ok(windows)
            },
        )
        .transpose()?;
    assert_eq!(windows, Some(vec![(0, 13, 50), (100, 21, 150)]));
    Ok(())
}

#[test]
fn session_windowed_cogroup_merges_sessions_with_the_merger() -> R {
    let builder = StreamsBuilder::new();
    scores(&builder)
        .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(
            Duration::from_millis(10),
        )?)
        .aggregate_with(
            || 0,
            |_, merged, session: &i64| merged + session,
            Materialized::as_("session-scores").with_value_serde(Arc::new(BigEndian)),
        );
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let clicks = driver.create_input_topic_with::<String, i64>("clicks", StringSerde, BigEndian);
    let views = driver.create_input_topic_with::<String, i64>("views", StringSerde, BigEndian);
    let u = || "u".to_owned();
    clicks.pipe_input_at(u(), 1, 0)?;
    views.pipe_input_at(u(), 4, 20)?;
    // Within the gap of both: the two sessions merge into [0, 20] with this view.
    views.pipe_input_at(u(), 2, 10)?;
    let sessions = driver
        .with_state_store::<TypedSessionStore<String, i64>, _>("session-scores", |store| {
            store
                .fetch(&u())?
                .map(|s| s.map(|(_, start, end, score)| (start, end, score)))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    assert_eq!(sessions, Some(vec![(0, 20, 16)]));
    Ok(())
}

#[test]
fn a_sliding_cogroup_store_shorter_than_twice_the_difference_plus_grace_is_refused() -> R {
    let windows = kafka_streams::dsl::SlidingWindows::of_time_difference_and_grace(
        Duration::from_secs(60),
        Duration::from_secs(30),
    )?;
    let builder = StreamsBuilder::new();
    scores(&builder)
        .windowed_by_sliding(windows)
        .aggregate_with(
            || 0,
            Materialized::as_("too-short")
                .with_value_serde(Arc::new(BigEndian))
                .with_retention(Duration::from_secs(149)),
        );
    let err = builder
        .build()
        .err()
        .ok_or_else(|| anyhow::anyhow!("149 s < 2 * 60 s + 30 s must be refused"))?;
    assert!(err.to_string().contains("window store too-short"), "{err}");
    Ok(())
}

/// `suppress(until_window_closes)` finds the windows' grace through the cogroup's
/// merge node (as Kafka's grace search walks through it): one final result per window,
/// once stream time passes its end plus grace.
#[test]
fn suppressed_cogrouped_windows_emit_one_final_result_per_window() -> R {
    use kafka_client::serde::{BytesSerde, OptionSerde};
    use kafka_streams::dsl::{BufferConfig, Produced, Suppressed};

    let builder = StreamsBuilder::new();
    scores(&builder)
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_millis(100),
            Duration::from_millis(10),
        )?)
        .aggregate_with(
            || 0,
            Materialized::as_("scores").with_value_serde(Arc::new(BigEndian)),
        )
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to_with(
            "finals",
            Produced::as_("finals-sink").with_value_serializer(OptionSerde(BigEndian)),
        );
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let clicks = driver.create_input_topic_with::<String, i64>("clicks", StringSerde, BigEndian);
    let views = driver.create_input_topic_with::<String, i64>("views", StringSerde, BigEndian);
    let u = || "u".to_owned();
    clicks.pipe_input_at(u(), 1, 5)?;
    views.pipe_input_at(u(), 3, 50)?;
    views.pipe_input_at(u(), 1, 105)?;
    let finals = driver.create_output_topic_with::<Vec<u8>, i64>("finals", BytesSerde, BigEndian);
    // Stream time 105 < 100 + grace 10: the first window is still open.
    assert!(finals.read_values_to_list()?.is_empty());
    clicks.pipe_input_at(u(), 2, 110)?;
    assert_eq!(finals.read_values_to_list()?, vec![13]);
    Ok(())
}
