//! kafka-streams against the broker named by `KAFKA_BOOTSTRAP_SERVERS`: start, state
//! listener, internal topics, 10,000 records on 4 partitions, poison records, close
//! and resume, co-partitioning, and a SIGKILLed instance taken over by another
//! process.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::{
    block_on, bootstrap_servers, config, create_topic, unique_name, wait_until, DEADLINE,
};
use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer};
use kafka_client::rdkafka::message::{Headers as _, Message};
use kafka_client::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use kafka_client::rdkafka::{Offset, TopicPartitionList};
use kafka_streams::dsl::{Repartitioned, StreamsBuilder};
use kafka_streams::runtime::handlers::{
    DeadLetterQueueExceptionHandler, LogAndContinueExceptionHandler, DLQ_HEADER_OFFSET,
    DLQ_HEADER_PARTITION, DLQ_HEADER_TOPIC,
};
use kafka_streams::runtime::{KafkaStreams, State, StreamsConfig};
use kafka_streams::{StreamsError, Topology};

fn topic(prefix: &str, partitions: i32) -> String {
    let name = unique_name(prefix);
    block_on(create_topic(&name, partitions));
    name
}

fn streams_config(app: &str) -> StreamsConfig {
    StreamsConfig::new(app, config())
        .commit_interval(Duration::from_millis(200))
        .set("session.timeout.ms", "6000")
        .and_then(|c| c.set("heartbeat.interval.ms", "500"))
        .expect("valid config")
}

type RawKv = (Option<Vec<u8>>, Option<Vec<u8>>);

fn produce(topic: &str, records: &[RawKv]) {
    let producer: BaseProducer = config().to_rdkafka().create().expect("producer");
    for (k, v) in records {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(k) = k {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = v {
            rec = rec.payload(v.as_slice());
        }
        let mut rec = rec;
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(20));
                    rec = back;
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

fn string_longs(from: i64, to: i64) -> Vec<RawKv> {
    (from..to)
        .map(|i| {
            (
                Some(format!("k{i}").into_bytes()),
                Some(i.to_be_bytes().to_vec()),
            )
        })
        .collect()
}

struct Read {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: HashMap<String, Vec<u8>>,
}

/// Reads `topic` from the beginning until `expected` records arrived (or the
/// deadline passes), then for `linger` more to catch extras.
fn read(topic: &str, expected: usize, linger: Duration) -> Vec<Read> {
    let consumer: BaseConsumer = config()
        .group_id(unique_name("reader"))
        .to_rdkafka()
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let mut linger_until: Option<Instant> = None;
    loop {
        if out.len() >= expected && linger_until.is_none() {
            linger_until = Some(Instant::now() + linger);
        }
        if let Some(l) = linger_until {
            if Instant::now() >= l {
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Read {
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
            });
        }
    }
    out
}

fn as_string_long(r: &Read) -> (String, i64) {
    let key = String::from_utf8(r.key.clone().unwrap_or_default()).expect("utf8 key");
    let bytes: [u8; 8] = r
        .value
        .clone()
        .unwrap_or_default()
        .try_into()
        .expect("8-byte value");
    (key, i64::from_be_bytes(bytes))
}

fn partition_count(topic: &str) -> Option<usize> {
    let consumer: BaseConsumer = config().to_rdkafka().create().expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .ok()?;
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
}

fn doubling(input: &str, output: &str) -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>(input)
        .map_values(|v| v * 2)
        .to(output);
    builder.build().expect("topology")
}

#[test]
fn repartition_topics_created_and_state_listener_sees_lifecycle() {
    bootstrap_servers();
    let input = topic("st-in", 2);
    let output = topic("st-out", 1);
    let app = unique_name("st-app");
    let builder = StreamsBuilder::new();
    let stream = builder
        .stream::<String, i64>(&input)
        .select_key(|_, v| format!("p{}", v % 3));
    stream
        .repartition_with(Repartitioned::as_("by-mod").with_number_of_partitions(3))
        .map_values(|v| v + 1000)
        .to(&output);
    stream.repartition().filter(|_, _| false).to(&output);
    let topology = builder.build().expect("topology");
    let description = topology.describe();
    assert_eq!(description.subtopologies.len(), 3, "{description}");

    let streams = KafkaStreams::new(topology, streams_config(&app)).expect("client");
    let transitions = Arc::new(Mutex::new(Vec::new()));
    let t = transitions.clone();
    streams.set_state_listener(move |new, old| t.lock().unwrap().push((old, new)));
    assert_eq!(streams.state(), State::Created);
    streams.start().expect("start");
    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "not RUNNING: {:?} {:?}",
        streams.state(),
        streams.error()
    );
    // Named: the partition count given; unnamed: the input topic's count.
    assert_eq!(
        partition_count(&format!("{app}-by-mod-repartition")),
        Some(3)
    );
    assert_eq!(
        partition_count(&format!("{app}-KSTREAM-REPARTITION-0000000004-repartition")),
        Some(2)
    );

    produce(&input, &string_longs(0, 6));
    let mut got: Vec<(String, i64)> = read(&output, 6, Duration::from_millis(500))
        .iter()
        .map(as_string_long)
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("p0".into(), 1000),
            ("p0".into(), 1003),
            ("p1".into(), 1001),
            ("p1".into(), 1004),
            ("p2".into(), 1002),
            ("p2".into(), 1005)
        ]
    );
    assert!(streams.close());
    assert_eq!(streams.state(), State::NotRunning);
    let seen = transitions.lock().unwrap().clone();
    assert_eq!(
        seen.first(),
        Some(&(State::Created, State::Rebalancing)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(State::Rebalancing, State::Running)),
        "{seen:?}"
    );
    assert_eq!(
        &seen[seen.len() - 2..],
        &[
            (State::Running, State::PendingShutdown),
            (State::PendingShutdown, State::NotRunning)
        ],
        "{seen:?}"
    );
}

