//! The uncaught-error policy "replace the thread", against the broker named by
//! `KAFKA_BOOTSTRAP_SERVERS`: a processor fails once on one record, the processing
//! handler says fail, so the stream thread dies; the uncaught-exception handler
//! answers `ReplaceThread`, and the client stays up (never `ERROR`), the replacement
//! thread takes the partition over and processes the failed record and every later
//! one. (Shutting the client down, the default policy, is covered in
//! `streams_runtime.rs`.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration_tests::{config, create_topic, eventually, unique_name, DEADLINE};
use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer as _};
use kafka_client::rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use kafka_client::rdkafka::{Message as _, Offset, TopicPartitionList};
use kafka_streams::dsl::StreamsBuilder;
use kafka_streams::processor::{Processor, ProcessorContext, ProcessorError, Record};
use kafka_streams::runtime::handlers::StreamThreadExceptionResponse;
use kafka_streams::runtime::{KafkaStreams, State, StreamsConfig};
use kafka_streams::StreamsError;

/// The record (by value) the processor fails on, the first time it sees it.
const POISON: i64 = 5;

/// Doubles the value; fails on [`POISON`] once per test (the flag is shared by every
/// instance, so the replacement thread's new task processes it normally).
struct FailOnce {
    failed: Arc<AtomicBool>,
}

impl Processor<String, i64> for FailOnce {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        record: Record<String, i64>,
    ) -> Result<(), ProcessorError> {
        if record.value == POISON && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(format!("refusing value {POISON} (once)").into());
        }
        let doubled = record.value * 2;
        ctx.forward(record.with_value(doubled));
        Ok(())
    }
}

