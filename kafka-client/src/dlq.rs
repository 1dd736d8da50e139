//! What the typed consumer does with a poison record (one whose key or value
//! cannot be deserialized), chosen per consumer with
//! [`ConsumerBuilder::dead_letter_policy`](crate::ConsumerBuilder::dead_letter_policy):
//!
//! - [`DeadLetterPolicy::Fail`] (default): `recv` returns
//!   [`ConsumeError::Deserialization`];
//! - [`DeadLetterPolicy::SkipAndLog`]: logs a warning and reads on;
//! - [`DeadLetterPolicy::DeadLetter`]: writes the raw key, value and headers to a
//!   dead-letter topic (default `<topic>.dlq`) with the provenance [`headers`], waits
//!   for the broker's acknowledgement, commits the offset past the record, and reads
//!   on. If the dead-letter write fails, the consumer seeks back to the record
//!   and `recv` returns the error: nothing is lost.
//!
//! A dead-lettered record is the poison record as it was read: same key and value
//! bytes, same timestamp, its headers first, then the provenance [`headers`] that
//! Kafka Streams' dead-letter queues use (KIP-1034), which kafka-streams'
//! `DeadLetterQueueExceptionHandler` writes too:
//!
//! | header | value (UTF-8) |
//! |---|---|
//! | `__streams.errors.topic` | the topic the record was read from |
//! | `__streams.errors.partition` | its partition, in decimal |
//! | `__streams.errors.offset` | its offset, in decimal |
//! | `__streams.errors.exception` | the kind of error, here [`error_class`]: `deserialization.<key\|value>.<kind>` |
//! | `__streams.errors.message` | the error message |
//! | `__streams.errors.stacktrace` | the error and its causes, one per line |
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

/// The names of the provenance headers of a dead-lettered record: Kafka Streams' own
/// (`ExceptionHandlerUtils`, KIP-1034), shared by this crate's dead-letter policy and
/// kafka-streams' `DeadLetterQueueExceptionHandler`, so tools written for Kafka's
/// dead-letter queues read both. Values are UTF-8 text.
///
/// ```
/// # fn demo(record: &kafka_client::ConsumerRecord<Option<Vec<u8>>, Option<Vec<u8>>>) {
/// use kafka_client::dlq::headers;
///
/// let from = record.headers.last(headers::TOPIC).map(String::from_utf8_lossy);
/// let offset = record.headers.last(headers::OFFSET).map(String::from_utf8_lossy);
/// println!("dead-lettered from {from:?} at offset {offset:?}");
/// # }
/// ```
pub mod headers {
    /// The topic the record was read from.
    pub const TOPIC: &str = "__streams.errors.topic";
    /// The partition it was read from (decimal).
    pub const PARTITION: &str = "__streams.errors.partition";
    /// Its offset (decimal).
    pub const OFFSET: &str = "__streams.errors.offset";
    /// The kind of error (Kafka writes the exception's class name): the typed
    /// consumer writes [`error_class`](super::error_class), e.g.
    /// `deserialization.value.json`; kafka-streams writes e.g.
    /// `DeserializationException`.
    pub const EXCEPTION: &str = "__streams.errors.exception";
    /// The error message.
    pub const MESSAGE: &str = "__streams.errors.message";
    /// The error and the chain of its causes, one per line (Kafka writes the Java
    /// stack trace).
    pub const STACKTRACE: &str = "__streams.errors.stacktrace";
    /// The `application.id` of the kafka-streams application that dead-lettered the
    /// record. Not one of Kafka's headers: an addition of kafka-streams, which the
    /// typed consumer does not write.
    pub const APPLICATION_ID: &str = "__streams.errors.application.id";
}

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

/// The error, then each of its causes, one per line: `<class>: <message>` first, then
/// `caused by: <message>` (the shape of a Java stack trace, without frames).
fn cause_chain(poison: &DeserializationError) -> String {
    let mut chain = format!("{}: {}", error_class(poison), poison.source);
    let mut cause = std::error::Error::source(&poison.source);
    while let Some(error) = cause {
        chain.push_str("\ncaused by: ");
        chain.push_str(&error.to_string());
        cause = error.source();
    }
    chain
}

