//! `max.task.idle.ms` against the broker named by `KAFKA_BOOTSTRAP_SERVERS`: a merge
//! of two one-partition topics (one task reads both) puts records in timestamp order
//! across them while one input is behind, and once an input has been empty at lag 0
//! for the idle time processes the other input alone (enforced processing), logged
//! and counted.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::{an_hour_ago_ms, block_on, config, create_topic, unique_name, DEADLINE};
use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer};
use kafka_client::rdkafka::message::Message;
use kafka_client::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use kafka_client::rdkafka::{Offset, TopicPartitionList};
use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::runtime::{KafkaStreams, State, StreamsConfig};

const IDLE: Duration = Duration::from_secs(10);

/// Log lines of the whole test binary, to check what enforced processing logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn topic(prefix: &str) -> String {
    let name = unique_name(prefix);
    block_on(create_topic(&name, 1));
    name
}

/// Produces `(value, timestamp)` records with key `k`.
fn produce(topic: &str, records: &[(&str, i64)]) {
    let producer: BaseProducer = config().to_rdkafka().create().expect("producer");
    for (value, timestamp) in records {
        producer
            .send(
                BaseRecord::to(topic)
                    .key("k")
                    .payload(*value)
                    .timestamp(*timestamp),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Reads `topic` from its start: `(value, timestamp)` of each record, in offset
/// order, and when each was read.
struct Output {
    consumer: BaseConsumer,
    records: Vec<(String, i64)>,
    seen: Vec<Instant>,
}

impl Output {
    fn new(topic: &str) -> Self {
        let consumer: BaseConsumer = config()
            .group_id(unique_name("idling-reader"))
            .to_rdkafka()
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .expect("partition");
        consumer.assign(&tpl).expect("assign");
        Output {
            consumer,
            records: Vec::new(),
            seen: Vec::new(),
        }
    }

    fn wait_for(&mut self, expected: usize) -> &[(String, i64)] {
        let deadline = Instant::now() + DEADLINE;
        while self.records.len() < expected && Instant::now() < deadline {
            if let Some(message) = self.consumer.poll(Duration::from_millis(100)) {
                let message = message.expect("output record");
                let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
                let timestamp = message.timestamp().to_millis().unwrap_or(-1);
                self.records.push((value.into_owned(), timestamp));
                self.seen.push(Instant::now());
            }
        }
        &self.records
    }
}

#[test]
fn a_merge_waits_for_the_input_behind_then_enforces_processing_after_max_task_idle_ms() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "warn,kafka_streams::runtime::partition_group=info",
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let a = topic("idling-a");
    let b = topic("idling-b");
    let out = topic("idling-out");
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(&a)
        .merge(&builder.stream::<String, String>(&b))
        .to(&out);
    let topology = builder.build().expect("topology");
    let app = unique_name("idling-app");
    let streams = KafkaStreams::new(
        topology,
        StreamsConfig::new(&app, config())
            .commit_interval(Duration::from_millis(200))
            .max_task_idle(Some(IDLE)),
    )
    .expect("streams");

    // A's records are there first; B's earlier ones come later (B is behind).
    let t0 = an_hour_ago_ms();
    produce(&a, &[("a2", t0 + 2_000), ("a4", t0 + 4_000)]);
    streams.start().expect("start");
    assert!(
        streams.wait_for_state(State::Running, DEADLINE),
        "streams did not reach RUNNING: {:?}",
        streams.error()
    );
    produce(&b, &[("b1", t0 + 1_000), ("b3", t0 + 3_000)]);

    // In timestamp order across both inputs: A's records waited for B's. The last
    // one (a4) comes out once B, empty and caught up, was waited for max.task.idle.ms.
    let mut output = Output::new(&out);
    let got = output.wait_for(4).to_vec();
    assert_eq!(
        got,
        vec![
            ("b1".to_owned(), t0 + 1_000),
            ("a2".to_owned(), t0 + 2_000),
            ("b3".to_owned(), t0 + 3_000),
            ("a4".to_owned(), t0 + 4_000),
        ],
        "output in timestamp order across both inputs"
    );
    // a4 waited for B from b3 on: max.task.idle.ms (less the time b3 took to be
    // read here, well under a second).
    let waited = output.seen[3] - output.seen[2];
    assert!(
        waited >= IDLE - Duration::from_secs(1),
        "a4 came out {waited:?} after b3, before max.task.idle.ms ({IDLE:?})"
    );
    let enforced_after_order = streams.metrics().enforced_processing_total;
    assert!(
        enforced_after_order >= 1,
        "a4 was processed with B empty: {enforced_after_order}"
    );

    // B stays empty at lag 0, past its idle deadline: A's new records go on being
    // processed without it (as in Kafka, the deadline holds until B has records).
    produce(&a, &[("a6", t0 + 6_000), ("a7", t0 + 7_000)]);
    let got = output.wait_for(6).to_vec();
    assert_eq!(
        got[4..],
        [("a6".to_owned(), t0 + 6_000), ("a7".to_owned(), t0 + 7_000)],
        "A's records come out although B has none"
    );
    let enforced = streams.metrics().enforced_processing_total;
    assert!(
        enforced >= enforced_after_order + 2,
        "enforced processing counted per record: {enforced_after_order} then {enforced}"
    );
    assert!(streams.close_timeout(DEADLINE), "close");
    let logs = logs.text();
    assert!(
        logs.contains("enforced processing") && logs.contains(&b) && logs.contains("task=0_0"),
        "enforced processing is logged with the task and the partition given up on:\n{logs}"
    );
}
