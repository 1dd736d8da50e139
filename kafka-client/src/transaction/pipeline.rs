//! [`ConsumeTransformProduce`]: Kafka's exactly-once read-process-write loop over a
//! [`Consumer`] and a [`TransactionalProducer`], for services that do not use
//! kafka-streams.
//!
//! Each batch is one transaction: the records a transform makes of the consumed batch
//! are sent in it, and the consumed offsets are added to it with
//! `send_offsets_to_transaction` and the consumer's group metadata, so that the output
//! becomes visible to `read_committed` readers if and only if the input offsets are
//! committed. A batch that fails is aborted and the consumer is rewound to the batch's
//! first records, so the next call processes them again: nothing is lost, and nothing
//! of the failed attempt is visible.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{TransactionError, TransactionalProducer};
use crate::consumer::{Consumer, Offset};
use crate::error::{ConsumeError, Error};
use crate::record::{ConsumerRecord, ProducerRecord, TopicPartition};
use crate::serde::BoxError;

/// Why a batch of [`ConsumeTransformProduce::process_batch`] failed. Unless the
/// producer is unusable ([`PipelineError::is_fatal`]), the batch's transaction was
/// aborted and the consumer rewound: calling `process_batch` again retries the batch.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Receiving the batch failed (a poison record, or a broker error).
    #[error("receiving the batch failed: {0}")]
    Consume(#[from] ConsumeError),
    /// The transform returned an error for the record at `topic`/`partition`/`offset`.
    #[error(
        "the transform failed on topic {topic} partition {partition} offset {offset}: {source}"
    )]
    Transform {
        /// Topic of the input record.
        topic: String,
        /// Partition of the input record.
        partition: i32,
        /// Offset of the input record.
        offset: i64,
        /// The transform's error.
        #[source]
        source: BoxError,
    },
    /// An output record was not sent (serialization or delivery failed).
    #[error("sending an output record to topic {topic} failed: {reason}")]
    Send {
        /// The output topic.
        topic: String,
        /// What went wrong.
        reason: String,
    },
    /// A transactional call failed.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// The consumer has no group metadata (no `group.id`): offsets cannot go into a
    /// transaction.
    #[error("the consumer has no consumer group: set group.id")]
    NoGroup,
}

impl PipelineError {
    /// True when the producer is unusable (fenced by a newer instance with the same
    /// `transactional.id`, or a fatal error): create a new pipeline with a new
    /// producer.
    pub fn is_fatal(&self) -> bool {
        matches!(self, PipelineError::Transaction(e) if e.is_fatal())
    }
}

/// Exactly-once consume-transform-produce: receive a batch, transform each record
/// into output records, and commit the output and the consumed offsets in one
/// transaction.
///
/// The consumer needs a `group.id`, `enable.auto.commit=false` (offsets are committed
/// by the transaction only) and, if its input is written transactionally,
/// `isolation.level=read_committed`. The producer is initialized
/// (`init_transactions`) by [`ConsumeTransformProduce::new`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use kafka_client::config::IsolationLevel;
/// use kafka_client::transaction::{ConsumeTransformProduce, TransactionalProducer};
/// use kafka_client::{ClientConfig, Consumer, ProducerRecord};
///
/// let config = ClientConfig::new("localhost:9092");
/// let consumer: Consumer<String, String> = Consumer::new(
///     &config
///         .clone()
///         .group_id("shouters")
///         .set("enable.auto.commit", "false")
///         .isolation_level(IsolationLevel::ReadCommitted),
/// )?;
/// consumer.subscribe(&["words"])?;
/// let producer: TransactionalProducer<String, String> =
///     TransactionalProducer::new(&config, "shouter-1")?;
/// let pipeline = ConsumeTransformProduce::new(consumer, producer).await?;
/// loop {
///     let result = pipeline
///         .process_batch(|record| {
///             Ok::<_, std::convert::Infallible>(vec![ProducerRecord::new(
///                 "shouted",
///                 record.key.clone(),
///                 record.value.to_uppercase(),
///             )])
///         })
///         .await;
///     match result {
///         Ok(_) => {}
///         // Fenced by a newer instance: stop.
///         Err(e) if e.is_fatal() => return Err(e.into()),
///         // Aborted and rewound: the next call retries the batch.
///         Err(e) => eprintln!("batch aborted: {e}"),
///     }
/// }
/// # }
/// ```
pub struct ConsumeTransformProduce<KI, VI, KO, VO> {
    consumer: Consumer<KI, VI>,
    producer: TransactionalProducer<KO, VO>,
    max_batch_records: usize,
    linger: Duration,
    poll_timeout: Duration,
    timeout: Duration,
}

