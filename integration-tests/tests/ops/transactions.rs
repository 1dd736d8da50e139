//! Transactions, in two layers:
//! (a) the whole call sequence and the error classification against librdkafka's
//!     mock cluster (it accepts every transactional call, but does not hide
//!     aborted records from `read_committed` consumers);
//! (b) what only a broker that completes transactions can show, against the
//!     broker of `KAFKA_BOOTSTRAP_SERVERS` (Apache Kafka, as `scripts/test.sh`
//!     starts it): read_committed isolation, offsets committed atomically with a
//!     transaction, and fencing by a newer producer with the same id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::{config, consumer_config, create_topic, unique_name};
use kafka_client::admin::AdminClient;
use kafka_client::config::{AutoOffsetReset, IsolationLevel};
use kafka_client::rdkafka::mocking::MockCluster;
use kafka_client::rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use kafka_client::transaction::{TransactionErrorKind, TransactionalProducer};
use kafka_client::{ClientConfig, Consumer, Offset, Producer, ProducerRecord, TopicPartition};

const TIMEOUT: Duration = Duration::from_secs(30);

fn reader(config: &ClientConfig, group: &str, level: IsolationLevel) -> Consumer<String, String> {
    Consumer::new(
        &config
            .clone()
            .group_id(group)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .isolation_level(level),
    )
    .unwrap()
}

/// Counts how often a task gets to run on the executor while `work` is awaited.
async fn ticks_during<T>(work: impl std::future::Future<Output = T>) -> (T, u64) {
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                ticks.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }
    });
    tokio::task::yield_now().await;
    let before = ticks.load(Ordering::Relaxed);
    let out = work.await;
    let during = ticks.load(Ordering::Relaxed) - before;
    ticker.abort();
    (out, during)
}

#[tokio::test(flavor = "current_thread")]
async fn full_transaction_sequence_on_the_mock_cluster() {
    // librdkafka's mock cluster, as `dev::EmbeddedCluster` runs it, used directly
    // to slow the broker down: a blocking call would then stall the executor.
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("in", 1, 1).unwrap();
    cluster.create_topic("out", 1, 1).unwrap();
    let config = ClientConfig::new(cluster.bootstrap_servers());
    let plain: Producer<String, String> = Producer::new(&config).unwrap();
    for i in 0..3 {
        plain
            .send(ProducerRecord::new("in", format!("k{i}"), format!("v{i}")))
            .await
            .unwrap();
    }

    // A real consumer in a group, whose position goes into the transaction.
    let consumer = reader(&config, "txn-readers", IsolationLevel::ReadCommitted);
    consumer.subscribe(&["in"]).unwrap();
    let input = consumer.recv().await.unwrap();
    assert_eq!(input.offset, 0);

    let producer: TransactionalProducer<String, String> =
        TransactionalProducer::new(&config, "txn-seq").unwrap();
    // 100 ms per request: init and commit take several round trips each.
    cluster
        .broker_round_trip_time(-1, Duration::from_millis(100))
        .unwrap();
    // init blocks inside librdkafka; the current-thread executor keeps running.
    let (init, ticks) = ticks_during(producer.init(TIMEOUT)).await;
    init.unwrap();
    assert!(ticks > 0, "init_transactions blocked the executor");

    producer.begin().unwrap();
    let meta = producer
        .send(ProducerRecord::new(
            "out",
            input.key.clone(),
            format!("{}!", input.value),
        ))
        .await
        .unwrap();
    let group = consumer.group_metadata().expect("group metadata");
    producer
        .send_offsets_to_transaction(
            &[(input.topic_partition(), input.offset + 1)],
            group,
            TIMEOUT,
        )
        .await
        .unwrap();
    let (commit, ticks) = ticks_during(producer.commit(TIMEOUT)).await;
    commit.unwrap();
    assert!(ticks > 0, "commit_transaction blocked the executor");
    cluster.broker_round_trip_time(-1, Duration::ZERO).unwrap();

    // The mock cluster acknowledges TxnOffsetCommit without storing the offsets
    // (librdkafka 2.12), so their effect is checked by the isolation test (b).
    // The transformed record is in the output topic.
    let check = reader(&config, "txn-check", IsolationLevel::ReadUncommitted);
    check
        .assign(&[(
            TopicPartition::new("out", meta.partition),
            Offset::At(meta.offset),
        )])
        .unwrap();
    let out = check.recv().await.unwrap();
    assert_eq!((out.key.as_str(), out.value.as_str()), ("k0", "v0!"));

    // begin, send, abort; then the producer is usable for the next transaction.
    producer.begin().unwrap();
    producer
        .send(ProducerRecord::new(
            "out",
            "k".to_string(),
            "aborted".to_string(),
        ))
        .await
        .unwrap();
    producer.abort(TIMEOUT).await.unwrap();
    producer.begin().unwrap();
    producer
        .send(ProducerRecord::new(
            "out",
            "k".to_string(),
            "again".to_string(),
        ))
        .await
        .unwrap();
    producer.commit(TIMEOUT).await.unwrap();

    // Calls out of order are classified as such.
    let err = producer.commit(TIMEOUT).await.unwrap_err();
    assert_eq!(err.kind, TransactionErrorKind::InvalidState, "{err}");
    assert!(err.to_string().contains("txn-seq"), "{err}");
}

