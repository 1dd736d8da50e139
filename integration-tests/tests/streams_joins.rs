//! Stream-stream joins against a real broker: after a SIGKILL and wiped local state,
//! the join stores (both window stores and the left join's outer-join store) restore
//! from their changelogs, so records arriving later still find the partners buffered
//! before the crash, and records left without a partner still come out once their
//! window closes; and with two instances, stopping one mid-stream loses no result.

use std::time::{Duration, Instant};

use integration_tests::{
    an_hour_ago_ms, block_on, committed_to_end, config, create_topic, join_streams, produce_at,
    read_records, spawn_instance, unique_name, wait_for_partitions, wait_until, Instance, DEADLINE,
};
use kafka_streams::dsl::{JoinWindows, StreamJoined, StreamsBuilder};
use kafka_streams::runtime::{KafkaStreams, State, StreamsConfig};

/// Records `(key, value)` of `topic` as UTF-8 strings, sorted.
fn sorted_records(topic: &str) -> Vec<(String, String)> {
    let mut records: Vec<(String, String)> = read_records(topic)
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8(k).expect("utf-8 key"),
                String::from_utf8(v.expect("a joined value")).expect("utf-8 value"),
            )
        })
        .collect();
    records.sort();
    records
}

/// Waits until `topic` holds exactly `expected` (sorted), else fails showing the
/// difference.
fn wait_for_records(topic: &str, mut expected: Vec<(String, String)>) {
    expected.sort();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = sorted_records(topic);
        if found == expected {
            return;
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = expected.iter().filter(|e| !found.contains(e)).collect();
            let unexpected: Vec<_> = found.iter().filter(|f| !expected.contains(f)).collect();
            panic!(
                "{topic}: {} records, {} expected; missing (first 5): {:?}; unexpected (first 5): {:?}",
                found.len(),
                expected.len(),
                &missing[..missing.len().min(5)],
                &unexpected[..unexpected.len().min(5)]
            );
        }
    }
}

fn pair(i: i64, right: Option<&str>) -> (String, String) {
    (
        format!("k{i}"),
        format!(
            "L{i}+{}",
            right.map_or("null".to_owned(), |r| format!("{r}{i}"))
        ),
    )
}

fn lefts(range: std::ops::Range<i64>, base: i64) -> Vec<(String, String, i64)> {
    range
        .map(|i| (format!("k{i}"), format!("L{i}"), base + i))
        .collect()
}

fn rights(range: std::ops::Range<i64>, base: i64) -> Vec<(String, String, i64)> {
    range
        .map(|i| (format!("k{i}"), format!("R{i}"), base + i + 5))
        .collect()
}

/// Left records far after the others (10 minutes, past window and grace), keyed to
/// reach every partition: stream time moves on in every task, so the left join emits
/// what waited without a partner.
fn stream_time_movers(base: i64) -> Vec<(String, String, i64)> {
    (0..20)
        .map(|i| (format!("z{i}"), format!("Z{i}"), base + 600_000))
        .collect()
}

#[cfg(unix)]
#[test]
fn sigkilled_join_with_wiped_state_restores_its_stores_and_later_records_find_partners() {
    let app = unique_name("join-kill");
    let [left, right, inner_out, left_out] =
        ["join-left", "join-right", "join-inner", "join-leftjoin"].map(unique_name);
    block_on(create_topic(&left, 2));
    block_on(create_topic(&right, 2));
    let dir = tempfile::tempdir().expect("state dir");
    let dir_arg = dir.path().to_str().expect("utf-8 dir").to_owned();
    let args = [app.as_str(), &left, &right, &inner_out, &left_out, &dir_arg];
    let exe = env!("CARGO_BIN_EXE_streams_join_instance");
    let base = an_hour_ago_ms();

    // Round 1: 300 left records, partners for the first 100.
    let mut first: Instance = spawn_instance(exe, &args);
    produce_at(&left, &lefts(0..300, base));
    produce_at(&right, &rights(0..100, base));
    let joined_1: Vec<_> = (0..100).map(|i| pair(i, Some("R"))).collect();
    wait_for_records(&inner_out, joined_1.clone());
    wait_for_records(&left_out, joined_1);
    // At-least-once: crash only once round 1 is committed, so nothing is replayed.
    wait_until("round 1 committed", || {
        committed_to_end(&app, &left) && committed_to_end(&app, &right)
    });
    first.0.kill().expect("SIGKILL");
    first.0.wait().expect("reap");
    std::fs::remove_dir_all(dir.path().join(&app)).expect("wipe state");

    // Round 2, on a new instance with no local state: partners for the next 100, which
    // only the restored left stores hold; then stream time moves past every window.
    let _second = spawn_instance(exe, &args);
    produce_at(&right, &rights(100..200, base));
    let joined: Vec<_> = (0..200).map(|i| pair(i, Some("R"))).collect();
    wait_for_records(&inner_out, joined.clone());
    produce_at(&left, &stream_time_movers(base));
    // The last 100 never found a partner: the restored outer-join store still holds
    // them, and they come out once each; the 200 joined ones never do.
    let mut left_joined = joined;
    left_joined.extend((200..300).map(|i| pair(i, None)));
    wait_for_records(&left_out, left_joined);
}

