//! A stateful kafka-streams app (word count into a logged RocksDB store) and the
//! restore of its store, each against raw rdkafka on the same broker in the same run.
//!
//! - Input: `--sentences` sentences of ~`--sentence-size` bytes, words drawn (skewed,
//!   deterministic RNG) from a vocabulary of `--vocabulary` made-up words with mixed
//!   case, produced once into a topic with `--partitions` partitions.
//! - Raw passthrough: a `BaseConsumer` with a fresh group reads the input from the
//!   beginning and a `BaseProducer` sends every record unchanged to a fresh topic;
//!   timed until the output's high watermarks hold every record.
//! - Word count: a `KafkaStreams` app (fresh `application.id`, fresh state dir)
//!   running `flat_map_values` (lowercase words) + `group_by` (word) + `count` into the
//!   RocksDB store `word-counts`, `.to_stream().to(output)`, run twice per round:
//!   - cached (Kafka's default, `--cache-max-bytes`): updates are folded per key
//!     between commits before they reach the changelog and the output. Its steady
//!     state runs from the first record processed until every sentence and
//!     repartitioned word is processed: the throughput compared with the
//!     passthrough. The run goes on until the commit after that (which flushes the
//!     cache) is done and is also timed to there ("published"), but that end falls
//!     on the commit-interval grid: it adds up to `--commit-interval-ms` of waiting
//!     that has nothing to do with throughput (with Kafka's default of 30 s it would
//!     be most of the run), and hides any change smaller than one interval;
//!   - without a cache: every update reaches the changelog
//!     `<application.id>-word-counts-changelog` and the output (one record per
//!     word); timed until the output holds them all. Its changelog feeds the restore.
//! - Raw word count: the same word count hand-written on raw rdkafka (one consumer,
//!   a `HashMap` of counts, the changed counts emitted and offsets committed every
//!   `--commit-interval-ms`), timed like the cached word count (steady state until
//!   every record is processed; published at the commit after that): the ceiling of
//!   a word count that repartitions through the broker, without a store or
//!   changelog.
//! - Raw changelog consume: a `BaseConsumer` assigned every changelog partition from
//!   its start, timed from the assignment until it has read up to the high
//!   watermarks (the restore's timing starts after the same watermark look-up).
//! - Restore: a second `KafkaStreams` instance of the same application with a new,
//!   empty state dir and a `StateRestoreListener`; timed from the first
//!   `on_restore_start` to the last `on_restore_end`, over the records restored.
//!
//! - With `--exactly-once`: the cached word count again, under
//!   `processing.guarantee=exactly_once_v2` (same commit interval, same broker, same
//!   round), and the ratio of the two.
//!
//! Throughputs are records per second: input sentences for the first pair, changelog
//! records for the second. The first pair is timed two ways: in steady state (from
//! the first record out, or processed, until the last one is; the figure the target
//! applies to) and from the start until the output holds the result (client
//! creation, group join, internal topics and the last commit included), also
//! printed. Targets: word count >= 0.4x the passthrough, restore >=
//! 0.8x the raw consume. Rounds repeat all four measurements on fresh topics and
//! applications (same input); the medians are compared.
//!
//! The whole process runs on jemalloc (the `jemalloc` feature, on by default), C
//! libraries included; `BENCH_CARGO_ARGS=--no-default-features` runs it on glibc's
//! malloc.
//!
//! ```text
//! bash scripts/bench.sh streams_state -- --sentences 200000 --rounds 3
//! # exactly_once_v2 against at_least_once
//! bash scripts/bench.sh streams_state -- --sentences 200000 --rounds 3 --exactly-once
//! # the figures in the notes: one word per sentence, long enough that the last
//! # commit-interval wait does not dominate
//! bash scripts/bench.sh streams_state -- --sentences 4000000 --sentence-size 3 --rounds 3 --client fetch.queue.backoff.ms=10
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// jemalloc serves every allocation of the process, librdkafka's and RocksDB's too,
/// on both sides of every comparison. With glibc's malloc, the stream thread freeing
/// fetch buffers that librdkafka's broker thread allocated contends on that thread's
/// arena lock; build with `--no-default-features` to measure that.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::Parser;
use kafka_benchmarks::{
    broker_config, create_topic, init_tracing, median, raw_passthrough, records_in, report,
    send_blocking, sentence, unique, vocabulary, watch_streams, words, CountTimings, Preloader,
    Rate, RawClients, Rng, StreamsRun, Timings, TopicToEnd,
};
use kafka_client::rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use kafka_client::rdkafka::producer::BaseRecord;
use kafka_client::rdkafka::{Message, Offset, TopicPartitionList};
use kafka_client::ClientConfig;
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::runtime::{KafkaStreams, ProcessingGuarantee, State, StreamsConfig};
use kafka_streams::state::{ChangelogPartition, StateRestoreListener};
use kafka_streams::topology::Topology;

