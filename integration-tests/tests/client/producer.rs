//! Producer behaviour: partitioning, backpressure, flush.

use std::time::Duration;

use futures::future::join_all;
use integration_tests::{config, create_topic, unique_name};
use kafka_client::{default_partition, Partitioner, Producer, ProducerRecord};

/// Routes the "alarm" key to partition 3 and leaves the rest to the default.
struct AlarmsFirst;

impl Partitioner for AlarmsFirst {
    fn partition(&self, _topic: &str, key: Option<&[u8]>, _count: i32) -> Option<i32> {
        (key == Some(&b"alarm"[..])).then_some(3)
    }
}

#[tokio::test]
async fn custom_partitioner_and_kafka_default_hashing() {
    let topic = unique_name("partitioner");
    create_topic(&topic, 4).await;
    let plain: Producer<String, String> = Producer::new(&config()).unwrap();
    let custom: Producer<String, String> = Producer::builder(&config())
        .key_serializer(kafka_client::serde::StringSerde)
        .value_serializer(kafka_client::serde::StringSerde)
        .partitioner(AlarmsFirst)
        .build()
        .unwrap();

    let keys: Vec<String> = (0..20).map(|i| format!("sensor-{i}")).collect();
    let mut partitions_used = std::collections::BTreeSet::new();
    for key in &keys {
        let expected = default_partition(Some(key.as_bytes()), 4).unwrap();
        let by_default = plain
            .send(ProducerRecord::new(&topic, key.clone(), "v".into()))
            .await
            .unwrap();
        let by_custom = custom
            .send(ProducerRecord::new(&topic, key.clone(), "v".into()))
            .await
            .unwrap();
        // librdkafka's partitioner and our fallback both hash like Java's murmur2.
        assert_eq!(by_default.partition, expected, "key {key}");
        assert_eq!(by_custom.partition, expected, "key {key}");
        partitions_used.insert(expected);
    }
    assert!(
        partitions_used.len() > 1,
        "keys should spread over partitions"
    );

    for _ in 0..3 {
        let alarm = custom
            .send(ProducerRecord::new(&topic, "alarm".into(), "hot".into()))
            .await
            .unwrap();
        assert_eq!(alarm.partition, 3);
    }
    let alarm_default = default_partition(Some(b"alarm"), 4).unwrap();
    let by_plain = plain
        .send(ProducerRecord::new(&topic, "alarm".into(), "hot".into()))
        .await
        .unwrap();
    assert_eq!(by_plain.partition, alarm_default);
}

#[tokio::test]
async fn full_queue_makes_send_wait_instead_of_failing() {
    let topic = unique_name("backpressure");
    create_topic(&topic, 1).await;
    // A 5-record local queue: 300 concurrent sends must wait for room, not fail.
    let producer: Producer<String, String> = Producer::new(
        &config()
            .set("queue.buffering.max.messages", "5")
            .set("linger.ms", "0"),
    )
    .unwrap();
    let sends = (0..300).map(|i| {
        producer.send(ProducerRecord::new(
            &topic,
            format!("k{i}"),
            format!("v{i}"),
        ))
    });
    let results = join_all(sends).await;
    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "sends failed: {failures:?}");
    let mut offsets: Vec<i64> = results.into_iter().map(|r| r.unwrap().offset).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..300).collect::<Vec<_>>());
    producer.flush(Duration::from_secs(30)).await.unwrap();
    assert_eq!(producer.in_flight_count(), 0);
}

#[tokio::test]
async fn failed_send_hands_the_record_back() {
    // A record larger than message.max.bytes is refused locally.
    let producer: Producer<String, Vec<u8>> =
        Producer::new(&config().set("message.max.bytes", "1000")).unwrap();
    let record = ProducerRecord::new(unique_name("too-big"), "k".to_string(), vec![7_u8; 5000]);
    let err = producer.send(record.clone()).await.unwrap_err();
    assert_eq!(err.record, record);
    assert!(err.to_string().contains(&record.topic), "{err}");
}

#[tokio::test]
async fn send_batch_reports_every_record_in_order() {
    let topic = unique_name("batch");
    create_topic(&topic, 1).await;
    // A tiny queue and a size limit: the batch must wait for room, and the one
    // oversized record must come back as a failure in its own position.
    let producer: Producer<String, Vec<u8>> = Producer::new(
        &config()
            .set("queue.buffering.max.messages", "5")
            .set("message.max.bytes", "2000"),
    )
    .unwrap();
    let records: Vec<_> = (0..300)
        .map(|i| {
            let size = if i == 150 { 5000 } else { 10 };
            ProducerRecord::new(&topic, format!("k{i}"), vec![i as u8; size])
        })
        .collect();
    let results = producer.send_batch(records).await;
    assert_eq!(results.len(), 300);
    let mut next_offset = 0;
    for (i, result) in results.into_iter().enumerate() {
        if i == 150 {
            let err = result.expect_err("the oversized record must fail");
            assert_eq!(err.record.key, "k150");
            assert_eq!(err.record.value.len(), 5000);
        } else {
            let meta = result.unwrap_or_else(|e| panic!("record {i}: {e}"));
            assert_eq!(meta.offset, next_offset, "record {i} out of order");
            next_offset += 1;
        }
    }
    assert_eq!(next_offset, 299);
}
