//! Interactive queries and global tables against the broker named by
//! `KAFKA_BOOTSTRAP_SERVERS`:
//! - a store's contents equal the output topic's latest value per key, and
//!   `query_metadata_for_key` names the instance that owns each key;
//! - a query while the store restores fails with the "migrating/restoring" error
//!   instead of answering from half-restored state;
//! - with two instances, stopping one moves its tasks to the other, whose restored
//!   state matches and answers queries for the moved keys;
//! - a global table on a 3-partition topic holds every key on each of two instances.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

use integration_tests::{
    block_on, config, count_words, counts_of, create_topic, produce_lines, unique_name, wait_until,
    DEADLINE,
};
use kafka_client::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use kafka_client::serde::StringSerde;
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::runtime::{HostInfo, KafkaStreams, State, StreamsConfig};
use kafka_streams::state::{ChangelogPartition, StateRestoreListener};
use kafka_streams::{InvalidStoreReason, StreamsError};

fn word_count_config(app: &str, dir: &std::path::Path, server: &str) -> StreamsConfig {
    StreamsConfig::new(app, config())
        .commit_interval(Duration::from_millis(200))
        .state_dir(dir)
        .application_server(server)
        .and_then(|c| c.set("session.timeout.ms", "6000"))
        .and_then(|c| c.set("heartbeat.interval.ms", "500"))
        .expect("valid config")
}

/// Word count into the store `counts`, started but not awaited.
fn start_word_count(input: &str, output: &str, config: StreamsConfig) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    count_words(builder.stream::<String, String>(input), "counts", output);
    let streams = KafkaStreams::new(builder.build().expect("topology"), config).expect("client");
    streams.start().expect("start");
    streams
}

/// `words` distinct words, each `rounds` times, 10 per line.
fn lines(words: usize, rounds: usize) -> Vec<String> {
    let all: Vec<String> = (0..rounds)
        .flat_map(|_| (0..words).map(|w| format!("word{w}")))
        .collect();
    all.chunks(10).map(|c| c.join(" ")).collect()
}

fn produce(topic: &str, lines: &[String]) {
    produce_lines(topic, &lines.iter().map(String::as_str).collect::<Vec<_>>());
}

fn expected(words: usize, rounds: i64) -> BTreeMap<String, i64> {
    (0..words).map(|w| (format!("word{w}"), rounds)).collect()
}

/// What `streams` answers for every word of store `counts`, or `None` while the
/// store cannot be queried.
fn queried(streams: &KafkaStreams) -> Option<BTreeMap<String, i64>> {
    let store = streams.store::<String, i64>("counts").ok()?;
    store.all().ok().map(|all| all.into_iter().collect())
}

fn host(endpoint: &str) -> HostInfo {
    HostInfo::parse(endpoint).expect("endpoint")
}

#[test]
fn queries_match_the_output_topic_and_metadata_locates_keys() {
    let app = unique_name("iq");
    let input = unique_name("iq-lines");
    let output = unique_name("iq-counts");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let streams = start_word_count(
        &input,
        &output,
        word_count_config(&app, dir.path(), "127.0.0.1:7001"),
    );
    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "not running"
    );

    produce(&input, &lines(50, 3));
    wait_until("the output topic to hold the final counts", || {
        counts_of(&output) == expected(50, 3)
    });

    // The store answers what the output topic says, key by key and in bulk.
    let latest = counts_of(&output);
    let store = streams.store::<String, i64>("counts").expect("store");
    let all: BTreeMap<String, i64> = store.all().expect("all").into_iter().collect();
    assert_eq!(all, latest);
    for (word, count) in &latest {
        assert_eq!(store.get(word).expect("get"), Some(*count), "{word}");
    }
    assert_eq!(store.get(&"absent".to_string()).expect("get"), None);
    let some = store
        .range(
            std::ops::Bound::Included(&"word10".to_string()),
            std::ops::Bound::Excluded(&"word12".to_string()),
        )
        .expect("range");
    let some: BTreeSet<String> = some.into_iter().map(|(k, _)| k).collect();
    assert!(
        some.contains("word10") && some.contains("word11") && !some.contains("word12"),
        "{some:?}"
    );
    assert!(store.approximate_num_entries().expect("estimate") > 0);

    // This single instance owns every key, at the partition Kafka's partitioner picks.
    for word in latest.keys() {
        let meta = streams
            .query_metadata_for_key("counts", word.as_str(), &StringSerde)
            .expect("metadata");
        assert_eq!(meta.active_host, host("127.0.0.1:7001"));
        assert_eq!(
            Some(meta.partition),
            kafka_client::default_partition(Some(word.as_bytes()), 2)
        );
    }

    // Wrong names and types are clear errors.
    assert!(matches!(
        streams.store::<String, i64>("nope"),
        Err(StreamsError::InvalidStateStore {
            reason: InvalidStoreReason::Unknown,
            ..
        })
    ));
    let wrong = streams
        .store::<String, String>("counts")
        .expect("store")
        .get(&"word1".to_string());
    assert!(
        matches!(
            wrong,
            Err(StreamsError::InvalidStateStore {
                reason: InvalidStoreReason::WrongType { .. },
                ..
            })
        ),
        "{wrong:?}"
    );
    assert!(streams.close(), "graceful close");
    assert!(matches!(
        store.get(&"word1".to_string()),
        Err(StreamsError::InvalidStateStore {
            reason: InvalidStoreReason::NotAvailable(_),
            ..
        })
    ));
}