/// The word count's store (its changelog is `<application.id>-word-counts-changelog`).
const STORE: &str = "word-counts";

#[derive(Parser, Debug)]
struct Args {
    /// Input sentences (each word count run processes all of them).
    #[arg(long, default_value_t = 200_000)]
    sentences: u64,
    /// Approximate sentence size in bytes.
    #[arg(long, default_value_t = 100)]
    sentence_size: usize,
    /// Distinct words the sentences are drawn from.
    #[arg(long, default_value_t = 4000)]
    vocabulary: usize,
    /// Seed of the sentence generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Runs of each measurement (medians are compared).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Partitions of the input and output topics (the repartition and changelog
    /// topics get as many).
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// `num.stream.threads` of the streams apps.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// `commit.interval.ms` of the streams apps.
    #[arg(long, default_value_t = 1000)]
    commit_interval_ms: u64,
    /// `statestore.cache.max.bytes` of the cached word count (Kafka's default 10 MiB).
    #[arg(long, default_value_t = 10 << 20)]
    cache_max_bytes: usize,
    /// Extra Kafka Streams or client properties for the streams apps, `key=value`
    /// (repeatable), e.g. `--set max.poll.records=5000`.
    #[arg(long = "set", value_parser = parse_key_value)]
    properties: Vec<(String, String)>,
    /// librdkafka properties for every client of the run, raw and streams alike,
    /// `key=value` (repeatable), e.g. `--client queued.min.messages=1000000`.
    #[arg(long = "client", value_parser = parse_key_value)]
    client_properties: Vec<(String, String)>,
    /// Also run the cached word count under `processing.guarantee=exactly_once_v2`
    /// each round, and compare it with the at-least-once one.
    #[arg(long)]
    exactly_once: bool,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s}: expected key=value"))
}

/// Fills the input topic once; returns the number of words in it.
fn pre_produce(config: &ClientConfig, topic: &str, args: &Args) -> anyhow::Result<u64> {
    anyhow::ensure!(args.vocabulary >= 1, "--vocabulary must be at least 1");
    let mut rng = Rng(args.seed);
    let vocabulary = vocabulary(args.vocabulary, &mut rng);
    let mut preloader = Preloader::new(config)?;
    let (mut word_count, mut bytes) = (0_u64, 0_u64);
    for i in 0..args.sentences {
        let key = format!("doc-{}", i % 1000);
        let line = sentence(&vocabulary, args.sentence_size, &mut rng);
        word_count += words(&line).len() as u64;
        bytes += line.len() as u64;
        preloader.send(
            BaseRecord::to(topic)
                .key(key.as_bytes())
                .payload(line.as_bytes()),
        )?;
    }
    let secs = preloader.finish()?.as_secs_f64();
    tracing::info!(
        topic,
        sentences = args.sentences,
        words = word_count,
        avg_bytes = bytes / args.sentences.max(1),
        secs,
        "input topic filled"
    );
    Ok(word_count)
}

/// The word count topology (the same for the counting and the restoring instance).
fn word_count_topology(input: &str, output: &str, caching: bool) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    let store = Materialized::as_(STORE);
    let store = if caching {
        store
    } else {
        store.with_caching_disabled()
    };
    builder
        .stream::<String, String>(input)
        .flat_map_values(|line| words(&line))
        .group_by(|_, word| word.clone())
        .count_with(store)
        .to_stream()
        .to(output);
    Ok(builder.build()?)
}

/// A state dir removed when dropped.
struct StateDir(PathBuf);

