//! Shared support for the end-to-end tests in `tests/`.
//!
//! Every test talks to the broker named by `KAFKA_BOOTSTRAP_SERVERS`: the one
//! `scripts/test.sh` starts, or a real Kafka (`docker/compose.yaml`). Without it the
//! tests fail with a message saying how to run them; they never skip silently.
//! Each test uses its own topics and groups ([`unique_name`]), so tests run in
//! parallel.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use kafka_client::config::AutoOffsetReset;
use kafka_client::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use kafka_client::rdkafka::client::DefaultClientContext;
use std::collections::BTreeMap;

use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer as _};
use kafka_client::rdkafka::message::Message as _;
use kafka_client::rdkafka::message::ToBytes;
use kafka_client::rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use kafka_client::rdkafka::types::RDKafkaErrorCode;
use kafka_client::rdkafka::{Offset, TopicPartitionList};
use kafka_client::ClientConfig;

pub mod exactly_once;

/// How long a test waits for a condition before failing.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The broker's bootstrap servers; fails the test clearly when none is configured.
pub fn bootstrap_servers() -> String {
    init_tracing();
    match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) if !servers.trim().is_empty() => servers,
        _ => panic!(
            "KAFKA_BOOTSTRAP_SERVERS is not set. These tests need a Kafka broker: run \
             `bash scripts/test.sh` (starts one), or start docker/compose.yaml and set \
             KAFKA_BOOTSTRAP_SERVERS=localhost:9092."
        ),
    }
}

/// A client configuration for the test broker (with any `KAFKA_*` security
/// settings from the environment).
pub fn config() -> ClientConfig {
    let servers = bootstrap_servers();
    ClientConfig::from_env().unwrap_or_else(|_| ClientConfig::new(servers))
}

/// A consumer configuration in group `group`, reading from the earliest offset.
pub fn consumer_config(group: &str) -> ClientConfig {
    config()
        .group_id(group)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        // Short sessions make group hand-overs in tests quick on real Kafka too.
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
}

/// A kafka-client producer of `String` keys and values on the test broker; with
/// `trace_context` on, `send` injects the current span's `traceparent`.
pub fn string_producer(trace_context: bool) -> kafka_client::Producer<String, String> {
    kafka_client::Producer::builder(&config())
        .key_serializer(kafka_client::serde::StringSerde)
        .value_serializer(kafka_client::serde::StringSerde)
        .trace_context(trace_context)
        .build()
        .expect("producer")
}

/// A record timestamp an hour ago, on a whole second. Tests that set timestamps use
/// recent ones: a broker deletes records older than `retention.ms` (7 days by
/// default) at its next retention check, whatever their offsets.
pub fn an_hour_ago_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    (now - 3_600_000) / 1000 * 1000
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates `topic` with `partitions` partitions and waits until its metadata shows
/// every partition.
pub async fn create_topic(topic: &str, partitions: i32) {
    create_topic_with_config(topic, partitions, &[]).await
}

/// Creates `topic` with topic-level `configs` and waits until it is visible.
pub async fn create_topic_with_config(topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    create_topic_at(config(), topic, partitions, configs).await
}

/// Creates `topic` on the broker of `client` (a broker of the test's own, not
/// necessarily `KAFKA_BOOTSTRAP_SERVERS`) and waits until it is visible.
pub async fn create_topic_at(
    client: ClientConfig,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = client
        .to_rdkafka()
        .create()
        .expect("creating the admin client");
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new_topic = new_topic.set(k, v);
    }
    let results = admin
        .create_topics(
            [&new_topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("CreateTopics request");
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => panic!("creating topic {name}: {code:?}"),
        }
    }
    wait_for_partitions_at(client, topic, partitions).await;
}

/// Waits until the broker's metadata lists `partitions` partitions for `topic`.
pub async fn wait_for_partitions(topic: &str, partitions: i32) {
    wait_for_partitions_at(config(), topic, partitions).await
}

