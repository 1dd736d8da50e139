//! R4 (issue 20): the broker process is SIGKILLed and restarted on the same log dirs
//! while an idempotent producer sends 100k records, a consumer reads them and a
//! streams app transforms them.
//!
//! This test does NOT use the broker named by `KAFKA_BOOTSTRAP_SERVERS`: it needs one
//! it may kill, so it starts a private broker of its own with `scripts/broker.sh` in a
//! temporary directory ([`RestartableBroker`]), and stops it at the end, also when it
//! fails. Without the broker jars (`scripts/setup.sh` fetches them) it fails, saying
//! so.
//!
//! Checked:
//! - the producer (kafka-client's typed `Producer`, `enable.idempotence=true`,
//!   `acks=all`) has every record acknowledged, none failed: each was delivered
//!   within `delivery.timeout.ms`, which librdkafka enforces per record;
//! - the topic holds every record exactly once, and each partition holds its records
//!   in the order they were sent;
//! - a consumer subscribed before the kill reads every record after the broker is
//!   back;
//! - a streams app (stateless, at-least-once) running across the kill writes an
//!   output record for every input record and is still `RUNNING`. Its session
//!   timeout (6 s) is shorter than the broker's absence, so its membership expires
//!   and its next commit is refused (`UNKNOWN_MEMBER_ID`): like Kafka Streams
//!   (`TaskMigratedException`) it gives up its tasks and rejoins rather than fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::{
    create_topic_at, read_records_at, start_running, unique_name, RestartableBroker,
};
use kafka_client::config::AutoOffsetReset;
use kafka_client::{ClientConfig, Consumer, Producer, ProducerRecord};
use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::runtime::{State, StreamsConfig};

/// Records the producer sends.
const RECORDS: u64 = 100_000;
/// The broker is killed once this many are acknowledged.
const KILL_AT: u64 = RECORDS / 2;
const PARTITIONS: i32 = 4;
/// Records per `send_batch`.
const BATCH: u64 = 2_000;
/// The producer's `delivery.timeout.ms`: room for a broker restart (JVM start and log
/// recovery) on a loaded machine.
const DELIVERY_TIMEOUT_MS: u64 = 120_000;
/// How long the consumer and the streams app may take to see everything.
const READ_DEADLINE: Duration = Duration::from_secs(240);

/// The values of `records` (`seq` as text, or `seq!` from the streams app), per
/// partition in offset order.
fn sequences_per_partition(
    records: Vec<(i32, Vec<u8>, Option<Vec<u8>>)>,
) -> BTreeMap<i32, Vec<u64>> {
    let mut per_partition: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    for (partition, _key, value) in records {
        let value = String::from_utf8(value.expect("a value")).expect("utf8 value");
        let seq = value
            .trim_end_matches('!')
            .parse()
            .expect("a sequence number");
        per_partition.entry(partition).or_default().push(seq);
    }
    per_partition
}

/// How many distinct sequence numbers, and how many records, `per_partition` holds.
fn distinct_and_total(per_partition: &BTreeMap<i32, Vec<u64>>) -> (usize, usize) {
    let distinct: BTreeSet<u64> = per_partition.values().flatten().copied().collect();
    let total = per_partition.values().map(Vec::len).sum();
    (distinct.len(), total)
}

