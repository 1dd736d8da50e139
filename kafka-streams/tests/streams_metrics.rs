//! The metrics snapshot per thread, task and store, through the test driver (which
//! runs the same task code as the stream threads and reports itself as the thread
//! `TopologyTestDriver`): each metric is checked against what the piped records must
//! have caused, so a metric that stops being recorded fails here.

use std::time::Duration;

use kafka_client::serde::StringSerde;
use kafka_client::ClientConfig;
use kafka_streams::dsl::{Consumed, Materialized, StreamsBuilder, TimeWindows};
use kafka_streams::runtime::StreamsConfig;
use kafka_streams::test_driver::TopologyTestDriver;

type R = anyhow::Result<()>;

const WALL_CLOCK_MS: i64 = 10_000;

fn driver(builder: StreamsBuilder) -> anyhow::Result<TopologyTestDriver> {
    Ok(TopologyTestDriver::with_config_and_time(
        builder.build()?,
        StreamsConfig::new("metrics-test", ClientConfig::new("test-driver:9092")),
        WALL_CLOCK_MS,
    )?)
}

#[test]
fn process_e2e_commit_and_store_metrics_follow_the_records() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>("words", Consumed::with(StringSerde, StringSerde))
        .group_by_key()
        .count_with(Materialized::as_("counts"));
    let driver = driver(builder)?;
    let input = driver.create_input_topic_with::<String, String>("words", StringSerde, StringSerde);
    // Timestamps 1 000 … 1 009 against a wall clock of 10 000: end-to-end latencies
    // 9 000 … 8 991 ms.
    for i in 0..10i64 {
        input.pipe_input_at(format!("w{}", i % 3), "x".into(), 1_000 + i)?;
    }
    let m = driver.metrics();
    assert_eq!(m.processed_records, 10);
    assert_eq!(m.threads.len(), 1, "{m:#?}");
    let thread = &m.threads[0];
    assert_eq!(thread.thread, "TopologyTestDriver");
    assert_eq!(thread.process_total, 10);
    assert!(thread.process_rate > 0.0);
    // The driver commits after every piped record.
    assert_eq!(thread.commit_total, 10, "{thread:#?}");
    assert!(thread.commit_latency_avg > Duration::ZERO);
    assert!(thread.commit_latency_max >= thread.commit_latency_avg);
    assert_eq!(thread.dropped_records_total, 0);

    assert_eq!(thread.tasks.len(), 1);
    let task = &thread.tasks[0];
    assert_eq!(task.task.to_string(), "0_0");
    assert_eq!(task.process_total, 10);
    assert!(task.process_latency_avg > Duration::ZERO);
    assert!(task.process_latency_max >= task.process_latency_avg);
    assert!(task.process_latency_max < Duration::from_secs(10));
    assert_eq!(task.record_e2e_latency_min_ms, Some(8_991));
    assert_eq!(task.record_e2e_latency_max_ms, Some(9_000));
    assert_eq!(task.record_e2e_latency_avg_ms, Some(8_995.5));
    assert_eq!(task.dropped_records_total, 0);

    assert_eq!(task.stores.len(), 1, "{task:#?}");
    let store = &task.stores[0];
    assert_eq!(store.store, "counts");
    // One read and one write per record (the count's get-then-put; writes are
    // timed above the record cache, as Kafka's metered layer is).
    assert_eq!(store.get.count, 10, "{store:?}");
    assert_eq!(store.put.count, 10, "{store:?}");
    assert!(store.get.avg() > Duration::ZERO && store.put.avg() > Duration::ZERO);
    assert!(store.put.max < Duration::from_secs(10));
    assert_eq!(m.stores().count(), 1);
    // Nothing restores in the driver.
    assert!(m.restores.is_empty());
    Ok(())
}

#[test]
fn dropped_records_are_counted_per_task_and_in_the_client_total_and_window_stores_are_timed() -> R {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>("input", Consumed::with(StringSerde, StringSerde))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(
            10,
        ))?)
        .count_with(Materialized::as_("counts"));
    let driver = driver(builder)?;
    let input = driver.create_input_topic_with::<String, String>("input", StringSerde, StringSerde);
    input.pipe_input_at("a".into(), "x".into(), 1)?;
    input.pipe_input_at("a".into(), "x".into(), 25)?;
    // Its window [0, 10) closed at stream time 25: dropped.
    input.pipe_input_at("a".into(), "x".into(), 3)?;
    let m = driver.metrics();
    assert_eq!(m.skipped_records, 1);
    let task = m.tasks().next().expect("one task");
    assert_eq!(task.dropped_records_total, 1);
    assert_eq!(task.process_total, 3);
    assert_eq!(m.threads[0].dropped_records_total, 1);
    // The window store is timed too: a window fetch and a put per record counted,
    // none for the dropped one.
    let store = &task.stores[0];
    assert_eq!(store.store, "counts");
    assert_eq!((store.get.count, store.put.count), (2, 2), "{store:?}");
    assert!(store.get.avg() > Duration::ZERO && store.put.avg() > Duration::ZERO);
    Ok(())
}
