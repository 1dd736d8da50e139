//! `processing.guarantee=exactly_once_v2` against the broker named by
//! `KAFKA_BOOTSTRAP_SERVERS`, for what SIGKILLs (`streams_crash.rs`) do not show:
//! - a stream thread whose producer is fenced (another producer registered its
//!   `transactional.id`) aborts, gives up its tasks (their stores are restored
//!   again), rejoins and carries on; the client never fails, and the output stays
//!   exactly once;
//! - a processing error with the "fail" handler aborts the transaction: after a
//!   restart the store holds no effect of the aborted transaction (a query equals
//!   the committed output and the reference), although the failed run had started
//!   from a checkpoint (written by a clean close before it).
//!
//! The word count's record cache is off, so the output is every count: `1..n` per
//! word (see `integration_tests::exactly_once`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration_tests::exactly_once::{judge, latest_counts, wait_for_counts, Verdict};
use integration_tests::{block_on, config, create_topic, produce_lines, unique_name, DEADLINE};
use kafka_client::transaction::TransactionalProducer;
use kafka_client::ProducerRecord;
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::runtime::{KafkaStreams, ProcessingGuarantee, State, StreamsConfig};
use kafka_streams::state::{ChangelogPartition, StateRestoreListener};

/// Counts the restores started (one per logged store of each task created).
#[derive(Clone, Default)]
struct RestoreStarts(Arc<AtomicUsize>);

impl StateRestoreListener for RestoreStarts {
    fn on_restore_start(&self, _: &ChangelogPartition, _: &str, _: i64, _: i64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Lines of round `round`, and what they add to each word's count.
fn round_lines(round: usize, expected: &mut BTreeMap<String, i64>) -> Vec<String> {
    (0..120)
        .map(|i| {
            let line = format!("a{} b{} r{round}", i % 10, i % 7);
            for word in line.split_whitespace() {
                *expected.entry(word.to_owned()).or_insert(0) += 1;
            }
            line
        })
        .collect()
}

fn produce(topic: &str, lines: &[String]) {
    produce_lines(topic, &lines.iter().map(String::as_str).collect::<Vec<_>>());
}

/// The word count of `integration_tests::count_words`, exactly-once, without a
/// record cache; `fail` makes it fail (processing error, "fail" handler) right after
/// counting the word `boom`.
fn word_count(
    app: &str,
    input: &str,
    output: &str,
    state_dir: &std::path::Path,
    fail: Arc<AtomicBool>,
    restores: RestoreStarts,
) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(input)
        .flat_map_values(|line| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone())
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .peek(move |word, _| {
            if word == "boom" && fail.load(Ordering::SeqCst) {
                panic!("injected failure after counting {word}");
            }
        })
        .to(output);
    let config = StreamsConfig::new(app, config())
        .processing_guarantee(ProcessingGuarantee::ExactlyOnceV2)
        .cache_max_bytes(0)
        .state_dir(state_dir)
        .state_restore_listener(restores)
        .set("session.timeout.ms", "6000")
        .and_then(|c| c.set("heartbeat.interval.ms", "500"))
        .expect("valid config");
    let streams = KafkaStreams::new(builder.build().expect("topology"), config).expect("client");
    streams.start().expect("start");
    streams
}

/// The process id the instance keeps in its state directory (Kafka's file).
fn process_id(state_dir: &std::path::Path, app: &str) -> String {
    let text = std::fs::read_to_string(state_dir.join(app).join("kafka-streams-process-metadata"))
        .expect("process id file");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    json["processId"].as_str().expect("processId").to_owned()
}

#[test]
fn fenced_stream_thread_gives_up_its_tasks_rejoins_and_stays_exactly_once() {
    let app = unique_name("eos-fenced");
    let input = unique_name("eos-fenced-lines");
    let output = unique_name("eos-fenced-counts");
    let scratch = unique_name("eos-fencer");
    block_on(create_topic(&input, 2));
    block_on(create_topic(&scratch, 1));
    let dir = tempfile::tempdir().expect("state dir");
    let restores = RestoreStarts::default();
    let streams = word_count(
        &app,
        &input,
        &output,
        dir.path(),
        Arc::new(AtomicBool::new(false)),
        restores.clone(),
    );
    let states = Arc::new(Mutex::new(Vec::new()));
    let seen = states.clone();
    streams.set_state_listener(move |new, _| seen.lock().unwrap().push(new));
    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "{:?}",
        streams.error()
    );
    let mut expected = BTreeMap::new();
    produce(&input, &round_lines(1, &mut expected));
    wait_for_counts(&output, &expected, DEADLINE);
    let restores_before = restores.0.load(Ordering::SeqCst);

