//! Windowed counts (kafka-streams time windows on a logged RocksDB window store)
//! against a raw rdkafka passthrough, on the same broker in the same run, over the
//! same input records.
//!
//! - Input: `--records` readings (keys `sensor-<n>` of `--keys` sensors, ~`--value-size`-
//!   byte values) produced once into a topic with `--partitions` partitions, with
//!   event timestamps an hour ago advancing by `1000 / --events-per-second` ms per
//!   record, so that stream time moves on, windows close and old segments expire.
//! - Raw passthrough: a `BaseConsumer` with a fresh group reads the input from the
//!   beginning and a `BaseProducer` sends every record unchanged to a fresh topic;
//!   timed until the output's high watermarks hold every record.
//! - Tumbling: a `KafkaStreams` app (fresh `application.id` and state dir) running
//!   `group_by_key` + `windowed_by(TimeWindows::of_size_and_grace(1 s, --grace-ms))` +
//!   `count`
//!   into the RocksDB window store `window-counts`, logged to
//!   `<application.id>-window-counts-changelog`, and `.to_stream().to(output)`, with
//!   the record cache of `--cache-max-bytes` (Kafka's default 10 MiB): a window's
//!   updates fold between commits (and evictions) before they reach the store, the
//!   changelog and the output. Timed, as the cached word count of `streams_state`, in
//!   steady state from the first record processed until every record is processed,
//!   and from the start until the commit after that (which flushes the cache) is done.
//!   With `--cache-max-bytes 0` every record is one store update, one changelog record
//!   and one output record, timed until the output holds one record per input record.
//! - Hopping: the same with 4-s windows advancing by 1 s (size / advance = 4): every
//!   record updates 4 windows (without a cache: 4 store updates, changelog and output
//!   records per input record).
//!
//! Throughputs are input records per second: the passthrough's timed by polling the
//! output topic's high watermarks, in steady state (from the first output record seen
//! to the last) and from the start (client creation, group join and internal topics
//! included). The steady-state ratio is the figure the 0.4 target of the tumbling
//! count applies to. Each round runs the three sides, in an order that rotates
//! between rounds, and the medians are compared.
//!
//! The whole process runs on jemalloc (the `jemalloc` feature, on by default), C
//! libraries included, as `streams_state` does.
//!
//! ```text
//! bash scripts/bench.sh streams_windows -- --records 1000000 --rounds 3
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::Parser;
use kafka_benchmarks::{
    broker_config, create_topic, init_tracing, median, raw_passthrough, report, unique,
    watch_streams, Preloader, StreamsRun, Timings,
};
use kafka_client::rdkafka::consumer::BaseConsumer;
use kafka_client::rdkafka::producer::BaseRecord;
use kafka_client::serde::{BigEndian, OptionSerde};
use kafka_client::ClientConfig;
use kafka_streams::dsl::{Materialized, Produced, StreamsBuilder, TimeWindows};
use kafka_streams::runtime::{KafkaStreams, StreamsConfig};