impl StateDir {
    fn fresh() -> Self {
        StateDir(std::env::temp_dir().join(unique("bench-streams-state")))
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

/// What one streams instance needs.
struct App<'a> {
    config: &'a ClientConfig,
    application_id: &'a str,
    input: &'a str,
    output: &'a str,
    args: &'a Args,
}

impl App<'_> {
    fn streams_config(&self, state_dir: &Path) -> anyhow::Result<StreamsConfig> {
        let mut config = StreamsConfig::new(self.application_id, self.config.clone())
            .num_stream_threads(self.args.threads)
            .commit_interval(Duration::from_millis(self.args.commit_interval_ms))
            .state_dir(state_dir);
        for (key, value) in &self.args.properties {
            config = config.set(key, value)?;
        }
        Ok(config)
    }
}

/// Closes `streams` and logs its counters.
fn close(streams: &KafkaStreams, what: &str) {
    if !streams.close() {
        tracing::warn!(what, "the streams app did not close within the timeout");
    }
    let metrics = streams.metrics();
    tracing::info!(
        what,
        processed = metrics.processed_records,
        produced = metrics.produced_records,
        commits = metrics.commits,
        "streams app closed"
    );
}

/// A hand-written word count on raw rdkafka, the ceiling for any word count that
/// repartitions through the broker: one `BaseConsumer` reads the input and a fresh
/// repartition topic; each sentence's words go to the repartition topic keyed by
/// word (the streams producer's partitioner); each repartitioned word bumps a
/// `HashMap` count; every commit interval the counts changed since the last one go to
/// the output (8-byte big-endian, as the streams app writes them), the producer is
/// flushed and the offsets committed. No state store, changelog or checkpoint: the
/// work the streams app adds on top of this is what the comparison shows.
///
/// Timed like the cached streams word count: in steady state from the first record
/// consumed until every sentence and word is processed, and published at the commit
/// after that.
fn raw_word_count(
    config: &ClientConfig,
    input: &str,
    repartition: &str,
    output: &str,
    word_total: u64,
    args: &Args,
) -> anyhow::Result<CountTimings> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let commit_interval = Duration::from_millis(args.commit_interval_ms);
    let RawClients {
        producer, consumer, ..
    } = RawClients::new(config, "bench-raw-wordcount")?;
    consumer.subscribe(&[input, repartition])?;
    let to_process = args.sentences + word_total;
    // Each word's count, and whether it changed since the last commit.
    let mut counts: HashMap<String, (i64, bool)> = HashMap::new();
    let mut dirty: Vec<String> = Vec::new();
    let mut offsets: HashMap<(bool, i32), i64> = HashMap::new();
    let (mut processed, mut first) = (0_u64, None::<(Instant, u64)>);
    let mut processed_at = None::<Instant>;
    let mut last_commit = Instant::now();
    loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "raw word count timed out: {processed} of {to_process} records processed"
        );
        if last_commit.elapsed() >= commit_interval {
            let complete = processed >= to_process;
            for word in dirty.drain(..) {
                let Some((count, changed)) = counts.get_mut(&word) else {
                    continue;
                };
                *changed = false;
                let count = *count;
                send_blocking(
                    &producer,
                    BaseRecord::to(output)
                        .key(word.as_bytes())
                        .payload(&count.to_be_bytes()[..]),
                )?;
            }
            // As the streams runtime flushes (rdkafka's `flush` waits 100 ms slices out).
            kafka_client::producer::flush_promptly(&producer, Duration::from_secs(30))?;
            let mut tpl = TopicPartitionList::new();
            for (&(from_input, partition), &offset) in &offsets {
                let topic = if from_input { input } else { repartition };
                tpl.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
            }
            if tpl.count() > 0 {
                consumer.commit(&tpl, CommitMode::Sync)?;
            }
            last_commit = Instant::now();
            if complete {
                break;
            }
        }
        match consumer.poll(Duration::from_millis(5)) {
            Some(Ok(message)) => {
                let from_input = message.topic() == input;
                offsets.insert((from_input, message.partition()), message.offset());
                processed += 1;
                if first.is_none() {
                    first = Some((Instant::now(), processed));
                }
                if processed == to_process {
                    processed_at = Some(Instant::now());
                }
                let text = message
                    .payload()
                    .map(std::str::from_utf8)
                    .transpose()?
                    .unwrap_or_default();
                if from_input {
                    for word in words(text) {
                        send_blocking(
                            &producer,
                            BaseRecord::to(repartition)
                                .key(word.as_bytes())
                                .payload(word.as_bytes()),
                        )?;
                    }
                } else {
                    let entry = match counts.get_mut(text) {
                        Some(entry) => entry,
                        None => counts.entry(text.to_owned()).or_insert((0, false)),
                    };
                    entry.0 += 1;
                    if !entry.1 {
                        entry.1 = true;
                        dirty.push(text.to_owned());
                    }
                }
                if processed.is_multiple_of(1000) {
                    producer.poll(Duration::ZERO);
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "raw word count: consumer error"),
            None => {
                producer.poll(Duration::ZERO);
            }
        }
    }
    let now = Instant::now();
    let total = Rate {
        records: args.sentences,
        elapsed: now - started,
    };
    let since_first = |end: Instant| match first {
        Some((at, _)) => Rate {
            records: args.sentences,
            elapsed: end - at,
        },
        None => total,
    };
    Ok(CountTimings {
        timings: Timings {
            total,
            steady: since_first(processed_at.unwrap_or(now)),
        },
        published: since_first(now),
    })
}

