//! kafka-streams side by side with the streams libraries users would pick instead:
//! Kafka Streams (Java) and Quix Streams (Python), on the same broker, the same
//! preloaded input and the same machine, in one run.
//!
//! - Input: `--records` records preloaded once into a topic of `--partitions`
//!   partitions: keys `sensor-<n>` of `--keys` sensors, values ~`--value-size`-byte
//!   sentences (the `streams_state` generator: skewed words from a made-up vocabulary),
//!   event timestamps an hour ago advancing at `--events-per-second`. The
//!   tumbling-window count reads an input of its own, of `--windowed-records` records
//!   (three times `--records` by default) generated the same way: our engine went
//!   through 1M records in two commit intervals, too short to measure a steady state.
//! - Workloads (each engine runs the same pipeline, see [`Workload`]):
//!   - `stateless`: filter (keeps values whose length is not a multiple of 10) + map
//!     (upper-case the value) + to;
//!   - `word-count`: split into lowercase words, group by word (a repartition topic),
//!     count in a persistent RocksDB store with a changelog, to;
//!   - `tumbling-count`: count per key in 1-s tumbling windows (grace `--grace-ms`),
//!     RocksDB window store with a changelog, to;
//!   - `stream-table-join`: each reading joined with its sensor's row of a
//!     sensor → plant table (`--plants` plants), read from a compacted topic preloaded
//!     before the input with timestamps older than every reading, so each engine's
//!     time synchronisation processes the table first: value `"<plant> <reading>"`,
//!     to. Kafka Streams and ours: `KStream.join(KTable)`; Quix Streams has no table
//!     join, and runs its nearest equivalent, `join_asof` (the latest right-hand value
//!     of the key at or before the reading's timestamp, kept in its state store).
//! - Engines, each a child process (so its CPU time and memory are its own):
//!   - `ours`: this binary, `peers ours ...` (kafka-streams on the system allocator,
//!     a Rust program's default, as each engine runs with its own defaults. The other
//!     benchmarks run on jemalloc; here it was 10% faster on the stateless pipeline,
//!     but its default keeps freed pages resident for 10 s, and the word count's peak
//!     RSS was 206 MiB on it against 132 MiB on glibc's malloc, at the same
//!     throughput);
//!   - `kafka-streams`: `benchmarks/peers/KafkaStreamsPeer.java` run by `java` as a
//!     single-file program on `$KAFKA_STREAMS_JARS` (Kafka Streams 4.1.1);
//!   - `quix`: `benchmarks/peers/quix_peer.py` in the virtualenv `scripts/bench.sh`
//!     makes (`$PEERS_PYTHON`, quixstreams pinned there).
//!
//!   Settings that match: at-least-once, `--commit-interval-ms`, one thread / process,
//!   state on local disk (a fresh directory per run), reading from the earliest
//!   offset. Everything else is each engine's default (Kafka Streams' record cache and
//!   JVM heap, Quix's serializers, ...).
//!
//! Measures, per engine and workload:
//! - progress, sampled every 50 ms, measured the same way for the three engines:
//!   - stateless and stream-table join: the output topic's records (every engine
//!     writes one per input record kept or joined, none holds them back), as
//!     `streams_throughput` times its runs;
//!   - stateful: the engine's consumer group's committed offsets over its source
//!     topics (the input, and for the word count its repartition topic: each input
//!     record and each repartitioned word is one unit of work). Every engine commits
//!     only what it has processed and flushed, at the same interval, whatever it emits
//!     in between (Kafka Streams' cache folds updates, Quix emits each one);
//! - steady-state records/s: input records per second between the first progress seen
//!   and the last before the end (start-up, and for the stateful workloads the wait
//!   for the commit after the last record, left out). Runs too short to show progress
//!   in between (one commit interval or less) fall back to the whole run, and say so;
//! - CPU seconds per million input records: the child's user + system time
//!   (`/proc/<pid>/stat`, all its threads) over the same interval;
//! - peak RSS: the child's `VmHWM` when its work is done (start-up included: the JVM's
//!   in-memory compilation of the source file, Python's imports).
//!
//! The run ends when the output holds every record (stateless) or the committed
//! offsets cover every source record (stateful); the child is
//! then killed and its output topic read back and checked against the result computed
//! from the generated input (the same records and digest for the stateless pipeline
//! and the join, the same final count per word, the same final count per key and
//! window). The
//! engines' results are also compared with each other. A wrong result fails the
//! benchmark, whatever its speed.
//!
//! Results: a table on stdout, `--out-dir`/peers.md (the table and the ratios against
//! the goals) and peers.png (a bar chart of the three measures, drawn by
//! `benchmarks/peers/plot_peers.py` with matplotlib from the same virtualenv).
//!
//! ```text
//! bash scripts/bench.sh peers                              # 1M records, every engine and workload
//! bash scripts/bench.sh peers -- --records 50000           # a quick check of the pipeline
//! bash scripts/bench.sh peers -- --engines ours,quix --workloads word-count
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use kafka_benchmarks::{
    broker_config, create_topic, create_topic_with, init_tracing, probe_consumer, records_in,
    sentence, unique, vocabulary, words, Preloader, Rng, TopicToEnd,
};
use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer as _};
use kafka_client::rdkafka::producer::BaseRecord;
use kafka_client::rdkafka::{Message, Offset, TopicPartitionList};
use kafka_client::serde::{BigEndian, OptionSerde};
use kafka_client::ClientConfig;
use kafka_streams::dsl::{Materialized, Produced, StreamsBuilder, TimeWindows};
use kafka_streams::runtime::{KafkaStreams, State, StreamsConfig};

#[derive(Parser, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    app: Option<App>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum App {
    /// Internal: our engine's child process (started by the benchmark).
    #[command(hide = true)]
    Ours(EngineArgs),
}

/// The arguments every engine's child process gets (the same for the three).
#[derive(clap::Args, Debug, Clone)]
struct EngineArgs {
    #[arg(long, value_enum)]
    workload: Workload,
    #[arg(long)]
    input: String,
    #[arg(long)]
    output: String,
    /// The sensor → plant table's topic (read by the stream-table join only).
    #[arg(long)]
    table: String,
    /// `application.id` / consumer group.
    #[arg(long)]
    group: String,
    #[arg(long)]
    state_dir: PathBuf,
    #[arg(long)]
    commit_interval_ms: u64,
    #[arg(long)]
    grace_ms: u64,
}

