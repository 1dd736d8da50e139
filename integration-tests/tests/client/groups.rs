//! Consumer groups: partition sharing, hand-over, committed offsets, and
//! awaitable commits.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use integration_tests::{consumer_config, create_topic, eventually, unique_name};
use kafka_client::admin::AdminClient;
use kafka_client::{
    Consumer, Producer, ProducerRecord, RebalanceEvent, RebalanceListener, TopicPartition,
};

async fn produce_per_partition(topic: &str, partitions: i32, per_partition: i64, start: i64) {
    let producer: Producer<String, i64> = Producer::new(&integration_tests::config()).unwrap();
    for p in 0..partitions {
        for i in start..start + per_partition {
            producer
                .send(ProducerRecord::new(topic, format!("k{i}"), i).with_partition(p))
                .await
                .unwrap();
        }
    }
}

type Seen = Arc<Mutex<BTreeSet<(i32, i64)>>>;

/// Consumes and commits every record, remembering (partition, value).
fn spawn_reader(consumer: Arc<Consumer<String, i64>>, seen: Seen) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let record = consumer.recv().await.unwrap();
            seen.lock()
                .unwrap()
                .insert((record.partition, record.value));
            consumer.commit_record(&record).await.unwrap();
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_four_partitions_and_survivor_takes_all() {
    let topic = unique_name("group-split");
    let group = unique_name("group-split");
    create_topic(&topic, 4).await;
    produce_per_partition(&topic, 4, 25, 0).await;

    let a = Arc::new(Consumer::<String, i64>::new(&consumer_config(&group)).unwrap());
    let b = Arc::new(Consumer::<String, i64>::new(&consumer_config(&group)).unwrap());
    let mut a_events = a.rebalance_events();
    a.subscribe(&[&topic]).unwrap();
    b.subscribe(&[&topic]).unwrap();
    let seen: Seen = Arc::default();
    let reader_a = spawn_reader(a.clone(), seen.clone());
    let reader_b = spawn_reader(b.clone(), seen.clone());

    eventually("a 2 + 2 split", || async {
        let (na, nb) = (a.assignment().unwrap().len(), b.assignment().unwrap().len());
        (na == 2 && nb == 2).then_some(())
    })
    .await;
    eventually("the first 100 records", || async {
        (seen.lock().unwrap().len() == 100).then_some(())
    })
    .await;

    // B leaves; A must take over all four partitions and read everything after.
    reader_b.abort();
    let _ = reader_b.await;
    let b = Arc::try_unwrap(b).ok().expect("b is no longer shared");
    b.close().await.unwrap();
    produce_per_partition(&topic, 4, 25, 25).await;

    eventually("a owning all 4 partitions", || async {
        (a.assignment().unwrap().len() == 4).then_some(())
    })
    .await;
    eventually("all 200 records", || async {
        (seen.lock().unwrap().len() == 200).then_some(())
    })
    .await;
    let expected: BTreeSet<(i32, i64)> =
        (0..4).flat_map(|p| (0..50).map(move |v| (p, v))).collect();
    assert_eq!(
        *seen.lock().unwrap(),
        expected,
        "at-least-once: nothing lost"
    );

    // The rebalance channel told A about its assignments.
    let mut assigned = Vec::new();
    while let Ok(event) = a_events.try_recv() {
        if let RebalanceEvent::Assigned(parts) = event {
            assigned.extend(parts);
        }
    }
    assert!(!assigned.is_empty(), "no Assigned event seen");
    reader_a.abort();
}

