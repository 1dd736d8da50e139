//! The typed producer.
//!
//! [`Producer<K, V>`] serializes keys and values through the SDK's
//! [`Serializer`] traits and hands the bytes to librdkafka. `send` resolves once the
//! broker has acknowledged the record, with its [`RecordMetadata`]; a failed send
//! returns the record in the error, so nothing is lost.
//!
//! Defaults differ from librdkafka's where Kafka's Java client differs:
//! idempotence is on (`enable.idempotence=true`, so `acks=all`), and keyed records
//! are partitioned with murmur2 (`partitioner=murmur2_random`), so a key lands on
//! the same partition as with a Java producer.
//!
//! When librdkafka's local queue is full, `send` waits for deliveries to make room
//! (backpressure) instead of failing.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kafka_client::{ClientConfig, Producer, ProducerRecord};
//!
//! let producer: Producer<String, i64> = Producer::new(&ClientConfig::new("localhost:9092"))?;
//! let meta = producer
//!     .send(ProducerRecord::new("plant01", "sensor-1".to_string(), 42))
//!     .await?;
//! println!("written at {}-{}@{}", meta.topic, meta.partition, meta.offset);
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{Producer as _, ThreadedProducer};
use rdkafka::ClientConfig as RdClientConfig;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::config::ClientConfig;
use crate::context::{PartitionerAdapter, ProducerCallbacks, QueueSpace};
use crate::delivery::{BatchSender, Completion, DeliveryOutcome};
use crate::error::{Error, Result, SendError, SendErrorKind};
use crate::ffi::SharedProducerTopics;
use crate::record::{timestamp_parts, ProducerRecord, RecordMetadata};
use crate::serde::{DefaultSerde, MessageField, SerdeContext, SerdeError, Serializer};
use crate::topic_producer::OutgoingRecord;

/// How long [`flush_promptly`] lets rdkafka serve delivery reports between checks.
const FLUSH_SLICE: Duration = Duration::from_millis(1);

/// Flushes a librdkafka producer like rdkafka's `Producer::flush`, but returns as soon
/// as the last delivery report is served rather than at the end of a 100 ms slice.
///
/// rdkafka's `flush` serves delivery reports with `poll` calls of up to 100 ms, and
/// each one runs to its end even after the reports are in. So every flush with
/// anything in flight lasted at least 100 ms: a tenth of the time of a stream thread
/// committing every second. Blocking: call it off the async executor.
///
/// ```no_run
/// use std::time::Duration;
/// use kafka_client::rdkafka::producer::BaseProducer;
///
/// # fn demo(producer: &BaseProducer) -> kafka_client::rdkafka::error::KafkaResult<()> {
/// kafka_client::producer::flush_promptly(producer, Duration::from_secs(30))?;
/// # Ok(()) }
/// ```
pub fn flush_promptly<C, Part>(
    producer: &impl rdkafka::producer::Producer<C, Part>,
    timeout: Duration,
) -> KafkaResult<()>
where
    C: rdkafka::producer::ProducerContext<Part>,
    Part: rdkafka::producer::Partitioner,
{
    let deadline = Instant::now() + timeout;
    loop {
        let slice = FLUSH_SLICE.min(deadline.saturating_duration_since(Instant::now()));
        match producer.flush(slice) {
            Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut))
                if Instant::now() < deadline => {}
            done => return done,
        }
    }
}

/// Chooses the partition of a record, like Kafka's `Partitioner`.
///
/// Return `None` to fall back to the default: murmur2 of the key (Kafka's
/// `DefaultPartitioner`), or any available partition for a null key.
///
/// ```
/// use kafka_client::Partitioner;
/// /// Sends the "alarm" sensor to partition 0, hashes the rest as usual.
/// struct Alarms;
/// impl Partitioner for Alarms {
///     fn partition(&self, _topic: &str, key: Option<&[u8]>, _count: i32) -> Option<i32> {
///         (key == Some(b"alarm")).then_some(0)
///     }
/// }
/// ```
pub trait Partitioner: Send + Sync + 'static {
    /// The partition for a record with this serialized `key`, in
    /// `0..partition_count`, or `None` for the default.
    fn partition(&self, topic: &str, key: Option<&[u8]>, partition_count: i32) -> Option<i32>;
}

