//! Quick start: a typed producer and consumer of plant sensor readings.
//!
//! Guarantee shown: at-least-once. Each reading is committed only after it has been
//! handled, so a crash between handling and commit means a redelivery, never a loss.
//!
//! Zero setup: without `KAFKA_BOOTSTRAP_SERVERS` it starts librdkafka's in-process
//! mock cluster, and says so in its first line of output. With it, it uses that
//! cluster (e.g. `docker/compose.yaml`: `KAFKA_BOOTSTRAP_SERVERS=localhost:9092`).
//!
//! It checks what it consumed against what it produced: every reading exactly as
//! sent, and each sensor's readings in the order they were produced.
//!
//! ```text
//! bash scripts/quickstart.sh          # on a fresh machine: installs the build's system packages first
//! cargo run -p kafka-quickstart       # where they are installed
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use kafka_client::config::AutoOffsetReset;
use kafka_client::dev::Cluster;
use kafka_client::serde::Json;
use kafka_client::{Consumer, Producer, ProducerRecord};
use serde::{Deserialize, Serialize};

/// One reading of a plant sensor (the IoT case of the trainings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SensorMeasurement {
    /// ID which uniquely identifies the sensor across the plant.
    sensor_id: String,
    /// UTC timestamp of the sensor measurement, in milliseconds.
    datetime: i64,
    /// The value of the sensor measurement.
    value: i64,
}

const READINGS: i64 = 12;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = Cluster::from_env_or_embedded()?;
    println!("{}", cluster.describe());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let topic = format!("plant01-quickstart-{now}");
    match cluster.embedded() {
        Some(embedded) => embedded.create_topic(&topic, 3)?,
        None => println!("(the topic {topic} is auto-created by the broker)"),
    }
    let config = cluster.client_config();

    // Produce: the key is the sensor id, so each sensor's series stays ordered.
    let producer: Producer<String, Json<SensorMeasurement>> = Producer::new(&config)?;
    // What each sensor was sent, in order: the consumed readings must match.
    let mut sent: BTreeMap<String, Vec<SensorMeasurement>> = BTreeMap::new();
    for i in 0..READINGS {
        let sensor_id = format!("temp-{}", i % 3);
        let reading = SensorMeasurement {
            sensor_id: sensor_id.clone(),
            datetime: now + i * 1000,
            value: 850 + i,
        };
        sent.entry(sensor_id.clone())
            .or_default()
            .push(reading.clone());
        let meta = producer
            .send(ProducerRecord::new(&topic, sensor_id, Json(reading)))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "produced {} -> partition {} offset {}",
            meta.topic, meta.partition, meta.offset
        );
    }
    producer.flush(Duration::from_secs(10)).await?;

    // Consume: handle, then commit (at-least-once).
    let consumer: Consumer<String, Json<SensorMeasurement>> = Consumer::new(
        &config
            .group_id(format!("quickstart-{now}"))
            .auto_offset_reset(AutoOffsetReset::Earliest),
    )?;
    consumer.subscribe(&[&topic])?;
    let mut received: BTreeMap<String, Vec<SensorMeasurement>> = BTreeMap::new();
    for _ in 0..READINGS {
        let (sensor, reading) = consumer
            .process_at_least_once(|record| async move {
                Ok::<_, std::convert::Infallible>((record.key, record.value.0))
            })
            .await
            .context("consuming")?;
        println!("consumed {sensor} = {}", reading.value);
        received.entry(sensor).or_default().push(reading);
    }
    consumer.close().await?;
    // Per key, one partition: each sensor's series arrives whole and in order.
    anyhow::ensure!(
        received == sent,
        "consumed readings differ from those produced:\n  sent {sent:?}\n  got  {received:?}"
    );
    println!(
        "done: {READINGS} readings produced and consumed, each sensor's series complete and in order"
    );
    Ok(())
}
