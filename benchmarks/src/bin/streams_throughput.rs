//! A stateless kafka-streams pipeline against a raw rdkafka passthrough, on the same
//! broker in the same run, over the same input records.
//!
//! - Input: `--records` records (keys `sensor-<n>`, ~`--value-size`-byte values)
//!   produced once into a topic with `--partitions` partitions.
//! - Raw: a `BaseConsumer` subscribed with a fresh group (from the earliest offset)
//!   and a `BaseProducer` that sends every record unchanged to a fresh output topic;
//!   timed until every record is acknowledged.
//! - Streams: a `KafkaStreams` app (fresh `application.id`, earliest offsets) running
//!   `filter` (keeps every record, so the counts match) + `map_values` + `to`;
//!   timed from `start()` until the high watermarks of its fresh output topic add up
//!   to the input count.
//!
//! Both sides are timed the same way, by polling the output topic's high
//! watermarks: in steady state (from the first output record seen to the last), the
//! throughput the 0.7 target applies to, and from the start (client creation and
//! group join included), also printed. Each round runs both sides, the first side
//! alternating between rounds, and the medians are compared.
//!
//! ```text
//! bash scripts/bench.sh streams_throughput -- --records 1000000 --rounds 3
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use kafka_benchmarks::{
    broker_config, create_topic, init_tracing, median, raw_passthrough, report, unique,
    watch_output, Preloader, Timings,
};
use kafka_client::rdkafka::consumer::BaseConsumer;
use kafka_client::rdkafka::producer::BaseRecord;
use kafka_client::ClientConfig;
use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::runtime::{KafkaStreams, State, StreamsConfig};

#[derive(Parser, Debug)]
struct Args {
    /// Input records (each run processes all of them).
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Runs of each side (medians are compared).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Partitions of the input and output topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// `num.stream.threads` of the streams app (the raw side is one consumer and
    /// one producer).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

/// A ~`size`-byte value, different for every record.
fn value(i: u64, size: usize) -> String {
    let mut v = format!(
        "{{\"reading\":{i},\"celsius\":{}.{},\"pad\":\"",
        i % 40,
        i % 10
    );
    while v.len() + 2 < size {
        v.push('x');
    }
    v.push_str("\"}");
    v
}

/// Fills the input topic once.
fn pre_produce(
    config: &ClientConfig,
    topic: &str,
    records: u64,
    value_size: usize,
) -> anyhow::Result<()> {
    let mut preloader = Preloader::new(config)?;
    for i in 0..records {
        let key = format!("sensor-{}", i % 1000);
        let value = value(i, value_size);
        preloader.send(
            BaseRecord::to(topic)
                .key(key.as_bytes())
                .payload(value.as_bytes()),
        )?;
    }
    let secs = preloader.finish()?.as_secs_f64();
    tracing::info!(topic, records, secs, "input topic filled");
    Ok(())
}

/// The streams app: `filter` (keeps everything) + `map_values` + `to`, timed from
/// `start()` until the output topic holds `expected` records.
fn streams_pipeline(
    config: &ClientConfig,
    input: &str,
    output: &str,
    partitions: i32,
    expected: u64,
    threads: usize,
    timeout: Duration,
) -> anyhow::Result<Timings> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(input)
        .filter(|_, v| !v.is_empty())
        .map_values(|v| v.to_ascii_uppercase())
        .to(output);
    let topology = builder.build()?;
    // The runtime reads from the earliest offset unless `auto.offset.reset` says
    // otherwise.
    let streams_config =
        StreamsConfig::new(unique("bench-streams"), config.clone()).num_stream_threads(threads);
    let streams = KafkaStreams::new(topology, streams_config)?;
    let probe: BaseConsumer = config.to_rdkafka().create()?;

    let started = Instant::now();
    let deadline = started + timeout;
    streams.start()?;
    let result = watch_output(
        &probe,
        output,
        partitions,
        expected,
        started,
        deadline,
        || {
            anyhow::ensure!(
                streams.state() != State::Error,
                "the streams app failed: {:?}",
                streams.error()
            );
            Ok(())
        },
    );
    if !streams.close() {
        tracing::warn!("the streams app did not close within the timeout");
    }
    let metrics = streams.metrics();
    tracing::info!(
        processed = metrics.processed_records,
        produced = metrics.produced_records,
        commits = metrics.commits,
        "streams app closed"
    );
    if result.is_ok() {
        anyhow::ensure!(
            metrics.processed_records >= expected,
            "the app processed {} records, expected {expected}",
            metrics.processed_records
        );
    }
    result
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Args::parse();
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    anyhow::ensure!(args.records >= 1, "--records must be at least 1");
    let config = broker_config()?;
    let timeout = Duration::from_secs(args.timeout_secs);
    println!(
        "streams_throughput: {} records of ~{} bytes on {} partitions, {} rounds, {} stream thread(s), broker {}",
        args.records,
        args.value_size,
        args.partitions,
        args.rounds,
        args.threads,
        config.get("bootstrap.servers").unwrap_or("?")
    );

    let input = unique("bench-streams-input");
    create_topic(&config, &input, args.partitions).await?;
    {
        let (config, input) = (config.clone(), input.clone());
        let (records, size) = (args.records, args.value_size);
        tokio::task::spawn_blocking(move || pre_produce(&config, &input, records, size)).await??;
    }

    let (mut raw, mut streams): (Vec<Timings>, Vec<Timings>) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        // The side that runs first alternates, so neither always meets a broker
        // that has just taken the other's writes.
        for side in if round % 2 == 0 {
            ["raw", "streams"]
        } else {
            ["streams", "raw"]
        } {
            let output = unique(&format!("bench-{side}-output"));
            create_topic(&config, &output, args.partitions).await?;
            let (config, input) = (config.clone(), input.clone());
            let (records, partitions, threads) = (args.records, args.partitions, args.threads);
            let timings = tokio::task::spawn_blocking(move || {
                if side == "raw" {
                    raw_passthrough(&config, &input, &output, partitions, records, timeout)
                } else {
                    streams_pipeline(
                        &config, &input, &output, partitions, records, threads, timeout,
                    )
                }
            })
            .await??;
            timings.log(round, side);
            if side == "raw" {
                raw.push(timings);
            } else {
                streams.push(timings);
            }
        }
    }

    for (round, (r, s)) in raw.iter().zip(&streams).enumerate() {
        println!(
            "round {round}: steady raw {:>10.0} rec/s  streams {:>10.0} rec/s   | from start: raw {:>10.0} rec/s ({:.2} s)  streams {:>10.0} rec/s ({:.2} s)",
            r.steady.per_second(),
            s.steady.per_second(),
            r.total.per_second(),
            r.total.elapsed.as_secs_f64(),
            s.total.per_second(),
            s.total.elapsed.as_secs_f64()
        );
    }
    report(
        "streams / raw passthrough, steady state",
        &Timings::steady(&streams),
        &Timings::steady(&raw),
        0.7,
    );
    println!(
        "streams / raw passthrough, from start (start-up included): ratio {:.3}",
        median(&Timings::total(&streams)) / median(&Timings::total(&raw))
    );
    Ok(())
}