/// [`wait_for_partitions`] on the broker of `config`.
async fn wait_for_partitions_at(config: ClientConfig, topic: &str, partitions: i32) {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let probe: BaseConsumer = config.to_rdkafka().create().expect("metadata client");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(metadata) = probe.fetch_metadata(Some(&topic), Duration::from_secs(5)) {
                let ready = metadata.topics().iter().any(|t| {
                    t.name() == topic
                        && t.error().is_none()
                        && t.partitions().len() as i32 == partitions
                });
                if ready {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "topic {topic} never showed {partitions} partitions"
            );
            // Pace the metadata requests; this is a blocking-pool thread.
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .expect("metadata wait");
}

/// Polls `check` until it returns `Some`, failing the test after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `f` to completion on a fresh current-thread runtime, for sync tests (stream
/// threads are plain threads) that call async helpers.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Blocks (outside async code, e.g. around stream threads) until `check` holds,
/// failing the test after [`DEADLINE`].
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        // Pace the probe; callers run on plain threads, not the executor.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Installs a `tracing` subscriber once, filtered by `RUST_LOG` (default: warn).
pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
    });
}

/// The README's code blocks compile as doc tests, so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// Hands `record` to `producer`, serving deliveries while its queue is full.
pub fn send_waiting<K: ToBytes + ?Sized, V: ToBytes + ?Sized>(
    producer: &BaseProducer,
    mut record: BaseRecord<'_, K, V>,
) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                producer.poll(Duration::from_millis(20));
                record = back;
            }
        }
    }
}

/// Produces `(key, value)` records to `topic` (`None`: a tombstone) and flushes.
pub fn produce_keyed(topic: &str, records: &[(String, Option<String>)]) {
    let producer: BaseProducer = config().to_rdkafka().create().expect("producer");
    for (key, value) in records {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).key(key.as_bytes());
        if let Some(v) = value {
            rec = rec.payload(v.as_bytes());
        }
        send_waiting(&producer, rec);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Produces `(key, value, timestamp)` records to `topic` and flushes, partitioned by
/// the murmur2 hash of the key as Java producers and the streams runtime's own
/// repartition topics are (librdkafka's default hash differs), so a key lands in the
/// same partition number of every topic of a join.
pub fn produce_at(topic: &str, records: &[(String, String, i64)]) {
    let producer: BaseProducer = config()
        .set("partitioner", "murmur2_random")
        .to_rdkafka()
        .create()
        .expect("producer");
    for (key, value, timestamp) in records {
        let rec = BaseRecord::to(topic)
            .key(key.as_bytes())
            .payload(value.as_bytes())
            .timestamp(*timestamp);
        send_waiting(&producer, rec);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Produces `lines` to `topic`, keyed `line-<i>`, and flushes.
pub fn produce_lines(topic: &str, lines: &[&str]) {
    let records: Vec<(String, Option<String>)> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| (format!("line-{i}"), Some((*line).to_owned())))
        .collect();
    produce_keyed(topic, &records);
}

/// Assigns `consumer` every partition of `topic` from the beginning; returns each
/// partition's end offset now (at the consumer's isolation level).
pub fn assign_from_beginning(consumer: &BaseConsumer, topic: &str) -> BTreeMap<i32, i64> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks");
            ends.insert(p.id(), high);
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
    ends
}

/// Every record of every partition of `topic`, read from the beginning to its
/// current end: `(key, value)` (`None`: a tombstone), in offset order per partition.
pub fn read_records(topic: &str) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    read_records_at(config(), topic)
        .into_iter()
        .map(|(_, key, value)| (key, value))
        .collect()
}