/// The word count, timed from `start()` until it has processed every sentence and
/// every repartitioned word (steady state, cached), and until the output holds the
/// result: every count update (caching off; also its steady state), or the final
/// counts flushed by the commit after the last record (cached).
fn word_count(
    app: &App<'_>,
    words: u64,
    caching: bool,
    guarantee: ProcessingGuarantee,
) -> anyhow::Result<CountTimings> {
    let args = app.args;
    let state_dir = StateDir::fresh();
    let streams = KafkaStreams::new(
        word_count_topology(app.input, app.output, caching)?,
        app.streams_config(state_dir.path())?
            .cache_max_bytes(if caching { args.cache_max_bytes } else { 0 })
            .processing_guarantee(guarantee),
    )?;
    let probe: BaseConsumer = app.config.to_rdkafka().create()?;
    let started = Instant::now();
    streams.start()?;
    let result = watch_streams(
        &StreamsRun {
            streams: &streams,
            probe: &probe,
            output: app.output,
            partitions: args.partitions,
            input_records: args.sentences,
            // Every sentence, then every word read back from the repartition topic.
            to_process: args.sentences + words,
            // Without a cache every update is in the output; with one, the final
            // counts are once the commit after the last record is done.
            to_output: if caching { 0 } else { words },
            caching,
            what: "word count",
        },
        started,
        started + Duration::from_secs(args.timeout_secs),
    );
    close(&streams, "word count");
    result
}

/// Restore events of the store, as seen by the listener.
#[derive(Debug, Default)]
struct RestoreLog {
    first_start: Option<Instant>,
    last_end: Option<Instant>,
    started: u32,
    ended: u32,
    to_restore: u64,
    restored: u64,
    batches: u64,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<RestoreLog>>);

impl Recorder {
    fn log(&self) -> MutexGuard<'_, RestoreLog> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StateRestoreListener for Recorder {
    fn on_restore_start(&self, _: &ChangelogPartition, store: &str, start: i64, end: i64) {
        if store == STORE {
            let mut log = self.log();
            log.first_start.get_or_insert_with(Instant::now);
            log.started += 1;
            log.to_restore += u64::try_from(end - start).unwrap_or(0);
        }
    }

    fn on_batch_restored(&self, _: &ChangelogPartition, store: &str, _: i64, _: u64) {
        if store == STORE {
            self.log().batches += 1;
        }
    }

    fn on_restore_end(&self, _: &ChangelogPartition, store: &str, total_restored: u64) {
        if store == STORE {
            let mut log = self.log();
            log.last_end = Some(Instant::now());
            log.ended += 1;
            log.restored += total_restored;
        }
    }
}

