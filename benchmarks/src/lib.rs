//! Shared pieces of the benchmark binaries: broker connection, topic creation,
//! timing and ratio reporting, and the raw rdkafka consume->produce passthrough the
//! streams benchmarks compare against.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_client::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use kafka_client::rdkafka::client::{ClientContext, DefaultClientContext};
use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer as _};
use kafka_client::rdkafka::message::{BorrowedMessage, DeliveryResult};
use kafka_client::rdkafka::producer::{BaseProducer, BaseRecord, Producer as _, ProducerContext};
use kafka_client::rdkafka::types::RDKafkaErrorCode;
use kafka_client::rdkafka::{Message, Offset, TopicPartitionList};
use kafka_client::ClientConfig;
use kafka_streams::runtime::{KafkaStreams, State};

/// The broker under test: `KAFKA_BOOTSTRAP_SERVERS` (set by `scripts/bench.sh`).
///
/// `BENCH_CLIENT_PROPERTIES` (`key=value,key=value`) adds librdkafka properties to
/// every client of the run, raw baselines and ours alike, so that a tuning applies to
/// both sides of a ratio.
pub fn broker_config() -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::from_env().map_err(|e| {
        anyhow::anyhow!(
            "{e}: run the benchmarks with `bash scripts/bench.sh`, which starts a broker"
        )
    })?;
    if let Ok(extra) = std::env::var("BENCH_CLIENT_PROPERTIES") {
        for pair in extra.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("BENCH_CLIENT_PROPERTIES: {pair}: expected key=value")
            })?;
            config = config.set(key.trim(), value.trim());
        }
    }
    Ok(config)
}

/// Creates a topic and waits for the broker to confirm it.
pub async fn create_topic(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    create_topic_with(config, topic, partitions, &[]).await
}

/// [`create_topic`] with topic configs (`cleanup.policy=compact`, ...).
pub async fn create_topic_with(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
    topic_configs: &[(&str, &str)],
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = config.to_rdkafka().create()?;
    let new_topic = topic_configs.iter().fold(
        NewTopic::new(topic, partitions, TopicReplication::Fixed(1)),
        |t, (name, value)| t.set(name, value),
    );
    let results = admin
        .create_topics(
            [&new_topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for result in results {
        result.map_err(|(name, code)| anyhow::anyhow!("creating topic {name}: {code:?}"))?;
    }
    Ok(())
}

/// A name unique to this run.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{nanos}")
}

/// Throughput of one timed run.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Records processed.
    pub records: u64,
    /// Wall-clock time taken.
    pub elapsed: Duration,
}

impl Rate {
    /// Records per second.
    pub fn per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
}

/// The median of the rates, by records per second.
pub fn median(rates: &[Rate]) -> f64 {
    let mut values: Vec<f64> = rates.iter().map(Rate::per_second).collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Prints one comparison line and returns the ratio ours / baseline.
pub fn report(name: &str, ours: &[Rate], baseline: &[Rate], target: f64) -> f64 {
    let (o, b) = (median(ours), median(baseline));
    let ratio = o / b;
    println!(
        "{name:<44} ours {o:>12.0} rec/s   raw {b:>12.0} rec/s   ratio {ratio:.3}   (target >= {target})   {}",
        if ratio >= target { "OK" } else { "BELOW TARGET" }
    );
    ratio
}

/// Installs a `tracing` subscriber for progress lines (RUST_LOG, default info).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,librdkafka=warn")),
        )
        .try_init();
}

/// A producer context that counts acknowledged deliveries.
pub struct Counting(pub Arc<AtomicU64>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_ok() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Producer settings with the partitioner the streams runtime uses (Java-compatible),
/// so raw producers spread records the way a streams app does.
pub fn streams_producer_settings(config: &ClientConfig) -> ClientConfig {
    config.clone().set("partitioner", "murmur2_random")
}

/// Sends `record`, letting the producer drain its queue while it is full.
pub fn send_blocking<C: ProducerContext>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
) -> anyhow::Result<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Records in `topic`: the sum of its partitions' high watermarks minus low ones.
pub fn records_in(probe: &BaseConsumer, topic: &str, partitions: i32) -> anyhow::Result<u64> {
    let mut total = 0_u64;
    for p in 0..partitions {
        let (low, high) = watermarks(probe, topic, p)?;
        total += (high - low).max(0) as u64;
    }
    Ok(total)
}

