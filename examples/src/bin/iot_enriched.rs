//! IoT plant sensors (`../shared/cases.md` #1), enriched: each reading is joined with
//! its sensor's metadata (unit, location, alarm threshold) from a GlobalKTable.
//!
//! Readings arrive on `plant01` keyed by sensor id (JSON `SensorMeasurement`); the
//! metadata topic (JSON `SensorMetadata` per sensor id) is a global table, fully
//! copied on every instance, so the join needs no co-partitioning. A stream-global
//! table left join (`left_join_global`, the key selector reading the sensor id) writes
//! an `EnrichedReading` per reading to `plant01-enriched`, with `alarm` set above the
//! sensor's threshold; a reading of a sensor without metadata is kept, marked
//! unknown. The program checks the enriched topic against what it expects.
//!
//! Zero setup: without `KAFKA_BOOTSTRAP_SERVERS` it starts librdkafka's in-process
//! mock cluster and says so; with it, it uses that cluster.
//!
//! ```text
//! cargo run -p kafka-examples --bin iot_enriched
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_client::dev::Cluster;
use kafka_client::serde::Json;
use kafka_client::{Producer, ProducerRecord};
use kafka_examples::{close, create_topics, init_tracing, latest_per_key, run_id};
use kafka_streams::dsl::{GlobalKTable, StreamsBuilder};
use kafka_streams::runtime::{KafkaStreams, StreamsConfig};
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

/// What the plant knows about a sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SensorMetadata {
    unit: String,
    location: String,
    /// Readings above this raise an alarm.
    max: i64,
}

/// A reading with its sensor's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EnrichedReading {
    sensor_id: String,
    datetime: i64,
    value: i64,
    unit: String,
    location: String,
    alarm: bool,
}

type Reading = Json<SensorMeasurement>;
type Metadata = Json<SensorMetadata>;
type Enriched = Json<EnrichedReading>;

fn enrich(reading: &SensorMeasurement, metadata: Option<&SensorMetadata>) -> EnrichedReading {
    EnrichedReading {
        sensor_id: reading.sensor_id.clone(),
        datetime: reading.datetime,
        value: reading.value,
        unit: metadata.map_or("unknown", |m| &m.unit).to_owned(),
        location: metadata.map_or("unknown", |m| &m.location).to_owned(),
        alarm: metadata.is_some_and(|m| reading.value > m.max),
    }
}

fn topology(
    readings: &str,
    metadata: &str,
    enriched: &str,
) -> kafka_streams::Result<kafka_streams::Topology> {
    let builder = StreamsBuilder::new();
    let sensors: GlobalKTable<String, Metadata> = builder.global_table(metadata);
    builder
        .stream::<String, Reading>(readings)
        .left_join_global(
            &sensors,
            |_, reading| reading.sensor_id.clone(),
            |reading, metadata: Option<&Metadata>| Json(enrich(reading, metadata.map(|m| &m.0))),
        )
        .to(enriched);
    builder.build()
}

fn reading(sensor: &str, datetime: i64, value: i64) -> SensorMeasurement {
    SensorMeasurement {
        sensor_id: sensor.into(),
        datetime,
        value,
    }
}

fn metadata(unit: &str, location: &str, max: i64) -> SensorMetadata {
    SensorMetadata {
        unit: unit.into(),
        location: location.into(),
        max,
    }
}

/// The sensors the plant knows.
fn plant_metadata() -> Vec<(&'static str, SensorMetadata)> {
    vec![
        ("temp-1", metadata("°C", "furnace 1", 900)),
        ("temp-2", metadata("°C", "furnace 2", 900)),
        ("pres-1", metadata("mbar", "gas line", 1050)),
    ]
}