/// A second instance of the application with an empty state dir: times the restore
/// of every changelog partition (first start to last end, by the listener).
fn restore(app: &App<'_>, changelog_partitions: i32) -> anyhow::Result<Rate> {
    let timeout = Duration::from_secs(app.args.timeout_secs);
    let state_dir = StateDir::fresh();
    let recorder = Recorder::default();
    let streams = KafkaStreams::new(
        word_count_topology(app.input, app.output, false)?,
        app.streams_config(state_dir.path())?
            .state_restore_listener(recorder.clone()),
    )?;
    let started = Instant::now();
    let deadline = started + timeout;
    streams.start()?;
    let mut running_after = None;
    let mut last_log = Instant::now();
    let result = loop {
        let state = streams.state();
        if state == State::Error {
            break Err(anyhow::anyhow!(
                "the restoring instance failed: {:?}",
                streams.error()
            ));
        }
        if state == State::Running && running_after.is_none() {
            running_after = Some(started.elapsed());
        }
        let log = recorder.log();
        if log.ended >= changelog_partitions as u32 {
            let (Some(first), Some(last)) = (log.first_start, log.last_end) else {
                break Err(anyhow::anyhow!("restore ended without starting: {log:?}"));
            };
            tracing::info!(
                partitions = log.ended,
                restored = log.restored,
                to_restore = log.to_restore,
                batches = log.batches,
                start_to_first_restore_secs =
                    first.saturating_duration_since(started).as_secs_f64(),
                restore_secs = last.saturating_duration_since(first).as_secs_f64(),
                "restore done"
            );
            break Ok(Rate {
                records: log.restored,
                elapsed: last.saturating_duration_since(first),
            });
        }
        if Instant::now() >= deadline {
            break Err(anyhow::anyhow!(
                "the restore timed out ({state:?}): {log:?}"
            ));
        }
        if last_log.elapsed() >= Duration::from_secs(5) {
            tracing::info!(
                ?state,
                partitions_started = log.started,
                partitions_ended = log.ended,
                to_restore = log.to_restore,
                batches = log.batches,
                "restore in progress"
            );
            last_log = Instant::now();
        }
        drop(log);
        std::thread::sleep(Duration::from_millis(5));
    };
    // Running is reached only once restoring is over (or, with a non-blocking
    // restore, possibly before): wait briefly so the log shows when.
    if result.is_ok() && running_after.is_none() {
        streams.wait_for_state(State::Running, Duration::from_secs(30));
        if streams.state() == State::Running {
            running_after = Some(started.elapsed());
        }
    }
    tracing::info!(
        running_after_secs = running_after.map(|d| d.as_secs_f64()),
        "restoring instance state"
    );
    close(&streams, "restore");
    result
}

/// Partition count of `topic`.
fn partitions_of(probe: &BaseConsumer, topic: &str) -> anyhow::Result<i32> {
    let metadata = probe.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    anyhow::ensure!(partitions > 0, "topic {topic} has no partitions");
    Ok(partitions as i32)
}