#[test]
fn ten_thousand_records_on_four_partitions_exactly_transformed() {
    bootstrap_servers();
    let input = topic("st10k-in", 4);
    let output = topic("st10k-out", 4);
    let app = unique_name("st10k-app");
    let streams = KafkaStreams::new(
        doubling(&input, &output),
        streams_config(&app).num_stream_threads(2),
    )
    .expect("client");
    streams.start().expect("start");
    produce(&input, &string_longs(0, 10_000));
    let got = read(&output, 10_000, Duration::from_millis(500));
    let mut pairs: Vec<(String, i64)> = got.iter().map(as_string_long).collect();
    pairs.sort();
    let mut expected: Vec<(String, i64)> = (0..10_000).map(|i| (format!("k{i}"), i * 2)).collect();
    expected.sort();
    assert_eq!(pairs.len(), 10_000);
    assert_eq!(pairs, expected);
    assert!(streams.close());
    assert_eq!(streams.metrics().processed_records, 10_000);
}

fn poison_records() -> Vec<RawKv> {
    vec![
        (Some(b"a".to_vec()), Some(1_i64.to_be_bytes().to_vec())),
        (Some(b"b".to_vec()), Some(b"xx".to_vec())),
        (Some(b"c".to_vec()), Some(3_i64.to_be_bytes().to_vec())),
    ]
}

#[test]
fn poison_record_log_and_continue_is_skipped_and_counted() {
    bootstrap_servers();
    let input = topic("stp-in", 1);
    let output = topic("stp-out", 1);
    let streams = KafkaStreams::new(
        doubling(&input, &output),
        streams_config(&unique_name("stp-app"))
            .deserialization_exception_handler(LogAndContinueExceptionHandler),
    )
    .expect("client");
    streams.start().expect("start");
    produce(&input, &poison_records());
    let got: Vec<(String, i64)> = read(&output, 2, Duration::from_millis(300))
        .iter()
        .map(as_string_long)
        .collect();
    assert_eq!(got, vec![("a".into(), 2), ("c".into(), 6)]);
    wait_until("the skip to be counted", || {
        streams.metrics().skipped_records == 1
    });
    assert_eq!(streams.state(), State::Running);
    assert!(streams.close());
}

#[test]
fn poison_record_lands_in_dead_letter_topic_with_provenance() {
    bootstrap_servers();
    let input = topic("stdlq-in", 1);
    let output = topic("stdlq-out", 1);
    let dlq = topic("stdlq-dlq", 1);
    let streams = KafkaStreams::new(
        doubling(&input, &output),
        streams_config(&unique_name("stdlq-app"))
            .deserialization_exception_handler(DeadLetterQueueExceptionHandler::new(&dlq)),
    )
    .expect("client");
    streams.start().expect("start");
    produce(&input, &poison_records());
    let dead = read(&dlq, 1, Duration::from_millis(300));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key.as_deref(), Some(&b"b"[..]));
    assert_eq!(dead[0].value.as_deref(), Some(&b"xx"[..]));
    assert_eq!(
        dead[0].headers.get(DLQ_HEADER_TOPIC),
        Some(&input.as_bytes().to_vec())
    );
    assert_eq!(
        dead[0].headers.get(DLQ_HEADER_PARTITION),
        Some(&b"0".to_vec())
    );
    assert_eq!(dead[0].headers.get(DLQ_HEADER_OFFSET), Some(&b"1".to_vec()));
    assert_eq!(read(&output, 2, Duration::ZERO).len(), 2);
    wait_until("the dead letter to be counted", || {
        streams.metrics().dead_lettered_records == 1
    });
    assert!(streams.close());
}

