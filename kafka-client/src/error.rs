//! The error types of kafka-client.
//!
//! [`Error`] names the operation that failed and the topic or partition involved.
//! [`SendError`] hands the unsent record back. [`ConsumeError`] separates broker
//! errors from records that could not be deserialized ([`DeserializationError`]),
//! which carry their raw bytes so that nothing is lost.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::record::{Headers, ProducerRecord, TopicPartition};
use crate::serde::{MessageField, SerdeError};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a kafka-client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is incomplete or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// librdkafka or the broker reported an error.
    #[error("{operation}{detail} failed: {source}")]
    Kafka {
        /// What was being done, e.g. "commit".
        operation: &'static str,
        /// The topics, partitions or group involved (may be empty).
        detail: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// The blocking task that ran a librdkafka call did not finish.
    #[error("{operation} was cancelled or panicked: {message}")]
    Background {
        /// What was being done.
        operation: &'static str,
        /// Why it did not finish.
        message: String,
    },
}

impl Error {
    pub(crate) fn kafka(
        operation: &'static str,
        detail: impl Into<String>,
        source: KafkaError,
    ) -> Self {
        let detail = detail.into();
        Error::Kafka {
            operation,
            detail: if detail.is_empty() {
                detail
            } else {
                format!(" ({detail})")
            },
            source,
        }
    }

    pub(crate) fn background(operation: &'static str, error: tokio::task::JoinError) -> Self {
        Error::Background {
            operation,
            message: error.to_string(),
        }
    }

    /// The librdkafka error code, when the error came from librdkafka.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            Error::Kafka { source, .. } => source.rdkafka_error_code(),
            _ => None,
        }
    }

    /// True when retrying the same operation may succeed (timeouts, transport
    /// errors, leader changes, rebalances in progress).
    pub fn is_retriable(&self) -> bool {
        self.code().is_some_and(is_retriable_code)
    }
}

pub(crate) fn is_retriable_code(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        OperationTimedOut
            | RequestTimedOut
            | BrokerTransportFailure
            | AllBrokersDown
            | QueueFull
            | NotLeaderForPartition
            | LeaderNotAvailable
            | NotCoordinator
            | CoordinatorNotAvailable
            | CoordinatorLoadInProgress
            | RebalanceInProgress
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend
            | NetworkException
            | UnknownTopicOrPartition
    )
}

/// Why a record was not sent. The record comes back unchanged.
#[derive(Debug, thiserror::Error)]
#[error("sending to topic {topic}{partition}: {kind}", topic = record.topic, partition = record.partition.map(|p| format!(" partition {p}")).unwrap_or_default())]
pub struct SendError<K, V> {
    /// The record that was not sent.
    pub record: ProducerRecord<K, V>,
    /// What went wrong.
    #[source]
    pub kind: SendErrorKind,
}

impl<K, V> SendError<K, V> {
    /// True when sending the same record again may succeed.
    pub fn is_retriable(&self) -> bool {
        match &self.kind {
            SendErrorKind::Kafka(e) => e.rdkafka_error_code().is_some_and(is_retriable_code),
            SendErrorKind::Serialization(SerdeError::Custom(_)) => false,
            SendErrorKind::Serialization(_) => false,
        }
    }
}

/// What went wrong in a [`SendError`].
#[derive(Debug, thiserror::Error)]
pub enum SendErrorKind {
    /// The key or value could not be serialized.
    #[error("serialization failed: {0}")]
    Serialization(#[source] SerdeError),
    /// librdkafka refused the record or the broker did not acknowledge it.
    #[error("delivery failed: {0}")]
    Kafka(#[source] KafkaError),
}

/// A record whose key or value could not be deserialized: a poison record.
///
/// It carries the raw bytes and headers, so the record can be logged,
/// dead-lettered or inspected; the consumer has already moved past it.
#[derive(Debug, thiserror::Error)]
#[error("cannot deserialize {field} of record at topic {topic} partition {partition} offset {offset}: {source}")]
pub struct DeserializationError {
    /// Topic of the record.
    pub topic: String,
    /// Partition of the record.
    pub partition: i32,
    /// Offset of the record.
    pub offset: i64,
    /// Timestamp of the record, in milliseconds.
    pub timestamp: Option<i64>,
    /// The part that failed.
    pub field: MessageField,
    /// The raw key.
    pub key: Option<Vec<u8>>,
    /// The raw value.
    pub value: Option<Vec<u8>>,
    /// The record's headers.
    pub headers: Headers,
    /// The deserializer's error.
    #[source]
    pub source: SerdeError,
}

impl DeserializationError {
    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }

    /// The offset to commit to move past this record.
    pub fn next_offset(&self) -> i64 {
        self.offset + 1
    }
}

/// Why `recv` returned no record.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// A record arrived but could not be deserialized. The consumer stays usable
    /// and the next `recv` returns the following record.
    #[error(transparent)]
    Deserialization(Box<DeserializationError>),
    /// librdkafka or the broker reported an error.
    #[error(transparent)]
    Kafka(#[from] Error),
}

impl ConsumeError {
    /// The poison record, when that is what this error is.
    pub fn as_deserialization(&self) -> Option<&DeserializationError> {
        match self {
            ConsumeError::Deserialization(e) => Some(e),
            ConsumeError::Kafka(_) => None,
        }
    }
}
