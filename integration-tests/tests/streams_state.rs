//! kafka-streams state against the broker named by `KAFKA_BOOTSTRAP_SERVERS`: a word
//! count's changelog topic is created compacted with the source's partition count,
//! and reading it to its end rebuilds exactly what the RocksDB stores hold; with the
//! state dir deleted the counts are restored from the changelog and continue; with it
//! intact only the tail after the checkpoint is restored. With `topology.optimization`
//! reusing source topics, a source table gets no changelog topic and is restored from
//! its input topic up to the committed offset.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::{
    block_on, committed_to_end, config, count_words, counts_of, create_topic, decode_counts,
    describe_topic_configs, produce_keyed, produce_lines, read_committed_and_ends, read_to_end,
    spawn_instance, start_running, unique_name, wait_until, Instance, DEADLINE,
};
use kafka_client::rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use kafka_client::rdkafka::client::DefaultClientContext;
use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer};
use kafka_client::rdkafka::message::Message as _;
use kafka_client::rdkafka::{Offset, TopicPartitionList};
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::runtime::{KafkaStreams, State, StreamsConfig, TopologyOptimization};
use kafka_streams::state::{
    ChangelogPartition, ReadOnlyKeyValueStore, RestorableStore, RocksDbMemory, RocksDbStore,
    StateRestoreListener, StoreLocation, ValueFormat,
};

fn describe_cleanup_policy(topic: &str) -> Option<String> {
    describe_topic_configs(topic).remove("cleanup.policy")
}

#[test]
fn changelog_is_compacted_and_rebuilds_exactly_the_store() {
    let app = unique_name("wordcount-state");
    let input = unique_name("lines");
    let output = unique_name("word-counts");
    block_on(create_topic(&input, 2));
    let state_dir = tempfile::tempdir().expect("state dir");

    let builder = StreamsBuilder::new();
    count_words(builder.stream::<String, String>(&input), "counts", &output);
    let streams_config = StreamsConfig::new(&app, config())
        .commit_interval(Duration::from_millis(200))
        .state_dir(state_dir.path())
        .set("session.timeout.ms", "6000")
        .and_then(|c| c.set("heartbeat.interval.ms", "500"))
        .expect("valid config");
    let streams =
        KafkaStreams::new(builder.build().expect("topology"), streams_config).expect("client");
    streams.start().expect("start");
    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "not running"
    );

    let lines = [
        "the quick brown fox",
        "jumps over the lazy dog",
        "The dog barks",
        "the end",
    ];
    produce_lines(&input, &lines);
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for word in lines.iter().flat_map(|l| l.split_whitespace()) {
        *expected.entry(word.to_lowercase()).or_insert(0) += 1;
    }

    let changelog = format!("{app}-counts-changelog");
    wait_until("the changelog to hold every final count", || {
        counts_of(&changelog) == expected
    });
    assert!(streams.close(), "graceful close");

    // The changelog: compacted, with the source topic's partition count.
    assert_eq!(
        describe_cleanup_policy(&changelog).as_deref(),
        Some("compact")
    );
    let consumer: BaseConsumer = config().to_rdkafka().create().expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(&changelog), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), 2);

    // Reading it to its end rebuilds exactly what the RocksDB stores of the counting
    // sub-topology's tasks (1_0 and 1_1) hold.
    let (rebuilt, _) = read_to_end(&changelog);
    let memory = RocksDbMemory::default_shared();
    let mut stored = BTreeMap::new();
    for partition in 0..2 {
        let location = StoreLocation {
            state_dir: state_dir.path().to_path_buf(),
            application_id: app.clone(),
            task: format!("1_{partition}"),
            store: "counts".into(),
        };
        // Opened in the table store's layout: another would wipe it.
        let store =
            RocksDbStore::open_with_format(&location, None, &memory, ValueFormat::Timestamped)
                .expect("open store");
        for entry in store.all().expect("iterate store") {
            let (k, v) = entry.expect("store entry");
            // The store keeps Kafka's `ValueAndTimestamp` layout (the 8-byte row
            // timestamp, then the value); the changelog the plain value.
            let value = v.get(8..).expect("a timestamp and a count").to_vec();
            stored.insert(k, value);
        }
    }
    assert_eq!(decode_counts(stored.clone()), expected);
    assert_eq!(rebuilt, stored);
}

