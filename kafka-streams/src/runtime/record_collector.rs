//! [`RecordCollector`] (Kafka's `RecordCollector`): where a task's output goes.
//! Sinks, changelogs, dead-letter records and the metadata topic all send through it;
//! at commit it is flushed, and it reports the offsets its changelog records got
//! (for checkpoints).
//!
//! [`KafkaCollector`] is the stream thread's, over one librdkafka producer; the test
//! driver has an in-memory one.
//!
//! Under exactly-once the producer is transactional (Kafka's `StreamsProducer`): the
//! first record after a commit opens a transaction, and the commit path ends it with
//! [`RecordCollector::commit_transaction`] (the input offsets go in with
//! `send_offsets_to_transaction`). These calls block inside librdkafka; they run on the
//! stream thread, a plain OS thread, never on an async executor.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_client::internal::{OutgoingRecord, TopicProducer};
use kafka_client::Headers;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::commit::{describe_offsets, partition_list, CommitOffsets};
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

    /// Whether output goes out in transactions (exactly-once): the commit path then
    /// commits through [`RecordCollector::commit_transaction`] instead of flushing and
    /// committing offsets through the consumer.
    fn is_transactional(&self) -> bool {
        false
    }

    /// Under exactly-once, commits the output sent since the last commit together with
    /// the input `offsets` (each the next offset to read), for the consumer group of
    /// `group`, in one transaction (opened here if no record opened it). Each offset
    /// carries its metadata (the task's processor metadata) into the transaction.
    fn commit_transaction(
        &mut self,
        offsets: &CommitOffsets,
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<()> {
        let _ = (offsets, group);
        Err(StreamsError::Internal(
            "commit_transaction on a collector that is not transactional".into(),
        ))
    }

    /// Under exactly-once, aborts the open transaction (if any): its records are never
    /// visible to `read_committed` readers and its offsets are not committed.
    fn abort_transaction(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The transactional side of a [`KafkaCollector`] under exactly-once.
struct Transactions {
    transactional_id: String,
    /// Whether a transaction is open (records were sent since the last commit).
    open: bool,
    /// Timeout of each blocking transactional call.
    timeout: Duration,
}

/// How long one `abort_transaction` call may wait before the delivery reports of the
/// purged records are served.
const ABORT_SLICE: Duration = Duration::from_millis(100);

/// Whether `error` means the producer was fenced or is otherwise unusable (Kafka's
/// `ProducerFencedException` / `InvalidProducerEpochException`, librdkafka's fatal
/// errors): a newer producer with the same `transactional.id` exists.
fn is_fatal_producer_error(error: &KafkaError) -> bool {
    if let KafkaError::Transaction(e) = error {
        if e.is_fatal() {
            return true;
        }
    }
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
        )
    )
}

/// Whether a send failed because of the transaction, not the record: the producer
/// is fenced or broken, or the transaction hit an error and must be aborted
/// (librdkafka then refuses records with `_STATE`).
fn is_transaction_send_error(error: &KafkaError) -> bool {
    is_fatal_producer_error(error) || error.rdkafka_error_code() == Some(RDKafkaErrorCode::State)
}

fn is_retriable_transaction_error(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(e) if e.is_retriable() && !e.is_fatal() && !e.txn_requires_abort())
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
    /// `Some` under exactly-once.
    transactions: Option<Transactions>,
}

impl KafkaCollector {
    /// A collector over a producer made from `config`; transactional when `config`
    /// has a `transactional.id` (then call [`KafkaCollector::init_transactions`]
    /// before the first send).
    pub fn new(
        config: &rdkafka::ClientConfig,
        handler: Arc<dyn ProductionExceptionHandler>,
        metrics: Arc<StreamsMetrics>,
    ) -> Result<Self> {
        let context = CollectorContext::default();
        let producer = config
            .create_with_context(context.clone())
            .map_err(|e| StreamsError::kafka("creating the stream thread's producer", "", e))?;
        let transactions = config.get("transactional.id").map(|id| Transactions {
            transactional_id: id.to_owned(),
            open: false,
            timeout: Duration::from_secs(60),
        });
        Ok(KafkaCollector {
            producer: TopicProducer::new(producer),
            context,
            handler,
            metrics,
            flush_timeout: Duration::from_secs(60),
            transactions,
        })
    }

    /// Under exactly-once: registers the `transactional.id` with the cluster, fencing
    /// any older producer with the same id and aborting its open transaction (a
    /// crashed instance's, after a restart). Blocks the calling (stream) thread.
    pub fn init_transactions(&mut self) -> Result<()> {
        let Some(tx) = &self.transactions else {
            return Ok(());
        };
        let deadline = Instant::now() + tx.timeout;
        loop {
            match self.producer.producer().init_transactions(tx.timeout) {
                Ok(()) => return Ok(()),
                Err(e) if is_retriable_transaction_error(&e) && Instant::now() < deadline => {
                    tracing::debug!(transactional_id = %tx.transactional_id, error = %e, "initializing transactions: retrying");
                }
                Err(e) => return Err(transaction_error(tx, "initializing transactions", e)),
            }
        }
    }

    /// The error a failed transactional call becomes.
    fn fail(&self, operation: &str, error: KafkaError) -> StreamsError {
        match &self.transactions {
            Some(tx) => transaction_error(tx, operation, error),
            None => StreamsError::kafka(operation, "", error),
        }
    }