/// Sends `RECORDS` records (`seq` as value, keyed `key-<seq % 64>`) in batches with
/// an idempotent producer; `acked` counts the acknowledged ones. Returns the failures.
async fn produce(client: ClientConfig, topic: String, acked: Arc<AtomicU64>) -> Vec<String> {
    let producer: Producer<String, String> = Producer::new(
        &client
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("delivery.timeout.ms", DELIVERY_TIMEOUT_MS.to_string()),
    )
    .expect("producer");
    let mut failures = Vec::new();
    for start in (0..RECORDS).step_by(BATCH as usize) {
        let batch = (start..(start + BATCH).min(RECORDS))
            .map(|seq| ProducerRecord::new(&topic, format!("key-{}", seq % 64), seq.to_string()))
            .collect();
        for result in producer.send_batch(batch).await {
            match result {
                Ok(_) => {
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    failures
}

/// Reads `topic` in group `group` until it has seen every sequence number; returns
/// the records read. Errors while the broker is away are logged and read past.
async fn consume_all(consumer: Consumer<String, String>) -> u64 {
    let mut seen = BTreeSet::new();
    let mut read = 0_u64;
    let deadline = tokio::time::Instant::now() + READ_DEADLINE;
    while (seen.len() as u64) < RECORDS {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(record)) => {
                read += 1;
                seen.insert(record.value.parse::<u64>().expect("a sequence number"));
            }
            Ok(Err(e)) => tracing::warn!("consumer: {e}"),
            Err(_) => panic!(
                "the consumer read {} of {RECORDS} records within {READ_DEADLINE:?}",
                seen.len()
            ),
        }
    }
    read
}

#[test]
fn idempotent_producer_consumer_and_streams_app_carry_on_across_a_broker_sigkill() {
    let mut broker = RestartableBroker::start();
    let client = broker.client_config();
    let input = unique_name("r4-in");
    let output = unique_name("r4-out");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(create_topic_at(client.clone(), &input, PARTITIONS, &[]));
    runtime.block_on(create_topic_at(client.clone(), &output, PARTITIONS, &[]));

    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(&input)
        .map_values(|v| format!("{v}!"))
        .to(&output);
    let streams_config = StreamsConfig::new(unique_name("r4-app"), client.clone())
        .commit_interval(Duration::from_millis(200))
        .set("session.timeout.ms", "6000")
        .and_then(|c| c.set("heartbeat.interval.ms", "500"))
        .expect("valid config");
    let streams = start_running(builder, streams_config);

    let consumer: Consumer<String, String> = Consumer::new(
        &client
            .clone()
            .group_id(unique_name("r4-reader"))
            .auto_offset_reset(AutoOffsetReset::Earliest),
    )
    .expect("consumer");
    consumer.subscribe(&[&input]).expect("subscribe");
    let reader = runtime.spawn(consume_all(consumer));

    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let producer = runtime.spawn(produce(client.clone(), input.clone(), acked.clone()));
    while acked.load(Ordering::SeqCst) < KILL_AT {
        assert!(!producer.is_finished(), "the producer stopped early");
        // Pace the probe of the counter the producer task advances.
        std::thread::sleep(Duration::from_millis(5));
    }
    broker.kill();
    let acked_at_kill = acked.load(Ordering::SeqCst);
    let killed_at = started.elapsed();
    broker.restart();
    let down_for = started.elapsed() - killed_at;
    println!(
        "broker SIGKILLed {killed_at:?} in, with {acked_at_kill} of {RECORDS} records acknowledged; back after {down_for:?}"
    );
    assert!(
        acked_at_kill < RECORDS,
        "the producer had finished before the kill"
    );

    let failures = runtime.block_on(producer).expect("producer task");
    let produced_in = started.elapsed();
    assert!(
        failures.is_empty(),
        "{} records not delivered within delivery.timeout.ms={DELIVERY_TIMEOUT_MS}, e.g. {}",
        failures.len(),
        failures[0]
    );
    println!("all {RECORDS} records acknowledged {produced_in:?} in");

    // Exactly once, in order per partition.
    let stored = sequences_per_partition(read_records_at(client.clone(), &input));
    let (distinct, total) = distinct_and_total(&stored);
    assert_eq!(
        (distinct, total),
        (RECORDS as usize, RECORDS as usize),
        "the topic holds {total} records of {distinct} distinct sequence numbers"
    );
    for (partition, seqs) in &stored {
        let out_of_order = seqs.windows(2).filter(|w| w[0] >= w[1]).count();
        assert_eq!(
            out_of_order, 0,
            "partition {partition} holds {out_of_order} records out of send order"
        );
    }

    let read = runtime.block_on(reader).expect("consumer task");
    println!(
        "consumer: read all {RECORDS} records ({} read again after the restart)",
        read - RECORDS
    );

    // The streams app's output is complete (at-least-once: possibly with repeats).
    let deadline = Instant::now() + READ_DEADLINE;
    let (distinct, total) = loop {
        let out = sequences_per_partition(read_records_at(client.clone(), &output));
        let (distinct, total) = distinct_and_total(&out);
        if distinct as u64 == RECORDS {
            break (distinct, total);
        }
        assert_ne!(
            streams.state(),
            State::Error,
            "the streams app failed with {distinct} of {RECORDS} records out: {:?}",
            streams.error()
        );
        assert!(
            Instant::now() < deadline,
            "the streams app's output holds {distinct} of {RECORDS} records within {READ_DEADLINE:?} (state {:?}, error {:?})",
            streams.state(),
            streams.error()
        );
        // Pace the re-reads while the app catches up.
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        streams.state(),
        State::Running,
        "the streams app: {:?}",
        streams.error()
    );
    println!(
        "streams app: output complete, {distinct} records ({} repeated) {:?} in",
        total - distinct,
        started.elapsed()
    );
    assert!(streams.close(), "graceful close");
}
