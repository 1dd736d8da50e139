//! Dead-letter policy: poison records are parked byte-identical with provenance
//! headers, good records are all processed, and nothing is redelivered.

use std::collections::BTreeSet;

use integration_tests::{config, consumer_config, eventually, unique_name, wait_for_partitions};
use kafka_client::admin::{AdminClient, NewTopic};
use kafka_client::dlq::{headers, DeadLetterConfig, DeadLetterPolicy};
use kafka_client::serde::{BigEndian, StringSerde};
use kafka_client::{Consumer, Headers, Offset, Producer, ProducerRecord, TopicPartition};

type Raw = Option<Vec<u8>>;

struct Sent {
    partition: i32,
    offset: i64,
    key: Raw,
    value: Raw,
    headers: Headers,
    timestamp: Option<i64>,
}

fn dlq_consumer(group: &str) -> Consumer<String, i64> {
    Consumer::builder(&consumer_config(group))
        .key_deserializer(StringSerde)
        .value_deserializer(BigEndian)
        .dead_letter_policy(DeadLetterPolicy::DeadLetter(DeadLetterConfig::default()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn poison_records_go_to_the_dead_letter_topic_and_are_not_redelivered() {
    let admin = AdminClient::new(&config()).unwrap();
    let topic = unique_name("dlq-source");
    let dead = format!("{topic}.dlq");
    admin
        .create_topics(&[
            NewTopic::new(&topic, 2).replication_factor(1),
            NewTopic::new(&dead, 1).replication_factor(1),
        ])
        .await
        .unwrap();
    wait_for_partitions(&topic, 2).await;
    wait_for_partitions(&dead, 1).await;

    // 100 good records (String key, big-endian i64 value) with 3 poison records
    // among them: a 3-byte value, a non-UTF-8 key, a null key with a bad value
    // and headers.
    let raw: Producer<Raw, Raw> = Producer::new(&config()).unwrap();
    let mut poison = Vec::new();
    for i in 0..100i64 {
        let p = (i % 2) as i32;
        raw.send(
            ProducerRecord::new(
                &topic,
                Some(format!("k{i}").into_bytes()),
                Some(i.to_be_bytes().to_vec()),
            )
            .with_partition(p),
        )
        .await
        .unwrap();
        let bad: Option<(Raw, Raw, Headers)> = match i {
            10 => Some((
                Some(b"k-short".to_vec()),
                Some(vec![1, 2, 3]),
                Headers::new(),
            )),
            50 => Some((
                Some(vec![0xff, 0xfe, 0x00]),
                Some(7i64.to_be_bytes().to_vec()),
                Headers::new(),
            )),
            90 => Some((
                None,
                Some(b"{\"not\": \"a long\"}".to_vec()),
                Headers::new()
                    .with("origin", "gateway-7")
                    .with("trace", vec![0u8, 1, 2]),
            )),
            _ => None,
        };
        if let Some((key, value, headers)) = bad {
            let meta = raw
                .send(
                    ProducerRecord::new(&topic, key.clone(), value.clone())
                        .with_partition(p)
                        .with_headers(headers.clone()),
                )
                .await
                .unwrap();
            poison.push(Sent {
                partition: meta.partition,
                offset: meta.offset,
                key,
                value,
                headers,
                timestamp: meta.timestamp,
            });
        }
    }

    let group = unique_name("dlq");
    let consumer = dlq_consumer(&group);
    consumer.subscribe(&[&topic]).unwrap();
    let mut good = BTreeSet::new();
    while good.len() < 100 {
        let value = consumer
            .process_at_least_once(|record| async move { Ok::<_, String>(record.value) })
            .await
            .unwrap();
        assert!(good.insert(value), "value {value} processed twice");
    }
    assert_eq!(good, (0..100).collect::<BTreeSet<i64>>());

    // The DLQ holds exactly the three poison records, byte-identical.
    let reader: Consumer<Raw, Raw> =
        Consumer::new(&consumer_config(&unique_name("dlq-read"))).unwrap();
    reader
        .assign(&[(TopicPartition::new(&dead, 0), Offset::Beginning)])
        .unwrap();
    let mut parked = Vec::new();
    for _ in 0..3 {
        parked.push(reader.recv().await.unwrap());
    }
    let watermark = eventually("the DLQ's end offset", || async {
        let offsets = admin
            .plan_group_offsets_reset(
                &unique_name("probe"),
                &[format!("{dead}:0").parse().unwrap()],
                kafka_client::admin::ResetTarget::ToLatest,
            )
            .await
            .ok()?;
        offsets.target(&dead, 0)
    })
    .await;
    assert_eq!(watermark, 3, "exactly three records were dead-lettered");
    parked.sort_by_key(|r| {
        let h = r.headers.last(headers::OFFSET).unwrap();
        let p = r.headers.last(headers::PARTITION).unwrap();
        (
            p.to_vec(),
            String::from_utf8(h.to_vec())
                .unwrap()
                .parse::<i64>()
                .unwrap(),
        )
    });
    poison.sort_by_key(|s| (s.partition.to_string().into_bytes(), s.offset));
    for (record, sent) in parked.iter().zip(&poison) {
        assert_eq!(
            record.key, sent.key,
            "key bytes of {}-{}",
            sent.partition, sent.offset
        );
        assert_eq!(
            record.value, sent.value,
            "value bytes of {}-{}",
            sent.partition, sent.offset
        );
        let h = &record.headers;
        // Original headers first, in order, then provenance.
        let original: Vec<_> = h.iter().take(sent.headers.len()).cloned().collect();
        assert_eq!(original, sent.headers.iter().cloned().collect::<Vec<_>>());
        assert_eq!(h.last(headers::TOPIC), Some(topic.as_bytes()));
        assert_eq!(
            h.last(headers::PARTITION),
            Some(sent.partition.to_string().as_bytes())
        );
        assert_eq!(
            h.last(headers::OFFSET),
            Some(sent.offset.to_string().as_bytes())
        );
        assert!(sent.timestamp.is_some());
        assert_eq!(
            record.timestamp, sent.timestamp,
            "the dead letter keeps the timestamp of {}-{}",
            sent.partition, sent.offset
        );
        let class = std::str::from_utf8(h.last(headers::EXCEPTION).unwrap()).unwrap();
        assert!(class.starts_with("deserialization."), "{class}");
        let message = std::str::from_utf8(h.last(headers::MESSAGE).unwrap()).unwrap();
        assert!(message.contains(&topic), "{message}");
        let trace = std::str::from_utf8(h.last(headers::STACKTRACE).unwrap()).unwrap();
        assert!(trace.starts_with(&format!("{class}: ")), "{trace}");
    }
    let classes: BTreeSet<String> = parked
        .iter()
        .map(|r| String::from_utf8(r.headers.last(headers::EXCEPTION).unwrap().to_vec()).unwrap())
        .collect();
    assert!(classes.contains("deserialization.key.utf8"), "{classes:?}");
    assert!(
        classes.contains("deserialization.value.invalid_length"),
        "{classes:?}"
    );

    // Offsets were committed past every record, poison included.
    consumer.close().await.unwrap();
    let lag = admin.group_lag(&group).await.unwrap();
    assert_eq!(lag.total(), 0, "{lag:?}");
    assert_eq!(lag.partitions.len(), 2);

    // After a restart nothing is redelivered: the first record is a new one.
    let restarted = dlq_consumer(&group);
    restarted.subscribe(&[&topic]).unwrap();
    raw.send(
        ProducerRecord::new(
            &topic,
            Some(b"sentinel".to_vec()),
            Some(1000i64.to_be_bytes().to_vec()),
        )
        .with_partition(0),
    )
    .await
    .unwrap();
    let first = restarted.recv().await.unwrap();
    assert_eq!((first.key.as_str(), first.value), ("sentinel", 1000));
}

#[tokio::test]
async fn skip_policy_reads_past_poison_and_fail_policy_returns_it() {
    let topic = unique_name("dlq-skip");
    integration_tests::create_topic(&topic, 1).await;
    let raw: Producer<Raw, Raw> = Producer::new(&config()).unwrap();
    for value in [
        Some(1i64.to_be_bytes().to_vec()),
        Some(vec![9]),
        Some(2i64.to_be_bytes().to_vec()),
    ] {
        raw.send(ProducerRecord::new(&topic, Some(b"k".to_vec()), value))
            .await
            .unwrap();
    }
    let skipping: Consumer<String, i64> = Consumer::builder(&consumer_config(&unique_name("skip")))
        .key_deserializer(StringSerde)
        .value_deserializer(BigEndian)
        .dead_letter_policy(DeadLetterPolicy::SkipAndLog)
        .build()
        .unwrap();
    skipping.subscribe(&[&topic]).unwrap();
    assert_eq!(skipping.recv().await.unwrap().value, 1);
    assert_eq!(
        skipping.recv().await.unwrap().value,
        2,
        "the poison record was skipped"
    );

    let failing: Consumer<String, i64> =
        Consumer::new(&consumer_config(&unique_name("fail"))).unwrap();
    failing.subscribe(&[&topic]).unwrap();
    assert_eq!(failing.recv().await.unwrap().value, 1);
    let err = failing.recv().await.unwrap_err();
    let poison = err.as_deserialization().expect("a poison record");
    assert_eq!(
        (poison.offset, poison.value.as_deref()),
        (1, Some(&[9u8][..]))
    );
    assert_eq!(failing.recv().await.unwrap().value, 2);
}