    // Another producer registers the stream thread's transactional.id: the thread's
    // producer is fenced, and the fencer's open transaction is the newest.
    let transactional_id = format!("{app}-{}-1", process_id(dir.path(), &app));
    let fencer: TransactionalProducer<String, String> =
        TransactionalProducer::new(&config(), &transactional_id).expect("fencer");
    block_on(async {
        fencer.init(Duration::from_secs(30)).await.expect("init");
        fencer.begin().expect("begin");
        fencer
            .send(ProducerRecord::new(&scratch, "k".into(), "fencer".into()))
            .await
            .expect("send");
    });

    // The next transaction of the thread finds it fenced.
    produce(&input, &round_lines(2, &mut expected));
    let out = wait_for_counts(&output, &expected, DEADLINE * 2);
    assert_eq!(
        judge(&expected, &out),
        Verdict::default(),
        "output after the fence is not exactly once"
    );
    assert!(
        restores.0.load(Ordering::SeqCst) > restores_before,
        "the fenced thread did not give up and re-create its tasks"
    );
    assert_eq!(streams.state(), State::Running, "{:?}", streams.error());
    assert!(
        !states.lock().unwrap().contains(&State::Error),
        "the client failed: {:?}",
        streams.error()
    );
    // The thread took its id back with a new producer: now the fencer is fenced.
    let fenced = block_on(fencer.commit(Duration::from_secs(30))).expect_err("fencer fenced");
    assert!(fenced.is_fenced(), "{fenced}");
    assert!(streams.close(), "graceful close");
}

#[test]
fn aborted_transaction_leaves_no_trace_in_the_store() {
    let app = unique_name("eos-abort");
    let input = unique_name("eos-abort-lines");
    let output = unique_name("eos-abort-counts");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let start = |fail: &Arc<AtomicBool>| {
        word_count(
            &app,
            &input,
            &output,
            dir.path(),
            fail.clone(),
            RestoreStarts::default(),
        )
    };
    // A first run ends cleanly: its stores checkpoint on close.
    let fail = Arc::new(AtomicBool::new(false));
    let first = start(&fail);
    let mut expected = BTreeMap::new();
    produce(&input, &round_lines(1, &mut expected));
    wait_for_counts(&output, &expected, DEADLINE);
    assert!(first.close(), "graceful close");

    // The second starts from the checkpoints, and fails.
    fail.store(true, Ordering::SeqCst);
    let failing = start(&fail);
    // Round 2 ends with "boom": counted into the store, then the failure aborts the
    // transaction holding that count (and whatever else of round 2 it holds).
    let mut round2 = round_lines(2, &mut expected);
    round2.push("boom".into());
    *expected.entry("boom".into()).or_insert(0) += 1;
    produce(&input, &round2);
    assert!(
        failing.wait_for_state(State::Error, DEADLINE),
        "the injected failure did not stop the client"
    );
    failing.close();
    let committed = integration_tests::exactly_once::read_committed_counts(&output);
    assert!(
        !committed.iter().any(|(word, _)| word == "boom"),
        "the aborted transaction's output is visible: {committed:?}"
    );

    // Restarted without the failure: the store must not hold the aborted count of
    // "boom" (it would count it twice), nor any other aborted update.
    fail.store(false, Ordering::SeqCst);
    let second = start(&fail);
    let out = wait_for_counts(&output, &expected, DEADLINE);
    assert_eq!(judge(&expected, &out), Verdict::default());
    let store = second
        .store::<String, i64>("counts")
        .expect("store")
        .all()
        .expect("query");
    let store: BTreeMap<String, i64> = store.into_iter().collect();
    assert_eq!(store, expected, "the store differs from the reference");
    assert_eq!(
        store,
        latest_counts(&out),
        "the store differs from the committed output"
    );
    assert!(second.close(), "graceful close");
}
