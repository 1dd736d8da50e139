//! Time-windowed aggregations through the test driver: records dropped for closed
//! windows are counted in the task's `dropped-records` metric, and
//! `emit_strategy(EmitStrategy::on_window_close())` sends one final result per window
//! once it closes. Kafka Streams' own output for the same strategies is checked by the
//! conformance test (conformance/scenarios.txt, `windowed-count` with `emit=close`).

use std::time::Duration;

use kafka_client::serde::{BigEndian, OptionSerde, StringSerde};
use kafka_client::{ClientConfig, Headers};
use kafka_streams::dsl::{
    Consumed, EmitStrategy, Materialized, Produced, StreamsBuilder, TimeWindowedSerde, TimeWindows,
    Windowed,
};
use kafka_streams::runtime::StreamsConfig;
use kafka_streams::state::{TypedWindowStore, ValueAndTimestamp};
use kafka_streams::test_driver::{TestRecord, TopologyTestDriver};

type R = anyhow::Result<()>;

const SIZE: Duration = Duration::from_millis(10);

/// `input` grouped by key, windowed by `windows` with `emit`, counted into the store
/// `counts`, and written to `output`.
fn counting(windows: TimeWindows, emit: EmitStrategy) -> StreamsBuilder {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>("input", Consumed::with(StringSerde, StringSerde))
        .group_by_key()
        .windowed_by(windows)
        .emit_strategy(emit)
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .to_with(
            "output",
            Produced::as_("counts-sink").with_value_serializer(OptionSerde(BigEndian)),
        );
    builder
}

/// Everything on `output` as `(key, window start, count, timestamp)`.
fn read_counts(driver: &TopologyTestDriver) -> anyhow::Result<Vec<(String, i64, i64, i64)>> {
    Ok(read_count_records(driver)?
        .into_iter()
        .map(|r| (r.key.key, r.key.window.start(), r.value, r.timestamp))
        .collect())
}

fn read_count_records(
    driver: &TopologyTestDriver,
) -> anyhow::Result<Vec<TestRecord<Windowed<String>, i64>>> {
    let output = driver.create_output_topic_with::<Windowed<String>, i64>(
        "output",
        TimeWindowedSerde::new(StringSerde, SIZE)?,
        BigEndian,
    );
    Ok(output.read_records_to_list()?)
}

fn row(key: &str, start: i64, count: i64, timestamp: i64) -> (String, i64, i64, i64) {
    (key.to_owned(), start, count, timestamp)
}

#[test]
fn records_for_closed_windows_are_dropped_and_counted() -> R {
    // Tumbling: a late record falls in one closed window.
    let tumbling = counting(
        TimeWindows::of_size_with_no_grace(SIZE)?,
        EmitStrategy::on_window_update(),
    );
    let driver = TopologyTestDriver::new(tumbling.build()?)?;
    let input = driver.create_input_topic_with::<String, String>("input", StringSerde, StringSerde);
    input.pipe_input_at("a".into(), "x".into(), 1)?;
    input.pipe_input_at("a".into(), "x".into(), 25)?;
    assert_eq!(driver.metrics().skipped_records, 0);
    input.pipe_input_at("a".into(), "x".into(), 3)?;
    input.pipe_input_at("b".into(), "x".into(), 14)?;
    let metrics = driver.metrics();
    assert_eq!(metrics.skipped_records, 2, "{metrics:?}");
    assert_eq!(metrics.processed_records, 4, "{metrics:?}");
    // The dropped records changed nothing downstream.
    assert_eq!(
        read_counts(&driver)?,
        vec![row("a", 0, 1, 1), row("a", 20, 1, 25)]
    );

    // Hopping: as in Kafka, a late record counts once per closed window it falls in.
    let hopping = counting(
        TimeWindows::of_size_and_grace(SIZE, Duration::from_millis(2))?
            .advance_by(Duration::from_millis(5))?,
        EmitStrategy::on_window_update(),
    );
    let driver = TopologyTestDriver::new(hopping.build()?)?;
    let input = driver.create_input_topic_with::<String, String>("input", StringSerde, StringSerde);
    input.pipe_input_at("a".into(), "x".into(), 30)?;
    // Close time 28: [0,10) is closed; 7 is also in [5,15), closed too.
    input.pipe_input_at("a".into(), "x".into(), 7)?;
    assert_eq!(driver.metrics().skipped_records, 2);
    // 21 is in [15,25) (closed) and [20,30) (open): one drop, one update.
    input.pipe_input_at("a".into(), "x".into(), 21)?;
    assert_eq!(driver.metrics().skipped_records, 3);
    assert_eq!(
        read_counts(&driver)?,
        vec![
            row("a", 25, 1, 30),
            row("a", 30, 1, 30),
            row("a", 20, 1, 21)
        ]
    );
    Ok(())
}

