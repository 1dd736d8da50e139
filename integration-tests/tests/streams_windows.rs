//! kafka-streams windows against the broker named by `KAFKA_BOOTSTRAP_SERVERS`: a
//! windowed count (1-minute tumbling windows, RocksDB, logged) creates its changelog
//! `compact,delete` with `retention.ms` = the store's retention plus one day, and with
//! its state directory wiped it restores its windows from that changelog and goes on
//! counting from the restored counts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::{
    an_hour_ago_ms, block_on, committed_to_end, config, count_per_minute, create_topic,
    describe_topic_configs, per_minute_counts, produce_timestamped, read_to_end,
    restart_test_config, spawn_instance, split_windowed, start_running, unique_name, wait_until,
    DEADLINE, MINUTE_MS, WINDOW_COUNTS_GRACE, WINDOW_COUNTS_STORE,
};
use kafka_streams::dsl::{StreamsBuilder, TimeWindows};
use kafka_streams::runtime::{KafkaStreams, StreamsConfig};
use kafka_streams::state::{ChangelogPartition, StateRestoreListener};

const GRACE: Duration = WINDOW_COUNTS_GRACE;
const STORE: &str = WINDOW_COUNTS_STORE;
/// Kafka's default `windowstore.changelog.additional.retention.ms`.
const ONE_DAY_MS: i64 = 86_400_000;

/// Per sensor and window start, the number of records.
type WindowCounts = BTreeMap<(String, i64), i64>;

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

/// Starts the windowed count of `input` into `output` and waits until it is RUNNING.
fn windowed_count(
    app: &str,
    input: &str,
    output: &str,
    dir: &std::path::Path,
    listener: RestoredCounter,
) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    count_per_minute(builder.stream(input), GRACE, STORE, output, false);
    start_running(
        builder,
        restart_test_config(app, dir).state_restore_listener(listener),
    )
}

/// One round: 8 sensors, each with a reading every 7 s over 3 minutes from `base`,
/// so that every sensor has records in 3 or 4 one-minute windows.
fn round(base: i64) -> Vec<(String, i64)> {
    (0..8)
        .flat_map(|sensor| {
            (0..26).map(move |i| {
                (
                    format!("sensor-{sensor}"),
                    base + sensor * 1_000 + i * 7_000,
                )
            })
        })
        .collect()
}

/// The last count per sensor and window in the output topic.
fn output_counts(topic: &str) -> WindowCounts {
    read_to_end(topic)
        .0
        .into_iter()
        .map(|(k, v)| {
            let count: [u8; 8] = v.try_into().expect("8-byte count");
            (split_windowed(&k), i64::from_be_bytes(count))
        })
        .collect()
}

/// Waits until the last count per sensor and window in `output` is `expected`.
fn wait_for_output_counts(output: &str, expected: &WindowCounts) {
    let mut last = WindowCounts::new();
    let deadline = std::time::Instant::now() + DEADLINE;
    while last != *expected {
        assert!(
            std::time::Instant::now() < deadline,
            "the counts did not continue from the restored windows; differing: {:?}",
            expected
                .iter()
                .filter(|(w, c)| last.get(*w) != Some(*c))
                .map(|(w, c)| (w, c, last.get(w)))
                .take(5)
                .collect::<Vec<_>>()
        );
        last = output_counts(output);
    }
}

/// The changelog's latest value per sensor and window. Its keys are Kafka's binary
/// window keys (key, 8-byte start, 4-byte sequence number) and its values
/// `ValueAndTimestamp` bytes (8-byte timestamp, then the 8-byte count).
fn changelog_counts(topic: &str) -> WindowCounts {
    read_to_end(topic)
        .0
        .into_iter()
        .map(|(k, v)| {
            let window = &k[..k.len() - 4];
            assert_eq!(v.len(), 16, "ValueAndTimestamp of an i64: {v:?}");
            let count: [u8; 8] = v[8..].try_into().expect("8-byte count");
            (split_windowed(window), i64::from_be_bytes(count))
        })
        .collect()
}

