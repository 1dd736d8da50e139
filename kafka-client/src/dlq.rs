//! What the typed consumer does with a poison record (one whose key or value
//! cannot be deserialized), chosen per consumer with
//! [`ConsumerBuilder::dead_letter_policy`](crate::ConsumerBuilder::dead_letter_policy):
//!
//! - [`DeadLetterPolicy::Fail`] (default): `recv` returns
//!   [`ConsumeError::Deserialization`];
//! - [`DeadLetterPolicy::SkipAndLog`]: logs a warning and reads on;
//! - [`DeadLetterPolicy::DeadLetter`]: writes the raw key, value and headers to a
//!   dead-letter topic (default `<topic>.dlq`) with provenance headers, waits for
//!   the broker's acknowledgement, commits the offset past the record, and reads
//!   on. If the dead-letter write fails, the consumer seeks back to the record
//!   and `recv` returns the error: nothing is lost.
//!
//! Committing past a dead-lettered record also marks the earlier records of its
//! partition as processed, which holds when each record is handled before the
//! next `recv` (as with [`Consumer::process_at_least_once`](crate::Consumer::process_at_least_once)).
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kafka_client::dlq::{DeadLetterConfig, DeadLetterPolicy};
//! use kafka_client::serde::{Json, JsonSerde, StringSerde};
//! use kafka_client::{ClientConfig, Consumer};
//!
//! #[derive(serde::Deserialize)]
//! struct Reading { value: i64 }
//!
//! let config = ClientConfig::new("localhost:9092").group_id("readers");
//! let consumer: Consumer<String, Json<Reading>> = Consumer::builder(&config)
//!     .key_deserializer(StringSerde)
//!     .value_deserializer(JsonSerde::<Reading>::new())
//!     .dead_letter_policy(DeadLetterPolicy::DeadLetter(DeadLetterConfig::default()))
//!     .build()?;
//! # Ok(()) }
//! ```

use crate::config::ClientConfig;
use crate::error::{ConsumeError, DeserializationError, Error, SendErrorKind};
use crate::producer::Producer;
use crate::record::{Headers, ProducerRecord};

/// Header: the topic the record was read from.
pub const HEADER_ORIGINAL_TOPIC: &str = "dlq.original.topic";
/// Header: its partition (decimal).
pub const HEADER_ORIGINAL_PARTITION: &str = "dlq.original.partition";
/// Header: its offset (decimal).
pub const HEADER_ORIGINAL_OFFSET: &str = "dlq.original.offset";
/// Header: its timestamp in milliseconds (decimal), when it had one.
pub const HEADER_ORIGINAL_TIMESTAMP: &str = "dlq.original.timestamp";
/// Header: the error class, e.g. `deserialization.value.json`.
pub const HEADER_ERROR_CLASS: &str = "dlq.error.class";
/// Header: the error message.
pub const HEADER_ERROR_MESSAGE: &str = "dlq.error.message";

/// Properties of a consumer that a dead-letter producer must not inherit.
const CONSUMER_ONLY: &[&str] = &[
    "group.id",
    "group.instance.id",
    "auto.offset.reset",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.commit.interval.ms",
    "enable.partition.eof",
    "isolation.level",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "group.protocol",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "fetch.wait.max.ms",
    "max.partition.fetch.bytes",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "check.crcs",
    "allow.auto.create.topics",
];

/// Where dead-lettered records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterTopic {
    /// The source topic plus this suffix (`.dlq` by default).
    Suffix(String),
    /// One topic for every source topic.
    Fixed(String),
}

/// Settings of [`DeadLetterPolicy::DeadLetter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterConfig {
    /// Destination topic (it must exist, or the broker must auto-create it).
    pub topic: DeadLetterTopic,
    /// The dead-letter producer's configuration; `None` derives it from the
    /// consumer's (same cluster and security settings).
    pub producer_config: Option<ClientConfig>,
}

impl Default for DeadLetterConfig {
    /// `<topic>.dlq`, producer configured like the consumer.
    fn default() -> Self {
        DeadLetterConfig {
            topic: DeadLetterTopic::Suffix(".dlq".into()),
            producer_config: None,
        }
    }
}

impl DeadLetterConfig {
    /// Every poison record goes to `topic`.
    pub fn topic(topic: impl Into<String>) -> Self {
        DeadLetterConfig {
            topic: DeadLetterTopic::Fixed(topic.into()),
            producer_config: None,
        }
    }

