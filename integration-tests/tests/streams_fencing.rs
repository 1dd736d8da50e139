//! Fencing under `processing.guarantee=exactly_once_v2`, against the broker named by
//! `KAFKA_BOOTSTRAP_SERVERS`, with word-count instances as separate processes
//! (`streams_wordcount_instance --tag`: each output value says which instance wrote
//! it, `<count>@<tag>`):
//! - two live instances with one identity: B starts on a copy of A's process id
//!   file (what a copied state directory carries), so its stream thread has A's
//!   `transactional.id` and fences A's. A gives up its tasks and fails with the
//!   duplicate-identity error instead of taking the id back (which would fence B,
//!   and so on forever). Read with `read_committed`, no record of A follows B's first
//!   record in any output partition (the fence), and the output is exactly once;
//! - a zombie: A, SIGSTOPped past its session and transaction timeouts, is replaced
//!   by B (another process id). Once resumed, A finds its transaction aborted (the
//!   broker aborted it at its timeout) or its membership gone, gives up its tasks,
//!   rejoins and goes on: it is no duplicate identity and must not fail. The output
//!   is exactly once (a visible late write of A would repeat counts B wrote).
//!
//! Input flows the whole time, so A is mid-transaction when the fence comes.

#![cfg(unix)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use integration_tests::exactly_once::{judge, read_committed_records, Verdict};
use integration_tests::{
    block_on, config, create_topic, send_waiting, spawn_instance_with_output, unique_name,
    wait_until, Instance, DEADLINE,
};
use kafka_client::rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};

const EXE: &str = env!("CARGO_BIN_EXE_streams_wordcount_instance");

/// Kafka's process id file in an instance's state directory.
const PROCESS_FILE: &str = "kafka-streams-process-metadata";

/// Starts the tagged word count of `app` on `state_dir` under exactly-once, every
/// update in the output (no record cache), and waits until it is `RUNNING`.
fn start(
    app: &str,
    input: &str,
    output: &str,
    state_dir: &Path,
    tag: &str,
) -> (Instance, Receiver<String>) {
    let dir = state_dir.to_str().expect("utf-8 state dir");
    spawn_instance_with_output(
        EXE,
        &[
            app,
            input,
            output,
            dir,
            "--tag",
            tag,
            "processing.guarantee=exactly_once_v2",
            "commit.interval.ms=100",
            "statestore.cache.max.bytes=0",
        ],
    )
}

/// Produces rounds of lines to `topic` until `stop`; returns each word's count.
fn produce_until(topic: String, stop: Arc<AtomicBool>) -> BTreeMap<String, i64> {
    let producer: BaseProducer = config()
        .set("enable.idempotence", "true")
        .to_rdkafka()
        .create()
        .expect("producer");
    let mut expected = BTreeMap::new();
    let mut round = 0_usize;
    while !stop.load(Ordering::SeqCst) {
        for i in 0..20 {
            let line = format!("a{} b{} r{}", i % 10, (i + round) % 7, round % 50);
            for word in line.split_whitespace() {
                *expected.entry(word.to_owned()).or_insert(0) += 1;
            }
            let key = format!("line-{round}-{i}");
            send_waiting(
                &producer,
                BaseRecord::to(&topic)
                    .key(key.as_str())
                    .payload(line.as_str()),
            );
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
        round += 1;
        // A steady trickle, so the instances are mid-transaction most of the time.
        std::thread::sleep(Duration::from_millis(20));
    }
    expected
}

/// An output record: a word's count, and the instance that wrote it.
#[derive(Debug)]
struct Tagged {
    partition: i32,
    offset: i64,
    word: String,
    count: i64,
    tag: String,
}

/// The committed output, per partition in offset order.
fn read_tagged(topic: &str) -> Vec<Tagged> {
    read_committed_records(topic)
        .into_iter()
        .map(|r| {
            let value = String::from_utf8(r.value).expect("utf-8 value");
            let (count, tag) = value.split_once('@').expect("<count>@<tag>");
            Tagged {
                partition: r.partition,
                offset: r.offset,
                word: String::from_utf8(r.key).expect("utf-8 word"),
                count: count.parse().expect("count"),
                tag: tag.to_owned(),
            }
        })
        .collect()
}

/// Reads the output until every word has reached its count; returns it.
fn wait_for_all(output: &str, expected: &BTreeMap<String, i64>) -> Vec<Tagged> {
    let deadline = Instant::now() + DEADLINE * 2;
    loop {
        let out = read_tagged(output);
        let mut latest = BTreeMap::new();
        for t in &out {
            latest.insert(t.word.as_str(), t.count);
        }
        let done = expected
            .iter()
            .all(|(w, n)| latest.get(w.as_str()).is_some_and(|c| c >= n));
        if done {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{output}: not every word reached its count"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn verdict(expected: &BTreeMap<String, i64>, out: &[Tagged]) -> Verdict {
    let pairs: Vec<(String, i64)> = out.iter().map(|t| (t.word.clone(), t.count)).collect();
    judge(expected, &pairs)
}

/// Per output partition, the offset of the first record written by `tag`.
fn first_offsets_of(out: &[Tagged], tag: &str) -> BTreeMap<i32, i64> {
    let mut first = BTreeMap::new();
    for t in out.iter().filter(|t| t.tag == tag) {
        first.entry(t.partition).or_insert(t.offset);
    }
    first
}

/// Waits for a line of `lines` containing `wanted`; returns it.
fn wait_for_line(lines: &Receiver<String>, wanted: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(wanted) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line with {wanted:?}: {e}"),
        }
    }
}

fn signal(instance: &Instance, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &instance.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} failed");
}