/// Kafka's default partition for a key: `toPositive(murmur2(key)) % partitions`.
/// `None` for a null key or an empty topic.
///
/// ```
/// // The same partition a Java producer picks for "foobar" on 4 partitions.
/// assert_eq!(kafka_client::default_partition(Some(b"foobar"), 4), Some(2));
/// ```
pub fn default_partition(key: Option<&[u8]>, partition_count: i32) -> Option<i32> {
    let key = key?;
    if partition_count <= 0 {
        return None;
    }
    let hash = murmur2::murmur2(key, murmur2::KAFKA_SEED) & 0x7fff_ffff;
    Some((hash % partition_count as u32) as i32)
}

/// Builds a [`Producer`] with explicit serializers or a custom partitioner.
pub struct ProducerBuilder<K, V> {
    config: ClientConfig,
    key_serializer: Option<Box<dyn Serializer<K>>>,
    value_serializer: Option<Box<dyn Serializer<V>>>,
    partitioner: Option<Arc<dyn Partitioner>>,
    trace_context: bool,
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> ProducerBuilder<K, V> {
    /// Uses `serializer` for keys.
    pub fn key_serializer(mut self, serializer: impl Serializer<K> + 'static) -> Self {
        self.key_serializer = Some(Box::new(serializer));
        self
    }

    /// Uses `serializer` for values.
    pub fn value_serializer(mut self, serializer: impl Serializer<V> + 'static) -> Self {
        self.value_serializer = Some(Box::new(serializer));
        self
    }

    /// Uses a custom partitioner (records with an explicit partition bypass it).
    pub fn partitioner(mut self, partitioner: impl Partitioner) -> Self {
        self.partitioner = Some(Arc::new(partitioner));
        self
    }

    /// Writes the current `tracing` span's W3C `traceparent` into each record's
    /// headers: for `send`, the span current when `send` is called (off by default;
    /// see [`crate::trace_context`]).
    pub fn trace_context(mut self, enabled: bool) -> Self {
        self.trace_context = enabled;
        self
    }

    /// Creates the producer. Fails if a serializer is missing or librdkafka
    /// rejects the configuration.
    pub fn build(self) -> Result<Producer<K, V>> {
        let key_serializer = self
            .key_serializer
            .ok_or_else(|| Error::Config("the producer has no key serializer".into()))?;
        let value_serializer = self
            .value_serializer
            .ok_or_else(|| Error::Config("the producer has no value serializer".into()))?;
        let producer = Producer::create(
            &self.config,
            key_serializer,
            value_serializer,
            self.partitioner,
        )?;
        producer
            .shared
            .trace_context
            .store(self.trace_context, Ordering::Relaxed);
        Ok(producer)
    }
}

type RdProducer = ThreadedProducer<ProducerCallbacks, PartitionerAdapter>;

/// A record sent with [`Producer::send_and_forget`] that librdkafka could not
/// deliver, as its bytes (see [`Producer::delivery_failures`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error("record to {topic}-{partition} not delivered: {error}")]
pub struct DeliveryFailure {
    /// Topic.
    pub topic: String,
    /// Partition (-1 when none was chosen).
    pub partition: i32,
    /// The serialized key.
    pub key: Option<Vec<u8>>,
    /// The serialized value.
    pub value: Option<Vec<u8>>,
    /// Why it was not delivered.
    pub error: KafkaError,
}

/// Longest wait before retrying a send refused for a full queue.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(5);

struct Shared<K, V> {
    /// The librdkafka producer, and its handle for each topic produced to (a lookup by
    /// name costs a copy of the name and a client-wide lock per record).
    client: SharedProducerTopics<RdProducer>,
    queue_space: Arc<QueueSpace>,
    key_serializer: Box<dyn Serializer<K>>,
    value_serializer: Box<dyn Serializer<V>>,
    trace_context: AtomicBool,
}

/// A typed Kafka producer. Cheap to clone; clones share one librdkafka producer.
pub struct Producer<K, V> {
    shared: Arc<Shared<K, V>>,
}

impl<K, V> Clone for Producer<K, V> {
    fn clone(&self) -> Self {
        Producer {
            shared: self.shared.clone(),
        }
    }
}

impl<K: DefaultSerde + Sync, V: DefaultSerde + Sync> Producer<K, V> {
    /// A producer with the built-in serdes of `K` and `V` (see [`DefaultSerde`]).
    pub fn new(config: &ClientConfig) -> Result<Self> {
        Producer::create(
            config,
            Box::new(K::default_serde()),
            Box::new(V::default_serde()),
            None,
        )
    }
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> Producer<K, V> {
    /// A producer with the given serializers.
    pub fn with_serializers(
        config: &ClientConfig,
        key_serializer: impl Serializer<K> + 'static,
        value_serializer: impl Serializer<V> + 'static,
    ) -> Result<Self> {
        Producer::create(
            config,
            Box::new(key_serializer),
            Box::new(value_serializer),
            None,
        )
    }

    /// A builder for serializers and a partitioner.
    pub fn builder(config: &ClientConfig) -> ProducerBuilder<K, V> {
        ProducerBuilder {
            config: config.clone(),
            key_serializer: None,
            value_serializer: None,
            partitioner: None,
            trace_context: false,
        }
    }

    fn create(
        config: &ClientConfig,
        key_serializer: Box<dyn Serializer<K>>,
        value_serializer: Box<dyn Serializer<V>>,
        partitioner: Option<Arc<dyn Partitioner>>,
    ) -> Result<Self> {
        config.validate()?;
        let mut config = config
            .clone()
            .with_default("enable.idempotence", "true")
            .with_default("partitioner", "murmur2_random");
        if partitioner.is_some() {
            // librdkafka only calls a custom partitioner for null keys without stickiness.
            config = config.set("sticky.partitioning.linger.ms", "0");
        }
        let rd_config: RdClientConfig = config.to_rdkafka();
        let queue_space = Arc::new(QueueSpace::default());
        let callbacks = ProducerCallbacks {
            queue_space: queue_space.clone(),
            partitioner: PartitionerAdapter::new(partitioner),
            stats: Default::default(),
            failures: Default::default(),
        };
        let producer: RdProducer = rd_config
            .create_with_context(callbacks)
            .map_err(|e| Error::kafka("creating the producer", "", e))?;
        Ok(Producer {
            shared: Arc::new(Shared {
                client: SharedProducerTopics::new(producer),
                queue_space,
                key_serializer,
                value_serializer,
                trace_context: AtomicBool::new(false),
            }),
        })
    }

    /// Sends `record`; the future resolves once the broker has acknowledged it.
    ///
    /// As with Kafka's `KafkaProducer.send`, the record is queued in librdkafka by
    /// this call when that needs no waiting, and the future only waits for the
    /// acknowledgement: dropping it does not unsend the record. When queueing has to
    /// wait (librdkafka's queue is full, or a serializer prepares asynchronously,
    /// such as registering a schema), the future does the rest when polled. Such a
    /// send can then land after later sends that did not wait: where the order of
    /// records matters, await each send in turn, or use [`Producer::send_batch`].
    ///
    /// On failure the error holds the record. Many sends can be in flight at once:
    /// keep several futures alive (`futures::stream::FuturesUnordered`,
    /// `buffer_unordered`) for throughput. The future does not borrow the producer,
    /// and keeps it alive until the acknowledgement.
    pub fn send(
        &self,
        mut record: ProducerRecord<K, V>,
    ) -> impl Future<Output = std::result::Result<RecordMetadata, SendError<K, V>>> + Send + 'static
    {
        if self.shared.trace_context.load(Ordering::Relaxed) {
            crate::trace_context::inject_current(&mut record.headers);
        }
        let span = tracing::debug_span!(
            "kafka.send",
            topic = %record.topic,
            partition = tracing::field::Empty,
            offset = tracing::field::Empty
        );
        // Not instrumented at all: entering and leaving even a disabled span costs a
        // measurable share of a send.
        let span = (!span.is_disabled()).then_some(span);
        // Common case first, at once: serializers without async preparation and room
        // in librdkafka's queue. The record's bytes are still in the CPU's cache
        // here; the future may first be polled thousands of sends later.
        let (tx, rx) = oneshot::channel::<DeliveryOutcome>();
        let completion = Completion::One(Box::new(tx));
        let enqueued = match &span {
            Some(span) => span.in_scope(|| self.try_enqueue(&record, completion)),
            None => self.try_enqueue(&record, completion),
        };
        let state = match enqueued {
            Ok(()) => SendState::Enqueued(record, rx),
            Err(_) => {
                let producer = self.clone();
                let general = async move { producer.send_inner(record).await };
                SendState::General(match &span {
                    Some(span) => Box::pin(general.instrument(span.clone())),
                    None => Box::pin(general),
                })
            }
        };
        SendFuture {
            span,
            state,
            _producer: self.clone(),
        }
    }

    /// Serializes and enqueues `record` without waiting, with `completion` for its
    /// delivery report; gives the completion back when that needs waiting (a
    /// serializer's async preparation, a full queue) or failed, which the general
    /// path then handles and reports.
    fn try_enqueue(
        &self,
        record: &ProducerRecord<K, V>,
        completion: Completion,
    ) -> std::result::Result<(), Completion> {
        let shared = &self.shared;
        let key_ctx = SerdeContext::new(&record.topic, MessageField::Key, &record.headers);
        let value_ctx = SerdeContext::new(&record.topic, MessageField::Value, &record.headers);
        if shared
            .key_serializer
            .prepare(&record.key, &key_ctx)
            .is_some()
            || shared
                .value_serializer
                .prepare(&record.value, &value_ctx)
                .is_some()
        {
            return Err(completion);
        }
        let Ok(key) = shared
            .key_serializer
            .serialize_borrowed(&record.key, &key_ctx)
        else {
            return Err(completion);
        };
        let Ok(value) = shared
            .value_serializer
            .serialize_borrowed(&record.value, &value_ctx)
        else {
            return Err(completion);
        };
        let outgoing = outgoing(record, key.as_deref(), value.as_deref());
        shared
            .client
            .produce(&outgoing, completion)
            .map_err(|(_, completion)| completion)
    }

    /// The result of a send from its delivery report.
    #[allow(clippy::result_large_err)] // SendError hands the unsent record back
    fn reported(
        record: ProducerRecord<K, V>,
        report: std::result::Result<DeliveryOutcome, oneshot::error::RecvError>,
    ) -> std::result::Result<RecordMetadata, SendError<K, V>> {
        // No report: the producer was torn down before it.
        match report.unwrap_or(Err(KafkaError::Canceled)) {
            Ok((partition, offset, timestamp)) => Ok(RecordMetadata {
                topic: record.topic,
                partition,
                offset,
                timestamp: timestamp_parts(timestamp).0,
            }),
            Err(e) => Err(SendError {
                record,
                kind: SendErrorKind::Kafka(e),
            }),
        }
    }

    async fn send_inner(
        &self,
        record: ProducerRecord<K, V>,
    ) -> std::result::Result<RecordMetadata, SendError<K, V>> {
        let (key, value) = match self.serialize(&record).await {
            Ok(bytes) => bytes,
            Err(e) => {
                return Err(SendError {
                    record,
                    kind: SendErrorKind::Serialization(e),
                })
            }
        };
        let (tx, rx) = oneshot::channel::<DeliveryOutcome>();
        let enqueued = self
            .enqueue(
                &record,
                key.as_deref(),
                value.as_deref(),
                Completion::One(Box::new(tx)),
            )
            .await;
        match enqueued {
            Ok(()) => Self::reported(record, rx.await),
            Err(e) => Err(SendError {
                record,
                kind: SendErrorKind::Kafka(e),
            }),
        }
    }

    /// Hands one serialized record to librdkafka, waiting while its queue is full.
    async fn enqueue(
        &self,
        record: &ProducerRecord<K, V>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        mut completion: Completion,
    ) -> std::result::Result<(), KafkaError> {
        let outgoing = outgoing(record, key, value);
        let mut waiter = None;
        loop {
            match self.shared.client.produce(&outgoing, completion) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    completion = back;
                    match waiter.take() {
                        // Register, then retry once before waiting: a delivery in
                        // between has already made room.
                        None => waiter = Some(self.shared.queue_space.waiter()),
                        Some(registered) => {
                            tracing::trace!("producer queue full, waiting for deliveries");
                            // librdkafka releases a batch's queue slots only after all
                            // of its delivery reports ran, so the last wake-up can come
                            // before the room exists: retry after a short while too.
                            let _ = tokio::time::timeout(QUEUE_FULL_RETRY, registered.wait()).await;
                        }
                    }
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Sends `record` without waiting for the broker: returns once librdkafka has
    /// queued it (waiting while its queue is full, as [`Producer::send`] does). No
    /// future, wake-up or allocation per record waits for the delivery report, so
    /// this is the fastest way to send. A record that is then not delivered is logged
    /// and reported on [`Producer::delivery_failures`]; [`Producer::flush`] waits
    /// until every queued record is delivered or failed.
    ///
    /// Fails with the record when it cannot be serialized or queued.
    ///
    /// ```no_run
    /// # async fn demo(producer: kafka_client::Producer<String, String>) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use kafka_client::ProducerRecord;
    /// let mut failures = producer.delivery_failures();
    /// for i in 0..1000 {
    ///     let record = ProducerRecord::new("plant01", format!("sensor-{i}"), "21.5".to_string());
    ///     producer.send_and_forget(record).await?;
    /// }
    /// producer.flush(Duration::from_secs(30)).await?;
    /// while let Ok(failure) = failures.try_recv() {
    ///     eprintln!("{failure}");
    /// }
    /// # Ok(()) }
    /// ```
    // SendError is large on purpose: it hands the unsent record back.
    #[allow(clippy::result_large_err)]
    pub async fn send_and_forget(
        &self,
        mut record: ProducerRecord<K, V>,
    ) -> std::result::Result<(), SendError<K, V>> {
        if self.shared.trace_context.load(Ordering::Relaxed) {
            crate::trace_context::inject_current(&mut record.headers);
        }
        if self.try_enqueue(&record, Completion::Nobody).is_ok() {
            return Ok(());
        }
        // Boxed, so that the common case above keeps this future small.
        Box::pin(self.forget_in_general(record)).await
    }

    /// [`Producer::send_and_forget`] when serializing or enqueueing needs waiting.
    #[allow(clippy::result_large_err)] // SendError hands the unsent record back
    async fn forget_in_general(
        &self,
        record: ProducerRecord<K, V>,
    ) -> std::result::Result<(), SendError<K, V>> {
        let enqueued = match self.serialize(&record).await {
            Ok((key, value)) => self
                .enqueue(
                    &record,
                    key.as_deref(),
                    value.as_deref(),
                    Completion::Nobody,
                )
                .await
                .map_err(SendErrorKind::Kafka),
            Err(e) => Err(SendErrorKind::Serialization(e)),
        };
        enqueued.map_err(|kind| SendError { record, kind })
    }

    /// A channel of the records sent with [`Producer::send_and_forget`] that were not
    /// delivered, from now on. Each call replaces the previous channel. Failures are
    /// logged whether or not anyone listens.
    pub fn delivery_failures(&self) -> mpsc::UnboundedReceiver<DeliveryFailure> {
        let (tx, rx) = mpsc::unbounded_channel();
        let context = self.shared.client.producer().context();
        let mut failures = match context.failures.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *failures = Some(tx);
        rx
    }

    /// Sends many records and waits until the broker has acknowledged (or
    /// refused) all of them. Results come back in the order of `records`; each
    /// failure holds its record.
    ///
    /// Cheaper per record than many concurrent [`Producer::send`] futures: the
    /// batch shares one completion (one allocation, no per-record future or
    /// reference count), and its task is woken once, when the last report arrives.
    /// Backpressure is the same: enqueueing waits while librdkafka's queue is full.
    ///
    /// ```no_run
    /// # async fn demo(producer: kafka_client::Producer<String, String>) {
    /// use kafka_client::ProducerRecord;
    /// let records = (0..1000)
    ///     .map(|i| ProducerRecord::new("plant01", format!("sensor-{i}"), "21.5".to_string()))
    ///     .collect();
    /// for result in producer.send_batch(records).await {
    ///     if let Err(failed) = result {
    ///         eprintln!("not sent: {failed}");
    ///     }
    /// }
    /// # }
    /// ```
    // SendError is large on purpose: it hands the unsent record back.
    #[allow(clippy::result_large_err)]
    pub async fn send_batch(
        &self,
        mut records: Vec<ProducerRecord<K, V>>,
    ) -> Vec<std::result::Result<RecordMetadata, SendError<K, V>>> {
        let span = tracing::debug_span!("kafka.send_batch", records = records.len());
        async {
            let trace = self.shared.trace_context.load(Ordering::Relaxed);
            let mut batch = BatchSender::new(records.len());
            let mut local_errors: Vec<Option<SendErrorKind>> = Vec::with_capacity(records.len());
            for record in records.iter_mut() {
                if trace {
                    crate::trace_context::inject_current(&mut record.headers);
                }
                // Common case first, synchronously; the general path when that needs
                // waiting or failed.
                let error = match self.try_enqueue(record, batch.ticket()) {
                    Ok(()) => None,
                    Err(ticket) => match self.serialize(record).await {
                        Ok((key, value)) => self
                            .enqueue(record, key.as_deref(), value.as_deref(), ticket)
                            .await
                            .err()
                            .map(SendErrorKind::Kafka),
                        Err(e) => Some(SendErrorKind::Serialization(e)),
                    },
                };
                match error {
                    None => batch.sent(),
                    Some(_) => batch.unsent(),
                }
                local_errors.push(error);
            }
            let outcomes = batch.finish().await;
            records
                .into_iter()
                .zip(local_errors)
                .zip(outcomes)
                .map(|((record, local), outcome)| match (local, outcome) {
                    (Some(kind), _) => Err(SendError { record, kind }),
                    (None, Some(Ok((partition, offset, timestamp)))) => Ok(RecordMetadata {
                        topic: record.topic,
                        partition,
                        offset,
                        timestamp: timestamp_parts(timestamp).0,
                    }),
                    (None, Some(Err(e))) => Err(SendError {
                        record,
                        kind: SendErrorKind::Kafka(e),
                    }),
                    // No report although enqueued: the producer was torn down.
                    (None, None) => Err(SendError {
                        record,
                        kind: SendErrorKind::Kafka(KafkaError::Canceled),
                    }),
                })
                .collect()
        }
        .instrument(span)
        .await
    }

    /// Runs the serializers' async preparation, then serializes without copying
    /// where the serde allows it.
    async fn serialize<'r>(
        &self,
        record: &'r ProducerRecord<K, V>,
    ) -> std::result::Result<(Option<Cow<'r, [u8]>>, Option<Cow<'r, [u8]>>), SerdeError> {
        let key_ctx = SerdeContext::new(&record.topic, MessageField::Key, &record.headers);
        let value_ctx = SerdeContext::new(&record.topic, MessageField::Value, &record.headers);
        if let Some(prepare) = self.shared.key_serializer.prepare(&record.key, &key_ctx) {
            prepare.await?;
        }
        if let Some(prepare) = self
            .shared
            .value_serializer
            .prepare(&record.value, &value_ctx)
        {
            prepare.await?;
        }
        let key = self
            .shared
            .key_serializer
            .serialize_borrowed(&record.key, &key_ctx)?;
        let value = self
            .shared
            .value_serializer
            .serialize_borrowed(&record.value, &value_ctx)?;
        Ok((key, value))
    }

    /// Waits until every queued record is delivered or failed, up to `timeout`.
    /// Runs off the async executor.
    pub async fn flush(&self, timeout: Duration) -> Result<()> {
        let shared = self.shared.clone();
        let span = tracing::debug_span!("kafka.flush");
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| flush_promptly(shared.client.producer(), timeout))
        })
        .await
        .map_err(|e| Error::background("flush", e))?
        .map_err(|e| Error::kafka("flush", "", e))
    }

