//! Standby replicas (`num.standby.replicas`) against the broker named by
//! `KAFKA_BOOTSTRAP_SERVERS`:
//! - two instances with one standby run a word count (of an input keyed by word)
//!   whose changelog holds 200 000 records; closing the active instance hands its tasks to the other, whose standby
//!   copy leaves at most 1% of the changelog to restore (the restore listener's
//!   count), and the counts stay right;
//! - without standbys the same failover restores the moved tasks' changelogs from
//!   scratch: far more than 1%;
//! - under exactly-once (the standby reading `read_committed`) the same holds;
//! - a standby store answers queries that allow stale stores, not the others, and
//!   `query_metadata_for_key` names its host among the standby hosts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration_tests::exactly_once::{latest_counts, read_committed_counts};
use integration_tests::{
    an_hour_ago_ms, block_on, config, create_topic, produce_at, unique_name, wait_until, DEADLINE,
};
use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer};
use kafka_client::serde::StringSerde;
use kafka_streams::dsl::{Materialized, StreamsBuilder};
use kafka_streams::runtime::{HostInfo, KafkaStreams, State, StoreQueryParameters, StreamsConfig};
use kafka_streams::state::{ChangelogPartition, StateRestoreListener};

/// Distinct words of the failover tests: one changelog record each.
const WORDS: usize = 200_000;

/// Counts the changelog records the instance restores into its active tasks.
#[derive(Default, Clone)]
struct RestoredRecords(Arc<AtomicU64>);

impl StateRestoreListener for RestoredRecords {
    fn on_batch_restored(&self, _: &ChangelogPartition, _: &str, _: i64, restored: u64) {
        self.0.fetch_add(restored, Ordering::SeqCst);
    }
}

