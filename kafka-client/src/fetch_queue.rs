//! Fetched messages read a batch at a time, through librdkafka's
//! `rd_kafka_consume_batch_queue`.
//!
//! [`BaseConsumer::poll`] returns one message per call, and every call reads the
//! clock four times and allocates a reference count for its message. A stream thread
//! reading a few hundred thousand records per second spends a fifth of its time
//! there. A [`FetchQueue`] takes over the fetched messages of the partitions added to
//! it and hands out every queued message (up to a limit) per call, as the Java
//! consumer's `poll` does.
//!
//! The consumer itself must still be polled: rebalances, errors and statistics keep
//! arriving on its own queue, and so do messages fetched before their partition was
//! added here (poll the consumer first, so those stay in order).
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use kafka_client::internal::{FetchQueue, FetchedBatch};
//! use kafka_client::rdkafka::consumer::{BaseConsumer, Consumer};
//! use kafka_client::rdkafka::{ClientConfig, Offset, TopicPartitionList};
//!
//! let consumer: Arc<BaseConsumer> = Arc::new(
//!     ClientConfig::new()
//!         .set("bootstrap.servers", "localhost:9092")
//!         .set("group.id", "plant-monitor")
//!         .create()?,
//! );
//! let mut tpl = TopicPartitionList::new();
//! tpl.add_partition_offset("readings", 0, Offset::Beginning)?;
//! consumer.assign(&tpl)?;
//! let queue = FetchQueue::new(consumer.clone())?;
//! queue.add_partition("readings", 0);
//! let mut batch = FetchedBatch::new();
//! queue.consume_into(&mut batch, 1000, Duration::from_millis(100));
//! for message in batch.iter() {
//!     println!("{}@{}: {:?}", message.partition(), message.offset(), message.payload());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};

use crate::ffi::{ConsumerQueue, Message};
use crate::record::Headers;

/// A queue receiving the fetched messages of chosen partitions of one consumer.
///
/// It keeps the consumer alive, and every batch read from it borrows it, so no
/// message outlives the consumer. Dropping it gives the partitions back to the
/// consumer's own queue.
pub struct FetchQueue<C: ConsumerContext + 'static> {
    queue: ConsumerQueue<C>,
    // `RefCell` keeps the queue to one thread at a time (no Sync).
    partitions: RefCell<Vec<(String, i32)>>,
}

impl<C: ConsumerContext + 'static> FetchQueue<C> {
    /// An empty queue of `consumer`.
    pub fn new(consumer: Arc<BaseConsumer<C>>) -> KafkaResult<Self> {
        Ok(FetchQueue {
            queue: ConsumerQueue::new(consumer)?,
            partitions: RefCell::new(Vec::new()),
        })
    }

    /// The consumer whose partitions this queue takes.
    pub fn consumer(&self) -> &Arc<BaseConsumer<C>> {
        self.queue.consumer()
    }

    /// Routes the partition's fetched messages to this queue from now on. Messages
    /// already on the consumer's queue stay there.
    ///
    /// Call it again after every (re)assignment of the partition, and a little
    /// later too: librdkafka drops the routing when it stops fetching a partition,
    /// which it does asynchronously after an unassignment, and until the partition
    /// is routed again its messages wait in the partition's own queue (routing moves
    /// them here, in order). Calling it for a routed partition is cheap and harmless.
    /// Returns `false` when librdkafka gives no queue for it (a topic name with a
    /// NUL byte).
    pub fn add_partition(&self, topic: &str, partition: i32) -> bool {
        if !self.queue.route_partition(topic, partition) {
            return false;
        }
        if !self.contains(topic, partition) {
            self.partitions
                .borrow_mut()
                .push((topic.to_owned(), partition));
        }
        true
    }

    /// Gives the partition back to the consumer's own queue.
    pub fn remove_partition(&self, topic: &str, partition: i32) {
        let removed = {
            let mut partitions = self.partitions.borrow_mut();
            let at = partitions
                .iter()
                .position(|(t, p)| t == topic && *p == partition);
            at.map(|at| partitions.swap_remove(at))
        };
        if removed.is_some() {
            self.queue.unroute_partition(topic, partition);
        }
    }

    /// Whether the partition's messages come to this queue.
    pub fn contains(&self, topic: &str, partition: i32) -> bool {
        self.partitions
            .borrow()
            .iter()
            .any(|(t, p)| t == topic && *p == partition)
    }

    /// The partitions routed here, in the order they were added.
    pub fn partitions(&self) -> Vec<(String, i32)> {
        self.partitions.borrow().clone()
    }

    /// How many operations (records and events) still wait on the consumer's own
    /// queue. `BaseConsumer::poll` returns nothing after serving an event, so a
    /// caller draining that queue before this one checks this to know it is empty.
    pub fn consumer_queue_len(&self) -> usize {
        self.queue.consumer_queue_len()
    }

    /// The partition's low and high watermarks as librdkafka last saw them in a fetch
    /// response (`rd_kafka_get_watermark_offsets`: no broker round trip, unlike
    /// [`Consumer::fetch_watermarks`]). `None` before the first fetch response for
    /// the partition; the low watermark is negative when the broker did not give it.
    pub fn cached_watermarks(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        self.queue.cached_watermarks(topic, partition)
    }

    /// Waits up to `timeout` for a first message, then appends the queued messages,
    /// up to `max` of them, to `batch`, without waiting for more. Returns how many were
    /// appended.
    pub fn consume_into<'q>(
        &'q self,
        batch: &mut FetchedBatch<'q>,
        max: usize,
        timeout: Duration,
    ) -> usize {
        // librdkafka waits up to the timeout for every message until the batch is
        // full, so only the wait for the first one gets it.
        let messages = &mut batch.messages;
        let mut n = self.queue.consume_batch(messages, max, Duration::ZERO);
        if n == 0 && !timeout.is_zero() {
            n = self.queue.consume_batch(messages, max.min(1), timeout);
            if n > 0 {
                n += self.queue.consume_batch(messages, max - n, Duration::ZERO);
            }
        }
        n
    }

    /// The librdkafka queue the partitions are routed to, for reads into owned
    /// messages and wake-ups (the typed consumer's).
    pub(crate) fn queue_mut(&mut self) -> &mut ConsumerQueue<C> {
        &mut self.queue
    }

    /// See [`queue_mut`](Self::queue_mut).
    pub(crate) fn queue(&self) -> &ConsumerQueue<C> {
        &self.queue
    }
}

