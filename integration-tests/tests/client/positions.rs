//! Positions: seek (offset, beginning, timestamp), pause/resume, lag, and
//! pattern subscriptions.

use std::time::Duration;

use integration_tests::{consumer_config, create_topic, eventually, unique_name};
use kafka_client::{Consumer, Offset, Producer, ProducerRecord, TopicPartition};

const BASE_TS: i64 = 1_700_000_000_000;

#[tokio::test]
async fn seek_to_timestamp_offset_and_beginning() {
    let topic = unique_name("seek");
    create_topic(&topic, 1).await;
    let producer: Producer<String, i64> = Producer::new(&integration_tests::config()).unwrap();
    for i in 0..10 {
        producer
            .send(
                ProducerRecord::new(&topic, format!("k{i}"), i).with_timestamp(BASE_TS + i * 1000),
            )
            .await
            .unwrap();
    }
    let consumer: Consumer<String, i64> =
        Consumer::new(&consumer_config(&unique_name("seek"))).unwrap();
    let tp = TopicPartition::new(&topic, 0);
    consumer.assign(&[(tp.clone(), Offset::Beginning)]).unwrap();
    assert_eq!(consumer.recv().await.unwrap().offset, 0);

    // 5.5 s after the base: the first record at or after it is #6.
    consumer
        .seek_to_timestamp(&tp, BASE_TS + 5_500)
        .await
        .unwrap();
    let record = consumer.recv().await.unwrap();
    assert_eq!(
        (record.offset, record.timestamp),
        (6, Some(BASE_TS + 6_000))
    );
    // An exact timestamp match lands on that record.
    consumer
        .seek_to_timestamp(&tp, BASE_TS + 2_000)
        .await
        .unwrap();
    assert_eq!(consumer.recv().await.unwrap().offset, 2);

    consumer.seek(&tp, Offset::At(8)).await.unwrap();
    assert_eq!(consumer.recv().await.unwrap().offset, 8);
    consumer.seek(&tp, Offset::Beginning).await.unwrap();
    assert_eq!(consumer.recv().await.unwrap().offset, 0);

    // Lag: position 1 of 10 records.
    let lag = consumer.lag().await.unwrap();
    assert_eq!(lag.len(), 1);
    assert_eq!(
        (lag[0].position, lag[0].high_watermark, lag[0].lag),
        (Some(1), 10, Some(9))
    );
}

#[tokio::test]
async fn pause_holds_back_a_partition_until_resume() {
    let topic = unique_name("pause");
    create_topic(&topic, 2).await;
    let consumer: Consumer<String, i64> =
        Consumer::new(&consumer_config(&unique_name("pause"))).unwrap();
    let p0 = TopicPartition::new(&topic, 0);
    let p1 = TopicPartition::new(&topic, 1);
    consumer
        .assign(&[
            (p0.clone(), Offset::Beginning),
            (p1.clone(), Offset::Beginning),
        ])
        .unwrap();
    consumer.pause(std::slice::from_ref(&p0)).unwrap();

    let producer: Producer<String, i64> = Producer::new(&integration_tests::config()).unwrap();
    for i in 0..5 {
        producer
            .send(ProducerRecord::new(&topic, "k".into(), i).with_partition(0))
            .await
            .unwrap();
    }
    for i in 0..5 {
        producer
            .send(ProducerRecord::new(&topic, "k".into(), 100 + i).with_partition(1))
            .await
            .unwrap();
    }
    for _ in 0..5 {
        assert_eq!(
            consumer.recv().await.unwrap().partition,
            1,
            "paused partition 0 delivered"
        );
    }
    // Partition 0 has 5 records waiting, but stays silent while paused.
    let quiet = tokio::time::timeout(Duration::from_secs(2), consumer.recv()).await;
    assert!(
        quiet.is_err(),
        "a record arrived from a paused partition: {quiet:?}"
    );

    consumer.resume(&[p0]).unwrap();
    for expected in 0..5 {
        let record = consumer.recv().await.unwrap();
        assert_eq!((record.partition, record.value), (0, expected));
    }
}

#[tokio::test]
async fn pattern_subscription_reads_every_matching_topic() {
    let prefix = unique_name("pattern");
    let (a, b) = (format!("{prefix}.alpha"), format!("{prefix}.beta"));
    create_topic(&a, 1).await;
    create_topic(&b, 1).await;
    let producer: Producer<String, i64> = Producer::new(&integration_tests::config()).unwrap();
    producer
        .send(ProducerRecord::new(&a, "k".into(), 1))
        .await
        .unwrap();
    producer
        .send(ProducerRecord::new(&b, "k".into(), 2))
        .await
        .unwrap();

    let consumer: Consumer<String, i64> =
        Consumer::new(&consumer_config(&unique_name("pattern"))).unwrap();
    consumer
        .subscribe_pattern(&format!("{}\\..*", regex::escape(&prefix)))
        .unwrap();
    let mut topics = Vec::new();
    for _ in 0..2 {
        topics.push(consumer.recv().await.unwrap().topic);
    }
    topics.sort();
    assert_eq!(topics, vec![a, b]);
    let position = eventually("positions after both records", || async {
        let positions = consumer.position().unwrap();
        (positions.len() == 2).then_some(positions)
    })
    .await;
    assert!(position.iter().all(|(_, p)| *p == Some(1)), "{position:?}");
}
