//! Avro through the broker: records written with schema v1 are read by a consumer built
//! with v2, and the reverse, with the compatible fields checked. Each test runs twice: with
//! the in-memory `mock://` registry, and with the real registry named by
//! `SCHEMA_REGISTRY_URL` (the Apicurio Registry `scripts/test.sh` starts, or Confluent's
//! from docker/compose.yaml). Without that variable the real-registry tests fail with a
//! message saying how to run them; they never skip silently.

use apache_avro::AvroSchema;
use integration_tests::{config, consumer_config, create_topic, unique_name};
use kafka_client::serde::StringSerde;
use kafka_client::{Consumer, Producer, ProducerRecord};
use serde::{Deserialize, Serialize};
use serde_avro::{AvroDeserializer, AvroSerializer, CompatibilityLevel, SchemaRegistryClient};

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

/// Which registry a test talks to.
#[derive(Debug, Clone, Copy)]
enum Registry {
    /// The in-memory `mock://` registry, one scope per test.
    Mock,
    /// The registry at `SCHEMA_REGISTRY_URL`, shared with other tests (and earlier runs):
    /// every subject is named after the test's own topic.
    Real,
}

/// The serde properties for `registry`: its URL, and for a real one the
/// `SCHEMA_REGISTRY_USER_INFO` credentials when set.
fn registry_props(registry: Registry, test: &str) -> Vec<(&'static str, String)> {
    match registry {
        Registry::Mock => vec![(
            "schema.registry.url",
            format!("mock://{}", unique_name(test)),
        )],
        Registry::Real => {
            let url = match std::env::var("SCHEMA_REGISTRY_URL") {
                Ok(url) if !url.trim().is_empty() => url,
                _ => panic!(
                    "SCHEMA_REGISTRY_URL is not set. The real-registry Avro tests need a \
                     schema registry with Confluent's REST API: run `bash scripts/test.sh` \
                     (starts one), or start one with `bash scripts/registry.sh PID_FILE` \
                     (prints its URL) or docker/compose.yaml, and set SCHEMA_REGISTRY_URL \
                     to its URL (e.g. http://localhost:8081)."
                ),
            };
            let mut props = vec![("schema.registry.url", url)];
            if let Ok(user_info) = std::env::var("SCHEMA_REGISTRY_USER_INFO") {
                props.push(("basic.auth.user.info", user_info));
            }
            props
        }
    }
}

#[tokio::test]
async fn v1_producer_and_v2_consumer() {
    v1_producer_and_v2_consumer_with(Registry::Mock).await
}

#[tokio::test]
async fn v1_producer_and_v2_consumer_real_registry() {
    v1_producer_and_v2_consumer_with(Registry::Real).await
}

async fn v1_producer_and_v2_consumer_with(registry: Registry) {
    let props = registry_props(registry, "avro-v1-v2");
    let topic = unique_name("avro-v1-v2");
    create_topic(&topic, 1).await;
    // Keys are Avro too (subject <topic>-key), values under <topic>-value.
    let producer = Producer::with_serializers(
        &config(),
        AvroSerializer::<String>::from_properties(props.clone()).unwrap(),
        AvroSerializer::<v1::SensorMeasurement>::from_properties(props.clone()).unwrap(),
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
        AvroDeserializer::<String>::from_properties(props.clone()).unwrap(),
        AvroDeserializer::<v2::SensorMeasurement>::from_properties(props.clone()).unwrap(),
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
    let client = SchemaRegistryClient::from_properties(props).unwrap();
    // A real registry holds other tests' subjects too; this test's are named after its topic.
    let mut subjects: Vec<String> = client
        .subjects()
        .await
        .unwrap()
        .into_iter()
        .filter(|subject| subject.starts_with(&format!("{topic}-")))
        .collect();
    subjects.sort();
    assert_eq!(subjects, [format!("{topic}-key"), format!("{topic}-value")]);
}

#[tokio::test]
async fn v2_producer_and_v1_consumer() {
    v2_producer_and_v1_consumer_with(Registry::Mock).await
}

#[tokio::test]
async fn v2_producer_and_v1_consumer_real_registry() {
    v2_producer_and_v1_consumer_with(Registry::Real).await
}

async fn v2_producer_and_v1_consumer_with(registry: Registry) {
    let props = registry_props(registry, "avro-v2-v1");
    let topic = unique_name("avro-v2-v1");
    create_topic(&topic, 1).await;
    let subject = format!("{topic}-value");
    let client = SchemaRegistryClient::from_properties(props.clone()).unwrap();
    // v1 is in production first; v2 is then registered as version 2 after a BACKWARD check.
    // The level is set on the subject: registries' global defaults differ (Confluent's is
    // BACKWARD, Apicurio's NONE).
    let v1_producer = Producer::with_serializers(
        &config(),
        StringSerde,
        AvroSerializer::<v1::SensorMeasurement>::from_properties(props.clone()).unwrap(),
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
    client
        .set_subject_compatibility(&subject, CompatibilityLevel::Backward)
        .await
        .unwrap();
    let v2_producer = Producer::with_serializers(
        &config(),
        StringSerde,
        AvroSerializer::<v2::SensorMeasurement>::from_properties(props.clone()).unwrap(),
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
    assert_eq!(client.versions(&subject).await.unwrap(), [1, 2]);

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