/// The partition's watermarks. A topic created a moment ago may not have a leader yet
/// (`NotLeaderForPartition`), so that is asked again for up to 10 s.
pub fn watermarks(probe: &BaseConsumer, topic: &str, partition: i32) -> anyhow::Result<(i64, i64)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match probe.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::NotLeaderForPartition
                            | RDKafkaErrorCode::LeaderNotAvailable
                    )
                ) && Instant::now() < deadline =>
            {
                tracing::debug!(topic, partition, "no leader yet; asking again");
                std::thread::sleep(Duration::from_millis(100));
            }
            result => return Ok(result?),
        }
    }
}

/// One run timed two ways, both ending when the last record is out:
/// - `total`: from the start (client creation, group join, first fetch);
/// - `steady`: from the first moment the output held records, over the records
///   written after it. This is the throughput once running, without the start-up,
///   which differs between a bare consumer and a streams app (internal clients,
///   topic checks) and would otherwise dominate runs of a few seconds.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// From the start to the last record.
    pub total: Rate,
    /// From the first output seen to the last record.
    pub steady: Rate,
}

impl Timings {
    /// The steady-state rates of `runs`.
    pub fn steady(runs: &[Timings]) -> Vec<Rate> {
        runs.iter().map(|t| t.steady).collect()
    }

    /// The from-the-start rates of `runs`.
    pub fn total(runs: &[Timings]) -> Vec<Rate> {
        runs.iter().map(|t| t.total).collect()
    }

    /// Logs one finished run of `side` in `round`.
    pub fn log(&self, round: usize, side: &str) {
        tracing::info!(
            round,
            side,
            steady_rate = self.steady.per_second() as u64,
            total_rate = self.total.per_second() as u64,
            secs = self.total.elapsed.as_secs_f64(),
            "run done"
        );
    }
}

/// A streams app's timings: `timings.steady` ends when the last record is processed
/// (with a record cache) or is in the output (without), `published` (over the same
/// records, from the same start) when the output holds the result; `timings.total`
/// runs from the start to `published`'s end.
#[derive(Debug, Clone, Copy)]
pub struct CountTimings {
    /// Steady state and from the start.
    pub timings: Timings,
    /// From the first record processed until the result is in the output.
    pub published: Rate,
}

impl CountTimings {
    /// Logs one finished run of `side` in `round`.
    pub fn log(&self, round: usize, side: &str) {
        self.timings.log(round, side);
    }
}

/// A started streams app under test and when its run is over.
pub struct StreamsRun<'a> {
    /// The app.
    pub streams: &'a KafkaStreams,
    /// A consumer to read the output's high watermarks with.
    pub probe: &'a BaseConsumer,
    /// The output topic.
    pub output: &'a str,
    /// Its partitions.
    pub partitions: i32,
    /// Input records of the run, which the rates count.
    pub input_records: u64,
    /// Records the app must process (input records, plus any read back from
    /// repartition topics).
    pub to_process: u64,
    /// Records the output must then hold (0: any number, a cache folds updates).
    pub to_output: u64,
    /// Whether the app has a record cache: then its result is only out once the
    /// commit after the last record (which flushes the caches) is done.
    pub caching: bool,
    /// What the app is, for log lines and errors.
    pub what: &'a str,
}