#[test]
fn windowed_count_restores_its_windows_from_the_changelog_after_wiped_state_and_continues() {
    let app = unique_name("windowed-count-restore");
    let input = unique_name("window-readings");
    let output = unique_name("window-counts");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let changelog = format!("{app}-{STORE}-changelog");
    let base = an_hour_ago_ms();

    // Round 1, then a graceful close (which commits).
    let first_round = round(base);
    let streams = windowed_count(
        &app,
        &input,
        &output,
        dir.path(),
        RestoredCounter::default(),
    );
    produce_timestamped(&input, &first_round);
    let expected_first = per_minute_counts(&first_round);
    wait_until("round 1 window counts in the output", || {
        output_counts(&output) == expected_first
    });
    assert!(streams.close(), "graceful close");
    drop(streams);

    // The changelog holds exactly the windows' counts, and has Kafka's windowed
    // changelog configs: compact,delete, retention.ms = retention (size + grace by
    // default) + one day.
    assert_eq!(changelog_counts(&changelog), expected_first);
    let configs = describe_topic_configs(&changelog);
    assert_eq!(
        configs.get("cleanup.policy").map(String::as_str),
        Some("compact,delete"),
        "{configs:?}"
    );
    let retention = MINUTE_MS + GRACE.as_millis() as i64;
    assert_eq!(
        configs.get("retention.ms"),
        Some(&(retention + ONE_DAY_MS).to_string()),
        "{configs:?}"
    );

    // The state dir is lost: the window store is rebuilt from its changelog, and the
    // counts go on from the restored ones (round 2 falls in some of the same windows,
    // and in later ones).
    std::fs::remove_dir_all(dir.path().join(&app)).expect("delete state");
    let restored = RestoredCounter::default();
    let streams = windowed_count(&app, &input, &output, dir.path(), restored.clone());
    let rebuilt = restored.0.load(Ordering::SeqCst);
    assert!(
        rebuilt >= expected_first.len() as u64,
        "restored {rebuilt} changelog records for {} windows",
        expected_first.len()
    );
    // Two minutes on: its first minute overlaps round 1's last, its last two are
    // beyond round 1's windows.
    let second_round = round(base + 2 * MINUTE_MS);
    produce_timestamped(&input, &second_round);
    let all: Vec<_> = first_round.iter().chain(&second_round).cloned().collect();
    let expected = per_minute_counts(&all);
    assert!(
        expected_first
            .iter()
            .any(|(window, count)| expected[window] > *count),
        "round 2 adds to windows of round 1"
    );
    assert!(
        expected.len() > expected_first.len(),
        "round 2 opens new windows too"
    );
    wait_for_output_counts(&output, &expected);
    assert!(streams.close(), "graceful close");
    assert_eq!(changelog_counts(&changelog), expected);
}

#[cfg(unix)]
#[test]
fn sigkilled_windowed_count_with_wiped_state_restores_from_the_changelog_and_counts_on() {
    let app = unique_name("windowed-count-kill");
    let input = unique_name("kill-readings");
    let output = unique_name("kill-window-counts");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let changelog = format!("{app}-{STORE}-changelog");
    let base = an_hour_ago_ms();
    let state_dir = dir.path().to_str().expect("UTF-8 state dir");
    let instance_args = [
        app.as_str(),
        input.as_str(),
        output.as_str(),
        "windowed-count",
        state_dir,
    ];
    let instance = env!("CARGO_BIN_EXE_streams_instance");

    // Round 1 through a separate process, then SIGKILL: no close, no last commit,
    // no clean shutdown of RocksDB.
    let first_round = round(base);
    let mut first = spawn_instance(instance, &instance_args);
    produce_timestamped(&input, &first_round);
    let expected_first = per_minute_counts(&first_round);
    wait_until("round 1 window counts in the output", || {
        output_counts(&output) == expected_first
    });
    // At-least-once: kill once round 1 is committed. Killed earlier, the restarted
    // instance would count again the records processed since the last commit (their
    // updates already in the changelog), as Kafka Streams would without exactly-once.
    wait_until("round 1 committed", || committed_to_end(&app, &input));
    first.kill();

    // Input keeps flowing while no instance runs: half of round 2 (two minutes on,
    // so its first minute overlaps round 1's last, and the rest opens new windows).
    let second_round = round(base + 2 * MINUTE_MS);
    let (while_down, after_restart) = second_round.split_at(second_round.len() / 2);
    produce_timestamped(&input, while_down);

    // The state directory is lost with the process: the windows are restored from
    // the changelog, and the counts go on from the restored ones.
    std::fs::remove_dir_all(dir.path().join(&app)).expect("delete state");
    let _second = spawn_instance(instance, &instance_args);
    produce_timestamped(&input, after_restart);
    let all: Vec<_> = first_round.iter().chain(&second_round).cloned().collect();
    let expected = per_minute_counts(&all);
    assert!(
        expected_first
            .iter()
            .any(|(window, count)| expected[window] > *count),
        "round 2 adds to windows of round 1"
    );
    wait_for_output_counts(&output, &expected);
    wait_until("the changelog holds the final counts", || {
        changelog_counts(&changelog) == expected
    });
    let configs = describe_topic_configs(&changelog);
    assert_eq!(
        configs.get("cleanup.policy").map(String::as_str),
        Some("compact,delete"),
        "{configs:?}"
    );
    assert_eq!(
        configs.get("retention.ms"),
        Some(&(MINUTE_MS + GRACE.as_millis() as i64 + ONE_DAY_MS).to_string()),
        "{configs:?}"
    );
}

