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

use kafka_client::admin::AdminClient;
use kafka_client::config::AutoOffsetReset;
use kafka_client::dev::Cluster;
use kafka_client::serde::Json;
use kafka_client::{Consumer, Offset, Producer, ProducerRecord, TopicPartition};
use kafka_examples::wait_for_metrics;
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

/// Readings per output topic, per key, in the order they were written.
type ByTopicAndKey = BTreeMap<String, BTreeMap<String, Vec<SensorMeasurement>>>;

/// Where the pipeline must write `m` (read from `input`) and as what, worked out
/// from the reading alone and not with the topology's own functions; `None` for a
/// bad reading, which must appear nowhere.
fn expected_output(input: &str, m: &SensorMeasurement) -> Option<(String, SensorMeasurement)> {
    // Good readings are numbers in [0, 100 000); NaN is in no range.
    if !(0.0..100_000.0).contains(&m.value) {
        return None;
    }
    let (suffix, value, unit) = match m.kind.as_str() {
        // °F = °C × 1.8 + 32
        "temperature" => ("temperature", m.value * 1.8 + 32.0, "F"),
        // 1 mbar = 100 Pa = 0.1 kPa
        "pressure" => ("pressure", m.value * 0.1, "kPa"),
        _ => ("other", m.value, m.unit.as_str()),
    };
    let converted = SensorMeasurement {
        value,
        unit: unit.to_owned(),
        ..m.clone()
    };
    Some((format!("{input}-{suffix}"), converted))
}

/// Equal fields, the values up to floating-point rounding.
fn same_reading(got: &SensorMeasurement, expected: &SensorMeasurement) -> bool {
    let tolerance = 1e-9 * expected.value.abs().max(1.0);
    (got.value - expected.value).abs() <= tolerance
        && SensorMeasurement {
            value: expected.value,
            ..got.clone()
        } == *expected
}

/// Every record of `topics`, read from the beginning to the current end of each
/// partition (call it once nothing writes to them any more).
async fn read_outputs(
    config: &kafka_client::ClientConfig,
    topics: &[String],
) -> anyhow::Result<ByTopicAndKey> {
    let admin = AdminClient::new(config)?;
    let mut assignment = Vec::new();
    for topic in topics {
        for p in admin.describe_topic(topic).await?.partitions {
            assignment.push((TopicPartition::new(topic.as_str(), p.id), Offset::Beginning));
        }
    }
    let consumer: Consumer<String, Reading> = Consumer::new(config)?;
    consumer.assign(&assignment)?;
    // Fresh topics start at offset 0: the high watermarks say how many records
    // each partition holds.
    let mut remaining: i64 = consumer.lag().await?.iter().map(|l| l.high_watermark).sum();
    let mut got = ByTopicAndKey::new();
    while remaining > 0 {
        let record = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .map_err(|_| anyhow::anyhow!("{remaining} output records not read within 60 s"))??;
        let m = record.value.0;
        println!(
            "{:<34} {} = {:.2} {}",
            record.topic, m.sensor_id, m.value, m.unit
        );
        got.entry(record.topic)
            .or_default()
            .entry(record.key)
            .or_default()
            .push(m);
        remaining -= 1;
    }
    consumer.close().await?;
    Ok(got)
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
    let mut expected = ByTopicAndKey::new();
    let mut bad = 0;
    for (i, (sensor, kind, value, unit)) in samples.iter().enumerate() {
        let reading = SensorMeasurement {
            sensor_id: sensor.to_string(),
            datetime: now + i as i64 * 1000,
            value: *value,
            kind: kind.to_string(),
            unit: unit.to_string(),
        };
        match expected_output(&input, &reading) {
            Some((topic, converted)) => expected
                .entry(topic)
                .or_default()
                .entry(sensor.to_string())
                .or_default()
                .push(converted),
            None => bad += 1,
        }
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

    // Wait until every input reading went through the topology (processed, or
    // skipped as poison), then close: closing flushes the outputs.
    wait_for_metrics(
        &streams,
        Duration::from_secs(60),
        "every reading processed or skipped",
        |m| (m.processed_records + m.skipped_records) as usize >= samples.len(),
    )
    .await?;
    // close() blocks while the stream threads commit: keep it off the executor.
    let closed = tokio::task::spawn_blocking(move || {
        let ok = streams.close();
        (ok, streams.state(), streams.metrics())
    })
    .await?;
    let (closed_ok, state, metrics) = closed;
    println!(
        "done: {} readings processed, {} poison record skipped, {} bad ones dropped, streams {:?} (closed cleanly: {})",
        metrics.processed_records,
        metrics.skipped_records,
        metrics.processed_records.saturating_sub(metrics.produced_records),
        state,
        closed_ok
    );
    anyhow::ensure!(
        closed_ok && state == State::NotRunning,
        "streams did not close cleanly"
    );

    // Everything the pipeline wrote, against what the input says it must write.
    let got = read_outputs(
        &config
            .group_id(format!("iot-reader-{now}"))
            .auto_offset_reset(AutoOffsetReset::Earliest),
        &outputs,
    )
    .await?;
    let mut counts = Vec::new();
    for topic in &outputs {
        let want = expected.get(topic).cloned().unwrap_or_default();
        let have = got.get(topic).cloned().unwrap_or_default();
        let matches = want.len() == have.len()
            && want.iter().all(|(key, want)| {
                have.get(key).is_some_and(|have| {
                    have.len() == want.len()
                        && have.iter().zip(want).all(|(h, w)| same_reading(h, w))
                })
            });
        anyhow::ensure!(
            matches,
            "{topic} holds {have:?}, but the input calls for {want:?} \
             (bad readings must be absent, each reading on its type's topic, converted)"
        );
        let n: usize = have.values().map(Vec::len).sum();
        counts.push(format!("{n} {}", topic.rsplit('-').next().unwrap_or(topic)));
    }
    println!(
        "ok: the output topics hold exactly the readings computed from the input ({}; {bad} bad readings absent)",
        counts.join(", ")
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