#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// Input records, preloaded once (every run processes all of them).
    #[arg(long, env = "PEERS_RECORDS", default_value_t = 1_000_000)]
    records: u64,
    /// Records of the tumbling-window workload's own input (by default three times
    /// `--records`): at 1M records our engine finished it within two commit
    /// intervals, too short a run to see a steady state in the committed offsets.
    #[arg(long, env = "PEERS_WINDOWED_RECORDS")]
    windowed_records: Option<u64>,
    /// Approximate value (sentence) size in bytes.
    #[arg(long, default_value_t = 60)]
    value_size: usize,
    /// Distinct words the sentences are drawn from.
    #[arg(long, default_value_t = 4000)]
    vocabulary: usize,
    /// Distinct keys (sensors).
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Plants of the stream-table join's sensor → plant table.
    #[arg(long, default_value_t = 50)]
    plants: u64,
    /// Input records per second of event time (1M records span 100 s at 10,000).
    #[arg(long, default_value_t = 10_000)]
    events_per_second: u64,
    /// Seed of the sentence generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Partitions of the input and output topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Commit interval of every engine.
    #[arg(long, default_value_t = 1000)]
    commit_interval_ms: u64,
    /// Grace of the tumbling windows (event time is in order per partition; the
    /// grace only guards against reordering at start-up, as in `streams_windows`).
    #[arg(long, default_value_t = 120_000)]
    grace_ms: u64,
    /// Engines to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ours,kafka-streams,quix"
    )]
    engines: Vec<Engine>,
    /// Workloads to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "stateless,word-count,tumbling-count,stream-table-join"
    )]
    workloads: Vec<Workload>,
    /// The `java` launcher for Kafka Streams.
    #[arg(long, env = "PEERS_JAVA", default_value = "java")]
    java: String,
    /// The Python interpreter with quixstreams (scripts/bench.sh makes the venv).
    #[arg(long, env = "PEERS_PYTHON", default_value = "python3")]
    python: String,
    /// Where peers.md and peers.png go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out_dir: PathBuf,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout_secs: u64,
}

/// The workloads. Each is implemented three times: [`ours`] here,
/// `benchmarks/peers/KafkaStreamsPeer.java` and `benchmarks/peers/quix_peer.py`, with
/// its expected result in [`Expected`] and its output decoding in [`Outcome::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// filter + map + to.
    Stateless,
    /// flat-map to words, group by word, count (RocksDB store, changelog), to.
    WordCount,
    /// group by key, 1-s tumbling windows, count (RocksDB window store, changelog), to.
    TumblingCount,
    /// join with the sensor → plant table (Quix: `join_asof`), to.
    StreamTableJoin,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Stateless => "stateless",
            Workload::WordCount => "word-count",
            Workload::TumblingCount => "tumbling-count",
            Workload::StreamTableJoin => "stream-table-join",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Workload::Stateless => "filter + map + to",
            Workload::WordCount => "word count (RocksDB + changelog)",
            Workload::TumblingCount => "tumbling 1 s window count",
            Workload::StreamTableJoin => "stream-table join",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Engine {
    /// kafka-streams (this workspace).
    Ours,
    /// Apache Kafka Streams 4.1.1 on the JVM.
    KafkaStreams,
    /// Quix Streams (Python).
    Quix,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Ours => "ours",
            Engine::KafkaStreams => "kafka-streams",
            Engine::Quix => "quix",
        }
    }

    /// The child process running `app`.
    fn command(self, app: &EngineArgs, bootstrap: &str, run: &RunArgs) -> anyhow::Result<Command> {
        let peers_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
        let positional = [
            app.workload.name().to_owned(),
            bootstrap.to_owned(),
            app.input.clone(),
            app.output.clone(),
            app.group.clone(),
            app.state_dir.display().to_string(),
            app.commit_interval_ms.to_string(),
            app.grace_ms.to_string(),
            app.table.clone(),
        ];
        let command = match self {
            Engine::Ours => {
                let mut c = Command::new(std::env::current_exe()?);
                c.arg("ours")
                    .args(["--workload", app.workload.name()])
                    .args(["--input", &app.input, "--output", &app.output])
                    .args(["--table", &app.table])
                    .args(["--group", &app.group])
                    .arg("--state-dir")
                    .arg(&app.state_dir)
                    .args(["--commit-interval-ms", &app.commit_interval_ms.to_string()])
                    .args(["--grace-ms", &app.grace_ms.to_string()]);
                c
            }
            Engine::KafkaStreams => {
                let jars = std::env::var("KAFKA_STREAMS_JARS").map_err(|_| {
                    anyhow::anyhow!(
                        "KAFKA_STREAMS_JARS is not set: run through scripts/bench.sh (it sources scripts/env.sh)"
                    )
                })?;
                let mut c = Command::new(&run.java);
                c.arg("-cp")
                    .arg(format!("{jars}/*"))
                    .arg(peers_dir.join("KafkaStreamsPeer.java"))
                    .args(positional);
                c
            }
            Engine::Quix => {
                let mut c = Command::new(&run.python);
                c.arg(peers_dir.join("quix_peer.py")).args(positional);
                c
            }
        };
        Ok(command)
    }
}

// ---------------------------------------------------------------------------------
// Our engine (the child process).

/// The stateless workload's filter: keeps values whose length is not a multiple of
/// 10 (about 9 in 10; every engine applies the same test).
fn kept_by_filter(line: &str) -> bool {
    !line.len().is_multiple_of(10)
}

/// The stream-table join's output value (every engine joins the same way).
fn joined(plant: &str, line: &str) -> String {
    format!("{plant} {line}")
}