    /// Runs a call on the librdkafka producer on tokio's blocking pool (for the
    /// transactional calls, which block).
    pub(crate) async fn run_blocking<T, F>(&self, operation: &'static str, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&RdProducer) -> T + Send + 'static,
    {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || call(shared.client.producer()))
            .await
            .map_err(|e| Error::background(operation, e))
    }

    /// Runs a non-blocking call on the librdkafka producer.
    pub(crate) fn with_rd<T>(&self, call: impl FnOnce(&RdProducer) -> T) -> T {
        call(self.shared.client.producer())
    }

    /// Records queued or in flight.
    pub fn in_flight_count(&self) -> i32 {
        self.shared.client.producer().in_flight_count()
    }

    /// The latest statistics snapshot, updated every `statistics.interval.ms`
    /// (see [`crate::stats`]).
    pub fn statistics(&self) -> crate::stats::StatsReceiver {
        self.shared.client.producer().context().stats.subscribe()
    }
}

/// The future of [`Producer::send`]: the record's delivery report, or the rest of a
/// send that had to wait. Hand-written to stay small, as thousands are in flight at
/// once: the `async fn` it replaces was five times the record's size.
struct SendFuture<K, V> {
    /// `None` when tracing is off for `kafka.send`.
    span: Option<tracing::Span>,
    state: SendState<K, V>,
    /// Keeps librdkafka's producer, which delivers the report, alive until then.
    _producer: Producer<K, V>,
}

