//! Producing through librdkafka topic handles kept per topic.
//!
//! [`BaseProducer::send`] names its topic as a string: every call copies the name
//! into a `CString`, and librdkafka then finds the topic under its client-wide lock
//! and takes and drops a reference to it. A stream thread producing a few hundred
//! thousand records per second spent 4% of its time on that. A [`TopicProducer`]
//! looks each topic up once, keeps librdkafka's handle for it, and produces through
//! the handle.
//!
//! ```no_run
//! use kafka_client::rdkafka::producer::BaseProducer;
//! use kafka_client::rdkafka::ClientConfig;
//! use kafka_client::internal::{OutgoingRecord, TopicProducer};
//! use kafka_client::Headers;
//!
//! let producer: BaseProducer = ClientConfig::new()
//!     .set("bootstrap.servers", "localhost:9092")
//!     .create()?;
//! let mut producer = TopicProducer::new(producer);
//! let headers = Headers::new();
//! let record = OutgoingRecord {
//!     topic: "readings",
//!     partition: None,
//!     key: Some(b"sensor-1"),
//!     value: Some(b"21.5"),
//!     timestamp: None,
//!     headers: &headers,
//! };
//! producer.send(&record, ()).map_err(|(e, _)| e)?;
//! producer.producer().poll(std::time::Duration::ZERO);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, ProducerContext};

use crate::ffi::ProducerTopics;
use crate::record::Headers;

/// A record to produce, borrowed: librdkafka copies key, value and headers.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingRecord<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition; `None` lets the producer's partitioner choose from the key.
    pub partition: Option<i32>,
    /// The key; `None` is a null key.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// Milliseconds since the epoch; `None` stamps the time of sending.
    pub timestamp: Option<i64>,
    /// The headers (none is an empty list).
    pub headers: &'a Headers,
}

/// A [`BaseProducer`] that sends through one cached topic handle per topic.
///
/// Delivery reports reach the producer's context as for [`BaseProducer::send`],
/// with the opaque given to [`send`](Self::send); poll and flush through
/// [`producer`](Self::producer).
pub struct TopicProducer<C: ProducerContext + 'static> {
    inner: ProducerTopics<C>,
}