/// Runs `app` on kafka-streams until killed.
fn ours(app: EngineArgs) -> anyhow::Result<()> {
    let config = broker_config()?;
    let builder = StreamsBuilder::new();
    let lines = builder.stream::<String, String>(&app.input);
    match app.workload {
        Workload::Stateless => lines
            .filter(|_, line| kept_by_filter(line))
            .map_values(|line| line.to_ascii_uppercase())
            .to(&app.output),
        Workload::WordCount => lines
            .flat_map_values(|line| words(&line))
            .group_by(|_, word| word.clone())
            .count_with(Materialized::as_("word-counts"))
            .to_stream()
            .to(&app.output),
        Workload::TumblingCount => lines
            .group_by_key()
            .windowed_by(TimeWindows::of_size_and_grace(
                Duration::from_secs(1),
                Duration::from_millis(app.grace_ms),
            )?)
            .count_with(Materialized::as_("window-counts"))
            .to_stream()
            .to_with(
                &app.output,
                Produced::as_("window-counts-out").with_value_serializer(OptionSerde(BigEndian)),
            ),
        Workload::StreamTableJoin => {
            let plants = builder.table::<String, String>(&app.table);
            lines
                .join_table(&plants, |line, plant| joined(plant, line))
                .to(&app.output)
        }
    }
    let streams_config = StreamsConfig::new(&app.group, config)
        .num_stream_threads(1)
        .commit_interval(Duration::from_millis(app.commit_interval_ms))
        .state_dir(&app.state_dir);
    let streams = KafkaStreams::new(builder.build()?, streams_config)?;
    streams.start()?;
    tracing::info!(workload = app.workload.name(), "ours: started");
    loop {
        std::thread::sleep(Duration::from_millis(200));
        anyhow::ensure!(
            streams.state() != State::Error,
            "the streams app failed: {:?}",
            streams.error()
        );
    }
}

// ---------------------------------------------------------------------------------
// Input and expected results.

/// What each workload must compute from the generated input.
#[derive(Default)]
struct Expected {
    records: u64,
    /// Words in the input (records through the word count's repartition topic).
    words: u64,
    /// Stateless: the records kept, and the order-independent digest of their
    /// (key, upper-cased value).
    kept: u64,
    kept_digest: u64,
    /// Stream-table join: the digest of every (key, "<plant> <reading>").
    joined_digest: u64,
    word_counts: HashMap<String, i64>,
    window_counts: HashMap<(String, i64), i64>,
}

/// FNV-1a of `key`, a separator and `value`; summed over records it digests a
/// multiset of records in any order.
fn record_hash(key: &[u8], value: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.iter().chain(&[0xff]).chain(value) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The stream-table join's sensor → plant table topic, beside `input`.
fn table_topic(input: &str) -> String {
    format!("{input}-plants")
}

/// The stream-table join's plant of sensor `n`.
fn plant_of(sensor: u64, plants: u64) -> String {
    format!("plant-{}", sensor % plants)
}

/// Fills the sensor → plant table's topic and then the input topic once, and computes
/// every workload's expected result.
fn preload(
    config: &ClientConfig,
    topic: &str,
    table: &str,
    args: &RunArgs,
    records: u64,
) -> anyhow::Result<Expected> {
    anyhow::ensure!(args.keys >= 1, "--keys must be at least 1");
    anyhow::ensure!(args.plants >= 1, "--plants must be at least 1");
    anyhow::ensure!(args.vocabulary >= 1, "--vocabulary must be at least 1");
    anyhow::ensure!(
        args.events_per_second >= 1,
        "--events-per-second must be at least 1"
    );
    let base_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )? - 3_600_000;
    let mut rng = Rng(args.seed);
    let vocabulary = vocabulary(args.vocabulary, &mut rng);
    let mut preloader = Preloader::new(config)?;
    // One row per sensor, older than every reading: the engines' time synchronisation
    // (Kafka's KIP-695, ours, Quix's in-order buffering) processes the table first.
    let plants: Vec<String> = (0..args.keys).map(|n| plant_of(n, args.plants)).collect();
    for (n, plant) in plants.iter().enumerate() {
        preloader.send(
            BaseRecord::to(table)
                .key(format!("sensor-{n}").as_bytes())
                .payload(plant.as_bytes())
                .timestamp(base_ms - 1000),
        )?;
    }
    let mut expected = Expected {
        records,
        ..Expected::default()
    };
    let mut last_log = Instant::now();
    for i in 0..records {
        let sensor = i % args.keys;
        let key = format!("sensor-{sensor}");
        let line = sentence(&vocabulary, args.value_size, &mut rng);
        expected.joined_digest = expected.joined_digest.wrapping_add(record_hash(
            key.as_bytes(),
            joined(&plants[sensor as usize], &line).as_bytes(),
        ));
        let timestamp = base_ms + i64::try_from(i * 1000 / args.events_per_second)?;
        if kept_by_filter(&line) {
            expected.kept += 1;
            expected.kept_digest = expected.kept_digest.wrapping_add(record_hash(
                key.as_bytes(),
                line.to_ascii_uppercase().as_bytes(),
            ));
        }
        for word in words(&line) {
            expected.words += 1;
            *expected.word_counts.entry(word).or_default() += 1;
        }
        *expected
            .window_counts
            .entry((key.clone(), timestamp - timestamp.rem_euclid(1000)))
            .or_default() += 1;
        preloader.send(
            BaseRecord::to(topic)
                .key(key.as_bytes())
                .payload(line.as_bytes())
                .timestamp(timestamp),
        )?;
        if last_log.elapsed() >= Duration::from_secs(5) {
            tracing::info!(produced = i, of = records, "preloading the input");
            last_log = Instant::now();
        }
    }
    let secs = preloader.finish()?.as_secs_f64();
    tracing::info!(
        topic,
        records,
        words = expected.words,
        distinct_words = expected.word_counts.len(),
        windows = expected.window_counts.len(),
        secs,
        "input topic filled"
    );
    Ok(expected)
}

/// Commits an offset for a throwaway group, so that the broker has created its
/// `__consumer_offsets` topic (50 partitions, seconds on a fresh broker) before the
/// first engine starts, rather than during that engine's run.
fn create_offsets_topic(config: &ClientConfig, input: &str) -> anyhow::Result<()> {
    let consumer = probe_consumer(config, &unique("peers-warm-up"))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(input, 0, Offset::Offset(0))?;
    consumer.commit(&tpl, kafka_client::rdkafka::consumer::CommitMode::Sync)?;
    Ok(())
}

