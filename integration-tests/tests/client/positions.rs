//! Positions: seek (offset, beginning, end, timestamp), pause/resume, lag, and
//! pattern subscriptions.

use std::time::{Duration, Instant};

use integration_tests::{consumer_config, create_topic, eventually, unique_name, DEADLINE};
use kafka_client::{Consumer, Offset, Producer, ProducerRecord, TopicPartition};

#[tokio::test]
async fn seek_to_timestamp_offset_and_beginning() {
    let base_ts = integration_tests::an_hour_ago_ms();
    let topic = unique_name("seek");
    create_topic(&topic, 1).await;
    let producer: Producer<String, i64> = Producer::new(&integration_tests::config()).unwrap();
    for i in 0..10 {
        producer
            .send(
                ProducerRecord::new(&topic, format!("k{i}"), i).with_timestamp(base_ts + i * 1000),
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
        .seek_to_timestamp(&tp, base_ts + 5_500)
        .await
        .unwrap();
    let record = consumer.recv().await.unwrap();
    assert_eq!(
        (record.offset, record.timestamp),
        (6, Some(base_ts + 6_000))
    );
    // An exact timestamp match lands on that record.
    consumer
        .seek_to_timestamp(&tp, base_ts + 2_000)
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

/// Values of the records produced after the seek to the end start here; those
/// before it are below [`BEFORE_SEEK`].
const AFTER_SEEK: i64 = 1_000;
const BEFORE_SEEK: i64 = 5;

/// Produces `BEFORE_SEEK` records (values `0..BEFORE_SEEK`) to partition 0 of a new
/// topic; returns the topic and a producer for it.
async fn topic_with_records_before_the_seek(prefix: &str) -> (String, Producer<String, i64>) {
    let topic = unique_name(prefix);
    create_topic(&topic, 1).await;
    let producer: Producer<String, i64> = Producer::new(&integration_tests::config()).unwrap();
    for i in 0..BEFORE_SEEK {
        producer
            .send(ProducerRecord::new(&topic, format!("k{i}"), i).with_partition(0))
            .await
            .unwrap();
    }
    (topic, producer)
}

/// `consumer` has read offset 0 of partition 0 of `topic`, so librdkafka has
/// likely fetched the rest of the records produced before the seek already.
/// After seeking to the end it must see only records produced after the seek,
/// from the first one on, in order.
async fn seek_to_end_then_only_later_records_arrive(
    consumer: &Consumer<String, i64>,
    producer: &Producer<String, i64>,
    topic: &str,
) {
    let tp = TopicPartition::new(topic, 0);
    consumer.seek(&tp, Offset::End).await.unwrap();
    // seek() returns once librdkafka has started the seek; it then asks the
    // broker where the end is. A record produced before that answer is before
    // the end sought, and rightly skipped: so produce one record at a time until
    // one arrives, and expect the others after it.
    let send = |value: i64| async move {
        producer
            .send(ProducerRecord::new(topic, format!("k{value}"), value).with_partition(0))
            .await
            .unwrap()
    };
    let deadline = Instant::now() + DEADLINE;
    let mut next = AFTER_SEEK;
    let first = loop {
        assert!(
            Instant::now() < deadline,
            "none of the {} records produced after the seek arrived",
            next - AFTER_SEEK
        );
        let sent = send(next).await;
        assert_eq!(sent.offset, BEFORE_SEEK + next - AFTER_SEEK);
        next += 1;
        if let Ok(record) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await
        {
            break record.unwrap();
        }
    };
    assert!(
        first.value >= AFTER_SEEK,
        "a record produced before the seek arrived after it: {first:?}"
    );
    assert_eq!(first.offset, BEFORE_SEEK + first.value - AFTER_SEEK);
    // Everything produced from then on arrives, in order.
    for _ in 0..3 {
        send(next).await;
        next += 1;
    }
    for value in first.value + 1..next {
        let record = consumer.recv().await.unwrap();
        assert_eq!(
            (record.offset, record.value),
            (BEFORE_SEEK + value - AFTER_SEEK, value),
            "{record:?}"
        );
    }
}

#[tokio::test]
async fn seek_to_end_of_an_assigned_partition_skips_what_was_there() {
    let (topic, producer) = topic_with_records_before_the_seek("seek-end-assigned").await;
    let consumer: Consumer<String, i64> =
        Consumer::new(&consumer_config(&unique_name("seek-end-assigned"))).unwrap();
    consumer
        .assign(&[(TopicPartition::new(&topic, 0), Offset::Beginning)])
        .unwrap();
    assert_eq!(consumer.recv().await.unwrap().offset, 0);
    seek_to_end_then_only_later_records_arrive(&consumer, &producer, &topic).await;
}

#[tokio::test]
async fn seek_to_end_of_a_subscribed_partition_skips_what_was_there() {
    let (topic, producer) = topic_with_records_before_the_seek("seek-end-subscribed").await;
    let consumer: Consumer<String, i64> =
        Consumer::new(&consumer_config(&unique_name("seek-end-subscribed"))).unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    // The first record arrives once the group assigned the partition.
    assert_eq!(consumer.recv().await.unwrap().offset, 0);
    seek_to_end_then_only_later_records_arrive(&consumer, &producer, &topic).await;
}
