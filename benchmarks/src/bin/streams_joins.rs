//! Joins against a raw rdkafka passthrough, on the same broker in the same run, over
//! the same input records.
//!
//! - Input: two topics, `left` and `right`, of `--records` records each (keys `k<i>`,
//!   each key once per topic: matched 1:1, ~`--value-size`-byte values), with event
//!   timestamps an hour ago advancing by `1000 / --events-per-second` ms per record;
//!   a right record is 100 ms after its left partner.
//! - Raw passthrough: one `BaseConsumer` (fresh group) subscribed to both inputs and a
//!   `BaseProducer` sending every record unchanged to a fresh topic; timed until the
//!   output holds all `2 × --records` of them.
//! - Each join case is a `KafkaStreams` app (fresh `application.id` and state dir)
//!   reading both inputs, timed until its output holds its expected results:
//!   - `stream-stream`: `left.join(right, ..)` within
//!     `JoinWindows::of_time_difference_and_grace(1 s, --grace-ms)`: both sides
//!     buffered in logged RocksDB window stores; one result per key.
//!
//!   - `stream-table`: `right.left_join_table(left as a table, ..)`: each right
//!     record looks up its key's row (written 100 ms earlier in event time, so found
//!     when the two topics are read in timestamp order) in the table's logged RocksDB
//!     store; one result per right record, the left join making the count exact
//!     whatever the fetch order. Table updates give no output.
//!
//!   A case is a [`Case`] variant: its topology and its expected output count.
//!
//! Throughputs are input records (both topics) per second, timed by polling the
//! output's high watermarks: in steady state (first output record to last), and from
//! the start (client creation, group join, internal topics included). Each round runs
//! every side, in an order that rotates between rounds; medians are compared.
//!
//! ```text
//! bash scripts/bench.sh streams_joins -- --records 500000 --rounds 3
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::Parser;
use kafka_benchmarks::{
    broker_config, create_topic, init_tracing, median, raw_passthrough_of, send_blocking,
    streams_producer_settings, unique, watch_streams_output, Counting, Rate, StateDir, Timings,
};
use kafka_client::rdkafka::consumer::BaseConsumer;
use kafka_client::rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use kafka_client::ClientConfig;
use kafka_streams::dsl::{JoinWindows, StreamsBuilder};
use kafka_streams::runtime::{KafkaStreams, StreamsConfig};

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Records per input topic (each run processes both topics).
    #[arg(long, default_value_t = 500_000)]
    records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Records per second of event time in each topic (the timestamps' pace).
    #[arg(long, default_value_t = 10_000)]
    events_per_second: u64,
    /// Runs of each side (medians are compared).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Partitions of the input and output topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// `num.stream.threads` of the streams apps.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// `commit.interval.ms` of the streams apps (Kafka's default 30000 if not given).
    #[arg(long)]
    commit_interval_ms: Option<u64>,
    /// The join windows' grace period in milliseconds of event time: how long a
    /// record stays buffered after its window, so that partners read out of order
    /// (one topic's partition fetched ahead of the other's) still meet.
    #[arg(long, default_value_t = 120_000)]
    grace_ms: u64,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

/// A ~`size`-byte value, different for every record.
fn value(side: &str, i: u64, size: usize) -> String {
    let mut v = format!("{{\"{side}\":{i},\"pad\":\"");
    while v.len() + 2 < size {
        v.push('x');
    }
    v.push_str("\"}");
    v
}

/// Fills both input topics once: key `k<i>` in each, the right record 100 ms after
/// the left one.
fn pre_produce(config: &ClientConfig, left: &str, right: &str, args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.events_per_second >= 1,
        "--events-per-second must be at least 1"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let base_ms = i64::try_from(now_ms)? - 3_600_000;
    let delivered = Arc::new(AtomicU64::new(0));
    let producer: BaseProducer<Counting> = streams_producer_settings(config)
        .set("linger.ms", "5")
        .to_rdkafka()
        .create_with_context(Counting(delivered.clone()))?;
    for i in 0..args.records {
        let key = format!("k{i}");
        let timestamp = base_ms + i64::try_from(i * 1000 / args.events_per_second)?;
        for (topic, side, offset) in [(left, "left", 0), (right, "right", 100)] {
            let value = value(side, i, args.value_size);
            send_blocking(
                &producer,
                BaseRecord::to(topic)
                    .key(key.as_bytes())
                    .payload(value.as_bytes())
                    .timestamp(timestamp + offset),
            )?;
        }
        if i.is_multiple_of(1000) {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(300))?;
    let acked = delivered.load(Ordering::Relaxed);
    anyhow::ensure!(
        acked == 2 * args.records,
        "only {acked} of {} input records were acknowledged",
        2 * args.records
    );
    Ok(())
}

/// Stream-table lookups that found their row, in the current run (reported, so a run
/// that only measured misses shows it).
static TABLE_ROWS_FOUND: AtomicU64 = AtomicU64::new(0);

/// A join case: a streams app over the two inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// `left.join(right)` within 1 s.
    StreamStream,
    /// `right.left_join_table(left as a table)`.
    StreamTable,
}

impl Case {
    const ALL: [Case; 2] = [Case::StreamStream, Case::StreamTable];

    fn name(self) -> &'static str {
        match self {
            Case::StreamStream => "stream-stream",
            Case::StreamTable => "stream-table",
        }
    }

    /// Output records the app writes for the input.
    fn expected_outputs(self, args: &Args) -> u64 {
        match self {
            Case::StreamStream | Case::StreamTable => args.records,
        }
    }

    /// Adds the case's topology, reading `left` and `right`, writing `output`.
    fn build(
        self,
        builder: &StreamsBuilder,
        left: &str,
        right: &str,
        output: &str,
        args: &Args,
    ) -> anyhow::Result<()> {
        match self {
            Case::StreamStream => {
                let left = builder.stream::<String, String>(left);
                let right = builder.stream::<String, String>(right);
                let windows = JoinWindows::of_time_difference_and_grace(
                    Duration::from_secs(1),
                    Duration::from_millis(args.grace_ms),
                )?;
                left.join(&right, |l: &String, r: &String| format!("{l}|{r}"), windows)
                    .to(output);
            }
            Case::StreamTable => {
                let table = builder.table::<String, String>(left);
                builder
                    .stream::<String, String>(right)
                    .left_join_table(&table, |r: &String, l: Option<&String>| {
                        if l.is_some() {
                            TABLE_ROWS_FOUND.fetch_add(1, Ordering::Relaxed);
                        }
                        format!("{r}|{}", l.map_or("", String::as_str))
                    })
                    .to(output);
            }
        }
        Ok(())
    }
}