// ---------------------------------------------------------------------------------
// Watching a child: progress, CPU, memory.

/// The child's user + system CPU seconds (every thread), from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32, ticks_per_second: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces), from field 3 on:
    // utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<f64> {
        let raw = fields
            .get(n - 3)
            .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat: no field {n}"))?;
        Ok(raw.parse::<f64>()?)
    };
    Ok((field(14)? + field(15)?) / ticks_per_second)
}

/// The child's peak resident set (`VmHWM`) in bytes.
fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/status: no VmHWM"))?;
    Ok(kib * 1024)
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// One look at the child.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    /// Units of work done (see [`Progress`]).
    units: u64,
    cpu: f64,
}

/// How far an engine is: its output records where every engine writes one per input
/// record kept (the stateless pipeline), otherwise the committed offsets of its group
/// over its source topics.
struct Progress {
    probe: BaseConsumer,
    group_probe: BaseConsumer,
    group: String,
    sources: TopicPartitionList,
    /// The output topic and its partitions, when its records measure the progress.
    output: Option<(String, i32)>,
    /// Source topics still to be found (the word count's repartition topic, which the
    /// engine creates): any topic whose name holds the group id and "repartition".
    repartition_pending: bool,
}

impl Progress {
    fn new(
        config: &ClientConfig,
        group: &str,
        input: &str,
        output: &str,
        partitions: i32,
        workload: Workload,
    ) -> anyhow::Result<Self> {
        let probe: BaseConsumer = config.to_rdkafka().create()?;
        // Never subscribes, so it never joins the group: it only reads its offsets.
        let group_probe = probe_consumer(config, group)?;
        let mut sources = TopicPartitionList::new();
        for p in 0..partitions {
            sources.add_partition(input, p);
        }
        Ok(Progress {
            probe,
            group_probe,
            group: group.to_owned(),
            sources,
            output: matches!(workload, Workload::Stateless | Workload::StreamTableJoin)
                .then(|| (output.to_owned(), partitions)),
            repartition_pending: workload == Workload::WordCount,
        })
    }

    /// Units of work done: output records, or source records committed.
    fn units(&mut self) -> anyhow::Result<u64> {
        if let Some((output, partitions)) = &self.output {
            return records_in(&self.probe, output, *partitions);
        }
        if self.repartition_pending {
            let metadata = self.probe.fetch_metadata(None, Duration::from_secs(10))?;
            if let Some(topic) = metadata
                .topics()
                .iter()
                .find(|t| t.name().contains(&self.group) && t.name().contains("repartition"))
            {
                tracing::info!(topic = topic.name(), "found the repartition topic");
                for p in topic.partitions() {
                    self.sources.add_partition(topic.name(), p.id());
                }
                self.repartition_pending = false;
            }
        }
        let committed = self
            .group_probe
            .committed_offsets(self.sources.clone(), Duration::from_secs(10))?;
        Ok(committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) if o > 0 => o as u64,
                _ => 0,
            })
            .sum())
    }
}

/// One engine's figures for one workload.
#[derive(Debug, Clone)]
struct Measured {
    engine: Engine,
    workload: Workload,
    /// Input records per second in steady state.
    steady_rate: f64,
    /// CPU seconds per million input records over the same interval.
    steady_cpu_per_million: f64,
    /// Whether the steady figures fell back to the whole run.
    whole_run: bool,
    /// From spawn to the last commit.
    total_secs: f64,
    total_cpu_per_million: f64,
    peak_rss: u64,
    check: Check,
}

/// Runs one engine on one workload and checks its output.
fn run_one(
    config: &ClientConfig,
    args: &RunArgs,
    engine: Engine,
    workload: Workload,
    input: &str,
    expected: &Expected,
    log_dir: &Path,
) -> anyhow::Result<Measured> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let output = unique(&format!("peers-{}-{}-out", engine.name(), workload.name()));
    runtime.block_on(create_topic(config, &output, args.partitions))?;
    let state_dir = StateDir(std::env::temp_dir().join(unique("peers-state")));
    std::fs::create_dir_all(&state_dir.0)?;
    let app = EngineArgs {
        workload,
        input: input.to_owned(),
        output: output.clone(),
        table: table_topic(input),
        group: unique(&format!("peers-{}-{}", engine.name(), workload.name())),
        state_dir: state_dir.0.clone(),
        commit_interval_ms: args.commit_interval_ms,
        grace_ms: args.grace_ms,
    };
    let bootstrap = config
        .get("bootstrap.servers")
        .ok_or_else(|| anyhow::anyhow!("no bootstrap.servers"))?
        .to_owned();
    let log_path = log_dir.join(format!("{}-{}.log", engine.name(), workload.name()));
    let log = std::fs::File::create(&log_path)?;
    let mut command = engine.command(&app, &bootstrap, args)?;
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let mut progress = Progress::new(
        config,
        &app.group,
        input,
        &output,
        args.partitions,
        workload,
    )?;
    // Units of work in the whole run (see `Progress`).
    let total = match workload {
        Workload::Stateless => expected.kept,
        Workload::StreamTableJoin => expected.records,
        Workload::WordCount => expected.records + expected.words,
        Workload::TumblingCount => expected.records,
    };
    let ticks = clock_ticks();
    tracing::info!(engine = engine.name(), workload = workload.name(), log = %log_path.display(), "starting");
    let spawned = Instant::now();
    let child = Killed(
        command
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {} ({command:?}): {e}", engine.name()))?,
    );
    let pid = child.0.id();
    let deadline = spawned + Duration::from_secs(args.timeout_secs);
    let mut child = child;
    let mut samples: Vec<Sample> = Vec::new();
    let mut last_log = Instant::now();
    let done = loop {
        if let Some(status) = child.0.try_wait()? {
            anyhow::bail!(
                "{} exited ({status}) before finishing {}; its log: {}\n{}",
                engine.name(),
                workload.name(),
                log_path.display(),
                tail(&log_path)
            );
        }
        let units = progress.units()?;
        let sample = Sample {
            at: Instant::now(),
            units,
            cpu: cpu_seconds(pid, ticks)?,
        };
        if samples.last().is_none_or(|s| s.units != units) {
            samples.push(sample);
        }
        if units >= total && !progress.repartition_pending {
            break sample;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} timed out on {}: {units} of {total} units of work done; log: {}",
            engine.name(),
            workload.name(),
            log_path.display()
        );
        if last_log.elapsed() >= Duration::from_secs(5) {
            tracing::info!(
                engine = engine.name(),
                workload = workload.name(),
                units,
                of = total,
                cpu_secs = sample.cpu,
                "running"
            );
            last_log = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let peak_rss = peak_rss_bytes(pid)?;
    drop(child);

    // Steady state: from the first unit of work seen to the last one before the end,
    // in input records (the units scaled to the input's share of them).
    let per_input = expected.records as f64 / total as f64;
    let interior: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.units > 0 && s.units < total)
        .collect();
    let (steady_rate, steady_cpu_per_million, whole_run) = match (interior.first(), interior.last())
    {
        (Some(a), Some(b)) if b.units > a.units && b.at > a.at => {
            let records = (b.units - a.units) as f64 * per_input;
            (
                records / (b.at - a.at).as_secs_f64(),
                (b.cpu - a.cpu) / records * 1e6,
                false,
            )
        }
        _ => {
            tracing::warn!(
                engine = engine.name(),
                workload = workload.name(),
                "no progress seen between the start and the end: steady figures are the whole run's (use more --records)"
            );
            (
                expected.records as f64 / (done.at - spawned).as_secs_f64(),
                done.cpu / expected.records as f64 * 1e6,
                true,
            )
        }
    };
    let check = Outcome::read(config, &output, args.partitions, engine, workload)?.check(expected);
    let measured = Measured {
        engine,
        workload,
        steady_rate,
        steady_cpu_per_million,
        whole_run,
        total_secs: (done.at - spawned).as_secs_f64(),
        total_cpu_per_million: done.cpu / expected.records as f64 * 1e6,
        peak_rss,
        check,
    };
    tracing::info!(
        engine = engine.name(),
        workload = workload.name(),
        steady_rate = measured.steady_rate as u64,
        cpu_secs_per_million = measured.steady_cpu_per_million,
        peak_rss_mib = peak_rss >> 20,
        total_secs = measured.total_secs,
        correct = measured.check.ok,
        detail = %measured.check.detail,
        "run done"
    );
    Ok(measured)
}

