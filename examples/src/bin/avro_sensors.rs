//! IoT plant sensors with Avro: a producer and a consumer of `SensorMeasurement` records
//! in Confluent's wire format, with the schema kept in a schema registry.
//!
//! The producer registers the record's schema (with each field's doc) under the subject
//! `<topic>-value` on its first send; the consumer fetches it by the id in each record.
//!
//! Zero setup:
//! - the registry is `SCHEMA_REGISTRY_URL` when set (e.g. `docker/compose.yaml`:
//!   `SCHEMA_REGISTRY_URL=http://localhost:8081`), otherwise the in-memory `mock://`
//!   registry of this process;
//! - the broker is `KAFKA_BOOTSTRAP_SERVERS` when set, otherwise librdkafka's in-process
//!   mock cluster.
//!
//! ```text
//! cargo run -p kafka-examples --bin avro_sensors
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use apache_avro::AvroSchema;
use kafka_client::config::AutoOffsetReset;
use kafka_client::dev::Cluster;
use kafka_client::serde::StringSerde;
use kafka_client::{Consumer, Producer, ProducerRecord};
use serde::{Deserialize, Serialize};
use serde_avro::{AvroDeserializer, AvroSerdeConfig, AvroSerializer, SchemaRegistryClient};

/// One measurement of a plant sensor (the IoT case of the trainings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.iot")]
struct SensorMeasurement {
    /// ID which uniquely identifies the sensor across the plant
    sensor_id: String,
    /// UTC timestamp of the sensor measurement
    datetime: i64,
    /// The value of the sensor measurement
    value: i64,
}

const READINGS: i64 = 6;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = Cluster::from_env_or_embedded()?;
    println!("{}", cluster.describe());
    let registry_url =
        std::env::var("SCHEMA_REGISTRY_URL").unwrap_or_else(|_| "mock://avro-sensors".into());
    println!("schema registry: {registry_url}");
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let topic = format!("plant01-avro-{now}");
    match cluster.embedded() {
        Some(embedded) => embedded.create_topic(&topic, 3)?,
        None => println!("(the topic {topic} is auto-created by the broker)"),
    }
    let config = cluster.client_config();
    // One registry client for both sides, so they share its caches.
    let registry = SchemaRegistryClient::from_url(&registry_url)?;

    // Produce: key = sensor id (plain string), value = Avro.
    let producer = Producer::with_serializers(
        &config,
        StringSerde,
        AvroSerializer::<SensorMeasurement>::new(registry.clone(), AvroSerdeConfig::default())?,
    )?;
    // What was sent, per key in send order: Kafka keeps each key's order (one key,
    // one partition), so the consumer must get exactly these back, in this order.
    let mut sent: BTreeMap<String, Vec<SensorMeasurement>> = BTreeMap::new();
    for i in 0..READINGS {
        let sensor_id = format!("temp-{}", i % 3);
        let reading = SensorMeasurement {
            sensor_id: sensor_id.clone(),
            datetime: now + i * 1000,
            value: 850 + i,
        };
        let meta = producer
            .send(ProducerRecord::new(
                &topic,
                sensor_id.clone(),
                reading.clone(),
            ))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "produced to partition {} offset {}",
            meta.partition, meta.offset
        );
        sent.entry(sensor_id).or_default().push(reading);
    }
    producer.flush(Duration::from_secs(10)).await?;
    let registered = registry.latest_version(&format!("{topic}-value")).await?;
    println!(
        "registered subject {} version {} as schema id {}: {}",
        registered.subject, registered.version, registered.id, registered.definition.schema
    );

    // Consume: each record names its writer schema id; the deserializer resolves it into
    // this program's SensorMeasurement.
    let consumer = Consumer::with_deserializers(
        &config
            .group_id(format!("avro-sensors-{now}"))
            .auto_offset_reset(AutoOffsetReset::Earliest),
        StringSerde,
        AvroDeserializer::<SensorMeasurement>::new(registry.clone())?,
    )?;
    consumer.subscribe(&[&topic])?;
    let mut received: BTreeMap<String, Vec<SensorMeasurement>> = BTreeMap::new();
    for _ in 0..READINGS {
        let (sensor, reading) = consumer
            .process_at_least_once(|record| async move {
                Ok::<_, std::convert::Infallible>((record.key, record.value))
            })
            .await
            .context("consuming")?;
        println!(
            "consumed {sensor}: value {} at {}",
            reading.value, reading.datetime
        );
        received.entry(sensor).or_default().push(reading);
    }
    consumer.close().await?;

    // Every field of every measurement must have survived the Avro round trip,
    // under its key and in the order it was sent.
    for (sensor, expected) in &sent {
        let got = received.get(sensor).map(Vec::as_slice).unwrap_or_default();
        anyhow::ensure!(
            got == expected.as_slice(),
            "key {sensor}: consumed {got:?}, but produced {expected:?}"
        );
    }
    if let Some(extra) = received.keys().find(|k| !sent.contains_key(*k)) {
        anyhow::bail!(
            "consumed key {extra} that was never produced: {:?}",
            received[extra]
        );
    }
    println!(
        "done: {READINGS} Avro measurements produced and consumed; every one read back \
         field for field, per key in send order"
    );
    Ok(())
}
