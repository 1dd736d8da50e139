//! Records as they are produced and consumed: topic, partition, key, value, timestamp
//! and headers, with typed keys and values.

use std::fmt;

/// One record header. Kafka allows repeated keys and null values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value; `None` is a null header value.
    pub value: Option<Vec<u8>>,
}

/// The ordered headers of a record.
///
/// ```
/// use kafka_client::Headers;
/// let headers = Headers::new().with("trace", "abc").with("source", b"plant01".to_vec());
/// assert_eq!(headers.last("trace"), Some(&b"abc"[..]));
/// assert_eq!(headers.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Headers {
    entries: Vec<Header>,
}

impl Headers {
    /// No headers.
    pub const fn new() -> Self {
        Headers {
            entries: Vec::new(),
        }
    }

    /// Appends a header (builder style).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.insert(key, value);
        self
    }

    /// Appends a header.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.entries.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
    }

    /// Appends a header with a null value.
    pub fn insert_null(&mut self, key: impl Into<String>) {
        self.entries.push(Header {
            key: key.into(),
            value: None,
        });
    }

    /// Appends an already built header.
    pub fn push(&mut self, header: Header) {
        self.entries.push(header);
    }

    /// The value of the last header named `key` (Kafka's `lastHeader`); `None` when
    /// absent or null.
    pub fn last(&self, key: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .rev()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_deref())
    }

    /// Every header, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.entries.iter()
    }

    /// Removes every header named `key`.
    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|h| h.key != key);
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn from_rdkafka<H: rdkafka::message::Headers>(headers: &H) -> Self {
        Headers {
            entries: headers
                .iter()
                .map(|h| Header {
                    key: h.key.to_owned(),
                    value: h.value.map(<[u8]>::to_vec),
                })
                .collect(),
        }
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl FromIterator<Header> for Headers {
    fn from_iter<I: IntoIterator<Item = Header>>(iter: I) -> Self {
        Headers {
            entries: iter.into_iter().collect(),
        }
    }
}

/// A topic and a partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A record to produce, with a typed key and value.
///
/// ```
/// use kafka_client::ProducerRecord;
/// let record = ProducerRecord::new("plant01", "sensor-1".to_string(), 42_i64)
///     .with_partition(0)
///     .with_timestamp(1_700_000_000_000)
///     .with_header("source", "gateway-7");
/// assert_eq!(record.partition, Some(0));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerRecord<K, V> {
    /// Destination topic.
    pub topic: String,
    /// Key.
    pub key: K,
    /// Value.
    pub value: V,
    /// Explicit partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
    /// Create time in milliseconds since the epoch; `None` means "now".
    pub timestamp: Option<i64>,
    /// Headers.
    pub headers: Headers,
}

impl<K, V> ProducerRecord<K, V> {
    /// A record for `topic` with `key` and `value`.
    pub fn new(topic: impl Into<String>, key: K, value: V) -> Self {
        ProducerRecord {
            topic: topic.into(),
            key,
            value,
            partition: None,
            timestamp: None,
            headers: Headers::new(),
        }
    }

    /// Sends to this partition instead of the partitioner's choice.
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the create timestamp (milliseconds since the epoch).
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Appends a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.insert(key, value);
        self
    }

    /// Replaces the headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}

/// Where a produced record landed (Kafka's `RecordMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// The record's timestamp in milliseconds, when known.
    pub timestamp: Option<i64>,
}

/// The kind of a record timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker on append.
    LogAppendTime,
}

/// A consumed record with a typed key and value.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerRecord<K, V> {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Timestamp in milliseconds since the epoch, when the broker reports one.
    pub timestamp: Option<i64>,
    /// Kind of `timestamp`.
    pub timestamp_type: Option<TimestampType>,
    /// Headers.
    pub headers: Headers,
    /// Key.
    pub key: K,
    /// Value.
    pub value: V,
}

impl<K, V> ConsumerRecord<K, V> {
    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

pub(crate) fn timestamp_parts(ts: rdkafka::Timestamp) -> (Option<i64>, Option<TimestampType>) {
    match ts {
        rdkafka::Timestamp::NotAvailable => (None, None),
        rdkafka::Timestamp::CreateTime(t) => (Some(t), Some(TimestampType::CreateTime)),
        rdkafka::Timestamp::LogAppendTime(t) => (Some(t), Some(TimestampType::LogAppendTime)),
    }
}
