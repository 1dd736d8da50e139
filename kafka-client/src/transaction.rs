//! Transactions: exactly-once produce and consume-transform-produce.
//!
//! [`TransactionalProducer`] wraps a typed [`Producer`] with a `transactional.id`.
//! Its calls that block inside librdkafka (init, send offsets, commit, abort) run
//! on tokio's blocking pool. Errors are [`TransactionError`]s, classified by
//! what the caller must do next ([`TransactionErrorKind`]):
//!
//! | kind | meaning | do |
//! |---|---|---|
//! | `Retriable` | e.g. a timeout; the transaction is intact | call the same method again |
//! | `AbortRequired` | the transaction cannot commit | `abort()`, then start over with `begin()` |
//! | `Fatal` | fenced by a newer producer with the same id, or broken | drop this producer |
//! | `InvalidState` | a call out of order (e.g. `begin` twice) | fix the calling code |
//!
//! [`ConsumeTransformProduce`] runs the whole exactly-once read-process-write loop
//! (batch, transform, send, offsets, commit; abort and rewind on failure) over a
//! [`Consumer`](crate::Consumer) and a [`TransactionalProducer`].
//!
//! Consumers of transactional topics choose what they see with
//! [`ClientConfig::isolation_level`](crate::ClientConfig::isolation_level):
//! `ReadCommitted` hides records of aborted (and still open) transactions.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use kafka_client::transaction::TransactionalProducer;
//! use kafka_client::{ClientConfig, Consumer, ProducerRecord};
//!
//! let config = ClientConfig::new("localhost:9092");
//! let consumer: Consumer<String, i64> = Consumer::new(&config.clone().group_id("doublers"))?;
//! consumer.subscribe(&["numbers"])?;
//! let producer: TransactionalProducer<String, i64> =
//!     TransactionalProducer::new(&config, "doubler-1")?;
//! producer.init(Duration::from_secs(30)).await?;
//! loop {
//!     let record = consumer.recv().await?;
//!     producer.begin()?;
//!     producer.send(ProducerRecord::new("doubled", record.key.clone(), record.value * 2)).await?;
//!     let group = consumer.group_metadata().ok_or("no group metadata")?;
//!     producer
//!         .send_offsets_to_transaction(&[(record.topic_partition(), record.offset + 1)], group, Duration::from_secs(30))
//!         .await?;
//!     producer.commit(Duration::from_secs(30)).await?;
//! }
//! # }
//! ```

mod pipeline;

pub use pipeline::{ConsumeTransformProduce, PipelineError};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{Producer as _, ThreadedProducer};
use rdkafka::{Offset as RdOffset, TopicPartitionList};

use crate::config::ClientConfig;
use crate::context::{PartitionerAdapter, ProducerCallbacks};
use crate::error::{Error, SendError};
use crate::producer::Producer;
use crate::record::{ProducerRecord, RecordMetadata, TopicPartition};
use crate::serde::{DefaultSerde, Serializer};

/// What the caller must do after a failed transactional call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionErrorKind {
    /// Transient (e.g. a timeout): call the same method again.
    Retriable,
    /// The transaction cannot be committed: call `abort()`, then begin again.
    AbortRequired,
    /// The producer is unusable — fenced by a newer instance with the same
    /// `transactional.id`, or hit a fatal error: create a new producer.
    Fatal,
    /// The call is not valid in the producer's current state (a programming error).
    InvalidState,
}

impl fmt::Display for TransactionErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransactionErrorKind::Retriable => "retriable: call it again",
            TransactionErrorKind::AbortRequired => {
                "abort required: abort the transaction and start over"
            }
            TransactionErrorKind::Fatal => {
                "fatal: this producer is fenced or broken, create a new one"
            }
            TransactionErrorKind::InvalidState => "invalid in the producer's current state",
        })
    }
}

/// A failed transactional call.
#[derive(Debug, thiserror::Error)]
#[error("{operation} for transactional.id {transactional_id} failed ({kind}): {source}")]
pub struct TransactionError {
    /// The call, e.g. "commit transaction".
    pub operation: &'static str,
    /// The producer's `transactional.id`.
    pub transactional_id: String,
    /// What to do next.
    pub kind: TransactionErrorKind,
    /// The underlying error.
    #[source]
    pub source: Box<Error>,
}

