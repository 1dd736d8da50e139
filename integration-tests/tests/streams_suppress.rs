//! `KTable::suppress` against the broker named by `KAFKA_BOOTSTRAP_SERVERS`: a
//! windowed count with `suppress(until_window_closes(..))`, stopped mid-stream with
//! windows still buffered and its state directory wiped, restarts with its buffer
//! restored from the buffer's compacted changelog, and the output holds exactly one
//! final count per window, equal to the counts of the input.

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::{
    an_hour_ago_ms, block_on, committed_to_end, count_per_minute, create_topic,
    describe_topic_configs, per_minute_counts, produce_timestamped, read_to_end,
    restart_test_config, split_windowed, start_running, unique_name, wait_until, MINUTE_MS,
};
use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::runtime::KafkaStreams;

/// The grace period: the out-of-order readings below are at most 7 s late.
const GRACE: Duration = Duration::from_secs(10);
/// One reading per sensor every 5 s.
const READING_INTERVAL_MS: i64 = 5_000;
const SENSORS: i64 = 6;
/// Ten minutes of readings.
const READINGS: i64 = 120;
/// The readings before the stop: six minutes, so the stop falls on a window end.
const BEFORE_STOP: i64 = 72;

/// Per sensor and window start, a count.
type WindowCounts = BTreeMap<(String, i64), i64>;

/// Reading `i` of every sensor, in time order; every fourth reading of a sensor is
/// 7 s late (out of order, within the grace period).
fn readings(base: i64, from: i64, to: i64) -> Vec<(String, i64)> {
    (from..to)
        .flat_map(|i| {
            (0..SENSORS).map(move |sensor| {
                let late = if i % 4 == 3 { 7_000 } else { 0 };
                (
                    format!("sensor-{sensor}"),
                    base + i * READING_INTERVAL_MS + sensor * 100 - late,
                )
            })
        })
        .collect()
}

/// Every record of the output topic (not only the latest per window), decoded.
fn output_records(topic: &str) -> (WindowCounts, usize) {
    let (latest, read) = read_to_end(topic);
    let latest = latest
        .into_iter()
        .map(|(k, v)| {
            let count: [u8; 8] = v.try_into().expect("8-byte count");
            (split_windowed(&k), i64::from_be_bytes(count))
        })
        .collect();
    (latest, read)
}

/// Starts the suppressed windowed count and waits until it is RUNNING.
fn final_counts(app: &str, input: &str, output: &str, dir: &std::path::Path) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    count_per_minute(builder.stream(input), GRACE, "window-counts", output, true);
    start_running(builder, restart_test_config(app, dir))
}

#[test]
fn suppressed_final_results_survive_a_restart_with_wiped_state_without_duplicates_or_gaps() {
    let app = unique_name("suppress-restart");
    let input = unique_name("suppress-readings");
    let output = unique_name("suppress-finals");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    // Window-aligned, so the stop falls on a window end.
    let base = an_hour_ago_ms() / MINUTE_MS * MINUTE_MS;
    let before_stop = readings(base, 0, BEFORE_STOP);
    let after_restart = readings(base, BEFORE_STOP, READINGS);
    let all: Vec<_> = before_stop.iter().chain(&after_restart).cloned().collect();
    let expected = per_minute_counts(&all);

    // Before the stop: six minutes of readings, all processed and committed.
    let streams = final_counts(&app, &input, &output, dir.path());
    produce_timestamped(&input, &before_stop);
    wait_until("the readings before the stop committed", || {
        committed_to_end(&app, &input)
    });
    assert!(streams.close(), "graceful close");
    drop(streams);
    let (at_stop, read_at_stop) = output_records(&output);
    assert_eq!(read_at_stop, at_stop.len(), "a window emitted twice");
    assert!(
        !at_stop.is_empty(),
        "windows closed before the stop were emitted"
    );
    for (window, count) in &at_stop {
        assert_eq!(expected.get(window), Some(count), "final of {window:?}");
    }
    // The last minute before the stop is still buffered (its windows close 10 s
    // after their end), and no reading after the restart falls in it: only the
    // restored buffer can emit it.
    let last_minute = base + (BEFORE_STOP * READING_INTERVAL_MS) - MINUTE_MS;
    let buffered: Vec<_> = expected
        .keys()
        .filter(|(_, start)| *start == last_minute)
        .collect();
    assert_eq!(buffered.len(), SENSORS as usize);
    assert!(buffered.iter().all(|w| !at_stop.contains_key(*w)));
    assert!(per_minute_counts(&after_restart)
        .keys()
        .all(|(_, start)| *start > last_minute));

    // The buffer's changelog is Kafka's: `<app>-<name>-store-changelog`, compacted.
    let buffer_changelog = format!("{app}-final-counts-store-changelog");
    assert_eq!(
        describe_topic_configs(&buffer_changelog)
            .get("cleanup.policy")
            .map(String::as_str),
        Some("compact")
    );

    // The state directory is lost; the rest of the readings, then one reading per
    // sensor an hour later, which closes every window of the readings.
    std::fs::remove_dir_all(dir.path().join(&app)).expect("delete state");
    let streams = final_counts(&app, &input, &output, dir.path());
    let closing: Vec<_> = (0..SENSORS)
        .map(|sensor| (format!("sensor-{sensor}"), base + 3_600_000))
        .collect();
    produce_timestamped(&input, &after_restart);
    produce_timestamped(&input, &closing);
    wait_until("every window's final count", || {
        output_records(&output).0.len() >= expected.len()
    });
    wait_until("every reading committed", || committed_to_end(&app, &input));
    assert!(streams.close(), "graceful close");

    let (finals, read) = output_records(&output);
    assert_eq!(finals, expected, "final counts differ from the input's");
    assert_eq!(
        read,
        expected.len(),
        "{} output records for {} windows: a final emitted twice",
        read,
        expected.len()
    );
}