/// Polls `run`'s app (every 10 ms) from `started` until it has processed every record
/// (the end of the steady state with a cache) and its output holds the result (every
/// update without a cache: the end of the steady state then; with a cache, what the
/// commit after the last record flushed), or `deadline`.
pub fn watch_streams(
    run: &StreamsRun<'_>,
    started: Instant,
    deadline: Instant,
) -> anyhow::Result<CountTimings> {
    let mut commits_when_processed: Option<u64> = None;
    let mut processed_at: Option<Instant> = None;
    let mut last_log = Instant::now();
    let mut written = 0;
    // When the app had first processed something, and how much: the start of the
    // steady-state timing.
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let state = run.streams.state();
        if state == State::Error {
            anyhow::bail!("the {} failed: {:?}", run.what, run.streams.error());
        }
        let metrics = run.streams.metrics();
        let processed = metrics.processed_records;
        if first.is_none() && processed > 0 {
            first = Some((Instant::now(), processed));
        }
        if processed >= run.to_process && written < run.to_output {
            written = records_in(run.probe, run.output, run.partitions)?;
        }
        if processed >= run.to_process && commits_when_processed.is_none() {
            commits_when_processed = Some(metrics.commits);
            processed_at = Some(Instant::now());
        }
        let flushed = !run.caching || commits_when_processed.is_some_and(|c| metrics.commits > c);
        if processed >= run.to_process && written >= run.to_output && flushed {
            let now = Instant::now();
            let total = Rate {
                records: run.input_records,
                elapsed: now - started,
            };
            // Input records in the steady part: the share of the work done after
            // `first`, in input records.
            let since_first = |end: Instant| match first {
                Some((at, seen)) if seen < run.to_process => Rate {
                    records: (run.input_records as f64 * (run.to_process - seen) as f64
                        / run.to_process as f64) as u64,
                    elapsed: end - at,
                },
                _ => total,
            };
            // Without a cache the output is written as records are processed, so
            // the steady state ends, as the passthrough's does, with the output.
            let steady_end = match processed_at {
                Some(at) if run.caching => at,
                _ => now,
            };
            return Ok(CountTimings {
                timings: Timings {
                    total,
                    steady: since_first(steady_end),
                },
                published: since_first(now),
            });
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the {} timed out: {processed} of {} records processed, {written} of {} in the output ({state:?})",
                run.what,
                run.to_process,
                run.to_output
            );
        }
        if last_log.elapsed() >= Duration::from_secs(5) {
            tracing::info!(
                what = run.what,
                processed,
                to_process = run.to_process,
                ?state,
                "in progress"
            );
            last_log = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls the high watermarks of `output` (every 5 ms) until they add up to
/// `expected`, and times the run from `started` both ways (see [`Timings`]).
/// `check` runs before each poll; its error (the app under test failed) ends the
/// watch.
pub fn watch_output(
    probe: &BaseConsumer,
    output: &str,
    partitions: i32,
    expected: u64,
    started: Instant,
    deadline: Instant,
    mut check: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Timings> {
    let mut first: Option<(Instant, u64)> = None;
    let mut last_log = Instant::now();
    loop {
        check()?;
        let written = records_in(probe, output, partitions)?;
        let now = Instant::now();
        if first.is_none() && written > 0 {
            first = Some((now, written));
        }
        if written >= expected {
            if written > expected {
                tracing::warn!(
                    output,
                    written,
                    expected,
                    "the output holds more records than the input"
                );
            }
            let total = Rate {
                records: expected,
                elapsed: now - started,
            };
            let steady = match first {
                Some((at, seen)) if seen < expected => Rate {
                    records: expected - seen,
                    elapsed: now - at,
                },
                _ => total,
            };
            return Ok(Timings { total, steady });
        }
        anyhow::ensure!(
            now < deadline,
            "timed out: {written} of {expected} records in {output}"
        );
        if last_log.elapsed() >= Duration::from_secs(5) {
            tracing::info!(output, written, expected, "run in progress");
            last_log = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Raw passthrough: a `BaseConsumer` with a fresh group reads `input` from the
/// beginning and a `BaseProducer` sends every record unchanged to `output` (on a
/// thread of its own), timed by [`watch_output`] as the streams apps are. Blocking.
pub fn raw_passthrough(
    config: &ClientConfig,
    input: &str,
    output: &str,
    partitions: i32,
    expected: u64,
    timeout: Duration,
) -> anyhow::Result<Timings> {
    raw_passthrough_of(config, &[input], output, partitions, expected, timeout)
}

/// [`raw_passthrough`] reading several input topics (one consumer subscribed to all):
/// `expected` counts the records of all of them.
pub fn raw_passthrough_of(
    config: &ClientConfig,
    inputs: &[&str],
    output: &str,
    partitions: i32,
    expected: u64,
    timeout: Duration,
) -> anyhow::Result<Timings> {
    let started = Instant::now();
    let deadline = started + timeout;
    let probe: BaseConsumer = config.to_rdkafka().create()?;
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicBool::new(false));
    let worker = {
        let (config, output) = (config.clone(), output.to_owned());
        let inputs: Vec<String> = inputs.iter().map(|t| (*t).to_owned()).collect();
        let (stop, failed) = (stop.clone(), failed.clone());
        std::thread::spawn(move || {
            let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            let result = passthrough_loop(&config, &inputs, &output, expected, deadline, &stop);
            failed.store(result.is_err(), Ordering::Relaxed);
            result
        })
    };
    let watched = watch_output(
        &probe,
        output,
        partitions,
        expected,
        started,
        deadline,
        || {
            anyhow::ensure!(
                !failed.load(Ordering::Relaxed),
                "the raw passthrough failed"
            );
            Ok(())
        },
    );
    stop.store(true, Ordering::Relaxed);
    let worked = worker
        .join()
        .map_err(|_| anyhow::anyhow!("the raw passthrough thread panicked"))?;
    worked?;
    watched
}

/// The clients of a raw rdkafka consume -> produce loop: a producer with the streams
/// producer's settings that counts acknowledged records, and a consumer of a fresh
/// group reading from the earliest offset, committing only when told.
pub struct RawClients {
    /// The producer.
    pub producer: BaseProducer<Counting>,
    /// Records the producer has had acknowledged.
    pub delivered: Arc<AtomicU64>,
    /// The consumer.
    pub consumer: BaseConsumer,
}

impl RawClients {
    /// Both clients; the group id is `group_prefix` made unique.
    pub fn new(config: &ClientConfig, group_prefix: &str) -> anyhow::Result<Self> {
        let delivered = Arc::new(AtomicU64::new(0));
        let producer = streams_producer_settings(config)
            .to_rdkafka()
            .create_with_context(Counting(delivered.clone()))?;
        let consumer = config
            .clone()
            .group_id(unique(group_prefix))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .to_rdkafka()
            .create()?;
        Ok(RawClients {
            producer,
            delivered,
            consumer,
        })
    }
}

/// The raw passthrough's consume -> produce loop, until `expected` records are
/// acknowledged (or `stop`).
fn passthrough_loop(
    config: &ClientConfig,
    inputs: &[&str],
    output: &str,
    expected: u64,
    deadline: Instant,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let RawClients {
        producer,
        delivered,
        consumer,
    } = RawClients::new(config, "bench-raw-passthrough")?;
    consumer.subscribe(inputs)?;
    let mut consumed = 0_u64;
    while delivered.load(Ordering::Relaxed) < expected && !stop.load(Ordering::Relaxed) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "raw passthrough timed out: {} of {expected} acknowledged",
            delivered.load(Ordering::Relaxed)
        );
        if consumed >= expected {
            producer.poll(Duration::from_millis(5));
            continue;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let mut record = BaseRecord::to(output);
                if let Some(key) = message.key() {
                    record = record.key(key);
                }
                if let Some(payload) = message.payload() {
                    record = record.payload(payload);
                }
                if let Some(ts) = message.timestamp().to_millis() {
                    record = record.timestamp(ts);
                }
                send_blocking(&producer, record)?;
                consumed += 1;
                if consumed.is_multiple_of(1000) {
                    producer.poll(Duration::ZERO);
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "raw passthrough: consumer error"),
            None => {
                producer.poll(Duration::ZERO);
            }
        }
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

/// splitmix64: a small deterministic generator (no extra dependency).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// Uniform in `[0, n)`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// `n` distinct made-up words of 1 to 4 syllables (the index makes them distinct).
pub fn vocabulary(n: usize, rng: &mut Rng) -> Vec<String> {
    const SYLLABLES: &[&str] = &[
        "ka", "fu", "ren", "to", "mi", "sal", "vor", "e", "lin", "dra", "po", "quel", "ti", "ar",
        "nu", "bes", "go", "cha", "is", "mon", "ze", "ul", "pra", "do",
    ];
    (0..n)
        .map(|i| {
            let mut word = String::new();
            for _ in 0..=rng.below(4) {
                word.push_str(SYLLABLES[rng.below(SYLLABLES.len())]);
            }
            // Base-26 suffix from the index keeps the words distinct.
            let mut k = i;
            loop {
                word.push(char::from(b'a' + (k % 26) as u8));
                k /= 26;
                if k == 0 {
                    break;
                }
            }
            word
        })
        .collect()
}

/// A ~`size`-byte sentence: skewed word choice (low indices are common), a capital
/// first letter, some capitalised words and punctuation.
pub fn sentence(words: &[String], size: usize, rng: &mut Rng) -> String {
    let mut s = String::with_capacity(size + 16);
    while s.len() + 2 < size {
        let u = rng.unit();
        let word = &words[((u * u * words.len() as f64) as usize).min(words.len() - 1)];
        if !s.is_empty() {
            s.push(if rng.below(12) == 0 { ',' } else { ' ' });
            if s.ends_with(',') {
                s.push(' ');
            }
        }
        if s.is_empty() || rng.below(10) == 0 {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                s.extend(first.to_uppercase());
                s.push_str(chars.as_str());
            }
        } else {
            s.push_str(word);
        }
    }
    s.push('.');
    s
}

/// The lowercase words of `line` (what the app counts).
pub fn words(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The producer that fills a benchmark's input topic once (the streams producer's
/// partitioner, `linger.ms=5`), counting acknowledged records.
pub struct Preloader {
    producer: BaseProducer<Counting>,
    delivered: Arc<AtomicU64>,
    sent: u64,
    started: Instant,
}

impl Preloader {
    /// A producer for `config`'s broker.
    pub fn new(config: &ClientConfig) -> anyhow::Result<Self> {
        let delivered = Arc::new(AtomicU64::new(0));
        let producer = streams_producer_settings(config)
            .set("linger.ms", "5")
            .to_rdkafka()
            .create_with_context(Counting(delivered.clone()))?;
        Ok(Preloader {
            producer,
            delivered,
            sent: 0,
            started: Instant::now(),
        })
    }

    /// Sends one record (waiting while the local queue is full).
    pub fn send(&mut self, record: BaseRecord<'_, [u8], [u8]>) -> anyhow::Result<()> {
        send_blocking(&self.producer, record)?;
        if self.sent.is_multiple_of(1000) {
            self.producer.poll(Duration::ZERO);
        }
        self.sent += 1;
        Ok(())
    }

    /// Records sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Waits until every record sent is acknowledged; returns the time since
    /// [`Preloader::new`].
    pub fn finish(self) -> anyhow::Result<Duration> {
        self.producer.flush(Duration::from_secs(300))?;
        let acked = self.delivered.load(Ordering::Relaxed);
        anyhow::ensure!(
            acked == self.sent,
            "only {acked} of {} input records were acknowledged",
            self.sent
        );
        Ok(self.started.elapsed())
    }
}

/// A consumer of a fresh group that never commits (nor joins the group unless it
/// subscribes): for reading topics and looking up offsets.
pub fn probe_consumer(config: &ClientConfig, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(config
        .clone()
        .group_id(group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .to_rdkafka()
        .create()?)
}

/// All of a topic, up to the high watermarks looked up when this was made.
pub struct TopicToEnd {
    consumer: BaseConsumer,
    topic: String,
    /// Partitions with records, from their low watermark.
    start: TopicPartitionList,
    /// The high watermark of each partition still to be read.
    ends: HashMap<i32, i64>,
}

impl TopicToEnd {
    /// Looks up the watermarks of `topic`'s `partitions` for a consumer of a fresh
    /// group named after `group_prefix`.
    pub fn new(
        config: &ClientConfig,
        group_prefix: &str,
        topic: &str,
        partitions: i32,
    ) -> anyhow::Result<Self> {
        let consumer = probe_consumer(config, &unique(group_prefix))?;
        let mut ends = HashMap::new();
        let mut start = TopicPartitionList::new();
        for p in 0..partitions {
            let (low, high) = watermarks(&consumer, topic, p)?;
            if high > low {
                ends.insert(p, high);
                start.add_partition_offset(topic, p, Offset::Offset(low))?;
            }
        }
        Ok(TopicToEnd {
            consumer,
            topic: topic.to_owned(),
            start,
            ends,
        })
    }

    /// Assigns the partitions and hands every record up to the watermarks to
    /// `on_record`, until then or `deadline`; returns the records read.
    pub fn read(
        mut self,
        deadline: Instant,
        mut on_record: impl FnMut(&BorrowedMessage<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<u64> {
        self.consumer.assign(&self.start)?;
        let mut records = 0_u64;
        while !self.ends.is_empty() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "reading {} timed out after {records} records; partitions left (to their high watermarks): {:?}",
                self.topic,
                self.ends
            );
            let Some(message) = self.consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let message = message?;
            records += 1;
            if self
                .ends
                .get(&message.partition())
                .is_some_and(|&end| message.offset() + 1 >= end)
            {
                self.ends.remove(&message.partition());
            }
            on_record(&message)?;
        }
        Ok(records)
    }
}

/// A state directory under the system temp dir, fresh (`prefix` made unique) and
/// removed when dropped.
pub struct StateDir(std::path::PathBuf);

impl StateDir {
    /// A new, not yet created, directory named after `prefix`.
    pub fn fresh(prefix: &str) -> Self {
        StateDir(std::env::temp_dir().join(unique(prefix)))
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
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

/// [`watch_output`] for a started streams app, failing early if the app fails, then
/// closes the app (whatever the outcome).
#[allow(clippy::too_many_arguments)]
pub fn watch_streams_output(
    streams: &kafka_streams::runtime::KafkaStreams,
    probe: &BaseConsumer,
    output: &str,
    partitions: i32,
    expected: u64,
    started: Instant,
    deadline: Instant,
) -> anyhow::Result<Timings> {
    let result = watch_output(
        probe,
        output,
        partitions,
        expected,
        started,
        deadline,
        || {
            anyhow::ensure!(
                streams.state() != kafka_streams::runtime::State::Error,
                "the streams app failed: {:?}",
                streams.error()
            );
            Ok(())
        },
    );
    if !streams.close() {
        tracing::warn!("the streams app did not close within the timeout");
    }
    result
}