/// [`read_records`] on the broker of `client`, each record with its partition:
/// `(partition, key, value)`.
pub fn read_records_at(client: ClientConfig, topic: &str) -> Vec<(i32, Vec<u8>, Option<Vec<u8>>)> {
    let consumer: BaseConsumer = client
        .group_id(unique_name("changelog-reader"))
        .to_rdkafka()
        .create()
        .expect("consumer");
    let ends = assign_from_beginning(&consumer, topic);
    let mut next: BTreeMap<i32, i64> = ends.keys().map(|p| (*p, 0)).collect();
    let mut records = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while ends.iter().any(|(p, end)| next[p] < *end) {
        assert!(
            Instant::now() < deadline,
            "timed out reading {topic} to {ends:?}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("record");
            next.insert(m.partition(), m.offset() + 1);
            let key = m.key().expect("records have keys").to_vec();
            records.push((m.partition(), key, m.payload().map(<[u8]>::to_vec)));
        }
    }
    records
}

/// Every partition of `topic` read from the beginning to its current end: the latest
/// value per key (tombstones remove the key), and the number of records read.
pub fn read_to_end(topic: &str) -> (BTreeMap<Vec<u8>, Vec<u8>>, usize) {
    let records = read_records(topic);
    let read = records.len();
    let mut table = BTreeMap::new();
    for (key, value) in records {
        match value {
            Some(v) => table.insert(key, v),
            None => table.remove(&key),
        };
    }
    (table, read)
}

/// The word count the streams tests run: the lowercase words of `lines` counted into
/// the RocksDB store `store` (repartitioned by word, logged to its changelog), and
/// the counts' changelog stream written to `output`.
pub fn count_words(lines: kafka_streams::KStream<String, String>, store: &str, output: &str) {
    word_counts(lines, store).to_stream().to(output);
}

/// The table of [`count_words`]: the lowercase words of `lines` counted into the
/// RocksDB store `store`.
pub fn word_counts(
    lines: kafka_streams::KStream<String, String>,
    store: &str,
) -> kafka_streams::dsl::KTable<String, i64> {
    lines
        .flat_map_values(|line| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone())
        .count_with(kafka_streams::dsl::Materialized::as_(store))
}

/// A word-count table as bytes (UTF-8 words, big-endian `i64` counts) decoded.
pub fn decode_counts(table: BTreeMap<Vec<u8>, Vec<u8>>) -> BTreeMap<String, i64> {
    table
        .into_iter()
        .map(|(k, v)| {
            let bytes: [u8; 8] = v.try_into().expect("8-byte count");
            (
                String::from_utf8(k).expect("utf8 word"),
                i64::from_be_bytes(bytes),
            )
        })
        .collect()
}

/// The latest count per word in `topic` (a word count's output or changelog).
pub fn counts_of(topic: &str) -> BTreeMap<String, i64> {
    decode_counts(read_to_end(topic).0)
}

/// An Apache Kafka broker of the test's own with SASL_PLAINTEXT (PLAIN,
/// SCRAM-SHA-256, SCRAM-SHA-512), SASL_SSL and SSL (client certificates required)
/// listeners, started by `scripts/broker.sh --secure` from the jars
/// `scripts/setup.sh` fetched; killed and deleted on drop. Security tests start their
/// own because the shared test broker (or a user's docker Kafka) has plaintext only.
pub struct SecureBroker {
    dir: tempfile::TempDir,
    pid: u32,
    settings: BTreeMap<String, String>,
}

/// `scripts/broker.sh`, which starts (and stops) a broker of a test's own.
const BROKER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/broker.sh");