fn mock_producer(
    cluster: &MockCluster<'static, kafka_client::rdkafka::producer::DefaultProducerContext>,
    id: &str,
) -> TransactionalProducer<String, String> {
    TransactionalProducer::new(&ClientConfig::new(cluster.bootstrap_servers()), id).unwrap()
}

#[tokio::test]
async fn fenced_producer_is_fatal() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 1, 1).unwrap();
    let producer = mock_producer(&cluster, "txn-fenced");
    producer.init(TIMEOUT).await.unwrap();
    producer.begin().unwrap();
    producer
        .send(ProducerRecord::new("t", "k".to_string(), "v".to_string()))
        .await
        .unwrap();
    // The coordinator answers as it does once a newer producer with the same
    // transactional.id has called init_transactions.
    cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
    );
    let err = producer.commit(TIMEOUT).await.unwrap_err();
    assert_eq!(err.kind, TransactionErrorKind::Fatal, "{err}");
    assert!(err.is_fatal() && err.is_fenced(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("txn-fenced") && text.contains("create a new one"),
        "{text}"
    );
    // A fenced producer stays unusable.
    let again = producer.begin().unwrap_err();
    assert_eq!(again.kind, TransactionErrorKind::Fatal, "{again}");
}

#[tokio::test]
async fn refused_partition_requires_abort_then_recovers() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 1, 1).unwrap();
    let producer = mock_producer(&cluster, "txn-abortable");
    producer.init(TIMEOUT).await.unwrap();
    producer.begin().unwrap();
    cluster.request_errors(
        RDKafkaApiKey::AddPartitionsToTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let sent = producer
        .send(ProducerRecord::new("t", "k".to_string(), "v".to_string()))
        .await;
    assert!(
        sent.is_err(),
        "the record of a refused partition is not delivered"
    );
    let err = producer.commit(TIMEOUT).await.unwrap_err();
    assert_eq!(err.kind, TransactionErrorKind::AbortRequired, "{err}");
    assert!(err.requires_abort() && !err.is_fatal());
    producer.abort(TIMEOUT).await.unwrap();
    // After the abort, the next transaction goes through.
    producer.begin().unwrap();
    producer
        .send(ProducerRecord::new("t", "k".to_string(), "v2".to_string()))
        .await
        .unwrap();
    producer.commit(TIMEOUT).await.unwrap();
}

