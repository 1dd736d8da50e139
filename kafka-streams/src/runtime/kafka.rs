//! The Kafka side of a stream thread: a record collector over librdkafka's producer
//! and an offset committer over its consumer. Bytes in, bytes out; typed records exist
//! only inside tasks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_client::internal::FetchedMessage;
use kafka_client::internal::{OutgoingRecord, TopicProducer};
use kafka_client::{Headers, TopicPartition};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::collector::{OffsetCommitter, RecordCollector};
use super::handlers::{HandlerResponse, ProductionErrorContext, ProductionExceptionHandler};
use super::metrics::StreamsMetrics;
use crate::error::{RecordOrigin, Result, StreamsError};
use crate::processor::RecordMetadata;
use crate::topology::codec::{EncodedRecord, RawRecord};

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
                        origin: origin.map(RecordOrigin::from),
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
                            origin: origin.map(|o| Box::new(RecordOrigin::from(o))),
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

/// Commits offsets synchronously through a consumer (on the stream thread, never
/// on an async executor).
pub(crate) struct KafkaCommitter<'a, C: ConsumerContext + 'static> {
    pub consumer: &'a BaseConsumer<C>,
}

impl<C: ConsumerContext + 'static> OffsetCommitter for KafkaCommitter<'_, C> {
    fn commit(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        for (tp, offset) in offsets {
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                .map_err(|e| StreamsError::kafka("building the commit", tp.to_string(), e))?;
        }
        self.consumer.commit(&tpl, CommitMode::Sync).map_err(|e| {
            let target = offsets
                .iter()
                .map(|(tp, o)| format!("{tp}@{o}"))
                .collect::<Vec<_>>()
                .join(", ");
            StreamsError::kafka("committing offsets", target, e)
        })
    }
}
