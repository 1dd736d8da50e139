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
    Polled(Box<ConsumerRecord<Option<Vec<u8>>, Option<Vec<u8>>>>),
}

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