    /// Opens a transaction if none is open (exactly-once only).
    fn begin_if_needed(&mut self) -> Result<()> {
        let Some(tx) = &mut self.transactions else {
            return Ok(());
        };
        if tx.open {
            return Ok(());
        }
        if let Err(e) = self.producer.producer().begin_transaction() {
            return Err(self.fail("beginning a transaction", e));
        }
        if let Some(tx) = &mut self.transactions {
            tx.open = true;
        }
        Ok(())
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
            if self.transactions.is_some() && is_fatal_producer_error(&f.error) {
                let error = f.error.clone();
                return Err(self.fail(
                    &format!("delivering to {} partition {}", f.topic, f.partition),
                    error,
                ));
            }
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
        self.begin_if_needed()?;
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
                Err((error, _))
                    if self.transactions.is_some() && is_transaction_send_error(&error) =>
                {
                    return Err(self.fail(&format!("sending to {}", record.topic), error));
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

    fn is_transactional(&self) -> bool {
        self.transactions.is_some()
    }

    fn commit_transaction(
        &mut self,
        offsets: &CommitOffsets,
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<()> {
        let Some(tx) = &self.transactions else {
            return Err(StreamsError::Internal(
                "commit_transaction on a producer without transactional.id".into(),
            ));
        };
        if !tx.open && offsets.is_empty() {
            return Ok(());
        }
        let timeout = tx.timeout;
        self.begin_if_needed()?;
        if !offsets.is_empty() {
            let Some(group) = group else {
                return Err(StreamsError::Internal(
                    "committing offsets in a transaction without the consumer's group metadata"
                        .into(),
                ));
            };
            let tpl = partition_list(offsets)
                .map_err(|e| self.fail("building the transaction's offsets", e))?;
            let target = describe_offsets(offsets);
            self.retrying(timeout, |p| {
                p.send_offsets_to_transaction(&tpl, group, timeout)
            })
            .map_err(|e| self.fail(&format!("sending offsets {target} to the transaction"), e))?;
        }
        // Commit flushes the transaction's records first; a failed delivery makes it
        // fail (abort required).
        self.retrying(timeout, |p| p.commit_transaction(timeout))
            .map_err(|e| self.fail("committing the transaction", e))?;
        if let Some(tx) = &mut self.transactions {
            tx.open = false;
        }
        self.check_failures()
    }

    fn abort_transaction(&mut self) -> Result<()> {
        let Some(tx) = &self.transactions else {
            return Ok(());
        };
        if !tx.open {
            return Ok(());
        }
        let deadline = Instant::now() + tx.timeout;
        // Aborting purges the unsent records, whose delivery reports must be served
        // for it to finish: it is called in short slices with polls in between.
        let aborted = loop {
            self.producer.producer().poll(Duration::ZERO);
            match self.producer.producer().abort_transaction(ABORT_SLICE) {
                Err(e) if is_retriable_transaction_error(&e) && Instant::now() < deadline => {}
                other => break other,
            }
        };
        // The failures were those of the aborted records.
        self.context
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        aborted.map_err(|e| self.fail("aborting the transaction", e))?;
        if let Some(tx) = &mut self.transactions {
            tx.open = false;
        }
        Ok(())
    }
}

impl KafkaCollector {
    /// Runs a transactional `call`, again while librdkafka says it is retriable (a
    /// timeout), for at most `timeout` in all.
    fn retrying(
        &self,
        timeout: Duration,
        call: impl Fn(
            &rdkafka::producer::BaseProducer<CollectorContext>,
        ) -> rdkafka::error::KafkaResult<()>,
    ) -> rdkafka::error::KafkaResult<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match call(self.producer.producer()) {
                Err(e) if is_retriable_transaction_error(&e) && Instant::now() < deadline => {
                    tracing::debug!(error = %e, "transactional call: retrying");
                }
                other => return other,
            }
        }
    }
}

/// A failed transactional call of the stream thread's producer.
fn transaction_error(tx: &Transactions, operation: &str, error: KafkaError) -> StreamsError {
    StreamsError::Transaction {
        transactional_id: tx.transactional_id.clone(),
        operation: operation.to_owned(),
        fenced: is_fatal_producer_error(&error),
        source: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_and_aborted_transactions_are_told_apart_from_bad_records() {
        let error = |code| KafkaError::MessageProduction(code);
        for fenced in [
            RDKafkaErrorCode::ProducerFenced,
            RDKafkaErrorCode::InvalidProducerEpoch,
            RDKafkaErrorCode::Fatal,
        ] {
            assert!(is_fatal_producer_error(&error(fenced)), "{fenced:?}");
            assert!(is_transaction_send_error(&error(fenced)), "{fenced:?}");
        }
        // The transaction must be aborted, the producer stays usable.
        let abortable = error(RDKafkaErrorCode::State);
        assert!(is_transaction_send_error(&abortable) && !is_fatal_producer_error(&abortable));
        // The record's own problem: the production handler decides.
        let too_large = error(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(!is_transaction_send_error(&too_large));
        let tx = Transactions {
            transactional_id: "app-p-1".into(),
            open: true,
            timeout: Duration::from_secs(1),
        };
        let fenced = transaction_error(
            &tx,
            "committing the transaction",
            error(RDKafkaErrorCode::ProducerFenced),
        );
        assert!(matches!(
            fenced,
            StreamsError::Transaction { fenced: true, .. }
        ));
        let text = fenced.to_string();
        assert!(
            text.contains("app-p-1") && text.contains("committing the transaction"),
            "{text}"
        );
    }
}
