//! The read-ahead of [`Consumer::recv_fetched`]: records read from librdkafka but not
//! handed out yet must never be covered by a commit (explicit, automatic, or on
//! close), must not be delivered once their partition is no longer assigned, and
//! must be read again after a pause or not at all after a seek. Each test first reads
//! until records are held ahead, so that it exercises the read-ahead.

use std::future::Future;
use std::time::Duration;

use super::*;
use crate::dev::EmbeddedCluster;
use crate::{Producer, ProducerRecord};

const TOPIC: &str = "read-ahead-readings";
/// Records on partition 0 and on partition 1: enough for reads ahead to come to hold
/// records of both partitions at once, however librdkafka's fetches interleave them.
const ON_P0: i64 = 1000;
const ON_P1: i64 = 1000;

/// Waits at most 30 s for `future`, so that a lost record fails the test instead of
/// hanging it.
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("not within 30 s")
}

async fn cluster_with_records() -> EmbeddedCluster {
    let cluster = EmbeddedCluster::start(1).unwrap();
    cluster.create_topic(TOPIC, 2).unwrap();
    // Small record batches: a fetch returns whole batches, so these keep each fetch
    // of a partition small (see `consumer`).
    let producer: Producer<String, String> =
        Producer::new(&cluster.client_config().set("batch.num.messages", "50")).unwrap();
    let records = (0..ON_P0 + ON_P1).map(|i| {
        let partition = if i < ON_P0 { 0 } else { 1 };
        ProducerRecord::new(TOPIC, format!("sensor-{i}"), format!("{i}")).with_partition(partition)
    });
    for result in producer.send_batch(records.collect()).await {
        result.unwrap();
    }
    cluster
}

fn tp(partition: i32) -> TopicPartition {
    TopicPartition::new(TOPIC, partition)
}

/// A consumer of `partitions` whose fetches return small slices of each partition
/// (`max.partition.fetch.bytes`, over the small record batches written above), so
/// that librdkafka's queue interleaves the partitions and reads ahead come to hold
/// records of several at once. With a whole partition per fetch, a run could hand
/// out one partition entirely before the other arrived, and never hold both.
fn consumer(config: ClientConfig, partitions: &[i32]) -> Consumer<String, String> {
    let config = config.set("max.partition.fetch.bytes", "2048");
    let consumer = Consumer::new(&config).unwrap();
    let assignment: Vec<_> = partitions
        .iter()
        .map(|&p| (tp(p), Offset::Beginning))
        .collect();
    consumer.assign(&assignment).unwrap();
    consumer
}

/// Whether records of `partition` are held read ahead.
fn holds_ahead(consumer: &Consumer<String, String>, partition: i32) -> bool {
    consumer
        .lock_reader()
        .buffer
        .iter()
        .any(|m| m.partition() == partition)
}

/// Receives records one at a time until records of every partition of `partitions`
/// are held ahead; returns the (partition, offset) of each record received.
async fn recv_until_held_ahead(
    consumer: &Consumer<String, String>,
    partitions: &[i32],
) -> Vec<(i32, i64)> {
    let mut received = Vec::new();
    while !partitions.iter().all(|&p| holds_ahead(consumer, p)) {
        let record = within(consumer.recv_fetched()).await.unwrap();
        received.push((record.partition(), record.offset()));
        assert!(
            received.len() < (ON_P0 + ON_P1) as usize,
            "every record was handed out before partitions {partitions:?} were read ahead together"
        );
    }
    received
}

/// The next offset after the last record of `partition` received.
fn next_of(received: &[(i32, i64)], partition: i32) -> Option<i64> {
    received
        .iter()
        .filter(|(p, _)| *p == partition)
        .map(|(_, o)| o + 1)
        .max()
}

