//! The typed consumer.
//!
//! [`Consumer<K, V>`] deserializes keys and values through the SDK's
//! [`Deserializer`] traits. It joins a group with [`Consumer::subscribe`] (names) or
//! [`Consumer::subscribe_pattern`] (a regex), or reads fixed partitions with
//! [`Consumer::assign`].
//!
//! Offsets are committed explicitly unless `enable.auto.commit=true` is set: every
//! commit is awaitable and runs off the async executor, because librdkafka's
//! synchronous commit blocks its calling thread. [`Consumer::recv_at_most_once`] and
//! [`Consumer::process_at_least_once`] package the two classic orders.
//!
//! [`Consumer::recv`] returns owned [`ConsumerRecord`]s. [`Consumer::recv_fetched`]
//! and [`Consumer::recv_batch`] return [`FetchedRecord`]s instead, which keep
//! librdkafka's message rather than copying it and parse headers only when asked:
//! the fastest way to read. Every way reads the same stream of records: the
//! assigned partitions' fetched messages are routed to a queue of the consumer's
//! own, read a batch per librdkafka call (`rd_kafka_consume_batch_queue`). `recv`
//! and `recv_fetched` read ahead that way and hand the records out one at a time.
//! A record's offset is stored for commits ([`Consumer::commit`], auto-commit,
//! close, revocation) only once it is handed out, never while it is read ahead;
//! records read ahead of a partition that is no longer assigned, paused or sought
//! are not handed out.
//!
//! A record that cannot be deserialized is a poison record: `recv` returns
//! [`ConsumeError::Deserialization`] with the topic, partition, offset and raw bytes,
//! and the next `recv` returns the following record.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kafka_client::{ClientConfig, Consumer, ConsumeError};
//!
//! let config = ClientConfig::new("localhost:9092").group_id("plant-readers");
//! let consumer: Consumer<String, i64> = Consumer::new(&config)?;
//! consumer.subscribe(&["plant01"])?;
//! loop {
//!     match consumer.recv().await {
//!         Ok(record) => {
//!             println!("{} = {}", record.key, record.value);
//!             consumer.commit_record(&record).await?;
//!         }
//!         Err(ConsumeError::Deserialization(poison)) => eprintln!("skipping {poison}"),
//!         Err(other) => return Err(other.into()),
//!     }
//! }
//! # }
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::Stream;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset as RdOffset, TopicPartitionList};
use tokio::sync::{mpsc, Notify};
use tracing::Instrument;

use crate::config::ClientConfig;
use crate::context::ConsumerCallbacks;
use crate::dlq::{DeadLetterPolicy, PoisonHandler, PoisonOutcome};
use crate::error::{ConsumeError, DeserializationError, Error, Result};
use crate::fetch_queue::FetchQueue;
use crate::fetched::{CopiedMessage, FetchedRecord, RawMessage};
use crate::record::{timestamp_parts, ConsumerRecord, Headers, TopicPartition};
use crate::serde::{DefaultSerde, Deserializer, MessageField, SerdeContext, SerdeError};

type RdConsumer = BaseConsumer<ConsumerCallbacks>;

/// Headers given to deserializers that do not read them.
static NO_HEADERS: Headers = Headers::new();

/// How often the reader routes the assigned partitions to its fetch queue again,
/// although the assignment did not change: librdkafka drops a partition's routing when
/// it stops fetching it, asynchronously, so a partition revoked and assigned again may
/// lose it just after it was renewed. Also the longest a waiting `recv` sleeps without
/// a wake-up.
const ROUTE_REFRESH: Duration = Duration::from_millis(100);

/// The reader polls the consumer's own queue (rebalances, errors, statistics) at
/// least once every this many reads while records keep coming.
const POLL_CONSUMER_EVERY: u32 = 64;

/// At most this many events are served per poll of the consumer's own queue, so that
/// an endless stream of them cannot starve the fetch queue.
const MAX_EVENTS_PER_POLL: usize = 1_000;

/// Most messages [`Consumer::recv_fetched`] reads ahead per librdkafka call (one
/// call per record costs a queue lock and clock reads each).
const READ_AHEAD: usize = 512;

/// How long blocking librdkafka requests (committed offsets, watermarks, seeks,
/// offsets for times) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A position in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The earliest offset still in the log.
    Beginning,
    /// The end of the log: only records written from now on.
    End,
    /// This exact offset.
    At(i64),
    /// The committed offset (or `auto.offset.reset` without one).
    Stored,
}

impl Offset {
    fn to_rdkafka(self) -> RdOffset {
        match self {
            Offset::Beginning => RdOffset::Beginning,
            Offset::End => RdOffset::End,
            Offset::At(o) => RdOffset::Offset(o),
            Offset::Stored => RdOffset::Stored,
        }
    }
}

/// A change of the partitions assigned to this consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// Partitions were assigned.
    Assigned(Vec<TopicPartition>),
    /// Partitions are being revoked cleanly: commit what was processed now.
    Revoked(Vec<TopicPartition>),
    /// Partitions were lost (session timeout): another member may own them already,
    /// so committing for them would fail.
    Lost(Vec<TopicPartition>),
    /// The rebalance failed.
    Error(String),
}

/// Synchronous rebalance callbacks, run on the thread that polls the consumer
/// before the rebalance completes (Kafka's `ConsumerRebalanceListener`). For
/// asynchronous handling use [`Consumer::rebalance_events`] instead.
pub trait RebalanceListener: Send + Sync + 'static {
    /// Partitions were assigned.
    fn on_assigned(&self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }
    /// Partitions are being revoked.
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }
    /// Partitions were lost.
    fn on_lost(&self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }
}