    /// Poison records of topic `t` go to `t` + `suffix`.
    pub fn suffix(suffix: impl Into<String>) -> Self {
        DeadLetterConfig {
            topic: DeadLetterTopic::Suffix(suffix.into()),
            producer_config: None,
        }
    }

    /// Uses this configuration for the dead-letter producer.
    pub fn with_producer_config(mut self, config: ClientConfig) -> Self {
        self.producer_config = Some(config);
        self
    }

    /// The dead-letter topic for records of `source_topic`.
    pub fn topic_for(&self, source_topic: &str) -> String {
        match &self.topic {
            DeadLetterTopic::Suffix(suffix) => format!("{source_topic}{suffix}"),
            DeadLetterTopic::Fixed(topic) => topic.clone(),
        }
    }
}

/// What the consumer does with a poison record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DeadLetterPolicy {
    /// Return the error from `recv` (the default).
    #[default]
    Fail,
    /// Log a warning and read on.
    SkipAndLog,
    /// Park the record in a dead-letter topic, commit past it, read on.
    DeadLetter(DeadLetterConfig),
}

type RawProducer = Producer<Option<Vec<u8>>, Option<Vec<u8>>>;

/// The consumer's handler for poison records.
pub(crate) enum PoisonHandler {
    Fail,
    Skip,
    DeadLetter {
        config: DeadLetterConfig,
        producer: RawProducer,
    },
}

/// What the consumer must do after the handler ran.
pub(crate) enum PoisonOutcome {
    /// Return the error to the caller.
    Fail,
    /// Read on.
    Skipped,
    /// Commit the offset past the record, then read on.
    DeadLettered,
}

impl PoisonHandler {
    pub(crate) fn new(
        policy: DeadLetterPolicy,
        consumer_config: &ClientConfig,
    ) -> crate::Result<Self> {
        Ok(match policy {
            DeadLetterPolicy::Fail => PoisonHandler::Fail,
            DeadLetterPolicy::SkipAndLog => PoisonHandler::Skip,
            DeadLetterPolicy::DeadLetter(config) => {
                let producer_config = match &config.producer_config {
                    Some(c) => c.clone(),
                    None => CONSUMER_ONLY
                        .iter()
                        .fold(consumer_config.clone(), |c, key| c.unset(key)),
                };
                let producer = RawProducer::new(&producer_config)?;
                PoisonHandler::DeadLetter { config, producer }
            }
        })
    }

    pub(crate) fn is_fail(&self) -> bool {
        matches!(self, PoisonHandler::Fail)
    }

    pub(crate) async fn handle(
        &self,
        poison: &DeserializationError,
    ) -> Result<PoisonOutcome, ConsumeError> {
        match self {
            PoisonHandler::Fail => Ok(PoisonOutcome::Fail),
            PoisonHandler::Skip => {
                tracing::warn!(
                    topic = %poison.topic,
                    partition = poison.partition,
                    offset = poison.offset,
                    "skipping poison record: {}",
                    poison.source
                );
                Ok(PoisonOutcome::Skipped)
            }
            PoisonHandler::DeadLetter { config, producer } => {
                let dlq = config.topic_for(&poison.topic);
                let record = dead_letter_record(&dlq, poison);
                match producer.send(record).await {
                    Ok(meta) => {
                        tracing::warn!(
                            topic = %poison.topic,
                            partition = poison.partition,
                            offset = poison.offset,
                            dlq = %dlq,
                            dlq_partition = meta.partition,
                            dlq_offset = meta.offset,
                            "poison record dead-lettered: {}",
                            poison.source
                        );
                        Ok(PoisonOutcome::DeadLettered)
                    }
                    Err(e) => {
                        let detail = format!(
                            "record {}-{}@{} to topic {dlq}",
                            poison.topic, poison.partition, poison.offset
                        );
                        Err(ConsumeError::Kafka(match e.kind {
                            SendErrorKind::Kafka(source) => {
                                Error::kafka("dead-letter", detail, source)
                            }
                            SendErrorKind::Serialization(source) => {
                                Error::Config(format!("dead-letter {detail}: {source}"))
                            }
                        }))
                    }
                }
            }
        }
    }
}

