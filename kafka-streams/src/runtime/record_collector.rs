//! [`RecordCollector`] (Kafka's `RecordCollector`): where a task's output goes.
//! Sinks, changelogs, dead-letter records and the metadata topic all send through it;
//! at commit it is flushed, and it reports the offsets its changelog records got
//! (for checkpoints).
//!
//! [`KafkaCollector`] is the stream thread's, over one librdkafka producer; the test
//! driver has an in-memory one.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_client::internal::{OutgoingRecord, TopicProducer};
use kafka_client::Headers;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::handlers::{HandlerResponse, ProductionErrorContext, ProductionExceptionHandler};
use super::metrics::StreamsMetrics;
use crate::error::{Result, StreamsError};
use crate::processor::RecordMetadata;

/// A record ready to produce. Sinks borrow topic, key, value and headers from the
/// record being processed where the serializer allows it (no per-record copy on the
/// way to librdkafka, which copies them itself); [`EncodedRecord::into_owned`] keeps
/// one (the test driver's output topics).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EncodedRecord<'a> {
    pub topic: Cow<'a, str>,
    /// Explicit partition (changelog records go to their task's partition); `None`
    /// lets the producer's partitioner choose by key.
    pub partition: Option<i32>,
    pub key: Option<Cow<'a, [u8]>>,
    pub value: Option<Cow<'a, [u8]>>,
    pub timestamp: i64,
    pub headers: Cow<'a, Headers>,
}

impl EncodedRecord<'_> {
    /// The same record, owning its parts.
    pub fn into_owned(self) -> EncodedRecord<'static> {
        EncodedRecord {
            topic: Cow::Owned(self.topic.into_owned()),
            partition: self.partition,
            key: self.key.map(|k| Cow::Owned(k.into_owned())),
            value: self.value.map(|v| Cow::Owned(v.into_owned())),
            timestamp: self.timestamp,
            headers: Cow::Owned(self.headers.into_owned()),
        }
    }
}

/// Sends a task's output records (Kafka's `RecordCollector`).
pub(crate) trait RecordCollector {
    /// Hands one record to the producer. An immediate failure goes through the
    /// production handler: `Ok` when it says continue. `origin` is the input record
    /// being processed, for error reports.
    fn send(
        &mut self,
        record: EncodedRecord<'_>,
        node: &str,
        origin: Option<&RecordMetadata>,
    ) -> Result<()>;

    /// Waits until every record sent so far is acknowledged; failed deliveries go
    /// through the production handler.
    fn flush(&mut self) -> Result<()>;

    /// The offset of the last record of `topic`/`partition` acknowledged so far (for
    /// changelog checkpoints); `None` when unknown.
    fn delivered_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        let _ = (topic, partition);
        None
    }
}

/// A delivery that failed, reported by librdkafka's callback.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryFailure {
    topic: String,
    partition: i32,
    error: KafkaError,
}

/// Producer callbacks: log lines to `tracing`, delivery failures to a list.
#[derive(Clone, Default)]
pub(crate) struct CollectorContext {
    failures: Arc<Mutex<Vec<DeliveryFailure>>>,
    /// Highest acknowledged offset per changelog topic and partition, for
    /// checkpoints. Keyed by topic first so a delivery looks it up by `&str`,
    /// without allocating.
    changelog_offsets: Arc<Mutex<HashMap<String, HashMap<i32, i64>>>>,
}

impl ClientContext for CollectorContext {}

impl ProducerContext for CollectorContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(msg) = result {
            if msg.topic().ends_with("-changelog") {
                let mut offsets = self
                    .changelog_offsets
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let topic = msg.topic();
                let partitions = match offsets.get_mut(topic) {
                    Some(partitions) => partitions,
                    None => offsets.entry(topic.to_owned()).or_default(),
                };
                let entry = partitions.entry(msg.partition()).or_insert(msg.offset());
                *entry = (*entry).max(msg.offset());
            }
        }
        if let Err((error, msg)) = result {
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(DeliveryFailure {
                    topic: msg.topic().to_owned(),
                    partition: msg.partition(),
                    error: error.clone(),
                });
        }
    }
}

/// Sends task output through a librdkafka producer (one per stream thread).
pub(crate) struct KafkaCollector {
    producer: TopicProducer<CollectorContext>,
    context: CollectorContext,
    handler: Arc<dyn ProductionExceptionHandler>,
    metrics: Arc<StreamsMetrics>,
    flush_timeout: Duration,
}

impl KafkaCollector {
    pub fn new(
        config: &rdkafka::ClientConfig,
        handler: Arc<dyn ProductionExceptionHandler>,
        metrics: Arc<StreamsMetrics>,
    ) -> Result<Self> {
        let context = CollectorContext::default();
        let producer = config
            .create_with_context(context.clone())
            .map_err(|e| StreamsError::kafka("creating the stream thread's producer", "", e))?;
        Ok(KafkaCollector {
            producer: TopicProducer::new(producer),
            context,
            handler,
            metrics,
            flush_timeout: Duration::from_secs(60),
        })
    }

    /// Serves delivery callbacks.
    pub fn poll(&self) {
        self.producer.producer().poll(Duration::ZERO);
    }

    fn check_failures(&mut self) -> Result<()> {
        let failures: Vec<DeliveryFailure> = std::mem::take(
            &mut *self
                .context
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for f in failures {
            let context = ProductionErrorContext {
                topic: f.topic.clone(),
                node: String::new(),
                origin: None,
            };
            let reason = format!("delivery to partition {} failed: {}", f.partition, f.error);
            match self.handler.handle(&context, &reason) {
                HandlerResponse::Continue => self.metrics.production_error_skipped(),
                HandlerResponse::Fail => {
                    return Err(StreamsError::Production {
                        topic: f.topic,
                        node: String::new(),
                        origin: None,
                        reason,
                        retriable: false,
                    })
                }
            }
        }
        Ok(())
    }
}

impl RecordCollector for KafkaCollector {
    fn delivered_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.context
            .changelog_offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .and_then(|partitions| partitions.get(&partition))
            .copied()
    }

    fn send(
        &mut self,
        record: EncodedRecord<'_>,
        node: &str,
        origin: Option<&RecordMetadata>,
    ) -> Result<()> {
        let outgoing = OutgoingRecord {
            topic: &record.topic,
            partition: record.partition,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            timestamp: Some(record.timestamp),
            headers: &record.headers,
        };
        loop {
            match self.producer.send(&outgoing, ()) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), ())) => {
                    // Back-pressure: let deliveries complete.
                    self.producer.producer().poll(Duration::from_millis(50));
                    self.check_failures()?;
                }
                Err((error, _)) => {
                    let context = ProductionErrorContext {
                        topic: record.topic.to_string(),
                        node: node.to_owned(),
                        origin: origin.cloned(),
                    };
                    let reason = error.to_string();
                    return match self.handler.handle(&context, &reason) {
                        HandlerResponse::Continue => {
                            self.metrics.production_error_skipped();
                            Ok(())
                        }
                        HandlerResponse::Fail => Err(StreamsError::Production {
                            topic: record.topic.to_string(),
                            node: node.to_owned(),
                            origin: origin.map(|o| Box::new(o.clone())),
                            reason,
                            retriable: false,
                        }),
                    };
                }
            }
        }
    }

    fn flush(&mut self) -> Result<()> {
        kafka_client::producer::flush_promptly(self.producer.producer(), self.flush_timeout)
            .map_err(|e| StreamsError::Production {
                topic: String::new(),
                node: String::new(),
                origin: None,
                reason: format!("flushing the producer: {e}"),
                retriable: true,
            })?;
        self.check_failures()
    }
}
