//! [`RecordDeserializer`] (Kafka's `RecordDeserializer`): turns a consumed record's
//! bytes ([`RawRecord`]) into a typed record through its source node's codec, and
//! sends the records that cannot be decoded through the deserialization exception
//! handler (fail, skip, or dead-letter).
//!
//! Also here: the views of librdkafka's messages as [`RawRecord`]s, and the
//! [`Blocker`] that runs a serde's asynchronous `prepare` hook from task code.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use kafka_client::internal::FetchedMessage;
use kafka_client::serde::{PrepareFuture, SerdeError};
use kafka_client::Headers;
use rdkafka::message::{BorrowedMessage, Headers as _, Message};

use super::handlers::{
    ConsumedBytes, DeserializationResponse, ErrorContext, DLQ_HEADER_APPLICATION,
    DLQ_HEADER_EXCEPTION, DLQ_HEADER_MESSAGE, DLQ_HEADER_OFFSET, DLQ_HEADER_PARTITION,
    DLQ_HEADER_TOPIC,
};
use super::record_collector::{EncodedRecord, RecordCollector};
use super::task::TaskEnv;
use crate::error::{Result, StreamsError};
use crate::processor::internal::ErasedRecord;
use crate::processor::{RecordMetadata, TaskId};
use crate::topology::codec::{PrepareRunner, SourceBytes, SourceCodec};

/// A consumed record, as bytes borrowed from the consumer's buffers (decoded once,
/// copied only when it has to be kept, e.g. for a dead-letter topic).
#[derive(Debug, Clone)]
pub(crate) struct RawRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Broker timestamp, `-1` when absent.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Headers,
}

impl RawRecord<'_> {
    fn source_bytes(&self) -> SourceBytes<'_> {
        SourceBytes {
            topic: self.topic,
            key: self.key,
            value: self.value,
            headers: &self.headers,
            timestamp: self.timestamp,
        }
    }
}

/// A view of a consumed message as a [`RawRecord`] (no copy of key or value).
pub(crate) fn raw_record<'a>(msg: &'a BorrowedMessage<'_>) -> RawRecord<'a> {
    let headers = match msg.headers() {
        Some(h) => h
            .iter()
            .map(|h| kafka_client::Header {
                key: h.key.to_owned(),
                value: h.value.map(<[u8]>::to_vec),
            })
            .collect(),
        None => Headers::new(),
    };
    RawRecord {
        topic: msg.topic(),
        partition: msg.partition(),
        offset: msg.offset(),
        timestamp: msg.timestamp().to_millis().unwrap_or(-1),
        key: msg.key(),
        value: msg.payload(),
        headers,
    }
}

/// A view of a message read from a fetch queue as a [`RawRecord`] (no copy of key
/// or value).
pub(crate) fn fetched_record<'a>(msg: &FetchedMessage<'a>) -> RawRecord<'a> {
    RawRecord {
        topic: msg.topic(),
        partition: msg.partition(),
        offset: msg.offset(),
        timestamp: msg.timestamp().unwrap_or(-1),
        key: msg.key(),
        value: msg.payload(),
        headers: msg.headers(),
    }
}

/// Runs a serde's asynchronous `prepare` hook to completion from synchronous task
/// code: on a stream thread through the tokio handle, in the test driver with
/// `futures::executor`.
#[derive(Clone, Debug, Default)]
pub(crate) enum Blocker {
    /// `futures::executor::block_on`.
    #[default]
    Futures,
    /// `Handle::block_on` of the application's tokio runtime (stream threads are
    /// plain threads, outside the runtime, so this is allowed).
    Tokio(tokio::runtime::Handle),
}

impl Blocker {
    /// Waits for `future` on this blocker's executor.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        match self {
            Blocker::Futures => futures::executor::block_on(future),
            Blocker::Tokio(handle) => handle.block_on(future),
        }
    }
}