impl<C: ConsumerContext + 'static> Drop for FetchQueue<C> {
    fn drop(&mut self) {
        // Before the queue itself goes (when the fields are dropped).
        for (topic, partition) in self.partitions.take() {
            self.queue.unroute_partition(&topic, partition);
        }
    }
}

/// Messages read from a [`FetchQueue`], held in librdkafka's buffers until the batch
/// is cleared or dropped (no copies). It borrows the queue, so it cannot outlive the
/// consumer.
pub struct FetchedBatch<'q> {
    messages: Vec<Message<'q>>,
}

impl Default for FetchedBatch<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl FetchedBatch<'_> {
    /// An empty batch.
    pub fn new() -> Self {
        FetchedBatch {
            messages: Vec::new(),
        }
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether no message is held.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The messages, in the order the queue returned them.
    pub fn iter(&self) -> impl Iterator<Item = FetchedMessage<'_>> + '_ {
        // Messages of one topic share its handle: its name is read (and checked to be
        // UTF-8) once per run of them, not per message.
        let mut last: Option<(*const (), &str)> = None;
        self.messages.iter().map(move |message| {
            let handle = message.topic_handle().cast::<()>();
            let topic = match last {
                Some((rkt, name)) if rkt == handle => name,
                _ => {
                    let name = message.topic();
                    last = Some((handle, name));
                    name
                }
            };
            FetchedMessage { message, topic }
        })
    }

    /// Returns every message to librdkafka.
    pub fn clear(&mut self) {
        self.messages.clear();
    }
}

/// One message of a [`FetchedBatch`].
#[derive(Clone, Copy)]
pub struct FetchedMessage<'b> {
    message: &'b Message<'b>,
    topic: &'b str,
}

impl<'b> FetchedMessage<'b> {
    /// The fetch error this message reports instead of a record (for example an
    /// offset out of range), if any.
    pub fn error(&self) -> Option<KafkaError> {
        let code = self.message.error_code();
        (code != RDKafkaErrorCode::NoError).then_some(KafkaError::MessageConsumption(code))
    }