/// The error class of a poison record: `deserialization.<key|value>.<kind>`.
pub fn error_class(poison: &DeserializationError) -> String {
    // The variant name of the SerdeError, from its Debug form ("Json { .. }").
    let debug = format!("{:?}", poison.source);
    let variant: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut kind = String::new();
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            kind.push('_');
        }
        kind.push(c.to_ascii_lowercase());
    }
    format!("deserialization.{}.{kind}", poison.field)
}

/// The dead-letter record: the original bytes and headers, plus provenance.
pub(crate) fn dead_letter_record(
    dlq: &str,
    poison: &DeserializationError,
) -> ProducerRecord<Option<Vec<u8>>, Option<Vec<u8>>> {
    let mut headers: Headers = poison.headers.clone();
    headers.insert(HEADER_ORIGINAL_TOPIC, poison.topic.as_bytes());
    headers.insert(HEADER_ORIGINAL_PARTITION, poison.partition.to_string());
    headers.insert(HEADER_ORIGINAL_OFFSET, poison.offset.to_string());
    if let Some(ts) = poison.timestamp {
        headers.insert(HEADER_ORIGINAL_TIMESTAMP, ts.to_string());
    }
    headers.insert(HEADER_ERROR_CLASS, error_class(poison));
    headers.insert(HEADER_ERROR_MESSAGE, poison.source.to_string());
    ProducerRecord::new(dlq, poison.key.clone(), poison.value.clone()).with_headers(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::{MessageField, SerdeError};

    fn poison() -> DeserializationError {
        DeserializationError {
            topic: "plant01".into(),
            partition: 2,
            offset: 17,
            timestamp: Some(1_700_000_000_000),
            field: MessageField::Value,
            key: None,
            value: Some(vec![0xff, 0x00]),
            headers: Headers::new().with("source", "gw-7"),
            source: SerdeError::ExpectedNull {
                topic: "plant01".into(),
                field: MessageField::Value,
                len: 2,
            },
        }
    }

    #[test]
    fn dead_letter_record_keeps_bytes_and_adds_provenance() {
        let record = dead_letter_record("plant01.dlq", &poison());
        assert_eq!(record.topic, "plant01.dlq");
        assert_eq!(record.key, None, "a null key stays null");
        assert_eq!(record.value, Some(vec![0xff, 0x00]));
        let h = &record.headers;
        assert_eq!(
            h.iter().next().map(|h| h.key.as_str()),
            Some("source"),
            "original headers first"
        );
        assert_eq!(h.last(HEADER_ORIGINAL_TOPIC), Some(&b"plant01"[..]));
        assert_eq!(h.last(HEADER_ORIGINAL_PARTITION), Some(&b"2"[..]));
        assert_eq!(h.last(HEADER_ORIGINAL_OFFSET), Some(&b"17"[..]));
        assert_eq!(
            h.last(HEADER_ORIGINAL_TIMESTAMP),
            Some(&b"1700000000000"[..])
        );
        assert_eq!(
            h.last(HEADER_ERROR_CLASS),
            Some(&b"deserialization.value.expected_null"[..])
        );
        let message = String::from_utf8(h.last(HEADER_ERROR_MESSAGE).unwrap().to_vec()).unwrap();
        assert!(message.contains("must be null"), "{message}");
    }

    #[test]
    fn topics_default_to_the_dlq_suffix() {
        assert_eq!(DeadLetterConfig::default().topic_for("a"), "a.dlq");
        assert_eq!(
            DeadLetterConfig::suffix("-errors").topic_for("a"),
            "a-errors"
        );
        assert_eq!(
            DeadLetterConfig::topic("all-errors").topic_for("a"),
            "all-errors"
        );
        assert_eq!(DeadLetterPolicy::default(), DeadLetterPolicy::Fail);
    }

    #[test]
    fn dead_letter_producer_drops_consumer_properties() {
        let consumer = ClientConfig::new("localhost:9092")
            .group_id("g")
            .set("session.timeout.ms", "6000");
        let handler = PoisonHandler::new(
            DeadLetterPolicy::DeadLetter(DeadLetterConfig::default()),
            &consumer,
        );
        assert!(handler.is_ok());
        let stripped = CONSUMER_ONLY.iter().fold(consumer, |c, k| c.unset(k));
        assert_eq!(stripped.get("group.id"), None);
        assert_eq!(stripped.get("bootstrap.servers"), Some("localhost:9092"));
    }
}
