//! IoT plant sensors (`../shared/cases.md` #1): the latest reading per sensor as a
//! KTable, queried interactively, with sensor metadata in a GlobalKTable.
//!
//! Readings arrive on `plant01` keyed by sensor id (JSON `SensorMeasurement`). The
//! table keeps each sensor's newest reading by `datetime` (a late, older reading does
//! not replace a newer one) in the store `latest-reading`. The sensor metadata topic
//! (unit and location per sensor) is a global table, `sensor-metadata`, fully copied
//! on every instance. The program then answers, like a CQRS read side would:
//! - `get` of one sensor, `range` over a prefix of ids, `all`, and the approximate
//!   number of sensors;
//! - which instance (`application.server`) hosts a sensor's reading
//!   (`query_metadata_for_key`), the one to route an HTTP query to;
//! - a sensor's location from the global table.
//!
//! Zero setup: without `KAFKA_BOOTSTRAP_SERVERS` it starts librdkafka's in-process
//! mock cluster and says so; with it, it uses that cluster.
//!
//! ```text
//! cargo run -p kafka-examples --bin iot_latest
//! ```

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use kafka_client::dev::Cluster;
use kafka_client::serde::{Json, StringSerde};
use kafka_client::{Producer, ProducerRecord};
use kafka_examples::{close, create_topics, init_tracing, query_until, run_id};
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::runtime::{HostInfo, KafkaStreams, StreamsConfig};
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

type Reading = Json<SensorMeasurement>;

const LATEST: &str = "latest-reading";
const METADATA: &str = "sensor-metadata";
const ENDPOINT: &str = "127.0.0.1:7070";

fn topology(readings: &str, metadata: &str) -> kafka_streams::Result<kafka_streams::Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, Reading>(readings)
        .group_by_key()
        .reduce_with(
            // Keep the newest reading: a late one with an older datetime loses.
            |latest, reading| {
                if reading.datetime >= latest.datetime {
                    reading.clone()
                } else {
                    latest
                }
            },
            Materialized::as_(LATEST),
        );
    builder.global_table_with::<String, String>(metadata, Materialized::as_(METADATA));
    builder.build()
}