/// Holds the first restored batch until the test releases it.
struct GateListener {
    entered: Mutex<Option<Sender<()>>>,
    release: Mutex<Receiver<()>>,
}

impl StateRestoreListener for GateListener {
    fn on_batch_restored(&self, _: &ChangelogPartition, _: &str, _: i64, _: u64) {
        let first = self
            .entered
            .lock()
            .expect("gate")
            .take()
            .map(|tx| tx.send(()));
        if first.is_some() {
            let _ = self.release.lock().expect("gate").recv_timeout(DEADLINE);
        }
    }
}

#[test]
fn query_during_restore_is_refused_then_answers_the_restored_counts() {
    let app = unique_name("iq-restore");
    let input = unique_name("iq-restore-lines");
    let output = unique_name("iq-restore-counts");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let streams = start_word_count(
        &input,
        &output,
        word_count_config(&app, dir.path(), "127.0.0.1:7002"),
    );
    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "not running"
    );
    produce(&input, &lines(200, 2));
    wait_until("the first counts", || {
        counts_of(&output) == expected(200, 2)
    });
    assert!(streams.close(), "graceful close");
    drop(streams);

    // Lose the state; restore is held at its first batch.
    std::fs::remove_dir_all(dir.path().join(&app)).expect("delete state");
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let config = word_count_config(&app, dir.path(), "127.0.0.1:7002").state_restore_listener(
        GateListener {
            entered: Mutex::new(Some(entered_tx)),
            release: Mutex::new(release_rx),
        },
    );
    let streams = start_word_count(&input, &output, config);
    entered
        .recv_timeout(DEADLINE)
        .expect("restore never started");

    let store = streams.store::<String, i64>("counts").expect("store");
    let during = store.get(&"word1".to_string());
    assert!(
        matches!(&during, Err(e) if e.is_store_migrating() && e.is_retriable()),
        "a query during restore gave {during:?}"
    );
    let during_all = store.all();
    assert!(
        matches!(&during_all, Err(e) if e.is_store_migrating()),
        "{during_all:?}"
    );
    assert_ne!(streams.state(), State::Running);
    release.send(()).expect("release the restore");

    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "not running"
    );
    wait_until("the restored store to answer", || {
        queried(&streams) == Some(expected(200, 2))
    });
    assert!(streams.close(), "graceful close");
}

