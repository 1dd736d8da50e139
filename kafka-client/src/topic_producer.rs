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
//! use kafka_client::topic_producer::{OutgoingRecord, TopicProducer};
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

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::ptr::{self, NonNull};

use rdkafka::bindings as rd;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::util::IntoOpaque;

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

/// librdkafka's `RD_KAFKA_PARTITION_UA`: the partitioner chooses.
const PARTITION_UNASSIGNED: i32 = -1;

/// librdkafka's handle to one topic of the producer, with one application
/// reference, given back when dropped.
struct TopicHandle(NonNull<rd::rd_kafka_topic_t>);

// SAFETY: librdkafka's topic handles may be used and destroyed from any thread.
unsafe impl Send for TopicHandle {}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from rd_kafka_topic_new and is destroyed once.
        unsafe { rd::rd_kafka_topic_destroy(self.0.as_ptr()) }
    }
}

/// A [`BaseProducer`] that sends through one cached topic handle per topic.
///
/// Delivery reports reach the producer's context as for [`BaseProducer::send`],
/// with the opaque given to [`send`](Self::send); poll and flush through
/// [`producer`](Self::producer).
pub struct TopicProducer<C: ProducerContext + 'static> {
    // Declared before `producer`, so the handles go before the client does.
    topics: HashMap<String, TopicHandle>,
    producer: BaseProducer<C>,
}

impl<C: ProducerContext + 'static> TopicProducer<C> {
    /// Wraps `producer`.
    pub fn new(producer: BaseProducer<C>) -> Self {
        TopicProducer {
            topics: HashMap::new(),
            producer,
        }
    }

    /// The producer, to poll for delivery reports and to flush.
    pub fn producer(&self) -> &BaseProducer<C> {
        &self.producer
    }

    /// The handle of `topic`, created on its first use.
    fn handle(&mut self, topic: &str) -> Result<NonNull<rd::rd_kafka_topic_t>, KafkaError> {
        if let Some(handle) = self.topics.get(topic) {
            return Ok(handle.0);
        }
        let name = CString::new(topic)?;
        // SAFETY: the client is alive and the name is a valid C string; a null
        // configuration means the client's default topic configuration, as when
        // producing by name.
        let raw = unsafe {
            rd::rd_kafka_topic_new(
                self.producer.client().native_ptr(),
                name.as_ptr(),
                ptr::null_mut(),
            )
        };
        let Some(raw) = NonNull::new(raw) else {
            // SAFETY: reads this thread's last librdkafka error.
            let code = unsafe { rd::rd_kafka_last_error() };
            return Err(KafkaError::MessageProduction(code.into()));
        };
        self.topics.insert(topic.to_owned(), TopicHandle(raw));
        Ok(raw)
    }

    /// Enqueues `record` (librdkafka copies it) with `opaque` for its delivery
    /// report. On failure the opaque comes back with the error;
    /// [`RDKafkaErrorCode::QueueFull`] means poll for deliveries and retry.
    #[allow(clippy::result_large_err)] // the opaque must come back, as in `BaseProducer::send`
    pub fn send(
        &mut self,
        record: &OutgoingRecord<'_>,
        opaque: C::DeliveryOpaque,
    ) -> Result<(), (KafkaError, C::DeliveryOpaque)> {
        let topic = match self.handle(record.topic) {
            Ok(topic) => topic,
            Err(e) => return Err((e, opaque)),
        };
        let (key, key_len) = bytes_arg(record.key);
        let (value, value_len) = bytes_arg(record.value);
        let headers = native_headers(record.headers);
        let opaque = opaque.into_ptr();
        // SAFETY: the client and the topic handle are alive; key, value and headers
        // stay valid for the call and librdkafka copies them (MSG_F_COPY); the
        // argument list is terminated by VTYPE_END. librdkafka owns `headers` once
        // the call succeeds.
        let err = unsafe {
            rd::rd_kafka_producev(
                self.producer.client().native_ptr(),
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_RKT,
                topic.as_ptr(),
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_PARTITION,
                record.partition.unwrap_or(PARTITION_UNASSIGNED),
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_MSGFLAGS,
                rd::RD_KAFKA_MSG_F_COPY,
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_VALUE,
                value,
                value_len,
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_KEY,
                key,
                key_len,
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_OPAQUE,
                opaque,
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_TIMESTAMP,
                record.timestamp.unwrap_or(0),
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_HEADERS,
                headers,
                rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_END,
            )
        };
        if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Ok(());
        }
        if !headers.is_null() {
            // SAFETY: not handed over, since the call failed.
            unsafe { rd::rd_kafka_headers_destroy(headers) }
        }
        // SAFETY: the pointer came from `into_ptr` above and librdkafka did not keep it.
        let opaque = unsafe { C::DeliveryOpaque::from_ptr(opaque) };
        Err((
            KafkaError::MessageProduction(RDKafkaErrorCode::from(err)),
            opaque,
        ))
    }
}

/// Pointer and length of an optional byte string (null for `None`).
fn bytes_arg(bytes: Option<&[u8]>) -> (*mut c_void, usize) {
    match bytes {
        Some(b) => (b.as_ptr() as *mut c_void, b.len()),
        None => (ptr::null_mut(), 0),
    }
}

/// librdkafka's copy of `headers`, or null when there are none (librdkafka then
/// allocates nothing).
fn native_headers(headers: &Headers) -> *mut rd::rd_kafka_headers_t {
    if headers.is_empty() {
        return ptr::null_mut();
    }
    // SAFETY: a fresh header list, filled with copies of names and values that are
    // valid for each call (a null value with length -1 is a null header value).
    unsafe {
        let native = rd::rd_kafka_headers_new(headers.len());
        for h in headers {
            let (value, value_len) = match &h.value {
                Some(v) => (v.as_ptr() as *const c_void, v.len() as isize),
                None => (ptr::null(), -1),
            };
            rd::rd_kafka_header_add(
                native,
                h.key.as_ptr().cast(),
                h.key.len() as isize,
                value,
                value_len,
            );
        }
        native
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers as _, Message};
    use rdkafka::producer::DeliveryResult;
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
        assert_eq!(producer.topics.len(), 2);
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