/// The lag of one partition: how far this consumer's position is behind the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: TopicPartition,
    /// The next offset this consumer will read, if known.
    pub position: Option<i64>,
    /// The partition's high watermark (offset of the next record to be written).
    pub high_watermark: i64,
    /// `high_watermark - position`; `None` while the position is unknown.
    pub lag: Option<i64>,
}

/// Why [`Consumer::process_at_least_once`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError<E> {
    /// No record could be read.
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    /// The handler failed; the record's offset was not committed.
    #[error("processing failed: {0}")]
    Handler(E),
    /// The handler succeeded but the commit failed.
    #[error(transparent)]
    Commit(Error),
}

/// Builds a [`Consumer`] with explicit deserializers or a rebalance listener.
pub struct ConsumerBuilder<K, V> {
    config: ClientConfig,
    key_deserializer: Option<Box<dyn Deserializer<K>>>,
    value_deserializer: Option<Box<dyn Deserializer<V>>>,
    listener: Option<Arc<dyn RebalanceListener>>,
    dead_letter: DeadLetterPolicy,
    trace_context: bool,
}

impl<K: Send + 'static, V: Send + 'static> ConsumerBuilder<K, V> {
    /// Uses `deserializer` for keys.
    pub fn key_deserializer(mut self, deserializer: impl Deserializer<K> + 'static) -> Self {
        self.key_deserializer = Some(Box::new(deserializer));
        self
    }

    /// Uses `deserializer` for values.
    pub fn value_deserializer(mut self, deserializer: impl Deserializer<V> + 'static) -> Self {
        self.value_deserializer = Some(Box::new(deserializer));
        self
    }

    /// Calls `listener` on every rebalance.
    pub fn rebalance_listener(mut self, listener: impl RebalanceListener) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// What `recv` does with poison records (default: return the error).
    pub fn dead_letter_policy(mut self, policy: DeadLetterPolicy) -> Self {
        self.dead_letter = policy;
        self
    }

    /// Makes [`Consumer::processing_span`] and [`Consumer::process_at_least_once`]
    /// continue the producer's trace from the record's W3C `traceparent` header
    /// (off by default; see [`crate::trace_context`]).
    pub fn trace_context(mut self, enabled: bool) -> Self {
        self.trace_context = enabled;
        self
    }

    /// Creates the consumer.
    pub fn build(self) -> Result<Consumer<K, V>> {
        let key = self
            .key_deserializer
            .ok_or_else(|| Error::Config("the consumer has no key deserializer".into()))?;
        let value = self
            .value_deserializer
            .ok_or_else(|| Error::Config("the consumer has no value deserializer".into()))?;
        let mut consumer = Consumer::create(&self.config, key, value, self.listener)?;
        consumer.poison = PoisonHandler::new(self.dead_letter, &self.config)?;
        consumer.trace_context = self.trace_context;
        Ok(consumer)
    }
}

/// A typed Kafka consumer.
pub struct Consumer<K, V> {
    // Before `inner`: it gives the partitions back to the consumer's own queue when
    // dropped.
    reader: Mutex<Reader>,
    inner: Arc<RdConsumer>,
    /// Woken by librdkafka when the fetch queue or the consumer's own queue gets
    /// something while a `recv` waits.
    wakeup: Arc<Notify>,
    key_deserializer: Box<dyn Deserializer<K>>,
    value_deserializer: Box<dyn Deserializer<V>>,
    key_reads_headers: bool,
    value_reads_headers: bool,
    poison: PoisonHandler,
    trace_context: bool,
}

/// Reads messages without blocking: the assigned partitions' messages from the fetch
/// queue they are routed to, and rebalances, errors and messages fetched before their
/// partition was routed from the consumer's own queue, first.
struct Reader {
    fetch: FetchQueue<ConsumerCallbacks>,
    routed_generation: u64,
    last_route: Instant,
    /// Set after routing: messages on the consumer's own queue were fetched before the
    /// routing, so that queue is read to its end before the fetch queue.
    drain_consumer_queue: bool,
    reads: u32,
    idle: bool,
    /// An error met while records were already read, returned by the next read.
    pending_error: Option<KafkaError>,
    /// Messages read ahead and not handed out yet, in the order `recv` returns them.
    /// Filled only when empty, so the consumer's own queue (rebalances) is polled
    /// only while nothing is held here.
    buffer: VecDeque<RawMessage>,
    /// The assignment generation when `buffer` was filled: when it changes, messages
    /// of partitions no longer assigned are dropped before any is handed out.
    buffer_generation: u64,
    /// Reused to fill `buffer`.
    scratch: Vec<RawMessage>,
    /// Whether the offset after each handed-out message is stored for commits (the
    /// user's `enable.auto.offset.store`). librdkafka's own automatic store is off:
    /// it would store the offsets of messages read ahead but not handed out, which
    /// a commit (or the auto-commit timer, or a revocation) would then cover.
    store_handed_out: bool,
}

impl Reader {
    /// Hands out the next message (reading ahead when none is held) without
    /// waiting.
    fn read_one(&mut self, consumer: &RdConsumer) -> KafkaResult<Option<RawMessage>> {
        if self.buffer.is_empty() {
            let mut scratch = std::mem::take(&mut self.scratch);
            let read = self.read(consumer, &mut scratch, READ_AHEAD);
            self.buffer.extend(scratch.drain(..));
            self.scratch = scratch;
            read?;
        } else {
            self.drop_unassigned(consumer);
        }
        let message = self.buffer.pop_front();
        if let Some(message) = &message {
            self.handed_out(consumer, message);
        }
        Ok(message)
    }