/// The last lines of a child's log, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A child process killed (and reaped) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Err(e) = self.0.kill() {
            tracing::debug!(error = %e, "killing the engine process");
        }
        let _ = self.0.wait();
    }
}

/// A state dir removed when dropped.
struct StateDir(PathBuf);

impl Drop for StateDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.0.display(), error = %e, "could not remove the state dir");
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Reading and checking the output.

/// What an engine wrote, decoded.
enum Outcome {
    /// The stateless pipeline's records.
    Records {
        count: u64,
        digest: u64,
    },
    /// The stream-table join's records.
    JoinedRecords {
        count: u64,
        digest: u64,
    },
    WordCounts(HashMap<String, i64>),
    WindowCounts(HashMap<(String, i64), i64>),
}

/// The verdict on one output.
#[derive(Debug, Clone)]
struct Check {
    ok: bool,
    detail: String,
    /// A digest of the result, to compare engines with each other.
    digest: u64,
}

impl Outcome {
    /// Reads all of `output` (to its high watermarks) and decodes it the way `engine`
    /// writes `workload`'s results: ours and Kafka Streams write counts as 8-byte
    /// big-endian longs and windowed keys as Kafka's `TimeWindowedSerializer` does
    /// (key bytes, then the window start as 8 bytes); Quix writes JSON values (a window
    /// as `{"start", "end", "value"}` under the plain key).
    fn read(
        config: &ClientConfig,
        output: &str,
        partitions: i32,
        engine: Engine,
        workload: Workload,
    ) -> anyhow::Result<Outcome> {
        let to_end = TopicToEnd::new(config, "peers-check", output, partitions)?;
        let mut outcome = match workload {
            Workload::Stateless => Outcome::Records {
                count: 0,
                digest: 0,
            },
            Workload::WordCount => Outcome::WordCounts(HashMap::new()),
            Workload::TumblingCount => Outcome::WindowCounts(HashMap::new()),
            Workload::StreamTableJoin => Outcome::JoinedRecords {
                count: 0,
                digest: 0,
            },
        };
        to_end.read(Instant::now() + Duration::from_secs(600), |message| {
            outcome
                .add(
                    engine,
                    message.key().unwrap_or_default(),
                    message.payload().unwrap_or_default(),
                )
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{output} partition {} offset {}: {e}",
                        message.partition(),
                        message.offset()
                    )
                })
        })?;
        Ok(outcome)
    }

    /// Takes one output record in.
    fn add(&mut self, engine: Engine, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        match self {
            Outcome::Records { count, digest } | Outcome::JoinedRecords { count, digest } => {
                *count += 1;
                *digest = digest.wrapping_add(record_hash(key, value));
            }
            Outcome::WordCounts(counts) => {
                let count = match engine {
                    Engine::Quix => serde_json::from_slice::<i64>(value)?,
                    Engine::Ours | Engine::KafkaStreams => be_long(value)?,
                };
                counts.insert(String::from_utf8(key.to_vec())?, count);
            }
            Outcome::WindowCounts(counts) => {
                let (sensor, start, count) = match engine {
                    Engine::Quix => {
                        let window: QuixWindow = serde_json::from_slice(value)?;
                        (key, window.start, window.value)
                    }
                    Engine::Ours | Engine::KafkaStreams => {
                        let split = key.len().checked_sub(8).ok_or_else(|| {
                            anyhow::anyhow!("a windowed key of {} bytes", key.len())
                        })?;
                        (&key[..split], be_long(&key[split..])?, be_long(value)?)
                    }
                };
                counts.insert((String::from_utf8(sensor.to_vec())?, start), count);
            }
        }
        Ok(())
    }

    /// Compares the output with what the input says it must be.
    fn check(&self, expected: &Expected) -> Check {
        match self {
            Outcome::Records { count, digest } => {
                compare_records(*count, *digest, expected.kept, expected.kept_digest)
            }
            Outcome::JoinedRecords { count, digest } => {
                compare_records(*count, *digest, expected.records, expected.joined_digest)
            }
            Outcome::WordCounts(counts) => compare(counts, &expected.word_counts, "words"),
            Outcome::WindowCounts(counts) => compare(counts, &expected.window_counts, "windows"),
        }
    }
}