#[tokio::test]
async fn commit_timeout_is_retriable() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 1, 1).unwrap();
    let producer = mock_producer(&cluster, "txn-retriable");
    producer.init(TIMEOUT).await.unwrap();
    producer.begin().unwrap();
    producer
        .send(ProducerRecord::new("t", "k".to_string(), "v".to_string()))
        .await
        .unwrap();
    cluster
        .broker_round_trip_time(1, Duration::from_secs(3))
        .unwrap();
    let err = producer
        .commit(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransactionErrorKind::Retriable, "{err}");
    assert!(err.is_retriable());
    cluster.broker_round_trip_time(1, Duration::ZERO).unwrap();
    producer.commit(TIMEOUT).await.unwrap();
}

/// A transactional producer on the test broker, initialized.
async fn broker_producer(id: &str) -> TransactionalProducer<String, String> {
    let producer = TransactionalProducer::new(&config(), id).unwrap();
    producer.init(TIMEOUT).await.unwrap_or_else(|e| {
        panic!(
            "init_transactions at {} failed: {e}; the test broker must support transactions",
            integration_tests::bootstrap_servers()
        )
    });
    producer
}

/// Commits a transaction holding only the "sentinel" record that bounds
/// [`values_at`]'s read.
async fn commit_sentinel(producer: &TransactionalProducer<String, String>, topic: &str) {
    producer.begin().unwrap();
    producer
        .send(ProducerRecord::new(
            topic,
            "end".to_string(),
            "sentinel".to_string(),
        ))
        .await
        .unwrap();
    producer.commit(TIMEOUT).await.unwrap();
}

/// Every value of partition 0 of `topic`, read at `level` up to the end.
async fn values_at(topic: &str, level: IsolationLevel) -> Vec<String> {
    let group = unique_name("iso");
    let consumer = reader(&consumer_config(&group), &group, level);
    let tp = TopicPartition::new(topic, 0);
    consumer.assign(&[(tp.clone(), Offset::Beginning)]).unwrap();
    // Each test commits a "sentinel" record last: reading up to it means every
    // earlier transaction has been decided, at either isolation level.
    let mut values = Vec::new();
    loop {
        let record = tokio::time::timeout(TIMEOUT, consumer.recv())
            .await
            .expect("reading up to the sentinel")
            .unwrap();
        if record.value == "sentinel" {
            return values;
        }
        values.push(record.value);
    }
}

#[tokio::test]
async fn read_committed_never_sees_aborted_records() {
    let topic = unique_name("isolation");
    create_topic(&topic, 1).await;
    let producer = broker_producer(&unique_name("isolation")).await;
    for (value, commit) in [
        ("aborted-1", false),
        ("committed-1", true),
        ("aborted-2", false),
        ("aborted-3", false),
        ("committed-2", true),
        ("sentinel", true),
    ] {
        producer.begin().unwrap();
        producer
            .send(ProducerRecord::new(
                &topic,
                "k".to_string(),
                value.to_string(),
            ))
            .await
            .unwrap();
        if commit {
            producer.commit(TIMEOUT).await.unwrap();
        } else {
            producer.abort(TIMEOUT).await.unwrap();
        }
    }
    // The aborted records were written: read_uncommitted sees every one.
    assert_eq!(
        values_at(&topic, IsolationLevel::ReadUncommitted).await,
        [
            "aborted-1",
            "committed-1",
            "aborted-2",
            "aborted-3",
            "committed-2"
        ]
    );
    assert_eq!(
        values_at(&topic, IsolationLevel::ReadCommitted).await,
        ["committed-1", "committed-2"],
        "read_committed must not see aborted records"
    );
}

/// A one-partition input topic holding `k<i>` → `in<i>` for `i` in `0..records`, and
/// an empty one-partition output topic.
async fn input_and_output(prefix: &str, records: usize) -> (String, String) {
    let source = unique_name(&format!("{prefix}-in"));
    let sink = unique_name(&format!("{prefix}-out"));
    create_topic(&source, 1).await;
    create_topic(&sink, 1).await;
    let plain: Producer<String, String> = Producer::new(&config()).unwrap();
    for i in 0..records {
        plain
            .send(ProducerRecord::new(
                &source,
                format!("k{i}"),
                format!("in{i}"),
            ))
            .await
            .unwrap();
    }
    (source, sink)
}