#[test]
fn on_window_close_emits_one_final_result_per_window() -> R {
    let builder = counting(
        TimeWindows::of_size_and_grace(SIZE, Duration::from_millis(5))?,
        EmitStrategy::on_window_close(),
    );
    let driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.create_input_topic_with::<String, String>("input", StringSerde, StringSerde);
    for (key, at) in [("b", 1), ("a", 3), ("b", 12), ("a", 8), ("b", 14)] {
        input.pipe_input_at(key.into(), "x".into(), at)?;
    }
    // Stream time 14, close time 9: [0,10) is still open; nothing went out, but the
    // store holds the running counts.
    assert!(read_counts(&driver)?.is_empty());
    let open = driver.with_state_store::<TypedWindowStore<String, ValueAndTimestamp<i64>>, _>(
        "counts",
        |store| store.fetch_window(&"a".to_owned(), 0),
    );
    assert_eq!(
        open.transpose()?,
        Some(Some(ValueAndTimestamp {
            value: 2,
            timestamp: 8
        }))
    );

    // 15 closes [0,10): its final counts go out, by window start then key, stamped
    // with each window's largest timestamp and carrying the closing record's headers.
    let headers = Headers::new().with("trace", b"closing".to_vec());
    input.pipe_record(TestRecord::new("c".to_owned(), "x".to_owned(), 15).with_headers(headers))?;
    let closed = read_count_records(&driver)?;
    assert_eq!(
        closed
            .iter()
            .map(|r| (
                r.key.key.as_str(),
                r.key.window.start(),
                r.value,
                r.timestamp
            ))
            .collect::<Vec<_>>(),
        vec![("a", 0, 2, 8), ("b", 0, 1, 1)]
    );
    for record in &closed {
        assert_eq!(
            record.headers.last("trace"),
            Some(&b"closing"[..]),
            "{record:?}"
        );
    }

    // A record inside grace updates an open window and emits nothing; a late one for
    // a window already emitted is dropped and counted, never emitted again.
    input.pipe_input_at("a".into(), "x".into(), 11)?;
    input.pipe_input_at("a".into(), "x".into(), 2)?;
    assert!(read_counts(&driver)?.is_empty());
    assert_eq!(driver.metrics().skipped_records, 1);

    // 31 closes [10,20); several windows closing at once go out by start then key.
    input.pipe_input_at("a".into(), "x".into(), 27)?;
    input.pipe_input_at("b".into(), "x".into(), 31)?;
    assert_eq!(
        read_counts(&driver)?,
        vec![
            row("a", 10, 1, 11),
            row("b", 10, 2, 14),
            row("c", 10, 1, 15),
        ]
    );
    // Stream time not moving: nothing more.
    input.pipe_input_at("a".into(), "x".into(), 29)?;
    assert!(read_counts(&driver)?.is_empty());
    input.pipe_input_at("c".into(), "x".into(), 38)?;
    assert_eq!(read_counts(&driver)?, vec![row("a", 20, 2, 29)]);
    input.pipe_input_at("c".into(), "x".into(), 45)?;
    assert_eq!(
        read_counts(&driver)?,
        vec![row("b", 30, 1, 31), row("c", 30, 1, 38)]
    );
    Ok(())
}

#[test]
fn on_window_close_looks_for_closed_windows_once_per_emit_interval() -> R {
    let builder = counting(
        TimeWindows::of_size_with_no_grace(SIZE)?,
        EmitStrategy::on_window_close(),
    );
    // Kafka's default outside the test driver: at most one look per second of wall
    // clock; each look (here the first record's) pushes the next a second past now.
    let config = StreamsConfig::new("emit-interval", ClientConfig::new("unused:9092"))
        .set("__emit.interval.ms.kstreams.windowed.aggregation__", "1000")?;
    let driver = TopologyTestDriver::with_config(builder.build()?, config)?;
    let input = driver.create_input_topic_with::<String, String>("input", StringSerde, StringSerde);
    input.pipe_input_at("a".into(), "x".into(), 1)?;
    input.pipe_input_at("a".into(), "x".into(), 12)?;
    input.pipe_input_at("b".into(), "x".into(), 13)?;
    assert!(
        read_counts(&driver)?.is_empty(),
        "[0,10) closed, but not looked for"
    );
    driver.advance_wall_clock_time(Duration::from_millis(999))?;
    input.pipe_input_at("b".into(), "x".into(), 14)?;
    assert!(read_counts(&driver)?.is_empty());
    // A wall-clock advance alone emits nothing: the look comes with a record.
    driver.advance_wall_clock_time(Duration::from_millis(1))?;
    assert!(read_counts(&driver)?.is_empty());
    input.pipe_input_at("b".into(), "x".into(), 15)?;
    assert_eq!(read_counts(&driver)?, vec![row("a", 0, 1, 1)]);
    Ok(())
}

#[test]
fn emit_strategy_defaults_to_on_window_update() {
    assert_eq!(EmitStrategy::default(), EmitStrategy::on_window_update());
    assert_ne!(
        EmitStrategy::on_window_close(),
        EmitStrategy::on_window_update()
    );
}