#[test]
fn poison_record_log_and_fail_puts_client_in_error_naming_the_record() {
    bootstrap_servers();
    let input = topic("stfail-in", 1);
    let output = topic("stfail-out", 1);
    let streams = KafkaStreams::new(
        doubling(&input, &output),
        streams_config(&unique_name("stfail-app")),
    )
    .expect("client");
    streams.start().expect("start");
    produce(&input, &poison_records());
    assert!(
        streams.wait_for_state(State::Error, DEADLINE),
        "state {:?}",
        streams.state()
    );
    let error = streams.error().expect("error recorded");
    assert!(
        matches!(*error, StreamsError::Deserialization { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&format!("topic {input} partition 0 offset 1")),
        "{text}"
    );
    assert!(streams.close());
}

#[test]
fn graceful_close_commits_and_restart_resumes_without_reprocessing() {
    bootstrap_servers();
    let input = topic("stres-in", 2);
    let output = topic("stres-out", 2);
    let app = unique_name("stres-app");
    // A long commit interval: only close() commits.
    let config = || streams_config(&app).commit_interval(Duration::from_secs(3600));
    produce(&input, &string_longs(0, 100));
    let first = KafkaStreams::new(doubling(&input, &output), config()).expect("client");
    first.start().expect("start");
    assert_eq!(read(&output, 100, Duration::ZERO).len(), 100);
    assert!(first.close());
    assert_eq!(first.metrics().processed_records, 100);

    produce(&input, &string_longs(100, 150));
    let second = KafkaStreams::new(doubling(&input, &output), config()).expect("client");
    second.start().expect("start");
    wait_until("the new records to be processed", || {
        second.metrics().processed_records >= 50
    });
    assert!(second.close());
    assert_eq!(
        second.metrics().processed_records,
        50,
        "committed input was reprocessed"
    );
    let mut all: Vec<(String, i64)> = read(&output, 150, Duration::from_millis(300))
        .iter()
        .map(as_string_long)
        .collect();
    all.sort();
    let mut expected: Vec<(String, i64)> = (0..150).map(|i| (format!("k{i}"), i * 2)).collect();
    expected.sort();
    assert_eq!(all, expected);
}

#[test]
fn co_partitioning_is_checked_with_a_clear_error() {
    bootstrap_servers();
    let a = topic("stco-a", 2);
    let b = topic("stco-b", 3);
    let output = topic("stco-out", 1);
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>(&a)
        .merge(&builder.stream::<String, i64>(&b))
        .to(&output);
    let streams = KafkaStreams::new(
        builder.build().expect("topology"),
        streams_config(&unique_name("stco-app")),
    )
    .expect("client");
    streams.start().expect("start");
    assert!(streams.wait_for_state(State::Error, DEADLINE));
    let error = streams.error().expect("error");
    match &*error {
        StreamsError::CoPartitioning { topics, counts, .. } => {
            assert_eq!(topics, &vec![a.clone(), b.clone()]);
            assert_eq!(counts, &vec![2, 3]);
        }
        other => panic!("expected a co-partitioning error, got {other}"),
    }
    assert!(error
        .to_string()
        .contains("must have the same number of partitions"));
    assert!(streams.close());
}

struct Instance(Child);

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_instance(app: &str, input: &str, output: &str) -> Instance {
    let child = Command::new(env!("CARGO_BIN_EXE_streams_instance"))
        .args([app, input, output])
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap_servers())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning streams_instance");
    Instance(child)
}

fn wait_for_line(instance: &mut Instance, wanted: &str) {
    use std::io::BufRead;
    let stdout = instance.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = wanted.to_owned();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains(&wanted) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(DEADLINE)
        .expect("instance never became RUNNING");
}

#[cfg(unix)]
#[test]
fn sigkilled_instance_is_taken_over_without_losing_records() {
    bootstrap_servers();
    let input = topic("stkill-in", 4);
    let output = topic("stkill-out", 4);
    let app = unique_name("stkill-app");
    let mut a = spawn_instance(&app, &input, &output);
    wait_for_line(&mut a, "RUNNING");
    let mut b = spawn_instance(&app, &input, &output);
    wait_for_line(&mut b, "RUNNING");

    produce(&input, &string_longs(0, 2_000));
    // Let both instances work, then kill one hard, mid-stream.
    wait_until("output to start", || {
        !read(&output, 1, Duration::ZERO).is_empty()
    });
    a.0.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on unix
    let _ = a.0.wait();
    produce(&input, &string_longs(2_000, 4_000));

    let got = read(&output, 4_000, Duration::from_secs(2));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &got {
        let (k, v) = as_string_long(r);
        assert_eq!(v, k[1..].parse::<i64>().expect("key number") * 2);
        *counts.entry(k).or_default() += 1;
    }
    let missing: Vec<i64> = (0..4_000)
        .filter(|i| !counts.contains_key(&format!("k{i}")))
        .collect();
    assert!(
        missing.is_empty(),
        "lost {} records, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "takeover: 4000 input records, {} output records, {duplicates} duplicates (at-least-once)",
        got.len()
    );
    assert_eq!(got.len(), 4_000 + duplicates);
    drop(b);
}