    /// Topic name (empty if librdkafka has none, which only error messages lack).
    pub fn topic(&self) -> &'b str {
        self.topic
    }

    /// Partition.
    pub fn partition(&self) -> i32 {
        self.message.partition()
    }

    /// Offset.
    pub fn offset(&self) -> i64 {
        self.message.offset()
    }

    /// Timestamp in milliseconds since the epoch, `None` when the record has none.
    pub fn timestamp(&self) -> Option<i64> {
        self.message.timestamp()
    }

    /// Key bytes, `None` for a null key.
    pub fn key(&self) -> Option<&'b [u8]> {
        self.message.key()
    }

    /// Value bytes, `None` for a null value (a tombstone).
    pub fn payload(&self) -> Option<&'b [u8]> {
        self.message.payload()
    }

    /// The record's headers, copied (librdkafka parses them on first access).
    pub fn headers(&self) -> Headers {
        self.message.headers()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rdkafka::consumer::Consumer;
    use rdkafka::message::{Header as RdHeader, Message, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{Offset, TopicPartitionList};

    use super::*;
    use crate::dev::EmbeddedCluster;
    use crate::record::Header;

    const TOPIC: &str = "fetch-queue-readings";

    /// (partition, offset, key, value, headers, timestamp) of one record.
    type Seen = (
        i32,
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Headers,
        Option<i64>,
    );

    fn produce(cluster: &EmbeddedCluster, partition: i32, from: usize, count: usize) {
        let producer: BaseProducer = cluster.client_config().to_rdkafka().create().unwrap();
        for i in from..from + count {
            let key = format!("sensor-{i}");
            let value = format!("{i}");
            let headers = OwnedHeaders::new().insert(RdHeader {
                key: "seq",
                value: Some(value.as_str()),
            });
            let mut record = BaseRecord::<str, str>::to(TOPIC)
                .partition(partition)
                .key(&key)
                .timestamp(1_000 + i as i64)
                .headers(headers);
            // Every fifth record is a tombstone.
            if i % 5 != 0 {
                record = record.payload(&value);
            }
            producer.send(record).map_err(|(e, _)| e).unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    }

    fn assigned_consumer(cluster: &EmbeddedCluster, partitions: &[i32]) -> Arc<BaseConsumer> {
        let consumer: BaseConsumer = cluster
            .client_config()
            .to_rdkafka()
            .set("group.id", "fetch-queue-test")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        Arc::new(consumer)
    }

    fn seen_of(m: &FetchedMessage<'_>) -> Seen {
        (
            m.partition(),
            m.offset(),
            m.key().map(<[u8]>::to_vec),
            m.payload().map(<[u8]>::to_vec),
            m.headers(),
            m.timestamp(),
        )
    }

    /// Reads until `want` records arrived, the consumer's own queue first (as a
    /// stream thread does): `(via the fetch queue, via consumer poll)`.
    fn read(
        consumer: &BaseConsumer,
        queue: &FetchQueue<rdkafka::consumer::DefaultConsumerContext>,
        want: usize,
    ) -> (Vec<Seen>, Vec<Seen>) {
        let (mut batched, mut polled) = (Vec::new(), Vec::new());
        let mut batch = FetchedBatch::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while batched.len() + polled.len() < want {
            assert!(
                Instant::now() < deadline,
                "only {} of {want} records read",
                batched.len() + polled.len()
            );
            while let Some(message) = consumer.poll(Duration::ZERO) {
                let m = message.unwrap();
                let headers = m
                    .headers()
                    .map(|h| {
                        let mut out = Headers::new();
                        for header in rdkafka::message::Headers::iter(h) {
                            out.push(Header {
                                key: header.key.to_owned(),
                                value: header.value.map(<[u8]>::to_vec),
                            });
                        }
                        out
                    })
                    .unwrap_or_default();
                polled.push((
                    m.partition(),
                    m.offset(),
                    m.key().map(<[u8]>::to_vec),
                    m.payload().map(<[u8]>::to_vec),
                    headers,
                    m.timestamp().to_millis(),
                ));
            }
            queue.consume_into(&mut batch, 7, Duration::from_millis(50));
            assert!(batch.len() <= 7, "a batch holds at most the limit");
            for m in batch.iter() {
                assert!(m.error().is_none(), "fetch error {:?}", m.error());
                assert_eq!(m.topic(), TOPIC);
                batched.push(seen_of(&m));
            }
            batch.clear();
        }
        (batched, polled)
    }

    fn expected(partition: i32, offset: i64, i: usize) -> Seen {
        let value = format!("{i}");
        (
            partition,
            offset,
            Some(format!("sensor-{i}").into_bytes()),
            (!i.is_multiple_of(5)).then(|| value.clone().into_bytes()),
            Headers::new().with("seq", value),
            Some(1_000 + i as i64),
        )
    }

    #[test]
    fn hands_out_every_record_of_its_partitions_in_order_with_keys_values_headers_and_timestamps() {
        let cluster = EmbeddedCluster::start(1).unwrap();
        cluster.create_topic(TOPIC, 2).unwrap();
        produce(&cluster, 0, 0, 40);
        produce(&cluster, 1, 100, 30);
        let consumer = assigned_consumer(&cluster, &[0, 1]);
        let queue = FetchQueue::new(consumer.clone()).unwrap();
        assert!(queue.add_partition(TOPIC, 0));
        assert!(queue.add_partition(TOPIC, 1));
        assert!(
            queue.add_partition(TOPIC, 1),
            "adding again routes again, harmlessly"
        );
        assert_eq!(queue.partitions().len(), 2);
        assert!(!queue.add_partition("nul\0topic", 0));

        let (batched, polled) = read(&consumer, &queue, 70);
        assert!(
            polled.is_empty(),
            "added before fetching started, nothing reaches the consumer's queue: {polled:?}"
        );
        let mut by_partition: Vec<Seen> = batched.clone();
        by_partition.sort_by_key(|s| (s.0, s.1));
        let want: Vec<Seen> = (0..40)
            .map(|i| expected(0, i as i64, i))
            .chain((0..30).map(|i| expected(1, i as i64, 100 + i)))
            .collect();
        assert_eq!(by_partition, want);
        for p in [0, 1] {
            let offsets: Vec<i64> = batched.iter().filter(|s| s.0 == p).map(|s| s.1).collect();
            assert!(
                offsets.windows(2).all(|w| w[0] < w[1]),
                "partition {p} out of order: {offsets:?}"
            );
        }
    }

    #[test]
    fn cached_watermarks_are_the_last_fetch_responses_without_a_round_trip() {
        let cluster = EmbeddedCluster::start(1).unwrap();
        cluster.create_topic(TOPIC, 2).unwrap();
        produce(&cluster, 0, 0, 12);
        let consumer = assigned_consumer(&cluster, &[0]);
        let queue = FetchQueue::new(consumer.clone()).unwrap();
        queue.add_partition(TOPIC, 0);
        assert_eq!(
            queue.cached_watermarks(TOPIC, 1),
            None,
            "never fetched: unknown"
        );
        let (batched, _) = read(&consumer, &queue, 12);
        assert_eq!(batched.len(), 12);
        assert_eq!(queue.cached_watermarks(TOPIC, 0), Some((0, 12)));
        assert_eq!(queue.cached_watermarks("nul\0topic", 0), None);
    }

    #[test]
    fn a_removed_partition_goes_back_to_the_consumers_own_queue() {
        let cluster = EmbeddedCluster::start(1).unwrap();
        cluster.create_topic(TOPIC, 2).unwrap();
        produce(&cluster, 0, 0, 10);
        produce(&cluster, 1, 100, 10);
        let consumer = assigned_consumer(&cluster, &[0, 1]);
        let queue = FetchQueue::new(consumer.clone()).unwrap();
        queue.add_partition(TOPIC, 0);
        queue.add_partition(TOPIC, 1);
        let (batched, polled) = read(&consumer, &queue, 20);
        assert_eq!((batched.len(), polled.len()), (20, 0));

        queue.remove_partition(TOPIC, 1);
        assert!(!queue.contains(TOPIC, 1));
        produce(&cluster, 0, 10, 5);
        produce(&cluster, 1, 110, 5);
        let (batched, polled) = read(&consumer, &queue, 10);
        assert!(
            batched.iter().all(|s| s.0 == 0) && batched.len() == 5,
            "{batched:?}"
        );
        let want: Vec<Seen> = (0..5)
            .map(|i| expected(1, 10 + i as i64, 110 + i))
            .collect();
        assert_eq!(polled, want);

        drop(queue);
        produce(&cluster, 0, 15, 3);
        let mut back = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while back.len() < 3 && Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(50)) {
                back.push(m.unwrap().offset());
            }
        }
        assert_eq!(
            back,
            vec![15, 16, 17],
            "a dropped queue gives its partitions back"
        );
    }

    #[test]
    fn routing_again_after_a_reassignment_brings_the_partition_back() {
        let cluster = EmbeddedCluster::start(1).unwrap();
        cluster.create_topic(TOPIC, 1).unwrap();
        produce(&cluster, 0, 0, 10);
        let consumer = assigned_consumer(&cluster, &[0]);
        let queue = FetchQueue::new(consumer.clone()).unwrap();
        queue.add_partition(TOPIC, 0);
        let (batched, polled) = read(&consumer, &queue, 10);
        assert_eq!((batched.len(), polled.len()), (10, 0));

        // Reassigned from the start: librdkafka stops and restarts the fetch, and
        // drops the routing when the stop is processed, some time later.
        consumer.unassign().unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut offsets = Vec::new();
        let mut batch = FetchedBatch::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while offsets.len() < 10 {
            assert!(Instant::now() < deadline, "re-read only {offsets:?}");
            // As the stream thread does: route again now and then.
            queue.add_partition(TOPIC, 0);
            while let Some(m) = consumer.poll(Duration::ZERO) {
                offsets.push(m.unwrap().offset());
            }
            queue.consume_into(&mut batch, 100, Duration::from_millis(20));
            offsets.extend(batch.iter().map(|m| m.offset()));
            batch.clear();
        }
        assert_eq!(
            offsets,
            (0..10).collect::<Vec<i64>>(),
            "every record again, in order"
        );
    }
}