/// An in-process join instance of `app`.
fn start_instance(
    app: &str,
    left: &str,
    right: &str,
    inner_out: &str,
    left_out: &str,
    dir: &std::path::Path,
) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    join_streams(
        builder.stream::<String, String>(left),
        builder.stream::<String, String>(right),
        inner_out,
        left_out,
    );
    let config = StreamsConfig::new(app, config())
        .commit_interval(Duration::from_millis(200))
        .state_dir(dir)
        .set("session.timeout.ms", "6000")
        .and_then(|c| c.set("heartbeat.interval.ms", "500"))
        .and_then(|c| {
            c.set(
                "__emit.interval.ms.kstreams.outer.join.spurious.results.fix__",
                "0",
            )
        })
        .expect("config");
    let streams = KafkaStreams::new(builder.build().expect("topology"), config).expect("client");
    streams.start().expect("start");
    streams
}

#[test]
fn a_join_over_two_instances_loses_no_result_when_one_stops_mid_stream() {
    let app = unique_name("join-two");
    let [left, right, inner_out, left_out] =
        ["two-left", "two-right", "two-inner", "two-leftjoin"].map(unique_name);
    block_on(create_topic(&left, 4));
    block_on(create_topic(&right, 4));
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("state dir"),
        tempfile::tempdir().expect("state dir"),
    );
    let base = an_hour_ago_ms();
    let a = start_instance(&app, &left, &right, &inner_out, &left_out, dir_a.path());
    let b = start_instance(&app, &left, &right, &inner_out, &left_out, dir_b.path());
    for streams in [&a, &b] {
        assert!(streams.wait_for_state(State::Running, DEADLINE), "running");
    }
    produce_at(&left, &lefts(0..400, base));
    produce_at(&right, &rights(0..200, base));
    let joined_1: Vec<_> = (0..200).map(|i| pair(i, Some("R"))).collect();
    wait_for_records(&inner_out, joined_1);
    // Both took part: b had tasks, whose stores a has to restore after it leaves.
    assert!(b.metrics().processed_records > 0 && a.metrics().processed_records > 0);
    // Mid-stream: b leaves; its tasks move to a, which restores their join stores
    // from the changelogs; the partners of the other 200 left records come after.
    assert!(b.close(), "graceful close of b");
    produce_at(&right, &rights(200..400, base));
    let mut joined: Vec<(String, String)> = (0..400).map(|i| pair(i, Some("R"))).collect();
    joined.sort();
    // At-least-once: records b processed but had not committed when it left are
    // processed again by a, so a result may come twice; none may be missing.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = sorted_records(&inner_out);
        let mut distinct = found.clone();
        distinct.dedup();
        if distinct == joined {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "join results: {} distinct of {} expected; missing: {:?}",
            distinct.len(),
            joined.len(),
            joined
                .iter()
                .filter(|p| !distinct.contains(p))
                .take(5)
                .collect::<Vec<_>>()
        );
    }
    assert!(a.close(), "graceful close of a");
}

/// A key change before a join: the re-keyed input goes through a repartition topic
/// the application creates with as many partitions as the other input (3), not as its
/// own input (2), so the two are co-partitioned and the app starts and joins.
#[test]
fn a_rekeyed_join_input_is_repartitioned_to_the_other_inputs_partition_count() {
    let app = unique_name("join-rekeyed");
    let [left, right, out] = ["rekeyed-left", "rekeyed-right", "rekeyed-out"].map(unique_name);
    block_on(create_topic(&left, 2));
    block_on(create_topic(&right, 3));
    let dir = tempfile::tempdir().expect("state dir");
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(&left)
        .select_key(|_, v: &String| v.split_once('/').map_or("", |(k, _)| k).to_owned())
        .join_with(
            &builder.stream::<String, String>(&right),
            |l: &String, r: &String| format!("{l}+{r}"),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(10))
                .expect("join windows"),
            StreamJoined::default().with_name("rekeyed"),
        )
        .to(&out);
    let streams = KafkaStreams::new(
        builder.build().expect("topology"),
        StreamsConfig::new(&app, config())
            .commit_interval(Duration::from_millis(200))
            .state_dir(dir.path()),
    )
    .expect("client");
    streams.start().expect("start");
    assert!(streams.wait_for_state(State::Running, DEADLINE), "running");
    block_on(wait_for_partitions(
        &format!("{app}-rekeyed-left-repartition"),
        3,
    ));
    let base = an_hour_ago_ms();
    produce_at(&left, &[("x".into(), "a/L1".into(), base)]);
    produce_at(&right, &[("a".into(), "R1".into(), base + 5)]);
    wait_for_records(&out, vec![("a".to_owned(), "a/L1+R1".to_owned())]);
    assert!(streams.close(), "graceful close");
}