fn reading(sensor: &str, datetime: i64, value: i64) -> Reading {
    Json(SensorMeasurement {
        sensor_id: sensor.into(),
        datetime,
        value,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = Cluster::from_env_or_embedded()?;
    println!("{}", cluster.describe());
    init_tracing();

    let run = run_id()?;
    let (readings, metadata, app) = (
        format!("plant01-{run}"),
        format!("sensor-metadata-{run}"),
        format!("iot-latest-{run}"),
    );
    let changelog = changelog_topic(&app, LATEST);
    let metadata_topic = format!("{app}-streams-metadata");
    create_topics(
        &cluster,
        &[(&readings, 3), (&metadata, 3)],
        &[(&changelog, 3), (&metadata_topic, 1)],
    )
    .await?;
    let config = cluster.client_config();

    // Sensor metadata, then readings; t1's last reading arrives late (older datetime).
    let meta: Producer<String, String> = Producer::new(&config)?;
    for (sensor, info) in [
        ("t1", "°C, furnace 1"),
        ("t2", "°C, furnace 2"),
        ("p1", "mbar, gas line"),
    ] {
        meta.send(ProducerRecord::new(
            &metadata,
            sensor.to_string(),
            info.to_string(),
        ))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    meta.flush(Duration::from_secs(10)).await?;
    let producer: Producer<String, Reading> = Producer::new(&config)?;
    let t0 = 1_700_000_000_000;
    let samples = [
        ("t1", t0, 850),
        ("t2", t0, 790),
        ("p1", t0, 1013),
        ("t1", t0 + 60_000, 870),
        ("p1", t0 + 60_000, 1009),
        ("t1", t0 + 30_000, 860), // late: older than 870's
    ];
    for (sensor, datetime, value) in samples {
        producer
            .send(ProducerRecord::new(
                &readings,
                sensor.to_string(),
                reading(sensor, datetime, value),
            ))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    producer.flush(Duration::from_secs(10)).await?;
    println!("produced {} readings to {readings}", samples.len());

    let dir = tempfile::tempdir()?;
    let streams = KafkaStreams::new(
        topology(&readings, &metadata)?,
        StreamsConfig::new(&app, config.clone())
            .commit_interval(Duration::from_millis(200))
            .state_dir(dir.path())
            .application_server(ENDPOINT)?,
    )?;
    streams.start()?;

    let latest = streams.store::<String, Reading>(LATEST)?;
    let expected: BTreeMap<String, i64> = [("p1", 1009), ("t1", 870), ("t2", 790)]
        .map(|(s, v)| (s.to_string(), v))
        .into();
    let all = query_until(Duration::from_secs(60), || {
        let all: BTreeMap<String, i64> = latest
            .all()?
            .into_iter()
            .map(|(sensor, r)| (sensor, r.value))
            .collect();
        Ok((all == expected).then_some(all))
    })
    .await?;
    println!("latest value per sensor (all): {all:?}");
    let t1 = latest
        .get(&"t1".to_string())?
        .ok_or_else(|| anyhow::anyhow!("no reading for t1"))?;
    println!(
        "get(t1) = {} at {} (the late reading of 860 did not replace it)",
        t1.value, t1.datetime
    );
    anyhow::ensure!(t1.value == 870, "t1 should keep its newest reading");
    // A range visits each local task's store in turn (each sorted by key).
    let mut temps: Vec<String> = latest
        .range(
            Bound::Included(&"t".to_string()),
            Bound::Excluded(&"u".to_string()),
        )?
        .into_iter()
        .map(|(sensor, _)| sensor)
        .collect();
    temps.sort();
    println!("range [t, u): {temps:?}");
    anyhow::ensure!(temps == ["t1", "t2"], "range should hold t1 and t2");
    println!(
        "approximately {} sensors",
        latest.approximate_num_entries()?
    );

    // Where to route a query for p1: the instance that owns its partition. The
    // lookup reads the metadata topic, so it runs where blocking is allowed.
    let host = query_until(Duration::from_secs(30), || {
        let found = tokio::task::block_in_place(|| {
            streams.query_metadata_for_key(LATEST, "p1", &StringSerde)
        });
        match found {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.is_store_migrating() => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await?;
    println!(
        "p1 lives on partition {} of {readings}, hosted by {}",
        host.partition, host.active_host
    );
    anyhow::ensure!(
        host.active_host == HostInfo::parse(ENDPOINT)?,
        "p1 should be hosted here"
    );

    // The global table: every sensor's metadata, on every instance.
    let sensors = streams.store::<String, String>(METADATA)?;
    let t2 = query_until(Duration::from_secs(30), || sensors.get(&"t2".to_string())).await?;
    println!("sensor-metadata get(t2) = {t2:?}");
    anyhow::ensure!(
        sensors.all()?.len() == 3,
        "the global table holds 3 sensors"
    );

    close(streams).await?;
    println!("ok: latest readings, key location and sensor metadata answered");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_streams::test_driver::TopologyTestDriver;

    #[test]
    fn keeps_the_newest_reading_per_sensor() -> anyhow::Result<()> {
        let driver = TopologyTestDriver::new(topology("plant01", "meta")?)?;
        let input = driver.create_input_topic::<String, Reading>("plant01");
        input.pipe_input("t1".into(), reading("t1", 2, 20))?;
        input.pipe_input("t1".into(), reading("t1", 1, 10))?;
        input.pipe_input("t2".into(), reading("t2", 1, 5))?;
        let store = driver
            .key_value_store::<String, Reading>(LATEST)
            .ok_or_else(|| anyhow::anyhow!("no store"))?;
        let values: Vec<(String, i64)> = store
            .all()?
            .into_iter()
            .map(|(k, r)| (k, r.value))
            .collect();
        assert_eq!(values, vec![("t1".into(), 20), ("t2".into(), 5)]);
        Ok(())
    }
}
