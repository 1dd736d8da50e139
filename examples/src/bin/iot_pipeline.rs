//! IoT plant pipeline (stateless part), with kafka-streams.
//!
//! Guarantee shown: at-least-once processing. Plant sensor readings from `plant01`
//! (key: sensor id, value: JSON `SensorMeasurement`) are
//! - filtered: bad readings (negative or absurd values) are dropped;
//! - split by measurement type into `plant01-temperature`, `plant01-pressure` and
//!   `plant01-other`;
//! - unit-converted with `map_values`: temperatures from °C to °F, pressures from
//!   mbar to kPa.
//!
//! Event time comes from the payload's `datetime` (a custom timestamp extractor).
//! The stream thread commits every 100 ms: outputs are flushed before the input
//! offsets are committed, so a crash means reprocessing, never loss.
//!
//! Zero setup: without `KAFKA_BOOTSTRAP_SERVERS` it starts librdkafka's in-process
//! mock cluster and says so; with it, it uses that cluster.
//!
//! ```text
//! cargo run -p kafka-examples --bin iot_pipeline
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_client::config::AutoOffsetReset;
use kafka_client::dev::Cluster;
use kafka_client::serde::Json;
use kafka_client::{Consumer, Producer, ProducerRecord};
use kafka_streams::dsl::{Branched, Consumed, StreamsBuilder};
use kafka_streams::runtime::handlers::LogAndContinueExceptionHandler;
use kafka_streams::runtime::{KafkaStreams, State, StreamsConfig};
use serde::{Deserialize, Serialize};

/// One reading of a plant sensor (`SensorMeasurement`, with the `type` and `unit`
/// fields of the schema's evolution).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SensorMeasurement {
    /// ID which uniquely identifies the sensor across the plant.
    sensor_id: String,
    /// UTC timestamp of the sensor measurement, in milliseconds.
    datetime: i64,
    /// The value of the sensor measurement.
    value: f64,
    /// The type of the measurement.
    #[serde(rename = "type")]
    kind: String,
    /// The unit of `value`.
    unit: String,
}

type Reading = Json<SensorMeasurement>;

fn is_good(m: &SensorMeasurement) -> bool {
    m.value.is_finite() && m.value >= 0.0 && m.value < 100_000.0
}

fn to_fahrenheit(m: SensorMeasurement) -> SensorMeasurement {
    SensorMeasurement {
        value: m.value * 9.0 / 5.0 + 32.0,
        unit: "F".into(),
        ..m
    }
}

fn to_kilopascal(m: SensorMeasurement) -> SensorMeasurement {
    SensorMeasurement {
        value: m.value / 10.0,
        unit: "kPa".into(),
        ..m
    }
}