/// Runs `scripts/broker.sh DIR/pid --dir DIR` with `extra` arguments, which starts a
/// broker in `dir` (again, on the same log dirs and ports, when `dir` holds one) and
/// waits until it answers metadata requests. Returns its PLAINTEXT bootstrap address
/// and pid; fails the test with the script's message (e.g. that the jars
/// `scripts/setup.sh` fetches are missing) when it cannot start.
fn run_broker_script(dir: &std::path::Path, extra: &[&str]) -> (String, u32) {
    init_tracing();
    let pid_file = dir.join("pid");
    let out = std::process::Command::new("bash")
        .arg(BROKER_SCRIPT)
        .arg(&pid_file)
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .output()
        .expect("running scripts/broker.sh");
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse().ok());
    let (true, Some(pid)) = (out.status.success(), pid) else {
        panic!(
            "this test starts a broker of its own, and scripts/broker.sh {extra:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    (String::from_utf8_lossy(&out.stdout).trim().to_owned(), pid)
}

impl SecureBroker {
    /// Starts the broker and waits until it answers metadata requests.
    pub fn start() -> SecureBroker {
        let dir = tempfile::tempdir().expect("broker dir");
        let (plaintext, pid) = run_broker_script(dir.path(), &["--secure"]);
        let env = std::fs::read_to_string(dir.path().join("listeners.env"))
            .expect("the secure broker's listeners.env");
        let mut settings: BTreeMap<String, String> = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        settings.insert("PLAINTEXT".into(), plaintext);
        SecureBroker { dir, pid, settings }
    }

    /// A value of its `listeners.env`: a listener's address (`SASL_PLAINTEXT`,
    /// `SASL_SSL`, `SSL`, `PLAINTEXT`), a user or password (`SCRAM_SHA_256_USER`,
    /// ...), or a TLS file (`CA`, `OTHER_CA`, `CLIENT_CERT`, `CLIENT_KEY`).
    pub fn get(&self, name: &str) -> &str {
        self.settings
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the secure broker's listeners.env"))
    }

    /// The broker's directory (config, data, TLS files, log).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        // Its data is thrown away, so no clean shutdown is needed.
        let _ = std::process::Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
    }
}

/// The stream-stream joins the join tests run: `left` joined with `right` within 10 s
/// (grace 60 s), inner into `inner_output` (stores `pairs-…`) and left into
/// `left_output` (stores `maybe-pairs-…`), values `<left>+<right>`, `null` for no
/// partner.
pub fn join_streams(
    left: kafka_streams::KStream<String, String>,
    right: kafka_streams::KStream<String, String>,
    inner_output: &str,
    left_output: &str,
) {
    use kafka_streams::dsl::{JoinWindows, StreamJoined};
    let windows =
        JoinWindows::of_time_difference_and_grace(Duration::from_secs(10), Duration::from_secs(60))
            .expect("join windows");
    left.join_with(
        &right,
        |l: &String, r: &String| format!("{l}+{r}"),
        windows,
        StreamJoined::as_("pairs"),
    )
    .to(inner_output);
    left.left_join_with(
        &right,
        |l: &String, r: Option<&String>| format!("{l}+{}", r.map_or("null", String::as_str)),
        windows,
        StreamJoined::as_("maybe-pairs"),
    )
    .to(left_output);
}

/// A streams application running as a child process (one of this crate's binaries),
/// killed (SIGKILL) and reaped on drop.
pub struct Instance(pub std::process::Child);

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary `exe` with `args` against the test broker and waits until it
/// prints `RUNNING`.
pub fn spawn_instance(exe: &str, args: &[&str]) -> Instance {
    spawn_instance_with_output(exe, args).0
}

/// [`spawn_instance`], also handing over the lines the instance prints after
/// `RUNNING` (e.g. `FAILED <error>` from a binary that reports its failure so).
pub fn spawn_instance_with_output(
    exe: &str,
    args: &[&str],
) -> (Instance, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(exe)
        .args(args)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap_servers())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {exe}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            // Nobody listening any more is fine: the lines are only drained.
            let _ = tx.send(line);
        }
    });
    let instance = Instance(child);
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("RUNNING") => return (instance, rx),
            Ok(_) => {}
            Err(_) => panic!("{exe} never became RUNNING"),
        }
    }
}

/// The committed offset of group `app` and the log end of each partition of `topic`.
pub fn read_committed_and_ends(
    app: &str,
    topic: &str,
) -> kafka_client::rdkafka::error::KafkaResult<BTreeMap<i32, (Option<i64>, i64)>> {
    let consumer: BaseConsumer = config().group_id(app).to_rdkafka().create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition(topic, p.id());
        }
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    committed
        .elements()
        .iter()
        .map(|e| {
            let (_, high) =
                consumer.fetch_watermarks(topic, e.partition(), Duration::from_secs(10))?;
            let offset = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            Ok((e.partition(), (offset, high)))
        })
        .collect()
}