/// Raw consumption of the whole of `topic`: a `BaseConsumer` assigned every
/// partition from its low watermark, timed from the assignment until it has read up
/// to the high watermarks (looked up before the timing starts, as the restore does).
fn raw_consume_to_end(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> anyhow::Result<Rate> {
    let to_end = TopicToEnd::new(config, "bench-raw-changelog", topic, partitions)?;
    let started = Instant::now();
    let mut bytes = 0_u64;
    let records = to_end.read(started + timeout, |m| {
        bytes += (m.key_len() + m.payload_len()) as u64;
        Ok(())
    })?;
    let elapsed = started.elapsed();
    tracing::debug!(topic, records, bytes, "raw changelog consume read");
    Ok(Rate { records, elapsed })
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

fn log_rate(round: usize, side: &str, rate: &Rate) {
    tracing::info!(
        round,
        side,
        rate = rate.per_second() as u64,
        records = rate.records,
        secs = rate.elapsed.as_secs_f64(),
        "run done"
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = Arc::new(Args::parse());
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    anyhow::ensure!(args.sentences >= 1, "--sentences must be at least 1");
    let mut config = broker_config()?;
    for (key, value) in &args.client_properties {
        config = config.set(key, value);
    }
    let timeout = Duration::from_secs(args.timeout_secs);
    println!(
        "streams_state: {} sentences of ~{} bytes from {} words on {} partitions, {} round(s), {} stream thread(s), cache {} bytes, commit every {} ms, broker {}",
        args.sentences,
        args.sentence_size,
        args.vocabulary,
        args.partitions,
        args.rounds,
        args.threads,
        args.cache_max_bytes,
        args.commit_interval_ms,
        config.get("bootstrap.servers").unwrap_or("?")
    );

    let input = unique("bench-state-input");
    create_topic(&config, &input, args.partitions).await?;
    let words = {
        let (config, input, args) = (config.clone(), input.clone(), args.clone());
        blocking(move || pre_produce(&config, &input, &args)).await?
    };

    let (mut raw, mut counts, mut uncached) = (Vec::new(), Vec::new(), Vec::new());
    let mut exactly_once: Vec<CountTimings> = Vec::new();
    let mut raw_counts_all = Vec::new();
    let (mut raw_changelog, mut restores) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        // 1. Raw passthrough of the input.
        let output = unique("bench-state-raw-output");
        create_topic(&config, &output, args.partitions).await?;
        let rate = {
            let (config, input, sentences) = (config.clone(), input.clone(), args.sentences);
            let partitions = args.partitions;
            blocking(move || {
                raw_passthrough(&config, &input, &output, partitions, sentences, timeout)
            })
            .await?
        };
        rate.log(round, "raw passthrough");
        raw.push(rate);

        // 1b. The same word count hand-written on raw rdkafka (the ceiling).
        let repartition = unique("bench-raw-wordcount-repartition");
        let output = unique("bench-raw-wordcount-output");
        create_topic(&config, &repartition, args.partitions).await?;
        create_topic(&config, &output, args.partitions).await?;
        let rate = {
            let (config, input, args) = (config.clone(), input.clone(), args.clone());
            blocking(move || raw_word_count(&config, &input, &repartition, &output, words, &args))
                .await?
        };
        rate.log(round, "raw word count");
        raw_counts_all.push(rate);

        // 2. Word count with the record cache (Kafka's default): updates are folded
        //    per commit interval before the changelog and the output.
        let run = |caching: bool, guarantee: ProcessingGuarantee| {
            let (config, input, args) = (config.clone(), input.clone(), args.clone());
            async move {
                let application_id = unique("bench-wordcount");
                let output = unique("bench-state-counts");
                create_topic(&config, &output, args.partitions).await?;
                let (id, out) = (application_id.clone(), output.clone());
                let rate = blocking(move || {
                    let app = App {
                        config: &config,
                        application_id: &id,
                        input: &input,
                        output: &out,
                        args: &args,
                    };
                    word_count(&app, words, caching, guarantee)
                })
                .await?;
                anyhow::Ok((rate, application_id, output))
            }
        };
        let (rate, _, _) = run(true, ProcessingGuarantee::AtLeastOnce).await?;
        rate.log(round, "word count (cached)");
        counts.push(rate);
        if args.exactly_once {
            let (rate, _, _) = run(true, ProcessingGuarantee::ExactlyOnceV2).await?;
            rate.log(round, "word count (cached, exactly_once_v2)");
            exactly_once.push(rate);
        }

        // 3. Word count without a cache: every update reaches the changelog, which
        //    the restore below reads (one changelog record per word).
        let (rate, application_id, output) = run(false, ProcessingGuarantee::AtLeastOnce).await?;
        rate.log(round, "word count (no cache)");
        tracing::info!(
            round,
            words_per_sec = (words as f64 / rate.timings.total.elapsed.as_secs_f64()) as u64,
            "word count (no cache): words counted per second"
        );
        uncached.push(rate);

        // 4. Raw consumption of the changelog, then 5. restore from it.
        let changelog = format!("{application_id}-{STORE}-changelog");
        let changelog_partitions = {
            let (config, changelog) = (config.clone(), changelog.clone());
            blocking(move || {
                let probe: BaseConsumer = config.to_rdkafka().create()?;
                let partitions = partitions_of(&probe, &changelog)?;
                let records = records_in(&probe, &changelog, partitions)?;
                tracing::info!(%changelog, partitions, records, "changelog written");
                if records < 200_000 {
                    tracing::warn!(
                        records,
                        "the changelog is small for a restore benchmark: use more --sentences"
                    );
                }
                Ok(partitions)
            })
            .await?
        };
        let rate = {
            let (config, changelog) = (config.clone(), changelog.clone());
            blocking(move || raw_consume_to_end(&config, &changelog, changelog_partitions, timeout))
                .await?
        };
        log_rate(round, "raw changelog consume", &rate);
        raw_changelog.push(rate);

        let rate = {
            let (config, input, args) = (config.clone(), input.clone(), args.clone());
            blocking(move || {
                let app = App {
                    config: &config,
                    application_id: &application_id,
                    input: &input,
                    output: &output,
                    args: &args,
                };
                restore(&app, changelog_partitions)
            })
            .await?
        };
        log_rate(round, "restore", &rate);
        if let Some(raw) = raw_changelog.last() {
            if rate.records != raw.records {
                tracing::warn!(
                    restored = rate.records,
                    consumed = raw.records,
                    "the restore and the raw consume read different record counts"
                );
            }
        }
        restores.push(rate);
    }

    println!("{words} words in {} sentences", args.sentences);
    let line = |name: &str, r: &Rate| {
        format!(
            "{name} {:>10.0} rec/s ({:>8} rec, {:.2} s)",
            r.per_second(),
            r.records,
            r.elapsed.as_secs_f64()
        )
    };
    for round in 0..args.rounds {
        println!(
            "round {round}, steady: {}   {}   {}",
            line("raw passthrough", &raw[round].steady),
            line("word count (cached)", &counts[round].timings.steady),
            line("word count (no cache)", &uncached[round].timings.steady)
        );
        println!(
            "round {round}, steady: {}",
            line("raw word count", &raw_counts_all[round].timings.steady)
        );
        println!(
            "round {round}, published (to the commit after the last record): {}   {}",
            line("raw word count", &raw_counts_all[round].published),
            line("word count (cached)", &counts[round].published)
        );
        println!(
            "round {round}, from start: {}   {}   {}",
            line("raw passthrough", &raw[round].total),
            line("word count (cached)", &counts[round].timings.total),
            line("word count (no cache)", &uncached[round].timings.total)
        );
        println!(
            "round {round}: {}   {}",
            line("raw changelog consume", &raw_changelog[round]),
            line("restore", &restores[round])
        );
    }
    let per_word = words as f64 / args.sentences as f64;
    let timings = |runs: &[CountTimings]| runs.iter().map(|r| r.timings).collect::<Vec<_>>();
    let published = |runs: &[CountTimings]| runs.iter().map(|r| r.published).collect::<Vec<_>>();
    let (raw_counts, counts_published) = (timings(&raw_counts_all), published(&counts));
    let raw_counts_published = published(&raw_counts_all);
    if !exactly_once.is_empty() {
        for (round, eos) in exactly_once.iter().enumerate() {
            println!(
                "round {round}: {}   {}",
                line(
                    "word count (cached, exactly_once_v2), steady",
                    &eos.timings.steady
                ),
                line("published", &eos.published)
            );
        }
        let eos_published = published(&exactly_once);
        let eos = timings(&exactly_once);
        println!(
            "word count, cached, exactly_once_v2 / at_least_once (commit every {} ms): steady state ratio {:.3}, published ratio {:.3}",
            args.commit_interval_ms,
            median(&Timings::steady(&eos)) / median(&Timings::steady(&timings(&counts))),
            median(&eos_published) / median(&counts_published)
        );
    }
    let (counts, uncached) = (timings(&counts), timings(&uncached));
    println!(
        "medians, steady: raw passthrough {:.0} rec/s, word count cached {:.0} rec/s ({:.0} words/s), no cache {:.0} rec/s ({:.0} words/s)",
        median(&Timings::steady(&raw)),
        median(&Timings::steady(&counts)),
        median(&Timings::steady(&counts)) * per_word,
        median(&Timings::steady(&uncached)),
        median(&Timings::steady(&uncached)) * per_word,
    );
    println!(
        "medians: raw changelog consume {:.0} rec/s, restore {:.0} rec/s",
        median(&raw_changelog),
        median(&restores)
    );
    report(
        "word count, cached (input records) / raw passthrough, steady state",
        &Timings::steady(&counts),
        &Timings::steady(&raw),
        0.4,
    );
    println!(
        "raw word count / raw passthrough, steady state: ratio {:.3} (the ceiling of a word count repartitioned through the broker)",
        median(&Timings::steady(&raw_counts)) / median(&Timings::steady(&raw))
    );
    println!(
        "word count, cached / raw word count, steady state: ratio {:.3} (what the streams runtime costs on top)",
        median(&Timings::steady(&counts)) / median(&Timings::steady(&raw_counts))
    );
    println!(
        "word count, cached / raw passthrough, published (to the commit after the last record): ratio {:.3}; raw word count, published: {:.3}",
        median(&counts_published) / median(&Timings::steady(&raw)),
        median(&raw_counts_published) / median(&Timings::steady(&raw))
    );
    println!(
        "word count, cached / raw passthrough, from start (start-up included): ratio {:.3}",
        median(&Timings::total(&counts)) / median(&Timings::total(&raw))
    );
    println!(
        "word count, no cache / raw passthrough, steady state: ratio {:.3} (every update to the changelog and the output)",
        median(&Timings::steady(&uncached)) / median(&Timings::steady(&raw))
    );
    report(
        "restore / raw changelog consume",
        &restores,
        &raw_changelog,
        0.8,
    );
    Ok(())
}
