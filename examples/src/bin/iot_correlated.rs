//! IoT plant sensors (`../shared/cases.md` #1), correlated: a machine's temperature
//! and pressure readings that lie within 5 s of each other are paired by a
//! stream-stream join.
//!
//! Temperature readings arrive on `plant01-temperature` and pressure readings on
//! `plant01-pressure`, both keyed by machine id (JSON `SensorMeasurement`), so the two
//! topics are co-partitioned. `join` with `JoinWindows::of_time_difference_and_grace(5
//! s, 1 s)` buffers each side in a changelogged window store (named after
//! `StreamJoined::as_("temp-pressure")`) and writes a `Correlated` reading for every
//! pair within 5 s of event time, either order, to `plant01-correlated`, keyed
//! `<machine>@<temperature time>`. A reading without a partner in time gives
//! nothing (an inner join). The program checks the pairs against what it expects.
//!
//! Zero setup: without `KAFKA_BOOTSTRAP_SERVERS` it starts librdkafka's in-process
//! mock cluster and says so; with it, it uses that cluster.
//!
//! ```text
//! cargo run -p kafka-examples --bin iot_correlated
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_client::dev::Cluster;
use kafka_client::serde::Json;
use kafka_client::{Producer, ProducerRecord};
use kafka_examples::{close, create_topics, init_tracing, latest_per_key, run_id};
use kafka_streams::dsl::{JoinWindows, StreamJoined, StreamsBuilder};
use kafka_streams::runtime::{KafkaStreams, StreamsConfig};
use kafka_streams::state::changelog_topic;
use serde::{Deserialize, Serialize};

/// One reading of a plant sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SensorMeasurement {
    /// ID which uniquely identifies the sensor across the plant.
    sensor_id: String,
    /// UTC timestamp of the sensor measurement, in milliseconds.
    datetime: i64,
    /// The value of the sensor measurement.
    value: i64,
}

/// A machine's temperature and pressure taken within 5 s of each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Correlated {
    temperature: i64,
    temperature_at: i64,
    pressure: i64,
    pressure_at: i64,
}

type Reading = Json<SensorMeasurement>;
/// Readings keyed by machine id.
type MachineReadings = Vec<(String, SensorMeasurement)>;

/// The join's store names: `<name>-this-join-store` and `<name>-other-join-store`.
const JOIN: &str = "temp-pressure";

fn correlate(temperature: &SensorMeasurement, pressure: &SensorMeasurement) -> Correlated {
    Correlated {
        temperature: temperature.value,
        temperature_at: temperature.datetime,
        pressure: pressure.value,
        pressure_at: pressure.datetime,
    }
}

fn topology(
    temperatures: &str,
    pressures: &str,
    correlated: &str,
) -> kafka_streams::Result<kafka_streams::Topology> {
    let builder = StreamsBuilder::new();
    let pressure = builder.stream::<String, Reading>(pressures);
    builder
        .stream::<String, Reading>(temperatures)
        .join_with(
            &pressure,
            |t: &Reading, p: &Reading| Json(correlate(t, p)),
            JoinWindows::of_time_difference_and_grace(
                Duration::from_secs(5),
                Duration::from_secs(1),
            )?,
            StreamJoined::as_(JOIN),
        )
        .select_key(|machine, c: &Json<Correlated>| format!("{machine}@{}", c.temperature_at))
        .to(correlated);
    builder.build()
}

fn reading(machine: &str, kind: &str, datetime: i64, value: i64) -> (String, SensorMeasurement) {
    (
        machine.to_owned(),
        SensorMeasurement {
            sensor_id: format!("{kind}-{machine}"),
            datetime,
            value,
        },
    )
}

/// Temperatures (°C) and pressures (mbar) per machine, in event time from `t0`.
fn plant_readings(t0: i64) -> (MachineReadings, MachineReadings) {
    let temperatures = vec![
        reading("m1", "temp", t0, 850),
        reading("m2", "temp", t0 + 1_000, 790),
        reading("m1", "temp", t0 + 30_000, 870),
        reading("m3", "temp", t0 + 40_000, 700),
    ];
    let pressures = vec![
        // 2 s after m1's first temperature: a pair.
        reading("m1", "pres", t0 + 2_000, 1013),
        // 8 s after m2's temperature: too far apart, no pair.
        reading("m2", "pres", t0 + 9_000, 1020),
        // 1 s before m1's second temperature: a pair too (the window is symmetric).
        reading("m1", "pres", t0 + 29_000, 1015),
        // m3 has no pressure sensor reading at all.
    ];
    (temperatures, pressures)
}