    /// Hands out up to `max` messages into `out` without waiting: those read ahead
    /// first, else a batch read now.
    fn read_batch(
        &mut self,
        consumer: &RdConsumer,
        out: &mut Vec<RawMessage>,
        max: usize,
    ) -> KafkaResult<()> {
        let start = out.len();
        if self.buffer.is_empty() {
            self.read(consumer, out, max)?;
        } else {
            self.drop_unassigned(consumer);
            let n = max.min(self.buffer.len());
            out.extend(self.buffer.drain(..n));
        }
        // All handed out at once: the last of each run of a partition's messages
        // stores the offset for the run.
        let handed = &out[start..];
        for (i, message) in handed.iter().enumerate() {
            if handed
                .get(i + 1)
                .is_none_or(|next| !next.same_partition(message))
            {
                self.handed_out(consumer, message);
            }
        }
        Ok(())
    }

    /// Stores the offset after `message`, now handed out, for the next commit.
    fn handed_out(&self, consumer: &RdConsumer, message: &RawMessage) {
        if !self.store_handed_out {
            return;
        }
        let stored = match message {
            RawMessage::Fetched(m) => m.store_offset(),
            RawMessage::Polled(r) => consumer.store_offset(&r.topic, r.partition, r.offset),
        };
        if let Err(e) = stored {
            // A partition revoked since: its new owner commits for it.
            tracing::debug!(topic = message.topic(), partition = message.partition(), offset = message.offset(), error = %e, "offset of a handed-out record not stored");
        }
    }

    /// Drops the messages read ahead for partitions no longer assigned, once per
    /// assignment change (a check of an atomic otherwise).
    fn drop_unassigned(&mut self, consumer: &RdConsumer) {
        let generation = consumer.context().assignment_generation();
        if generation == self.buffer_generation {
            return;
        }
        match consumer.assignment() {
            Ok(tpl) => {
                let assigned = topic_partitions(&tpl);
                self.buffer.retain(|m| {
                    assigned
                        .iter()
                        .any(|tp| tp.partition == m.partition() && tp.topic == m.topic())
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the assignment: dropping the records read ahead");
                self.buffer.clear();
            }
        }
        self.buffer_generation = generation;
    }

    /// Drops the messages read ahead for `partition`; returns the first one's offset.
    fn drop_buffered(&mut self, partition: &TopicPartition) -> Option<i64> {
        let first = self
            .buffer
            .iter()
            .find(|m| m.partition() == partition.partition && m.topic() == partition.topic)
            .map(RawMessage::offset);
        if first.is_some() {
            self.buffer
                .retain(|m| m.partition() != partition.partition || m.topic() != partition.topic);
        }
        first
    }

    /// The offset of the first message read ahead for each partition that has one:
    /// the consumer's position there, which librdkafka puts past the read-ahead.
    fn buffered_positions(&self) -> Vec<(TopicPartition, i64)> {
        let mut first: Vec<(TopicPartition, i64)> = Vec::new();
        for m in &self.buffer {
            if !first
                .iter()
                .any(|(tp, _)| tp.partition == m.partition() && tp.topic == m.topic())
            {
                first.push((TopicPartition::new(m.topic(), m.partition()), m.offset()));
            }
        }
        first
    }

    /// Appends up to `max` messages to `out` without waiting, or returns an error.
    fn read(
        &mut self,
        consumer: &RdConsumer,
        out: &mut Vec<RawMessage>,
        max: usize,
    ) -> KafkaResult<()> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        self.reads = self.reads.wrapping_add(1);
        // A read of many (a read-ahead, a batch) always serves the consumer's own
        // queue too: rebalances and errors wait for it no longer than for single reads.
        let periodic = max > 1 || self.reads.is_multiple_of(POLL_CONSUMER_EVERY);
        let generation = consumer.context().assignment_generation();
        self.buffer_generation = generation;
        if generation != self.routed_generation
            || ((periodic || self.idle) && self.last_route.elapsed() >= ROUTE_REFRESH)
        {
            self.route(consumer, generation);
        }
        let mut polled = false;
        if self.drain_consumer_queue || periodic {
            self.poll_consumer(consumer, out, max)?;
            polled = true;
            if out.len() >= max || self.drain_consumer_queue {
                self.idle = out.is_empty();
                return Ok(());
            }
        }
        let pending = &mut self.pending_error;
        self.fetch
            .queue()
            .consume_owned(max - out.len(), |message| {
                match message.error_code() {
                    RDKafkaErrorCode::NoError => out.push(RawMessage::Fetched(message)),
                    RDKafkaErrorCode::PartitionEOF => {
                        pending.get_or_insert(KafkaError::PartitionEOF(message.partition()));
                    }
                    code => {
                        pending.get_or_insert(KafkaError::MessageConsumption(code));
                    }
                };
            });
        if out.is_empty() && !polled {
            self.poll_consumer(consumer, out, max)?;
        }
        self.idle = out.is_empty();
        match self.pending_error.take() {
            Some(e) if out.is_empty() => Err(e),
            pending => {
                self.pending_error = pending;
                Ok(())
            }
        }
    }

    /// Serves the consumer's own queue to its end (or until `out` holds `max`).
    fn poll_consumer(
        &mut self,
        consumer: &RdConsumer,
        out: &mut Vec<RawMessage>,
        max: usize,
    ) -> KafkaResult<()> {
        let mut events = 0;
        while out.len() < max {
            match consumer.poll(Duration::ZERO) {
                Some(Ok(message)) => out.push(RawMessage::Polled(Box::new(copied(&message)))),
                Some(Err(e)) if out.is_empty() => return Err(e),
                Some(Err(e)) => {
                    self.pending_error = Some(e);
                    return Ok(());
                }
                // `poll` returns nothing after serving an event, so the queue's length
                // says when it is really empty.
                None if self.fetch.consumer_queue_len() == 0 => {
                    self.drain_consumer_queue = false;
                    return Ok(());
                }
                None if events >= MAX_EVENTS_PER_POLL => return Ok(()),
                None => events += 1,
            }
        }
        Ok(())
    }

    /// Routes the assigned partitions to the fetch queue, and gives the others back.
    fn route(&mut self, consumer: &RdConsumer, generation: u64) {
        let assigned = match consumer.assignment() {
            Ok(tpl) => topic_partitions(&tpl),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the assignment to route its partitions");
                return;
            }
        };
        for (topic, partition) in self.fetch.partitions() {
            if !assigned
                .iter()
                .any(|tp| tp.topic == topic && tp.partition == partition)
            {
                self.fetch.remove_partition(&topic, partition);
            }
        }
        for tp in &assigned {
            if !self.fetch.add_partition(&tp.topic, tp.partition) {
                tracing::warn!(partition = %tp, "librdkafka has no queue for the partition; its records keep coming through the consumer's own queue");
            }
        }
        self.routed_generation = generation;
        self.last_route = Instant::now();
        self.drain_consumer_queue = true;
    }
}

