//! The byte boundary of a topology: source nodes decode consumed bytes into typed
//! (then erased) records, sink nodes encode them back, both through kafka-client's
//! `Serializer` / `Deserializer` traits, the SDK's only codec path.
//!
//! Only neutral types cross it: borrowed bytes in ([`SourceBytes`]), borrowed bytes
//! out ([`SinkBytes`]), and a [`PrepareRunner`] the runtime implements to run a
//! serde's asynchronous `prepare` hook (the topology knows no executor).

use std::borrow::Cow;
use std::sync::Arc;

use kafka_client::serde::{
    Deserializer, MessageField, PrepareFuture, SerdeContext, SerdeError, Serializer,
};
use kafka_client::Headers;

use crate::processor::internal::ErasedRecord;
use crate::processor::{Data, Record};

/// Runs a serde's asynchronous `prepare` hook to completion from synchronous task
/// code. The runtime provides it (a stream thread blocks on the application's async
/// runtime).
pub(crate) trait PrepareRunner {
    /// Waits for `future`.
    fn run(&self, future: PrepareFuture<'_>) -> Result<(), SerdeError>;
}

fn prepare(
    runner: &dyn PrepareRunner,
    future: Option<PrepareFuture<'_>>,
) -> Result<(), SerdeError> {
    match future {
        Some(f) => runner.run(f),
        None => Ok(()),
    }
}

/// The bytes of a consumed record a source decodes, borrowed from the consumer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceBytes<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a Headers,
    /// Broker timestamp, `-1` when absent.
    pub timestamp: i64,
}

/// Why a consumed record could not become a typed record.
#[derive(Debug)]
pub(crate) struct DecodeError {
    pub field: MessageField,
    pub source: SerdeError,
}

/// Decodes consumed records for one source node.
pub(crate) trait SourceCodec: Send + Sync {
    /// The typed record, with the timestamp from the timestamp extractor.
    fn decode(
        &self,
        raw: SourceBytes<'_>,
        partition_time: i64,
        prepare: &dyn PrepareRunner,
    ) -> Result<ErasedRecord, DecodeError>;
}

/// Reads the event time of a record (Kafka's `TimestampExtractor`): from the key,
/// the value, the record's own timestamp (`record_timestamp`, `-1` if none) and the
/// largest timestamp seen so far on the partition (`partition_time`).
pub type TimestampExtractor<K, V> = Arc<dyn Fn(&K, &V, i64, i64) -> i64 + Send + Sync>;

pub(crate) struct TypedSource<K, V> {
    pub key: Arc<dyn Deserializer<K>>,
    pub value: Arc<dyn Deserializer<V>>,
    pub extractor: Option<TimestampExtractor<K, V>>,
}

impl<K: Data, V: Data> SourceCodec for TypedSource<K, V> {
    fn decode(
        &self,
        raw: SourceBytes<'_>,
        partition_time: i64,
        runner: &dyn PrepareRunner,
    ) -> Result<ErasedRecord, DecodeError> {
        let kctx = SerdeContext::new(raw.topic, MessageField::Key, raw.headers);
        let key_bytes = raw.key;
        let key = prepare(runner, self.key.prepare(key_bytes, &kctx))
            .and_then(|()| self.key.deserialize(key_bytes, &kctx))
            .map_err(|source| DecodeError {
                field: MessageField::Key,
                source,
            })?;
        let vctx = SerdeContext::new(raw.topic, MessageField::Value, raw.headers);
        let value_bytes = raw.value;
        let value = prepare(runner, self.value.prepare(value_bytes, &vctx))
            .and_then(|()| self.value.deserialize(value_bytes, &vctx))
            .map_err(|source| DecodeError {
                field: MessageField::Value,
                source,
            })?;
        let timestamp = match &self.extractor {
            Some(extract) => extract(&key, &value, raw.timestamp, partition_time),
            None => raw.timestamp,
        };
        Ok(ErasedRecord::from_record(
            Record::new(key, value, timestamp).with_headers(raw.headers.clone()),
        ))
    }
}

/// What a sink encodes: topic, key and value, borrowed from the record being
/// processed where the serializer allows it (no per-record copy on the way to the
/// producer, which copies them itself). Timestamp and headers are the record's own.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SinkBytes<'a> {
    pub topic: Cow<'a, str>,
    pub key: Option<Cow<'a, [u8]>>,
    pub value: Option<Cow<'a, [u8]>>,
}

/// Why a record could not be encoded.
#[derive(Debug)]
pub(crate) enum EncodeError {
    Serde { topic: String, source: SerdeError },
    Internal(String),
}

/// Encodes records for one sink node.
pub(crate) trait SinkCodec: Send + Sync {
    /// `topic` is the resolved fixed topic, `None` when the sink picks one per record.
    fn encode<'a>(
        &self,
        record: &'a ErasedRecord,
        topic: Option<&'a str>,
        prepare: &dyn PrepareRunner,
    ) -> Result<SinkBytes<'a>, EncodeError>;
}

/// Chooses the topic of each record (Kafka's `TopicNameExtractor`).
pub type TopicNameExtractor<K, V> = Arc<dyn Fn(&K, &V) -> String + Send + Sync>;

pub(crate) struct TypedSink<K, V> {
    pub key: Arc<dyn Serializer<K>>,
    pub value: Arc<dyn Serializer<V>>,
    pub extractor: Option<TopicNameExtractor<K, V>>,
}

impl<K: Data, V: Data> SinkCodec for TypedSink<K, V> {
    fn encode<'a>(
        &self,
        record: &'a ErasedRecord,
        topic: Option<&'a str>,
        runner: &dyn PrepareRunner,
    ) -> Result<SinkBytes<'a>, EncodeError> {
        let (key, value) = record.parts::<K, V>().map_err(EncodeError::Internal)?;
        let topic: Cow<'a, str> = match (topic, &self.extractor) {
            (Some(t), _) => Cow::Borrowed(t),
            (None, Some(extract)) => Cow::Owned(extract(key, value)),
            (None, None) => {
                return Err(EncodeError::Internal(
                    "sink has neither a topic nor a topic extractor".into(),
                ))
            }
        };
        let serde_err = |source| EncodeError::Serde {
            topic: topic.to_string(),
            source,
        };
        let kctx = SerdeContext::new(&topic, MessageField::Key, &record.headers);
        prepare(runner, self.key.prepare(key, &kctx)).map_err(serde_err)?;
        let key_bytes = self.key.serialize_borrowed(key, &kctx).map_err(serde_err)?;
        let vctx = SerdeContext::new(&topic, MessageField::Value, &record.headers);
        prepare(runner, self.value.prepare(value, &vctx)).map_err(serde_err)?;
        let value_bytes = self
            .value
            .serialize_borrowed(value, &vctx)
            .map_err(serde_err)?;
        Ok(SinkBytes {
            topic,
            key: key_bytes,
            value: value_bytes,
        })
    }
}