impl<C: ProducerContext + 'static> TopicProducer<C> {
    /// Wraps `producer`.
    pub fn new(producer: BaseProducer<C>) -> Self {
        TopicProducer {
            inner: ProducerTopics::new(producer),
        }
    }

    /// The producer, to poll for delivery reports and to flush.
    pub fn producer(&self) -> &BaseProducer<C> {
        self.inner.producer()
    }

    /// Enqueues `record` (librdkafka copies it) with `opaque` for its delivery
    /// report. On failure the opaque comes back with the error;
    /// [`RDKafkaErrorCode::QueueFull`](rdkafka::error::RDKafkaErrorCode::QueueFull)
    /// means poll for deliveries and retry.
    #[allow(clippy::result_large_err)] // the opaque must come back, as in `BaseProducer::send`
    pub fn send(
        &mut self,
        record: &OutgoingRecord<'_>,
        opaque: C::DeliveryOpaque,
    ) -> Result<(), (KafkaError, C::DeliveryOpaque)> {
        self.inner.produce(record, opaque)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::RDKafkaErrorCode;
    use rdkafka::message::{Headers as _, Message};
    use rdkafka::producer::{DeliveryResult, Producer};
    use rdkafka::{ClientContext, Offset, TopicPartitionList};

    use super::*;
    use crate::dev::EmbeddedCluster;

    /// Counts delivery reports by their opaque, to show opaques reach the context.
    #[derive(Default)]
    struct Reports(std::sync::Mutex<Vec<(usize, Option<RDKafkaErrorCode>)>>);

    impl ClientContext for Reports {}

    impl ProducerContext for Reports {
        type DeliveryOpaque = usize;

        fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
            let error = result
                .as_ref()
                .err()
                .and_then(|(e, _)| e.rdkafka_error_code());
            self.0.lock().unwrap().push((opaque, error));
        }
    }

    fn producer(cluster: &EmbeddedCluster) -> TopicProducer<Reports> {
        let producer = cluster
            .client_config()
            .to_rdkafka()
            .set("linger.ms", "0")
            .create_with_context(Reports::default())
            .unwrap();
        TopicProducer::new(producer)
    }

    /// (partition, offset, key, value, headers, timestamp) of every record of `topic`.
    type Read = (
        i32,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
        i64,
    );

    fn read_all(
        cluster: &EmbeddedCluster,
        topic: &str,
        partitions: i32,
        expected: usize,
    ) -> Vec<Read> {
        let consumer: BaseConsumer = cluster
            .client_config()
            .to_rdkafka()
            .set("group.id", "topic-producer-test")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut read = Vec::new();
        while read.len() < expected && Instant::now() < deadline {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let headers = m.headers().map_or_else(Vec::new, |h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            });
            read.push((
                m.partition(),
                m.key().map(<[u8]>::to_vec),
                m.payload().map(<[u8]>::to_vec),
                headers,
                m.timestamp().to_millis().unwrap_or(-1),
            ));
        }
        read
    }

    #[test]
    fn sends_keys_values_tombstones_headers_timestamps_and_partitions_through_handles() {
        let cluster = EmbeddedCluster::start(1).unwrap();
        cluster.create_topic("readings", 2).unwrap();
        cluster.create_topic("alerts", 1).unwrap();
        let mut producer = producer(&cluster);
        let mut headers = Headers::new().with("trace", "abc");
        headers.insert_null("empty");
        let none = Headers::new();
        let records = [
            OutgoingRecord {
                topic: "readings",
                partition: Some(1),
                key: Some(b"s-1"),
                value: Some(b"21.5"),
                timestamp: Some(1_000),
                headers: &headers,
            },
            OutgoingRecord {
                topic: "alerts",
                partition: None,
                key: Some(b"s-1"),
                value: None,
                timestamp: Some(2_000),
                headers: &none,
            },
            OutgoingRecord {
                topic: "readings",
                partition: Some(1),
                key: None,
                value: Some(b"22.0"),
                timestamp: Some(3_000),
                headers: &none,
            },
        ];
        for (i, r) in records.iter().enumerate() {
            producer.send(r, i).map_err(|(e, _)| e).unwrap();
        }
        producer.producer().flush(Duration::from_secs(10)).unwrap();
        // One handle per topic, however many records went to it.
        assert_eq!(producer.inner.handle_count(), 2);
        let mut reports = producer.producer().context().0.lock().unwrap().clone();
        reports.sort_unstable_by_key(|(opaque, _)| *opaque);
        assert_eq!(reports, vec![(0, None), (1, None), (2, None)]);

        let readings = read_all(&cluster, "readings", 2, 2);
        let expected_headers = vec![
            ("trace".to_owned(), Some(b"abc".to_vec())),
            ("empty".to_owned(), None),
        ];
        assert_eq!(
            readings,
            vec![
                (
                    1,
                    Some(b"s-1".to_vec()),
                    Some(b"21.5".to_vec()),
                    expected_headers,
                    1_000
                ),
                (1, None, Some(b"22.0".to_vec()), vec![], 3_000),
            ]
        );
        let alerts = read_all(&cluster, "alerts", 1, 1);
        assert_eq!(
            alerts,
            vec![(0, Some(b"s-1".to_vec()), None, vec![], 2_000)]
        );
    }

    #[test]
    fn a_failed_enqueue_returns_the_opaque_and_the_error() {
        let cluster = EmbeddedCluster::start(1).unwrap();
        cluster.create_topic("readings", 1).unwrap();
        let mut producer = producer(&cluster);
        let none = Headers::new();
        let to = |topic, partition| OutgoingRecord {
            topic,
            partition: Some(partition),
            key: None,
            value: Some(b"v"),
            timestamp: None,
            headers: &none,
        };
        // A NUL in the name cannot become a topic handle.
        let (error, opaque) = producer.send(&to("read\0ings", 0), 7).unwrap_err();
        assert!(matches!(error, KafkaError::Nul(_)), "{error:?}");
        assert_eq!(opaque, 7);
        // Once the partition count is known, a partition beyond it is refused.
        producer
            .send(&to("readings", 0), 1)
            .map_err(|(e, _)| e)
            .unwrap();
        producer.producer().flush(Duration::from_secs(10)).unwrap();
        let (error, opaque) = producer.send(&to("readings", 5), 8).unwrap_err();
        assert_eq!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::UnknownPartition),
            "{error:?}"
        );
        assert_eq!(opaque, 8);
    }
}
