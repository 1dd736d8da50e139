//! Emit-final (`EmitStrategy::on_window_close`) windowed counts across restarts,
//! against the broker named by `KAFKA_BOOTSTRAP_SERVERS`: the close time up to which
//! finals went out is committed with the input offsets (processor metadata in the
//! offset-commit metadata, as in Kafka Streams) and read back when the tasks start
//! again, so no window's or session's final goes out twice, although every closed
//! window is still in the store (kept an hour) when the app restarts.
//!
//! - a tumbling and a session count, at-least-once, closed cleanly and restarted;
//! - the tumbling count under exactly_once_v2 in a separate process, SIGKILLed right
//!   after its first finals are visible (with transactions possibly open), then
//!   restarted.

use std::collections::BTreeMap;

use integration_tests::exactly_once::read_committed_counts_by;
use integration_tests::{
    an_hour_ago_ms, block_on, committed_to_end, create_topic, final_count, per_minute_counts,
    produce_timestamped, restart_test_config, spawn_instance, split_windowed, start_running,
    unique_name, wait_until, FINAL_COUNTS_STORE, MINUTE_MS,
};
use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::runtime::{KafkaStreams, StreamsConfig};

/// Kafka's internal config: look for closed windows after every record, not at most
/// once a second, so that the record that closes a window always emits it.
const EMIT_INTERVAL: &str = "__emit.interval.ms.kstreams.windowed.aggregation__";

const SENSORS: i64 = 8;

/// Which emit-final count a test runs.
#[derive(Clone, Copy)]
enum Count {
    Tumbling,
    Session,
}

fn config(app: &str, dir: &std::path::Path) -> StreamsConfig {
    restart_test_config(app, dir)
        .set(EMIT_INTERVAL, "0")
        .expect("valid config")
}

fn start(
    count: Count,
    app: &str,
    input: &str,
    output: &str,
    dir: &std::path::Path,
) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    let sessions = matches!(count, Count::Session);
    final_count(builder.stream(input), sessions, FINAL_COUNTS_STORE, output);
    start_running(builder, config(app, dir))
}

/// Every sensor's reading every 10 s over the minutes `from..to` after `base`, then one
/// reading per sensor at `to` minutes 30 s, which moves every task's stream time past
/// the end of minute `to - 1` (each sensor's partition gets one), closing its window.
fn tumbling_round(base: i64, from: i64, to: i64) -> Vec<(String, i64)> {
    let mut records = Vec::new();
    for minute in from..to {
        for second in (0..60).step_by(10) {
            for sensor in 0..SENSORS {
                records.push((
                    format!("sensor-{sensor}"),
                    base + minute * MINUTE_MS + second * 1_000,
                ));
            }
        }
    }
    for sensor in 0..SENSORS {
        records.push((format!("sensor-{sensor}"), base + to * MINUTE_MS + 30_000));
    }
    records
}

/// Every sensor's bursts of 3 readings (10 s apart) at each of `bursts` (minutes after
/// `base`), then one reading per sensor `closer` minutes after `base`: a session of
/// its own, more than the one-minute gap after the last burst, so every burst's
/// session closes (and that reading's session only in a later round).
fn session_round(base: i64, bursts: &[i64], closer: i64) -> Vec<(String, i64)> {
    let mut records = Vec::new();
    for minute in bursts {
        for i in 0..3 {
            for sensor in 0..SENSORS {
                records.push((
                    format!("sensor-{sensor}"),
                    base + minute * MINUTE_MS + i * 10_000,
                ));
            }
        }
    }
    for sensor in 0..SENSORS {
        records.push((format!("sensor-{sensor}"), base + closer * MINUTE_MS));
    }
    records
}

/// The finals in `output` (read_committed), in offset order per partition: (windowed
/// key bytes, count).
fn finals(output: &str) -> Vec<(Vec<u8>, i64)> {
    read_committed_counts_by(output, <[u8]>::to_vec)
}

/// The windowed keys that went out more than once, with how often.
fn repeated(finals: &[(Vec<u8>, i64)]) -> BTreeMap<Vec<u8>, usize> {
    let mut seen: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (key, _) in finals {
        *seen.entry(key.clone()).or_insert(0) += 1;
    }
    seen.retain(|_, n| *n > 1);
    seen
}

/// The reference for tumbling windows: per (sensor, window start) the count, for the
/// windows starting before `closed_before` minutes after `base`.
fn closed_minute_counts(
    records: &[(String, i64)],
    base: i64,
    closed_before: i64,
) -> BTreeMap<(String, i64), i64> {
    per_minute_counts(records)
        .into_iter()
        .filter(|((_, start), _)| *start < base + closed_before * MINUTE_MS)
        .collect()
}

/// The tumbling finals as (sensor, window start) → count; fails on a repeated one.
fn minute_finals(output: &str) -> BTreeMap<(String, i64), i64> {
    let out = finals(output);
    let repeated = repeated(&out);
    assert!(
        repeated.is_empty(),
        "finals emitted more than once: {:?}",
        repeated
            .iter()
            .map(|(k, n)| (split_windowed(k), n))
            .collect::<Vec<_>>()
    );
    out.iter().map(|(k, c)| (split_windowed(k), *c)).collect()
}

/// Waits until `output` holds every final of `expected` (and no other), then checks
/// that none went out twice.
fn wait_for_minute_finals(output: &str, expected: &BTreeMap<(String, i64), i64>) {
    wait_until("the closed windows' finals in the output", || {
        finals(output).len() >= expected.len()
    });
    assert_eq!(&minute_finals(output), expected);
}

