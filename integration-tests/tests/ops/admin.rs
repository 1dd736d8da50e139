//! The admin client: topics and configs, group lag, offset resets.

use std::time::Duration;

use integration_tests::{config, consumer_config, eventually, unique_name, wait_for_partitions};
use kafka_client::admin::{AdminClient, AdminError, NewTopic, ResetScope, ResetTarget};
use kafka_client::rdkafka::types::RDKafkaErrorCode;
use kafka_client::{Consumer, Producer, ProducerRecord, TopicPartition};

fn admin() -> AdminClient {
    AdminClient::new(&config()).expect("admin client")
}

async fn produce(topic: &str, partition: i32, values: std::ops::Range<i64>, base_ts: Option<i64>) {
    let producer: Producer<String, i64> = Producer::new(&config()).unwrap();
    for i in values {
        let mut record = ProducerRecord::new(topic, format!("k{i}"), i).with_partition(partition);
        if let Some(ts) = base_ts {
            record = record.with_timestamp(ts + i * 1000);
        }
        producer.send(record).await.unwrap();
    }
}

/// Consumes `per_partition` records of each of `partitions` partitions in group
/// `group`, committing each, then leaves the group.
async fn consume_and_commit(topic: &str, group: &str, partitions: i32, per_partition: i64) {
    let consumer: Consumer<String, i64> = Consumer::new(&consumer_config(group)).unwrap();
    let assignment: Vec<_> = (0..partitions)
        .map(|p| {
            (
                TopicPartition::new(topic, p),
                kafka_client::Offset::Beginning,
            )
        })
        .collect();
    // assign() (no join) keeps the group empty, so the test also works on brokers
    // with slow rebalances; commits still go to the group.
    consumer.assign(&assignment).unwrap();
    let mut seen = vec![0i64; partitions as usize];
    while seen.iter().any(|n| *n < per_partition) {
        let record = consumer.recv().await.unwrap();
        let n = &mut seen[record.partition as usize];
        if *n < per_partition {
            assert_eq!(record.offset, *n);
            *n += 1;
            consumer
                .commit_offsets(&[(record.topic_partition(), record.offset + 1)])
                .await
                .unwrap();
        }
    }
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn compacted_topic_config_describe_alter_and_delete() {
    let admin = admin();
    let topic = unique_name("compacted");
    admin
        .create_topic(
            NewTopic::new(&topic, 2)
                .replication_factor(1)
                .compacted()
                .min_insync_replicas(1),
        )
        .await
        .unwrap();
    wait_for_partitions(&topic, 2).await;

    let described = admin.describe_topic_config(&topic).await.unwrap();
    assert_eq!(
        described.get("cleanup.policy"),
        Some("compact"),
        "{described:?}"
    );

    admin
        .alter_topic_config(&topic, &[("retention.ms", Some("3600000"))])
        .await
        .unwrap();
    // A KRaft broker applies the controller's config change asynchronously: a
    // describe right after the alter may still show the old value.
    let again = eventually("the altered retention.ms to be described", || async {
        let described = admin.describe_topic_config(&topic).await.unwrap();
        (described.get("retention.ms") == Some("3600000")).then_some(described)
    })
    .await;
    assert_eq!(
        again.get("cleanup.policy"),
        Some("compact"),
        "altering one config keeps the others: {again:?}"
    );

    let listed = admin.describe_topic(&topic).await.unwrap();
    assert_eq!(listed.partition_count(), 2);
    assert!(
        listed.partitions.iter().all(|p| p.leader >= 0),
        "{listed:?}"
    );
    assert!(admin
        .list_topics()
        .await
        .unwrap()
        .iter()
        .any(|t| t.name == topic));

    admin.delete_topics(&[&topic]).await.unwrap();
    eventually("the topic to disappear", || async {
        let topics = admin.list_topics().await.unwrap();
        (!topics.iter().any(|t| t.name == topic)).then_some(())
    })
    .await;
    match admin.describe_topic(&topic).await {
        Err(AdminError::UnknownTopic { topic: t }) => assert_eq!(t, topic),
        other => panic!("expected UnknownTopic, got {other:?}"),
    }
}

#[tokio::test]
async fn group_lag_is_reported_without_joining_the_group() {
    let admin = admin();
    let topic = unique_name("lag");
    let group = unique_name("lag");
    admin
        .create_topic(NewTopic::new(&topic, 3).replication_factor(1))
        .await
        .unwrap();
    wait_for_partitions(&topic, 3).await;
    for p in 0..3 {
        produce(&topic, p, 0..100, None).await;
    }
    consume_and_commit(&topic, &group, 3, 40).await;

    let lag = admin.group_lag(&group).await.unwrap();
    assert_eq!(lag.partitions.len(), 3, "{lag:?}");
    for p in 0..3 {
        let line = lag.partition(&topic, p).unwrap();
        assert_eq!(
            (line.committed, line.log_end_offset, line.lag),
            (Some(40), 100, Some(60)),
            "partition {p}"
        );
    }
    assert_eq!(lag.total(), 180);

    // Reading the lag did not join the group.
    let description = admin.describe_group(&group).await.unwrap();
    assert!(description.members.is_empty(), "{description:?}");
    let offsets = admin
        .group_offsets_for_topics(&group, &[&topic])
        .await
        .unwrap();
    assert_eq!(offsets.len(), 3);
    assert!(offsets.iter().all(|(_, o)| *o == Some(40)));
}

#[tokio::test]
async fn reset_shift_by_one_on_one_partition_skips_exactly_one_record() {
    let admin = admin();
    let topic = unique_name("shift");
    let group = unique_name("shift");
    admin
        .create_topic(NewTopic::new(&topic, 2).replication_factor(1))
        .await
        .unwrap();
    wait_for_partitions(&topic, 2).await;
    produce(&topic, 0, 0..10, None).await;
    produce(&topic, 1, 0..10, None).await;
    consume_and_commit(&topic, &group, 2, 3).await;

    let scope: ResetScope = format!("{topic}:0").parse().unwrap();
    let dry = admin
        .plan_group_offsets_reset(
            &group,
            std::slice::from_ref(&scope),
            ResetTarget::ShiftBy(1),
        )
        .await
        .unwrap();
    assert!(!dry.executed);
    assert_eq!(dry.offsets.len(), 1, "{dry}");
    assert_eq!(
        (dry.offsets[0].current, dry.offsets[0].target),
        (Some(3), 4)
    );
    // The dry run changed nothing.
    let offsets = admin
        .group_offsets_for_topics(&group, &[&topic])
        .await
        .unwrap();
    assert_eq!(
        offsets,
        vec![
            (TopicPartition::new(&topic, 0), Some(3)),
            (TopicPartition::new(&topic, 1), Some(3))
        ]
    );

    let done = admin
        .reset_group_offsets(&group, &[scope], ResetTarget::ShiftBy(1))
        .await
        .unwrap();
    assert!(done.executed);
    let offsets = admin
        .group_offsets_for_topics(&group, &[&topic])
        .await
        .unwrap();
    assert_eq!(
        offsets,
        vec![
            (TopicPartition::new(&topic, 0), Some(4)),
            (TopicPartition::new(&topic, 1), Some(3))
        ],
        "only partition 0 moved"
    );

    // A member of the group resumes there: offset 3 of partition 0 is skipped.
    let consumer: Consumer<String, i64> = Consumer::new(&consumer_config(&group)).unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut first = std::collections::BTreeMap::new();
    while first.len() < 2 {
        let record = consumer.recv().await.unwrap();
        first.entry(record.partition).or_insert(record.offset);
    }
    assert_eq!(first[&0], 4, "partition 0 skips exactly one record");
    assert_eq!(first[&1], 3, "partition 1 is untouched");

    // While that member is active, a reset is refused, naming the group.
    eventually("the group to show its member", || async {
        let d = admin.describe_group(&group).await.unwrap();
        (!d.members.is_empty()).then_some(())
    })
    .await;
    let err = admin
        .reset_group_offsets(
            &group,
            &[ResetScope::Topic(topic.clone())],
            ResetTarget::ToEarliest,
        )
        .await
        .unwrap_err();
    match &err {
        AdminError::GroupNotEmpty {
            group: g, members, ..
        } => {
            assert_eq!(g, &group);
            assert_eq!(members.len(), 1, "{err}");
        }
        other => panic!("expected GroupNotEmpty, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&group) && message.contains("active member"),
        "{message}"
    );
    // ... and nothing was committed by the refused reset.
    consumer.close().await.unwrap();
    let offsets = admin
        .group_offsets_for_topics(&group, &[&topic])
        .await
        .unwrap();
    assert_eq!(offsets[0].1, Some(4));
}

#[tokio::test]
async fn reset_to_datetime_earliest_latest_and_offset() {
    let base_ts = integration_tests::an_hour_ago_ms();
    let admin = admin();
    let topic = unique_name("datetime");
    let group = unique_name("datetime");
    admin
        .create_topic(NewTopic::new(&topic, 1).replication_factor(1))
        .await
        .unwrap();
    wait_for_partitions(&topic, 1).await;
    // Record i has timestamp BASE + i seconds.
    produce(&topic, 0, 0..10, Some(base_ts)).await;
    consume_and_commit(&topic, &group, 1, 2).await;
    let scope = [ResetScope::Topic(topic.clone())];

    // 4.5 s after the base: the first record at or after that time is #5.
    let plan = admin
        .reset_group_offsets(&group, &scope, ResetTarget::ToDatetime(base_ts + 4_500))
        .await
        .unwrap();
    assert_eq!(plan.target(&topic, 0), Some(5));
    // An exact match lands on that record.
    let plan = admin
        .reset_group_offsets(&group, &scope, ResetTarget::ToDatetime(base_ts + 7_000))
        .await
        .unwrap();
    assert_eq!(plan.target(&topic, 0), Some(7));
    assert_eq!(plan.offsets[0].current, Some(5));
    // After the last record: the log end.
    let plan = admin
        .reset_group_offsets(&group, &scope, ResetTarget::ToDatetime(base_ts + 60_000))
        .await
        .unwrap();
    assert_eq!(plan.target(&topic, 0), Some(10));

    for (target, expected) in [
        (ResetTarget::ToEarliest, 0),
        (ResetTarget::ToOffset(6), 6),
        (ResetTarget::ToOffset(1_000), 10),
        (ResetTarget::ToLatest, 10),
        (ResetTarget::ShiftBy(-3), 7),
    ] {
        admin
            .reset_group_offsets(&group, &scope, target)
            .await
            .unwrap();
        let offsets = admin
            .group_offsets_for_topics(&group, &[&topic])
            .await
            .unwrap();
        assert_eq!(offsets[0].1, Some(expected), "{target:?}");
    }

    // A consumer of the group resumes where the reset put it.
    let consumer: Consumer<String, i64> = Consumer::new(&consumer_config(&group)).unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let record = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.offset, 7);
}

#[tokio::test]
async fn groups_are_listed_described_and_deleted() {
    let admin = admin();
    let topic = unique_name("groups");
    let group = unique_name("groups");
    admin
        .create_topic(NewTopic::new(&topic, 2).replication_factor(1))
        .await
        .unwrap();
    wait_for_partitions(&topic, 2).await;
    produce(&topic, 0, 0..3, None).await;

    let consumer: Consumer<String, i64> = Consumer::new(&consumer_config(&group)).unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let record = consumer.recv().await.unwrap();
    consumer.commit_record(&record).await.unwrap();
    let described = eventually("the group's member", || async {
        let d = admin.describe_group(&group).await.unwrap();
        (d.members.len() == 1).then_some(d)
    })
    .await;
    assert_eq!(described.state, "Stable");
    assert_eq!(described.protocol_type, "consumer");
    let member = &described.members[0];
    assert!(!member.member_id.is_empty(), "{member}");
    assert!(!member.client_id.is_empty(), "{member}");
    assert!(member.client_host.contains("127.0.0.1"), "{member}");
    // The one member holds both partitions (decoded from the consumer protocol).
    let mut assigned = member.assignment.clone();
    assigned.sort_by_key(|tp| tp.partition);
    assert_eq!(
        assigned,
        [
            TopicPartition::new(&topic, 0),
            TopicPartition::new(&topic, 1)
        ]
    );
    assert!(!described.is_inactive());
    let listed = admin.list_groups().await.unwrap();
    assert!(listed.iter().any(|g| g.group == group), "{listed:?}");

    consumer.close().await.unwrap();
    eventually("the group to empty", || async {
        admin
            .describe_group(&group)
            .await
            .unwrap()
            .is_inactive()
            .then_some(())
    })
    .await;
    admin.delete_group(&group).await.unwrap();
    let offsets = admin
        .group_offsets_for_topics(&group, &[&topic])
        .await
        .unwrap();
    assert!(offsets.iter().all(|(_, o)| o.is_none()), "{offsets:?}");
}

#[tokio::test]
async fn records_are_deleted_before_an_offset() {
    let admin = admin();
    let topic = unique_name("delete-records");
    admin
        .create_topic(NewTopic::new(&topic, 1).replication_factor(1))
        .await
        .unwrap();
    wait_for_partitions(&topic, 1).await;
    produce(&topic, 0, 0..10, None).await;
    admin
        .delete_records(&[(TopicPartition::new(&topic, 0), 4)])
        .await
        .unwrap();
    let group = unique_name("delete-records");
    let plan = admin
        .plan_group_offsets_reset(
            &group,
            &[format!("{topic}:0").parse().unwrap()],
            ResetTarget::ToEarliest,
        )
        .await
        .unwrap();
    assert_eq!(plan.target(&topic, 0), Some(4), "log start moved to 4");
    let err = admin
        .plan_group_offsets_reset(
            &group,
            &[format!("{topic}:7").parse().unwrap()],
            ResetTarget::ToEarliest,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AdminError::UnknownPartition { partition: 7, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn partitions_are_added_but_never_removed() {
    let admin = admin();
    let topic = unique_name("grow");
    admin
        .create_topic(NewTopic::new(&topic, 1).replication_factor(1))
        .await
        .unwrap();
    wait_for_partitions(&topic, 1).await;

    admin.create_partitions(&topic, 3).await.unwrap();
    let listing = eventually("3 led partitions in the metadata", || async {
        let listing = admin.describe_topic(&topic).await.unwrap();
        (listing.partition_count() == 3 && listing.partitions.iter().all(|p| p.leader >= 0))
            .then_some(listing)
    })
    .await;
    let ids: Vec<i32> = listing.partitions.iter().map(|p| p.id).collect();
    assert_eq!(ids, vec![0, 1, 2]);

    // The new partition takes records, and they can be read back from it.
    let producer: Producer<String, i64> = Producer::new(&config()).unwrap();
    let meta = producer
        .send(ProducerRecord::new(&topic, "k".to_string(), 42).with_partition(2))
        .await
        .unwrap();
    assert_eq!((meta.partition, meta.offset), (2, 0));
    let consumer: Consumer<String, i64> =
        Consumer::new(&consumer_config(&unique_name("grow"))).unwrap();
    consumer
        .assign(&[(
            TopicPartition::new(&topic, 2),
            kafka_client::Offset::Beginning,
        )])
        .unwrap();
    let record = consumer.recv().await.unwrap();
    assert_eq!((record.partition, record.offset, record.value), (2, 0, 42));

    // Fewer partitions, or as many as the topic has, is refused by the broker:
    // a typed error naming the topic.
    for requested in [2, 3] {
        let err = admin
            .create_partitions(&topic, requested)
            .await
            .expect_err("a partition count that is no increase must fail");
        match &err {
            AdminError::Topic {
                operation,
                topic: named,
                code,
            } => {
                assert_eq!(*operation, "create partitions");
                assert_eq!(named, &topic);
                assert_eq!(*code, RDKafkaErrorCode::InvalidPartitions, "{err}");
            }
            other => panic!("expected a topic error for {requested} partitions, got {other:?}"),
        }
        assert_eq!(err.code(), Some(RDKafkaErrorCode::InvalidPartitions));
        let message = err.to_string();
        assert!(
            message.contains(&topic) && message.contains("create partitions"),
            "{message}"
        );
    }
    assert_eq!(
        admin
            .describe_topic(&topic)
            .await
            .unwrap()
            .partition_count(),
        3,
        "a refused change left the topic as it was"
    );
}