/// The group's committed offsets of both partitions, read by another consumer.
async fn committed(cluster: &EmbeddedCluster, group: &str) -> Vec<(TopicPartition, Option<i64>)> {
    let probe: Consumer<String, String> =
        Consumer::new(&cluster.client_config().group_id(group)).unwrap();
    probe
        .assign(&[(tp(0), Offset::Stored), (tp(1), Offset::Stored)])
        .unwrap();
    let mut committed = probe.committed().await.unwrap();
    committed.sort_by_key(|(tp, _)| tp.partition);
    committed
}

/// What a commit must cover: the records handed out, per partition.
fn handed_out(received: &[(i32, i64)]) -> Vec<(TopicPartition, Option<i64>)> {
    vec![(tp(0), next_of(received, 0)), (tp(1), next_of(received, 1))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_covers_the_records_handed_out_not_those_read_ahead() {
    let cluster = cluster_with_records().await;
    let consumer = consumer(cluster.client_config().group_id("explicit"), &[0, 1]);
    let received = recv_until_held_ahead(&consumer, &[0, 1]).await;
    let handed = handed_out(&received);
    // librdkafka has gone past the records held ahead; the consumer's position has not.
    let mut librdkafka = offsets_of(&consumer.inner.position().unwrap());
    let mut position = consumer.position().unwrap();
    librdkafka.sort_by_key(|(tp, _)| tp.partition);
    position.sort_by_key(|(tp, _)| tp.partition);
    for ((_, ours), (_, theirs)) in position.iter().zip(&librdkafka) {
        assert!(
            theirs.unwrap() > ours.unwrap(),
            "{position:?} / {librdkafka:?}"
        );
    }
    for ((_, at), (_, handed)) in position.iter().zip(&handed) {
        assert_eq!(*at, Some(handed.unwrap_or(0)), "{position:?}");
    }

    consumer.commit().await.unwrap();
    assert_eq!(committed(&cluster, "explicit").await, handed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_and_close_cover_the_records_handed_out_not_those_read_ahead() {
    let cluster = cluster_with_records().await;
    let config = cluster
        .client_config()
        .group_id("automatic")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "10");
    let consumer = consumer(config, &[0, 1]);
    let received = recv_until_held_ahead(&consumer, &[0, 1]).await;
    let handed = handed_out(&received);
    // The auto-commit timer commits what is stored: the records handed out (once it
    // has caught up with the last of them), never more.
    let covers = |c: &[(TopicPartition, Option<i64>)]| {
        c.iter()
            .zip(&handed)
            .all(|((_, c), (_, h))| c.unwrap_or(0) >= h.unwrap_or(0))
    };
    let auto_committed = within(async {
        loop {
            let c = committed(&cluster, "automatic").await;
            if covers(&c) {
                return c;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(auto_committed, handed);
    // Closing commits what is stored too.
    within(consumer.close()).await.unwrap();
    assert_eq!(committed(&cluster, "automatic").await, handed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_offset_is_stored_when_the_user_turned_the_store_off() {
    let cluster = cluster_with_records().await;
    let config = cluster
        .client_config()
        .group_id("manual-store")
        .set("enable.auto.offset.store", "false");
    let consumer = consumer(config, &[0]);
    recv_until_held_ahead(&consumer, &[0]).await;
    assert!(
        consumer.commit().await.is_err(),
        "nothing stored, nothing to commit"
    );
    assert_eq!(consumer.committed().await.unwrap(), vec![(tp(0), None)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_read_ahead_of_a_partition_no_longer_assigned_are_not_delivered() {
    let cluster = cluster_with_records().await;
    let config = cluster.client_config().group_id("reassigned");

    // Through `assign`.
    let consumer = consumer(config.clone(), &[0, 1]);
    recv_until_held_ahead(&consumer, &[0]).await;
    consumer.assign(&[(tp(1), Offset::Beginning)]).unwrap();
    for offset in 0..ON_P1 {
        let record = within(consumer.recv_fetched()).await.unwrap();
        assert_eq!((record.partition(), record.offset()), (1, offset));
    }

    // Through an assignment that changed underneath, as a cooperative rebalance
    // changes it: partition 0 revoked, partition 1 kept where it is.
    let consumer = self::consumer(config, &[0, 1]);
    let received = recv_until_held_ahead(&consumer, &[0, 1]).await;
    let mut p0 = TopicPartitionList::new();
    p0.add_partition(TOPIC, 0);
    consumer.inner.incremental_unassign(&p0).unwrap();
    consumer.inner.context().assignment_changed();
    for offset in next_of(&received, 1).unwrap_or(0)..ON_P1 {
        let record = within(consumer.recv_fetched()).await.unwrap();
        assert_eq!((record.partition(), record.offset()), (1, offset));
    }
    // Nothing of partition 0 comes before a record written to partition 1 now.
    // Small record batches: a fetch returns whole batches, so these keep each fetch
    // of a partition small (see `consumer`).
    let producer: Producer<String, String> =
        Producer::new(&cluster.client_config().set("batch.num.messages", "50")).unwrap();
    producer
        .send(ProducerRecord::new(TOPIC, "late".to_owned(), "late".to_owned()).with_partition(1))
        .await
        .unwrap();
    let record = within(consumer.recv_fetched()).await.unwrap();
    assert_eq!((record.partition(), record.offset()), (1, ON_P1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_gives_back_what_was_read_ahead_and_resume_reads_it_once() {
    let cluster = cluster_with_records().await;
    let consumer = consumer(cluster.client_config().group_id("paused"), &[0, 1]);
    let mut received = recv_until_held_ahead(&consumer, &[0]).await;
    let resume_at = next_of(&received, 0).unwrap_or(0);
    consumer.pause(&[tp(0)]).unwrap();
    assert!(!holds_ahead(&consumer, 0));
    // While paused: partition 1's records only, to its end.
    while next_of(&received, 1) != Some(ON_P1) {
        let record = within(consumer.recv_fetched()).await.unwrap();
        assert_eq!(
            record.partition(),
            1,
            "offset {} while paused",
            record.offset()
        );
        received.push((1, record.offset()));
    }
    consumer.resume(&[tp(0)]).unwrap();
    for offset in resume_at..ON_P0 {
        let record = within(consumer.recv_fetched()).await.unwrap();
        assert_eq!((record.partition(), record.offset()), (0, offset));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_drops_what_was_read_ahead_of_the_partition() {
    let cluster = cluster_with_records().await;
    let consumer = consumer(cluster.client_config().group_id("sought"), &[0]);
    recv_until_held_ahead(&consumer, &[0]).await;
    consumer.seek(&tp(0), Offset::At(1)).await.unwrap();
    assert!(!holds_ahead(&consumer, 0));
    for offset in 1..ON_P0 {
        assert_eq!(
            within(consumer.recv_fetched()).await.unwrap().offset(),
            offset
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_batch_hands_out_what_was_read_ahead_first() {
    let cluster = cluster_with_records().await;
    let consumer = consumer(cluster.client_config().group_id("batched"), &[0]);
    let received = recv_until_held_ahead(&consumer, &[0]).await;
    let mut next = next_of(&received, 0).unwrap();
    while next < ON_P0 {
        for record in within(consumer.recv_batch(7)).await.unwrap() {
            assert_eq!(record.unwrap().offset(), next);
            next += 1;
        }
    }
    consumer.commit().await.unwrap();
    assert_eq!(
        consumer.committed().await.unwrap(),
        vec![(tp(0), Some(ON_P0))]
    );
}

#[test]
fn the_users_offset_store_setting_is_honoured_and_librdkafkas_is_off() {
    let config = ClientConfig::new("localhost:9092");
    assert!(stores_offsets_automatically(&config));
    assert!(!stores_offsets_automatically(
        &config.clone().set("enable.auto.offset.store", "false")
    ));
    assert_eq!(
        consumer_properties(&config.set("enable.auto.offset.store", "true"))
            .get("enable.auto.offset.store"),
        Some("false")
    );
}
