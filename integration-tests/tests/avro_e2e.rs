//! Avro through the broker with the `mock://` registry: records written with schema v1 are
//! read by a consumer built with v2, and the reverse, with the compatible fields checked.

use apache_avro::AvroSchema;
use integration_tests::{config, consumer_config, create_topic, unique_name};
use kafka_client::serde::StringSerde;
use kafka_client::{Consumer, Producer, ProducerRecord};
use serde::{Deserialize, Serialize};
use serde_avro::{AvroDeserializer, AvroSerializer, SchemaRegistryClient};

mod v1 {
    use super::*;

    /// The IoT record as first deployed.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
    #[avro(namespace = "com.acme.iot")]
    pub struct SensorMeasurement {
        /// ID which uniquely identifies the sensor across the plant
        pub sensor_id: String,
        /// UTC timestamp of the sensor measurement
        pub datetime: i64,
        /// The value of the sensor measurement
        pub value: i64,
    }
}

mod v2 {
    use super::*;

    /// v1 plus an optional unit (default "cm"): compatible both ways.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
    #[avro(namespace = "com.acme.iot")]
    pub struct SensorMeasurement {
        /// ID which uniquely identifies the sensor across the plant
        pub sensor_id: String,
        /// UTC timestamp of the sensor measurement
        pub datetime: i64,
        /// The value of the sensor measurement
        pub value: i64,
        /// The unit of the value
        #[avro(default = r#""cm""#)]
        pub unit: String,
    }
}

fn registry_url(test: &str) -> String {
    format!("mock://{}", unique_name(test))
}

#[tokio::test]
async fn v1_producer_and_v2_consumer() {
    let topic = unique_name("avro-v1-v2");
    create_topic(&topic, 1).await;
    let url = registry_url("avro-v1-v2");
    let props = [("schema.registry.url", url.as_str())];
    // Keys are Avro too (subject <topic>-key), values under <topic>-value.
    let producer = Producer::with_serializers(
        &config(),
        AvroSerializer::<String>::from_properties(props).unwrap(),
        AvroSerializer::<v1::SensorMeasurement>::from_properties(props).unwrap(),
    )
    .unwrap();
    let sent: Vec<v1::SensorMeasurement> = (0..3)
        .map(|i| v1::SensorMeasurement {
            sensor_id: format!("temp-{i}"),
            datetime: 1_700_000_000_000 + i,
            value: 850 + i,
        })
        .collect();
    for reading in &sent {
        producer
            .send(ProducerRecord::new(
                &topic,
                reading.sensor_id.clone(),
                reading.clone(),
            ))
            .await
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    let consumer = Consumer::with_deserializers(
        &consumer_config(&unique_name("avro-v2-reader")),
        AvroDeserializer::<String>::from_properties(props).unwrap(),
        AvroDeserializer::<v2::SensorMeasurement>::from_properties(props).unwrap(),
    )
    .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    for expected in &sent {
        let record = consumer
            .recv()
            .await
            .unwrap_or_else(|e| panic!("recv: {e}"));
        assert_eq!(record.key, expected.sensor_id);
        assert_eq!(
            record.value,
            v2::SensorMeasurement {
                sensor_id: expected.sensor_id.clone(),
                datetime: expected.datetime,
                value: expected.value,
                unit: "cm".into(), // the v2 default fills the field v1 lacks
            }
        );
    }
    let client = SchemaRegistryClient::from_url(&url).unwrap();
    let mut subjects = client.subjects().await.unwrap();
    subjects.sort();
    assert_eq!(subjects, [format!("{topic}-key"), format!("{topic}-value")]);
}

#[tokio::test]
async fn v2_producer_and_v1_consumer() {
    let topic = unique_name("avro-v2-v1");
    create_topic(&topic, 1).await;
    let url = registry_url("avro-v2-v1");
    let props = [("schema.registry.url", url.as_str())];
    // v1 is in production first; v2 is then registered as version 2 (BACKWARD check).
    let v1_producer = Producer::with_serializers(
        &config(),
        StringSerde,
        AvroSerializer::<v1::SensorMeasurement>::from_properties(props).unwrap(),
    )
    .unwrap();
    let old = v1::SensorMeasurement {
        sensor_id: "pressure-1".into(),
        datetime: 1_700_000_000_000,
        value: 3,
    };
    v1_producer
        .send(ProducerRecord::new(
            &topic,
            old.sensor_id.clone(),
            old.clone(),
        ))
        .await
        .unwrap_or_else(|e| panic!("send v1: {e}"));
    let v2_producer = Producer::with_serializers(
        &config(),
        StringSerde,
        AvroSerializer::<v2::SensorMeasurement>::from_properties(props).unwrap(),
    )
    .unwrap();
    let new = v2::SensorMeasurement {
        sensor_id: "pressure-2".into(),
        datetime: 1_700_000_000_500,
        value: 4,
        unit: "bar".into(),
    };
    v2_producer
        .send(ProducerRecord::new(
            &topic,
            new.sensor_id.clone(),
            new.clone(),
        ))
        .await
        .unwrap_or_else(|e| panic!("send v2: {e}"));
    let client = SchemaRegistryClient::from_url(&url).unwrap();
    assert_eq!(
        client.versions(&format!("{topic}-value")).await.unwrap(),
        [1, 2]
    );

    let consumer = Consumer::with_deserializers(
        &consumer_config(&unique_name("avro-v1-reader")),
        StringSerde,
        AvroDeserializer::<v1::SensorMeasurement>::from_properties(props).unwrap(),
    )
    .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let first = consumer
        .recv()
        .await
        .unwrap_or_else(|e| panic!("recv: {e}"));
    assert_eq!(first.value, old);
    let second = consumer
        .recv()
        .await
        .unwrap_or_else(|e| panic!("recv: {e}"));
    assert_eq!(second.key, "pressure-2");
    // The v1 reader skips `unit` and keeps every field it knows.
    assert_eq!(
        second.value,
        v1::SensorMeasurement {
            sensor_id: new.sensor_id.clone(),
            datetime: new.datetime,
            value: new.value,
        }
    );
}