/// Both tests' start: topics, two state directories, A running (tag `a`) with
/// output committed, and input flowing.
struct Scene {
    app: String,
    input: String,
    output: String,
    dir_a: tempfile::TempDir,
    dir_b: tempfile::TempDir,
    a: Instance,
    a_lines: Receiver<String>,
    stop: Arc<AtomicBool>,
    producer: Option<JoinHandle<BTreeMap<String, i64>>>,
}

impl Scene {
    fn start(name: &str) -> Scene {
        let app = unique_name(name);
        let input = unique_name(&format!("{name}-lines"));
        let output = unique_name(&format!("{name}-counts"));
        block_on(create_topic(&input, 2));
        block_on(create_topic(&output, 2));
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, a_lines) = start(&app, &input, &output, dir_a.path(), "a");
        let stop = Arc::new(AtomicBool::new(false));
        let producer = {
            let (topic, stop) = (input.clone(), stop.clone());
            std::thread::spawn(move || produce_until(topic, stop))
        };
        wait_until("A's first committed output", || {
            read_tagged(&output).iter().any(|t| t.tag == "a")
        });
        Scene {
            app,
            input,
            output,
            dir_a,
            dir_b,
            a,
            a_lines,
            stop,
            producer: Some(producer),
        }
    }

    /// Starts B (tag `b`) on the second state directory; waits until it is `RUNNING`.
    fn start_b(&self) -> (Instance, Receiver<String>) {
        let dir = self.dir_b.path();
        start(&self.app, &self.input, &self.output, dir, "b")
    }

    /// Stops the input; returns each word's count in it.
    fn stop_input(&mut self) -> BTreeMap<String, i64> {
        self.stop.store(true, Ordering::SeqCst);
        let producer = self.producer.take().expect("input still flowing");
        producer.join().expect("producer thread")
    }
}

#[test]
fn instance_with_a_copied_process_id_fences_the_older_which_stops_leaving_no_output_after_the_fence(
) {
    let mut scene = Scene::start("fence-dup");

    // B gets A's process id, as a copied state directory would give it.
    std::fs::create_dir_all(scene.dir_b.path().join(&scene.app)).unwrap();
    std::fs::copy(
        scene.dir_a.path().join(&scene.app).join(PROCESS_FILE),
        scene.dir_b.path().join(&scene.app).join(PROCESS_FILE),
    )
    .expect("copying the process id file");
    let (b, b_lines) = scene.start_b();

    // A is fenced, gives up its tasks and fails with the duplicate-identity error.
    let failure = wait_for_line(&scene.a_lines, "FAILED");
    assert!(
        failure.contains("DuplicateProcessId"),
        "A failed otherwise: {failure}"
    );
    let status = scene.a.0.wait().expect("A exits");
    assert!(!status.success(), "A exited cleanly: {status}");
    eprintln!("A: {failure}");

    let expected = scene.stop_input();
    let out = wait_for_all(&scene.output, &expected);

    let first_b = first_offsets_of(&out, "b");
    let (from_a, from_b) = (
        out.iter().filter(|t| t.tag == "a").count(),
        out.iter().filter(|t| t.tag == "b").count(),
    );
    eprintln!(
        "{} counts out ({from_a} by A, {from_b} by B); the fence (B's first record) per partition: {first_b:?}",
        out.len()
    );
    assert!(from_a > 0 && from_b > 0, "A: {from_a}, B: {from_b}");
    let after_fence: Vec<&Tagged> = out
        .iter()
        .filter(|t| t.tag == "a" && first_b.get(&t.partition).is_some_and(|f| t.offset > *f))
        .collect();
    assert!(
        after_fence.is_empty(),
        "records of A after the fence are visible: {after_fence:?}"
    );
    assert_eq!(
        verdict(&expected, &out),
        Verdict::default(),
        "the output is not exactly once"
    );
    // B took everything over and is still running.
    let unexpected: Vec<String> = b_lines
        .try_iter()
        .filter(|l| l.contains("FAILED"))
        .collect();
    assert!(unexpected.is_empty(), "B failed: {unexpected:?}");
    drop(b);
}

#[test]
fn zombie_resumed_after_a_takeover_is_fenced_rejoins_and_leaves_no_late_output() {
    let mut scene = Scene::start("fence-zombie");

    // A stalls mid-stream; B (its own state directory, its own process id) joins,
    // and gets every partition once A's session has timed out.
    signal(&scene.a, "-STOP");
    let (b, b_lines) = scene.start_b();
    wait_until("B's first committed output", || {
        read_tagged(&scene.output).iter().any(|t| t.tag == "b")
    });
    // A resumes: its transaction was aborted at its timeout; it gives up its tasks
    // and rejoins: it writes again, after B's first records.
    signal(&scene.a, "-CONT");
    wait_until("A's output after its return", || {
        let out = read_tagged(&scene.output);
        let first_b = first_offsets_of(&out, "b");
        out.iter()
            .any(|t| t.tag == "a" && first_b.get(&t.partition).is_some_and(|f| t.offset > *f))
    });

    let expected = scene.stop_input();
    let out = wait_for_all(&scene.output, &expected);
    eprintln!(
        "{} counts out ({} by A, {} by B)",
        out.len(),
        out.iter().filter(|t| t.tag == "a").count(),
        out.iter().filter(|t| t.tag == "b").count()
    );
    assert_eq!(
        verdict(&expected, &out),
        Verdict::default(),
        "the output is not exactly once"
    );
    // A zombie is no duplicate identity: both instances are still up.
    for (name, lines) in [("A", &scene.a_lines), ("B", &b_lines)] {
        let failed: Vec<String> = lines.try_iter().filter(|l| l.contains("FAILED")).collect();
        assert!(failed.is_empty(), "{name} failed: {failed:?}");
    }
    drop((scene, b));
}
