//! Records as the typed consumer reads them: keys and values decoded from
//! librdkafka's buffers into a record that owns librdkafka's message (no copy of the
//! message), with the headers parsed only when asked for.

use std::fmt;

use crate::ffi::OwnedMessage;
use crate::record::{ConsumerRecord, Headers, TimestampType, TopicPartition};

/// A consumed record with a typed key and value that keeps librdkafka's message
/// instead of copying it: the topic, timestamp and raw bytes are read from it, and its
/// headers are parsed on the first call to [`FetchedRecord::headers`] only. Returned by
/// [`Consumer::recv_fetched`](crate::Consumer::recv_fetched) and
/// [`Consumer::recv_batch`](crate::Consumer::recv_batch).
///
/// It holds the consumer's librdkafka client alive until dropped; convert it with
/// [`FetchedRecord::into_consumer_record`] to keep only owned data.
pub struct FetchedRecord<K, V> {
    /// Key.
    pub key: K,
    /// Value.
    pub value: V,
    raw: RawMessage,
}

/// The message a record was decoded from.
pub(crate) enum RawMessage {
    /// Read from the consumer's fetch queue: librdkafka's message itself.
    Fetched(OwnedMessage),
    /// Read from the consumer's own queue (fetched before its partition was routed to
    /// the fetch queue, which is rare), copied there.
    Polled(Box<CopiedMessage>),
}

/// A message copied out of the consumer's own queue.
pub(crate) type CopiedMessage = ConsumerRecord<Option<Vec<u8>>, Option<Vec<u8>>>;

impl RawMessage {
    pub(crate) fn topic(&self) -> &str {
        match self {
            RawMessage::Fetched(m) => m.topic(),
            RawMessage::Polled(r) => &r.topic,
        }
    }

    pub(crate) fn partition(&self) -> i32 {
        match self {
            RawMessage::Fetched(m) => m.partition(),
            RawMessage::Polled(r) => r.partition,
        }
    }

    pub(crate) fn offset(&self) -> i64 {
        match self {
            RawMessage::Fetched(m) => m.offset(),
            RawMessage::Polled(r) => r.offset,
        }
    }

    pub(crate) fn timestamp(&self) -> (Option<i64>, Option<TimestampType>) {
        match self {
            RawMessage::Fetched(m) => m.timestamp(),
            RawMessage::Polled(r) => (r.timestamp, r.timestamp_type),
        }
    }

    pub(crate) fn key(&self) -> Option<&[u8]> {
        match self {
            RawMessage::Fetched(m) => m.key(),
            RawMessage::Polled(r) => r.key.as_deref(),
        }
    }

    pub(crate) fn payload(&self) -> Option<&[u8]> {
        match self {
            RawMessage::Fetched(m) => m.payload(),
            RawMessage::Polled(r) => r.value.as_deref(),
        }
    }

    pub(crate) fn headers(&self) -> &Headers {
        match self {
            RawMessage::Fetched(m) => m.headers(),
            RawMessage::Polled(r) => &r.headers,
        }
    }

    /// Whether `other` is of the same partition (compared by topic handle, without
    /// reading the topic names, where both were fetched).
    pub(crate) fn same_partition(&self, other: &RawMessage) -> bool {
        if self.partition() != other.partition() {
            return false;
        }
        match (self, other) {
            (RawMessage::Fetched(a), RawMessage::Fetched(b))
                if a.topic_handle() == b.topic_handle() =>
            {
                true
            }
            _ => self.topic() == other.topic(),
        }
    }

    /// The headers, owned: moved out of a copied message, copied from librdkafka's.
    fn into_headers(self) -> Headers {
        match self {
            RawMessage::Fetched(m) => m.headers().clone(),
            RawMessage::Polled(r) => r.headers,
        }
    }
}

impl<K, V> FetchedRecord<K, V> {
    pub(crate) fn new(key: K, value: V, raw: RawMessage) -> Self {
        FetchedRecord { key, value, raw }
    }

    /// Topic.
    pub fn topic(&self) -> &str {
        self.raw.topic()
    }

    /// Partition.
    pub fn partition(&self) -> i32 {
        self.raw.partition()
    }