/// Whether group `app` committed the end offset of every partition of `topic` (false
/// while the broker cannot tell).
pub fn committed_to_end(app: &str, topic: &str) -> bool {
    read_committed_and_ends(app, topic).is_ok_and(|parts| {
        parts
            .values()
            .all(|(committed, end)| *committed == Some(*end))
    })
}

/// Prints `RUNNING` on stdout whenever `streams` reaches that state: what
/// [`spawn_instance`] waits for.
pub fn announce_running(streams: &kafka_streams::runtime::KafkaStreams) {
    use std::io::Write as _;
    streams.set_state_listener(|new, _old| {
        if new == kafka_streams::runtime::State::Running {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "RUNNING");
            let _ = out.flush();
        }
    });
}

/// `config` with each `KEY=VALUE` of `properties` set (the instance binaries'
/// trailing arguments, e.g. `processing.guarantee=exactly_once_v2`).
pub fn with_properties(
    mut config: kafka_streams::runtime::StreamsConfig,
    properties: &[String],
) -> anyhow::Result<kafka_streams::runtime::StreamsConfig> {
    for property in properties {
        let Some((key, value)) = property.split_once('=') else {
            anyhow::bail!("expected KEY=VALUE, got {property}");
        };
        config = config.set(key, value)?;
    }
    Ok(config)
}

/// Starts `streams` and runs until it stops (`Ok`) or fails (`Err` with its error):
/// the main loop of this crate's instance binaries, which run until killed.
pub fn run_until_stopped(streams: &kafka_streams::runtime::KafkaStreams) -> anyhow::Result<()> {
    use kafka_streams::runtime::State;
    streams.start()?;
    loop {
        if streams.wait_for_state(State::Error, Duration::from_secs(3600)) {
            anyhow::bail!("stream error: {:?}", streams.error());
        }
        if streams.state() == State::NotRunning {
            return Ok(());
        }
    }
}

/// The window size of the windowed-count tests: one minute.
pub const MINUTE_MS: i64 = 60_000;

/// The grace period of the windowed-count restore tests (`tests/streams_windows.rs`):
/// long enough that a later round's records, in an earlier round's windows, still
/// count (stream time does not close those windows).
pub const WINDOW_COUNTS_GRACE: Duration = Duration::from_secs(3600);

/// Their count's store; its changelog is `<application.id>-window-counts-changelog`.
pub const WINDOW_COUNTS_STORE: &str = "window-counts";

/// The windowed count the window tests run, in process or as `streams_instance
/// windowed-count`: the readings of `readings` counted per sensor in epoch-aligned
/// one-minute tumbling windows with `grace`, in the RocksDB window store `store`
/// (logged to `<application.id>-<store>-changelog`), written to `output` with
/// time-windowed keys and big-endian `i64` counts. Every update goes out, or, with
/// `suppress`, only each window's final count
/// (`suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))`, node
/// `final-counts`, buffer store `final-counts-store`).
pub fn count_per_minute(
    readings: kafka_streams::KStream<String, String>,
    grace: Duration,
    store: &str,
    output: &str,
    suppress: bool,
) {
    use kafka_client::serde::{BigEndian, OptionSerde};
    use kafka_streams::dsl::{BufferConfig, Materialized, Produced, Suppressed, TimeWindows};
    let size = Duration::from_millis(MINUTE_MS.unsigned_abs());
    let mut counts = readings
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(size, grace).expect("windows"))
        .count_with(Materialized::as_(store));
    if suppress {
        counts = counts.suppress(
            Suppressed::until_window_closes(BufferConfig::unbounded()).with_name("final-counts"),
        );
    }
    counts.to_stream().to_with(
        output,
        Produced::as_("window-counts-out").with_value_serializer(OptionSerde(BigEndian)),
    );
}