/// The pairs `plant_readings` holds, keyed as the topology keys them.
fn expected_pairs(t0: i64) -> BTreeMap<String, Option<Json<Correlated>>> {
    let (temperatures, pressures) = plant_readings(t0);
    let mut pairs = BTreeMap::new();
    for (machine, t) in &temperatures {
        for (other, p) in &pressures {
            if machine == other && (t.datetime - p.datetime).abs() <= 5_000 {
                pairs.insert(
                    format!("{machine}@{}", t.datetime),
                    Some(Json(correlate(t, p))),
                );
            }
        }
    }
    pairs
}

async fn produce(
    producer: &Producer<String, Reading>,
    topic: &str,
    readings: &[(String, SensorMeasurement)],
) -> anyhow::Result<()> {
    for (machine, r) in readings {
        producer
            .send(
                ProducerRecord::new(topic, machine.clone(), Json(r.clone()))
                    .with_timestamp(r.datetime),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = Cluster::from_env_or_embedded()?;
    println!("{}", cluster.describe());
    init_tracing();

    let run = run_id()?;
    let (temperatures, pressures, correlated, app) = (
        format!("plant01-temperature-{run}"),
        format!("plant01-pressure-{run}"),
        format!("plant01-correlated-{run}"),
        format!("iot-correlated-{run}"),
    );
    // The join's window stores are changelogged; librdkafka's mock cluster cannot
    // create topics on request, so they are made here (a real cluster gets them from
    // the app at start).
    let (this_changelog, other_changelog) = (
        changelog_topic(&app, &format!("{JOIN}-this-join-store")),
        changelog_topic(&app, &format!("{JOIN}-other-join-store")),
    );
    create_topics(
        &cluster,
        &[(&temperatures, 3), (&pressures, 3), (&correlated, 3)],
        &[(&this_changelog, 3), (&other_changelog, 3)],
    )
    .await?;
    let config = cluster.client_config();

    let producer: Producer<String, Reading> = Producer::new(&config)?;
    let t0 = 1_700_000_000_000;
    let (temperature_readings, pressure_readings) = plant_readings(t0);
    produce(&producer, &temperatures, &temperature_readings).await?;
    produce(&producer, &pressures, &pressure_readings).await?;
    producer.flush(Duration::from_secs(10)).await?;
    println!(
        "produced {} temperature and {} pressure readings",
        temperature_readings.len(),
        pressure_readings.len()
    );

    let dir = tempfile::tempdir()?;
    let streams = KafkaStreams::new(
        topology(&temperatures, &pressures, &correlated)?,
        StreamsConfig::new(&app, config.clone())
            .commit_interval(Duration::from_millis(200))
            .state_dir(dir.path()),
    )?;
    streams.start()?;

    let expected = expected_pairs(t0);
    let got = latest_per_key::<String, Json<Correlated>>(
        &cluster,
        &correlated,
        Duration::from_secs(60),
        |got| *got == expected,
    )
    .await?;
    for (key, pair) in &got {
        if let Some(Json(c)) = pair {
            println!(
                "{key}: {} °C and {} mbar, {} ms apart",
                c.temperature,
                c.pressure,
                (c.temperature_at - c.pressure_at).abs()
            );
        }
    }
    anyhow::ensure!(got.len() == 2, "two pairs within 5 s: {got:?}");

    close(streams).await?;
    println!(
        "ok: temperature and pressure correlated within 5 s per machine (2 pairs; \
         readings too far apart or without a partner gave none)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_streams::test_driver::TopologyTestDriver;

    #[test]
    fn pairs_readings_within_five_seconds_in_either_order() -> anyhow::Result<()> {
        let topology = topology("temp", "pres", "out")?;
        let described = topology.describe().to_string();
        for store in [
            "temp-pressure-this-join-store",
            "temp-pressure-other-join-store",
        ] {
            assert!(described.contains(store), "{store} in {described}");
        }
        let driver = TopologyTestDriver::new(topology)?;
        let temp = driver.create_input_topic::<String, Reading>("temp");
        let pres = driver.create_input_topic::<String, Reading>("pres");
        let output = driver.create_output_topic::<String, Json<Correlated>>("out");
        let t0 = 1_000_000;
        let (temperatures, pressures) = plant_readings(t0);
        // In event-time order, as the app reads the two topics (a reading arriving
        // after its partner's window and grace closed would be dropped as late).
        let mut all: Vec<_> = temperatures
            .iter()
            .map(|r| (&temp, r))
            .chain(pressures.iter().map(|r| (&pres, r)))
            .collect();
        all.sort_by_key(|(_, (_, r))| r.datetime);
        for (topic, (machine, r)) in all {
            topic.pipe_input_at(machine.clone(), Json(r.clone()), r.datetime)?;
        }
        let got: BTreeMap<String, Option<Json<Correlated>>> = output
            .read_key_values_to_list()?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        assert_eq!(got, expected_pairs(t0));
        assert_eq!(got.len(), 2);
        Ok(())
    }
}
