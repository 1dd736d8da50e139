//! IoT plant sensors (`../shared/cases.md` #1), windowed: the average, minimum and
//! maximum of each sensor over tumbling 1-minute windows, emitted once per window when
//! it closes, and a query of one sensor's last hour of windows.
//!
//! Readings arrive on `plant01` keyed by sensor id, as Avro `SensorMeasurement`
//! records (the schema in a schema registry). Event time is the measurement's
//! `datetime`, not the time the record was produced. The program:
//! - aggregates each sensor's readings per 1-minute window (10 s grace for late
//!   readings) into the count, sum, minimum and maximum, in the window store
//!   `sensor-stats-per-minute`, kept for an hour so that it can be queried;
//! - with `emit_strategy(EmitStrategy::on_window_close())`, writes one final summary
//!   (average, minimum, maximum) per sensor and minute to the output topic, once
//!   the window's end plus grace has passed, never a partial one;
//! - drops a reading later than its window's grace, and counts it;
//! - answers "what did sensor temp-1 do in the last hour?" from the window store
//!   (`KafkaStreams::window_store`), including the minute still open, and which
//!   instance to ask for it (`query_metadata_for_key`: the plain sensor id decides).
//!
//! It checks its own results against the readings it produced and fails if they
//! differ. Zero setup: without `KAFKA_BOOTSTRAP_SERVERS` it starts librdkafka's
//! in-process mock cluster, and without `SCHEMA_REGISTRY_URL` it uses the in-memory
//! `mock://` registry.
//!
//! ```text
//! cargo run -p kafka-examples --bin iot_windowed
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::AvroSchema;
use kafka_client::config::AutoOffsetReset;
use kafka_client::dev::Cluster;
use kafka_client::serde::{
    Deserializer, Json, JsonSerde, PrepareFuture, SerdeContext, SerdeError, Serializer, StringSerde,
};
use kafka_client::{Consumer, Producer, ProducerRecord};
use kafka_examples::{close, create_topics, init_tracing, query_until, run_id};
use kafka_streams::dsl::{Consumed, EmitStrategy, Materialized, StreamsBuilder, TimeWindows};
use kafka_streams::runtime::{HostInfo, KafkaStreams, StreamsConfig};
use kafka_streams::state::changelog_topic;
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

/// A sensor's readings in one window so far: the aggregate kept in the window store.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct MinuteStats {
    count: i64,
    sum: i64,
    min: i64,
    max: i64,
}

impl MinuteStats {
    /// The aggregate of no reading (Kafka's initializer).
    const EMPTY: MinuteStats = MinuteStats {
        count: 0,
        sum: 0,
        min: i64::MAX,
        max: i64::MIN,
    };

    fn add(self, value: i64) -> MinuteStats {
        MinuteStats {
            count: self.count + 1,
            sum: self.sum + value,
            min: self.min.min(value),
            max: self.max.max(value),
        }
    }

    fn average(&self) -> f64 {
        self.sum as f64 / self.count as f64
    }
}

/// One sensor's final figures for one minute: what the output topic carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MinuteSummary {
    sensor_id: String,
    window_start: i64,
    window_end: i64,
    average: f64,
    min: i64,
    max: i64,
}

/// Avro values through the schema registry as one serde, as the streams source
/// needs: the serializer registers the schema, the deserializer fetches writer
/// schemas by id (both in their asynchronous `prepare`).
struct AvroSerde<T: AvroSchema> {
    serializer: AvroSerializer<T>,
    deserializer: AvroDeserializer<T>,
}

impl<T: AvroSchema> AvroSerde<T> {
    fn new(registry: &SchemaRegistryClient) -> anyhow::Result<Self> {
        Ok(AvroSerde {
            serializer: AvroSerializer::new(registry.clone(), AvroSerdeConfig::default())?,
            deserializer: AvroDeserializer::new(registry.clone())?,
        })
    }
}

impl<T: AvroSchema + Serialize + Send + Sync> Serializer<T> for AvroSerde<T> {
    fn serialize(&self, data: &T, ctx: &SerdeContext<'_>) -> Result<Option<Vec<u8>>, SerdeError> {
        self.serializer.serialize(data, ctx)
    }

    fn prepare<'a>(&'a self, data: &'a T, ctx: &'a SerdeContext<'a>) -> Option<PrepareFuture<'a>> {
        Serializer::prepare(&self.serializer, data, ctx)
    }
}