/// Counts the records restored, through the user restore listener.
#[derive(Clone, Default)]
struct RestoredCounter(Arc<AtomicU64>);

impl StateRestoreListener for RestoredCounter {
    fn on_batch_restored(
        &self,
        _changelog: &ChangelogPartition,
        _store: &str,
        _batch_end_offset: i64,
        num_restored: u64,
    ) {
        self.0.fetch_add(num_restored, Ordering::SeqCst);
    }
}

fn word_count(
    app: &str,
    input: &str,
    output: &str,
    dir: &std::path::Path,
    listener: RestoredCounter,
) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    count_words(builder.stream::<String, String>(input), "counts", output);
    start_running(builder, test_config(app, dir, listener))
}

/// The settings of these tests' apps: fast commits, and quick failure detection so
/// partitions move soon after an instance dies.
fn test_config(
    app: &str,
    dir: &std::path::Path,
    listener: impl kafka_streams::state::StateRestoreListener + 'static,
) -> StreamsConfig {
    StreamsConfig::new(app, config())
        .commit_interval(Duration::from_millis(200))
        .state_dir(dir)
        .state_restore_listener(listener)
        .set("session.timeout.ms", "6000")
        .and_then(|c| c.set("heartbeat.interval.ms", "500"))
        .expect("valid config")
}