impl<KI, VI, KO, VO> ConsumeTransformProduce<KI, VI, KO, VO>
where
    KI: Send + Sync + 'static,
    VI: Send + Sync + 'static,
    KO: Send + Sync + 'static,
    VO: Send + Sync + 'static,
{
    /// A pipeline from `consumer` (subscribed or assigned by the caller) to
    /// `producer`, whose transactions it initializes (fencing older producers with
    /// the same `transactional.id`). Batches default to at most 500 records, gathered
    /// for at most 100 ms after the first one; transactional calls time out after 30 s.
    pub async fn new(
        consumer: Consumer<KI, VI>,
        producer: TransactionalProducer<KO, VO>,
    ) -> Result<Self, PipelineError> {
        let pipeline = ConsumeTransformProduce {
            consumer,
            producer,
            max_batch_records: 500,
            linger: Duration::from_millis(100),
            poll_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
        };
        pipeline.producer.init(pipeline.timeout).await?;
        Ok(pipeline)
    }

    /// At most this many records per batch (default 500).
    pub fn max_batch_records(mut self, records: usize) -> Self {
        self.max_batch_records = records.max(1);
        self
    }

    /// How long a batch keeps gathering records after its first one (default 100 ms).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// How long [`ConsumeTransformProduce::process_batch`] waits for a first record
    /// before returning `Ok(0)` (default 1 s).
    pub fn poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// The consumer.
    pub fn consumer(&self) -> &Consumer<KI, VI> {
        &self.consumer
    }

    /// The producer.
    pub fn producer(&self) -> &TransactionalProducer<KO, VO> {
        &self.producer
    }

    /// The consumer and the producer back (e.g. to close the consumer).
    pub fn into_parts(self) -> (Consumer<KI, VI>, TransactionalProducer<KO, VO>) {
        (self.consumer, self.producer)
    }

    /// Processes one batch in one transaction: receives records (waiting up to the
    /// poll timeout for the first), hands each to `transform`, sends what it returns,
    /// adds the consumed offsets, and commits. Returns how many input records the
    /// committed transaction covers (`0`: nothing arrived, nothing was done).
    ///
    /// On failure the transaction is aborted (unless the producer is fenced or
    /// broken, [`PipelineError::is_fatal`]) and the consumer rewound to the batch's
    /// first record of each partition, so the next call processes the batch again.
    pub async fn process_batch<F, E>(&self, mut transform: F) -> Result<usize, PipelineError>
    where
        F: FnMut(&ConsumerRecord<KI, VI>) -> Result<Vec<ProducerRecord<KO, VO>>, E>,
        E: Into<BoxError>,
    {
        // The first offset of the batch per partition, where a rewind goes back to.
        let mut first: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        let result = self.run_batch(&mut transform, &mut first, &mut next).await;
        match result {
            Ok(records) => Ok(records),
            Err(error) => {
                self.abort_and_rewind(&error, &first).await;
                Err(error)
            }
        }
    }

    async fn run_batch<F, E>(
        &self,
        transform: &mut F,
        first: &mut BTreeMap<TopicPartition, i64>,
        next: &mut BTreeMap<TopicPartition, i64>,
    ) -> Result<usize, PipelineError>
    where
        F: FnMut(&ConsumerRecord<KI, VI>) -> Result<Vec<ProducerRecord<KO, VO>>, E>,
        E: Into<BoxError>,
    {
        let Ok(received) = tokio::time::timeout(self.poll_timeout, self.consumer.recv()).await
        else {
            return Ok(0);
        };
        // Each record is noted as it arrives, so that a failure while gathering the
        // rest rewinds to it too.
        let mut note = |record: &ConsumerRecord<KI, VI>| {
            let tp = record.topic_partition();
            first.entry(tp.clone()).or_insert(record.offset);
            next.insert(tp, record.offset + 1);
        };
        let record = received?;
        note(&record);
        let mut batch = vec![record];
        let deadline = Instant::now() + self.linger;
        while batch.len() < self.max_batch_records {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.consumer.recv()).await {
                Ok(record) => {
                    let record = record?;
                    note(&record);
                    batch.push(record);
                }
                Err(_) => break,
            }
        }
        self.producer.begin()?;
        let mut outputs = Vec::new();
        for record in &batch {
            let made = transform(record).map_err(|e| PipelineError::Transform {
                topic: record.topic.clone(),
                partition: record.partition,
                offset: record.offset,
                source: e.into(),
            })?;
            outputs.extend(made);
        }
        // Sent together; the commit below waits for their delivery anyway.
        for sent in self.producer.producer().send_batch(outputs).await {
            if let Err(e) = sent {
                return Err(PipelineError::Send {
                    topic: e.record.topic.clone(),
                    reason: e.kind.to_string(),
                });
            }
        }
        let group = self
            .consumer
            .group_metadata()
            .ok_or(PipelineError::NoGroup)?;
        let offsets: Vec<(TopicPartition, i64)> =
            next.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
        self.producer
            .send_offsets_to_transaction(&offsets, group, self.timeout)
            .await?;
        self.producer.commit(self.timeout).await?;
        Ok(batch.len())
    }

    /// After a failed batch: aborts its transaction (if one is open and the producer
    /// is usable) and rewinds the consumer to the batch's first records.
    async fn abort_and_rewind(&self, error: &PipelineError, first: &BTreeMap<TopicPartition, i64>) {
        if !error.is_fatal() {
            if let Err(abort) = self.producer.abort(self.timeout).await {
                // No transaction was open (the batch failed before `begin`), or the
                // producer broke meanwhile: the next call reports it.
                tracing::debug!(error = %abort, "aborting the failed batch's transaction");
            }
        }
        for (tp, offset) in first {
            if let Err(seek) = self.consumer.seek(tp, Offset::At(*offset)).await {
                // A partition revoked meanwhile: its new owner starts from the
                // committed offset, which the aborted transaction did not move.
                tracing::warn!(partition = %tp, offset, error = %seek, "cannot rewind the consumer after an aborted batch");
            }
        }
    }
}

impl From<Error> for PipelineError {
    fn from(error: Error) -> Self {
        PipelineError::Consume(ConsumeError::Kafka(error))
    }
}