impl<T: AvroSchema + serde::de::DeserializeOwned + Send + Sync> Deserializer<T> for AvroSerde<T> {
    fn deserialize(&self, data: Option<&[u8]>, ctx: &SerdeContext<'_>) -> Result<T, SerdeError> {
        self.deserializer.deserialize(data, ctx)
    }

    fn prepare<'a>(
        &'a self,
        data: Option<&'a [u8]>,
        ctx: &'a SerdeContext<'a>,
    ) -> Option<PrepareFuture<'a>> {
        Deserializer::prepare(&self.deserializer, data, ctx)
    }
}

const STORE: &str = "sensor-stats-per-minute";
const ENDPOINT: &str = "127.0.0.1:7071";
const MINUTE: i64 = 60_000;
const GRACE: Duration = Duration::from_secs(10);
const HOUR: Duration = Duration::from_secs(3600);
const SENSORS: [&str; 3] = ["temp-1", "temp-2", "pressure-1"];

fn topology(
    readings: &str,
    summaries: &str,
    avro: Arc<AvroSerde<SensorMeasurement>>,
) -> kafka_streams::Result<kafka_streams::Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, SensorMeasurement>(
            readings,
            Consumed::with(StringSerde, avro.clone())
                // Event time: when the sensor measured, not when the record was sent.
                .with_timestamp_extractor(|_, reading: &SensorMeasurement, _, _| reading.datetime),
        )
        // The stream's serdes: Avro values have no default serde.
        .group_by_key_with_serdes(Arc::new(StringSerde), avro)
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            GRACE,
        )?)
        .emit_strategy(EmitStrategy::on_window_close())
        .aggregate_with(
            || MinuteStats::EMPTY,
            |_, reading, stats| stats.add(reading.value),
            Materialized::as_(STORE)
                // By default a window is kept for its size plus grace only; keep an
                // hour of them for the query.
                .with_retention(HOUR)
                .with_value_serde(Arc::new(JsonSerde::<MinuteStats>::default())),
        )
        .to_stream()
        .map(|window, stats| {
            let summary = stats.map(|stats| {
                Json(MinuteSummary {
                    sensor_id: window.key.clone(),
                    window_start: window.window.start(),
                    window_end: window.window.end(),
                    average: stats.average(),
                    min: stats.min,
                    max: stats.max,
                })
            });
            (window.key, summary)
        })
        .to(summaries);
    builder.build()
}

/// The readings, in the order they are sent: every 20 s each sensor reports, over
/// six minutes from `base`; one reading of temp-1 arrives a little late (within the
/// grace period), one much too late (dropped); finally one reading per sensor at
/// 7:30 moves event time on so that every earlier window closes.
fn readings(base: i64) -> (Vec<SensorMeasurement>, SensorMeasurement) {
    let reading = |sensor: &str, datetime: i64, value: i64| SensorMeasurement {
        sensor_id: sensor.to_owned(),
        datetime,
        value,
    };
    let too_late = reading("temp-1", base + 230_000, 5);
    let mut sent = Vec::new();
    for step in 0..18i64 {
        for (i, sensor) in SENSORS.iter().enumerate() {
            let at = base + step * 20_000 + i as i64 * 1_000;
            let value = match *sensor {
                "pressure-1" => 1_000 + (step * 7) % 23,
                _ => 800 + (step * 37 + i as i64 * 11) % 50,
            };
            sent.push(reading(sensor, at, value));
        }
        if step == 9 {
            // At 3:00, a reading of 2:55: late, but within the 10 s grace of [2:00, 3:00).
            sent.push(reading("temp-1", base + 175_000, 990));
        }
        if step == 14 {
            // At 4:40, a reading of 3:50: [3:00, 4:00) closed at 4:10, so it is dropped.
            sent.push(too_late.clone());
        }
    }
    for sensor in SENSORS {
        sent.push(reading(sensor, base + 7 * MINUTE + 30_000, 900));
    }
    (sent, too_late)
}

/// What the windows must hold: each sensor's stats per window start, from every
/// reading except the dropped one.
fn expected_stats(
    sent: &[SensorMeasurement],
    dropped: &SensorMeasurement,
) -> BTreeMap<(String, i64), MinuteStats> {
    let mut stats: BTreeMap<(String, i64), MinuteStats> = BTreeMap::new();
    for reading in sent.iter().filter(|r| *r != dropped) {
        let start = reading.datetime / MINUTE * MINUTE;
        let entry = stats
            .entry((reading.sensor_id.clone(), start))
            .or_insert(MinuteStats::EMPTY);
        *entry = entry.add(reading.value);
    }
    stats
}