/// The windowed counts' store (changelog `<application.id>-window-counts-changelog`).
const STORE: &str = "window-counts";

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Input records (each run processes all of them).
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Distinct keys (sensors).
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Input records per second of event time (the timestamps' pace): with the
    /// defaults, 1 M records span 100 s of event time, ~10 records per key and
    /// 1-s window.
    #[arg(long, default_value_t = 10_000)]
    events_per_second: u64,
    /// Runs of each side (medians are compared).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Partitions of the input and output topics (the changelog gets as many).
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// `num.stream.threads` of the streams apps (the raw side is one consumer and
    /// one producer).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// `commit.interval.ms` of the streams apps (Kafka's default 30000 if not given).
    #[arg(long)]
    commit_interval_ms: Option<u64>,
    /// `statestore.cache.max.bytes` of the streams apps (Kafka's default 10 MiB); 0
    /// sends every window update through to the store, changelog and output.
    #[arg(long, default_value_t = 10 << 20)]
    cache_max_bytes: usize,
    /// The windows' grace period in milliseconds of event time. At start-up the
    /// stream thread has been seen processing a partition's first records (up to
    /// ~25,000, ~10 s of event time at the defaults) after later ones, likely
    /// because records fetched onto the consumer's own queue before the partition
    /// was routed to the fetch queue wait there behind a rebalance or commit event,
    /// on which a zero-timeout `poll` returns `None`, so the fetch queue is read
    /// first. With too short a
    /// grace their windows are closed by then, they are dropped as late and the
    /// output never holds every update; 120 s keeps the run's counts whole.
    #[arg(long, default_value_t = 120_000)]
    grace_ms: u64,
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

/// Fills the input topic once, with timestamps from an hour ago (recent enough that
/// neither the input's nor the changelog's retention deletes them) advancing at
/// `--events-per-second`.
fn pre_produce(config: &ClientConfig, topic: &str, args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.keys >= 1, "--keys must be at least 1");
    anyhow::ensure!(
        args.events_per_second >= 1,
        "--events-per-second must be at least 1"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let base_ms = i64::try_from(now_ms)? - 3_600_000;
    let mut preloader = Preloader::new(config)?;
    for i in 0..args.records {
        let key = format!("sensor-{}", i % args.keys);
        let value = value(i, args.value_size);
        let timestamp = base_ms + i64::try_from(i * 1000 / args.events_per_second)?;
        preloader.send(
            BaseRecord::to(topic)
                .key(key.as_bytes())
                .payload(value.as_bytes())
                .timestamp(timestamp),
        )?;
    }
    let secs = preloader.finish()?.as_secs_f64();
    tracing::info!(
        topic,
        records = args.records,
        event_time_secs = args.records / args.events_per_second,
        secs,
        "input topic filled"
    );
    Ok(())
}

/// A state dir removed when dropped.
struct StateDir(PathBuf);

impl StateDir {
    fn fresh() -> Self {
        StateDir(std::env::temp_dir().join(unique("bench-windows-state")))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.0.display(), error = %e, "could not remove the state dir");
            }
        }
    }
}

/// The sides of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Raw,
    Tumbling,
    Hopping,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Raw => "raw",
            Side::Tumbling => "tumbling",
            Side::Hopping => "hopping",
        }
    }

    /// Output records per input record.
    fn fan_out(self) -> u64 {
        match self {
            Side::Raw | Side::Tumbling => 1,
            Side::Hopping => 4,
        }
    }

    fn windows(self, grace: Duration) -> anyhow::Result<TimeWindows> {
        let windows = match self {
            Side::Hopping => TimeWindows::of_size_and_grace(Duration::from_secs(4), grace)?
                .advance_by(Duration::from_secs(1))?,
            Side::Tumbling => TimeWindows::of_size_and_grace(Duration::from_secs(1), grace)?,
            Side::Raw => anyhow::bail!("the raw passthrough has no windows"),
        };
        Ok(windows)
    }
}

