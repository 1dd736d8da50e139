//! librdkafka callbacks: logs and errors routed into `tracing`, delivery reports,
//! the partitioner hook, and rebalance notifications.

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{Partitioner as RdPartitioner, ProducerContext};
use rdkafka::Message;
use tokio::sync::futures::Notified;
use tokio::sync::{mpsc, Notify};

use crate::consumer::{RebalanceEvent, RebalanceListener};
use crate::delivery::Completion;
use crate::producer::{default_partition, DeliveryFailure, Partitioner};
use crate::record::TopicPartition;

/// The librdkafka log level matching the most verbose `tracing` level enabled.
pub(crate) fn rdkafka_log_level() -> RDKafkaLogLevel {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::TRACE | LevelFilter::DEBUG => RDKafkaLogLevel::Debug,
        LevelFilter::INFO => RDKafkaLogLevel::Info,
        LevelFilter::WARN => RDKafkaLogLevel::Warning,
        _ => RDKafkaLogLevel::Error,
    }
}

/// Logging shared by every client: librdkafka's log lines and global errors go to
/// `tracing` under the target `librdkafka`, at the matching level.
#[derive(Clone, Default)]
pub(crate) struct LoggingContext;

impl ClientContext for LoggingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", facility = fac, "{message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(target: "librdkafka", error = %error, "{reason}");
    }
}

/// Wakes senders waiting for room in librdkafka's full queue.
///
/// Deliveries touch the `Notify` (and its lock) only while someone waits, so the
/// per-record path stays lock-free.
#[derive(Default)]
pub(crate) struct QueueSpace {
    notify: Notify,
    waiters: AtomicUsize,
}

impl QueueSpace {
    /// A delivery freed a slot.
    fn freed(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.notify.notify_waiters();
        }
    }

    /// Registers interest in the next freed slot. Retry the send after this and
    /// before waiting, so a slot freed in between is not missed.
    pub(crate) fn waiter(&self) -> QueueWaiter<'_> {
        let mut notified = Box::pin(self.notify.notified());
        notified.as_mut().enable();
        self.waiters.fetch_add(1, Ordering::SeqCst);
        QueueWaiter {
            space: self,
            notified,
        }
    }
}

/// A registered wait for room in the queue (see [`QueueSpace::waiter`]).
pub(crate) struct QueueWaiter<'a> {
    space: &'a QueueSpace,
    notified: Pin<Box<Notified<'a>>>,
}

impl QueueWaiter<'_> {
    pub(crate) async fn wait(mut self) {
        self.notified.as_mut().await;
    }
}

impl Drop for QueueWaiter<'_> {
    fn drop(&mut self) {
        self.space.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Producer callbacks: completes each send's oneshot and wakes senders waiting
/// for room in librdkafka's queue.
pub(crate) struct ProducerCallbacks {
    pub(crate) queue_space: Arc<QueueSpace>,
    pub(crate) partitioner: PartitionerAdapter,
    pub(crate) stats: crate::stats::StatsSink,
    /// Where failed deliveries of records sent without a completion go.
    pub(crate) failures: Mutex<Option<mpsc::UnboundedSender<DeliveryFailure>>>,
}

impl ProducerCallbacks {
    /// A record sent with `send_and_forget` was not delivered: to the failure channel
    /// if anyone listens, to the log in any case.
    fn forgotten_failed(&self, failure: DeliveryFailure) {
        tracing::error!(topic = %failure.topic, partition = failure.partition, error = %failure.error, "record sent with send_and_forget was not delivered");
        let mut failures = match self.failures.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(tx) = failures.as_ref() {
            if tx.send(failure).is_err() {
                *failures = None; // the receiver is gone
            }
        }
    }
}

impl ClientContext for ProducerCallbacks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        LoggingContext.log(level, fac, message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        LoggingContext.error(error, reason)
    }
    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        self.stats.publish(&statistics)
    }
}

impl ProducerContext<PartitionerAdapter> for ProducerCallbacks {
    type DeliveryOpaque = Completion;

    fn delivery(&self, result: &DeliveryResult<'_>, done: Self::DeliveryOpaque) {
        match done {
            Completion::Nobody => {
                if let Err((error, message)) = result {
                    self.forgotten_failed(DeliveryFailure {
                        topic: message.topic().to_owned(),
                        partition: message.partition(),
                        key: message.key().map(<[u8]>::to_vec),
                        value: message.payload().map(<[u8]>::to_vec),
                        error: error.clone(),
                    });
                }
            }
            done => done.complete(match result {
                Ok(message) => Ok((message.partition(), message.offset(), message.timestamp())),
                Err((error, _)) => Err(error.clone()),
            }),
        }
        self.queue_space.freed();
    }