impl RestoredRecords {
    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A word count into the store `counts` with `standbys` standby replicas and
/// `processing.guarantee` `guarantee`, no record cache (each update is one changelog
/// record), started but not awaited.
fn start_instance(
    app: &str,
    (input, output): (&str, &str),
    dir: &std::path::Path,
    server: &str,
    (standbys, guarantee): (usize, &str),
    restored: RestoredRecords,
) -> KafkaStreams {
    let config = StreamsConfig::new(app, config())
        .commit_interval(Duration::from_millis(100))
        .cache_max_bytes(0)
        .state_dir(dir)
        .num_standby_replicas(standbys)
        .state_restore_listener(restored)
        .application_server(server)
        .and_then(|c| c.set("processing.guarantee", guarantee))
        .and_then(|c| c.set("session.timeout.ms", "6000"))
        .and_then(|c| c.set("heartbeat.interval.ms", "500"))
        .expect("valid config");
    let builder = StreamsBuilder::new();
    // The input is keyed by word: no repartition, so each instance's work is the
    // counting and its changelog.
    builder
        .stream::<String, String>(input)
        .group_by_key()
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .to(output);
    let streams = KafkaStreams::new(builder.build().expect("topology"), config).expect("client");
    streams.start().expect("start");
    streams
}

fn word(n: usize) -> String {
    format!("w{n:06}")
}

/// Words `from..to`, each keyed by itself, partitioned as Kafka's producers (and
/// `query_metadata_for_key`) do.
fn produce_words(topic: &str, from: usize, to: usize) {
    let at = an_hour_ago_ms();
    let records: Vec<(String, String, i64)> = (from..to).map(|n| (word(n), word(n), at)).collect();
    produce_at(topic, &records);
}

/// What `streams` answers for store `counts` (`stale`: standby and restoring stores
/// too), or `None` while it cannot answer.
fn queried(streams: &KafkaStreams, stale: bool) -> Option<BTreeMap<String, i64>> {
    let mut parameters = StoreQueryParameters::from_name("counts");
    if stale {
        parameters = parameters.enable_stale_stores();
    }
    let store = streams
        .store_with_parameters::<String, i64>(&parameters)
        .ok()?;
    store.all().ok().map(|all| all.into_iter().collect())
}

fn entries(streams: &KafkaStreams, stale: bool) -> usize {
    queried(streams, stale).map_or(0, |m| m.len())
}

/// The offsets the changelog of store `counts` holds (the sum of its partitions' end
/// offsets: one record per update, plus the transaction markers under exactly-once).
fn changelog_records(app: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer = config().to_rdkafka().create().expect("consumer");
    let topic = format!("{app}-counts-changelog");
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(&topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .sum()
}

/// Two instances of one application (a word count into `counts`) with their topics
/// and state directories.
struct Pair {
    app: String,
    input: String,
    output: String,
    a: KafkaStreams,
    b: KafkaStreams,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// Starts instance A at `servers.0`, then B at `servers.1` (with `restored_b`
/// counting its restores), on a new 2-partition input named after `prefix`, and waits
/// until each runs one task.
fn start_pair(
    prefix: &str,
    servers: (&str, &str),
    settings: (usize, &str),
    restored_b: RestoredRecords,
) -> Pair {
    let app = unique_name(prefix);
    let input = unique_name(&format!("{prefix}-words"));
    let output = unique_name(&format!("{prefix}-counts"));
    block_on(create_topic(&input, 2));
    let dirs = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let topics = (input.as_str(), output.as_str());
    let a = start_instance(
        &app,
        topics,
        dirs.0.path(),
        servers.0,
        settings,
        RestoredRecords::default(),
    );
    assert!(a.wait_for_state(State::Running, DEADLINE), "a not running");
    let b = start_instance(&app, topics, dirs.1.path(), servers.1, settings, restored_b);
    // One task per input partition.
    wait_until("both instances to run tasks", || {
        let (ta, tb) = (a.local_tasks(), b.local_tasks());
        ta.len() == 1 && tb.len() == 1 && a.state() == State::Running && b.state() == State::Running
    });
    Pair {
        app,
        input,
        output,
        a,
        b,
        _dirs: dirs,
    }
}

/// The records restored by the instance that takes the tasks over, and the
/// changelog's size.
struct Failover {
    changelog: i64,
    restored: u64,
}

/// Two instances with `standbys` standby replicas count `WORDS` distinct words; the
/// first one then closes, and the second takes its tasks over. Checks that the counts
/// are right after the failover, and that counting goes on from them.
fn fail_over(standbys: usize) -> Failover {
    fail_over_with(standbys, "at_least_once", WORDS)
}

/// [`fail_over`] with `processing.guarantee` `guarantee` and `words` distinct words.
fn fail_over_with(standbys: usize, guarantee: &str, words: usize) -> Failover {
    // One scenario at a time: each keeps two instances busy counting, and several at
    // once on a small machine would only slow each other past the waits' deadline.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let restored_b = RestoredRecords::default();
    let Pair {
        app,
        input,
        output,
        a,
        b,
        _dirs,
    } = start_pair(
        "standby",
        ("127.0.0.1:7301", "127.0.0.1:7302"),
        (standbys, guarantee),
        restored_b.clone(),
    );

    produce_words(&input, 0, words);
    wait_until("the two instances to count every word", || {
        entries(&a, false) + entries(&b, false) == words
    });
    // The stores hold every count before the producers have written them all (and,
    // under exactly-once, before their transactions end).
    wait_until("the changelog to hold every count", || {
        changelog_records(&app, 2) >= words as i64
    });
    let changelog = changelog_records(&app, 2);
    let on_b = entries(&b, false);
    assert!(on_b > 0 && on_b < words, "b counts {on_b} words itself");
    if standbys > 0 {
        // B's standby of A's counting task holds A's words too.
        wait_until("b's standby to catch up", || entries(&b, true) == words);
        assert!(!b.local_standby_tasks().is_empty(), "b keeps a standby");
    } else {
        assert!(b.local_standby_tasks().is_empty());
        assert_eq!(entries(&b, true), on_b, "no standby store on b");
    }

    let restored_before = restored_b.get();
    assert!(a.close(), "graceful close of a");
    drop(a);
    wait_until("b to count every word alone", || {
        entries(&b, false) == words && b.state() == State::Running
    });
    assert!(b.wait_for_state(State::Running, DEADLINE), "b not running");
    let restored = restored_b.get() - restored_before;

    // Counting goes on from the restored counts.
    produce_words(&input, 0, 1_000);
    let mut want: BTreeMap<String, i64> = (0..words).map(|n| (word(n), 1)).collect();
    for n in 0..1_000 {
        want.insert(word(n), 2);
    }
    wait_until("b to count the second round", || {
        queried(&b, false).as_ref() == Some(&want)
    });
    assert!(b.close(), "graceful close of b");
    // Closed, B has committed everything: the committed output ends with the counts.
    assert_eq!(
        latest_counts(&read_committed_counts(&output)),
        want,
        "the output's latest counts"
    );
    eprintln!(
        "{guarantee}, standbys={standbys}: changelog {changelog} offsets, restored on failover {restored}"
    );
    Failover {
        changelog,
        restored,
    }
}

#[test]
fn with_a_standby_the_new_owner_restores_at_most_one_percent_of_the_changelog() {
    let Failover {
        changelog,
        restored,
    } = fail_over(1);
    assert!(
        restored as f64 <= changelog as f64 * 0.01,
        "restored {restored} of {changelog} changelog records"
    );
}

#[test]
fn without_standbys_the_new_owner_restores_the_moved_tasks_from_scratch() {
    let Failover {
        changelog,
        restored,
    } = fail_over(0);
    // A counted about half of the words; B had no copy of them.
    assert!(
        restored as f64 >= changelog as f64 * 0.25,
        "restored {restored} of {changelog} changelog records"
    );
}

#[test]
fn under_exactly_once_a_standby_also_leaves_only_the_tail_to_restore() {
    let Failover {
        changelog,
        restored,
    } = fail_over_with(1, "exactly_once_v2", 20_000);
    assert!(
        restored as f64 <= changelog as f64 * 0.01,
        "restored {restored} of {changelog} changelog records"
    );
}

fn host(endpoint: &str) -> HostInfo {
    HostInfo::parse(endpoint).expect("endpoint")
}

#[test]
fn standby_stores_answer_stale_queries_only_and_are_listed_as_standby_hosts() {
    let (server_a, server_b) = ("127.0.0.1:7311", "127.0.0.1:7312");
    let Pair {
        input, a, b, _dirs, ..
    } = start_pair(
        "standby-iq",
        (server_a, server_b),
        (1, "at_least_once"),
        RestoredRecords::default(),
    );
    let words = 200;
    produce_words(&input, 0, words);
    let want: BTreeMap<String, i64> = (0..words).map(|n| (word(n), 1)).collect();
    wait_until("each instance's standby to hold the other's counts", || {
        queried(&a, true).as_ref() == Some(&want) && queried(&b, true).as_ref() == Some(&want)
    });

    let mut checked = BTreeSet::new();
    // Each lookup reads the metadata topic: a sample of the words will do.
    for (word, count) in want.iter().take(16) {
        let meta = b
            .query_metadata_for_key("counts", word.as_str(), &StringSerde)
            .expect("metadata");
        let (active, standby) = if meta.active_host == host(server_a) {
            (&a, &b)
        } else {
            (&b, &a)
        };
        let standby_host = if meta.active_host == host(server_a) {
            server_b
        } else {
            server_a
        };
        assert_eq!(
            meta.standby_hosts,
            BTreeSet::from([host(standby_host)]),
            "{word}"
        );
        let stale = StoreQueryParameters::from_name("counts").enable_stale_stores();
        let fresh = StoreQueryParameters::from_name("counts");
        // The active instance answers either way; the standby only a stale query.
        for parameters in [&stale, &fresh] {
            let store = active
                .store_with_parameters::<String, i64>(parameters)
                .expect("store");
            assert_eq!(store.get(word).expect("get"), Some(*count), "{word}");
        }
        let store = standby
            .store_with_parameters::<String, i64>(&stale)
            .expect("store");
        assert_eq!(store.get(word).expect("stale get"), Some(*count), "{word}");
        let store = standby
            .store_with_parameters::<String, i64>(&fresh)
            .expect("store");
        assert_eq!(store.get(word).expect("get"), None, "{word}");
        checked.insert(meta.active_host);
    }
    assert_eq!(checked.len(), 2, "both instances own words");
    assert!(a.close() && b.close(), "graceful close");
}
