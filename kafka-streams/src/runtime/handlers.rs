//! Error handlers: what happens to a record that cannot be deserialized, produced or
//! processed, and to a stream thread that fails (Kafka Streams' exception handlers).
//!
//! Every handler gets the record's context (task, node, topic, partition, offset), and
//! every decision is logged through `tracing` with that context, so no poison record
//! is ever lost silently: it fails the application, is counted and logged as skipped,
//! or lands in a dead-letter topic with provenance headers.

use std::fmt;

use kafka_client::serde::{BoxError, SerdeError};
use kafka_client::Headers;

use crate::error::StreamsError;
use crate::processor::TaskId;

/// Where a failing record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorContext {
    /// The task.
    pub task: TaskId,
    /// The node that failed (the source node for deserialization errors).
    pub node: String,
    /// Input topic (`None` in a punctuation).
    pub topic: Option<String>,
    /// Input partition.
    pub partition: Option<i32>,
    /// Input offset.
    pub offset: Option<i64>,
}

impl fmt::Display for ErrorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {} node {}", self.task, self.node)?;
        match (&self.topic, self.partition, self.offset) {
            (Some(t), Some(p), Some(o)) => write!(f, " topic {t} partition {p} offset {o}"),
            _ => write!(f, " (punctuation)"),
        }
    }
}

/// The bytes of a record that could not be deserialized.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumedBytes {
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Headers,
    /// Record timestamp (`-1` if none).
    pub timestamp: i64,
}

/// What to do with a record that cannot be deserialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeserializationResponse {
    /// Stop: the stream thread fails with an error naming topic, partition, offset.
    Fail,
    /// Skip the record (it is logged and counted in
    /// [`MetricsSnapshot::skipped_records`](crate::runtime::MetricsSnapshot)).
    Continue,
    /// Produce the record's original bytes to `topic` with provenance headers, then
    /// continue.
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
    },
}

/// What to do with a record that failed in a processor, or could not be produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerResponse {
    /// Stop: the stream thread fails.
    Fail,
    /// Skip the record (logged and counted).
    Continue,
}

/// Decides about records that cannot be deserialized (Kafka's
/// `DeserializationExceptionHandler`).
pub trait DeserializationExceptionHandler: Send + Sync {
    /// The decision for one record.
    fn handle(
        &self,
        context: &ErrorContext,
        record: &ConsumedBytes,
        error: &SerdeError,
    ) -> DeserializationResponse;
}

/// Fails the application (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAndFailExceptionHandler;

impl DeserializationExceptionHandler for LogAndFailExceptionHandler {
    fn handle(
        &self,
        context: &ErrorContext,
        _: &ConsumedBytes,
        error: &SerdeError,
    ) -> DeserializationResponse {
        tracing::error!(%context, %error, "deserialization failed; failing (log-and-fail)");
        DeserializationResponse::Fail
    }
}

/// Skips the record.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAndContinueExceptionHandler;

impl DeserializationExceptionHandler for LogAndContinueExceptionHandler {
    fn handle(
        &self,
        context: &ErrorContext,
        _: &ConsumedBytes,
        error: &SerdeError,
    ) -> DeserializationResponse {
        tracing::warn!(%context, %error, "deserialization failed; skipping the record (log-and-continue)");
        DeserializationResponse::Continue
    }
}

/// Sends the record to a dead-letter topic, with headers naming where it came from:
/// [`DLQ_HEADER_TOPIC`], [`DLQ_HEADER_PARTITION`], [`DLQ_HEADER_OFFSET`],
/// [`DLQ_HEADER_EXCEPTION`], [`DLQ_HEADER_MESSAGE`] (Kafka's KIP-1034 names).
#[derive(Debug, Clone)]
pub struct DeadLetterQueueExceptionHandler {
    topic: String,
}

impl DeadLetterQueueExceptionHandler {
    /// Dead-letters to `topic` (which must exist).
    pub fn new(topic: impl Into<String>) -> Self {
        DeadLetterQueueExceptionHandler {
            topic: topic.into(),
        }
    }
}