/// Each sensor's readings in order; `hum-9` has no metadata.
fn plant_readings(t0: i64) -> Vec<SensorMeasurement> {
    vec![
        reading("temp-1", t0, 850),
        reading("temp-2", t0, 790),
        reading("pres-1", t0, 1013),
        reading("hum-9", t0, 40),
        reading("temp-1", t0 + 60_000, 920),
    ]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = Cluster::from_env_or_embedded()?;
    println!("{}", cluster.describe());
    init_tracing();

    let run = run_id()?;
    let (readings, metadata_topic, enriched, app) = (
        format!("plant01-{run}"),
        format!("sensor-metadata-{run}"),
        format!("plant01-enriched-{run}"),
        format!("iot-enriched-{run}"),
    );
    // A global join needs no internal topics: the global store's topic is its
    // changelog.
    create_topics(
        &cluster,
        &[(&readings, 3), (&metadata_topic, 2), (&enriched, 3)],
        &[],
    )
    .await?;
    let config = cluster.client_config();

    let meta: Producer<String, Metadata> = Producer::new(&config)?;
    for (sensor, info) in plant_metadata() {
        meta.send(ProducerRecord::new(
            &metadata_topic,
            sensor.to_string(),
            Json(info),
        ))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    meta.flush(Duration::from_secs(10)).await?;
    let producer: Producer<String, Reading> = Producer::new(&config)?;
    let t0 = 1_700_000_000_000;
    let samples = plant_readings(t0);
    for r in &samples {
        producer
            .send(ProducerRecord::new(
                &readings,
                r.sensor_id.clone(),
                Json(r.clone()),
            ))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    producer.flush(Duration::from_secs(10)).await?;
    println!(
        "produced 3 sensors' metadata and {} readings",
        samples.len()
    );

    let dir = tempfile::tempdir()?;
    let streams = KafkaStreams::new(
        topology(&readings, &metadata_topic, &enriched)?,
        StreamsConfig::new(&app, config.clone())
            .commit_interval(Duration::from_millis(200))
            .state_dir(dir.path()),
    )?;
    // The stream threads start once the global table is restored, so every reading
    // finds the metadata produced before it.
    streams.start()?;

    // The latest enriched reading per sensor: temp-1's second one crosses its
    // threshold; hum-9 has no metadata.
    let known: BTreeMap<&str, SensorMetadata> = plant_metadata().into_iter().collect();
    let expected: BTreeMap<String, Option<Enriched>> = samples
        .iter()
        .map(|r| {
            let e = enrich(r, known.get(r.sensor_id.as_str()));
            (r.sensor_id.clone(), Some(Json(e)))
        })
        .collect();
    let got =
        latest_per_key::<String, Enriched>(&cluster, &enriched, Duration::from_secs(60), |got| {
            *got == expected
        })
        .await?;
    for (sensor, e) in &got {
        if let Some(Json(e)) = e {
            println!(
                "{sensor}: {} {} at {}{}",
                e.value,
                e.unit,
                e.location,
                if e.alarm { "  ALARM" } else { "" }
            );
        }
    }
    let alarms: Vec<&String> = got
        .iter()
        .filter(|(_, e)| e.as_ref().is_some_and(|e| e.alarm))
        .map(|(s, _)| s)
        .collect();
    anyhow::ensure!(
        alarms == ["temp-1"],
        "only temp-1 is above its threshold: {alarms:?}"
    );

    close(streams).await?;
    println!(
        "ok: every reading enriched with its sensor's unit, location and threshold \
         (1 alarm, 1 sensor without metadata)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_streams::test_driver::TopologyTestDriver;

    #[test]
    fn enriches_each_reading_with_the_metadata_known_when_it_arrives() -> anyhow::Result<()> {
        let driver = TopologyTestDriver::new(topology("plant01", "meta", "out")?)?;
        let meta = driver.create_input_topic::<String, Metadata>("meta");
        let input = driver.create_input_topic::<String, Reading>("plant01");
        let output = driver.create_output_topic::<String, Enriched>("out");
        input.pipe_input("temp-1".into(), Json(reading("temp-1", 1, 950)))?;
        meta.pipe_input("temp-1".into(), Json(metadata("°C", "furnace 1", 900)))?;
        input.pipe_input("temp-1".into(), Json(reading("temp-1", 2, 950)))?;
        let values: Vec<(String, bool)> = output
            .read_values_to_list()?
            .into_iter()
            .map(|Json(e)| (e.location, e.alarm))
            .collect();
        // The first reading came before its metadata: a metadata update does not
        // revisit earlier readings.
        assert_eq!(
            values,
            [
                ("unknown".to_owned(), false),
                ("furnace 1".to_owned(), true)
            ]
        );
        Ok(())
    }
}