#[tokio::test]
async fn committed_offsets_survive_a_restart_and_uncommitted_records_come_back() {
    let topic = unique_name("restart");
    let group = unique_name("restart");
    create_topic(&topic, 1).await;
    produce_per_partition(&topic, 1, 10, 0).await;

    let first: Consumer<String, i64> = Consumer::new(&consumer_config(&group)).unwrap();
    first.subscribe(&[&topic]).unwrap();
    for expected in 0..4 {
        let record = first.recv().await.unwrap();
        assert_eq!(record.value, expected);
        first.commit_record(&record).await.unwrap();
    }
    // Read, but a failing handler: process_at_least_once must not commit it.
    let failed = first
        .process_at_least_once(|record| async move {
            Err::<(), _>(format!("cannot handle {}", record.value))
        })
        .await;
    assert!(matches!(
        failed,
        Err(kafka_client::consumer::ProcessError::Handler(_))
    ));
    let committed = first.committed().await.unwrap();
    assert_eq!(committed[0].1, Some(4));
    first.close().await.unwrap();

    let second: Consumer<String, i64> = Consumer::new(&consumer_config(&group)).unwrap();
    second.subscribe(&[&topic]).unwrap();
    let record = second.recv().await.unwrap();
    assert_eq!(record.offset, 4, "resumes at the first uncommitted record");
    assert_eq!(record.value, 4);
    // at-most-once: committed before it is handed out.
    let record = second.recv_at_most_once().await.unwrap();
    assert_eq!(record.offset, 5);
    assert_eq!(second.committed().await.unwrap()[0].1, Some(6));
}

#[tokio::test(flavor = "current_thread")]
async fn commits_leave_the_current_thread_runtime_free() {
    let topic = unique_name("commit-async");
    let group = unique_name("commit-async");
    create_topic(&topic, 1).await;
    produce_per_partition(&topic, 1, 5, 0).await;
    let consumer: Consumer<String, i64> = Consumer::new(&consumer_config(&group)).unwrap();
    consumer.subscribe(&[&topic]).unwrap();

    for _ in 0..5 {
        let record = consumer.recv().await.unwrap();
        // Another task, queued on the (single) executor thread before the commit
        // starts. It runs while the commit is in flight only if the commit yields
        // the thread; a commit that blocked it would finish before the task ran.
        let ran = Arc::new(AtomicBool::new(false));
        let other = tokio::spawn({
            let ran = ran.clone();
            async move { ran.store(true, Ordering::SeqCst) }
        });
        consumer.commit_record(&record).await.unwrap();
        assert!(
            ran.load(Ordering::SeqCst),
            "the executor was blocked during the commit of offset {}",
            record.offset
        );
        other.await.unwrap();
    }
    assert_eq!(consumer.committed().await.unwrap()[0].1, Some(5));
}

/// Remembers what the synchronous rebalance callbacks were told.
#[derive(Default, Clone)]
struct Recorder {
    assigned: Arc<Mutex<Vec<TopicPartition>>>,
    revoked: Arc<Mutex<Vec<TopicPartition>>>,
    lost: Arc<Mutex<Vec<TopicPartition>>>,
}

impl RebalanceListener for Recorder {
    fn on_assigned(&self, partitions: &[TopicPartition]) {
        self.assigned.lock().unwrap().extend_from_slice(partitions);
    }
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        self.revoked.lock().unwrap().extend_from_slice(partitions);
    }
    fn on_lost(&self, partitions: &[TopicPartition]) {
        self.lost.lock().unwrap().extend_from_slice(partitions);
    }
}

