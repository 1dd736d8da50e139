//! Streams metrics on a Prometheus endpoint: a small IoT app (readings per sensor,
//! counted in the store `readings-per-sensor`) whose thread, task, store and lag
//! metrics go through kafka-streams' `metrics` feature to
//! `metrics-exporter-prometheus`, which serves them at `http://<addr>/metrics`.
//!
//! It sends `RECORDS` readings (default 1 000), waits until the app processed them all,
//! committed and knows its input lag, publishes the metrics, prints
//! `metrics ready at http://…/metrics` and a sample of the exposition, then serves
//! until its standard input closes (Ctrl-D), and closes the app.
//!
//! - `METRICS_ADDR`: where to serve (default `127.0.0.1:9464`; loopback only).
//! - `RECORDS`: how many readings to send.
//! - `KAFKA_BOOTSTRAP_SERVERS`: the cluster; without it librdkafka's in-process mock
//!   cluster.
//!
//! ```text
//! cargo run -p kafka-examples --bin streams_prometheus
//! curl -s http://127.0.0.1:9464/metrics | grep kafka_streams_
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use kafka_client::dev::Cluster;
use kafka_client::{Producer, ProducerRecord};
use kafka_examples::{close, create_topics, init_tracing, run_id, wait_for_metrics};
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::runtime::{KafkaStreams, MetricsSnapshot, StreamsConfig};
use kafka_streams::state::changelog_topic;
use metrics_exporter_prometheus::PrometheusBuilder;

const STORE: &str = "readings-per-sensor";
const SENSORS: usize = 8;

fn topology(input: &str, output: &str) -> kafka_streams::Result<kafka_streams::Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(input)
        .group_by_key()
        .count_with(Materialized::as_(STORE))
        .to_stream()
        .to(output);
    builder.build()
}

/// Whether the snapshot shows every reading processed, a commit since, and a known
/// lag for every input partition.
fn settled(m: &MetricsSnapshot, records: u64, commits_when_processed: Option<u64>) -> bool {
    let tasks: Vec<_> = m.tasks().collect();
    m.processed_records >= records
        && commits_when_processed.is_some_and(|c| m.commits > c)
        && !tasks.is_empty()
        && tasks.iter().all(|t| {
            !t.records_lag.is_empty() && t.records_lag.iter().all(|l| l.records_lag.is_some())
        })
}

/// `GET /metrics` over plain HTTP/1.0 (the exporter answers with the whole body).
fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP response from {addr}: {response:?}"))?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    Ok(body.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = Cluster::from_env_or_embedded()?;
    println!("{}", cluster.describe());
    init_tracing();
    let addr: SocketAddr = std::env::var("METRICS_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:9464".into())
        .parse()?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "METRICS_ADDR must be a loopback address"
    );
    let records: u64 = std::env::var("RECORDS")
        .ok()
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(1_000);

    // The recorder first, so that nothing published is lost.
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()?;

    let run = run_id()?;
    let (input, output, app) = (
        format!("readings-{run}"),
        format!("readings-per-sensor-{run}"),
        format!("streams-prometheus-{run}"),
    );
    let changelog = changelog_topic(&app, STORE);
    create_topics(&cluster, &[(&input, 2), (&output, 2)], &[(&changelog, 2)]).await?;

    let config = cluster.client_config();
    let producer: Producer<String, String> = Producer::new(&config)?;
    for i in 0..records {
        let sensor = format!("sensor-{}", i as usize % SENSORS);
        let reading = format!("{:.1}", 20.0 + (i % 50) as f64 / 10.0);
        producer
            .send(ProducerRecord::new(&input, sensor, reading))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    producer.flush(Duration::from_secs(30)).await?;
    println!("produced {records} readings to {input}");

    let dir = tempfile::tempdir()?;
    let streams = KafkaStreams::new(
        topology(&input, &output)?,
        StreamsConfig::new(&app, config.clone())
            .commit_interval(Duration::from_millis(200))
            .state_dir(dir.path()),
    )?;
    streams.start()?;
    let publisher = streams.spawn_metrics_publisher(Duration::from_secs(1))?;

    let mut commits_when_processed = None;
    wait_for_metrics(
        &streams,
        Duration::from_secs(120),
        "every reading processed, committed, lags known",
        |m| {
            if commits_when_processed.is_none() && m.processed_records >= records {
                commits_when_processed = Some(m.commits);
            }
            settled(m, records, commits_when_processed)
        },
    )
    .await?;
    // What the endpoint shows now is the settled snapshot (the publisher only
    // refreshes it with the same totals).
    streams.publish_metrics();
    let m = streams.metrics();
    anyhow::ensure!(
        m.processed_records == records,
        "processed {} of {records}",
        m.processed_records
    );
    println!("metrics ready at http://{addr}/metrics");
    let exposition = tokio::task::spawn_blocking(move || scrape(addr)).await??;
    println!("sample:");
    for line in exposition
        .lines()
        .filter(|l| l.starts_with("kafka_streams_"))
        .filter(|l| !l.contains("delete"))
        .take(40)
    {
        println!("  {line}");
    }
    let _ = std::io::stdout().flush();

    // Serve until standard input closes.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::stdin().read_to_end(&mut sink)
    })
    .await??;
    drop(publisher);
    close(streams).await?;
    println!("ok: {records} readings processed and their metrics served");
    Ok(())
}