/// A message of the consumer's own queue, copied out of it.
fn copied(message: &BorrowedMessage<'_>) -> CopiedMessage {
    let (timestamp, timestamp_type) = timestamp_parts(message.timestamp());
    ConsumerRecord {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp,
        timestamp_type,
        headers: message
            .headers()
            .map(Headers::from_rdkafka)
            .unwrap_or_default(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
    }
}

impl<K: DefaultSerde, V: DefaultSerde> Consumer<K, V> {
    /// A consumer with the built-in serdes of `K` and `V` (see [`DefaultSerde`]).
    pub fn new(config: &ClientConfig) -> Result<Self> {
        Consumer::create(
            config,
            Box::new(K::default_serde()),
            Box::new(V::default_serde()),
            None,
        )
    }
}

impl<K: Send + 'static, V: Send + 'static> Consumer<K, V> {
    /// A consumer with the given deserializers.
    pub fn with_deserializers(
        config: &ClientConfig,
        key_deserializer: impl Deserializer<K> + 'static,
        value_deserializer: impl Deserializer<V> + 'static,
    ) -> Result<Self> {
        Consumer::create(
            config,
            Box::new(key_deserializer),
            Box::new(value_deserializer),
            None,
        )
    }

    /// A builder for deserializers and a rebalance listener.
    pub fn builder(config: &ClientConfig) -> ConsumerBuilder<K, V> {
        ConsumerBuilder {
            config: config.clone(),
            key_deserializer: None,
            value_deserializer: None,
            listener: None,
            dead_letter: DeadLetterPolicy::Fail,
            trace_context: false,
        }
    }

    fn create(
        config: &ClientConfig,
        key_deserializer: Box<dyn Deserializer<K>>,
        value_deserializer: Box<dyn Deserializer<V>>,
        listener: Option<Arc<dyn RebalanceListener>>,
    ) -> Result<Self> {
        config.validate()?;
        let store_handed_out = stores_offsets_automatically(config);
        let config = consumer_properties(config);
        let callbacks = ConsumerCallbacks {
            listener,
            events: Mutex::new(None),
            stats: Default::default(),
            assignment_generation: Default::default(),
        };
        let mut inner: RdConsumer = config
            .to_rdkafka()
            .create_with_context(callbacks)
            .map_err(|e| Error::kafka("creating the consumer", "", e))?;
        let wakeup = Arc::new(Notify::new());
        let wake = wakeup.clone();
        inner.set_nonempty_callback(move || wake.notify_waiters());
        let inner = Arc::new(inner);
        let mut fetch = FetchQueue::new(inner.clone())
            .map_err(|e| Error::kafka("creating the consumer's fetch queue", "", e))?;
        let wake = wakeup.clone();
        fetch
            .queue_mut()
            .set_nonempty_callback(move || wake.notify_waiters());
        Ok(Consumer {
            reader: Mutex::new(Reader {
                fetch,
                routed_generation: 0,
                last_route: Instant::now(),
                drain_consumer_queue: false,
                reads: 0,
                idle: false,
                pending_error: None,
                buffer: VecDeque::with_capacity(READ_AHEAD),
                buffer_generation: 0,
                scratch: Vec::with_capacity(READ_AHEAD),
                store_handed_out,
            }),
            inner,
            wakeup,
            key_reads_headers: key_deserializer.reads_headers(),
            value_reads_headers: value_deserializer.reads_headers(),
            key_deserializer,
            value_deserializer,
            poison: PoisonHandler::Fail,
            trace_context: false,
        })
    }

    /// Joins the group (`group.id`) and subscribes to these topics.
    pub fn subscribe(&self, topics: &[&str]) -> Result<()> {
        self.inner
            .subscribe(topics)
            .map_err(|e| Error::kafka("subscribe", format!("topics {topics:?}"), e))
    }

    /// Subscribes to every topic matching the regular expression `pattern`,
    /// including topics created later.
    pub fn subscribe_pattern(&self, pattern: &str) -> Result<()> {
        // librdkafka treats subscriptions starting with '^' as regexes.
        let regex = if pattern.starts_with('^') {
            pattern.to_owned()
        } else {
            format!("^{pattern}")
        };
        self.inner
            .subscribe(&[&regex])
            .map_err(|e| Error::kafka("subscribe", format!("pattern {regex}"), e))
    }

    /// Leaves the subscription.
    pub fn unsubscribe(&self) {
        let mut reader = self.lock_reader();
        reader.buffer.clear();
        self.inner.unsubscribe();
        self.inner.context().assignment_changed();
    }

    /// Reads exactly these partitions, starting at the given offsets, without group
    /// management.
    pub fn assign(&self, partitions: &[(TopicPartition, Offset)]) -> Result<()> {
        let tpl = tpl_with_offsets(partitions.iter().map(|(tp, o)| (tp, o.to_rdkafka())))?;
        // Every partition, kept or not, is read again from the offset given: what was
        // read ahead goes (under the lock, so no read refills it in between).
        let mut reader = self.lock_reader();
        reader.buffer.clear();
        let assigned = self
            .inner
            .assign(&tpl)
            .map_err(|e| Error::kafka("assign", format!("{partitions:?}"), e));
        self.inner.context().assignment_changed();
        assigned
    }

    /// The partitions currently assigned.
    pub fn assignment(&self) -> Result<Vec<TopicPartition>> {
        let tpl = self
            .inner
            .assignment()
            .map_err(|e| Error::kafka("assignment", "", e))?;
        Ok(topic_partitions(&tpl))
    }

    /// Waits for the next record. Poison records go through the consumer's
    /// [`DeadLetterPolicy`] (by default `recv` returns them as errors).
    ///
    /// The record owns its topic and headers; [`Consumer::recv_fetched`] returns the
    /// same record without copying them.
    pub async fn recv(&self) -> std::result::Result<ConsumerRecord<K, V>, ConsumeError> {
        self.recv_fetched()
            .await
            .map(FetchedRecord::into_consumer_record)
    }

    /// Waits for the next record, as [`Consumer::recv`] does, but returns it as a
    /// [`FetchedRecord`]: it keeps librdkafka's message instead of copying it, and
    /// parses the headers only when asked for.
    pub async fn recv_fetched(&self) -> std::result::Result<FetchedRecord<K, V>, ConsumeError> {
        loop {
            match self.recv_decoded().await {
                Err(ConsumeError::Deserialization(poison)) if !self.poison.is_fail() => {
                    self.apply_poison_policy(poison).await?
                }
                other => return other,
            }
        }
    }

    /// Waits for at least one record, then returns every record already fetched, up
    /// to `max` (at least one), in the order [`Consumer::recv`] would return them
    /// (offset order within a partition). One result per record: a poison record is
    /// an error item where `recv` would return it as an error, and is left out where
    /// the [`DeadLetterPolicy`] skipped or parked it. When dead-lettering fails the
    /// error is the last item, and the records after the poison one are read again.
    ///
    /// ```no_run
    /// # async fn demo(consumer: kafka_client::Consumer<String, String>) -> Result<(), kafka_client::ConsumeError> {
    /// for record in consumer.recv_batch(1_000).await? {
    ///     let record = record?;
    ///     println!("{}@{}: {} = {}", record.partition(), record.offset(), record.key, record.value);
    /// }
    /// # Ok(()) }
    /// ```
    #[allow(clippy::type_complexity)] // one result per record, as `recv` returns them
    pub async fn recv_batch(
        &self,
        max: usize,
    ) -> std::result::Result<
        Vec<std::result::Result<FetchedRecord<K, V>, ConsumeError>>,
        ConsumeError,
    > {
        let span = tracing::debug_span!("kafka.recv_batch", records = tracing::field::Empty);
        async {
            let mut raw = Vec::with_capacity(max.clamp(1, 4096));
            self.read_raw(&mut raw, max.max(1)).await?;
            let mut records = Vec::with_capacity(raw.len());
            for message in raw {
                match self.decode(message).await {
                    Err(ConsumeError::Deserialization(poison)) if !self.poison.is_fail() => {
                        if let Err(e) = self.apply_poison_policy(poison).await {
                            // Rewound to the poison record: the rest is read again.
                            records.push(Err(e));
                            break;
                        }
                    }
                    decoded => records.push(decoded),
                }
            }
            tracing::Span::current().record("records", records.len());
            Ok(records)
        }
        .instrument(span)
        .await
    }

    /// What the dead-letter policy does with a poison record that `recv` would
    /// otherwise return: `Ok` when it was skipped or parked.
    async fn apply_poison_policy(
        &self,
        poison: Box<DeserializationError>,
    ) -> std::result::Result<(), ConsumeError> {
        match self.poison.handle(&poison).await {
            Ok(PoisonOutcome::Fail) => Err(ConsumeError::Deserialization(poison)),
            Ok(PoisonOutcome::Skipped) => Ok(()),
            // Parked and acknowledged: only now move the group past it.
            Ok(PoisonOutcome::DeadLettered) => {
                self.commit_offsets(&[(poison.topic_partition(), poison.next_offset())])
                    .await?;
                Ok(())
            }
            Err(e) => {
                // Not parked: read it again next time rather than lose it.
                let tp = poison.topic_partition();
                if let Err(seek) = self.seek(&tp, Offset::At(poison.offset)).await {
                    tracing::error!(partition = %tp, offset = poison.offset, error = %seek, "cannot rewind to a poison record that was not dead-lettered");
                }
                Err(e)
            }
        }
    }

    /// The next record, decoded, before the dead-letter policy.
    async fn recv_decoded(&self) -> std::result::Result<FetchedRecord<K, V>, ConsumeError> {
        let span = tracing::debug_span!(
            "kafka.recv",
            topic = tracing::field::Empty,
            partition = tracing::field::Empty,
            offset = tracing::field::Empty
        );
        if span.is_disabled() {
            // Not instrumented at all: entering and leaving even a disabled span costs
            // as much per record as handing a record out of the read-ahead.
            let message = self.read_one().await?;
            return self.decode(message).await;
        }
        let receive = async {
            let message = self.read_one().await?;
            // Recorded on the handle, not via Span::current(): that lookup costs a
            // subscriber call per record.
            span.record("topic", message.topic());
            span.record("partition", message.partition());
            span.record("offset", message.offset());
            self.decode(message).await
        };
        receive.instrument(span.clone()).await
    }

    /// Waits until at least one message is read, then appends up to `max` to `out`.
    async fn read_raw(
        &self,
        out: &mut Vec<RawMessage>,
        max: usize,
    ) -> std::result::Result<(), ConsumeError> {
        self.read_until(|reader, consumer| {
            reader.read_batch(consumer, out, max)?;
            Ok(!out.is_empty())
        })
        .await
    }

    /// Waits until one message is read, and returns it.
    async fn read_one(&self) -> std::result::Result<RawMessage, ConsumeError> {
        let mut message = None;
        self.read_until(|reader, consumer| {
            message = reader.read_one(consumer)?;
            Ok(message.is_some())
        })
        .await?;
        message.ok_or_else(|| Error::kafka("receive", "", KafkaError::NoMessageReceived).into())
    }

    /// Runs `attempt` (a read that does not wait) until it reads something. Never
    /// blocks the executor: when a read finds nothing, it waits for librdkafka to
    /// signal that a queue got something (or for the routing refresh).
    async fn read_until(
        &self,
        mut attempt: impl FnMut(&mut Reader, &RdConsumer) -> KafkaResult<bool>,
    ) -> std::result::Result<(), ConsumeError> {
        // Registered only once a read found nothing, then read again before waiting,
        // so a wake-up in between is not missed (and reads that find records never
        // touch the `Notify`).
        let mut notified = None;
        loop {
            let (read, unfinished) = {
                let mut reader = self.lock_reader();
                let read = attempt(&mut reader, &self.inner)
                    .map_err(|e| Error::kafka("receive", "", e))?;
                (read, reader.drain_consumer_queue)
            };
            if read {
                return Ok(());
            }
            if unfinished {
                // Events are left on the consumer's own queue (see MAX_EVENTS_PER_POLL):
                // serve them next, after letting other tasks run.
                tokio::task::yield_now().await;
                continue;
            }
            match notified.take() {
                None => {
                    let mut registered = Box::pin(self.wakeup.notified());
                    registered.as_mut().enable();
                    notified = Some(registered);
                }
                Some(registered) => {
                    let _ = tokio::time::timeout(ROUTE_REFRESH, registered).await;
                }
            }
        }
    }

    fn lock_reader(&self) -> MutexGuard<'_, Reader> {
        match self.reader.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The records as a `Stream` (it never ends; errors are items).
    pub fn stream(
        &self,
    ) -> impl Stream<Item = std::result::Result<ConsumerRecord<K, V>, ConsumeError>> + '_ {
        futures::stream::unfold(self, |consumer| async move {
            Some((consumer.recv().await, consumer))
        })
    }

    /// Decodes key and value from librdkafka's buffers; the headers are parsed only
    /// for a deserializer that reads them.
    async fn decode(
        &self,
        message: RawMessage,
    ) -> std::result::Result<FetchedRecord<K, V>, ConsumeError> {
        let (key, value) = {
            let topic = message.topic();
            let key_headers = if self.key_reads_headers {
                message.headers()
            } else {
                &NO_HEADERS
            };
            let value_headers = if self.value_reads_headers {
                message.headers()
            } else {
                &NO_HEADERS
            };
            let key_ctx = SerdeContext::new(topic, MessageField::Key, key_headers);
            let value_ctx = SerdeContext::new(topic, MessageField::Value, value_headers);
            let poison = |field, source| poison(&message, field, source);

            if let Some(prepare) = self.key_deserializer.prepare(message.key(), &key_ctx) {
                prepare.await.map_err(|e| poison(MessageField::Key, e))?;
            }
            if let Some(prepare) = self
                .value_deserializer
                .prepare(message.payload(), &value_ctx)
            {
                prepare.await.map_err(|e| poison(MessageField::Value, e))?;
            }
            let key = self
                .key_deserializer
                .deserialize(message.key(), &key_ctx)
                .map_err(|e| poison(MessageField::Key, e))?;
            let value = self
                .value_deserializer
                .deserialize(message.payload(), &value_ctx)
                .map_err(|e| poison(MessageField::Value, e))?;
            (key, value)
        };
        Ok(FetchedRecord::new(key, value, message))
    }

    /// Reads the next record and commits it before returning it (at-most-once:
    /// if processing then fails, the record is not read again).
    pub async fn recv_at_most_once(
        &self,
    ) -> std::result::Result<ConsumerRecord<K, V>, ConsumeError> {
        let record = self.recv().await?;
        self.commit_record(&record).await?;
        Ok(record)
    }

    /// Reads the next record, runs `handler` on it, and commits it only if the
    /// handler succeeds (at-least-once: after a crash or a handler error the
    /// record is read again by the group).
    pub async fn process_at_least_once<F, Fut, T, E>(
        &self,
        handler: F,
    ) -> std::result::Result<T, ProcessError<E>>
    where
        F: FnOnce(ConsumerRecord<K, V>) -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let record = self.recv().await?;
        let position = (record.topic_partition(), record.offset + 1);
        let output = if self.trace_context {
            let span = self.processing_span(&record);
            handler(record).instrument(span).await
        } else {
            handler(record).await
        }
        .map_err(ProcessError::Handler)?;
        self.commit_offsets(&[position])
            .await
            .map_err(ProcessError::Commit)?;
        Ok(output)
    }

    /// An info-level `kafka.process` span to handle `record` in. With
    /// [`ConsumerBuilder::trace_context`] on, its parent is the producer's span
    /// carried in the record's `traceparent` header.
    pub fn processing_span(&self, record: &ConsumerRecord<K, V>) -> tracing::Span {
        if self.trace_context {
            crate::trace_context::processing_span(
                &record.topic,
                record.partition,
                record.offset,
                &record.headers,
            )
        } else {
            crate::trace_context::processing_span(
                &record.topic,
                record.partition,
                record.offset,
                &Headers::new(),
            )
        }
    }

    /// Commits `record` as processed: the group resumes after it.
    pub async fn commit_record(&self, record: &ConsumerRecord<K, V>) -> Result<()> {
        self.commit_offsets(&[(record.topic_partition(), record.offset + 1)])
            .await
    }

    /// Commits explicit offsets: each is the offset of the next record to read
    /// (Kafka's convention, i.e. last processed + 1).
    pub async fn commit_offsets(&self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let tpl = tpl_with_offsets(offsets.iter().map(|(tp, o)| (tp, RdOffset::Offset(*o))))?;
        let detail = format!("{offsets:?}");
        self.blocking("commit", detail, move |consumer| {
            consumer.commit(&tpl, CommitMode::Sync)
        })
        .await
    }

    /// Commits the position of every assigned partition (everything returned so far).
    pub async fn commit(&self) -> Result<()> {
        self.blocking("commit", String::new(), |consumer| {
            consumer.commit_consumer_state(CommitMode::Sync)
        })
        .await
    }

    /// The committed offsets of the assigned partitions (`None` where nothing is
    /// committed).
    pub async fn committed(&self) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        let tpl = self
            .blocking("committed", String::new(), |c| c.committed(REQUEST_TIMEOUT))
            .await?;
        Ok(offsets_of(&tpl))
    }

    /// The next offset to be read for each assigned partition (`None` before the
    /// first fetch).
    pub fn position(&self) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        let reader = self.lock_reader();
        let tpl = self
            .inner
            .position()
            .map_err(|e| Error::kafka("position", "", e))?;
        let mut positions = offsets_of(&tpl);
        // librdkafka's position is past the records read ahead.
        for (partition, first) in reader.buffered_positions() {
            if let Some((_, position)) = positions.iter_mut().find(|(tp, _)| *tp == partition) {
                *position = Some(first);
            }
        }
        Ok(positions)
    }

    /// Moves the position of an assigned partition.
    pub async fn seek(&self, partition: &TopicPartition, offset: Offset) -> Result<()> {
        let tp = partition.clone();
        let sought = self
            .blocking("seek", format!("{partition} to {offset:?}"), move |c| {
                c.seek(
                    &tp.topic,
                    tp.partition,
                    offset.to_rdkafka(),
                    REQUEST_TIMEOUT,
                )
            })
            .await;
        // Records read ahead from the old position are not next any more.
        self.lock_reader().drop_buffered(partition);
        sought
    }

    /// Moves the position to the first record whose timestamp is at or after
    /// `timestamp_ms` (to the end when there is none).
    pub async fn seek_to_timestamp(
        &self,
        partition: &TopicPartition,
        timestamp_ms: i64,
    ) -> Result<()> {
        let tp = partition.clone();
        let detail = format!("{partition} to timestamp {timestamp_ms}");
        let sought = self
            .blocking("seek to timestamp", detail, move |c| {
                let mut query = TopicPartitionList::new();
                query.add_partition_offset(
                    &tp.topic,
                    tp.partition,
                    RdOffset::Offset(timestamp_ms),
                )?;
                let found = c.offsets_for_times(query, REQUEST_TIMEOUT)?;
                let offset = found
                    .find_partition(&tp.topic, tp.partition)
                    .map(|e| e.offset())
                    .unwrap_or(RdOffset::End);
                let offset = match offset {
                    RdOffset::Offset(o) if o >= 0 => RdOffset::Offset(o),
                    _ => RdOffset::End,
                };
                c.seek(&tp.topic, tp.partition, offset, REQUEST_TIMEOUT)
            })
            .await;
        self.lock_reader().drop_buffered(partition);
        sought
    }

    /// Stops fetching from these partitions until [`Consumer::resume`]. Records
    /// already read ahead from them are given back: read again after `resume`.
    pub fn pause(&self, partitions: &[TopicPartition]) -> Result<()> {
        let tpl = tpl_of(partitions)?;
        let mut reader = self.lock_reader();
        self.inner
            .pause(&tpl)
            .map_err(|e| Error::kafka("pause", format!("{partitions:?}"), e))?;
        for tp in partitions {
            if let Some(first) = reader.drop_buffered(tp) {
                // Asynchronous (no wait): librdkafka applies it after the pause, and
                // fetches from there on resume.
                self.inner
                    .seek(
                        &tp.topic,
                        tp.partition,
                        RdOffset::Offset(first),
                        Duration::ZERO,
                    )
                    .map_err(|e| {
                        Error::kafka("pause", format!("{tp}: rewinding to offset {first}"), e)
                    })?;
            }
        }
        Ok(())
    }

    /// Resumes fetching from paused partitions.
    pub fn resume(&self, partitions: &[TopicPartition]) -> Result<()> {
        let tpl = tpl_of(partitions)?;
        self.inner
            .resume(&tpl)
            .map_err(|e| Error::kafka("resume", format!("{partitions:?}"), e))
    }

    /// Lag per assigned partition: high watermark minus this consumer's position.
    pub async fn lag(&self) -> Result<Vec<PartitionLag>> {
        let positions = self.position()?;
        self.blocking("lag", String::new(), move |c| {
            positions
                .into_iter()
                .map(|(tp, position)| {
                    let (_, high) = c.fetch_watermarks(&tp.topic, tp.partition, REQUEST_TIMEOUT)?;
                    Ok(PartitionLag {
                        lag: position.map(|p| (high - p).max(0)),
                        partition: tp,
                        position,
                        high_watermark: high,
                    })
                })
                .collect()
        })
        .await
    }

    /// A channel of rebalance events, for handling them asynchronously. Each call
    /// replaces the previous channel.
    pub fn rebalance_events(&self) -> mpsc::UnboundedReceiver<RebalanceEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut events = match self.inner.context().events.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *events = Some(tx);
        rx
    }

    /// The latest statistics snapshot, updated every `statistics.interval.ms`
    /// (see [`crate::stats`]).
    pub fn statistics(&self) -> crate::stats::StatsReceiver {
        self.inner.context().stats.subscribe()
    }

    /// The group metadata, for `send_offsets_to_transaction`.
    pub fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata> {
        self.inner.group_metadata()
    }

    /// Leaves the group and closes the consumer without blocking the executor.
    /// Records still held ([`FetchedRecord`]) keep librdkafka's client open until
    /// they are dropped.
    pub async fn close(self) -> Result<()> {
        let Consumer { reader, inner, .. } = self;
        tokio::task::spawn_blocking(move || {
            // The partitions go back to the consumer's own queue first.
            drop(reader);
            inner.unsubscribe();
            drop(inner);
        })
        .await
        .map_err(|e| Error::background("close", e))
    }

    /// Runs a blocking librdkafka call on tokio's blocking pool.
    async fn blocking<T, F>(&self, operation: &'static str, detail: String, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&RdConsumer) -> rdkafka::error::KafkaResult<T> + Send + 'static,
    {
        let consumer = self.inner.clone();
        let span = tracing::debug_span!("kafka.consumer", operation, detail = %detail);
        let result = tokio::task::spawn_blocking(move || call(&consumer))
            .instrument(span)
            .await
            .map_err(|e| Error::background(operation, e))?;
        result.map_err(|e| Error::kafka(operation, detail, e))
    }
}