#[test]
fn stopping_one_of_two_instances_moves_its_tasks_and_queries_to_the_other() {
    let app = unique_name("iq-two");
    let input = unique_name("iq-two-lines");
    let output = unique_name("iq-two-counts");
    block_on(create_topic(&input, 4));
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let a = start_word_count(
        &input,
        &output,
        word_count_config(&app, dir_a.path(), "127.0.0.1:7101"),
    );
    assert!(a.wait_for_state(State::Running, DEADLINE), "a not running");
    let b = start_word_count(
        &input,
        &output,
        word_count_config(&app, dir_b.path(), "127.0.0.1:7102"),
    );
    wait_until("both instances to own tasks", || {
        let (ta, tb) = (a.local_tasks(), b.local_tasks());
        !ta.is_empty()
            && !tb.is_empty()
            && ta.len() + tb.len() == 8
            && a.state() == State::Running
            && b.state() == State::Running
    });

    produce(&input, &lines(100, 2));
    let want = expected(100, 2);
    wait_until("the output topic to hold the final counts", || {
        counts_of(&output) == want
    });

    // Each key is served by the instance the metadata names, and the two instances
    // together hold every count.
    let mut served = BTreeMap::new();
    let mut hosts = BTreeSet::new();
    for word in want.keys() {
        let meta = a
            .query_metadata_for_key("counts", word.as_str(), &StringSerde)
            .expect("metadata");
        let owner = if meta.active_host == host("127.0.0.1:7101") {
            &a
        } else {
            assert_eq!(meta.active_host, host("127.0.0.1:7102"));
            &b
        };
        hosts.insert(meta.active_host);
        let count = owner
            .store::<String, i64>("counts")
            .expect("store")
            .get(word)
            .expect("get");
        served.insert(word.clone(), count.unwrap_or(-1));
    }
    assert_eq!(served, want);
    assert_eq!(hosts.len(), 2, "both instances own keys");
    let clients = a.metadata_for_all_streams_clients().expect("all clients");
    assert_eq!(
        clients
            .iter()
            .map(|c| c.host_info.clone())
            .collect::<Vec<_>>(),
        vec![host("127.0.0.1:7101"), host("127.0.0.1:7102")]
    );
    assert!(clients
        .iter()
        .all(|c| c.state_store_names.contains("counts")));
    // The input and the repartition topic, 4 partitions each, split between them.
    assert_eq!(
        clients
            .iter()
            .map(|c| c.topic_partitions.len())
            .sum::<usize>(),
        8,
        "{clients:?}"
    );
    let on_b_before: BTreeMap<String, i64> = queried(&b).expect("b answers");
    assert!(on_b_before.len() < want.len(), "b held everything already");

    // Stop A: B takes over A's tasks, restores their stores from the changelog, and
    // answers for the moved keys.
    assert!(a.close(), "graceful close of a");
    drop(a);
    wait_until("b to answer for every key", || {
        queried(&b) == Some(want.clone())
    });
    // B may answer a moment before its thread reports RUNNING (the state follows at
    // the end of the loop iteration that finished the restore).
    assert!(b.wait_for_state(State::Running, DEADLINE), "b not running");
    // The claims are eventually consistent, like Kafka's metadata after a rebalance.
    wait_until("b to own every key in the metadata", || {
        want.keys().all(|word| {
            b.query_metadata_for_key("counts", word.as_str(), &StringSerde)
                .is_ok_and(|meta| meta.active_host == host("127.0.0.1:7102"))
        })
    });
    let clients = b.metadata_for_all_streams_clients().expect("all clients");
    assert_eq!(clients.len(), 1, "a left the group: {clients:?}");
    assert_eq!(clients[0].topic_partitions.len(), 8);

    // Counting continues from the restored state.
    produce(&input, &lines(100, 1));
    wait_until("the counts to continue on b", || {
        queried(&b) == Some(expected(100, 3)) && counts_of(&output) == expected(100, 3)
    });
    assert!(b.close(), "graceful close of b");
}

fn start_global(app: &str, input: &str, plants: &str, dir: &std::path::Path) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    builder.global_table_with::<String, String>(plants, Materialized::as_("plants"));
    builder
        .stream::<String, String>(input)
        .to(&format!("{input}-out"));
    let config = StreamsConfig::new(app, config())
        .commit_interval(Duration::from_millis(200))
        .state_dir(dir);
    let streams = KafkaStreams::new(builder.build().expect("topology"), config).expect("client");
    streams.start().expect("start");
    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "not running"
    );
    streams
}

fn plants_of(streams: &KafkaStreams) -> Option<BTreeMap<String, String>> {
    let store = streams.store::<String, String>("plants").ok()?;
    store.all().ok().map(|all| all.into_iter().collect())
}

#[test]
fn global_table_holds_every_key_of_three_partitions_on_each_of_two_instances() {
    let app = unique_name("global");
    let input = unique_name("global-in");
    let plants = unique_name("plants");
    block_on(create_topic(&input, 3));
    block_on(create_topic(&plants, 3));
    let producer: BaseProducer = config().to_rdkafka().create().expect("producer");
    let mut want = BTreeMap::new();
    for i in 0..30 {
        let key = format!("plant{i:02}");
        let value = format!("site-{i}");
        producer
            .send(
                BaseRecord::to(&plants)
                    .key(&key)
                    .payload(&value)
                    .partition(i % 3),
            )
            .map_err(|(e, _)| e)
            .expect("send");
        want.insert(key, value);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");

    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let a = start_global(&app, &input, &plants, dir_a.path());
    let b = start_global(&app, &input, &plants, dir_b.path());
    // Restored fully before the stream threads started.
    assert_eq!(plants_of(&a), Some(want.clone()));
    wait_until("b to be running with the full table", || {
        plants_of(&b) == Some(want.clone())
    });

    // Updates and tombstones on any partition reach both copies.
    producer
        .send(
            BaseRecord::to(&plants)
                .key("plant04")
                .payload("moved")
                .partition(1),
        )
        .map_err(|(e, _)| e)
        .expect("send");
    producer
        .send(
            BaseRecord::<str, str>::to(&plants)
                .key("plant05")
                .partition(2),
        )
        .map_err(|(e, _)| e)
        .expect("send tombstone");
    producer.flush(Duration::from_secs(30)).expect("flush");
    want.insert("plant04".into(), "moved".into());
    want.remove("plant05");
    wait_until("both copies to apply the update and the tombstone", || {
        plants_of(&a) == Some(want.clone()) && plants_of(&b) == Some(want.clone())
    });
    let meta = a
        .query_metadata_for_key("plants", "plant01", &StringSerde)
        .map(|m| m.partition);
    assert!(
        matches!(meta, Err(StreamsError::Config(_))),
        "global key metadata without application.server: {meta:?}"
    );
    assert!(a.close() && b.close(), "graceful close");
}