type SendResult<K, V> = std::result::Result<RecordMetadata, SendError<K, V>>;

enum SendState<K, V> {
    /// Enqueued; waiting for its delivery report.
    Enqueued(ProducerRecord<K, V>, oneshot::Receiver<DeliveryOutcome>),
    /// Serializing or enqueueing had to wait (a serializer's async preparation, a
    /// full queue): the general path, run when polled.
    General(Pin<Box<dyn Future<Output = SendResult<K, V>> + Send>>),
    /// Finished.
    Done,
}

// Nothing in a `SendFuture` is pinned in place: the general path's future is pinned
// on the heap, and the record and the receiver are only moved, or polled through
// `Pin::new`.
impl<K, V> Unpin for SendFuture<K, V> {}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> Future for SendFuture<K, V> {
    type Output = SendResult<K, V>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = match std::mem::replace(&mut this.state, SendState::Done) {
            SendState::Enqueued(record, mut report) => {
                let Poll::Ready(report) = Pin::new(&mut report).poll(cx) else {
                    this.state = SendState::Enqueued(record, report);
                    return Poll::Pending;
                };
                Producer::reported(record, report)
            }
            SendState::General(mut general) => {
                let Poll::Ready(result) = general.as_mut().poll(cx) else {
                    this.state = SendState::General(general);
                    return Poll::Pending;
                };
                result
            }
            // The `Future` contract allows a panic here, as an `async fn` does.
            SendState::Done => panic!("`Producer::send` future polled after completion"),
        };
        if let (Some(span), Ok(meta)) = (&this.span, &result) {
            span.record("partition", meta.partition);
            span.record("offset", meta.offset);
        }
        Poll::Ready(result)
    }
}