/// Records against the expected multiset: the count and the digest.
fn compare_records(count: u64, digest: u64, expected: u64, expected_digest: u64) -> Check {
    Check {
        ok: count == expected && digest == expected_digest,
        detail: format!(
            "{count} records (expected {expected}), digest {}",
            if digest == expected_digest {
                "matches"
            } else {
                "differs"
            }
        ),
        digest,
    }
}

/// A Quix window result.
#[derive(serde::Deserialize)]
struct QuixWindow {
    start: i64,
    value: i64,
}

/// An 8-byte big-endian long (Kafka's `LongSerializer`).
fn be_long(bytes: &[u8]) -> anyhow::Result<i64> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("a long of {} bytes", bytes.len()))?;
    Ok(i64::from_be_bytes(array))
}

/// Final counts against the expected ones: missing, extra and different keys.
fn compare<K: std::hash::Hash + Eq + std::fmt::Debug + Ord + Clone>(
    got: &HashMap<K, i64>,
    expected: &HashMap<K, i64>,
    what: &str,
) -> Check {
    let mut wrong: Vec<K> = expected
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    let extra = got.keys().filter(|k| !expected.contains_key(*k)).count();
    wrong.sort();
    let mut keys: Vec<(&K, &i64)> = got.iter().collect();
    keys.sort();
    let digest = keys.iter().fold(0_u64, |d, (k, v)| {
        d.wrapping_add(record_hash(format!("{k:?}").as_bytes(), &v.to_be_bytes()))
    });
    let ok = wrong.is_empty() && extra == 0;
    let detail = if ok {
        format!("{} {what}, every count matches", got.len())
    } else {
        format!(
            "{} of {} {what} wrong or missing (first: {:?}: got {:?}, expected {:?}), {extra} unexpected",
            wrong.len(),
            expected.len(),
            wrong.first(),
            wrong.first().and_then(|k| got.get(k)),
            wrong.first().and_then(|k| expected.get(k)),
        )
    };
    Check { ok, detail, digest }
}

// ---------------------------------------------------------------------------------
// Report.

/// Our figure over a peer's: `(throughput ratio, CPU ratio, RSS ratio)`.
fn ratios(ours: &Measured, peer: &Measured) -> (f64, f64, f64) {
    (
        ours.steady_rate / peer.steady_rate,
        ours.steady_cpu_per_million / peer.steady_cpu_per_million,
        ours.peak_rss as f64 / peer.peak_rss as f64,
    )
}

/// The Markdown report: figures, ratios against the goals, correctness.
fn markdown(
    results: &[Measured],
    args: &RunArgs,
    expected: &Expected,
    windowed_records: u64,
    context: &str,
) -> String {
    let mut md = String::new();
    md.push_str("# kafka-streams against Kafka Streams and Quix Streams\n\n");
    md.push_str(&format!(
        "Written by `bash scripts/bench.sh peers` (benchmarks/src/bin/peers.rs). {context}\n\n"
    ));
    md.push_str(&format!(
        "Input: {} records ({} words), ~{}-byte sentences, {} keys, {} partitions; the tumbling-window count reads {} records of the same kind; commit interval {} ms, at-least-once, one thread/process, state on local disk.\n\n",
        args.records, expected.words, args.value_size, args.keys, args.partitions, windowed_records, args.commit_interval_ms
    ));
    md.push_str("![records/s, CPU per million records, peak RSS](peers.png)\n\n");
    md.push_str("| workload | engine | records/s (steady) | CPU s / 1M records | peak RSS MiB | whole run s | whole run CPU s / 1M | output |\n");
    md.push_str("|---|---|---:|---:|---:|---:|---:|---|\n");
    for r in results {
        md.push_str(&format!(
            "| {} | {} | {:.0}{} | {:.2} | {:.0} | {:.1} | {:.2} | {} {} |\n",
            r.workload.description(),
            r.engine.name(),
            r.steady_rate,
            if r.whole_run { " (whole run)" } else { "" },
            r.steady_cpu_per_million,
            r.peak_rss as f64 / (1 << 20) as f64,
            r.total_secs,
            r.total_cpu_per_million,
            if r.check.ok { "correct:" } else { "**WRONG**:" },
            r.check.detail
        ));
    }
    md.push_str("\nRatios, ours / peer (goals: throughput ≥ 1× Kafka Streams at ≤ 0.5× its CPU per record and ≤ 0.25× its RSS; throughput ≥ 10× Quix):\n\n");
    md.push_str("| workload | vs | throughput | CPU per record | peak RSS | goals |\n");
    md.push_str("|---|---|---:|---:|---:|---|\n");
    for line in ratio_lines(results) {
        md.push_str(&format!(
            "| {} | {} | {:.2}× | {:.2}× | {:.2}× | {} |\n",
            line.workload.description(),
            line.peer.name(),
            line.throughput,
            line.cpu,
            line.rss,
            line.verdict
        ));
    }
    md.push_str("\nSteady state: input records per second between the first progress seen and the last before the end, sampled every 50 ms: for the stateless pipeline and the stream-table join the output topic's records (one per input record kept or joined, in every engine); for the stateful ones the engines' committed offsets over their source topics (input and repartition), as each engine commits only what it has processed and flushed. CPU: the process's user + system time over the same interval; peak RSS: VmHWM of the process (start-up included). The whole run runs from process start to the end (output complete, or the commit that covers every record).\n");
    md
}

struct RatioLine {
    workload: Workload,
    peer: Engine,
    throughput: f64,
    cpu: f64,
    rss: f64,
    verdict: String,
}