#[tokio::test]
async fn offsets_sent_to_a_transaction_are_committed_only_when_it_commits() {
    let (source, sink) = input_and_output("txn-offsets", 3).await;
    let group = unique_name("txn-offsets-group");
    let consumer = reader(
        &consumer_config(&group),
        &group,
        IsolationLevel::ReadCommitted,
    );
    consumer.subscribe(&[&source]).unwrap();
    let producer = broker_producer(&unique_name("txn-offsets")).await;
    // The group's committed offset of partition 0 as it stands: pending transactional
    // offsets are not committed ones. Asked at read_committed (librdkafka's default),
    // OffsetFetch would instead wait for the open transaction to end (KIP-447).
    let admin =
        AdminClient::new(&config().isolation_level(IsolationLevel::ReadUncommitted)).unwrap();
    let committed = || async {
        admin
            .group_offsets_for_topics(&group, &[&source])
            .await
            .unwrap()
            .into_iter()
            .find(|(tp, _)| tp.partition == 0)
            .and_then(|(_, offset)| offset)
    };

    // Transaction 1 consumes offset 0 and aborts: neither its output nor its
    // offset is committed.
    let first = consumer.recv().await.unwrap();
    assert_eq!(first.offset, 0);
    producer.begin().unwrap();
    producer
        .send(ProducerRecord::new(
            &sink,
            first.key.clone(),
            "out-aborted".to_string(),
        ))
        .await
        .unwrap();
    producer
        .send_offsets_to_transaction(
            &[(first.topic_partition(), first.offset + 1)],
            consumer.group_metadata().expect("group metadata"),
            TIMEOUT,
        )
        .await
        .unwrap();
    // Sent but not yet committed: the group has no offset yet.
    assert_eq!(
        committed().await,
        None,
        "offsets are not committed while their transaction is open"
    );
    producer.abort(TIMEOUT).await.unwrap();
    assert_eq!(
        committed().await,
        None,
        "an aborted transaction commits no offsets"
    );

    // Transaction 2 consumes offsets 1 and 2 and commits: output and offset 3
    // appear together.
    let mut last = first;
    producer.begin().unwrap();
    for _ in 0..2 {
        last = consumer.recv().await.unwrap();
        producer
            .send(ProducerRecord::new(
                &sink,
                last.key.clone(),
                format!("out-{}", last.value),
            ))
            .await
            .unwrap();
    }
    assert_eq!(last.offset, 2);
    producer
        .send_offsets_to_transaction(
            &[(last.topic_partition(), last.offset + 1)],
            consumer.group_metadata().expect("group metadata"),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(committed().await, None);
    producer.commit(TIMEOUT).await.unwrap();
    assert_eq!(
        committed().await,
        Some(3),
        "the commit made the group's offset 3"
    );
    assert_eq!(
        consumer.committed().await.unwrap(),
        vec![(last.topic_partition(), Some(3))],
        "the group's member sees it too"
    );
    // A sentinel bounds the read below; then read_committed shows exactly the
    // committed transaction's output.
    commit_sentinel(&producer, &sink).await;
    assert_eq!(
        values_at(&sink, IsolationLevel::ReadCommitted).await,
        ["out-in1", "out-in2"]
    );
}

#[tokio::test]
async fn a_newer_producer_with_the_same_transactional_id_fences_the_older_one() {
    let topic = unique_name("fencing");
    create_topic(&topic, 1).await;
    let id = unique_name("fencing");
    let zombie = broker_producer(&id).await;
    zombie.begin().unwrap();
    zombie
        .send(ProducerRecord::new(
            &topic,
            "k".to_string(),
            "zombie".to_string(),
        ))
        .await
        .unwrap();

    // The newer instance's init bumps the epoch, aborting the zombie's open
    // transaction and fencing it.
    let successor = broker_producer(&id).await;
    let err = zombie.commit(TIMEOUT).await.unwrap_err();
    assert_eq!(err.kind, TransactionErrorKind::Fatal, "{err}");
    assert!(err.is_fenced(), "{err}");
    assert!(err.to_string().contains(&id), "{err}");
    let again = zombie.begin().unwrap_err();
    assert_eq!(again.kind, TransactionErrorKind::Fatal, "{again}");

    // The successor works, and the zombie's record never becomes visible.
    successor.begin().unwrap();
    successor
        .send(ProducerRecord::new(
            &topic,
            "k".to_string(),
            "successor".to_string(),
        ))
        .await
        .unwrap();
    successor
        .send(ProducerRecord::new(
            &topic,
            "end".to_string(),
            "sentinel".to_string(),
        ))
        .await
        .unwrap();
    successor.commit(TIMEOUT).await.unwrap();
    assert_eq!(
        values_at(&topic, IsolationLevel::ReadCommitted).await,
        ["successor"]
    );
}

/// The client-level exactly-once loop (`ConsumeTransformProduce`): a batch whose
/// transform fails is aborted and processed again; an instance that crashes in the
/// middle of a transaction is fenced by its successor with the same
/// `transactional.id`, which aborts the open transaction and carries on from the
/// committed offset. `read_committed` readers see every input record's output
/// exactly once.
#[tokio::test]
async fn consume_transform_produce_outputs_each_record_once_across_a_failed_batch_and_a_crash() {
    use kafka_client::transaction::{ConsumeTransformProduce, PipelineError};

    let (source, sink) = input_and_output("ctp", 60).await;
    let group = unique_name("ctp-group");
    let id = unique_name("ctp");
    let pipeline = || async {
        let consumer = reader(
            &consumer_config(&group).set("enable.auto.commit", "false"),
            &group,
            IsolationLevel::ReadCommitted,
        );
        consumer.subscribe(&[&source]).unwrap();
        let producer = TransactionalProducer::new(&config(), &id).unwrap();
        ConsumeTransformProduce::new(consumer, producer)
            .await
            .unwrap()
            .max_batch_records(20)
            .poll_timeout(TIMEOUT)
    };
    let shout = |record: &kafka_client::ConsumerRecord<String, String>| {
        Ok::<_, std::convert::Infallible>(vec![ProducerRecord::new(
            &sink,
            record.key.clone(),
            record.value.to_uppercase(),
        )])
    };

    let first = pipeline().await;
    // A failing transform aborts the batch and rewinds the consumer...
    let failed = first
        .process_batch(|_| Err::<Vec<ProducerRecord<String, String>>, _>("no"))
        .await
        .unwrap_err();
    assert!(
        matches!(&failed, PipelineError::Transform { offset: 0, .. }) && !failed.is_fatal(),
        "{failed}"
    );
    // ...so the next call processes the same records.
    let mut processed = first.process_batch(shout).await.unwrap();
    assert!(processed > 0);

    // The instance crashes in the middle of a transaction: output sent, nothing
    // committed, its consumer gone from the group.
    let (consumer, zombie) = first.into_parts();
    zombie.begin().unwrap();
    zombie
        .send(ProducerRecord::new(
            &sink,
            "k".to_string(),
            "zombie".to_string(),
        ))
        .await
        .unwrap();
    consumer.close().await.unwrap();

    // Its successor fences it (aborting the open transaction) and resumes from the
    // committed offset.
    let second = pipeline().await;
    while processed < 60 {
        processed += second.process_batch(shout).await.unwrap();
    }
    assert_eq!(processed, 60);
    let fenced = zombie.commit(TIMEOUT).await.unwrap_err();
    assert!(fenced.is_fenced(), "{fenced}");

    commit_sentinel(second.producer(), &sink).await;
    let expected: Vec<String> = (0..60).map(|i| format!("IN{i}")).collect();
    assert_eq!(
        values_at(&sink, IsolationLevel::ReadCommitted).await,
        expected
    );
    assert!(
        values_at(&sink, IsolationLevel::ReadUncommitted)
            .await
            .contains(&"zombie".to_string()),
        "the crashed transaction's record was written, and aborted"
    );
}