impl DeserializationExceptionHandler for DeadLetterQueueExceptionHandler {
    fn handle(
        &self,
        context: &ErrorContext,
        _: &ConsumedBytes,
        error: &SerdeError,
    ) -> DeserializationResponse {
        tracing::warn!(%context, %error, dlq = %self.topic, "deserialization failed; dead-lettering the record");
        DeserializationResponse::DeadLetter {
            topic: self.topic.clone(),
        }
    }
}

// The dead-letter headers: one set of names, kafka-client's (Kafka's KIP-1034 names),
// shared with the typed consumer's dead-letter policy.
pub use kafka_client::dlq::headers::{
    APPLICATION_ID as DLQ_HEADER_APPLICATION, EXCEPTION as DLQ_HEADER_EXCEPTION,
    MESSAGE as DLQ_HEADER_MESSAGE, OFFSET as DLQ_HEADER_OFFSET, PARTITION as DLQ_HEADER_PARTITION,
    TOPIC as DLQ_HEADER_TOPIC,
};

/// Decides about a record whose processing failed (Kafka's
/// `ProcessingExceptionHandler`).
pub trait ProcessingExceptionHandler: Send + Sync {
    /// The decision for one failure.
    fn handle(&self, context: &ErrorContext, error: &BoxError) -> HandlerResponse;
}

/// Fails the application (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAndFailProcessingExceptionHandler;

impl ProcessingExceptionHandler for LogAndFailProcessingExceptionHandler {
    fn handle(&self, context: &ErrorContext, error: &BoxError) -> HandlerResponse {
        tracing::error!(%context, %error, "processing failed; failing (log-and-fail)");
        HandlerResponse::Fail
    }
}

/// Skips the record.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAndContinueProcessingExceptionHandler;

impl ProcessingExceptionHandler for LogAndContinueProcessingExceptionHandler {
    fn handle(&self, context: &ErrorContext, error: &BoxError) -> HandlerResponse {
        tracing::warn!(%context, %error, "processing failed; skipping the record (log-and-continue)");
        HandlerResponse::Continue
    }
}

/// Where a record that could not be produced was going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductionErrorContext {
    /// Destination topic.
    pub topic: String,
    /// Sink node (empty for dead-letter records).
    pub node: String,
    /// The input record it derives from, when known.
    pub origin: Option<crate::common::RecordMetadata>,
}

/// Decides about a record that could not be serialized or produced (Kafka's
/// `ProductionExceptionHandler`).
pub trait ProductionExceptionHandler: Send + Sync {
    /// The decision for one failure; `error` says what went wrong.
    fn handle(&self, context: &ProductionErrorContext, error: &str) -> HandlerResponse;
}

/// Fails the application (the default, Kafka's `DefaultProductionExceptionHandler`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultProductionExceptionHandler;

impl ProductionExceptionHandler for DefaultProductionExceptionHandler {
    fn handle(&self, context: &ProductionErrorContext, error: &str) -> HandlerResponse {
        tracing::error!(topic = %context.topic, node = %context.node, origin = ?context.origin, %error, "production failed; failing");
        HandlerResponse::Fail
    }
}

/// Skips records that cannot be produced.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContinueProductionExceptionHandler;

impl ProductionExceptionHandler for ContinueProductionExceptionHandler {
    fn handle(&self, context: &ProductionErrorContext, error: &str) -> HandlerResponse {
        tracing::warn!(topic = %context.topic, node = %context.node, origin = ?context.origin, %error, "production failed; skipping the record");
        HandlerResponse::Continue
    }
}

/// What to do when a stream thread fails (Kafka's
/// `StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamThreadExceptionResponse {
    /// Start a new thread in place of the failed one (its tasks are re-assigned).
    ReplaceThread,
    /// Stop every thread; the client goes to `ERROR` (the default).
    ShutdownClient,
}

/// Decides what happens after a stream thread failed.
pub type UncaughtExceptionHandler =
    std::sync::Arc<dyn Fn(&StreamsError) -> StreamThreadExceptionResponse + Send + Sync>;
