//! Statistics: snapshots arrive on the configured interval, and the consumer
//! lag they report matches the admin client's group lag.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::{config, consumer_config, create_topic, eventually, unique_name};
use kafka_client::admin::AdminClient;
use kafka_client::{Consumer, Offset, Producer, ProducerRecord, TopicPartition};

const INTERVAL: Duration = Duration::from_millis(500);

#[tokio::test]
async fn consumer_stats_arrive_on_interval_and_match_admin_lag() {
    let topic = unique_name("stats");
    let group = unique_name("stats");
    create_topic(&topic, 3).await;
    let producer: Producer<String, i64> = Producer::new(&config()).unwrap();
    for p in 0..3 {
        for i in 0..100 {
            producer
                .send(ProducerRecord::new(&topic, format!("k{i}"), i).with_partition(p))
                .await
                .unwrap();
        }
    }

    let consumer: Arc<Consumer<String, i64>> =
        Arc::new(Consumer::new(&consumer_config(&group).statistics_interval(INTERVAL)).unwrap());
    let mut stats = consumer.statistics();
    let assignment: Vec<_> = (0..3)
        .map(|p| (TopicPartition::new(&topic, p), Offset::Beginning))
        .collect();
    consumer.assign(&assignment).unwrap();
    // librdkafka delivers a consumer's statistics while it is polled, so keep
    // receiving: commit the first 40 records of each partition, then read on
    // without committing.
    let committed = Arc::new(AtomicUsize::new(0));
    let reader = tokio::spawn({
        let consumer = consumer.clone();
        let committed = committed.clone();
        async move {
            let mut taken = [0i64; 3];
            loop {
                let record = consumer.recv().await.unwrap();
                let n = &mut taken[record.partition as usize];
                if *n < 40 {
                    *n += 1;
                    consumer
                        .commit_offsets(&[(record.topic_partition(), record.offset + 1)])
                        .await
                        .unwrap();
                    committed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });

    // The first snapshot comes one interval after the client starts, the next one an
    // interval later: librdkafka stamps each with the client's age. When the application
    // receives them depends on when it polls and on the machine's load (nextest runs
    // other tests beside this one), so arrival is only required to be prompt.
    tokio::time::timeout(INTERVAL * 10, stats.changed())
        .await
        .expect("no statistics within ten intervals")
        .unwrap();
    let first = stats.borrow().clone().expect("a first snapshot").age_micros;
    tokio::time::timeout(INTERVAL * 10, stats.changed())
        .await
        .expect("no statistics within ten intervals of the previous one")
        .unwrap();
    let next = stats.borrow().clone().expect("a next snapshot").age_micros;
    let interval = INTERVAL.as_micros() as i64;
    println!("statistics: a snapshot at age {first} µs, the next at {next} µs");
    // A watch channel keeps the latest snapshot only, so a late reader may skip one:
    // the ages are whole intervals apart, give or take a fifth.
    let on_interval = |age: i64| {
        let intervals = (age + interval / 2) / interval;
        intervals >= 1 && (age - intervals * interval).abs() < interval / 5
    };
    assert!(
        on_interval(first),
        "a snapshot at age {first} µs, interval {interval} µs"
    );
    assert!(
        on_interval(next - first),
        "snapshots at ages {first} µs and {next} µs, interval {interval} µs"
    );
    eventually("120 commits", || async {
        (committed.load(Ordering::SeqCst) == 120).then_some(())
    })
    .await;

    let admin = AdminClient::new(&config()).unwrap();
    let lag = admin.group_lag(&group).await.unwrap();
    assert_eq!(lag.total(), 180, "{lag:?}");
    let snapshot = eventually("statistics lag equal to the admin lag", || {
        let snapshot = stats.borrow().clone();
        let lag = &lag;
        let topic = &topic;
        async move {
            let snapshot = snapshot?;
            (0..3)
                .all(|p| {
                    let from_stats = snapshot.partition(topic, p).and_then(|s| s.consumer_lag);
                    let from_admin = lag.partition(topic, p).and_then(|l| l.lag);
                    from_stats.is_some() && from_stats == from_admin
                })
                .then_some(snapshot)
        }
    })
    .await;
    for p in 0..3 {
        let s = snapshot.partition(&topic, p).unwrap();
        assert_eq!((s.consumer_lag, s.committed_offset), (Some(60), Some(40)));
    }
    assert_eq!(snapshot.client_type, "consumer");
    assert!(snapshot.is_healthy(), "{:?}", snapshot.brokers);
    assert!(snapshot.rx_messages >= 120, "rx {}", snapshot.rx_messages);

    reader.abort();
    let text = snapshot.to_prometheus();
    for p in 0..3 {
        let line = format!("topic=\"{topic}\",partition=\"{p}\"}} 60\n");
        assert!(
            text.lines()
                .any(|l| l.starts_with("kafka_client_consumer_lag{")
                    && format!("{l}\n").ends_with(&line)),
            "no lag line for partition {p} in\n{text}"
        );
    }
}

#[tokio::test]
async fn producer_stats_count_sent_messages_and_broker_rtt() {
    let topic = unique_name("stats-producer");
    create_topic(&topic, 1).await;
    let created = Instant::now();
    let producer: Producer<String, i64> =
        Producer::new(&config().statistics_interval(INTERVAL)).unwrap();
    let stats = producer.statistics();
    for i in 0..25 {
        producer
            .send(ProducerRecord::new(&topic, format!("k{i}"), i))
            .await
            .unwrap();
    }
    let snapshot = eventually("25 messages in the producer statistics", || {
        let snapshot = stats.borrow().clone();
        async move { snapshot.filter(|s| s.tx_messages >= 25) }
    })
    .await;
    assert_eq!(snapshot.client_type, "producer");
    assert_eq!(
        snapshot.partition(&topic, 0).map(|p| p.tx_messages),
        Some(25)
    );
    assert_eq!(snapshot.queued_messages, 0, "everything was acknowledged");

    // librdkafka's rtt window covers the responses of one statistics interval,
    // so keep producing (one acknowledged round trip to the leader at a time)
    // until a snapshot's window holds round trips to the partition's leader.
    let mut sent = 25;
    let (snapshot, leader) = eventually("round trips to the leader in a statistics window", || {
        let producer = producer.clone();
        let stats = stats.clone();
        let topic = topic.clone();
        sent += 1;
        let i = sent;
        async move {
            producer
                .send(ProducerRecord::new(&topic, format!("k{i}"), i))
                .await
                .unwrap();
            let snapshot = stats.borrow().clone()?;
            let leader = snapshot.partition(&topic, 0)?.leader;
            let broker = snapshot
                .brokers
                .iter()
                .find(|b| b.node_id == leader)?
                .clone();
            broker
                .rtt
                .is_some_and(|r| r.samples > 0)
                .then_some((snapshot, broker))
        }
    })
    .await;
    let lifetime_us = created.elapsed().as_micros() as i64;
    let rtt = leader.rtt.expect("an rtt window");
    println!(
        "leader {} rtt {rtt:?} (client lifetime {lifetime_us} us)",
        leader.name
    );
    assert!(leader.is_up(), "{leader:?}");
    assert!(snapshot.is_healthy(), "{:?}", snapshot.brokers);
    // A round trip to a broker takes time, no longer than the client has existed,
    // and the window's mean is no larger than its largest sample.
    assert!(rtt.avg_us > 0, "{rtt:?}");
    assert!(rtt.avg_us <= rtt.max_us, "{rtt:?}");
    assert!(rtt.p99_us > 0, "{rtt:?}");
    assert!(
        rtt.max_us <= lifetime_us,
        "{rtt:?} longer than the client's {lifetime_us} us"
    );
    // Every rtt sample is a response, and every response answers a request.
    assert!(
        leader.rx_responses >= rtt.samples as u64,
        "{} responses, {} rtt samples",
        leader.rx_responses,
        rtt.samples
    );
    assert!(
        leader.tx_requests >= leader.rx_responses,
        "{} requests, {} responses",
        leader.tx_requests,
        leader.rx_responses
    );
    assert!(leader.tx_bytes > 0 && leader.rx_bytes > 0, "{leader:?}");
    assert!(
        snapshot.tx_messages >= 25 && snapshot.tx_messages <= sent,
        "{} messages in the statistics, {sent} sent",
        snapshot.tx_messages
    );
    let text = snapshot.to_prometheus();
    assert!(text.contains("# TYPE kafka_client_tx_messages_total counter"));
    let rtt_line = format!("broker=\"{}\"}} {}\n", leader.name, rtt.avg_us as f64 / 1e6);
    assert!(
        text.lines()
            .any(|l| l.starts_with("kafka_client_broker_rtt_avg_seconds{")
                && format!("{l}\n").ends_with(&rtt_line)),
        "no rtt line ending {rtt_line:?} in\n{text}"
    );
}