impl PrepareRunner for Blocker {
    fn run(&self, future: PrepareFuture<'_>) -> std::result::Result<(), SerdeError> {
        self.block_on(future)
    }
}

/// Decodes the records of one input partition for its source node.
pub(crate) struct RecordDeserializer {
    codec: Arc<dyn SourceCodec>,
    /// The source node's name, for error reports.
    source_node: String,
}

impl RecordDeserializer {
    /// A deserializer for source node `source_node`.
    pub fn new(codec: Arc<dyn SourceCodec>, source_node: String) -> Self {
        RecordDeserializer { codec, source_node }
    }

    /// The typed record of `raw`, its timestamp from the timestamp extractor given the
    /// partition time. `None` when the record is skipped: an invalid (negative)
    /// timestamp, or a decoding failure the handler said to continue past or sent to
    /// the dead-letter topic (through `collector`).
    pub fn deserialize(
        &self,
        raw: &RawRecord<'_>,
        partition_time: i64,
        task: TaskId,
        env: &TaskEnv,
        collector: &mut dyn RecordCollector,
    ) -> Result<Option<ErasedRecord>> {
        match self
            .codec
            .decode(raw.source_bytes(), partition_time, &env.blocker)
        {
            Ok(r) if r.timestamp >= 0 => Ok(Some(r)),
            Ok(r) => {
                tracing::warn!(
                    task = %task, topic = %raw.topic, partition = raw.partition, offset = raw.offset,
                    timestamp = r.timestamp,
                    "record has an invalid (negative) timestamp; skipping it"
                );
                env.metrics.skipped();
                Ok(None)
            }
            Err(err) => {
                let context = ErrorContext {
                    task,
                    node: self.source_node.clone(),
                    topic: Some(raw.topic.to_owned()),
                    partition: Some(raw.partition),
                    offset: Some(raw.offset),
                };
                let bytes = ConsumedBytes {
                    key: raw.key.map(<[u8]>::to_vec),
                    value: raw.value.map(<[u8]>::to_vec),
                    headers: raw.headers.clone(),
                    timestamp: raw.timestamp,
                };
                match env
                    .config
                    .deserialization_handler
                    .handle(&context, &bytes, &err.source)
                {
                    DeserializationResponse::Fail => Err(StreamsError::Deserialization {
                        topic: raw.topic.to_owned(),
                        partition: raw.partition,
                        offset: raw.offset,
                        field: err.field.to_string(),
                        source: err.source,
                    }),
                    DeserializationResponse::Continue => {
                        env.metrics.skipped();
                        Ok(None)
                    }
                    DeserializationResponse::DeadLetter { topic } => {
                        let mut headers = raw.headers.clone();
                        headers.insert(DLQ_HEADER_TOPIC, raw.topic.as_bytes());
                        headers.insert(DLQ_HEADER_PARTITION, raw.partition.to_string());
                        headers.insert(DLQ_HEADER_OFFSET, raw.offset.to_string());
                        headers.insert(DLQ_HEADER_EXCEPTION, "DeserializationException");
                        headers.insert(
                            DLQ_HEADER_MESSAGE,
                            format!("{} deserialization failed: {}", err.field, err.source),
                        );
                        headers.insert(DLQ_HEADER_APPLICATION, env.application_id.as_bytes());
                        let origin = RecordMetadata {
                            topic: raw.topic.to_owned(),
                            partition: raw.partition,
                            offset: raw.offset,
                        };
                        collector.send(
                            EncodedRecord {
                                topic: Cow::Owned(topic),
                                partition: None,
                                key: raw.key.map(Cow::Borrowed),
                                value: raw.value.map(Cow::Borrowed),
                                timestamp: raw.timestamp.max(0),
                                headers: Cow::Owned(headers),
                            },
                            "",
                            Some(&origin),
                        )?;
                        env.metrics.dead_lettered();
                        Ok(None)
                    }
                }
            }
        }
    }
}