fn topology(input: &str) -> kafka_streams::Result<kafka_streams::Topology> {
    let builder = StreamsBuilder::new();
    let readings = builder
        .stream_with::<String, Reading>(
            input,
            Consumed::default()
                .with_name("plant-readings")
                .with_timestamp_extractor(|_, reading: &Reading, _, _| reading.datetime),
        )
        .filter(|_, reading| is_good(reading))
        .named("drop-bad-readings");
    let by_type = readings
        .split_named("by-type-")
        .branch(|_, r| r.kind == "temperature", Branched::as_("temperature"))
        .branch(|_, r| r.kind == "pressure", Branched::as_("pressure"))
        .default_branch(Branched::as_("other"));
    by_type["by-type-temperature"]
        .map_values(|r: Reading| Json(to_fahrenheit(r.0)))
        .named("celsius-to-fahrenheit")
        .to(&format!("{input}-temperature"));
    by_type["by-type-pressure"]
        .map_values(|r: Reading| Json(to_kilopascal(r.0)))
        .named("mbar-to-kpa")
        .to(&format!("{input}-pressure"));
    by_type["by-type-other"].to(&format!("{input}-other"));
    builder.build()
}

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
    let input = format!("plant01-{now}");
    let outputs = ["temperature", "pressure", "other"].map(|t| format!("{input}-{t}"));
    match cluster.embedded() {
        Some(embedded) => {
            embedded.create_topic(&input, 2)?;
            for o in &outputs {
                embedded.create_topic(o, 1)?;
            }
        }
        None => println!("(topics {input} and its outputs are auto-created by the broker)"),
    }
    let config = cluster.client_config();

    let topology = topology(&input)?;
    println!("{}", topology.describe());

    // Readings: temperatures in °C, pressures in mbar, a motor rpm, and two bad ones.
    let producer: Producer<String, Reading> = Producer::new(&config)?;
    let samples = [
        ("t1", "temperature", 21.5, "C"),
        ("p1", "pressure", 1013.0, "mbar"),
        ("m1", "rpm", 1450.0, "rpm"),
        ("t2", "temperature", -5.0e9, "C"),
        ("t1", "temperature", 100.0, "C"),
        ("p1", "pressure", f64::NAN, "mbar"),
    ];
    for (i, (sensor, kind, value, unit)) in samples.iter().enumerate() {
        let reading = SensorMeasurement {
            sensor_id: sensor.to_string(),
            datetime: now + i as i64 * 1000,
            value: *value,
            kind: kind.to_string(),
            unit: unit.to_string(),
        };
        producer
            .send(ProducerRecord::new(
                &input,
                sensor.to_string(),
                Json(reading),
            ))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    producer.flush(Duration::from_secs(10)).await?;

    let streams = KafkaStreams::new(
        topology,
        StreamsConfig::new(format!("iot-pipeline-{now}"), config.clone())
            .commit_interval(Duration::from_millis(100))
            // The NaN reading is JSON `null`, a poison record: log it and go on.
            .deserialization_exception_handler(LogAndContinueExceptionHandler),
    )?;
    streams.set_state_listener(|new, old| println!("streams: {old:?} -> {new:?}"));
    streams.start()?;

    // Read the per-type topics until the four good readings arrived.
    let consumer: Consumer<String, Reading> = Consumer::new(
        &config
            .group_id(format!("iot-reader-{now}"))
            .auto_offset_reset(AutoOffsetReset::Earliest),
    )?;
    let refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    consumer.subscribe(&refs)?;
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut count = 0;
    while count < 4 {
        let record = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!("no output within 60 s (state {:?})", streams.state())
            })??;
        let m = record.value.0;
        println!(
            "{:<28} {} = {:.1} {}",
            record.topic, m.sensor_id, m.value, m.unit
        );
        got.entry(record.topic)
            .or_default()
            .push(format!("{}={}{}", m.sensor_id, m.value, m.unit));
        count += 1;
    }
    consumer.close().await?;
    // close() blocks while the stream threads commit: keep it off the executor.
    let closed = tokio::task::spawn_blocking(move || {
        let ok = streams.close();
        (ok, streams.state(), streams.metrics())
    })
    .await?;
    println!(
        "done: {} readings processed, {} poison record skipped, {} bad ones dropped, streams {:?} (closed cleanly: {})",
        closed.2.processed_records,
        closed.2.skipped_records,
        samples.len() - count - closed.2.skipped_records as usize,
        closed.1,
        closed.0
    );
    anyhow::ensure!(
        closed.1 == State::NotRunning,
        "streams did not close cleanly"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_streams::test_driver::TopologyTestDriver;

    fn reading(sensor: &str, kind: &str, value: f64, unit: &str, datetime: i64) -> Reading {
        Json(SensorMeasurement {
            sensor_id: sensor.into(),
            datetime,
            value,
            kind: kind.into(),
            unit: unit.into(),
        })
    }

    #[test]
    fn splits_converts_and_drops_bad_readings() -> anyhow::Result<()> {
        let driver = TopologyTestDriver::new(topology("plant01")?)?;
        let input = driver.create_input_topic::<String, Reading>("plant01");
        for r in [
            reading("t1", "temperature", 100.0, "C", 1),
            reading("p1", "pressure", 1013.0, "mbar", 2),
            reading("m1", "rpm", 1450.0, "rpm", 3),
            reading("t2", "temperature", -1.0, "C", 4),
        ] {
            input.pipe_input(r.sensor_id.clone(), r)?;
        }
        let temps = driver.create_output_topic::<String, Reading>("plant01-temperature");
        let pressures = driver.create_output_topic::<String, Reading>("plant01-pressure");
        let other = driver.create_output_topic::<String, Reading>("plant01-other");
        assert_eq!(
            temps
                .read_records_to_list()?
                .into_iter()
                .map(|r| (r.key, r.value, r.timestamp))
                .collect::<Vec<_>>(),
            vec![(
                "t1".to_string(),
                reading("t1", "temperature", 212.0, "F", 1),
                1
            )]
        );
        assert_eq!(
            pressures.read_values_to_list()?,
            vec![reading("p1", "pressure", 101.3, "kPa", 2)]
        );
        assert_eq!(
            other.read_values_to_list()?,
            vec![reading("m1", "rpm", 1450.0, "rpm", 3)]
        );
        let d = driver_description()?;
        for name in [
            "plant-readings",
            "drop-bad-readings",
            "by-type-temperature",
            "celsius-to-fahrenheit",
            "mbar-to-kpa",
        ] {
            assert!(d.contains(name), "{name} missing in {d}");
        }
        Ok(())
    }

    fn driver_description() -> anyhow::Result<String> {
        Ok(topology("plant01")?.describe().to_string())
    }
}