/// The emit-final counts' store.
pub const FINAL_COUNTS_STORE: &str = "final-counts";

/// How long the emit-final counts keep closed windows and sessions: long enough that
/// every final of a test is still in the store when the app restarts, so that only
/// the committed last emit time keeps it from going out again.
pub const FINAL_COUNTS_RETENTION: Duration = Duration::from_secs(3600);

/// The emit-final windowed count (`EmitStrategy::on_window_close`) of the emit-final
/// restart tests (`tests/streams_emit_final.rs`), in process or as `streams_instance
/// final-count`: `readings` counted per sensor, in epoch-aligned one-minute tumbling
/// windows without grace, or with `sessions` in session windows with a one-minute
/// inactivity gap and no grace, in the RocksDB store `store` (kept
/// [`FINAL_COUNTS_RETENTION`]); each window's or session's final count goes to
/// `output` once it closes, with windowed keys and big-endian `i64` counts.
pub fn final_count(
    readings: kafka_streams::KStream<String, String>,
    sessions: bool,
    store: &str,
    output: &str,
) {
    use kafka_client::serde::{BigEndian, OptionSerde};
    use kafka_streams::dsl::{EmitStrategy, Materialized, Produced, SessionWindows, TimeWindows};
    let minute = Duration::from_millis(MINUTE_MS.unsigned_abs());
    let grouped = readings.group_by_key();
    let materialized = Materialized::as_(store).with_retention(FINAL_COUNTS_RETENTION);
    let counts = if sessions {
        grouped
            .windowed_by_session(
                SessionWindows::of_inactivity_gap_with_no_grace(minute).expect("windows"),
            )
            .emit_strategy(EmitStrategy::on_window_close())
            .count_with(materialized)
    } else {
        grouped
            .windowed_by(TimeWindows::of_size_with_no_grace(minute).expect("windows"))
            .emit_strategy(EmitStrategy::on_window_close())
            .count_with(materialized)
    };
    counts.to_stream().to_with(
        output,
        Produced::as_("final-counts-out").with_value_serializer(OptionSerde(BigEndian)),
    );
}

/// Per key and epoch-aligned one-minute window, the number of `records` (key,
/// timestamp) in it: the reference the windowed counts are checked against.
pub fn per_minute_counts(records: &[(String, i64)]) -> BTreeMap<(String, i64), i64> {
    let mut counts = BTreeMap::new();
    for (key, timestamp) in records {
        let start = timestamp - timestamp.rem_euclid(MINUTE_MS);
        *counts.entry((key.clone(), start)).or_insert(0) += 1;
    }
    counts
}

/// The configuration of the restart tests' applications: `app` with its state in
/// `dir`, committing every 200 ms, and a short session timeout so that a killed
/// instance's tasks move on quickly.
pub fn restart_test_config(
    app: &str,
    dir: &std::path::Path,
) -> kafka_streams::runtime::StreamsConfig {
    kafka_streams::runtime::StreamsConfig::new(app, config())
        .commit_interval(Duration::from_millis(200))
        .state_dir(dir)
        .set("session.timeout.ms", "6000")
        .and_then(|c| c.set("heartbeat.interval.ms", "500"))
        .expect("valid config")
}

/// Builds `builder`'s topology with the configured optimizations (as Kafka's
/// `builder.build(props)`), starts it and waits until it is RUNNING.
pub fn start_running(
    builder: kafka_streams::dsl::StreamsBuilder,
    streams_config: kafka_streams::runtime::StreamsConfig,
) -> kafka_streams::runtime::KafkaStreams {
    use kafka_streams::runtime::{KafkaStreams, State};
    let topology = builder
        .build_with(streams_config.get_topology_optimization())
        .expect("topology");
    let streams = KafkaStreams::new(topology, streams_config).expect("client");
    streams.start().expect("start");
    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "not running: {:?}",
        streams.error()
    );
    streams
}