/// Whether two summaries agree: the average up to JSON's decimal round trip.
fn same(got: &MinuteSummary, want: &MinuteSummary) -> bool {
    (
        &got.sensor_id,
        got.window_start,
        got.window_end,
        got.min,
        got.max,
    ) == (
        &want.sensor_id,
        want.window_start,
        want.window_end,
        want.min,
        want.max,
    ) && (got.average - want.average).abs() < 1e-9
}

/// Reads `topic` from the beginning until it holds `expected` records, or fails.
async fn read_summaries(
    cluster: &Cluster,
    topic: &str,
    expected: usize,
) -> anyhow::Result<Vec<MinuteSummary>> {
    let consumer: Consumer<String, Option<Json<MinuteSummary>>> = Consumer::new(
        &cluster
            .client_config()
            .group_id(format!("reader-{topic}"))
            .auto_offset_reset(AutoOffsetReset::Earliest),
    )?;
    consumer.subscribe(&[topic])?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut summaries = Vec::new();
    while summaries.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        anyhow::ensure!(
            !left.is_zero(),
            "{topic} holds {} of the {expected} final summaries",
            summaries.len()
        );
        if let Ok(record) = tokio::time::timeout(left, consumer.recv()).await {
            let record = record?;
            let summary = record
                .value
                .ok_or_else(|| anyhow::anyhow!("a tombstone for {}", record.key))?;
            summaries.push(summary.into_inner());
        }
    }
    consumer.close().await?;
    Ok(summaries)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = Cluster::from_env_or_embedded()?;
    println!("{}", cluster.describe());
    let registry_url =
        std::env::var("SCHEMA_REGISTRY_URL").unwrap_or_else(|_| "mock://iot-windowed".into());
    println!("schema registry: {registry_url}");
    init_tracing();

    let run = run_id()?;
    let (readings_topic, summaries_topic, app) = (
        format!("plant01-{run}"),
        format!("sensor-minutes-{run}"),
        format!("iot-windowed-{run}"),
    );
    let changelog = changelog_topic(&app, STORE);
    let metadata_topic = format!("{app}-streams-metadata");
    create_topics(
        &cluster,
        &[(&readings_topic, 3), (&summaries_topic, 3)],
        &[(&changelog, 3), (&metadata_topic, 1)],
    )
    .await?;
    let config = cluster.client_config();
    let registry = SchemaRegistryClient::from_url(&registry_url)?;

    // A run's data starts 50 minutes ago, on a whole minute, so it is all within the
    // last hour when queried.
    let now = i64::try_from(run)?;
    let base = (now - 50 * MINUTE) / MINUTE * MINUTE;
    let (sent, too_late) = readings(base);
    let producer = Producer::with_serializers(
        &config,
        StringSerde,
        AvroSerializer::<SensorMeasurement>::new(registry.clone(), AvroSerdeConfig::default())?,
    )?;
    for reading in &sent {
        producer
            .send(ProducerRecord::new(
                &readings_topic,
                reading.sensor_id.clone(),
                reading.clone(),
            ))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    producer.flush(Duration::from_secs(10)).await?;
    println!(
        "produced {} Avro readings of {} sensors to {readings_topic}",
        sent.len(),
        SENSORS.len()
    );

    let dir = tempfile::tempdir()?;
    let streams = KafkaStreams::new(
        topology(
            &readings_topic,
            &summaries_topic,
            Arc::new(AvroSerde::new(&registry)?),
        )?,
        StreamsConfig::new(&app, config.clone())
            .commit_interval(Duration::from_millis(200))
            .state_dir(dir.path())
            .application_server(ENDPOINT)?
            // Look for closed windows at every record (Kafka's default is once a
            // second of wall-clock time): this run's readings all arrive within one.
            .set("__emit.interval.ms.kstreams.windowed.aggregation__", "0")?,
    )?;
    streams.start()?;

    // The output topic: one final summary per sensor and closed minute, nothing for
    // the minute still open (7:00-8:00), the late-but-in-grace reading included and
    // the too-late one left out.
    let expected = expected_stats(&sent, &too_late);
    let closed_before = base + 7 * MINUTE;
    let mut expected_final: Vec<MinuteSummary> = expected
        .iter()
        .filter(|((_, start), _)| *start < closed_before)
        .map(|((sensor, start), stats)| MinuteSummary {
            sensor_id: sensor.clone(),
            window_start: *start,
            window_end: start + MINUTE,
            average: stats.average(),
            min: stats.min,
            max: stats.max,
        })
        .collect();
    let mut finals = read_summaries(&cluster, &summaries_topic, expected_final.len()).await?;
    let order = |s: &MinuteSummary| (s.sensor_id.clone(), s.window_start);
    finals.sort_by_key(order);
    expected_final.sort_by_key(order);
    for summary in finals.iter().filter(|s| s.sensor_id == "temp-1") {
        println!(
            "final temp-1 minute {}: avg {:.1}, min {}, max {}",
            (summary.window_start - base) / MINUTE,
            summary.average,
            summary.min,
            summary.max
        );
    }
    anyhow::ensure!(
        finals.len() == expected_final.len()
            && finals.iter().zip(&expected_final).all(|(got, want)| same(got, want)),
        "the final summaries differ from the readings' figures:\n got {finals:?}\nwant {expected_final:?}"
    );
    let dropped = streams.metrics().skipped_records;
    println!(
        "{} final summaries, one per sensor and closed minute; {dropped} reading dropped as too late",
        finals.len()
    );
    anyhow::ensure!(
        dropped == 1,
        "exactly one reading is too late, not {dropped}"
    );

    // The query: temp-1's windows that started in the last hour, the open one too.
    let windows = streams.window_store::<String, MinuteStats>(STORE)?;
    let sensor = "temp-1".to_string();
    let want: Vec<(i64, MinuteStats)> = expected
        .iter()
        .filter(|((s, _), _)| *s == sensor)
        .map(|((_, start), stats)| (*start, *stats))
        .collect();
    let last_hour = query_until(Duration::from_secs(30), || {
        let got: Vec<(i64, MinuteStats)> = windows
            .fetch(&sensor, now - HOUR.as_millis() as i64, now)?
            .into_iter()
            .map(|(window, stats)| (window.start(), stats))
            .collect();
        Ok((got == want).then_some(got))
    })
    .await?;
    println!("temp-1, last hour (window store query):");
    for (start, stats) in &last_hour {
        println!(
            "  minute {}: {} readings, avg {:.1}, min {}, max {}",
            (start - base) / MINUTE,
            stats.count,
            stats.average(),
            stats.min,
            stats.max
        );
    }
    let open = windows.fetch_window(&sensor, closed_before)?;
    anyhow::ensure!(
        open.map(|s| s.count) == Some(1),
        "the open minute holds temp-1's one 7:30 reading: {open:?}"
    );

    // Where to send that query in a deployment of several instances: the owner of
    // the plain sensor id's partition (here, this one).
    let host = query_until(Duration::from_secs(30), || {
        let found = tokio::task::block_in_place(|| {
            streams.query_metadata_for_key(STORE, "temp-1", &StringSerde)
        });
        match found {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.is_store_migrating() => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await?;
    println!(
        "temp-1's windows live on partition {} of {readings_topic}, hosted by {}",
        host.partition, host.active_host
    );
    anyhow::ensure!(
        host.active_host == HostInfo::parse(ENDPOINT)?,
        "temp-1 should be hosted here"
    );

    close(streams).await?;
    println!(
        "ok: per-minute average, minimum and maximum emitted final per sensor, and temp-1's last hour answered"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_has_one_dropped_and_one_late_reading_in_grace() {
        let (sent, too_late) = readings(0);
        assert_eq!(too_late.datetime, 230_000);
        assert!(sent.iter().any(|r| r.datetime == 175_000));
        let stats = expected_stats(&sent, &too_late);
        // 3 sensors × 6 full minutes, plus the open minute of the closing readings.
        assert_eq!(stats.len(), 3 * 7);
        let temp1_minute2 = stats[&("temp-1".to_string(), 2 * MINUTE)];
        assert_eq!(temp1_minute2.count, 4);
        assert_eq!(temp1_minute2.max, 990);
        assert_eq!(stats[&("temp-1".to_string(), 3 * MINUTE)].count, 3);
    }
}