fn ratio_lines(results: &[Measured]) -> Vec<RatioLine> {
    let mut lines = Vec::new();
    for ours in results.iter().filter(|r| r.engine == Engine::Ours) {
        for peer in results
            .iter()
            .filter(|r| r.workload == ours.workload && r.engine != Engine::Ours)
        {
            let (throughput, cpu, rss) = ratios(ours, peer);
            let verdict = match peer.engine {
                _ if ours.whole_run || peer.whole_run => {
                    "not comparable: a run too short for a steady state".to_owned()
                }
                Engine::KafkaStreams => {
                    let mut missed = Vec::new();
                    if throughput < 1.0 {
                        missed.push("throughput");
                    }
                    if cpu > 0.5 {
                        missed.push("CPU");
                    }
                    if rss > 0.25 {
                        missed.push("RSS");
                    }
                    if missed.is_empty() {
                        "met".to_owned()
                    } else {
                        format!("missed: {}", missed.join(", "))
                    }
                }
                Engine::Quix if throughput >= 10.0 => "met".to_owned(),
                Engine::Quix => "missed: throughput".to_owned(),
                Engine::Ours => String::new(),
            };
            lines.push(RatioLine {
                workload: ours.workload,
                peer: peer.engine,
                throughput,
                cpu,
                rss,
                verdict,
            });
        }
    }
    lines
}