/// Produces `records` (key, timestamp) with the value `"reading"` ([`produce_at`]).
pub fn produce_timestamped(topic: &str, records: &[(String, i64)]) {
    let records: Vec<_> = records
        .iter()
        .map(|(key, timestamp)| (key.clone(), "reading".to_owned(), *timestamp))
        .collect();
    produce_at(topic, &records);
}

/// A windowed key's bytes (Kafka's `TimeWindowedSerializer`: the key, then the
/// 8-byte big-endian window start) split into key and window start.
pub fn split_windowed(bytes: &[u8]) -> (String, i64) {
    let (key, start) = bytes.split_at(bytes.len() - 8);
    let start: [u8; 8] = start.try_into().expect("8-byte window start");
    (
        String::from_utf8(key.to_vec()).expect("utf8 key"),
        i64::from_be_bytes(start),
    )
}

/// The topic's configs as the broker describes them.
pub fn describe_topic_configs(topic: &str) -> BTreeMap<String, String> {
    use kafka_client::rdkafka::admin::ResourceSpecifier;
    let admin: AdminClient<DefaultClientContext> =
        config().to_rdkafka().create().expect("admin client");
    let results = block_on(admin.describe_configs(
        [&ResourceSpecifier::Topic(topic)],
        &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
    ))
    .expect("describe configs");
    let resource = results
        .into_iter()
        .next()
        .expect("one resource")
        .expect("the topic's configs");
    resource
        .entries
        .into_iter()
        .filter_map(|entry| Some((entry.name, entry.value?)))
        .collect()
}

impl Instance {
    /// SIGKILLs the process (`Child::kill` on unix) and reaps it.
    pub fn kill(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reap");
    }
}

/// A plaintext Apache Kafka broker of the test's own (`scripts/broker.sh` in a
/// temporary directory, whatever `KAFKA_BOOTSTRAP_SERVERS` says), for tests that kill
/// the broker: [`RestartableBroker::kill`] SIGKILLs it and
/// [`RestartableBroker::restart`] starts it again on the same log dirs and port. On
/// drop (also when the test panics) it is stopped with `scripts/broker.sh --stop`
/// and its directory deleted.
pub struct RestartableBroker {
    dir: tempfile::TempDir,
    pid: u32,
    bootstrap_servers: String,
}

impl RestartableBroker {
    /// Starts the broker and waits until it answers metadata requests; fails the
    /// test with `scripts/broker.sh`'s message when it cannot (e.g. without the jars
    /// `scripts/setup.sh` fetches).
    pub fn start() -> RestartableBroker {
        let dir = tempfile::tempdir().expect("broker dir");
        let (bootstrap_servers, pid) = run_broker_script(dir.path(), &[]);
        RestartableBroker {
            dir,
            pid,
            bootstrap_servers,
        }
    }

    /// Its bootstrap address (the same across restarts).
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// A client configuration for this broker.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(self.bootstrap_servers.clone())
    }

    /// SIGKILLs the broker (no clean shutdown: its logs are recovered at the next
    /// start) and waits until the process is gone.
    pub fn kill(&mut self) {
        let pid = self.pid.to_string();
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("running kill");
        assert!(killed.success(), "SIGKILL to the broker (pid {pid}) failed");
        // Not this process's child (broker.sh started it): wait for it to be gone.
        let gone = std::process::Command::new("tail")
            .args(["--pid", &pid, "-f", "/dev/null"])
            .status()
            .expect("waiting for the killed broker");
        assert!(gone.success(), "waiting for the broker (pid {pid}) to exit");
    }

    /// Starts the broker again on the same log dirs and port, and waits until it
    /// answers metadata requests.
    pub fn restart(&mut self) {
        let (bootstrap_servers, pid) = run_broker_script(self.dir.path(), &[]);
        assert_eq!(
            bootstrap_servers, self.bootstrap_servers,
            "the restarted broker listens elsewhere"
        );
        self.pid = pid;
    }
}

impl Drop for RestartableBroker {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(BROKER_SCRIPT)
            .arg("--stop")
            .arg(self.dir.path().join("pid"))
            .status();
    }
}
