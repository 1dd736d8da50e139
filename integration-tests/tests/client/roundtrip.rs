//! Typed round trips: every built-in serde, headers, partition, timestamp,
//! tombstones, and the Java byte layout of numbers.

use std::fmt::Debug;

use integration_tests::{consumer_config, create_topic, unique_name};
use kafka_client::serde::{DefaultSerde, Json};
use kafka_client::{ConsumeError, Consumer, ConsumerRecord, Headers, Producer, ProducerRecord};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SensorMeasurement {
    sensor_id: String,
    datetime: i64,
    value: i64,
}

/// Sends one record and reads it back with a fresh group.
async fn round_trip<K, V>(record: ProducerRecord<K, V>) -> ConsumerRecord<K, V>
where
    K: DefaultSerde + Sync + Clone + Debug,
    V: DefaultSerde + Sync + Clone + Debug,
{
    let topic = record.topic.clone();
    let producer: Producer<K, V> = Producer::new(&integration_tests::config()).unwrap();
    let meta = producer.send(record).await.unwrap();
    assert_eq!(meta.topic, topic);
    let consumer: Consumer<K, V> = Consumer::new(&consumer_config(&unique_name("rt"))).unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let received = consumer.recv().await.unwrap();
    assert_eq!(
        (received.partition, received.offset),
        (meta.partition, meta.offset)
    );
    received
}

#[tokio::test]
async fn strings_with_headers_partition_and_timestamp() {
    let topic = unique_name("rt-string");
    create_topic(&topic, 3).await;
    let headers = Headers::new()
        .with("source", "gateway-7")
        .with("trace", vec![0_u8, 1, 2]);
    let timestamp = integration_tests::an_hour_ago_ms() + 123;
    let record = ProducerRecord::new(&topic, "sensor-1".to_string(), "21.5".to_string())
        .with_partition(2)
        .with_timestamp(timestamp)
        .with_headers(headers.clone());
    let got = round_trip(record).await;
    assert_eq!(got.key, "sensor-1");
    assert_eq!(got.value, "21.5");
    assert_eq!(got.partition, 2);
    assert_eq!(got.timestamp, Some(timestamp));
    assert_eq!(got.headers, headers);
}

#[tokio::test]
async fn json_values() {
    let topic = unique_name("rt-json");
    create_topic(&topic, 1).await;
    let reading = SensorMeasurement {
        sensor_id: "t-17".into(),
        datetime: 1_700_000_000_000,
        value: 451,
    };
    let got = round_trip(ProducerRecord::new(
        &topic,
        "t-17".to_string(),
        Json(reading.clone()),
    ))
    .await;
    assert_eq!(got.value.0, reading);
}

#[tokio::test]
async fn i64_keys_and_values_use_java_big_endian_bytes() {
    let topic = unique_name("rt-i64");
    create_topic(&topic, 1).await;
    let got = round_trip(ProducerRecord::new(
        &topic,
        -2_i64,
        0x0102_0304_0506_0708_i64,
    ))
    .await;
    assert_eq!((got.key, got.value), (-2, 0x0102_0304_0506_0708));

    // The same record read as raw bytes: exactly Java's LongSerializer output.
    let raw: Consumer<Vec<u8>, Vec<u8>> =
        Consumer::new(&consumer_config(&unique_name("rt-i64-raw"))).unwrap();
    raw.subscribe(&[&topic]).unwrap();
    let bytes = raw.recv().await.unwrap();
    assert_eq!(
        bytes.key,
        vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]
    );
    assert_eq!(bytes.value, vec![1, 2, 3, 4, 5, 6, 7, 8]);
}

#[tokio::test]
async fn byte_keys_and_values() {
    let topic = unique_name("rt-bytes");
    create_topic(&topic, 1).await;
    let got = round_trip(ProducerRecord::new(
        &topic,
        vec![0_u8, 159, 146, 150],
        bytes::Bytes::from_static(b"\x00\xffpayload"),
    ))
    .await;
    assert_eq!(got.key, vec![0_u8, 159, 146, 150]);
    assert_eq!(&got.value[..], b"\x00\xffpayload");
}

#[tokio::test]
async fn tombstones_and_null_keys() {
    let topic = unique_name("rt-tombstone");
    create_topic(&topic, 1).await;
    let got = round_trip(ProducerRecord::new(
        &topic,
        "person-7".to_string(),
        Option::<String>::None,
    ))
    .await;
    assert_eq!(got.key, "person-7");
    assert_eq!(got.value, None);

    // A plain String consumer treats the tombstone as a poison record, not a panic.
    let strict: Consumer<String, String> =
        Consumer::new(&consumer_config(&unique_name("rt-strict"))).unwrap();
    strict.subscribe(&[&topic]).unwrap();
    match strict.recv().await {
        Err(ConsumeError::Deserialization(e)) => assert_eq!(e.value, None),
        other => panic!("expected a deserialization error, got {other:?}"),
    }

    let topic = unique_name("rt-nullkey");
    create_topic(&topic, 1).await;
    let got = round_trip(ProducerRecord::new(
        &topic,
        Option::<String>::None,
        "v".to_string(),
    ))
    .await;
    assert_eq!(got.key, None);
}

#[tokio::test]
async fn poison_value_reports_position_and_next_record_still_arrives() {
    let topic = unique_name("poison");
    create_topic(&topic, 1).await;
    let raw: Producer<String, Vec<u8>> = Producer::new(&integration_tests::config()).unwrap();
    let good = |v: i64| {
        serde_json::to_vec(&SensorMeasurement {
            sensor_id: "s".into(),
            datetime: 0,
            value: v,
        })
        .unwrap()
    };
    for value in [good(1), b"{not json".to_vec(), good(3)] {
        raw.send(ProducerRecord::new(&topic, "s".to_string(), value))
            .await
            .unwrap();
    }

    let consumer: Consumer<String, Json<SensorMeasurement>> =
        Consumer::new(&consumer_config(&unique_name("poison"))).unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    assert_eq!(consumer.recv().await.unwrap().value.value, 1);
    let err = consumer.recv().await.unwrap_err();
    let poison = err.as_deserialization().expect("a deserialization error");
    assert_eq!(
        (poison.topic.as_str(), poison.partition, poison.offset),
        (topic.as_str(), 0, 1)
    );
    assert_eq!(poison.value.as_deref(), Some(&b"{not json"[..]));
    let message = err.to_string();
    assert!(
        message.contains(&topic) && message.contains("partition 0") && message.contains("offset 1"),
        "{message}"
    );
    // The consumer is still usable and has moved past the poison record.
    let next = consumer.recv().await.unwrap();
    assert_eq!((next.offset, next.value.value), (2, 3));
}