/// Remembers, per input partition, whether each record's offset followed the previous
/// one's.
struct OffsetOrder {
    seen: Arc<std::sync::Mutex<BTreeMap<i32, (i64, u64)>>>,
}

impl kafka_streams::processor::Processor<String, String, String, String> for OffsetOrder {
    fn process(
        &mut self,
        ctx: &mut kafka_streams::processor::ProcessorContext<'_, String, String>,
        _record: kafka_streams::processor::Record<String, String>,
    ) -> Result<(), kafka_streams::processor::ProcessorError> {
        if let Some(meta) = ctx.record_metadata() {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let (last, out_of_order) = seen.entry(meta.partition).or_insert((-1, 0));
            if meta.offset <= *last {
                *out_of_order += 1;
            }
            *last = meta.offset;
        }
        Ok(())
    }
}

#[test]
fn a_partitions_records_are_processed_in_offset_order_from_the_first_fetch() {
    // Records already on the broker when the app starts: its first fetches land on
    // the consumer's own queue while the partitions move to the stream thread's fetch
    // queue. None may be processed after a later record of its partition (a windowed
    // count without grace would drop them as late).
    let input = unique_name("order-in");
    block_on(create_topic(&input, 4));
    let base = an_hour_ago_ms();
    let records: Vec<(String, i64)> = (0..300_000)
        .map(|i| (format!("k{}", i % 1000), base + i / 100))
        .collect();
    produce_timestamped(&input, &records);

    let seen = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let builder = StreamsBuilder::new();
    let probe = seen.clone();
    let readings = builder.stream::<String, String>(&input);
    let _: kafka_streams::KStream<String, String> = readings.process(move || OffsetOrder {
        seen: probe.clone(),
    });
    // A windowed count without grace on a logged RocksDB store beside it: the work
    // that lets fetched records pile up on both queues at start-up, and a second
    // witness (it would drop a late-processed record).
    readings
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(1)).expect("windows"))
        .count();
    let dir = tempfile::tempdir().expect("state dir");
    let streams = KafkaStreams::new(
        builder.build().expect("topology"),
        StreamsConfig::new(unique_name("order-app"), config()).state_dir(dir.path()),
    )
    .expect("streams");
    streams.start().expect("start");
    wait_until("every input record processed", || {
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.len() == 4 && seen.values().map(|(last, _)| last + 1).sum::<i64>() == 300_000
    });
    let dropped = streams.metrics().skipped_records;
    assert!(streams.close_timeout(DEADLINE), "close");
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(dropped, 0, "records dropped as late by the windowed count");
    let out_of_order: Vec<(i32, u64)> = seen.iter().map(|(p, (_, n))| (*p, *n)).collect();
    assert!(
        out_of_order.iter().all(|(_, n)| *n == 0),
        "records processed after a later record of their partition, per partition: {out_of_order:?}"
    );
}
