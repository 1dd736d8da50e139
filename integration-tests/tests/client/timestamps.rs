//! The timestamp `send` reports in `RecordMetadata`: the record's create time
//! (given, or stamped at send), or the broker's append time on a
//! `LogAppendTime` topic; always what a consumer reads at that offset.

use std::time::{SystemTime, UNIX_EPOCH};

use integration_tests::{consumer_config, create_topic, create_topic_with_config, unique_name};
use kafka_client::{
    Consumer, ConsumerRecord, Offset, Producer, ProducerRecord, RecordMetadata, TimestampType,
    TopicPartition,
};

/// Ten minutes, in milliseconds: how far in the past explicit create times lie,
/// far enough from "now" that neither can pass for the other.
const TEN_MINUTES_MS: i64 = 10 * 60 * 1000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as i64
}

/// The first `count` records of partition 0 of `topic`, read with a fresh consumer.
async fn read_partition_0(topic: &str, count: usize) -> Vec<ConsumerRecord<String, String>> {
    let consumer: Consumer<String, String> =
        Consumer::new(&consumer_config(&unique_name("ts-reader"))).unwrap();
    consumer
        .assign(&[(TopicPartition::new(topic, 0), Offset::Beginning)])
        .unwrap();
    let mut records = Vec::with_capacity(count);
    while records.len() < count {
        records.push(consumer.recv().await.unwrap());
    }
    records
}

/// Each report's timestamp is the one the consumer reads at the report's offset,
/// with the expected timestamp type.
fn assert_reports_match_reads(
    reports: &[RecordMetadata],
    read: &[ConsumerRecord<String, String>],
    kind: TimestampType,
) {
    assert_eq!(reports.len(), read.len());
    for (report, record) in reports.iter().zip(read) {
        assert_eq!(
            (report.partition, report.offset),
            (record.partition, record.offset)
        );
        assert_eq!(
            report.timestamp, record.timestamp,
            "send reported {report:?}, the consumer read {record:?}"
        );
        assert_eq!(record.timestamp_type, Some(kind), "{record:?}");
    }
}

#[tokio::test]
async fn send_reports_the_create_time_the_consumer_reads() {
    let topic = unique_name("ts-create");
    create_topic(&topic, 1).await;
    let producer: Producer<String, String> = Producer::new(&integration_tests::config()).unwrap();
    let record = |value: &str| {
        ProducerRecord::new(&topic, "sensor-1".to_string(), value.to_string()).with_partition(0)
    };
    let mut reports = Vec::new();

    // An explicit timestamp is the record's timestamp.
    let explicit = now_ms() - TEN_MINUTES_MS + 123;
    let given = producer
        .send(record("given").with_timestamp(explicit))
        .await
        .unwrap();
    assert_eq!(given.timestamp, Some(explicit), "{given:?}");
    reports.push(given);

    // Without one, the producer stamps the time of sending.
    let before = now_ms();
    let stamped = producer.send(record("stamped")).await.unwrap();
    let after = now_ms();
    let ts = stamped.timestamp.expect("a stamped record has a timestamp");
    assert!(
        (before..=after).contains(&ts),
        "stamped {ts}, sent between {before} and {after}"
    );
    reports.push(stamped);

    // send_batch reports timestamps the same way.
    let before = now_ms();
    let batch = producer
        .send_batch(vec![
            record("batch-given").with_timestamp(explicit + 1),
            record("batch-stamped"),
        ])
        .await;
    let after = now_ms();
    let batch: Vec<RecordMetadata> = batch.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(batch[0].timestamp, Some(explicit + 1), "{batch:?}");
    let ts = batch[1]
        .timestamp
        .expect("a stamped record has a timestamp");
    assert!(
        (before..=after).contains(&ts),
        "stamped {ts}, sent between {before} and {after}"
    );
    reports.extend(batch);

    let read = read_partition_0(&topic, reports.len()).await;
    let values: Vec<&str> = read.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(values, ["given", "stamped", "batch-given", "batch-stamped"]);
    assert_reports_match_reads(&reports, &read, TimestampType::CreateTime);
}

#[tokio::test]
async fn on_a_log_append_time_topic_send_reports_the_brokers_append_time() {
    let topic = unique_name("ts-append");
    create_topic_with_config(&topic, 1, &[("message.timestamp.type", "LogAppendTime")]).await;
    let producer: Producer<String, String> = Producer::new(&integration_tests::config()).unwrap();
    let create_time = now_ms() - TEN_MINUTES_MS;

    let mut reports = Vec::new();
    for (value, timestamp) in [("given", Some(create_time)), ("stamped", None)] {
        let mut record = ProducerRecord::new(&topic, "sensor-1".to_string(), value.to_string())
            .with_partition(0);
        if let Some(ts) = timestamp {
            record = record.with_timestamp(ts);
        }
        let before = now_ms();
        let report = producer.send(record).await.unwrap();
        let after = now_ms();
        // The broker's clock, not the producer's: allow for some skew between
        // the two, far less than the ten minutes back of the create time.
        let appended = report
            .timestamp
            .expect("an appended record has a timestamp");
        assert!(
            (before - TEN_MINUTES_MS / 2..=after + TEN_MINUTES_MS / 2).contains(&appended),
            "append time {appended} is not near the send ({before}..{after}) in {report:?}"
        );
        assert_ne!(report.timestamp, Some(create_time), "{report:?}");
        reports.push(report);
    }

    let read = read_partition_0(&topic, reports.len()).await;
    let values: Vec<&str> = read.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(values, ["given", "stamped"]);
    assert_reports_match_reads(&reports, &read, TimestampType::LogAppendTime);
}