/// The record as librdkafka takes it: borrowed, with its serialized key and value.
fn outgoing<'a, K, V>(
    record: &'a ProducerRecord<K, V>,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
) -> OutgoingRecord<'a> {
    OutgoingRecord {
        topic: &record.topic,
        partition: record.partition,
        key,
        value,
        timestamp: record.timestamp,
        headers: &record.headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::BaseRecord;

    #[test]
    fn default_partition_matches_java_murmur2() {
        // Hashes from Kafka's UtilsTest.testMurmur2 (Java's Utils.murmur2).
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (key, java_hash) in cases {
            assert_eq!(
                murmur2::murmur2(key, murmur2::KAFKA_SEED) as i32,
                java_hash,
                "{}",
                String::from_utf8_lossy(key)
            );
            let expected = (java_hash & 0x7fff_ffff) % 7;
            assert_eq!(default_partition(Some(key), 7), Some(expected));
        }
        assert_eq!(default_partition(None, 7), None);
        assert_eq!(default_partition(Some(b"x"), 0), None);
    }

    /// Counts acknowledged deliveries.
    struct Acked(Arc<std::sync::atomic::AtomicUsize>);

    impl rdkafka::ClientContext for Acked {}

    impl rdkafka::producer::ProducerContext for Acked {
        type DeliveryOpaque = ();
        fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
            if result.is_ok() {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn counting_producer(
        bootstrap: &str,
    ) -> (
        rdkafka::producer::BaseProducer<Acked>,
        Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let producer = RdClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("message.timeout.ms", "5000")
            .create_with_context(Acked(acked.clone()))
            .expect("producer");
        (producer, acked)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn send_queues_the_record_when_called_as_kafka_producers_do() {
        let cluster = crate::dev::EmbeddedCluster::start(1).expect("mock cluster");
        cluster.create_topic("eager", 1).expect("topic");
        let producer: Producer<String, String> =
            Producer::new(&cluster.client_config()).expect("producer");
        let first = producer.send(ProducerRecord::new("eager", "a".into(), "1".into()));
        // Queued before the future is polled; dropping a future does not unsend.
        assert_eq!(producer.in_flight_count(), 1);
        let dropped = producer.send(ProducerRecord::new("eager", "b".into(), "2".into()));
        drop(dropped);
        let third = producer.send(ProducerRecord::new("eager", "c".into(), "3".into()));
        // The futures hold the producer: they resolve after the handle is gone.
        drop(producer);
        let first = first.await.expect("first delivered");
        let third = third.await.expect("third delivered");
        assert_eq!((first.offset, third.offset), (0, 2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn send_and_forget_delivers_through_topic_handles_of_every_topic() {
        let cluster = crate::dev::EmbeddedCluster::start(1).expect("mock cluster");
        cluster.create_topic("forgotten-a", 2).expect("topic");
        cluster.create_topic("forgotten-b", 1).expect("topic");
        let producer: Producer<String, String> =
            Producer::new(&cluster.client_config()).expect("producer");
        let mut failures = producer.delivery_failures();
        for i in 0..40 {
            let topic = if i % 4 == 0 {
                "forgotten-b"
            } else {
                "forgotten-a"
            };
            let record = ProducerRecord::new(topic, format!("k{i}"), format!("v{i}"))
                .with_header("seq", i.to_string());
            producer.send_and_forget(record).await.expect("queued");
        }
        producer
            .flush(Duration::from_secs(30))
            .await
            .expect("flush");
        assert_eq!(producer.in_flight_count(), 0);
        assert!(failures.try_recv().is_err(), "nothing failed");
        // The same producer's awaited sends land after them, on the same handles.
        let meta = producer
            .send(ProducerRecord::new("forgotten-b", "k".into(), "v".into()))
            .await
            .expect("sent");
        assert_eq!((meta.topic.as_str(), meta.offset), ("forgotten-b", 10));
        let a = producer
            .send(ProducerRecord::new("forgotten-a", "k".into(), "v".into()).with_partition(1))
            .await
            .expect("sent");
        assert_eq!(a.partition, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn send_and_forget_reports_undelivered_records_and_hands_back_unqueued_ones() {
        // Nothing listens on port 1: the record times out in librdkafka's queue.
        let config = ClientConfig::new("127.0.0.1:1")
            .set("message.timeout.ms", "200")
            .set("enable.idempotence", "false");
        let producer: Producer<String, String> = Producer::new(&config).expect("producer");
        let mut failures = producer.delivery_failures();
        producer
            .send_and_forget(ProducerRecord::new("nowhere", "k1".into(), "v1".into()))
            .await
            .expect("queued");
        let failure = tokio::time::timeout(Duration::from_secs(30), failures.recv())
            .await
            .expect("reported within 30 s")
            .expect("a failure");
        assert_eq!(failure.topic, "nowhere");
        assert_eq!(failure.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(failure.value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(
            failure.error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::MessageTimedOut),
            "{failure}"
        );
        // A topic name librdkafka refuses is not queued: the record comes back.
        let refused = producer
            .send_and_forget(ProducerRecord::new("bad\0name", "k2".into(), "v2".into()))
            .await
            .expect_err("refused");
        assert_eq!(refused.record.key, "k2");
        assert!(
            matches!(refused.kind, SendErrorKind::Kafka(KafkaError::Nul(_))),
            "{refused}"
        );
    }

    #[test]
    fn flush_promptly_waits_for_every_delivery_report() {
        let cluster = crate::dev::EmbeddedCluster::start(1).expect("mock cluster");
        cluster.create_topic("flushed", 1).expect("topic");
        let (producer, acked) = counting_producer(&cluster.bootstrap_servers());
        for i in 0..500u32 {
            producer
                .send(BaseRecord::<(), [u8]>::to("flushed").payload(&i.to_be_bytes()[..]))
                .map_err(|(e, _)| e)
                .expect("send");
        }
        flush_promptly(&producer, Duration::from_secs(30)).expect("flush");
        assert_eq!(acked.load(Ordering::Relaxed), 500, "every report served");
        assert_eq!(producer.in_flight_count(), 0);
    }

    #[test]
    fn flush_promptly_times_out_when_nothing_can_be_delivered() {
        // Nothing listens on port 1: the record stays queued.
        let (producer, acked) = counting_producer("127.0.0.1:1");
        producer
            .send(BaseRecord::<(), [u8]>::to("nowhere").payload(&b"x"[..]))
            .map_err(|(e, _)| e)
            .expect("send");
        let result = flush_promptly(&producer, Duration::from_millis(200));
        assert!(
            matches!(
                result,
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut))
            ),
            "{result:?}"
        );
        assert_eq!(acked.load(Ordering::Relaxed), 0);
        assert_eq!(producer.in_flight_count(), 1);
    }
}