fn produce(topic: &str, from: i64, to: i64) {
    let producer: BaseProducer = config().to_rdkafka().create().expect("producer");
    for i in from..to {
        let key = format!("k{i}");
        let value = i.to_be_bytes();
        producer
            .send(
                BaseRecord::to(topic)
                    .partition(0)
                    .key(key.as_bytes())
                    .payload(&value[..]),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Every record now in `topic` (partition 0), as `(key, value)`, counted.
fn output_counts(consumer: &BaseConsumer) -> BTreeMap<String, (i64, usize)> {
    let mut counts = BTreeMap::new();
    while let Some(message) = consumer.poll(Duration::from_millis(200)) {
        let message = message.expect("reading the output");
        let key = String::from_utf8(message.key().expect("key").to_vec()).expect("utf8 key");
        let value = i64::from_be_bytes(
            message
                .payload()
                .expect("value")
                .try_into()
                .expect("8-byte value"),
        );
        counts
            .entry(key)
            .and_modify(|(_, n)| *n += 1)
            .or_insert((value, 1));
    }
    counts
}

/// Waits (off the async workers) until the client is RUNNING.
async fn wait_for_running(streams: &Arc<KafkaStreams>) -> bool {
    let streams = streams.clone();
    tokio::task::spawn_blocking(move || streams.wait_for_state(State::Running, DEADLINE))
        .await
        .expect("wait task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_thread_policy_keeps_the_client_running_after_a_thread_fails() {
    let input = unique_name("stpol-in");
    let output = unique_name("stpol-out");
    create_topic(&input, 1).await;
    create_topic(&output, 1).await;

    let failed = Arc::new(AtomicBool::new(false));
    let builder = StreamsBuilder::new();
    let flag = failed.clone();
    builder
        .stream::<String, i64>(&input)
        .process::<String, i64, _, _>(move || FailOnce {
            failed: flag.clone(),
        })
        .to(&output);
    // The processing handler is the default, log-and-fail: the failure kills the
    // stream thread and reaches the uncaught-exception handler.
    let streams_config = StreamsConfig::new(unique_name("stpol-app"), config())
        .commit_interval(Duration::from_millis(200))
        .set("session.timeout.ms", "6000")
        .and_then(|c| c.set("heartbeat.interval.ms", "500"))
        .expect("valid config");
    let streams = Arc::new(
        KafkaStreams::new(builder.build().expect("topology"), streams_config).expect("client"),
    );

    let transitions = Arc::new(Mutex::new(Vec::new()));
    let seen = transitions.clone();
    streams.set_state_listener(move |new, old| seen.lock().unwrap().push((old, new)));
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let handled = Arc::new(AtomicUsize::new(0));
    {
        let (errors, handled) = (errors.clone(), handled.clone());
        streams.set_uncaught_exception_handler(move |error| {
            handled.fetch_add(1, Ordering::SeqCst);
            errors.lock().unwrap().push(match error {
                StreamsError::Processing { .. } => error.to_string(),
                other => format!("unexpected error kind: {other:?}"),
            });
            StreamThreadExceptionResponse::ReplaceThread
        });
    }
    streams.start().expect("start");
    assert!(
        wait_for_running(&streams).await,
        "never RUNNING: {:?}",
        streams.error()
    );

    // Values 0..10 with the poison at offset 5: the thread fails there.
    produce(&input, 0, 10);
    eventually("the stream thread to fail", || {
        let n = handled.load(Ordering::SeqCst);
        async move { (n > 0).then_some(()) }
    })
    .await;
    assert!(failed.load(Ordering::SeqCst));

    // Records produced after the failure: only a live (replacement) thread can
    // process them.
    produce(&input, 10, 20);

    let reader: BaseConsumer = config()
        .group_id(unique_name("stpol-reader"))
        .to_rdkafka()
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&output, 0, Offset::Beginning)
        .expect("partition");
    reader.assign(&tpl).expect("assign");
    let mut got: BTreeMap<String, (i64, usize)> = BTreeMap::new();
    eventually("every input record in the output", || {
        for (key, (value, n)) in output_counts(&reader) {
            got.entry(key)
                .and_modify(|(_, m)| *m += n)
                .or_insert((value, n));
        }
        let complete = (0..20).all(|i| got.contains_key(&format!("k{i}")));
        async move { complete.then_some(()) }
    })
    .await;

    for i in 0..20_i64 {
        let (value, _) = got[&format!("k{i}")];
        assert_eq!(value, i * 2, "k{i} transformed");
    }
    assert_eq!(got.len(), 20, "unexpected keys: {got:?}");
    // At-least-once: records before the poison may be output twice (the failed
    // thread did not commit); the poison itself only once, after replacement.
    assert_eq!(got[&format!("k{POISON}")].1, 1);
    assert!(
        (10..20).all(|i| got[&format!("k{i}")].1 == 1),
        "records after the failure duplicated: {got:?}"
    );

    assert_eq!(handled.load(Ordering::SeqCst), 1, "one thread failure");
    let reported = errors.lock().unwrap().clone();
    assert_eq!(reported.len(), 1);
    assert!(
        reported[0].contains(&format!("topic {input} partition 0 offset {POISON}"))
            && reported[0].contains("refusing value 5"),
        "{reported:?}"
    );

    // The client never went to ERROR: it rebalanced and came back to RUNNING.
    assert!(
        wait_for_running(&streams).await,
        "state {:?}",
        streams.state()
    );
    assert!(streams.error().is_none(), "{:?}", streams.error());
    let seen = transitions.lock().unwrap().clone();
    assert!(
        !seen.iter().any(|(_, new)| *new == State::Error),
        "{seen:?}"
    );
    let back_to_running = seen
        .iter()
        .filter(|t| **t == (State::Rebalancing, State::Running))
        .count();
    assert!(back_to_running >= 2, "no recovery to RUNNING: {seen:?}");
    let processed = streams.metrics().processed_records;
    assert!(processed >= 20, "processed {processed}");

    let closing = streams.clone();
    let closed = tokio::task::spawn_blocking(move || closing.close())
        .await
        .expect("close task");
    assert!(closed);
    assert_eq!(streams.state(), State::NotRunning);
}