    /// Offset in the partition.
    pub fn offset(&self) -> i64 {
        self.raw.offset()
    }

    /// Timestamp in milliseconds since the epoch, when the broker reports one.
    pub fn timestamp(&self) -> Option<i64> {
        self.raw.timestamp().0
    }

    /// Kind of [`timestamp`](Self::timestamp).
    pub fn timestamp_type(&self) -> Option<TimestampType> {
        self.raw.timestamp().1
    }

    /// The headers, parsed on the first call (librdkafka parses a record's headers
    /// only when asked, and so does this record).
    pub fn headers(&self) -> &Headers {
        self.raw.headers()
    }

    /// The key's bytes as received, `None` for a null key.
    pub fn raw_key(&self) -> Option<&[u8]> {
        self.raw.key()
    }

    /// The value's bytes as received, `None` for a null value.
    pub fn raw_value(&self) -> Option<&[u8]> {
        self.raw.payload()
    }

    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic(), self.partition())
    }

    /// The same record with owned topic and headers (parsed now if not yet), which
    /// no longer holds librdkafka's message.
    pub fn into_consumer_record(self) -> ConsumerRecord<K, V> {
        let (timestamp, timestamp_type) = self.raw.timestamp();
        ConsumerRecord {
            topic: self.raw.topic().to_owned(),
            partition: self.raw.partition(),
            offset: self.raw.offset(),
            timestamp,
            timestamp_type,
            headers: self.raw.into_headers(),
            key: self.key,
            value: self.value,
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for FetchedRecord<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedRecord")
            .field("topic", &self.topic())
            .field("partition", &self.partition())
            .field("offset", &self.offset())
            .field("timestamp", &self.timestamp())
            .field("key", &self.key)
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

// Records and clients move to and are shared between tasks and threads (checked when
// compiling: `OwnedMessage` implements `Send` and `Sync` by hand).
const _: fn() = || {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<FetchedRecord<String, String>>();
    send_and_sync::<crate::Consumer<String, String>>();
    send_and_sync::<crate::Producer<String, String>>();
};

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::Duration;

    use super::*;
    use crate::dev::EmbeddedCluster;
    use crate::dlq::DeadLetterPolicy;
    use crate::serde::{Deserializer, SerdeContext, SerdeError, StringSerde};
    use crate::{ClientConfig, ConsumeError, Consumer, Offset, Producer, ProducerRecord};

    const TOPIC: &str = "fetched-readings";

    /// What a test compares of one record.
    #[derive(Debug, PartialEq)]
    struct Seen {
        partition: i32,
        offset: i64,
        key: Option<String>,
        value: Option<String>,
        headers: Headers,
        timestamp: Option<i64>,
        timestamp_type: Option<TimestampType>,
    }

    /// Waits at most 30 s for `future`, so that a lost record fails the test instead
    /// of hanging it.
    async fn within<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(30), future)
            .await
            .expect("no record within 30 s")
    }

    /// 30 records on partition 0 and 20 on partition 1: every third with headers
    /// (one of them null), a null key on every seventh, a tombstone on every fifth.
    fn records() -> Vec<ProducerRecord<Option<String>, Option<String>>> {
        (0..50)
            .map(|i| {
                let partition = if i < 30 { 0 } else { 1 };
                let key = (i % 7 != 0).then(|| format!("sensor-{i}"));
                let value = (i % 5 != 0).then(|| format!("{i}.5"));
                let mut record = ProducerRecord::new(TOPIC, key, value)
                    .with_partition(partition)
                    .with_timestamp(1_700_000_000_000 + i);
                if i % 3 == 0 {
                    let mut headers = Headers::new().with("seq", i.to_string());
                    headers.insert_null("empty");
                    record = record.with_headers(headers.with("seq", "again"));
                }
                record
            })
            .collect()
    }

    fn expected() -> Vec<Seen> {
        let per_partition = |r: &ProducerRecord<Option<String>, Option<String>>, offset| Seen {
            partition: r.partition.unwrap_or(-1),
            offset,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
            timestamp: r.timestamp,
            timestamp_type: Some(TimestampType::CreateTime),
        };
        let all = records();
        let p0 = all
            .iter()
            .take(30)
            .zip(0..)
            .map(|(r, o)| per_partition(r, o));
        let p1 = all
            .iter()
            .skip(30)
            .zip(0..)
            .map(|(r, o)| per_partition(r, o));
        p0.chain(p1).collect()
    }

    async fn cluster_with_records() -> EmbeddedCluster {
        let cluster = EmbeddedCluster::start(1).unwrap();
        cluster.create_topic(TOPIC, 2).unwrap();
        let producer: Producer<Option<String>, Option<String>> =
            Producer::new(&cluster.client_config()).unwrap();
        for result in producer.send_batch(records()).await {
            result.unwrap();
        }
        cluster
    }

    /// A consumer of both partitions from their start.
    fn assigned(
        cluster: &EmbeddedCluster,
        group: &str,
    ) -> Consumer<Option<String>, Option<String>> {
        let consumer = Consumer::new(&config(cluster, group)).unwrap();
        let partitions = [0, 1].map(|p| (TopicPartition::new(TOPIC, p), Offset::Beginning));
        consumer.assign(&partitions).unwrap();
        consumer
    }

    fn config(cluster: &EmbeddedCluster, group: &str) -> ClientConfig {
        cluster.client_config().group_id(group)
    }

    /// Sorted by partition, keeping each partition's order as read.
    fn by_partition(mut seen: Vec<Seen>) -> Vec<Seen> {
        seen.sort_by_key(|s| s.partition);
        seen
    }

    fn seen_of_fetched(r: &FetchedRecord<Option<String>, Option<String>>) -> Seen {
        Seen {
            partition: r.partition(),
            offset: r.offset(),
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers().clone(),
            timestamp: r.timestamp(),
            timestamp_type: r.timestamp_type(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recv_recv_fetched_and_recv_batch_read_the_same_records_with_the_same_headers() {
        let cluster = cluster_with_records().await;
        let want = expected();

        let owned = assigned(&cluster, "owned");
        let mut seen = Vec::new();
        while seen.len() < want.len() {
            let r = within(owned.recv()).await.unwrap();
            assert_eq!(r.topic, TOPIC);
            seen.push(Seen {
                partition: r.partition,
                offset: r.offset,
                key: r.key,
                value: r.value,
                headers: r.headers,
                timestamp: r.timestamp,
                timestamp_type: r.timestamp_type,
            });
        }
        assert_eq!(by_partition(seen), want, "recv");

        let fetched = assigned(&cluster, "fetched");
        let mut seen = Vec::new();
        while seen.len() < want.len() {
            let r = within(fetched.recv_fetched()).await.unwrap();
            assert_eq!(r.topic(), TOPIC);
            assert_eq!(r.raw_key(), r.key.as_deref().map(str::as_bytes));
            assert_eq!(r.raw_value(), r.value.as_deref().map(str::as_bytes));
            assert_eq!(
                r.topic_partition(),
                TopicPartition::new(TOPIC, r.partition())
            );
            seen.push(seen_of_fetched(&r));
            // Converting copies the same topic and headers.
            let (headers, offset) = (r.headers().clone(), r.offset());
            let converted = r.into_consumer_record();
            assert_eq!((converted.headers, converted.offset), (headers, offset));
        }
        assert_eq!(by_partition(seen), want, "recv_fetched");

        let batched = assigned(&cluster, "batched");
        let mut seen = Vec::new();
        while seen.len() < want.len() {
            let batch = within(batched.recv_batch(7)).await.unwrap();
            assert!(
                (1..=7).contains(&batch.len()),
                "a batch holds 1 to 7 records, not {}",
                batch.len()
            );
            // Headers parsed late, after the whole batch was read, are the same.
            let batch: Vec<_> = batch.into_iter().map(Result::unwrap).collect();
            seen.extend(batch.iter().map(seen_of_fetched));
        }
        assert_eq!(by_partition(seen), want, "recv_batch");
    }

    /// Rejects values that are not UTF-8, as `StringSerde` does, and checks that it
    /// is given the record's headers (it reads headers, as the default says).
    struct HeaderCheckingString;

    impl Deserializer<String> for HeaderCheckingString {
        fn deserialize(
            &self,
            data: Option<&[u8]>,
            ctx: &SerdeContext<'_>,
        ) -> Result<String, SerdeError> {
            let value = StringSerde.deserialize(data, ctx)?;
            // A deserializer that reads headers gets the record's own.
            let expected = if value == "with-header" {
                Headers::new().with("kind", "reading")
            } else {
                Headers::new()
            };
            assert_eq!(ctx.headers, &expected, "headers of {value}");
            Ok(value)
        }
    }

    async fn poison_cluster() -> EmbeddedCluster {
        let cluster = EmbeddedCluster::start(1).unwrap();
        cluster.create_topic(TOPIC, 1).unwrap();
        let producer: Producer<String, Vec<u8>> = Producer::new(&cluster.client_config()).unwrap();
        let values: [&[u8]; 4] = [b"first", b"\xff\xfe not utf-8", b"with-header", b"last"];
        for (i, value) in values.into_iter().enumerate() {
            let mut record = ProducerRecord::new(TOPIC, format!("k{i}"), value.to_vec());
            if value == b"with-header" {
                record = record.with_header("kind", "reading");
            }
            producer.send(record).await.unwrap();
        }
        cluster
    }

    /// A consumer of the poison cluster's partition from its start, whose value
    /// deserializer reads headers.
    fn poison_consumer(cluster: &EmbeddedCluster, group: &str) -> Consumer<String, String> {
        let consumer = Consumer::with_deserializers(
            &config(cluster, group),
            StringSerde,
            HeaderCheckingString,
        )
        .unwrap();
        consumer
            .assign(&[(TopicPartition::new(TOPIC, 0), Offset::Beginning)])
            .unwrap();
        consumer
    }

    fn values(records: &[Result<FetchedRecord<String, String>, ConsumeError>]) -> Vec<String> {
        records
            .iter()
            .map(|r| match r {
                Ok(record) => record.value.clone(),
                Err(e) => {
                    let poison = e.as_deserialization().expect("a poison record");
                    format!("poison@{}", poison.offset)
                }
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_poison_record_is_an_error_item_of_its_batch_and_the_next_records_follow() {
        let cluster = poison_cluster().await;
        let consumer = poison_consumer(&cluster, "poison-batch");
        let mut read = Vec::new();
        while read.len() < 4 {
            read.extend(within(consumer.recv_batch(100)).await.unwrap());
        }
        assert_eq!(
            values(&read),
            ["first", "poison@1", "with-header", "last"],
            "as four recv calls return them"
        );
        let poison = read[1].as_ref().unwrap_err().as_deserialization().unwrap();
        assert_eq!((poison.topic.as_str(), poison.partition), (TOPIC, 0));
        assert_eq!(poison.value.as_deref(), Some(&b"\xff\xfe not utf-8"[..]));

        // recv_fetched returns the same sequence, one call each.
        let one_by_one = poison_consumer(&cluster, "poison-one");
        let mut read = Vec::new();
        for _ in 0..4 {
            read.push(within(one_by_one.recv_fetched()).await);
        }
        assert_eq!(values(&read), ["first", "poison@1", "with-header", "last"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_skipped_poison_record_is_left_out_of_its_batch() {
        let cluster = poison_cluster().await;
        let consumer: Consumer<String, String> =
            Consumer::builder(&config(&cluster, "poison-skip"))
                .key_deserializer(StringSerde)
                .value_deserializer(StringSerde)
                .dead_letter_policy(DeadLetterPolicy::SkipAndLog)
                .build()
                .unwrap();
        consumer
            .assign(&[(TopicPartition::new(TOPIC, 0), Offset::Beginning)])
            .unwrap();
        let mut read = Vec::new();
        while read.len() < 3 {
            read.extend(within(consumer.recv_batch(100)).await.unwrap());
        }
        assert_eq!(values(&read), ["first", "with-header", "last"]);
        let offsets: Vec<i64> = read.iter().map(|r| r.as_ref().unwrap().offset()).collect();
        assert_eq!(offsets, [0, 2, 3]);
    }
}