fn poison(message: &RawMessage, field: MessageField, source: SerdeError) -> ConsumeError {
    let error = DeserializationError {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().0,
        field,
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers: message.headers().clone(),
        source,
    };
    tracing::warn!(
        topic = %error.topic,
        partition = error.partition,
        offset = error.offset,
        "poison record: {}",
        error.source
    );
    ConsumeError::Deserialization(Box::new(error))
}

fn tpl_of(partitions: &[TopicPartition]) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for tp in partitions {
        tpl.add_partition(&tp.topic, tp.partition);
    }
    Ok(tpl)
}

fn tpl_with_offsets<'a>(
    offsets: impl Iterator<Item = (&'a TopicPartition, RdOffset)>,
) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for (tp, offset) in offsets {
        tpl.add_partition_offset(&tp.topic, tp.partition, offset)
            .map_err(|e| Error::kafka("setting offset", tp.to_string(), e))?;
    }
    Ok(tpl)
}

fn topic_partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

fn offsets_of(tpl: &TopicPartitionList) -> Vec<(TopicPartition, Option<i64>)> {
    tpl.elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                RdOffset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            };
            (TopicPartition::new(e.topic(), e.partition()), offset)
        })
        .collect()
}

/// The properties a [`Consumer`] is created with: the user's, plus this SDK's
/// consumer defaults where unset. Offsets are committed explicitly (or by opting in
/// to auto-commit), and partition EOF is not an event `recv` returns. librdkafka
/// never stores offsets itself: the consumer stores each record's as it hands it
/// out, where the user's `enable.auto.offset.store` asks for it
/// ([`stores_offsets_automatically`]).
fn consumer_properties(config: &ClientConfig) -> ClientConfig {
    config
        .clone()
        .with_consumer_defaults()
        .with_default("enable.auto.commit", "false")
        .with_default("enable.partition.eof", "false")
        .set("enable.auto.offset.store", "false")
}

/// The user's `enable.auto.offset.store` (librdkafka's default: on).
fn stores_offsets_automatically(config: &ClientConfig) -> bool {
    config
        .get("enable.auto.offset.store")
        .is_none_or(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "false" | "0"))
}

#[cfg(test)]
mod read_ahead_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_FETCH_QUEUE_BACKOFF_MS;

    #[test]
    fn consumers_default_to_a_short_fetch_queue_backoff_unless_set() {
        let defaults = consumer_properties(&ClientConfig::new("localhost:9092"));
        let expected = DEFAULT_FETCH_QUEUE_BACKOFF_MS.to_string();
        assert_eq!(
            defaults.get("fetch.queue.backoff.ms"),
            Some(expected.as_str())
        );
        assert_eq!(defaults.get("enable.auto.commit"), Some("false"));

        let mine = consumer_properties(
            &ClientConfig::new("localhost:9092")
                .set("fetch.queue.backoff.ms", "1000")
                .set("enable.auto.commit", "true"),
        );
        assert_eq!(mine.get("fetch.queue.backoff.ms"), Some("1000"));
        assert_eq!(mine.get("enable.auto.commit"), Some("true"));
    }
}