/// The sides of a round: the raw passthrough, or a join case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Raw,
    Join(Case),
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Raw => "raw",
            Side::Join(case) => case.name(),
        }
    }
}

/// Runs `case` from `start()` until its output holds every expected result; the rates
/// count input records (both topics).
fn join_run(
    config: &ClientConfig,
    (left, right, output): (&str, &str, &str),
    case: Case,
    args: &Args,
    timeout: Duration,
) -> anyhow::Result<Timings> {
    let builder = StreamsBuilder::new();
    TABLE_ROWS_FOUND.store(0, Ordering::Relaxed);
    case.build(&builder, left, right, output, args)?;
    let state_dir = StateDir::fresh("bench-joins-state");
    let mut streams_config = StreamsConfig::new(unique("bench-joins"), config.clone())
        .num_stream_threads(args.threads)
        .state_dir(state_dir.path());
    if let Some(ms) = args.commit_interval_ms {
        streams_config = streams_config.commit_interval(Duration::from_millis(ms));
    }
    let streams = KafkaStreams::new(builder.build()?, streams_config)?;
    let probe: BaseConsumer = config.to_rdkafka().create()?;
    let expected = case.expected_outputs(args);
    let started = Instant::now();
    streams.start()?;
    let result = watch_streams_output(
        &streams,
        &probe,
        output,
        args.partitions,
        expected,
        started,
        started + timeout,
    );
    let metrics = streams.metrics();
    tracing::info!(
        case = case.name(),
        processed = metrics.processed_records,
        skipped = metrics.skipped_records,
        produced = metrics.produced_records,
        table_rows_found = TABLE_ROWS_FOUND.load(Ordering::Relaxed),
        "streams app closed"
    );
    let timings = result?;
    // Rates over the input records behind the output: both topics, whole.
    let inputs = |rate: Rate| Rate {
        records: 2 * args.records * rate.records / expected.max(1),
        elapsed: rate.elapsed,
    };
    Ok(Timings {
        total: inputs(timings.total),
        steady: inputs(timings.steady),
    })
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
        "streams_joins: 2 x {} records of ~{} bytes (keys matched 1:1), {} events/s of event time, grace {} ms, on {} partitions, {} rounds, {} stream thread(s), broker {}",
        args.records,
        args.value_size,
        args.events_per_second,
        args.grace_ms,
        args.partitions,
        args.rounds,
        args.threads,
        config.get("bootstrap.servers").unwrap_or("?")
    );
    let (left, right) = (unique("bench-joins-left"), unique("bench-joins-right"));
    create_topic(&config, &left, args.partitions).await?;
    create_topic(&config, &right, args.partitions).await?;
    {
        let (config, left, right, args) =
            (config.clone(), left.clone(), right.clone(), args.clone());
        tokio::task::spawn_blocking(move || pre_produce(&config, &left, &right, &args)).await??;
    }

    let sides: Vec<Side> = std::iter::once(Side::Raw)
        .chain(Case::ALL.map(Side::Join))
        .collect();
    let mut runs: Vec<(Side, Timings)> = Vec::new();
    for round in 0..args.rounds {
        // The side that runs first rotates, so that none always meets a broker that
        // has just taken another's writes.
        for k in 0..sides.len() {
            let side = sides[(round + k) % sides.len()];
            let output = unique(&format!("bench-joins-{}-output", side.name()));
            create_topic(&config, &output, args.partitions).await?;
            let (config, left, right, args) =
                (config.clone(), left.clone(), right.clone(), args.clone());
            let timings = tokio::task::spawn_blocking(move || match side {
                Side::Raw => raw_passthrough_of(
                    &config,
                    &[&left, &right],
                    &output,
                    args.partitions,
                    2 * args.records,
                    timeout,
                ),
                Side::Join(case) => {
                    join_run(&config, (&left, &right, &output), case, &args, timeout)
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
    let raw = of(Side::Raw);
    for case in Case::ALL {
        let joined = of(Side::Join(case));
        for (round, (r, j)) in raw.iter().zip(&joined).enumerate() {
            println!(
                "round {round}: steady raw {:>10.0} rec/s  {} {:>10.0} rec/s   | from start: raw {:>10.0} ({:.2} s)  {} {:>10.0} ({:.2} s)",
                r.steady.per_second(),
                case.name(),
                j.steady.per_second(),
                r.total.per_second(),
                r.total.elapsed.as_secs_f64(),
                case.name(),
                j.total.per_second(),
                j.total.elapsed.as_secs_f64(),
            );
        }
        let (j, r) = (
            median(&Timings::steady(&joined)),
            median(&Timings::steady(&raw)),
        );
        println!(
            "{:<44} ours {j:>12.0} rec/s   raw {r:>12.0} rec/s   ratio {:.3}   (from start: {:.3})",
            format!("{} join / raw passthrough, steady", case.name()),
            j / r,
            median(&Timings::total(&joined)) / median(&Timings::total(&raw)),
        );
    }
    Ok(())
}