/// A windowed count of `input` into `output`, timed from `start()` until the output
/// holds `fan_out` records per input record; the rates are per input record.
fn windowed_count(
    config: &ClientConfig,
    input: &str,
    output: &str,
    side: Side,
    args: &Args,
    timeout: Duration,
) -> anyhow::Result<Timings> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(input)
        .group_by_key()
        .windowed_by(side.windows(Duration::from_millis(args.grace_ms))?)
        .count_with(Materialized::as_(STORE))
        .to_stream()
        .to_with(
            output,
            Produced::as_("window-counts-out").with_value_serializer(OptionSerde(BigEndian)),
        );
    let topology = builder.build()?;
    let state_dir = StateDir::fresh();
    let mut streams_config = StreamsConfig::new(unique("bench-windows"), config.clone())
        .num_stream_threads(args.threads)
        .state_dir(state_dir.path());
    if let Some(ms) = args.commit_interval_ms {
        streams_config = streams_config.commit_interval(Duration::from_millis(ms));
    }
    let streams = KafkaStreams::new(
        topology,
        streams_config.cache_max_bytes(args.cache_max_bytes),
    )?;
    let probe: BaseConsumer = config.to_rdkafka().create()?;
    let caching = args.cache_max_bytes > 0;
    let started = Instant::now();
    streams.start()?;
    let result = watch_streams(
        &StreamsRun {
            streams: &streams,
            probe: &probe,
            output,
            partitions: args.partitions,
            input_records: args.records,
            to_process: args.records,
            // Without a cache every window update is in the output; with one, the
            // final counts are once the commit after the last record is done.
            to_output: if caching {
                0
            } else {
                args.records * side.fan_out()
            },
            caching,
            what: side.name(),
        },
        started,
        started + timeout,
    );
    if !streams.close() {
        tracing::warn!("the streams app did not close within the timeout");
    }
    let metrics = streams.metrics();
    tracing::info!(
        side = side.name(),
        processed = metrics.processed_records,
        produced = metrics.produced_records,
        commits = metrics.commits,
        "streams app closed"
    );
    let timings = result?;
    tracing::info!(
        side = side.name(),
        published_rate = timings.published.per_second() as u64,
        "output complete (to the commit after the last record when cached)"
    );
    Ok(timings.timings)
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
        "streams_windows: {} records of ~{} bytes, {} keys, {} events/s of event time, grace {} ms, on {} partitions, {} rounds, {} stream thread(s), broker {}",
        args.records,
        args.value_size,
        args.keys,
        args.events_per_second,
        args.grace_ms,
        args.partitions,
        args.rounds,
        args.threads,
        config.get("bootstrap.servers").unwrap_or("?")
    );

    let input = unique("bench-windows-input");
    create_topic(&config, &input, args.partitions).await?;
    {
        let (config, input, args) = (config.clone(), input.clone(), args.clone());
        tokio::task::spawn_blocking(move || pre_produce(&config, &input, &args)).await??;
    }

    let sides = [Side::Raw, Side::Tumbling, Side::Hopping];
    let mut runs: Vec<(Side, Timings)> = Vec::new();
    for round in 0..args.rounds {
        // The side that runs first rotates, so that none always meets a broker that
        // has just taken another's writes.
        for k in 0..sides.len() {
            let side = sides[(round + k) % sides.len()];
            let output = unique(&format!("bench-windows-{}-output", side.name()));
            create_topic(&config, &output, args.partitions).await?;
            let (config, input, args) = (config.clone(), input.clone(), args.clone());
            let timings = tokio::task::spawn_blocking(move || match side {
                Side::Raw => raw_passthrough(
                    &config,
                    &input,
                    &output,
                    args.partitions,
                    args.records,
                    timeout,
                ),
                Side::Tumbling | Side::Hopping => {
                    windowed_count(&config, &input, &output, side, &args, timeout)
                }
            })
            .await??;
            timings.log(round, side.name());
            runs.push((side, timings));
        }
    }

    let of = |side: Side| -> Vec<Timings> {
        runs.iter()
            .filter(|(s, _)| *s == side)
            .map(|(_, t)| *t)
            .collect()
    };
    let (raw, tumbling, hopping) = (of(Side::Raw), of(Side::Tumbling), of(Side::Hopping));
    for (round, ((r, t), h)) in raw.iter().zip(&tumbling).zip(&hopping).enumerate() {
        println!(
            "round {round}: steady raw {:>10.0} rec/s  tumbling {:>10.0} rec/s  hopping {:>10.0} rec/s   | from start: raw {:>10.0} ({:.2} s)  tumbling {:>10.0} ({:.2} s)  hopping {:>10.0} ({:.2} s)",
            r.steady.per_second(),
            t.steady.per_second(),
            h.steady.per_second(),
            r.total.per_second(),
            r.total.elapsed.as_secs_f64(),
            t.total.per_second(),
            t.total.elapsed.as_secs_f64(),
            h.total.per_second(),
            h.total.elapsed.as_secs_f64(),
        );
    }
    report(
        "tumbling 1 s count / raw passthrough, steady",
        &Timings::steady(&tumbling),
        &Timings::steady(&raw),
        0.4,
    );
    let (h, r) = (
        median(&Timings::steady(&hopping)),
        median(&Timings::steady(&raw)),
    );
    println!(
        "{:<44} ours {h:>12.0} rec/s   raw {r:>12.0} rec/s   ratio {:.3}   (4 windows per record, no target)",
        "hopping 4 s/1 s count / raw passthrough",
        h / r
    );
    println!(
        "from start (start-up included): tumbling / raw {:.3}, hopping / raw {:.3}",
        median(&Timings::total(&tumbling)) / median(&Timings::total(&raw)),
        median(&Timings::total(&hopping)) / median(&Timings::total(&raw))
    );
    Ok(())
}