    fn get_custom_partitioner(&self) -> Option<&PartitionerAdapter> {
        self.partitioner.custom.as_ref().map(|_| &self.partitioner)
    }
}

/// Bridges the user's [`Partitioner`] to librdkafka, falling back to Kafka's
/// murmur2 key hashing when it declines.
pub(crate) struct PartitionerAdapter {
    pub(crate) custom: Option<Arc<dyn Partitioner>>,
    round_robin: AtomicU32,
}

impl PartitionerAdapter {
    pub(crate) fn new(custom: Option<Arc<dyn Partitioner>>) -> Self {
        PartitionerAdapter {
            custom,
            round_robin: AtomicU32::new(0),
        }
    }
}

impl RdPartitioner for PartitionerAdapter {
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        partition_count: i32,
        is_available: impl Fn(i32) -> bool,
    ) -> i32 {
        let chosen = self
            .custom
            .as_ref()
            .and_then(|p| p.partition(topic, key, partition_count))
            .filter(|p| (0..partition_count).contains(p))
            .or_else(|| default_partition(key, partition_count));
        if let Some(partition) = chosen {
            return partition;
        }
        // Null key: spread over available partitions, as Kafka does.
        let start = self.round_robin.fetch_add(1, Ordering::Relaxed) as i32;
        (0..partition_count)
            .map(|i| (start.wrapping_add(i)).rem_euclid(partition_count.max(1)))
            .find(|&p| is_available(p))
            .unwrap_or(rdkafka::producer::PARTITION_UA)
    }
}

/// Consumer callbacks: rebalances go to the user's listener and to the event
/// channel, if anyone asked for it.
pub(crate) struct ConsumerCallbacks {
    pub(crate) listener: Option<Arc<dyn RebalanceListener>>,
    pub(crate) events: Mutex<Option<mpsc::UnboundedSender<RebalanceEvent>>>,
    pub(crate) stats: crate::stats::StatsSink,
    /// Bumped on every change of the assignment, so that the consumer routes its
    /// partitions to its fetch queue again.
    pub(crate) assignment_generation: AtomicU64,
}

impl ConsumerCallbacks {
    /// The assignment changed (or is about to).
    pub(crate) fn assignment_changed(&self) {
        self.assignment_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The current assignment generation.
    pub(crate) fn assignment_generation(&self) -> u64 {
        self.assignment_generation.load(Ordering::Acquire)
    }

    fn emit(&self, event: RebalanceEvent) {
        if let Some(listener) = &self.listener {
            match &event {
                RebalanceEvent::Assigned(p) => listener.on_assigned(p),
                RebalanceEvent::Revoked(p) => listener.on_revoked(p),
                RebalanceEvent::Lost(p) => listener.on_lost(p),
                RebalanceEvent::Error(_) => {}
            }
        }
        let mut events = match self.events.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(tx) = events.as_ref() {
            if tx.send(event).is_err() {
                *events = None; // the receiver is gone
            }
        }
    }
}

impl ClientContext for ConsumerCallbacks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        LoggingContext.log(level, fac, message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        LoggingContext.error(error, reason)
    }
    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        self.stats.publish(&statistics)
    }
}

fn partitions(tpl: &rdkafka::TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

impl ConsumerContext for ConsumerCallbacks {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.assignment_changed();
            let parts = partitions(tpl);
            tracing::info!(partitions = ?parts, lost = consumer.assignment_lost(), "partitions revoked");
            if consumer.assignment_lost() {
                self.emit(RebalanceEvent::Lost(parts));
            } else {
                self.emit(RebalanceEvent::Revoked(parts));
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.assignment_changed();
                let parts = partitions(tpl);
                tracing::info!(partitions = ?parts, "partitions assigned");
                self.emit(RebalanceEvent::Assigned(parts));
            }
            Rebalance::Error(e) => {
                tracing::error!(error = %e, "rebalance failed");
                self.emit(RebalanceEvent::Error(e.to_string()));
            }
            Rebalance::Revoke(_) => self.assignment_changed(),
        }
    }
}