/// The dead-letter record: the original bytes, timestamp and headers, plus the
/// provenance [`headers`].
pub(crate) fn dead_letter_record(
    dlq: &str,
    poison: &DeserializationError,
) -> ProducerRecord<Option<Vec<u8>>, Option<Vec<u8>>> {
    let mut provenance: Headers = poison.headers.clone();
    provenance.insert(headers::TOPIC, poison.topic.as_bytes());
    provenance.insert(headers::PARTITION, poison.partition.to_string());
    provenance.insert(headers::OFFSET, poison.offset.to_string());
    provenance.insert(headers::EXCEPTION, error_class(poison));
    provenance.insert(headers::MESSAGE, poison.source.to_string());
    provenance.insert(headers::STACKTRACE, cause_chain(poison));
    let record =
        ProducerRecord::new(dlq, poison.key.clone(), poison.value.clone()).with_headers(provenance);
    match poison.timestamp {
        Some(timestamp) => record.with_timestamp(timestamp),
        None => record,
    }
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
    fn dead_letter_record_keeps_bytes_timestamp_and_headers_and_adds_provenance() {
        let record = dead_letter_record("plant01.dlq", &poison());
        assert_eq!(record.topic, "plant01.dlq");
        assert_eq!(record.key, None, "a null key stays null");
        assert_eq!(record.value, Some(vec![0xff, 0x00]));
        assert_eq!(record.timestamp, Some(1_700_000_000_000), "the original's");
        let h = &record.headers;
        assert_eq!(
            h.iter().next().map(|h| h.key.as_str()),
            Some("source"),
            "original headers first"
        );
        assert_eq!(h.last("__streams.errors.topic"), Some(&b"plant01"[..]));
        assert_eq!(h.last("__streams.errors.partition"), Some(&b"2"[..]));
        assert_eq!(h.last("__streams.errors.offset"), Some(&b"17"[..]));
        assert_eq!(
            h.last("__streams.errors.exception"),
            Some(&b"deserialization.value.expected_null"[..])
        );
        let message =
            String::from_utf8(h.last("__streams.errors.message").unwrap().to_vec()).unwrap();
        assert!(message.contains("must be null"), "{message}");
        let trace =
            String::from_utf8(h.last("__streams.errors.stacktrace").unwrap().to_vec()).unwrap();
        assert_eq!(
            trace,
            format!("deserialization.value.expected_null: {message}")
        );
        let names: Vec<&str> = h.iter().map(|h| h.key.as_str()).collect();
        assert_eq!(
            names,
            [
                "source",
                headers::TOPIC,
                headers::PARTITION,
                headers::OFFSET,
                headers::EXCEPTION,
                headers::MESSAGE,
                headers::STACKTRACE
            ],
            "one of each provenance header, no other"
        );
    }

    #[test]
    fn a_record_without_a_timestamp_is_stamped_when_sent() {
        let mut poison = poison();
        poison.timestamp = None;
        assert_eq!(dead_letter_record("plant01.dlq", &poison).timestamp, None);
    }

    #[test]
    fn the_stack_trace_header_lists_the_causes() {
        let mut poison = poison();
        poison.source = SerdeError::Custom(Box::new(Outer));
        let trace = cause_chain(&poison);
        let lines: Vec<&str> = trace.lines().collect();
        assert_eq!(
            lines,
            [
                "deserialization.value.custom: outer failure",
                "caused by: inner failure"
            ]
        );
    }

    /// An error with one cause, for the cause chain.
    #[derive(Debug)]
    struct Outer;

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("outer failure")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&Inner)
        }
    }

    #[derive(Debug)]
    struct Inner;

    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("inner failure")
        }
    }

    impl std::error::Error for Inner {}

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