impl TransactionError {
    fn new(operation: &'static str, transactional_id: &str, error: KafkaError) -> Self {
        let kind = classify(&error);
        TransactionError {
            operation,
            transactional_id: transactional_id.to_owned(),
            kind,
            source: Box::new(Error::kafka(
                operation,
                format!("transactional.id {transactional_id}"),
                error,
            )),
        }
    }

    /// True when calling the same method again may succeed.
    pub fn is_retriable(&self) -> bool {
        self.kind == TransactionErrorKind::Retriable
    }

    /// True when the transaction must be aborted.
    pub fn requires_abort(&self) -> bool {
        self.kind == TransactionErrorKind::AbortRequired
    }

    /// True when the producer is unusable (fenced or fatal).
    pub fn is_fatal(&self) -> bool {
        self.kind == TransactionErrorKind::Fatal
    }

    /// True when a newer producer with the same `transactional.id` fenced this one.
    pub fn is_fenced(&self) -> bool {
        matches!(
            self.source.code(),
            Some(
                RDKafkaErrorCode::Fenced
                    | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
            )
        )
    }

    /// The librdkafka error code.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        self.source.code()
    }
}

/// Classifies with librdkafka's own flags (`rd_kafka_error_is_fatal`,
/// `_txn_requires_abort`, `_is_retriable`).
fn classify(error: &KafkaError) -> TransactionErrorKind {
    match error {
        KafkaError::Transaction(e) if e.is_fatal() => TransactionErrorKind::Fatal,
        KafkaError::Transaction(e) if e.txn_requires_abort() => TransactionErrorKind::AbortRequired,
        KafkaError::Transaction(e) if e.is_retriable() => TransactionErrorKind::Retriable,
        KafkaError::Transaction(e) => match e.code() {
            RDKafkaErrorCode::Fatal
            | RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch => TransactionErrorKind::Fatal,
            _ => TransactionErrorKind::InvalidState,
        },
        other => match other.rdkafka_error_code() {
            Some(code) if crate::error::is_retriable_code(code) => TransactionErrorKind::Retriable,
            _ => TransactionErrorKind::AbortRequired,
        },
    }
}

type RdProducer = ThreadedProducer<ProducerCallbacks, PartitionerAdapter>;

/// Result with [`TransactionError`].
pub type TransactionResult<T> = std::result::Result<T, TransactionError>;

/// A typed producer with a `transactional.id`. Cheap to clone; clones share one
/// producer (and so one transaction).
pub struct TransactionalProducer<K, V> {
    producer: Producer<K, V>,
    transactional_id: Arc<str>,
}

impl<K, V> Clone for TransactionalProducer<K, V> {
    fn clone(&self) -> Self {
        TransactionalProducer {
            producer: self.producer.clone(),
            transactional_id: self.transactional_id.clone(),
        }
    }
}

impl<K: DefaultSerde + Sync, V: DefaultSerde + Sync> TransactionalProducer<K, V> {
    /// A transactional producer with the built-in serdes of `K` and `V`.
    pub fn new(config: &ClientConfig, transactional_id: &str) -> crate::Result<Self> {
        let producer = Producer::new(&transactional(config, transactional_id)?)?;
        Ok(TransactionalProducer {
            producer,
            transactional_id: transactional_id.into(),
        })
    }
}