/// Starts the topology of `builder` and waits until it is RUNNING.
/// One round: 300 distinct words once each, 10 per line.
fn lines() -> Vec<String> {
    (0..30)
        .map(|i| {
            (0..10)
                .map(|j| format!("w{}-r0", i * 10 + j))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn restore_after_lost_state_continues_counts_and_intact_state_restores_only_the_tail() {
    let app = unique_name("wordcount-restore");
    let input = unique_name("restore-lines");
    let output = unique_name("restore-counts");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let changelog = format!("{app}-counts-changelog");
    let expect = |rounds: i64| -> BTreeMap<String, i64> {
        (0..300).map(|w| (format!("w{w}-r0"), rounds)).collect()
    };
    let produce_round = || {
        let l = lines();
        produce_lines(&input, &l.iter().map(String::as_str).collect::<Vec<_>>());
    };

    // Round 1, then close.
    let first = RestoredCounter::default();
    let streams = word_count(&app, &input, &output, dir.path(), first.clone());
    produce_round(); // round 1
    wait_until("round 1 counts", || counts_of(&output) == expect(1));
    assert!(streams.close(), "graceful close");
    drop(streams);

    // The state dir is lost: the store is rebuilt from the changelog, and the counts
    // continue from 1, not from 0.
    std::fs::remove_dir_all(dir.path().join(&app)).expect("delete state");
    let second = RestoredCounter::default();
    let streams = word_count(&app, &input, &output, dir.path(), second.clone());
    let rebuilt = second.0.load(Ordering::SeqCst);
    assert!(rebuilt >= 300, "restored only {rebuilt} records");
    produce_round(); // round 2
    wait_until("round 2 counts", || counts_of(&output) == expect(2));
    assert!(streams.close(), "graceful close");
    drop(streams);

    // The state dir is intact: only the tail after the checkpoint is restored.
    let (_, changelog_total) = read_to_end(&changelog);
    let third = RestoredCounter::default();
    let streams = word_count(&app, &input, &output, dir.path(), third.clone());
    let tail = third.0.load(Ordering::SeqCst);
    assert!(
        changelog_total >= 600,
        "changelog holds {changelog_total} records"
    );
    assert!(
        (tail as usize) * 10 < changelog_total,
        "restored {tail} of {changelog_total} changelog records"
    );
    produce_round(); // round 3
    wait_until("round 3 counts", || counts_of(&output) == expect(3));
    assert!(streams.close(), "graceful close");
}

/// Starts a word-count process and waits until it is running.
fn spawn_word_count(app: &str, input: &str, output: &str, dir: &std::path::Path) -> Instance {
    let dir = dir.to_str().expect("utf-8 state dir");
    spawn_instance(
        env!("CARGO_BIN_EXE_streams_wordcount_instance"),
        &[app, input, output, dir],
    )
}

#[cfg(unix)]
#[test]
fn sigkilled_word_count_with_deleted_state_rebuilds_and_continues_counting() {
    let app = unique_name("wordcount-kill");
    let input = unique_name("kill-lines");
    let output = unique_name("kill-counts");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let expect = |rounds: i64| -> BTreeMap<String, i64> {
        (0..300).map(|w| (format!("w{w}-r0"), rounds)).collect()
    };
    let produce_round = || {
        let l = lines();
        produce_lines(&input, &l.iter().map(String::as_str).collect::<Vec<_>>());
    };

    let mut first = spawn_word_count(&app, &input, &output, dir.path());
    produce_round();
    wait_until("round 1 counts", || counts_of(&output) == expect(1));
    // At-least-once: wait for the commit covering round 1, then crash.
    // Both sub-topologies' input (the lines and the repartition topic) must be
    // committed, or the restarted instance would count some words twice.
    let repartition = format!("{app}-counts-repartition");
    wait_until("round 1 committed", || {
        committed_to_end(&app, &input) && committed_to_end(&app, &repartition)
    });
    first.0.kill().expect("SIGKILL");
    first.0.wait().expect("reap");

    std::fs::remove_dir_all(dir.path().join(&app)).expect("delete state");
    let _second = spawn_word_count(&app, &input, &output, dir.path());
    produce_round();
    let mut last = BTreeMap::new();
    let deadline = Instant::now() + DEADLINE;
    while last != expect(2) {
        assert!(
            Instant::now() < deadline,
            "round 2 counts did not continue from the restored store; differing: {:?}",
            last.iter()
                .filter(|(_, c)| **c != 2)
                .take(5)
                .collect::<Vec<_>>()
        );
        last = counts_of(&output);
    }
}

/// Records, at every restored batch, how many input records the stateless
/// sub-topology had processed by then; slows each batch down so that the restore
/// spans seconds.
struct SlowRestoreListener {
    processed: Arc<AtomicU64>,
    seen: Arc<std::sync::Mutex<Vec<u64>>>,
    started: std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

impl StateRestoreListener for SlowRestoreListener {
    fn on_batch_restored(&self, _: &ChangelogPartition, _: &str, _: i64, _: u64) {
        if let Some(tx) = self.started.lock().expect("listener").take() {
            let _ = tx.send(());
        }
        std::thread::sleep(Duration::from_millis(300));
        self.seen
            .lock()
            .expect("listener")
            .push(self.processed.load(Ordering::SeqCst));
    }
}

#[test]
fn running_tasks_keep_processing_while_another_task_restores() {
    let app = unique_name("restore-nonblocking");
    let input = unique_name("nb-lines");
    let output = unique_name("nb-counts");
    block_on(create_topic(&input, 1));
    let dir = tempfile::tempdir().expect("state dir");
    let processed = Arc::new(AtomicU64::new(0));
    let start = |listener: Option<SlowRestoreListener>| {
        let builder = StreamsBuilder::new();
        let counter = processed.clone();
        // Sub-topology 0 (stateless): count lines, split, repartition by word;
        // sub-topology 1 (stateful): the count, restored from its changelog.
        let lines = builder.stream::<String, String>(&input).peek(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        count_words(lines, "counts", &output);
        let mut config = StreamsConfig::new(&app, config())
            .commit_interval(Duration::from_millis(200))
            .state_dir(dir.path())
            // No record cache: every update is a changelog record, so the changelog
            // is long enough to restore in many batches.
            .cache_max_bytes(0)
            // Small restore batches: the changelog must take several batches, each
            // slowed down by the listener, so that processing visibly overlaps them.
            .set("restore.consumer.max.poll.records", "2000")
            .expect("restore batch size");
        if let Some(l) = listener {
            config = config.state_restore_listener(l);
        }
        let streams =
            KafkaStreams::new(builder.build().expect("topology"), config).expect("client");
        streams.start().expect("start");
        streams
    };
    let lines = |n: usize, first: usize| -> Vec<String> {
        (first..first + n)
            .map(|i| {
                (0..4)
                    .map(|j| format!("w{}", (i * 4 + j) % 100))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let produce = |l: Vec<String>| {
        produce_lines(&input, &l.iter().map(String::as_str).collect::<Vec<_>>());
    };
    let expect =
        |n: i64| -> BTreeMap<String, i64> { (0..100).map(|w| (format!("w{w}"), n)).collect() };

    // A changelog of 12,000 updates: 3,000 lines of 4 words, 100 distinct.
    let streams = start(None);
    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "not running"
    );
    produce(lines(3000, 0));
    wait_until("the first counts", || counts_of(&output) == expect(120));
    assert!(streams.close(), "graceful close");
    drop(streams);

    // Lose the state and restart: the count task restores slowly while new lines
    // arrive for the stateless task, which processes them meanwhile.
    std::fs::remove_dir_all(dir.path().join(&app)).expect("delete state");
    let (started_tx, started) = std::sync::mpsc::channel();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let streams = start(Some(SlowRestoreListener {
        processed: processed.clone(),
        seen: seen.clone(),
        started: std::sync::Mutex::new(Some(started_tx)),
    }));
    started
        .recv_timeout(DEADLINE)
        .expect("restore never started");
    let before = processed.load(Ordering::SeqCst);
    produce(lines(25, 3000));
    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "not running"
    );
    let seen = seen.lock().expect("listener").clone();
    assert!(seen.len() >= 4, "restored in only {} batches", seen.len());
    assert!(
        seen.iter().any(|&p| p >= before + 25),
        "the stateless task processed nothing during the restore: {before} before, {seen:?} at each batch"
    );
    // And the restored counts continue: 25 more lines add one to each word.
    wait_until("the counts to continue", || {
        counts_of(&output) == expect(121)
    });
    assert!(streams.close(), "graceful close");
}

/// Everything a restore listener was told, per changelog partition.
#[derive(Clone, Default)]
struct RestoreLog(Arc<std::sync::Mutex<Vec<RestoreEvent>>>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct RestoreEvent {
    changelog: ChangelogPartition,
    store: String,
    start: i64,
    end: i64,
    /// `None` until the restore ended.
    restored: Option<u64>,
}

impl StateRestoreListener for RestoreLog {
    fn on_restore_start(&self, changelog: &ChangelogPartition, store: &str, start: i64, end: i64) {
        self.0.lock().expect("restore log").push(RestoreEvent {
            changelog: changelog.clone(),
            store: store.to_owned(),
            start,
            end,
            restored: None,
        });
    }

    fn on_restore_end(&self, changelog: &ChangelogPartition, store: &str, total: u64) {
        let mut events = self.0.lock().expect("restore log");
        let event = events
            .iter_mut()
            .rev()
            .find(|e| &e.changelog == changelog && e.store == store)
            .expect("restore end without start");
        event.restored = Some(total);
    }
}

impl RestoreLog {
    /// The finished restores, by changelog partition.
    fn events(&self) -> BTreeMap<(String, i32), RestoreEvent> {
        self.0
            .lock()
            .expect("restore log")
            .iter()
            .map(|e| {
                (
                    (e.changelog.topic.clone(), e.changelog.partition),
                    e.clone(),
                )
            })
            .collect()
    }

    fn total_restored(&self) -> u64 {
        self.0
            .lock()
            .expect("restore log")
            .iter()
            .map(|e| e.restored.expect("every restore ended before RUNNING"))
            .sum()
    }
}

/// The store of the source table in these tests.
const LATEST: &str = "latest";

/// A table of `input` kept in store [`LATEST`], with the settings `optimize` adds.
fn start_table(
    app: &str,
    input: &str,
    dir: &std::path::Path,
    optimize: impl FnOnce(StreamsConfig) -> StreamsConfig,
    listener: RestoreLog,
) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    builder.table_with::<String, String>(input, Materialized::as_(LATEST));
    start_running(builder, optimize(test_config(app, dir, listener)))
}

/// Sets keys `k<from>..k<to>` to `value` (`None` deletes them), in `table` and as
/// records to produce.
fn update(
    table: &mut BTreeMap<String, String>,
    records: &mut Vec<(String, Option<String>)>,
    keys: std::ops::Range<usize>,
    value: Option<&str>,
) {
    for i in keys {
        let key = format!("k{i}");
        match value {
            Some(v) => table.insert(key.clone(), v.to_owned()),
            None => table.remove(&key),
        };
        records.push((key, value.map(str::to_owned)));
    }
}

/// The table as interactive queries see it, once it equals `expected`.
fn wait_for_table(streams: &KafkaStreams, expected: &BTreeMap<String, String>, what: &str) {
    let store = streams
        .store::<String, String>(LATEST)
        .expect("the table's store");
    wait_until(what, || {
        store
            .all()
            .is_ok_and(|all| all.into_iter().collect::<BTreeMap<_, _>>() == *expected)
    });
}

/// Interactive-query point reads of the table's store give `expected`.
fn assert_point_reads(streams: &KafkaStreams, expected: &[(&str, Option<&str>)]) {
    let store = streams.store::<String, String>(LATEST).expect("store");
    for (key, value) in expected {
        assert_eq!(
            store.get(&(*key).to_owned()).expect("get").as_deref(),
            *value,
            "{key}"
        );
    }
}

/// The group's committed offset and the log end of each partition of `topic`.
fn committed_and_ends(app: &str, topic: &str) -> BTreeMap<i32, (Option<i64>, i64)> {
    read_committed_and_ends(app, topic).expect("committed offsets and watermarks")
}

/// Every topic of the cluster whose name starts with `prefix`.
fn topics_with_prefix(prefix: &str) -> Vec<String> {
    let consumer: BaseConsumer = config().to_rdkafka().create().expect("metadata client");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|t| t.starts_with(prefix))
        .collect()
}

fn reuse_source_topics(config: StreamsConfig) -> StreamsConfig {
    config
        .set("topology.optimization", "reuse.ktable.source.topics")
        .expect("topology.optimization")
}

#[test]
fn source_table_reusing_its_topic_has_no_changelog_and_restores_from_the_topic() {
    let app = unique_name("table-reuse");
    let input = unique_name("plants");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");

    // 100 keys, the first 20 deleted again, 30 updated: every record changes the table.
    let mut table = BTreeMap::new();
    let mut first = Vec::new();
    update(&mut table, &mut first, 0..100, Some("v1"));
    update(&mut table, &mut first, 0..20, None);
    update(&mut table, &mut first, 20..50, Some("v2"));

    let streams = start_table(
        &app,
        &input,
        dir.path(),
        reuse_source_topics,
        RestoreLog::default(),
    );
    produce_keyed(&input, &first);
    wait_for_table(&streams, &table, "the table to hold every record");
    assert!(streams.close(), "graceful close");
    drop(streams);

    // (a) No changelog topic: the application created no topic at all.
    assert_eq!(topics_with_prefix(&format!("{app}-")), Vec::<String>::new());
    // Every record is committed, and each task's store checkpointed its input
    // partition at the committed offset.
    let offsets = committed_and_ends(&app, &input);
    let memory = RocksDbMemory::default_shared();
    for (&partition, &(committed, end)) in &offsets {
        assert_eq!(committed, Some(end), "partition {partition}");
        let location = StoreLocation {
            state_dir: dir.path().to_path_buf(),
            application_id: app.clone(),
            task: format!("0_{partition}"),
            store: LATEST.into(),
        };
        let source = ChangelogPartition {
            topic: input.clone(),
            partition,
        };
        let store = RocksDbStore::open_with_format(
            &location,
            Some(source),
            &memory,
            ValueFormat::Timestamped,
        )
        .expect("open store");
        assert_eq!(
            store.checkpointed_offset(),
            committed,
            "partition {partition}"
        );
    }
    let committed_total: i64 = offsets.values().map(|(_, end)| end).sum();
    assert_eq!(committed_total, first.len() as i64);

    // Written while the application is down: after the committed offset, so these
    // are processed on restart, not restored.
    let mut later = Vec::new();
    update(&mut table, &mut later, 50..90, Some("v3"));
    produce_keyed(&input, &later);

    // (b) The state dir is lost: the store is restored from the source topic, exactly
    // the committed records, and then processes the rest.
    std::fs::remove_dir_all(dir.path().join(&app)).expect("delete state");
    let log = RestoreLog::default();
    let streams = start_table(&app, &input, dir.path(), reuse_source_topics, log.clone());
    assert_eq!(log.total_restored(), first.len() as u64);
    let events = log.events();
    for (&partition, &(committed, _)) in &offsets {
        let event = &events[&(input.clone(), partition)];
        assert_eq!(event.store, LATEST);
        assert_eq!((event.start, Some(event.end)), (0, committed), "{event:?}");
    }
    assert_eq!(events.len(), 2, "{events:?}");
    wait_for_table(
        &streams,
        &table,
        "the restored table to take the later records",
    );
    assert_point_reads(
        &streams,
        &[("k10", None), ("k30", Some("v2")), ("k60", Some("v3"))],
    );
    assert!(streams.close(), "graceful close");
    assert_eq!(topics_with_prefix(&format!("{app}-")), Vec::<String>::new());
}

/// Copies directory `from` to `to`, recursively.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

#[test]
fn source_table_with_intact_state_restores_only_the_tail_after_its_checkpoint() {
    let app = unique_name("table-tail");
    let input = unique_name("tail-plants");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let snapshot = tempfile::tempdir().expect("snapshot dir");
    let typed = |c: StreamsConfig| {
        c.topology_optimization(TopologyOptimization::REUSE_KTABLE_SOURCE_TOPICS)
    };

    let mut table = BTreeMap::new();
    let mut first = Vec::new();
    update(&mut table, &mut first, 0..100, Some("v1"));
    let streams = start_table(&app, &input, dir.path(), typed, RestoreLog::default());
    produce_keyed(&input, &first);
    wait_for_table(&streams, &table, "round 1");
    assert!(streams.close(), "graceful close");
    drop(streams);
    let round1 = committed_and_ends(&app, &input);
    // A copy of the state as round 1 left it: its checkpoints are round 1's offsets.
    copy_dir(&dir.path().join(&app), snapshot.path());

    // Intact state: checkpointed at the committed offset, nothing to restore.
    let log = RestoreLog::default();
    let streams = start_table(&app, &input, dir.path(), typed, log.clone());
    assert_eq!(log.total_restored(), 0);
    for (&partition, &(committed, _)) in &round1 {
        let event = &log.events()[&(input.clone(), partition)];
        assert_eq!((Some(event.start), Some(event.end)), (committed, committed));
    }
    let mut second = Vec::new();
    update(&mut table, &mut second, 0..60, Some("v2"));
    produce_keyed(&input, &second);
    wait_for_table(&streams, &table, "round 2");
    assert!(streams.close(), "graceful close");
    drop(streams);
    let round2 = committed_and_ends(&app, &input);

    // Round 3 arrives while the application is down, after the committed offset.
    let mut third = Vec::new();
    update(&mut table, &mut third, 60..90, Some("v3"));
    produce_keyed(&input, &third);

    // (c) State as of round 1: restoring replays only round 2, from the checkpoint to
    // the committed offset; round 3 is processed.
    std::fs::remove_dir_all(dir.path().join(&app)).expect("drop current state");
    copy_dir(snapshot.path(), &dir.path().join(&app));
    let log = RestoreLog::default();
    let streams = start_table(&app, &input, dir.path(), typed, log.clone());
    assert_eq!(log.total_restored(), second.len() as u64);
    let events = log.events();
    for partition in 0..2 {
        let event = &events[&(input.clone(), partition)];
        assert_eq!(
            (Some(event.start), Some(event.end)),
            (round1[&partition].0, round2[&partition].0),
            "{event:?}"
        );
    }
    wait_for_table(&streams, &table, "the tail and round 3");
    assert_point_reads(
        &streams,
        &[("k5", Some("v2")), ("k70", Some("v3")), ("k95", Some("v1"))],
    );
    assert!(streams.close(), "graceful close");
}

/// Every record of partition 0 of `topic`, in offset order: key and value (`None` for
/// a tombstone), read from its earliest offset to its end.
fn changelog_records(topic: &str) -> Vec<(String, Option<String>)> {
    let consumer: BaseConsumer = config()
        .group_id(unique_name("compaction-reader"))
        .to_rdkafka()
        .create()
        .expect("consumer");
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut records = Vec::new();
    let mut next = low;
    let deadline = Instant::now() + DEADLINE;
    while next < high {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("changelog record");
            next = m.offset() + 1;
            let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("utf8");
            records.push((
                text(m.key().expect("changelog records have keys")),
                m.payload().map(text),
            ));
        }
    }
    records
}

/// The key the compaction test keeps updating so that new segments roll: the
/// cleaner never touches a log's active segment.
const FILLER: &str = "filler";

#[test]
fn kafkas_log_cleaner_compacts_a_changelog_and_the_compacted_changelog_restores_the_store() {
    let app = unique_name("compaction");
    let input = unique_name("compaction-moves");
    block_on(create_topic(&input, 1));
    let dir = tempfile::tempdir().expect("state dir");
    // A changelog that rolls a segment every 100 ms and is cleaned as soon as 1% of it
    // is dirty; no cache, so every update of the table is logged.
    let table_with_small_segments = |dir: &std::path::Path, listener: RestoreLog| {
        let builder = StreamsBuilder::new();
        builder.table_with::<String, String>(
            &input,
            Materialized::as_(LATEST)
                .with_caching_disabled()
                .with_logging_config([
                    ("segment.ms", "100"),
                    ("min.cleanable.dirty.ratio", "0.01"),
                ]),
        );
        start_running(builder, test_config(&app, dir, listener))
    };
    let streams = table_with_small_segments(dir.path(), RestoreLog::default());

    // 20 people, each moving 5 times; the first 5 are then deleted (tombstones).
    let mut table = BTreeMap::new();
    let mut records = Vec::new();
    for round in 0..5 {
        update(
            &mut table,
            &mut records,
            0..20,
            Some(&format!("address-{round}")),
        );
    }
    update(&mut table, &mut records, 0..5, None);
    produce_keyed(&input, &records);
    wait_for_table(&streams, &table, "the table to hold every move");

    let changelog = format!("{app}-{LATEST}-changelog");
    let before = changelog_records(&changelog);
    assert_eq!(before.len(), records.len(), "every update is logged");
    let admin: AdminClient<DefaultClientContext> =
        config().to_rdkafka().create().expect("admin client");
    let described = block_on(admin.describe_configs(
        [&ResourceSpecifier::Topic(&changelog)],
        &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
    ))
    .expect("describe configs");
    let topic_config = described
        .into_iter()
        .next()
        .expect("one resource")
        .expect("the changelog's configs");
    for (name, value) in [
        ("cleanup.policy", "compact"),
        ("segment.ms", "100"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ] {
        assert_eq!(
            topic_config.get(name).and_then(|e| e.value.as_deref()),
            Some(value),
            "{name} of {changelog}"
        );
    }

    // Each filler update rolls the segment holding the moves out of the active one;
    // then Kafka's cleaner (log.cleaner.backoff.ms=500 on the test broker) keeps only
    // the latest record of each key: the last address, or the tombstone.
    let mut fills = 0;
    let compacted = wait_for_value("Kafka's log cleaner to compact the changelog", || {
        fills += 1;
        produce_keyed(
            &input,
            &[(FILLER.to_owned(), Some(format!("fill-{fills}")))],
        );
        let people: Vec<_> = changelog_records(&changelog)
            .into_iter()
            .filter(|(key, _)| key != FILLER)
            .collect();
        (people.len() == 20).then_some(people)
    });
    table.insert(FILLER.to_owned(), format!("fill-{fills}"));
    let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (key, value) in &records {
        latest.insert(key.clone(), value.clone());
    }
    assert_eq!(
        compacted.into_iter().collect::<BTreeMap<_, _>>(),
        latest,
        "only the latest record of each key remains"
    );
    wait_for_table(&streams, &table, "the last filler update");
    let live: BTreeMap<String, String> = streams
        .store::<String, String>(LATEST)
        .expect("the table's store")
        .all()
        .expect("the live store")
        .into_iter()
        .collect();
    assert_eq!(live, table);
    assert!(streams.close(), "graceful close");
    drop(streams);

    // The state is lost: the store is rebuilt from the compacted changelog alone,
    // fewer records than the moves written (the cleaner may still be removing
    // superseded filler updates, so at most what was there before the restart).
    let remaining = changelog_records(&changelog).len() as u64;
    std::fs::remove_dir_all(dir.path().join(&app)).expect("delete state");
    let log = RestoreLog::default();
    let streams = table_with_small_segments(dir.path(), log.clone());
    let restored_records = log.total_restored();
    assert!(
        restored_records <= remaining && restored_records < records.len() as u64,
        "restored {restored_records} records; the changelog held {remaining}, the moves were {}",
        records.len()
    );
    let restored: BTreeMap<String, String> = streams
        .store::<String, String>(LATEST)
        .expect("the table's store")
        .all()
        .expect("the restored store")
        .into_iter()
        .collect();
    assert_eq!(restored, live, "the restored store equals the live one");
    assert!(streams.close(), "graceful close");
}

/// Polls `check` (which may act, e.g. produce) until it returns `Some`, failing after
/// [`DEADLINE`].
fn wait_for_value<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let mut found = None;
    wait_until(what, || {
        found = check();
        found.is_some()
    });
    found.expect("wait_until returned, so check found a value")
}