/// The engines that computed the same result, per workload, or the ones that differ.
fn cross_check(results: &[Measured], workloads: &[Workload]) -> Vec<String> {
    workloads
        .iter()
        .filter_map(|&w| {
            let runs: Vec<&Measured> = results.iter().filter(|r| r.workload == w).collect();
            let first = runs.first()?;
            let same = runs.iter().all(|r| r.check.digest == first.check.digest);
            Some(format!(
                "{}: {}",
                w.name(),
                if same {
                    format!("{} engine(s) computed the same result", runs.len())
                } else {
                    format!(
                        "RESULTS DIFFER: {}",
                        runs.iter()
                            .map(|r| format!("{} {:016x}", r.engine.name(), r.check.digest))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ))
        })
        .collect()
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`): other work on the machine
/// shows in every figure.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes the figures as CSV and draws peers.png with `plot_peers.py`.
fn chart(results: &[Measured], args: &RunArgs) -> anyhow::Result<PathBuf> {
    let csv = args.out_dir.join("peers.csv");
    let mut text =
        String::from("workload,engine,records_per_sec,cpu_secs_per_million,peak_rss_mib\n");
    for r in results {
        text.push_str(&format!(
            "{},{},{:.0},{:.3},{:.1}\n",
            r.workload.description(),
            r.engine.name(),
            r.steady_rate,
            r.steady_cpu_per_million,
            r.peak_rss as f64 / (1 << 20) as f64
        ));
    }
    std::fs::write(&csv, text)?;
    let png = args.out_dir.join("peers.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/plot_peers.py");
    let status = Command::new(&args.python)
        .arg(script)
        .arg(&csv)
        .arg(&png)
        .status()?;
    anyhow::ensure!(status.success(), "plot_peers.py failed ({status})");
    Ok(png)
}

fn main() -> anyhow::Result<()> {
    init_tracing();
    let cli = Cli::parse();
    if let Some(App::Ours(app)) = cli.app {
        return ours(app);
    }
    let args = cli.run;
    anyhow::ensure!(args.records >= 1, "--records must be at least 1");
    let load_at_start = load_average();
    let config = broker_config()?;
    println!(
        "peers: {} records of ~{} bytes on {} partitions, engines {:?}, workloads {:?}, commit every {} ms, broker {}",
        args.records,
        args.value_size,
        args.partitions,
        args.engines.iter().map(|e| e.name()).collect::<Vec<_>>(),
        args.workloads.iter().map(|w| w.name()).collect::<Vec<_>>(),
        args.commit_interval_ms,
        config.get("bootstrap.servers").unwrap_or("?")
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // One input for every workload, and a larger one of its own for the windowed
    // count when asked for (see `--windowed-records`).
    let mut inputs: Vec<(String, Expected)> = Vec::new();
    let windowed_records = args.windowed_records.unwrap_or(3 * args.records);
    let mut sizes = vec![args.records];
    if args.workloads.contains(&Workload::TumblingCount) && windowed_records != args.records {
        sizes.push(windowed_records);
    }
    for records in sizes {
        let input = unique("peers-input");
        runtime.block_on(create_topic(&config, &input, args.partitions))?;
        // Co-partitioned with the input (same partition count, same producer).
        runtime.block_on(create_topic_with(
            &config,
            &table_topic(&input),
            args.partitions,
            &[("cleanup.policy", "compact")],
        ))?;
        let expected = preload(&config, &input, &table_topic(&input), &args, records)?;
        inputs.push((input, expected));
    }
    let input_of = |workload: Workload| {
        let records = match workload {
            Workload::TumblingCount => windowed_records,
            _ => args.records,
        };
        inputs
            .iter()
            .find(|(_, expected)| expected.records == records)
            .unwrap_or(&inputs[0])
    };
    create_offsets_topic(&config, &inputs[0].0)?;
    let log_dir = std::env::temp_dir().join(unique("peers-logs"));
    std::fs::create_dir_all(&log_dir)?;
    tracing::info!(dir = %log_dir.display(), "engine logs");

    let mut results = Vec::new();
    for (w, &workload) in args.workloads.iter().enumerate() {
        // The engine that runs first rotates, so that none always meets a broker that
        // has just taken the others' (or the preload's) writes.
        for k in 0..args.engines.len() {
            let engine = args.engines[(w + k) % args.engines.len()];
            let (input, expected) = input_of(workload);
            results.push(run_one(
                &config, &args, engine, workload, input, expected, &log_dir,
            )?);
        }
    }
    // Reported in the order asked for.
    results.sort_by_key(|r| {
        (
            args.workloads.iter().position(|&w| w == r.workload),
            args.engines.iter().position(|&e| e == r.engine),
        )
    });

    let agreement = cross_check(&results, &args.workloads);
    let expected = &input_of(Workload::Stateless).1;
    let windowed = input_of(Workload::TumblingCount).1.records;

    let context = format!(
        "Command: `{}`. {} CPU(s); load average (1, 5, 15 min) at the start `{load_at_start}`, at the end `{}`{}.",
        std::env::args().skip(1).fold("peers".to_owned(), |c, a| c + " " + &a),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        if args.records < 1_000_000 {
            " (a small input: start-up and commit timing weigh on the figures; the full run is `bash scripts/bench.sh peers` on a quiet machine)"
        } else {
            ""
        }
    );
    std::fs::create_dir_all(&args.out_dir)?;
    let mut md = markdown(&results, &args, expected, windowed, &context);
    md.push_str("\nCross-check of the engines' results: ");
    md.push_str(&agreement.join("; "));
    md.push('\n');
    println!("\n{md}");
    let md_path = args.out_dir.join("peers.md");
    std::fs::write(&md_path, md)?;
    let png = chart(&results, &args)?;
    println!("\nwrote {} and {}", md_path.display(), png.display());
    let wrong: Vec<String> = results
        .iter()
        .filter(|r| !r.check.ok)
        .map(|r| {
            format!(
                "{} {}: {}",
                r.engine.name(),
                r.workload.name(),
                r.check.detail
            )
        })
        .collect();
    anyhow::ensure!(
        wrong.is_empty(),
        "wrong results (the benchmark fails): {}",
        wrong.join("; ")
    );
    anyhow::ensure!(
        agreement.iter().all(|l| !l.contains("DIFFER")),
        "the engines' results differ"
    );
    if let Err(e) = std::fs::remove_dir_all(&log_dir) {
        tracing::warn!(dir = %log_dir.display(), error = %e, "could not remove the engine logs");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Expected {
        Expected {
            records: 3,
            words: 3,
            kept: 2,
            kept_digest: record_hash(b"a", b"X").wrapping_add(record_hash(b"b", b"Y")),
            joined_digest: [(b"a", "x"), (b"b", "y"), (b"c", "z")]
                .iter()
                .fold(0, |d, (k, v)| {
                    d.wrapping_add(record_hash(*k, joined("plant-0", v).as_bytes()))
                }),
            word_counts: HashMap::from([("fu".to_owned(), 2), ("ka".to_owned(), 1)]),
            window_counts: HashMap::from([(("sensor-1".to_owned(), 5000), 3)]),
        }
    }

    #[test]
    fn stateless_output_is_checked_as_a_multiset_of_records() {
        let mut out = Outcome::Records {
            count: 0,
            digest: 0,
        };
        out.add(Engine::Ours, b"b", b"Y").unwrap();
        out.add(Engine::Ours, b"a", b"X").unwrap();
        assert!(out.check(&expected()).ok);
        out.add(Engine::Ours, b"a", b"X").unwrap();
        let check = out.check(&expected());
        assert!(!check.ok, "a duplicate must fail: {}", check.detail);
    }

    #[test]
    fn joined_output_needs_every_reading_with_its_plant() {
        let joined_output = |records: &[(&[u8], &[u8])]| {
            let mut out = Outcome::JoinedRecords {
                count: 0,
                digest: 0,
            };
            for (key, value) in records {
                out.add(Engine::Quix, key, value).unwrap();
            }
            out.check(&expected())
        };
        let (a, c) = (
            (&b"a"[..], &b"plant-0 x"[..]),
            (&b"c"[..], &b"plant-0 z"[..]),
        );
        let check = joined_output(&[c, a]);
        assert!(
            !check.ok,
            "a reading left unjoined must fail: {}",
            check.detail
        );
        let check = joined_output(&[c, a, (b"b", b"plant-1 y")]);
        assert!(!check.ok, "a wrong plant must fail: {}", check.detail);
        let check = joined_output(&[c, (b"b", b"plant-0 y"), a]);
        assert!(check.ok, "{}", check.detail);
    }

    #[test]
    fn word_counts_decode_each_engines_format_and_keep_the_last_update() {
        for (engine, one, two) in [
            (
                Engine::Ours,
                1_i64.to_be_bytes().to_vec(),
                2_i64.to_be_bytes().to_vec(),
            ),
            (
                Engine::KafkaStreams,
                1_i64.to_be_bytes().to_vec(),
                2_i64.to_be_bytes().to_vec(),
            ),
            (Engine::Quix, b"1".to_vec(), b"2".to_vec()),
        ] {
            let mut out = Outcome::WordCounts(HashMap::new());
            out.add(engine, b"fu", &one).unwrap();
            out.add(engine, b"ka", &one).unwrap();
            let check = out.check(&expected());
            assert!(!check.ok, "{engine:?}: fu is 1 of 2 so far");
            out.add(engine, b"fu", &two).unwrap();
            let check = out.check(&expected());
            assert!(check.ok, "{engine:?}: {}", check.detail);
        }
    }

    #[test]
    fn window_counts_decode_kafkas_windowed_key_and_quix_window_values() {
        let mut windowed_key = b"sensor-1".to_vec();
        windowed_key.extend_from_slice(&5000_i64.to_be_bytes());
        let mut ours = Outcome::WindowCounts(HashMap::new());
        ours.add(Engine::KafkaStreams, &windowed_key, &3_i64.to_be_bytes())
            .unwrap();
        let mut quix = Outcome::WindowCounts(HashMap::new());
        quix.add(
            Engine::Quix,
            b"sensor-1",
            br#"{"start": 5000, "end": 6000, "value": 3}"#,
        )
        .unwrap();
        let (a, b) = (ours.check(&expected()), quix.check(&expected()));
        assert!(a.ok && b.ok, "{} / {}", a.detail, b.detail);
        assert_eq!(a.digest, b.digest, "the same result digests the same");
        assert!(ours.add(Engine::Ours, b"short", &[0; 8]).is_err());
    }

    #[test]
    fn a_wrong_count_fails_and_says_which() {
        let mut out = Outcome::WordCounts(HashMap::new());
        out.add(Engine::Quix, b"fu", b"3").unwrap();
        out.add(Engine::Quix, b"ka", b"1").unwrap();
        out.add(Engine::Quix, b"zz", b"1").unwrap();
        let check = out.check(&expected());
        assert!(!check.ok);
        assert!(check.detail.contains("\"fu\""), "{}", check.detail);
        assert!(check.detail.contains("1 unexpected"), "{}", check.detail);
    }
}