/// A base time an hour ago on a whole minute, so windows are epoch-aligned minutes.
fn minute_aligned_base() -> i64 {
    let base = an_hour_ago_ms();
    base - base.rem_euclid(MINUTE_MS)
}

#[test]
fn tumbling_final_counts_are_not_emitted_again_after_a_clean_restart() {
    let app = unique_name("final-count-restart");
    let input = unique_name("final-readings");
    let output = unique_name("final-counts");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let base = minute_aligned_base();

    // Round 1: minutes 0..5 close.
    let first = tumbling_round(base, 0, 5);
    let streams = start(Count::Tumbling, &app, &input, &output, dir.path());
    produce_timestamped(&input, &first);
    let expected_first = closed_minute_counts(&first, base, 5);
    assert_eq!(expected_first.len(), (SENSORS * 5) as usize);
    wait_for_minute_finals(&output, &expected_first);
    assert!(streams.close(), "graceful close");
    drop(streams);

    // Round 2 after the restart: minutes 6..9, so minutes 5..9 close. Minutes 0..5
    // are still in the store; their finals must not go out again.
    let streams = start(Count::Tumbling, &app, &input, &output, dir.path());
    let second = tumbling_round(base, 6, 9);
    produce_timestamped(&input, &second);
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    let expected = closed_minute_counts(&all, base, 9);
    assert_eq!(expected.len(), (SENSORS * 9) as usize);
    wait_for_minute_finals(&output, &expected);
    wait_until("round 2 committed", || committed_to_end(&app, &input));
    assert!(streams.close(), "graceful close");
    assert_eq!(minute_finals(&output), expected);
}

#[test]
fn session_final_counts_are_not_emitted_again_after_a_clean_restart() {
    let app = unique_name("final-session-restart");
    let input = unique_name("session-readings");
    let output = unique_name("session-finals");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let base = minute_aligned_base();

    // Round 1: the bursts at minutes 0 and 3 close (the closer at 6 stays open).
    let streams = start(Count::Session, &app, &input, &output, dir.path());
    produce_timestamped(&input, &session_round(base, &[0, 3], 6));
    let expected_first = (SENSORS * 2) as usize;
    wait_until("round 1's closed sessions in the output", || {
        finals(&output).len() >= expected_first
    });
    let out = finals(&output);
    assert_eq!(out.len(), expected_first, "{out:?}");
    assert!(out.iter().all(|(_, count)| *count == 3), "{out:?}");
    assert!(streams.close(), "graceful close");
    drop(streams);

    // Round 2 after the restart: the closer's session of round 1 (1 reading) and the
    // bursts at 9 and 12 close; round 1's sessions, still in the store, must not go
    // out again.
    let streams = start(Count::Session, &app, &input, &output, dir.path());
    produce_timestamped(&input, &session_round(base, &[9, 12], 15));
    let expected = (SENSORS * 5) as usize;
    wait_until("round 2's closed sessions in the output", || {
        finals(&output).len() >= expected
    });
    wait_until("round 2 committed", || committed_to_end(&app, &input));
    assert!(streams.close(), "graceful close");
    let out = finals(&output);
    assert_eq!(repeated(&out), BTreeMap::new(), "sessions emitted twice");
    assert_eq!(out.len(), expected);
    let counted: i64 = out.iter().map(|(_, count)| count).sum();
    assert_eq!(counted, SENSORS * (3 + 3 + 1 + 3 + 3));
}

#[cfg(unix)]
#[test]
fn tumbling_final_counts_are_emitted_once_across_a_sigkill_under_exactly_once() {
    let app = unique_name("final-count-eos-kill");
    let input = unique_name("final-eos-readings");
    let output = unique_name("final-eos-counts");
    block_on(create_topic(&input, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let state_dir = dir.path().to_str().expect("UTF-8 state dir");
    let base = minute_aligned_base();
    let emit_interval = format!("{EMIT_INTERVAL}=0");
    let group_instance = format!("group.instance.id={app}-instance");
    let args = [
        app.as_str(),
        input.as_str(),
        output.as_str(),
        "final-count",
        state_dir,
        "processing.guarantee=exactly_once_v2",
        "commit.interval.ms=100",
        emit_interval.as_str(),
        // The restarted instance takes its predecessor's place in the group at once.
        group_instance.as_str(),
    ];
    let instance = env!("CARGO_BIN_EXE_streams_instance");

    // Round 1 in a separate process, SIGKILLed as soon as its first finals are
    // committed: transactions with further finals may be open, and are aborted.
    let first = tumbling_round(base, 0, 5);
    let mut killed = spawn_instance(instance, &args);
    produce_timestamped(&input, &first);
    wait_until("some finals of round 1 committed", || {
        !finals(&output).is_empty()
    });
    killed.0.kill().expect("SIGKILL");
    killed.0.wait().expect("reap");

    // Restarted (its stores wiped and restored from the changelogs: no checkpoint
    // under exactly-once after a crash), it finishes round 1 and counts round 2.
    let _restarted = spawn_instance(instance, &args);
    let second = tumbling_round(base, 6, 9);
    produce_timestamped(&input, &second);
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    let expected = closed_minute_counts(&all, base, 9);
    wait_for_minute_finals(&output, &expected);
    wait_until("round 2 committed", || committed_to_end(&app, &input));
    assert_eq!(minute_finals(&output), expected);
}