fn transactional(config: &ClientConfig, transactional_id: &str) -> crate::Result<ClientConfig> {
    if transactional_id.is_empty() {
        return Err(Error::Config("transactional.id must not be empty".into()));
    }
    Ok(config
        .clone()
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true"))
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> TransactionalProducer<K, V> {
    /// A transactional producer with the given serializers.
    pub fn with_serializers(
        config: &ClientConfig,
        transactional_id: &str,
        key_serializer: impl Serializer<K> + 'static,
        value_serializer: impl Serializer<V> + 'static,
    ) -> crate::Result<Self> {
        let producer = Producer::with_serializers(
            &transactional(config, transactional_id)?,
            key_serializer,
            value_serializer,
        )?;
        Ok(TransactionalProducer {
            producer,
            transactional_id: transactional_id.into(),
        })
    }

    /// The `transactional.id`.
    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    /// The underlying producer (for `flush`, statistics, ...). Records sent through
    /// it between `begin` and `commit` are part of the transaction.
    pub fn producer(&self) -> &Producer<K, V> {
        &self.producer
    }

    async fn blocking<F>(&self, operation: &'static str, call: F) -> TransactionResult<()>
    where
        F: FnOnce(&RdProducer) -> rdkafka::error::KafkaResult<()> + Send + 'static,
    {
        let result = self
            .producer
            .run_blocking(operation, call)
            .await
            .map_err(|source| TransactionError {
                operation,
                transactional_id: self.transactional_id.to_string(),
                kind: TransactionErrorKind::Retriable,
                source: Box::new(source),
            })?;
        result.map_err(|e| TransactionError::new(operation, &self.transactional_id, e))
    }

    /// Registers the `transactional.id` with the cluster, fencing any older
    /// producer with the same id, and waits for its unfinished transactions to
    /// complete. Call once, before the first `begin`.
    pub async fn init(&self, timeout: Duration) -> TransactionResult<()> {
        self.blocking("init transactions", move |p| p.init_transactions(timeout))
            .await
    }

    /// Starts a transaction (local; does not block).
    pub fn begin(&self) -> TransactionResult<()> {
        self.producer
            .with_rd(|p| p.begin_transaction())
            .map_err(|e| TransactionError::new("begin transaction", &self.transactional_id, e))
    }

    /// Sends a record as part of the open transaction. A failed send means the
    /// transaction must be aborted.
    pub async fn send(
        &self,
        record: ProducerRecord<K, V>,
    ) -> std::result::Result<RecordMetadata, SendError<K, V>> {
        self.producer.send(record).await
    }

    /// Adds consumed offsets (each the next offset to read) to the transaction,
    /// committed for the consumer's group if and only if the transaction commits.
    /// `group` is [`Consumer::group_metadata`](crate::Consumer::group_metadata).
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[(TopicPartition, i64)],
        group: ConsumerGroupMetadata,
        timeout: Duration,
    ) -> TransactionResult<()> {
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        for (tp, offset) in offsets {
            tpl.add_partition_offset(&tp.topic, tp.partition, RdOffset::Offset(*offset))
                .map_err(|e| {
                    TransactionError::new("send offsets to transaction", &self.transactional_id, e)
                })?;
        }
        self.blocking("send offsets to transaction", move |p| {
            p.send_offsets_to_transaction(&tpl, &group, timeout)
        })
        .await
    }

    /// Commits the transaction: flushes its records, then commits them and its
    /// offsets atomically.
    pub async fn commit(&self, timeout: Duration) -> TransactionResult<()> {
        self.blocking("commit transaction", move |p| p.commit_transaction(timeout))
            .await
    }

    /// Aborts the transaction: its records are never visible to `read_committed`
    /// consumers and its offsets are not committed.
    pub async fn abort(&self, timeout: Duration) -> TransactionResult<()> {
        self.blocking("abort transaction", move |p| p.abort_transaction(timeout))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_transaction_errors_are_classified_by_code() {
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::RequestTimedOut);
        assert_eq!(classify(&timeout), TransactionErrorKind::Retriable);
        let refused = KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed);
        assert_eq!(classify(&refused), TransactionErrorKind::AbortRequired);
    }

    #[test]
    fn error_message_names_the_transactional_id_and_the_remedy() {
        let err = TransactionError::new(
            "commit transaction",
            "orders-1",
            KafkaError::MessageProduction(RDKafkaErrorCode::RequestTimedOut),
        );
        let text = err.to_string();
        assert!(
            text.contains("orders-1") && text.contains("retriable"),
            "{text}"
        );
        assert!(err.is_retriable() && !err.is_fatal() && !err.requires_abort());
    }

    #[test]
    fn empty_transactional_id_is_refused() {
        let err = transactional(&ClientConfig::new("b"), "").unwrap_err();
        assert!(err.to_string().contains("transactional.id"));
    }
}
