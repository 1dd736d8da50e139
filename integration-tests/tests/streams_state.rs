//! kafka-streams state against the broker named by `KAFKA_BOOTSTRAP_SERVERS`: a word
//! count's changelog topic is created compacted with the source's partition count,
//! and reading it to its end rebuilds exactly what the RocksDB stores hold; with the
//! state dir deleted the counts are restored from the changelog and continue; with it
//! intact only the tail after the checkpoint is restored.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::{
    block_on, config, count_words, counts_of, create_topic, decode_counts, produce_lines,
    read_to_end, unique_name, wait_until, DEADLINE,
};
use kafka_client::rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use kafka_client::rdkafka::client::DefaultClientContext;
use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer};
use kafka_client::rdkafka::{Offset, TopicPartitionList};
use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::runtime::{KafkaStreams, State, StreamsConfig};
use kafka_streams::state::{
    ChangelogPartition, ReadOnlyKeyValueStore, RocksDbMemory, RocksDbStore, StateRestoreListener,
    StoreLocation,
};

fn describe_cleanup_policy(topic: &str) -> Option<String> {
    let admin: AdminClient<DefaultClientContext> =
        config().to_rdkafka().create().expect("admin client");
    let results = block_on(admin.describe_configs(
        [&ResourceSpecifier::Topic(topic)],
        &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
    ))
    .expect("describe configs");
    results.into_iter().find_map(|r| {
        let resource = r.ok()?;
        resource.get("cleanup.policy")?.value.clone()
    })
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
        let store = RocksDbStore::open(&location, None, &memory).expect("open store");
        for entry in store.all().expect("iterate store") {
            let (k, v) = entry.expect("store entry");
            stored.insert(k, v);
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
    let streams_config = StreamsConfig::new(app, config())
        .commit_interval(Duration::from_millis(200))
        .state_dir(dir)
        .state_restore_listener(listener)
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
    streams
}

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

struct Instance(Child);

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a word-count process and waits until it is running.
fn spawn_word_count(app: &str, input: &str, output: &str, dir: &std::path::Path) -> Instance {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_streams_wordcount_instance"))
        .args([app, input, output])
        .arg(dir)
        .env(
            "KAFKA_BOOTSTRAP_SERVERS",
            integration_tests::bootstrap_servers(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning streams_wordcount_instance");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("RUNNING") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(DEADLINE)
        .expect("instance never became RUNNING");
    Instance(child)
}

/// Whether group `app` committed the end offset of every partition of `topic`.
fn committed_to_end(app: &str, topic: &str) -> bool {
    let consumer: BaseConsumer = config()
        .group_id(app)
        .to_rdkafka()
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition(topic, p);
    }
    let Ok(committed) = consumer.committed_offsets(tpl, Duration::from_secs(10)) else {
        return false;
    };
    committed.elements().iter().all(|e| {
        let end = consumer
            .fetch_watermarks(topic, e.partition(), Duration::from_secs(10))
            .map(|(_, high)| high)
            .unwrap_or(-1);
        matches!(e.offset(), Offset::Offset(o) if o == end)
    })
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
