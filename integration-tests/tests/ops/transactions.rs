//! Transactions, in two layers:
//! (a) the whole call sequence and the error classification against librdkafka's
//!     mock cluster (it accepts every transactional call, but does not hide
//!     aborted records from `read_committed` consumers);
//! (b) isolation against the broker of `KAFKA_BOOTSTRAP_SERVERS` when it supports
//!     transactions (real Kafka does; nisshi 0.8 refuses transactional ids).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::{config, consumer_config, create_topic, unique_name};
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

#[tokio::test]
async fn read_committed_hides_aborted_records_on_a_transactional_broker() {
    let topic = unique_name("isolation");
    create_topic(&topic, 1).await;
    let producer: TransactionalProducer<String, String> =
        TransactionalProducer::new(&config(), &unique_name("isolation")).unwrap();
    if let Err(e) = producer.init(Duration::from_secs(20)).await {
        println!(
            "skipped: broker without transactions (init_transactions at {} failed: {e})",
            integration_tests::bootstrap_servers()
        );
        return;
    }
    producer.begin().unwrap();
    producer
        .send(ProducerRecord::new(
            &topic,
            "k".to_string(),
            "aborted".to_string(),
        ))
        .await
        .unwrap();
    producer.abort(TIMEOUT).await.unwrap();

    // The committed transaction also carries a consumer group's offsets.
    let source = unique_name("isolation-in");
    create_topic(&source, 1).await;
    let plain: Producer<String, String> = Producer::new(&config()).unwrap();
    plain
        .send(ProducerRecord::new(
            &source,
            "k".to_string(),
            "in".to_string(),
        ))
        .await
        .unwrap();
    let group = unique_name("isolation-group");
    let input_consumer = reader(
        &consumer_config(&group),
        &group,
        IsolationLevel::ReadCommitted,
    );
    input_consumer.subscribe(&[&source]).unwrap();
    let input = input_consumer.recv().await.unwrap();

    producer.begin().unwrap();
    producer
        .send(ProducerRecord::new(
            &topic,
            "k".to_string(),
            "committed".to_string(),
        ))
        .await
        .unwrap();
    producer
        .send_offsets_to_transaction(
            &[(input.topic_partition(), input.offset + 1)],
            input_consumer.group_metadata().expect("group metadata"),
            TIMEOUT,
        )
        .await
        .unwrap();
    producer.commit(TIMEOUT).await.unwrap();
    assert_eq!(
        input_consumer.committed().await.unwrap(),
        vec![(input.topic_partition(), Some(input.offset + 1))],
        "the transaction committed the group's offsets"
    );

    let tp = TopicPartition::new(&topic, 0);
    // read_uncommitted sees the aborted record: it was written.
    let uncommitted = reader(
        &consumer_config(&unique_name("iso")),
        &unique_name("iso"),
        IsolationLevel::ReadUncommitted,
    );
    uncommitted
        .assign(&[(tp.clone(), Offset::Beginning)])
        .unwrap();
    assert_eq!(uncommitted.recv().await.unwrap().value, "aborted");
    // read_committed skips it and sees the committed one.
    let committed = reader(
        &consumer_config(&unique_name("iso")),
        &unique_name("iso"),
        IsolationLevel::ReadCommitted,
    );
    committed.assign(&[(tp, Offset::Beginning)]).unwrap();
    let first = committed.recv().await.unwrap();
    assert_eq!(
        first.value, "committed",
        "read_committed must not see the aborted record"
    );
}