#[tokio::test]
async fn auto_commit_stream_and_rebalance_listener() {
    let topic = unique_name("auto-commit");
    let group = unique_name("auto-commit");
    create_topic(&topic, 2).await;
    produce_per_partition(&topic, 2, 3, 0).await;

    let recorder = Recorder::default();
    let consumer: Consumer<String, i64> = Consumer::builder(
        &consumer_config(&group)
            .enable_auto_commit(true)
            .set("auto.commit.interval.ms", "100"),
    )
    .key_deserializer(kafka_client::serde::StringSerde)
    .value_deserializer(kafka_client::serde::BigEndian)
    .rebalance_listener(recorder.clone())
    .build()
    .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let records: Vec<_> = consumer.stream().take(6).collect().await;
    let mut values: Vec<(i32, i64)> = records
        .into_iter()
        .map(|r| r.map(|r| (r.partition, r.value)).unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(values, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
    let mut assigned = recorder.assigned.lock().unwrap().clone();
    assigned.sort();
    assert_eq!(
        assigned,
        vec![
            TopicPartition::new(&topic, 0),
            TopicPartition::new(&topic, 1)
        ]
    );

    // No explicit commit: the auto-commit timer commits what was handed out.
    eventually("auto-committed offsets", || async {
        let committed = consumer.committed().await.unwrap();
        committed.iter().all(|(_, o)| *o == Some(3)).then_some(())
    })
    .await;
    consumer.close().await.unwrap();
    let mut revoked = recorder.revoked.lock().unwrap().clone();
    revoked.sort();
    assert_eq!(
        revoked, assigned,
        "close revokes the assignment through the listener"
    );
}

#[tokio::test]
async fn a_consumer_that_stops_polling_is_told_its_partitions_were_lost() {
    let topic = unique_name("lost");
    let group = unique_name("lost");
    create_topic(&topic, 1).await;
    produce_per_partition(&topic, 1, 3, 0).await;
    let tp = TopicPartition::new(&topic, 0);

    // The shortest max.poll.interval.ms librdkafka accepts: the session timeout.
    let recorder = Recorder::default();
    let consumer: Consumer<String, i64> =
        Consumer::builder(&consumer_config(&group).set("max.poll.interval.ms", "6000"))
            .key_deserializer(kafka_client::serde::StringSerde)
            .value_deserializer(kafka_client::serde::BigEndian)
            .rebalance_listener(recorder.clone())
            .build()
            .unwrap();
    let consumer = Arc::new(consumer);
    let mut events = consumer.rebalance_events();
    consumer.subscribe(&[&topic]).unwrap();
    assert_eq!(consumer.recv().await.unwrap().offset, 0);
    let mut before_loss = Vec::new();
    while let Ok(event) = events.try_recv() {
        before_loss.push(event);
    }
    assert!(
        before_loss.contains(&RebalanceEvent::Assigned(vec![tp.clone()])),
        "{before_loss:?}"
    );
    assert!(
        !before_loss
            .iter()
            .any(|e| matches!(e, RebalanceEvent::Lost(_))),
        "{before_loss:?}"
    );
    let revoked_before = recorder.revoked.lock().unwrap().clone();

    // The application stops polling. Past max.poll.interval.ms librdkafka gives
    // up the membership on its behalf: the group loses its only member, and
    // the partition may belong to someone else by now.
    let admin = AdminClient::new(&integration_tests::config()).unwrap();
    eventually("the consumer to be the group's member", || async {
        let members = admin.describe_group(&group).await.unwrap().members;
        (members.len() == 1).then_some(())
    })
    .await;
    eventually(
        "the group to drop the consumer that stopped polling",
        || async {
            let members = admin.describe_group(&group).await.unwrap().members;
            members.is_empty().then_some(())
        },
    )
    .await;

    // The next poll tells the application: the partition was lost, not revoked
    // (committing for it now would be refused).
    let reader = tokio::spawn({
        let consumer = consumer.clone();
        async move {
            loop {
                // Records (read again: nothing was committed) and librdkafka's
                // "maximum poll interval exceeded" error alike.
                let _ = consumer.recv().await;
            }
        }
    });
    let event = tokio::time::timeout(integration_tests::DEADLINE, events.recv())
        .await
        .expect("no rebalance event after the consumer polled again")
        .expect("the event channel closed");
    assert_eq!(event, RebalanceEvent::Lost(vec![tp.clone()]));
    assert_eq!(*recorder.lost.lock().unwrap(), vec![tp.clone()]);
    assert_eq!(
        *recorder.revoked.lock().unwrap(),
        revoked_before,
        "a lost partition was reported as revoked"
    );

    // Polling again, the consumer rejoins and gets the partition back.
    let event = tokio::time::timeout(integration_tests::DEADLINE, events.recv())
        .await
        .expect("no assignment after the loss")
        .expect("the event channel closed");
    assert_eq!(event, RebalanceEvent::Assigned(vec![tp]));
    reader.abort();
}
